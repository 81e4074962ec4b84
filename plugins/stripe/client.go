package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
	stripe "github.com/stripe/stripe-go/v76"
	checkoutsession "github.com/stripe/stripe-go/v76/checkout/session"
	"github.com/stripe/stripe-go/v76/paymentintent"
	"github.com/stripe/stripe-go/v76/refund"
	"github.com/stripe/stripe-go/v76/subscription"
)

const (
	defaultBaseURL = "https://api.stripe.com"
	// httpTimeout bounds a single Stripe call when the caller's context has
	// no earlier deadline.
	httpTimeout = 30 * time.Second
	// maxIdempotencyKey is Stripe's limit on the Idempotency-Key header.
	maxIdempotencyKey = 255
)

// backends caches one *stripe.Backends per base URL. Backends hold only the
// URL and an HTTP client (its connection pool), never a key, so tenants that
// share a base URL share connections. Keys are bound per call in client.
var backends sync.Map // base URL -> *stripe.Backends

func backendsFor(base string) *stripe.Backends {
	if b, ok := backends.Load(base); ok {
		return b.(*stripe.Backends)
	}
	cfg := func() *stripe.BackendConfig {
		return &stripe.BackendConfig{
			URL:               stripe.String(base),
			MaxNetworkRetries: stripe.Int64(0), // the gateway retries, with its own backoff
			HTTPClient:        &http.Client{Timeout: httpTimeout},
			// stripe-go logs full response bodies (client secrets) at debug
			// level and cannot see the call's context, so it stays silent;
			// the plugin logs failures itself through provider.Log.
			LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
		}
	}
	b := &stripe.Backends{
		API:     stripe.GetBackendWithConfig(stripe.APIBackend, cfg()),
		Connect: stripe.GetBackendWithConfig(stripe.ConnectBackend, cfg()),
		Uploads: stripe.GetBackendWithConfig(stripe.UploadsBackend, cfg()),
	}
	actual, _ := backends.LoadOrStore(base, b)
	return actual.(*stripe.Backends)
}

// client is the Stripe API bound to one tenant's key for one call. It is
// built by newClient for every call and must not outlive it.
type client struct {
	intents  paymentintent.Client
	sessions checkoutsession.Client
	refunds  refund.Client
	subs     subscription.Client
	account  string // Stripe-Account header; empty for the key's own account
	key      string // for redacting error messages only
}

// newClient returns a client for tenant t. A missing secret_key is
// KindUnauthorized; a malformed base_url is KindInvalid.
func newClient(t provider.Tenant) (*client, error) {
	secret := t.Secret(fieldSecretKey)
	if secret.IsZero() {
		return nil, provider.Unauthorized(fmt.Errorf("stripe: tenant %s has no %s", t.ID(), fieldSecretKey))
	}
	base, err := baseURL(t.Setting(provider.BaseURLField))
	if err != nil {
		return nil, provider.Invalid(err)
	}
	b := backendsFor(base)
	key := secret.Reveal()
	return &client{
		intents:  paymentintent.Client{B: b.API, Key: key},
		sessions: checkoutsession.Client{B: b.API, Key: key},
		refunds:  refund.Client{B: b.API, Key: key},
		subs:     subscription.Client{B: b.API, Key: key},
		account:  strings.TrimSpace(t.Setting(fieldAccount)),
		key:      key,
	}, nil
}

// baseURL validates the base_url setting and normalises it the way
// stripe-go does (no trailing "/" or "/v1"), so equivalent spellings share
// one cache entry. Empty means the production API.
func baseURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return defaultBaseURL, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("stripe: %s %q must be an http(s) URL without query", provider.BaseURLField, raw)
	}
	s := strings.TrimSuffix(u.String(), "/")
	return strings.TrimSuffix(s, "/v1"), nil
}

// open returns the tenant's client and the parameters of one call (see
// params): the start of every operation.
func open(ctx context.Context, t provider.Tenant, idempotencyKey string) (*client, stripe.Params, error) {
	c, err := newClient(t)
	if err != nil {
		return nil, stripe.Params{}, err
	}
	p, err := c.params(ctx, idempotencyKey)
	if err != nil {
		return nil, stripe.Params{}, err
	}
	return c, p, nil
}

// params returns the parameters every call carries: the caller's context
// (for its deadline and cancellation), the idempotency key when given and
// the Connect account when configured.
func (c *client) params(ctx context.Context, idempotencyKey string) (stripe.Params, error) {
	p := stripe.Params{Context: ctx}
	if idempotencyKey != "" {
		if len(idempotencyKey) > maxIdempotencyKey {
			return p, provider.Invalid(fmt.Errorf("stripe: idempotency key is %d bytes, Stripe allows %d", len(idempotencyKey), maxIdempotencyKey))
		}
		p.IdempotencyKey = stripe.String(idempotencyKey)
	}
	if c.account != "" {
		p.StripeAccount = stripe.String(c.account)
	}
	return p, nil
}

