package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
	// MaxInFlightPerEndpoint bounds concurrent requests to one endpoint, so
	// a slow endpoint holds at most that many workers. Zero means 10.
	MaxInFlightPerEndpoint int
	// Workers bounds attempts in progress overall (sending or recording).
	// Zero means 256.
	Workers int
	// ScanInterval is how often due deliveries are looked for when nothing
	// wakes the dispatcher. Zero means 250ms.
	ScanInterval time.Duration
	// DisabledRecheck is how long deliveries to a disabled endpoint wait
	// before they are looked at again. Zero means 1m.
	DisabledRecheck time.Duration
	// DisableAfter disables an endpoint whose every attempt has failed for
	// this long: from its first failure after its last success to a
	// failure this much later. Its deliveries stay pending until it is
	// enabled again. Zero means DefaultDisableAfter; negative never
	// disables. A 410 disables at once whatever this says.
	DisableAfter time.Duration
	// Pacer, when set, makes the dispatcher work in slices of at most
	// PacedBatch deliveries while the webhook ingress is busy (bus.Pacer).
	Pacer Pacer
	// PacedBatch is how many deliveries a paced slice starts. Zero means 64.
	PacedBatch int
	Metrics    *metrics.Metrics
	Logger     *slog.Logger
	// Now and Rand are the clock and the jitter source; nil means time.Now
	// and math/rand. Tests inject both.
	Now  func() time.Time
	Rand func() float64
}

// Pacer tells whether the webhook ingress is busy and spaces out slices of
// work while it is (bus.Pacer).
type Pacer interface {
	Busy() bool
	Pace(ctx context.Context, worked time.Duration)
}

// DefaultDisableAfter is how long an endpoint may fail every attempt
// before it is disabled: five days, as Svix does, longer than the default
// schedule's three, so an outage that one event's retries outlast does not
// disable anything by itself.
const DefaultDisableAfter = 5 * 24 * time.Hour

// Dispatcher delivers due deliveries (the outbox) to tenant endpoints: it
// signs each event per Standard Webhooks, records every attempt, retries on
// the schedule with jitter and Retry-After, disables an endpoint that
// answers 410 or has failed every attempt for DisableAfter, and
// dead-letters a delivery after its last attempt. Delivery
// is at least once: the webhook-id (the event id) is the same on every
// attempt and replay.
//
// A scan of the store's due deliveries queues them per endpoint; an
// endpoint's queue feeds its slots (MaxInFlightPerEndpoint), and a slot is
// free again as soon as the endpoint has answered, while the attempt is
// recorded (group committed with others). So an endpoint gets its next
// delivery without waiting for a scan or a commit.
type Dispatcher struct {
	cfg     DispatcherConfig
	wake    chan struct{}
	workers chan struct{}
	// inflight holds the deliveries queued or in progress, so that a scan
	// does not take them again.
	inflight sync.Map // delivery id -> struct{}
	active   atomic.Int64
	mu       sync.Mutex
	queues   map[string]*endpointQueue // endpoint key -> queue; guarded by mu
	wg       sync.WaitGroup
	// endpointOf remembers the endpoint key of due deliveries seen by the
	// last scan; only the Run goroutine touches it.
	endpointOf map[string]string
}

