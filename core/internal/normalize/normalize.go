// Package normalize turns accepted webhooks into the gateway's events. For
// each pending inbox record it asks the provider's plugin to parse it
// (ParseWebhook), completes every event with the fields the gateway owns
// (tenant_id, provider, payment_id, correlation_id, ...), renders the
// Standard Webhooks body once, and records events, payment status changes,
// deliveries and the inbox record's new state in one transaction.
//
// A webhook the plugin cannot parse (an error of kind permanent, invalid or
// unsupported, or output that breaks the contract) goes to quarantine with
// the reason; it can be replayed after a plugin fix. Any other failure
// (plugin restarting, provider fetch failing) is retried with backoff.
package normalize

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipecore/pipecore/core/internal/event"
	"github.com/pipecore/pipecore/core/internal/metrics"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Parsers gives the webhook parser of a plugin by name.
type Parsers interface {
	WebhookParser(name string) (provider.WebhookParser, error)
}

// Linker ties events of a family other than payments (deliveries,
// messages, subscriptions) to the gateway's records. Link returns ok=false
// for an event that is not about one of its records. Otherwise it returns
// the events to record in its place, in order (usually one: the event as
// the tenant must see it; more when the record skips states the tenant
// must still hear of, e.g. delivery.assigned before delivery.picked_up),
// the correlation id of the record, and the change that records them (the
// normaliser fills in Events). The store drops them all when the change
// says they are no longer news.
type Linker interface {
	Link(ctx context.Context, tenantID, provider string, ev provider.Event, data map[string]any) (out []store.Linked, correlation string, change store.ResourceChange, ok bool)
}

// Publisher announces new deliveries to the dispatcher.
type Publisher interface {
	Publish(topic, tenantID, id string) error
}

// Pacer spaces out Run's slices of work while the webhook ingress is busy
// (bus.Pacer): Pace is called after each slice with how long it took.
type Pacer interface {
	Pace(ctx context.Context, worked time.Duration)
}

// Config wires a Normalizer. Zero values mean the documented defaults.
type Config struct {
	Store        store.Store
	Plugins      Parsers
	Tenants      *tenant.Registry
	Bus          Publisher
	Linkers      []Linker
	OutboxTopic  string
	Metrics      *metrics.Metrics
	Logger       *slog.Logger
	CallTimeout  time.Duration // zero: 30s
	MaxAttempts  int           // retryable failures before quarantine; zero: 20
	MinBackoff   time.Duration // zero: 1s, doubling
	MaxBackoff   time.Duration // zero: 1h
	ScanInterval time.Duration // how often Run looks for due records unless woken; zero: 1s
	Workers      int           // concurrent plugin calls of Run; zero: 32
	Batch        int           // due records Run takes at a time; zero: 2×Workers
	Pacer        Pacer         // optional
	Now          func() time.Time
}

// Normalizer processes inbox records. Safe for concurrent use.
type Normalizer struct {
	cfg      Config
	inflight sync.Map      // inbox id -> struct{}: one worker per record at a time
	wake     chan struct{} // capacity 1
}

// New returns a Normalizer.
func New(cfg Config) *Normalizer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 20
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Hour
	}
	if cfg.ScanInterval == 0 {
		cfg.ScanInterval = time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 2 * cfg.Workers
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Normalizer{cfg: cfg, wake: make(chan struct{}, 1)}
}

// errQuarantine marks failures that retrying cannot fix.
var errQuarantine = errors.New("normalize: unparseable")

// Process normalises one inbox record. It is a no-op for a record that is
// not pending, or that another worker is processing.
func (n *Normalizer) Process(ctx context.Context, tenantID, id string) error {
	if _, busy := n.inflight.LoadOrStore(id, struct{}{}); busy {
		return nil
	}
	defer n.inflight.Delete(id)
	rec, err := n.cfg.Store.GetInbox(ctx, tenantID, id)
	if err != nil {
		return fmt.Errorf("normalize: load %s: %w", id, err)
	}
	if rec.State != store.InboxPending {
		return nil
	}
	return n.conclude(ctx, rec, n.process(ctx, rec))
}

// handle normalises a pending record Run read from the store, unless
// another worker is processing it.
func (n *Normalizer) handle(ctx context.Context, rec store.InboxRecord) error {
	if _, busy := n.inflight.LoadOrStore(rec.ID, struct{}{}); busy {
		return nil
	}
	defer n.inflight.Delete(rec.ID)
	return n.conclude(ctx, rec, n.process(ctx, rec))
}

