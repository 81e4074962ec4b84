package main

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	stripe "github.com/stripe/stripe-go/v76"
)

// Metadata keys the plugin writes on every Stripe object it creates, so
// webhooks and the Stripe dashboard lead back to the gateway's payment.
const (
	metaPaymentID = "pipecore_payment_id"
	metaReference = "reference"
)

// Prefixes of the Stripe ids the plugin returns as payment ids.
const (
	prefixIntent  = "pi_"
	prefixSession = "cs_"
)

// CreatePayment creates a Checkout Session when req.ReturnURL is set (a
// redirect flow: the payment's RedirectURL is Stripe's hosted page) and a
// PaymentIntent otherwise (an embedded flow: the payment's ClientSecret is
// for Stripe Elements). req.IdempotencyKey is sent as Stripe's
// Idempotency-Key, so a retry returns the first call's object.
// req.ManualCapture creates the intent with capture_method=manual: the
// customer's confirmation only authorizes, and Capture takes the money.
func (*stripeProvider) CreatePayment(ctx context.Context, req payments.CreateRequest) (payments.Payment, error) {
	if err := req.Validate(); err != nil {
		return payments.Payment{}, err
	}
	c, common, err := open(ctx, req.Tenant, req.IdempotencyKey)
	if err != nil {
		return payments.Payment{}, err
	}
	meta := metadata(req)
	if req.ReturnURL != "" {
		return c.createSession(ctx, common, meta, req)
	}

	p := &stripe.PaymentIntentParams{
		Params:                  common,
		Amount:                  stripe.Int64(req.Amount.Amount),
		Currency:                stripe.String(strings.ToLower(req.Amount.Currency)),
		AutomaticPaymentMethods: &stripe.PaymentIntentAutomaticPaymentMethodsParams{Enabled: stripe.Bool(true)},
		Metadata:                meta,
	}
	if req.Description != "" {
		p.Description = stripe.String(req.Description)
	}
	if req.Customer.Email != "" {
		p.ReceiptEmail = stripe.String(req.Customer.Email)
	}
	if req.ManualCapture {
		p.CaptureMethod = stripe.String(string(stripe.PaymentIntentCaptureMethodManual))
	}
	pi, err := c.intents.New(p)
	if err != nil {
		return payments.Payment{}, c.fail(ctx, "create payment intent", err)
	}
	return intentPayment(pi), nil
}

func (c *client) createSession(ctx context.Context, common stripe.Params, meta map[string]string, req payments.CreateRequest) (payments.Payment, error) {
	back, err := returnURL(req.ReturnURL, "payment_id", req.PaymentID)
	if err != nil {
		return payments.Payment{}, err
	}
	name := req.Description
	if name == "" {
		name = req.Reference
	}
	if name == "" {
		name = "Payment"
	}
	p := &stripe.CheckoutSessionParams{
		Params: common,
		Mode:   stripe.String(string(stripe.CheckoutSessionModePayment)),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripe.String(strings.ToLower(req.Amount.Currency)),
				UnitAmount:  stripe.Int64(req.Amount.Amount),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String(name)},
			},
			Quantity: stripe.Int64(1),
		}},
		SuccessURL: stripe.String(back),
		CancelURL:  stripe.String(back),
		Metadata:   meta,
		// The PaymentIntent the session creates carries the same metadata,
		// so payment_intent.* webhooks can be matched too.
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{Metadata: maps.Clone(meta)},
	}
	if req.Reference != "" {
		p.ClientReferenceID = stripe.String(req.Reference)
	}
	if req.Description != "" {
		p.PaymentIntentData.Description = stripe.String(req.Description)
	}
	if req.ManualCapture {
		p.PaymentIntentData.CaptureMethod = stripe.String(string(stripe.PaymentIntentCaptureMethodManual))
	}
	if req.Customer.Email != "" {
		p.CustomerEmail = stripe.String(req.Customer.Email)
	}
	s, err := c.sessions.New(p)
	if err != nil {
		return payments.Payment{}, c.fail(ctx, "create checkout session", err)
	}
	out := sessionPayment(s)
	if out.Amount.Amount == 0 {
		// Stripe computes amount_total from the line items; fill it in from
		// the request when the response lacks it.
		out.Amount = req.Amount
	}
	return out, nil
}

