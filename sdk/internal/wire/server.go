package wire

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"

	"github.com/pipecore/pipecore/sdk/delivery"
	pb "github.com/pipecore/pipecore/sdk/internal/providerpb"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Register registers on s the services impl implements: Plugin always, and
// Payments, Delivery and Messaging when impl satisfies the capability
// interface. Calls log through log (nil means slog.Default()), tagged with
// the tenant and request id.
func Register(s *grpc.Server, impl provider.Provider) {
	RegisterWithLogger(s, impl, nil)
}

// RegisterWithLogger is Register with an explicit base logger.
func RegisterWithLogger(s *grpc.Server, impl provider.Provider, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	b := base{log: log}
	pb.RegisterPluginServer(s, &pluginServer{base: b, impl: impl})
	if p, ok := impl.(payments.Provider); ok {
		pb.RegisterPaymentsServer(s, &paymentsServer{base: b, impl: p})
	}
	if p, ok := impl.(delivery.Provider); ok {
		pb.RegisterDeliveryServer(s, &deliveryServer{base: b, impl: p})
	}
	if p, ok := impl.(messaging.Provider); ok {
		pb.RegisterMessagingServer(s, &messagingServer{base: b, impl: p})
	}
}

// InfoOf returns impl's Info with Capabilities filled from the interfaces
// it implements.
func InfoOf(impl provider.Provider) provider.Info {
	info := impl.Info()
	info.Capabilities = nil
	if _, ok := impl.(payments.Provider); ok {
		info.Capabilities = append(info.Capabilities, provider.CapabilityPayments)
	}
	if _, ok := impl.(delivery.Provider); ok {
		info.Capabilities = append(info.Capabilities, provider.CapabilityDelivery)
	}
	if _, ok := impl.(messaging.Provider); ok {
		info.Capabilities = append(info.Capabilities, provider.CapabilityMessaging)
	}
	return info
}

// UnaryErrorInterceptor turns provider errors into statuses with details and
// a panic in a handler into a retryable error, so one bad request cannot
// take the plugin process down.
func UnaryErrorInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	if log == nil {
		log = slog.Default()
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("plugin panic", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				resp, err = nil, ToStatus(provider.Retryable(fmt.Errorf("plugin panic in %s", info.FullMethod)))
			}
		}()
		resp, err = handler(ctx, req)
		return resp, ToStatus(err)
	}
}

type base struct{ log *slog.Logger }

// ctx derives the request context: request id and a logger tagged with the
// tenant, the request id and the method.
func (b base) ctx(ctx context.Context, call *pb.CallContext, method string) context.Context {
	l := b.log.With("tenant", call.GetTenantId(), "request_id", call.GetRequestId(), "method", method)
	ctx = provider.WithRequestID(ctx, call.GetRequestId())
	return provider.WithLogger(ctx, l)
}

type pluginServer struct {
	pb.UnimplementedPluginServer
	base
	impl provider.Provider
}

func (s *pluginServer) GetInfo(context.Context, *pb.GetInfoRequest) (*pb.Info, error) {
	return InfoPB(InfoOf(s.impl)), nil
}

func (s *pluginServer) ParseWebhook(ctx context.Context, m *pb.ParseWebhookRequest) (*pb.ParseWebhookResponse, error) {
	p, ok := s.impl.(provider.WebhookParser)
	if !ok {
		return nil, provider.ErrUnsupported
	}
	evs, err := p.ParseWebhook(s.ctx(ctx, m.GetCall(), "ParseWebhook"), webhookFrom(m))
	if err != nil {
		return nil, err
	}
	return eventsPB(evs), nil
}

type paymentsServer struct {
	pb.UnimplementedPaymentsServer
	base
	impl payments.Provider
}

func (s *paymentsServer) CreatePayment(ctx context.Context, m *pb.CreatePaymentRequest) (*pb.Payment, error) {
	p, err := s.impl.CreatePayment(s.ctx(ctx, m.GetCall(), "CreatePayment"), createPaymentFrom(m))
	if err != nil {
		return nil, err
	}
	return paymentPB(p), nil
}

