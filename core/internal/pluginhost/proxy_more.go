package pluginhost

import (
	"context"
	"fmt"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Delivery returns the delivery capability of the named plugin. The value
// stays valid across restarts and swaps of the plugin; each call goes to
// the version serving the request's tenant.
func (h *Host) Delivery(name string) (delivery.Provider, error) {
	if err := h.known(name); err != nil {
		return nil, err
	}
	if info, ok := h.info(name); ok && !info.Has(provider.CapabilityDelivery) {
		return nil, fmt.Errorf("%w: %s has no delivery", ErrCapability, name)
	}
	return &deliveryProxy{h: h, name: name}, nil
}

// Messaging returns the messaging capability of the named plugin. The
// value stays valid across restarts and swaps of the plugin; each call
// goes to the version serving the request's tenant.
func (h *Host) Messaging(name string) (messaging.Provider, error) {
	if err := h.known(name); err != nil {
		return nil, err
	}
	if info, ok := h.info(name); ok && !info.Has(provider.CapabilityMessaging) {
		return nil, fmt.Errorf("%w: %s has no messaging", ErrCapability, name)
	}
	return &messagingProxy{h: h, name: name}, nil
}

// deliveryProxy routes delivery calls by tenant.
type deliveryProxy struct {
	h    *Host
	name string
}

var _ delivery.Provider = (*deliveryProxy)(nil)

func (p *deliveryProxy) Info() provider.Info {
	info, _ := p.h.info(p.name)
	return info
}

// deliveryCall runs fn on the delivery capability of the instance serving
// tenant.
func deliveryCall[T any](ctx context.Context, p *deliveryProxy, tenant provider.Tenant, fn func(delivery.Provider) (T, error)) (T, error) {
	return call(ctx, p.h, p.name, tenant, func(inst Instance) (T, error) {
		d := inst.Delivery()
		if d == nil {
			var zero T
			return zero, fmt.Errorf("%w: %s has no delivery", ErrCapability, inst.Info().Name)
		}
		return fn(d)
	})
}

func (p *deliveryProxy) Quote(ctx context.Context, r delivery.QuoteRequest) (delivery.Quote, error) {
	return deliveryCall(ctx, p, r.Tenant, func(d delivery.Provider) (delivery.Quote, error) { return d.Quote(ctx, r) })
}

func (p *deliveryProxy) CreateShipment(ctx context.Context, r delivery.CreateRequest) (delivery.Shipment, error) {
	return deliveryCall(ctx, p, r.Tenant, func(d delivery.Provider) (delivery.Shipment, error) { return d.CreateShipment(ctx, r) })
}

func (p *deliveryProxy) GetShipment(ctx context.Context, r delivery.GetRequest) (delivery.Shipment, error) {
	return deliveryCall(ctx, p, r.Tenant, func(d delivery.Provider) (delivery.Shipment, error) { return d.GetShipment(ctx, r) })
}

func (p *deliveryProxy) CancelShipment(ctx context.Context, r delivery.CancelRequest) (delivery.Shipment, error) {
	return deliveryCall(ctx, p, r.Tenant, func(d delivery.Provider) (delivery.Shipment, error) { return d.CancelShipment(ctx, r) })
}

// messagingProxy routes Send by tenant.
type messagingProxy struct {
	h    *Host
	name string
}

var _ messaging.Provider = (*messagingProxy)(nil)

func (p *messagingProxy) Info() provider.Info {
	info, _ := p.h.info(p.name)
	return info
}

func (p *messagingProxy) Send(ctx context.Context, r messaging.SendRequest) (messaging.Receipt, error) {
	return call(ctx, p.h, p.name, r.Tenant, func(inst Instance) (messaging.Receipt, error) {
		m := inst.Messaging()
		if m == nil {
			return messaging.Receipt{}, fmt.Errorf("%w: %s has no messaging", ErrCapability, inst.Info().Name)
		}
		return m.Send(ctx, r)
	})
}
