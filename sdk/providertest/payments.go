package providertest

import (
	"context"
	"errors"
	"testing"

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
	// Subscription, when set, exercises recurring billing with this plan:
	// create (a valid status; pending ones need a RedirectURL), the same
	// key again (same subscription), get and cancel. When nil the suite
	// only checks that a provider without Subscriber reports
	// provider.ErrUnsupported.
	Subscription *payments.Plan
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
	conn := Connect(t, p)
	runTests(t, paymentChecks(newSuite(context.Background(), conn, cfg.Tenant, cfg.BadCredentials), cfg, p))
}

// paymentChecks builds the payments contract. impl is the in-process
// provider, used to tell whether an optional interface is implemented;
// nil (a plugin binary) means unknown.
func paymentChecks(s *suite, cfg PaymentsConfig, impl payments.Provider) []check {
	if cfg.Amount == (provider.Money{}) {
		cfg.Amount = provider.Money{Amount: 1000, Currency: "USD"}
	}
	pay := s.conn.Payments
	if pay == nil {
		return []check{s.infoCheck(provider.CapabilityPayments, false)}
	}
	create := func(t reporter, key string, mut func(*payments.CreateRequest)) (payments.Payment, error) {
		req := payments.CreateRequest{
			Tenant: s.tenant, IdempotencyKey: key, PaymentID: "pay_" + key,
			Amount: cfg.Amount, Reference: "order-" + key, Description: "conformance " + key,
			Customer: payments.Customer{Email: "buyer@example.com", Name: "Buyer"},
		}
		if mut != nil {
			mut(&req)
		}
		pmt, err := pay.CreatePayment(s.callCtx(t), req)
		s.rec.add(err)
		return pmt, err
	}

	var created payments.Payment
	return []check{
		s.infoCheck(provider.CapabilityPayments, true),
		{name: "create", run: func(t reporter) {
			pmt, err := create(t, key(t), nil)
			if err != nil {
				t.Fatalf("CreatePayment: %v (kind %s)", err, provider.KindOf(err))
			}
			if pmt.ID == "" {
				t.Fatalf("CreatePayment returned an empty provider id")
			}
			if !pmt.Status.Valid() {
				t.Fatalf("CreatePayment status %q is not in the enum", pmt.Status)
			}
			created = pmt
		}},
		{name: "idempotency", run: func(t reporter) {
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
		}},
		{name: "redirect", run: func(t reporter) {
			if cfg.ReturnURL == "" {
				t.Skipf("PaymentsConfig.ReturnURL not set")
			}
			pmt, err := create(t, key(t), func(r *payments.CreateRequest) { r.ReturnURL = cfg.ReturnURL })
			if err != nil {
				t.Fatalf("CreatePayment with ReturnURL: %v", err)
			}
			if pmt.RedirectURL == "" || !pmt.Status.Valid() {
				t.Fatalf("redirect payment = %+v, want a RedirectURL and a valid status", pmt)
			}
		}},
		{name: "get", run: func(t reporter) {
			if created.ID == "" {
				t.Skipf("create failed")
			}
			pmt, err := pay.GetPayment(s.callCtx(t), payments.GetRequest{Tenant: s.tenant, ID: created.ID})
			s.rec.add(err)
			if err != nil {
				t.Fatalf("GetPayment(%s): %v", created.ID, err)
			}
			if !pmt.Status.Valid() {
				t.Fatalf("GetPayment status %q is not in the enum", pmt.Status)
			}
		}},
		{name: "invalid_amount", run: func(t reporter) {
			_, err := create(t, key(t), func(r *payments.CreateRequest) { r.Amount.Amount = -5 })
			if provider.KindOf(err) != provider.KindInvalid {
				t.Fatalf("negative amount: err = %v (kind %s), want kind invalid", err, provider.KindOf(err))
			}
		}},
		{name: "bad_credentials", run: func(t reporter) {
			if s.bad == nil {
				t.Skipf("PaymentsConfig.BadCredentials not set")
			}
			_, err := create(t, key(t), func(r *payments.CreateRequest) { r.Tenant = *s.bad })
			if provider.KindOf(err) != provider.KindUnauthorized {
				t.Fatalf("bad credentials: err = %v (kind %s), want kind unauthorized", err, provider.KindOf(err))
			}
		}},
		{name: "refund", run: func(t reporter) {
			if !cfg.Refunds {
				t.Skipf("PaymentsConfig.Refunds not set")
			}
			if created.ID == "" {
				t.Skipf("create failed")
			}
			r, err := pay.Refund(s.callCtx(t), payments.RefundRequest{Tenant: s.tenant, IdempotencyKey: key(t), ID: created.ID})
			s.rec.add(err)
			if err != nil {
				t.Fatalf("Refund: %v (kind %s)", err, provider.KindOf(err))
			}
			if r.ID == "" {
				t.Fatalf("Refund returned an empty id")
			}
		}},
		{name: "optional_operations", run: func(t reporter) {
			if created.ID == "" {
				t.Skipf("create failed")
			}
			capturer := pay.(payments.Capturer) // the wire client always has the method
			canceler := pay.(payments.Canceler)
			_, err := capturer.Capture(s.callCtx(t), payments.CaptureRequest{Tenant: s.tenant, IdempotencyKey: key(t), ID: created.ID})
			s.rec.add(err)
			checkOptional(t, "Capture", implements[payments.Capturer](impl), cfg.Capture, err)
			_, err = canceler.Cancel(s.callCtx(t), payments.CancelRequest{Tenant: s.tenant, IdempotencyKey: key(t), ID: created.ID})
			s.rec.add(err)
			checkOptional(t, "Cancel", implements[payments.Canceler](impl), cfg.Cancel, err)
			if cfg.Subscription == nil {
				_, err = pay.(payments.Subscriber).GetSubscription(s.callCtx(t), payments.GetRequest{Tenant: s.tenant, ID: "sub_none"})
				s.rec.add(err)
				checkOptional(t, "GetSubscription", implements[payments.Subscriber](impl), false, err)
			}
		}},
		{name: "subscriptions", run: func(t reporter) {
			if cfg.Subscription == nil {
				t.Skipf("PaymentsConfig.Subscription not set")
			}
			sub := pay.(payments.Subscriber)
			k := key(t)
			req := payments.SubscriptionRequest{Tenant: s.tenant, IdempotencyKey: k, SubscriptionID: "sub_" + k, Plan: *cfg.Subscription,
				Customer: payments.Customer{Email: "buyer@example.com", Name: "Buyer"}, Reference: "plan-" + k, ReturnURL: "https://tenant.example/subscribed"}
			a, err := sub.CreateSubscription(s.callCtx(t), req)
			s.rec.add(err)
			if err != nil {
				t.Fatalf("CreateSubscription: %v (kind %s)", err, provider.KindOf(err))
			}
			if a.ID == "" || !a.Status.Valid() {
				t.Fatalf("CreateSubscription = %+v, want an id and a valid status", a)
			}
			if a.Status == payments.SubscriptionPending && a.RedirectURL == "" {
				t.Fatalf("pending subscription without a RedirectURL: %+v", a)
			}
			b, err := sub.CreateSubscription(s.callCtx(t), req)
			s.rec.add(err)
			if err != nil || b.ID != a.ID {
				t.Fatalf("same idempotency key: %+v, %v; want subscription %s", b, err, a.ID)
			}
			g, err := sub.GetSubscription(s.callCtx(t), payments.GetRequest{Tenant: s.tenant, ID: a.ID})
			s.rec.add(err)
			if err != nil || !g.Status.Valid() {
				t.Fatalf("GetSubscription(%s) = %+v, %v", a.ID, g, err)
			}
			c, err := sub.CancelSubscription(s.callCtx(t), payments.CancelRequest{Tenant: s.tenant, IdempotencyKey: key(t), ID: a.ID})
			s.rec.add(err)
			if err != nil || c.Status != payments.SubscriptionCancelled {
				t.Fatalf("CancelSubscription(%s) = %+v, %v; want status cancelled", a.ID, c, err)
			}
		}},
		s.deadlineCheck(cfg.Stall, "PaymentsConfig", func(ctx context.Context, t reporter) error {
			_, err := pay.CreatePayment(ctx, payments.CreateRequest{
				Tenant: s.tenant, IdempotencyKey: key(t), PaymentID: "pay_deadline", Amount: cfg.Amount, Reference: "deadline",
			})
			return err
		}),
		s.classifiedCheck(),
		s.noSecretsCheck(),
	}
}

// implements reports whether impl implements I: yes, no, or unknown when
// impl is nil.
func implements[I any](impl payments.Provider) optional {
	if impl == nil {
		return optionalUnknown
	}
	if _, ok := impl.(I); ok {
		return optionalYes
	}
	return optionalNo
}

type optional int

const (
	optionalUnknown optional = iota
	optionalYes
	optionalNo
)

func checkOptional(t reporter, op string, impl optional, exercise bool, err error) {
	t.Helper()
	switch {
	case impl == optionalNo:
		if !errors.Is(err, provider.ErrUnsupported) || provider.KindOf(err) != provider.KindUnsupported {
			t.Errorf("%s on a provider without it: err = %v, want provider.ErrUnsupported", op, err)
		}
	case errors.Is(err, provider.ErrUnsupported):
		if exercise {
			t.Errorf("%s is exercised but reported unsupported: %v", op, err)
		} else if provider.KindOf(err) != provider.KindUnsupported {
			t.Errorf("%s: unsupported error of kind %s, want kind unsupported", op, provider.KindOf(err))
		}
	case err != nil && !classified(err):
		t.Errorf("%s failed without a kind: %v", op, err)
	}
}
