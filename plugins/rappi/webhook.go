package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pipecore/pipecore/plugins/rappi/internal/wire"
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// The catalog types the plugin emits (EVENTS.md), by gateway status.
// Pending (created, no courier yet) emits nothing: the gateway already
// announced delivery.created when it booked the delivery.
var catalogTypes = map[delivery.Status]string{
	delivery.StatusAssigned:  "delivery.assigned",
	delivery.StatusPickedUp:  "delivery.picked_up",
	delivery.StatusDelivered: "delivery.completed",
	delivery.StatusCancelled: "delivery.cancelled",
	delivery.StatusFailed:    "delivery.failed",
}

// errMalformedWebhook is in the chain of every error ParseWebhook returns:
// the body is not a Rappi event the plugin can read. Such errors are
// KindInvalid, so the gateway quarantines the webhook.
var errMalformedWebhook = errors.New("rappi: malformed webhook")

// ParseWebhook turns a Rappi delivery webhook (wire.Webhook) into at most
// one catalog event. The gateway has already verified Rappi-Signature.
//
// The new status is the body's status, else its event name, read through
// wire.Status: courier events (ASSIGNED, PICKED_UP, DELIVERED, CANCELED,
// FAILED, ...) and the documented marketplace order events
// (taken_visible_order → assigned, canceled_… → cancelled) are mapped.
// A body without an event (PING, MENU_*, STORE_CONNECTIVITY, NEW_ORDER),
// an unknown event name and a pending status yield no event and a nil
// error. A body that is not a JSON object, or a mapped event without
// order_id, is KindInvalid.
//
// Event.Subject is order_id (Rappi's delivery id); Event.ID is
// "rappi:<order_id>:<event>:<event_time>", the fields the gateway
// deduplicates on (wire.WebhookDedupKey), or a digest of the body when
// event_time is absent; Event.OccurredAt is event_time (the zero time when
// absent). Data carries provider_delivery_id, status, and, when present,
// courier (name, phone, vehicle, location), tracking_url, eta,
// proof_of_delivery and reason (cancelled and failed only; a cancellation
// event's name, e.g. canceled_with_charge, when Rappi gives no reason).
//
// ParseWebhook makes no network call: the event carries the state
// (GetShipment reads it again when the gateway reconciles). It is safe for
// concurrent use.
func (*rappiProvider) ParseWebhook(ctx context.Context, req provider.WebhookRequest) ([]provider.Event, error) {
	var w wire.Webhook
	if err := json.Unmarshal(req.Body, &w); err != nil {
		return nil, provider.Invalid(fmt.Errorf("%w: %w", errMalformedWebhook, err))
	}
	name := strings.TrimSpace(w.Status)
	if name == "" {
		name = strings.TrimSpace(w.Event)
	}
	log := provider.Log(ctx)
	if name == "" {
		log.Debug("rappi webhook without an order event ignored")
		return nil, nil
	}
	st, ok := wire.Status(name)
	if !ok {
		log.Info("rappi webhook with an unknown event ignored", "event", clip(name), "order", clip(string(w.OrderID)))
		return nil, nil
	}
	typ, ok := catalogTypes[st]
	if !ok {
		log.Debug("rappi webhook needs no event", "event", clip(name), "order", clip(string(w.OrderID)))
		return nil, nil
	}
	order := strings.TrimSpace(string(w.OrderID))
	if order == "" {
		return nil, provider.Invalid(fmt.Errorf("%w: event %q has no order_id", errMalformedWebhook, clip(name)))
	}
	occurred, _ := parseTime(w.EventTime)
	d := eventData{ProviderDeliveryID: order, Status: string(st), TrackingURL: w.TrackingURL}
	if eta, ok := parseTime(w.EstimatedDeliveryAt); ok {
		d.ETA = eta.Format(time.RFC3339)
	}
	if info := w.AdditionalInformation; info != nil {
		d.Courier = courierData(info.CourierData)
		if st == delivery.StatusDelivered {
			d.Proof = proofData(info.ProofOfDelivery)
		}
		if st == delivery.StatusCancelled || st == delivery.StatusFailed {
			d.Reason = strings.TrimSpace(info.Reason)
		}
	}
	if d.Reason == "" && st == delivery.StatusCancelled && strings.HasPrefix(strings.ToUpper(w.Event), wire.CancelEventPrefix) {
		d.Reason = strings.ToLower(w.Event)
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, provider.Invalid(fmt.Errorf("rappi: encode event for %q: %w", clip(order), err))
	}
	return []provider.Event{{
		ID:         eventID(order, w, req.Body),
		Type:       typ,
		Subject:    order,
		OccurredAt: occurred,
		Data:       data,
	}}, nil
}

// eventID is deterministic: the same notification redelivered has the
// same id.
func eventID(order string, w wire.Webhook, body []byte) string {
	if w.EventTime != "" && w.Event != "" {
		return "rappi:" + order + ":" + w.Event + ":" + w.EventTime
	}
	sum := sha256.Sum256(body)
	return "rappi:" + order + ":sha256:" + hex.EncodeToString(sum[:16])
}

// eventData is the Data of a delivery.* catalog event (EVENTS.md). Unknown
// fields are omitted, never sent empty.
type eventData struct {
	ProviderDeliveryID string         `json:"provider_delivery_id"`
	Status             string         `json:"status"`
	TrackingURL        string         `json:"tracking_url,omitempty"`
	Courier            *courierObject `json:"courier,omitempty"`
	ETA                string         `json:"eta,omitempty"`
	Proof              *proofObject   `json:"proof_of_delivery,omitempty"`
	Reason             string         `json:"reason,omitempty"`
}

type courierObject struct {
	Name     string          `json:"name,omitempty"`
	Phone    string          `json:"phone,omitempty"`
	Vehicle  string          `json:"vehicle,omitempty"`
	Location *locationObject `json:"location,omitempty"`
}

type locationObject struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

type proofObject struct {
	PhotoURL     string `json:"photo_url,omitempty"`
	SignatureURL string `json:"signature_url,omitempty"`
	PIN          string `json:"pin,omitempty"`
}

func courierData(c *wire.Courier) *courierObject {
	dc := courier(c)
	if dc == nil {
		return nil
	}
	out := &courierObject{Name: dc.Name, Phone: dc.Phone, Vehicle: dc.Vehicle}
	if dc.Location != nil {
		out.Location = &locationObject{Lat: dc.Location.Lat, Lng: dc.Location.Lng}
	}
	return out
}

func proofData(p *wire.Proof) *proofObject {
	dp := proof(p)
	if dp == nil {
		return nil
	}
	return &proofObject{PhotoURL: dp.PhotoURL, SignatureURL: dp.SignatureURL, PIN: dp.PIN}
}
