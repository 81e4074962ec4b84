package api

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/messenger"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
)

// sendMessage serves POST /v1/messages: the message is validated (address,
// template, params, session window), stored queued and answered 202; the
// send runs from the outbox. The same Idempotency-Key never sends twice.
func (a *API) sendMessage(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var req messenger.SendInput
	if !a.decode(ctx, &req) {
		return
	}
	c := requestContext(ctx)
	p, err := a.cfg.Messages.Prepare(c, t, req)
	if err != nil {
		a.writeFailure(ctx, t, req.Provider, err)
		return
	}
	a.idempotent(ctx, t, "POST /v1/messages", req, func(opID string) response {
		m, err := a.cfg.Messages.Enqueue(c, t, "msg_"+opID, p)
		if err != nil {
			return failureResponse(classify(err, secretsOf(t, req.Provider)))
		}
		return jsonResponse(fasthttp.StatusAccepted, m)
	})
}

func (a *API) getMessage(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	m, err := a.cfg.Messages.Get(requestContext(ctx), t, id)
	if err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, m)
}

func (a *API) listMessages(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	q, ok := listQuery(ctx)
	if !ok {
		return
	}
	ms, next, err := a.cfg.Messages.List(requestContext(ctx), t, q)
	a.writePage(ctx, ms, next, err)
}

// writePage answers one page of a list: {"data","next_cursor"}, or 400
// for a cursor the store did not issue, or the storage failure.
func (a *API) writePage(ctx *fasthttp.RequestCtx, data any, next string, err error) {
	if err != nil {
		if isInvalidQuery(err) {
			httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "invalid cursor")
			return
		}
		a.storageFailure(ctx, err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": data, "next_cursor": next})
}

// refreshParam reads ?refresh=, answering 400 itself when it is not a
// boolean.
func refreshParam(ctx *fasthttp.RequestCtx) (refresh, ok bool) {
	v := ctx.QueryArgs().Peek("refresh")
	if len(v) == 0 {
		return false, true
	}
	b, err := strconv.ParseBool(string(v))
	if err != nil {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "refresh must be true or false")
		return false, false
	}
	return b, true
}

// listQuery reads ?limit= and ?cursor=, answering 400 itself when bad.
func listQuery(ctx *fasthttp.RequestCtx) (store.ListQuery, bool) {
	q := store.ListQuery{Cursor: string(ctx.QueryArgs().Peek("cursor"))}
	if v := ctx.QueryArgs().Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > store.MaxListLimit {
			httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "limit must be an integer from 1 to "+strconv.Itoa(store.MaxListLimit))
			return q, false
		}
		q.Limit = n
	}
	return q, true
}

// ---- templates

func (a *API) listTemplates(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	ts, err := a.cfg.Messages.Templates(requestContext(ctx), t.ID)
	if err != nil {
		a.storageFailure(ctx, err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": ts})
}

func (a *API) getTemplate(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	name, _ := ctx.UserValue("name").(string)
	tpl, err := a.cfg.Messages.GetTemplate(requestContext(ctx), t.ID, name)
	if err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, tpl)
}

func (a *API) putTemplate(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var tpl config.Template
	if !a.decode(ctx, &tpl) {
		return
	}
	name, _ := ctx.UserValue("name").(string)
	if tpl.Name == "" {
		tpl.Name = name
	}
	if tpl.Name != name {
		httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "name: must match the URL")
		return
	}
	out, err := a.cfg.Messages.PutTemplate(requestContext(ctx), t.ID, tpl)
	if err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, out)
}

func (a *API) deleteTemplate(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	name, _ := ctx.UserValue("name").(string)
	if err := a.cfg.Messages.DeleteTemplate(requestContext(ctx), t.ID, name); err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// ---- automations

func (a *API) listAutomations(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	rs, err := a.cfg.Messages.Rules(requestContext(ctx), t.ID)
	if err != nil {
		a.storageFailure(ctx, err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": rs})
}

func (a *API) getAutomation(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	r, err := a.cfg.Messages.GetRule(requestContext(ctx), t.ID, id)
	if err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, r)
}

// putAutomation serves POST /v1/automations and PUT /v1/automations/{id}.
func (a *API) putAutomation(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var rule config.Automation
	if !a.decode(ctx, &rule) {
		return
	}
	if id, ok := ctx.UserValue("id").(string); ok {
		if rule.ID == "" {
			rule.ID = id
		}
		if rule.ID != id {
			httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "id: must match the URL")
			return
		}
	}
	out, err := a.cfg.Messages.PutRule(requestContext(ctx), t.ID, rule)
	if err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	status := fasthttp.StatusOK
	if string(ctx.Method()) == fasthttp.MethodPost {
		status = fasthttp.StatusCreated
	}
	httpserver.WriteJSON(ctx, status, out)
}

func (a *API) deleteAutomation(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	if err := a.cfg.Messages.DeleteRule(requestContext(ctx), t.ID, id); err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}
