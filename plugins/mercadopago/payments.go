package main

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mercadopago/sdk-go/pkg/payment"
	"github.com/mercadopago/sdk-go/pkg/preference"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// metaPaymentID is the metadata key carrying the gateway's payment id on
// every preference and payment the plugin creates; MercadoPago copies a
// preference's metadata onto the payments made through it.
const metaPaymentID = "pipecore_payment_id"

// The request metadata keys direct mode reads. They are not forwarded as
// MercadoPago metadata.
const (
	metaCardToken       = "card_token"
	metaPaymentMethodID = "payment_method_id"
	metaInstallments    = "installments"
)

// CreatePayment creates a Checkout Pro preference (the default, and always
// when req.ReturnURL is set): the payment's ID is the preference id, its
// status requires_action and its RedirectURL the preference's init_point.
// With the tenant setting checkout=direct and no ReturnURL it creates a
// payment with POST /v1/payments, which needs a card token from
// MercadoPago's front-end SDK in req.Metadata["card_token"] and the
// payment method in req.Metadata["payment_method_id"]; without them the
// call is KindInvalid. req.IdempotencyKey is sent as X-Idempotency-Key.
func (*mercadoPago) CreatePayment(ctx context.Context, req payments.CreateRequest) (payments.Payment, error) {
	if err := req.Validate(); err != nil {
		return payments.Payment{}, err
	}
	if req.ManualCapture {
		return payments.Payment{}, fmt.Errorf("%s: manual capture (authorize now, capture later) is not offered: %w", "mercadopago", provider.ErrUnsupported)
	}
	mode := strings.TrimSpace(req.Tenant.Setting(fieldCheckout))
	if mode != "" && mode != checkoutPro && mode != checkoutDirect {
		return payments.Payment{}, provider.Invalid(fmt.Errorf("mercadopago: %s %q must be %q or %q", fieldCheckout, mode, checkoutPro, checkoutDirect))
	}
	if req.ReturnURL != "" {
		if err := checkReturnURL(req.ReturnURL); err != nil {
			return payments.Payment{}, err
		}
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return payments.Payment{}, err
	}
	ctx = withIdempotencyKey(ctx, req.IdempotencyKey)
	if mode == checkoutDirect && req.ReturnURL == "" {
		return c.createDirect(ctx, req)
	}
	return c.createPreference(ctx, req)
}

func (c *client) createPreference(ctx context.Context, req payments.CreateRequest) (payments.Payment, error) {
	title := req.Description
	if title == "" {
		title = req.Reference
	}
	if title == "" {
		title = "Payment"
	}
	p := preference.Request{
		Items: []preference.ItemRequest{{
			Title:      title,
			Quantity:   1,
			UnitPrice:  toMajor(req.Amount.Amount, req.Amount.Currency),
			CurrencyID: req.Amount.Currency,
		}},
		ExternalReference: req.Reference,
		Metadata:          metadata(req),
	}
	if req.ReturnURL != "" {
		p.BackURLs = &preference.BackURLsRequest{Success: req.ReturnURL, Failure: req.ReturnURL, Pending: req.ReturnURL}
	}
	if req.Customer.Email != "" || req.Customer.Name != "" {
		p.Payer = &preference.PayerRequest{Email: req.Customer.Email, Name: req.Customer.Name}
	}
	res, err := c.preferences.Create(ctx, p)
	if err != nil {
		return payments.Payment{}, c.fail(ctx, "create preference", err)
	}
	if res == nil || res.ID == "" {
		return payments.Payment{}, provider.Retryable(fmt.Errorf("mercadopago: create preference: response has no id"))
	}
	redirect := res.InitPoint
	if redirect == "" {
		redirect = res.SandboxInitPoint
	}
	return payments.Payment{
		ID:          res.ID,
		Status:      payments.StatusRequiresAction,
		Amount:      req.Amount,
		RedirectURL: redirect,
		CreatedAt:   utc(res.DateCreated),
	}, nil
}

func (c *client) createDirect(ctx context.Context, req payments.CreateRequest) (payments.Payment, error) {
	token, method := req.Metadata[metaCardToken], req.Metadata[metaPaymentMethodID]
	if token == "" || method == "" {
		return payments.Payment{}, provider.Invalid(fmt.Errorf(
			"mercadopago: checkout=direct without a return URL needs metadata %q (a card token from MercadoPago's front-end SDK) and %q", metaCardToken, metaPaymentMethodID))
	}
	installments := 1
	if s := req.Metadata[metaInstallments]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return payments.Payment{}, provider.Invalid(fmt.Errorf("mercadopago: metadata %q must be a positive integer", metaInstallments))
		}
		installments = n
	}
	p := payment.Request{
		TransactionAmount: toMajor(req.Amount.Amount, req.Amount.Currency),
		Token:             token,
		PaymentMethodID:   method,
		Installments:      installments,
		Description:       req.Description,
		ExternalReference: req.Reference,
		Metadata:          metadata(req),
	}
	if req.Customer.Email != "" {
		p.Payer = &payment.PayerRequest{Email: req.Customer.Email}
	}
	res, err := c.payments.Create(ctx, p)
	if err != nil {
		return payments.Payment{}, c.fail(ctx, "create payment", err)
	}
	out := paymentOf(res)
	if out.Amount.Currency == "" {
		out.Amount = req.Amount
	}
	return out, nil
}

