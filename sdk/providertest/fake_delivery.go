package providertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// FakeDelivery is an in-memory delivery provider with real behaviour:
// quotes that expire, idempotent bookings, cancellation until pickup, and
// a credential check. Gateway tests use it in place of a plugin.
//
// Credentials: the tenant must carry the secret "api_key"; the value "bad"
// is rejected as unauthorized. Its webhooks are JSON bodies
// {"events":[{"id","delivery_id","status","reason"?}]}; see ParseWebhook.
type FakeDelivery struct {
	// Name defaults to "fakedelivery".
	Name string
	// Fail, when set, is consulted before every operation; a non-nil
	// error is returned as is.
	Fail      func(op string, tenant provider.Tenant) error
	delay     atomic.Int64
	calls     atomic.Int64
	mu        sync.Mutex
	quotes    map[string]delivery.Quote
	byKey     map[string]string // tenant+idempotency key -> shipment id
	shipments map[string]*delivery.Shipment
}

var (
	_ delivery.Provider      = (*FakeDelivery)(nil)
	_ provider.WebhookParser = (*FakeDelivery)(nil)
)

// Info implements provider.Provider.
func (f *FakeDelivery) Info() provider.Info { return fakeInfo(f.Name, "fakedelivery") }

// SetDelay makes every later operation wait d (honouring its context)
// before answering. Zero removes it.
func (f *FakeDelivery) SetDelay(d time.Duration) { f.delay.Store(int64(d)) }

// Calls returns how many operations reached the fake.
func (f *FakeDelivery) Calls() int64 { return f.calls.Load() }

func (f *FakeDelivery) enter(ctx context.Context, op string, t provider.Tenant) error {
	f.calls.Add(1)
	if err := fakeEnter(ctx, "fakedelivery", op, t, time.Duration(f.delay.Load()), f.Fail); err != nil {
		return err
	}
	f.mu.Lock()
	if f.shipments == nil {
		f.quotes, f.byKey, f.shipments = map[string]delivery.Quote{}, map[string]string{}, map[string]*delivery.Shipment{}
	}
	f.mu.Unlock()
	return nil
}

// fakeEnter is the common prologue of the fakes: delay, credential check,
// injected failure.
func fakeEnter(ctx context.Context, name, op string, t provider.Tenant, delay time.Duration, fail func(string, provider.Tenant) error) error {
	if delay > 0 {
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return provider.Retryable(fmt.Errorf("%s: %s: %w", name, op, ctx.Err()))
		}
	}
	switch k := t.Secret("api_key"); {
	case k.IsZero():
		return provider.Unauthorized(fmt.Errorf("%s: api_key is not set", name))
	case k.Reveal() == "bad":
		return provider.Unauthorized(fmt.Errorf("%s: api key rejected", name))
	}
	if fail != nil {
		return fail(op, t)
	}
	return nil
}

func validStop(which string, s delivery.Stop) error {
	if s.Address.Street == "" || s.Address.City == "" || s.Address.Country == "" {
		return provider.Invalid(fmt.Errorf("fakedelivery: %s address needs street, city and country", which))
	}
	return nil
}

