package wire_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/internal/wire"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// echo returns err from every call, or echoes its request back.
type echo struct {
	err  error
	seen any
}

func (e *echo) Info() provider.Info {
	return provider.Info{Name: "echo", Version: "0.1.0",
		Fields: []provider.Field{{Name: "key", Secret: true, Required: true}, {Name: "region"}},
		Webhook: &provider.WebhookSpec{Scheme: provider.SchemeStripe, Header: "Stripe-Signature", SecretField: "key", Tolerance: 5 * time.Minute,
			DedupKey: []string{"json:id", "header:X-Request-Id"}, Handshake: provider.HandshakeMeta, VerifyTokenField: "region"}}
}

func (e *echo) CreatePayment(ctx context.Context, r payments.CreateRequest) (payments.Payment, error) {
	e.seen = r
	if e.err != nil {
		return payments.Payment{}, e.err
	}
	return payments.Payment{ID: "p1", Status: payments.StatusSucceeded, Amount: r.Amount, AmountRefunded: 5,
		RedirectURL: "https://x/r", ClientSecret: "cs", Method: "card", FailureCode: "c", FailureMessage: "m",
		CreatedAt: time.UnixMilli(1700000000123).UTC()}, nil
}
func (e *echo) GetPayment(context.Context, payments.GetRequest) (payments.Payment, error) {
	return payments.Payment{}, e.err
}
func (e *echo) Refund(context.Context, payments.RefundRequest) (payments.Refund, error) {
	return payments.Refund{}, e.err
}
func (e *echo) Quote(_ context.Context, r delivery.QuoteRequest) (delivery.Quote, error) {
	e.seen = r
	return delivery.Quote{ID: "q1", Fee: provider.Money{Amount: 2500, Currency: "CLP"}, ETA: 25 * time.Minute, ExpiresAt: time.UnixMilli(1700000000000).UTC()}, nil
}
func (e *echo) CreateShipment(_ context.Context, r delivery.CreateRequest) (delivery.Shipment, error) {
	e.seen = r
	return delivery.Shipment{ID: "s1", Status: delivery.StatusAssigned, Courier: &delivery.Courier{Name: "Ana", Location: &delivery.Location{Lat: -33.4, Lng: -70.6}},
		Proof: &delivery.ProofOfDelivery{PIN: "1234"}}, nil
}
func (e *echo) GetShipment(context.Context, delivery.GetRequest) (delivery.Shipment, error) {
	return delivery.Shipment{}, e.err
}
func (e *echo) CancelShipment(context.Context, delivery.CancelRequest) (delivery.Shipment, error) {
	return delivery.Shipment{}, e.err
}
func (e *echo) Send(_ context.Context, r messaging.SendRequest) (messaging.Receipt, error) {
	e.seen = r
	return messaging.Receipt{ID: "m1", Status: messaging.StatusQueued}, nil
}
func (e *echo) ParseWebhook(_ context.Context, r provider.WebhookRequest) ([]provider.Event, error) {
	e.seen = r
	return []provider.Event{{ID: "evt_1", Type: "payment.confirmed", Subject: "p1", OccurredAt: time.UnixMilli(1700000000000).UTC(), Data: []byte(`{"status":"succeeded"}`)}}, nil
}

func TestErrorKindsSurviveTheWire(t *testing.T) {
	tests := map[string]struct {
		err        error
		kind       provider.Kind
		code       string
		retryAfter time.Duration
		is         error
	}{
		"retryable":    {err: provider.Retryable(errors.New("upstream 503")), kind: provider.KindRetryable},
		"rate limited": {err: provider.RateLimited(errors.New("slow down"), 1500*time.Millisecond), kind: provider.KindRateLimited, retryAfter: 1500 * time.Millisecond},
		"permanent":    {err: provider.WithCode(provider.Permanent(errors.New("declined")), "card_declined"), kind: provider.KindPermanent, code: "card_declined"},
		"unauthorized": {err: provider.Unauthorized(errors.New("bad key")), kind: provider.KindUnauthorized},
		"invalid":      {err: provider.Invalid(errors.New("bad currency")), kind: provider.KindInvalid},
		"unsupported":  {err: provider.ErrUnsupported, kind: provider.KindUnsupported, is: provider.ErrUnsupported},
		"unclassified": {err: errors.New("boom"), kind: provider.KindRetryable},
		"deadline":     {err: provider.Retryable(context.DeadlineExceeded), kind: provider.KindRetryable, is: context.DeadlineExceeded},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			conn := providertest.Connect(t, &echo{err: tc.err})
			_, err := conn.Payments.GetPayment(context.Background(), payments.GetRequest{ID: "x"})
			if got := provider.KindOf(err); got != tc.kind {
				t.Fatalf("kind = %s, want %s (err %v)", got, tc.kind, err)
			}
			if got := provider.CodeOf(err); got != tc.code {
				t.Errorf("code = %q, want %q", got, tc.code)
			}
			if got := provider.RetryAfter(err); got != tc.retryAfter {
				t.Errorf("retry after = %s, want %s", got, tc.retryAfter)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			if errors.Is(err, wire.ErrUnavailable) {
				t.Errorf("a live plugin's error was reported as unavailable: %v", err)
			}
		})
	}
}

