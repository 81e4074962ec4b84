package admin

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/vault"
)

// tenantJSON is a tenant as operators see it.
type tenantJSON struct {
	ID        string            `json:"id"`
	Source    string            `json:"source"` // config, api or config+api
	Disabled  bool              `json:"disabled"`
	Defaults  map[string]string `json:"defaults,omitempty"`
	Providers []string          `json:"providers"` // enabled
	Keys      int               `json:"api_keys"`  // operator-made, active
}

func (a *API) view(id string, rec *store.TenantRecord, keys int) tenantJSON {
	out := tenantJSON{ID: id, Providers: []string{}, Keys: keys}
	inConfig := a.cfg.Gateway.ConfigTenant(id)
	switch {
	case inConfig && rec != nil:
		out.Source = "config+api"
	case inConfig:
		out.Source = "config"
	default:
		out.Source = "api"
	}
	if rec != nil {
		out.Disabled, out.Defaults = rec.Disabled, rec.Defaults
	}
	return out
}

func (a *API) listTenants(ctx *fasthttp.RequestCtx) {
	c, cancel := a.ctx(ctx)
	defer cancel()
	recs, err := a.cfg.Store.ListTenants(c)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	keys, err := a.cfg.Store.AllAPIKeys(c)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	count := map[string]int{}
	for _, k := range keys {
		count[k.TenantID]++
	}
	byID := map[string]*store.TenantRecord{}
	for i := range recs {
		byID[recs[i].ID] = &recs[i]
	}
	ids := a.tenantIDs(byID)
	out := []tenantJSON{}
	for _, id := range ids {
		v := a.view(id, byID[id], count[id])
		v.Providers = a.enabledProviders(id)
		out = append(out, v)
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": out})
}

// tenantIDs merges the registry's tenants with the store's records.
func (a *API) tenantIDs(recs map[string]*store.TenantRecord) []string {
	set := map[string]bool{}
	for id := range recs {
		set[id] = true
	}
	for _, id := range a.registry().IDs() {
		set[id] = true
	}
	ids := slices.Collect(maps.Keys(set))
	sort.Strings(ids)
	return ids
}

func (a *API) registry() *tenant.Registry { return a.cfg.Gateway.Registry() }

func (a *API) enabledProviders(id string) []string {
	if t, ok := a.registry().Get(id); ok {
		return t.Providers()
	}
	return []string{}
}

type createTenantRequest struct {
	ID       string            `json:"id"`
	Defaults map[string]string `json:"defaults,omitempty"`
}

func (a *API) createTenant(ctx *fasthttp.RequestCtx) {
	var req createTenantRequest
	if !decode(ctx, &req) {
		return
	}
	if !idPattern.MatchString(req.ID) {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "id must be 1 to 63 lowercase letters, digits, _ or -")
		return
	}
	c, cancel := a.ctx(ctx)
	defer cancel()
	if _, err := a.cfg.Store.GetTenant(c, req.ID); err == nil || a.cfg.Gateway.ConfigTenant(req.ID) {
		httpserver.WriteError(ctx, fasthttp.StatusConflict, "exists", "tenant "+req.ID+" already exists")
		return
	}
	now := a.cfg.Now().UTC()
	rec := store.TenantRecord{ID: req.ID, Defaults: req.Defaults, CreatedAt: now, UpdatedAt: now}
	if err := a.cfg.Gateway.Check(c, req.ID, func(r *store.TenantRecord) { *r = rec }); err != nil {
		a.fail(ctx, refuse("%v", err))
		return
	}
	if err := a.cfg.Store.PutTenant(c, rec); err != nil {
		a.fail(ctx, err)
		return
	}
	a.record(c, req.ID, "tenant.create", map[string]any{"tenant": req.ID})
	if err := a.cfg.Gateway.Reload(c); err != nil {
		a.fail(ctx, err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusCreated, a.view(req.ID, &rec, 0))
}

func (a *API) showTenant(ctx *fasthttp.RequestCtx) {
	id := param(ctx, "id")
	c, cancel := a.ctx(ctx)
	defer cancel()
	rec, err := a.cfg.Store.GetTenant(c, id)
	var recp *store.TenantRecord
	switch {
	case err == nil:
		recp = &rec
	case errors.Is(err, store.ErrNotFound) && a.cfg.Gateway.ConfigTenant(id):
	default:
		a.fail(ctx, err)
		return
	}
	keys, err := a.cfg.Store.ListAPIKeys(c, id)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	active := 0
	for _, k := range keys {
		if !k.Revoked() {
			active++
		}
	}
	v := a.view(id, recp, active)
	v.Providers = a.enabledProviders(id)
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, v)
}

// ensure returns the tenant's operator record, creating an empty overlay
// for a config-only tenant; ErrNotFound for an unknown tenant.
func (a *API) ensure(ctx *fasthttp.RequestCtx, id string) (store.TenantRecord, bool) {
	c, cancel := a.ctx(ctx)
	defer cancel()
	rec, err := a.cfg.Store.GetTenant(c, id)
	if err == nil {
		return rec, true
	}
	if errors.Is(err, store.ErrNotFound) && a.cfg.Gateway.ConfigTenant(id) {
		now := a.cfg.Now().UTC()
		rec = store.TenantRecord{ID: id, CreatedAt: now, UpdatedAt: now}
		if err := a.cfg.Store.PutTenant(c, rec); err != nil {
			a.fail(ctx, err)
			return rec, false
		}
		return rec, true
	}
	a.fail(ctx, err)
	return rec, false
}

