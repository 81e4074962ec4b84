package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	stripe "github.com/stripe/stripe-go/v76"
)

var _ payments.Subscriber = (*stripeProvider)(nil)

// metaSubscriptionID is the metadata key carrying the gateway's
// subscription id ("sub_…") on the Checkout Session and, through
// subscription_data, on the Stripe Subscription it creates; Stripe copies a
// subscription's metadata onto its invoices (subscription_details), so every
// subscription webhook can name the gateway's subscription.
const metaSubscriptionID = "pipecore_subscription_id"

// prefixSubscription is the prefix of Stripe Subscription ids. (The
// gateway's own subscription ids share it; the plugin only ever receives
// Stripe's.)
const prefixSubscription = "sub_"

// CreateSubscription starts a subscription with a Checkout Session in
// subscription mode: the customer authorizes it on Stripe's hosted page
// (RedirectURL) and Stripe creates the Subscription when the session
// completes. The returned ID is the session's cs_… id, which
// GetSubscription and CancelSubscription accept, and Status is pending.
//
// The line item is req.Plan.PlanID as a Stripe price (price_…, or a legacy
// plan_… id), or, without one, an inline price of req.Plan.Amount every
// IntervalCount (default 1) Intervals. req.ReturnURL is required: it is the
// success and cancel URL, with subscription_id=<req.SubscriptionID>
// appended. req.IdempotencyKey is sent as Stripe's Idempotency-Key, so a
// retry returns the first call's session.
func (*stripeProvider) CreateSubscription(ctx context.Context, req payments.SubscriptionRequest) (payments.Subscription, error) {
	item, err := lineItem(req)
	if err != nil {
		return payments.Subscription{}, err
	}
	if req.IdempotencyKey == "" {
		return payments.Subscription{}, provider.Invalid(fmt.Errorf("stripe: subscription: idempotency key is empty"))
	}
	if req.ReturnURL == "" {
		return payments.Subscription{}, provider.Invalid(fmt.Errorf("stripe: subscription: a return URL is required (the customer authorizes on Stripe Checkout)"))
	}
	back, err := returnURL(req.ReturnURL, "subscription_id", req.SubscriptionID)
	if err != nil {
		return payments.Subscription{}, err
	}
	c, common, err := open(ctx, req.Tenant, req.IdempotencyKey)
	if err != nil {
		return payments.Subscription{}, err
	}
	meta := map[string]string{}
	if req.SubscriptionID != "" {
		meta[metaSubscriptionID] = req.SubscriptionID
	}
	if req.Reference != "" {
		meta[metaReference] = req.Reference
	}
	p := &stripe.CheckoutSessionParams{
		Params:     common,
		Mode:       stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		LineItems:  []*stripe.CheckoutSessionLineItemParams{item},
		SuccessURL: stripe.String(back),
		CancelURL:  stripe.String(back),
		Metadata:   meta,
		// The Subscription the session creates carries the same metadata,
		// and its invoices a snapshot of it, so invoice.* and
		// customer.subscription.* webhooks can be matched too.
		SubscriptionData: &stripe.CheckoutSessionSubscriptionDataParams{Metadata: maps.Clone(meta)},
	}
	if req.SubscriptionID != "" {
		p.ClientReferenceID = stripe.String(req.SubscriptionID)
	}
	if req.Description != "" {
		p.SubscriptionData.Description = stripe.String(req.Description)
	}
	if req.Customer.Email != "" {
		p.CustomerEmail = stripe.String(req.Customer.Email)
	}
	s, err := c.sessions.New(p)
	if err != nil {
		return payments.Subscription{}, c.fail(ctx, "create subscription checkout session", err)
	}
	return sessionSubscription(s), nil
}

// lineItem validates req.Plan and returns the session's one line item.
func lineItem(req payments.SubscriptionRequest) (*stripe.CheckoutSessionLineItemParams, error) {
	plan := req.Plan
	if plan.PlanID != "" {
		return &stripe.CheckoutSessionLineItemParams{Price: stripe.String(plan.PlanID), Quantity: stripe.Int64(1)}, nil
	}
	if err := plan.Amount.Validate(); err != nil {
		return nil, provider.Invalid(fmt.Errorf("stripe: subscription plan needs a plan id or an amount: %w", err))
	}
	switch plan.Interval {
	case payments.IntervalDay, payments.IntervalWeek, payments.IntervalMonth, payments.IntervalYear:
	default:
		return nil, provider.Invalid(fmt.Errorf("stripe: subscription interval %q must be day, week, month or year", clip(string(plan.Interval))))
	}
	count := int64(plan.IntervalCount)
	if count < 0 {
		return nil, provider.Invalid(fmt.Errorf("stripe: subscription interval count must not be negative, got %d", count))
	}
	if count == 0 {
		count = 1
	}
	name := req.Description
	if name == "" {
		name = req.Reference
	}
	if name == "" {
		name = "Subscription"
	}
	return &stripe.CheckoutSessionLineItemParams{
		PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
			Currency:    stripe.String(strings.ToLower(plan.Amount.Currency)),
			UnitAmount:  stripe.Int64(plan.Amount.Amount),
			ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String(name)},
			Recurring: &stripe.CheckoutSessionLineItemPriceDataRecurringParams{
				Interval:      stripe.String(string(plan.Interval)),
				IntervalCount: stripe.Int64(count),
			},
		},
		Quantity: stripe.Int64(1),
	}, nil
}

