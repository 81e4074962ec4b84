package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/pipecore/pipecore/core/internal/metrics"
	"github.com/pipecore/pipecore/core/internal/store"
)

// DispatcherConfig wires a Dispatcher. Zero values mean the documented
// defaults.
type DispatcherConfig struct {
	Store  store.Store
	Sender *Sender
	// Schedule is the delay before each attempt; zero means DefaultSchedule.
	Schedule Schedule
	// MaxInFlightPerEndpoint bounds concurrent attempts to one endpoint, so
	// a slow endpoint holds at most that many workers. Zero means 10.
	MaxInFlightPerEndpoint int
	// Workers bounds concurrent attempts overall. Zero means 256.
	Workers int
	// ScanInterval is how often due deliveries are looked for when nothing
	// wakes the dispatcher. Zero means 250ms.
	ScanInterval time.Duration
	// DisabledRecheck is how long deliveries to a disabled endpoint wait
	// before they are looked at again. Zero means 1m.
	DisabledRecheck time.Duration
	Metrics         *metrics.Metrics
	Logger          *slog.Logger
	// Now and Rand are the clock and the jitter source; nil means time.Now
	// and math/rand. Tests inject both.
	Now  func() time.Time
	Rand func() float64
}

// Dispatcher delivers due deliveries (the outbox) to tenant endpoints: it
// signs each event per Standard Webhooks, records every attempt, retries on
// the schedule with jitter and Retry-After, disables an endpoint that
// answers 410 and dead-letters a delivery after its last attempt. Delivery
// is at least once: the webhook-id (the event id) is the same on every
// attempt and replay.
type Dispatcher struct {
	cfg      DispatcherConfig
	wake     chan struct{}
	workers  chan struct{}
	inflight sync.Map // delivery id -> struct{}
	mu       sync.Mutex
	slots    map[string]chan struct{} // endpoint key -> semaphore
	wg       sync.WaitGroup
	// endpointOf remembers the endpoint key of due deliveries seen by the
	// last scan; only the Run goroutine touches it.
	endpointOf map[string]string
}

// NewDispatcher returns a Dispatcher; Run starts it.
func NewDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	if cfg.Store == nil || cfg.Sender == nil {
		return nil, errors.New("dispatch: Store and Sender are required")
	}
	if len(cfg.Schedule) == 0 {
		cfg.Schedule = DefaultSchedule
	}
	if cfg.MaxInFlightPerEndpoint == 0 {
		cfg.MaxInFlightPerEndpoint = 10
	}
	if cfg.Workers == 0 {
		cfg.Workers = 256
	}
	if cfg.ScanInterval == 0 {
		cfg.ScanInterval = 250 * time.Millisecond
	}
	if cfg.DisabledRecheck == 0 {
		cfg.DisabledRecheck = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Dispatcher{
		cfg:     cfg,
		wake:    make(chan struct{}, 1),
		workers: make(chan struct{}, cfg.Workers),
		slots:   map[string]chan struct{}{},
	}, nil
}

// Wake makes the dispatcher look for due deliveries now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Notify is the bus handler for new deliveries: it wakes the dispatcher.
func (d *Dispatcher) Notify(context.Context, string, string) error {
	d.Wake()
	return nil
}

// Run delivers until ctx ends, then waits for attempts in flight.
func (d *Dispatcher) Run(ctx context.Context) {
	defer d.wg.Wait()
	t := time.NewTicker(d.cfg.ScanInterval)
	defer t.Stop()
	for {
		d.dispatchDue(ctx)
		scanned := time.Now()
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			if gap := minScanGap - time.Since(scanned); gap > 0 {
				time.Sleep(gap)
			}
		case <-t.C:
		}
	}
}

// scanLimit bounds how many due deliveries one scan looks at; listing
// them costs no decoding (DueDeliveryRefs).
const scanLimit = 2048

// minScanGap spaces scans triggered by wake-ups: under load every finished
// attempt wakes the dispatcher, and one scan serves them all.
const minScanGap = 10 * time.Millisecond

// dispatchDue starts an attempt for every due delivery it has room for. A
// delivery is decoded only when it may start: one whose endpoint is known
// to be at its limit is skipped by id.
func (d *Dispatcher) dispatchDue(ctx context.Context) {
	refs, err := d.cfg.Store.DueDeliveryRefs(ctx, d.cfg.Now(), scanLimit)
	if err != nil {
		if ctx.Err() == nil {
			d.cfg.Logger.Warn("outbox scan", "error", err)
		}
		return
	}
	seen := make(map[string]string, len(refs))
	defer func() { d.endpointOf = seen }() // forget deliveries no longer due
	for _, ref := range refs {
		if _, busy := d.inflight.Load(ref.ID); busy {
			continue
		}
		if ep, known := d.endpointOf[ref.ID]; known {
			seen[ref.ID] = ep
			if d.full(ep) {
				continue
			}
		}
		if len(d.workers) == cap(d.workers) {
			return // every worker is busy; the next scan continues
		}
		// The ref list may be stale (an attempt that finished since may
		// have delivered or rescheduled this delivery): only the stored
		// state counts, so nothing is sent twice by the dispatcher itself.
		dl, err := d.cfg.Store.GetDelivery(ctx, ref.TenantID, ref.ID)
		if err != nil || dl.State != store.DeliveryPending || dl.NextAttemptAt.After(d.cfg.Now()) {
			continue
		}
		key := dl.TenantID + "\x00" + dl.EndpointID
		seen[ref.ID] = key
		slot := d.slot(key)
		select {
		case slot <- struct{}{}:
		default:
			continue // the endpoint is at its limit; others go ahead
		}
		d.workers <- struct{}{}
		d.inflight.Store(dl.ID, struct{}{})
		d.wg.Add(1)
		go func() {
			defer func() {
				<-d.workers
				<-slot
				d.inflight.Delete(dl.ID)
				d.wg.Done()
				d.Wake() // a slot is free; an ordered successor may be due
			}()
			d.attempt(ctx, dl)
		}()
	}
}

