package payment_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/normalize"
	"github.com/pipecore/pipecore/core/internal/payment"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/testkit"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/providertest"
)

type plugins struct{ p payments.Provider }

func (p plugins) Payments(string) (payments.Provider, error) { return p.p, nil }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestReconcile: a payment left requiring action is read again after the
// configured age; its confirmation is announced once, and the webhook that
// says the same later adds nothing.
func TestReconcile(t *testing.T) {
	ctx := context.Background()
	st := testkit.Store(t)
	reg, err := tenant.New(map[string]config.Tenant{"acme": {APIKeys: []string{"pc_live_acme_0123456789abcdefghijklmnopqrstuv"},
		Defaults:  map[string]string{"payments": "fake"},
		Providers: map[string]config.Provider{"fake": {Credentials: map[string]string{"api_key": "k_live_1234"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := reg.Get("acme")
	fake := &providertest.FakePayments{}
	clk := &clock{now: time.Now().UTC()}
	svc, err := payment.New(payment.Config{Store: st, Plugins: plugins{fake}, Audit: audit.NewRecorder(st, nil), Now: clk.Now,
		Reconcile: payment.Reconcile{After: 10 * time.Minute, MaxAge: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Create(ctx, tn, "op1", payment.CreateInput{Amount: 12990, Currency: "CLP", Reference: "order-1"})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Payment
	types := func() string {
		evs, _, err := st.ListEvents(ctx, "acme", store.EventQuery{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i := len(evs) - 1; i >= 0; i-- {
			out = append(out, evs[i].Type)
		}
		return fmt.Sprint(out)
	}

	svc.ReconcileOnce(ctx, reg) // too young
	before := fake.Calls()
	clk.add(11 * time.Minute)
	svc.ReconcileOnce(ctx, reg) // read: still requires action
	if fake.Calls() != before+1 {
		t.Fatalf("provider read %d times, want 1", fake.Calls()-before)
	}
	fake.SetStatus(p.ProviderPaymentID, payments.StatusSucceeded)
	svc.ReconcileOnce(ctx, reg) // not due again yet (backoff)
	clk.add(21 * time.Minute)
	svc.ReconcileOnce(ctx, reg)
	got, _ := svc.Get(ctx, tn, p.ID, false)
	if got.Status != "succeeded" {
		t.Fatalf("status %q after reconciliation", got.Status)
	}
	// The webhook arrives late: the same change, not news.
	_, err = st.RecordEvents(ctx, store.EventBatch{TenantID: "acme", Events: []store.Event{{Type: "payment.confirmed", Provider: "fake", Body: []byte(`{}`)}},
		Payments: []store.PaymentChange{{PaymentID: p.ID, Events: []int{0}, Keep: normalize.KeepStatusEvent("payment.confirmed"),
			Apply: func(p *store.Payment) { p.Status = "succeeded" }}}})
	if err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour)
	svc.ReconcileOnce(ctx, reg) // done: no more reads
	if got := types(); got != "[payment.created payment.confirmed]" {
		t.Fatalf("events = %s", got)
	}
	calls := fake.Calls()
	clk.add(24 * time.Hour)
	svc.ReconcileOnce(ctx, reg)
	if fake.Calls() != calls {
		t.Fatal("a settled payment was read again")
	}
}
