package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/mercadopago/sdk-go/pkg/preapproval"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Subscriptions are MercadoPago preapprovals, called through sdk-go's
// preapproval and invoice (authorized payments) clients, which hold the
// paths; the plugin's requester sends them to the tenant's base_url with
// the gateway's X-Idempotency-Key on writes:
//
//	POST /preapproval                   CreateSubscription
//	GET  /preapproval/{id}              GetSubscription, webhooks
//	PUT  /preapproval/{id}              CancelSubscription ({"status":"cancelled"})
//	GET  /authorized_payments/{id}      webhooks (one charge of a preapproval)
//
// The wire names the plugin relies on are the constants below and the
// sdk's JSON tags (preapproval.Request, preapproval.Response,
// invoice.Response).

var _ payments.Subscriber = (*mercadoPago)(nil)

// Preapproval statuses.
const (
	preapprovalPending    = "pending"
	preapprovalAuthorized = "authorized"
	preapprovalPaused     = "paused"
	preapprovalCancelled  = "cancelled"
	preapprovalFinished   = "finished" // reached its end_date
)

// auto_recurring.frequency_type values. MercadoPago knows only days and
// months: a week is 7 days, a year 12 months.
const (
	frequencyDays   = "days"
	frequencyMonths = "months"
)

// CreateSubscription creates a preapproval in status pending: the customer
// authorizes it at MercadoPago (RedirectURL, the init_point) and comes back
// to req.ReturnURL (back_url). reason is req.Description, else
// req.Reference; external_reference is req.SubscriptionID, so webhooks name
// the gateway's subscription; payer_email is the customer's email, which
// MercadoPago requires. The plan is req.Plan.PlanID (preapproval_plan_id)
// or auto_recurring: the amount in major units every IntervalCount
// (default 1) Intervals. req.IdempotencyKey is sent as X-Idempotency-Key.
func (*mercadoPago) CreateSubscription(ctx context.Context, req payments.SubscriptionRequest) (payments.Subscription, error) {
	if req.IdempotencyKey == "" {
		return payments.Subscription{}, provider.Invalid(fmt.Errorf("mercadopago: subscription: idempotency key is empty"))
	}
	body := preapproval.Request{
		Reason:            firstOf(req.Description, req.Reference, "Subscription"),
		ExternalReference: req.SubscriptionID,
		PayerEmail:        strings.TrimSpace(req.Customer.Email),
		BackURL:           req.ReturnURL,
		Status:            preapprovalPending,
	}
	if body.PayerEmail == "" {
		return payments.Subscription{}, provider.Invalid(fmt.Errorf("mercadopago: subscription: MercadoPago needs the customer's email (payer_email)"))
	}
	if req.ReturnURL == "" {
		return payments.Subscription{}, provider.Invalid(fmt.Errorf("mercadopago: subscription: a return URL is required (back_url: the customer authorizes at MercadoPago)"))
	}
	if err := checkReturnURL(req.ReturnURL); err != nil {
		return payments.Subscription{}, err
	}
	if req.Plan.PlanID != "" {
		body.PreapprovalPlanID = req.Plan.PlanID
	} else {
		recurring, err := autoRecurring(req.Plan)
		if err != nil {
			return payments.Subscription{}, err
		}
		body.AutoRecurring = recurring
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return payments.Subscription{}, err
	}
	ctx = withIdempotencyKey(ctx, req.IdempotencyKey)
	res, err := c.preapprovals.Create(ctx, body)
	if err != nil {
		return payments.Subscription{}, c.fail(ctx, "create preapproval", err)
	}
	if res == nil || res.ID == "" {
		return payments.Subscription{}, provider.Retryable(fmt.Errorf("mercadopago: create preapproval: response has no id"))
	}
	return subscriptionOf(res), nil
}

