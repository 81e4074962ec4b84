package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

func subscriptionRequest(f *fakeMP) payments.SubscriptionRequest {
	return payments.SubscriptionRequest{
		Tenant:         tenant(f, nil),
		IdempotencyKey: "acme:subscribe:sub_01",
		SubscriptionID: "sub_01JDQF7H9K1M3N5P7Q9R1S3T5V",
		Plan:           payments.Plan{Amount: provider.Money{Amount: 9990, Currency: "CLP"}, Interval: payments.IntervalMonth, IntervalCount: 1},
		Customer:       payments.Customer{Email: "ana@example.com", Name: "Ana"},
		Reference:      "plan-gold-42",
		Description:    "Gold plan",
		ReturnURL:      "https://tenant.example/subscribed",
	}
}

// sentPreapproval is the body of POST /preapproval.
type sentPreapproval struct {
	Reason            string `json:"reason"`
	ExternalReference string `json:"external_reference"`
	PayerEmail        string `json:"payer_email"`
	BackURL           string `json:"back_url"`
	Status            string `json:"status"`
	PreapprovalPlanID string `json:"preapproval_plan_id"`
	AutoRecurring     *struct {
		Frequency         int     `json:"frequency"`
		FrequencyType     string  `json:"frequency_type"`
		TransactionAmount float64 `json:"transaction_amount"`
		CurrencyID        string  `json:"currency_id"`
	} `json:"auto_recurring"`
}

func TestCreateSubscription(t *testing.T) {
	tests := map[string]struct {
		plan       payments.Plan
		freq       int
		freqType   string
		amount     float64
		currency   string
		noDescribe bool
		reason     string
	}{
		"monthly CLP":     {plan: payments.Plan{Amount: provider.Money{Amount: 9990, Currency: "CLP"}, Interval: payments.IntervalMonth, IntervalCount: 1}, freq: 1, freqType: "months", amount: 9990, currency: "CLP", reason: "Gold plan"},
		"every two weeks": {plan: payments.Plan{Amount: provider.Money{Amount: 1999, Currency: "USD"}, Interval: payments.IntervalWeek, IntervalCount: 2}, freq: 14, freqType: "days", amount: 19.99, currency: "USD", reason: "Gold plan"},
		"yearly":          {plan: payments.Plan{Amount: provider.Money{Amount: 120000, Currency: "ARS"}, Interval: payments.IntervalYear, IntervalCount: 1}, freq: 12, freqType: "months", amount: 1200, currency: "ARS", reason: "Gold plan"},
		"daily, count 0":  {plan: payments.Plan{Amount: provider.Money{Amount: 500, Currency: "CLP"}, Interval: payments.IntervalDay}, freq: 1, freqType: "days", amount: 500, currency: "CLP", noDescribe: true, reason: "plan-gold-42"},
		"quarterly":       {plan: payments.Plan{Amount: provider.Money{Amount: 29970, Currency: "CLP"}, Interval: payments.IntervalMonth, IntervalCount: 3}, freq: 3, freqType: "months", amount: 29970, currency: "CLP", reason: "Gold plan"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			req := subscriptionRequest(f)
			req.Plan = tc.plan
			if tc.noDescribe {
				req.Description = ""
			}
			got, err := newProvider().CreateSubscription(ctxT(t), req)
			if err != nil {
				t.Fatalf("CreateSubscription: %v", err)
			}
			if got.ID == "" || got.Status != payments.SubscriptionPending || !strings.HasSuffix(got.RedirectURL, "preapproval_id="+got.ID) {
				t.Fatalf("subscription = %+v, want pending with the init_point", got)
			}
			rec := lastRequest(t, f, http.MethodPost, "/preapproval")
			if k := rec.Header.Get("X-Idempotency-Key"); k != req.IdempotencyKey {
				t.Errorf("X-Idempotency-Key = %q, want %q", k, req.IdempotencyKey)
			}
			var body sentPreapproval
			if err := json.Unmarshal(rec.Body, &body); err != nil {
				t.Fatal(err)
			}
			r := body.AutoRecurring
			if body.Reason != tc.reason || body.ExternalReference != req.SubscriptionID || body.PayerEmail != "ana@example.com" ||
				body.BackURL != req.ReturnURL || body.Status != "pending" || body.PreapprovalPlanID != "" || r == nil ||
				r.Frequency != tc.freq || r.FrequencyType != tc.freqType || r.TransactionAmount != tc.amount || r.CurrencyID != tc.currency {
				t.Errorf("body = %s", rec.Body)
			}
		})
	}
}

