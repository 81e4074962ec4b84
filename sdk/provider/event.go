package provider

import (
	"context"
	"encoding/json"
	"time"
)

// Event is a provider happening normalised into the gateway's catalog
// (EVENTS.md): "payment.confirmed", "delivery.picked_up", "message.read"...
type Event struct {
	// ID is the provider's event id; the gateway deduplicates on it.
	ID string
	// Type is the catalog type, e.g. "payment.confirmed".
	Type string
	// Subject is the provider's id of the object the event is about
	// (payment intent, shipment, message).
	Subject string
	// OccurredAt is when the provider says it happened.
	OccurredAt time.Time
	// Data holds the catalog fields for Type that the plugin knows
	// (status, amount, failure_code, ...). The gateway adds tenant_id,
	// provider, correlation_id and its own ids.
	Data json.RawMessage
}

// WebhookRequest is an inbound webhook whose signature the gateway has
// already verified.
type WebhookRequest struct {
	Tenant Tenant
	// Headers are the request headers as received, canonicalised.
	Headers map[string][]string
	// Query holds the URL query parameters.
	Query map[string][]string
	// Body is the raw body. It is owned by the plugin; safe to retain.
	Body []byte
}

// WebhookParser is implemented by plugins whose Info declares a Webhook. It
// turns a verified webhook into zero or more events. It may call the
// provider to fetch the resource a thin notification points to. An error of
// KindPermanent or KindInvalid quarantines the webhook; any other error
// makes the gateway retry later.
type WebhookParser interface {
	ParseWebhook(ctx context.Context, req WebhookRequest) ([]Event, error)
}
