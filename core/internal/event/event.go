// Package event renders the payload every tenant endpoint receives: the
// Standard Webhooks envelope {"type","timestamp","data"} of EVENTS.md.
package event

import (
	"encoding/json"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
)

// Envelope is the body of one event delivery.
type Envelope struct {
	Type      string         `json:"type"`
	Timestamp string         `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

// TimestampLayout is the envelope's timestamp format (UTC, milliseconds).
const TimestampLayout = "2006-01-02T15:04:05.000Z07:00"

// New returns a store.Event of tenantID with its body rendered once: data
// gets the common fields tenant_id, provider, occurred_at and
// correlation_id. Fields with empty string values are dropped, as EVENTS.md
// asks ("omitted, never sent as empty strings").
func New(tenantID, provider, typ string, occurred time.Time, correlationID string, data map[string]any) (store.Event, error) {
	for k, v := range data {
		if s, ok := v.(string); ok && s == "" {
			delete(data, k)
		}
	}
	data["tenant_id"] = tenantID
	data["provider"] = provider
	data["occurred_at"] = occurred.UTC().Format(time.RFC3339Nano)
	if correlationID != "" {
		data["correlation_id"] = correlationID
	}
	body, err := json.Marshal(Envelope{Type: typ, Timestamp: occurred.UTC().Format(TimestampLayout), Data: data})
	if err != nil {
		return store.Event{}, err
	}
	return store.Event{
		TenantID: tenantID, Type: typ, Provider: provider, OccurredAt: occurred,
		CorrelationID: correlationID, Body: body,
	}, nil
}
