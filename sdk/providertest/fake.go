package providertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// FakePayments is an in-memory payments provider with real behaviour:
// idempotent creates, refunds that add up, capture and cancel, and a
// credential check. Gateway tests use it in place of a plugin; its Calls
// counter shows how many requests reached the "provider".
//
// Credentials: the tenant must carry the secret "api_key"; the value
// "bad" is rejected as unauthorized.
type FakePayments struct {
	// Name defaults to "fake".
	Name string
	// Fail, when set, is consulted before every operation; a non-nil
	// error is returned as is.
	Fail       func(op string, tenant provider.Tenant) error
	delay      atomic.Int64 // nanoseconds slept before every operation
	calls      atomic.Int64
	mu         sync.Mutex
	byKey      map[string]string // tenant+idempotency key -> payment id
	payments   map[string]*payments.Payment
	refunds    map[string]payments.Refund
	subs       map[string]*payments.Subscription
	lastReturn string
}

var (
	_ payments.Provider   = (*FakePayments)(nil)
	_ payments.Capturer   = (*FakePayments)(nil)
	_ payments.Canceler   = (*FakePayments)(nil)
	_ payments.Confirmer  = (*FakePayments)(nil)
	_ payments.Subscriber = (*FakePayments)(nil)
)

// Info implements provider.Provider.
func (f *FakePayments) Info() provider.Info {
	name := f.Name
	if name == "" {
		name = "fake"
	}
	return provider.Info{
		Name: name, Version: "1.0.0",
		Fields: []provider.Field{
			{Name: "api_key", Secret: true, Required: true, Doc: "API key"},
			{Name: "webhook_secret", Secret: true, Doc: "webhook signing secret"},
			{Name: "mode", Doc: "test or live"},
		},
		Webhook: &provider.WebhookSpec{Scheme: provider.SchemeHMACSHA256, Header: "X-Fake-Signature", SecretField: "webhook_secret"},
	}
}

// SetDelay makes every later operation wait d (honouring its context)
// before answering, as a slow or hung provider would. Zero removes it.
func (f *FakePayments) SetDelay(d time.Duration) { f.delay.Store(int64(d)) }

// Calls returns how many operations reached the fake.
func (f *FakePayments) Calls() int64 { return f.calls.Load() }

func (f *FakePayments) enter(ctx context.Context, op string, t provider.Tenant) error {
	f.calls.Add(1)
	if d := time.Duration(f.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return provider.Retryable(fmt.Errorf("fake: %s: %w", op, ctx.Err()))
		}
	}
	switch key := t.Secret("api_key"); {
	case key.IsZero():
		return provider.Unauthorized(errors.New("fake: api_key is not set"))
	case key.Reveal() == "bad":
		return provider.Unauthorized(errors.New("fake: api key rejected"))
	}
	if f.Fail != nil {
		if err := f.Fail(op, t); err != nil {
			return err
		}
	}
	f.mu.Lock()
	if f.payments == nil {
		f.byKey, f.payments, f.refunds = map[string]string{}, map[string]*payments.Payment{}, map[string]payments.Refund{}
		f.subs = map[string]*payments.Subscription{}
	}
	f.mu.Unlock()
	return nil
}

