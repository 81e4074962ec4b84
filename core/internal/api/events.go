package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
)

// Notifier wakes the pipeline stages after a replay.
type Notifier interface {
	// InboxReady announces an inbox record that is due for normalisation.
	InboxReady(tenantID, id string)
	// DeliveriesReady announces deliveries that are due.
	DeliveriesReady()
}

// eventJSON is an event as the API shows it.
type eventJSON struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Provider      string          `json:"provider"`
	Subject       string          `json:"subject,omitempty"`
	PaymentID     string          `json:"payment_id,omitempty"`
	Status        string          `json:"status"`
	OccurredAt    time.Time       `json:"occurred_at"`
	CreatedAt     time.Time       `json:"created_at"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	WebhookID     string          `json:"webhook_id,omitempty"`
	Payload       json.RawMessage `json:"payload"`
	Deliveries    []deliveryJSON  `json:"deliveries,omitempty"`
}

type deliveryJSON struct {
	ID            string          `json:"id"`
	EndpointID    string          `json:"endpoint_id"`
	State         string          `json:"state"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt *time.Time      `json:"next_attempt_at,omitempty"`
	LastStatus    int             `json:"last_status,omitempty"`
	LastError     string          `json:"last_error,omitempty"`
	DeliveredAt   *time.Time      `json:"delivered_at,omitempty"`
	AttemptLog    []store.Attempt `json:"attempt_log,omitempty"`
}

// eventStatus sums up an event's deliveries: dead when any is dead,
// pending while any is pending or blocked, delivered when all are (or
// there are none to make).
func eventStatus(ds []store.Delivery) string {
	status := "delivered"
	for _, d := range ds {
		switch d.State {
		case store.DeliveryDead:
			return "dead"
		case store.DeliveryPending, store.DeliveryBlocked:
			status = "pending"
		}
	}
	if len(ds) == 0 {
		return "no_endpoints"
	}
	return status
}

func viewEvent(e store.Event, ds []store.Delivery) eventJSON {
	return eventJSON{
		ID: e.ID, Type: e.Type, Provider: e.Provider, Subject: e.Subject, PaymentID: e.PaymentID,
		Status: eventStatus(ds), OccurredAt: e.OccurredAt, CreatedAt: e.CreatedAt,
		CorrelationID: e.CorrelationID, WebhookID: e.InboxID, Payload: e.Body,
	}
}

func viewDelivery(d store.Delivery, attempts []store.Attempt) deliveryJSON {
	out := deliveryJSON{ID: d.ID, EndpointID: d.EndpointID, State: string(d.State), Attempts: d.Attempts,
		LastStatus: d.LastStatus, LastError: d.LastError, AttemptLog: attempts}
	if d.State == store.DeliveryPending && !d.NextAttemptAt.IsZero() {
		t := d.NextAttemptAt
		out.NextAttemptAt = &t
	}
	if !d.DeliveredAt.IsZero() {
		t := d.DeliveredAt
		out.DeliveredAt = &t
	}
	return out
}

func (a *API) ctx(ctx *fasthttp.RequestCtx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(requestContext(ctx), 30*time.Second)
}

func parseLimit(ctx *fasthttp.RequestCtx) (int, bool) {
	v := ctx.QueryArgs().Peek("limit")
	if len(v) == 0 {
		return 0, true
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 1 || n > 500 {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "limit must be an integer from 1 to 500")
		return 0, false
	}
	return n, true
}

func parseTime(ctx *fasthttp.RequestCtx, name string) (time.Time, bool) {
	v := ctx.QueryArgs().Peek(name)
	if len(v) == 0 {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339, string(v))
	if err != nil {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", name+" must be an RFC 3339 time such as 2026-11-27T14:00:00Z")
		return time.Time{}, false
	}
	return t, true
}

