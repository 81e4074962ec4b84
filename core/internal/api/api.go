// Package api serves the tenant REST API (/v1/...) and the health
// endpoints. Every /v1 route authenticates the caller's tenant API key and
// scopes every lookup to that tenant: another tenant's id answers exactly
// like a missing one.
package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/courier"
	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/messenger"
	"github.com/pipecore/pipecore/core/internal/payment"
	"github.com/pipecore/pipecore/core/internal/ratelimit"
	"github.com/pipecore/pipecore/core/internal/ssrf"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/subscription"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Config wires the API. Zero values mean the documented defaults.
type Config struct {
	Tenants  *tenant.Registry
	Payments *payment.Service
	// Couriers serves /v1/deliveries; nil answers 404 there.
	Couriers *courier.Service
	// Subscriptions serves /v1/subscriptions; nil answers 404 there.
	Subscriptions *subscription.Service
	// Messages serves /v1/messages, /v1/templates and /v1/automations;
	// nil answers 404 there.
	Messages *messenger.Service
	Store    store.Store
	Logger   *slog.Logger
	// Notifier wakes the pipeline after replays and endpoint changes.
	// Nil means no one is told; the stages' rescans still find the work.
	Notifier Notifier
	// Webhooks serves /webhooks/{provider}/{tenant}; nil disables ingress.
	Webhooks WebhookHandlers
	// Metrics serves /metrics; nil disables it.
	Metrics fasthttp.RequestHandler
	// RateLimit bounds each tenant's request rate; nil means unlimited.
	RateLimit *ratelimit.Limiter
	// Admin registers the operator routes; nil serves none.
	Admin interface{ Register(r *router.Router) }
	// KeyUsed is told the id of every operator-made API key that
	// authenticates a request (for last-used times); nil ignores it.
	KeyUsed func(keyID string)
	// EndpointPolicy decides which endpoint URLs may be registered (the
	// dispatcher's dialer checks the resolved addresses again). Nil means
	// the strict default: public https only.
	EndpointPolicy *ssrf.Policy
	// Ready reports whether the gateway can serve (storage open, plugins
	// healthy) and why not, for /readyz.
	Ready func(ctx context.Context) (ok bool, detail any)
	// PublicURL is the gateway's public base URL (checkout pages).
	PublicURL string
	// MaxBodyBytes caps API request bodies. Zero means 1 MiB.
	MaxBodyBytes int
	// IdempotencyTTL is how long a key's response is kept. Zero means 24h.
	IdempotencyTTL time.Duration
	// IdempotencyLease is how long an in-flight key blocks duplicates before
	// a crashed request's key can be reclaimed. Zero means 2m.
	IdempotencyLease time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// API is the tenant-facing HTTP API.
type API struct {
	cfg Config
	r   *router.Router
}

// New returns the API with its routes.
func New(cfg Config) (*API, error) {
	if cfg.Tenants == nil || cfg.Payments == nil || cfg.Store == nil {
		return nil, errors.New("api: Tenants, Payments and Store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.IdempotencyTTL == 0 {
		cfg.IdempotencyTTL = 24 * time.Hour
	}
	if cfg.IdempotencyLease == 0 {
		cfg.IdempotencyLease = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.EndpointPolicy == nil {
		cfg.EndpointPolicy = &ssrf.Policy{}
	}
	if cfg.Notifier == nil {
		cfg.Notifier = noNotifier{}
	}
	if cfg.Ready == nil {
		cfg.Ready = func(context.Context) (bool, any) { return true, nil }
	}
	a := &API{cfg: cfg, r: router.New()}
	a.r.RedirectTrailingSlash = false
	a.r.RedirectFixedPath = false
	a.r.HandleMethodNotAllowed = true
	a.r.NotFound = func(ctx *fasthttp.RequestCtx) {
		httpserver.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no such route")
	}
	a.r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		httpserver.WriteError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this route")
	}
	a.r.GET("/healthz", a.healthz)
	a.r.GET("/readyz", a.readyz)
	a.r.POST("/v1/payments", a.auth(a.createPayment))
	a.r.GET("/v1/payments/{id}", a.auth(a.getPayment))
	a.r.POST("/v1/payments/{id}/refunds", a.auth(a.refundPayment))
	a.r.POST("/v1/payments/{id}/capture", a.auth(a.capturePayment))
	a.r.POST("/v1/payments/{id}/cancel", a.auth(a.cancelPayment))
	if cfg.Couriers != nil {
		a.r.POST("/v1/deliveries/quotes", a.auth(a.quoteDeliveries))
		a.r.POST("/v1/deliveries", a.auth(a.createDelivery))
		a.r.GET("/v1/deliveries", a.auth(a.listDeliveries))
		a.r.GET("/v1/deliveries/{id}", a.auth(a.getDelivery))
		a.r.POST("/v1/deliveries/{id}/cancel", a.auth(a.cancelDelivery))
	}
	if cfg.Subscriptions != nil {
		a.r.POST("/v1/subscriptions", a.auth(a.createSubscription))
		a.r.GET("/v1/subscriptions/{id}", a.auth(a.getSubscription))
		a.r.DELETE("/v1/subscriptions/{id}", a.auth(a.cancelSubscription))
	}
	if cfg.Messages != nil {
		a.r.POST("/v1/messages", a.auth(a.sendMessage))
		a.r.GET("/v1/messages", a.auth(a.listMessages))
		a.r.GET("/v1/messages/{id}", a.auth(a.getMessage))
		a.r.GET("/v1/templates", a.auth(a.listTemplates))
		a.r.GET("/v1/templates/{name}", a.auth(a.getTemplate))
		a.r.PUT("/v1/templates/{name}", a.auth(a.putTemplate))
		a.r.DELETE("/v1/templates/{name}", a.auth(a.deleteTemplate))
		a.r.GET("/v1/automations", a.auth(a.listAutomations))
		a.r.POST("/v1/automations", a.auth(a.putAutomation))
		a.r.GET("/v1/automations/{id}", a.auth(a.getAutomation))
		a.r.PUT("/v1/automations/{id}", a.auth(a.putAutomation))
		a.r.DELETE("/v1/automations/{id}", a.auth(a.deleteAutomation))
	}
	a.r.GET("/v1/logs", a.auth(a.listLogs))
	a.r.GET("/v1/payments/{id}/timeline", a.auth(a.paymentTimeline))
	a.r.GET("/v1/events", a.auth(a.listEvents))
	a.r.POST("/v1/events/replay", a.auth(a.replayEvents))
	a.r.GET("/v1/events/{id}", a.auth(a.getEvent))
	a.r.POST("/v1/events/{id}/replay", a.auth(a.replayEvent))
	a.r.GET("/v1/webhooks/quarantine", a.auth(a.listQuarantine))
	a.r.POST("/v1/webhooks/quarantine/{id}/replay", a.auth(a.replayQuarantined))
	a.r.GET("/v1/endpoints", a.auth(a.listEndpoints))
	a.r.POST("/v1/endpoints", a.auth(a.createEndpoint))
	a.r.GET("/v1/endpoints/{id}", a.auth(a.getEndpoint))
	a.r.PATCH("/v1/endpoints/{id}", a.auth(a.updateEndpoint))
	a.r.DELETE("/v1/endpoints/{id}", a.auth(a.deleteEndpoint))
	a.r.POST("/v1/endpoints/{id}/rotate-secret", a.auth(a.rotateSecret))
	a.r.GET("/checkout/{tenant}/{id}", a.checkout)
	a.r.GET("/return/{provider}/{tenant}", a.paymentReturn)
	a.r.POST("/return/{provider}/{tenant}", a.paymentReturn)
	if cfg.Webhooks != nil {
		a.r.POST("/webhooks/{provider}/{tenant}", cfg.Webhooks.Post)
		a.r.GET("/webhooks/{provider}/{tenant}", cfg.Webhooks.Get)
	}
	if cfg.Metrics != nil {
		a.r.GET("/metrics", cfg.Metrics)
	}
	if cfg.Admin != nil {
		cfg.Admin.Register(a.r)
	}
	return a, nil
}

// WebhookHandlers serve the provider webhook routes (package webhook).
type WebhookHandlers interface {
	Post(ctx *fasthttp.RequestCtx)
	Get(ctx *fasthttp.RequestCtx)
}

type noNotifier struct{}

func (noNotifier) InboxReady(string, string) {}
func (noNotifier) DeliveriesReady()          {}

// Handler returns the request handler.
func (a *API) Handler() fasthttp.RequestHandler { return a.r.Handler }

func (a *API) healthz(ctx *fasthttp.RequestCtx) {
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) readyz(ctx *fasthttp.RequestCtx) {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ok, detail := a.cfg.Ready(c)
	status, word := fasthttp.StatusOK, "ready"
	if !ok {
		status, word = fasthttp.StatusServiceUnavailable, "unavailable"
	}
	httpserver.WriteJSON(ctx, status, map[string]any{"status": word, "checks": detail})
}

type tenantHandler func(ctx *fasthttp.RequestCtx, t *tenant.Tenant)

var bearer = []byte("Bearer ")

// auth resolves the caller's tenant from "Authorization: Bearer <key>".
func (a *API) auth(next tenantHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
		var key []byte
		if len(h) > len(bearer) && subtle.ConstantTimeCompare(bytes.ToLower(h[:len(bearer)]), []byte("bearer ")) == 1 {
			key = bytes.TrimSpace(h[len(bearer):])
		}
		t, keyID, ok := a.cfg.Tenants.Identify(string(key))
		if ok && keyID != "" && a.cfg.KeyUsed != nil {
			a.cfg.KeyUsed(keyID)
		}
		if !ok {
			ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="pipecore"`)
			httpserver.WriteError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "missing or invalid API key (send Authorization: Bearer <key>)")
			return
		}
		if ok, wait := a.cfg.RateLimit.Allow(t.ID, a.cfg.Now()); !ok {
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			httpserver.WriteError(ctx, fasthttp.StatusTooManyRequests, "rate_limited", "too many requests for this tenant; retry after the Retry-After delay")
			return
		}
		next(ctx, t)
	}
}

// requestContext derives the context of a request's work: its request id
// travels to plugins and into the audit log.
func requestContext(ctx *fasthttp.RequestCtx) context.Context {
	return provider.WithRequestID(context.Background(), httpserver.RequestID(ctx))
}

// decode reads a JSON body (whatever the Content-Type says) strictly: unknown fields, trailing data, wrong
// types and oversized bodies are 400 (413) errors that name the problem.
func (a *API) decode(ctx *fasthttp.RequestCtx, v any) bool {
	body := ctx.PostBody()
	if len(body) > a.cfg.MaxBodyBytes {
		httpserver.WriteError(ctx, fasthttp.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", a.cfg.MaxBodyBytes))
		return false
	}
	if depth := jsonDepth(body); depth > maxJSONDepth {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", fmt.Sprintf("malformed JSON body: nested deeper than %d levels", maxJSONDepth))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "malformed JSON body: "+describeJSONError(err))
		return false
	}
	if dec.More() {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "malformed JSON body: unexpected data after the JSON object")
		return false
	}
	return true
}

// maxJSONDepth bounds the nesting of request bodies; the API's own shapes
// need 3.
const maxJSONDepth = 16

// jsonDepth returns the deepest nesting of objects and arrays in b,
// ignoring brackets inside strings. It does not validate b.
func jsonDepth(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			return fmt.Sprintf("field %q must be %s, got %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
		}
		return fmt.Sprintf("body must be a JSON object, got %s", typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("%v (at byte %d)", syntaxErr, syntaxErr.Offset)
	case errors.Is(err, errEOF):
		return "empty body"
	}
	return err.Error()
}

func jsonKind(k string) string {
	switch k {
	case "int64", "int", "int32":
		return "an integer"
	case "string":
		return "a string"
	case "map", "struct", "ptr":
		return "an object"
	}
	return k
}
