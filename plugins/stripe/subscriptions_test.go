package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	stripe "github.com/stripe/stripe-go/v76"
)

func subscriptionRequest(tenant provider.Tenant) payments.SubscriptionRequest {
	return payments.SubscriptionRequest{
		Tenant:         tenant,
		IdempotencyKey: "acme:subscribe:sub_01",
		SubscriptionID: "sub_01JDQF7H9K1M3N5P7Q9R1S3T5V",
		Plan: payments.Plan{
			Amount:        provider.Money{Amount: 1500, Currency: "USD"},
			Interval:      payments.IntervalMonth,
			IntervalCount: 3,
		},
		Customer:    payments.Customer{Email: "ana@example.com", Name: "Ana"},
		Reference:   "plan-gold-42",
		Description: "Gold plan",
		ReturnURL:   "https://tenant.example/subscribed?lang=es",
	}
}

func TestCreateSubscriptionAmountPlan(t *testing.T) {
	up := mockUpstream(t)
	req := subscriptionRequest(testTenant(up.URL, fieldAccount, "acct_123"))

	got, err := newProvider().CreateSubscription(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.ID, "cs_") || got.Status != payments.SubscriptionPending || !strings.HasPrefix(got.RedirectURL, "https://") {
		t.Errorf("subscription = %+v, want a pending cs_ session with Stripe's hosted page", got)
	}

	sent := up.only(t)
	if sent.Method != "POST" || sent.Path != "/v1/checkout/sessions" {
		t.Errorf("request = %s %s, want POST /v1/checkout/sessions", sent.Method, sent.Path)
	}
	for h, want := range map[string]string{"Idempotency-Key": req.IdempotencyKey, "Stripe-Account": "acct_123"} {
		if got := sent.Header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	back := "https://tenant.example/subscribed?lang=es&subscription_id=sub_01JDQF7H9K1M3N5P7Q9R1S3T5V"
	wantForm(t, sent, map[string]string{
		"mode":                                                  "subscription",
		"line_items[0][price_data][currency]":                   "usd",
		"line_items[0][price_data][unit_amount]":                "1500",
		"line_items[0][price_data][product_data][name]":         "Gold plan",
		"line_items[0][price_data][recurring][interval]":        "month",
		"line_items[0][price_data][recurring][interval_count]":  "3",
		"line_items[0][quantity]":                               "1",
		"success_url":                                           back,
		"cancel_url":                                            back,
		"client_reference_id":                                   req.SubscriptionID,
		"customer_email":                                        "ana@example.com",
		"metadata[pipecore_subscription_id]":                    req.SubscriptionID,
		"metadata[reference]":                                   "plan-gold-42",
		"subscription_data[metadata][pipecore_subscription_id]": req.SubscriptionID,
		"subscription_data[metadata][reference]":                "plan-gold-42",
		"subscription_data[description]":                        "Gold plan",
	})
	wantNoForm(t, sent, "line_items[0][price]", "payment_intent_data[metadata][pipecore_payment_id]")
}

func TestCreateSubscriptionPlanID(t *testing.T) {
	up := mockUpstream(t)
	req := subscriptionRequest(testTenant(up.URL))
	req.Plan = payments.Plan{PlanID: "price_1QyD1cLkdIwHu7ixPl4Mn6Bv"}
	req.Description, req.Reference, req.Customer = "", "", payments.Customer{}
	if _, err := newProvider().CreateSubscription(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	sent := up.only(t)
	wantForm(t, sent, map[string]string{
		"mode":                    "subscription",
		"line_items[0][price]":    "price_1QyD1cLkdIwHu7ixPl4Mn6Bv",
		"line_items[0][quantity]": "1",
	})
	wantNoForm(t, sent, "line_items[0][price_data][currency]", "customer_email", "metadata[reference]", "subscription_data[description]")
	if h := sent.Header.Get("Stripe-Account"); h != "" {
		t.Errorf("Stripe-Account = %q without the account setting", h)
	}
}

func TestCreateSubscriptionDefaults(t *testing.T) {
	up := mockUpstream(t)
	req := subscriptionRequest(testTenant(up.URL))
	req.Plan.IntervalCount, req.Plan.Interval = 0, payments.IntervalWeek
	req.Description, req.Reference = "", ""
	if _, err := newProvider().CreateSubscription(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	wantForm(t, up.only(t), map[string]string{
		"line_items[0][price_data][recurring][interval]":       "week",
		"line_items[0][price_data][recurring][interval_count]": "1",
		"line_items[0][price_data][product_data][name]":        "Subscription",
	})
}

func TestCreateSubscriptionRejectsBadInput(t *testing.T) {
	tests := map[string]func(*payments.SubscriptionRequest){
		"no plan":             func(r *payments.SubscriptionRequest) { r.Plan = payments.Plan{} },
		"zero amount":         func(r *payments.SubscriptionRequest) { r.Plan.Amount.Amount = 0 },
		"lower-case currency": func(r *payments.SubscriptionRequest) { r.Plan.Amount.Currency = "usd" },
		"no interval":         func(r *payments.SubscriptionRequest) { r.Plan.Interval = "" },
		"unknown interval":    func(r *payments.SubscriptionRequest) { r.Plan.Interval = "fortnight" },
		"negative count":      func(r *payments.SubscriptionRequest) { r.Plan.IntervalCount = -1 },
		"no idempotency key":  func(r *payments.SubscriptionRequest) { r.IdempotencyKey = "" },
		"idempotency key 256": func(r *payments.SubscriptionRequest) { r.IdempotencyKey = strings.Repeat("k", 256) },
		"no return URL":       func(r *payments.SubscriptionRequest) { r.ReturnURL = "" },
		"relative return URL": func(r *payments.SubscriptionRequest) { r.ReturnURL = "/back" },
		"malformed base URL":  func(r *payments.SubscriptionRequest) { r.Tenant = testTenant("ftp://mock") },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			up := mockUpstream(t)
			req := subscriptionRequest(testTenant(up.URL))
			mutate(&req)
			_, err := newProvider().CreateSubscription(context.Background(), req)
			wantKind(t, err, provider.KindInvalid)
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream received %d requests, want none for bad input", n)
			}
		})
	}
}

