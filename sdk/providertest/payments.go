package providertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// PaymentsConfig tells RunPayments how to exercise a payments provider.
// The zero value of every optional field skips (with t.Skip) the checks
// that need it, so a report shows what was not exercised.
type PaymentsConfig struct {
	// Tenant carries valid settings and credentials. Required.
	Tenant provider.Tenant
	// BadCredentials, when set, carries credentials the provider rejects:
	// CreatePayment must fail with KindUnauthorized.
	BadCredentials *provider.Tenant
	// Amount is what the suite charges. Zero means 1000 USD minor units.
	Amount provider.Money
	// ReturnURL, when set, is used for one create to exercise the redirect
	// flow: the payment must come back with a RedirectURL.
	ReturnURL string
	// Refunds exercises Refund on a created payment.
	Refunds bool
	// Capture and Cancel exercise the optional interfaces; when false the
	// suite checks that the operation reports provider.ErrUnsupported
	// only if the provider does not implement the interface.
	Capture bool
	Cancel  bool
	// Stall, when set, makes the provider's API stop answering until the
	// returned release func is called; the suite then checks that a call
	// honours its context deadline.
	Stall func(t testing.TB) (release func())
}

// RunPayments runs the payments contract against p over the real gRPC path:
// Info is valid and declares the capability; statuses are in the enum; a
// repeated idempotency key returns the same payment; bad input and bad
// credentials fail with the right kind; every error carries a kind and no
// error or log line contains a secret; deadlines are honoured.
func RunPayments(t *testing.T, p payments.Provider, cfg PaymentsConfig) {
	t.Helper()
	if cfg.Amount == (provider.Money{}) {
		cfg.Amount = provider.Money{Amount: 1000, Currency: "USD"}
	}
	conn := Connect(t, p)
	pay := conn.Payments
	rec := &errRecorder{}
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		t.Cleanup(cancel)
		return c
	}
	create := func(t *testing.T, key string, mut func(*payments.CreateRequest)) (payments.Payment, error) {
		req := payments.CreateRequest{
			Tenant: cfg.Tenant, IdempotencyKey: key, PaymentID: "pay_" + key,
			Amount: cfg.Amount, Reference: "order-" + key, Description: "conformance " + key,
			Customer: payments.Customer{Email: "buyer@example.com", Name: "Buyer"},
		}
		if mut != nil {
			mut(&req)
		}
		pmt, err := pay.CreatePayment(ctx(t), req)
		rec.add(err)
		return pmt, err
	}
	key := func(t *testing.T) string {
		return fmt.Sprintf("conf_%s_%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
	}

	t.Run("info", func(t *testing.T) {
		if err := conn.Info.Validate(); err != nil {
			t.Fatalf("Info invalid: %v", err)
		}
		if !conn.Info.Has(provider.CapabilityPayments) || pay == nil {
			t.Fatalf("Info.Capabilities = %v, want payments", conn.Info.Capabilities)
		}
	})

	var created payments.Payment
	t.Run("create", func(t *testing.T) {
		pmt, err := create(t, key(t), nil)
		if err != nil {
			t.Fatalf("CreatePayment: %v (kind %s)", err, provider.KindOf(err))
		}
		if pmt.ID == "" {
			t.Fatal("CreatePayment returned an empty provider id")
		}
		if !pmt.Status.Valid() {
			t.Fatalf("CreatePayment status %q is not in the enum", pmt.Status)
		}
		created = pmt
	})

	t.Run("idempotency", func(t *testing.T) {
		k := key(t)
		a, err := create(t, k, nil)
		if err != nil {
			t.Fatalf("first CreatePayment: %v", err)
		}
		b, err := create(t, k, nil)
		if err != nil {
			t.Fatalf("repeated CreatePayment: %v", err)
		}
		if a.ID != b.ID {
			t.Fatalf("same idempotency key gave two payments: %q and %q", a.ID, b.ID)
		}
	})

	t.Run("redirect", func(t *testing.T) {
		if cfg.ReturnURL == "" {
			t.Skip("PaymentsConfig.ReturnURL not set")
		}
		pmt, err := create(t, key(t), func(r *payments.CreateRequest) { r.ReturnURL = cfg.ReturnURL })
		if err != nil {
			t.Fatalf("CreatePayment with ReturnURL: %v", err)
		}
		if pmt.RedirectURL == "" || !pmt.Status.Valid() {
			t.Fatalf("redirect payment = %+v, want a RedirectURL and a valid status", pmt)
		}
	})

	t.Run("get", func(t *testing.T) {
		if created.ID == "" {
			t.Skip("create failed")
		}
		pmt, err := pay.GetPayment(ctx(t), payments.GetRequest{Tenant: cfg.Tenant, ID: created.ID})
		rec.add(err)
		if err != nil {
			t.Fatalf("GetPayment(%s): %v", created.ID, err)
		}
		if !pmt.Status.Valid() {
			t.Fatalf("GetPayment status %q is not in the enum", pmt.Status)
		}
	})

	t.Run("invalid_amount", func(t *testing.T) {
		_, err := create(t, key(t), func(r *payments.CreateRequest) { r.Amount.Amount = -5 })
		if provider.KindOf(err) != provider.KindInvalid {
			t.Fatalf("negative amount: err = %v (kind %s), want kind invalid", err, provider.KindOf(err))
		}
	})

	t.Run("bad_credentials", func(t *testing.T) {
		if cfg.BadCredentials == nil {
			t.Skip("PaymentsConfig.BadCredentials not set")
		}
		_, err := create(t, key(t), func(r *payments.CreateRequest) { r.Tenant = *cfg.BadCredentials })
		if provider.KindOf(err) != provider.KindUnauthorized {
			t.Fatalf("bad credentials: err = %v (kind %s), want kind unauthorized", err, provider.KindOf(err))
		}
	})

	t.Run("refund", func(t *testing.T) {
		if !cfg.Refunds {
			t.Skip("PaymentsConfig.Refunds not set")
		}
		if created.ID == "" {
			t.Skip("create failed")
		}
		r, err := pay.Refund(ctx(t), payments.RefundRequest{Tenant: cfg.Tenant, IdempotencyKey: key(t), ID: created.ID})
		rec.add(err)
		if err != nil {
			t.Fatalf("Refund: %v (kind %s)", err, provider.KindOf(err))
		}
		if r.ID == "" {
			t.Fatal("Refund returned an empty id")
		}
	})

	t.Run("optional_operations", func(t *testing.T) {
		_, isCapturer := p.(payments.Capturer)
		_, isCanceler := p.(payments.Canceler)
		capturer := pay.(payments.Capturer) // the wire client always has the method
		canceler := pay.(payments.Canceler)
		if created.ID == "" {
			t.Skip("create failed")
		}
		_, err := capturer.Capture(ctx(t), payments.CaptureRequest{Tenant: cfg.Tenant, IdempotencyKey: key(t), ID: created.ID})
		rec.add(err)
		checkOptional(t, "Capture", isCapturer, cfg.Capture, err)
		_, err = canceler.Cancel(ctx(t), payments.CancelRequest{Tenant: cfg.Tenant, IdempotencyKey: key(t), ID: created.ID})
		rec.add(err)
		checkOptional(t, "Cancel", isCanceler, cfg.Cancel, err)
	})

	t.Run("deadline", func(t *testing.T) {
		if cfg.Stall == nil {
			t.Skip("PaymentsConfig.Stall not set")
		}
		release := cfg.Stall(t)
		defer release()
		c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := pay.CreatePayment(c, payments.CreateRequest{
			Tenant: cfg.Tenant, IdempotencyKey: key(t), PaymentID: "pay_deadline", Amount: cfg.Amount, Reference: "deadline",
		})
		rec.add(err)
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("call with a 300ms deadline returned after %s", took)
		}
		if err == nil || provider.KindOf(err) != provider.KindRetryable {
			t.Fatalf("stalled call: err = %v (kind %s), want a retryable error", err, provider.KindOf(err))
		}
	})

	t.Run("errors_classified", func(t *testing.T) {
		for _, err := range rec.all() {
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Kind < provider.KindRetryable || pe.Kind > provider.KindUnsupported {
				t.Errorf("error without a kind crossed the wire: %v", err)
			}
		}
	})

	t.Run("no_secrets_leak", func(t *testing.T) {
		secrets := cfg.Tenant.RevealSecrets()
		if cfg.BadCredentials != nil {
			for k, v := range cfg.BadCredentials.RevealSecrets() {
				secrets["bad_"+k] = v
			}
		}
		logs := conn.Logs.String()
		for name, v := range secrets {
			if len(v) < 4 {
				continue
			}
			if strings.Contains(logs, v) {
				t.Errorf("secret %q appears in the provider's logs", name)
			}
			for _, err := range rec.all() {
				if strings.Contains(err.Error(), v) {
					t.Errorf("secret %q appears in an error: %v", name, strings.ReplaceAll(err.Error(), v, "[SECRET]"))
				}
			}
		}
	})
}

func checkOptional(t *testing.T, op string, implemented, exercise bool, err error) {
	t.Helper()
	switch {
	case !implemented:
		if !errors.Is(err, provider.ErrUnsupported) || provider.KindOf(err) != provider.KindUnsupported {
			t.Errorf("%s on a provider without it: err = %v, want provider.ErrUnsupported", op, err)
		}
	case exercise && err != nil && errors.Is(err, provider.ErrUnsupported):
		t.Errorf("%s is implemented but reported unsupported: %v", op, err)
	case err != nil && provider.KindOf(err) == 0:
		t.Errorf("%s failed without a kind: %v", op, err)
	}
}

type errRecorder struct {
	mu   sync.Mutex
	errs []error
}

func (r *errRecorder) add(err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *errRecorder) all() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}