func TestCreateSubscriptionPlanID(t *testing.T) {
	f := newFakeMP(t)
	req := subscriptionRequest(f)
	req.Plan = payments.Plan{PlanID: "2c9380848f2d9c1b018f3a0c0b7a01e5"}
	got, err := newProvider().CreateSubscription(ctxT(t), req)
	if err != nil || got.Status != payments.SubscriptionPending || got.RedirectURL == "" {
		t.Fatalf("CreateSubscription = %+v, %v", got, err)
	}
	rec := lastRequest(t, f, http.MethodPost, "/preapproval")
	var body map[string]any
	if err := json.Unmarshal(rec.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body["preapproval_plan_id"] != req.Plan.PlanID || body["auto_recurring"] != nil {
		t.Errorf("body = %s, want preapproval_plan_id and no auto_recurring", rec.Body)
	}
}

func TestCreateSubscriptionIdempotent(t *testing.T) {
	f := newFakeMP(t)
	req := subscriptionRequest(f)
	a, err := newProvider().CreateSubscription(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newProvider().CreateSubscription(ctxT(t), req)
	if err != nil || b.ID != a.ID {
		t.Fatalf("repeated create = %+v, %v; want %s", b, err, a.ID)
	}
	req.IdempotencyKey = "acme:subscribe:sub_02"
	c, err := newProvider().CreateSubscription(ctxT(t), req)
	if err != nil || c.ID == a.ID {
		t.Fatalf("create with another key = %+v, %v; want a new preapproval", c, err)
	}
}

func TestCreateSubscriptionRejectsBadInput(t *testing.T) {
	tests := map[string]func(*payments.SubscriptionRequest){
		"no idempotency key":  func(r *payments.SubscriptionRequest) { r.IdempotencyKey = "" },
		"no email":            func(r *payments.SubscriptionRequest) { r.Customer.Email = " " },
		"no return URL":       func(r *payments.SubscriptionRequest) { r.ReturnURL = "" },
		"relative return URL": func(r *payments.SubscriptionRequest) { r.ReturnURL = "/back" },
		"no plan":             func(r *payments.SubscriptionRequest) { r.Plan = payments.Plan{} },
		"zero amount":         func(r *payments.SubscriptionRequest) { r.Plan.Amount.Amount = 0 },
		"lower-case currency": func(r *payments.SubscriptionRequest) { r.Plan.Amount.Currency = "clp" },
		"unknown interval":    func(r *payments.SubscriptionRequest) { r.Plan.Interval = "fortnight" },
		"no interval":         func(r *payments.SubscriptionRequest) { r.Plan.Interval = "" },
		"negative count":      func(r *payments.SubscriptionRequest) { r.Plan.IntervalCount = -2 },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			req := subscriptionRequest(f)
			mutate(&req)
			_, err := newProvider().CreateSubscription(ctxT(t), req)
			if provider.KindOf(err) != provider.KindInvalid {
				t.Fatalf("err = %v (kind %s), want invalid", err, provider.KindOf(err))
			}
			if n := len(f.recorded()); n != 0 {
				t.Errorf("%d requests sent for bad input", n)
			}
		})
	}
}

func TestGetSubscription(t *testing.T) {
	f := newFakeMP(t)
	p := newProvider()
	created, err := p.CreateSubscription(ctxT(t), subscriptionRequest(f))
	if err != nil {
		t.Fatal(err)
	}
	get := func() payments.Subscription {
		t.Helper()
		got, err := p.GetSubscription(ctxT(t), payments.GetRequest{Tenant: tenant(f, nil), ID: created.ID})
		if err != nil {
			t.Fatal(err)
		}
		lastRequest(t, f, http.MethodGet, "/preapproval/"+created.ID)
		return got
	}
	if got := get(); got.ID != created.ID || got.Status != payments.SubscriptionPending || got.RedirectURL != created.RedirectURL {
		t.Errorf("pending = %+v, want %+v", got, created)
	}
	for status, want := range map[string]payments.SubscriptionStatus{
		"authorized": payments.SubscriptionActive,
		"paused":     payments.SubscriptionPaused,
		"finished":   payments.SubscriptionCancelled,
		"cancelled":  payments.SubscriptionCancelled,
	} {
		f.setPreapprovalStatus(created.ID, status)
		if got := get(); got.Status != want || got.RedirectURL != "" || got.CurrentPeriodEnd.IsZero() {
			t.Errorf("%s = %+v, want %s with a period end and no RedirectURL", status, got, want)
		}
	}
}

func TestGetRecordedPreapproval(t *testing.T) {
	f := newFakeMP(t)
	f.loadPreapproval("2c938084726fca480172750000000000", "authorized")
	got, err := newProvider().GetSubscription(ctxT(t), payments.GetRequest{Tenant: tenant(f, nil), ID: "2c938084726fca480172750000000000"})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 6, 25, 17, 10, 14, 0, time.UTC)
	if got.Status != payments.SubscriptionActive || !got.CurrentPeriodEnd.Equal(want) || got.CurrentPeriodEnd.Location() != time.UTC {
		t.Errorf("subscription = %+v, want active until %v (next_payment_date, UTC)", got, want)
	}
}