// GetSubscription reads a subscription by the id CreateSubscription
// returned (a Checkout Session, cs_…, read with its subscription expanded)
// or by a Stripe Subscription id (sub_…). A session in payment or setup
// mode is KindInvalid.
func (*stripeProvider) GetSubscription(ctx context.Context, req payments.GetRequest) (payments.Subscription, error) {
	if err := checkIDOf("subscription", req.ID, prefixSession, prefixSubscription); err != nil {
		return payments.Subscription{}, err
	}
	c, common, err := open(ctx, req.Tenant, "")
	if err != nil {
		return payments.Subscription{}, err
	}
	if strings.HasPrefix(req.ID, prefixSubscription) {
		sub, err := c.subs.Get(req.ID, &stripe.SubscriptionParams{Params: common})
		if err != nil {
			return payments.Subscription{}, c.fail(ctx, "get subscription", err)
		}
		return subscriptionOf(sub), nil
	}
	s, err := c.subscriptionSession(ctx, common, req.ID)
	if err != nil {
		return payments.Subscription{}, err
	}
	return sessionSubscription(s), nil
}

// subscriptionSession reads a subscription-mode Checkout Session with its
// Subscription expanded.
func (c *client) subscriptionSession(ctx context.Context, common stripe.Params, id string) (*stripe.CheckoutSession, error) {
	p := &stripe.CheckoutSessionParams{Params: common}
	p.AddExpand("subscription")
	s, err := c.sessions.Get(id, p)
	if err != nil {
		return nil, c.fail(ctx, "get subscription checkout session", err)
	}
	if s.Mode != "" && s.Mode != stripe.CheckoutSessionModeSubscription {
		return nil, provider.Invalid(fmt.Errorf("stripe: checkout session %s is in %s mode, not a subscription", clip(id), clip(string(s.Mode))))
	}
	return s, nil
}

// CancelSubscription stops a subscription at once. For a Checkout Session
// id it reads the session first: an open session is expired (the customer
// can no longer subscribe through it), an expired one is already
// cancelled, and a completed one has its Subscription cancelled. A sub_…
// id is cancelled directly (DELETE /v1/subscriptions/{id}, which ends the
// subscription immediately, without proration or a final invoice). The
// result keeps req.ID and reports status cancelled. req.IdempotencyKey is
// sent with the write (the DELETE of a session's subscription uses a key
// derived from it, see deleteKey). An expire that Stripe refuses because
// the session has just completed is followed by one more read.
func (*stripeProvider) CancelSubscription(ctx context.Context, req payments.CancelRequest) (payments.Subscription, error) {
	if err := checkIDOf("subscription", req.ID, prefixSession, prefixSubscription); err != nil {
		return payments.Subscription{}, err
	}
	c, write, err := open(ctx, req.Tenant, req.IdempotencyKey)
	if err != nil {
		return payments.Subscription{}, err
	}
	if strings.HasPrefix(req.ID, prefixSubscription) {
		return c.cancelSubscription(ctx, write, req.ID)
	}
	read, err := c.params(ctx, "")
	if err != nil {
		return payments.Subscription{}, err
	}
	// The DELETE gets a key of its own: Stripe keeps the answer to the
	// expire call under req.IdempotencyKey, refusals included, and would
	// reject that key on another endpoint.
	del, err := c.params(ctx, deleteKey(req.IdempotencyKey))
	if err != nil {
		return payments.Subscription{}, err
	}
	for attempt := 0; ; attempt++ {
		s, err := c.subscriptionSession(ctx, read, req.ID)
		if err != nil {
			return payments.Subscription{}, err
		}
		out := payments.Subscription{ID: req.ID, Status: payments.SubscriptionCancelled}
		switch s.Status {
		case stripe.CheckoutSessionStatusExpired:
			return out, nil
		case stripe.CheckoutSessionStatusComplete:
			sub := s.Subscription
			if sub == nil || sub.ID == "" {
				return payments.Subscription{}, provider.Invalid(fmt.Errorf("stripe: checkout session %s is complete but has no subscription to cancel", clip(req.ID)))
			}
			out.CurrentPeriodEnd = unixTime(sub.CurrentPeriodEnd)
			if subscriptionStatus(sub.Status) == payments.SubscriptionCancelled {
				return out, nil
			}
			got, err := c.cancelSubscription(ctx, del, sub.ID)
			if err != nil {
				return payments.Subscription{}, err
			}
			if !got.CurrentPeriodEnd.IsZero() {
				out.CurrentPeriodEnd = got.CurrentPeriodEnd
			}
			return out, nil
		}
		// Open: nobody has subscribed yet; expiring the session makes sure
		// nobody will.
		_, err = c.sessions.Expire(req.ID, &stripe.CheckoutSessionExpireParams{Params: write})
		if err == nil {
			return out, nil
		}
		err = c.fail(ctx, "expire subscription checkout session", err)
		if attempt > 0 || provider.KindOf(err) != provider.KindInvalid {
			return payments.Subscription{}, err
		}
		// Stripe expires open sessions only: the customer may have just
		// completed it, so read it again and cancel what it created.
	}
}