func (s *paymentsServer) GetPayment(ctx context.Context, m *pb.GetPaymentRequest) (*pb.Payment, error) {
	p, err := s.impl.GetPayment(s.ctx(ctx, m.GetCall(), "GetPayment"), payments.GetRequest{Tenant: tenantFrom(m.GetCall()), ID: m.GetId()})
	if err != nil {
		return nil, err
	}
	return paymentPB(p), nil
}

func (s *paymentsServer) RefundPayment(ctx context.Context, m *pb.RefundRequest) (*pb.Refund, error) {
	r, err := s.impl.Refund(s.ctx(ctx, m.GetCall(), "Refund"), payments.RefundRequest{
		Tenant: tenantFrom(m.GetCall()), IdempotencyKey: m.GetIdempotencyKey(), ID: m.GetId(),
		Amount: moneyFrom(m.GetAmount()), Reason: m.GetReason(),
	})
	if err != nil {
		return nil, err
	}
	return refundPB(r), nil
}

func (s *paymentsServer) CapturePayment(ctx context.Context, m *pb.CaptureRequest) (*pb.Payment, error) {
	c, ok := s.impl.(payments.Capturer)
	if !ok {
		return nil, provider.ErrUnsupported
	}
	p, err := c.Capture(s.ctx(ctx, m.GetCall(), "Capture"), payments.CaptureRequest{
		Tenant: tenantFrom(m.GetCall()), IdempotencyKey: m.GetIdempotencyKey(), ID: m.GetId(), Amount: moneyFrom(m.GetAmount()),
	})
	if err != nil {
		return nil, err
	}
	return paymentPB(p), nil
}

func (s *paymentsServer) ConfirmPayment(ctx context.Context, m *pb.ConfirmRequest) (*pb.Payment, error) {
	c, ok := s.impl.(payments.Confirmer)
	if !ok {
		return nil, provider.ErrUnsupported
	}
	p, err := c.Confirm(s.ctx(ctx, m.GetCall(), "Confirm"), payments.ConfirmRequest{
		Tenant: tenantFrom(m.GetCall()), IdempotencyKey: m.GetIdempotencyKey(), Token: m.GetToken(), Params: m.GetParams(),
	})
	if err != nil {
		return nil, err
	}
	return paymentPB(p), nil
}

func (s *paymentsServer) CancelPayment(ctx context.Context, m *pb.CancelRequest) (*pb.Payment, error) {
	c, ok := s.impl.(payments.Canceler)
	if !ok {
		return nil, provider.ErrUnsupported
	}
	p, err := c.Cancel(s.ctx(ctx, m.GetCall(), "Cancel"), payments.CancelRequest{
		Tenant: tenantFrom(m.GetCall()), IdempotencyKey: m.GetIdempotencyKey(), ID: m.GetId(), Reason: m.GetReason(),
	})
	if err != nil {
		return nil, err
	}
	return paymentPB(p), nil
}

func (s *paymentsServer) ReconcilePayment(ctx context.Context, m *pb.GetPaymentRequest) (*pb.Payment, error) {
	r, ok := s.impl.(payments.Reconciler)
	if !ok {
		return nil, provider.ErrUnsupported
	}
	p, err := r.Reconcile(s.ctx(ctx, m.GetCall(), "Reconcile"), payments.GetRequest{Tenant: tenantFrom(m.GetCall()), ID: m.GetId()})
	if err != nil {
		return nil, err
	}
	return paymentPB(p), nil
}

func (s *paymentsServer) subscriber() (payments.Subscriber, error) {
	sub, ok := s.impl.(payments.Subscriber)
	if !ok {
		return nil, provider.ErrUnsupported
	}
	return sub, nil
}

func (s *paymentsServer) CreateSubscription(ctx context.Context, m *pb.CreateSubscriptionRequest) (*pb.Subscription, error) {
	sub, err := s.subscriber()
	if err != nil {
		return nil, err
	}
	out, err := sub.CreateSubscription(s.ctx(ctx, m.GetCall(), "CreateSubscription"), subscriptionRequestFrom(m))
	if err != nil {
		return nil, err
	}
	return subscriptionPB(out), nil
}

