package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/pluginhost"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/vault"
)

// registerPlugins adds the plugin routes: the catalog with each
// version's health and tenants, reload (hot swap) and register (pin a
// binary by its SHA-256).
func (a *API) registerPlugins(g *router.Group) {
	g.GET("/plugins", a.auth(a.listPlugins))
	g.POST("/plugins/reload", a.auth(a.reloadPlugins))
	g.POST("/plugins/register", a.auth(a.registerPlugin))
}

type pluginJSON struct {
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	State     string    `json:"state"`
	Serving   bool      `json:"serving"`
	Draining  bool      `json:"draining,omitempty"`
	PID       int       `json:"pid,omitempty"`
	Restarts  int       `json:"restarts"`
	Hangs     int       `json:"hangs,omitempty"`
	InFlight  int       `json:"in_flight"`
	Degraded  bool      `json:"degraded"`
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since"`
	SHA256    string    `json:"sha256"`
	Path      string    `json:"path"`
	Tenants   []string  `json:"tenants"`
}

// listPlugins lists every plugin version: serving, draining, and the ones
// the last reload refused, with the tenants each serves.
func (a *API) listPlugins(ctx *fasthttp.RequestCtx) {
	reg := a.registry()
	out := []pluginJSON{}
	for _, st := range a.cfg.Plugins.Status() {
		p := pluginJSON{Name: st.Name, Version: st.Version, State: string(st.State), Serving: st.Serving, Draining: st.Draining,
			PID: st.PID, Restarts: st.Restarts, Hangs: st.Hangs, InFlight: st.InFlight, Degraded: st.Degraded,
			LastError: st.LastError, Since: st.Since.UTC(), SHA256: hex.EncodeToString(st.Checksum), Path: st.Path, Tenants: []string{}}
		if st.Serving {
			for _, id := range reg.IDs() {
				if t, ok := reg.Get(id); ok && t.Enabled(st.Name) {
					if v, ok := a.cfg.Plugins.Version(st.Name, id); ok && v == st.Version {
						p.Tenants = append(p.Tenants, id)
					}
				}
			}
		}
		out = append(out, p)
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": out})
}

type reloadRequest struct {
	// Name is the plugin to reload; empty reloads every started plugin.
	Name string `json:"name,omitempty"`
}

type routeJSON struct {
	Constraint string   `json:"constraint"`
	Tenants    []string `json:"tenants"` // nil: every tenant without a constraint
	From       string   `json:"from"`
	To         string   `json:"to"`
	Healthy    bool     `json:"healthy"`
}

type refusalJSON struct {
	Version string `json:"version"`
	Path    string `json:"path"`
	Error   string `json:"error"`
}

type reloadJSON struct {
	Name    string        `json:"name"`
	OK      bool          `json:"ok"`
	Routes  []routeJSON   `json:"routes"`
	Refused []refusalJSON `json:"refused"`
	Error   string        `json:"error,omitempty"`
}

// reloadPlugins rediscovers the plugins directory and swaps versions
// (pluginhost.Host.Reload). It answers 200 with one entry per plugin; ok
// is false when a version was refused (traffic then stays where it was)
// or some tenants have no version.
func (a *API) reloadPlugins(ctx *fasthttp.RequestCtx) {
	var req reloadRequest
	if !decode(ctx, &req) {
		return
	}
	var names []string
	if req.Name != "" {
		if !idPattern.MatchString(req.Name) {
			httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "name must be a plugin name such as stripe")
			return
		}
		names = []string{req.Name}
	}
	c, cancel := a.ctx(ctx)
	defer cancel()
	reps, err := a.cfg.Plugins.Reload(c, names)
	if err != nil {
		a.fail(ctx, refuse("cannot reload the plugins: %v", err))
		return
	}
	out := []reloadJSON{}
	allOK := true
	for _, r := range reps {
		j := reloadJSON{Name: r.Name, OK: r.OK(), Routes: []routeJSON{}, Refused: []refusalJSON{}, Error: r.Error}
		for _, rt := range r.Routes {
			j.Routes = append(j.Routes, routeJSON{Constraint: rt.Constraint, Tenants: rt.Tenants, From: rt.From, To: rt.To, Healthy: rt.Healthy})
		}
		for _, f := range r.Refused {
			j.Refused = append(j.Refused, refusalJSON{Version: f.Version, Path: f.Path, Error: f.Error})
		}
		allOK = allOK && j.OK
		out = append(out, j)
		a.recordPlugin(c, r.Name, "plugins.reload", map[string]any{"plugin": r.Name, "ok": j.OK, "routes": j.Routes, "refused": j.Refused})
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"ok": allOK, "data": out})
}