func (a *API) listEvents(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	limit, ok := parseLimit(ctx)
	if !ok {
		return
	}
	since, ok1 := parseTime(ctx, "since")
	until, ok2 := parseTime(ctx, "until")
	if !ok1 || !ok2 {
		return
	}
	status := string(ctx.QueryArgs().Peek("status"))
	if status != "" && !slices.Contains([]string{"pending", "delivered", "dead", "no_endpoints"}, status) {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "status must be pending, delivered, dead or no_endpoints")
		return
	}
	c, cancel := a.ctx(ctx)
	defer cancel()
	evs, next, err := a.cfg.Store.ListEvents(c, t.ID, store.EventQuery{
		Type: string(ctx.QueryArgs().Peek("type")), PaymentID: string(ctx.QueryArgs().Peek("payment_id")),
		Since: since, Until: until, Limit: limit, Cursor: string(ctx.QueryArgs().Peek("cursor")),
	})
	if err != nil {
		a.listFailure(ctx, err)
		return
	}
	out := []eventJSON{}
	for _, e := range evs {
		ds, err := a.cfg.Store.DeliveriesForEvent(c, t.ID, e.ID)
		if err != nil {
			a.storageFailure(ctx, err)
			return
		}
		v := viewEvent(e, ds)
		if status == "" || v.Status == status {
			out = append(out, v)
		}
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": out, "next_cursor": next})
}

func (a *API) listFailure(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, store.ErrInvalidQuery) {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "invalid cursor or filter")
		return
	}
	a.storageFailure(ctx, err)
}

func (a *API) notFoundOr(ctx *fasthttp.RequestCtx, err error, what string) {
	if errors.Is(err, store.ErrNotFound) {
		httpserver.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no such "+what)
		return
	}
	a.storageFailure(ctx, err)
}

func (a *API) getEvent(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	c, cancel := a.ctx(ctx)
	defer cancel()
	e, err := a.cfg.Store.GetEvent(c, t.ID, id)
	if err != nil {
		a.notFoundOr(ctx, err, "event")
		return
	}
	ds, err := a.cfg.Store.DeliveriesForEvent(c, t.ID, e.ID)
	if err != nil {
		a.storageFailure(ctx, err)
		return
	}
	v := viewEvent(e, ds)
	for _, d := range ds {
		atts, err := a.cfg.Store.ListAttempts(c, t.ID, d.ID)
		if err != nil {
			a.storageFailure(ctx, err)
			return
		}
		v.Deliveries = append(v.Deliveries, viewDelivery(d, atts))
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, v)
}

func (a *API) replayEvent(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	c, cancel := a.ctx(ctx)
	defer cancel()
	ds, err := a.cfg.Store.ReplayEvent(c, t.ID, id, a.cfg.Now())
	if err != nil {
		a.notFoundOr(ctx, err, "event")
		return
	}
	a.cfg.Notifier.DeliveriesReady()
	out := []deliveryJSON{}
	for _, d := range ds {
		out = append(out, viewDelivery(d, nil))
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusAccepted, map[string]any{"event_id": id, "deliveries": out})
}

