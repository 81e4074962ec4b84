// Package plugincall runs one call to a plugin the way every gateway
// service must: bounded by a timeout and recorded in the tenant's audit log
// with the tenant's secrets redacted, whatever the outcome.
package plugincall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/pluginhost"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Call describes one plugin call.
type Call struct {
	TenantID string
	Provider string
	Action   string // e.g. "delivery.quote"
	Resource string // the gateway id the call is about, if any
	// Request is what the audit log keeps of the request: a view without
	// the tenant (and so without credentials).
	Request any
	// Secrets are the tenant's credentials for Provider; every occurrence
	// in the audit record is redacted.
	Secrets []string
	Timeout time.Duration
}

// Runner runs calls. The zero value is not usable; Audit is required.
type Runner struct {
	Audit  *audit.Recorder
	Logger *slog.Logger
	Now    func() time.Time
}

// Run calls fn under c.Timeout and records the call. fn returns the view
// of the response the audit log keeps. The returned error wraps fn's
// error with the action and provider; its kind is preserved.
func (r *Runner) Run(ctx context.Context, c Call, fn func(context.Context) (any, error)) error {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	cctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	start := now()
	resp, err := fn(cctx)
	e := audit.Entry{
		TenantID: c.TenantID, Provider: c.Provider, Action: c.Action, CorrelationID: provider.RequestID(ctx),
		ResourceID: c.Resource, Request: c.Request, Latency: now().Sub(start), Time: start, Secrets: c.Secrets,
	}
	if err != nil {
		e.Err, e.ErrKind, e.ErrCode = err, ErrorKind(err), provider.CodeOf(err)
	} else {
		e.Response = resp
	}
	if aerr := r.Audit.Record(ctx, e); aerr != nil && r.Logger != nil {
		r.Logger.Error("audit record lost", "tenant", c.TenantID, "provider", c.Provider, "action", c.Action, "error", aerr)
	}
	if err != nil {
		return fmt.Errorf("%s via %s: %w", c.Action, c.Provider, err)
	}
	return nil
}

// ErrorKind names the kind of a plugin call's failure for the audit log
// and metrics: "timeout", "unavailable" or the provider kind.
func ErrorKind(err error) string {
	switch {
	case provider.IsTimeout(err):
		return "timeout"
	case errors.Is(err, pluginhost.ErrUnavailable):
		return "unavailable"
	}
	return provider.KindOf(err).String()
}
