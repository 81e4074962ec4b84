package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

func tenant(f *fakeMP, settings map[string]string) provider.Tenant {
	s := f.settings()
	for k, v := range settings {
		s[k] = v
	}
	return provider.NewTenant("acme", s, map[string]string{fieldAccessToken: fakeToken})
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func lastRequest(t testing.TB, f *fakeMP, method, path string) recorded {
	t.Helper()
	reqs := f.recorded()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Method == method && reqs[i].Path == path {
			return reqs[i]
		}
	}
	t.Fatalf("no %s %s request recorded", method, path)
	return recorded{}
}

func TestCreatePreference(t *testing.T) {
	tests := map[string]struct {
		amount      provider.Money
		description string
		wantPrice   float64
		wantTitle   string
	}{
		"USD has cents":      {amount: provider.Money{Amount: 1999, Currency: "USD"}, description: "Two pizzas", wantPrice: 19.99, wantTitle: "Two pizzas"},
		"CLP has no decimal": {amount: provider.Money{Amount: 12990, Currency: "CLP"}, wantPrice: 12990, wantTitle: "order-42"},
		"ARS one cent":       {amount: provider.Money{Amount: 1, Currency: "ARS"}, description: "x", wantPrice: 0.01, wantTitle: "x"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			req := payments.CreateRequest{
				Tenant: tenant(f, nil), IdempotencyKey: "idem-" + name, PaymentID: "pay_123",
				Amount: tc.amount, Reference: "order-42", Description: tc.description,
				Customer:  payments.Customer{Email: "buyer@example.com"},
				ReturnURL: "https://shop.example/back", Metadata: map[string]string{"table": "7"},
			}
			p, err := newProvider().CreatePayment(ctxT(t), req)
			if err != nil {
				t.Fatalf("CreatePayment: %v", err)
			}
			if !isPreferenceID(p.ID) || p.Status != payments.StatusRequiresAction || !strings.Contains(p.RedirectURL, p.ID) || p.Amount != tc.amount {
				t.Fatalf("payment = %+v", p)
			}
			rec := lastRequest(t, f, http.MethodPost, "/checkout/preferences")
			if got := rec.Header.Get("X-Idempotency-Key"); got != req.IdempotencyKey {
				t.Errorf("X-Idempotency-Key = %q, want %q", got, req.IdempotencyKey)
			}
			if got := rec.Header.Get("Authorization"); got != "Bearer "+fakeToken {
				t.Errorf("Authorization = %q", got)
			}
			var body struct {
				Items []struct {
					Title      string  `json:"title"`
					Quantity   int     `json:"quantity"`
					UnitPrice  float64 `json:"unit_price"`
					CurrencyID string  `json:"currency_id"`
				} `json:"items"`
				ExternalReference string            `json:"external_reference"`
				BackURLs          map[string]string `json:"back_urls"`
				Metadata          map[string]string `json:"metadata"`
				Payer             map[string]string `json:"payer"`
			}
			if err := json.Unmarshal(rec.Body, &body); err != nil {
				t.Fatalf("body: %v", err)
			}
			if len(body.Items) != 1 {
				t.Fatalf("items = %+v", body.Items)
			}
			it := body.Items[0]
			if it.Title != tc.wantTitle || it.Quantity != 1 || it.UnitPrice != tc.wantPrice || it.CurrencyID != tc.amount.Currency {
				t.Errorf("item = %+v, want title %q, quantity 1, unit_price %v, currency %s", it, tc.wantTitle, tc.wantPrice, tc.amount.Currency)
			}
			if body.ExternalReference != "order-42" || body.Metadata[metaPaymentID] != "pay_123" || body.Metadata["table"] != "7" || body.Payer["email"] != "buyer@example.com" {
				t.Errorf("body = %+v", body)
			}
			for _, k := range []string{"success", "failure", "pending"} {
				if body.BackURLs[k] != req.ReturnURL {
					t.Errorf("back_urls.%s = %q, want %q", k, body.BackURLs[k], req.ReturnURL)
				}
			}

			// A gateway retry is a new SDK call: the key must be the same and
			// the fake's replay returns the same preference.
			again, err := newProvider().CreatePayment(ctxT(t), req)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if again.ID != p.ID {
				t.Errorf("retry created %q, first call %q", again.ID, p.ID)
			}
			if got := lastRequest(t, f, http.MethodPost, "/checkout/preferences").Header.Get("X-Idempotency-Key"); got != req.IdempotencyKey {
				t.Errorf("retry X-Idempotency-Key = %q", got)
			}
		})
	}
}

