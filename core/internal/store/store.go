// Package store is the gateway's durable state: payments, idempotency
// records, the tamper-evident audit log, the event bridge and what operators
// manage (tenants, API keys, sealed credentials), behind one interface.
//
// Every implementation (bbolt today, PostgreSQL later) passes the conformance
// suite in package storetest. The contract, for all implementations:
//
//   - Every method is safe for concurrent use and takes a context first.
//   - A method that returns nil has made its write durable.
//   - Records are scoped by tenant. Another tenant's record is
//     indistinguishable from a missing one (ErrNotFound), never "forbidden".
//   - Times are returned in UTC at microsecond precision, whatever precision
//     the caller gave.
//   - Methods called after Close return ErrClosed.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Errors returned by every Store. Callers match them with errors.Is; the
// returned error may wrap one of them with context.
var (
	// ErrNotFound: no such record for this tenant.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a record with the same identity (or the same unique
	// provider payment id) already exists.
	ErrExists = errors.New("store: already exists")
	// ErrInvalidQuery: a list query is out of range or its cursor is not one
	// this store issued.
	ErrInvalidQuery = errors.New("store: invalid query")
	// ErrInvalid: an argument is missing or malformed (an empty tenant or
	// id, a non-positive idempotency ttl).
	ErrInvalid = errors.New("store: invalid argument")
	// ErrLocked: another process holds the database.
	ErrLocked = errors.New("store: another process holds the database")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrSchema: the database was written by a newer build, or is not a
	// PipeCore database.
	ErrSchema = errors.New("store: unsupported schema")
)

// Store is the gateway's durable state. See the package documentation for the
// contract every implementation keeps.
type Store interface {
	// CreatePayment stores a new payment. A zero CreatedAt is set to now, a
	// zero UpdatedAt to CreatedAt. It returns ErrExists when the tenant
	// already has a payment with p.ID, or when another payment already has
	// the same (Provider, ProviderPaymentID).
	CreatePayment(ctx context.Context, p Payment) error
	// GetPayment returns the tenant's payment, or ErrNotFound.
	GetPayment(ctx context.Context, tenantID, id string) (Payment, error)
	// UpdatePayment reads the payment, calls fn on a copy and writes the
	// result, all in one transaction, and returns what was written. It sets
	// UpdatedAt. fn must not change TenantID, ID or CreatedAt (ErrInvalid).
	// An error from fn aborts the update and is returned as is; nothing is
	// written.
	//
	// fn may be called more than once per UpdatePayment (implementations
	// group concurrent writes and re-run them); each call gets a fresh copy
	// of the stored payment and only the last call's result is written. fn
	// must therefore only compute on the payment it is given, with no other
	// side effects.
	UpdatePayment(ctx context.Context, tenantID, id string, fn func(*Payment) error) (Payment, error)
	// PaymentByProviderID finds a payment, of any tenant, by the provider's
	// id for it. Webhook handlers use it to route an event to its tenant.
	PaymentByProviderID(ctx context.Context, provider, providerPaymentID string) (Payment, error)

	// BeginIdempotent claims key for one request. The rules, in order:
	//   - no record, or one created at or before now-ttl: a fresh in_flight
	//     record with newOperationID is written → IdemNew;
	//   - requestHash differs from the record's → IdemMismatch, in any state;
	//   - completed → IdemReplay (the record carries the Response);
	//   - in_flight and UpdatedAt+lease > now → IdemInFlight;
	//   - in_flight with an expired lease (its process died) or released →
	//     reclaimed: in_flight again, UpdatedAt = now, the old OperationID
	//     kept → IdemNew.
	// The returned record is the record as stored after the call.
	BeginIdempotent(ctx context.Context, key IdemKey, requestHash, newOperationID string, now time.Time, ttl, lease time.Duration) (IdemRecord, IdemOutcome, error)
	// CompleteIdempotent stores the response and marks the record
	// completed, so later requests replay it. ErrNotFound if there is no
	// record.
	CompleteIdempotent(ctx context.Context, key IdemKey, resp StoredResponse, now time.Time) error
	// ReleaseIdempotent marks an in_flight record released: the operation
	// did not finish and a retry with the same key and body runs it again
	// under the same operation id. A completed record is left as it is.
	// ErrNotFound if there is no record.
	ReleaseIdempotent(ctx context.Context, key IdemKey, now time.Time) error
	// SweepIdempotent deletes every record created before before, whatever
	// its state, and returns how many it deleted.
	SweepIdempotent(ctx context.Context, before time.Time) (int, error)

	// AppendAudit appends r to its tenant's audit log and returns it as
	// stored: Seq is the next number of the tenant's log (1, 2, … with no
	// gaps), ID is derived from Seq (AuditID), a zero Time is set to now,
	// Request and Response are in the compact form they are stored in, and
	// PrevHash and Hash chain the record to the tenant's previous one (see
	// AuditHash), all in the transaction that writes it. The caller's ID,
	// Seq, PrevHash and Hash are ignored.
	AppendAudit(ctx context.Context, r AuditRecord) (AuditRecord, error)
	// ListAudit returns the tenant's audit records newest first, filtered by
	// q, and the cursor of the next page ("" when there is none).
	ListAudit(ctx context.Context, tenantID string, q AuditQuery) ([]AuditRecord, string, error)
	// VerifyAudit walks the tenant's audit log oldest first and checks its
	// hash chain (see AuditVerification). Evidence of tampering is the
	// result, not an error; an error means the walk itself failed.
	// ErrInvalid without a tenant; a tenant with no log verifies with
	// Records 0.
	VerifyAudit(ctx context.Context, tenantID string) (AuditVerification, error)

	// EventStore holds the event bridge: inbox, events, endpoints, outbox.
	EventStore

	// AdminStore holds tenants, API keys and sealed credentials.
	AdminStore

	// ResourceStore holds deliveries, quotes, messages and subscriptions.
	ResourceStore

	// Ping reports whether the storage can serve reads.
	Ping(ctx context.Context) error
	// Close releases the storage. Calls after Close return ErrClosed.
	Close() error
}

