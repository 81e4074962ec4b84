package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pipecore/pipecore/plugins/rappi/internal/wire"
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// defaultItem is sent when a request lists no items: the courier contract
// requires at least one ([assumption], see wire.QuoteRequest).
var defaultItem = wire.Item{Name: "package", Quantity: 1}

// Quote prices a delivery (POST wire.QuotesPath). Stops need a street or
// a location; without them the call is KindInvalid and nothing is sent.
func (p *rappiProvider) Quote(ctx context.Context, req delivery.QuoteRequest) (delivery.Quote, error) {
	body, err := quoteBody(req.Pickup, req.Dropoff, req.Items, req.ReadyAt, req.Reference)
	if err != nil {
		return delivery.Quote{}, err
	}
	c, err := p.newClient(req.Tenant)
	if err != nil {
		return delivery.Quote{}, err
	}
	body.Country = c.country
	var out wire.QuoteResponse
	if err := c.call(ctx, "quote", http.MethodPost, wire.QuotesPath, "", body, &out); err != nil {
		return delivery.Quote{}, err
	}
	if out.QuoteID == "" || out.Fee.Currency == "" {
		return delivery.Quote{}, c.fail(ctx, "quote", http.StatusOK, provider.Retryable(errors.New("rappi: quote: answer has no quote_id or fee")))
	}
	q := delivery.Quote{
		ID:  out.QuoteID,
		Fee: money(out.Fee),
		ETA: time.Duration(out.ETAMinutes) * time.Minute,
	}
	q.ExpiresAt, _ = parseTime(out.ExpiresAt)
	return q, nil
}

// CreateShipment books a courier (POST wire.DeliveriesPath). The
// gateway's idempotency key goes in the Idempotency-Key header and its
// delivery id (else the idempotency key) as external_id; Rappi answers a
// repeat of either with the delivery first booked, so a retry never books
// a second courier. req.QuoteID, when set, books that quote.
func (p *rappiProvider) CreateShipment(ctx context.Context, req delivery.CreateRequest) (delivery.Shipment, error) {
	external := req.DeliveryID
	if external == "" {
		external = req.IdempotencyKey
	}
	if external == "" {
		return delivery.Shipment{}, provider.Invalid(errors.New("rappi: create: neither a delivery id nor an idempotency key to use as external_id"))
	}
	qb, err := quoteBody(req.Pickup, req.Dropoff, req.Items, req.ReadyAt, req.Reference)
	if err != nil {
		return delivery.Shipment{}, err
	}
	c, err := p.newClient(req.Tenant)
	if err != nil {
		return delivery.Shipment{}, err
	}
	qb.Country = c.country
	body := wire.OrderRequest{QuoteRequest: qb, ExternalID: external, QuoteID: req.QuoteID}
	var out wire.Delivery
	if err := c.call(ctx, "create delivery", http.MethodPost, wire.DeliveriesPath, req.IdempotencyKey, body, &out); err != nil {
		return delivery.Shipment{}, err
	}
	return c.shipment(ctx, "create delivery", out)
}

// GetShipment reads a delivery (GET wire.DeliveryPath).
func (p *rappiProvider) GetShipment(ctx context.Context, req delivery.GetRequest) (delivery.Shipment, error) {
	if strings.TrimSpace(req.ID) == "" {
		return delivery.Shipment{}, provider.Invalid(errors.New("rappi: get delivery: id is empty"))
	}
	c, err := p.newClient(req.Tenant)
	if err != nil {
		return delivery.Shipment{}, err
	}
	var out wire.Delivery
	if err := c.call(ctx, "get delivery", http.MethodGet, wire.DeliveryPath(req.ID), "", nil, &out); err != nil {
		return delivery.Shipment{}, err
	}
	return c.shipment(ctx, "get delivery", out)
}

// CancelShipment cancels a delivery (POST wire.CancelPath). Cancelling a
// cancelled delivery returns it again. Once the courier has picked the
// order up Rappi refuses with 409 cancel_not_allowed, returned as
// KindPermanent with Rappi's message.
func (p *rappiProvider) CancelShipment(ctx context.Context, req delivery.CancelRequest) (delivery.Shipment, error) {
	if strings.TrimSpace(req.ID) == "" {
		return delivery.Shipment{}, provider.Invalid(errors.New("rappi: cancel delivery: id is empty"))
	}
	c, err := p.newClient(req.Tenant)
	if err != nil {
		return delivery.Shipment{}, err
	}
	var out wire.Delivery
	if err := c.call(ctx, "cancel delivery", http.MethodPost, wire.CancelPath(req.ID), req.IdempotencyKey, wire.CancelRequest{Reason: req.Reason}, &out); err != nil {
		return delivery.Shipment{}, err
	}
	return c.shipment(ctx, "cancel delivery", out)
}

