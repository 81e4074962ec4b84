package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/plugins/uberdirect/uberfake"
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// requestsTo returns the fake's recorded requests whose method matches and
// whose path (without query) ends with suffix.
func requestsTo(f *uberfake.Server, method, suffix string) []uberfake.Request {
	var out []uberfake.Request
	for _, r := range f.Requests() {
		path, _, _ := strings.Cut(r.Path, "?")
		if r.Method == method && strings.HasSuffix(path, suffix) {
			out = append(out, r)
		}
	}
	return out
}

func TestQuote(t *testing.T) {
	f := startFake(t)
	f.SetFee(3190, "CLP")
	f.SetETA(42 * time.Minute)
	p := newProvider()
	before := time.Now()
	req := quoteReq(f)
	req.ReadyAt = time.Now().Add(2 * time.Hour)
	q, err := p.Quote(ctxT(t), req)
	if err != nil {
		t.Fatalf("Quote: %v", err)
	}
	if !strings.HasPrefix(q.ID, "dqt_") || q.Fee != (provider.Money{Amount: 3190, Currency: "CLP"}) || q.ETA != 42*time.Minute {
		t.Fatalf("quote = %+v", q)
	}
	if exp := q.ExpiresAt.Sub(before); exp < 14*time.Minute || exp > 16*time.Minute {
		t.Fatalf("quote expires in %s, want about 15m", exp)
	}

	calls := requestsTo(f, http.MethodPost, "/v1/customers/cus_test/delivery_quotes")
	if len(calls) != 1 {
		t.Fatalf("quote calls = %d", len(calls))
	}
	c := calls[0]
	if c.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(c.Header.Get("Authorization"), "Bearer IA.") {
		t.Fatalf("headers = %v", c.Header)
	}
	var body map[string]any
	if err := json.Unmarshal(c.Body, &body); err != nil {
		t.Fatal(err)
	}
	var addr map[string]any
	if err := json.Unmarshal([]byte(body["pickup_address"].(string)), &addr); err != nil {
		t.Fatalf("pickup_address is not a JSON-encoded string: %v", body["pickup_address"])
	}
	if addr["street_address"].([]any)[0] != "Avenida Providencia 1234" || addr["city"] != "Providencia" ||
		addr["state"] != "Región Metropolitana" || addr["zip_code"] != "7500000" || addr["country"] != "CL" {
		t.Fatalf("pickup_address = %v", addr)
	}
	if body["pickup_phone_number"] != "+56912345678" || body["dropoff_phone_number"] != "+56987654321" ||
		body["pickup_latitude"] != -33.4263 || body["dropoff_longitude"] != -70.585 || body["manifest_total_value"] != 12980.0 {
		t.Fatalf("quote body = %s", c.Body)
	}
	if ready, err := time.Parse(time.RFC3339, body["pickup_ready_dt"].(string)); err != nil || ready.Sub(req.ReadyAt).Abs() > time.Second {
		t.Fatalf("pickup_ready_dt = %v", body["pickup_ready_dt"])
	}
}

func TestQuoteInvalid(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	tests := map[string]func(*delivery.QuoteRequest){
		"empty dropoff": func(r *delivery.QuoteRequest) { r.Dropoff = delivery.Stop{Contact: dropoff.Contact} },
		"empty pickup":  func(r *delivery.QuoteRequest) { r.Pickup.Address.Street = " " },
	}
	for name, mut := range tests {
		t.Run(name, func(t *testing.T) {
			req := quoteReq(f)
			mut(&req)
			_, err := p.Quote(ctxT(t), req)
			if provider.KindOf(err) != provider.KindInvalid || !errors.Is(err, errBadRequest) {
				t.Fatalf("Quote = %v (kind %s), want a local KindInvalid", err, provider.KindOf(err))
			}
		})
	}
	t.Run("phone refused by Uber", func(t *testing.T) {
		req := quoteReq(f)
		req.Pickup.Contact.Phone = "09 1234 5678"
		_, err := p.Quote(ctxT(t), req)
		if provider.KindOf(err) != provider.KindInvalid || provider.CodeOf(err) != "invalid_params" {
			t.Fatalf("Quote = %v (kind %s, code %q), want invalid_params", err, provider.KindOf(err), provider.CodeOf(err))
		}
	})
	if n := len(requestsTo(f, http.MethodPost, "/delivery_quotes")); n != 1 {
		t.Fatalf("quote calls = %d, want only the one Uber refused", n)
	}
}