// Payment is the gateway's record of one payment.
type Payment struct {
	ID                string `json:"id"` // "pay_…"
	TenantID          string `json:"tenant_id"`
	Provider          string `json:"provider"`
	ProviderPaymentID string `json:"provider_payment_id,omitempty"`
	Status            string `json:"status"`
	Amount            int64  `json:"amount"` // minor units
	Currency          string `json:"currency"`
	AmountRefunded    int64  `json:"amount_refunded,omitempty"`
	Reference         string `json:"reference,omitempty"`
	Description       string `json:"description,omitempty"`
	ReturnURL         string `json:"return_url,omitempty"`
	RedirectURL       string `json:"redirect_url,omitempty"`
	// RedirectForm, when set, are the fields the customer's browser must
	// POST to RedirectURL; the gateway serves the form (see payment).
	RedirectForm   map[string]string `json:"redirect_form,omitempty"`
	Method         string            `json:"method,omitempty"`
	FailureCode    string            `json:"failure_code,omitempty"`
	FailureMessage string            `json:"failure_message,omitempty"`
	Customer       *Customer         `json:"customer,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	CorrelationID  string            `json:"correlation_id,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
}

// Customer is who pays. Every field is optional.
type Customer struct {
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
	Name  string `json:"name,omitempty"`
}

// IdemKey identifies one idempotency key: a tenant's key for one operation
// scope, e.g. {"t_1", "POST /v1/payments", "order-42"}.
type IdemKey struct {
	TenantID string `json:"tenant_id"`
	Scope    string `json:"scope"`
	Key      string `json:"key"`
}

// IdemState is the state of an idempotency record.
type IdemState string

// The idempotency states.
const (
	IdemStateInFlight  IdemState = "in_flight" // an operation holds the key
	IdemStateCompleted IdemState = "completed" // the response is stored
	IdemStateReleased  IdemState = "released"  // the operation gave up; retry runs it again
)

