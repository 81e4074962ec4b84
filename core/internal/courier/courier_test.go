package courier_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/courier"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/testkit"
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// fakeCourier is an in-memory delivery provider.
type fakeCourier struct {
	name  string
	fee   int64
	eta   time.Duration
	delay time.Duration

	mu        sync.Mutex
	shipments map[string]*delivery.Shipment
	byKey     map[string]string
	creates   int
	gets      int
}

func newFake(name string, fee int64) *fakeCourier {
	return &fakeCourier{name: name, fee: fee, eta: 30 * time.Minute, shipments: map[string]*delivery.Shipment{}, byKey: map[string]string{}}
}

func (f *fakeCourier) Info() provider.Info {
	return provider.Info{Name: f.name, Version: "1.0.0", Capabilities: []provider.Capability{provider.CapabilityDelivery}}
}

func (f *fakeCourier) Quote(ctx context.Context, _ delivery.QuoteRequest) (delivery.Quote, error) {
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return delivery.Quote{}, ctx.Err()
	}
	return delivery.Quote{ID: "q_" + f.name, Fee: provider.Money{Amount: f.fee, Currency: "CLP"}, ETA: f.eta, ExpiresAt: time.Now().Add(15 * time.Minute)}, nil
}

func (f *fakeCourier) CreateShipment(_ context.Context, r delivery.CreateRequest) (delivery.Shipment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.byKey[r.IdempotencyKey]; ok {
		return *f.shipments[id], nil
	}
	f.creates++
	id := fmt.Sprintf("%s_%d", f.name, f.creates)
	f.shipments[id] = &delivery.Shipment{ID: id, Status: delivery.StatusPending, Fee: provider.Money{Amount: f.fee, Currency: "CLP"}, TrackingURL: "https://track.example/" + id}
	f.byKey[r.IdempotencyKey] = id
	return *f.shipments[id], nil
}

func (f *fakeCourier) GetShipment(_ context.Context, r delivery.GetRequest) (delivery.Shipment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	sh, ok := f.shipments[r.ID]
	if !ok {
		return delivery.Shipment{}, provider.Permanent(errors.New("no such delivery"))
	}
	return *sh, nil
}

func (f *fakeCourier) CancelShipment(_ context.Context, r delivery.CancelRequest) (delivery.Shipment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sh := f.shipments[r.ID]
	if sh.Status != delivery.StatusPending && sh.Status != delivery.StatusAssigned {
		return delivery.Shipment{}, provider.Permanent(errors.New("delivery cannot be cancelled after pickup"))
	}
	sh.Status, sh.Reason = delivery.StatusCancelled, r.Reason
	return *sh, nil
}

func (f *fakeCourier) set(id string, s delivery.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shipments[id].Status = s
	if s == delivery.StatusAssigned {
		f.shipments[id].Courier = &delivery.Courier{Name: "Ana", Phone: "+56911111111"}
	}
}

type plugins map[string]*fakeCourier

func (p plugins) Delivery(name string) (delivery.Provider, error) {
	if f, ok := p[name]; ok {
		return f, nil
	}
	return nil, errors.New("no plugin " + name)
}

func (p plugins) Catalog() map[string]provider.Info {
	out := map[string]provider.Info{}
	for n, f := range p {
		out[n] = f.Info()
	}
	return out
}

