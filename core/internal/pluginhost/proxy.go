package pluginhost

import (
	"context"
	"fmt"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// paymentsProxy routes each payments call to the version serving the
// request's tenant.
type paymentsProxy struct {
	h    *Host
	name string
}

var (
	_ payments.Provider   = (*paymentsProxy)(nil)
	_ payments.Capturer   = (*paymentsProxy)(nil)
	_ payments.Confirmer  = (*paymentsProxy)(nil)
	_ payments.Canceler   = (*paymentsProxy)(nil)
	_ payments.Reconciler = (*paymentsProxy)(nil)
)

// Info returns the Info of the version serving tenants without a version
// constraint.
func (p *paymentsProxy) Info() provider.Info {
	info, _ := p.h.info(p.name)
	return info
}

func capability(inst Instance) (payments.Provider, error) {
	pp := inst.Payments()
	if pp == nil {
		return nil, fmt.Errorf("%w: %s has no payments", ErrCapability, inst.Info().Name)
	}
	return pp, nil
}

func (p *paymentsProxy) CreatePayment(ctx context.Context, r payments.CreateRequest) (payments.Payment, error) {
	return call(ctx, p.h, p.name, r.Tenant, func(inst Instance) (payments.Payment, error) {
		pp, err := capability(inst)
		if err != nil {
			return payments.Payment{}, err
		}
		return pp.CreatePayment(ctx, r)
	})
}

func (p *paymentsProxy) GetPayment(ctx context.Context, r payments.GetRequest) (payments.Payment, error) {
	return call(ctx, p.h, p.name, r.Tenant, func(inst Instance) (payments.Payment, error) {
		pp, err := capability(inst)
		if err != nil {
			return payments.Payment{}, err
		}
		return pp.GetPayment(ctx, r)
	})
}

func (p *paymentsProxy) Refund(ctx context.Context, r payments.RefundRequest) (payments.Refund, error) {
	return call(ctx, p.h, p.name, r.Tenant, func(inst Instance) (payments.Refund, error) {
		pp, err := capability(inst)
		if err != nil {
			return payments.Refund{}, err
		}
		return pp.Refund(ctx, r)
	})
}

func (p *paymentsProxy) Capture(ctx context.Context, r payments.CaptureRequest) (payments.Payment, error) {
	return call(ctx, p.h, p.name, r.Tenant, func(inst Instance) (payments.Payment, error) {
		pp, err := capability(inst)
		if err != nil {
			return payments.Payment{}, err
		}
		c, ok := pp.(payments.Capturer)
		if !ok {
			return payments.Payment{}, provider.ErrUnsupported
		}
		return c.Capture(ctx, r)
	})
}

func (p *paymentsProxy) Confirm(ctx context.Context, r payments.ConfirmRequest) (payments.Payment, error) {
	return call(ctx, p.h, p.name, r.Tenant, func(inst Instance) (payments.Payment, error) {
		pp, err := capability(inst)
		if err != nil {
			return payments.Payment{}, err
		}
		c, ok := pp.(payments.Confirmer)
		if !ok {
			return payments.Payment{}, provider.ErrUnsupported
		}
		return c.Confirm(ctx, r)
	})
}

func (p *paymentsProxy) Cancel(ctx context.Context, r payments.CancelRequest) (payments.Payment, error) {
	return call(ctx, p.h, p.name, r.Tenant, func(inst Instance) (payments.Payment, error) {
		pp, err := capability(inst)
		if err != nil {
			return payments.Payment{}, err
		}
		c, ok := pp.(payments.Canceler)
		if !ok {
			return payments.Payment{}, provider.ErrUnsupported
		}
		return c.Cancel(ctx, r)
	})
}

// Reconcile implements payments.Reconciler; a plugin without it answers
// provider.ErrUnsupported.
func (p *paymentsProxy) Reconcile(ctx context.Context, r payments.GetRequest) (payments.Payment, error) {
	return call(ctx, p.h, p.name, r.Tenant, func(inst Instance) (payments.Payment, error) {
		pp, err := capability(inst)
		if err != nil {
			return payments.Payment{}, err
		}
		c, ok := pp.(payments.Reconciler)
		if !ok {
			return payments.Payment{}, provider.ErrUnsupported
		}
		return c.Reconcile(ctx, r)
	})
}

// webhookProxy routes ParseWebhook to the version serving the request's
// tenant.
type webhookProxy struct {
	h    *Host
	name string
}

func (w *webhookProxy) ParseWebhook(ctx context.Context, r provider.WebhookRequest) ([]provider.Event, error) {
	return call(ctx, w.h, w.name, r.Tenant, func(inst Instance) ([]provider.Event, error) {
		wp := inst.WebhookParser()
		if wp == nil {
			return nil, provider.ErrUnsupported
		}
		return wp.ParseWebhook(ctx, r)
	})
}
