package subscription_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/subscription"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/testkit"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

type plugins struct{ p payments.Provider }

func (p plugins) Payments(string) (payments.Provider, error) { return p.p, nil }

func TestSubscriptionLifecycle(t *testing.T) {
	ctx := context.Background()
	st := testkit.Store(t)
	reg, err := tenant.New(map[string]config.Tenant{"acme": {APIKeys: []string{"pc_live_acme_0123456789abcdefghijklmnopqrstuv"},
		Defaults:  map[string]string{"payments": "fake"},
		Providers: map[string]config.Provider{"fake": {Credentials: map[string]string{"api_key": "k_live_1234"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := reg.Get("acme")
	if err := st.PutEndpoint(ctx, store.Endpoint{ID: "ep", TenantID: "acme", URL: "https://x.example", Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, Enabled: true, Source: "api"}); err != nil {
		t.Fatal(err)
	}
	fake := &providertest.FakePayments{}
	svc, err := subscription.New(subscription.Config{Store: st, Plugins: plugins{fake}, Audit: audit.NewRecorder(st, nil)})
	if err != nil {
		t.Fatal(err)
	}

	in := subscription.CreateInput{Plan: subscription.Plan{Amount: 9990, Currency: "clp", Interval: "month"},
		Customer: subscription.Customer{Email: "ana@example.com"}, Reference: "club-42", ReturnURL: "https://acme.example/ok"}
	bad := in
	bad.Plan.Interval = "fortnight"
	var verr *subscription.ValidationError
	if _, err := svc.Create(ctx, tn, "op0", bad); !errors.As(err, &verr) || verr.Field != "plan.interval" {
		t.Fatalf("bad interval: %v", err)
	}
	s, err := svc.Create(ctx, tn, "op1", in)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != "pending" || s.RedirectURL == "" || s.ProviderSubscriptionID == "" || s.Plan.Currency != "CLP" || s.Plan.IntervalCount != 1 {
		t.Fatalf("created = %+v", s)
	}

	link := func(typ string, data map[string]any) {
		t.Helper()
		linked, _, change, ok := svc.Link(ctx, "acme", "fake", provider.Event{Type: typ, Subject: s.ProviderSubscriptionID}, data)
		if !ok {
			t.Fatalf("Link(%s) found no subscription", typ)
		}
		var evs []store.Event
		for i, lk := range linked {
			body, _ := json.Marshal(map[string]any{"type": lk.Type, "data": lk.Data})
			evs = append(evs, store.Event{Type: lk.Type, Provider: "fake", Body: body})
			change.Events = append(change.Events, i)
		}
		if _, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "acme", Events: evs,
			Resources: []store.ResourceChange{change}}); err != nil {
			t.Fatal(err)
		}
	}
	link("subscription.authorized", nil)
	link("subscription.authorized", nil) // repeated: not news
	link("subscription.renewed", map[string]any{"provider_payment_id": "pi_1", "amount": map[string]any{"amount": 9990, "currency": "CLP"}})
	link("subscription.renewed", map[string]any{"provider_payment_id": "pi_2"})
	link("subscription.payment_failed", map[string]any{"reason": "card_declined"})
	got, err := svc.Get(ctx, tn, s.ID, false)
	if err != nil || got.Status != "past_due" || got.Renewals != 2 {
		t.Fatalf("after webhooks: %+v, %v", got, err)
	}
	c, err := svc.Cancel(ctx, tn, s.ID, "op2")
	if err != nil || c.Status != "cancelled" {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	link("subscription.cancelled", nil) // the provider's own notice: already announced

	evs, _, err := st.ListEvents(ctx, "acme", store.EventQuery{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i := len(evs) - 1; i >= 0; i-- {
		types = append(types, evs[i].Type)
	}
	want := "[subscription.authorized subscription.renewed subscription.renewed subscription.payment_failed subscription.cancelled]"
	if fmt.Sprint(types) != want {
		t.Fatalf("events = %v\nwant %s", types, want)
	}
	if _, err := svc.Get(ctx, tn, "sub_nope", false); !errors.Is(err, subscription.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}