func TestGetSubscription(t *testing.T) {
	up := mockUpstream(t)
	p := newProvider()
	tenant := testTenant(up.URL)
	created, err := p.CreateSubscription(context.Background(), subscriptionRequest(tenant))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("checkout session", func(t *testing.T) {
		got, err := p.GetSubscription(context.Background(), payments.GetRequest{Tenant: tenant, ID: created.ID})
		if err != nil {
			t.Fatal(err)
		}
		// stripe-mock's session is open.
		if got.ID != created.ID || got.Status != payments.SubscriptionPending || got.RedirectURL == "" {
			t.Errorf("subscription = %+v, want %s pending with a RedirectURL", got, created.ID)
		}
		reqs := up.requests()
		sent := reqs[len(reqs)-1]
		if sent.Method != "GET" || sent.Path != "/v1/checkout/sessions/"+created.ID {
			t.Errorf("request = %s %s, want GET of the session", sent.Method, sent.Path)
		}
		wantForm(t, sent, map[string]string{"expand[0]": "subscription"})
		if h := sent.Header.Get("Idempotency-Key"); h != "" {
			t.Errorf("Idempotency-Key = %q on a GET", h)
		}
	})
	t.Run("subscription", func(t *testing.T) {
		got, err := p.GetSubscription(context.Background(), payments.GetRequest{Tenant: tenant, ID: "sub_1QyD2fLkdIwHu7ixQw3Er5Ty"})
		if err != nil {
			t.Fatal(err)
		}
		// stripe-mock's subscription fixture is active.
		if got.ID != "sub_1QyD2fLkdIwHu7ixQw3Er5Ty" || got.Status != payments.SubscriptionActive {
			t.Errorf("subscription = %+v, want the active sub_", got)
		}
		reqs := up.requests()
		if sent := reqs[len(reqs)-1]; sent.Method != "GET" || sent.Path != "/v1/subscriptions/sub_1QyD2fLkdIwHu7ixQw3Er5Ty" {
			t.Errorf("request = %s %s, want GET /v1/subscriptions/sub_…", sent.Method, sent.Path)
		}
	})
	t.Run("payment session", func(t *testing.T) {
		// stripe-mock says every session it did not create here is in
		// payment mode.
		_, err := p.GetSubscription(context.Background(), payments.GetRequest{Tenant: tenant, ID: "cs_test_payment"})
		wantKind(t, err, provider.KindInvalid)
		if !strings.Contains(err.Error(), "payment mode") {
			t.Errorf("message = %q, want it to name the payment mode", err.Error())
		}
	})
}