// autoRecurring converts an amount plan to MercadoPago's auto_recurring.
func autoRecurring(plan payments.Plan) (*preapproval.AutoRecurringRequest, error) {
	if err := plan.Amount.Validate(); err != nil {
		return nil, provider.Invalid(fmt.Errorf("mercadopago: subscription plan needs a plan id or an amount: %w", err))
	}
	n := plan.IntervalCount
	if n < 0 {
		return nil, provider.Invalid(fmt.Errorf("mercadopago: subscription interval count must not be negative, got %d", n))
	}
	if n == 0 {
		n = 1
	}
	out := &preapproval.AutoRecurringRequest{
		TransactionAmount: toMajor(plan.Amount.Amount, plan.Amount.Currency),
		CurrencyID:        plan.Amount.Currency,
	}
	switch plan.Interval {
	case payments.IntervalDay:
		out.Frequency, out.FrequencyType = n, frequencyDays
	case payments.IntervalWeek:
		out.Frequency, out.FrequencyType = 7*n, frequencyDays
	case payments.IntervalMonth:
		out.Frequency, out.FrequencyType = n, frequencyMonths
	case payments.IntervalYear:
		out.Frequency, out.FrequencyType = 12*n, frequencyMonths
	default:
		return nil, provider.Invalid(fmt.Errorf("mercadopago: subscription interval %q must be day, week, month or year", clip(string(plan.Interval))))
	}
	return out, nil
}

// GetSubscription reads a preapproval.
func (*mercadoPago) GetSubscription(ctx context.Context, req payments.GetRequest) (payments.Subscription, error) {
	if err := checkPreapprovalID(req.ID); err != nil {
		return payments.Subscription{}, err
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return payments.Subscription{}, err
	}
	res, err := c.preapprovals.Get(ctx, req.ID)
	if err != nil {
		return payments.Subscription{}, c.fail(ctx, "get preapproval", err)
	}
	return subscriptionOf(res), nil
}

// CancelSubscription cancels a preapproval (PUT with status cancelled);
// MercadoPago charges it no more. A preapproval MercadoPago refuses to
// update (HTTP 400) is read back: one already cancelled is reported
// cancelled, anything else returns the refusal. req.IdempotencyKey is sent
// as X-Idempotency-Key.
func (*mercadoPago) CancelSubscription(ctx context.Context, req payments.CancelRequest) (payments.Subscription, error) {
	if err := checkPreapprovalID(req.ID); err != nil {
		return payments.Subscription{}, err
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return payments.Subscription{}, err
	}
	res, err := c.preapprovals.Update(withIdempotencyKey(ctx, req.IdempotencyKey), req.ID, preapproval.UpdateRequest{Status: preapprovalCancelled})
	if err == nil {
		out := subscriptionOf(res)
		out.ID = req.ID
		if res == nil || res.Status == "" {
			// An answer without the preapproval: the update succeeded.
			out.Status, out.RedirectURL = payments.SubscriptionCancelled, ""
		}
		return out, nil
	}
	cerr := c.fail(ctx, "cancel preapproval", err)
	if provider.KindOf(cerr) != provider.KindInvalid {
		return payments.Subscription{}, cerr
	}
	if cur, gerr := c.preapprovals.Get(ctx, req.ID); gerr == nil && cur.Status == preapprovalCancelled {
		return subscriptionOf(cur), nil
	}
	return payments.Subscription{}, cerr
}

// preapprovalPattern matches preapproval ids (32 hex digits in practice)
// before they reach a URL path; the sdk does not escape path parameters.
var preapprovalPattern = regexp.MustCompile(`^[0-9A-Za-z_-]{1,64}$`)

func checkPreapprovalID(id string) error {
	if !preapprovalPattern.MatchString(id) {
		return provider.Invalid(fmt.Errorf("mercadopago: subscription id %q is not a MercadoPago preapproval id", clip(id)))
	}
	return nil
}

// subscriptionOf maps a preapproval. CurrentPeriodEnd is next_payment_date:
// the paid period ends when the next charge is due.
func subscriptionOf(p *preapproval.Response) payments.Subscription {
	if p == nil {
		return payments.Subscription{Status: payments.SubscriptionPending}
	}
	out := payments.Subscription{
		ID:               p.ID,
		Status:           subscriptionStatus(p.Status),
		CurrentPeriodEnd: utc(p.NextPaymentDate),
	}
	if out.Status == payments.SubscriptionPending {
		out.RedirectURL = firstOf(p.InitPoint, p.SandboxInitPoint)
	}
	return out
}

// subscriptionStatus maps a preapproval status to the catalog's.
func subscriptionStatus(s string) payments.SubscriptionStatus {
	switch s {
	case preapprovalAuthorized:
		return payments.SubscriptionActive
	case preapprovalPaused:
		return payments.SubscriptionPaused
	case preapprovalCancelled, preapprovalFinished:
		return payments.SubscriptionCancelled
	}
	// pending and anything newer than this plugin.
	return payments.SubscriptionPending
}