// conclude records the outcome of processing rec: nothing more on
// success, quarantine, or a retry with backoff.
func (n *Normalizer) conclude(ctx context.Context, rec store.InboxRecord, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errQuarantine) || rec.Attempts+1 >= n.cfg.MaxAttempts:
		reason := err.Error()
		if !errors.Is(err, errQuarantine) {
			reason = fmt.Sprintf("gave up after %d attempts: %s", rec.Attempts+1, reason)
		}
		n.cfg.Metrics.Quarantined(rec.Provider)
		n.cfg.Logger.Warn("webhook quarantined", "tenant", rec.TenantID, "provider", rec.Provider, "id", rec.ID, "reason", reason)
		return n.cfg.Store.QuarantineInbox(ctx, rec.TenantID, rec.ID, reason)
	default:
		next := n.cfg.Now().Add(n.backoff(rec.Attempts + 1))
		n.cfg.Logger.Info("webhook normalisation will be retried", "tenant", rec.TenantID, "provider", rec.Provider, "id", rec.ID, "attempt", rec.Attempts+1, "next", next, "error", err)
		return n.cfg.Store.RetryInbox(ctx, rec.TenantID, rec.ID, next, err.Error())
	}
}

func (n *Normalizer) backoff(attempt int) time.Duration {
	d := n.cfg.MinBackoff
	for i := 1; i < attempt && d < n.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, n.cfg.MaxBackoff)
}

func (n *Normalizer) process(ctx context.Context, rec store.InboxRecord) error {
	t, ok := n.cfg.Tenants.Get(rec.TenantID)
	if !ok {
		return fmt.Errorf("%w: tenant %q is no longer configured", errQuarantine, rec.TenantID)
	}
	pt, ok := t.ProviderTenant(rec.Provider)
	if !ok {
		return fmt.Errorf("%w: provider %q is no longer enabled for tenant %q", errQuarantine, rec.Provider, rec.TenantID)
	}
	parser, err := n.cfg.Plugins.WebhookParser(rec.Provider)
	if err != nil {
		return err
	}
	var q map[string][]string
	if u, err := url.ParseRequestURI(rec.RequestURI); err == nil {
		q = u.Query()
	}
	cctx, cancel := context.WithTimeout(provider.WithRequestID(ctx, rec.CorrelationID), n.cfg.CallTimeout)
	start := n.cfg.Now()
	evs, err := parser.ParseWebhook(cctx, provider.WebhookRequest{Tenant: pt, Headers: rec.Header, Query: q, Body: rec.Body})
	cancel()
	n.cfg.Metrics.PluginCall(rec.Provider, "ParseWebhook", outcome(err), n.cfg.Now().Sub(start))
	if err != nil {
		switch provider.KindOf(err) {
		case provider.KindPermanent, provider.KindInvalid, provider.KindUnsupported:
			return fmt.Errorf("%w: %s: %v", errQuarantine, rec.Provider, err)
		}
		return fmt.Errorf("parse webhook: %w", err)
	}
	batch, err := n.build(ctx, rec, evs)
	if err != nil {
		return err
	}
	dels, err := n.cfg.Store.RecordEvents(ctx, batch)
	if err != nil {
		return fmt.Errorf("record events: %w", err)
	}
	if dels != nil { // nil: another worker recorded this webhook's events first
		n.cfg.Metrics.InboxLag(rec.Provider, n.cfg.Now().Sub(rec.ReceivedAt))
	}
	for _, d := range dels {
		if err := n.cfg.Bus.Publish(n.cfg.OutboxTopic, d.TenantID, d.ID); err != nil {
			n.cfg.Logger.Warn("delivery not announced; the dispatcher's rescan picks it up", "id", d.ID, "error", err)
		}
	}
	return nil
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	if provider.IsTimeout(err) {
		return "timeout"
	}
	return provider.KindOf(err).String()
}

var eventTypePattern = regexp.MustCompile(`^[a-z_]+(\.[a-z_]+)+$`)

