package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mercadopago/sdk-go/pkg/config"
	"github.com/mercadopago/sdk-go/pkg/invoice"
	"github.com/mercadopago/sdk-go/pkg/mperror"
	"github.com/mercadopago/sdk-go/pkg/payment"
	"github.com/mercadopago/sdk-go/pkg/preapproval"
	"github.com/mercadopago/sdk-go/pkg/preference"
	"github.com/mercadopago/sdk-go/pkg/refund"

	"github.com/pipecore/pipecore/sdk/provider"
)

const (
	defaultBaseURL = "https://api.mercadopago.com"
	// httpTimeout bounds a single MercadoPago call when the caller's context
	// has no earlier deadline. The SDK's own requester (10 s, 3 retries) is
	// replaced: the gateway retries, with its own backoff.
	httpTimeout = 20 * time.Second
	// maxErrorText clips the provider's error text quoted in messages.
	maxErrorText = 200
)

// httpClient is shared by every tenant: it holds only the connection pool.
var httpClient = &http.Client{Timeout: httpTimeout}

type idempotencyKey struct{}

// withIdempotencyKey returns a context whose non-GET requests carry key as
// X-Idempotency-Key instead of the SDK's random UUID.
func withIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, key)
}

// rewriter is the SDK's requester. sdk-go v1.8.0 hard-codes
// https://api.mercadopago.com and puts a fresh random X-Idempotency-Key on
// every non-GET request; rewriter sends the request to the tenant's base URL
// instead and replaces the key with the gateway's, carried in the request's
// context, so a gateway retry (a new SDK call) reuses it. The request keeps
// the caller's context, so its deadline and cancellation apply.
type rewriter struct {
	base *url.URL
	hc   *http.Client
}

// Do implements requester.Requester.
func (r rewriter) Do(req *http.Request) (*http.Response, error) {
	req.URL.Scheme, req.URL.Host, req.Host = r.base.Scheme, r.base.Host, ""
	if p := strings.TrimSuffix(r.base.Path, "/"); p != "" {
		req.URL.Path = p + req.URL.Path
		req.URL.RawPath = ""
	}
	if k, ok := req.Context().Value(idempotencyKey{}).(string); ok && k != "" && req.Method != http.MethodGet {
		req.Header.Set("X-Idempotency-Key", k)
	}
	return r.hc.Do(req)
}

// client is the MercadoPago API bound to one tenant's token for one call.
type client struct {
	payments     payment.Client
	preferences  preference.Client
	refunds      refund.Client
	preapprovals preapproval.Client
	// authorized reads authorized payments (the sdk calls them invoices):
	// the charges of a subscription.
	authorized invoice.Client
	token      string // for redacting error messages only
}

// newClient returns a client for tenant t. A missing access_token is
// KindUnauthorized; a malformed base_url is KindInvalid.
func newClient(t provider.Tenant) (*client, error) {
	secret := t.Secret(fieldAccessToken)
	if secret.IsZero() {
		return nil, provider.Unauthorized(fmt.Errorf("mercadopago: tenant %s has no %s", t.ID(), fieldAccessToken))
	}
	base, err := baseURL(t.Setting(provider.BaseURLField))
	if err != nil {
		return nil, provider.Invalid(err)
	}
	cfg, err := config.New(secret.Reveal(), config.WithHTTPClient(rewriter{base: base, hc: httpClient}))
	if err != nil {
		return nil, provider.Invalid(fmt.Errorf("mercadopago: config: %w", err))
	}
	return &client{
		payments:     payment.NewClient(cfg),
		preferences:  preference.NewClient(cfg),
		refunds:      refund.NewClient(cfg),
		preapprovals: preapproval.NewClient(cfg),
		authorized:   invoice.NewClient(cfg),
		token:        secret.Reveal(),
	}, nil
}

