package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Settings, per tenant. The plugin has no credentials and calls no API.
const (
	// fieldMethod is "cash" (cash on delivery, the default) or
	// "bank_transfer"; it becomes Payment.Method.
	fieldMethod = "method"
	// fieldInstructionsURL is an optional page of the tenant's that tells
	// the buyer how to pay (bank account, what to have ready); the payment
	// comes back with it as RedirectURL, with ?reference=<order> appended.
	fieldInstructionsURL = "instructions_url"
)

const (
	methodCash     = "cash"
	methodTransfer = "bank_transfer"
)

// manual takes payments that an operator settles by hand: CreatePayment
// records a pending payment; Capture (or Confirm) marks it succeeded once
// the tenant confirms the money arrived; Cancel drops a pending one;
// Refund records money given back.
//
// State lives in memory, per tenant: a restart of the plugin forgets every
// payment (the gateway's own store keeps its copy). All methods are safe
// for concurrent use, and every operation is idempotent per tenant and
// idempotency key.
type manual struct {
	mu       sync.Mutex
	payments map[string]*payments.Payment // tenant \x00 payment id
	done     map[string]any               // tenant \x00 operation \x00 idempotency key -> result
}

var (
	_ payments.Provider  = (*manual)(nil)
	_ payments.Capturer  = (*manual)(nil)
	_ payments.Confirmer = (*manual)(nil)
	_ payments.Canceler  = (*manual)(nil)
)

func newProvider() *manual {
	return &manual{payments: map[string]*payments.Payment{}, done: map[string]any{}}
}

// Info describes the plugin. It declares no webhook: nothing calls back.
func (*manual) Info() provider.Info {
	return provider.Info{
		Name:    "manual",
		Version: version,
		Fields: []provider.Field{
			{Name: fieldMethod, Doc: `"cash" (cash on delivery, default) or "bank_transfer"`},
			{Name: fieldInstructionsURL, Doc: "optional https page telling the buyer how to pay; returned as the payment's redirect_url with ?reference=<order>"},
		},
	}
}

// remember returns the result an earlier call with the same tenant,
// operation and idempotency key produced, or records the one do produces.
// It must be called with m.mu held.
func remember[R any](m *manual, t provider.Tenant, op, key string, do func() (R, error)) (R, error) {
	k := t.ID() + "\x00" + op + "\x00" + key
	if r, ok := m.done[k].(R); ok {
		return r, nil
	}
	r, err := do()
	if err == nil && key != "" {
		m.done[k] = r
	}
	return r, err
}

