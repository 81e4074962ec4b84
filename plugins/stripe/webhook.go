package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

var _ provider.WebhookParser = (*stripeProvider)(nil)

// The Stripe event types the plugin turns into catalog events. Every other
// type is acknowledged with no event.
const (
	eventIntentSucceeded    = "payment_intent.succeeded"
	eventIntentFailed       = "payment_intent.payment_failed"
	eventIntentCanceled     = "payment_intent.canceled"
	eventSessionCompleted   = "checkout.session.completed"
	eventSessionAsyncPaid   = "checkout.session.async_payment_succeeded"
	eventSessionAsyncFailed = "checkout.session.async_payment_failed"
	eventSessionExpired     = "checkout.session.expired"
	eventChargeRefunded     = "charge.refunded"
	eventDisputeCreated     = "charge.dispute.created"

	eventInvoicePaid         = "invoice.paid"
	eventInvoiceFailed       = "invoice.payment_failed"
	eventSubscriptionDeleted = "customer.subscription.deleted"
)

// The catalog types the plugin emits (EVENTS.md).
const (
	catalogConfirmed = "payment.confirmed"
	catalogFailed    = "payment.failed"
	catalogCancelled = "payment.cancelled"
	catalogRefunded  = "payment.refunded"
	catalogDisputed  = "payment.disputed"

	catalogSubAuthorized = "subscription.authorized"
	catalogSubRenewed    = "subscription.renewed"
	catalogSubFailed     = "subscription.payment_failed"
	catalogSubCancelled  = "subscription.cancelled"
)

// errMalformedWebhook is in the chain of every error ParseWebhook returns:
// the body is not a Stripe event the plugin can read. Such errors are
// KindPermanent, so the gateway quarantines the webhook instead of retrying.
var errMalformedWebhook = errors.New("stripe: malformed webhook")

// ParseWebhook turns a Stripe event into at most one catalog event. The
// gateway has already verified Stripe-Signature over req.Body, so the
// signature is not checked again and the event's api_version is not
// enforced: only the fields the mapping reads must have the expected shape.
//
// Mapped types (README.md has the full table): payment_intent.succeeded,
// .payment_failed and .canceled; checkout.session.completed (paid or no
// payment required), .async_payment_succeeded, .async_payment_failed and
// .expired for payment-mode sessions; charge.refunded;
// charge.dispute.created; and the subscription events (see
// subscription_webhook.go). Every other type, a session completed but not
// yet paid, a session in setup mode and an event of
// another connected account than the tenant's account setting yield no
// event and a nil error: the webhook is acknowledged and nothing is
// emitted.
//
// A body that is not JSON, an event without id, type or created, or a
// mapped event whose data.object lacks an id, is of another object kind or
// has a field the mapping reads of the wrong JSON type is a KindPermanent
// error wrapping errMalformedWebhook. An ignored event needs only a string
// id and type. Error messages and log lines quote nothing of the body but
// ids, types and object kinds, clipped to 64 bytes.
//
// ParseWebhook makes no network call, keeps nothing and is safe for
// concurrent use. Event.ID is Stripe's evt_… id (stable across Stripe's
// retries); Event.Subject is data.object.id for payment events and the
// subscription's id for subscription events (the cs_… id for session
// events); Event.OccurredAt is created.
func (*stripeProvider) ParseWebhook(ctx context.Context, req provider.WebhookRequest) ([]provider.Event, error) {
	var ev stripeEvent
	if err := json.Unmarshal(req.Body, &ev); err != nil {
		return nil, provider.Permanent(fmt.Errorf("%w: %w", errMalformedWebhook, err))
	}
	if ev.ID == "" || ev.Type == "" {
		return nil, provider.Permanent(fmt.Errorf("%w: event has no id or no type", errMalformedWebhook))
	}
	log := provider.Log(ctx)
	mapObject, ok := eventMappers[ev.Type]
	if !ok {
		log.Debug("stripe webhook ignored", "event", clip(ev.ID), "type", clip(ev.Type))
		return nil, nil
	}
	if own := strings.TrimSpace(req.Tenant.Setting(fieldAccount)); own != "" && ev.Account != "" && ev.Account != own {
		// A Connect endpoint receives every connected account's events;
		// only the tenant's own account is the tenant's business.
		log.Warn("stripe webhook for another connected account ignored", "event", clip(ev.ID), "type", ev.Type, "account", clip(ev.Account))
		return nil, nil
	}
	var created int64
	if err := unmarshalPresent(ev.Created, &created); err != nil {
		return nil, ev.malformed(fmt.Errorf("created: %w", err))
	}
	if created <= 0 {
		return nil, ev.malformed(errors.New("no created time"))
	}
	var envelope struct {
		Object json.RawMessage `json:"object"`
	}
	if err := unmarshalPresent(ev.Data, &envelope); err != nil {
		return nil, ev.malformed(fmt.Errorf("data: %w", err))
	}
	if len(envelope.Object) == 0 || string(envelope.Object) == "null" {
		return nil, ev.malformed(errors.New("no data.object"))
	}
	out, err := mapObject(ev.Type, envelope.Object)
	if err != nil {
		return nil, ev.malformed(fmt.Errorf("data.object: %w", err))
	}
	if out == nil {
		log.Debug("stripe webhook needs no event", "event", clip(ev.ID), "type", ev.Type)
		return nil, nil
	}
	var payload any = out.data
	if out.sub != nil {
		payload = out.sub
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("stripe: encode event %q: %w", clip(ev.ID), err)
	}
	return []provider.Event{{
		ID:         ev.ID,
		Type:       out.typ,
		Subject:    out.subject,
		OccurredAt: unixTime(created),
		Data:       data,
	}}, nil
}

