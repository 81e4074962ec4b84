package wire

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/pipecore/pipecore/sdk/delivery"
	pb "github.com/pipecore/pipecore/sdk/internal/providerpb"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Client is the host side of one plugin connection. Load must succeed
// before the capability views are used.
type Client struct {
	conn      grpc.ClientConnInterface
	plugin    pb.PluginClient
	payments  pb.PaymentsClient
	delivery  pb.DeliveryClient
	messaging pb.MessagingClient
	info      provider.Info
}

// NewClient wraps conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{
		conn:      conn,
		plugin:    pb.NewPluginClient(conn),
		payments:  pb.NewPaymentsClient(conn),
		delivery:  pb.NewDeliveryClient(conn),
		messaging: pb.NewMessagingClient(conn),
	}
}

// Load fetches and validates the plugin's Info.
func (c *Client) Load(ctx context.Context) (provider.Info, error) {
	m, err := c.plugin.GetInfo(ctx, &pb.GetInfoRequest{})
	if err != nil {
		return provider.Info{}, fmt.Errorf("get plugin info: %w", FromStatus(err))
	}
	info := InfoFrom(m)
	if err := info.Validate(); err != nil {
		return provider.Info{}, err
	}
	c.info = info
	return info, nil
}

// Conn returns the underlying connection (for health checks).
func (c *Client) Conn() grpc.ClientConnInterface { return c.conn }

// Info returns the Info fetched by Load.
func (c *Client) Info() provider.Info { return c.info }

// ParseWebhook implements provider.WebhookParser.
func (c *Client) ParseWebhook(ctx context.Context, r provider.WebhookRequest) ([]provider.Event, error) {
	m, err := c.plugin.ParseWebhook(ctx, webhookPB(ctx, r))
	if err != nil {
		return nil, FromStatus(err)
	}
	return eventsFrom(m), nil
}

// Payments returns the payments view, or nil when the plugin lacks the
// capability.
func (c *Client) Payments() *PaymentsClient {
	if !c.info.Has(provider.CapabilityPayments) {
		return nil
	}
	return &PaymentsClient{c}
}

// Delivery returns the delivery view, or nil.
func (c *Client) Delivery() *DeliveryClient {
	if !c.info.Has(provider.CapabilityDelivery) {
		return nil
	}
	return &DeliveryClient{c}
}

// Messaging returns the messaging view, or nil.
func (c *Client) Messaging() *MessagingClient {
	if !c.info.Has(provider.CapabilityMessaging) {
		return nil
	}
	return &MessagingClient{c}
}

// PaymentsClient implements payments.Provider and its optional interfaces
// over gRPC; an optional operation the plugin lacks fails with an error
// matching provider.ErrUnsupported.
type PaymentsClient struct{ c *Client }

var (
	_ payments.Provider   = (*PaymentsClient)(nil)
	_ payments.Capturer   = (*PaymentsClient)(nil)
	_ payments.Confirmer  = (*PaymentsClient)(nil)
	_ payments.Canceler   = (*PaymentsClient)(nil)
	_ payments.Subscriber = (*PaymentsClient)(nil)
	_ payments.Reconciler = (*PaymentsClient)(nil)
)

// Info implements provider.Provider.
func (p *PaymentsClient) Info() provider.Info { return p.c.info }

// CreatePayment implements payments.Provider.
func (p *PaymentsClient) CreatePayment(ctx context.Context, r payments.CreateRequest) (payments.Payment, error) {
	m, err := p.c.payments.CreatePayment(ctx, createPaymentPB(ctx, r))
	if err != nil {
		return payments.Payment{}, FromStatus(err)
	}
	return paymentFrom(m), nil
}

// GetPayment implements payments.Provider.
func (p *PaymentsClient) GetPayment(ctx context.Context, r payments.GetRequest) (payments.Payment, error) {
	m, err := p.c.payments.GetPayment(ctx, &pb.GetPaymentRequest{Call: callPB(ctx, r.Tenant), Id: r.ID})
	if err != nil {
		return payments.Payment{}, FromStatus(err)
	}
	return paymentFrom(m), nil
}

// Refund implements payments.Provider.
func (p *PaymentsClient) Refund(ctx context.Context, r payments.RefundRequest) (payments.Refund, error) {
	m, err := p.c.payments.RefundPayment(ctx, &pb.RefundRequest{
		Call: callPB(ctx, r.Tenant), IdempotencyKey: r.IdempotencyKey, Id: r.ID, Amount: moneyPB(r.Amount), Reason: r.Reason,
	})
	if err != nil {
		return payments.Refund{}, FromStatus(err)
	}
	return refundFrom(m), nil
}

// Capture implements payments.Capturer.
func (p *PaymentsClient) Capture(ctx context.Context, r payments.CaptureRequest) (payments.Payment, error) {
	m, err := p.c.payments.CapturePayment(ctx, &pb.CaptureRequest{
		Call: callPB(ctx, r.Tenant), IdempotencyKey: r.IdempotencyKey, Id: r.ID, Amount: moneyPB(r.Amount),
	})
	if err != nil {
		return payments.Payment{}, FromStatus(err)
	}
	return paymentFrom(m), nil
}