// CreatePayment records a pending payment. Nothing is charged: the buyer
// pays in cash or by transfer, and the operator confirms it with Capture.
func (m *manual) CreatePayment(ctx context.Context, r payments.CreateRequest) (payments.Payment, error) {
	if err := r.Validate(); err != nil {
		return payments.Payment{}, err
	}
	method := r.Tenant.Setting(fieldMethod)
	switch method {
	case "":
		method = methodCash
	case methodCash, methodTransfer:
	default:
		return payments.Payment{}, provider.Invalid(fmt.Errorf("manual: setting %s is %q, want %q or %q", fieldMethod, method, methodCash, methodTransfer))
	}
	redirect, err := instructionsURL(r.Tenant.Setting(fieldInstructionsURL), r.Reference)
	if err != nil {
		return payments.Payment{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return remember(m, r.Tenant, "create", r.IdempotencyKey, func() (payments.Payment, error) {
		p := &payments.Payment{
			ID: "man_" + randomID(), Status: payments.StatusPending, Amount: r.Amount,
			Method: method, RedirectURL: redirect, CreatedAt: time.Now().UTC(),
		}
		m.payments[r.Tenant.ID()+"\x00"+p.ID] = p
		provider.Log(ctx).Info("manual payment awaiting confirmation", "payment", p.ID, "method", method, "reference", r.Reference)
		return *p, nil
	})
}

func instructionsURL(base, reference string) (string, error) {
	if base == "" {
		return "", nil
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", provider.Invalid(fmt.Errorf("manual: setting %s must be an https URL", fieldInstructionsURL))
	}
	if reference != "" {
		q := u.Query()
		q.Set("reference", reference)
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// get returns the tenant's payment id; m.mu must be held.
func (m *manual) get(t provider.Tenant, id string) (*payments.Payment, error) {
	p, ok := m.payments[t.ID()+"\x00"+id]
	if !ok {
		return nil, provider.Invalid(fmt.Errorf("manual: no payment %q", id))
	}
	return p, nil
}

// GetPayment returns the payment as it stands.
func (m *manual) GetPayment(_ context.Context, r payments.GetRequest) (payments.Payment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.get(r.Tenant, r.ID)
	if err != nil {
		return payments.Payment{}, err
	}
	return *p, nil
}

// Capture records that the money of a pending payment arrived in full (a
// partial amount is refused: collect the rest, then capture). Capturing a
// succeeded payment again returns it unchanged.
func (m *manual) Capture(ctx context.Context, r payments.CaptureRequest) (payments.Payment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return remember(m, r.Tenant, "capture", r.IdempotencyKey, func() (payments.Payment, error) {
		return m.markReceived(ctx, r.Tenant, r.ID, r.Amount)
	})
}

// Confirm is Capture for the redirect flow's commit: Token is the
// payment's id. It lets an operator tool that speaks "confirm" settle a
// manual payment.
func (m *manual) Confirm(ctx context.Context, r payments.ConfirmRequest) (payments.Payment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return remember(m, r.Tenant, "confirm", r.IdempotencyKey, func() (payments.Payment, error) {
		return m.markReceived(ctx, r.Tenant, r.Token, provider.Money{})
	})
}

func (m *manual) markReceived(ctx context.Context, t provider.Tenant, id string, amount provider.Money) (payments.Payment, error) {
	p, err := m.get(t, id)
	if err != nil {
		return payments.Payment{}, err
	}
	if amount.Amount != 0 && amount != p.Amount {
		return payments.Payment{}, provider.Invalid(fmt.Errorf("manual: capture of %s on a payment of %s: manual payments are captured in full", amount, p.Amount))
	}
	switch p.Status {
	case payments.StatusPending:
		p.Status = payments.StatusSucceeded
		provider.Log(ctx).Info("manual payment received", "payment", p.ID)
	case payments.StatusSucceeded:
	default:
		return payments.Payment{}, provider.Permanent(fmt.Errorf("manual: payment %s is %s and cannot be marked received", p.ID, p.Status))
	}
	return *p, nil
}

// Cancel drops a pending payment. A payment already received cannot be
// cancelled (refund it instead); cancelling twice returns it unchanged.
func (m *manual) Cancel(ctx context.Context, r payments.CancelRequest) (payments.Payment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return remember(m, r.Tenant, "cancel", r.IdempotencyKey, func() (payments.Payment, error) {
		p, err := m.get(r.Tenant, r.ID)
		if err != nil {
			return payments.Payment{}, err
		}
		switch p.Status {
		case payments.StatusPending:
			p.Status = payments.StatusCancelled
			provider.Log(ctx).Info("manual payment cancelled", "payment", p.ID)
		case payments.StatusCancelled:
		default:
			return payments.Payment{}, provider.Permanent(fmt.Errorf("manual: payment %s is %s and cannot be cancelled", p.ID, p.Status))
		}
		return *p, nil
	})
}

// errNotReceived refuses refunds of money that never arrived.
var errNotReceived = errors.New("manual: only a received payment can be refunded")

// Refund records money given back to the buyer: r.Amount, or all that is
// left when zero. The payment becomes refunded once nothing is left.
func (m *manual) Refund(ctx context.Context, r payments.RefundRequest) (payments.Refund, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return remember(m, r.Tenant, "refund", r.IdempotencyKey, func() (payments.Refund, error) {
		p, err := m.get(r.Tenant, r.ID)
		if err != nil {
			return payments.Refund{}, err
		}
		if p.Status != payments.StatusSucceeded {
			return payments.Refund{}, provider.Permanent(fmt.Errorf("%w (payment %s is %s)", errNotReceived, p.ID, p.Status))
		}
		left := p.Amount.Amount - p.AmountRefunded
		amount := r.Amount.Amount
		if amount == 0 {
			amount = left
		}
		if r.Amount.Currency != "" && r.Amount.Currency != p.Amount.Currency {
			return payments.Refund{}, provider.Invalid(fmt.Errorf("manual: refund in %s of a payment in %s", r.Amount.Currency, p.Amount.Currency))
		}
		if amount <= 0 || amount > left {
			return payments.Refund{}, provider.Invalid(fmt.Errorf("manual: refund of %d exceeds the refundable %d", amount, left))
		}
		p.AmountRefunded += amount
		if p.AmountRefunded == p.Amount.Amount {
			p.Status = payments.StatusRefunded
		}
		cp := *p
		provider.Log(ctx).Info("manual refund recorded", "payment", p.ID, "amount", amount)
		return payments.Refund{
			ID: "manre_" + randomID(), Amount: provider.Money{Amount: amount, Currency: p.Amount.Currency},
			Status: "succeeded", Payment: &cp,
		}, nil
	})
}
