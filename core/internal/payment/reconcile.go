package payment

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// kindCheck is the resource kind of the reconciliation schedule: one
// record per payment that was not final at creation, due when the payment
// should be read again.
const kindCheck = "payment_check"

// Reconcile configures the reconciliation job.
type Reconcile struct {
	// After is how old a payment still pending or requiring action must
	// be before it is read from the provider. Zero means 15m.
	After time.Duration
	// MaxAge is when the job gives up on a payment. Zero means 72h.
	MaxAge time.Duration
}

type checkDoc struct {
	Attempts int `json:"attempts"`
}

// schedule registers a new payment for reconciliation when its status is
// not final.
func (s *Service) schedule(ctx context.Context, p store.Payment) {
	if statusEvent(p.Status) != "" || p.Status == string(payments.StatusRefunded) {
		return
	}
	err := s.cfg.Store.CreateResource(ctx, store.Resource{Kind: kindCheck, ID: p.ID, TenantID: p.TenantID, Provider: p.Provider,
		Status: "scheduled", CheckAt: p.CreatedAt.Add(s.cfg.Reconcile.After), Doc: mustJSON(checkDoc{}), CreatedAt: p.CreatedAt})
	if err != nil && !errors.Is(err, store.ErrExists) {
		s.cfg.Logger.Warn("payment not scheduled for reconciliation", "payment", p.ID, "error", err)
	}
}

// RunReconcile re-reads, until ctx ends, every payment still pending or
// requiring action After its creation, then on a doubling backoff until
// MaxAge. A change of status is recorded and announced exactly as a
// webhook would be, once (see settle). It checks every interval.
func (s *Service) RunReconcile(ctx context.Context, tenants *tenant.Registry, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		s.ReconcileOnce(ctx, tenants)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ReconcileOnce handles the payments due now.
func (s *Service) ReconcileOnce(ctx context.Context, tenants *tenant.Registry) {
	now := s.cfg.Now().UTC()
	due, err := s.cfg.Store.DueResources(ctx, kindCheck, now, 64)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Logger.Warn("reconciliation scan", "error", err)
		}
		return
	}
	for _, c := range due {
		if ctx.Err() != nil {
			return
		}
		var d checkDoc
		_ = json.Unmarshal(c.Doc, &d)
		done := false
		p, err := s.cfg.Store.GetPayment(ctx, c.TenantID, c.ID)
		t, ok := tenants.Get(c.TenantID)
		switch {
		case errors.Is(err, store.ErrNotFound), !ok:
			done = true
		case err != nil:
		case p.Status != string(payments.StatusPending) && p.Status != string(payments.StatusRequiresAction):
			done = true // settled meanwhile (webhook, return)
		case now.Sub(p.CreatedAt) > s.cfg.Reconcile.MaxAge:
			s.cfg.Logger.Warn("payment still unsettled after the reconciliation window; giving up", "tenant", p.TenantID, "payment", p.ID, "status", p.Status)
			done = true
		default:
			got, gerr := s.reconcileOne(ctx, t, p)
			if gerr != nil {
				s.cfg.Logger.Info("reconciliation read failed; will retry", "tenant", p.TenantID, "payment", p.ID, "error", gerr)
			} else if got.Status != string(payments.StatusPending) && got.Status != string(payments.StatusRequiresAction) {
				s.cfg.Logger.Info("payment reconciled", "tenant", p.TenantID, "payment", p.ID, "status", got.Status)
				done = true
			}
		}
		d.Attempts++
		wait := s.cfg.Reconcile.After
		for i := 1; i < d.Attempts && wait < 6*time.Hour; i++ {
			wait *= 2
		}
		_, err = s.cfg.Store.UpdateResource(ctx, kindCheck, c.TenantID, c.ID, func(r *store.Resource) error {
			r.Doc = mustJSON(d)
			if done {
				r.Status, r.CheckAt = "done", time.Time{}
			} else {
				r.CheckAt = now.Add(wait)
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("reconciliation reschedule", "payment", c.ID, "error", err)
		}
	}
}

// reconcileOne reads the payment's outcome from the provider and records
// it: through the provider's Reconcile when it has one (Transbank commits
// an authorization the customer's browser never brought back), else
// through GetPayment, as ?refresh=true does.
func (s *Service) reconcileOne(ctx context.Context, t *tenant.Tenant, p store.Payment) (store.Payment, error) {
	pp, pt, err := s.plugin(t, p.Provider)
	if err != nil {
		return store.Payment{}, err
	}
	r, ok := pp.(payments.Reconciler)
	if !ok {
		return s.Get(ctx, t, p.ID, true)
	}
	req := payments.GetRequest{Tenant: pt, ID: p.ProviderPaymentID}
	var got payments.Payment
	err = s.call(ctx, t, p.Provider, "payments.reconcile", p.ID, req, func(ctx context.Context) (any, error) {
		var err error
		got, err = r.Reconcile(ctx, req)
		return got, err
	})
	if errors.Is(err, provider.ErrUnsupported) {
		return s.Get(ctx, t, p.ID, true)
	}
	if err != nil {
		return store.Payment{}, err
	}
	return s.settle(ctx, t.ID, p.ID, func(p *store.Payment) { apply(p, got) })
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