// fail classifies err from the Stripe call op ("create payment intent"),
// logs it without secrets and returns it.
func (c *client) fail(ctx context.Context, op string, err error) error {
	cerr := classify(op, err, c.key)
	attrs := []any{"op", op, "kind", provider.KindOf(cerr).String()}
	if code := provider.CodeOf(cerr); code != "" {
		attrs = append(attrs, "code", code)
	}
	var se *stripe.Error
	if errors.As(err, &se) {
		attrs = append(attrs, "status", se.HTTPStatusCode, "request_id", se.RequestID)
	}
	provider.Log(ctx).Info("stripe call failed", attrs...)
	return cerr
}

// classify turns an error returned by stripe-go for operation op into a
// classified provider error whose message reads "stripe: <op>: <reason>"
// and never contains key or anything that looks like a Stripe API key.
//
//   - 401, 403: KindUnauthorized
//   - 429: KindRateLimited (KindRetryable for a lock_timeout)
//   - 402 or a card_error: KindPermanent, Code = decline code or error code
//   - 409 (concurrent use of an idempotency key, lock timeout), 5xx and
//     api_error: KindRetryable
//   - other 4xx (invalid_request_error, idempotency_error): KindInvalid
//   - deadlines, cancellation and transport errors: KindRetryable, still
//     wrapping the cause, so errors.Is(err, context.DeadlineExceeded) holds
//     (for network timeouts as well)
//
// A Stripe error is not kept in the chain: its Error method prints the
// whole response, which is not ours to vouch for.
func classify(op string, err error, key string) error {
	if err == nil {
		return nil
	}
	var se *stripe.Error
	if !errors.As(err, &se) {
		var ne net.Error
		timeout := errors.As(err, &ne) && ne.Timeout()
		return provider.Retryable(&callError{
			msg:     redact(fmt.Sprintf("stripe: %s: %v", op, err), key),
			err:     err,
			timeout: timeout,
		})
	}

	status := se.HTTPStatusCode
	code := string(se.Code)
	if se.DeclineCode != "" {
		code = string(se.DeclineCode)
	}
	reason := se.Msg
	if reason == "" {
		reason = strings.TrimSpace(string(se.Type) + " " + http.StatusText(status))
	}
	e := &callError{msg: redact(fmt.Sprintf("stripe: %s: %s", op, reason), key)}

	var out error
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		// Stripe masks keys in these messages, stripe-mock does not; a
		// fixed message cannot leak whatever was sent.
		e.msg = fmt.Sprintf("stripe: %s: API key rejected (HTTP %d)", op, status)
		out = provider.Unauthorized(e)
	case status == http.StatusTooManyRequests && se.Code == stripe.ErrorCodeLockTimeout:
		out = provider.Retryable(e)
	case status == http.StatusTooManyRequests:
		out = provider.RateLimited(e, retryAfter(se))
	case status == http.StatusPaymentRequired || se.Type == stripe.ErrorTypeCard:
		out = provider.Permanent(e)
	case status == http.StatusConflict || status >= 500 || se.Type == stripe.ErrorTypeAPI:
		out = provider.Retryable(e)
	case status >= 400:
		out = provider.Invalid(e)
	default:
		out = provider.Retryable(e)
	}
	if code != "" {
		out = provider.WithCode(out, code)
	}
	return out
}

// retryAfter reads a Retry-After header in seconds; Stripe rarely sends one,
// so zero (unknown) is the usual answer.
func retryAfter(se *stripe.Error) time.Duration {
	if se.LastResponse == nil {
		return 0
	}
	s, err := strconv.Atoi(strings.TrimSpace(se.LastResponse.Header.Get("Retry-After")))
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}

// callError is a classified failure's message with its cause. Its message
// has been redacted; timeout marks network timeouts, which then also match
// context.DeadlineExceeded.
type callError struct {
	msg     string
	err     error
	timeout bool
}

func (e *callError) Error() string { return e.msg }
func (e *callError) Unwrap() error { return e.err }

// Is makes a network timeout match context.DeadlineExceeded, so
// provider.IsTimeout treats "Stripe did not answer in time" like an expired
// context.
func (e *callError) Is(target error) bool {
	return e.timeout && target == context.DeadlineExceeded
}

// keyPattern matches Stripe secret, restricted and publishable keys.
var keyPattern = regexp.MustCompile(`\b(sk|rk|pk)_(test|live)_[0-9A-Za-z_]+`)

// minKeyLen is the shortest key value redact removes verbatim; shorter
// values would mangle ordinary words and no real key is that short.
const minKeyLen = 8

// redact removes key and anything shaped like a Stripe API key from s.
func redact(s, key string) string {
	if len(key) >= minKeyLen {
		s = strings.ReplaceAll(s, key, "[redacted]")
	}
	return keyPattern.ReplaceAllString(s, "${1}_${2}_[redacted]")
}