func TestSubscriptionIDsAreChecked(t *testing.T) {
	ids := map[string]string{
		"empty":          "",
		"prefix only":    "sub_",
		"payment intent": "pi_123",
		"path traversal": "sub_123/../../v1/refunds",
		"query":          "cs_123?expand[]=x",
	}
	p := newProvider()
	for name, id := range ids {
		t.Run(name, func(t *testing.T) {
			up := mockUpstream(t)
			tenant := testTenant(up.URL)
			_, err := p.GetSubscription(context.Background(), payments.GetRequest{Tenant: tenant, ID: id})
			wantKind(t, err, provider.KindInvalid)
			_, err = p.CancelSubscription(context.Background(), payments.CancelRequest{Tenant: tenant, ID: id, IdempotencyKey: "k"})
			wantKind(t, err, provider.KindInvalid)
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream received %d requests, want none", n)
			}
		})
	}
}

func TestCancelOpenSession(t *testing.T) {
	up := mockUpstream(t)
	p := newProvider()
	tenant := testTenant(up.URL)
	created, err := p.CreateSubscription(context.Background(), subscriptionRequest(tenant))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.CancelSubscription(context.Background(), payments.CancelRequest{Tenant: tenant, IdempotencyKey: "acme:cancel:1", ID: created.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != created.ID || got.Status != payments.SubscriptionCancelled {
		t.Errorf("subscription = %+v, want %s cancelled", got, created.ID)
	}
	wantCalls(t, up.requests()[1:],
		"GET /v1/checkout/sessions/"+created.ID,
		"POST /v1/checkout/sessions/"+created.ID+"/expire acme:cancel:1")
}

func TestCancelSubscriptionID(t *testing.T) {
	up := mockUpstream(t)
	got, err := newProvider().CancelSubscription(context.Background(), payments.CancelRequest{Tenant: testTenant(up.URL), IdempotencyKey: "acme:cancel:2", ID: "sub_1QyD2fLkdIwHu7ixQw3Er5Ty"})
	if err != nil {
		t.Fatal(err)
	}
	// stripe-mock answers with its active fixture; a successful DELETE has
	// cancelled the subscription all the same.
	if got.ID != "sub_1QyD2fLkdIwHu7ixQw3Er5Ty" || got.Status != payments.SubscriptionCancelled {
		t.Errorf("subscription = %+v, want it cancelled", got)
	}
	wantCalls(t, up.requests(), "DELETE /v1/subscriptions/sub_1QyD2fLkdIwHu7ixQw3Er5Ty acme:cancel:2")
}

// sessionJSON is a subscription-mode Checkout Session; sub is its
// expanded subscription (JSON) or null.
func sessionJSON(status, sub string) string {
	return fmt.Sprintf(`{"id":"cs_test_sub","object":"checkout.session","mode":"subscription","status":%q,"payment_status":"paid",`+
		`"url":null,"subscription":%s}`, status, sub)
}

const periodEnd = 1801058590 // 2027-01-27T14:03:10Z

func subscriptionJSON(status string) string {
	return fmt.Sprintf(`{"id":"sub_1QyD2fLkdIwHu7ixQw3Er5Ty","object":"subscription","status":%q,"current_period_end":%d}`, status, periodEnd)
}

// scripted answers GETs of the session with the given bodies in turn, the
// expire call with expire (forwarded when empty), and forwards the rest to
// stripe-mock.
func scripted(up *upstream, expire string, sessions ...string) http.HandlerFunc {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, sessionsPath+"/"):
			body := sessions[min(int(n.Add(1))-1, len(sessions)-1)]
			respond(http.StatusOK, nil, body)(w, r)
		case strings.HasSuffix(r.URL.Path, "/expire") && expire != "":
			respond(http.StatusBadRequest, nil, expire)(w, r)
		default:
			up.proxy.ServeHTTP(w, r)
		}
	}
}

