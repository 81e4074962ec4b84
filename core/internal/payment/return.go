package payment

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// returnURL is where a redirect flow sends the customer back: the
// gateway's return route when PublicURL is set and the tenant gave a
// return_url, else the tenant's URL as given.
func (s *Service) returnURL(tenantID, prov, paymentID, tenantURL string) string {
	if tenantURL == "" || s.cfg.PublicURL == "" {
		return tenantURL
	}
	return fmt.Sprintf("%s/return/%s/%s?payment_id=%s", strings.TrimRight(s.cfg.PublicURL, "/"),
		url.PathEscape(prov), url.PathEscape(tenantID), url.QueryEscape(paymentID))
}

// Returned is the outcome of a customer's return from a redirect flow.
type Returned struct {
	Payment store.Payment
	// Redirect is where to send the customer: the tenant's return_url with
	// payment_id and status added.
	Redirect string
}

// Return completes a redirect flow when the customer comes back to
// /return/{provider}/{tenant} with params (query and form):
//   - token_ws (Transbank): the transaction is committed through the
//     plugin's Confirm, and payment.confirmed or payment.failed is
//     announced (these flows have no webhooks);
//   - TBK_TOKEN (with or without token_ws): the buyer aborted, or an error
//     followed the form; nothing is committed, the payment fails with
//     failure code "aborted" and payment.failed is announced; only
//     TBK_ORDEN_COMPRA (the form timed out) fails it with "timeout";
//   - otherwise the payment is refreshed from the provider (its webhooks
//     announce the outcome).
//
// The payment is found by payment_id, or by the provider's token. A
// confirm that fails with a retryable error leaves the payment as it was;
// the customer is still sent back, with its current status.
func (s *Service) Return(ctx context.Context, t *tenant.Tenant, prov string, params map[string]string) (Returned, error) {
	p, err := s.returning(ctx, t, prov, params)
	if err != nil {
		return Returned{}, err
	}
	token, aborted := params["token_ws"], params["TBK_TOKEN"]
	failure := "aborted"
	if token == "" && aborted == "" && params["TBK_ORDEN_COMPRA"] != "" {
		// Webpay's form timed out: only the order and session come back.
		aborted, failure = "timeout", "timeout"
	}
	switch {
	case aborted != "":
		// Aborted, timed out, or an error after the form (token_ws and
		// TBK_TOKEN both present): never commit.
		p, err = s.settle(ctx, t.ID, p.ID, func(p *store.Payment) {
			if p.Status == string(payments.StatusRequiresAction) || p.Status == string(payments.StatusPending) {
				p.Status, p.FailureCode, p.FailureMessage = string(payments.StatusFailed), failure, "the buyer did not complete the payment ("+failure+")"
			}
		})
		if err != nil {
			return Returned{}, err
		}
	case token != "":
		pp, pt, err := s.plugin(t, prov)
		if err != nil {
			return Returned{}, err
		}
		c, ok := pp.(payments.Confirmer)
		if !ok {
			return Returned{}, fmt.Errorf("payment: confirm via %s: %w", prov, provider.ErrUnsupported)
		}
		req := payments.ConfirmRequest{Tenant: pt, IdempotencyKey: providerKey(t.ID, "confirm:"+p.ID), Token: token, Params: params}
		var got payments.Payment
		err = s.call(ctx, t, prov, "payments.confirm", p.ID, map[string]any{"token": "[present]", "idempotency_key": req.IdempotencyKey}, func(ctx context.Context) (any, error) {
			var err error
			got, err = c.Confirm(ctx, req)
			return got, err
		})
		if err == nil {
			p, err = s.settle(ctx, t.ID, p.ID, func(p *store.Payment) { apply(p, got) })
		}
		if err != nil {
			s.cfg.Logger.Warn("confirm on return failed; the customer goes back with the current status", "tenant", t.ID, "payment", p.ID, "error", err)
		}
	default:
		if refreshed, err := s.Get(ctx, t, p.ID, true); err == nil {
			p = refreshed
		}
	}
	return Returned{Payment: p, Redirect: withParams(p.ReturnURL, p.ID, p.Status)}, nil
}

func (s *Service) returning(ctx context.Context, t *tenant.Tenant, prov string, params map[string]string) (store.Payment, error) {
	if id := params["payment_id"]; id != "" {
		p, err := s.load(ctx, t, id)
		if err == nil && p.Provider != prov {
			return store.Payment{}, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return p, err
	}
	for _, k := range []string{"token_ws", "TBK_TOKEN"} {
		if tok := params[k]; tok != "" {
			p, err := s.cfg.Store.PaymentByProviderID(ctx, prov, tok)
			if errors.Is(err, store.ErrNotFound) || (err == nil && p.TenantID != t.ID) {
				return store.Payment{}, fmt.Errorf("%w: token", ErrNotFound)
			}
			return p, err
		}
	}
	return store.Payment{}, fmt.Errorf("%w: the return carries no payment_id or token", ErrNotFound)
}

func withParams(raw, id, status string) string {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return ""
	}
	q := u.Query()
	q.Set("payment_id", id)
	q.Set("status", status)
	u.RawQuery = q.Encode()
	return u.String()
}