func TestCreateShipment(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	q, err := p.Quote(ctxT(t), quoteReq(f))
	if err != nil {
		t.Fatal(err)
	}
	req := createReq(f, "k1", q.ID)
	req.Pickup.Notes = strings.Repeat("ñ", 300)
	sh, err := p.CreateShipment(ctxT(t), req)
	if err != nil {
		t.Fatalf("CreateShipment: %v", err)
	}
	if !strings.HasPrefix(sh.ID, "del_") || sh.Status != delivery.StatusPending || sh.Fee != (provider.Money{Amount: 2500, Currency: "CLP"}) ||
		!strings.HasPrefix(sh.TrackingURL, f.URL()+"/orders/") || sh.ETA.IsZero() || sh.Courier != nil || sh.Proof != nil {
		t.Fatalf("shipment = %+v", sh)
	}
	calls := requestsTo(f, http.MethodPost, "/v1/customers/cus_test/deliveries")
	if len(calls) != 1 {
		t.Fatalf("create calls = %d", len(calls))
	}
	var body map[string]any
	if err := json.Unmarshal(calls[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"quote_id": q.ID, "external_id": "del_gw_k1", "idempotency_key": "k1", "manifest_reference": "order-k1",
		"pickup_name": "Tienda Providencia", "dropoff_name": "Camila Rojas", "dropoff_notes": "Depto 1203, torre B",
		"pickup_phone_number": "+56912345678", "dropoff_phone_number": "+56987654321",
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("create body %s = %v, want %v", k, body[k], v)
		}
	}
	if n := len([]rune(body["pickup_notes"].(string))); n != maxNotes {
		t.Errorf("pickup_notes has %d runes, want %d", n, maxNotes)
	}
	items := body["manifest_items"].([]any)
	if it := items[0].(map[string]any); len(items) != 1 || it["name"] != "Pedido de prueba" || it["quantity"] != 2.0 || it["size"] != "small" || it["price"] != 6490.0 {
		t.Errorf("manifest_items = %v", items)
	}
	if _, ok := body["pickup_ready_dt"]; ok {
		t.Errorf("pickup_ready_dt sent for an ASAP delivery: %v", body["pickup_ready_dt"])
	}

	t.Run("quote used twice", func(t *testing.T) {
		_, err := p.CreateShipment(ctxT(t), createReq(f, "k2", q.ID))
		if provider.KindOf(err) != provider.KindInvalid || provider.CodeOf(err) != "used_quote" {
			t.Fatalf("second booking of a quote = %v (kind %s, code %q)", err, provider.KindOf(err), provider.CodeOf(err))
		}
	})
	t.Run("without quote or items", func(t *testing.T) {
		req := createReq(f, "k3", "")
		req.Items = nil
		sh, err := p.CreateShipment(ctxT(t), req)
		if err != nil || sh.ID == "" {
			t.Fatalf("CreateShipment = %+v, %v", sh, err)
		}
		last := requestsTo(f, http.MethodPost, "/deliveries")
		var b createRequest
		_ = json.Unmarshal(last[len(last)-1].Body, &b)
		if len(b.ManifestItems) != 1 || b.ManifestItems[0].Name != defaultItemName || b.QuoteID != "" {
			t.Fatalf("create body = %s", last[len(last)-1].Body)
		}
	})
	t.Run("missing phone refused by Uber", func(t *testing.T) {
		req := createReq(f, "k4", "")
		req.Dropoff.Contact.Phone = ""
		_, err := p.CreateShipment(ctxT(t), req)
		if provider.KindOf(err) != provider.KindInvalid || provider.CodeOf(err) != "invalid_params" || !strings.Contains(err.Error(), "HTTP 400") {
			t.Fatalf("CreateShipment = %v (kind %s, code %q)", err, provider.KindOf(err), provider.CodeOf(err))
		}
	})
	if n := f.Deliveries(); n != 2 {
		t.Fatalf("deliveries booked = %d, want 2", n)
	}
}