// full reports whether the endpoint has no free slot.
func (d *Dispatcher) full(key string) bool {
	s := d.slot(key)
	return len(s) == cap(s)
}

func (d *Dispatcher) slot(key string) chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.slots[key]
	if !ok {
		s = make(chan struct{}, d.cfg.MaxInFlightPerEndpoint)
		d.slots[key] = s
	}
	return s
}

// attempt makes one delivery attempt and records it.
func (d *Dispatcher) attempt(ctx context.Context, dl store.Delivery) {
	log := d.cfg.Logger.With("tenant", dl.TenantID, "delivery", dl.ID, "event", dl.EventID, "endpoint", dl.EndpointID)
	ep, err := d.cfg.Store.GetEndpoint(ctx, dl.TenantID, dl.EndpointID)
	if errors.Is(err, store.ErrNotFound) {
		d.finish(ctx, log, dl, store.DeliveryDead, "endpoint deleted", Result{}, d.cfg.Now())
		return
	}
	if err != nil {
		log.Warn("load endpoint", "error", err)
		return
	}
	if !ep.Enabled {
		// Disabled endpoints keep their backlog: look again later.
		if err := d.cfg.Store.PostponeDelivery(ctx, dl.TenantID, dl.ID, d.cfg.Now().Add(d.cfg.DisabledRecheck)); err != nil && !errors.Is(err, store.ErrNotFound) {
			log.Warn("postpone delivery", "error", err)
		}
		return
	}
	ev, err := d.cfg.Store.GetEvent(ctx, dl.TenantID, dl.EventID)
	if err != nil {
		log.Warn("load event", "error", err)
		return
	}
	start := d.cfg.Now()
	res := d.cfg.Sender.Send(ctx, Target{URL: ep.URL, Secrets: ep.Secrets}, Message{ID: ev.ID, Body: ev.Body})
	if ctx.Err() != nil && res.Outcome != Delivered {
		return // shutting down: the attempt did not really happen
	}
	d.cfg.Metrics.Attempt(res.Outcome.String(), res.Latency)
	switch res.Outcome {
	case Delivered:
		d.finish(ctx, log, dl, store.DeliveryDelivered, "", res, start)
	case Gone:
		reason := "endpoint answered 410 Gone; the endpoint is disabled"
		if _, err := d.cfg.Store.UpdateEndpoint(ctx, dl.TenantID, dl.EndpointID, func(e *store.Endpoint) error {
			e.Enabled = false
			e.DisabledReason = "answered 410 Gone at " + start.UTC().Format(time.RFC3339)
			return nil
		}); err != nil {
			log.Warn("disable endpoint", "error", err)
		}
		log.Warn("endpoint gone; disabled", "url_host", hostOf(ep.URL))
		d.finish(ctx, log, dl, store.DeliveryDead, reason, res, start)
	default:
		next, ok := d.cfg.Schedule.Next(dl.Attempts+1, d.cfg.Now(), res.RetryAfter, d.cfg.Rand)
		if !ok {
			d.finish(ctx, log, dl, store.DeliveryDead, "attempts exhausted: "+res.Error, res, start)
			return
		}
		dl.NextAttemptAt = next
		d.finish(ctx, log, dl, store.DeliveryPending, res.Error, res, start)
	}
}

// finish records the attempt (when one was made) and the delivery's new
// state in one transaction.
func (d *Dispatcher) finish(ctx context.Context, log *slog.Logger, dl store.Delivery, state store.DeliveryState, lastErr string, res Result, at time.Time) {
	made := res.Outcome != 0
	if made {
		dl.Attempts++
	}
	dl.State, dl.LastError, dl.UpdatedAt = state, lastErr, d.cfg.Now()
	if made {
		dl.LastStatus = res.StatusCode
	}
	if state == store.DeliveryDelivered {
		dl.DeliveredAt = dl.UpdatedAt
	}
	a := store.Attempt{DeliveryID: dl.ID, N: dl.Attempts, At: at, StatusCode: res.StatusCode,
		LatencyMS: float64(res.Latency.Microseconds()) / 1000, Error: res.Error, Response: res.Response}
	if !made {
		a = store.Attempt{DeliveryID: dl.ID, N: dl.Attempts, At: at, Error: lastErr}
	}
	err := d.cfg.Store.RecordAttempt(ctx, dl, a)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Replayed or deleted meanwhile: its new state stands.
	case err != nil:
		log.Error("attempt not recorded; the delivery stays due", "error", err)
	case state == store.DeliveryDead:
		d.cfg.Metrics.DeadLetter()
		log.Warn("delivery dead-lettered", "attempts", dl.Attempts, "reason", lastErr)
	}
}

func hostOf(raw string) string {
	for _, p := range []string{"https://", "http://"} {
		if len(raw) > len(p) && raw[:len(p)] == p {
			raw = raw[len(p):]
		}
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] == '/' || raw[i] == '?' {
			return raw[:i]
		}
	}
	return raw
}
