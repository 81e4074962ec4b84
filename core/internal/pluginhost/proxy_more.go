package pluginhost

import (
	"context"
	"fmt"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Delivery returns the delivery capability of the named plugin. The value
// stays valid across restarts of the plugin.
func (h *Host) Delivery(name string) (delivery.Provider, error) {
	s, err := h.supervisor(name)
	if err != nil {
		return nil, err
	}
	if info, ok := s.info(); ok && !info.Has(provider.CapabilityDelivery) {
		return nil, fmt.Errorf("%w: %s has no delivery", ErrCapability, name)
	}
	return &deliveryProxy{s: s}, nil
}

// Messaging returns the messaging capability of the named plugin. The
// value stays valid across restarts of the plugin.
func (h *Host) Messaging(name string) (messaging.Provider, error) {
	s, err := h.supervisor(name)
	if err != nil {
		return nil, err
	}
	if info, ok := s.info(); ok && !info.Has(provider.CapabilityMessaging) {
		return nil, fmt.Errorf("%w: %s has no messaging", ErrCapability, name)
	}
	return &messagingProxy{s: s}, nil
}

// deliveryProxy routes delivery calls to the supervisor's current instance.
type deliveryProxy struct{ s *supervisor }

var _ delivery.Provider = (*deliveryProxy)(nil)

func (p *deliveryProxy) Info() provider.Info {
	info, _ := p.s.info()
	return info
}

func deliveryOf(inst Instance) (delivery.Provider, error) {
	d := inst.Delivery()
	if d == nil {
		return nil, fmt.Errorf("%w: %s has no delivery", ErrCapability, inst.Info().Name)
	}
	return d, nil
}

// deliveryCall runs fn on the current instance's delivery capability.
func deliveryCall[T any](ctx context.Context, s *supervisor, fn func(delivery.Provider) (T, error)) (T, error) {
	return do(ctx, s, func(inst Instance) (T, error) {
		d, err := deliveryOf(inst)
		if err != nil {
			var zero T
			return zero, err
		}
		return fn(d)
	})
}

func (p *deliveryProxy) Quote(ctx context.Context, r delivery.QuoteRequest) (delivery.Quote, error) {
	return deliveryCall(ctx, p.s, func(d delivery.Provider) (delivery.Quote, error) { return d.Quote(ctx, r) })
}

func (p *deliveryProxy) CreateShipment(ctx context.Context, r delivery.CreateRequest) (delivery.Shipment, error) {
	return deliveryCall(ctx, p.s, func(d delivery.Provider) (delivery.Shipment, error) { return d.CreateShipment(ctx, r) })
}

func (p *deliveryProxy) GetShipment(ctx context.Context, r delivery.GetRequest) (delivery.Shipment, error) {
	return deliveryCall(ctx, p.s, func(d delivery.Provider) (delivery.Shipment, error) { return d.GetShipment(ctx, r) })
}

func (p *deliveryProxy) CancelShipment(ctx context.Context, r delivery.CancelRequest) (delivery.Shipment, error) {
	return deliveryCall(ctx, p.s, func(d delivery.Provider) (delivery.Shipment, error) { return d.CancelShipment(ctx, r) })
}

// messagingProxy routes Send to the supervisor's current instance.
type messagingProxy struct{ s *supervisor }

var _ messaging.Provider = (*messagingProxy)(nil)

func (p *messagingProxy) Info() provider.Info {
	info, _ := p.s.info()
	return info
}

func (p *messagingProxy) Send(ctx context.Context, r messaging.SendRequest) (messaging.Receipt, error) {
	return do(ctx, p.s, func(inst Instance) (messaging.Receipt, error) {
		m := inst.Messaging()
		if m == nil {
			return messaging.Receipt{}, fmt.Errorf("%w: %s has no messaging", ErrCapability, inst.Info().Name)
		}
		return m.Send(ctx, r)
	})
}

var _ payments.Subscriber = (*paymentsProxy)(nil)

func subscriberOf(inst Instance) (payments.Subscriber, error) {
	pp, err := capability(inst)
	if err != nil {
		return nil, err
	}
	s, ok := pp.(payments.Subscriber)
	if !ok {
		return nil, provider.ErrUnsupported
	}
	return s, nil
}

func (p *paymentsProxy) CreateSubscription(ctx context.Context, r payments.SubscriptionRequest) (payments.Subscription, error) {
	return do(ctx, p.s, func(inst Instance) (payments.Subscription, error) {
		s, err := subscriberOf(inst)
		if err != nil {
			return payments.Subscription{}, err
		}
		return s.CreateSubscription(ctx, r)
	})
}

func (p *paymentsProxy) GetSubscription(ctx context.Context, r payments.GetRequest) (payments.Subscription, error) {
	return do(ctx, p.s, func(inst Instance) (payments.Subscription, error) {
		s, err := subscriberOf(inst)
		if err != nil {
			return payments.Subscription{}, err
		}
		return s.GetSubscription(ctx, r)
	})
}

func (p *paymentsProxy) CancelSubscription(ctx context.Context, r payments.CancelRequest) (payments.Subscription, error) {
	return do(ctx, p.s, func(inst Instance) (payments.Subscription, error) {
		s, err := subscriberOf(inst)
		if err != nil {
			return payments.Subscription{}, err
		}
		return s.CancelSubscription(ctx, r)
	})
}
