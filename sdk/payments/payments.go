// Package payments defines the capability implemented by payment providers
// (Stripe, MercadoPago, Transbank Webpay Plus, ...).
//
// A plugin implements Provider; extras are optional interfaces found by type
// assertion: Capturer (separate authorization and capture), Confirmer
// (server-side commit after a redirect), Canceler and Subscriber
// (recurring billing).
package payments

import (
	"context"
	"fmt"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// Provider creates and inspects payments. Every method must be safe for
// concurrent use and must honour ctx's deadline.
type Provider interface {
	provider.Provider

	// CreatePayment starts a payment. Calls with the same IdempotencyKey
	// must return the same payment, never a second charge.
	CreatePayment(ctx context.Context, req CreateRequest) (Payment, error)
	// GetPayment returns the provider's current view of a payment.
	GetPayment(ctx context.Context, req GetRequest) (Payment, error)
	// Refund refunds all or part of a payment. Calls with the same
	// IdempotencyKey must refund once.
	Refund(ctx context.Context, req RefundRequest) (Refund, error)
}

// Capturer is implemented by providers that separate authorization and
// capture.
type Capturer interface {
	Capture(ctx context.Context, req CaptureRequest) (Payment, error)
}

// Confirmer is implemented by redirect flows that need a server-side commit
// after the customer returns (Transbank Webpay "commit").
type Confirmer interface {
	Confirm(ctx context.Context, req ConfirmRequest) (Payment, error)
}

// Canceler is implemented by providers that can cancel a payment before it
// is captured.
type Canceler interface {
	Cancel(ctx context.Context, req CancelRequest) (Payment, error)
}

// Status is the normalised state of a payment.
type Status string

// The payment statuses of the gateway's catalog.
const (
	StatusPending        Status = "pending"         // in progress at the provider
	StatusRequiresAction Status = "requires_action" // the customer must act (redirect, 3DS, payment method)
	StatusSucceeded      Status = "succeeded"       // money captured or authorized for good
	StatusFailed         Status = "failed"          // rejected, expired or aborted
	StatusCancelled      Status = "cancelled"       // cancelled before capture
	StatusRefunded       Status = "refunded"        // fully refunded
)

// Valid reports whether s is one of the catalog's statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusRequiresAction, StatusSucceeded, StatusFailed, StatusCancelled, StatusRefunded:
		return true
	}
	return false
}

// Customer is who pays, as the tenant described them. Every field is optional.
type Customer struct {
	Email string
	Phone string
	Name  string
}

// CreateRequest starts a payment.
type CreateRequest struct {
	Tenant provider.Tenant
	// IdempotencyKey is stable across retries of the same gateway
	// operation; pass it to the provider's idempotency mechanism.
	IdempotencyKey string
	// PaymentID is the gateway's id for the payment ("pay_…"); providers
	// store it in metadata so webhooks can be matched.
	PaymentID   string
	Amount      provider.Money
	Reference   string // the tenant's order id
	Description string
	Customer    Customer
	// ReturnURL is where redirect flows send the customer back. Empty
	// means an embedded flow (e.g. a client secret for Stripe Elements).
	ReturnURL string
	Metadata  map[string]string
	// ManualCapture asks for an authorization only: the money is taken
	// later with Capturer.Capture (or released with Cancel). A provider
	// without manual capture refuses it with provider.ErrUnsupported.
	ManualCapture bool
}

// Validate checks the fields every provider relies on.
func (r CreateRequest) Validate() error {
	if err := r.Amount.Validate(); err != nil {
		return provider.Invalid(fmt.Errorf("payments: %w", err))
	}
	if r.IdempotencyKey == "" {
		return provider.Invalid(fmt.Errorf("payments: idempotency key is empty"))
	}
	return nil
}

// GetRequest reads a payment.
type GetRequest struct {
	Tenant provider.Tenant
	// ID is the provider's payment id.
	ID string
}

// RefundRequest refunds a payment.
type RefundRequest struct {
	Tenant         provider.Tenant
	IdempotencyKey string
	// ID is the provider's payment id.
	ID string
	// Amount is the amount to refund; zero means the whole remaining amount.
	Amount provider.Money
	Reason string
}

// CaptureRequest captures an authorized payment.
type CaptureRequest struct {
	Tenant         provider.Tenant
	IdempotencyKey string
	ID             string
	// Amount to capture; zero means the full authorized amount.
	Amount provider.Money
}

// ConfirmRequest commits a redirect-flow payment after the customer returns.
type ConfirmRequest struct {
	Tenant         provider.Tenant
	IdempotencyKey string
	// Token is the provider's token for the transaction (Transbank token_ws).
	Token string
	// Params holds the return request's parameters, as received.
	Params map[string]string
}

