package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

const (
	// httpTimeout bounds a single call when the caller's context has no
	// earlier deadline.
	httpTimeout = 30 * time.Second
	// maxResponse bounds how much of a response body is read.
	maxResponse = 1 << 20
)

// httpClient is shared by every tenant and both transports: it holds
// connections, never credentials.
var httpClient = &http.Client{Timeout: httpTimeout}

// answer is a provider's HTTP answer, read in full.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// roundTrip sends req and reads the answer. A failure to get an answer is
// KindRetryable with the secrets removed from its message.
func roundTrip(req *http.Request, op string, secrets ...string) (answer, error) {
	resp, err := httpClient.Do(req)
	if err != nil {
		return answer{}, transportError(op, err, secrets...)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return answer{}, transportError(op, err, secrets...)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// baseURL returns the tenant's base_url setting without a trailing slash,
// or def when unset. A value that is not an http(s) URL without query is
// KindInvalid.
func baseURL(t provider.Tenant, def string) (string, error) {
	raw := strings.TrimSpace(t.Setting(provider.BaseURLField))
	if raw == "" {
		return def, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", provider.Invalid(fmt.Errorf("whatsapp: %s %q must be an http(s) URL without query or user info", provider.BaseURLField, clip(raw)))
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// apiError is a provider's non-2xx answer, classified.
type apiError struct {
	op      string
	status  int
	code    string // the provider's error code, "" when none
	message string // the provider's message, secrets removed
	kind    provider.Kind
	retry   time.Duration
}

// err returns e as a classified error whose message reads
// "whatsapp: <op>: HTTP <status>[: <message>]" and whose Code is the
// provider's error code. A kind of zero is decided by the HTTP status
// (provider.FromHTTPStatus).
func (e apiError) err() error {
	msg := fmt.Sprintf("whatsapp: %s: HTTP %d", e.op, e.status)
	if e.message != "" {
		msg += ": " + e.message
	}
	base := &statusError{status: e.status, msg: msg}
	var out error
	switch e.kind {
	case 0:
		out = provider.FromHTTPStatus(e.status, e.retry, base)
	case provider.KindRateLimited:
		out = provider.RateLimited(base, e.retry)
	case provider.KindUnauthorized:
		out = provider.Unauthorized(base)
	case provider.KindInvalid:
		out = provider.Invalid(base)
	case provider.KindPermanent:
		out = provider.Permanent(base)
	default:
		out = provider.Retryable(base)
	}
	if e.code != "" {
		out = provider.WithCode(out, e.code)
	}
	return out
}

// statusError is a non-2xx answer's redacted message with its HTTP status.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// transportError classifies a failure to get an answer: always retryable,
// still wrapping the cause, so errors.Is(err, context.DeadlineExceeded)
// holds for an expired context and for network timeouts.
func transportError(op string, err error, secrets ...string) error {
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	return provider.Retryable(&callError{
		msg:     redact(fmt.Sprintf("whatsapp: %s: %v", op, err), secrets...),
		err:     err,
		timeout: timeout,
	})
}

// callError is a transport failure's redacted message with its cause.
type callError struct {
	msg     string
	err     error
	timeout bool
}

func (e *callError) Error() string { return e.msg }
func (e *callError) Unwrap() error { return e.err }

// Is makes a network timeout match context.DeadlineExceeded, so
// provider.IsTimeout treats "the provider did not answer in time" like an
// expired context.
func (e *callError) Is(target error) bool {
	return e.timeout && target == context.DeadlineExceeded
}

// logFailure logs a classified failure (never a secret) through the
// request's logger.
func logFailure(ctx context.Context, op, transport, account string, status int, err error) {
	attrs := []any{"op", op, "transport", transport, "account", account, "kind", provider.KindOf(err).String()}
	if status != 0 {
		attrs = append(attrs, "status", status)
	}
	if code := provider.CodeOf(err); code != "" {
		attrs = append(attrs, "code", code)
	}
	provider.Log(ctx).Info("whatsapp call failed", attrs...)
}

// minSecretLen is the shortest secret redact removes verbatim; shorter
// values would mangle ordinary words and no real token is that short.
const minSecretLen = 8

// redact removes every secret from s.
func redact(s string, secrets ...string) string {
	for _, secret := range secrets {
		if len(secret) >= minSecretLen {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}
