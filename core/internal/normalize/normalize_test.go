package normalize_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/normalize"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/testkit"
	"github.com/pipecore/pipecore/sdk/provider"
)

// parser answers ParseWebhook from a function.
type parser func(provider.WebhookRequest) ([]provider.Event, error)

func (p parser) ParseWebhook(_ context.Context, r provider.WebhookRequest) ([]provider.Event, error) {
	return p(r)
}

type plugins struct{ p provider.WebhookParser }

func (s plugins) WebhookParser(string) (provider.WebhookParser, error) { return s.p, nil }

type bus struct {
	mu  sync.Mutex
	ids []string
}

func (b *bus) Publish(_, _, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ids = append(b.ids, id)
	return nil
}

type env struct {
	st  *store.Bolt
	n   *normalize.Normalizer
	bus *bus
	now time.Time
}

func setup(t *testing.T, p parser) *env {
	t.Helper()
	st := testkit.Store(t)
	reg, err := tenant.New(map[string]config.Tenant{"acme": {APIKeys: []string{"pc_live_acme_0123456789abcdefghijklmnopqrstuv"},
		Providers: map[string]config.Provider{"fake": {Credentials: map[string]string{"webhook_secret": "s"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, bus: &bus{}, now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	e.n = normalize.New(normalize.Config{Store: st, Plugins: plugins{p}, Tenants: reg, Bus: e.bus, OutboxTopic: "outbox",
		MaxAttempts: 3, Now: func() time.Time { return e.now }})
	ctx := context.Background()
	if err := st.PutEndpoint(ctx, store.Endpoint{ID: "ep", TenantID: "acme", URL: "https://x.example", Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, Enabled: true, Source: "api"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreatePayment(ctx, store.Payment{ID: "pay_1", TenantID: "acme", Provider: "fake", ProviderPaymentID: "pi_1", Status: "requires_action",
		Amount: 12990, Currency: "CLP", Reference: "order-1", CorrelationID: "req_create", Customer: &store.Customer{Phone: "+56988888888"}}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) accept(t *testing.T) store.InboxRecord {
	t.Helper()
	rec, _, err := e.st.AcceptWebhook(context.Background(), store.InboxRecord{TenantID: "acme", Provider: "fake", DedupKey: "evt_1",
		Method: "POST", RequestURI: "/webhooks/fake/acme?x=1", Body: []byte(`{}`), ReceivedAt: e.now, CorrelationID: "req_hook"})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func confirmed(tenantID string) parser {
	return func(r provider.WebhookRequest) ([]provider.Event, error) {
		data, _ := json.Marshal(map[string]any{"provider_payment_id": "pi_1", "status": "succeeded", "tenant_id": tenantID, "method": "card"})
		return []provider.Event{{ID: "evt_1", Type: "payment.confirmed", Subject: "pi_1", OccurredAt: time.Unix(1700000000, 0), Data: data}}, nil
	}
}

func TestEventsCompletedAndPaymentUpdated(t *testing.T) {
	e := setup(t, confirmed("acme"))
	rec := e.accept(t)
	if err := e.n.Process(context.Background(), "acme", rec.ID); err != nil {
		t.Fatal(err)
	}
	evs, _, _ := e.st.ListEvents(context.Background(), "acme", store.EventQuery{})
	if len(evs) != 1 || evs[0].PaymentID != "pay_1" || evs[0].CorrelationID != "req_create" || evs[0].InboxID != rec.ID {
		t.Fatalf("events: %+v", evs)
	}
	var env struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(evs[0].Body, &env); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"payment_id": "pay_1", "tenant_id": "acme", "provider": "fake", "reference": "order-1", "correlation_id": "req_create"} {
		if env.Data[k] != want {
			t.Errorf("data.%s = %v, want %v (%s)", k, env.Data[k], want, evs[0].Body)
		}
	}
	if c, _ := env.Data["customer"].(map[string]any); c["phone"] != "+56988888888" {
		t.Errorf("customer not carried: %v", env.Data["customer"])
	}
	p, _ := e.st.GetPayment(context.Background(), "acme", "pay_1")
	if p.Status != "succeeded" || p.Method != "card" {
		t.Errorf("payment after payment.confirmed: %+v", p)
	}
	if len(e.bus.ids) != 1 {
		t.Errorf("deliveries announced: %v", e.bus.ids)
	}
	// Processing the same record again changes nothing.
	if err := e.n.Process(context.Background(), "acme", rec.ID); err != nil {
		t.Fatal(err)
	}
	if evs, _, _ := e.st.ListEvents(context.Background(), "acme", store.EventQuery{}); len(evs) != 1 {
		t.Fatalf("reprocessing duplicated events: %d", len(evs))
	}
}

func TestQuarantineAndRetry(t *testing.T) {
	tests := map[string]struct {
		p          parser
		quarantine string // reason fragment; "" means retried
	}{
		"permanent error": {p: func(provider.WebhookRequest) ([]provider.Event, error) {
			return nil, provider.Permanent(errors.New("bad json"))
		}, quarantine: "bad json"},
		"unsupported": {p: func(provider.WebhookRequest) ([]provider.Event, error) { return nil, provider.ErrUnsupported }, quarantine: "not supported"},
		"bad event type": {p: func(provider.WebhookRequest) ([]provider.Event, error) {
			return []provider.Event{{Type: "Payment Confirmed"}}, nil
		}, quarantine: "type"},
		"data not an object": {p: func(provider.WebhookRequest) ([]provider.Event, error) {
			return []provider.Event{{Type: "payment.confirmed", Data: []byte(`[1]`)}}, nil
		}, quarantine: "JSON object"},
		"another tenant's id": {p: confirmed("evil"), quarantine: "another tenant"},
		"retryable error": {p: func(provider.WebhookRequest) ([]provider.Event, error) {
			return nil, provider.Retryable(errors.New("provider 503"))
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := setup(t, tc.p)
			rec := e.accept(t)
			if err := e.n.Process(context.Background(), "acme", rec.ID); err != nil {
				t.Fatal(err)
			}
			got, _ := e.st.GetInbox(context.Background(), "acme", rec.ID)
			if tc.quarantine != "" {
				if got.State != store.InboxQuarantined || !strings.Contains(got.LastError, tc.quarantine) {
					t.Fatalf("record: state %s, reason %q; want quarantined for %q", got.State, got.LastError, tc.quarantine)
				}
				return
			}
			if got.State != store.InboxPending || got.Attempts != 1 || !got.NextAttemptAt.Equal(e.now.Add(time.Second)) {
				t.Fatalf("after a retryable failure: %+v", got)
			}
			// MaxAttempts (3) retryable failures end in quarantine.
			for i := 0; i < 2; i++ {
				e.now = e.now.Add(time.Hour)
				if err := e.n.Process(context.Background(), "acme", rec.ID); err != nil {
					t.Fatal(err)
				}
			}
			got, _ = e.st.GetInbox(context.Background(), "acme", rec.ID)
			if got.State != store.InboxQuarantined || !strings.Contains(got.LastError, "gave up after 3 attempts") {
				t.Fatalf("after 3 failures: %+v", got)
			}
		})
	}
}