func TestCancelSessionStates(t *testing.T) {
	const sub = "sub_1QyD2fLkdIwHu7ixQw3Er5Ty"
	notOpen := `{"error":{"type":"invalid_request_error","message":"Only Checkout Sessions with a status of open can be expired."}}`
	tests := map[string]struct {
		expire    string
		sessions  []string
		calls     []string
		periodEnd bool
	}{
		"completed": {
			sessions:  []string{sessionJSON("complete", subscriptionJSON("active"))},
			calls:     []string{"GET /v1/checkout/sessions/cs_test_sub", "DELETE /v1/subscriptions/" + sub + " key:delete"},
			periodEnd: true,
		},
		"completed, past due": {
			sessions:  []string{sessionJSON("complete", subscriptionJSON("past_due"))},
			calls:     []string{"GET /v1/checkout/sessions/cs_test_sub", "DELETE /v1/subscriptions/" + sub + " key:delete"},
			periodEnd: true,
		},
		"completed, already cancelled": {
			sessions:  []string{sessionJSON("complete", subscriptionJSON("canceled"))},
			calls:     []string{"GET /v1/checkout/sessions/cs_test_sub"},
			periodEnd: true,
		},
		"expired": {
			sessions: []string{sessionJSON("expired", "null")},
			calls:    []string{"GET /v1/checkout/sessions/cs_test_sub"},
		},
		"completed while expiring": {
			expire:    notOpen,
			sessions:  []string{sessionJSON("open", "null"), sessionJSON("complete", subscriptionJSON("active"))},
			calls:     []string{"GET /v1/checkout/sessions/cs_test_sub", "POST /v1/checkout/sessions/cs_test_sub/expire key", "GET /v1/checkout/sessions/cs_test_sub", "DELETE /v1/subscriptions/" + sub + " key:delete"},
			periodEnd: true,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := mockUpstream(t)
			up.answer(scripted(up, tt.expire, tt.sessions...))
			got, err := newProvider().CancelSubscription(context.Background(), payments.CancelRequest{Tenant: testTenant(up.URL), IdempotencyKey: "key", ID: "cs_test_sub"})
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != "cs_test_sub" || got.Status != payments.SubscriptionCancelled {
				t.Errorf("subscription = %+v, want cs_test_sub cancelled", got)
			}
			if want := time.Unix(periodEnd, 0).UTC(); tt.periodEnd && !got.CurrentPeriodEnd.Equal(want) {
				t.Errorf("CurrentPeriodEnd = %v, want %v", got.CurrentPeriodEnd, want)
			}
			wantCalls(t, up.requests(), tt.calls...)
		})
	}
}

func TestCancelSessionFailures(t *testing.T) {
	notOpen := `{"error":{"type":"invalid_request_error","message":"Only Checkout Sessions with a status of open can be expired."}}`
	tests := map[string]struct {
		expire   string
		sessions []string
	}{
		"complete without subscription": {sessions: []string{sessionJSON("complete", "null")}},
		"expire refused twice":          {expire: notOpen, sessions: []string{sessionJSON("open", "null")}},
		"payment session":               {sessions: []string{strings.Replace(sessionJSON("open", "null"), `"subscription","status"`, `"payment","status"`, 1)}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := mockUpstream(t)
			up.answer(scripted(up, tt.expire, tt.sessions...))
			_, err := newProvider().CancelSubscription(context.Background(), payments.CancelRequest{Tenant: testTenant(up.URL), IdempotencyKey: "key", ID: "cs_test_sub"})
			wantKind(t, err, provider.KindInvalid)
			for _, r := range up.requests() {
				if r.Method == http.MethodDelete {
					t.Errorf("%s %s sent", r.Method, r.Path)
				}
			}
		})
	}
}

