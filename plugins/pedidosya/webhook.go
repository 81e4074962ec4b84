package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"

	"github.com/pipecore/pipecore/plugins/pedidosya/internal/wire"
)

// eventOf maps a callback's data.status to a catalog event type and status.
// CONFIRMED and PREORDER (the gateway announced the creation itself) and
// the progress statuses NEAR_PICKUP and NEAR_DROPOFF yield no event.
func eventOf(status string) (typ string, st delivery.Status) {
	switch status {
	case wire.StatusInProgress:
		return "delivery.assigned", delivery.StatusAssigned
	case wire.StatusPickedUp:
		return "delivery.picked_up", delivery.StatusPickedUp
	case wire.StatusCompleted:
		return "delivery.completed", delivery.StatusDelivered
	case wire.StatusCancelled:
		return "delivery.cancelled", delivery.StatusCancelled
	case wire.StatusRejected:
		return "delivery.failed", delivery.StatusFailed
	}
	return "", ""
}

// eventData is the catalog part of a delivery event the plugin knows; the
// gateway adds delivery_id, reference, tenant_id and the rest.
type eventData struct {
	Status             delivery.Status `json:"status"`
	ProviderDeliveryID string          `json:"provider_delivery_id"`
	Fee                *moneyData      `json:"fee,omitempty"`
	TrackingURL        string          `json:"tracking_url,omitempty"`
	Courier            *courierData    `json:"courier,omitempty"`
	ETA                string          `json:"eta,omitempty"`
	Reason             string          `json:"reason,omitempty"`
}

type moneyData struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

type courierData struct {
	Name     string        `json:"name,omitempty"`
	Phone    string        `json:"phone,omitempty"`
	Vehicle  string        `json:"vehicle,omitempty"`
	Location *locationData `json:"location,omitempty"`
}

type locationData struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// ParseWebhook maps a SHIPPING_STATUS callback, already authenticated by
// core (static Authorization key), to at most one event:
//
//	IN_PROGRESS  delivery.assigned
//	PICKED_UP    delivery.picked_up
//	COMPLETED    delivery.completed
//	CANCELLED    delivery.cancelled, reason = cancelCode: cancelReason
//	REJECTED     delivery.failed (not documented as a callback status)
//	CONFIRMED, PREORDER, NEAR_PICKUP, NEAR_DROPOFF, unknown: no event
//
// Event.ID is "<shipping id>:<status>" (PedidosYa sends no event id; see
// webhookDedupKey), Subject the shipping id, OccurredAt the callback's
// generated time. The callback is thin, so the plugin reads the shipping
// with the tenant's token (GetShipment) for the rider, fee and tracking
// URL; a retryable failure of that read is returned so the gateway retries
// later, any other (unknown shipping, rejected token) only leaves the event
// thin. A body that is not a callback is KindInvalid; other topics yield
// no events.
func (*pedidosyaProvider) ParseWebhook(ctx context.Context, req provider.WebhookRequest) ([]provider.Event, error) {
	var cb wire.Callback
	if err := json.Unmarshal(req.Body, &cb); err != nil {
		return nil, provider.Invalid(fmt.Errorf("pedidosya: webhook: body is not a JSON callback: %v", err))
	}
	switch {
	case cb.Topic == "":
		return nil, provider.Invalid(errors.New("pedidosya: webhook: callback has no topic"))
	case cb.Topic != wire.TopicShippingStatus:
		provider.Log(ctx).Debug("pedidosya: webhook topic ignored", "topic", cb.Topic)
		return nil, nil
	case cb.ID == "":
		return nil, provider.Invalid(errors.New("pedidosya: webhook: SHIPPING_STATUS callback has no shipping id"))
	case cb.Data.Status == "":
		return nil, provider.Invalid(errors.New("pedidosya: webhook: SHIPPING_STATUS callback has no data.status"))
	}
	typ, st := eventOf(cb.Data.Status)
	if typ == "" {
		if _, known := statusOf(cb.Data.Status); !known {
			provider.Log(ctx).Warn("pedidosya: webhook with an unknown status ignored", "status", cb.Data.Status, "shipping_id", cb.ID)
		}
		return nil, nil
	}
	data := eventData{Status: st, ProviderDeliveryID: cb.ID}
	if st == delivery.StatusCancelled || st == delivery.StatusFailed {
		data.Reason = reasonOf(cb.Data.CancelCode, cb.Data.CancelReason)
	}
	if t, ok := wire.ParseTime(cb.Data.EstimatedDropOffTime); ok && st != delivery.StatusDelivered && st != delivery.StatusCancelled {
		data.ETA = t.Format(timeLayout)
	}
	if err := enrich(ctx, req.Tenant, cb.ID, &data); err != nil {
		return nil, err
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, provider.Invalid(fmt.Errorf("pedidosya: webhook: encode event: %w", err))
	}
	ev := provider.Event{ID: cb.ID + ":" + cb.Data.Status, Type: typ, Subject: cb.ID, Data: b}
	if t, ok := wire.ParseTime(cb.Generated); ok {
		ev.OccurredAt = t
	}
	return []provider.Event{ev}, nil
}

// timeLayout is how times are written into event data.
const timeLayout = "2006-01-02T15:04:05Z07:00"

// enrich fills data from GET /v3/shippings/{id} (and its tracking). Only a
// retryable failure is returned.
func enrich(ctx context.Context, t provider.Tenant, id string, data *eventData) error {
	c, err := newClient(t)
	if err != nil {
		provider.Log(ctx).Warn("pedidosya: webhook not enriched: tenant settings unusable", "kind", provider.KindOf(err).String())
		return nil
	}
	sh, err := c.get(ctx, id)
	if err != nil {
		if k := provider.KindOf(err); k == provider.KindRetryable || k == provider.KindRateLimited {
			return err
		}
		provider.Log(ctx).Warn("pedidosya: webhook not enriched: shipping not readable", "shipping_id", id, "kind", provider.KindOf(err).String())
		return nil
	}
	if sh.Fee.Amount > 0 {
		data.Fee = &moneyData{Amount: sh.Fee.Amount, Currency: sh.Fee.Currency}
	}
	data.TrackingURL = sh.TrackingURL
	if c := sh.Courier; c != nil && (data.Status == delivery.StatusAssigned || data.Status == delivery.StatusPickedUp) {
		data.Courier = &courierData{Name: c.Name, Phone: c.Phone, Vehicle: c.Vehicle}
		if c.Location != nil {
			data.Courier.Location = &locationData{Lat: c.Location.Lat, Lng: c.Location.Lng}
		}
	}
	if data.ETA == "" && !sh.ETA.IsZero() && (data.Status == delivery.StatusAssigned || data.Status == delivery.StatusPickedUp) {
		data.ETA = sh.ETA.Format(timeLayout)
	}
	if data.Reason == "" && (data.Status == delivery.StatusCancelled || data.Status == delivery.StatusFailed) {
		data.Reason = sh.Reason
	}
	return nil
}
