package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

const testReturnURL = "https://gateway.example/return/transbank/acme"

// testTenant is an integration tenant (public test credentials) on f, with
// settings overridden by extra ("" deletes a setting).
func testTenant(f *fakeWebpay, extra map[string]string, secrets map[string]string) provider.Tenant {
	s := map[string]string{provider.BaseURLField: f.URL}
	for k, v := range extra {
		if v == "" {
			delete(s, k)
			continue
		}
		s[k] = v
	}
	return provider.NewTenant("acme", s, secrets)
}

func prodTenant(f *fakeWebpay, secret string) provider.Tenant {
	return testTenant(f, map[string]string{fieldEnvironment: envProduction, fieldCommerceCode: prodCommerce}, map[string]string{fieldAPIKeySecret: secret})
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createReq(tn provider.Tenant, key string, amount int64) payments.CreateRequest {
	return payments.CreateRequest{
		Tenant: tn, IdempotencyKey: key, PaymentID: "pay_" + key,
		Amount: provider.Money{Amount: amount, Currency: currency}, Reference: "order-" + key, ReturnURL: testReturnURL,
	}
}

// mustCreate creates a payment and returns its token.
func mustCreate(t testing.TB, p *transbankProvider, tn provider.Tenant, key string, amount int64) string {
	t.Helper()
	pmt, err := p.CreatePayment(testCtx(t), createReq(tn, key, amount))
	if err != nil {
		t.Fatalf("CreatePayment: %v", err)
	}
	return pmt.ID
}

// mustCommit creates and commits a payment and returns its token.
func mustCommit(t testing.TB, p *transbankProvider, tn provider.Tenant, key string, amount int64) string {
	t.Helper()
	token := mustCreate(t, p, tn, key, amount)
	if _, err := p.Confirm(testCtx(t), payments.ConfirmRequest{Tenant: tn, IdempotencyKey: key + "_c", Token: token}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	return token
}

func wantKind(t testing.TB, err error, kind provider.Kind) {
	t.Helper()
	if provider.KindOf(err) != kind {
		t.Fatalf("err = %v (kind %s), want kind %s", err, provider.KindOf(err), kind)
	}
}

func TestCreatePayment(t *testing.T) {
	f := newFakeWebpay(t)
	tests := map[string]struct {
		tenant    func() provider.Tenant
		mut       func(*payments.CreateRequest)
		wantKind  provider.Kind // 0: success
		wantCalls int
		check     func(t *testing.T, got payments.Payment, sent createBody, h http.Header)
	}{
		"integration defaults": {
			tenant:    func() provider.Tenant { return testTenant(f, nil, nil) },
			wantCalls: 1,
			check: func(t *testing.T, got payments.Payment, sent createBody, h http.Header) {
				if got.Status != payments.StatusRequiresAction || len(got.ID) != 64 {
					t.Errorf("payment = %+v, want requires_action with a 64-char token", got)
				}
				want := f.URL + "/webpayserver/initTransaction"
				if got.RedirectURL != want || got.RedirectForm["token_ws"] != got.ID {
					t.Errorf("redirect = %q %v, want a POST of token_ws=%s to %q", got.RedirectURL, got.RedirectForm, got.ID, want)
				}
				if got.Amount != (provider.Money{Amount: 12990, Currency: "CLP"}) {
					t.Errorf("Amount = %v", got.Amount)
				}
				if h.Get("Tbk-Api-Key-Id") != integrationCommerceCode || h.Get("Tbk-Api-Key-Secret") != integrationAPIKey || h.Get("Content-Type") != "application/json" {
					t.Errorf("headers = %v", h)
				}
				want2 := createBody{BuyOrder: "order-k1", SessionID: "pay_k1", Amount: 12990, ReturnURL: testReturnURL}
				if sent != want2 {
					t.Errorf("sent %+v, want %+v", sent, want2)
				}
			},
		},
		"return_url setting when the request has none": {
			tenant: func() provider.Tenant {
				return testTenant(f, map[string]string{fieldReturnURL: "https://gw.example/r/acme"}, nil)
			},
			mut:       func(r *payments.CreateRequest) { r.ReturnURL = "" },
			wantCalls: 1,
			check: func(t *testing.T, _ payments.Payment, sent createBody, _ http.Header) {
				if sent.ReturnURL != "https://gw.example/r/acme" {
					t.Errorf("return_url = %q", sent.ReturnURL)
				}
			},
		},
		"production credentials": {
			tenant:    func() provider.Tenant { return prodTenant(f, prodSecret) },
			wantCalls: 1,
			check: func(t *testing.T, _ payments.Payment, _ createBody, h http.Header) {
				if h.Get("Tbk-Api-Key-Id") != prodCommerce || h.Get("Tbk-Api-Key-Secret") != prodSecret {
					t.Errorf("headers = %v", h)
				}
			},
		},
		"non-CLP currency": {
			tenant:   func() provider.Tenant { return testTenant(f, nil, nil) },
			mut:      func(r *payments.CreateRequest) { r.Amount.Currency = "USD" },
			wantKind: provider.KindInvalid,
		},
		"no return URL anywhere": {
			tenant:   func() provider.Tenant { return testTenant(f, nil, nil) },
			mut:      func(r *payments.CreateRequest) { r.ReturnURL = "" },
			wantKind: provider.KindInvalid,
		},
		"relative return URL": {
			tenant:   func() provider.Tenant { return testTenant(f, nil, nil) },
			mut:      func(r *payments.CreateRequest) { r.ReturnURL = "/return" },
			wantKind: provider.KindInvalid,
		},
		"zero amount": {
			tenant:   func() provider.Tenant { return testTenant(f, nil, nil) },
			mut:      func(r *payments.CreateRequest) { r.Amount.Amount = 0 },
			wantKind: provider.KindInvalid,
		},
		"wrong production secret": {
			tenant:    func() provider.Tenant { return prodTenant(f, "not-the-secret-123") },
			wantKind:  provider.KindUnauthorized,
			wantCalls: 1,
		},
		"production without credentials": {
			tenant: func() provider.Tenant {
				return testTenant(f, map[string]string{fieldEnvironment: envProduction}, nil)
			},
			wantKind: provider.KindUnauthorized,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := len(f.callsTo(http.MethodPost, "/transactions"))
			req := createReq(tc.tenant(), "k1", 12990)
			req.IdempotencyKey = name // a fresh memo entry per case
			if tc.mut != nil {
				tc.mut(&req)
			}
			got, err := newProvider().CreatePayment(testCtx(t), req)
			calls := f.callsTo(http.MethodPost, "/transactions")[before:]
			if len(calls) != tc.wantCalls {
				t.Fatalf("%d create calls reached the API, want %d", len(calls), tc.wantCalls)
			}
			if tc.wantKind != 0 {
				wantKind(t, err, tc.wantKind)
				return
			}
			if err != nil {
				t.Fatalf("CreatePayment: %v", err)
			}
			var sent createBody
			if err := json.Unmarshal(calls[0].Body, &sent); err != nil {
				t.Fatalf("sent body: %v", err)
			}
			tc.check(t, got, sent, calls[0].Header)
		})
	}
}

func TestCreatePaymentIdempotent(t *testing.T) {
	f := newFakeWebpay(t)
	p := newProvider()
	tn := testTenant(f, nil, nil)
	a, err := p.CreatePayment(testCtx(t), createReq(tn, "same", 1000))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.CreatePayment(testCtx(t), createReq(tn, "same", 1000))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID {
		t.Errorf("same key gave tokens %s and %s", a.ID, b.ID)
	}
	if n := len(f.callsTo(http.MethodPost, "/transactions")); n != 1 {
		t.Errorf("%d creates reached the API, want 1", n)
	}
	_, err = p.CreatePayment(testCtx(t), createReq(tn, "same", 2000))
	wantKind(t, err, provider.KindInvalid)
	// Another tenant with the same key is another payment.
	other := provider.NewTenant("other", map[string]string{provider.BaseURLField: f.URL}, nil)
	c, err := p.CreatePayment(testCtx(t), createReq(other, "same", 1000))
	if err != nil || c.ID == a.ID {
		t.Errorf("other tenant: payment %q, err %v; want a new token", c.ID, err)
	}
}

func TestConfirm(t *testing.T) {
	f := newFakeWebpay(t)
	p := newProvider()
	tn := testTenant(f, nil, nil)
	tests := map[string]struct {
		amount   int64
		req      func(token string) payments.ConfirmRequest
		wantKind provider.Kind
		want     payments.Payment // ID "token" means the created token
		wantPuts int
	}{
		"approved": {
			amount:   12990,
			req:      func(tok string) payments.ConfirmRequest { return payments.ConfirmRequest{Token: tok} },
			want:     payments.Payment{ID: "token", Status: payments.StatusSucceeded, Amount: provider.Money{Amount: 12990, Currency: "CLP"}, Method: "debit", CreatedAt: time.Date(2026, 11, 27, 14, 3, 7, 512e6, time.UTC)},
			wantPuts: 1,
		},
		"token_ws from params": {
			amount: 5000,
			req: func(tok string) payments.ConfirmRequest {
				return payments.ConfirmRequest{Params: map[string]string{"token_ws": tok}}
			},
			want:     payments.Payment{ID: "token", Status: payments.StatusSucceeded, Amount: provider.Money{Amount: 5000, Currency: "CLP"}, Method: "debit", CreatedAt: time.Date(2026, 11, 27, 14, 3, 7, 512e6, time.UTC)},
			wantPuts: 1,
		},
		"rejected": {
			amount:   rejectAmount,
			req:      func(tok string) payments.ConfirmRequest { return payments.ConfirmRequest{Token: tok} },
			want:     payments.Payment{ID: "token", Status: payments.StatusFailed, Amount: provider.Money{Amount: rejectAmount, Currency: "CLP"}, Method: "debit", FailureCode: "-1", FailureMessage: "rejected by Transbank (response_code -1)", CreatedAt: time.Date(2026, 11, 27, 14, 3, 7, 512e6, time.UTC)},
			wantPuts: 1,
		},
		"aborted: TBK_TOKEN is not committed": {
			amount: 3000,
			req: func(tok string) payments.ConfirmRequest {
				return payments.ConfirmRequest{Params: map[string]string{"TBK_TOKEN": tok, "TBK_ORDEN_COMPRA": "order-x", "TBK_ID_SESION": "pay_x"}}
			},
			want: payments.Payment{ID: "token", Status: payments.StatusFailed, Amount: provider.Money{Amount: 3000, Currency: "CLP"}, FailureCode: "aborted", FailureMessage: "the buyer aborted the payment on Webpay"},
		},
		"error after form: token_ws and TBK_TOKEN": {
			amount: 3000,
			req: func(tok string) payments.ConfirmRequest {
				return payments.ConfirmRequest{Params: map[string]string{"token_ws": tok, "TBK_TOKEN": tok}}
			},
			want: payments.Payment{ID: "token", Status: payments.StatusFailed, Amount: provider.Money{Amount: 3000, Currency: "CLP"}, FailureCode: "aborted", FailureMessage: "the buyer aborted the payment on Webpay"},
		},
		"form timeout": {
			amount: 3000,
			req: func(string) payments.ConfirmRequest {
				return payments.ConfirmRequest{Params: map[string]string{"TBK_ORDEN_COMPRA": "order-x", "TBK_ID_SESION": "pay_x"}}
			},
			want: payments.Payment{Status: payments.StatusFailed, FailureCode: "timeout", FailureMessage: "the Webpay form timed out (buy_order order-x, session pay_x)"},
		},
		"no parameters": {
			amount:   3000,
			req:      func(string) payments.ConfirmRequest { return payments.ConfirmRequest{} },
			wantKind: provider.KindInvalid,
		},
		"unknown token": {
			amount:   3000,
			req:      func(string) payments.ConfirmRequest { return payments.ConfirmRequest{Token: strings.Repeat("0", 64)} },
			wantKind: provider.KindInvalid,
			wantPuts: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			token := mustCreate(t, p, tn, strings.ReplaceAll(name, " ", "_"), tc.amount)
			before := len(f.callsTo(http.MethodPut, ""))
			req := tc.req(token)
			req.Tenant = tn
			got, err := p.Confirm(testCtx(t), req)
			if puts := len(f.callsTo(http.MethodPut, "")) - before; puts != tc.wantPuts {
				t.Errorf("%d commits reached the API, want %d", puts, tc.wantPuts)
			}
			if tc.wantKind != 0 {
				wantKind(t, err, tc.wantKind)
				return
			}
			if err != nil {
				t.Fatalf("Confirm: %v", err)
			}
			if tc.want.ID == "token" {
				tc.want.ID = token
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Confirm =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

// TestConfirmTwice: Transbank refuses a second commit with 422; the plugin
// reads the status and returns the first outcome.
func TestConfirmTwice(t *testing.T) {
	for name, amount := range map[string]int64{"approved": 12990, "rejected": rejectAmount} {
		t.Run(name, func(t *testing.T) {
			f := newFakeWebpay(t)
			p := newProvider()
			tn := testTenant(f, nil, nil)
			token := mustCreate(t, p, tn, "twice", amount)
			first, err := p.Confirm(testCtx(t), payments.ConfirmRequest{Tenant: tn, Token: token})
			if err != nil {
				t.Fatal(err)
			}
			second, err := p.Confirm(testCtx(t), payments.ConfirmRequest{Tenant: tn, Token: token})
			if err != nil {
				t.Fatalf("second Confirm: %v", err)
			}
			if !reflect.DeepEqual(first, second) {
				t.Errorf("second Confirm = %+v, want %+v", second, first)
			}
			if puts, gets := len(f.callsTo(http.MethodPut, token)), len(f.callsTo(http.MethodGet, token)); puts != 2 || gets != 1 {
				t.Errorf("API saw %d commits and %d status reads, want 2 and 1", puts, gets)
			}
		})
	}
}

func TestGetPayment(t *testing.T) {
	f := newFakeWebpay(t)
	p := newProvider()
	tn := testTenant(f, nil, nil)
	refund := func(t *testing.T, token string, amounts ...int64) {
		for i, a := range amounts {
			_, err := p.Refund(testCtx(t), payments.RefundRequest{Tenant: tn, IdempotencyKey: token + string(rune('a'+i)), ID: token, Amount: provider.Money{Amount: a, Currency: currency}})
			if err != nil {
				t.Fatalf("Refund(%d): %v", a, err)
			}
		}
	}
	tests := map[string]struct {
		setup        func(t *testing.T) string
		wantStatus   payments.Status
		wantRefunded int64
		wantKind     provider.Kind
	}{
		"created":   {setup: func(t *testing.T) string { return mustCreate(t, p, tn, "g1", 10000) }, wantStatus: payments.StatusRequiresAction},
		"committed": {setup: func(t *testing.T) string { return mustCommit(t, p, tn, "g2", 10000) }, wantStatus: payments.StatusSucceeded},
		"rejected":  {setup: func(t *testing.T) string { return mustCommit(t, p, tn, "g3", rejectAmount) }, wantStatus: payments.StatusFailed},
		"reversed": {setup: func(t *testing.T) string {
			tok := mustCommit(t, p, tn, "g4", 10000)
			refund(t, tok, 10000)
			return tok
		}, wantStatus: payments.StatusRefunded, wantRefunded: 10000},
		"partially nullified": {setup: func(t *testing.T) string {
			tok := mustCommit(t, p, tn, "g5", 10000)
			refund(t, tok, 2500)
			return tok
		}, wantStatus: payments.StatusSucceeded, wantRefunded: 2500},
		"nullified in two parts": {setup: func(t *testing.T) string {
			tok := mustCommit(t, p, tn, "g6", 10000)
			refund(t, tok, 2500, 7500)
			return tok
		}, wantStatus: payments.StatusRefunded, wantRefunded: 10000},
		"unknown token": {setup: func(*testing.T) string { return strings.Repeat("f", 64) }, wantKind: provider.KindInvalid},
		"empty token":   {setup: func(*testing.T) string { return "" }, wantKind: provider.KindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			token := tc.setup(t)
			got, err := p.GetPayment(testCtx(t), payments.GetRequest{Tenant: tn, ID: token})
			if tc.wantKind != 0 {
				wantKind(t, err, tc.wantKind)
				return
			}
			if err != nil {
				t.Fatalf("GetPayment: %v", err)
			}
			if got.ID != token || got.Status != tc.wantStatus || got.AmountRefunded != tc.wantRefunded {
				t.Errorf("GetPayment = %+v, want status %s refunded %d", got, tc.wantStatus, tc.wantRefunded)
			}
		})
	}
}

func TestRefund(t *testing.T) {
	f := newFakeWebpay(t)
	p := newProvider()
	tn := testTenant(f, nil, nil)
	tests := map[string]struct {
		setup    func(t *testing.T) string
		amount   provider.Money
		wantKind provider.Kind
		wantID   func(token string) string
		want     int64
		wantType string // the type the fake answered
	}{
		"full, amount zero": {
			setup:  func(t *testing.T) string { return mustCommit(t, p, tn, "r1", 10000) },
			wantID: func(tok string) string { return "reversed_" + tok }, want: 10000,
		},
		"full, explicit amount": {
			setup:  func(t *testing.T) string { return mustCommit(t, p, tn, "r2", 10000) },
			amount: provider.Money{Amount: 10000, Currency: "CLP"},
			wantID: func(tok string) string { return "reversed_" + tok }, want: 10000,
		},
		"partial": {
			setup:  func(t *testing.T) string { return mustCommit(t, p, tn, "r3", 10000) },
			amount: provider.Money{Amount: 3000, Currency: "CLP"},
			wantID: func(string) string { return "123451" }, want: 3000,
		},
		"rest after a partial, amount zero": {
			setup: func(t *testing.T) string {
				tok := mustCommit(t, p, tn, "r4", 10000)
				if _, err := p.Refund(testCtx(t), payments.RefundRequest{Tenant: tn, IdempotencyKey: "r4-first", ID: tok, Amount: provider.Money{Amount: 4000, Currency: "CLP"}}); err != nil {
					t.Fatal(err)
				}
				return tok
			},
			wantID: func(string) string { return "123452" }, want: 6000,
		},
		"uncommitted": {
			setup:    func(t *testing.T) string { return mustCreate(t, p, tn, "r5", 10000) },
			amount:   provider.Money{Amount: 10000, Currency: "CLP"},
			wantKind: provider.KindInvalid,
		},
		"more than the balance": {
			setup:    func(t *testing.T) string { return mustCommit(t, p, tn, "r6", 10000) },
			amount:   provider.Money{Amount: 10001, Currency: "CLP"},
			wantKind: provider.KindInvalid,
		},
		"non-CLP": {
			setup:    func(t *testing.T) string { return mustCommit(t, p, tn, "r7", 10000) },
			amount:   provider.Money{Amount: 100, Currency: "USD"},
			wantKind: provider.KindInvalid,
		},
		"negative": {
			setup:    func(t *testing.T) string { return mustCommit(t, p, tn, "r8", 10000) },
			amount:   provider.Money{Amount: -1, Currency: "CLP"},
			wantKind: provider.KindInvalid,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			token := tc.setup(t)
			req := payments.RefundRequest{Tenant: tn, IdempotencyKey: "refund " + name, ID: token, Amount: tc.amount}
			got, err := p.Refund(testCtx(t), req)
			if tc.wantKind != 0 {
				wantKind(t, err, tc.wantKind)
				return
			}
			if err != nil {
				t.Fatalf("Refund: %v", err)
			}
			want := payments.Refund{ID: tc.wantID(token), Amount: provider.Money{Amount: tc.want, Currency: "CLP"}, Status: "succeeded"}
			if got.ID != want.ID || got.Amount != want.Amount || got.Status != want.Status || got.Payment != nil {
				t.Errorf("Refund = %+v, want %+v", got, want)
			}
			// A retry with the same key refunds once.
			before := len(f.callsTo(http.MethodPost, "/refunds"))
			again, err := p.Refund(testCtx(t), req)
			if err != nil || again.ID != got.ID {
				t.Errorf("retried Refund = %+v, %v; want %+v", again, err, got)
			}
			if n := len(f.callsTo(http.MethodPost, "/refunds")) - before; n != 0 {
				t.Errorf("retry sent %d refunds, want 0", n)
			}
		})
	}
}

// TestWireConfirmAndRefund drives create, Confirm and Refund over the real
// gRPC path, which the conformance kit does not (it has no Confirm step).
func TestWireConfirmAndRefund(t *testing.T) {
	f := newFakeWebpay(t)
	tn := testTenant(f, nil, nil)
	conn := providertest.Connect(t, newProvider())
	confirmer, ok := conn.Payments.(payments.Confirmer)
	if !ok {
		t.Fatal("wire client is not a Confirmer")
	}
	pmt, err := conn.Payments.CreatePayment(testCtx(t), createReq(tn, "wire", 15000))
	if err != nil {
		t.Fatal(err)
	}
	if pmt.RedirectForm["token_ws"] != pmt.ID || pmt.RedirectURL == "" {
		t.Fatalf("redirect %q %v does not post token_ws=%s (the form crossed the wire?)", pmt.RedirectURL, pmt.RedirectForm, pmt.ID)
	}
	got, err := confirmer.Confirm(testCtx(t), payments.ConfirmRequest{Tenant: tn, IdempotencyKey: "wire_c", Params: map[string]string{"token_ws": pmt.ID}})
	if err != nil || got.Status != payments.StatusSucceeded || got.Method != "debit" {
		t.Fatalf("Confirm = %+v, %v; want succeeded by debit", got, err)
	}
	r, err := conn.Payments.Refund(testCtx(t), payments.RefundRequest{Tenant: tn, IdempotencyKey: "wire_r", ID: pmt.ID})
	if err != nil || r.ID == "" || r.Amount.Amount != 15000 {
		t.Fatalf("Refund = %+v, %v; want the full 15000", r, err)
	}
	after, err := conn.Payments.GetPayment(testCtx(t), payments.GetRequest{Tenant: tn, ID: pmt.ID})
	if err != nil || after.Status != payments.StatusRefunded {
		t.Fatalf("GetPayment after refund = %+v, %v; want refunded", after, err)
	}
	if strings.Contains(conn.Logs.String(), integrationAPIKey) {
		t.Error("the API key appears in the plugin's logs")
	}
}

func TestPaymentOf(t *testing.T) {
	zero, declined := 0, -1
	balance := int64(400)
	tests := map[string]struct {
		tx           transaction
		wantStatus   payments.Status
		wantCode     string
		wantRefunded int64
	}{
		"authorized":                {tx: transaction{Status: "AUTHORIZED", ResponseCode: &zero}, wantStatus: payments.StatusSucceeded},
		"captured":                  {tx: transaction{Status: "CAPTURED", ResponseCode: &zero}, wantStatus: payments.StatusSucceeded},
		"authorized but declined":   {tx: transaction{Status: "AUTHORIZED", ResponseCode: &declined}, wantStatus: payments.StatusFailed, wantCode: "-1"},
		"authorized without code":   {tx: transaction{Status: "AUTHORIZED"}, wantStatus: payments.StatusFailed, wantCode: "no_response_code"},
		"failed without code":       {tx: transaction{Status: "FAILED"}, wantStatus: payments.StatusFailed, wantCode: "failed"},
		"failed":                    {tx: transaction{Status: "FAILED", ResponseCode: &declined}, wantStatus: payments.StatusFailed, wantCode: "-1"},
		"initialized":               {tx: transaction{Status: "INITIALIZED"}, wantStatus: payments.StatusRequiresAction},
		"reversed":                  {tx: transaction{Status: "REVERSED", ResponseCode: &zero}, wantStatus: payments.StatusRefunded, wantRefunded: 1000},
		"nullified without balance": {tx: transaction{Status: "NULLIFIED"}, wantStatus: payments.StatusRefunded, wantRefunded: 1000},
		"nullified with balance":    {tx: transaction{Status: "NULLIFIED", Balance: &balance}, wantStatus: payments.StatusSucceeded, wantRefunded: 600},
		"partially nullified":       {tx: transaction{Status: "PARTIALLY_NULLIFIED", Balance: &balance}, wantStatus: payments.StatusSucceeded, wantRefunded: 600},
		"aborted":                   {tx: transaction{Status: "ABORTED"}, wantStatus: payments.StatusCancelled, wantCode: "aborted"},
		"timeout":                   {tx: transaction{Status: "TIMEOUT"}, wantStatus: payments.StatusCancelled, wantCode: "timeout"},
		"unknown":                   {tx: transaction{Status: "SOMETHING_NEW"}, wantStatus: payments.StatusPending},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.tx.Amount = 1000
			got := paymentOf(context.Background(), "tok", tc.tx)
			if got.Status != tc.wantStatus || got.AmountRefunded != tc.wantRefunded || (tc.wantCode != "" && got.FailureCode != tc.wantCode) {
				t.Errorf("paymentOf = %+v, want status %s code %q refunded %d", got, tc.wantStatus, tc.wantCode, tc.wantRefunded)
			}
			if got.Status == payments.StatusFailed && got.FailureCode == "" {
				t.Errorf("failed payment without FailureCode: %+v", got)
			}
		})
	}
}

func TestMethod(t *testing.T) {
	for code, want := range map[string]string{"VD": "debit", "VP": "prepaid", "VN": "credit", "VC": "credit", "SI": "credit", "S2": "credit", "NC": "credit", "": "", "XX": "xx"} {
		if got := method(code); got != want {
			t.Errorf("method(%q) = %q, want %q", code, got, want)
		}
	}
}

func TestBuyOrder(t *testing.T) {
	tests := map[string]struct {
		reference, fallback, want string
	}{
		"kept as is":        {reference: "order-123_A", want: "order-123_A"},
		"exactly 26":        {reference: strings.Repeat("a", 26), want: strings.Repeat("a", 26)},
		"fallback":          {fallback: "pay_1", want: "pay_1"},
		"too long":          {reference: strings.Repeat("a", 27), want: strings.Repeat("a", 17) + "-" + hash8(strings.Repeat("a", 27))},
		"other characters":  {reference: "pedido #12 ñ", want: "pedido--12--" + "-" + hash8("pedido #12 ñ")},
		"long and replaced": {reference: "order/2026/11/27/abcdefghij", want: "order-2026-11-27-" + "-" + hash8("order/2026/11/27/abcdefghij")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := buyOrder(tc.reference, tc.fallback)
			if got != tc.want {
				t.Errorf("buyOrder(%q, %q) = %q, want %q", tc.reference, tc.fallback, got, tc.want)
			}
			if !allowedBuyOrder(got) {
				t.Errorf("buyOrder(%q) = %q is not a valid buy_order", tc.reference, got)
			}
		})
	}
	if a, b := buyOrder("order a", ""), buyOrder("order-a", ""); a == b {
		t.Errorf("%q and %q both map to %q", "order a", "order-a", a)
	}
	long := strings.Repeat("x", 40)
	if a, b := buyOrder(long+"1", ""), buyOrder(long+"2", ""); a == b {
		t.Errorf("long references sharing a prefix both map to %q", a)
	}
}