// CancelRequest cancels a payment before capture.
type CancelRequest struct {
	Tenant         provider.Tenant
	IdempotencyKey string
	ID             string
	Reason         string
}

// Payment is the provider's view of a payment.
type Payment struct {
	// ID is the provider's id ("pi_…", "cs_…", a Transbank token).
	ID     string
	Status Status
	Amount provider.Money
	// AmountRefunded is the total refunded so far.
	AmountRefunded int64
	// RedirectURL is where to send the customer when Status is
	// StatusRequiresAction and the flow is a redirect.
	RedirectURL string
	// RedirectForm, when set, means the customer's browser must reach
	// RedirectURL by an HTML form POST of these fields (Transbank Webpay's
	// token_ws): the gateway then gives the tenant a URL of its own that
	// serves an auto-submitting form.
	RedirectForm map[string]string
	// ClientSecret lets a front end finish the payment in an embedded flow
	// (Stripe Elements). It is returned to the tenant, never logged.
	ClientSecret string
	// Method is how the customer paid ("card", "debit", "wallet"), if known.
	Method string
	// FailureCode and FailureMessage explain StatusFailed.
	FailureCode    string
	FailureMessage string
	CreatedAt      time.Time
}

// Refund is the provider's view of a refund.
type Refund struct {
	ID     string
	Amount provider.Money
	// Status is "succeeded", "pending" or "failed".
	Status string
	// Payment is the payment after the refund, when the provider returns it.
	Payment *Payment
}

// Reconciler is implemented by redirect flows whose payment only
// completes when the gateway acts after the customer returns (Transbank's
// commit). The gateway's reconciliation job calls Reconcile, instead of
// GetPayment, for a payment still awaiting the customer long after its
// creation: the provider completes what can be completed (commits an
// authorization the customer's browser never brought back) and returns
// the payment's outcome. Providers whose payments complete on their own
// (Stripe, MercadoPago) do not implement it.
type Reconciler interface {
	Reconcile(ctx context.Context, req GetRequest) (Payment, error)
}

// Subscriber is implemented by providers with recurring billing
// (MercadoPago preapproval, Stripe subscriptions). Renewals, failed
// charges and cancellations arrive as webhook events:
// subscription.authorized, subscription.renewed, subscription.payment_failed,
// subscription.cancelled.
type Subscriber interface {
	// CreateSubscription starts a subscription. When the customer must
	// authorize it at the provider, the result has a RedirectURL and
	// status pending. The same IdempotencyKey must yield the same one.
	CreateSubscription(ctx context.Context, req SubscriptionRequest) (Subscription, error)
	// GetSubscription reads a subscription by the provider's id.
	GetSubscription(ctx context.Context, req GetRequest) (Subscription, error)
	// CancelSubscription stops future charges.
	CancelSubscription(ctx context.Context, req CancelRequest) (Subscription, error)
}

// Interval is a billing period unit.
type Interval string

// The billing period units.
const (
	IntervalDay   Interval = "day"
	IntervalWeek  Interval = "week"
	IntervalMonth Interval = "month"
	IntervalYear  Interval = "year"
)

// Plan is what a subscription charges: a plan or price the tenant created
// at the provider (PlanID), or an amount every IntervalCount Intervals.
type Plan struct {
	PlanID        string
	Amount        provider.Money
	Interval      Interval
	IntervalCount int
}

// SubscriptionRequest starts a subscription.
type SubscriptionRequest struct {
	Tenant         provider.Tenant
	IdempotencyKey string
	// SubscriptionID is the gateway's id ("sub_…"); providers keep it in
	// metadata or as the external reference so webhooks can be matched.
	SubscriptionID string
	Plan           Plan
	Customer       Customer
	Reference      string
	Description    string
	// ReturnURL is where the customer goes after authorizing.
	ReturnURL string
}

// SubscriptionStatus is the normalised state of a subscription.
type SubscriptionStatus string

// The subscription statuses of the gateway's catalog.
const (
	SubscriptionPending   SubscriptionStatus = "pending"  // awaiting the customer's authorization
	SubscriptionActive    SubscriptionStatus = "active"   // authorized, charging
	SubscriptionPastDue   SubscriptionStatus = "past_due" // the last charge failed
	SubscriptionPaused    SubscriptionStatus = "paused"
	SubscriptionCancelled SubscriptionStatus = "cancelled"
)

// Valid reports whether s is one of the catalog's statuses.
func (s SubscriptionStatus) Valid() bool {
	switch s {
	case SubscriptionPending, SubscriptionActive, SubscriptionPastDue, SubscriptionPaused, SubscriptionCancelled:
		return true
	}
	return false
}

// Subscription is the provider's view of a subscription.
type Subscription struct {
	ID               string
	Status           SubscriptionStatus
	RedirectURL      string
	CurrentPeriodEnd time.Time
}