// Confirm implements payments.Confirmer.
func (p *PaymentsClient) Confirm(ctx context.Context, r payments.ConfirmRequest) (payments.Payment, error) {
	m, err := p.c.payments.ConfirmPayment(ctx, &pb.ConfirmRequest{
		Call: callPB(ctx, r.Tenant), IdempotencyKey: r.IdempotencyKey, Token: r.Token, Params: r.Params,
	})
	if err != nil {
		return payments.Payment{}, FromStatus(err)
	}
	return paymentFrom(m), nil
}

// Cancel implements payments.Canceler.
func (p *PaymentsClient) Cancel(ctx context.Context, r payments.CancelRequest) (payments.Payment, error) {
	m, err := p.c.payments.CancelPayment(ctx, &pb.CancelRequest{
		Call: callPB(ctx, r.Tenant), IdempotencyKey: r.IdempotencyKey, Id: r.ID, Reason: r.Reason,
	})
	if err != nil {
		return payments.Payment{}, FromStatus(err)
	}
	return paymentFrom(m), nil
}

// Reconcile implements payments.Reconciler.
func (p *PaymentsClient) Reconcile(ctx context.Context, r payments.GetRequest) (payments.Payment, error) {
	m, err := p.c.payments.ReconcilePayment(ctx, &pb.GetPaymentRequest{Call: callPB(ctx, r.Tenant), Id: r.ID})
	if err != nil {
		return payments.Payment{}, FromStatus(err)
	}
	return paymentFrom(m), nil
}

// CreateSubscription implements payments.Subscriber.
func (p *PaymentsClient) CreateSubscription(ctx context.Context, r payments.SubscriptionRequest) (payments.Subscription, error) {
	m, err := p.c.payments.CreateSubscription(ctx, subscriptionRequestPB(ctx, r))
	if err != nil {
		return payments.Subscription{}, FromStatus(err)
	}
	return subscriptionFrom(m), nil
}

// GetSubscription implements payments.Subscriber.
func (p *PaymentsClient) GetSubscription(ctx context.Context, r payments.GetRequest) (payments.Subscription, error) {
	m, err := p.c.payments.GetSubscription(ctx, &pb.GetSubscriptionRequest{Call: callPB(ctx, r.Tenant), Id: r.ID})
	if err != nil {
		return payments.Subscription{}, FromStatus(err)
	}
	return subscriptionFrom(m), nil
}

// CancelSubscription implements payments.Subscriber.
func (p *PaymentsClient) CancelSubscription(ctx context.Context, r payments.CancelRequest) (payments.Subscription, error) {
	m, err := p.c.payments.CancelSubscription(ctx, &pb.CancelRequest{
		Call: callPB(ctx, r.Tenant), IdempotencyKey: r.IdempotencyKey, Id: r.ID, Reason: r.Reason,
	})
	if err != nil {
		return payments.Subscription{}, FromStatus(err)
	}
	return subscriptionFrom(m), nil
}

// DeliveryClient implements delivery.Provider over gRPC.
type DeliveryClient struct{ c *Client }

var _ delivery.Provider = (*DeliveryClient)(nil)

// Info implements provider.Provider.
func (d *DeliveryClient) Info() provider.Info { return d.c.info }

// Quote implements delivery.Provider.
func (d *DeliveryClient) Quote(ctx context.Context, r delivery.QuoteRequest) (delivery.Quote, error) {
	m, err := d.c.delivery.QuoteDelivery(ctx, quoteRequestPB(ctx, r))
	if err != nil {
		return delivery.Quote{}, FromStatus(err)
	}
	return quoteFrom(m), nil
}

// CreateShipment implements delivery.Provider.
func (d *DeliveryClient) CreateShipment(ctx context.Context, r delivery.CreateRequest) (delivery.Shipment, error) {
	m, err := d.c.delivery.CreateShipment(ctx, createShipmentPB(ctx, r))
	if err != nil {
		return delivery.Shipment{}, FromStatus(err)
	}
	return shipmentFrom(m), nil
}

// GetShipment implements delivery.Provider.
func (d *DeliveryClient) GetShipment(ctx context.Context, r delivery.GetRequest) (delivery.Shipment, error) {
	m, err := d.c.delivery.GetShipment(ctx, &pb.GetShipmentRequest{Call: callPB(ctx, r.Tenant), Id: r.ID})
	if err != nil {
		return delivery.Shipment{}, FromStatus(err)
	}
	return shipmentFrom(m), nil
}

// CancelShipment implements delivery.Provider.
func (d *DeliveryClient) CancelShipment(ctx context.Context, r delivery.CancelRequest) (delivery.Shipment, error) {
	m, err := d.c.delivery.CancelShipment(ctx, &pb.CancelShipmentRequest{
		Call: callPB(ctx, r.Tenant), IdempotencyKey: r.IdempotencyKey, Id: r.ID, Reason: r.Reason,
	})
	if err != nil {
		return delivery.Shipment{}, FromStatus(err)
	}
	return shipmentFrom(m), nil
}

// MessagingClient implements messaging.Provider over gRPC.
type MessagingClient struct{ c *Client }

var _ messaging.Provider = (*MessagingClient)(nil)

// Info implements provider.Provider.
func (m *MessagingClient) Info() provider.Info { return m.c.info }

// Send implements messaging.Provider.
func (m *MessagingClient) Send(ctx context.Context, r messaging.SendRequest) (messaging.Receipt, error) {
	out, err := m.c.messaging.Send(ctx, sendPB(ctx, r))
	if err != nil {
		return messaging.Receipt{}, FromStatus(err)
	}
	return receiptFrom(out), nil
}
