package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// The catalog types the plugin emits (EVENTS.md).
const (
	eventAssigned        = "delivery.assigned"
	eventPickedUp        = "delivery.picked_up"
	eventCompleted       = "delivery.completed"
	eventCancelled       = "delivery.cancelled"
	eventFailed          = "delivery.failed"
	eventCourierLocation = "delivery.courier_location"
)

// statusEvent is the event announcing each status. Pending has none: the
// gateway announces delivery.created itself when it books.
var statusEvent = map[delivery.Status]string{
	delivery.StatusAssigned:  eventAssigned,
	delivery.StatusPickedUp:  eventPickedUp,
	delivery.StatusDelivered: eventCompleted,
	delivery.StatusCancelled: eventCancelled,
	delivery.StatusFailed:    eventFailed,
}

// errMalformedWebhook is in the chain of every KindInvalid error
// ParseWebhook returns: the notification cannot be read.
var errMalformedWebhook = errors.New("uberdirect: malformed webhook")

func malformed(format string, args ...any) error {
	return provider.Invalid(fmt.Errorf("%w: "+format, append([]any{errMalformedWebhook}, args...)...))
}

// money is the catalog's {"amount", "currency"}.
type money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

type location struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

type courierData struct {
	Name     string    `json:"name,omitempty"`
	Phone    string    `json:"phone,omitempty"`
	Vehicle  string    `json:"vehicle,omitempty"`
	Location *location `json:"location,omitempty"`
}

type proofData struct {
	PhotoURL     string `json:"photo_url,omitempty"`
	SignatureURL string `json:"signature_url,omitempty"`
	PIN          string `json:"pin,omitempty"`
}

// deliveryData is the Data of a delivery.* status event (EVENTS.md). The
// gateway adds delivery_id, reference, tenant_id and its other ids.
// Unknown fields are omitted, never sent empty.
type deliveryData struct {
	Status             string       `json:"status"`
	ProviderDeliveryID string       `json:"provider_delivery_id"`
	TrackingURL        string       `json:"tracking_url,omitempty"`
	Fee                *money       `json:"fee,omitempty"`
	Courier            *courierData `json:"courier,omitempty"`
	ETA                string       `json:"eta,omitempty"`
	ProofOfDelivery    *proofData   `json:"proof_of_delivery,omitempty"`
	Reason             string       `json:"reason,omitempty"`
}

// courierLocationData is the Data of delivery.courier_location.
type courierLocationData struct {
	Courier struct {
		Location location `json:"location"`
	} `json:"courier"`
}

// ParseWebhook maps a verified Uber Direct webhook to catalog events. The
// payload carries Uber's full, current delivery object under "data", so
// it is mapped as received, without calling Uber (providers.md §4.4):
//
//   - event.delivery_status: one event for the status the delivery is in,
//     mapped as GetShipment maps it (README.md has the table): pickup with
//     a courier → delivery.assigned, pickup_complete and dropoff →
//     delivery.picked_up, delivered → delivery.completed (with
//     proof_of_delivery), canceled / returned → delivery.cancelled
//     (delivery.failed when Uber says why it was undeliverable). Uber
//     repeats a status when courier_imminent changes; the repeat is the
//     same event type again, which the gateway drops as not news (it
//     announces each status once) while keeping the fresher courier
//     details. pending, and pickup without a courier, yield no event: the
//     gateway announces delivery.created itself when it books.
//   - event.courier_update → delivery.courier_location with
//     {"courier":{"location":{"lat","lng"}}}.
//   - other kinds (event.refund_request, event.shopping_progress...): none.
//
// Event.ID is the webhook's "id" (evt_…), else a deterministic id built
// from kind, delivery, status and time; Subject is Uber's delivery id;
// OccurredAt is "created". A body that is not a JSON object, has no kind,
// or lacks the delivery id (or, for courier updates, the location) is
// KindInvalid. ParseWebhook keeps nothing and is safe for concurrent use.
func (*uberDirect) ParseWebhook(ctx context.Context, req provider.WebhookRequest) ([]provider.Event, error) {
	var env webhookEnvelope
	if err := json.Unmarshal(req.Body, &env); err != nil {
		return nil, malformed("%v", err)
	}
	switch env.Kind {
	case kindDeliveryStatus:
		return statusEvents(ctx, env)
	case kindCourierUpdate:
		return courierEvents(env)
	case "":
		return nil, malformed("no kind")
	}
	provider.Log(ctx).Debug("uberdirect webhook ignored", "kind", clip(env.Kind), "id", clip(env.ID))
	return nil, nil
}