func hash8(s string) string { return fit(s, 9)[1:] }

func TestSessionIDFits(t *testing.T) {
	long := "pay_" + strings.Repeat("z", 80)
	got := fit(long, maxSessionID)
	if len(got) != maxSessionID || got != fit(long, maxSessionID) {
		t.Errorf("fit(%d chars) = %q (%d chars), want a deterministic %d", len(long), got, len(got), maxSessionID)
	}
}

// TestReconcile: the reconciliation path commits a transaction whose buyer
// never came back (this fake authorizes every commit but rejectAmount), and
// a second reconcile of it returns the committed outcome from the status.
func TestReconcile(t *testing.T) {
	f := newFakeWebpay(t)
	p := newProvider()
	tn := testTenant(f, nil, nil)
	for _, tc := range []struct {
		amount int64
		want   payments.Status
	}{{9990, payments.StatusSucceeded}, {rejectAmount, payments.StatusFailed}} {
		pmt, err := p.CreatePayment(testCtx(t), createReq(tn, fmt.Sprint("rec-", tc.amount), tc.amount))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, err := p.Reconcile(testCtx(t), payments.GetRequest{Tenant: tn, ID: pmt.ID})
			if err != nil || got.Status != tc.want {
				t.Fatalf("reconcile of %d = %+v, %v; want %s", tc.amount, got, err, tc.want)
			}
		}
		if n := len(f.callsTo(http.MethodPut, "/transactions/"+pmt.ID)); n != 2 {
			t.Fatalf("%d commits, want 2 (the second refused and answered from the status)", n)
		}
	}
	if _, err := p.Reconcile(testCtx(t), payments.GetRequest{Tenant: tn}); provider.KindOf(err) != provider.KindInvalid {
		t.Fatalf("empty id: %v", err)
	}
}
