package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	stripe "github.com/stripe/stripe-go/v76"
)

// sentinelKey looks like a Stripe test key; stripe-mock rejects it (it has
// underscores after the prefix) and echoes it back in its 401 message.
const sentinelKey = "sk_test_SENTINEL_4eC39HqLyjWDarjtT1zdp7dc"

// call is one provider operation, for tests that run every operation.
type call struct {
	name string
	run  func(ctx context.Context, p *stripeProvider, t provider.Tenant) error
}

func allCalls() []call {
	return []call{
		{"create payment intent", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			_, err := p.CreatePayment(ctx, createRequest(t))
			return err
		}},
		{"create checkout session", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			req := createRequest(t)
			req.ReturnURL = "https://shop.example/back"
			_, err := p.CreatePayment(ctx, req)
			return err
		}},
		{"get payment intent", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			_, err := p.GetPayment(ctx, payments.GetRequest{Tenant: t, ID: "pi_123"})
			return err
		}},
		{"get checkout session", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			_, err := p.GetPayment(ctx, payments.GetRequest{Tenant: t, ID: "cs_test_123"})
			return err
		}},
		{"refund", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			_, err := p.Refund(ctx, payments.RefundRequest{Tenant: t, IdempotencyKey: "k", ID: "pi_123", Amount: provider.Money{Amount: 100, Currency: "USD"}})
			return err
		}},
		{"refund checkout session", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			_, err := p.Refund(ctx, payments.RefundRequest{Tenant: t, IdempotencyKey: "k", ID: "cs_test_123"})
			return err
		}},
		{"capture", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			_, err := p.Capture(ctx, payments.CaptureRequest{Tenant: t, IdempotencyKey: "k", ID: "pi_123"})
			return err
		}},
		{"cancel", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			_, err := p.Cancel(ctx, payments.CancelRequest{Tenant: t, IdempotencyKey: "k", ID: "pi_123"})
			return err
		}},
		{"create subscription", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			_, err := p.CreateSubscription(ctx, subscriptionRequest(t))
			return err
		}},
		{"get subscription session", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			_, err := p.GetSubscription(ctx, payments.GetRequest{Tenant: t, ID: "cs_test_123"})
			return err
		}},
		{"get subscription", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			_, err := p.GetSubscription(ctx, payments.GetRequest{Tenant: t, ID: "sub_123"})
			return err
		}},
		{"cancel subscription session", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			_, err := p.CancelSubscription(ctx, payments.CancelRequest{Tenant: t, IdempotencyKey: "k", ID: "cs_test_123"})
			return err
		}},
		{"cancel subscription", func(ctx context.Context, p *stripeProvider, t provider.Tenant) error {
			_, err := p.CancelSubscription(ctx, payments.CancelRequest{Tenant: t, IdempotencyKey: "k", ID: "sub_123"})
			return err
		}},
	}
}

func TestMissingSecretKey(t *testing.T) {
	up := mockUpstream(t)
	tenants := map[string]provider.Tenant{
		"no credentials": provider.NewTenant("acme", map[string]string{provider.BaseURLField: up.URL}, nil),
		"empty key":      provider.NewTenant("acme", map[string]string{provider.BaseURLField: up.URL}, map[string]string{fieldSecretKey: ""}),
		"only webhook":   provider.NewTenant("acme", map[string]string{provider.BaseURLField: up.URL}, map[string]string{fieldWebhookSecret: "whsec_x"}),
	}
	for tname, tenant := range tenants {
		for _, c := range allCalls() {
			t.Run(tname+"/"+c.name, func(t *testing.T) {
				err := c.run(context.Background(), newProvider(), tenant)
				wantKind(t, err, provider.KindUnauthorized)
			})
		}
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream received %d requests, want none without a key", n)
	}
}

