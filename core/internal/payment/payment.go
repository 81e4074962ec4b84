// Package payment runs the gateway's payment flows: create a payment at
// the tenant's provider, read it back, refund it. Every plugin call is
// bounded by the call timeout and recorded in the audit log, and the
// gateway's reference record (gateway id ↔ provider id ↔ tenant, status)
// is kept in the store.
package payment

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/plugincall"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/validation"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

var (
	// ErrNotFound: no payment with that id for the calling tenant.
	ErrNotFound = errors.New("payment: not found")
	// ErrNoProvider: the request names no provider and the tenant has no
	// default for payments, or names one the tenant has not enabled.
	ErrNoProvider = errors.New("payment: no payments provider")
)

// ValidationError is a request refused before calling anyone.
type ValidationError = validation.Error

// Plugins gives access to the payments capability of a plugin by name.
type Plugins interface {
	Payments(name string) (payments.Provider, error)
}

// Config configures a Service. Zero values mean the documented defaults.
type Config struct {
	Store   store.Store
	Plugins Plugins
	Audit   *audit.Recorder
	Logger  *slog.Logger
	// CallTimeout bounds one plugin call. Zero means 30s.
	CallTimeout time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// PublicURL is the gateway's public base URL. When set, redirect flows
	// send the customer back through {PublicURL}/return/{provider}/{tenant},
	// which completes the payment (e.g. Transbank's commit) and then
	// redirects to the tenant's return_url.
	PublicURL string
	// Reconcile configures the job that re-reads unsettled payments.
	Reconcile Reconcile
	// Notify is called after events were recorded, to wake the dispatcher.
	// Nil means no one is told (the dispatcher's scan still finds them).
	Notify func()
}

// Service runs payment flows. It is safe for concurrent use.
type Service struct{ cfg Config }

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Plugins == nil || cfg.Audit == nil {
		return nil, errors.New("payment: Store, Plugins and Audit are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	if cfg.Reconcile.After == 0 {
		cfg.Reconcile.After = 15 * time.Minute
	}
	if cfg.Reconcile.MaxAge == 0 {
		cfg.Reconcile.MaxAge = 72 * time.Hour
	}
	return &Service{cfg: cfg}, nil
}

// CreateInput is a tenant's request to take a payment.
type CreateInput struct {
	Provider    string
	Amount      int64
	Currency    string
	Reference   string
	Description string
	ReturnURL   string
	Customer    *store.Customer
	Metadata    map[string]string
	// CaptureMethod is "" or "automatic", or "manual" (authorize only).
	CaptureMethod string
}

// Result is a payment plus what only its creation returns.
type Result struct {
	Payment store.Payment
	// ClientSecret lets the tenant's front end finish an embedded payment.
	// It is returned once and never stored.
	ClientSecret string
}

// NewOperationID returns a random id for one gateway operation.
func NewOperationID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// PaymentID is the gateway id of the payment created by operation opID.
func PaymentID(opID string) string { return "pay_" + opID }

// providerKey derives the idempotency key the provider sees from the
// gateway operation, so every retry of one operation reaches the provider
// with the same key.
func providerKey(tenantID, opID string) string { return "pipecore:" + tenantID + ":" + opID }

func (in *CreateInput) validate() error {
	in.Currency = strings.ToUpper(strings.TrimSpace(in.Currency))
	switch {
	case in.Amount <= 0:
		return validation.New("amount", "must be a positive integer in the currency's minor unit")
	case (provider.Money{Amount: in.Amount, Currency: in.Currency}).Validate() != nil:
		return validation.New("currency", "must be a three-letter ISO 4217 code such as CLP or USD")
	case strings.TrimSpace(in.Reference) == "":
		return validation.New("reference", "is required (your order id)")
	case len(in.Reference) > 200:
		return validation.New("reference", "must be at most 200 characters")
	case len(in.Description) > 1000:
		return validation.New("description", "must be at most 1000 characters")
	case len(in.Metadata) > 50:
		return validation.New("metadata", "must have at most 50 keys")
	}
	if in.CaptureMethod != "" && in.CaptureMethod != "automatic" && in.CaptureMethod != "manual" {
		return validation.New("capture_method", "must be automatic or manual")
	}
	if in.ReturnURL != "" && !strings.HasPrefix(in.ReturnURL, "https://") && !strings.HasPrefix(in.ReturnURL, "http://") {
		return validation.New("return_url", "must be an absolute http(s) URL")
	}
	return nil
}

