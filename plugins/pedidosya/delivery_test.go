package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/idem"
	"github.com/pipecore/pipecore/sdk/providertest"

	"github.com/pipecore/pipecore/plugins/pedidosya/internal/wire"
	"github.com/pipecore/pipecore/plugins/pedidosya/pedidosyafake"
)

func TestQuote(t *testing.T) {
	f := startFake(t)
	f.SetFee(1250, "UYU")
	f.SetETA(30 * time.Minute)
	p := newProvider()
	before := time.Now()
	q, err := p.Quote(ctxT(t), quoteReq(tenantFor(f.URL(), nil)))
	if err != nil {
		t.Fatalf("Quote: %v", err)
	}
	if q.ID == "" || q.Fee != (provider.Money{Amount: 1250, Currency: "UYU"}) {
		t.Fatalf("quote = %+v", q)
	}
	if q.ETA < 28*time.Minute || q.ETA > 30*time.Minute {
		t.Errorf("ETA = %s, want about 30m (deliveryTimeTo)", q.ETA)
	}
	// The fake's offers can be confirmed for 5 minutes: confirmationTimeLimit wins over the 10-minute default.
	if d := q.ExpiresAt.Sub(before); d < 4*time.Minute || d > 6*time.Minute {
		t.Errorf("ExpiresAt is %s after the request, want about 5m", d)
	}

	var body wire.ShippingRequest
	req := lastBody(t, f, "POST", wire.PathEstimates, &body)
	if got := req.Header.Get("Authorization"); got != pedidosyafake.Token {
		t.Errorf("Authorization = %q, want the raw token", got)
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if body.ReferenceID != "order-1042" || !body.IsTest || len(body.Waypoints) != 2 || len(body.Items) != 1 {
		t.Fatalf("body = %+v", body)
	}
	pu, do := body.Waypoints[0], body.Waypoints[1]
	if pu.Type != wire.WaypointPickUp || pu.AddressStreet != "Avenida Providencia 1234" || pu.City != "Providencia" ||
		pu.Name != "Tienda Providencia" || pu.Phone != "+56912345678" || pu.Instructions != "Retirar en mostrador" ||
		pu.Latitude == nil || *pu.Latitude != -33.4263 || pu.Longitude == nil || *pu.Longitude != -70.6170 {
		t.Errorf("pickup waypoint = %+v", pu)
	}
	if do.Type != wire.WaypointDropOff || do.AddressStreet != "Avenida Apoquindo 4500" || do.City != "Las Condes" {
		t.Errorf("dropoff waypoint = %+v", do)
	}
	if it := body.Items[0]; it != (wire.Item{Type: wire.ItemStandard, Value: 12990, Description: "Pedido 1042", Quantity: 2, Volume: 1000, Weight: 1}) {
		t.Errorf("item = %+v", it)
	}
}

func TestQuoteAnswers(t *testing.T) {
	f := startFake(t)
	tests := map[string]struct {
		mut     func(e *wire.Estimate)
		kind    provider.Kind
		fee     provider.Money
		expires time.Duration // after the request, ±1m
		eta     time.Duration // ±1m; zero skips
	}{
		"no confirmation limit: 10 minutes": {
			mut:     func(e *wire.Estimate) { e.DeliveryOffers[0].ConfirmationTimeLimit = "" },
			fee:     provider.Money{Amount: 2990, Currency: "CLP"},
			expires: defaultQuoteTTL, eta: 45 * time.Minute,
		},
		"express offer preferred": {
			mut: func(e *wire.Estimate) {
				sched := e.DeliveryOffers[0]
				sched.DeliveryMode, sched.Pricing = wire.ModeScheduled, &wire.Pricing{Total: 1990, Currency: "CLP"}
				e.DeliveryOffers = append([]wire.DeliveryOffer{sched}, e.DeliveryOffers...)
			},
			fee: provider.Money{Amount: 2990, Currency: "CLP"}, expires: 5 * time.Minute,
		},
		"eta from pickup and driving time": {
			mut: func(e *wire.Estimate) {
				o := &e.DeliveryOffers[0]
				o.DeliveryTimeFrom, o.DeliveryTimeTo = "", ""
				o.EstimatedPickUpTime, o.EstimatedDrivingTime = wire.FormatTime(time.Now().Add(10*time.Minute)), 20
			},
			fee: provider.Money{Amount: 2990, Currency: "CLP"}, expires: 5 * time.Minute, eta: 30 * time.Minute,
		},
		"decimal currency": {
			mut:     func(e *wire.Estimate) { e.DeliveryOffers[0].Pricing = &wire.Pricing{Total: 189.9, Currency: "ars"} },
			fee:     provider.Money{Amount: 18990, Currency: "ARS"},
			expires: 5 * time.Minute,
		},
		"no offers":    {mut: func(e *wire.Estimate) { e.DeliveryOffers = nil }, kind: provider.KindPermanent},
		"no pricing":   {mut: func(e *wire.Estimate) { e.DeliveryOffers[0].Pricing = nil }, kind: provider.KindPermanent},
		"no currency":  {mut: func(e *wire.Estimate) { e.DeliveryOffers[0].Pricing.Currency = "" }, kind: provider.KindRetryable},
		"no estimate":  {mut: func(e *wire.Estimate) { e.EstimateID, e.DeliveryOffers[0].DeliveryOfferID = "", "" }, kind: provider.KindRetryable},
		"offer id ok":  {mut: func(e *wire.Estimate) { e.EstimateID = "" }, fee: provider.Money{Amount: 2990, Currency: "CLP"}, expires: 5 * time.Minute},
		"zero total":   {mut: func(e *wire.Estimate) { e.DeliveryOffers[0].Pricing.Total = 0 }, kind: provider.KindRetryable},
		"invalid json": {mut: nil, kind: provider.KindRetryable},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			base, _ := proxy(t, f.URL(), func(r *http.Request, st int, b []byte) (int, []byte) {
				if tc.mut == nil {
					return st, []byte("{not json")
				}
				var e wire.Estimate
				if err := json.Unmarshal(b, &e); err != nil {
					t.Errorf("fake estimate: %v", err)
				}
				tc.mut(&e)
				out, _ := json.Marshal(e)
				return st, out
			})
			before := time.Now()
			q, err := newProvider().Quote(ctxT(t), quoteReq(tenantFor(base, nil)))
			if tc.kind != 0 {
				if provider.KindOf(err) != tc.kind {
					t.Fatalf("err = %v (kind %s), want kind %s", err, provider.KindOf(err), tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatalf("Quote: %v", err)
			}
			if q.Fee != tc.fee || q.ID == "" {
				t.Errorf("quote = %+v, want fee %+v", q, tc.fee)
			}
			if d := q.ExpiresAt.Sub(before); d < tc.expires-time.Minute || d > tc.expires+time.Minute {
				t.Errorf("expires %s after the request, want %s", d, tc.expires)
			}
			if tc.eta != 0 && (q.ETA < tc.eta-time.Minute || q.ETA > tc.eta+time.Minute) {
				t.Errorf("ETA = %s, want %s", q.ETA, tc.eta)
			}
		})
	}
}

func TestInvalidInput(t *testing.T) {
	f := startFake(t)
	tn := tenantFor(f.URL(), nil)
	tests := map[string]func(r *delivery.QuoteRequest){
		"empty dropoff address": func(r *delivery.QuoteRequest) { r.Dropoff.Address = delivery.Address{} },
		"no pickup city":        func(r *delivery.QuoteRequest) { r.Pickup.Address.City = "" },
		"no contact name":       func(r *delivery.QuoteRequest) { r.Dropoff.Contact.Name = " " },
		"no phone":              func(r *delivery.QuoteRequest) { r.Pickup.Contact.Phone = "" },
		"bad phone":             func(r *delivery.QuoteRequest) { r.Dropoff.Contact.Phone = "+0 123" },
		"negative quantity":     func(r *delivery.QuoteRequest) { r.Items = []delivery.Item{{Name: "x", Quantity: -1}} },
		"negative price": func(r *delivery.QuoteRequest) {
			r.Items = []delivery.Item{{Name: "x", Quantity: 1, Price: &provider.Money{Amount: -1, Currency: "CLP"}}}
		},
		"declared value too high": func(r *delivery.QuoteRequest) {
			r.Items = []delivery.Item{{Name: "tv", Quantity: 100, Price: &provider.Money{Amount: 10000, Currency: "CLP"}}}
		},
	}
	p := newProvider()
	for name, mut := range tests {
		t.Run(name, func(t *testing.T) {
			req := quoteReq(tn)
			mut(&req)
			if _, err := p.Quote(ctxT(t), req); provider.KindOf(err) != provider.KindInvalid {
				t.Fatalf("Quote: err = %v (kind %s), want invalid", err, provider.KindOf(err))
			}
			creq := createReq(tn, "k-"+name)
			creq.Pickup, creq.Dropoff, creq.Items = req.Pickup, req.Dropoff, req.Items
			if _, err := p.CreateShipment(ctxT(t), creq); provider.KindOf(err) != provider.KindInvalid {
				t.Fatalf("CreateShipment: err = %v (kind %s), want invalid", err, provider.KindOf(err))
			}
		})
	}
	if n := len(f.Requests()); n != 0 {
		t.Fatalf("%d requests reached PedidosYa for invalid input", n)
	}
	noIDs := createReq(tn, "")
	noIDs.DeliveryID = ""
	if _, err := p.CreateShipment(ctxT(t), noIDs); provider.KindOf(err) != provider.KindInvalid {
		t.Fatalf("create without DeliveryID and key: err = %v, want invalid", err)
	}
}

func TestItemDefaults(t *testing.T) {
	got, err := shippingRequest("r", false, providertest.DefaultPickup, providertest.DefaultDropoff, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []wire.Item{{Type: wire.ItemStandard, Description: "Paquete", Quantity: 1, Volume: 8000, Weight: 3}}; !slices.Equal(got.Items, want) {
		t.Errorf("items without input = %+v, want %+v", got.Items, want)
	}
	got, err = shippingRequest("r", false, providertest.DefaultPickup, providertest.DefaultDropoff, []delivery.Item{
		{Name: "", Quantity: 0, Size: "LARGE", Price: &provider.Money{Amount: 1999, Currency: "USD"}},
		{Name: "Caja", Quantity: 3, Size: "huge"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []wire.Item{
		{Type: wire.ItemStandard, Value: 19.99, Description: "Paquete", Quantity: 1, Volume: 27000, Weight: 8},
		{Type: wire.ItemStandard, Description: "Caja", Quantity: 3, Volume: 8000, Weight: 3},
	}
	if !slices.Equal(got.Items, want) {
		t.Errorf("items = %+v, want %+v", got.Items, want)
	}
	noLoc := providertest.DefaultDropoff
	noLoc.Location = nil
	noLoc.Contact.Phone = "+56 9 8765-4321"
	got, err = shippingRequest("r", true, providertest.DefaultPickup, noLoc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := got.Waypoints[1]; w.Latitude != nil || w.Longitude != nil || w.Phone != "+56987654321" {
		t.Errorf("dropoff without location = %+v", w)
	}
}

func TestCreate(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	sh, err := p.CreateShipment(ctxT(t), createReq(tenantFor(f.URL(), map[string]string{fieldIsTest: "false"}), "k1"))
	if err != nil {
		t.Fatalf("CreateShipment: %v", err)
	}
	if sh.ID == "" || sh.Status != delivery.StatusPending || sh.Fee != (provider.Money{Amount: 2990, Currency: "CLP"}) || sh.ETA.IsZero() {
		t.Fatalf("shipment = %+v", sh)
	}
	if !strings.HasSuffix(sh.TrackingURL, "/tracking/"+sh.ID) {
		t.Errorf("TrackingURL = %q", sh.TrackingURL)
	}
	want := []string{"GET /v3/shippings?referenceId=del_k1", "POST /v3/shippings"}
	if got := paths(f.Requests()); !slices.Equal(got, want) {
		t.Fatalf("requests = %q, want %q", got, want)
	}
	var body wire.ShippingRequest
	lastBody(t, f, "POST", wire.PathShippings, &body)
	if body.ReferenceID != "del_k1" || body.IsTest {
		t.Errorf("create body referenceId %q isTest %v", body.ReferenceID, body.IsTest)
	}
}

func TestCreateIdempotency(t *testing.T) {
	f := startFake(t)
	tn := tenantFor(f.URL(), nil)
	p := newProvider()
	a, err := p.CreateShipment(ctxT(t), createReq(tn, "k1"))
	if err != nil {
		t.Fatal(err)
	}
	n := len(f.Requests())
	b, err := p.CreateShipment(ctxT(t), createReq(tn, "k1"))
	if err != nil || b.ID != a.ID {
		t.Fatalf("repeat = %+v, %v; want %s", b, err, a.ID)
	}
	if len(f.Requests()) != n {
		t.Errorf("a remembered repeat called PedidosYa")
	}

	// After a restart the memory is gone: the lookup by referenceId finds it.
	c, err := newProvider().CreateShipment(ctxT(t), createReq(tn, "k1"))
	if err != nil || c.ID != a.ID {
		t.Fatalf("repeat after restart = %+v, %v; want %s", c, err, a.ID)
	}
	if f.Deliveries() != 1 {
		t.Fatalf("Deliveries = %d, want 1", f.Deliveries())
	}

	// The same key for another request is refused.
	other := createReq(tn, "k1")
	other.Dropoff.Contact.Name = "Otra Persona"
	if _, err := p.CreateShipment(ctxT(t), other); provider.KindOf(err) != provider.KindInvalid || !errors.Is(err, idem.ErrKeyReused) {
		t.Fatalf("key reuse: err = %v, want invalid idem.ErrKeyReused", err)
	}

	// Concurrent repeats book once.
	f.SetDelay(50 * time.Millisecond)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			sh, err := p.CreateShipment(ctxT(t), createReq(tn, "k2"))
			if err != nil {
				t.Errorf("concurrent create: %v", err)
			}
			ids[i] = sh.ID
		})
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("concurrent creates gave %q", ids)
		}
	}
	if f.Deliveries() != 2 {
		t.Fatalf("Deliveries = %d, want 2", f.Deliveries())
	}
}

func TestCreateLookupPrefersLiveShipping(t *testing.T) {
	f := startFake(t)
	tn := tenantFor(f.URL(), nil)
	first, err := newProvider().CreateShipment(ctxT(t), createReq(tn, "k1"))
	if err != nil {
		t.Fatal(err)
	}
	live := wire.Shipping{ShippingID: "77", ReferenceID: "del_k1", Status: wire.StatusInProgress}
	base, _ := proxy(t, f.URL(), func(r *http.Request, st int, b []byte) (int, []byte) {
		if r.Method != "GET" || r.URL.Path != wire.PathShippings {
			return st, b
		}
		list, _ := wire.DecodeShippingList(b)
		list[0].Status = wire.StatusCancelled
		list = append(list, wire.Shipping{ShippingID: "99", ReferenceID: "del_other"}, live)
		out, _ := json.Marshal(list) // a bare array: also accepted
		return st, out
	})
	sh, err := newProvider().CreateShipment(ctxT(t), createReq(tenantFor(base, nil), "k1"))
	if err != nil || sh.ID != "77" || sh.Status != delivery.StatusAssigned {
		t.Fatalf("create = %+v, %v; want the live shipping 77 (not %s)", sh, err, first.ID)
	}
}

func TestCreateAmbiguousFailure(t *testing.T) {
	f := startFake(t)
	var once sync.Once
	base, _ := proxy(t, f.URL(), func(r *http.Request, st int, b []byte) (int, []byte) {
		if r.Method == "POST" && r.URL.Path == wire.PathShippings {
			lost := false
			once.Do(func() { lost = true })
			if lost { // created, but the answer is lost
				return http.StatusBadGateway, wireErr(502, "BAD_GATEWAY", "upstream timeout")
			}
		}
		return st, b
	})
	sh, err := newProvider().CreateShipment(ctxT(t), createReq(tenantFor(base, nil), "k1"))
	if err != nil || sh.ID == "" {
		t.Fatalf("create after a lost answer = %+v, %v", sh, err)
	}
	if f.Deliveries() != 1 {
		t.Fatalf("Deliveries = %d, want 1", f.Deliveries())
	}
	want := []string{"GET /v3/shippings?referenceId=del_k1", "POST /v3/shippings", "GET /v3/shippings?referenceId=del_k1"}
	if got := paths(f.Requests()); !slices.Equal(got, want) {
		t.Fatalf("requests = %q, want %q", got, want)
	}

	// A failed lookup before the create is returned: creating blind could
	// duplicate.
	f.FailNext(http.StatusServiceUnavailable, 1)
	_, err = newProvider().CreateShipment(ctxT(t), createReq(tenantFor(f.URL(), nil), "k2"))
	if provider.KindOf(err) != provider.KindRetryable || f.Deliveries() != 1 {
		t.Fatalf("lookup 503: err = %v (kind %s), deliveries %d", err, provider.KindOf(err), f.Deliveries())
	}
	// A create refused with a 503 (nothing created) is looked up once more
	// and then returned, not retried behind the caller's back.
	var refuse sync.Once
	base, _ = intercept(t, f.URL(), func(r *http.Request) (int, []byte) {
		st := 0
		if r.Method == "POST" && r.URL.Path == wire.PathShippings {
			refuse.Do(func() { st = http.StatusServiceUnavailable })
		}
		return st, wireErr(503, wire.CodeInternalError, "try later")
	}, nil)
	p := newProvider()
	n := len(f.Requests())
	if _, err := p.CreateShipment(ctxT(t), createReq(tenantFor(base, nil), "k3")); provider.KindOf(err) != provider.KindRetryable {
		t.Fatalf("503: err = %v", err)
	}
	if got := paths(f.Requests()[n:]); !slices.Equal(got, []string{"GET /v3/shippings?referenceId=del_k3", "GET /v3/shippings?referenceId=del_k3"}) {
		t.Fatalf("requests = %q", got)
	}
	// The memo forgets failures: the retry books it.
	sh, err = p.CreateShipment(ctxT(t), createReq(tenantFor(base, nil), "k3"))
	if err != nil || sh.ID == "" || f.Deliveries() != 2 {
		t.Fatalf("retry = %+v, %v, deliveries %d", sh, err, f.Deliveries())
	}
}

func TestCreateWithoutLookupEndpoint(t *testing.T) {
	f := startFake(t)
	for _, st := range []int{http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusBadRequest} {
		t.Run(fmt.Sprint(st), func(t *testing.T) {
			base, _ := proxy(t, f.URL(), func(r *http.Request, s int, b []byte) (int, []byte) {
				if r.Method == "GET" && r.URL.Path == wire.PathShippings {
					return st, wireErr(st, "NOT_FOUND", "No static resource")
				}
				return s, b
			})
			sh, err := newProvider().CreateShipment(ctxT(t), createReq(tenantFor(base, nil), fmt.Sprint("k", st)))
			if err != nil || sh.ID == "" {
				t.Fatalf("create = %+v, %v", sh, err)
			}
		})
	}
	for _, st := range []int{http.StatusUnauthorized, http.StatusTooManyRequests} {
		base, _ := proxy(t, f.URL(), func(r *http.Request, s int, b []byte) (int, []byte) {
			if r.Method == "GET" && r.URL.Path == wire.PathShippings {
				return st, wireErr(st, "X", "no")
			}
			return s, b
		})
		if _, err := newProvider().CreateShipment(ctxT(t), createReq(tenantFor(base, nil), fmt.Sprint("x", st))); err == nil {
			t.Errorf("lookup %d: create went ahead", st)
		}
	}
}

func TestGetShipment(t *testing.T) {
	f := startFake(t)
	tn := tenantFor(f.URL(), nil)
	p := newProvider()
	sh, err := p.CreateShipment(ctxT(t), createReq(tn, "k1"))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		status   delivery.Status
		courier  bool
		tracking bool
	}{
		{delivery.StatusPending, false, false},
		{delivery.StatusAssigned, true, true},
		{delivery.StatusPickedUp, true, true},
		{delivery.StatusDelivered, false, false},
	}
	for i, step := range steps {
		if i > 0 {
			if _, err := f.Advance(sh.ID); err != nil {
				t.Fatal(err)
			}
		}
		n := len(f.Requests())
		got, err := p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: tn, ID: sh.ID})
		if err != nil {
			t.Fatalf("GetShipment: %v", err)
		}
		if got.ID != sh.ID || got.Status != step.status || got.Fee.Amount != 2990 {
			t.Fatalf("step %d: %+v, want status %s", i, got, step.status)
		}
		if (got.Courier != nil) != step.courier {
			t.Fatalf("step %d: courier = %+v", i, got.Courier)
		}
		if step.courier && (got.Courier.Name != "Rider de Prueba" || got.Courier.Vehicle != "Motorbike" || got.Courier.Location == nil) {
			t.Errorf("step %d: courier = %+v", i, got.Courier)
		}
		if step.status == delivery.StatusAssigned && *got.Courier.Location != *providertest.DefaultPickup.Location {
			t.Errorf("assigned rider at %+v, want the pickup", got.Courier.Location)
		}
		if calls := len(f.Requests()) - n; calls != map[bool]int{false: 1, true: 2}[step.tracking] {
			t.Errorf("step %d: %d calls", i, calls)
		}
	}
	if _, err := p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: tn, ID: "404404"}); provider.KindOf(err) != provider.KindInvalid || provider.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("unknown id: err = %v (kind %s, code %q)", err, provider.KindOf(err), provider.CodeOf(err))
	}
	if _, err := p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: tn}); provider.KindOf(err) != provider.KindInvalid {
		t.Fatalf("empty id: err = %v", err)
	}
	// A failing tracking call leaves Courier empty, the rest is answered.
	rider, err := p.CreateShipment(ctxT(t), createReq(tn, "k2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Advance(rider.ID); err != nil {
		t.Fatal(err)
	}
	base, _ := proxy(t, f.URL(), func(r *http.Request, st int, b []byte) (int, []byte) {
		if strings.HasSuffix(r.URL.Path, "/tracking") {
			return http.StatusInternalServerError, wireErr(500, wire.CodeInternalError, "boom")
		}
		return st, b
	})
	got, err := p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: tenantFor(base, nil), ID: rider.ID})
	if err != nil || got.Status != delivery.StatusAssigned || got.Courier != nil {
		t.Fatalf("get with failing tracking = %+v, %v", got, err)
	}
}

