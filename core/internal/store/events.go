package store

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// EventStore is the durable half of the event bridge: the inbox of
// verified provider webhooks, the events normalised from them, the tenant
// endpoints and the outbox of deliveries with their attempts. It is part of
// Store; see the package documentation for the contract.
type EventStore interface {
	// AcceptWebhook stores r as a new pending inbox record, due now, unless
	// the same (TenantID, Provider, DedupKey) was accepted before and not yet
	// swept: then nothing is written and the earlier record's ID is returned
	// with duplicate=true. It sets ID ("wh_…") when empty, Seq, State
	// (pending) and NextAttemptAt (= ReceivedAt); a zero ReceivedAt is now.
	// On a duplicate, stored is the earlier record as it is now. Concurrent
	// calls are group committed; the write is durable when it returns.
	// ErrInvalid without a TenantID or Provider; ErrExists when the caller
	// set an ID the tenant already has.
	AcceptWebhook(ctx context.Context, r InboxRecord) (stored InboxRecord, duplicate bool, err error)
	// GetInbox returns the tenant's inbox record, or ErrNotFound.
	GetInbox(ctx context.Context, tenantID, id string) (InboxRecord, error)
	// DueInbox returns up to limit pending records of every tenant whose
	// NextAttemptAt is at or before now, earliest first. A limit below 1 is
	// ErrInvalid.
	DueInbox(ctx context.Context, now time.Time, limit int) ([]InboxRecord, error)
	// RetryInbox records a failed processing attempt of a pending record:
	// Attempts+1, LastError, NextAttemptAt = next. ErrNotFound if the record
	// is not pending.
	RetryInbox(ctx context.Context, tenantID, id string, next time.Time, lastErr string) error
	// QuarantineInbox moves a pending record to quarantined with the reason.
	// ErrNotFound if the record is not pending.
	QuarantineInbox(ctx context.Context, tenantID, id, reason string) error
	// ReleaseQuarantine moves a quarantined record back to pending, due at
	// now, keeping its reason in LastError. ErrNotFound if it is not
	// quarantined.
	ReleaseQuarantine(ctx context.Context, tenantID, id string, now time.Time) (InboxRecord, error)
	// ListInbox returns the tenant's inbox records in state (all states when
	// empty), newest first, and the next page's cursor ("" on the last
	// page). A zero Limit means DefaultListLimit; a limit outside
	// 0..MaxListLimit, an unknown state or a cursor this list did not issue
	// is ErrInvalidQuery.
	ListInbox(ctx context.Context, tenantID string, state InboxState, q ListQuery) ([]InboxRecord, string, error)
	// SweepDedup forgets dedup keys accepted before before, so the same
	// provider event id is accepted again after the retention (8 days).
	SweepDedup(ctx context.Context, before time.Time) (int, error)

	// RecordEvents stores events in one transaction with everything that
	// follows from them:
	//   - each event gets Seq (per tenant) and ID ("evt_…") when empty;
	//   - one pending Delivery, due now, per event and per enabled endpoint
	//     of the tenant whose Types match the event type (EndpointMatches);
	//     for an Ordered endpoint the delivery carries OrderKey = the event's
	//     Subject and is DeliveryBlocked while an earlier delivery of the
	//     same endpoint and OrderKey is pending or blocked;
	//   - each PaymentChange is applied to the tenant's payment (a missing
	//     payment is skipped, not an error);
	//   - each ResourceChange is applied to the tenant's resource, and the
	//     events it covers are dropped when it says so (or the resource is
	//     missing); the inbox record still becomes processed;
	//   - when InboxID is set, that inbox record becomes processed with the
	//     events' IDs. If it is already processed, nothing at all is written
	//     and (nil, nil) is returned: normalising the same webhook twice
	//     yields its events once.
	// It returns the deliveries created (empty, not nil, when there are
	// none). ErrInvalid without a TenantID, or for an event without a Type,
	// with a Body that is not JSON or with another tenant's TenantID (a
	// store may also bound lengths: the bbolt store takes at most 1 KiB of
	// Subject); ErrNotFound when the tenant has no inbox record InboxID;
	// ErrExists when the caller set an event ID the tenant already has. On
	// any error nothing is written.
	RecordEvents(ctx context.Context, r EventBatch) ([]Delivery, error)
	// EventsAfter returns up to limit of the tenant's events with Seq
	// greater than after, oldest first: a consumer that remembers the last
	// Seq it handled reads every event once, in order. A limit below 1 is
	// ErrInvalid.
	EventsAfter(ctx context.Context, tenantID string, after uint64, limit int) ([]Event, error)
	// GetEvent returns the tenant's event, or ErrNotFound.
	GetEvent(ctx context.Context, tenantID, id string) (Event, error)
	// ListEvents returns the tenant's events newest first, filtered by q,
	// and the next page's cursor, with ListInbox's limits and errors.
	ListEvents(ctx context.Context, tenantID string, q EventQuery) ([]Event, string, error)

	// PutEndpoint creates or replaces the tenant's endpoint e.ID.
	PutEndpoint(ctx context.Context, e Endpoint) error
	// GetEndpoint returns the tenant's endpoint, or ErrNotFound.
	GetEndpoint(ctx context.Context, tenantID, id string) (Endpoint, error)
	// ListEndpoints returns the tenant's endpoints sorted by ID.
	ListEndpoints(ctx context.Context, tenantID string) ([]Endpoint, error)
	// UpdateEndpoint is read-modify-write of one endpoint (fn as in
	// UpdatePayment). An endpoint enabled again has its pending deliveries
	// made due at once; one that stops being ordered releases its blocked
	// ones.
	UpdateEndpoint(ctx context.Context, tenantID, id string, fn func(*Endpoint) error) (Endpoint, error)
	// DeleteEndpoint removes the endpoint; its pending and blocked
	// deliveries become dead with LastError "endpoint deleted". ErrNotFound
	// if the tenant has no such endpoint.
	DeleteEndpoint(ctx context.Context, tenantID, id string) error

	// DueDeliveryRefs lists, earliest first, up to limit pending deliveries
	// of every tenant whose NextAttemptAt is at or before now, by id only:
	// it decodes nothing, so a dispatcher can skip what it cannot start
	// yet at almost no cost.
	DueDeliveryRefs(ctx context.Context, now time.Time, limit int) ([]DeliveryRef, error)
	// DueDeliveries returns up to limit pending deliveries of every tenant
	// whose NextAttemptAt is at or before now, earliest first. A limit
	// below 1 is ErrInvalid.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	// RecordAttempt stores one attempt and the delivery's new state in one
	// transaction: d carries the caller's new State, Attempts, NextAttemptAt,
	// LastStatus and LastError. When d leaves pending (delivered or dead)
	// and its endpoint is ordered, the next blocked delivery of the same
	// OrderKey becomes pending, due now. ErrNotFound if the delivery is not
	// pending (a replay or a concurrent attempt got there first); then
	// nothing is written.
	RecordAttempt(ctx context.Context, d Delivery, a Attempt) error
	// PostponeDelivery makes a pending delivery due at next without an
	// attempt: Attempts, the attempt history and everything else stay as
	// they are. It is for deliveries that must wait without using up their
	// retry budget (a disabled endpoint, an open circuit breaker).
	// ErrNotFound if the delivery is not pending.
	PostponeDelivery(ctx context.Context, tenantID, id string, next time.Time) error
	// GetDelivery returns the tenant's delivery, or ErrNotFound.
	GetDelivery(ctx context.Context, tenantID, id string) (Delivery, error)
	// DeliveriesForEvent returns the deliveries of one event, or
	// ErrNotFound if the tenant has no such event.
	DeliveriesForEvent(ctx context.Context, tenantID, eventID string) ([]Delivery, error)
	// ListAttempts returns the attempts of one delivery, oldest first,
	// including those made before a replay; ErrNotFound if the tenant has no
	// such delivery.
	ListAttempts(ctx context.Context, tenantID, deliveryID string) ([]Attempt, error)
	// ReplayEvent makes the event due again for delivery at now: every
	// delivery of it that is delivered or dead becomes pending with
	// Attempts 0 (pending ones are left alone), and an enabled matching
	// endpoint that has no delivery of it gets a new one. The event, and so
	// its webhook-id and body, is unchanged. On an Ordered endpoint a
	// replayed delivery queues like a new one: OrderKey = the event's
	// Subject, blocked behind any pending or blocked delivery of that
	// endpoint and OrderKey. It returns the event's deliveries now pending
	// or blocked. A delivery whose endpoint was deleted stays dead.
	// ErrNotFound if the tenant has no such event.
	ReplayEvent(ctx context.Context, tenantID, eventID string, now time.Time) ([]Delivery, error)
	// KillEndpointDeliveries marks every pending or blocked delivery of the
	// endpoint dead with reason (used when an endpoint answers 410 Gone),
	// and returns how many. ErrNotFound if the tenant has no such endpoint.
	KillEndpointDeliveries(ctx context.Context, tenantID, endpointID, reason string, now time.Time) (int, error)
}