// eventMappers maps a Stripe event type to the function reading its
// data.object. A mapper returns nil when the event needs no catalog event.
var eventMappers = map[string]func(eventType string, object json.RawMessage) (*mapped, error){
	eventIntentSucceeded:    mapIntent,
	eventIntentFailed:       mapIntent,
	eventIntentCanceled:     mapIntent,
	eventSessionCompleted:   mapSession,
	eventSessionAsyncPaid:   mapSession,
	eventSessionAsyncFailed: mapSession,
	eventSessionExpired:     mapSession,
	eventChargeRefunded:     mapRefund,
	eventDisputeCreated:     mapDispute,

	eventInvoicePaid:         mapInvoice,
	eventInvoiceFailed:       mapInvoice,
	eventSubscriptionDeleted: mapSubscriptionDeleted,
}

// stripeEvent holds the fields of a Stripe event that every event is read
// for. created and data are read only for mapped types, so an event the
// plugin ignores is acknowledged whatever their shape (v2 "thin" events
// send created as a string).
type stripeEvent struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Account string          `json:"account"` // Connect: the connected account it comes from
	Created json.RawMessage `json:"created"`
	Data    json.RawMessage `json:"data"`
}

// unmarshalPresent unmarshals raw into v unless the field was absent.
func unmarshalPresent(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// malformed classifies err, found while reading a mapped event, as a
// permanent failure naming the event.
func (ev *stripeEvent) malformed(err error) error {
	return provider.Permanent(fmt.Errorf("%w: event %q (%s): %w", errMalformedWebhook, clip(ev.ID), ev.Type, err))
}

// mapped is the catalog event a Stripe event becomes: a payment event with
// data, or a subscription event with sub.
type mapped struct {
	typ     string
	subject string
	data    paymentData
	sub     *subscriptionData
}

// paymentData is the Data of a payment.* catalog event (EVENTS.md). Unknown
// fields are omitted, never sent empty; Status is always set. The field
// order is the JSON order, which keeps the golden files stable.
type paymentData struct {
	PaymentID         string `json:"payment_id,omitempty"`
	ProviderPaymentID string `json:"provider_payment_id,omitempty"`
	// ProviderPaymentIntentID is an extra field for Checkout Sessions: the
	// pi_… id behind the cs_… id the gateway stored.
	ProviderPaymentIntentID string `json:"provider_payment_intent_id,omitempty"`
	Status                  string `json:"status"`
	Amount                  *money `json:"amount,omitempty"`
	Reference               string `json:"reference,omitempty"`
	Method                  string `json:"method,omitempty"`
	FailureCode             string `json:"failure_code,omitempty"`
	FailureMessage          string `json:"failure_message,omitempty"`
	// RefundedAmount is the total refunded so far, in the minor unit of
	// Amount's currency (core's normalizer reads it as a number).
	RefundedAmount *int64 `json:"refunded_amount,omitempty"`
	RefundID       string `json:"refund_id,omitempty"`
	Partial        *bool  `json:"partial,omitempty"`
	DisputeID      string `json:"dispute_id,omitempty"`
	Reason         string `json:"reason,omitempty"`
}

// money is the catalog's money object. Stripe's lower-case currency is
// upper-cased.
type money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// moneyOf returns nil when Stripe sent no currency: an amount without one
// means nothing.
func moneyOf(amount int64, currency string) *money {
	if currency == "" {
		return nil
	}
	return &money{Amount: amount, Currency: strings.ToUpper(currency)}
}

// ours reads the gateway's ids from the metadata CreatePayment writes.
func (d *paymentData) ours(meta map[string]string) {
	d.PaymentID = meta[metaPaymentID]
	d.Reference = meta[metaReference]
}

// objectHeader is what every Stripe object has.
type objectHeader struct {
	ID     string `json:"id"`
	Object string `json:"object"`
}

// decodeObject unmarshals raw into v, whose header is h, and checks that it
// is a kind object with an id.
func decodeObject(raw json.RawMessage, kind string, v any, h *objectHeader) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return err
	}
	if h.Object != kind {
		return fmt.Errorf("object is %q, want %s", clip(h.Object), kind)
	}
	if h.ID == "" {
		return fmt.Errorf("%s has no id", kind)
	}
	return nil
}