type registerRequest struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// registerPlugin pins a binary on the gateway's host by its SHA-256 as a
// build of a plugin. The binary serves no tenant until a reload routes to
// it.
func (a *API) registerPlugin(ctx *fasthttp.RequestCtx) {
	var req registerRequest
	if !decode(ctx, &req) {
		return
	}
	sum, err := hex.DecodeString(req.SHA256)
	if err != nil || len(sum) != sha256.Size || req.Name == "" || req.Path == "" {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "give name, path (absolute, on the gateway's host) and sha256 (64 hex digits)")
		return
	}
	b, err := a.cfg.Plugins.Register(req.Name, req.Path, sum)
	switch {
	case errors.Is(err, pluginhost.ErrInvalid), errors.Is(err, pluginhost.ErrChecksumMismatch):
		a.fail(ctx, refuse("%v", err))
		return
	case err != nil:
		a.fail(ctx, err)
		return
	}
	c, cancel := a.ctx(ctx)
	defer cancel()
	detail := map[string]any{"plugin": b.Name, "version": b.Version, "path": b.Path, "sha256": hex.EncodeToString(b.Checksum)}
	a.recordPlugin(c, b.Name, "plugins.register", detail)
	detail["name"] = b.Name
	detail["next"] = "pipecore plugins reload " + b.Name
	httpserver.WriteJSON(ctx, fasthttp.StatusCreated, detail)
}

// recordPlugin audits a plugin change in the log of every tenant that
// enables the plugin.
func (a *API) recordPlugin(c context.Context, name, action string, detail map[string]any) {
	reg := a.registry()
	for _, id := range reg.IDs() {
		if t, ok := reg.Get(id); ok && t.Enabled(name) {
			a.record(c, id, action, detail)
		}
	}
}

type replayRequest struct {
	Type   string    `json:"type,omitempty"`
	Status string    `json:"status,omitempty"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
}

func (a *API) replay(ctx *fasthttp.RequestCtx) {
	id := param(ctx, "id")
	if !a.known(ctx, id) {
		return
	}
	var req replayRequest
	if !decode(ctx, &req) {
		return
	}
	if req.Status == "" {
		req.Status = "dead"
	}
	if !slices.Contains([]string{"dead", "delivered", "pending", "all"}, req.Status) || req.Since.IsZero() || req.Until.IsZero() || !req.Until.After(req.Since) {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "give since and until (RFC 3339, until after since) and a status of dead, delivered, pending or all")
		return
	}
	c, cancel := a.ctx(ctx)
	defer cancel()
	n, err := a.cfg.Gateway.Replay(c, id, req.Type, req.Status, req.Since, req.Until)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	a.record(c, id, "events.replay", map[string]any{"type": req.Type, "status": req.Status, "since": req.Since, "until": req.Until, "replayed": n})
	httpserver.WriteJSON(ctx, fasthttp.StatusAccepted, map[string]any{"replayed": n})
}

func (a *API) verifyAudit(ctx *fasthttp.RequestCtx) {
	id := param(ctx, "id")
	c, cancel := a.ctx(ctx)
	defer cancel()
	v, err := a.cfg.Store.VerifyAudit(c, id)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"tenant": id, "records": v.Records, "intact": v.FirstBroken == 0, "first_broken": v.FirstBroken, "reason": v.Reason})
}

// rotateMasterKey adds a master key version, re-wraps every credential's
// data key under it (the values themselves are not re-encrypted), then
// retires every older version nothing uses any more.
func (a *API) rotateMasterKey(ctx *fasthttp.RequestCtx) {
	c, cancel := a.ctx(ctx)
	defer cancel()
	h := a.cfg.Vault.Holder()
	version, err := h.Rotate(c)
	if err != nil {
		a.fail(ctx, refuse("cannot rotate the master key: %v", err))
		return
	}
	recs, err := a.cfg.Store.AllCredentials(c)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	var sealed []vault.Sealed
	var changed []store.CredentialRecord
	for _, r := range recs {
		var s vault.Sealed
		if err := json.Unmarshal(r.Sealed, &s); err != nil {
			a.fail(ctx, err)
			return
		}
		ns, moved, err := a.cfg.Vault.Rewrap(c, vault.Binding{Tenant: r.TenantID, Provider: r.Provider, Field: r.Field}, s)
		if err != nil {
			a.fail(ctx, err)
			return
		}
		sealed = append(sealed, ns)
		if moved {
			r.Sealed = mustJSON(ns)
			changed = append(changed, r)
		}
	}
	if err := a.cfg.Store.ReplaceCredentials(c, changed); err != nil {
		a.fail(ctx, err)
		return
	}
	// Decide what to retire from what is stored now: a value set while we
	// re-wrapped may still need an older version.
	if recs, err = a.cfg.Store.AllCredentials(c); err != nil {
		a.fail(ctx, err)
		return
	}
	sealed = sealed[:0]
	for _, r := range recs {
		var s vault.Sealed
		if err := json.Unmarshal(r.Sealed, &s); err == nil {
			sealed = append(sealed, s)
		}
	}
	var retired []int
	versions, err := h.Versions(c)
	if err == nil {
		for _, v := range versions {
			if v < version && !a.cfg.Vault.InUse(sealed, v) {
				if err := a.cfg.Vault.Retire(c, v, sealed); err == nil {
					retired = append(retired, v)
				}
			}
		}
	}
	for _, id := range a.registry().IDs() {
		a.record(c, id, "master_key.rotate", map[string]any{"version": version, "rewrapped": len(changed)})
	}
	if err := a.cfg.Gateway.Reload(c); err != nil {
		a.fail(ctx, err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"key_id": h.ID(), "current_version": version, "rewrapped": len(changed), "credentials": len(recs), "retired": retired})
}