// InboxState is the processing state of an inbox record.
type InboxState string

// The inbox states.
const (
	InboxPending     InboxState = "pending"     // accepted, not yet normalised
	InboxProcessed   InboxState = "processed"   // its events are recorded
	InboxQuarantined InboxState = "quarantined" // verified but not parseable; see LastError
)

// InboxRecord is one verified provider webhook, as received.
type InboxRecord struct {
	ID       string `json:"id"` // "wh_…"
	Seq      uint64 `json:"seq"`
	TenantID string `json:"tenant_id"`
	Provider string `json:"provider"`
	// DedupKey is the provider's id of the notification; empty disables
	// deduplication for this record.
	DedupKey      string              `json:"dedup_key,omitempty"`
	Method        string              `json:"method"`
	RequestURI    string              `json:"request_uri"`
	Header        map[string][]string `json:"header,omitempty"`
	Body          []byte              `json:"body,omitempty"`
	ReceivedAt    time.Time           `json:"received_at"`
	CorrelationID string              `json:"correlation_id,omitempty"`
	State         InboxState          `json:"state"`
	Attempts      int                 `json:"attempts"`
	NextAttemptAt time.Time           `json:"next_attempt_at"`
	LastError     string              `json:"last_error,omitempty"`
	EventIDs      []string            `json:"event_ids,omitempty"`
	ProcessedAt   time.Time           `json:"processed_at"`
}