// metadata returns the request's metadata plus the plugin's own keys, which
// win over a tenant key of the same name.
func metadata(req payments.CreateRequest) map[string]string {
	m := make(map[string]string, len(req.Metadata)+2)
	maps.Copy(m, req.Metadata)
	if req.PaymentID != "" {
		m[metaPaymentID] = req.PaymentID
	}
	if req.Reference != "" {
		m[metaReference] = req.Reference
	}
	return m
}

// returnURL validates the tenant's return URL and appends
// <param>=<id> (payment_id=pay_…, subscription_id=sub_…) to its query,
// keeping the query it already has. An empty id appends nothing.
func returnURL(raw, param, id string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", provider.Invalid(fmt.Errorf("stripe: return URL %q must be an absolute http(s) URL", raw))
	}
	if id != "" {
		kv := param + "=" + url.QueryEscape(id)
		if u.RawQuery == "" {
			u.RawQuery = kv
		} else {
			u.RawQuery += "&" + kv
		}
	}
	return u.String(), nil
}

// GetPayment reads a PaymentIntent ("pi_…") or a Checkout Session
// ("cs_…"), expanding the charge so refunds are visible.
func (*stripeProvider) GetPayment(ctx context.Context, req payments.GetRequest) (payments.Payment, error) {
	if err := checkID(req.ID, prefixIntent, prefixSession); err != nil {
		return payments.Payment{}, err
	}
	c, common, err := open(ctx, req.Tenant, "")
	if err != nil {
		return payments.Payment{}, err
	}
	if strings.HasPrefix(req.ID, prefixSession) {
		p := &stripe.CheckoutSessionParams{Params: common}
		p.AddExpand("payment_intent.latest_charge")
		s, err := c.sessions.Get(req.ID, p)
		if err != nil {
			return payments.Payment{}, c.fail(ctx, "get checkout session", err)
		}
		return sessionPayment(s), nil
	}
	p := &stripe.PaymentIntentParams{Params: common}
	p.AddExpand("latest_charge")
	pi, err := c.intents.Get(req.ID, p)
	if err != nil {
		return payments.Payment{}, c.fail(ctx, "get payment intent", err)
	}
	return intentPayment(pi), nil
}

// refundReasons are the reasons Stripe accepts on a refund; any other
// reason is kept in the refund's metadata instead.
var refundReasons = map[string]bool{
	string(stripe.RefundReasonDuplicate):           true,
	string(stripe.RefundReasonFraudulent):          true,
	string(stripe.RefundReasonRequestedByCustomer): true,
}

// Refund refunds a PaymentIntent, or the PaymentIntent a completed Checkout
// Session created. A zero req.Amount refunds what remains.
func (*stripeProvider) Refund(ctx context.Context, req payments.RefundRequest) (payments.Refund, error) {
	if err := checkID(req.ID, prefixIntent, prefixSession); err != nil {
		return payments.Refund{}, err
	}
	if req.Amount.Amount < 0 {
		return payments.Refund{}, provider.Invalid(fmt.Errorf("stripe: refund amount must not be negative, got %d", req.Amount.Amount))
	}
	c, common, err := open(ctx, req.Tenant, req.IdempotencyKey)
	if err != nil {
		return payments.Refund{}, err
	}
	intent := req.ID
	if strings.HasPrefix(intent, prefixSession) {
		if intent, err = c.sessionIntent(ctx, req.ID); err != nil {
			return payments.Refund{}, err
		}
	}
	p := &stripe.RefundParams{Params: common, PaymentIntent: stripe.String(intent)}
	if req.Amount.Amount > 0 {
		p.Amount = stripe.Int64(req.Amount.Amount)
	}
	switch {
	case refundReasons[req.Reason]:
		p.Reason = stripe.String(req.Reason)
	case req.Reason != "":
		p.Metadata = map[string]string{"reason": req.Reason}
	}
	r, err := c.refunds.New(p)
	if err != nil {
		return payments.Refund{}, c.fail(ctx, "create refund", err)
	}
	return payments.Refund{
		ID:     r.ID,
		Amount: provider.Money{Amount: r.Amount, Currency: strings.ToUpper(string(r.Currency))},
		Status: refundStatus(r.Status),
	}, nil
}