// IdemRecord is the stored state of one idempotency key.
type IdemRecord struct {
	Key         IdemKey   `json:"key"`
	RequestHash string    `json:"request_hash"`
	State       IdemState `json:"state"`
	// OperationID is the id of the operation this key runs. It survives
	// reclaims, so a retried operation reuses it (and the provider's own
	// idempotency key derived from it).
	OperationID string          `json:"operation_id"`
	Response    *StoredResponse `json:"response,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// StoredResponse is the response replayed for a completed key.
type StoredResponse struct {
	Status int    `json:"status"`
	Body   []byte `json:"body,omitempty"`
}

// IdemOutcome is what BeginIdempotent decided.
type IdemOutcome int

// The outcomes of BeginIdempotent.
const (
	// IdemNew: the caller owns the key and runs the operation.
	IdemNew IdemOutcome = iota + 1
	// IdemReplay: the operation completed; answer with the stored response.
	IdemReplay
	// IdemInFlight: another request holds the key right now.
	IdemInFlight
	// IdemMismatch: the key was used with a different request body.
	IdemMismatch
)

// String returns the outcome's name, e.g. "in_flight".
func (o IdemOutcome) String() string {
	switch o {
	case IdemNew:
		return "new"
	case IdemReplay:
		return "replay"
	case IdemInFlight:
		return "in_flight"
	case IdemMismatch:
		return "mismatch"
	}
	return "IdemOutcome(" + strconv.Itoa(int(o)) + ")"
}

// AuditRecord is one entry of a tenant's audit log: one plugin call, or
// one operator action (Provider "admin"). Request and Response are already
// redacted (package audit).
type AuditRecord struct {
	ID            string          `json:"id"`
	Seq           uint64          `json:"seq"`
	TenantID      string          `json:"tenant_id"`
	Provider      string          `json:"provider"`
	Action        string          `json:"action"`
	Status        string          `json:"status"`
	ErrorCode     string          `json:"error_code,omitempty"`
	ErrorMessage  string          `json:"error_message,omitempty"`
	Request       json.RawMessage `json:"request,omitempty"`
	Response      json.RawMessage `json:"response,omitempty"`
	LatencyMS     float64         `json:"latency_ms"`
	Time          time.Time       `json:"time"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	ResourceID    string          `json:"resource_id,omitempty"`
	// PrevHash is the Hash of the tenant's previous record, AuditGenesis
	// for the first.
	PrevHash string `json:"prev_hash"`
	// Hash is AuditHash of this record.
	Hash string `json:"hash"`
}

// AuditQuery selects audit records. Empty filters match everything; a zero
// Limit means DefaultAuditLimit.
type AuditQuery struct {
	Provider string
	Action   string
	Status   string
	// ResourceID selects the records of one resource (a payment id).
	ResourceID string
	Limit      int
	Cursor     string // from a previous ListAudit; "" for the first page
}

// Audit list limits.
const (
	DefaultAuditLimit = 50
	MaxAuditLimit     = 500
)

// Validate checks the limit. Whether the cursor is valid is up to the store
// that issued it.
func (q AuditQuery) Validate() error {
	if q.Limit < 0 || q.Limit > MaxAuditLimit {
		return fmt.Errorf("%w: limit %d is outside 0..%d", ErrInvalidQuery, q.Limit, MaxAuditLimit)
	}
	return nil
}

// AuditID returns the ID of the audit record with the given sequence number:
// "log_" and the number in base 36, zero-padded to 13 digits, so IDs sort
// like their sequence numbers.
func AuditID(seq uint64) string {
	const width = 13 // 36^13 > 2^64
	s := strconv.FormatUint(seq, 36)
	b := make([]byte, 0, 4+width)
	b = append(b, "log_"...)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return string(append(b, s...))
}

// normTime is how every Store returns times: UTC, microsecond precision.
func normTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}