// pick resolves the provider of a request.
func pick(t *tenant.Tenant, name string) (string, error) {
	if name == "" {
		def, ok := t.DefaultProvider(string(provider.CapabilityPayments))
		if !ok {
			return "", fmt.Errorf("%w: the request names no provider and tenant %s has no default for payments", ErrNoProvider, t.ID)
		}
		return def, nil
	}
	if !t.Enabled(name) {
		return "", fmt.Errorf("%w: provider %q is not enabled for this tenant", ErrNoProvider, name)
	}
	return name, nil
}

// Validate checks in and resolves its provider without calling anyone.
func (s *Service) Validate(t *tenant.Tenant, in *CreateInput) error {
	if err := in.validate(); err != nil {
		return err
	}
	name, err := pick(t, in.Provider)
	if err != nil {
		return err
	}
	in.Provider = name
	return nil
}

// Create takes a payment at the tenant's provider as operation opID: the
// payment id and the provider's idempotency key derive from opID, so
// running the same operation again returns the same payment.
func (s *Service) Create(ctx context.Context, t *tenant.Tenant, opID string, in CreateInput) (Result, error) {
	if err := s.Validate(t, &in); err != nil {
		return Result{}, err
	}
	pp, pt, err := s.plugin(t, in.Provider)
	if err != nil {
		return Result{}, err
	}
	id := PaymentID(opID)
	req := payments.CreateRequest{
		Tenant: pt, IdempotencyKey: providerKey(t.ID, opID), PaymentID: id,
		Amount:    provider.Money{Amount: in.Amount, Currency: in.Currency},
		Reference: in.Reference, Description: in.Description, ReturnURL: s.returnURL(t.ID, in.Provider, id, in.ReturnURL), Metadata: in.Metadata,
		ManualCapture: in.CaptureMethod == "manual",
	}
	if c := in.Customer; c != nil {
		req.Customer = payments.Customer{Email: c.Email, Phone: c.Phone, Name: c.Name}
	}
	var got payments.Payment
	err = s.call(ctx, t, in.Provider, "payments.create", id, req, func(ctx context.Context) (any, error) {
		var err error
		got, err = pp.CreatePayment(ctx, req)
		return got, err
	})
	if err != nil {
		return Result{}, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	p := store.Payment{
		ID: id, TenantID: t.ID, Provider: in.Provider, ProviderPaymentID: got.ID,
		Amount: in.Amount, Currency: in.Currency, Reference: in.Reference, Description: in.Description,
		ReturnURL: in.ReturnURL, Customer: in.Customer, Metadata: in.Metadata,
		CorrelationID: provider.RequestID(ctx), CreatedAt: now, UpdatedAt: now,
	}
	apply(&p, got)
	err = s.cfg.Store.CreatePayment(ctx, p)
	switch {
	case errors.Is(err, store.ErrExists):
		// A previous run of this operation stored it (and announced it)
		// before failing to answer; the provider returned the same payment.
		p, err = s.cfg.Store.UpdatePayment(ctx, t.ID, id, func(old *store.Payment) error { apply(old, got); return nil })
	case err == nil:
		s.created(ctx, p)
		s.schedule(ctx, p)
		if typ := statusEvent(p.Status); typ != "" {
			// Final at creation (e.g. a direct card payment): announce it
			// too; a webhook saying the same later is not news.
			s.emit(ctx, p, typ, nil)
		}
	}
	if err != nil {
		return Result{}, fmt.Errorf("payment: store %s: %w", id, err)
	}
	return Result{Payment: p, ClientSecret: got.ClientSecret}, nil
}

// created records the payment.created event for the tenant's endpoints.
func (s *Service) created(ctx context.Context, p store.Payment) {
	s.emit(ctx, p, "payment.created", map[string]any{"redirect_url": CheckoutURL(s.cfg.PublicURL, p)})
}

// emit records one payment event (the payment's own fields plus extra)
// for the tenant's endpoints and wakes the dispatcher. The payment exists
// either way: a failure here is logged, not returned.
func (s *Service) emit(ctx context.Context, p store.Payment, typ string, extra map[string]any) {
	ev, err := s.render(p, typ, extra)
	if err == nil {
		_, err = s.cfg.Store.RecordEvents(ctx, store.EventBatch{TenantID: p.TenantID, Events: []store.Event{ev}, Now: ev.CreatedAt})
	}
	if err != nil {
		s.cfg.Logger.Error("payment event lost", "type", typ, "tenant", p.TenantID, "payment", p.ID, "error", err)
		return
	}
	s.cfg.Notify()
}

// Get returns the tenant's payment; with refresh it first reads the
// provider's current view and stores it.
func (s *Service) Get(ctx context.Context, t *tenant.Tenant, id string, refresh bool) (store.Payment, error) {
	p, err := s.load(ctx, t, id)
	if err != nil || !refresh {
		return p, err
	}
	pp, pt, err := s.plugin(t, p.Provider)
	if err != nil {
		return store.Payment{}, err
	}
	req := payments.GetRequest{Tenant: pt, ID: p.ProviderPaymentID}
	var got payments.Payment
	err = s.call(ctx, t, p.Provider, "payments.get", id, req, func(ctx context.Context) (any, error) {
		var err error
		got, err = pp.GetPayment(ctx, req)
		return got, err
	})
	if err != nil {
		return store.Payment{}, err
	}
	return s.settle(ctx, t.ID, id, func(p *store.Payment) { apply(p, got) })
}

// Refund refunds amount (zero: everything not yet refunded) of the
// tenant's payment as operation opID and returns the updated payment.
func (s *Service) Refund(ctx context.Context, t *tenant.Tenant, id, opID string, amount int64) (store.Payment, error) {
	p, err := s.load(ctx, t, id)
	if err != nil {
		return store.Payment{}, err
	}
	remaining := p.Amount - p.AmountRefunded
	switch {
	case amount < 0:
		return store.Payment{}, validation.New("amount", "must be a positive integer in the currency's minor unit")
	case remaining <= 0:
		return store.Payment{}, validation.New("amount", "the payment is already fully refunded")
	case amount > remaining:
		return store.Payment{}, validation.New("amount", fmt.Sprintf("exceeds the refundable amount %d", remaining))
	case amount == 0:
		amount = remaining
	}
	pp, pt, err := s.plugin(t, p.Provider)
	if err != nil {
		return store.Payment{}, err
	}
	req := payments.RefundRequest{
		Tenant: pt, IdempotencyKey: providerKey(t.ID, opID), ID: p.ProviderPaymentID,
		Amount: provider.Money{Amount: amount, Currency: p.Currency},
	}
	var got payments.Refund
	err = s.call(ctx, t, p.Provider, "payments.refund", id, req, func(ctx context.Context) (any, error) {
		var err error
		got, err = pp.Refund(ctx, req)
		return got, err
	})
	if err != nil {
		return store.Payment{}, err
	}
	refunded := amount
	if got.Amount.Amount > 0 {
		refunded = got.Amount.Amount
	}
	out, err := s.update(ctx, t, id, func(p *store.Payment) {
		// The gateway's record counts what it asked for: providers answer
		// with their own view, which fakes and sandboxes do not keep.
		p.AmountRefunded = min(p.Amount, p.AmountRefunded+refunded)
		if p.AmountRefunded == p.Amount {
			p.Status = string(payments.StatusRefunded)
		}
	})
	if err == nil && pp.Info().Webhook == nil {
		// A provider without webhooks (Transbank) will never tell: the
		// refund's answer is the news.
		s.emit(ctx, out, "payment.refunded", map[string]any{"refunded_amount": refunded, "refund_id": got.ID, "partial": out.AmountRefunded < out.Amount})
	}
	return out, err
}

func (s *Service) load(ctx context.Context, t *tenant.Tenant, id string) (store.Payment, error) {
	p, err := s.cfg.Store.GetPayment(ctx, t.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Payment{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return p, err
}

func (s *Service) update(ctx context.Context, t *tenant.Tenant, id string, fn func(*store.Payment)) (store.Payment, error) {
	p, err := s.cfg.Store.UpdatePayment(ctx, t.ID, id, func(p *store.Payment) error {
		fn(p)
		p.UpdatedAt = s.cfg.Now().UTC().Truncate(time.Microsecond)
		return nil
	})
	if err != nil {
		return store.Payment{}, fmt.Errorf("payment: store %s: %w", id, err)
	}
	return p, nil
}

func (s *Service) plugin(t *tenant.Tenant, name string) (payments.Provider, provider.Tenant, error) {
	pt, ok := t.ProviderTenant(name)
	if !ok {
		return nil, provider.Tenant{}, fmt.Errorf("%w: provider %q is not enabled for this tenant", ErrNoProvider, name)
	}
	pp, err := s.cfg.Plugins.Payments(name)
	if err != nil {
		return nil, provider.Tenant{}, err
	}
	return pp, pt, nil
}

// call runs one plugin call under the call timeout and records it in the
// audit log, with the tenant's secrets redacted.
func (s *Service) call(ctx context.Context, t *tenant.Tenant, prov, action, resource string, req any, fn func(context.Context) (any, error)) error {
	r := plugincall.Runner{Audit: s.cfg.Audit, Logger: s.cfg.Logger, Now: s.cfg.Now}
	wrapped := func(ctx context.Context) (any, error) {
		resp, err := fn(ctx)
		return auditView(resp), err
	}
	err := r.Run(ctx, plugincall.Call{
		TenantID: t.ID, Provider: prov, Action: action, Resource: resource,
		Request: auditView(req), Secrets: t.SecretValues(prov), Timeout: s.cfg.CallTimeout,
	}, wrapped)
	if err != nil {
		return fmt.Errorf("payment: %w", err)
	}
	return nil
}

// ErrorKind names the kind of a plugin call's failure for the audit log
// and metrics: "timeout", "unavailable" or the provider kind.
func ErrorKind(err error) string { return plugincall.ErrorKind(err) }

// auditView is what the audit log keeps of a plugin request or response:
// snake_case fields, no tenant (and so no credentials), no client secret.
func auditView(v any) any {
	money := func(m provider.Money) map[string]any {
		return map[string]any{"amount": m.Amount, "currency": m.Currency}
	}
	switch r := v.(type) {
	case payments.CreateRequest:
		return map[string]any{
			"idempotency_key": r.IdempotencyKey, "payment_id": r.PaymentID, "amount": money(r.Amount),
			"reference": r.Reference, "description": r.Description, "return_url": r.ReturnURL,
			"customer": map[string]string{"email": r.Customer.Email, "phone": r.Customer.Phone, "name": r.Customer.Name},
			"metadata": r.Metadata, "manual_capture": r.ManualCapture,
		}
	case payments.GetRequest:
		return map[string]any{"id": r.ID}
	case payments.RefundRequest:
		return map[string]any{"id": r.ID, "idempotency_key": r.IdempotencyKey, "amount": money(r.Amount), "reason": r.Reason}
	case payments.Payment:
		return map[string]any{
			"id": r.ID, "status": r.Status, "amount": money(r.Amount), "amount_refunded": r.AmountRefunded,
			"redirect_url": r.RedirectURL, "method": r.Method, "failure_code": r.FailureCode, "failure_message": r.FailureMessage,
		}
	case payments.Refund:
		return map[string]any{"id": r.ID, "amount": money(r.Amount), "status": r.Status}
	}
	return v
}

// settled reports whether a payment in status s is past the customer's
// part: succeeded, failed, cancelled or refunded.
func settled(s string) bool {
	switch payments.Status(s) {
	case payments.StatusPending, payments.StatusRequiresAction, "":
		return false
	}
	return true
}

// apply copies the provider's view onto the gateway's record.
func apply(p *store.Payment, got payments.Payment) {
	if got.ID != "" {
		p.ProviderPaymentID = got.ID
	}
	if got.Status.Valid() && !(settled(p.Status) && !settled(string(got.Status))) {
		// A settled payment never goes back to awaiting the customer: a
		// provider view that only knows the checkout (MercadoPago's
		// preference, a Stripe session) must not undo what the webhook
		// recorded.
		p.Status = string(got.Status)
	} else if p.Status == "" {
		p.Status = string(payments.StatusPending)
	}
	if got.AmountRefunded > p.AmountRefunded {
		p.AmountRefunded = got.AmountRefunded
	}
	if got.RedirectURL != "" {
		p.RedirectURL, p.RedirectForm = got.RedirectURL, got.RedirectForm
	}
	if got.Method != "" {
		p.Method = got.Method
	}
	p.FailureCode, p.FailureMessage = got.FailureCode, got.FailureMessage
}