// sessionIntent returns the id of the PaymentIntent behind a Checkout
// Session; a session without one (not paid yet) cannot be refunded.
func (c *client) sessionIntent(ctx context.Context, id string) (string, error) {
	common, err := c.params(ctx, "")
	if err != nil {
		return "", err
	}
	s, err := c.sessions.Get(id, &stripe.CheckoutSessionParams{Params: common})
	if err != nil {
		return "", c.fail(ctx, "get checkout session", err)
	}
	if s.PaymentIntent == nil || s.PaymentIntent.ID == "" {
		return "", provider.Invalid(fmt.Errorf("stripe: checkout session %s has no payment intent to refund", id))
	}
	return s.PaymentIntent.ID, nil
}

func refundStatus(s stripe.RefundStatus) string {
	switch s {
	case stripe.RefundStatusSucceeded:
		return "succeeded"
	case stripe.RefundStatusFailed, stripe.RefundStatusCanceled:
		return "failed"
	}
	return "pending"
}

// Capture captures an authorized PaymentIntent (capture_method=manual). A
// zero req.Amount captures the full authorized amount.
func (*stripeProvider) Capture(ctx context.Context, req payments.CaptureRequest) (payments.Payment, error) {
	if err := checkID(req.ID, prefixIntent); err != nil {
		return payments.Payment{}, err
	}
	if req.Amount.Amount < 0 {
		return payments.Payment{}, provider.Invalid(fmt.Errorf("stripe: capture amount must not be negative, got %d", req.Amount.Amount))
	}
	c, common, err := open(ctx, req.Tenant, req.IdempotencyKey)
	if err != nil {
		return payments.Payment{}, err
	}
	p := &stripe.PaymentIntentCaptureParams{Params: common}
	if req.Amount.Amount > 0 {
		p.AmountToCapture = stripe.Int64(req.Amount.Amount)
	}
	p.AddExpand("latest_charge")
	pi, err := c.intents.Capture(req.ID, p)
	if err != nil {
		return payments.Payment{}, c.fail(ctx, "capture payment intent", err)
	}
	return intentPayment(pi), nil
}

// cancelReasons are the cancellation reasons Stripe accepts from an API
// caller; any other reason is not sent.
var cancelReasons = map[string]bool{
	string(stripe.PaymentIntentCancellationReasonAbandoned):           true,
	string(stripe.PaymentIntentCancellationReasonDuplicate):           true,
	string(stripe.PaymentIntentCancellationReasonFraudulent):          true,
	string(stripe.PaymentIntentCancellationReasonRequestedByCustomer): true,
}

// Cancel cancels a PaymentIntent that has not been captured.
func (*stripeProvider) Cancel(ctx context.Context, req payments.CancelRequest) (payments.Payment, error) {
	if err := checkID(req.ID, prefixIntent); err != nil {
		return payments.Payment{}, err
	}
	c, common, err := open(ctx, req.Tenant, req.IdempotencyKey)
	if err != nil {
		return payments.Payment{}, err
	}
	p := &stripe.PaymentIntentCancelParams{Params: common}
	if cancelReasons[req.Reason] {
		p.CancellationReason = stripe.String(req.Reason)
	}
	pi, err := c.intents.Cancel(req.ID, p)
	if err != nil {
		return payments.Payment{}, c.fail(ctx, "cancel payment intent", err)
	}
	return intentPayment(pi), nil
}

// checkID rejects payment ids that are not Stripe ids of the accepted
// kinds, before they reach a URL path.
func checkID(id string, prefixes ...string) error {
	return checkIDOf("payment", id, prefixes...)
}

// checkIDOf is checkID for an id of the gateway's kind ("payment",
// "subscription"), which the message names.
func checkIDOf(kind, id string, prefixes ...string) error {
	for _, p := range prefixes {
		if len(id) > len(p) && strings.HasPrefix(id, p) && !strings.ContainsAny(id, "/?#% ") {
			return nil
		}
	}
	return provider.Invalid(fmt.Errorf("stripe: %s id %q is not a %s id", kind, clip(id), strings.Join(prefixes, "… or ")+"…"))
}