// build completes the plugin's events with the gateway's fields and
// renders their bodies.
func (n *Normalizer) build(ctx context.Context, rec store.InboxRecord, evs []provider.Event) (store.EventBatch, error) {
	now := n.cfg.Now().UTC()
	batch := store.EventBatch{TenantID: rec.TenantID, InboxID: rec.ID, Now: now}
	for i, ev := range evs {
		if !eventTypePattern.MatchString(ev.Type) {
			return batch, fmt.Errorf("%w: plugin returned event %d with type %q", errQuarantine, i, ev.Type)
		}
		data := map[string]any{}
		if len(ev.Data) > 0 {
			if err := json.Unmarshal(ev.Data, &data); err != nil {
				return batch, fmt.Errorf("%w: plugin returned event %d with data that is not a JSON object", errQuarantine, i)
			}
		}
		if tid, ok := data["tenant_id"]; ok && tid != rec.TenantID {
			// A plugin must not route events to another tenant.
			n.cfg.Logger.Error("security: plugin returned an event for another tenant", "tenant", rec.TenantID, "provider", rec.Provider, "claimed", fmt.Sprint(tid))
			return batch, fmt.Errorf("%w: plugin returned an event for another tenant", errQuarantine)
		}
		occurred := ev.OccurredAt
		if occurred.IsZero() {
			occurred = rec.ReceivedAt
		}
		correlation := rec.CorrelationID
		var paymentID string
		if change, p, ok := n.paymentOf(ctx, rec, ev, data); ok {
			paymentID = p.ID
			data["payment_id"] = p.ID
			if _, set := data["reference"]; !set && p.Reference != "" {
				data["reference"] = p.Reference
			}
			if _, set := data["customer"]; !set && p.Customer != nil {
				data["customer"] = p.Customer
			}
			if p.CorrelationID != "" {
				correlation = p.CorrelationID
			}
			change.Events, change.Keep = []int{len(batch.Events)}, KeepStatusEvent(ev.Type)
			batch.Payments = append(batch.Payments, change)
		} else {
			linked := false
			for _, l := range n.cfg.Linkers {
				out, corr, change, ok := l.Link(ctx, rec.TenantID, rec.Provider, ev, data)
				if !ok || len(out) == 0 {
					continue
				}
				if corr != "" {
					correlation = corr
				}
				for j, lk := range out[:len(out)-1] {
					// States the record skipped, announced before this one.
					e, err := event.New(rec.TenantID, rec.Provider, lk.Type, occurred, correlation, lk.Data)
					if err != nil {
						return batch, fmt.Errorf("%w: event %d: %v", errQuarantine, i, err)
					}
					e.Subject, e.ProviderEventID, e.CreatedAt, e.InboxID = ev.Subject, fmt.Sprintf("%s#%d", ev.ID, j), now, rec.ID
					change.Events = append(change.Events, len(batch.Events))
					batch.Events = append(batch.Events, e)
				}
				last := out[len(out)-1]
				ev.Type, data = last.Type, last.Data
				change.Events = append(change.Events, len(batch.Events))
				batch.Resources = append(batch.Resources, change)
				linked = true
				break
			}
			if !linked {
				// Not about a record of this tenant: a gateway id the
				// plugin put in the data is unverified; never pass it on.
				delete(data, "delivery_id")
				delete(data, "message_id")
				delete(data, "subscription_id")
			}
		}
		e, err := event.New(rec.TenantID, rec.Provider, ev.Type, occurred, correlation, data)
		if err != nil {
			return batch, fmt.Errorf("%w: event %d: %v", errQuarantine, i, err)
		}
		e.Subject, e.PaymentID, e.ProviderEventID, e.CreatedAt, e.InboxID = ev.Subject, paymentID, ev.ID, now, rec.ID
		batch.Events = append(batch.Events, e)
	}
	return batch, nil
}

// paymentOf finds the gateway payment a payment event is about and the
// change it implies.
func (n *Normalizer) paymentOf(ctx context.Context, rec store.InboxRecord, ev provider.Event, data map[string]any) (store.PaymentChange, store.Payment, bool) {
	if len(ev.Type) < 8 || ev.Type[:8] != "payment." {
		return store.PaymentChange{}, store.Payment{}, false
	}
	// The plugin may know the gateway's id (Stripe keeps it in metadata);
	// it only counts for a payment of this tenant.
	if s, ok := data["payment_id"].(string); ok && s != "" {
		if p, err := n.cfg.Store.GetPayment(ctx, rec.TenantID, s); err == nil && p.Provider == rec.Provider {
			return store.PaymentChange{PaymentID: p.ID, Apply: applier(ev.Type, data)}, p, true
		}
		delete(data, "payment_id") // not ours: never pass on an unverified id
	}
	ids := []string{}
	if s, ok := data["provider_payment_id"].(string); ok && s != "" {
		ids = append(ids, s)
	}
	if ev.Subject != "" {
		ids = append(ids, ev.Subject)
	}
	if s, ok := data["provider_payment_intent_id"].(string); ok && s != "" {
		ids = append(ids, s)
	}
	for _, id := range ids {
		p, err := n.cfg.Store.PaymentByProviderID(ctx, rec.Provider, id)
		if err != nil || p.TenantID != rec.TenantID {
			continue
		}
		return store.PaymentChange{PaymentID: p.ID, Apply: applier(ev.Type, data)}, p, true
	}
	return store.PaymentChange{}, store.Payment{}, false
}