func TestCreateShipmentIdempotent(t *testing.T) {
	f := startFake(t)
	p := newProvider()

	t.Run("repeated key reads the booked delivery", func(t *testing.T) {
		q, _ := p.Quote(ctxT(t), quoteReq(f))
		a, err := p.CreateShipment(ctxT(t), createReq(f, "rep", q.ID))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Advance(a.ID); err != nil {
			t.Fatal(err)
		}
		b, err := p.CreateShipment(ctxT(t), createReq(f, "rep", q.ID))
		if err != nil {
			t.Fatalf("repeated CreateShipment: %v", err)
		}
		if a.ID != b.ID || b.Status != delivery.StatusAssigned {
			t.Fatalf("repeat = %+v, want %s read fresh (assigned)", b, a.ID)
		}
		if n := len(requestsTo(f, http.MethodPost, "/deliveries")); n != 1 {
			t.Fatalf("create calls = %d, want 1", n)
		}
	})

	t.Run("same key for another request", func(t *testing.T) {
		req := createReq(f, "rep", "")
		req.DeliveryID = "del_gw_other"
		_, err := p.CreateShipment(ctxT(t), req)
		if provider.KindOf(err) != provider.KindInvalid || !errors.Is(err, errBadRequest) {
			t.Fatalf("reused key = %v (kind %s)", err, provider.KindOf(err))
		}
	})

	t.Run("lost answer is found by external_id", func(t *testing.T) {
		before := f.Deliveries()
		f.SetDelay(time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := p.CreateShipment(ctx, createReq(f, "lost", ""))
		cancel()
		f.SetDelay(0)
		if provider.KindOf(err) != provider.KindRetryable || !provider.IsTimeout(err) {
			t.Fatalf("create without an answer = %v (kind %s), want a retryable timeout", err, provider.KindOf(err))
		}
		if f.Deliveries() != before+1 {
			t.Fatalf("the fake did not book the delivery whose answer was lost")
		}
		lists := len(requestsTo(f, http.MethodGet, "/deliveries"))
		sh, err := p.CreateShipment(ctxT(t), createReq(f, "lost", ""))
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if f.Deliveries() != before+1 || len(requestsTo(f, http.MethodGet, "/deliveries")) != lists+1 {
			t.Fatalf("retry booked again or did not list: %d deliveries", f.Deliveries())
		}
		got, err := p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: testTenant(f.URL()), ID: sh.ID})
		if err != nil || got.ID != sh.ID {
			t.Fatalf("GetShipment(%s) = %+v, %v", sh.ID, got, err)
		}
	})

	t.Run("5xx is looked up and retried once", func(t *testing.T) {
		before := f.Deliveries()
		f.FailNext(http.StatusInternalServerError, 1)
		sh, err := p.CreateShipment(ctxT(t), createReq(f, "five", ""))
		if err != nil || sh.ID == "" {
			t.Fatalf("CreateShipment after one 500 = %+v, %v", sh, err)
		}
		if f.Deliveries() != before+1 {
			t.Fatalf("deliveries = %d, want %d", f.Deliveries(), before+1)
		}
		reqs := f.Requests()
		tail := reqs[len(reqs)-3:]
		if tail[0].Method != http.MethodPost || tail[1].Method != http.MethodGet || tail[2].Method != http.MethodPost {
			t.Fatalf("want create, list, create; got %s %s, %s %s, %s %s", tail[0].Method, tail[0].Path, tail[1].Method, tail[1].Path, tail[2].Method, tail[2].Path)
		}
		if !strings.Contains(tail[1].Path, "limit=50") {
			t.Fatalf("list path = %s", tail[1].Path)
		}
	})

	t.Run("twice 5xx stays retryable", func(t *testing.T) {
		f.FailNext(http.StatusServiceUnavailable, 2)
		_, err := p.CreateShipment(ctxT(t), createReq(f, "busy", ""))
		if provider.KindOf(err) != provider.KindRetryable || provider.CodeOf(err) != "service_unavailable" {
			t.Fatalf("CreateShipment = %v (kind %s)", err, provider.KindOf(err))
		}
	})

	t.Run("duplicate_delivery with our external_id is ours", func(t *testing.T) {
		// A second process (no memory of the key) repeats a create: Uber's
		// idempotency_key answers 409 duplicate_delivery naming the first.
		first, err := newProvider().CreateShipment(ctxT(t), createReq(f, "dup", ""))
		if err != nil {
			t.Fatal(err)
		}
		before := f.Deliveries()
		again, err := newProvider().CreateShipment(ctxT(t), createReq(f, "dup", ""))
		if err != nil || again.ID != first.ID || f.Deliveries() != before {
			t.Fatalf("create in a fresh process = %+v, %v; want %s without booking", again, err, first.ID)
		}
		// The same external_id and reference under another key: also 409,
		// also the same delivery.
		req := createReq(f, "dup-other-key", "")
		req.DeliveryID, req.Reference = "del_gw_dup", "order-dup"
		third, err := newProvider().CreateShipment(ctxT(t), req)
		if err != nil || third.ID != first.ID {
			t.Fatalf("create with the same external_id = %+v, %v", third, err)
		}
	})

	t.Run("concurrent repeats book once", func(t *testing.T) {
		before := f.Deliveries()
		const n = 8
		ids := make(chan string, n)
		errs := make(chan error, n)
		for range n {
			go func() {
				sh, err := p.CreateShipment(ctxT(t), createReq(f, "race", ""))
				ids <- sh.ID
				errs <- err
			}()
		}
		seen := map[string]bool{}
		for range n {
			if err := <-errs; err != nil {
				t.Errorf("CreateShipment: %v", err)
			}
			seen[<-ids] = true
		}
		if len(seen) != 1 || f.Deliveries() != before+1 {
			t.Fatalf("ids = %v, deliveries booked = %d", seen, f.Deliveries()-before)
		}
	})
}

