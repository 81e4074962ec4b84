package api

import (
	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/subscription"
	"github.com/pipecore/pipecore/core/internal/tenant"
)

func (a *API) createSubscription(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var req subscription.CreateInput
	if !a.decode(ctx, &req) {
		return
	}
	in := req
	if err := a.cfg.Subscriptions.Validate(t, &in); err != nil {
		a.writeFailure(ctx, t, in.Provider, err)
		return
	}
	c := requestContext(ctx)
	a.idempotent(ctx, t, "POST /v1/subscriptions", req, func(opID string) response {
		s, err := a.cfg.Subscriptions.Create(c, t, opID, in)
		if err != nil {
			return failureResponse(classify(err, secretsOf(t, in.Provider)))
		}
		return jsonResponse(fasthttp.StatusCreated, s)
	})
}

func (a *API) getSubscription(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	refresh, ok := refreshParam(ctx)
	if !ok {
		return
	}
	s, err := a.cfg.Subscriptions.Get(requestContext(ctx), t, id, refresh)
	if err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, s)
}

// cancelSubscription serves DELETE /v1/subscriptions/{id}.
func (a *API) cancelSubscription(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	c := requestContext(ctx)
	if _, err := a.cfg.Subscriptions.Get(c, t, id, false); err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	a.idempotent(ctx, t, "DELETE /v1/subscriptions/"+id, struct{}{}, func(opID string) response {
		s, err := a.cfg.Subscriptions.Cancel(c, t, id, opID)
		if err != nil {
			return failureResponse(classify(err, secretsOf(t, "")))
		}
		return jsonResponse(fasthttp.StatusOK, s)
	})
}