// ref is a Stripe reference to another object: its id, the expanded object
// or null.
type ref struct{ ID string }

func (r *ref) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &r.ID)
	}
	var obj *objectHeader
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	if obj != nil {
		r.ID = obj.ID
	}
	return nil
}

// chargeRef is a reference to a charge that also keeps the payment method
// type when the charge is expanded (webhooks send the id only).
type chargeRef struct {
	ID     string
	Method string
}

func (r *chargeRef) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &r.ID)
	}
	var obj *struct {
		ID                   string         `json:"id"`
		PaymentMethodDetails *methodDetails `json:"payment_method_details"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	if obj != nil {
		r.ID = obj.ID
		r.Method = obj.PaymentMethodDetails.kind()
	}
	return nil
}

// methodDetails is a payment_method_details (or a payment_method) object,
// of which only the type is read.
type methodDetails struct {
	Type string `json:"type"`
}

func (m *methodDetails) kind() string {
	if m == nil {
		return ""
	}
	return m.Type
}

// paymentIntent holds the PaymentIntent fields the mapping reads.
type paymentIntent struct {
	objectHeader
	Amount             int64             `json:"amount"`
	Currency           string            `json:"currency"`
	Metadata           map[string]string `json:"metadata"`
	PaymentMethodTypes []string          `json:"payment_method_types"`
	LatestCharge       chargeRef         `json:"latest_charge"`
	CancellationReason string            `json:"cancellation_reason"`
	LastPaymentError   *struct {
		Code          string         `json:"code"`
		DeclineCode   string         `json:"decline_code"`
		Message       string         `json:"message"`
		PaymentMethod *methodDetails `json:"payment_method"`
	} `json:"last_payment_error"`
}

// mapIntent maps payment_intent.succeeded, .payment_failed and .canceled.
func mapIntent(eventType string, raw json.RawMessage) (*mapped, error) {
	var pi paymentIntent
	if err := decodeObject(raw, "payment_intent", &pi, &pi.objectHeader); err != nil {
		return nil, err
	}
	out := &mapped{subject: pi.ID, data: paymentData{
		ProviderPaymentID: pi.ID,
		Amount:            moneyOf(pi.Amount, pi.Currency),
		Method:            methodOf(pi.LatestCharge.Method, pi.PaymentMethodTypes),
	}}
	out.data.ours(pi.Metadata)
	switch eventType {
	case eventIntentSucceeded:
		out.typ, out.data.Status = catalogConfirmed, string(payments.StatusSucceeded)
	case eventIntentFailed:
		out.typ, out.data.Status = catalogFailed, string(payments.StatusFailed)
		if e := pi.LastPaymentError; e != nil {
			out.data.FailureCode = failureCode(e.Code, e.DeclineCode)
			out.data.FailureMessage = e.Message
			if m := e.PaymentMethod.kind(); m != "" {
				out.data.Method = m // the method that was tried
			}
		}
	case eventIntentCanceled:
		out.typ, out.data.Status = catalogCancelled, string(payments.StatusCancelled)
		out.data.FailureCode = pi.CancellationReason
	}
	return out, nil
}

// failureCode prefers the card network's decline code to Stripe's error
// code, as GetPayment does.
func failureCode(code, declineCode string) string {
	if declineCode != "" {
		return declineCode
	}
	return code
}

// checkoutSession holds the Checkout Session fields the mapping reads.
type checkoutSession struct {
	objectHeader
	Mode               string            `json:"mode"`
	PaymentStatus      string            `json:"payment_status"`
	AmountTotal        int64             `json:"amount_total"`
	Currency           string            `json:"currency"`
	Metadata           map[string]string `json:"metadata"`
	ClientReferenceID  string            `json:"client_reference_id"`
	PaymentIntent      ref               `json:"payment_intent"`
	PaymentMethodTypes []string          `json:"payment_method_types"`
	Subscription       ref               `json:"subscription"`
}

// mapSession maps the checkout.session.* events of payment-mode sessions.
// provider_payment_id is the cs_… id, which CreatePayment returned to the
// gateway. Subscription-mode sessions go to mapSubscriptionSession.
func mapSession(eventType string, raw json.RawMessage) (*mapped, error) {
	var s checkoutSession
	if err := decodeObject(raw, "checkout.session", &s, &s.objectHeader); err != nil {
		return nil, err
	}
	if s.Mode == "subscription" {
		return mapSubscriptionSession(eventType, &s), nil
	}
	if s.Mode != "payment" {
		return nil, nil // setup sessions take no payment
	}
	out := &mapped{subject: s.ID, data: paymentData{
		ProviderPaymentID:       s.ID,
		ProviderPaymentIntentID: s.PaymentIntent.ID,
		Amount:                  moneyOf(s.AmountTotal, s.Currency),
		Method:                  methodOf("", s.PaymentMethodTypes),
	}}
	out.data.ours(s.Metadata)
	if out.data.Reference == "" {
		out.data.Reference = s.ClientReferenceID
	}
	switch eventType {
	case eventSessionCompleted:
		if s.PaymentStatus == "unpaid" {
			// A delayed method (bank debit) is still settling; an
			// async_payment_* event follows.
			return nil, nil
		}
		out.typ, out.data.Status = catalogConfirmed, string(payments.StatusSucceeded)
	case eventSessionAsyncPaid:
		out.typ, out.data.Status = catalogConfirmed, string(payments.StatusSucceeded)
	case eventSessionAsyncFailed:
		out.typ, out.data.Status = catalogFailed, string(payments.StatusFailed)
	case eventSessionExpired:
		out.typ, out.data.Status = catalogFailed, string(payments.StatusFailed)
		out.data.FailureCode, out.data.FailureMessage = failureExpired, messageExpired
	}
	return out, nil
}

// charge holds the Charge fields the refund mapping reads.
type charge struct {
	objectHeader
	Amount               int64             `json:"amount"`
	AmountRefunded       int64             `json:"amount_refunded"`
	Currency             string            `json:"currency"`
	Refunded             bool              `json:"refunded"`
	PaymentIntent        ref               `json:"payment_intent"`
	Metadata             map[string]string `json:"metadata"`
	PaymentMethodDetails *methodDetails    `json:"payment_method_details"`
	// Refunds is only present for webhook endpoints on API versions before
	// 2022-11-15; newer versions do not expand it.
	Refunds *struct {
		Data []struct {
			ID      string `json:"id"`
			Created int64  `json:"created"`
		} `json:"data"`
	} `json:"refunds"`
}

// mapRefund maps charge.refunded. provider_payment_id is the charge's
// PaymentIntent, or the charge itself when it has none (Charges API).
func mapRefund(_ string, raw json.RawMessage) (*mapped, error) {
	var ch charge
	if err := decodeObject(raw, "charge", &ch, &ch.objectHeader); err != nil {
		return nil, err
	}
	full := ch.Refunded || (ch.Amount > 0 && ch.AmountRefunded >= ch.Amount)
	partial := !full
	out := &mapped{typ: catalogRefunded, subject: ch.ID, data: paymentData{
		ProviderPaymentID: ch.PaymentIntent.ID,
		Status:            string(payments.StatusSucceeded),
		Amount:            moneyOf(ch.Amount, ch.Currency),
		Method:            ch.PaymentMethodDetails.kind(),
		RefundedAmount:    &ch.AmountRefunded,
		Partial:           &partial,
	}}
	if out.data.ProviderPaymentID == "" {
		out.data.ProviderPaymentID = ch.ID
	}
	if full {
		out.data.Status = string(payments.StatusRefunded)
	}
	out.data.ours(ch.Metadata)
	if ch.Refunds != nil {
		// The newest refund caused this event; Stripe lists newest first,
		// so the first of equal times wins.
		var newest int64
		for _, r := range ch.Refunds.Data {
			if r.ID != "" && (out.data.RefundID == "" || r.Created > newest) {
				out.data.RefundID, newest = r.ID, r.Created
			}
		}
	}
	return out, nil
}

// dispute holds the Dispute fields the mapping reads.
type dispute struct {
	objectHeader
	Amount               int64          `json:"amount"`
	Currency             string         `json:"currency"`
	Reason               string         `json:"reason"`
	Charge               ref            `json:"charge"`
	PaymentIntent        ref            `json:"payment_intent"`
	PaymentMethodDetails *methodDetails `json:"payment_method_details"`
}

// mapDispute maps charge.dispute.created. The dispute carries no metadata
// of the payment, so payment_id and reference are unknown here; amount is
// the disputed amount.
func mapDispute(_ string, raw json.RawMessage) (*mapped, error) {
	var d dispute
	if err := decodeObject(raw, "dispute", &d, &d.objectHeader); err != nil {
		return nil, err
	}
	out := &mapped{typ: catalogDisputed, subject: d.ID, data: paymentData{
		ProviderPaymentID: d.PaymentIntent.ID,
		// The money was taken: the payment stays succeeded while the
		// dispute runs.
		Status:    string(payments.StatusSucceeded),
		Amount:    moneyOf(d.Amount, d.Currency),
		Method:    d.PaymentMethodDetails.kind(),
		DisputeID: d.ID,
		Reason:    d.Reason,
	}}
	if out.data.ProviderPaymentID == "" {
		out.data.ProviderPaymentID = d.Charge.ID
	}
	return out, nil
}

// maxClip bounds any value of the body quoted in an error.
const maxClip = 64

// clip shortens s to maxClip bytes for an error message.
func clip(s string) string {
	if len(s) <= maxClip {
		return s
	}
	return s[:maxClip] + "…"
}
