package dispatch_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/dispatch"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/testkit"
)

// slowRecords holds every RecordAttempt until released.
type slowRecords struct {
	store.Store
	release chan struct{}
	waiting atomic.Int32
}

func (s *slowRecords) RecordAttempt(ctx context.Context, d store.Delivery, a store.Attempt) error {
	s.waiting.Add(1)
	<-s.release
	return s.Store.RecordAttempt(ctx, d, a)
}

// busyPacer says the ingress is busy and counts the slices.
type busyPacer struct{ slices atomic.Int32 }

func (*busyPacer) Busy() bool { return true }
func (p *busyPacer) Pace(context.Context, time.Duration) {
	p.slices.Add(1)
	time.Sleep(time.Millisecond)
}

func openStore(t *testing.T, url string) *store.Bolt {
	t.Helper()
	st := testkit.Store(t)
	if err := st.PutEndpoint(context.Background(), store.Endpoint{ID: "ep", TenantID: "acme", URL: url, Secrets: []string{secret},
		Enabled: true, Source: "api"}); err != nil {
		t.Fatal(err)
	}
	return st
}

func emitN(t *testing.T, st store.Store, n int) {
	t.Helper()
	evs := make([]store.Event, n)
	for i := range evs {
		evs[i] = store.Event{Type: "payment.confirmed", Provider: "stripe", Body: []byte(`{"type":"payment.confirmed","data":{}}`)}
	}
	if _, err := st.RecordEvents(context.Background(), store.EventBatch{TenantID: "acme", Events: evs}); err != nil {
		t.Fatal(err)
	}
}

func runDispatcher(t *testing.T, cfg dispatch.DispatcherConfig) *dispatch.Dispatcher {
	t.Helper()
	sender := dispatch.NewSender(dispatch.SenderConfig{Timeout: 2 * time.Second})
	t.Cleanup(sender.Close)
	cfg.Sender = sender
	d, err := dispatch.NewDispatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return d
}

// TestSlotFreeOnceAnswered: an endpoint's slot is free as soon as the
// endpoint has answered; recording the attempt does not hold it. With one
// slot and every record held, all three deliveries still reach the
// endpoint, one at a time.
func TestSlotFreeOnceAnswered(t *testing.T) {
	var calls, concurrent, most atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		n := concurrent.Add(1)
		defer concurrent.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(2 * time.Millisecond)
	}))
	defer srv.Close()
	st := &slowRecords{Store: openStore(t, srv.URL), release: make(chan struct{})}
	emitN(t, st, 3)
	runDispatcher(t, dispatch.DispatcherConfig{Store: st, MaxInFlightPerEndpoint: 1, ScanInterval: 5 * time.Millisecond})
	defer close(st.release)
	eventually(t, "three sends with every record held", func() bool { return calls.Load() == 3 && st.waiting.Load() == 3 })
	if m := most.Load(); m != 1 {
		t.Fatalf("%d requests to the endpoint at once, want 1 (MaxInFlightPerEndpoint)", m)
	}
}

// TestPacedSlices: while the ingress is busy the dispatcher starts at most
// PacedBatch deliveries per slice and rests between slices; everything is
// still delivered.
func TestPacedSlices(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	st := openStore(t, srv.URL)
	emitN(t, st, 40)
	p := &busyPacer{}
	runDispatcher(t, dispatch.DispatcherConfig{Store: st, Pacer: p, PacedBatch: 8, ScanInterval: 5 * time.Millisecond})
	eventually(t, "40 deliveries, every attempt recorded", func() bool {
		due, err := st.DueDeliveries(context.Background(), time.Now().Add(time.Hour), 100)
		return calls.Load() == 40 && err == nil && len(due) == 0
	})
	eventually(t, "the last slice's rest", func() bool { return p.slices.Load() >= 40/8 })
	if c := calls.Load(); c != 40 {
		t.Fatalf("%d requests for 40 deliveries", c)
	}
}
