package pluginhost

import (
	"context"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

var _ payments.Subscriber = (*paymentsProxy)(nil)

// subscriberCall runs fn on the instance serving the tenant's version, when
// its payments capability offers subscriptions; else provider.ErrUnsupported.
func subscriberCall[T any](ctx context.Context, p *paymentsProxy, t provider.Tenant, fn func(payments.Subscriber) (T, error)) (T, error) {
	return call(ctx, p.h, p.name, t, func(inst Instance) (T, error) {
		var zero T
		pp, err := capability(inst)
		if err != nil {
			return zero, err
		}
		s, ok := pp.(payments.Subscriber)
		if !ok {
			return zero, provider.ErrUnsupported
		}
		return fn(s)
	})
}

// CreateSubscription implements payments.Subscriber.
func (p *paymentsProxy) CreateSubscription(ctx context.Context, r payments.SubscriptionRequest) (payments.Subscription, error) {
	return subscriberCall(ctx, p, r.Tenant, func(s payments.Subscriber) (payments.Subscription, error) { return s.CreateSubscription(ctx, r) })
}

// GetSubscription implements payments.Subscriber.
func (p *paymentsProxy) GetSubscription(ctx context.Context, r payments.GetRequest) (payments.Subscription, error) {
	return subscriberCall(ctx, p, r.Tenant, func(s payments.Subscriber) (payments.Subscription, error) { return s.GetSubscription(ctx, r) })
}

// CancelSubscription implements payments.Subscriber.
func (p *paymentsProxy) CancelSubscription(ctx context.Context, r payments.CancelRequest) (payments.Subscription, error) {
	return subscriberCall(ctx, p, r.Tenant, func(s payments.Subscriber) (payments.Subscription, error) { return s.CancelSubscription(ctx, r) })
}