func TestGetShipmentMapping(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	sh := mustCreate(t, p, f, "map")
	get := func(t *testing.T) delivery.Shipment {
		t.Helper()
		got, err := p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: testTenant(f.URL()), ID: sh.ID})
		if err != nil {
			t.Fatalf("GetShipment: %v", err)
		}
		return got
	}
	if got := get(t); got.Status != delivery.StatusPending || got.Courier != nil {
		t.Fatalf("pending = %+v", got)
	}
	steps := []delivery.Status{delivery.StatusAssigned, delivery.StatusPickedUp, delivery.StatusPickedUp, delivery.StatusDelivered}
	for _, want := range steps {
		if _, err := f.Advance(sh.ID); err != nil {
			t.Fatal(err)
		}
		got := get(t)
		if got.Status != want {
			t.Fatalf("status = %s, want %s", got.Status, want)
		}
		if c := got.Courier; c == nil || c.Name == "" || c.Phone == "" || c.Vehicle != "motorcycle" || c.Location == nil {
			t.Fatalf("courier = %+v", c)
		}
	}
	got := get(t)
	if got.Proof == nil || !strings.HasSuffix(got.Proof.PhotoURL, "/picture.jpg") || got.Fee.Amount != 2500 {
		t.Fatalf("delivered = %+v (proof %+v)", got, got.Proof)
	}

	_, err := p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: testTenant(f.URL()), ID: "del_missing"})
	if provider.KindOf(err) != provider.KindInvalid || provider.CodeOf(err) != "delivery_not_found" {
		t.Fatalf("unknown delivery = %v (kind %s)", err, provider.KindOf(err))
	}
	_, err = p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: testTenant(f.URL()), ID: ""})
	if provider.KindOf(err) != provider.KindInvalid {
		t.Fatalf("empty id = %v", err)
	}
}

func TestMapStatus(t *testing.T) {
	courier := &courierInfo{Name: "A"}
	tests := map[string]struct {
		in     deliveryObject
		want   delivery.Status
		reason string
		known  bool
	}{
		"pending":            {deliveryObject{Status: "pending"}, delivery.StatusPending, "", true},
		"pickup no courier":  {deliveryObject{Status: "pickup"}, delivery.StatusPending, "", true},
		"pickup courier":     {deliveryObject{Status: "pickup", Courier: courier}, delivery.StatusAssigned, "", true},
		"pickup_complete":    {deliveryObject{Status: "pickup_complete"}, delivery.StatusPickedUp, "", true},
		"dropoff":            {deliveryObject{Status: "dropoff", Courier: courier}, delivery.StatusPickedUp, "", true},
		"delivered":          {deliveryObject{Status: "delivered"}, delivery.StatusDelivered, "", true},
		"canceled":           {deliveryObject{Status: "canceled"}, delivery.StatusCancelled, "", true},
		"canceled reason":    {deliveryObject{Status: "canceled", CancelationReason: &cancelationReason{PrimaryReason: "OUT_OF_ITEMS"}}, delivery.StatusCancelled, "OUT_OF_ITEMS", true},
		"canceled undeliver": {deliveryObject{Status: "canceled", UndeliverableReason: "CUSTOMER_UNAVAILABLE"}, delivery.StatusFailed, "CUSTOMER_UNAVAILABLE", true},
		"returned":           {deliveryObject{Status: "returned", UndeliverableReason: "CUSTOMER_UNAVAILABLE"}, delivery.StatusCancelled, "returned", true},
		"unknown":            {deliveryObject{Status: "teleported"}, delivery.StatusPending, "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st, reason, known := mapStatus(tc.in)
			if st != tc.want || reason != tc.reason || known != tc.known {
				t.Fatalf("mapStatus = %s, %q, %v; want %s, %q, %v", st, reason, known, tc.want, tc.reason, tc.known)
			}
		})
	}
}

