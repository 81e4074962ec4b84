package dispatch_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/dispatch"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/testkit"
)

// clock is a manual clock: the whole 3-day default schedule runs in
// milliseconds by moving it forward.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

type fixture struct {
	st   store.Store
	clk  *clock
	disp *dispatch.Dispatcher
}

func setup(t *testing.T, url string, ordered bool, schedule dispatch.Schedule) *fixture {
	t.Helper()
	return setupWith(t, url, ordered, schedule, nil)
}

// setupWith is setup with edit, when not nil, applied to the dispatcher's
// config.
func setupWith(t *testing.T, url string, ordered bool, schedule dispatch.Schedule, edit func(*dispatch.DispatcherConfig)) *fixture {
	t.Helper()
	st := testkit.Store(t)
	clk := &clock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	if err := st.PutEndpoint(ctx, store.Endpoint{ID: "ep", TenantID: "acme", URL: url, Secrets: []string{secret},
		Enabled: true, Ordered: ordered, Source: "api", CreatedAt: clk.Now(), UpdatedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	sender := dispatch.NewSender(dispatch.SenderConfig{Timeout: 2 * time.Second, Now: clk.Now})
	t.Cleanup(sender.Close)
	cfg := dispatch.DispatcherConfig{
		Store: st, Sender: sender, Schedule: schedule, Now: clk.Now, Rand: func() float64 { return 0.5 },
		ScanInterval: 5 * time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	disp, err := dispatch.NewDispatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { disp.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &fixture{st: st, clk: clk, disp: disp}
}

func (f *fixture) emit(t *testing.T, subject string, n int) []store.Event {
	t.Helper()
	var evs []store.Event
	for i := 0; i < n; i++ {
		body, _ := json.Marshal(map[string]any{"type": "payment.confirmed", "timestamp": f.clk.Now(), "data": map[string]any{"seq": i}})
		evs = append(evs, store.Event{TenantID: "acme", Type: "payment.confirmed", Provider: "stripe", Subject: subject,
			OccurredAt: f.clk.Now(), CreatedAt: f.clk.Now(), Body: body})
	}
	if _, err := f.st.RecordEvents(context.Background(), store.EventBatch{TenantID: "acme", Events: evs, Now: f.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	listed, _, err := f.st.ListEvents(context.Background(), "acme", store.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	f.disp.Wake()
	return listed
}

func (f *fixture) delivery(t *testing.T, eventID string) store.Delivery {
	t.Helper()
	ds, err := f.st.DeliveriesForEvent(context.Background(), "acme", eventID)
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries of %s: %v %v", eventID, ds, err)
	}
	return ds[0]
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestWholeDefaultScheduleWithInjectedClock fails every attempt and moves
// the clock to each next attempt: the default schedule's 10 attempts over
// about three days run in milliseconds, at the scheduled offsets, and the
// delivery ends in the dead letter state.
func TestWholeDefaultScheduleWithInjectedClock(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"))
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	f := setup(t, srv.URL, false, dispatch.DefaultSchedule)
	start := f.clk.Now()
	ev := f.emit(t, "pi_1", 1)[0]

	var offsets []time.Duration
	for attempt := 1; attempt <= len(dispatch.DefaultSchedule); attempt++ {
		eventually(t, "attempt "+string(rune('0'+attempt)), func() bool { return int(calls.Load()) >= attempt && f.delivery(t, ev.ID).Attempts >= attempt })
		d := f.delivery(t, ev.ID)
		offsets = append(offsets, f.clk.Now().Sub(start))
		if attempt < len(dispatch.DefaultSchedule) {
			if d.State != store.DeliveryPending {
				t.Fatalf("after attempt %d: state %s", attempt, d.State)
			}
			f.clk.Set(d.NextAttemptAt) // jump to the next slot
			f.disp.Wake()
		}
	}
	eventually(t, "the dead letter", func() bool { return f.delivery(t, ev.ID).State == store.DeliveryDead })
	// With Rand fixed at 0.5 there is no jitter: attempt n happens at the
	// sum of the first n slots.
	var want time.Duration
	for i, slot := range dispatch.DefaultSchedule {
		want += slot
		if offsets[i] != want {
			t.Errorf("attempt %d at +%s, want +%s", i+1, offsets[i], want)
		}
	}
	if total := offsets[len(offsets)-1]; total < 75*time.Hour || total > 76*time.Hour {
		t.Errorf("last attempt at +%s, want about 75.5h", total)
	}
	atts, _ := f.st.ListAttempts(context.Background(), "acme", f.delivery(t, ev.ID).ID)
	if len(atts) != 10 || atts[9].StatusCode != 500 {
		t.Fatalf("attempt log: %+v", atts)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if id != ev.ID {
			t.Fatalf("webhook-id %q changed across retries (want %q)", id, ev.ID)
		}
	}
}

// TestOrderedEndpointDeliversInOrder: events of one subject reach an
// ordered endpoint one at a time, in the order they were recorded, even
// when the first needs retries.
func TestOrderedEndpointDeliversInOrder(t *testing.T) {
	var mu sync.Mutex
	var got []float64
	var failFirst atomic.Bool
	failFirst.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			Data struct {
				Seq float64 `json:"seq"`
			} `json:"data"`
		}
		_ = json.NewDecoder(r.Body).Decode(&env)
		if env.Data.Seq == 0 && failFirst.Swap(false) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		got = append(got, env.Data.Seq)
		mu.Unlock()
	}))
	defer srv.Close()
	f := setup(t, srv.URL, true, dispatch.Schedule{0, 10 * time.Millisecond, 10 * time.Millisecond})
	f.emit(t, "pi_ordered", 5)
	go func() { // keep real time and the clock together for the 10ms retry
		for i := 0; i < 200; i++ {
			time.Sleep(5 * time.Millisecond)
			f.clk.Set(f.clk.Now().Add(5 * time.Millisecond))
			f.disp.Wake()
		}
	}()
	eventually(t, "five ordered deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 5 })
	mu.Lock()
	defer mu.Unlock()
	for i, seq := range got {
		if int(seq) != i {
			t.Fatalf("delivery order %v, want 0..4", got)
		}
	}
}

// TestSlowEndpointDoesNotBlockOthers: an endpoint that hangs holds at most
// its per-endpoint slots; another endpoint's deliveries go through.
func TestSlowEndpointDoesNotBlockOthers(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer slow.Close()
	defer close(release)
	var fastCalls atomic.Int32
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fastCalls.Add(1) }))
	defer fast.Close()
	f := setup(t, slow.URL, false, dispatch.DefaultSchedule)
	if err := f.st.PutEndpoint(context.Background(), store.Endpoint{ID: "fast", TenantID: "acme", URL: fast.URL, Secrets: []string{secret},
		Enabled: true, Source: "api", CreatedAt: f.clk.Now(), UpdatedAt: f.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	evs := f.emit(t, "", 30) // 30 events × 2 endpoints; the slow one takes 10 slots and hangs
	deadline := time.Now().Add(10 * time.Second)
	for fastCalls.Load() != 30 {
		if time.Now().After(deadline) {
			ds, _ := f.st.DeliveriesForEvent(context.Background(), "acme", evs[0].ID)
			t.Fatalf("fast endpoint got %d of 30 deliveries; first event's deliveries: %+v", fastCalls.Load(), ds)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// failingFixture is an endpoint that answers 500 until ok is set, behind a
// dispatcher that disables after an hour of failures and retries every
// 20 minutes.
func failingFixture(t *testing.T, ok *atomic.Bool) *fixture {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok.Load() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	every := make(dispatch.Schedule, 9)
	for i := range every {
		every[i] = 20 * time.Minute
	}
	return setupWith(t, srv.URL, false, every, func(c *dispatch.DispatcherConfig) { c.DisableAfter = time.Hour })
}

func (f *fixture) endpoint(t *testing.T) store.Endpoint {
	t.Helper()
	ep, err := f.st.GetEndpoint(context.Background(), "acme", "ep")
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// advance moves the clock to the delivery's next attempt and waits for it.
func (f *fixture) advance(t *testing.T, eventID string) {
	t.Helper()
	d := f.delivery(t, eventID)
	f.clk.Set(d.NextAttemptAt)
	f.disp.Wake()
	eventually(t, "the next attempt", func() bool { return f.delivery(t, eventID).Attempts > d.Attempts })
}

// TestEndpointFailingTooLongIsDisabled: an endpoint whose every attempt
// fails from its first failure until DisableAfter later is disabled with a
// reason; its delivery is kept pending, not dead-lettered, and nothing is
// sent to it while it is disabled.
func TestEndpointFailingTooLongIsDisabled(t *testing.T) {
	var ok atomic.Bool
	f := failingFixture(t, &ok)
	start := f.clk.Now()
	ev := f.emit(t, "pi_1", 1)[0]
	eventually(t, "the first attempt", func() bool { return f.delivery(t, ev.ID).Attempts == 1 })
	eventually(t, "failing_since", func() bool { return !f.endpoint(t).FailingSince.IsZero() })
	if ep := f.endpoint(t); !ep.FailingSince.Equal(start) || !ep.Enabled {
		t.Fatalf("after the first failure: %+v", ep)
	}
	for f.clk.Now().Sub(start) < time.Hour {
		if !f.endpoint(t).Enabled {
			t.Fatalf("disabled %s into the failures, before DisableAfter", f.clk.Now().Sub(start))
		}
		f.advance(t, ev.ID)
	}
	eventually(t, "the endpoint disabled", func() bool { return !f.endpoint(t).Enabled })
	ep := f.endpoint(t)
	if !strings.Contains(ep.DisabledReason, "every attempt failed from "+start.Format(time.RFC3339)) {
		t.Fatalf("reason %q", ep.DisabledReason)
	}
	d := f.delivery(t, ev.ID)
	if d.State != store.DeliveryPending {
		t.Fatalf("delivery of a disabled endpoint: %s, want pending", d.State)
	}
	attempts := d.Attempts
	f.clk.Set(d.NextAttemptAt.Add(time.Minute))
	f.disp.Wake()
	time.Sleep(50 * time.Millisecond)
	if got := f.delivery(t, ev.ID); got.Attempts != attempts || got.State != store.DeliveryPending {
		t.Fatalf("a disabled endpoint got an attempt: %+v", got)
	}
}

// TestEndpointSuccessEndsFailingStreak: a success clears failing_since, so
// failures before it never count toward DisableAfter.
func TestEndpointSuccessEndsFailingStreak(t *testing.T) {
	var ok atomic.Bool
	f := failingFixture(t, &ok)
	first := f.emit(t, "pi_1", 1)[0]
	eventually(t, "failing_since", func() bool { return !f.endpoint(t).FailingSince.IsZero() })
	f.advance(t, first.ID) // +20m, fails
	ok.Store(true)
	f.advance(t, first.ID) // +40m, delivered
	eventually(t, "failing_since cleared", func() bool { return f.endpoint(t).FailingSince.IsZero() })
	ok.Store(false)
	f.clk.Set(f.clk.Now().Add(30 * time.Minute)) // +70m: past DisableAfter from the first failure
	var second store.Event
	for _, ev := range f.emit(t, "pi_2", 1) {
		if ev.Subject == "pi_2" {
			second = ev
		}
	}
	eventually(t, "the second event's first attempt", func() bool { return f.delivery(t, second.ID).Attempts == 1 })
	eventually(t, "a new failing streak", func() bool { return f.endpoint(t).FailingSince.Equal(f.clk.Now()) })
	if ep := f.endpoint(t); !ep.Enabled {
		t.Fatalf("disabled by failures before a success: %+v", ep)
	}
}
