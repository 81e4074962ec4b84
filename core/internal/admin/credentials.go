package admin

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/vault"
)

// credentialJSON shows which credential is set, never its value.
type credentialJSON struct {
	Provider    string    `json:"provider"`
	Field       string    `json:"field"`
	Fingerprint string    `json:"fingerprint"`
	SetAt       time.Time `json:"set_at"`
	KeyVersion  int       `json:"key_version"`
}

func (a *API) listCredentials(ctx *fasthttp.RequestCtx) {
	id := param(ctx, "id")
	if !a.known(ctx, id) {
		return
	}
	c, cancel := a.ctx(ctx)
	defer cancel()
	recs, err := a.cfg.Store.ListCredentials(c, id)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	out := []credentialJSON{}
	for _, r := range recs {
		if r.Provider == TokenProvider {
			continue
		}
		var s vault.Sealed
		_ = json.Unmarshal(r.Sealed, &s)
		out = append(out, credentialJSON{Provider: r.Provider, Field: r.Field, Fingerprint: r.Fingerprint, SetAt: r.SetAt, KeyVersion: s.KeyVersion})
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": out})
}

type credentialRequest struct {
	Value string `json:"value"`
}

// setCredential stores a credential value, encrypted; the answer shows
// its fingerprint only.
func (a *API) setCredential(ctx *fasthttp.RequestCtx) {
	id, prov, field := param(ctx, "id"), param(ctx, "provider"), param(ctx, "field")
	if !a.known(ctx, id) {
		return
	}
	var req credentialRequest
	if !decode(ctx, &req) {
		return
	}
	if req.Value == "" {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "value is required")
		return
	}
	ec, ecancel := a.ctx(ctx)
	_ = a.cfg.Gateway.EnsurePlugin(ec, prov)
	ecancel()
	info, ok := a.cfg.Plugins.Catalog()[prov]
	if !ok {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "no plugin called "+prov+" is available and running")
		return
	}
	f, declared := info.Field(field)
	previous := false
	for _, sf := range info.Webhook.SecretFields() {
		previous = previous || field == sf+config.PreviousSuffix
	}
	if !previous && (!declared || !f.Secret) {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "the "+prov+" plugin declares no credential "+field+" (settings are not credentials)")
		return
	}
	c, cancel := a.ctx(ctx)
	defer cancel()
	if err := a.seal(c, id, prov, field, req.Value); err != nil {
		a.fail(ctx, err)
		return
	}
	fp := a.cfg.Vault.Fingerprint(req.Value)
	a.record(c, id, "credential.set", map[string]any{"provider": prov, "field": field, "fingerprint": fp})
	if err := a.cfg.Gateway.Reload(c); err != nil {
		a.fail(ctx, err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, credentialJSON{Provider: prov, Field: field, Fingerprint: fp, SetAt: a.cfg.Now().UTC()})
}

func (a *API) unsetCredential(ctx *fasthttp.RequestCtx) {
	id, prov, field := param(ctx, "id"), param(ctx, "provider"), param(ctx, "field")
	c, cancel := a.ctx(ctx)
	defer cancel()
	if err := a.cfg.Store.DeleteCredential(c, id, prov, field); err != nil {
		a.fail(ctx, err)
		return
	}
	a.record(c, id, "credential.unset", map[string]any{"provider": prov, "field": field})
	if err := a.cfg.Gateway.Reload(c); err != nil {
		a.fail(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

type providerRequest struct {
	Settings map[string]string `json:"settings,omitempty"`
}

// setProvider enables (with optional settings) or disables a provider for
// a tenant. Enabling is refused while a required field is missing.
func (a *API) setProvider(enable bool) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		id, prov := param(ctx, "id"), param(ctx, "provider")
		var req providerRequest
		if !decode(ctx, &req) {
			return
		}
		if enable {
			c, cancel := a.ctx(ctx)
			err := a.cfg.Gateway.EnsurePlugin(c, prov)
			cancel()
			if _, ok := a.cfg.Plugins.Catalog()[prov]; err != nil || !ok {
				httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "no plugin called "+prov+" is available and running")
				return
			}
		}
		if _, ok := a.ensure(ctx, id); !ok {
			return
		}
		change := func(r *store.TenantRecord) {
			if r.Providers == nil {
				r.Providers = map[string]store.TenantProvider{}
			}
			p := r.Providers[prov]
			p.Enabled = enable
			if req.Settings != nil {
				p.Settings = req.Settings
			}
			r.Providers[prov] = p
			r.UpdatedAt = a.cfg.Now().UTC()
		}
		c, cancel := a.ctx(ctx)
		defer cancel()
		if err := a.cfg.Gateway.Check(c, id, change); err != nil {
			a.fail(ctx, refuse("%s", strings.TrimSpace(err.Error())))
			return
		}
		if _, err := a.cfg.Store.UpdateTenant(c, id, func(r *store.TenantRecord) error { change(r); return nil }); err != nil {
			a.fail(ctx, err)
			return
		}
		action := "provider.disable"
		if enable {
			action = "provider.enable"
		}
		a.record(c, id, action, map[string]any{"provider": prov, "settings": keysOf(req.Settings)})
		if err := a.cfg.Gateway.Reload(c); err != nil {
			a.fail(ctx, err)
			return
		}
		httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"tenant": id, "provider": prov, "enabled": enable})
	}
}

func keysOf(m map[string]string) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	return out
}