// wantCalls compares the requests with "METHOD path[ idempotency-key]".
func wantCalls(t testing.TB, reqs []seenRequest, want ...string) {
	t.Helper()
	var got []string
	for _, r := range reqs {
		s := r.Method + " " + r.Path
		if k := r.Header.Get("Idempotency-Key"); k != "" {
			s += " " + k
		}
		got = append(got, s)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDeleteKey(t *testing.T) {
	long := strings.Repeat("k", maxIdempotencyKey)
	for key, want := range map[string]string{
		"":              "",
		"acme:cancel:1": "acme:cancel:1:delete",
		long[:248]:      long[:248] + ":delete",
	} {
		if got := deleteKey(key); got != want {
			t.Errorf("deleteKey(%q) = %q, want %q", key, got, want)
		}
	}
	// Past the limit the key is hashed: still within it, and distinct.
	a, b := deleteKey(long[:249]), deleteKey(long)
	if len(a) > maxIdempotencyKey || !strings.HasSuffix(a, ":delete") || a == b || a == deleteKey(long[:248]) {
		t.Errorf("deleteKey of long keys = %q and %q, want distinct hashed keys", a, b)
	}
}

func TestSessionSubscription(t *testing.T) {
	end := time.Unix(periodEnd, 0).UTC()
	tests := map[string]struct {
		session  stripe.CheckoutSession
		want     payments.SubscriptionStatus
		redirect bool
		end      bool
	}{
		"open":                 {session: stripe.CheckoutSession{Status: stripe.CheckoutSessionStatusOpen, URL: "https://checkout.stripe.com/c/pay/cs_1"}, want: payments.SubscriptionPending, redirect: true},
		"expired":              {session: stripe.CheckoutSession{Status: stripe.CheckoutSessionStatusExpired}, want: payments.SubscriptionCancelled},
		"complete, no sub":     {session: stripe.CheckoutSession{Status: stripe.CheckoutSessionStatusComplete, PaymentStatus: stripe.CheckoutSessionPaymentStatusPaid}, want: payments.SubscriptionActive},
		"complete, unpaid":     {session: stripe.CheckoutSession{Status: stripe.CheckoutSessionStatusComplete, PaymentStatus: stripe.CheckoutSessionPaymentStatusUnpaid}, want: payments.SubscriptionPending},
		"complete, sub id":     {session: stripe.CheckoutSession{Status: stripe.CheckoutSessionStatusComplete, Subscription: &stripe.Subscription{ID: "sub_1"}}, want: payments.SubscriptionActive},
		"complete, trialing":   {session: stripe.CheckoutSession{Status: stripe.CheckoutSessionStatusComplete, Subscription: &stripe.Subscription{ID: "sub_1", Status: stripe.SubscriptionStatusTrialing, CurrentPeriodEnd: periodEnd}}, want: payments.SubscriptionActive, end: true},
		"complete, unpaid sub": {session: stripe.CheckoutSession{Status: stripe.CheckoutSessionStatusComplete, Subscription: &stripe.Subscription{ID: "sub_1", Status: stripe.SubscriptionStatusUnpaid, CurrentPeriodEnd: periodEnd}}, want: payments.SubscriptionPastDue, end: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			tt.session.ID = "cs_1"
			got := sessionSubscription(&tt.session)
			if got.ID != "cs_1" || got.Status != tt.want || (got.RedirectURL != "") != tt.redirect || got.CurrentPeriodEnd.Equal(end) != tt.end {
				t.Errorf("sessionSubscription = %+v, want status %s, redirect %v, period end %v", got, tt.want, tt.redirect, tt.end)
			}
		})
	}
}

func TestSubscriptionStatus(t *testing.T) {
	tests := map[stripe.SubscriptionStatus]payments.SubscriptionStatus{
		stripe.SubscriptionStatusActive:            payments.SubscriptionActive,
		stripe.SubscriptionStatusTrialing:          payments.SubscriptionActive,
		stripe.SubscriptionStatusPastDue:           payments.SubscriptionPastDue,
		stripe.SubscriptionStatusUnpaid:            payments.SubscriptionPastDue,
		stripe.SubscriptionStatusPaused:            payments.SubscriptionPaused,
		stripe.SubscriptionStatusCanceled:          payments.SubscriptionCancelled,
		stripe.SubscriptionStatusIncompleteExpired: payments.SubscriptionCancelled,
		stripe.SubscriptionStatusIncomplete:        payments.SubscriptionPending,
		"something_new":                            payments.SubscriptionPending,
	}
	for in, want := range tests {
		if got := subscriptionStatus(in); got != want {
			t.Errorf("subscriptionStatus(%q) = %q, want %q", in, got, want)
		}
	}
}
