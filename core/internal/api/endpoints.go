package api

import (
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/dispatch"
	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/payment"
	"github.com/pipecore/pipecore/core/internal/ssrf"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
)

// endpointJSON is an endpoint as the API shows it. Secret is present only
// in the answers that create it (create, rotate).
type endpointJSON struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"`
	Types          []string  `json:"types"`
	Enabled        bool      `json:"enabled"`
	Ordered        bool      `json:"ordered"`
	DisabledReason string    `json:"disabled_reason,omitempty"`
	FailingSince   time.Time `json:"failing_since,omitzero"`
	Source         string    `json:"source"`
	Secret         string    `json:"secret,omitempty"`
	SecretsActive  int       `json:"secrets_active"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func viewEndpoint(e store.Endpoint, secret string) endpointJSON {
	types := e.Types
	if types == nil {
		types = []string{}
	}
	return endpointJSON{ID: e.ID, URL: e.URL, Types: types, Enabled: e.Enabled, Ordered: e.Ordered,
		DisabledReason: e.DisabledReason, FailingSince: e.FailingSince, Source: e.Source, Secret: secret, SecretsActive: len(e.Secrets),
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

type endpointRequest struct {
	URL     *string   `json:"url,omitempty"`
	Types   *[]string `json:"types,omitempty"`
	Enabled *bool     `json:"enabled,omitempty"`
	Ordered *bool     `json:"ordered,omitempty"`
}

func (r endpointRequest) validate(policy *ssrf.Policy) string {
	if r.URL != nil {
		if msg := validEndpointURL(*r.URL); msg != "" {
			return msg
		}
		if err := policy.CheckURL(*r.URL); err != nil {
			return err.Error()
		}
	}
	if r.Types != nil {
		return validTypes(*r.Types)
	}
	return ""
}

func (a *API) createEndpoint(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var req endpointRequest
	if !a.decode(ctx, &req) {
		return
	}
	if req.URL == nil {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "url is required")
		return
	}
	if msg := req.validate(a.cfg.EndpointPolicy); msg != "" {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", msg)
		return
	}
	secret, err := dispatch.GenerateSecret()
	if err != nil {
		a.storageFailure(ctx, err)
		return
	}
	now := a.cfg.Now().UTC()
	e := store.Endpoint{ID: "ep_" + payment.NewOperationID(), TenantID: t.ID, URL: *req.URL, Secrets: []string{secret},
		Enabled: req.Enabled == nil || *req.Enabled, Ordered: req.Ordered != nil && *req.Ordered, Source: "api", CreatedAt: now, UpdatedAt: now}
	if req.Types != nil {
		e.Types = *req.Types
	}
	c, cancel := a.ctx(ctx)
	defer cancel()
	if err := a.cfg.Store.PutEndpoint(c, e); err != nil {
		a.storageFailure(ctx, err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusCreated, viewEndpoint(e, secret))
}

func (a *API) listEndpoints(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	c, cancel := a.ctx(ctx)
	defer cancel()
	eps, err := a.cfg.Store.ListEndpoints(c, t.ID)
	if err != nil {
		a.storageFailure(ctx, err)
		return
	}
	out := []endpointJSON{}
	for _, e := range eps {
		out = append(out, viewEndpoint(e, ""))
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": out})
}

func (a *API) getEndpoint(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	c, cancel := a.ctx(ctx)
	defer cancel()
	e, err := a.cfg.Store.GetEndpoint(c, t.ID, id)
	if err != nil {
		a.notFoundOr(ctx, err, "endpoint")
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, viewEndpoint(e, ""))
}

var errConfigManaged = errors.New("endpoint is managed by the config file")

func (a *API) updateEndpoint(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	var req endpointRequest
	if !a.decode(ctx, &req) {
		return
	}
	if msg := req.validate(a.cfg.EndpointPolicy); msg != "" {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", msg)
		return
	}
	c, cancel := a.ctx(ctx)
	defer cancel()
	e, err := a.cfg.Store.UpdateEndpoint(c, t.ID, id, func(e *store.Endpoint) error {
		if e.Source == "config" {
			return errConfigManaged
		}
		if req.URL != nil {
			e.URL = *req.URL
		}
		if req.Types != nil {
			e.Types = *req.Types
		}
		if req.Enabled != nil {
			e.Enabled = *req.Enabled
			if e.Enabled {
				e.DisabledReason, e.FailingSince = "", time.Time{}
			}
		}
		if req.Ordered != nil {
			e.Ordered = *req.Ordered
		}
		e.UpdatedAt = a.cfg.Now().UTC()
		return nil
	})
	if errors.Is(err, errConfigManaged) {
		httpserver.WriteError(ctx, fasthttp.StatusConflict, "managed_by_config", "this endpoint is declared in the config file; change it there")
		return
	}
	if err != nil {
		a.notFoundOr(ctx, err, "endpoint")
		return
	}
	a.cfg.Notifier.DeliveriesReady()
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, viewEndpoint(e, ""))
}

func (a *API) deleteEndpoint(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	c, cancel := a.ctx(ctx)
	defer cancel()
	e, err := a.cfg.Store.GetEndpoint(c, t.ID, id)
	if err != nil {
		a.notFoundOr(ctx, err, "endpoint")
		return
	}
	if e.Source == "config" {
		httpserver.WriteError(ctx, fasthttp.StatusConflict, "managed_by_config", "this endpoint is declared in the config file; remove it there")
		return
	}
	if err := a.cfg.Store.DeleteEndpoint(c, t.ID, id); err != nil {
		a.notFoundOr(ctx, err, "endpoint")
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// rotateSecret makes a new signing secret. The previous one keeps signing
// too (both signatures travel with every delivery) until the next
// rotation, so receivers can switch without losing a delivery.
func (a *API) rotateSecret(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	secret, err := dispatch.GenerateSecret()
	if err != nil {
		a.storageFailure(ctx, err)
		return
	}
	c, cancel := a.ctx(ctx)
	defer cancel()
	e, err := a.cfg.Store.UpdateEndpoint(c, t.ID, id, func(e *store.Endpoint) error {
		if e.Source == "config" {
			return errConfigManaged
		}
		prev := e.Secrets
		if len(prev) > 0 {
			prev = prev[:1]
		}
		e.Secrets = append([]string{secret}, prev...)
		e.UpdatedAt = a.cfg.Now().UTC()
		return nil
	})
	if errors.Is(err, errConfigManaged) {
		httpserver.WriteError(ctx, fasthttp.StatusConflict, "managed_by_config", "this endpoint's secret is set in the config file")
		return
	}
	if err != nil {
		a.notFoundOr(ctx, err, "endpoint")
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, viewEndpoint(e, secret))
}