// Quote implements delivery.Provider: 2990 CLP, 35 minutes, valid for 15.
func (f *FakeDelivery) Quote(ctx context.Context, r delivery.QuoteRequest) (delivery.Quote, error) {
	if err := errors.Join(validStop("pickup", r.Pickup), validStop("dropoff", r.Dropoff)); err != nil {
		return delivery.Quote{}, provider.Invalid(err)
	}
	if err := f.enter(ctx, "quote", r.Tenant); err != nil {
		return delivery.Quote{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	q := delivery.Quote{
		ID:  fmt.Sprintf("fkq_%d", len(f.quotes)+1),
		Fee: provider.Money{Amount: 2990, Currency: "CLP"}, ETA: 35 * time.Minute,
		ExpiresAt: time.Now().Add(15 * time.Minute).UTC(),
	}
	f.quotes[r.Tenant.ID()+"\x00"+q.ID] = q
	return q, nil
}

// CreateShipment implements delivery.Provider. A QuoteID must name an
// unexpired quote of the same tenant.
func (f *FakeDelivery) CreateShipment(ctx context.Context, r delivery.CreateRequest) (delivery.Shipment, error) {
	if err := errors.Join(validStop("pickup", r.Pickup), validStop("dropoff", r.Dropoff)); err != nil {
		return delivery.Shipment{}, provider.Invalid(err)
	}
	if err := f.enter(ctx, "create", r.Tenant); err != nil {
		return delivery.Shipment{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := r.Tenant.ID() + "\x00" + r.IdempotencyKey
	if id, ok := f.byKey[k]; ok {
		return *f.shipments[id], nil
	}
	fee := provider.Money{Amount: 3490, Currency: "CLP"}
	if r.QuoteID != "" {
		q, ok := f.quotes[r.Tenant.ID()+"\x00"+r.QuoteID]
		if !ok || time.Now().After(q.ExpiresAt) {
			return delivery.Shipment{}, provider.Invalid(fmt.Errorf("fakedelivery: quote %q is unknown or expired", r.QuoteID))
		}
		fee = q.Fee
	}
	sum := sha256.Sum256([]byte(k))
	sh := &delivery.Shipment{
		ID: "fkd_" + hex.EncodeToString(sum[:8]), Status: delivery.StatusPending, Fee: fee,
		ETA: time.Now().Add(35 * time.Minute).UTC(),
	}
	sh.TrackingURL = "https://fake.example/track/" + sh.ID
	f.byKey[k] = sh.ID
	f.shipments[sh.ID] = sh
	return *sh, nil
}

// GetShipment implements delivery.Provider.
func (f *FakeDelivery) GetShipment(ctx context.Context, r delivery.GetRequest) (delivery.Shipment, error) {
	if err := f.enter(ctx, "get", r.Tenant); err != nil {
		return delivery.Shipment{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sh, ok := f.shipments[r.ID]
	if !ok {
		return delivery.Shipment{}, provider.Invalid(fmt.Errorf("fakedelivery: no such shipment %q", r.ID))
	}
	return *sh, nil
}

// CancelShipment implements delivery.Provider: pending and assigned
// shipments cancel; later ones are refused with KindPermanent.
func (f *FakeDelivery) CancelShipment(ctx context.Context, r delivery.CancelRequest) (delivery.Shipment, error) {
	if err := f.enter(ctx, "cancel", r.Tenant); err != nil {
		return delivery.Shipment{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sh, ok := f.shipments[r.ID]
	if !ok {
		return delivery.Shipment{}, provider.Invalid(fmt.Errorf("fakedelivery: no such shipment %q", r.ID))
	}
	switch sh.Status {
	case delivery.StatusPending, delivery.StatusAssigned:
		sh.Status, sh.Reason = delivery.StatusCancelled, r.Reason
	case delivery.StatusCancelled:
	default:
		return delivery.Shipment{}, provider.Permanent(fmt.Errorf("fakedelivery: shipment %s is %s and can no longer be cancelled", sh.ID, sh.Status))
	}
	return *sh, nil
}

// SetStatus changes a shipment's status as the provider would on its own
// (a courier picking it up).
func (f *FakeDelivery) SetStatus(id string, s delivery.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sh, ok := f.shipments[id]; ok {
		sh.Status = s
	}
}

var fakeDeliveryTypes = map[delivery.Status]string{
	delivery.StatusPending: "delivery.created", delivery.StatusAssigned: "delivery.assigned",
	delivery.StatusPickedUp: "delivery.picked_up", delivery.StatusDelivered: "delivery.completed",
	delivery.StatusCancelled: "delivery.cancelled", delivery.StatusFailed: "delivery.failed",
}

// ParseWebhook implements provider.WebhookParser. The body is
// {"events":[{"id":"evt_1","delivery_id":"fkd_…","status":"picked_up","reason":""}]};
// each event with a catalog status yields one event, others none. A body
// that is not that JSON fails KindInvalid.
func (f *FakeDelivery) ParseWebhook(_ context.Context, r provider.WebhookRequest) ([]provider.Event, error) {
	var body struct {
		Events []struct {
			ID         string `json:"id"`
			DeliveryID string `json:"delivery_id"`
			Status     string `json:"status"`
			Reason     string `json:"reason,omitempty"`
		} `json:"events"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return nil, provider.Invalid(fmt.Errorf("fakedelivery: webhook body: %w", err))
	}
	var evs []provider.Event
	for i, e := range body.Events {
		typ, ok := fakeDeliveryTypes[delivery.Status(e.Status)]
		if !ok {
			continue
		}
		if e.ID == "" || e.DeliveryID == "" {
			return nil, provider.Invalid(fmt.Errorf("fakedelivery: webhook event %d lacks id or delivery_id", i))
		}
		data, err := json.Marshal(struct {
			Status string `json:"status"`
			Reason string `json:"reason,omitempty"`
		}{e.Status, e.Reason})
		if err != nil {
			return nil, provider.Invalid(err)
		}
		evs = append(evs, provider.Event{ID: e.ID, Type: typ, Subject: e.DeliveryID, OccurredAt: time.Now().UTC(), Data: data})
	}
	return evs, nil
}

// fakeInfo is the Info of the delivery and messaging fakes: an api_key
// credential, and webhooks signed with hex HMAC-SHA256 in X-Fake-Signature
// and deduplicated on the body's id. name defaults to def.
func fakeInfo(name, def string) provider.Info {
	if name == "" {
		name = def
	}
	return provider.Info{
		Name: name, Version: "1.0.0",
		Fields: []provider.Field{
			{Name: "api_key", Secret: true, Required: true, Doc: "API key"},
			{Name: "webhook_secret", Secret: true, Doc: "webhook signing secret"},
		},
		Webhook: &provider.WebhookSpec{Scheme: provider.SchemeHMACSHA256, Header: "X-Fake-Signature", SecretField: "webhook_secret", DedupKey: []string{"json:id"}},
	}
}
