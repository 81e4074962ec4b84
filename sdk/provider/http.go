package provider

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// FromHTTPStatus classifies err, a provider API's non-2xx answer with the
// given status, by the usual HTTP meaning: 401 and 403 are
// KindUnauthorized, 429 is KindRateLimited (with retryAfter, zero when
// unknown), other 4xx are KindInvalid, and 5xx and anything unexpected are
// KindRetryable. Plugins with provider-specific statuses (a 402 decline)
// classify those first and call this for the rest.
func FromHTTPStatus(status int, retryAfter time.Duration, err error) error {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Unauthorized(err)
	case status == http.StatusTooManyRequests:
		return RateLimited(err, retryAfter)
	case status >= 500:
		return Retryable(err)
	case status >= 400:
		return Invalid(err)
	}
	return Retryable(err)
}

// RetryAfterHeader reads a Retry-After header in delay-seconds; zero when
// absent, malformed or not positive.
func RetryAfterHeader(h http.Header) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}