// intentPayment maps a PaymentIntent, with latest_charge expanded when
// refunds matter, to the gateway's Payment.
func intentPayment(pi *stripe.PaymentIntent) payments.Payment {
	p := payments.Payment{
		ID:           pi.ID,
		Status:       intentStatus(pi.Status),
		Amount:       provider.Money{Amount: pi.Amount, Currency: strings.ToUpper(string(pi.Currency))},
		ClientSecret: pi.ClientSecret,
		Method:       method(pi.LatestCharge, pi.PaymentMethodTypes),
		CreatedAt:    unixTime(pi.Created),
	}
	if ch := pi.LatestCharge; ch != nil {
		p.AmountRefunded = ch.AmountRefunded
		if p.Status == payments.StatusSucceeded && (ch.Refunded || (ch.AmountRefunded > 0 && ch.AmountRefunded >= pi.Amount)) {
			p.Status = payments.StatusRefunded
		}
	}
	if e := pi.LastPaymentError; e != nil {
		p.FailureCode = string(e.Code)
		if e.DeclineCode != "" {
			p.FailureCode = string(e.DeclineCode)
		}
		p.FailureMessage = e.Msg
	}
	return p
}

// intentStatus maps a PaymentIntent status; see the README's table.
func intentStatus(s stripe.PaymentIntentStatus) payments.Status {
	switch s {
	case stripe.PaymentIntentStatusSucceeded:
		return payments.StatusSucceeded
	case stripe.PaymentIntentStatusProcessing, stripe.PaymentIntentStatusRequiresCapture:
		return payments.StatusPending
	case stripe.PaymentIntentStatusCanceled:
		return payments.StatusCancelled
	}
	// requires_payment_method, requires_confirmation, requires_action and
	// any status newer than this plugin: the customer still has to act.
	return payments.StatusRequiresAction
}

// sessionPayment maps a Checkout Session, with payment_intent (and its
// latest_charge) expanded when known, to the gateway's Payment.
func sessionPayment(s *stripe.CheckoutSession) payments.Payment {
	p := payments.Payment{
		ID:        s.ID,
		Amount:    provider.Money{Amount: s.AmountTotal, Currency: strings.ToUpper(string(s.Currency))},
		Method:    method(nil, s.PaymentMethodTypes),
		CreatedAt: unixTime(s.Created),
	}
	switch s.Status {
	case stripe.CheckoutSessionStatusComplete:
		if s.PaymentStatus == stripe.CheckoutSessionPaymentStatusUnpaid {
			// A delayed payment method (bank debit) is still settling.
			p.Status = payments.StatusPending
		} else {
			p.Status = payments.StatusSucceeded
		}
	case stripe.CheckoutSessionStatusExpired:
		p.Status = payments.StatusFailed
		p.FailureCode, p.FailureMessage = failureExpired, messageExpired
	default: // open
		p.Status = payments.StatusRequiresAction
		p.RedirectURL = s.URL
	}
	if pi := s.PaymentIntent; pi != nil && pi.Status != "" {
		// Expanded: the PaymentIntent knows refunds and the method used.
		ip := intentPayment(pi)
		p.AmountRefunded = ip.AmountRefunded
		if ip.Method != "" {
			p.Method = ip.Method
		}
		if p.Status == payments.StatusSucceeded && ip.Status == payments.StatusRefunded {
			p.Status = payments.StatusRefunded
		}
		if p.Amount.Amount == 0 {
			p.Amount = ip.Amount
		}
	}
	return p
}

// The failure of a Checkout Session that expired unpaid, in GetPayment and
// in webhooks.
const (
	failureExpired = "expired"
	messageExpired = "checkout session expired before the customer paid"
)

// method returns how the customer paid: the charge's payment method type,
// or the only payment method type allowed.
func method(ch *stripe.Charge, types []string) string {
	if ch != nil && ch.PaymentMethodDetails != nil {
		return methodOf(string(ch.PaymentMethodDetails.Type), types)
	}
	return methodOf("", types)
}

// methodOf returns used, the payment method type a charge used, or else the
// only type in types. With several allowed types and no charge the method
// is unknown: guessing the first would be wrong whenever the customer chose
// another.
func methodOf(used string, types []string) string {
	if used != "" {
		return used
	}
	if len(types) == 1 {
		return types[0]
	}
	return ""
}

func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}