func (s *paymentsServer) GetSubscription(ctx context.Context, m *pb.GetSubscriptionRequest) (*pb.Subscription, error) {
	sub, err := s.subscriber()
	if err != nil {
		return nil, err
	}
	out, err := sub.GetSubscription(s.ctx(ctx, m.GetCall(), "GetSubscription"), payments.GetRequest{Tenant: tenantFrom(m.GetCall()), ID: m.GetId()})
	if err != nil {
		return nil, err
	}
	return subscriptionPB(out), nil
}

func (s *paymentsServer) CancelSubscription(ctx context.Context, m *pb.CancelRequest) (*pb.Subscription, error) {
	sub, err := s.subscriber()
	if err != nil {
		return nil, err
	}
	out, err := sub.CancelSubscription(s.ctx(ctx, m.GetCall(), "CancelSubscription"), payments.CancelRequest{
		Tenant: tenantFrom(m.GetCall()), IdempotencyKey: m.GetIdempotencyKey(), ID: m.GetId(), Reason: m.GetReason(),
	})
	if err != nil {
		return nil, err
	}
	return subscriptionPB(out), nil
}

type deliveryServer struct {
	pb.UnimplementedDeliveryServer
	base
	impl delivery.Provider
}

func (s *deliveryServer) QuoteDelivery(ctx context.Context, m *pb.QuoteRequest) (*pb.Quote, error) {
	q, err := s.impl.Quote(s.ctx(ctx, m.GetCall(), "Quote"), quoteRequestFrom(m))
	if err != nil {
		return nil, err
	}
	return quotePB(q), nil
}

func (s *deliveryServer) CreateShipment(ctx context.Context, m *pb.CreateShipmentRequest) (*pb.Shipment, error) {
	sh, err := s.impl.CreateShipment(s.ctx(ctx, m.GetCall(), "CreateShipment"), createShipmentFrom(m))
	if err != nil {
		return nil, err
	}
	return shipmentPB(sh), nil
}

func (s *deliveryServer) GetShipment(ctx context.Context, m *pb.GetShipmentRequest) (*pb.Shipment, error) {
	sh, err := s.impl.GetShipment(s.ctx(ctx, m.GetCall(), "GetShipment"), delivery.GetRequest{Tenant: tenantFrom(m.GetCall()), ID: m.GetId()})
	if err != nil {
		return nil, err
	}
	return shipmentPB(sh), nil
}

func (s *deliveryServer) CancelShipment(ctx context.Context, m *pb.CancelShipmentRequest) (*pb.Shipment, error) {
	sh, err := s.impl.CancelShipment(s.ctx(ctx, m.GetCall(), "CancelShipment"), delivery.CancelRequest{
		Tenant: tenantFrom(m.GetCall()), IdempotencyKey: m.GetIdempotencyKey(), ID: m.GetId(), Reason: m.GetReason(),
	})
	if err != nil {
		return nil, err
	}
	return shipmentPB(sh), nil
}

type messagingServer struct {
	pb.UnimplementedMessagingServer
	base
	impl messaging.Provider
}

func (s *messagingServer) Send(ctx context.Context, m *pb.SendRequest) (*pb.Receipt, error) {
	r, err := s.impl.Send(s.ctx(ctx, m.GetCall(), "Send"), sendFrom(m))
	if err != nil {
		return nil, err
	}
	return receiptPB(r), nil
}

// ServerOptions are the gRPC server options every plugin runs with: equal
// message limits on both sides and the error-mapping, panic-recovering
// interceptor.
func ServerOptions(log *slog.Logger) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
		grpc.ChainUnaryInterceptor(UnaryErrorInterceptor(log)),
	}
}

// DialOptions are the matching client options of the host.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(MaxMessageBytes),
		grpc.MaxCallSendMsgSize(MaxMessageBytes),
	)}
}