// endpointQueue is one endpoint's share of the dispatcher. Guarded by
// Dispatcher.mu.
type endpointQueue struct {
	sending int              // attempts holding one of the endpoint's slots
	ready   []store.Delivery // due, queued by a scan, not started
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
	if cfg.DisableAfter == 0 {
		cfg.DisableAfter = DefaultDisableAfter
	}
	if cfg.PacedBatch <= 0 {
		cfg.PacedBatch = 64
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
		queues:  map[string]*endpointQueue{},
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
// It returns once the dispatcher has taken the wake-up (or ctx ends), so
// that while a scan runs the bus folds new announcements into this one.
func (d *Dispatcher) Notify(ctx context.Context, _, _ string) error {
	select {
	case d.wake <- struct{}{}:
	case <-ctx.Done():
	}
	return nil
}

// Run delivers until ctx ends, then waits for attempts in flight.
func (d *Dispatcher) Run(ctx context.Context) {
	defer d.wg.Wait()
	t := time.NewTicker(d.cfg.ScanInterval)
	defer t.Stop()
	for {
		start := time.Now()
		paced := d.cfg.Pacer != nil && d.cfg.Pacer.Busy()
		budget := -1
		if paced {
			budget = d.cfg.PacedBatch
		}
		queued := d.dispatchDue(ctx, budget)
		scanned := time.Now()
		if paced && queued > 0 {
			// A slice: let what it queued finish, then rest.
			d.settle(ctx, maxSlice)
			d.cfg.Pacer.Pace(ctx, time.Since(start))
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			// Under load every answered attempt wakes the dispatcher; one
			// scan serves them all, and scans take at most a fifth of the
			// time.
			gap := min(max(minScanGap, 4*scanned.Sub(start)), maxScanGap)
			if wait := gap - time.Since(scanned); wait > 0 {
				time.Sleep(wait)
			}
		case <-t.C:
		}
	}
}

// scanLimit bounds how many due deliveries one scan looks at; listing
// them costs no decoding (DueDeliveryRefs).
const scanLimit = 2048

// The spacing of scans triggered by wake-ups.
const (
	minScanGap = 2 * time.Millisecond
	maxScanGap = 10 * time.Millisecond
)

// maxSlice bounds how long a paced slice waits for its deliveries.
const maxSlice = time.Second

// readyPerEndpoint is how many due deliveries an endpoint's queue holds:
// enough to keep its slots busy until the next scan.
func (d *Dispatcher) readyPerEndpoint() int { return max(64, 8*d.cfg.MaxInFlightPerEndpoint) }

// dispatchDue queues due deliveries on their endpoints' queues, at most
// budget of them (all it finds when budget < 0), and starts what the
// endpoints have room for. It returns how many it queued. A delivery is
// decoded only when its endpoint's queue has room: one whose endpoint is
// known to be full is skipped by id.
func (d *Dispatcher) dispatchDue(ctx context.Context, budget int) int {
	refs, err := d.cfg.Store.DueDeliveryRefs(ctx, d.cfg.Now(), scanLimit)
	if err != nil {
		if ctx.Err() == nil {
			d.cfg.Logger.Warn("outbox scan", "error", err)
		}
		return 0
	}
	seen := make(map[string]string, len(refs))
	defer func() { d.endpointOf = seen }() // forget deliveries no longer due
	queued := 0
	touched := map[string]bool{}
	defer func() {
		for key := range touched {
			d.pump(ctx, key)
		}
	}()
	for _, ref := range refs {
		if budget >= 0 && queued >= budget {
			break
		}
		if _, busy := d.inflight.Load(ref.ID); busy {
			continue
		}
		if key, known := d.endpointOf[ref.ID]; known {
			seen[ref.ID] = key
			if d.full(key) {
				continue
			}
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
		if !d.enqueue(key, dl) {
			continue
		}
		touched[key] = true
		queued++
	}
	return queued
}

// full reports whether the endpoint's queue has no room.
func (d *Dispatcher) full(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queues[key]
	return q != nil && len(q.ready) >= d.readyPerEndpoint()
}

// enqueue puts dl on its endpoint's queue, unless the queue is full or dl
// is already queued or in progress.
func (d *Dispatcher) enqueue(key string, dl store.Delivery) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queues[key]
	if q == nil {
		q = &endpointQueue{}
		d.queues[key] = q
	}
	if len(q.ready) >= d.readyPerEndpoint() {
		return false
	}
	if _, busy := d.inflight.LoadOrStore(dl.ID, struct{}{}); busy {
		return false
	}
	d.active.Add(1)
	q.ready = append(q.ready, dl)
	return true
}

// pump starts queued deliveries of the endpoint while it has free slots
// and a worker is free.
func (d *Dispatcher) pump(ctx context.Context, key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queues[key]
	for q != nil && ctx.Err() == nil && len(q.ready) > 0 && q.sending < d.cfg.MaxInFlightPerEndpoint {
		select {
		case d.workers <- struct{}{}:
		default:
			return // every worker is busy; a finishing one pumps again
		}
		dl := q.ready[0]
		q.ready[0] = store.Delivery{}
		q.ready = q.ready[1:]
		q.sending++
		d.wg.Add(1)
		go d.run(ctx, key, dl)
	}
	if q != nil && len(q.ready) == 0 && q.sending == 0 {
		delete(d.queues, key)
	}
}

// release frees one of the endpoint's slots and starts its next delivery.
func (d *Dispatcher) release(ctx context.Context, key string) {
	d.mu.Lock()
	if q := d.queues[key]; q != nil {
		q.sending--
	}
	d.mu.Unlock()
	d.pump(ctx, key)
}

// run makes one attempt of dl, holding one of its endpoint's slots and a
// worker, and frees them.
func (d *Dispatcher) run(ctx context.Context, key string, dl store.Delivery) {
	released := false
	free := func() {
		if !released {
			released = true
			d.release(ctx, key)
		}
	}
	defer func() {
		free()
		d.inflight.Delete(dl.ID)
		d.active.Add(-1)
		<-d.workers
		d.pump(ctx, key) // a worker is free
		d.wg.Done()
		d.Wake() // an ordered successor may be due
	}()
	d.attempt(ctx, dl, free)
}

// settle waits until nothing is queued or in progress, for at most max.
func (d *Dispatcher) settle(ctx context.Context, max time.Duration) {
	deadline := time.Now().Add(max)
	for d.active.Load() > 0 && ctx.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(500 * time.Microsecond)
	}
}

// attempt makes one delivery attempt and records it. It calls answered
// once the endpoint no longer needs the slot: before recording.
func (d *Dispatcher) attempt(ctx context.Context, dl store.Delivery, answered func()) {
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
	answered()
	if ctx.Err() != nil && res.Outcome != Delivered {
		return // shutting down: the attempt did not really happen
	}
	d.cfg.Metrics.Attempt(res.Outcome.String(), res.Latency)
	switch res.Outcome {
	case Delivered:
		if !ep.FailingSince.IsZero() {
			d.endpointRecovered(ctx, log, dl)
		}
		d.finish(ctx, log, dl, store.DeliveryDelivered, "", res, start)
	case Gone:
		reason := "endpoint answered 410 Gone; the endpoint is disabled"
		if _, err := d.cfg.Store.UpdateEndpoint(ctx, dl.TenantID, dl.EndpointID, func(e *store.Endpoint) error {
			e.Enabled = false
			e.DisabledReason = "answered 410 Gone at " + start.UTC().Format(time.RFC3339)
			return nil
		}); err != nil {
			log.Warn("disable endpoint", "error", err)
		} else {
			d.cfg.Metrics.EndpointDisabled("gone")
			log.Warn("endpoint gone; disabled", "url_host", hostOf(ep.URL))
		}
		d.finish(ctx, log, dl, store.DeliveryDead, reason, res, start)
	default:
		d.endpointFailed(ctx, log, ep, dl, start)
		next, ok := d.cfg.Schedule.Next(dl.Attempts+1, d.cfg.Now(), res.RetryAfter, d.cfg.Rand)
		if !ok {
			d.finish(ctx, log, dl, store.DeliveryDead, "attempts exhausted: "+res.Error, res, start)
			return
		}
		dl.NextAttemptAt = next
		d.finish(ctx, log, dl, store.DeliveryPending, res.Error, res, start)
	}
}

// endpointFailed notes a failed attempt on the endpoint: the first failure
// after a success starts its failing streak, and a failure DisableAfter or
// more into the streak disables it. ep is the endpoint as read before the
// attempt; the store is written only when one of those two things happens,
// and the update decides again on the stored endpoint.
func (d *Dispatcher) endpointFailed(ctx context.Context, log *slog.Logger, ep store.Endpoint, dl store.Delivery, at time.Time) {
	limit := d.cfg.DisableAfter
	if !ep.FailingSince.IsZero() && (limit < 0 || at.Sub(ep.FailingSince) < limit) {
		return
	}
	var (
		disabled bool
		since    time.Time
	)
	_, err := d.cfg.Store.UpdateEndpoint(ctx, dl.TenantID, dl.EndpointID, func(e *store.Endpoint) error {
		switch {
		case !e.Enabled:
			return errUnchanged
		case e.FailingSince.IsZero():
			e.FailingSince = at.UTC()
		case limit >= 0 && at.Sub(e.FailingSince) >= limit:
			e.Enabled, disabled, since = false, true, e.FailingSince
			e.DisabledReason = fmt.Sprintf("every attempt failed from %s to %s; enable it again to resume delivery",
				e.FailingSince.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
		default:
			return errUnchanged
		}
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) && !errors.Is(err, store.ErrNotFound) {
		log.Warn("note endpoint failure", "error", err)
		return
	}
	if disabled {
		d.cfg.Metrics.EndpointDisabled("failing")
		log.Warn("endpoint failed every attempt too long; disabled", "url_host", hostOf(ep.URL), "failing_since", since)
	}
}

// endpointRecovered ends the endpoint's failing streak after a success.
func (d *Dispatcher) endpointRecovered(ctx context.Context, log *slog.Logger, dl store.Delivery) {
	_, err := d.cfg.Store.UpdateEndpoint(ctx, dl.TenantID, dl.EndpointID, func(e *store.Endpoint) error {
		if e.FailingSince.IsZero() {
			return errUnchanged
		}
		e.FailingSince = time.Time{}
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) && !errors.Is(err, store.ErrNotFound) {
		log.Warn("note endpoint recovery", "error", err)
	}
}

// errUnchanged leaves an endpoint as it is stored.
var errUnchanged = errors.New("dispatch: endpoint unchanged")

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