func statusEvents(ctx context.Context, env webhookEnvelope) ([]provider.Event, error) {
	d := deliveryObject{}
	if env.Data != nil {
		d = *env.Data
	}
	id := firstOf(env.DeliveryID, d.ID)
	if id == "" {
		return nil, malformed("%s without delivery_id", env.Kind)
	}
	status := firstOf(env.Status, d.Status)
	if status == "" {
		return nil, malformed("%s for %s without status", env.Kind, clip(id))
	}
	d.ID, d.Status = id, status // the envelope's status is the one this event is about

	sh, known := shipmentOf(d)
	if !known {
		provider.Log(ctx).Warn("uberdirect webhook with an unknown status ignored", "delivery", clip(id), "status", clip(status))
		return nil, nil
	}
	typ := statusEvent[sh.Status]
	if typ == "" {
		provider.Log(ctx).Debug("uberdirect webhook needs no event", "delivery", clip(id), "status", clip(status), "courier_imminent", d.CourierImminent)
		return nil, nil
	}
	data, err := json.Marshal(eventData(sh))
	if err != nil {
		return nil, fmt.Errorf("uberdirect: encode event for %s: %w", clip(id), err)
	}
	return []provider.Event{{
		ID:         firstOf(env.ID, derivedID(env.Kind, id, status, env.Created)),
		Type:       typ,
		Subject:    id,
		OccurredAt: occurredAt(env.Created, d.Updated),
		Data:       data,
	}}, nil
}

func courierEvents(env webhookEnvelope) ([]provider.Event, error) {
	var d deliveryObject
	if env.Data != nil {
		d = *env.Data
	}
	id := firstOf(env.DeliveryID, d.ID)
	if id == "" {
		return nil, malformed("%s without delivery_id", env.Kind)
	}
	loc := env.Location
	if loc == nil && d.Courier != nil {
		loc = d.Courier.Location
	}
	if loc == nil {
		return nil, malformed("%s for %s without location", env.Kind, clip(id))
	}
	var out courierLocationData
	out.Courier.Location = location{Lat: loc.Lat, Lng: loc.Lng}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("uberdirect: encode event for %s: %w", clip(id), err)
	}
	where := strconv.FormatFloat(loc.Lat, 'f', -1, 64) + "," + strconv.FormatFloat(loc.Lng, 'f', -1, 64)
	return []provider.Event{{
		ID:         firstOf(env.ID, derivedID(env.Kind, id, where, env.Created)),
		Type:       eventCourierLocation,
		Subject:    id,
		OccurredAt: occurredAt(env.Created, d.Updated),
		Data:       data,
	}}, nil
}

// eventData is a shipment as catalog event data. The drop-off ETA is
// kept only while the delivery is under way.
func eventData(sh delivery.Shipment) deliveryData {
	out := deliveryData{
		Status:             string(sh.Status),
		ProviderDeliveryID: sh.ID,
		TrackingURL:        sh.TrackingURL,
		Reason:             sh.Reason,
	}
	if sh.Fee.Currency != "" {
		out.Fee = &money{Amount: sh.Fee.Amount, Currency: sh.Fee.Currency}
	}
	if c := sh.Courier; c != nil {
		out.Courier = &courierData{Name: c.Name, Phone: c.Phone, Vehicle: c.Vehicle}
		if c.Location != nil {
			out.Courier.Location = &location{Lat: c.Location.Lat, Lng: c.Location.Lng}
		}
	}
	if !sh.ETA.IsZero() && (sh.Status == delivery.StatusAssigned || sh.Status == delivery.StatusPickedUp) {
		out.ETA = sh.ETA.UTC().Format(time.RFC3339)
	}
	if p := sh.Proof; p != nil {
		out.ProofOfDelivery = &proofData{PhotoURL: p.PhotoURL, SignatureURL: p.SignatureURL, PIN: p.PIN}
	}
	return out
}

// derivedID is the event id of a webhook without "id": stable across
// redeliveries of the same notification.
func derivedID(kind, deliveryID, detail, created string) string {
	return strings.Join([]string{"uberdirect", kind, deliveryID, detail, created}, ":")
}

func occurredAt(values ...string) time.Time {
	for _, v := range values {
		if t := parseTime(v); !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
