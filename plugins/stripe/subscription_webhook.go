package main

import (
	"encoding/json"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
)

// Subscription webhooks. The gateway knows a subscription by the id
// CreateSubscription returned, the Checkout Session's cs_… id, and by its
// own id, which the plugin writes as metadata[pipecore_subscription_id] on
// the session and (subscription_data) on the Stripe Subscription; Stripe
// copies that metadata onto every invoice of the subscription
// (subscription_details). So:
//
//   - checkout.session.* events of subscription-mode sessions have Subject =
//     the cs_… id and provider_subscription_id = the sub_… id Stripe created;
//   - invoice.* and customer.subscription.* events have Subject = the sub_…
//     id (the session is not named there);
//   - every event carries subscription_id, the gateway's id, when the
//     metadata has it; the gateway matches on it first, then on Subject.
//
// Events:
//
//	checkout.session.completed (paid or no payment required) → subscription.authorized
//	checkout.session.async_payment_succeeded                 → subscription.authorized
//	checkout.session.async_payment_failed                    → subscription.payment_failed
//	checkout.session.expired                                 → subscription.cancelled (reason expired)
//	invoice.paid, billing_reason subscription_cycle          → subscription.renewed
//	invoice.payment_failed, except subscription_create       → subscription.payment_failed
//	customer.subscription.deleted                            → subscription.cancelled
//
// Other invoices (the first one, paid through Checkout; manual, update and
// threshold invoices; invoices of no subscription) and a session completed
// with a delayed payment still settling yield no event.

// subscriptionData is the Data of a subscription.* catalog event
// (EVENTS.md). Unknown fields are omitted, never sent empty; Status is
// always set. The field order is the JSON order, which keeps the golden
// files stable.
type subscriptionData struct {
	// SubscriptionID is the gateway's id, from the metadata.
	SubscriptionID         string `json:"subscription_id,omitempty"`
	ProviderSubscriptionID string `json:"provider_subscription_id,omitempty"`
	Status                 string `json:"status"`
	Amount                 *money `json:"amount,omitempty"`
	// ProviderPaymentID is the charge's PaymentIntent (pi_…), else its
	// charge, else the invoice.
	ProviderPaymentID string `json:"provider_payment_id,omitempty"`
	// CurrentPeriodEnd is RFC 3339, in UTC.
	CurrentPeriodEnd string `json:"current_period_end,omitempty"`
	Reason           string `json:"reason,omitempty"`
}

// The reasons of subscription events that Stripe does not word itself.
const (
	reasonSessionExpired = "expired"
	reasonAsyncFailed    = "async_payment_failed"
)

// mapSubscriptionSession maps the checkout.session.* events of a
// subscription-mode session; Subject is the cs_… id.
func mapSubscriptionSession(eventType string, s *checkoutSession) *mapped {
	d := &subscriptionData{
		SubscriptionID:         s.Metadata[metaSubscriptionID],
		ProviderSubscriptionID: s.Subscription.ID,
		Amount:                 moneyOf(s.AmountTotal, s.Currency),
	}
	out := &mapped{subject: s.ID, sub: d}
	switch eventType {
	case eventSessionCompleted:
		if s.PaymentStatus == "unpaid" {
			// A delayed method is settling; an async_payment_* event
			// follows.
			return nil
		}
		out.typ, d.Status = catalogSubAuthorized, string(payments.SubscriptionActive)
	case eventSessionAsyncPaid:
		out.typ, d.Status = catalogSubAuthorized, string(payments.SubscriptionActive)
	case eventSessionAsyncFailed:
		out.typ, d.Status, d.Reason = catalogSubFailed, string(payments.SubscriptionPastDue), reasonAsyncFailed
	case eventSessionExpired:
		// The customer never subscribed; nothing was charged.
		out.typ, d.Status, d.Reason = catalogSubCancelled, string(payments.SubscriptionCancelled), reasonSessionExpired
		d.Amount = nil
	default:
		return nil
	}
	return out
}

// subscriptionMeta is the metadata snapshot of a subscription on an
// invoice (API 2023-10-16: subscription_details; from 2025-03-31:
// parent.subscription_details, which also names the subscription).
type subscriptionMeta struct {
	Subscription ref               `json:"subscription"`
	Metadata     map[string]string `json:"metadata"`
}

// invoice holds the Invoice fields the subscription mapping reads.
type invoice struct {
	objectHeader
	BillingReason       string            `json:"billing_reason"`
	Subscription        ref               `json:"subscription"`
	SubscriptionDetails *subscriptionMeta `json:"subscription_details"`
	Parent              *struct {
		SubscriptionDetails *subscriptionMeta `json:"subscription_details"`
	} `json:"parent"`
	PaymentIntent ref    `json:"payment_intent"`
	Charge        ref    `json:"charge"`
	AmountPaid    int64  `json:"amount_paid"`
	AmountDue     int64  `json:"amount_due"`
	Currency      string `json:"currency"`
	Lines         *struct {
		Data []struct {
			Type   string `json:"type"`
			Period *struct {
				End int64 `json:"end"`
			} `json:"period"`
			// Metadata of a subscription line is the subscription's.
			Metadata map[string]string `json:"metadata"`
		} `json:"data"`
	} `json:"lines"`
}