// KeepStatusEvent returns, for an event that announces a payment's final
// status (confirmed, failed, cancelled), the check that keeps it only when
// the payment is not in that status yet: the customer's return, the
// reconciliation job and the provider's webhook may all see the change, and
// the tenant hears of it once. Other types are always kept (nil).
func KeepStatusEvent(typ string) func(*store.Payment) bool {
	var target []payments.Status
	switch typ {
	case "payment.confirmed":
		target = []payments.Status{payments.StatusSucceeded, payments.StatusRefunded}
	case "payment.failed":
		target = []payments.Status{payments.StatusFailed}
	case "payment.cancelled":
		target = []payments.Status{payments.StatusCancelled}
	default:
		return nil
	}
	return func(p *store.Payment) bool {
		for _, s := range target {
			if payments.Status(p.Status) == s {
				return false
			}
		}
		return true
	}
}

// applier returns how a payment event changes the gateway's record.
func applier(typ string, data map[string]any) func(*store.Payment) {
	status, _ := data["status"].(string)
	failureCode, _ := data["failure_code"].(string)
	failureMsg, _ := data["failure_message"].(string)
	method, _ := data["method"].(string)
	refunded, _ := data["refunded_amount"].(float64)
	return func(p *store.Payment) {
		switch typ {
		case "payment.confirmed":
			if p.Status != string(payments.StatusRefunded) {
				p.Status = string(payments.StatusSucceeded)
			}
		case "payment.failed":
			p.Status = string(payments.StatusFailed)
			p.FailureCode, p.FailureMessage = failureCode, failureMsg
		case "payment.cancelled":
			p.Status = string(payments.StatusCancelled)
		case "payment.refunded":
			if int64(refunded) > p.AmountRefunded {
				p.AmountRefunded = min(int64(refunded), p.Amount)
			}
			if p.AmountRefunded >= p.Amount {
				p.Status = string(payments.StatusRefunded)
			}
		default:
			if payments.Status(status).Valid() && typ != "payment.disputed" {
				p.Status = status
			}
		}
		if method != "" {
			p.Method = method
		}
	}
}

// Wake makes Run look for due records now.
func (n *Normalizer) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Notify is the bus handler for accepted webhooks: it wakes Run, which
// finds the webhook, and any announced with it, in the store. It returns
// once Run has taken the wake-up (or ctx ends), so that while Run is busy
// the bus folds new announcements into this one (bus.Publish).
func (n *Normalizer) Notify(ctx context.Context, _, _ string) error {
	select {
	case n.wake <- struct{}{}:
	case <-ctx.Done():
	}
	return nil
}

// Run normalises due inbox records until ctx ends: new ones, retries whose
// time has come and released quarantines. It takes up to Batch records at
// a time, oldest due first, and processes them with up to Workers plugin
// calls in flight; their writes share the store's group commits. After
// each batch the Pacer may make it rest while the ingress is busy: the
// inbox holds the backlog. Between batches it waits for Wake (Notify) or
// ScanInterval.
func (n *Normalizer) Run(ctx context.Context) {
	t := time.NewTicker(n.cfg.ScanInterval)
	defer t.Stop()
	for ctx.Err() == nil {
		start := time.Now()
		recs, err := n.cfg.Store.DueInbox(ctx, n.cfg.Now(), n.cfg.Batch)
		if err != nil && ctx.Err() == nil {
			n.cfg.Logger.Warn("inbox scan", "error", err)
		}
		done := n.processAll(ctx, recs)
		if len(recs) > 0 && n.cfg.Pacer != nil {
			n.cfg.Pacer.Pace(ctx, time.Since(start))
		}
		if len(recs) == n.cfg.Batch && done > 0 {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
		case <-n.wake:
		case <-t.C:
		}
	}
}

// processAll handles recs with up to Workers at a time and returns how
// many it settled (normalised, quarantined or scheduled for a retry).
func (n *Normalizer) processAll(ctx context.Context, recs []store.InboxRecord) int {
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range min(n.cfg.Workers, len(recs)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(recs)) && ctx.Err() == nil; i = next.Add(1) - 1 {
				if err := n.handle(ctx, recs[i]); err != nil {
					if ctx.Err() == nil {
						n.cfg.Logger.Warn("inbox record not settled; it stays due", "tenant", recs[i].TenantID, "id", recs[i].ID, "error", err)
					}
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	return int(done.Load())
}
