package payment

import (
	"context"
	"fmt"

	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/validation"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Capture captures an authorized payment (all of it when amount is zero)
// as operation opID. Providers without manual capture answer
// provider.ErrUnsupported.
func (s *Service) Capture(ctx context.Context, t *tenant.Tenant, id, opID string, amount int64) (store.Payment, error) {
	p, err := s.load(ctx, t, id)
	if err != nil {
		return store.Payment{}, err
	}
	if amount < 0 || amount > p.Amount {
		return store.Payment{}, validation.New("amount", fmt.Sprintf("must be between 1 and %d (0 captures everything)", p.Amount))
	}
	pp, pt, err := s.plugin(t, p.Provider)
	if err != nil {
		return store.Payment{}, err
	}
	c, ok := pp.(payments.Capturer)
	if !ok {
		return store.Payment{}, fmt.Errorf("payment: capture via %s: %w", p.Provider, provider.ErrUnsupported)
	}
	req := payments.CaptureRequest{Tenant: pt, IdempotencyKey: providerKey(t.ID, opID), ID: p.ProviderPaymentID}
	if amount > 0 {
		req.Amount = provider.Money{Amount: amount, Currency: p.Currency}
	}
	var got payments.Payment
	err = s.call(ctx, t, p.Provider, "payments.capture", id, map[string]any{"id": req.ID, "idempotency_key": req.IdempotencyKey, "amount": amount}, func(ctx context.Context) (any, error) {
		var err error
		got, err = c.Capture(ctx, req)
		return got, err
	})
	if err != nil {
		return store.Payment{}, err
	}
	return s.settle(ctx, t.ID, id, func(p *store.Payment) { apply(p, got) })
}

// Cancel cancels a payment before capture as operation opID.
func (s *Service) Cancel(ctx context.Context, t *tenant.Tenant, id, opID, reason string) (store.Payment, error) {
	p, err := s.load(ctx, t, id)
	if err != nil {
		return store.Payment{}, err
	}
	pp, pt, err := s.plugin(t, p.Provider)
	if err != nil {
		return store.Payment{}, err
	}
	c, ok := pp.(payments.Canceler)
	if !ok {
		return store.Payment{}, fmt.Errorf("payment: cancel via %s: %w", p.Provider, provider.ErrUnsupported)
	}
	req := payments.CancelRequest{Tenant: pt, IdempotencyKey: providerKey(t.ID, opID), ID: p.ProviderPaymentID, Reason: reason}
	var got payments.Payment
	err = s.call(ctx, t, p.Provider, "payments.cancel", id, map[string]any{"id": req.ID, "idempotency_key": req.IdempotencyKey, "reason": reason}, func(ctx context.Context) (any, error) {
		var err error
		got, err = c.Cancel(ctx, req)
		return got, err
	})
	if err != nil {
		return store.Payment{}, err
	}
	return s.settle(ctx, t.ID, id, func(p *store.Payment) { apply(p, got) })
}