// metadata returns the request's metadata, without the direct-mode keys,
// plus the gateway's payment id.
func metadata(req payments.CreateRequest) map[string]any {
	m := make(map[string]any, len(req.Metadata)+1)
	for k, v := range req.Metadata {
		switch k {
		case metaCardToken, metaPaymentMethodID, metaInstallments:
			continue
		}
		m[k] = v
	}
	if req.PaymentID != "" {
		m[metaPaymentID] = req.PaymentID
	}
	return m
}

func checkReturnURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return provider.Invalid(fmt.Errorf("mercadopago: return URL %q must be an absolute http(s) URL", raw))
	}
	return nil
}

// GetPayment reads a payment by its numeric id. A preference id (it
// contains "-") has no status of its own: it is reported as
// requires_action, and the payment id arrives with the webhook.
func (*mercadoPago) GetPayment(ctx context.Context, req payments.GetRequest) (payments.Payment, error) {
	if isPreferenceID(req.ID) {
		if _, err := newClient(req.Tenant); err != nil {
			return payments.Payment{}, err
		}
		return payments.Payment{ID: req.ID, Status: payments.StatusRequiresAction}, nil
	}
	id, err := paymentID(req.ID)
	if err != nil {
		return payments.Payment{}, err
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return payments.Payment{}, err
	}
	res, err := c.payments.Get(ctx, id)
	if err != nil {
		return payments.Payment{}, c.fail(ctx, "get payment", err)
	}
	return paymentOf(res), nil
}

// Refund refunds a payment, fully when req.Amount is zero, else partially.
// A preference id is resolved to its approved payment first (searched by
// external_reference and matched on metadata pipecore_payment_id); a
// preference nobody has paid yet is KindInvalid. req.IdempotencyKey is
// required and sent as X-Idempotency-Key, so a retry refunds once. A
// partial refund reads the payment first and is KindInvalid when
// req.Amount's currency is not the payment's.
func (*mercadoPago) Refund(ctx context.Context, req payments.RefundRequest) (payments.Refund, error) {
	if req.IdempotencyKey == "" {
		return payments.Refund{}, provider.Invalid(fmt.Errorf("mercadopago: refund: idempotency key is empty"))
	}
	if req.Amount.Amount < 0 {
		return payments.Refund{}, provider.Invalid(fmt.Errorf("mercadopago: refund amount must not be negative, got %d", req.Amount.Amount))
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return payments.Refund{}, err
	}
	var id int
	if isPreferenceID(req.ID) {
		if id, err = c.preferencePayment(ctx, req.ID); err != nil {
			return payments.Refund{}, err
		}
	} else if id, err = paymentID(req.ID); err != nil {
		return payments.Refund{}, err
	}
	ctx = withIdempotencyKey(ctx, req.IdempotencyKey)
	currency := req.Amount.Currency
	if req.Amount.Amount > 0 {
		if err := req.Amount.Validate(); err != nil {
			return payments.Refund{}, provider.Invalid(fmt.Errorf("mercadopago: refund: %w", err))
		}
		// MercadoPago takes a decimal amount in the payment's currency:
		// check the request is in it before converting.
		p, err := c.payments.Get(ctx, id)
		if err != nil {
			return payments.Refund{}, c.fail(ctx, "get payment", err)
		}
		if !strings.EqualFold(p.CurrencyID, currency) {
			return payments.Refund{}, provider.Invalid(fmt.Errorf("mercadopago: refund in %s of payment %d in %s", currency, id, clip(p.CurrencyID)))
		}
		r, err := c.refunds.CreatePartialRefund(ctx, id, toMajor(req.Amount.Amount, currency))
		if err != nil {
			return payments.Refund{}, c.fail(ctx, "create partial refund", err)
		}
		return payments.Refund{ID: strconv.Itoa(r.ID), Amount: provider.Money{Amount: toMinor(r.Amount, currency), Currency: currency}, Status: refundStatus(r.Status)}, nil
	}
	r, err := c.refunds.Create(ctx, id)
	if err != nil {
		return payments.Refund{}, c.fail(ctx, "create refund", err)
	}
	out := payments.Refund{ID: strconv.Itoa(r.ID), Status: refundStatus(r.Status)}
	// A full refund does not say the currency; read it from the payment.
	if p, err := c.payments.Get(ctx, id); err == nil {
		pm := paymentOf(p)
		out.Amount = provider.Money{Amount: toMinor(r.Amount, pm.Amount.Currency), Currency: pm.Amount.Currency}
		out.Payment = &pm
	} else {
		provider.Log(ctx).Info("mercadopago refund succeeded but the payment could not be read", "payment", id, "kind", provider.KindOf(classify("get payment", err, c.token)).String())
	}
	return out, nil
}

