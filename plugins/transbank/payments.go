package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

// currency is the only currency Webpay Plus charges in: Chilean pesos,
// which have no minor unit, so provider.Money amounts are sent as they are.
const currency = "CLP"

// Transbank's field limits (providers.md §3.1).
const (
	maxBuyOrder  = 26
	maxSessionID = 61
	maxReturnURL = 255
)

// redirectTokenParam is the form field that carries the token. Webpay
// documents that the browser reaches the form url by a POST with the field
// token_ws: the payment's RedirectURL is the form url and RedirectForm holds
// token_ws, from which the gateway serves an auto-submitting form.
const redirectTokenParam = "token_ws"

// The return parameters Webpay sends to return_url (providers.md §3.3).
const (
	paramToken        = "token_ws"
	paramAbortToken   = "TBK_TOKEN"
	paramAbortOrder   = "TBK_ORDEN_COMPRA"
	paramAbortSession = "TBK_ID_SESION"
)

// Failure codes the plugin sets itself; otherwise FailureCode is
// Transbank's response_code.
const (
	failureAborted = "aborted"
	failureTimeout = "timeout"
)

// createBody is the request of POST /transactions.
type createBody struct {
	BuyOrder  string `json:"buy_order"`
	SessionID string `json:"session_id"`
	Amount    int64  `json:"amount"`
	ReturnURL string `json:"return_url"`
}

// createAnswer is the answer of POST /transactions.
type createAnswer struct {
	Token string `json:"token"`
	URL   string `json:"url"`
}

// transaction is the answer of commit (PUT) and status (GET).
type transaction struct {
	VCI               string `json:"vci"`
	Amount            int64  `json:"amount"`
	Status            string `json:"status"`
	BuyOrder          string `json:"buy_order"`
	SessionID         string `json:"session_id"`
	AccountingDate    string `json:"accounting_date"`
	TransactionDate   string `json:"transaction_date"`
	AuthorizationCode string `json:"authorization_code"`
	PaymentTypeCode   string `json:"payment_type_code"`
	ResponseCode      *int   `json:"response_code"`
	// Balance is what remains after nullifications, when Transbank says.
	Balance *int64 `json:"balance"`
}

// refundBody is the request of POST /transactions/{token}/refunds.
type refundBody struct {
	Amount int64 `json:"amount"`
}

// refundAnswer is the answer of POST /transactions/{token}/refunds. Only
// type is confirmed by the official SDK's tests; the rest is optional.
type refundAnswer struct {
	Type              string `json:"type"`
	AuthorizationCode string `json:"authorization_code"`
	AuthorizationDate string `json:"authorization_date"`
	NullifiedAmount   *int64 `json:"nullified_amount"`
	Balance           *int64 `json:"balance"`
	ResponseCode      *int   `json:"response_code"`
}

// CreatePayment creates a Webpay Plus transaction and returns its token as
// the payment id, status requires_action and a RedirectURL (see
// redirectTokenParam). The amount must be in CLP. The return URL is
// req.ReturnURL, else the tenant's return_url setting; without either the
// call is KindInvalid. buy_order is derived from req.Reference (see
// buyOrder), session_id from req.PaymentID. A retry with the same
// IdempotencyKey within an hour returns the first transaction (see
// transbankProvider).
func (p *transbankProvider) CreatePayment(ctx context.Context, req payments.CreateRequest) (payments.Payment, error) {
	if err := req.Validate(); err != nil {
		return payments.Payment{}, err
	}
	if req.ManualCapture {
		return payments.Payment{}, fmt.Errorf("%s: manual capture (authorize now, capture later) is not offered: %w", "transbank", provider.ErrUnsupported)
	}
	if req.Amount.Currency != currency {
		return payments.Payment{}, provider.Invalid(fmt.Errorf("transbank: currency %s is not supported, Webpay Plus charges only %s", req.Amount.Currency, currency))
	}
	back, err := returnURL(req)
	if err != nil {
		return payments.Payment{}, err
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return payments.Payment{}, err
	}
	session := req.PaymentID
	if session == "" {
		session = req.IdempotencyKey
	}
	body := createBody{
		BuyOrder:  buyOrder(req.Reference, session),
		SessionID: fit(session, maxSessionID),
		Amount:    req.Amount.Amount,
		ReturnURL: back,
	}
	key := memoKey(req.Tenant, c, req.IdempotencyKey)
	fingerprint := fmt.Sprintf("%s|%s|%d|%s", body.BuyOrder, body.SessionID, body.Amount, body.ReturnURL)
	return p.creates.Do(ctx, key, fingerprint, func() (payments.Payment, error) {
		var out createAnswer
		if err := c.do(ctx, "create transaction", http.MethodPost, "/transactions", body, &out); err != nil {
			return payments.Payment{}, err
		}
		if out.Token == "" || out.URL == "" {
			return payments.Payment{}, c.fail(ctx, "create transaction", http.StatusOK, provider.Retryable(errors.New("transbank: create transaction: answer has no token or url")))
		}
		return payments.Payment{
			ID:          out.Token,
			Status:      payments.StatusRequiresAction,
			Amount:      req.Amount,
			RedirectURL: out.URL, RedirectForm: map[string]string{redirectTokenParam: out.Token},
		}, nil
	})
}

