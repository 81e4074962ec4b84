package normalize_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/normalize"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/sdk/provider"
)

// pacer counts Pace calls and the work they report.
type pacer struct {
	calls  atomic.Int32
	worked atomic.Int64
}

func (p *pacer) Pace(_ context.Context, worked time.Duration) {
	p.calls.Add(1)
	p.worked.Add(int64(worked))
}

// TestRunNormalisesInBatches: Run takes every due record once, in
// batches, with several plugin calls in flight, calls the Pacer after each
// batch, and picks up a record announced later at once on Notify.
func TestRunNormalisesInBatches(t *testing.T) {
	e := setup(t, nil)
	var parses, inflight, most atomic.Int32
	p := parser(func(r provider.WebhookRequest) ([]provider.Event, error) {
		parses.Add(1)
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(time.Millisecond)
		var w struct{ N int }
		_ = json.Unmarshal(r.Body, &w)
		data, _ := json.Marshal(map[string]any{"status": "succeeded", "n": w.N})
		return []provider.Event{{ID: fmt.Sprintf("evt_%d", w.N), Type: "payment.confirmed", Subject: fmt.Sprintf("pi_%d", w.N), Data: data}}, nil
	})
	reg, err := tenant.New(map[string]config.Tenant{"acme": {APIKeys: []string{"pc_live_acme_0123456789abcdefghijklmnopqrstuv"},
		Providers: map[string]config.Provider{"fake": {Credentials: map[string]string{"webhook_secret": "s"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	pc := &pacer{}
	n := normalize.New(normalize.Config{Store: e.st, Plugins: plugins{p}, Tenants: reg, Bus: e.bus, OutboxTopic: "outbox",
		Workers: 8, Batch: 16, ScanInterval: time.Hour, Pacer: pc, Now: func() time.Time { return e.now }})
	ctx := context.Background()
	accept := func(i int) {
		t.Helper()
		if _, _, err := e.st.AcceptWebhook(ctx, store.InboxRecord{TenantID: "acme", Provider: "fake", DedupKey: fmt.Sprint("evt_", i),
			Method: "POST", RequestURI: "/webhooks/fake/acme", Body: fmt.Appendf(nil, `{"n":%d}`, i), ReceivedAt: e.now}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		accept(i)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { n.Run(runCtx) })
	defer func() { cancel(); wg.Wait() }()

	processed := func() int {
		recs, _, err := e.st.ListInbox(ctx, "acme", store.InboxProcessed, store.ListQuery{Limit: store.MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("100 records normalised", func() bool { return processed() == 100 })
	if got := parses.Load(); got != 100 {
		t.Fatalf("%d plugin calls for 100 records, want 100", got)
	}
	if m := most.Load(); m < 2 || m > 8 {
		t.Fatalf("at most %d plugin calls in flight, want 2..8 (Workers)", m)
	}
	if c := pc.calls.Load(); c < 100/16 {
		t.Fatalf("Pace called %d times for 100 records in batches of 16", c)
	}
	evs, _, _ := e.st.ListEvents(ctx, "acme", store.EventQuery{Limit: store.MaxListLimit})
	if len(evs) != 100 {
		t.Fatalf("%d events, want 100", len(evs))
	}

	// Idle now (ScanInterval is an hour): Notify brings a new record in.
	accept(100)
	notified := make(chan error, 1)
	go func() { notified <- n.Notify(ctx, "acme", "") }()
	waitFor("the announced record normalised", func() bool { return processed() == 101 })
	select {
	case err := <-notified:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Notify did not return after Run took the wake-up")
	}
}