func TestCancelSubscription(t *testing.T) {
	f := newFakeMP(t)
	p := newProvider()
	created, err := p.CreateSubscription(ctxT(t), subscriptionRequest(f))
	if err != nil {
		t.Fatal(err)
	}
	f.setPreapprovalStatus(created.ID, "authorized")
	cancel := func(key string) payments.Subscription {
		t.Helper()
		got, err := p.CancelSubscription(ctxT(t), payments.CancelRequest{Tenant: tenant(f, nil), IdempotencyKey: key, ID: created.ID})
		if err != nil {
			t.Fatalf("CancelSubscription: %v", err)
		}
		return got
	}
	if got := cancel("acme:cancel:1"); got.ID != created.ID || got.Status != payments.SubscriptionCancelled {
		t.Errorf("cancelled = %+v", got)
	}
	rec := lastRequest(t, f, http.MethodPut, "/preapproval/"+created.ID)
	if k := rec.Header.Get("X-Idempotency-Key"); k != "acme:cancel:1" {
		t.Errorf("X-Idempotency-Key = %q", k)
	}
	if strings.TrimSpace(string(rec.Body)) != `{"status":"cancelled"}` {
		t.Errorf("body = %s, want only the status", rec.Body)
	}
	if got := f.preapproval(created.ID)["status"]; got != "cancelled" {
		t.Errorf("fake status = %v", got)
	}
	// The same key replays; another key meets MercadoPago's refusal to
	// modify a cancelled preapproval, which reads as cancelled.
	if got := cancel("acme:cancel:1"); got.Status != payments.SubscriptionCancelled {
		t.Errorf("replayed cancel = %+v", got)
	}
	n := len(f.recorded())
	if got := cancel("acme:cancel:2"); got.Status != payments.SubscriptionCancelled {
		t.Errorf("second cancel = %+v", got)
	}
	if reqs := f.recorded()[n:]; len(reqs) != 2 || reqs[0].Method != http.MethodPut || reqs[1].Method != http.MethodGet {
		t.Errorf("second cancel sent %d requests, want PUT then GET", len(reqs))
	}
}

func TestCancelSubscriptionErrors(t *testing.T) {
	t.Run("unknown", func(t *testing.T) {
		f := newFakeMP(t)
		_, err := newProvider().CancelSubscription(ctxT(t), payments.CancelRequest{Tenant: tenant(f, nil), IdempotencyKey: "k", ID: "2c9380840000000000000000deadbeef"})
		if provider.KindOf(err) != provider.KindInvalid || provider.CodeOf(err) != "not_found" || !strings.HasPrefix(err.Error(), "mercadopago: cancel preapproval: ") {
			t.Fatalf("err = %v (kind %s, code %q), want the PUT's not_found", err, provider.KindOf(err), provider.CodeOf(err))
		}
	})
	t.Run("server error", func(t *testing.T) {
		f := newFakeMP(t)
		f.failWith(503, `{"message":"unavailable","error":"service_unavailable","status":503,"cause":[]}`, nil)
		_, err := newProvider().CancelSubscription(ctxT(t), payments.CancelRequest{Tenant: tenant(f, nil), IdempotencyKey: "k", ID: "2c938084726fca480172750000000000"})
		if provider.KindOf(err) != provider.KindRetryable {
			t.Fatalf("err = %v, want retryable", err)
		}
		if n := len(f.recorded()); n != 1 {
			t.Errorf("%d requests, want the PUT only", n)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		f := newFakeMP(t)
		ten := provider.NewTenant("acme", f.settings(), map[string]string{fieldAccessToken: "TEST-wrong-token-000000000000"})
		_, err := newProvider().GetSubscription(ctxT(t), payments.GetRequest{Tenant: ten, ID: "2c938084726fca480172750000000000"})
		if provider.KindOf(err) != provider.KindUnauthorized || strings.Contains(err.Error(), "wrong-token") {
			t.Fatalf("err = %v, want unauthorized without the token", err)
		}
	})
}

func TestSubscriptionIDsAreChecked(t *testing.T) {
	for name, id := range map[string]string{
		"empty":          "",
		"path traversal": "../v1/payments/1",
		"slash":          "2c93/8084",
		"query":          "2c938084?x=1",
		"too long":       strings.Repeat("a", 65),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			p := newProvider()
			_, err := p.GetSubscription(ctxT(t), payments.GetRequest{Tenant: tenant(f, nil), ID: id})
			if provider.KindOf(err) != provider.KindInvalid {
				t.Errorf("Get: err = %v, want invalid", err)
			}
			_, err = p.CancelSubscription(ctxT(t), payments.CancelRequest{Tenant: tenant(f, nil), IdempotencyKey: "k", ID: id})
			if provider.KindOf(err) != provider.KindInvalid {
				t.Errorf("Cancel: err = %v, want invalid", err)
			}
			if n := len(f.recorded()); n != 0 {
				t.Errorf("%d requests sent", n)
			}
		})
	}
}

func TestSubscriptionStatus(t *testing.T) {
	for in, want := range map[string]payments.SubscriptionStatus{
		"pending": payments.SubscriptionPending, "authorized": payments.SubscriptionActive, "paused": payments.SubscriptionPaused,
		"cancelled": payments.SubscriptionCancelled, "finished": payments.SubscriptionCancelled, "something_new": payments.SubscriptionPending,
	} {
		if got := subscriptionStatus(in); got != want {
			t.Errorf("subscriptionStatus(%q) = %q, want %q", in, got, want)
		}
	}
}
