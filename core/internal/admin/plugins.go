package admin

import (
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/vault"
)

type pluginJSON struct {
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	State     string   `json:"state"`
	PID       int      `json:"pid,omitempty"`
	Restarts  int      `json:"restarts"`
	Degraded  bool     `json:"degraded,omitempty"`
	LastError string   `json:"last_error,omitempty"`
	SHA256    string   `json:"sha256"`
	Tenants   []string `json:"tenants"`
}

func (a *API) listPlugins(ctx *fasthttp.RequestCtx) {
	sums := a.cfg.Plugins.Checksums()
	reg := a.registry()
	out := []pluginJSON{}
	for _, st := range a.cfg.Plugins.Status() {
		p := pluginJSON{Name: st.Name, Version: st.Version, State: string(st.State), PID: st.PID, Restarts: st.Restarts,
			Degraded: st.Degraded, LastError: st.LastError, SHA256: hex.EncodeToString(sums[st.Name]), Tenants: []string{}}
		for _, id := range reg.IDs() {
			if t, ok := reg.Get(id); ok && t.Enabled(st.Name) {
				p.Tenants = append(p.Tenants, id)
			}
		}
		out = append(out, p)
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": out})
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
