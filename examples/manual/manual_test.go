package main

import (
	"context"
	"errors"
	"testing"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

var (
	acme  = provider.NewTenant("acme", map[string]string{fieldInstructionsURL: "https://acme.example/transfer?lang=es", fieldMethod: methodTransfer}, nil)
	other = provider.NewTenant("other", nil, nil)
	clp   = provider.Money{Amount: 12990, Currency: "CLP"}
)

func create(t *testing.T, m *manual, tenant provider.Tenant, key string) payments.Payment {
	t.Helper()
	p, err := m.CreatePayment(context.Background(), payments.CreateRequest{Tenant: tenant, IdempotencyKey: key, Amount: clp, Reference: "order-42"})
	if err != nil {
		t.Fatalf("CreatePayment: %v", err)
	}
	return p
}

func TestCreate(t *testing.T) {
	m := newProvider()
	p := create(t, m, acme, "k1")
	if p.Status != payments.StatusPending || p.Method != methodTransfer || p.Amount != clp {
		t.Fatalf("payment = %+v, want a pending bank transfer of %s", p, clp)
	}
	if want := "https://acme.example/transfer?lang=es&reference=order-42"; p.RedirectURL != want {
		t.Errorf("RedirectURL = %q, want %q", p.RedirectURL, want)
	}
	if again := create(t, m, acme, "k1"); again.ID != p.ID {
		t.Errorf("same key gave %s then %s", p.ID, again.ID)
	}
	if o := create(t, m, other, "k1"); o.ID == p.ID || o.Method != methodCash || o.RedirectURL != "" {
		t.Errorf("other tenant's payment = %+v, want its own cash payment without instructions", o)
	}
	if _, err := m.GetPayment(context.Background(), payments.GetRequest{Tenant: other, ID: p.ID}); provider.KindOf(err) != provider.KindInvalid {
		t.Errorf("another tenant read acme's payment: err = %v", err)
	}
}

func TestCreateRejects(t *testing.T) {
	tests := map[string]struct {
		tenant provider.Tenant
		amount provider.Money
	}{
		"unknown method":      {provider.NewTenant("a", map[string]string{fieldMethod: "cheque"}, nil), clp},
		"plain http page":     {provider.NewTenant("a", map[string]string{fieldInstructionsURL: "http://acme.example/pay"}, nil), clp},
		"zero amount":         {other, provider.Money{Currency: "CLP"}},
		"lower-case currency": {other, provider.Money{Amount: 10, Currency: "clp"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := newProvider().CreatePayment(context.Background(), payments.CreateRequest{Tenant: tc.tenant, IdempotencyKey: "k", Amount: tc.amount})
			if provider.KindOf(err) != provider.KindInvalid {
				t.Fatalf("err = %v (kind %s), want kind invalid", err, provider.KindOf(err))
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	type step struct {
		op     string // capture, confirm, cancel, refund
		amount int64
		status payments.Status // after the step; "" when it must fail
		kind   provider.Kind
	}
	tests := map[string][]step{
		"cash received then refunded in two parts": {
			{op: "capture", status: payments.StatusSucceeded},
			{op: "refund", amount: 2990, status: payments.StatusSucceeded},
			{op: "refund", amount: 20000, kind: provider.KindInvalid},
			{op: "refund", status: payments.StatusRefunded},
			{op: "refund", kind: provider.KindPermanent},
		},
		"confirmed twice": {
			{op: "confirm", status: payments.StatusSucceeded},
			{op: "confirm", status: payments.StatusSucceeded},
			{op: "cancel", kind: provider.KindPermanent},
		},
		"cancelled before payment": {
			{op: "cancel", status: payments.StatusCancelled},
			{op: "cancel", status: payments.StatusCancelled},
			{op: "capture", kind: provider.KindPermanent},
			{op: "refund", kind: provider.KindPermanent},
		},
		"partial capture refused": {
			{op: "capture", amount: 100, kind: provider.KindInvalid},
			{op: "capture", amount: clp.Amount, status: payments.StatusSucceeded},
		},
		"refund before payment": {
			{op: "refund", kind: provider.KindPermanent},
		},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			m := newProvider()
			id := create(t, m, acme, "create").ID
			for i, s := range steps {
				key := name + string(rune('a'+i))
				amount := provider.Money{}
				if s.amount != 0 {
					amount = provider.Money{Amount: s.amount, Currency: "CLP"}
				}
				var p payments.Payment
				var err error
				switch s.op {
				case "capture":
					p, err = m.Capture(ctx, payments.CaptureRequest{Tenant: acme, IdempotencyKey: key, ID: id, Amount: amount})
				case "confirm":
					p, err = m.Confirm(ctx, payments.ConfirmRequest{Tenant: acme, IdempotencyKey: key, Token: id})
				case "cancel":
					p, err = m.Cancel(ctx, payments.CancelRequest{Tenant: acme, IdempotencyKey: key, ID: id})
				case "refund":
					var r payments.Refund
					r, err = m.Refund(ctx, payments.RefundRequest{Tenant: acme, IdempotencyKey: key, ID: id, Amount: amount})
					if err == nil {
						p = *r.Payment
						if again, _ := m.Refund(ctx, payments.RefundRequest{Tenant: acme, IdempotencyKey: key, ID: id, Amount: amount}); again.ID != r.ID {
							t.Fatalf("step %d: repeated refund key gave %s then %s", i, r.ID, again.ID)
						}
					}
				}
				if s.status == "" {
					if provider.KindOf(err) != s.kind {
						t.Fatalf("step %d %s: err = %v (kind %s), want kind %s", i, s.op, err, provider.KindOf(err), s.kind)
					}
					continue
				}
				if err != nil || p.Status != s.status {
					t.Fatalf("step %d %s: status %q, err %v; want %q", i, s.op, p.Status, err, s.status)
				}
			}
		})
	}
}

func TestRefundNotReceivedIsTyped(t *testing.T) {
	m := newProvider()
	id := create(t, m, acme, "k").ID
	_, err := m.Refund(context.Background(), payments.RefundRequest{Tenant: acme, IdempotencyKey: "r", ID: id})
	if !errors.Is(err, errNotReceived) {
		t.Fatalf("err = %v, want errNotReceived", err)
	}
}