// quoteBody builds the stops, items and times common to quote and create.
func quoteBody(pickup, dropoff delivery.Stop, items []delivery.Item, readyAt time.Time, reference string) (wire.QuoteRequest, error) {
	pu, err := stop("pickup", pickup)
	if err != nil {
		return wire.QuoteRequest{}, err
	}
	do, err := stop("dropoff", dropoff)
	if err != nil {
		return wire.QuoteRequest{}, err
	}
	body := wire.QuoteRequest{Reference: reference, Pickup: pu, Dropoff: do, Items: make([]wire.Item, 0, max(len(items), 1))}
	for i, it := range items {
		if it.Quantity < 0 {
			return wire.QuoteRequest{}, provider.Invalid(fmt.Errorf("rappi: item %d: quantity %d is negative", i, it.Quantity))
		}
		w := wire.Item{Name: strings.TrimSpace(it.Name), Quantity: max(it.Quantity, 1), Size: it.Size}
		if w.Name == "" {
			w.Name = defaultItem.Name
		}
		if it.Price != nil {
			if err := it.Price.Validate(); err != nil {
				return wire.QuoteRequest{}, provider.Invalid(fmt.Errorf("rappi: item %d: %w", i, err))
			}
			w.Price = &wire.Money{Amount: it.Price.Amount, Currency: it.Price.Currency}
		}
		body.Items = append(body.Items, w)
	}
	if len(body.Items) == 0 {
		body.Items = append(body.Items, defaultItem)
	}
	if !readyAt.IsZero() {
		body.ReadyAt = readyAt.UTC().Format(time.RFC3339)
	}
	return body, nil
}

// stop converts a stop; it needs a street or a location.
func stop(name string, s delivery.Stop) (wire.Stop, error) {
	street := strings.TrimSpace(s.Address.Street)
	if street == "" && s.Location == nil {
		return wire.Stop{}, provider.Invalid(fmt.Errorf("rappi: %s has no street and no location", name))
	}
	w := wire.Stop{
		Address: wire.Address{
			Street: street, Number: s.Address.Number, City: s.Address.City, Region: s.Address.Region,
			Country: s.Address.Country, PostalCode: s.Address.PostalCode,
		},
		Contact:      wire.Contact{Name: s.Contact.Name, Phone: s.Contact.Phone},
		Instructions: s.Notes,
	}
	if l := s.Location; l != nil {
		if l.Lat < -90 || l.Lat > 90 || l.Lng < -180 || l.Lng > 180 {
			return wire.Stop{}, provider.Invalid(fmt.Errorf("rappi: %s location %v,%v is out of range", name, l.Lat, l.Lng))
		}
		w.Location = &wire.Location{Lat: l.Lat, Lng: l.Lng}
	}
	return w, nil
}

// shipment maps Rappi's delivery. An unknown status is read as pending
// and logged; an answer without an id is a retryable malformed answer.
func (c *client) shipment(ctx context.Context, op string, d wire.Delivery) (delivery.Shipment, error) {
	if d.ID == "" {
		return delivery.Shipment{}, c.fail(ctx, op, http.StatusOK, provider.Retryable(fmt.Errorf("rappi: %s: answer has no delivery id", op)))
	}
	st, ok := wire.Status(d.Status)
	if !ok {
		provider.Log(ctx).Warn("rappi: unknown delivery status, read as pending", "op", op, "status", clip(d.Status), "delivery", clip(d.ID))
		st = delivery.StatusPending
	}
	s := delivery.Shipment{
		ID:          d.ID,
		Status:      st,
		TrackingURL: d.TrackingURL,
		Courier:     courier(d.Courier),
		Proof:       proof(d.ProofOfDelivery),
		Reason:      d.CancellationReason,
	}
	if d.Fee != nil {
		s.Fee = money(*d.Fee)
	}
	s.ETA, _ = parseTime(d.EstimatedDeliveryAt)
	return s, nil
}

func money(m wire.Money) provider.Money {
	return provider.Money{Amount: m.Amount, Currency: strings.ToUpper(m.Currency)}
}

// courier maps Rappi's courier; nil when Rappi gave nothing usable.
func courier(c *wire.Courier) *delivery.Courier {
	if c == nil {
		return nil
	}
	out := &delivery.Courier{Name: courierName(c), Phone: c.Phone, Vehicle: c.Vehicle}
	if c.Location != nil {
		out.Location = &delivery.Location{Lat: c.Location.Lat, Lng: c.Location.Lng}
	}
	if out.Name == "" && out.Phone == "" && out.Vehicle == "" && out.Location == nil {
		return nil
	}
	return out
}

// courierName is full_name, else first_name and last_name.
func courierName(c *wire.Courier) string {
	if n := strings.TrimSpace(c.FullName); n != "" {
		return n
	}
	return strings.TrimSpace(strings.TrimSpace(c.FirstName) + " " + strings.TrimSpace(c.LastName))
}

func proof(p *wire.Proof) *delivery.ProofOfDelivery {
	if p == nil || (p.PhotoURL == "" && p.SignatureURL == "" && p.PIN == "") {
		return nil
	}
	return &delivery.ProofOfDelivery{PhotoURL: p.PhotoURL, SignatureURL: p.SignatureURL, PIN: p.PIN}
}

// parseTime reads RFC 3339 or Rappi's event_time layout (as UTC); "" or
// an unreadable value is the zero time and false.
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	if t, err := time.ParseInLocation(wire.EventTimeLayout, s, time.UTC); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// clip bounds a provider string quoted in a log line or an error.
func clip(s string) string {
	const n = 64
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
