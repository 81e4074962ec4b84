package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
)

// Entry describes one finished plugin call.
type Entry struct {
	TenantID      string
	Provider      string // e.g. "stripe"
	Action        string // e.g. "payments.create"
	CorrelationID string
	ResourceID    string // e.g. the payment id
	// Request and Response are what went to and came from the plugin. They
	// are redacted (see Redact); nil is stored as absent.
	Request, Response any
	// Err is the call's error; nil means the call succeeded.
	Err error
	// ErrKind is the provider error kind ("retryable", "timeout",
	// "permanent", …), stored as the record's status when Err is not nil.
	// Empty means "error".
	ErrKind string
	ErrCode string // the provider's error code, if any
	Latency time.Duration
	// Time is when the call started. Zero means now.
	Time time.Time
	// Secrets are the tenant's credentials for this provider, and any other
	// values that must never be stored; every occurrence is redacted.
	Secrets []string
}

// Status values of audit records besides the error kinds.
const (
	StatusOK    = "ok"
	StatusError = "error" // Err set without an ErrKind
)

// Recorder writes plugin calls to the audit log. It is safe for concurrent
// use.
type Recorder struct {
	store store.Store
	log   *slog.Logger
}

// NewRecorder returns a Recorder that appends to st and logs append failures
// to log (nil: discarded).
func NewRecorder(st store.Store, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{store: st, log: log}
}

// Record redacts e and appends it to the tenant's audit log. A failure is
// logged (without the entry's payloads or error text) and returned.
func (r *Recorder) Record(ctx context.Context, e Entry) error {
	rec := store.AuditRecord{
		TenantID:      e.TenantID,
		Provider:      e.Provider,
		Action:        e.Action,
		Status:        StatusOK,
		Request:       redactOptional(e.Request, e.Secrets),
		Response:      redactOptional(e.Response, e.Secrets),
		LatencyMS:     float64(e.Latency) / float64(time.Millisecond),
		Time:          e.Time,
		CorrelationID: e.CorrelationID,
		ResourceID:    e.ResourceID,
	}
	if e.Err != nil {
		rec.Status = e.ErrKind
		if rec.Status == "" {
			rec.Status = StatusError
		}
		rec.ErrorCode = Scrub(e.ErrCode, e.Secrets)
		rec.ErrorMessage = Scrub(errorText(e.Err), e.Secrets)
	}
	if _, err := r.store.AppendAudit(ctx, rec); err != nil {
		// err comes from the store and holds no part of the record.
		r.log.ErrorContext(ctx, "audit: append failed",
			"tenant_id", e.TenantID, "provider", e.Provider, "action", e.Action,
			"correlation_id", e.CorrelationID, "err", err)
		return fmt.Errorf("audit: record %s %s: %w", e.Provider, e.Action, err)
	}
	return nil
}

func redactOptional(v any, secrets []string) json.RawMessage {
	if v == nil {
		return nil
	}
	return Redact(v, secrets)
}

// errorText is err.Error(), surviving an Error method that panics.
func errorText(err error) (s string) {
	defer func() {
		if recover() != nil {
			s = "unprintable error"
		}
	}()
	return err.Error()
}