func TestConversionsRoundTrip(t *testing.T) {
	e := &echo{}
	conn := providertest.Connect(t, e)
	ctx := provider.WithRequestID(context.Background(), "req-1")
	tenant := provider.NewTenant("acme", map[string]string{"region": "cl"}, map[string]string{"key": "s3cret"})

	if got, want := conn.Info, wire.InfoOf(e); !reflect.DeepEqual(got, want) {
		t.Errorf("Info = %+v, want %+v", got, want)
	}

	creq := payments.CreateRequest{Tenant: tenant, IdempotencyKey: "k", PaymentID: "pay_1", Amount: provider.Money{Amount: 12990, Currency: "CLP"},
		Reference: "r", Description: "d", Customer: payments.Customer{Email: "e@x", Phone: "+56988888888", Name: "Ñandú ✅"},
		ReturnURL: "https://x", Metadata: map[string]string{"a": "b"}}
	pmt, err := conn.Payments.CreatePayment(ctx, creq)
	if err != nil {
		t.Fatal(err)
	}
	got := e.seen.(payments.CreateRequest)
	if got.Tenant.ID() != "acme" || got.Tenant.Setting("region") != "cl" || got.Tenant.Secret("key").Reveal() != "s3cret" {
		t.Errorf("tenant did not cross the wire: %v %v", got.Tenant.Settings(), got.Tenant.SecretNames())
	}
	got.Tenant, creq.Tenant = provider.Tenant{}, provider.Tenant{}
	if !reflect.DeepEqual(got, creq) {
		t.Errorf("CreateRequest = %+v, want %+v", got, creq)
	}
	if pmt.CreatedAt.UnixMilli() != 1700000000123 || pmt.AmountRefunded != 5 || pmt.Method != "card" || pmt.ClientSecret != "cs" {
		t.Errorf("Payment = %+v", pmt)
	}

	qreq := delivery.QuoteRequest{Tenant: tenant, Pickup: delivery.Stop{Address: delivery.Address{Street: "Av", City: "Santiago", Country: "CL"}, Location: &delivery.Location{Lat: 1, Lng: 2}, Contact: delivery.Contact{Name: "A", Phone: "+1"}},
		Dropoff: delivery.Stop{Notes: "door"}, Items: []delivery.Item{{Name: "pizza", Quantity: 2, Price: &provider.Money{Amount: 100, Currency: "CLP"}}}, ReadyAt: time.UnixMilli(1700000001000).UTC(), Reference: "r"}
	q, err := conn.Delivery.Quote(ctx, qreq)
	if err != nil || q.ETA != 25*time.Minute || q.Fee.Amount != 2500 {
		t.Fatalf("Quote = %+v, %v", q, err)
	}
	gotQ := e.seen.(delivery.QuoteRequest)
	gotQ.Tenant, qreq.Tenant = provider.Tenant{}, provider.Tenant{}
	if !reflect.DeepEqual(gotQ, qreq) {
		t.Errorf("QuoteRequest = %+v, want %+v", gotQ, qreq)
	}
	sh, err := conn.Delivery.CreateShipment(ctx, delivery.CreateRequest{Tenant: tenant, IdempotencyKey: "k"})
	if err != nil || sh.Courier == nil || sh.Courier.Location.Lat != -33.4 || sh.Proof.PIN != "1234" {
		t.Fatalf("Shipment = %+v, %v", sh, err)
	}

	sreq := messaging.SendRequest{Tenant: tenant, IdempotencyKey: "k", MessageID: "msg_1", Channel: messaging.ChannelWhatsApp, To: "+56988888888",
		Template:    &messaging.Template{Name: "order_confirmed", Language: "es", Params: []string{"Tu pedido fue confirmado ✅"}},
		Attachments: []messaging.Attachment{{Filename: "a.pdf", ContentType: "application/pdf", Content: []byte{0, 1}}}}
	if _, err := conn.Messaging.Send(ctx, sreq); err != nil {
		t.Fatal(err)
	}
	gotS := e.seen.(messaging.SendRequest)
	gotS.Tenant, sreq.Tenant = provider.Tenant{}, provider.Tenant{}
	if !reflect.DeepEqual(gotS, sreq) {
		t.Errorf("SendRequest = %+v, want %+v", gotS, sreq)
	}

	wreq := provider.WebhookRequest{Tenant: tenant, Headers: map[string][]string{"Stripe-Signature": {"t=1,v1=ab"}}, Query: map[string][]string{"a": {"1", "2"}}, Body: []byte(`{"id":"evt_1"}`)}
	evs, err := conn.Webhooks.ParseWebhook(ctx, wreq)
	if err != nil || len(evs) != 1 || evs[0].Type != "payment.confirmed" || string(evs[0].Data) != `{"status":"succeeded"}` {
		t.Fatalf("ParseWebhook = %+v, %v", evs, err)
	}
	gotW := e.seen.(provider.WebhookRequest)
	gotW.Tenant, wreq.Tenant = provider.Tenant{}, provider.Tenant{}
	if !reflect.DeepEqual(gotW, wreq) {
		t.Errorf("WebhookRequest = %+v, want %+v", gotW, wreq)
	}
}