// stripe-mock rejects the sentinel key and quotes it in its message; the
// plugin's errors must not.
func TestRejectedKeyNeverInErrors(t *testing.T) {
	up := mockUpstream(t)
	tenant := provider.NewTenant("acme", map[string]string{provider.BaseURLField: up.URL}, map[string]string{fieldSecretKey: sentinelKey})
	for _, c := range allCalls() {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			ctx := provider.WithLogger(context.Background(), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			err := c.run(ctx, newProvider(), tenant)
			wantKind(t, err, provider.KindUnauthorized)
			for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), logs.String()} {
				if strings.Contains(s, "SENTINEL") {
					t.Errorf("error or log leaks the key: %s", s)
				}
			}
			if logs.Len() == 0 {
				t.Error("the failure was not logged through provider.Log")
			}
		})
	}
	// The test is only meaningful if stripe-mock really echoed the key.
	if n := len(up.requests()); n == 0 {
		t.Fatal("no request reached stripe-mock")
	}
}

func TestErrorResponses(t *testing.T) {
	echo := func(status int, errJSON string, header http.Header) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			// Quote the Authorization header, as stripe-mock does, so every
			// case also checks redaction.
			body := strings.ReplaceAll(errJSON, "AUTH", r.Header.Get("Authorization"))
			respond(status, header, body)(w, r)
		}
	}
	tests := map[string]struct {
		status     int
		body       string
		header     http.Header
		kind       provider.Kind
		code       string
		retryAfter time.Duration
		message    string
	}{
		"401 invalid key": {
			status: 401, body: `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: AUTH"}}`,
			kind: provider.KindUnauthorized, message: "API key rejected (HTTP 401)",
		},
		"403 restricted key": {
			status: 403, body: `{"error":{"type":"invalid_request_error","message":"The provided key 'AUTH' does not have access"}}`,
			kind: provider.KindUnauthorized, message: "API key rejected (HTTP 403)",
		},
		"402 card declined": {
			status: 402, body: `{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds. AUTH"}}`,
			kind: provider.KindPermanent, code: "insufficient_funds", message: "Your card has insufficient funds.",
		},
		"402 without decline code": {
			status: 402, body: `{"error":{"type":"card_error","code":"expired_card","message":"Your card has expired."}}`,
			kind: provider.KindPermanent, code: "expired_card", message: "Your card has expired.",
		},
		"400 invalid request": {
			status: 400, body: `{"error":{"type":"invalid_request_error","code":"parameter_invalid_integer","param":"amount","message":"Invalid integer: abc"}}`,
			kind: provider.KindInvalid, code: "parameter_invalid_integer", message: "Invalid integer: abc",
		},
		"400 idempotency key reused": {
			status: 400, body: `{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}`,
			kind: provider.KindInvalid, message: "Keys for idempotent requests",
		},
		"404 no such object": {
			status: 404, body: `{"error":{"type":"invalid_request_error","code":"resource_missing","param":"intent","message":"No such payment_intent: 'pi_123'"}}`,
			kind: provider.KindInvalid, code: "resource_missing", message: "No such payment_intent",
		},
		"409 idempotency key in use": {
			status: 409, body: `{"error":{"type":"idempotency_error","code":"idempotency_key_in_use","message":"There is currently another in-progress request using this Idempotent Key."}}`,
			kind: provider.KindRetryable, code: "idempotency_key_in_use", message: "another in-progress request",
		},
		"429 rate limited": {
			status: 429, body: `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests hit the API too quickly."}}`,
			kind: provider.KindRateLimited, code: "rate_limit", message: "Too many requests",
		},
		"429 with Retry-After": {
			status: 429, body: `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests."}}`,
			header: http.Header{"Retry-After": {"7"}},
			kind:   provider.KindRateLimited, code: "rate_limit", retryAfter: 7 * time.Second, message: "Too many requests",
		},
		"429 lock timeout": {
			status: 429, body: `{"error":{"type":"invalid_request_error","code":"lock_timeout","message":"This object cannot be accessed right now because another API request or Stripe process is currently accessing it."}}`,
			kind: provider.KindRetryable, code: "lock_timeout", message: "cannot be accessed right now",
		},
		"500 api error": {
			status: 500, body: `{"error":{"type":"api_error","message":"An unknown error occurred AUTH"}}`,
			kind: provider.KindRetryable, message: "An unknown error occurred",
		},
		"503 without message": {
			status: 503, body: `{"error":{"type":"api_error"}}`,
			kind: provider.KindRetryable, message: "api_error Service Unavailable",
		},
		"502 not JSON": {
			status: 502, body: `<html>Bad Gateway</html>`,
			kind: provider.KindRetryable, message: "Bad Gateway",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := newUpstream(t, "http://127.0.0.1:1") // never forwarded
			up.answer(echo(tt.status, tt.body, tt.header))
			tenant := provider.NewTenant("acme", map[string]string{provider.BaseURLField: up.URL}, map[string]string{fieldSecretKey: sentinelKey})

			_, err := newProvider().GetPayment(context.Background(), payments.GetRequest{Tenant: tenant, ID: "pi_123"})
			wantKind(t, err, tt.kind)
			if got := provider.CodeOf(err); got != tt.code {
				t.Errorf("CodeOf = %q, want %q", got, tt.code)
			}
			if got := provider.RetryAfter(err); got != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", got, tt.retryAfter)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "stripe: get payment intent: ") || !strings.Contains(msg, tt.message) {
				t.Errorf("message = %q, want \"stripe: get payment intent: …%s…\"", msg, tt.message)
			}
			if strings.Contains(msg, "SENTINEL") {
				t.Errorf("message leaks the key: %q", msg)
			}
			if provider.IsTimeout(err) {
				t.Errorf("IsTimeout(%v) = true for an HTTP answer", err)
			}
		})
	}
}