// subscription returns the invoice's sub_… id and the gateway's id from
// the subscription metadata it carries.
func (inv *invoice) subscription() (providerID, gatewayID string) {
	providerID = inv.Subscription.ID
	for _, m := range []*subscriptionMeta{inv.SubscriptionDetails, inv.parentDetails()} {
		if m == nil {
			continue
		}
		if providerID == "" {
			providerID = m.Subscription.ID
		}
		if gatewayID == "" {
			gatewayID = m.Metadata[metaSubscriptionID]
		}
	}
	if gatewayID == "" && inv.Lines != nil {
		for _, l := range inv.Lines.Data {
			if id := l.Metadata[metaSubscriptionID]; id != "" && (l.Type == "" || l.Type == "subscription") {
				gatewayID = id
				break
			}
		}
	}
	return providerID, gatewayID
}

func (inv *invoice) parentDetails() *subscriptionMeta {
	if inv.Parent == nil {
		return nil
	}
	return inv.Parent.SubscriptionDetails
}

// periodEnd is the latest end of the invoice's line periods: for a
// renewal, the end of the period just paid for.
func (inv *invoice) periodEnd() int64 {
	var end int64
	if inv.Lines != nil {
		for _, l := range inv.Lines.Data {
			if l.Period != nil && l.Period.End > end {
				end = l.Period.End
			}
		}
	}
	return end
}

// mapInvoice maps invoice.paid (renewals only) and invoice.payment_failed
// (except for the first invoice, which the customer pays on the Checkout
// page and can retry there) of subscription invoices; Subject is the sub_…
// id.
func mapInvoice(eventType string, raw json.RawMessage) (*mapped, error) {
	var inv invoice
	if err := decodeObject(raw, "invoice", &inv, &inv.objectHeader); err != nil {
		return nil, err
	}
	subID, gatewayID := inv.subscription()
	if subID == "" {
		return nil, nil // a one-off invoice
	}
	d := &subscriptionData{
		SubscriptionID:         gatewayID,
		ProviderSubscriptionID: subID,
		ProviderPaymentID:      firstOf(inv.PaymentIntent.ID, inv.Charge.ID, inv.ID),
		CurrentPeriodEnd:       rfc3339(inv.periodEnd()),
	}
	out := &mapped{subject: subID, sub: d}
	switch eventType {
	case eventInvoicePaid:
		if inv.BillingReason != stripeBillingCycle {
			return nil, nil
		}
		out.typ, d.Status = catalogSubRenewed, string(payments.SubscriptionActive)
		d.Amount = moneyOf(inv.AmountPaid, inv.Currency)
	case eventInvoiceFailed:
		if inv.BillingReason == stripeBillingCreate {
			return nil, nil
		}
		out.typ, d.Status = catalogSubFailed, string(payments.SubscriptionPastDue)
		d.Amount = moneyOf(inv.AmountDue, inv.Currency)
	default:
		return nil, nil
	}
	return out, nil
}

// The invoice billing reasons the mapping tells apart.
const (
	stripeBillingCycle  = "subscription_cycle"
	stripeBillingCreate = "subscription_create"
)

// subscriptionObject holds the Subscription fields the mapping reads.
type subscriptionObject struct {
	objectHeader
	Metadata            map[string]string `json:"metadata"`
	CancellationDetails *struct {
		Reason string `json:"reason"`
	} `json:"cancellation_details"`
}

// mapSubscriptionDeleted maps customer.subscription.deleted; Subject is
// the sub_… id and reason Stripe's cancellation_details.reason
// (cancellation_requested, payment_failed, payment_disputed).
func mapSubscriptionDeleted(_ string, raw json.RawMessage) (*mapped, error) {
	var sub subscriptionObject
	if err := decodeObject(raw, "subscription", &sub, &sub.objectHeader); err != nil {
		return nil, err
	}
	d := &subscriptionData{
		SubscriptionID:         sub.Metadata[metaSubscriptionID],
		ProviderSubscriptionID: sub.ID,
		Status:                 string(payments.SubscriptionCancelled),
	}
	if c := sub.CancellationDetails; c != nil {
		d.Reason = c.Reason
	}
	return &mapped{typ: catalogSubCancelled, subject: sub.ID, sub: d}, nil
}

// rfc3339 formats Unix seconds in UTC; "" for none.
func rfc3339(sec int64) string {
	if sec <= 0 {
		return ""
	}
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
