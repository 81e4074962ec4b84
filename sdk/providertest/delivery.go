package providertest

import (
	"context"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// DeliveryConfig tells RunDelivery how to exercise a delivery provider.
// The zero value of every optional field skips the checks that need it.
type DeliveryConfig struct {
	// Tenant carries valid settings and credentials (base_url pointing at
	// the author's fake). Required.
	Tenant provider.Tenant
	// BadCredentials, when set, carries credentials the provider rejects:
	// Quote must fail with KindUnauthorized.
	BadCredentials *provider.Tenant
	// Pickup and Dropoff are the stops quoted and booked. A zero stop means
	// the default Santiago pair (DefaultPickup, DefaultDropoff).
	Pickup, Dropoff delivery.Stop
	// Cancel exercises CancelShipment on a freshly created shipment: it
	// must come back cancelled; a refusal (KindPermanent) is a failure.
	Cancel bool
	// Stall, when set, makes the provider's API stop answering until the
	// returned release func is called; the suite checks that a call
	// honours its context deadline.
	Stall func(t testing.TB) (release func())
	// Webhooks are recorded payloads and the event types they must yield.
	Webhooks []WebhookCase
}

// DefaultPickup is the pickup of DeliveryConfig's zero value: a shop in
// Providencia, Santiago.
var DefaultPickup = delivery.Stop{
	Address: delivery.Address{
		Street: "Avenida Providencia", Number: "1234", City: "Providencia",
		Region: "Región Metropolitana", Country: "CL", PostalCode: "7500000",
	},
	Location: &delivery.Location{Lat: -33.4263, Lng: -70.6170},
	Contact:  delivery.Contact{Name: "Tienda Providencia", Phone: "+56912345678"},
	Notes:    "Retirar en mostrador",
}

// DefaultDropoff is the drop-off of DeliveryConfig's zero value: a flat in
// Las Condes, Santiago.
var DefaultDropoff = delivery.Stop{
	Address: delivery.Address{
		Street: "Avenida Apoquindo", Number: "4500", City: "Las Condes",
		Region: "Región Metropolitana", Country: "CL", PostalCode: "7550000",
	},
	Location: &delivery.Location{Lat: -33.4124, Lng: -70.5850},
	Contact:  delivery.Contact{Name: "Camila Rojas", Phone: "+56987654321"},
	Notes:    "Depto 1203, torre B",
}

var deliveryCatalog = map[string]bool{
	"delivery.quoted": true, "delivery.created": true, "delivery.assigned": true, "delivery.picked_up": true,
	"delivery.completed": true, "delivery.cancelled": true, "delivery.failed": true, "delivery.courier_location": true,
}

// RunDelivery runs the delivery contract against p over the real gRPC path:
// Info is valid and declares the capability; a quote has a positive fee, an
// ETA, a future expiry and an id; a shipment booked from it has an id and a
// catalog status, and the same idempotency key books it once; GetShipment
// and (with Cancel) CancelShipment answer with catalog statuses; an empty
// drop-off address fails KindInvalid and bad credentials KindUnauthorized;
// deadlines are honoured; webhook cases yield complete catalog events;
// every error carries a kind and no error or log line contains a secret.
func RunDelivery(t *testing.T, p delivery.Provider, cfg DeliveryConfig) {
	t.Helper()
	conn := Connect(t, p)
	runTests(t, deliveryChecks(newSuite(context.Background(), conn, cfg.Tenant, cfg.BadCredentials), cfg))
}

func deliveryChecks(s *suite, cfg DeliveryConfig) []check {
	if isZeroStop(cfg.Pickup) {
		cfg.Pickup = DefaultPickup
	}
	if isZeroStop(cfg.Dropoff) {
		cfg.Dropoff = DefaultDropoff
	}
	dl := s.conn.Delivery
	if dl == nil {
		return []check{s.infoCheck(provider.CapabilityDelivery, false)}
	}
	items := []delivery.Item{{Name: "Pedido de prueba", Quantity: 1, Size: "small", Price: &provider.Money{Amount: 12990, Currency: "CLP"}}}
	quoteReq := func(k string) delivery.QuoteRequest {
		return delivery.QuoteRequest{Tenant: s.tenant, Pickup: cfg.Pickup, Dropoff: cfg.Dropoff, Items: items, Reference: "order-" + k}
	}
	quote := func(t reporter, req delivery.QuoteRequest) (delivery.Quote, error) {
		q, err := dl.Quote(s.callCtx(t), req)
		s.rec.add(err)
		return q, err
	}
	create := func(t reporter, k, quoteID string) (delivery.Shipment, error) {
		sh, err := dl.CreateShipment(s.callCtx(t), delivery.CreateRequest{
			Tenant: s.tenant, IdempotencyKey: k, DeliveryID: "del_" + k, QuoteID: quoteID,
			Pickup: cfg.Pickup, Dropoff: cfg.Dropoff, Items: items, Reference: "order-" + k,
		})
		s.rec.add(err)
		return sh, err
	}
	// book quotes and creates a shipment from the quote.
	book := func(t reporter, k string) delivery.Shipment {
		t.Helper()
		q, err := quote(t, quoteReq(k))
		if err != nil {
			t.Fatalf("Quote: %v (kind %s)", err, provider.KindOf(err))
		}
		sh, err := create(t, k, q.ID)
		if err != nil {
			t.Fatalf("CreateShipment: %v (kind %s)", err, provider.KindOf(err))
		}
		return sh
	}

	var created delivery.Shipment
	return []check{
		s.infoCheck(provider.CapabilityDelivery, true),
		{name: "quote", run: func(t reporter) {
			now := time.Now()
			q, err := quote(t, quoteReq(key(t)))
			if err != nil {
				t.Fatalf("Quote: %v (kind %s)", err, provider.KindOf(err))
			}
			if q.ID == "" {
				t.Errorf("Quote returned an empty id")
			}
			if err := q.Fee.Validate(); err != nil {
				t.Errorf("Quote fee %+v: %v", q.Fee, err)
			}
			if q.ETA <= 0 {
				t.Errorf("Quote ETA = %s, want > 0", q.ETA)
			}
			if !q.ExpiresAt.After(now) {
				t.Errorf("Quote ExpiresAt = %s, want a time after the request (%s)", q.ExpiresAt, now)
			}
		}},
		{name: "create", run: func(t reporter) {
			sh := book(t, key(t))
			if sh.ID == "" {
				t.Fatalf("CreateShipment returned an empty provider id")
			}
			if !sh.Status.Valid() {
				t.Fatalf("CreateShipment status %q is not in the enum", sh.Status)
			}
			created = sh
		}},
		{name: "idempotency", run: func(t reporter) {
			k := key(t)
			q, err := quote(t, quoteReq(k))
			if err != nil {
				t.Fatalf("Quote: %v (kind %s)", err, provider.KindOf(err))
			}
			a, err := create(t, k, q.ID)
			if err != nil {
				t.Fatalf("first CreateShipment: %v (kind %s)", err, provider.KindOf(err))
			}
			b, err := create(t, k, q.ID)
			if err != nil {
				t.Fatalf("repeated CreateShipment: %v (kind %s)", err, provider.KindOf(err))
			}
			if a.ID != b.ID {
				t.Fatalf("same idempotency key gave two shipments: %q and %q", a.ID, b.ID)
			}
		}},
		{name: "get", run: func(t reporter) {
			if created.ID == "" {
				t.Skipf("create failed")
			}
			sh, err := dl.GetShipment(s.callCtx(t), delivery.GetRequest{Tenant: s.tenant, ID: created.ID})
			s.rec.add(err)
			if err != nil {
				t.Fatalf("GetShipment(%s): %v (kind %s)", created.ID, err, provider.KindOf(err))
			}
			if !sh.Status.Valid() {
				t.Fatalf("GetShipment status %q is not in the enum", sh.Status)
			}
		}},
		{name: "cancel", run: func(t reporter) {
			if !cfg.Cancel {
				t.Skipf("DeliveryConfig.Cancel not set")
			}
			fresh := book(t, key(t))
			sh, err := dl.CancelShipment(s.callCtx(t), delivery.CancelRequest{
				Tenant: s.tenant, IdempotencyKey: key(t), ID: fresh.ID, Reason: "conformance test",
			})
			s.rec.add(err)
			if err != nil {
				t.Fatalf("CancelShipment of a fresh shipment %s: %v (kind %s)", fresh.ID, err, provider.KindOf(err))
			}
			if sh.Status != delivery.StatusCancelled {
				t.Fatalf("CancelShipment status = %q, want %q", sh.Status, delivery.StatusCancelled)
			}
		}},
		{name: "invalid_input", run: func(t reporter) {
			req := quoteReq(key(t))
			req.Dropoff = delivery.Stop{Contact: cfg.Dropoff.Contact}
			_, err := quote(t, req)
			if provider.KindOf(err) != provider.KindInvalid {
				t.Fatalf("Quote with an empty drop-off address: err = %v (kind %s), want kind invalid", err, provider.KindOf(err))
			}
		}},
		{name: "bad_credentials", run: func(t reporter) {
			if s.bad == nil {
				t.Skipf("DeliveryConfig.BadCredentials not set")
			}
			req := quoteReq(key(t))
			req.Tenant = *s.bad
			_, err := quote(t, req)
			if provider.KindOf(err) != provider.KindUnauthorized {
				t.Fatalf("bad credentials: err = %v (kind %s), want kind unauthorized", err, provider.KindOf(err))
			}
		}},
		s.deadlineCheck(cfg.Stall, "DeliveryConfig", func(ctx context.Context, t reporter) error {
			_, err := dl.Quote(ctx, quoteReq(key(t)))
			return err
		}),
		s.webhookChecks(cfg.Webhooks, "DeliveryConfig", deliveryCatalog),
		s.classifiedCheck(),
		s.noSecretsCheck(),
	}
}

func isZeroStop(s delivery.Stop) bool {
	return s.Address == (delivery.Address{}) && s.Location == nil && s.Contact == (delivery.Contact{}) && s.Notes == ""
}