func TestCancelShipment(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	cancel := func(t *testing.T, id string) (delivery.Shipment, error) {
		return p.CancelShipment(ctxT(t), delivery.CancelRequest{Tenant: testTenant(f.URL()), IdempotencyKey: "c-" + id, ID: id, Reason: "customer asked"})
	}

	fresh := mustCreate(t, p, f, "cancel-fresh")
	sh, err := cancel(t, fresh.ID)
	if err != nil || sh.Status != delivery.StatusCancelled || sh.ID != fresh.ID {
		t.Fatalf("cancel pending = %+v, %v", sh, err)
	}
	if calls := requestsTo(f, http.MethodPost, "/deliveries/"+fresh.ID+"/cancel"); len(calls) != 1 || len(calls[0].Body) != 0 {
		t.Fatalf("cancel calls = %+v", calls)
	}
	again, err := cancel(t, fresh.ID)
	if err != nil || again.Status != delivery.StatusCancelled {
		t.Fatalf("repeated cancel = %+v, %v; want the cancelled delivery", again, err)
	}

	assigned := mustCreate(t, p, f, "cancel-assigned")
	_, _ = f.Advance(assigned.ID)
	if sh, err := cancel(t, assigned.ID); err != nil || sh.Status != delivery.StatusCancelled {
		t.Fatalf("cancel assigned = %+v, %v", sh, err)
	}

	picked := mustCreate(t, p, f, "cancel-picked")
	_, _ = f.Advance(picked.ID)
	_, _ = f.Advance(picked.ID)
	_, err = cancel(t, picked.ID)
	if provider.KindOf(err) != provider.KindPermanent || provider.CodeOf(err) != "noncancelable_delivery" ||
		!strings.Contains(err.Error(), "Delivery cannot be cancelled") {
		t.Fatalf("cancel after pickup = %v (kind %s, code %q); want KindPermanent with Uber's message", err, provider.KindOf(err), provider.CodeOf(err))
	}
	if got, _ := p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: testTenant(f.URL()), ID: picked.ID}); got.Status != delivery.StatusPickedUp {
		t.Fatalf("refused cancel changed the delivery: %+v", got)
	}
}