// bulkReplayRequest selects events to replay. Status defaults to "dead".
type bulkReplayRequest struct {
	Type   string    `json:"type,omitempty"`
	Status string    `json:"status,omitempty"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
}

// maxBulkReplay bounds one bulk replay request.
const maxBulkReplay = 100000

func (a *API) replayEvents(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var req bulkReplayRequest
	if !a.decode(ctx, &req) {
		return
	}
	if req.Status == "" {
		req.Status = "dead"
	}
	if !slices.Contains([]string{"dead", "delivered", "pending", "all"}, req.Status) {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "status must be dead, delivered, pending or all")
		return
	}
	if req.Since.IsZero() || req.Until.IsZero() || !req.Until.After(req.Since) {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "since and until are required (RFC 3339) and until must be after since")
		return
	}
	c, cancel := context.WithTimeout(requestContext(ctx), 5*time.Minute)
	defer cancel()
	replayed, scanned, err := ReplayEvents(c, a.cfg.Store, t.ID, req.Type, req.Status, req.Since, req.Until, a.cfg.Now())
	if err != nil {
		a.listFailure(ctx, err)
		return
	}
	a.cfg.Notifier.DeliveriesReady()
	httpserver.WriteJSON(ctx, fasthttp.StatusAccepted, map[string]any{"replayed": replayed, "scanned": scanned, "truncated": scanned >= maxBulkReplay})
}

// ReplayEvents replays the tenant's events created in [since, until) whose
// type matches typ (exact, "prefix.*" or "" for all) and whose status is
// status ("dead", "delivered", "pending" or "all"). It scans at most
// 100,000 events and returns how many it replayed and scanned.
func ReplayEvents(ctx context.Context, st store.Store, tenantID, typ, status string, since, until, now time.Time) (replayed, scanned int, err error) {
	q := store.EventQuery{Type: typ, Since: since, Until: until, Limit: 500}
	for {
		evs, next, err := st.ListEvents(ctx, tenantID, q)
		if err != nil {
			return replayed, scanned, err
		}
		for _, e := range evs {
			scanned++
			ds, err := st.DeliveriesForEvent(ctx, tenantID, e.ID)
			if err != nil {
				return replayed, scanned, err
			}
			if status != "all" && eventStatus(ds) != status {
				continue
			}
			if _, err := st.ReplayEvent(ctx, tenantID, e.ID, now); err != nil {
				return replayed, scanned, err
			}
			replayed++
		}
		if next == "" || scanned >= maxBulkReplay {
			return replayed, scanned, nil
		}
		q.Cursor = next
	}
}

// quarantineJSON is a quarantined webhook.
type quarantineJSON struct {
	ID         string    `json:"id"`
	Provider   string    `json:"provider"`
	ReceivedAt time.Time `json:"received_at"`
	Reason     string    `json:"reason"`
	Attempts   int       `json:"attempts"`
	DedupKey   string    `json:"dedup_key,omitempty"`
	Body       string    `json:"body,omitempty"`
}

func (a *API) listQuarantine(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	limit, ok := parseLimit(ctx)
	if !ok {
		return
	}
	c, cancel := a.ctx(ctx)
	defer cancel()
	recs, next, err := a.cfg.Store.ListInbox(c, t.ID, store.InboxQuarantined, store.ListQuery{Limit: limit, Cursor: string(ctx.QueryArgs().Peek("cursor"))})
	if err != nil {
		a.listFailure(ctx, err)
		return
	}
	out := []quarantineJSON{}
	for _, r := range recs {
		q := quarantineJSON{ID: r.ID, Provider: r.Provider, ReceivedAt: r.ReceivedAt, Reason: r.LastError, Attempts: r.Attempts, DedupKey: r.DedupKey}
		if utf8.Valid(r.Body) {
			q.Body = string(r.Body)
		}
		out = append(out, q)
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": out, "next_cursor": next})
}

func (a *API) replayQuarantined(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	c, cancel := a.ctx(ctx)
	defer cancel()
	rec, err := a.cfg.Store.ReleaseQuarantine(c, t.ID, id, a.cfg.Now())
	if err != nil {
		a.notFoundOr(ctx, err, "quarantined webhook")
		return
	}
	a.cfg.Notifier.InboxReady(t.ID, rec.ID)
	httpserver.WriteJSON(ctx, fasthttp.StatusAccepted, map[string]any{"id": rec.ID, "state": rec.State})
}

// timelineEntry is one thing that happened to a payment.
type timelineEntry struct {
	Time          time.Time `json:"time"`
	Kind          string    `json:"kind"` // api_call, webhook, event, delivery_attempt
	ID            string    `json:"id"`
	Detail        any       `json:"detail"`
	CorrelationID string    `json:"correlation_id,omitempty"`
}

func (a *API) paymentTimeline(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	c, cancel := a.ctx(ctx)
	defer cancel()
	p, err := a.cfg.Store.GetPayment(c, t.ID, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			httpserver.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no such payment")
			return
		}
		a.storageFailure(ctx, err)
		return
	}
	var out []timelineEntry
	for cursor := ""; ; {
		recs, next, err := a.cfg.Store.ListAudit(c, t.ID, store.AuditQuery{ResourceID: p.ID, Limit: 500, Cursor: cursor})
		if err != nil {
			a.storageFailure(ctx, err)
			return
		}
		for _, r := range recs {
			out = append(out, timelineEntry{Time: r.Time, Kind: "api_call", ID: r.ID, CorrelationID: r.CorrelationID,
				Detail: map[string]any{"provider": r.Provider, "action": r.Action, "status": r.Status, "latency_ms": r.LatencyMS, "error": r.ErrorMessage}})
		}
		if next == "" {
			break
		}
		cursor = next
	}
	seenInbox := map[string]bool{}
	for cursor := ""; ; {
		evs, next, err := a.cfg.Store.ListEvents(c, t.ID, store.EventQuery{PaymentID: p.ID, Limit: 500, Cursor: cursor})
		if err != nil {
			a.storageFailure(ctx, err)
			return
		}
		for _, e := range evs {
			if e.InboxID != "" && !seenInbox[e.InboxID] {
				seenInbox[e.InboxID] = true
				if in, err := a.cfg.Store.GetInbox(c, t.ID, e.InboxID); err == nil {
					out = append(out, timelineEntry{Time: in.ReceivedAt, Kind: "webhook", ID: in.ID, CorrelationID: in.CorrelationID,
						Detail: map[string]any{"provider": in.Provider, "state": in.State, "dedup_key": in.DedupKey}})
				}
			}
			out = append(out, timelineEntry{Time: e.CreatedAt, Kind: "event", ID: e.ID, CorrelationID: e.CorrelationID,
				Detail: map[string]any{"type": e.Type, "occurred_at": e.OccurredAt}})
			ds, err := a.cfg.Store.DeliveriesForEvent(c, t.ID, e.ID)
			if err != nil {
				a.storageFailure(ctx, err)
				return
			}
			for _, d := range ds {
				atts, err := a.cfg.Store.ListAttempts(c, t.ID, d.ID)
				if err != nil {
					a.storageFailure(ctx, err)
					return
				}
				for _, at := range atts {
					out = append(out, timelineEntry{Time: at.At, Kind: "delivery_attempt", ID: fmt.Sprintf("%s#%d", d.ID, at.N), CorrelationID: e.CorrelationID,
						Detail: map[string]any{"event_id": e.ID, "endpoint_id": d.EndpointID, "status_code": at.StatusCode, "error": at.Error, "latency_ms": at.LatencyMS}})
				}
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	if out == nil {
		out = []timelineEntry{}
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"payment_id": p.ID, "correlation_id": p.CorrelationID, "timeline": out})
}

// validEndpointURL reports why raw is not an acceptable endpoint URL, or "".
func validEndpointURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		return "url must be an absolute URL"
	case u.Scheme != "https" && u.Scheme != "http":
		return "url must use https (or http)"
	case u.User != nil:
		return "url must not carry a user name or password"
	case len(raw) > 2048:
		return "url must be at most 2048 characters"
	}
	return ""
}

func validTypes(types []string) string {
	for _, typ := range types {
		if typ == "*" {
			continue
		}
		base := strings.TrimSuffix(typ, ".*")
		if base == "" || strings.Trim(base, "abcdefghijklmnopqrstuvwxyz_.") != "" || strings.HasPrefix(base, ".") || strings.HasSuffix(base, ".") {
			return fmt.Sprintf("type filter %q must be an event type (payment.confirmed), a prefix (payment.*) or *", typ)
		}
	}
	return ""
}