func (a *API) setDisabled(disabled bool) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		id := param(ctx, "id")
		if _, ok := a.ensure(ctx, id); !ok {
			return
		}
		c, cancel := a.ctx(ctx)
		defer cancel()
		rec, err := a.cfg.Store.UpdateTenant(c, id, func(r *store.TenantRecord) error {
			r.Disabled = disabled
			r.UpdatedAt = a.cfg.Now().UTC()
			return nil
		})
		if err != nil {
			a.fail(ctx, err)
			return
		}
		action := "tenant.enable"
		if disabled {
			action = "tenant.disable"
		}
		a.record(c, id, action, map[string]any{"tenant": id})
		if err := a.cfg.Gateway.Reload(c); err != nil {
			a.fail(ctx, err)
			return
		}
		httpserver.WriteJSON(ctx, fasthttp.StatusOK, a.view(id, &rec, 0))
	}
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

type keyJSON struct {
	ID         string     `json:"id"`
	Prefix     string     `json:"prefix"`
	Key        string     `json:"key,omitempty"` // only when created
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

func viewKey(k store.APIKeyRecord, plain string) keyJSON {
	out := keyJSON{ID: k.ID, Prefix: k.Prefix, Key: plain, CreatedAt: k.CreatedAt}
	if k.Revoked() {
		t := k.RevokedAt
		out.RevokedAt = &t
	}
	if !k.LastUsedAt.IsZero() {
		t := k.LastUsedAt
		out.LastUsedAt = &t
	}
	return out
}

func (a *API) known(ctx *fasthttp.RequestCtx, id string) bool {
	if _, ok := a.registry().Get(id); ok {
		return true
	}
	httpserver.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no such tenant")
	return false
}

func (a *API) listKeys(ctx *fasthttp.RequestCtx) {
	id := param(ctx, "id")
	if !a.known(ctx, id) {
		return
	}
	c, cancel := a.ctx(ctx)
	defer cancel()
	keys, err := a.cfg.Store.ListAPIKeys(c, id)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	out := []keyJSON{}
	for _, k := range keys {
		out = append(out, viewKey(k, ""))
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": out})
}

// createKey makes a tenant API key: shown once, stored as a keyed hash.
func (a *API) createKey(ctx *fasthttp.RequestCtx) {
	id := param(ctx, "id")
	if !a.known(ctx, id) {
		return
	}
	key, err := tenant.GenerateKey()
	if err != nil {
		a.fail(ctx, err)
		return
	}
	rec := store.APIKeyRecord{ID: newID("key_"), TenantID: id, Hash: tenant.KeyedHash(a.cfg.Pepper, key),
		Prefix: key[:store.APIKeyPrefixLen], CreatedAt: a.cfg.Now().UTC()}
	c, cancel := a.ctx(ctx)
	defer cancel()
	if err := a.cfg.Store.PutAPIKey(c, rec); err != nil {
		a.fail(ctx, err)
		return
	}
	a.record(c, id, "key.create", map[string]any{"key_id": rec.ID, "prefix": rec.Prefix})
	if err := a.cfg.Gateway.Reload(c); err != nil {
		a.fail(ctx, err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusCreated, viewKey(rec, key))
}

func (a *API) revokeKey(ctx *fasthttp.RequestCtx) {
	id, keyID := param(ctx, "id"), param(ctx, "key")
	c, cancel := a.ctx(ctx)
	defer cancel()
	if err := a.cfg.Store.RevokeAPIKey(c, id, keyID, a.cfg.Now().UTC()); err != nil {
		a.fail(ctx, err)
		return
	}
	a.record(c, id, "key.revoke", map[string]any{"key_id": keyID})
	if err := a.cfg.Gateway.Reload(c); err != nil {
		a.fail(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// createTokenSecret makes a token signing secret for the tenant (shown
// once); its key id goes into the tokens the tenant mints.
func (a *API) createTokenSecret(ctx *fasthttp.RequestCtx) {
	id := param(ctx, "id")
	if !a.known(ctx, id) {
		return
	}
	secret, err := tenant.GenerateTokenSecret()
	if err != nil {
		a.fail(ctx, err)
		return
	}
	kid := newID("tk_")
	c, cancel := a.ctx(ctx)
	defer cancel()
	if err := a.seal(c, id, TokenProvider, kid, secret); err != nil {
		a.fail(ctx, err)
		return
	}
	a.record(c, id, "token_secret.create", map[string]any{"kid": kid})
	if err := a.cfg.Gateway.Reload(c); err != nil {
		a.fail(ctx, err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusCreated, map[string]any{"kid": kid, "secret": secret, "max_ttl_seconds": int(tenant.MaxTokenTTL.Seconds())})
}

// seal encrypts value for (tenant, provider, field) and stores it.
func (a *API) seal(c context.Context, id, prov, field, value string) error {
	s, err := a.cfg.Vault.Seal(c, vault.Binding{Tenant: id, Provider: prov, Field: field}, value)
	if err != nil {
		return err
	}
	return a.cfg.Store.PutCredential(c, store.CredentialRecord{TenantID: id, Provider: prov, Field: field,
		Sealed: mustJSON(s), Fingerprint: s.Fingerprint, SetAt: a.cfg.Now().UTC(), SetBy: "operator"})
}