func TestCreateRejected(t *testing.T) {
	f := newFakeMP(t)
	base := payments.CreateRequest{IdempotencyKey: "k1", PaymentID: "pay_1", Amount: provider.Money{Amount: 5000, Currency: "CLP"}, Reference: "o1"}
	tests := map[string]struct {
		settings map[string]string
		mut      func(*payments.CreateRequest)
		want     provider.Kind
	}{
		"direct without card token": {settings: map[string]string{fieldCheckout: checkoutDirect}, want: provider.KindInvalid},
		"direct without method": {settings: map[string]string{fieldCheckout: checkoutDirect}, want: provider.KindInvalid,
			mut: func(r *payments.CreateRequest) { r.Metadata = map[string]string{metaCardToken: "tok"} }},
		"direct bad installments": {settings: map[string]string{fieldCheckout: checkoutDirect}, want: provider.KindInvalid,
			mut: func(r *payments.CreateRequest) {
				r.Metadata = map[string]string{metaCardToken: "tok", metaPaymentMethodID: "visa", metaInstallments: "zero"}
			}},
		"unknown checkout":   {settings: map[string]string{fieldCheckout: "embedded"}, want: provider.KindInvalid},
		"relative return":    {mut: func(r *payments.CreateRequest) { r.ReturnURL = "/back" }, want: provider.KindInvalid},
		"no idempotency key": {mut: func(r *payments.CreateRequest) { r.IdempotencyKey = "" }, want: provider.KindInvalid},
		"zero amount":        {mut: func(r *payments.CreateRequest) { r.Amount.Amount = 0 }, want: provider.KindInvalid},
		"bad base url":       {settings: map[string]string{provider.BaseURLField: "ftp://x"}, want: provider.KindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := len(f.recorded())
			req := base
			req.Tenant = tenant(f, tc.settings)
			if tc.mut != nil {
				tc.mut(&req)
			}
			_, err := newProvider().CreatePayment(ctxT(t), req)
			if provider.KindOf(err) != tc.want {
				t.Fatalf("err = %v (kind %s), want kind %s", err, provider.KindOf(err), tc.want)
			}
			if n := len(f.recorded()) - before; n != 0 {
				t.Errorf("%d requests reached the API", n)
			}
		})
	}
	t.Run("missing token", func(t *testing.T) {
		req := base
		req.Tenant = provider.NewTenant("acme", f.settings(), nil)
		if _, err := newProvider().CreatePayment(ctxT(t), req); provider.KindOf(err) != provider.KindUnauthorized {
			t.Fatalf("err = %v, want unauthorized", err)
		}
	})
}

func TestCreateDirect(t *testing.T) {
	f := newFakeMP(t)
	f.directStatus = "in_process"
	req := payments.CreateRequest{
		Tenant: tenant(f, map[string]string{fieldCheckout: checkoutDirect}), IdempotencyKey: "direct-1", PaymentID: "pay_9",
		Amount: provider.Money{Amount: 12990, Currency: "CLP"}, Reference: "o9", Description: "menu",
		Metadata: map[string]string{metaCardToken: "ff8080814c11e237014c1ff593b57b4d", metaPaymentMethodID: "visa", metaInstallments: "3", "table": "4"},
	}
	p, err := newProvider().CreatePayment(ctxT(t), req)
	if err != nil {
		t.Fatalf("CreatePayment: %v", err)
	}
	if p.Status != payments.StatusPending || p.Amount != req.Amount || p.Method != "card" || p.ID == "" {
		t.Fatalf("payment = %+v", p)
	}
	rec := lastRequest(t, f, http.MethodPost, "/v1/payments")
	if rec.Header.Get("X-Idempotency-Key") != "direct-1" {
		t.Errorf("X-Idempotency-Key = %q", rec.Header.Get("X-Idempotency-Key"))
	}
	var body map[string]any
	_ = json.Unmarshal(rec.Body, &body)
	meta, _ := body["metadata"].(map[string]any)
	if body["token"] != req.Metadata[metaCardToken] || body["payment_method_id"] != "visa" || body["installments"] != 3.0 ||
		body["transaction_amount"] != 12990.0 || meta[metaPaymentID] != "pay_9" || meta["table"] != "4" || meta[metaCardToken] != nil {
		t.Errorf("body = %s", rec.Body)
	}
}