type env struct {
	st    *store.Bolt
	svc   *courier.Service
	t     *tenant.Tenant
	fakes plugins
	mu    sync.Mutex
	now   time.Time
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func setup(t *testing.T, fakes ...*fakeCourier) *env {
	t.Helper()
	st := testkit.Store(t)
	provs := map[string]config.Provider{}
	ps := plugins{}
	for _, f := range fakes {
		provs[f.name] = config.Provider{}
		ps[f.name] = f
	}
	reg, err := tenant.New(map[string]config.Tenant{"acme": {APIKeys: []string{"pc_live_acme_0123456789abcdefghijklmnopqrstuv"}, Providers: provs}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, fakes: ps, now: time.Now().UTC()}
	e.svc, err = courier.New(courier.Config{Store: st, Plugins: ps, Audit: audit.NewRecorder(st, nil), Tenants: reg,
		QuoteTimeout: 200 * time.Millisecond, PollInterval: time.Minute, Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.t, _ = reg.Get("acme")
	if err := st.PutEndpoint(context.Background(), store.Endpoint{ID: "ep", TenantID: "acme", URL: "https://x.example", Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, Enabled: true, Source: "api"}); err != nil {
		t.Fatal(err)
	}
	return e
}

func request() courier.Request {
	stop := func(name string) courier.Stop {
		return courier.Stop{Address: courier.Address{Street: "Av. Providencia 1234", City: "Santiago", Country: "CL"}, Contact: courier.Contact{Name: name, Phone: "+56912345678"}}
	}
	return courier.Request{Pickup: stop("Tienda"), Dropoff: stop("Cliente"), Items: []courier.Item{{Name: "Pizza", Quantity: 1}}, Reference: "order-1"}
}

// types lists the tenant's event types oldest first.
func (e *env) types(t *testing.T) []string {
	t.Helper()
	evs, _, err := e.st.ListEvents(context.Background(), "acme", store.EventQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[len(evs)-1-i] = ev.Type
	}
	return out
}

func TestQuoteFanOut(t *testing.T) {
	slow := newFake("slow", 500)
	slow.delay = 2 * time.Second
	e := setup(t, newFake("uber", 2500), newFake("rappi", 1990), slow)
	qs, err := e.svc.Quote(context.Background(), e.t, request())
	if err != nil {
		t.Fatal(err)
	}
	if len(qs.Quotes) != 2 || qs.Quotes[0].Provider != "rappi" || qs.Quotes[1].Provider != "uber" {
		t.Fatalf("quotes = %+v, want rappi then uber", qs.Quotes)
	}
	if len(qs.Errors) != 1 || qs.Errors[0].Provider != "slow" || qs.Errors[0].Code != "timeout" {
		t.Fatalf("errors = %+v, want slow timed out", qs.Errors)
	}
	bad := request()
	bad.Dropoff.Contact.Phone = "12345"
	var verr *courier.ValidationError
	if _, err := e.svc.Quote(context.Background(), e.t, bad); !errors.As(err, &verr) || verr.Field != "dropoff.contact.phone" {
		t.Fatalf("bad phone: err = %v", err)
	}

	// Booking the cheapest quote; an expired one is refused.
	d, err := e.svc.Create(context.Background(), e.t, "op1", courier.CreateInput{QuoteID: qs.Quotes[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if d.Provider != "rappi" || d.Status != "pending" || d.ProviderDeliveryID == "" || d.Fee == nil || d.Fee.Amount != 1990 {
		t.Fatalf("delivery = %+v", d)
	}
	again, err := e.svc.Create(context.Background(), e.t, "op1", courier.CreateInput{QuoteID: qs.Quotes[0].ID})
	if err != nil || again.ID != d.ID || e.fakes["rappi"].creates != 1 {
		t.Fatalf("same operation again: %+v, %v (creates %d)", again, err, e.fakes["rappi"].creates)
	}
	e.advance(20 * time.Minute)
	if _, err := e.svc.Create(context.Background(), e.t, "op2", courier.CreateInput{QuoteID: qs.Quotes[1].ID}); !errors.Is(err, courier.ErrQuoteExpired) {
		t.Fatalf("expired quote: err = %v", err)
	}
	if got := e.types(t); fmt.Sprint(got) != "[delivery.created]" {
		t.Fatalf("events = %v, want one delivery.created", got)
	}
}

func TestTransitionsOnceAndInOrder(t *testing.T) {
	uber := newFake("uber", 2500)
	e := setup(t, uber)
	ctx := context.Background()
	req := request()
	req.Provider = "uber"
	d, err := e.svc.Create(ctx, e.t, "op1", courier.CreateInput{Request: &req})
	if err != nil {
		t.Fatal(err)
	}
	link := func(typ string, data map[string]any) {
		t.Helper()
		ev := provider.Event{ID: "evt_" + typ, Type: typ, Subject: d.ProviderDeliveryID}
		linked, _, change, ok := e.svc.Link(ctx, "acme", "uber", ev, data)
		if !ok {
			t.Fatalf("Link(%s) did not find the delivery", typ)
		}
		var evs []store.Event
		for i, lk := range linked {
			body, _ := json.Marshal(map[string]any{"type": lk.Type, "data": lk.Data})
			evs = append(evs, store.Event{Type: lk.Type, Provider: "uber", Subject: d.ProviderDeliveryID, Body: body})
			change.Events = append(change.Events, i)
		}
		if _, err := e.st.RecordEvents(ctx, store.EventBatch{TenantID: "acme", Events: evs,
			Resources: []store.ResourceChange{change}}); err != nil {
			t.Fatal(err)
		}
	}
	// Webhook: assigned, with the courier.
	link("delivery.assigned", map[string]any{"courier": map[string]any{"name": "Ana", "phone": "+56911111111"}})
	// A poll sees picked_up before its webhook arrives.
	uber.set(d.ProviderDeliveryID, delivery.StatusPickedUp)
	if _, err := e.svc.Get(ctx, e.t, d.ID, true); err != nil {
		t.Fatal(err)
	}
	// The late webhooks for assigned and picked_up change nothing.
	link("delivery.picked_up", nil)
	link("delivery.assigned", nil)
	// Cancel after pickup is refused by the gateway itself.
	if _, err := e.svc.Cancel(ctx, e.t, d.ID, "op_c", "changed my mind"); !errors.Is(err, courier.ErrConflict) {
		t.Fatalf("cancel after pickup: err = %v", err)
	}
	// Locations: at most one per 30 s.
	loc := func(lat float64) map[string]any {
		return map[string]any{"courier": map[string]any{"location": map[string]any{"lat": lat, "lng": -70.6}}}
	}
	link("delivery.courier_location", loc(-33.40))
	e.advance(10 * time.Second)
	link("delivery.courier_location", loc(-33.41))
	e.advance(25 * time.Second)
	link("delivery.courier_location", loc(-33.42))
	link("delivery.completed", map[string]any{"proof_of_delivery": map[string]any{"photo_url": "https://p.example/1.jpg"}})
	link("delivery.cancelled", nil) // after the end: ignored

	want := "[delivery.created delivery.assigned delivery.picked_up delivery.courier_location delivery.courier_location delivery.completed]"
	if got := fmt.Sprint(e.types(t)); got != want {
		t.Fatalf("events = %s\nwant     %s", got, want)
	}
	got, err := e.svc.Get(ctx, e.t, d.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "delivered" || got.Courier == nil || got.Courier.Name != "Ana" || got.Proof == nil || got.Proof.PhotoURL == "" {
		t.Fatalf("delivery = %+v", got)
	}
	r, _ := e.st.GetResource(ctx, courier.KindDelivery, "acme", d.ID)
	if !r.CheckAt.IsZero() {
		t.Fatalf("a finished delivery is still scheduled for polling at %s", r.CheckAt)
	}
}

func TestTrackerPollsSilentDeliveries(t *testing.T) {
	pdy := newFake("pedidosya", 2990)
	e := setup(t, pdy)
	ctx := context.Background()
	req := request()
	req.Provider = "pedidosya"
	d, err := e.svc.Create(ctx, e.t, "op1", courier.CreateInput{Request: &req})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.TrackOnce(ctx, time.Second) // not due yet
	if pdy.gets != 0 {
		t.Fatalf("polled %d times before the interval", pdy.gets)
	}
	for _, s := range []delivery.Status{delivery.StatusAssigned, delivery.StatusPickedUp, delivery.StatusDelivered} {
		pdy.set(d.ProviderDeliveryID, s)
		e.advance(61 * time.Second)
		e.svc.TrackOnce(ctx, time.Second)
	}
	e.advance(time.Hour)
	e.svc.TrackOnce(ctx, time.Second)
	if pdy.gets != 3 {
		t.Fatalf("polled %d times, want 3 (none after the delivery finished)", pdy.gets)
	}
	want := "[delivery.created delivery.assigned delivery.picked_up delivery.completed]"
	if got := fmt.Sprint(e.types(t)); got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
}

func TestCancelBeforePickup(t *testing.T) {
	e := setup(t, newFake("uber", 2500))
	ctx := context.Background()
	req := request()
	req.Provider = "uber"
	d, err := e.svc.Create(ctx, e.t, "op1", courier.CreateInput{Request: &req})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.svc.Cancel(ctx, e.t, d.ID, "op_c", "customer left")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != "cancelled" || c.Reason != "customer left" {
		t.Fatalf("cancelled = %+v", c)
	}
	if got := fmt.Sprint(e.types(t)); got != "[delivery.created delivery.cancelled]" {
		t.Fatalf("events = %s", got)
	}
	if _, err := e.svc.Get(ctx, e.t, "del_nope", false); !errors.Is(err, courier.ErrNotFound) {
		t.Fatalf("missing delivery: %v", err)
	}
}

// TestSkippedStatesAnnounced: a poll that finds a pending delivery already
// delivered (or webhooks that arrive out of order) still tells the tenant
// every step, once and in order.
func TestSkippedStatesAnnounced(t *testing.T) {
	rappi := newFake("rappi", 1990)
	e := setup(t, rappi)
	ctx := context.Background()
	req := request()
	req.Provider = "rappi"
	d, err := e.svc.Create(ctx, e.t, "op1", courier.CreateInput{Request: &req})
	if err != nil {
		t.Fatal(err)
	}
	rappi.set(d.ProviderDeliveryID, delivery.StatusAssigned)
	rappi.set(d.ProviderDeliveryID, delivery.StatusDelivered)
	if _, err := e.svc.Get(ctx, e.t, d.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Get(ctx, e.t, d.ID, true); err != nil { // again: nothing new
		t.Fatal(err)
	}
	want := "[delivery.created delivery.assigned delivery.picked_up delivery.completed]"
	if got := fmt.Sprint(e.types(t)); got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
	evs, _, _ := e.st.ListEvents(ctx, "acme", store.EventQuery{Type: "delivery.assigned"})
	if len(evs) != 1 || !strings.Contains(string(evs[0].Body), `"status":"assigned"`) || !strings.Contains(string(evs[0].Body), `"name":"Ana"`) {
		t.Fatalf("synthesized assigned event: %+v", evs)
	}
}