func TestErrorClassification(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	if _, err := p.Quote(ctxT(t), quoteReq(f)); err != nil { // warm the token
		t.Fatal(err)
	}
	tests := []struct {
		status int
		kind   provider.Kind
		code   string
	}{
		{http.StatusBadRequest, provider.KindInvalid, "invalid_params"},
		{http.StatusPaymentRequired, provider.KindPermanent, "customer_suspended"},
		{http.StatusForbidden, provider.KindUnauthorized, "customer_blocked"},
		{http.StatusNotFound, provider.KindInvalid, "delivery_not_found"},
		{http.StatusRequestTimeout, provider.KindRetryable, "request_timeout"},
		{http.StatusTooManyRequests, provider.KindRateLimited, "customer_limited"},
		{http.StatusInternalServerError, provider.KindRetryable, "internal_server_error"},
		{http.StatusServiceUnavailable, provider.KindRetryable, "service_unavailable"},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			f.FailNext(tc.status, 1)
			_, err := p.Quote(ctxT(t), quoteReq(f))
			if provider.KindOf(err) != tc.kind || provider.CodeOf(err) != tc.code {
				t.Fatalf("HTTP %d: err = %v (kind %s, code %q), want %s %q", tc.status, err, provider.KindOf(err), provider.CodeOf(err), tc.kind, tc.code)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		_, err := p.Quote(ctxT(t), delivery.QuoteRequest{Tenant: testTenant("http://127.0.0.1:1"), Pickup: pickup, Dropoff: dropoff})
		if provider.KindOf(err) != provider.KindRetryable {
			t.Fatalf("unreachable = %v (kind %s)", err, provider.KindOf(err))
		}
	})
	t.Run("bad settings", func(t *testing.T) {
		bad := tenantWith("ftp://x", uberfake.ClientSecret)
		if _, err := p.Quote(ctxT(t), delivery.QuoteRequest{Tenant: bad, Pickup: pickup, Dropoff: dropoff}); provider.KindOf(err) != provider.KindInvalid {
			t.Fatalf("ftp base_url = %v", err)
		}
		none := provider.NewTenant("acme", map[string]string{provider.BaseURLField: f.URL(), fieldCustomerID: uberfake.CustomerID}, nil)
		if _, err := p.Quote(ctxT(t), delivery.QuoteRequest{Tenant: none, Pickup: pickup, Dropoff: dropoff}); provider.KindOf(err) != provider.KindUnauthorized {
			t.Fatalf("no credentials = %v", err)
		}
		other := provider.NewTenant("acme",
			map[string]string{provider.BaseURLField: f.URL(), fieldCustomerID: "cus_other"},
			map[string]string{fieldClientID: uberfake.ClientID, fieldClientSecret: uberfake.ClientSecret})
		if _, err := p.Quote(ctxT(t), delivery.QuoteRequest{Tenant: other, Pickup: pickup, Dropoff: dropoff}); provider.KindOf(err) != provider.KindInvalid || provider.CodeOf(err) != "customer_not_found" {
			t.Fatalf("unknown customer = %v (code %q)", err, provider.CodeOf(err))
		}
	})
}

func TestNewConfig(t *testing.T) {
	creds := map[string]string{fieldClientID: "id", fieldClientSecret: "secret"}
	tests := map[string]struct {
		settings      map[string]string
		base, authURL string
	}{
		"defaults":         {map[string]string{fieldCustomerID: "c"}, defaultBaseURL, defaultAuthURL},
		"base derives":     {map[string]string{fieldCustomerID: "c", provider.BaseURLField: "http://127.0.0.1:9/"}, "http://127.0.0.1:9", "http://127.0.0.1:9/oauth/v2/token"},
		"auth_url wins":    {map[string]string{fieldCustomerID: "c", provider.BaseURLField: "http://127.0.0.1:9", fieldAuthURL: "https://auth.example/oauth/v2/token"}, "http://127.0.0.1:9", "https://auth.example/oauth/v2/token"},
		"auth_url no base": {map[string]string{fieldCustomerID: "c", fieldAuthURL: "https://auth.example/t"}, defaultBaseURL, "https://auth.example/t"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := newConfig(provider.NewTenant("acme", tc.settings, creds))
			if err != nil || c.baseURL != tc.base || c.authURL != tc.authURL {
				t.Fatalf("newConfig = %+v, %v; want base %s auth %s", c, err, tc.base, tc.authURL)
			}
		})
	}
	if _, err := newConfig(provider.NewTenant("acme", map[string]string{fieldCustomerID: "c", fieldAuthURL: "auth.example"}, creds)); provider.KindOf(err) != provider.KindInvalid {
		t.Fatalf("relative auth_url = %v", err)
	}
	if _, err := newConfig(provider.NewTenant("acme", nil, creds)); provider.KindOf(err) != provider.KindInvalid {
		t.Fatalf("no customer_id = %v", err)
	}
}

func TestCreateFingerprintIgnoresClock(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	start := time.Now()
	req := createReq(f, "ready", "")
	req.ReadyAt = start.Add(90 * time.Second)
	a, err := p.CreateShipment(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	// Retried a minute later, ReadyAt is within readySlack of now and
	// pickup_ready_dt is no longer sent; it is still the same request.
	clock = func() time.Time { return start.Add(time.Minute) }
	defer func() { clock = time.Now }()
	b, err := p.CreateShipment(ctxT(t), req)
	if err != nil || b.ID != a.ID {
		t.Fatalf("retry a minute later = %+v, %v", b, err)
	}
	calls := requestsTo(f, http.MethodPost, "/deliveries")
	var first createRequest
	_ = json.Unmarshal(calls[0].Body, &first)
	if len(calls) != 1 || first.PickupReadyDT == "" {
		t.Fatalf("create calls = %d, pickup_ready_dt = %q", len(calls), first.PickupReadyDT)
	}
}
