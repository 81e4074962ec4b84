package api

import (
	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/courier"
	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/tenant"
)

// quoteDeliveries serves POST /v1/deliveries/quotes: every enabled
// delivery provider (or the one named) is asked concurrently; the quotes
// that came back in time are returned cheapest first, with an error per
// provider that failed.
func (a *API) quoteDeliveries(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var req courier.Request
	if !a.decode(ctx, &req) {
		return
	}
	qs, err := a.cfg.Couriers.Quote(requestContext(ctx), t, req)
	if err != nil {
		a.writeFailure(ctx, t, req.Provider, err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": qs.Quotes, "errors": qs.Errors})
}

// createDeliveryRequest is the body of POST /v1/deliveries: a quote_id, or
// a provider with the delivery request.
type createDeliveryRequest struct {
	QuoteID string `json:"quote_id,omitempty"`
	courier.Request
}

func (a *API) createDelivery(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var req createDeliveryRequest
	if !a.decode(ctx, &req) {
		return
	}
	in := courier.CreateInput{QuoteID: req.QuoteID}
	if req.QuoteID == "" || req.Provider != "" || req.Reference != "" || len(req.Items) > 0 {
		r := req.Request
		in.Request = &r
	}
	c := requestContext(ctx)
	a.idempotent(ctx, t, "POST /v1/deliveries", req, func(opID string) response {
		d, err := a.cfg.Couriers.Create(c, t, opID, in)
		if err != nil {
			return failureResponse(classify(err, secretsOf(t, req.Provider)))
		}
		return jsonResponse(fasthttp.StatusCreated, d)
	})
}

func (a *API) getDelivery(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	refresh, ok := refreshParam(ctx)
	if !ok {
		return
	}
	d, err := a.cfg.Couriers.Get(requestContext(ctx), t, id, refresh)
	if err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, d)
}

func (a *API) listDeliveries(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	q, ok := listQuery(ctx)
	if !ok {
		return
	}
	ds, next, err := a.cfg.Couriers.List(requestContext(ctx), t, q)
	a.writePage(ctx, ds, next, err)
}

// cancelDeliveryRequest is the body of POST /v1/deliveries/{id}/cancel.
type cancelDeliveryRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (a *API) cancelDelivery(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var req cancelDeliveryRequest
	if len(ctx.PostBody()) > 0 && !a.decode(ctx, &req) {
		return
	}
	id, _ := ctx.UserValue("id").(string)
	c := requestContext(ctx)
	if _, err := a.cfg.Couriers.Get(c, t, id, false); err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	a.idempotent(ctx, t, "POST /v1/deliveries/"+id+"/cancel", req, func(opID string) response {
		d, err := a.cfg.Couriers.Cancel(c, t, id, opID, req.Reason)
		if err != nil {
			return failureResponse(classify(err, secretsOf(t, "")))
		}
		return jsonResponse(fasthttp.StatusOK, d)
	})
}