// preferencePayment finds the approved payment made through preference id.
func (c *client) preferencePayment(ctx context.Context, id string) (int, error) {
	pref, err := c.preferences.Get(ctx, id)
	if err != nil {
		return 0, c.fail(ctx, "get preference", err)
	}
	if pref.ExternalReference == "" {
		return 0, provider.Invalid(fmt.Errorf("mercadopago: preference %s has no external_reference to find its payment by", clip(id)))
	}
	want, _ := pref.Metadata[metaPaymentID].(string)
	res, err := c.payments.Search(ctx, payment.SearchRequest{Filters: map[string]string{"external_reference": pref.ExternalReference}})
	if err != nil {
		return 0, c.fail(ctx, "search payments", err)
	}
	for _, p := range res.Results {
		if got, _ := p.Metadata[metaPaymentID].(string); want != "" && got != want {
			continue
		}
		if p.Status == "approved" {
			return p.ID, nil
		}
	}
	return 0, provider.Invalid(fmt.Errorf("mercadopago: preference %s has no approved payment to refund", clip(id)))
}

func refundStatus(s string) string {
	switch s {
	case "approved":
		return "succeeded"
	case "rejected", "cancelled":
		return "failed"
	}
	return "pending"
}

// Cancel cancels a pending or in-process payment (PUT /v1/payments/{id}
// with status cancelled). A preference cannot be cancelled: KindInvalid.
func (*mercadoPago) Cancel(ctx context.Context, req payments.CancelRequest) (payments.Payment, error) {
	if isPreferenceID(req.ID) {
		return payments.Payment{}, provider.Invalid(fmt.Errorf("mercadopago: %s is a preference, not a payment; only payments can be cancelled", clip(req.ID)))
	}
	id, err := paymentID(req.ID)
	if err != nil {
		return payments.Payment{}, err
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return payments.Payment{}, err
	}
	res, err := c.payments.Cancel(withIdempotencyKey(ctx, req.IdempotencyKey), id)
	if err != nil {
		return payments.Payment{}, c.fail(ctx, "cancel payment", err)
	}
	return paymentOf(res), nil
}

// preferencePattern matches Checkout Pro preference ids,
// "<collector id>-<uuid>"; payment ids are numeric.
var preferencePattern = regexp.MustCompile(`^[0-9]+-[0-9A-Za-z-]+$`)

// isPreferenceID reports whether id looks like a preference id.
func isPreferenceID(id string) bool { return len(id) <= 128 && preferencePattern.MatchString(id) }

// paymentID parses a numeric payment id before it reaches a URL path.
func paymentID(s string) (int, error) {
	id, err := strconv.Atoi(s)
	if err != nil || id <= 0 || strings.HasPrefix(s, "+") {
		return 0, provider.Invalid(fmt.Errorf("mercadopago: payment id %q is not a numeric MercadoPago id or a preference id", clip(s)))
	}
	return id, nil
}

// paymentOf maps a MercadoPago payment to the gateway's Payment.
func paymentOf(p *payment.Response) payments.Payment {
	if p == nil {
		return payments.Payment{Status: payments.StatusPending}
	}
	cur := strings.ToUpper(p.CurrencyID)
	out := payments.Payment{
		ID:             strconv.Itoa(p.ID),
		Status:         paymentStatus(p.Status),
		Amount:         provider.Money{Amount: toMinor(p.TransactionAmount, cur), Currency: cur},
		AmountRefunded: toMinor(p.TransactionAmountRefunded, cur),
		Method:         method(p.PaymentTypeID),
		CreatedAt:      utc(p.DateCreated),
	}
	if out.Status == payments.StatusFailed {
		out.FailureCode = p.StatusDetail
		out.FailureMessage = "payment " + p.Status + ": " + p.StatusDetail
	}
	return out
}

// paymentStatus maps a MercadoPago payment status to the catalog's.
func paymentStatus(s string) payments.Status {
	switch s {
	case "approved":
		return payments.StatusSucceeded
	case "rejected":
		return payments.StatusFailed
	case "cancelled":
		return payments.StatusCancelled
	case "refunded", "charged_back":
		return payments.StatusRefunded
	}
	// pending, in_process, authorized, in_mediation and anything new.
	return payments.StatusPending
}

// method maps payment_type_id to the catalog's method words; unknown
// types pass through.
func method(typeID string) string {
	switch typeID {
	case "credit_card", "prepaid_card":
		return "card"
	case "debit_card":
		return "debit"
	case "account_money", "digital_wallet":
		return "wallet"
	}
	return typeID
}

// utc returns t in UTC, or the zero time.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