// CreatePayment implements payments.Provider.
func (f *FakePayments) CreatePayment(ctx context.Context, r payments.CreateRequest) (payments.Payment, error) {
	if err := r.Validate(); err != nil {
		return payments.Payment{}, err
	}
	if err := f.enter(ctx, "create", r.Tenant); err != nil {
		return payments.Payment{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastReturn = r.ReturnURL
	k := r.Tenant.ID() + "\x00" + r.IdempotencyKey
	if id, ok := f.byKey[k]; ok {
		return *f.payments[id], nil
	}
	sum := sha256.Sum256([]byte(k))
	p := &payments.Payment{
		ID: "fk_" + hex.EncodeToString(sum[:8]), Status: payments.StatusRequiresAction,
		Amount: r.Amount, ClientSecret: "fk_secret_" + hex.EncodeToString(sum[8:16]), CreatedAt: time.Now().UTC(),
	}
	if r.ReturnURL != "" {
		p.RedirectURL = "https://fake.example/checkout/" + p.ID
	}
	f.byKey[k] = p.ID
	f.payments[p.ID] = p
	return *p, nil
}

func (f *FakePayments) get(id string) (*payments.Payment, error) {
	p, ok := f.payments[id]
	if !ok {
		return nil, provider.Invalid(fmt.Errorf("fake: no such payment %q", id))
	}
	return p, nil
}

// GetPayment implements payments.Provider.
func (f *FakePayments) GetPayment(ctx context.Context, r payments.GetRequest) (payments.Payment, error) {
	if err := f.enter(ctx, "get", r.Tenant); err != nil {
		return payments.Payment{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.get(r.ID)
	if err != nil {
		return payments.Payment{}, err
	}
	return *p, nil
}

// Refund implements payments.Provider.
func (f *FakePayments) Refund(ctx context.Context, r payments.RefundRequest) (payments.Refund, error) {
	if err := f.enter(ctx, "refund", r.Tenant); err != nil {
		return payments.Refund{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if rf, ok := f.refunds[r.Tenant.ID()+"\x00"+r.IdempotencyKey]; ok {
		return rf, nil
	}
	p, err := f.get(r.ID)
	if err != nil {
		return payments.Refund{}, err
	}
	amount := r.Amount.Amount
	if amount == 0 {
		amount = p.Amount.Amount - p.AmountRefunded
	}
	if amount <= 0 || p.AmountRefunded+amount > p.Amount.Amount {
		return payments.Refund{}, provider.Invalid(fmt.Errorf("fake: refund of %d exceeds the refundable %d", amount, p.Amount.Amount-p.AmountRefunded))
	}
	p.AmountRefunded += amount
	if p.AmountRefunded == p.Amount.Amount {
		p.Status = payments.StatusRefunded
	}
	cp := *p
	rf := payments.Refund{ID: fmt.Sprintf("fkre_%d", len(f.refunds)+1), Amount: provider.Money{Amount: amount, Currency: p.Amount.Currency}, Status: "succeeded", Payment: &cp}
	f.refunds[r.Tenant.ID()+"\x00"+r.IdempotencyKey] = rf
	return rf, nil
}

// Capture implements payments.Capturer.
func (f *FakePayments) Capture(ctx context.Context, r payments.CaptureRequest) (payments.Payment, error) {
	return f.transition(ctx, "capture", r.Tenant, r.ID, payments.StatusSucceeded)
}

// Cancel implements payments.Canceler.
func (f *FakePayments) Cancel(ctx context.Context, r payments.CancelRequest) (payments.Payment, error) {
	return f.transition(ctx, "cancel", r.Tenant, r.ID, payments.StatusCancelled)
}

func (f *FakePayments) transition(ctx context.Context, op string, t provider.Tenant, id string, to payments.Status) (payments.Payment, error) {
	if err := f.enter(ctx, op, t); err != nil {
		return payments.Payment{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.get(id)
	if err != nil {
		return payments.Payment{}, err
	}
	p.Status = to
	return *p, nil
}

// Confirm implements payments.Confirmer as a redirect flow's commit: the
// token is the payment's id; a payment whose amount ends in 13 is
// rejected (failure code "rejected"), any other succeeds. Confirming
// again returns the same outcome.
func (f *FakePayments) Confirm(ctx context.Context, r payments.ConfirmRequest) (payments.Payment, error) {
	if err := f.enter(ctx, "confirm", r.Tenant); err != nil {
		return payments.Payment{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.get(r.Token)
	if err != nil {
		return payments.Payment{}, err
	}
	if p.Status == payments.StatusRequiresAction || p.Status == payments.StatusPending {
		if p.Amount.Amount%100 == 13 {
			p.Status, p.FailureCode = payments.StatusFailed, "rejected"
		} else {
			p.Status = payments.StatusSucceeded
		}
	}
	return *p, nil
}

// LastReturnURL returns the ReturnURL of the latest create (tests check
// which URL the gateway hands to providers).
func (f *FakePayments) LastReturnURL() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastReturn
}

// SetStatus changes a payment's status as the provider would on its own
// (a customer completing checkout).
func (f *FakePayments) SetStatus(id string, s payments.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.payments[id]; ok {
		p.Status = s
	}
}

// CreateSubscription implements payments.Subscriber: the subscription is
// pending with a RedirectURL until SetSubscriptionStatus moves it.
func (f *FakePayments) CreateSubscription(ctx context.Context, r payments.SubscriptionRequest) (payments.Subscription, error) {
	if r.Plan.PlanID == "" && r.Plan.Amount.Validate() != nil {
		return payments.Subscription{}, provider.Invalid(errors.New("fake: plan needs a plan id or an amount"))
	}
	if err := f.enter(ctx, "create_subscription", r.Tenant); err != nil {
		return payments.Subscription{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := r.Tenant.ID() + "\x00sub\x00" + r.IdempotencyKey
	if id, ok := f.byKey[k]; ok {
		return *f.subs[id], nil
	}
	sum := sha256.Sum256([]byte(k))
	sub := &payments.Subscription{ID: "fks_" + hex.EncodeToString(sum[:8]), Status: payments.SubscriptionPending}
	sub.RedirectURL = "https://fake.example/subscribe/" + sub.ID
	f.byKey[k] = sub.ID
	f.subs[sub.ID] = sub
	return *sub, nil
}

// GetSubscription implements payments.Subscriber.
func (f *FakePayments) GetSubscription(ctx context.Context, r payments.GetRequest) (payments.Subscription, error) {
	if err := f.enter(ctx, "get_subscription", r.Tenant); err != nil {
		return payments.Subscription{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sub, ok := f.subs[r.ID]
	if !ok {
		return payments.Subscription{}, provider.Invalid(fmt.Errorf("fake: no such subscription %q", r.ID))
	}
	return *sub, nil
}

// CancelSubscription implements payments.Subscriber.
func (f *FakePayments) CancelSubscription(ctx context.Context, r payments.CancelRequest) (payments.Subscription, error) {
	if err := f.enter(ctx, "cancel_subscription", r.Tenant); err != nil {
		return payments.Subscription{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sub, ok := f.subs[r.ID]
	if !ok {
		return payments.Subscription{}, provider.Invalid(fmt.Errorf("fake: no such subscription %q", r.ID))
	}
	sub.Status = payments.SubscriptionCancelled
	return *sub, nil
}

// SetSubscriptionStatus moves a subscription (as the provider would after
// the customer authorizes, a charge fails, ...).
func (f *FakePayments) SetSubscriptionStatus(id string, st payments.SubscriptionStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sub, ok := f.subs[id]; ok {
		sub.Status = st
	}
}