// GetPayment reads the transaction's status (GET /transactions/{token}).
func (*transbankProvider) GetPayment(ctx context.Context, req payments.GetRequest) (payments.Payment, error) {
	if req.ID == "" {
		return payments.Payment{}, provider.Invalid(errors.New("transbank: payment id (token) is empty"))
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return payments.Payment{}, err
	}
	tx, err := c.status(ctx, req.ID)
	if err != nil {
		return payments.Payment{}, err
	}
	return paymentOf(ctx, req.ID, tx), nil
}

// Reconcile implements payments.Reconciler, for a payment whose buyer
// never came back to return_url. Webpay reverses an authorization that is
// not committed in time, so the gateway's reconciliation job commits it
// here, exactly as the buyer's return would (Confirm with the token): a
// paid transaction becomes succeeded, one already committed reports its
// outcome. A commit Transbank refuses because the buyer never paid leaves
// the status to say what the transaction is (still initialized, failed,
// timed out).
func (t *transbankProvider) Reconcile(ctx context.Context, req payments.GetRequest) (payments.Payment, error) {
	if req.ID == "" {
		return payments.Payment{}, provider.Invalid(errors.New("transbank: payment id (token) is empty"))
	}
	pmt, err := t.Confirm(ctx, payments.ConfirmRequest{Tenant: req.Tenant, IdempotencyKey: "reconcile:" + req.ID, Token: req.ID})
	switch provider.KindOf(err) {
	case 0:
		return pmt, nil
	case provider.KindPermanent, provider.KindInvalid:
		return t.GetPayment(ctx, req)
	}
	return payments.Payment{}, err
}

// Confirm handles the buyer's return to return_url. With token_ws alone it
// commits the transaction (PUT /transactions/{token}); committing again is
// safe: when Transbank refuses a second commit with 422, the plugin reads
// the status instead and returns the committed outcome. When the return
// says the buyer aborted (TBK_TOKEN, with or without token_ws) it does not
// commit and returns failed with FailureCode "aborted"; a form timeout
// (TBK_ORDEN_COMPRA without any token) is failed with FailureCode "timeout"
// and no ID, to be matched on buy_order and session id by the gateway.
// req.Token, when set, is token_ws.
func (*transbankProvider) Confirm(ctx context.Context, req payments.ConfirmRequest) (payments.Payment, error) {
	token := req.Token
	if token == "" {
		token = req.Params[paramToken]
	}
	if abort := req.Params[paramAbortToken]; abort != "" {
		c, err := newClient(req.Tenant)
		if err != nil {
			return payments.Payment{}, err
		}
		tx, err := c.status(ctx, abort)
		if err != nil {
			return payments.Payment{}, err
		}
		pmt := paymentOf(ctx, abort, tx)
		pmt.Status = payments.StatusFailed
		pmt.FailureCode, pmt.FailureMessage = failureAborted, "the buyer aborted the payment on Webpay"
		return pmt, nil
	}
	if token == "" {
		if order := req.Params[paramAbortOrder]; order != "" {
			return payments.Payment{
				Status:         payments.StatusFailed,
				FailureCode:    failureTimeout,
				FailureMessage: fmt.Sprintf("the Webpay form timed out (buy_order %s, session %s)", order, req.Params[paramAbortSession]),
			}, nil
		}
		return payments.Payment{}, provider.Invalid(errors.New("transbank: confirm: no token_ws, TBK_TOKEN or TBK_ORDEN_COMPRA"))
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return payments.Payment{}, err
	}
	var tx transaction
	err = c.do(ctx, "commit transaction", http.MethodPut, "/transactions/"+url.PathEscape(token), nil, &tx)
	if httpapi.StatusOf(err) == http.StatusUnprocessableEntity {
		// Already committed (or being committed): the status is the
		// outcome. A transaction that was never committed keeps the
		// commit's error.
		if st, gerr := c.status(ctx, token); gerr == nil && !strings.EqualFold(st.Status, "INITIALIZED") {
			return paymentOf(ctx, token, st), nil
		}
	}
	if err != nil {
		return payments.Payment{}, err
	}
	return paymentOf(ctx, token, tx), nil
}