// deleteKey derives the idempotency key of the DELETE that cancels a
// session's subscription from the operation's key: key + ":delete", or
// its SHA-256 when that would pass Stripe's limit. Empty stays empty.
func deleteKey(key string) string {
	if key == "" {
		return ""
	}
	if k := key + ":delete"; len(k) <= maxIdempotencyKey {
		return k
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:]) + ":delete"
}

// cancelSubscription cancels a Stripe Subscription immediately. Stripe
// answers with the subscription, canceled.
func (c *client) cancelSubscription(ctx context.Context, common stripe.Params, id string) (payments.Subscription, error) {
	sub, err := c.subs.Cancel(id, &stripe.SubscriptionCancelParams{Params: common})
	if err != nil {
		return payments.Subscription{}, c.fail(ctx, "cancel subscription", err)
	}
	out := subscriptionOf(sub)
	if out.ID == "" {
		out.ID = id
	}
	// A successful DELETE has ended the subscription, whatever an older
	// snapshot in the answer says.
	out.Status = payments.SubscriptionCancelled
	return out, nil
}

// sessionSubscription maps a subscription-mode Checkout Session, with its
// subscription expanded when known, to the gateway's Subscription. The ID
// stays the session's.
func sessionSubscription(s *stripe.CheckoutSession) payments.Subscription {
	out := payments.Subscription{ID: s.ID}
	switch s.Status {
	case stripe.CheckoutSessionStatusExpired:
		// The customer never subscribed.
		out.Status = payments.SubscriptionCancelled
	case stripe.CheckoutSessionStatusComplete:
		if sub := s.Subscription; sub != nil && sub.Status != "" {
			out.Status = subscriptionStatus(sub.Status)
			out.CurrentPeriodEnd = unixTime(sub.CurrentPeriodEnd)
		} else if s.PaymentStatus == stripe.CheckoutSessionPaymentStatusUnpaid {
			// A delayed payment method is still settling.
			out.Status = payments.SubscriptionPending
		} else {
			out.Status = payments.SubscriptionActive
		}
	default: // open
		out.Status = payments.SubscriptionPending
		out.RedirectURL = s.URL
	}
	return out
}

// subscriptionOf maps a Stripe Subscription.
func subscriptionOf(sub *stripe.Subscription) payments.Subscription {
	return payments.Subscription{
		ID:               sub.ID,
		Status:           subscriptionStatus(sub.Status),
		CurrentPeriodEnd: unixTime(sub.CurrentPeriodEnd),
	}
}

// subscriptionStatus maps a Stripe Subscription status; see the README's
// table.
func subscriptionStatus(s stripe.SubscriptionStatus) payments.SubscriptionStatus {
	switch s {
	case stripe.SubscriptionStatusActive, stripe.SubscriptionStatusTrialing:
		return payments.SubscriptionActive
	case stripe.SubscriptionStatusPastDue, stripe.SubscriptionStatusUnpaid:
		return payments.SubscriptionPastDue
	case stripe.SubscriptionStatusPaused:
		return payments.SubscriptionPaused
	case stripe.SubscriptionStatusCanceled, stripe.SubscriptionStatusIncompleteExpired:
		return payments.SubscriptionCancelled
	}
	// incomplete (the first payment needs the customer) and any status
	// newer than this plugin.
	return payments.SubscriptionPending
}
