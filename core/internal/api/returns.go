package api

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/payment"
)

// paymentReturn serves GET|POST /return/{provider}/{tenant}: the customer's
// browser coming back from a redirect flow (Transbank posts token_ws here).
// It completes the payment (see payment.Service.Return) and sends the
// browser on to the tenant's return_url with payment_id and status.
func (a *API) paymentReturn(ctx *fasthttp.RequestCtx) {
	prov, _ := ctx.UserValue("provider").(string)
	tid, _ := ctx.UserValue("tenant").(string)
	t, ok := a.cfg.Tenants.Get(tid)
	if !ok || t.Disabled || !t.Enabled(prov) {
		ctx.Error("no such payment return", fasthttp.StatusNotFound)
		return
	}
	params := map[string]string{}
	for k, v := range ctx.QueryArgs().All() {
		params[string(k)] = string(v)
	}
	for k, v := range ctx.PostArgs().All() {
		params[string(k)] = string(v)
	}
	res, err := a.cfg.Payments.Return(requestContext(ctx), t, prov, params)
	switch {
	case errors.Is(err, payment.ErrNotFound):
		ctx.Error("unknown payment", fasthttp.StatusNotFound)
		return
	case err != nil:
		a.cfg.Logger.Warn("payment return failed", "tenant", tid, "provider", prov, "error", err)
		ctx.Error("the payment could not be completed; please contact the shop", fasthttp.StatusBadGateway)
		return
	}
	if res.Redirect == "" {
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString(fmt.Sprintf("payment %s: %s\n", res.Payment.ID, res.Payment.Status))
		return
	}
	ctx.Redirect(res.Redirect, fasthttp.StatusSeeOther)
}

// checkout serves GET /checkout/{tenant}/{id}: the page that posts the
// provider's form (Transbank's token_ws) from the customer's browser. It
// needs no API key (the customer's browser opens it); an unknown tenant,
// payment or one without a form answers the same 404.
func (a *API) checkout(ctx *fasthttp.RequestCtx) {
	tid, _ := ctx.UserValue("tenant").(string)
	id, _ := ctx.UserValue("id").(string)
	t, ok := a.cfg.Tenants.Get(tid)
	if !ok || t.Disabled {
		httpserver.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no such checkout")
		return
	}
	var b bytes.Buffer
	if err := a.cfg.Payments.WriteCheckout(requestContext(ctx), t, id, &b); err != nil {
		if errors.Is(err, payment.ErrNotFound) {
			httpserver.WriteError(ctx, fasthttp.StatusNotFound, "not_found", "no such checkout")
			return
		}
		a.writeFailure(ctx, t, "", err)
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Referrer-Policy", "no-referrer")
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; form-action http: https:; style-src 'unsafe-inline'")
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBody(b.Bytes())
}