func TestDeadlineIsHonoured(t *testing.T) {
	for _, c := range allCalls() {
		t.Run(c.name, func(t *testing.T) {
			up := mockUpstream(t)
			up.answer(stall)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()

			done := make(chan error, 1)
			go func() { done <- c.run(ctx, newProvider(), testTenant(up.URL)) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("call ignored its 200 ms deadline")
			}
			wantKind(t, err, provider.KindRetryable)
			if !errors.Is(err, context.DeadlineExceeded) || !provider.IsTimeout(err) {
				t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
			}
			if !strings.HasPrefix(err.Error(), "stripe: ") {
				t.Errorf("message = %q, want the stripe: prefix", err.Error())
			}
		})
	}
}

func TestCancelledContext(t *testing.T) {
	up := mockUpstream(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newProvider().GetPayment(ctx, payments.GetRequest{Tenant: testTenant(up.URL), ID: "pi_123"})
	wantKind(t, err, provider.KindRetryable)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(%v, context.Canceled) = false", err)
	}
	if provider.IsTimeout(err) {
		t.Errorf("IsTimeout(%v) = true for a cancellation", err)
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	l.Close() // nothing listens there now

	_, err = newProvider().GetPayment(context.Background(), payments.GetRequest{Tenant: testTenant(base), ID: "pi_123"})
	wantKind(t, err, provider.KindRetryable)
	if provider.IsTimeout(err) {
		t.Errorf("IsTimeout(%v) = true for a refused connection", err)
	}
	if !strings.HasPrefix(err.Error(), "stripe: get payment intent: ") {
		t.Errorf("message = %q, want the operation prefix", err.Error())
	}
}

// timeoutError is a net.Error that timed out without a context, like an
// http.Client.Timeout.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	withHeader := func(e *stripe.Error, h http.Header) *stripe.Error {
		e.LastResponse = &stripe.APIResponse{Header: h}
		return e
	}
	tests := map[string]struct {
		err        error
		kind       provider.Kind
		code       string
		retryAfter time.Duration
		timeout    bool
		message    string
	}{
		"401": {
			err:  &stripe.Error{HTTPStatusCode: 401, Type: stripe.ErrorTypeInvalidRequest, Msg: "Invalid API Key provided: sk_test_****abcd"},
			kind: provider.KindUnauthorized, message: "stripe: op: API key rejected (HTTP 401)",
		},
		"402 card error": {
			err:  &stripe.Error{HTTPStatusCode: 402, Type: stripe.ErrorTypeCard, Code: stripe.ErrorCodeCardDeclined, DeclineCode: "generic_decline", Msg: "Your card was declined."},
			kind: provider.KindPermanent, code: "generic_decline", message: "stripe: op: Your card was declined.",
		},
		"card error on 400": {
			err:  &stripe.Error{HTTPStatusCode: 400, Type: stripe.ErrorTypeCard, Code: stripe.ErrorCodeIncorrectCVC, Msg: "Your card's security code is incorrect."},
			kind: provider.KindPermanent, code: "incorrect_cvc", message: "stripe: op: Your card's security code is incorrect.",
		},
		"404": {
			err:  &stripe.Error{HTTPStatusCode: 404, Type: stripe.ErrorTypeInvalidRequest, Code: stripe.ErrorCodeResourceMissing, Msg: "No such payment_intent: 'pi_x'"},
			kind: provider.KindInvalid, code: "resource_missing", message: "stripe: op: No such payment_intent: 'pi_x'",
		},
		"400 idempotency": {
			err:  &stripe.Error{HTTPStatusCode: 400, Type: stripe.ErrorTypeIdempotency, Msg: "Keys for idempotent requests can only be used with the same parameters"},
			kind: provider.KindInvalid, message: "stripe: op: Keys for idempotent requests can only be used with the same parameters",
		},
		"409": {
			err:  &stripe.Error{HTTPStatusCode: 409, Type: stripe.ErrorTypeIdempotency, Code: "idempotency_key_in_use", Msg: "in use"},
			kind: provider.KindRetryable, code: "idempotency_key_in_use", message: "stripe: op: in use",
		},
		"429": {
			err:  &stripe.Error{HTTPStatusCode: 429, Type: stripe.ErrorTypeInvalidRequest, Code: stripe.ErrorCodeRateLimit, Msg: "slow down"},
			kind: provider.KindRateLimited, code: "rate_limit", message: "stripe: op: slow down",
		},
		"429 with Retry-After": {
			err:  withHeader(&stripe.Error{HTTPStatusCode: 429, Msg: "slow down"}, http.Header{"Retry-After": {"3"}}),
			kind: provider.KindRateLimited, retryAfter: 3 * time.Second, message: "stripe: op: slow down",
		},
		"429 with HTTP-date Retry-After": {
			err:  withHeader(&stripe.Error{HTTPStatusCode: 429, Msg: "slow down"}, http.Header{"Retry-After": {"Wed, 21 Oct 2015 07:28:00 GMT"}}),
			kind: provider.KindRateLimited, message: "stripe: op: slow down",
		},
		"429 lock timeout": {
			err:  &stripe.Error{HTTPStatusCode: 429, Code: stripe.ErrorCodeLockTimeout, Msg: "locked"},
			kind: provider.KindRetryable, code: "lock_timeout", message: "stripe: op: locked",
		},
		"500": {
			err:  &stripe.Error{HTTPStatusCode: 500, Type: stripe.ErrorTypeAPI, Msg: "boom"},
			kind: provider.KindRetryable, message: "stripe: op: boom",
		},
		"api error without status": {
			err:  &stripe.Error{Type: stripe.ErrorTypeAPI, Msg: "boom"},
			kind: provider.KindRetryable, message: "stripe: op: boom",
		},
		"key in a message": {
			err:  &stripe.Error{HTTPStatusCode: 400, Type: stripe.ErrorTypeInvalidRequest, Msg: "bad key rk_live_abc_DEF123 and " + sentinelKey},
			kind: provider.KindInvalid, message: "stripe: op: bad key rk_live_[redacted] and [redacted]",
		},
		"deadline": {
			err:  &url.Error{Op: "Get", URL: "http://x/v1/payment_intents/pi_1", Err: context.DeadlineExceeded},
			kind: provider.KindRetryable, timeout: true, message: `stripe: op: Get "http://x/v1/payment_intents/pi_1": context deadline exceeded`,
		},
		"network timeout": {
			err:  &url.Error{Op: "Get", URL: "http://x", Err: timeoutError{}},
			kind: provider.KindRetryable, timeout: true, message: `stripe: op: Get "http://x": i/o timeout`,
		},
		"cancelled": {
			err:  &url.Error{Op: "Get", URL: "http://x", Err: context.Canceled},
			kind: provider.KindRetryable, message: `stripe: op: Get "http://x": context canceled`,
		},
		"transport": {
			err:  errors.New("connection reset by peer"),
			kind: provider.KindRetryable, message: "stripe: op: connection reset by peer",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := classify("op", tt.err, sentinelKey)
			wantKind(t, err, tt.kind)
			if got := provider.CodeOf(err); got != tt.code {
				t.Errorf("CodeOf = %q, want %q", got, tt.code)
			}
			if got := provider.RetryAfter(err); got != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", got, tt.retryAfter)
			}
			if got := provider.IsTimeout(err); got != tt.timeout {
				t.Errorf("IsTimeout = %v, want %v", got, tt.timeout)
			}
			if got := err.Error(); got != tt.message {
				t.Errorf("message = %q, want %q", got, tt.message)
			}
			if tt.err != nil && errors.Is(tt.err, context.Canceled) && !errors.Is(err, context.Canceled) {
				t.Error("classify dropped the cause")
			}
		})
	}
	if err := classify("op", nil, sentinelKey); err != nil {
		t.Errorf("classify(nil) = %v, want nil", err)
	}
}