// Refund reverses or nullifies a committed transaction
// (POST /transactions/{token}/refunds). A zero amount refunds what remains,
// read from the status first. Transbank answers REVERSED for a full
// reversal and NULLIFIED for a (partial) nullification. A retry with the
// same IdempotencyKey within an hour returns the first refund.
func (p *transbankProvider) Refund(ctx context.Context, req payments.RefundRequest) (payments.Refund, error) {
	if req.ID == "" {
		return payments.Refund{}, provider.Invalid(errors.New("transbank: payment id (token) is empty"))
	}
	if req.Amount.Amount < 0 || (req.Amount.Currency != "" && req.Amount.Currency != currency) {
		return payments.Refund{}, provider.Invalid(fmt.Errorf("transbank: refund amount %s must be a positive %s amount", req.Amount, currency))
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return payments.Refund{}, err
	}
	run := func() (payments.Refund, error) {
		amount := req.Amount.Amount
		if amount == 0 {
			tx, err := c.status(ctx, req.ID)
			if err != nil {
				return payments.Refund{}, err
			}
			amount = tx.Amount
			if tx.Balance != nil {
				amount = *tx.Balance
			}
			if amount <= 0 {
				return payments.Refund{}, provider.Invalid(fmt.Errorf("transbank: refund: nothing left to refund on %s", req.ID))
			}
		}
		var out refundAnswer
		if err := c.do(ctx, "refund transaction", http.MethodPost, "/transactions/"+url.PathEscape(req.ID)+"/refunds", refundBody{Amount: amount}, &out); err != nil {
			return payments.Refund{}, err
		}
		if out.ResponseCode != nil && *out.ResponseCode != 0 {
			code := strconv.Itoa(*out.ResponseCode)
			return payments.Refund{}, provider.WithCode(provider.Permanent(fmt.Errorf("transbank: refund transaction: rejected with response_code %s", code)), code)
		}
		if out.NullifiedAmount != nil && *out.NullifiedAmount > 0 {
			amount = *out.NullifiedAmount
		}
		id := out.AuthorizationCode
		if id == "" {
			id = strings.ToLower(out.Type) + "_" + req.ID
		}
		return payments.Refund{ID: id, Amount: provider.Money{Amount: amount, Currency: currency}, Status: "succeeded"}, nil
	}
	if req.IdempotencyKey == "" {
		return run()
	}
	fingerprint := fmt.Sprintf("%s|%d", req.ID, req.Amount.Amount)
	return p.refunds.Do(ctx, memoKey(req.Tenant, c, req.IdempotencyKey), fingerprint, run)
}

// status reads a transaction (GET /transactions/{token}).
func (c *client) status(ctx context.Context, token string) (transaction, error) {
	var tx transaction
	err := c.do(ctx, "transaction status", http.MethodGet, "/transactions/"+url.PathEscape(token), nil, &tx)
	return tx, err
}

