package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mercadopago/sdk-go/pkg/invoice"
	"github.com/mercadopago/sdk-go/pkg/preapproval"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Subscription notifications are hints too: the plugin fetches what they
// point to.
//
//	subscription_preapproval, data.id = preapproval id → GET /preapproval/{id}
//	  authorized                      → subscription.authorized
//	  cancelled                       → subscription.cancelled
//	  finished (end_date reached)     → subscription.cancelled, reason finished
//	  pending, paused                 → no event
//	subscription_authorized_payment, data.id = authorized payment id
//	                                  → GET /authorized_payments/{id}, then GET /preapproval/{preapproval_id}
//	  payment approved, or processed without a payment status → subscription.renewed
//	  payment rejected or cancelled, or status recycling      → subscription.payment_failed
//	  scheduled, pending payments, cancelled charges          → no event
//
// Subject is the preapproval id (the id CreateSubscription returned);
// subscription_id is the preapproval's external_reference, the gateway's
// id. MercadoPago reports every charge of a preapproval as an authorized
// payment, the first one included, so the first charge is a
// subscription.renewed too.

// The catalog's subscription types (EVENTS.md).
const (
	catalogSubAuthorized = "subscription.authorized"
	catalogSubRenewed    = "subscription.renewed"
	catalogSubFailed     = "subscription.payment_failed"
	catalogSubCancelled  = "subscription.cancelled"
)

// Authorized payment (charge) statuses, and the payment statuses the
// mapping reads.
const (
	chargeProcessed = "processed"
	chargeRecycling = "recycling" // failed, MercadoPago retries later

	paymentApproved  = "approved"
	paymentRejected  = "rejected"
	paymentCancelled = "cancelled"
)

// subscriptionData is the Data of a subscription.* catalog event.
// Unknown fields are omitted, never sent empty.
type subscriptionData struct {
	// SubscriptionID is the gateway's id: the external_reference.
	SubscriptionID         string `json:"subscription_id,omitempty"`
	ProviderSubscriptionID string `json:"provider_subscription_id"`
	Status                 string `json:"status"`
	Amount                 *money `json:"amount,omitempty"`
	ProviderPaymentID      string `json:"provider_payment_id,omitempty"`
	// CurrentPeriodEnd is the preapproval's next_payment_date, RFC 3339
	// in UTC.
	CurrentPeriodEnd string `json:"current_period_end,omitempty"`
	Reason           string `json:"reason,omitempty"`
}

// parsePreapproval handles subscription_preapproval notifications.
// Event.ID is "preapproval:<id>:<status>": one event per state, however
// many notifications announce it.
func parsePreapproval(ctx context.Context, req provider.WebhookRequest, dataID string) ([]provider.Event, error) {
	if checkPreapprovalID(dataID) != nil {
		return nil, provider.Permanent(fmt.Errorf("%w: preapproval id %q is malformed", errMalformedWebhook, clip(dataID)))
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return nil, provider.Retryable(err)
	}
	p, err := c.preapprovals.Get(ctx, dataID)
	if err != nil {
		return nil, c.fetchFailed(ctx, "get preapproval", "preapproval "+dataID, err)
	}
	if p == nil {
		p = &preapproval.Response{}
	}
	d := subscriptionData{
		SubscriptionID:         p.ExternalReference,
		ProviderSubscriptionID: firstOf(p.ID, dataID),
		Status:                 string(subscriptionStatus(p.Status)),
	}
	var typ string
	switch p.Status {
	case preapprovalAuthorized:
		typ = catalogSubAuthorized
		d.Amount = recurringAmount(p.AutoRecurring)
		d.CurrentPeriodEnd = rfc3339(p.NextPaymentDate)
	case preapprovalCancelled:
		typ = catalogSubCancelled
	case preapprovalFinished:
		typ, d.Reason = catalogSubCancelled, preapprovalFinished
	default:
		provider.Log(ctx).Debug("mercadopago webhook needs no event", "preapproval", clip(dataID), "status", clip(p.Status))
		return nil, nil
	}
	return subscriptionEvent("preapproval:"+d.ProviderSubscriptionID+":"+p.Status, typ, firstTime(p.LastModified, p.DateCreated), d)
}

