// Package admin serves the operator API (/admin/v1/...): tenants, API
// keys, credentials (write-only), provider enablement, plugins, event
// replay, master key rotation and audit verification. It authenticates a
// separate operator token, never a tenant key. Every change is recorded in
// the tenant's hash-chained audit log (provider "admin") and applied at
// once by rebuilding the tenant registry; no restart is needed.
package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/pluginhost"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/vault"
	"github.com/pipecore/pipecore/sdk/provider"
)

// TokenProvider is the pseudo provider under which tenant token signing
// secrets are stored as credentials (field = key id).
const TokenProvider = "_tokens"

// Gateway is what the admin API needs from the running gateway.
type Gateway interface {
	// Registry is the live tenant registry.
	Registry() *tenant.Registry
	// Reload rebuilds the tenant registry from the config and the store.
	Reload(ctx context.Context) error
	// Check validates the tenants as they would be after a change
	// (required fields present, fields known to the plugins) without
	// applying it: change mutates a copy of tenant id's operator record.
	Check(ctx context.Context, id string, change func(*store.TenantRecord)) error
	// EnsurePlugin launches the named plugin if it is not supervised yet.
	EnsurePlugin(ctx context.Context, name string) error
	// ConfigTenant reports whether the config file declares the tenant.
	ConfigTenant(id string) bool
	// Replay replays a tenant's events in [since, until) whose status is
	// status ("dead", "delivered", "pending" or "all") and type matches.
	Replay(ctx context.Context, tenantID, typ, status string, since, until time.Time) (int, error)
}

// Plugins is the plugin host as the admin API sees and drives it.
type Plugins interface {
	Status() []pluginhost.Status
	Catalog() map[string]provider.Info
	// Version is the version serving a tenant's calls to a plugin.
	Version(name, tenantID string) (string, bool)
	Reload(ctx context.Context, names []string) ([]pluginhost.Report, error)
	Register(name, path string, sha256 []byte) (pluginhost.Binary, error)
}

// Config wires the admin API.
type Config struct {
	// TokenHash is the SHA-256 of the operator token. Empty disables the
	// admin API (every call answers 403).
	TokenHash []byte
	Store     store.Store
	Vault     *vault.Vault
	Gateway   Gateway
	Plugins   Plugins
	Logger    *slog.Logger
	// Pepper keys the hashes of operator-made API keys.
	Pepper []byte
	Now    func() time.Time
}

// API is the operator API.
type API struct{ cfg Config }

// New returns the admin API.
func New(cfg Config) (*API, error) {
	if cfg.Store == nil || cfg.Vault == nil || cfg.Gateway == nil || cfg.Plugins == nil {
		return nil, errors.New("admin: Store, Vault, Gateway and Plugins are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &API{cfg: cfg}, nil
}

// Register adds the admin routes to r.
func (a *API) Register(r *router.Router) {
	g := r.Group("/admin/v1")
	g.GET("/tenants", a.auth(a.listTenants))
	g.POST("/tenants", a.auth(a.createTenant))
	g.GET("/tenants/{id}", a.auth(a.showTenant))
	g.POST("/tenants/{id}/disable", a.auth(a.setDisabled(true)))
	g.POST("/tenants/{id}/enable", a.auth(a.setDisabled(false)))
	g.GET("/tenants/{id}/keys", a.auth(a.listKeys))
	g.POST("/tenants/{id}/keys", a.auth(a.createKey))
	g.DELETE("/tenants/{id}/keys/{key}", a.auth(a.revokeKey))
	g.GET("/tenants/{id}/credentials", a.auth(a.listCredentials))
	g.PUT("/tenants/{id}/credentials/{provider}/{field}", a.auth(a.setCredential))
	g.DELETE("/tenants/{id}/credentials/{provider}/{field}", a.auth(a.unsetCredential))
	g.POST("/tenants/{id}/providers/{provider}/enable", a.auth(a.setProvider(true)))
	g.POST("/tenants/{id}/providers/{provider}/disable", a.auth(a.setProvider(false)))
	g.POST("/tenants/{id}/token-secrets", a.auth(a.createTokenSecret))
	g.POST("/tenants/{id}/events/replay", a.auth(a.replay))
	g.GET("/tenants/{id}/audit/verify", a.auth(a.verifyAudit))
	a.registerPlugins(g)
	g.POST("/keys/rotate", a.auth(a.rotateMasterKey))
}

// auth checks "Authorization: Bearer <operator token>" in constant time.
func (a *API) auth(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if len(a.cfg.TokenHash) != sha256.Size {
			httpserver.WriteError(ctx, fasthttp.StatusForbidden, "admin_disabled", "the admin API is disabled: set admin.token in the config")
			return
		}
		h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
		tok, ok := bytes.CutPrefix(h, []byte("Bearer "))
		sum := sha256.Sum256(bytes.TrimSpace(tok))
		if !ok || subtle.ConstantTimeCompare(sum[:], a.cfg.TokenHash) != 1 {
			ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="pipecore-admin"`)
			httpserver.WriteError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "missing or invalid operator token")
			return
		}
		next(ctx)
	}
}

func (a *API) ctx(ctx *fasthttp.RequestCtx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(provider.WithRequestID(context.Background(), httpserver.RequestID(ctx)), time.Minute)
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func param(ctx *fasthttp.RequestCtx, name string) string {
	v, _ := ctx.UserValue(name).(string)
	return v
}

// decode reads a strict JSON body; an empty body leaves v as it is.
func decode(ctx *fasthttp.RequestCtx, v any) bool {
	body := ctx.PostBody()
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

// fail answers err: 404 for missing records, 400 for refused changes,
// 503 otherwise (logged).
func (a *API) fail(ctx *fasthttp.RequestCtx, err error) {
	var refused *refusal
	switch {
	case errors.As(err, &refused):
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", refused.msg)
	case errors.Is(err, store.ErrNotFound):
		httpserver.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no such record")
	case errors.Is(err, store.ErrExists):
		httpserver.WriteError(ctx, fasthttp.StatusConflict, "exists", "it already exists")
	default:
		a.cfg.Logger.Error("admin request failed", "request_id", httpserver.RequestID(ctx), "error", err)
		httpserver.WriteError(ctx, fasthttp.StatusServiceUnavailable, "unavailable", "the change could not be made; see the gateway log")
	}
}

// refusal is a change the admin API refuses with a message for the operator.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

func refuse(format string, args ...any) error { return &refusal{msg: fmt.Sprintf(format, args...)} }

// record writes an admin action to the tenant's audit log. detail must hold
// no secret (fingerprints and names only).
func (a *API) record(ctx context.Context, tenantID, action string, detail map[string]any) {
	_, err := a.cfg.Store.AppendAudit(ctx, store.AuditRecord{
		TenantID: tenantID, Provider: "admin", Action: "admin." + action, Status: "ok",
		Request: mustJSON(map[string]any{"by": "operator", "detail": detail}), Time: a.cfg.Now().UTC(),
		CorrelationID: provider.RequestID(ctx),
	})
	if err != nil {
		a.cfg.Logger.Error("admin action not audited", "tenant", tenantID, "action", action, "error", err)
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return b
}