// paymentOf maps a commit or status answer:
//
//	INITIALIZED                          requires_action
//	AUTHORIZED/CAPTURED, response_code 0 succeeded
//	AUTHORIZED/CAPTURED, other code      failed, FailureCode = response_code
//	FAILED                               failed, FailureCode = response_code
//	REVERSED                             refunded (in full)
//	NULLIFIED                            refunded, or succeeded with
//	PARTIALLY_NULLIFIED                  AmountRefunded while a balance remains
//	ABORTED, TIMEOUT                     cancelled
//	anything else                        pending (logged)
func paymentOf(ctx context.Context, token string, tx transaction) payments.Payment {
	p := payments.Payment{
		ID:     token,
		Amount: provider.Money{Amount: tx.Amount, Currency: currency},
		Method: method(tx.PaymentTypeCode),
	}
	if t, err := time.Parse(time.RFC3339Nano, tx.TransactionDate); err == nil {
		p.CreatedAt = t
	}
	code := ""
	if tx.ResponseCode != nil {
		code = strconv.Itoa(*tx.ResponseCode)
	}
	refunded := func() {
		if tx.Balance != nil && *tx.Balance > 0 {
			p.Status, p.AmountRefunded = payments.StatusSucceeded, tx.Amount-*tx.Balance
			return
		}
		p.Status, p.AmountRefunded = payments.StatusRefunded, tx.Amount
	}
	switch status := strings.ToUpper(tx.Status); status {
	case "INITIALIZED":
		p.Status = payments.StatusRequiresAction
	case "AUTHORIZED", "CAPTURED":
		if code == "0" {
			p.Status = payments.StatusSucceeded
			break
		}
		p.Status, p.FailureCode = payments.StatusFailed, code
		if code == "" {
			p.FailureCode, code = "no_response_code", "missing"
		}
		p.FailureMessage = fmt.Sprintf("Transbank status %s with response_code %s", status, code)
	case "FAILED":
		p.Status, p.FailureCode = payments.StatusFailed, code
		if code == "" {
			p.FailureCode, code = "failed", "missing"
		}
		p.FailureMessage = "rejected by Transbank (response_code " + code + ")"
	case "REVERSED":
		p.Status, p.AmountRefunded = payments.StatusRefunded, tx.Amount
	case "NULLIFIED", "PARTIALLY_NULLIFIED":
		refunded()
	case "ABORTED", "TIMEOUT":
		p.Status, p.FailureCode = payments.StatusCancelled, strings.ToLower(status)
	default:
		provider.Log(ctx).Warn("transbank: unknown transaction status", "status", tx.Status, "token_suffix", suffix(token))
		p.Status = payments.StatusPending
	}
	return p
}

// method maps Webpay's payment_type_code: VD Redcompra debit, VP prepaid,
// and every credit variant (VN no installments, VC, SI, S2, NC
// installments) to "credit". Unknown codes are passed through in lower case.
func method(code string) string {
	switch strings.ToUpper(code) {
	case "":
		return ""
	case "VD":
		return "debit"
	case "VP":
		return "prepaid"
	case "VN", "VC", "SI", "S2", "NC":
		return "credit"
	}
	return strings.ToLower(code)
}

// buyOrder derives Transbank's buy_order (at most 26 characters) from the
// tenant's reference, or from fallback (the session id) when it is empty.
// A reference made only of ASCII letters, digits, '-' and '_' that fits is
// sent as it is. Otherwise other characters become '-', the result is cut
// to 17 characters and "-" plus the first 8 hex digits of the SHA-256 of
// the original reference are appended, so the mapping is deterministic and
// different references stay distinct. Those characters are a conservative
// subset of what Transbank documents as allowed.
func buyOrder(reference, fallback string) string {
	if reference == "" {
		reference = fallback
	}
	return fit(reference, maxBuyOrder)
}

// fit applies buyOrder's rule with limit max.
func fit(s string, max int) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, s)
	if clean == s && s != "" && len(s) <= max {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	tag := hex.EncodeToString(sum[:4])
	if len(clean) > max-len(tag)-1 {
		clean = clean[:max-len(tag)-1]
	}
	return clean + "-" + tag
}

// returnURL picks the request's ReturnURL or the tenant's return_url
// setting and checks Transbank's limits.
func returnURL(req payments.CreateRequest) (string, error) {
	back := strings.TrimSpace(req.ReturnURL)
	if back == "" {
		back = strings.TrimSpace(req.Tenant.Setting(fieldReturnURL))
	}
	if back == "" {
		return "", provider.Invalid(fmt.Errorf("transbank: a return URL is required (request ReturnURL or the %s setting)", fieldReturnURL))
	}
	u, err := url.Parse(back)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(back) > maxReturnURL {
		return "", provider.Invalid(fmt.Errorf("transbank: return URL must be an absolute http(s) URL of at most %d bytes", maxReturnURL))
	}
	return back, nil
}

// memoKey scopes an idempotency key to the tenant and its commerce code.
func memoKey(t provider.Tenant, c *client, idempotencyKey string) string {
	return t.ID() + "\x00" + c.commerceCode + "\x00" + idempotencyKey
}

// suffix returns the last 6 characters of a token, enough to find it in
// Transbank's portal without logging it whole.
func suffix(token string) string {
	if len(token) <= 6 {
		return token
	}
	return token[len(token)-6:]
}