// Event is one normalised event of a tenant, with the exact body every
// endpoint receives.
type Event struct {
	ID              string    `json:"id"` // "evt_…", the webhook-id
	Seq             uint64    `json:"seq"`
	TenantID        string    `json:"tenant_id"`
	Type            string    `json:"type"` // "payment.confirmed"
	Provider        string    `json:"provider"`
	Subject         string    `json:"subject,omitempty"` // the provider's id of the object
	PaymentID       string    `json:"payment_id,omitempty"`
	ProviderEventID string    `json:"provider_event_id,omitempty"`
	OccurredAt      time.Time `json:"occurred_at"`
	CreatedAt       time.Time `json:"created_at"`
	CorrelationID   string    `json:"correlation_id,omitempty"`
	InboxID         string    `json:"inbox_id,omitempty"`
	// Body is the Standard Webhooks payload {"type","timestamp","data"},
	// marshalled once; every attempt and replay sends these bytes.
	Body json.RawMessage `json:"body"`
}

// PaymentChange updates a payment as part of RecordEvents. Apply follows
// UpdatePayment's rules for fn.
//
// Keep, when set, is asked first with the payment as stored: false drops
// the batch's events listed in Events and skips Apply. This is how a
// status change is announced once whether a webhook, the customer's
// return or the reconciliation job saw it first.
type PaymentChange struct {
	PaymentID string
	Apply     func(*Payment)
	Keep      func(*Payment) bool
	Events    []int
}

