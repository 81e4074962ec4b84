// Package subscription runs recurring billing through the tenant's
// payments providers (MercadoPago preapproval, Stripe Checkout in
// subscription mode): create (with the URL where the customer authorizes),
// read, cancel, and the subscription.* events from provider webhooks, each
// status change announced once.
package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/event"
	"github.com/pipecore/pipecore/core/internal/plugincall"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/validation"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Kind is the resource kind of subscriptions.
const Kind = "subscription"

var (
	// ErrNotFound: no such subscription for the tenant.
	ErrNotFound = errors.New("subscription: not found")
	// ErrNoProvider: no payments provider, or one without subscriptions.
	ErrNoProvider = errors.New("subscription: no provider")
)

// ValidationError is a request refused before calling anyone.
type ValidationError = validation.Error

// Plugins gives the payments capability of a plugin.
type Plugins interface {
	Payments(name string) (payments.Provider, error)
}

// Config configures a Service.
type Config struct {
	Store       store.Store
	Plugins     Plugins
	Audit       *audit.Recorder
	Logger      *slog.Logger
	CallTimeout time.Duration // zero: 30s
	Notify      func()
	Now         func() time.Time
}

// Service is safe for concurrent use.
type Service struct {
	cfg    Config
	runner plugincall.Runner
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Plugins == nil || cfg.Audit == nil {
		return nil, errors.New("subscription: Store, Plugins and Audit are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, runner: plugincall.Runner{Audit: cfg.Audit, Logger: cfg.Logger, Now: cfg.Now}}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// Plan is what a subscription charges.
type Plan struct {
	ID            string `json:"id,omitempty"` // the provider's plan or price id
	Amount        int64  `json:"amount,omitempty"`
	Currency      string `json:"currency,omitempty"`
	Interval      string `json:"interval,omitempty"` // day, week, month, year
	IntervalCount int    `json:"interval_count,omitempty"`
}

// Customer is who subscribes.
type Customer struct {
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
}

// CreateInput is the body of POST /v1/subscriptions.
type CreateInput struct {
	Provider    string   `json:"provider,omitempty"`
	Plan        Plan     `json:"plan"`
	Customer    Customer `json:"customer"`
	Reference   string   `json:"reference"`
	Description string   `json:"description,omitempty"`
	ReturnURL   string   `json:"return_url,omitempty"`
}

// Subscription is a subscription as the tenant sees it.
type Subscription struct {
	ID                     string     `json:"id"` // "sub_…"
	Provider               string     `json:"provider"`
	ProviderSubscriptionID string     `json:"provider_subscription_id"`
	Status                 string     `json:"status"`
	RedirectURL            string     `json:"redirect_url,omitempty"`
	Plan                   Plan       `json:"plan"`
	Customer               Customer   `json:"customer"`
	Reference              string     `json:"reference"`
	CurrentPeriodEnd       *time.Time `json:"current_period_end,omitempty"`
	Renewals               int        `json:"renewals"`
	CreatedAt              time.Time  `json:"created_at"`
	UpdatedAt              time.Time  `json:"updated_at"`
}

type doc struct {
	Plan             Plan       `json:"plan"`
	Customer         Customer   `json:"customer"`
	Reference        string     `json:"reference"`
	RedirectURL      string     `json:"redirect_url,omitempty"`
	ProviderSubID    string     `json:"provider_sub_id,omitempty"` // e.g. Stripe's sub_… behind a cs_… checkout
	CurrentPeriodEnd *time.Time `json:"current_period_end,omitempty"`
	Renewals         int        `json:"renewals"`
	CorrelationID    string     `json:"correlation_id,omitempty"`
}

func decodeDoc(r *store.Resource) doc {
	var d doc
	_ = json.Unmarshal(r.Doc, &d)
	return d
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func view(r store.Resource) Subscription {
	d := decodeDoc(&r)
	pid := r.ProviderID
	if d.ProviderSubID != "" {
		pid = d.ProviderSubID
	}
	return Subscription{ID: r.ID, Provider: r.Provider, ProviderSubscriptionID: pid, Status: r.Status, RedirectURL: d.RedirectURL,
		Plan: d.Plan, Customer: d.Customer, Reference: d.Reference, CurrentPeriodEnd: d.CurrentPeriodEnd, Renewals: d.Renewals,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func (in *CreateInput) validate() error {
	p := &in.Plan
	p.Currency = strings.ToUpper(strings.TrimSpace(p.Currency))
	switch {
	case p.ID == "" && p.Amount <= 0:
		return validation.New("plan", "give plan.id (the provider's plan or price) or plan.amount with currency and interval")
	case p.ID == "" && (provider.Money{Amount: p.Amount, Currency: p.Currency}).Validate() != nil:
		return validation.New("plan.currency", "must be a three-letter ISO 4217 code such as CLP")
	case p.ID == "" && p.Interval != "day" && p.Interval != "week" && p.Interval != "month" && p.Interval != "year":
		return validation.New("plan.interval", "must be day, week, month or year")
	case p.IntervalCount < 0 || p.IntervalCount > 365:
		return validation.New("plan.interval_count", "must be between 1 and 365")
	case strings.TrimSpace(in.Reference) == "":
		return validation.New("reference", "is required (your customer's or contract's id)")
	case strings.TrimSpace(in.Customer.Email) == "":
		return validation.New("customer.email", "is required")
	case in.ReturnURL != "" && !strings.HasPrefix(in.ReturnURL, "https://") && !strings.HasPrefix(in.ReturnURL, "http://"):
		return validation.New("return_url", "must be an absolute http(s) URL")
	}
	if p.ID == "" && p.IntervalCount == 0 {
		p.IntervalCount = 1
	}
	return nil
}

func (s *Service) subscriber(t *tenant.Tenant, name string) (payments.Subscriber, provider.Tenant, string, error) {
	if name == "" {
		def, ok := t.DefaultProvider(string(provider.CapabilityPayments))
		if !ok {
			return nil, provider.Tenant{}, "", fmt.Errorf("%w: the request names no provider and the tenant has no default for payments", ErrNoProvider)
		}
		name = def
	}
	pt, ok := t.ProviderTenant(name)
	if !ok {
		return nil, provider.Tenant{}, "", fmt.Errorf("%w: provider %q is not enabled for this tenant", ErrNoProvider, name)
	}
	pp, err := s.cfg.Plugins.Payments(name)
	if err != nil {
		return nil, provider.Tenant{}, "", err
	}
	sub, ok := pp.(payments.Subscriber)
	if !ok {
		return nil, provider.Tenant{}, "", fmt.Errorf("%w: provider %q has no subscriptions", ErrNoProvider, name)
	}
	return sub, pt, name, nil
}

func (s *Service) call(ctx context.Context, t *tenant.Tenant, prov, action, resource string, req any, fn func(context.Context) (any, error)) error {
	err := s.runner.Run(ctx, plugincall.Call{TenantID: t.ID, Provider: prov, Action: action, Resource: resource,
		Request: req, Secrets: t.SecretValues(prov), Timeout: s.cfg.CallTimeout}, fn)
	if err != nil {
		return fmt.Errorf("subscription: %w", err)
	}
	return nil
}

// Validate checks in without calling anyone.
func (s *Service) Validate(t *tenant.Tenant, in *CreateInput) error {
	if err := in.validate(); err != nil {
		return err
	}
	_, _, name, err := s.subscriber(t, in.Provider)
	in.Provider = name
	return err
}

// Create starts a subscription as operation opID.
func (s *Service) Create(ctx context.Context, t *tenant.Tenant, opID string, in CreateInput) (Subscription, error) {
	if err := s.Validate(t, &in); err != nil {
		return Subscription{}, err
	}
	sub, pt, name, err := s.subscriber(t, in.Provider)
	if err != nil {
		return Subscription{}, err
	}
	id := "sub_" + opID
	req := payments.SubscriptionRequest{
		Tenant: pt, IdempotencyKey: "pipecore:" + t.ID + ":" + opID, SubscriptionID: id,
		Plan: payments.Plan{PlanID: in.Plan.ID, Amount: provider.Money{Amount: in.Plan.Amount, Currency: in.Plan.Currency},
			Interval: payments.Interval(in.Plan.Interval), IntervalCount: in.Plan.IntervalCount},
		Customer:  payments.Customer{Email: in.Customer.Email, Name: in.Customer.Name, Phone: in.Customer.Phone},
		Reference: in.Reference, Description: in.Description, ReturnURL: in.ReturnURL,
	}
	var got payments.Subscription
	err = s.call(ctx, t, name, "subscriptions.create", id, map[string]any{"subscription_id": id, "plan": in.Plan, "reference": in.Reference,
		"customer": in.Customer, "return_url": in.ReturnURL, "idempotency_key": req.IdempotencyKey}, func(ctx context.Context) (any, error) {
		var err error
		got, err = sub.CreateSubscription(ctx, req)
		return map[string]any{"id": got.ID, "status": got.Status, "redirect_url": got.RedirectURL}, err
	})
	if err != nil {
		return Subscription{}, err
	}
	if got.ID == "" {
		return Subscription{}, fmt.Errorf("subscription: %s returned no id", name)
	}
	status := string(got.Status)
	if !got.Status.Valid() {
		status = string(payments.SubscriptionPending)
	}
	d := doc{Plan: in.Plan, Customer: in.Customer, Reference: in.Reference, RedirectURL: got.RedirectURL, CorrelationID: provider.RequestID(ctx)}
	if !got.CurrentPeriodEnd.IsZero() {
		e := got.CurrentPeriodEnd.UTC()
		d.CurrentPeriodEnd = &e
	}
	now := s.now()
	err = s.cfg.Store.CreateResource(ctx, store.Resource{Kind: Kind, ID: id, TenantID: t.ID, Provider: name, ProviderID: got.ID,
		Status: status, Doc: mustJSON(d), CreatedAt: now})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return Subscription{}, fmt.Errorf("subscription: store %s: %w", id, err)
	}
	return s.Get(ctx, t, id, false)
}

// Get returns the tenant's subscription; with refresh it reads the
// provider's status first (and announces a change).
func (s *Service) Get(ctx context.Context, t *tenant.Tenant, id string, refresh bool) (Subscription, error) {
	r, err := s.load(ctx, t.ID, id)
	if err != nil {
		return Subscription{}, err
	}
	if !refresh {
		return view(r), nil
	}
	sub, pt, _, err := s.subscriber(t, r.Provider)
	if err != nil {
		return Subscription{}, err
	}
	var got payments.Subscription
	err = s.call(ctx, t, r.Provider, "subscriptions.get", id, map[string]any{"id": r.ProviderID}, func(ctx context.Context) (any, error) {
		var err error
		got, err = sub.GetSubscription(ctx, payments.GetRequest{Tenant: pt, ID: r.ProviderID})
		return map[string]any{"id": got.ID, "status": got.Status}, err
	})
	if err != nil {
		return Subscription{}, err
	}
	if err := s.observe(ctx, r, got); err != nil {
		return Subscription{}, err
	}
	r, err = s.load(ctx, t.ID, id)
	if err != nil {
		return Subscription{}, err
	}
	return view(r), nil
}

// Cancel stops the subscription at the provider.
func (s *Service) Cancel(ctx context.Context, t *tenant.Tenant, id, opID string) (Subscription, error) {
	r, err := s.load(ctx, t.ID, id)
	if err != nil {
		return Subscription{}, err
	}
	if r.Status == string(payments.SubscriptionCancelled) {
		return view(r), nil
	}
	sub, pt, _, err := s.subscriber(t, r.Provider)
	if err != nil {
		return Subscription{}, err
	}
	req := payments.CancelRequest{Tenant: pt, IdempotencyKey: "pipecore:" + t.ID + ":" + opID, ID: r.ProviderID}
	var got payments.Subscription
	err = s.call(ctx, t, r.Provider, "subscriptions.cancel", id, map[string]any{"id": r.ProviderID, "idempotency_key": req.IdempotencyKey}, func(ctx context.Context) (any, error) {
		var err error
		got, err = sub.CancelSubscription(ctx, req)
		return map[string]any{"id": got.ID, "status": got.Status}, err
	})
	if err != nil {
		return Subscription{}, err
	}
	got.Status = payments.SubscriptionCancelled
	if err := s.observe(ctx, r, got); err != nil {
		return Subscription{}, err
	}
	r, err = s.load(ctx, t.ID, id)
	if err != nil {
		return Subscription{}, err
	}
	return view(r), nil
}

func (s *Service) load(ctx context.Context, tenantID, id string) (store.Resource, error) {
	r, err := s.cfg.Store.GetResource(ctx, Kind, tenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return r, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return r, err
}

// eventFor is the event announcing a move to status ("" for none).
func eventFor(status string) string {
	switch payments.SubscriptionStatus(status) {
	case payments.SubscriptionActive:
		return "subscription.authorized"
	case payments.SubscriptionPastDue:
		return "subscription.payment_failed"
	case payments.SubscriptionCancelled:
		return "subscription.cancelled"
	}
	return ""
}

// observe records a status read from the provider (refresh, cancel).
func (s *Service) observe(ctx context.Context, r store.Resource, got payments.Subscription) error {
	st := string(got.Status)
	typ := eventFor(st)
	if typ == "" || st == r.Status {
		if got.Status.Valid() && st != r.Status {
			_, err := s.cfg.Store.UpdateResource(ctx, Kind, r.TenantID, r.ID, func(cur *store.Resource) error { cur.Status = st; return nil })
			return err
		}
		return nil
	}
	d := decodeDoc(&r)
	probe := r
	probe.Status = st
	return s.record(ctx, probe, typ, eventData(&probe, &d, nil), func(cur *store.Resource) bool {
		if cur.Status == st || cur.Status == string(payments.SubscriptionCancelled) {
			return false
		}
		cur.Status = st
		return true
	})
}

func (s *Service) record(ctx context.Context, r store.Resource, typ string, data map[string]any, apply func(*store.Resource) bool) error {
	d := decodeDoc(&r)
	now := s.now()
	ev, err := event.New(r.TenantID, r.Provider, typ, now, d.CorrelationID, data)
	if err != nil {
		return err
	}
	ev.Subject, ev.CreatedAt = r.ProviderID, now
	_, err = s.cfg.Store.RecordEvents(ctx, store.EventBatch{TenantID: r.TenantID, Now: now, Events: []store.Event{ev},
		Resources: []store.ResourceChange{{Kind: Kind, ID: r.ID, Events: []int{0}, Apply: apply}}})
	if err != nil {
		return fmt.Errorf("subscription: record %s: %w", typ, err)
	}
	s.cfg.Notify()
	return nil
}

func eventData(r *store.Resource, d *doc, extra map[string]any) map[string]any {
	pid := r.ProviderID
	if d.ProviderSubID != "" {
		pid = d.ProviderSubID
	}
	data := map[string]any{"subscription_id": r.ID, "provider_subscription_id": pid, "status": r.Status, "plan": d.Plan,
		"reference": d.Reference}
	if d.Customer != (Customer{}) {
		data["customer"] = d.Customer
	}
	if d.CurrentPeriodEnd != nil {
		data["current_period_end"] = d.CurrentPeriodEnd.Format(time.RFC3339)
	}
	for k, v := range extra {
		data[k] = v
	}
	return data
}

// Link implements normalize.Linker for subscription.* events: the gateway's
// subscription is found by the gateway id the plugin read from the
// provider's metadata (checked to belong to the tenant), else by the
// provider's id; authorized and cancelled are announced once, every
// renewal and failed charge is announced.
func (s *Service) Link(ctx context.Context, tenantID, prov string, ev provider.Event, data map[string]any) ([]store.Linked, string, store.ResourceChange, bool) {
	if !strings.HasPrefix(ev.Type, "subscription.") {
		return nil, "", store.ResourceChange{}, false
	}
	var r store.Resource
	found := false
	if id, _ := data["subscription_id"].(string); id != "" {
		if got, err := s.cfg.Store.GetResource(ctx, Kind, tenantID, id); err == nil && got.Provider == prov {
			r, found = got, true
		}
	}
	for _, pid := range []string{ev.Subject, str(data, "provider_subscription_id")} {
		if found || pid == "" {
			continue
		}
		if got, err := s.cfg.Store.ResourceByProviderID(ctx, Kind, prov, pid); err == nil && got.TenantID == tenantID {
			r, found = got, true
		}
	}
	if !found {
		return nil, "", store.ResourceChange{}, false
	}
	typ := ev.Type
	var status string
	switch typ {
	case "subscription.authorized", "subscription.renewed":
		status = string(payments.SubscriptionActive)
	case "subscription.payment_failed":
		status = string(payments.SubscriptionPastDue)
	case "subscription.cancelled":
		status = string(payments.SubscriptionCancelled)
	}
	providerSub := str(data, "provider_subscription_id")
	var periodEnd *time.Time
	if v := str(data, "current_period_end"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			t = t.UTC()
			periodEnd = &t
		}
	}
	apply := func(cur *store.Resource) bool {
		if cur.Status == string(payments.SubscriptionCancelled) {
			return false
		}
		cd := decodeDoc(cur)
		switch typ {
		case "subscription.authorized", "subscription.cancelled":
			if cur.Status == status {
				return false
			}
		case "subscription.renewed":
			cd.Renewals++
		}
		if status != "" {
			cur.Status = status
		}
		if providerSub != "" && providerSub != cur.ProviderID {
			cd.ProviderSubID = providerSub
		}
		if periodEnd != nil {
			cd.CurrentPeriodEnd = periodEnd
		}
		cur.Doc = mustJSON(cd)
		return true
	}
	d := decodeDoc(&r)
	if providerSub != "" && providerSub != r.ProviderID {
		d.ProviderSubID = providerSub
	}
	if periodEnd != nil {
		d.CurrentPeriodEnd = periodEnd
	}
	probe := r
	if status != "" {
		probe.Status = status
	}
	extra := map[string]any{}
	for _, k := range []string{"provider_payment_id", "amount", "reason"} {
		if v, ok := data[k]; ok {
			extra[k] = v
		}
	}
	return []store.Linked{{Type: typ, Data: eventData(&probe, &d, extra)}}, d.CorrelationID, store.ResourceChange{Kind: Kind, ID: r.ID, Apply: apply}, true
}

func str(m map[string]any, k string) string {
	v, _ := m[k].(string)
	return v
}
