package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/payment"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
)

// IdempotencyHeader names the header that makes a POST safe to retry.
const IdempotencyHeader = "Idempotency-Key"

// response is what an operation answers; it is stored for replays.
type response struct {
	status int
	body   []byte
	// retryAfter, in seconds, is sent with the first answer only.
	retryAfter int
}

// idempotent runs op at most once per (tenant, scope, Idempotency-Key):
// the same key with the same request (canonical JSON) within the TTL gets
// the stored response without running op; with another request it gets
// 422; while the first is still running, 409. Responses with status 5xx
// are not stored: the key is released and a retry runs the same operation
// id again, so the provider sees the same idempotency key. Without the
// header op runs with a fresh operation id.
func (a *API) idempotent(ctx *fasthttp.RequestCtx, t *tenant.Tenant, scope string, request any, op func(opID string) response) {
	key := string(ctx.Request.Header.Peek(IdempotencyHeader))
	if key == "" {
		a.write(ctx, op(payment.NewOperationID()))
		return
	}
	if len(key) > 255 || !printable(key) {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "Idempotency-Key must be 1 to 255 printable ASCII characters")
		return
	}
	canonical, err := json.Marshal(request)
	if err != nil {
		httpserver.WriteError(ctx, fasthttp.StatusInternalServerError, "internal_error", "internal error")
		return
	}
	sum := sha256.Sum256(append([]byte(scope+"\x00"), canonical...))
	ik := store.IdemKey{TenantID: t.ID, Scope: scope, Key: key}
	c := requestContext(ctx)
	rec, outcome, err := a.cfg.Store.BeginIdempotent(c, ik, hex.EncodeToString(sum[:]), payment.NewOperationID(),
		a.cfg.Now(), a.cfg.IdempotencyTTL, a.cfg.IdempotencyLease)
	if err != nil {
		a.storageFailure(ctx, err)
		return
	}
	switch outcome {
	case store.IdemReplay:
		ctx.Response.Header.Set("Idempotent-Replayed", "true")
		httpserver.WriteRaw(ctx, rec.Response.Status, rec.Response.Body)
		return
	case store.IdemInFlight:
		httpserver.WriteError(ctx, fasthttp.StatusConflict, "idempotency_key_in_use", "a request with this Idempotency-Key is still being processed; retry later")
		return
	case store.IdemMismatch:
		httpserver.WriteError(ctx, fasthttp.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used with a different request body")
		return
	}
	resp := op(rec.OperationID)
	if resp.status >= 500 {
		err = a.cfg.Store.ReleaseIdempotent(c, ik, a.cfg.Now())
	} else {
		err = a.cfg.Store.CompleteIdempotent(c, ik, store.StoredResponse{Status: resp.status, Body: resp.body}, a.cfg.Now())
	}
	if err != nil {
		// The operation ran; its answer still goes out. A retry finds the
		// key in flight until the lease ends, then runs the same operation
		// id again, which the provider deduplicates.
		a.cfg.Logger.Error("idempotency record not updated", "request_id", httpserver.RequestID(ctx), "tenant", t.ID, "error", err)
	}
	a.write(ctx, resp)
}

func (a *API) write(ctx *fasthttp.RequestCtx, r response) {
	if r.retryAfter > 0 {
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, strconv.Itoa(r.retryAfter))
	}
	httpserver.WriteRaw(ctx, r.status, r.body)
}

func (a *API) storageFailure(ctx *fasthttp.RequestCtx, err error) {
	a.cfg.Logger.Error("storage failure", "request_id", httpserver.RequestID(ctx), "error", err)
	ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	httpserver.WriteError(ctx, fasthttp.StatusServiceUnavailable, "storage_unavailable", "storage is unavailable; retry later")
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// jsonResponse renders v (or a failure) as a stored response.
func jsonResponse(status int, v any) response {
	b, err := json.Marshal(v)
	if err != nil {
		return response{status: fasthttp.StatusInternalServerError, body: []byte(`{"error":{"code":"internal_error","message":"internal error"}}`)}
	}
	return response{status: status, body: b}
}

func failureResponse(f failure) response {
	r := jsonResponse(f.status, f.body())
	r.retryAfter = f.retryAfter
	return r
}
