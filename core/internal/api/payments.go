package api

import (
	"context"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/payment"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
)

// createPaymentRequest is the body of POST /v1/payments.
type createPaymentRequest struct {
	Provider    string            `json:"provider,omitempty"`
	Amount      int64             `json:"amount"`
	Currency    string            `json:"currency"`
	Reference   string            `json:"reference"`
	Description string            `json:"description,omitempty"`
	ReturnURL   string            `json:"return_url,omitempty"`
	Customer    *store.Customer   `json:"customer,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// CaptureMethod is "automatic" (the default) or "manual": authorize
	// now, take the money with POST /v1/payments/{id}/capture.
	CaptureMethod string `json:"capture_method,omitempty"`
}

// paymentJSON is a payment as the API shows it.
type paymentJSON struct {
	ID                string            `json:"id"`
	Provider          string            `json:"provider"`
	ProviderPaymentID string            `json:"provider_payment_id,omitempty"`
	Status            string            `json:"status"`
	Amount            int64             `json:"amount"`
	Currency          string            `json:"currency"`
	AmountRefunded    int64             `json:"amount_refunded"`
	Reference         string            `json:"reference,omitempty"`
	Description       string            `json:"description,omitempty"`
	ReturnURL         string            `json:"return_url,omitempty"`
	RedirectURL       string            `json:"redirect_url,omitempty"`
	ClientSecret      string            `json:"client_secret,omitempty"`
	Method            string            `json:"method,omitempty"`
	FailureCode       string            `json:"failure_code,omitempty"`
	FailureMessage    string            `json:"failure_message,omitempty"`
	Customer          *store.Customer   `json:"customer,omitempty"`
	Metadata          map[string]string `json:"metadata,omitempty"`
	CreatedAt         time.Time         `json:"created_at"`
	UpdatedAt         time.Time         `json:"updated_at"`
}

func (a *API) viewPayment(p store.Payment, clientSecret string) paymentJSON {
	return paymentJSON{
		ID: p.ID, Provider: p.Provider, ProviderPaymentID: p.ProviderPaymentID, Status: p.Status,
		Amount: p.Amount, Currency: p.Currency, AmountRefunded: p.AmountRefunded, Reference: p.Reference,
		Description: p.Description, ReturnURL: p.ReturnURL, RedirectURL: payment.CheckoutURL(a.cfg.PublicURL, p), ClientSecret: clientSecret,
		Method: p.Method, FailureCode: p.FailureCode, FailureMessage: p.FailureMessage,
		Customer: p.Customer, Metadata: p.Metadata, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

func (a *API) createPayment(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var req createPaymentRequest
	if !a.decode(ctx, &req) {
		return
	}
	in := payment.CreateInput{
		Provider: req.Provider, Amount: req.Amount, Currency: req.Currency, Reference: req.Reference,
		Description: req.Description, ReturnURL: req.ReturnURL, Customer: req.Customer, Metadata: req.Metadata,
		CaptureMethod: req.CaptureMethod,
	}
	// Validation failures are answered before the idempotency key is
	// taken: nothing ran, so nothing is stored.
	if err := a.cfg.Payments.Validate(t, &in); err != nil {
		a.writeFailure(ctx, t, in.Provider, err)
		return
	}
	c := requestContext(ctx)
	a.idempotent(ctx, t, "POST /v1/payments", req, func(opID string) response {
		res, err := a.cfg.Payments.Create(c, t, opID, in)
		if err != nil {
			return failureResponse(classify(err, secretsOf(t, in.Provider)))
		}
		return jsonResponse(fasthttp.StatusCreated, a.viewPayment(res.Payment, res.ClientSecret))
	})
}

func (a *API) getPayment(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	id, _ := ctx.UserValue("id").(string)
	refresh, ok := refreshParam(ctx)
	if !ok {
		return
	}
	p, err := a.cfg.Payments.Get(requestContext(ctx), t, id, refresh)
	if err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, a.viewPayment(p, ""))
}

// refundRequest is the body of POST /v1/payments/{id}/refunds.
type refundRequest struct {
	Amount int64 `json:"amount,omitempty"`
}

func (a *API) refundPayment(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var req refundRequest
	if len(ctx.PostBody()) > 0 && !a.decode(ctx, &req) {
		return
	}
	a.onPayment(ctx, t, "refunds", req, func(c context.Context, id, opID string) (store.Payment, error) {
		return a.cfg.Payments.Refund(c, t, id, opID, req.Amount)
	})
}

// onPayment runs a mutating operation on the tenant's payment {id}: a
// missing (or another tenant's) payment answers 404 before the
// idempotency key is touched; the operation runs under the key's scope
// "POST /v1/payments/{id}/<action>".
func (a *API) onPayment(ctx *fasthttp.RequestCtx, t *tenant.Tenant, action string, req any, op func(c context.Context, id, opID string) (store.Payment, error)) {
	id, _ := ctx.UserValue("id").(string)
	c := requestContext(ctx)
	if _, err := a.cfg.Payments.Get(c, t, id, false); err != nil {
		a.writeFailure(ctx, t, "", err)
		return
	}
	a.idempotent(ctx, t, "POST /v1/payments/"+id+"/"+action, req, func(opID string) response {
		p, err := op(c, id, opID)
		if err != nil {
			return failureResponse(classify(err, secretsOf(t, "")))
		}
		return jsonResponse(fasthttp.StatusOK, a.viewPayment(p, ""))
	})
}

func (a *API) listLogs(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	args := ctx.QueryArgs()
	q := store.AuditQuery{
		Provider: string(args.Peek("provider")), Action: string(args.Peek("action")),
		Status: string(args.Peek("status")), Cursor: string(args.Peek("cursor")),
	}
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > store.MaxAuditLimit {
			httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "limit must be an integer from 1 to "+strconv.Itoa(store.MaxAuditLimit))
			return
		}
		q.Limit = n
	}
	c, cancel := context.WithTimeout(requestContext(ctx), 10*time.Second)
	defer cancel()
	recs, next, err := a.cfg.Store.ListAudit(c, t.ID, q)
	if err != nil {
		if isInvalidQuery(err) {
			httpserver.WriteError(ctx, fasthttp.StatusBadRequest, "invalid_request", "invalid cursor or filter")
			return
		}
		a.storageFailure(ctx, err)
		return
	}
	if recs == nil {
		recs = []store.AuditRecord{}
	}
	httpserver.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"data": recs, "next_cursor": next})
}

// captureRequest is the body of POST /v1/payments/{id}/capture.
type captureRequest struct {
	Amount int64 `json:"amount,omitempty"`
}

func (a *API) capturePayment(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var req captureRequest
	if len(ctx.PostBody()) > 0 && !a.decode(ctx, &req) {
		return
	}
	a.onPayment(ctx, t, "capture", req, func(c context.Context, id, opID string) (store.Payment, error) {
		return a.cfg.Payments.Capture(c, t, id, opID, req.Amount)
	})
}

// cancelRequest is the body of POST /v1/payments/{id}/cancel.
type cancelRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (a *API) cancelPayment(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	var req cancelRequest
	if len(ctx.PostBody()) > 0 && !a.decode(ctx, &req) {
		return
	}
	a.onPayment(ctx, t, "cancel", req, func(c context.Context, id, opID string) (store.Payment, error) {
		return a.cfg.Payments.Cancel(c, t, id, opID, req.Reason)
	})
}
