package pluginhost

import (
	"context"
	"fmt"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// paymentsProxy routes payments calls to the supervisor's current instance.
type paymentsProxy struct{ s *supervisor }

var (
	_ payments.Provider  = (*paymentsProxy)(nil)
	_ payments.Capturer  = (*paymentsProxy)(nil)
	_ payments.Confirmer = (*paymentsProxy)(nil)
	_ payments.Canceler  = (*paymentsProxy)(nil)
)

func (p *paymentsProxy) Info() provider.Info {
	info, _ := p.s.info()
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
	return do(ctx, p.s, func(inst Instance) (payments.Payment, error) {
		pp, err := capability(inst)
		if err != nil {
			return payments.Payment{}, err
		}
		return pp.CreatePayment(ctx, r)
	})
}

func (p *paymentsProxy) GetPayment(ctx context.Context, r payments.GetRequest) (payments.Payment, error) {
	return do(ctx, p.s, func(inst Instance) (payments.Payment, error) {
		pp, err := capability(inst)
		if err != nil {
			return payments.Payment{}, err
		}
		return pp.GetPayment(ctx, r)
	})
}

func (p *paymentsProxy) Refund(ctx context.Context, r payments.RefundRequest) (payments.Refund, error) {
	return do(ctx, p.s, func(inst Instance) (payments.Refund, error) {
		pp, err := capability(inst)
		if err != nil {
			return payments.Refund{}, err
		}
		return pp.Refund(ctx, r)
	})
}

func (p *paymentsProxy) Capture(ctx context.Context, r payments.CaptureRequest) (payments.Payment, error) {
	return do(ctx, p.s, func(inst Instance) (payments.Payment, error) {
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
	return do(ctx, p.s, func(inst Instance) (payments.Payment, error) {
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
	return do(ctx, p.s, func(inst Instance) (payments.Payment, error) {
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

// webhookProxy routes ParseWebhook to the current instance.
type webhookProxy struct{ s *supervisor }

func (w *webhookProxy) ParseWebhook(ctx context.Context, r provider.WebhookRequest) ([]provider.Event, error) {
	return do(ctx, w.s, func(inst Instance) ([]provider.Event, error) {
		wp := inst.WebhookParser()
		if wp == nil {
			return nil, provider.ErrUnsupported
		}
		return wp.ParseWebhook(ctx, r)
	})
}