func TestRedact(t *testing.T) {
	tests := map[string]struct {
		in, key, want string
	}{
		"exact key":         {in: "got Bearer my-odd-key-123", key: "my-odd-key-123", want: "got Bearer [redacted]"},
		"secret key shape":  {in: "key sk_live_51Habc is bad", key: "", want: "key sk_live_[redacted] is bad"},
		"restricted key":    {in: "rk_test_abc", key: "", want: "rk_test_[redacted]"},
		"publishable key":   {in: "pk_test_abc.", key: "", want: "pk_test_[redacted]."},
		"short key kept":    {in: "a short message", key: "a", want: "a short message"},
		"nothing to redact": {in: "No such payment_intent: 'pi_123'", key: testKey, want: "No such payment_intent: 'pi_123'"},
		"ids are not keys":  {in: "cs_test_a1b2 pi_123_secret_x", key: "", want: "cs_test_a1b2 pi_123_secret_x"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := redact(tt.in, tt.key); got != tt.want {
				t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestBaseURL(t *testing.T) {
	tests := map[string]struct {
		raw, want string
		invalid   bool
	}{
		"default":        {raw: "", want: defaultBaseURL},
		"blank":          {raw: "  ", want: defaultBaseURL},
		"stripe-mock":    {raw: "http://127.0.0.1:12111", want: "http://127.0.0.1:12111"},
		"trailing slash": {raw: "http://127.0.0.1:12111/", want: "http://127.0.0.1:12111"},
		"trailing v1":    {raw: "https://api.stripe.com/v1/", want: "https://api.stripe.com"},
		"path prefix":    {raw: "https://proxy.example/stripe", want: "https://proxy.example/stripe"},
		"no scheme":      {raw: "api.stripe.com", invalid: true},
		"other scheme":   {raw: "ftp://api.stripe.com", invalid: true},
		"query":          {raw: "https://api.stripe.com?x=1", invalid: true},
		"unparseable":    {raw: "http://[::1", invalid: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := baseURL(tt.raw)
			if tt.invalid {
				if err == nil {
					t.Fatalf("baseURL(%q) = %q, want an error", tt.raw, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("baseURL(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
			}
		})
	}
}

func TestBackendsAreSharedPerBaseURL(t *testing.T) {
	a := backendsFor("http://127.0.0.1:1")
	if b := backendsFor("http://127.0.0.1:1"); a != b {
		t.Error("same base URL built a second set of backends")
	}
	if c := backendsFor("http://127.0.0.1:2"); a == c {
		t.Error("different base URLs share backends")
	}

	c1, err := newClient(testTenant("http://127.0.0.1:3/v1/"))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := newClient(provider.NewTenant("other", map[string]string{provider.BaseURLField: "http://127.0.0.1:3"}, map[string]string{fieldSecretKey: "sk_test_other"}))
	if err != nil {
		t.Fatal(err)
	}
	if c1.intents.B != c2.intents.B {
		t.Error("equivalent base URLs do not share a backend")
	}
	if c1.intents.Key == c2.intents.Key {
		t.Error("two tenants' clients carry the same key")
	}
}