// parseAuthorizedPayment handles subscription_authorized_payment
// notifications: one charge of a preapproval. The preapproval is read too,
// for its external_reference and, after a successful charge, its
// next_payment_date (current_period_end). Event.ID is
// "authorized_payment:<id>:<payment id>:<status>", so every attempt and
// outcome is one event.
func parseAuthorizedPayment(ctx context.Context, req provider.WebhookRequest, dataID string) ([]provider.Event, error) {
	if id, err := strconv.ParseInt(dataID, 10, 64); err != nil || id <= 0 || dataID[0] == '+' {
		return nil, provider.Permanent(fmt.Errorf("%w: authorized payment id %q is not numeric", errMalformedWebhook, clip(dataID)))
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return nil, provider.Retryable(err)
	}
	ap, err := c.authorized.Get(ctx, dataID)
	if err != nil {
		return nil, c.fetchFailed(ctx, "get authorized payment", "authorized payment "+dataID, err)
	}
	if ap == nil {
		ap = &invoice.Response{}
	}
	typ, status, reason := chargeOutcome(ap)
	if typ == "" {
		provider.Log(ctx).Debug("mercadopago webhook needs no event", "authorized_payment", dataID, "status", clip(ap.Status), "payment_status", clip(ap.Payment.Status))
		return nil, nil
	}
	if checkPreapprovalID(ap.PreapprovalID) != nil {
		provider.Log(ctx).Warn("mercadopago authorized payment names no preapproval; no event", "authorized_payment", dataID)
		return nil, nil
	}
	p, err := c.preapprovals.Get(ctx, ap.PreapprovalID)
	if err != nil {
		return nil, c.fetchFailed(ctx, "get preapproval", "authorized payment "+dataID, err)
	}
	if p == nil {
		p = &preapproval.Response{}
	}
	cur := strings.ToUpper(firstOf(ap.CurrencyID, p.AutoRecurring.CurrencyID))
	d := subscriptionData{
		SubscriptionID:         firstOf(ap.ExternalReference, p.ExternalReference),
		ProviderSubscriptionID: ap.PreapprovalID,
		Status:                 string(status),
		Reason:                 reason,
	}
	if typ == catalogSubRenewed {
		// After a charge, next_payment_date is the next charge: the end of
		// the period paid for. After a failure it is the retry date.
		d.CurrentPeriodEnd = rfc3339(p.NextPaymentDate)
	}
	if cur != "" && ap.TransactionAmount > 0 {
		d.Amount = &money{Amount: toMinor(ap.TransactionAmount, cur), Currency: cur}
	}
	paymentID := ""
	if ap.Payment.ID > 0 {
		paymentID = strconv.Itoa(ap.Payment.ID)
		d.ProviderPaymentID = paymentID
	}
	id := "authorized_payment:" + dataID + ":" + paymentID + ":" + firstOf(ap.Payment.Status, ap.Status)
	return subscriptionEvent(id, typ, firstTime(ap.LastModified, ap.DebitDate, ap.DateCreated), d)
}

// chargeOutcome maps an authorized payment to a catalog type, the
// subscription's status after it and a reason; "" when the charge needs no
// event yet.
func chargeOutcome(ap *invoice.Response) (typ string, status payments.SubscriptionStatus, reason string) {
	switch {
	case ap.Payment.Status == paymentApproved:
		return catalogSubRenewed, payments.SubscriptionActive, ""
	case ap.Payment.Status == paymentRejected || ap.Payment.Status == paymentCancelled:
		return catalogSubFailed, payments.SubscriptionPastDue, firstOf(ap.Payment.StatusDetail, ap.Payment.Status)
	case ap.Status == chargeRecycling:
		return catalogSubFailed, payments.SubscriptionPastDue, firstOf(ap.Payment.StatusDetail, chargeRecycling)
	case ap.Status == chargeProcessed && ap.Payment.Status == "":
		return catalogSubRenewed, payments.SubscriptionActive, ""
	}
	return "", "", ""
}

// recurringAmount is a preapproval's charge in minor units; nil without a
// currency.
func recurringAmount(r preapproval.AutoRecurringResponse) *money {
	if r.CurrencyID == "" || r.TransactionAmount <= 0 {
		return nil
	}
	cur := strings.ToUpper(r.CurrencyID)
	return &money{Amount: toMinor(r.TransactionAmount, cur), Currency: cur}
}

func subscriptionEvent(id, typ string, at time.Time, d subscriptionData) ([]provider.Event, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("mercadopago: encode event for preapproval %s: %w", clip(d.ProviderSubscriptionID), err)
	}
	return []provider.Event{{ID: id, Type: typ, Subject: d.ProviderSubscriptionID, OccurredAt: at, Data: data}}, nil
}

// rfc3339 formats t in UTC; "" for the zero time.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// firstTime returns the first non-zero time, in UTC.
func firstTime(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t.UTC()
		}
	}
	return time.Time{}
}