func TestCancelShipment(t *testing.T) {
	f := startFake(t)
	tn := tenantFor(f.URL(), nil)
	p := newProvider()
	sh, err := p.CreateShipment(ctxT(t), createReq(tn, "k1"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // a repeated cancel is a success too
		got, err := p.CancelShipment(ctxT(t), delivery.CancelRequest{Tenant: tn, ID: sh.ID, Reason: "cliente anuló"})
		if err != nil || got.Status != delivery.StatusCancelled || got.ID != sh.ID {
			t.Fatalf("cancel #%d = %+v, %v", i+1, got, err)
		}
		if got.Reason != "USER_CANCELLED: Cancelado a solicitud del usuario" {
			t.Errorf("Reason = %q", got.Reason)
		}
	}
	var body wire.CancelRequest
	lastBody(t, f, "POST", wire.CancelPath(sh.ID), &body)
	if body.ReasonText != "cliente anuló" {
		t.Errorf("reasonText = %q", body.ReasonText)
	}

	// Refused after pickup: permanent, with PedidosYa's message.
	late, err := p.CreateShipment(ctxT(t), createReq(tn, "k2"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := f.Advance(late.ID); err != nil {
			t.Fatal(err)
		}
	}
	_, err = p.CancelShipment(ctxT(t), delivery.CancelRequest{Tenant: tn, ID: late.ID, Reason: strings.Repeat("ñ", 300)})
	if provider.KindOf(err) != provider.KindPermanent || !strings.Contains(err.Error(), "cannot be cancelled: its status is PICKED_UP") || provider.CodeOf(err) != wire.CodeInvalidStatus {
		t.Fatalf("cancel after pickup: err = %v (kind %s, code %q)", err, provider.KindOf(err), provider.CodeOf(err))
	}
	lastBody(t, f, "POST", wire.CancelPath(late.ID), &body)
	if n := len([]rune(body.ReasonText)); n != wire.MaxReasonText {
		t.Errorf("reasonText has %d characters, want %d", n, wire.MaxReasonText)
	}

	if _, err := p.CancelShipment(ctxT(t), delivery.CancelRequest{Tenant: tn, ID: "404404"}); provider.KindOf(err) != provider.KindInvalid {
		t.Fatalf("unknown id: err = %v (kind %s)", err, provider.KindOf(err))
	}
	lastBody(t, f, "POST", wire.CancelPath("404404"), &body)
	if body.ReasonText != defaultCancelReason {
		t.Errorf("default reasonText = %q", body.ReasonText)
	}

	// An ambiguous failure whose cancel went through is a success.
	fresh, err := p.CreateShipment(ctxT(t), createReq(tn, "k3"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := proxy(t, f.URL(), func(r *http.Request, st int, b []byte) (int, []byte) {
		if strings.HasSuffix(r.URL.Path, "/cancel") {
			return http.StatusGatewayTimeout, wireErr(504, "GATEWAY_TIMEOUT", "timeout")
		}
		return st, b
	})
	got, err := p.CancelShipment(ctxT(t), delivery.CancelRequest{Tenant: tenantFor(base, nil), ID: fresh.ID})
	if err != nil || got.Status != delivery.StatusCancelled {
		t.Fatalf("cancel with a lost answer = %+v, %v", got, err)
	}
}

func TestErrors(t *testing.T) {
	f := startFake(t)
	const wrongToken = "wrong-token-5d1c0e7a9b"
	tests := map[string]struct {
		fail       int // FailNext status, 0 for none
		tenant     map[string]string
		kind       provider.Kind
		retryAfter time.Duration
		code       string
		noRequest  bool
	}{
		"401":            {fail: 401, kind: provider.KindUnauthorized},
		"403":            {fail: 403, kind: provider.KindUnauthorized},
		"429":            {fail: 429, kind: provider.KindRateLimited, retryAfter: time.Second, code: wire.CodeTooManyRequests},
		"500":            {fail: 500, kind: provider.KindRetryable, code: wire.CodeInternalError},
		"400":            {fail: 400, kind: provider.KindInvalid, code: wire.CodeInvalidRequest},
		"wrong token":    {tenant: map[string]string{fieldAPIToken: wrongToken}, kind: provider.KindUnauthorized},
		"no token":       {tenant: map[string]string{fieldAPIToken: ""}, kind: provider.KindUnauthorized, noRequest: true},
		"bad base_url":   {tenant: map[string]string{provider.BaseURLField: "ftp://x"}, kind: provider.KindInvalid, noRequest: true},
		"bad is_test":    {tenant: map[string]string{fieldIsTest: "yes"}, kind: provider.KindInvalid, noRequest: true},
		"unreachable":    {tenant: map[string]string{provider.BaseURLField: "http://127.0.0.1:1"}, kind: provider.KindRetryable, noRequest: true},
		"base_url slash": {tenant: map[string]string{provider.BaseURLField: f.URL() + "/"}},
	}
	p := newProvider()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.fail != 0 {
				f.FailNext(tc.fail, 1)
			}
			n := len(f.Requests())
			_, err := p.Quote(ctxT(t), quoteReq(tenantFor(f.URL(), tc.tenant)))
			if provider.KindOf(err) != tc.kind {
				t.Fatalf("err = %v (kind %s), want %s", err, provider.KindOf(err), tc.kind)
			}
			if err == nil {
				return
			}
			if provider.RetryAfter(err) != tc.retryAfter || provider.CodeOf(err) != tc.code {
				t.Errorf("retry after %s code %q, want %s %q", provider.RetryAfter(err), provider.CodeOf(err), tc.retryAfter, tc.code)
			}
			if !strings.HasPrefix(err.Error(), "pedidosya: ") || strings.Contains(err.Error(), pedidosyafake.Token) || strings.Contains(err.Error(), wrongToken) {
				t.Errorf("error message %q", err)
			}
			if got := len(f.Requests()) - n; tc.noRequest && got != 0 {
				t.Errorf("%d requests sent", got)
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	f := startFake(t)
	f.SetDelay(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := newProvider().Quote(ctx, quoteReq(tenantFor(f.URL(), nil)))
	if time.Since(start) > 5*time.Second || provider.KindOf(err) != provider.KindRetryable || !provider.IsTimeout(err) {
		t.Fatalf("stalled quote: err = %v (kind %s, timeout %v) after %s", err, provider.KindOf(err), provider.IsTimeout(err), time.Since(start))
	}
}

func TestStatusOf(t *testing.T) {
	tests := map[string]struct {
		want  delivery.Status
		known bool
	}{
		"PREORDER": {delivery.StatusPending, true}, "CONFIRMED": {delivery.StatusPending, true},
		"IN_PROGRESS": {delivery.StatusAssigned, true}, "NEAR_PICKUP": {delivery.StatusAssigned, true},
		"PICKED_UP": {delivery.StatusPickedUp, true}, "NEAR_DROPOFF": {delivery.StatusPickedUp, true},
		"COMPLETED": {delivery.StatusDelivered, true}, "CANCELLED": {delivery.StatusCancelled, true},
		"REJECTED": {delivery.StatusFailed, true}, "TELEPORTED": {delivery.StatusPending, false}, "": {delivery.StatusPending, false},
	}
	for in, tc := range tests {
		if got, known := statusOf(in); got != tc.want || known != tc.known {
			t.Errorf("statusOf(%q) = %s, %v; want %s, %v", in, got, known, tc.want, tc.known)
		}
	}
}

func TestLookupQueryEscaping(t *testing.T) {
	f := startFake(t)
	req := createReq(tenantFor(f.URL(), nil), "k")
	req.DeliveryID = "del a&b=c"
	if _, err := newProvider().CreateShipment(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	want := wire.PathShippings + "?" + url.Values{wire.QueryReferenceID: {"del a&b=c"}}.Encode()
	if got := f.Requests()[0].Path; got != want {
		t.Fatalf("lookup path %q, want %q", got, want)
	}
	if _, err := newProvider().CreateShipment(ctxT(t), req); err != nil || f.Deliveries() != 1 {
		t.Fatalf("repeat: %v, deliveries %d", err, f.Deliveries())
	}
}