// baseURL validates the base_url setting; empty means the production API.
func baseURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		raw = defaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mercadopago: %s %q must be an http(s) URL without query", provider.BaseURLField, raw)
	}
	return u, nil
}

// fail classifies err from the call op, logs it without secrets and
// returns it.
func (c *client) fail(ctx context.Context, op string, err error) error {
	cerr := classify(op, err, c.token)
	attrs := []any{"op", op, "kind", provider.KindOf(cerr).String()}
	var re *mperror.ResponseError
	if errors.As(err, &re) {
		attrs = append(attrs, "status", re.StatusCode)
	}
	provider.Log(ctx).Info("mercadopago call failed", attrs...)
	return cerr
}

// classify turns an error returned by sdk-go for operation op into a
// classified provider error reading "mercadopago: <op>: <reason>", which
// never contains token:
//
//   - 401, 403: KindUnauthorized (fixed message)
//   - 400, 404 and other 4xx: KindInvalid, Code = the body's "error"
//   - 429: KindRateLimited, with Retry-After when sent
//   - 5xx: KindRetryable
//   - transport errors, deadlines, cancellation, unreadable responses:
//     KindRetryable; a deadline or network timeout matches
//     context.DeadlineExceeded
//
// The SDK's ResponseError is not kept in the chain: its message is the
// whole response body.
func classify(op string, err error, token string) error {
	if err == nil {
		return nil
	}
	var re *mperror.ResponseError
	if !errors.As(err, &re) {
		var ne net.Error
		timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
		return provider.Retryable(&callError{
			msg:     redact(fmt.Sprintf("mercadopago: %s: %v", op, err), token),
			err:     err,
			timeout: timeout,
		})
	}
	status := re.StatusCode
	reason, code := apiError(re.Message)
	if reason == "" {
		reason = http.StatusText(status)
	}
	e := &callError{msg: redact(fmt.Sprintf("mercadopago: %s: %s (HTTP %d)", op, reason, status), token)}
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		e.msg = fmt.Sprintf("mercadopago: %s: access token rejected (HTTP %d)", op, status)
	}
	out := provider.FromHTTPStatus(status, provider.RetryAfterHeader(re.Headers), e)
	if code != "" {
		out = provider.WithCode(out, code)
	}
	return out
}

// apiError reads MercadoPago's error body {"message","error","status",
// "cause":[]}; a body of another shape is quoted, clipped.
func apiError(body string) (message, code string) {
	var b struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		return clip(strings.TrimSpace(body)), ""
	}
	return clip(b.Message), clip(b.Error)
}

// callError is a classified failure's message with its cause. Its message
// has been redacted; timeout marks deadlines and network timeouts, which
// then match context.DeadlineExceeded.
type callError struct {
	msg     string
	err     error
	timeout bool
}

func (e *callError) Error() string { return e.msg }
func (e *callError) Unwrap() error { return e.err }

// Is makes a network timeout match context.DeadlineExceeded.
func (e *callError) Is(target error) bool {
	return e.timeout && target == context.DeadlineExceeded
}

// minTokenLen is the shortest token redact removes verbatim.
const minTokenLen = 8

// redact removes token from s.
func redact(s, token string) string {
	if len(token) >= minTokenLen {
		s = strings.ReplaceAll(s, token, "[redacted]")
	}
	return s
}

// clip shortens s to maxErrorText bytes for messages and logs.
func clip(s string) string {
	if len(s) > maxErrorText {
		return s[:maxErrorText] + "…"
	}
	return s
}

// toMajor converts minor units to MercadoPago's decimal amount: 1999 USD is
// 19.99, 12990 CLP is 12990.
func toMajor(minor int64, currency string) float64 {
	return float64(minor) / math.Pow10(provider.MinorUnits(currency))
}

// toMinor converts a MercadoPago decimal amount to minor units, rounding to
// the nearest unit.
func toMinor(major float64, currency string) int64 {
	return int64(math.Round(major * math.Pow10(provider.MinorUnits(currency))))
}