// EventBatch is the input of RecordEvents.
type EventBatch struct {
	TenantID string
	InboxID  string // optional: the webhook these events come from
	Events   []Event
	Payments []PaymentChange
	// Resources are applied in order, each seeing the previous ones'
	// writes; one may drop its events (see ResourceChange).
	Resources []ResourceChange
	Now       time.Time
}

// EventQuery selects events. Type matches exactly, or by prefix when it
// ends in ".*" ("payment.*").
type EventQuery struct {
	Type      string
	PaymentID string
	Since     time.Time // CreatedAt >= Since when not zero
	Until     time.Time // CreatedAt < Until when not zero
	Limit     int
	Cursor    string
}

// ListQuery pages a list.
type ListQuery struct {
	Limit  int
	Cursor string
}

// Endpoint is a tenant's receiver of events.
type Endpoint struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	URL      string `json:"url"`
	// Secrets sign every delivery ("whsec_…"); during a rotation there are
	// two and each delivery carries both signatures.
	Secrets []string `json:"secrets"`
	// Types filters event types: exact ("payment.confirmed"), prefix
	// ("payment.*") or everything ("*"); empty means everything.
	Types   []string `json:"types,omitempty"`
	Enabled bool     `json:"enabled"`
	// Ordered endpoints receive the events of one subject one at a time,
	// in order.
	Ordered        bool   `json:"ordered,omitempty"`
	DisabledReason string `json:"disabled_reason,omitempty"`
	// FailingSince is the time of the first failed attempt after the last
	// successful one; zero while the endpoint is not failing.
	FailingSince time.Time `json:"failing_since,omitzero"`
	Source       string    `json:"source"` // "config" or "api"
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// EndpointMatches reports whether an endpoint with filter types receives
// events of eventType.
func EndpointMatches(types []string, eventType string) bool {
	if len(types) == 0 {
		return true
	}
	for _, t := range types {
		if t == "*" || t == eventType {
			return true
		}
		if prefix, ok := strings.CutSuffix(t, "*"); ok && strings.HasSuffix(prefix, ".") && strings.HasPrefix(eventType, prefix) {
			return true
		}
	}
	return false
}

// DeliveryState is the state of one delivery of an event to an endpoint.
type DeliveryState string

// The delivery states.
const (
	DeliveryPending   DeliveryState = "pending"   // due at NextAttemptAt
	DeliveryBlocked   DeliveryState = "blocked"   // ordered: waits for an earlier delivery
	DeliveryDelivered DeliveryState = "delivered" // a 2xx was received
	DeliveryDead      DeliveryState = "dead"      // dead letter: attempts exhausted, endpoint gone or deleted
)

// Delivery is one event owed to one endpoint: the outbox row.
type Delivery struct {
	ID            string        `json:"id"` // "dlv_…"
	TenantID      string        `json:"tenant_id"`
	EventID       string        `json:"event_id"`
	EndpointID    string        `json:"endpoint_id"`
	State         DeliveryState `json:"state"`
	Attempts      int           `json:"attempts"`
	NextAttemptAt time.Time     `json:"next_attempt_at"`
	LastStatus    int           `json:"last_status,omitempty"`
	LastError     string        `json:"last_error,omitempty"`
	OrderKey      string        `json:"order_key,omitempty"`
	CreatedAt     time.Time     `json:"created_at"`
	UpdatedAt     time.Time     `json:"updated_at"`
	DeliveredAt   time.Time     `json:"delivered_at"`
}

// DeliveryRef names one delivery.
type DeliveryRef struct{ TenantID, ID string }

// Attempt is one try to deliver.
type Attempt struct {
	DeliveryID string    `json:"delivery_id"`
	N          int       `json:"n"` // 1-based
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code,omitempty"`
	LatencyMS  float64   `json:"latency_ms"`
	Error      string    `json:"error,omitempty"`
	Response   string    `json:"response,omitempty"` // the first KiB of the body
}
