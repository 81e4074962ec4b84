package payment

import (
	"context"
	"fmt"
	"time"

	"github.com/pipecore/pipecore/core/internal/event"
	"github.com/pipecore/pipecore/core/internal/normalize"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/sdk/payments"
)

// statusEvent is the event announcing that a payment reached status s, or
// "" for a status that is not announced on its own.
func statusEvent(s string) string {
	switch payments.Status(s) {
	case payments.StatusSucceeded:
		return "payment.confirmed"
	case payments.StatusFailed:
		return "payment.failed"
	case payments.StatusCancelled:
		return "payment.cancelled"
	}
	return ""
}

// settle applies fn to the tenant's payment id. When that moves the
// payment to a final status (succeeded, failed, cancelled), the event
// announcing it is recorded in the same transaction, and only if the
// payment was not in that status already: a webhook, the customer's return
// and the reconciliation job may each see the change; the tenant hears of
// it once. It returns the payment as stored.
func (s *Service) settle(ctx context.Context, tenantID, id string, fn func(*store.Payment)) (store.Payment, error) {
	cur, err := s.cfg.Store.GetPayment(ctx, tenantID, id)
	if err != nil {
		return store.Payment{}, fmt.Errorf("payment: load %s: %w", id, err)
	}
	next := cur
	fn(&next)
	typ := ""
	if next.Status != cur.Status {
		typ = statusEvent(next.Status)
	}
	if typ == "" {
		return s.cfg.Store.UpdatePayment(ctx, tenantID, id, func(p *store.Payment) error {
			fn(p)
			p.UpdatedAt = s.cfg.Now().UTC().Truncate(time.Microsecond)
			return nil
		})
	}
	ev, err := s.render(next, typ, nil)
	if err != nil {
		return store.Payment{}, err
	}
	_, err = s.cfg.Store.RecordEvents(ctx, store.EventBatch{TenantID: tenantID, Now: ev.CreatedAt, Events: []store.Event{ev},
		Payments: []store.PaymentChange{{PaymentID: id, Events: []int{0}, Keep: normalize.KeepStatusEvent(typ), Apply: fn}}})
	if err != nil {
		return store.Payment{}, fmt.Errorf("payment: record %s: %w", typ, err)
	}
	s.cfg.Notify()
	return s.cfg.Store.GetPayment(ctx, tenantID, id)
}

// render builds one payment event (the payment's own fields plus extra).
func (s *Service) render(p store.Payment, typ string, extra map[string]any) (store.Event, error) {
	data := map[string]any{
		"payment_id": p.ID, "provider_payment_id": p.ProviderPaymentID, "status": p.Status,
		"amount": map[string]any{"amount": p.Amount, "currency": p.Currency}, "reference": p.Reference,
		"method": p.Method,
	}
	if p.Customer != nil {
		data["customer"] = p.Customer
	}
	if s.cfg.PublicURL != "" && len(p.RedirectForm) > 0 {
		data["redirect_url"] = CheckoutURL(s.cfg.PublicURL, p)
	}
	if typ == "payment.failed" {
		data["failure_code"], data["failure_message"] = p.FailureCode, p.FailureMessage
	}
	for k, v := range extra {
		data[k] = v
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	ev, err := event.New(p.TenantID, p.Provider, typ, now, p.CorrelationID, data)
	if err != nil {
		return store.Event{}, fmt.Errorf("payment: render %s: %w", typ, err)
	}
	ev.Subject, ev.PaymentID, ev.CreatedAt = p.ProviderPaymentID, p.ID, now
	return ev, nil
}
