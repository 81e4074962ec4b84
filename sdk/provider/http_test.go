package provider_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

func TestFromHTTPStatus(t *testing.T) {
	tests := map[string]struct {
		status int
		kind   provider.Kind
	}{
		"401": {401, provider.KindUnauthorized}, "403": {403, provider.KindUnauthorized},
		"429": {429, provider.KindRateLimited}, "400": {400, provider.KindInvalid}, "404": {404, provider.KindInvalid},
		"422": {422, provider.KindInvalid}, "500": {500, provider.KindRetryable}, "503": {503, provider.KindRetryable},
		"302": {302, provider.KindRetryable},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := provider.FromHTTPStatus(tc.status, 2*time.Second, errors.New("x"))
			if provider.KindOf(err) != tc.kind {
				t.Fatalf("kind = %s, want %s", provider.KindOf(err), tc.kind)
			}
			if tc.kind == provider.KindRateLimited && provider.RetryAfter(err) != 2*time.Second {
				t.Fatalf("retry after lost")
			}
		})
	}
	for v, want := range map[string]time.Duration{"7": 7 * time.Second, " 3 ": 3 * time.Second, "": 0, "-1": 0, "soon": 0} {
		if got := provider.RetryAfterHeader(http.Header{"Retry-After": {v}}); got != want {
			t.Errorf("RetryAfterHeader(%q) = %s, want %s", v, got, want)
		}
	}
}