func TestGetPayment(t *testing.T) {
	tests := map[string]struct {
		p        fakePayment
		want     payments.Status
		wantCode string
	}{
		"approved":     {p: fakePayment{Status: "approved", StatusDetail: "accredited"}, want: payments.StatusSucceeded},
		"pending":      {p: fakePayment{Status: "pending", StatusDetail: "pending_waiting_payment"}, want: payments.StatusPending},
		"in_process":   {p: fakePayment{Status: "in_process", StatusDetail: "pending_contingency"}, want: payments.StatusPending},
		"authorized":   {p: fakePayment{Status: "authorized"}, want: payments.StatusPending},
		"in_mediation": {p: fakePayment{Status: "in_mediation"}, want: payments.StatusPending},
		"rejected":     {p: fakePayment{Status: "rejected", StatusDetail: "cc_rejected_insufficient_amount"}, want: payments.StatusFailed, wantCode: "cc_rejected_insufficient_amount"},
		"cancelled":    {p: fakePayment{Status: "cancelled", StatusDetail: "expired"}, want: payments.StatusCancelled},
		"refunded":     {p: fakePayment{Status: "refunded", TransactionAmountRefunded: 19.99}, want: payments.StatusRefunded},
		"charged_back": {p: fakePayment{Status: "charged_back"}, want: payments.StatusRefunded},
	}
	f := newFakeMP(t)
	id := 2000
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id++
			tc.p.ID, tc.p.CurrencyID, tc.p.TransactionAmount, tc.p.PaymentTypeID = id, "USD", 19.99, "debit_card"
			tc.p.DateCreated = "2026-05-25T13:01:08.000-03:00"
			f.addPayment(tc.p)
			p, err := newProvider().GetPayment(ctxT(t), payments.GetRequest{Tenant: tenant(f, nil), ID: itoa(id)})
			if err != nil {
				t.Fatalf("GetPayment: %v", err)
			}
			if p.Status != tc.want || p.FailureCode != tc.wantCode || p.ID != itoa(id) || p.Amount != (provider.Money{Amount: 1999, Currency: "USD"}) || p.Method != "debit" {
				t.Fatalf("payment = %+v, want status %s code %q", p, tc.want, tc.wantCode)
			}
			if want := time.Date(2026, 5, 25, 16, 1, 8, 0, time.UTC); !p.CreatedAt.Equal(want) {
				t.Errorf("CreatedAt = %v, want %v", p.CreatedAt, want)
			}
			if tc.p.TransactionAmountRefunded > 0 && p.AmountRefunded != 1999 {
				t.Errorf("AmountRefunded = %d", p.AmountRefunded)
			}
		})
	}
	t.Run("preference id", func(t *testing.T) {
		before := len(f.recorded())
		p, err := newProvider().GetPayment(ctxT(t), payments.GetRequest{Tenant: tenant(f, nil), ID: "987654321-920c288b-4ebb-40be-966f-700250fa5370"})
		if err != nil || p.Status != payments.StatusRequiresAction {
			t.Fatalf("GetPayment(preference) = %+v, %v", p, err)
		}
		if len(f.recorded()) != before {
			t.Error("a preference id was sent to the payments API")
		}
	})
	for name, id := range map[string]string{"empty": "", "letters": "abc", "path": "12/../34", "negative": "-1x", "zero": "0"} {
		t.Run("bad id "+name, func(t *testing.T) {
			_, err := newProvider().GetPayment(ctxT(t), payments.GetRequest{Tenant: tenant(f, nil), ID: id})
			if provider.KindOf(err) != provider.KindInvalid {
				t.Fatalf("err = %v, want invalid", err)
			}
		})
	}
	t.Run("unknown id", func(t *testing.T) {
		_, err := newProvider().GetPayment(ctxT(t), payments.GetRequest{Tenant: tenant(f, nil), ID: "99"})
		if provider.KindOf(err) != provider.KindInvalid || provider.CodeOf(err) != "not_found" {
			t.Fatalf("err = %v (kind %s, code %q), want invalid not_found", err, provider.KindOf(err), provider.CodeOf(err))
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestRefund(t *testing.T) {
	tests := map[string]struct {
		amount      provider.Money
		wantBody    string
		wantRefund  int64
		wantStatus  payments.Status
		wantPayment bool
	}{
		"full":    {wantBody: "", wantRefund: 12990, wantStatus: payments.StatusRefunded, wantPayment: true},
		"partial": {amount: provider.Money{Amount: 2990, Currency: "CLP"}, wantBody: `{"amount":2990}`, wantRefund: 2990},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			f.addPayment(fakePayment{ID: 555, Status: "approved", CurrencyID: "CLP", TransactionAmount: 12990})
			req := payments.RefundRequest{Tenant: tenant(f, nil), IdempotencyKey: "refund-" + name, ID: "555", Amount: tc.amount}
			r, err := newProvider().Refund(ctxT(t), req)
			if err != nil {
				t.Fatalf("Refund: %v", err)
			}
			if r.ID == "" || r.Status != "succeeded" || r.Amount != (provider.Money{Amount: tc.wantRefund, Currency: "CLP"}) {
				t.Fatalf("refund = %+v", r)
			}
			if tc.wantPayment && (r.Payment == nil || r.Payment.Status != tc.wantStatus || r.Payment.AmountRefunded != 12990) {
				t.Fatalf("refund payment = %+v", r.Payment)
			}
			rec := lastRequest(t, f, http.MethodPost, "/v1/payments/555/refunds")
			if string(rec.Body) != tc.wantBody {
				t.Errorf("body = %q, want %q", rec.Body, tc.wantBody)
			}
			if rec.Header.Get("X-Idempotency-Key") != req.IdempotencyKey {
				t.Errorf("X-Idempotency-Key = %q", rec.Header.Get("X-Idempotency-Key"))
			}
			// A retry with the same key refunds once.
			again, err := newProvider().Refund(ctxT(t), req)
			if err != nil || again.ID != r.ID {
				t.Fatalf("retry = %+v, %v; want refund %s", again, err, r.ID)
			}
			if got := f.payment(555); len(got.Refunds) != 1 {
				t.Errorf("payment has %d refunds after a retried refund, want 1", len(got.Refunds))
			}
		})
	}
	t.Run("preference resolved to its payment", func(t *testing.T) {
		f := newFakeMP(t)
		f.autoPay = true
		p, err := newProvider().CreatePayment(ctxT(t), payments.CreateRequest{Tenant: tenant(f, nil), IdempotencyKey: "c1", PaymentID: "pay_7",
			Amount: provider.Money{Amount: 1000, Currency: "USD"}, Reference: "o7"})
		if err != nil {
			t.Fatal(err)
		}
		r, err := newProvider().Refund(ctxT(t), payments.RefundRequest{Tenant: tenant(f, nil), IdempotencyKey: "r1", ID: p.ID})
		if err != nil || r.Amount != (provider.Money{Amount: 1000, Currency: "USD"}) {
			t.Fatalf("Refund(preference) = %+v, %v", r, err)
		}
	})
	t.Run("unpaid preference", func(t *testing.T) {
		f := newFakeMP(t)
		p, err := newProvider().CreatePayment(ctxT(t), payments.CreateRequest{Tenant: tenant(f, nil), IdempotencyKey: "c1", PaymentID: "pay_8",
			Amount: provider.Money{Amount: 1000, Currency: "USD"}, Reference: "o8"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = newProvider().Refund(ctxT(t), payments.RefundRequest{Tenant: tenant(f, nil), IdempotencyKey: "r1", ID: p.ID})
		if provider.KindOf(err) != provider.KindInvalid {
			t.Fatalf("err = %v, want invalid", err)
		}
	})
	bad := map[string]payments.RefundRequest{
		"no key":          {ID: "555"},
		"negative amount": {ID: "555", IdempotencyKey: "k", Amount: provider.Money{Amount: -1, Currency: "CLP"}},
		"no currency":     {ID: "555", IdempotencyKey: "k", Amount: provider.Money{Amount: 100}},
		"bad id":          {ID: "x", IdempotencyKey: "k"},
	}
	t.Run("currency mismatch", func(t *testing.T) {
		f := newFakeMP(t)
		f.addPayment(fakePayment{ID: 555, Status: "approved", CurrencyID: "CLP", TransactionAmount: 12990})
		_, err := newProvider().Refund(ctxT(t), payments.RefundRequest{Tenant: tenant(f, nil), IdempotencyKey: "k", ID: "555", Amount: provider.Money{Amount: 100, Currency: "USD"}})
		if provider.KindOf(err) != provider.KindInvalid {
			t.Fatalf("err = %v, want invalid", err)
		}
		if got := f.payment(555); len(got.Refunds) != 0 {
			t.Error("a refund in the wrong currency was made")
		}
	})
	for name, req := range bad {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			req.Tenant = tenant(f, nil)
			if _, err := newProvider().Refund(ctxT(t), req); provider.KindOf(err) != provider.KindInvalid {
				t.Fatalf("err = %v, want invalid", err)
			}
			if n := len(f.recorded()); n != 0 {
				t.Errorf("%d requests reached the API", n)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	tests := map[string]struct {
		status string
		id     string
		want   provider.Kind // 0: success
	}{
		"pending":    {status: "pending", id: "777"},
		"in_process": {status: "in_process", id: "777"},
		"approved":   {status: "approved", id: "777", want: provider.KindInvalid},
		"preference": {status: "pending", id: "987654321-abc", want: provider.KindInvalid},
		"unknown":    {status: "pending", id: "778", want: provider.KindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			f.addPayment(fakePayment{ID: 777, Status: tc.status, CurrencyID: "CLP", TransactionAmount: 500})
			p, err := newProvider().Cancel(ctxT(t), payments.CancelRequest{Tenant: tenant(f, nil), IdempotencyKey: "cancel-1", ID: tc.id})
			if provider.KindOf(err) != tc.want {
				t.Fatalf("err = %v (kind %s), want kind %s", err, provider.KindOf(err), tc.want)
			}
			if tc.want != 0 {
				return
			}
			if p.Status != payments.StatusCancelled || p.ID != "777" {
				t.Fatalf("payment = %+v", p)
			}
			rec := lastRequest(t, f, http.MethodPut, "/v1/payments/777")
			if string(rec.Body) != `{"status":"cancelled"}` || rec.Header.Get("X-Idempotency-Key") != "cancel-1" {
				t.Errorf("request = %s key %q", rec.Body, rec.Header.Get("X-Idempotency-Key"))
			}
		})
	}
}

func TestErrorClassification(t *testing.T) {
	tests := map[string]struct {
		status     int
		body       string
		header     http.Header
		want       provider.Kind
		wantCode   string
		wantAfter  time.Duration
		wantInText string
	}{
		"401":          {status: 401, body: `{"message":"invalid access token","error":"unauthorized","status":401,"cause":[]}`, want: provider.KindUnauthorized, wantCode: "unauthorized"},
		"403":          {status: 403, body: `{"message":"forbidden","error":"forbidden","status":403,"cause":[]}`, want: provider.KindUnauthorized, wantCode: "forbidden"},
		"400":          {status: 400, body: `{"message":"currency_id invalid","error":"bad_request","status":400,"cause":[{"code":4,"description":"x"}]}`, want: provider.KindInvalid, wantCode: "bad_request", wantInText: "currency_id invalid"},
		"404":          {status: 404, body: `{"message":"not found","error":"not_found","status":404,"cause":[]}`, want: provider.KindInvalid, wantCode: "not_found"},
		"422":          {status: 422, body: `{"message":"unprocessable","error":"unprocessable_entity","status":422,"cause":[]}`, want: provider.KindInvalid, wantCode: "unprocessable_entity"},
		"429":          {status: 429, body: `{"message":"too many requests","error":"too_many_requests","status":429,"cause":[]}`, header: http.Header{"Retry-After": {"7"}}, want: provider.KindRateLimited, wantCode: "too_many_requests", wantAfter: 7 * time.Second},
		"500":          {status: 500, body: `{"message":"internal error","error":"internal_error","status":500,"cause":[]}`, want: provider.KindRetryable, wantCode: "internal_error"},
		"502 html":     {status: 502, body: `<html>bad gateway</html>`, want: provider.KindRetryable, wantInText: "bad gateway"},
		"token in 400": {status: 400, body: `{"message":"token ` + fakeToken + ` is malformed","error":"bad_request","status":400,"cause":[]}`, want: provider.KindInvalid, wantCode: "bad_request"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			f.failWith(tc.status, tc.body, tc.header)
			_, err := newProvider().GetPayment(ctxT(t), payments.GetRequest{Tenant: tenant(f, nil), ID: "123"})
			if provider.KindOf(err) != tc.want || provider.CodeOf(err) != tc.wantCode || provider.RetryAfter(err) != tc.wantAfter {
				t.Fatalf("err = %v: kind %s code %q retry-after %s, want %s %q %s", err, provider.KindOf(err), provider.CodeOf(err), provider.RetryAfter(err), tc.want, tc.wantCode, tc.wantAfter)
			}
			if strings.Contains(err.Error(), fakeToken) {
				t.Errorf("error leaks the access token: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "mercadopago: get payment: ") || !strings.Contains(err.Error(), tc.wantInText) {
				t.Errorf("message = %q, want it to quote %q", err, tc.wantInText)
			}
		})
	}
	t.Run("deadline", func(t *testing.T) {
		f := newFakeMP(t)
		f.stallAll()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := newProvider().CreatePayment(ctx, payments.CreateRequest{Tenant: tenant(f, nil), IdempotencyKey: "k", Amount: provider.Money{Amount: 1, Currency: "USD"}})
		if provider.KindOf(err) != provider.KindRetryable || !errors.Is(err, context.DeadlineExceeded) || !provider.IsTimeout(err) {
			t.Fatalf("err = %v (kind %s), want retryable wrapping context.DeadlineExceeded", err, provider.KindOf(err))
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		f := newFakeMP(t)
		url := f.URL
		f.Close()
		ten := provider.NewTenant("acme", map[string]string{provider.BaseURLField: url}, map[string]string{fieldAccessToken: fakeToken})
		_, err := newProvider().GetPayment(ctxT(t), payments.GetRequest{Tenant: ten, ID: "1"})
		if provider.KindOf(err) != provider.KindRetryable || strings.Contains(err.Error(), fakeToken) {
			t.Fatalf("err = %v, want retryable without the token", err)
		}
	})
}

func TestBaseURLPath(t *testing.T) {
	f := newFakeMP(t)
	f.addPayment(fakePayment{ID: 42, Status: "approved", CurrencyID: "USD", TransactionAmount: 1})
	// A base URL with a path prefixes every API path; the fake has no
	// route under /proxy, so the request must arrive there and 404.
	ten := tenant(f, map[string]string{provider.BaseURLField: f.URL + "/proxy/"})
	_, err := newProvider().GetPayment(ctxT(t), payments.GetRequest{Tenant: ten, ID: "42"})
	if provider.KindOf(err) != provider.KindInvalid {
		t.Fatalf("err = %v, want invalid (404)", err)
	}
	lastRequest(t, f, http.MethodGet, "/proxy/v1/payments/42")
}

func TestAmountConversion(t *testing.T) {
	tests := map[string]struct {
		minor    int64
		currency string
		major    float64
	}{
		"USD": {1999, "USD", 19.99}, "CLP": {12990, "CLP", 12990}, "BRL": {10, "BRL", 0.1},
		"large ARS": {123456789, "ARS", 1234567.89}, "JPY": {500, "JPY", 500},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := toMajor(tc.minor, tc.currency); got != tc.major {
				t.Errorf("toMajor = %v, want %v", got, tc.major)
			}
			if got := toMinor(tc.major, tc.currency); got != tc.minor {
				t.Errorf("toMinor = %v, want %v", got, tc.minor)
			}
		})
	}
}
