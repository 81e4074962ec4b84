package main

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	stripe "github.com/stripe/stripe-go/v76"
)

const testKey = "sk_test_123"

// testTenant returns tenant "acme" with a key stripe-mock accepts, calling
// the API at base. settings are extra name/value pairs.
func testTenant(base string, settings ...string) provider.Tenant {
	s := map[string]string{provider.BaseURLField: base}
	for i := 0; i+1 < len(settings); i += 2 {
		s[settings[i]] = settings[i+1]
	}
	return provider.NewTenant("acme", s, map[string]string{fieldSecretKey: testKey})
}

// mockUpstream returns a recording proxy in front of the shared stripe-mock.
func mockUpstream(t testing.TB) *upstream {
	t.Helper()
	return newUpstream(t, startStripeMock(t))
}

func wantForm(t testing.TB, req seenRequest, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := req.Form.Get(k); got != v {
			t.Errorf("%s %s: form %s = %q, want %q", req.Method, req.Path, k, got, v)
		}
	}
}

func wantNoForm(t testing.TB, req seenRequest, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if req.Form.Has(k) {
			t.Errorf("%s %s: form %s = %q, want it absent", req.Method, req.Path, k, req.Form.Get(k))
		}
	}
}

func wantKind(t testing.TB, err error, want provider.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want a %s error", want)
	}
	if got := provider.KindOf(err); got != want {
		t.Fatalf("KindOf(%v) = %s, want %s", err, got, want)
	}
}

func createRequest(tenant provider.Tenant) payments.CreateRequest {
	return payments.CreateRequest{
		Tenant:         tenant,
		IdempotencyKey: "acme:create:pay_01",
		PaymentID:      "pay_01",
		Amount:         provider.Money{Amount: 12990, Currency: "CLP"},
		Reference:      "order-42",
		Description:    "Two coffees",
		Customer:       payments.Customer{Email: "ana@example.com", Name: "Ana"},
		Metadata:       map[string]string{"table": "7", metaReference: "spoofed"},
	}
}

func TestCreatePaymentIntent(t *testing.T) {
	up := mockUpstream(t)
	p := newProvider()

	got, err := p.CreatePayment(context.Background(), createRequest(testTenant(up.URL, fieldAccount, "acct_123")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.ID, "pi_") {
		t.Errorf("ID = %q, want a pi_ id", got.ID)
	}
	// stripe-mock answers with its fixture status, requires_payment_method.
	if got.Status != payments.StatusRequiresAction {
		t.Errorf("Status = %q, want %q", got.Status, payments.StatusRequiresAction)
	}
	if got.ClientSecret == "" {
		t.Error("ClientSecret is empty")
	}
	if want := (provider.Money{Amount: 12990, Currency: "CLP"}); got.Amount != want {
		t.Errorf("Amount = %v, want %v", got.Amount, want)
	}
	if got.RedirectURL != "" {
		t.Errorf("RedirectURL = %q, want none for an embedded flow", got.RedirectURL)
	}

	req := up.only(t)
	if req.Method != "POST" || req.Path != "/v1/payment_intents" {
		t.Errorf("request = %s %s, want POST /v1/payment_intents", req.Method, req.Path)
	}
	for h, want := range map[string]string{
		"Idempotency-Key": "acme:create:pay_01",
		"Authorization":   "Bearer " + testKey,
		"Stripe-Account":  "acct_123",
	} {
		if got := req.Header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	wantForm(t, req, map[string]string{
		"amount":                             "12990",
		"currency":                           "clp",
		"automatic_payment_methods[enabled]": "true",
		"description":                        "Two coffees",
		"receipt_email":                      "ana@example.com",
		"metadata[pipecore_payment_id]":      "pay_01",
		"metadata[reference]":                "order-42",
		"metadata[table]":                    "7",
	})
}

func TestCreatePaymentIntentOptionalFields(t *testing.T) {
	up := mockUpstream(t)
	req := payments.CreateRequest{
		Tenant:         testTenant(up.URL),
		IdempotencyKey: "k1",
		Amount:         provider.Money{Amount: 500, Currency: "USD"},
	}
	if _, err := newProvider().CreatePayment(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	sent := up.only(t)
	wantNoForm(t, sent, "description", "receipt_email", "metadata[pipecore_payment_id]", "metadata[reference]", "capture_method")
	if h := sent.Header.Get("Stripe-Account"); h != "" {
		t.Errorf("Stripe-Account = %q, want none without the account setting", h)
	}
}

// TestCreateManualCapture: ManualCapture authorizes only, on both flows.
func TestCreateManualCapture(t *testing.T) {
	up := mockUpstream(t)
	req := createRequest(testTenant(up.URL))
	req.ManualCapture = true
	if _, err := newProvider().CreatePayment(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	wantForm(t, up.only(t), map[string]string{"capture_method": "manual"})

	up = mockUpstream(t)
	req = createRequest(testTenant(up.URL))
	req.ManualCapture, req.ReturnURL = true, "https://shop.example/back"
	if _, err := newProvider().CreatePayment(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	wantForm(t, up.only(t), map[string]string{"payment_intent_data[capture_method]": "manual"})
}

func TestCreateCheckoutSession(t *testing.T) {
	up := mockUpstream(t)
	req := createRequest(testTenant(up.URL))
	req.ReturnURL = "https://shop.example/return?lang=es"

	got, err := newProvider().CreatePayment(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.ID, "cs_") {
		t.Errorf("ID = %q, want a cs_ id", got.ID)
	}
	if got.Status != payments.StatusRequiresAction {
		t.Errorf("Status = %q, want %q", got.Status, payments.StatusRequiresAction)
	}
	if !strings.HasPrefix(got.RedirectURL, "https://") {
		t.Errorf("RedirectURL = %q, want Stripe's hosted page", got.RedirectURL)
	}
	if want := req.Amount; got.Amount != want {
		t.Errorf("Amount = %v, want %v", got.Amount, want)
	}

	sent := up.only(t)
	if sent.Method != "POST" || sent.Path != "/v1/checkout/sessions" {
		t.Errorf("request = %s %s, want POST /v1/checkout/sessions", sent.Method, sent.Path)
	}
	if h := sent.Header.Get("Idempotency-Key"); h != req.IdempotencyKey {
		t.Errorf("Idempotency-Key = %q, want %q", h, req.IdempotencyKey)
	}
	back := "https://shop.example/return?lang=es&payment_id=pay_01"
	wantForm(t, sent, map[string]string{
		"mode":                                          "payment",
		"line_items[0][price_data][currency]":           "clp",
		"line_items[0][price_data][unit_amount]":        "12990",
		"line_items[0][price_data][product_data][name]": "Two coffees",
		"line_items[0][quantity]":                       "1",
		"success_url":                                   back,
		"cancel_url":                                    back,
		"client_reference_id":                           "order-42",
		"customer_email":                                "ana@example.com",
		"metadata[pipecore_payment_id]":                 "pay_01",
		"metadata[reference]":                           "order-42",
		"metadata[table]":                               "7",
		"payment_intent_data[metadata][pipecore_payment_id]": "pay_01",
		"payment_intent_data[metadata][reference]":           "order-42",
		"payment_intent_data[description]":                   "Two coffees",
	})
}

func TestCheckoutProductName(t *testing.T) {
	tests := map[string]struct {
		description, reference, want string
	}{
		"description wins": {"Two coffees", "order-42", "Two coffees"},
		"reference":        {"", "order-42", "order-42"},
		"fallback":         {"", "", "Payment"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := mockUpstream(t)
			req := createRequest(testTenant(up.URL))
			req.Description, req.Reference, req.ReturnURL = tt.description, tt.reference, "https://shop.example/back"
			if _, err := newProvider().CreatePayment(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			wantForm(t, up.only(t), map[string]string{"line_items[0][price_data][product_data][name]": tt.want})
		})
	}
}

func TestReturnURL(t *testing.T) {
	tests := map[string]struct {
		raw, paymentID, want string
		invalid              bool
	}{
		"plain":          {raw: "https://shop.example/back", paymentID: "pay_1", want: "https://shop.example/back?payment_id=pay_1"},
		"keeps query":    {raw: "https://shop.example/back?b=2&a=1", paymentID: "pay_1", want: "https://shop.example/back?b=2&a=1&payment_id=pay_1"},
		"keeps fragment": {raw: "http://localhost:3000/back#done", paymentID: "pay_1", want: "http://localhost:3000/back?payment_id=pay_1#done"},
		"escapes id":     {raw: "https://shop.example/back", paymentID: "a&b=c", want: "https://shop.example/back?payment_id=a%26b%3Dc"},
		"no payment id":  {raw: "https://shop.example/back", want: "https://shop.example/back"},
		"relative":       {raw: "/back", paymentID: "pay_1", invalid: true},
		"other scheme":   {raw: "javascript:alert(1)", paymentID: "pay_1", invalid: true},
		"unparseable":    {raw: "https://exa mple.com/%zz", paymentID: "pay_1", invalid: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := returnURL(tt.raw, "payment_id", tt.paymentID)
			if tt.invalid {
				wantKind(t, err, provider.KindInvalid)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("returnURL(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestCreatePaymentRejectsBadInput(t *testing.T) {
	tests := map[string]func(*payments.CreateRequest){
		"zero amount":         func(r *payments.CreateRequest) { r.Amount.Amount = 0 },
		"negative amount":     func(r *payments.CreateRequest) { r.Amount.Amount = -5 },
		"lower-case currency": func(r *payments.CreateRequest) { r.Amount.Currency = "clp" },
		"no idempotency key":  func(r *payments.CreateRequest) { r.IdempotencyKey = "" },
		"idempotency key 256": func(r *payments.CreateRequest) { r.IdempotencyKey = strings.Repeat("k", 256) },
		"relative return URL": func(r *payments.CreateRequest) { r.ReturnURL = "/back" },
		"malformed base URL":  func(r *payments.CreateRequest) { r.Tenant = testTenant("ftp://mock") },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			up := mockUpstream(t)
			req := createRequest(testTenant(up.URL))
			mutate(&req)
			_, err := newProvider().CreatePayment(context.Background(), req)
			wantKind(t, err, provider.KindInvalid)
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream received %d requests, want none for bad input", n)
			}
		})
	}
}

func TestIdempotencyKeyAtLimit(t *testing.T) {
	up := mockUpstream(t)
	req := createRequest(testTenant(up.URL))
	req.IdempotencyKey = strings.Repeat("k", maxIdempotencyKey)
	if _, err := newProvider().CreatePayment(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := up.only(t).Header.Get("Idempotency-Key"); got != req.IdempotencyKey {
		t.Errorf("Idempotency-Key has %d bytes, want the %d sent", len(got), maxIdempotencyKey)
	}
}

func TestGetPayment(t *testing.T) {
	tests := map[string]struct {
		id, path, expand string
		redirect         bool
	}{
		"payment intent":   {id: "pi_123", path: "/v1/payment_intents/pi_123", expand: "latest_charge"},
		"checkout session": {id: "cs_test_123", path: "/v1/checkout/sessions/cs_test_123", expand: "payment_intent.latest_charge", redirect: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := mockUpstream(t)
			got, err := newProvider().GetPayment(context.Background(), payments.GetRequest{Tenant: testTenant(up.URL), ID: tt.id})
			if err != nil {
				t.Fatal(err)
			}
			if !got.Status.Valid() {
				t.Errorf("Status = %q, not a catalog status", got.Status)
			}
			if got.ID != tt.id {
				t.Errorf("ID = %q, want %q", got.ID, tt.id)
			}
			if tt.redirect && got.RedirectURL == "" {
				t.Error("RedirectURL is empty for an open checkout session")
			}
			sent := up.only(t)
			if sent.Method != "GET" || sent.Path != tt.path {
				t.Errorf("request = %s %s, want GET %s", sent.Method, sent.Path, tt.path)
			}
			wantForm(t, sent, map[string]string{"expand[0]": tt.expand})
			if h := sent.Header.Get("Idempotency-Key"); h != "" {
				t.Errorf("Idempotency-Key = %q on a GET", h)
			}
		})
	}
}

func TestPaymentIDsAreChecked(t *testing.T) {
	ids := map[string]string{
		"empty":          "",
		"prefix only":    "pi_",
		"other object":   "ch_123",
		"path traversal": "pi_123/../../v1/refunds",
		"query":          "pi_123?expand[]=x",
	}
	p := newProvider()
	for name, id := range ids {
		t.Run(name, func(t *testing.T) {
			up := mockUpstream(t)
			tenant := testTenant(up.URL)
			_, err := p.GetPayment(context.Background(), payments.GetRequest{Tenant: tenant, ID: id})
			wantKind(t, err, provider.KindInvalid)
			_, err = p.Refund(context.Background(), payments.RefundRequest{Tenant: tenant, ID: id, IdempotencyKey: "k"})
			wantKind(t, err, provider.KindInvalid)
			_, err = p.Capture(context.Background(), payments.CaptureRequest{Tenant: tenant, ID: id, IdempotencyKey: "k"})
			wantKind(t, err, provider.KindInvalid)
			_, err = p.Cancel(context.Background(), payments.CancelRequest{Tenant: tenant, ID: id, IdempotencyKey: "k"})
			wantKind(t, err, provider.KindInvalid)
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream received %d requests, want none", n)
			}
		})
	}
}

func TestRefund(t *testing.T) {
	tests := map[string]struct {
		amount  int64
		reason  string
		want    map[string]string
		missing []string
	}{
		"full": {
			want:    map[string]string{"payment_intent": "pi_123"},
			missing: []string{"amount", "reason", "metadata[reason]"},
		},
		"partial": {
			amount: 500,
			want:   map[string]string{"payment_intent": "pi_123", "amount": "500"},
		},
		"stripe reason": {
			reason:  "requested_by_customer",
			want:    map[string]string{"reason": "requested_by_customer"},
			missing: []string{"metadata[reason]"},
		},
		"free-text reason": {
			reason:  "cold coffee",
			want:    map[string]string{"metadata[reason]": "cold coffee"},
			missing: []string{"reason"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := mockUpstream(t)
			got, err := newProvider().Refund(context.Background(), payments.RefundRequest{
				Tenant:         testTenant(up.URL),
				IdempotencyKey: "acme:refund:1",
				ID:             "pi_123",
				Amount:         provider.Money{Amount: tt.amount, Currency: "USD"},
				Reason:         tt.reason,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got.ID, "re_") || got.Status != "succeeded" {
				t.Errorf("refund = %+v, want a succeeded re_ refund (stripe-mock's fixture)", got)
			}
			sent := up.only(t)
			if sent.Method != "POST" || sent.Path != "/v1/refunds" {
				t.Errorf("request = %s %s, want POST /v1/refunds", sent.Method, sent.Path)
			}
			if h := sent.Header.Get("Idempotency-Key"); h != "acme:refund:1" {
				t.Errorf("Idempotency-Key = %q, want acme:refund:1", h)
			}
			wantForm(t, sent, tt.want)
			wantNoForm(t, sent, tt.missing...)
		})
	}
}

func TestRefundCheckoutSession(t *testing.T) {
	up := mockUpstream(t)
	got, err := newProvider().Refund(context.Background(), payments.RefundRequest{
		Tenant: testTenant(up.URL), IdempotencyKey: "acme:refund:2", ID: "cs_test_123",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID == "" {
		t.Error("refund has no id")
	}
	reqs := up.requests()
	if len(reqs) != 2 {
		t.Fatalf("upstream received %d requests, want the session read and the refund", len(reqs))
	}
	if reqs[0].Method != "GET" || reqs[0].Path != "/v1/checkout/sessions/cs_test_123" {
		t.Errorf("first request = %s %s, want GET of the session", reqs[0].Method, reqs[0].Path)
	}
	// stripe-mock's session fixture names a pi_ intent; whichever it is, the
	// refund must target it.
	if pi := reqs[1].Form.Get("payment_intent"); !strings.HasPrefix(pi, "pi_") {
		t.Errorf("refund payment_intent = %q, want the session's pi_ id", pi)
	}
	if h := reqs[1].Header.Get("Idempotency-Key"); h != "acme:refund:2" {
		t.Errorf("refund Idempotency-Key = %q, want acme:refund:2", h)
	}
}

func TestRefundUnpaidCheckoutSession(t *testing.T) {
	up := mockUpstream(t)
	up.answer(respond(200, nil, `{"id":"cs_test_123","object":"checkout.session","status":"open","payment_intent":null}`))
	_, err := newProvider().Refund(context.Background(), payments.RefundRequest{
		Tenant: testTenant(up.URL), IdempotencyKey: "k", ID: "cs_test_123",
	})
	wantKind(t, err, provider.KindInvalid)
	if n := len(up.requests()); n != 1 {
		t.Errorf("upstream received %d requests, want only the session read", n)
	}
}

func TestRefundNegativeAmount(t *testing.T) {
	up := mockUpstream(t)
	_, err := newProvider().Refund(context.Background(), payments.RefundRequest{
		Tenant: testTenant(up.URL), IdempotencyKey: "k", ID: "pi_123", Amount: provider.Money{Amount: -1, Currency: "USD"},
	})
	wantKind(t, err, provider.KindInvalid)
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream received %d requests, want none", n)
	}
}

func TestCapture(t *testing.T) {
	tests := map[string]struct {
		amount  int64
		want    map[string]string
		missing []string
	}{
		"full":    {missing: []string{"amount_to_capture"}},
		"partial": {amount: 700, want: map[string]string{"amount_to_capture": "700"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := mockUpstream(t)
			got, err := newProvider().Capture(context.Background(), payments.CaptureRequest{
				Tenant: testTenant(up.URL), IdempotencyKey: "acme:capture:1", ID: "pi_123",
				Amount: provider.Money{Amount: tt.amount, Currency: "USD"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != "pi_123" || !got.Status.Valid() {
				t.Errorf("payment = %+v, want pi_123 with a catalog status", got)
			}
			sent := up.only(t)
			if sent.Method != "POST" || sent.Path != "/v1/payment_intents/pi_123/capture" {
				t.Errorf("request = %s %s, want POST …/pi_123/capture", sent.Method, sent.Path)
			}
			if h := sent.Header.Get("Idempotency-Key"); h != "acme:capture:1" {
				t.Errorf("Idempotency-Key = %q, want acme:capture:1", h)
			}
			wantForm(t, sent, tt.want)
			wantNoForm(t, sent, tt.missing...)
		})
	}
}

func TestCancel(t *testing.T) {
	tests := map[string]struct {
		reason string
		sent   bool
	}{
		"no reason":        {},
		"stripe reason":    {reason: "requested_by_customer", sent: true},
		"abandoned":        {reason: "abandoned", sent: true},
		"free-text reason": {reason: "kitchen closed"},
		"automatic":        {reason: "automatic"}, // Stripe sets it; callers may not
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			up := mockUpstream(t)
			got, err := newProvider().Cancel(context.Background(), payments.CancelRequest{
				Tenant: testTenant(up.URL), IdempotencyKey: "acme:cancel:1", ID: "pi_123", Reason: tt.reason,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != "pi_123" || !got.Status.Valid() {
				t.Errorf("payment = %+v, want pi_123 with a catalog status", got)
			}
			sent := up.only(t)
			if sent.Method != "POST" || sent.Path != "/v1/payment_intents/pi_123/cancel" {
				t.Errorf("request = %s %s, want POST …/pi_123/cancel", sent.Method, sent.Path)
			}
			if h := sent.Header.Get("Idempotency-Key"); h != "acme:cancel:1" {
				t.Errorf("Idempotency-Key = %q, want acme:cancel:1", h)
			}
			if tt.sent {
				wantForm(t, sent, map[string]string{"cancellation_reason": tt.reason})
			} else {
				wantNoForm(t, sent, "cancellation_reason")
			}
		})
	}
}

func TestCaptureAndCancelRejectSessions(t *testing.T) {
	up := mockUpstream(t)
	p := newProvider()
	_, err := p.Capture(context.Background(), payments.CaptureRequest{Tenant: testTenant(up.URL), IdempotencyKey: "k", ID: "cs_test_123"})
	wantKind(t, err, provider.KindInvalid)
	_, err = p.Cancel(context.Background(), payments.CancelRequest{Tenant: testTenant(up.URL), IdempotencyKey: "k", ID: "cs_test_123"})
	wantKind(t, err, provider.KindInvalid)
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream received %d requests, want none", n)
	}
}

// Every call must carry its own tenant's key: nothing key-related may be
// cached across tenants.
func TestConcurrentTenantsKeepTheirKeys(t *testing.T) {
	up := mockUpstream(t)
	keys := map[string]string{"alpha": "sk_test_alpha1", "beta": "sk_test_beta2"}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		id := "alpha"
		if i%2 == 1 {
			id = "beta"
		}
		tenant := provider.NewTenant(id, map[string]string{provider.BaseURLField: up.URL}, map[string]string{fieldSecretKey: keys[id]})
		wg.Go(func() {
			req := createRequest(tenant)
			req.PaymentID = fmt.Sprintf("%s-%d", id, i)
			req.IdempotencyKey = req.PaymentID
			if _, err := newProvider().CreatePayment(context.Background(), req); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, r := range up.requests() {
		id, _, _ := strings.Cut(r.Form.Get("metadata[pipecore_payment_id]"), "-")
		if got, want := r.Header.Get("Authorization"), "Bearer "+keys[id]; got != want {
			t.Errorf("payment %s sent Authorization %q, want %q", r.Form.Get("metadata[pipecore_payment_id]"), got, want)
		}
	}
}

func TestIntentPayment(t *testing.T) {
	charge := func(refunded int64, full bool) *stripe.Charge {
		return &stripe.Charge{
			AmountRefunded:       refunded,
			Refunded:             full,
			PaymentMethodDetails: &stripe.ChargePaymentMethodDetails{Type: "card"},
		}
	}
	tests := map[string]struct {
		pi   stripe.PaymentIntent
		want payments.Payment
	}{
		"requires payment method": {
			pi:   stripe.PaymentIntent{ID: "pi_1", Status: "requires_payment_method", Amount: 100, Currency: "usd", ClientSecret: "pi_1_secret", PaymentMethodTypes: []string{"card", "link"}},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusRequiresAction, Amount: provider.Money{Amount: 100, Currency: "USD"}, ClientSecret: "pi_1_secret"},
		},
		"requires confirmation": {
			pi:   stripe.PaymentIntent{ID: "pi_1", Status: "requires_confirmation"},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusRequiresAction},
		},
		"requires action": {
			pi:   stripe.PaymentIntent{ID: "pi_1", Status: "requires_action"},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusRequiresAction},
		},
		"processing": {
			pi:   stripe.PaymentIntent{ID: "pi_1", Status: "processing", PaymentMethodTypes: []string{"card"}},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusPending, Method: "card"},
		},
		"requires capture": {
			pi:   stripe.PaymentIntent{ID: "pi_1", Status: "requires_capture"},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusPending},
		},
		"canceled": {
			pi:   stripe.PaymentIntent{ID: "pi_1", Status: "canceled"},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusCancelled},
		},
		"unknown future status": {
			pi:   stripe.PaymentIntent{ID: "pi_1", Status: "requires_something_new"},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusRequiresAction},
		},
		"succeeded": {
			pi:   stripe.PaymentIntent{ID: "pi_1", Status: "succeeded", Amount: 12990, Currency: "clp", Created: 1700000000, LatestCharge: charge(0, false)},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusSucceeded, Amount: provider.Money{Amount: 12990, Currency: "CLP"}, Method: "card", CreatedAt: unixTime(1700000000)},
		},
		"partially refunded": {
			pi:   stripe.PaymentIntent{ID: "pi_1", Status: "succeeded", Amount: 1000, LatestCharge: charge(400, false)},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusSucceeded, Amount: provider.Money{Amount: 1000}, AmountRefunded: 400, Method: "card"},
		},
		"fully refunded": {
			pi:   stripe.PaymentIntent{ID: "pi_1", Status: "succeeded", Amount: 1000, LatestCharge: charge(1000, true)},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusRefunded, Amount: provider.Money{Amount: 1000}, AmountRefunded: 1000, Method: "card"},
		},
		"refunded amount without flag": {
			pi:   stripe.PaymentIntent{ID: "pi_1", Status: "succeeded", Amount: 1000, LatestCharge: charge(1000, false)},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusRefunded, Amount: provider.Money{Amount: 1000}, AmountRefunded: 1000, Method: "card"},
		},
		"declined attempt": {
			pi: stripe.PaymentIntent{ID: "pi_1", Status: "requires_payment_method", LastPaymentError: &stripe.Error{
				Type: stripe.ErrorTypeCard, Code: stripe.ErrorCodeCardDeclined, DeclineCode: "insufficient_funds", Msg: "Your card has insufficient funds.",
			}},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusRequiresAction, FailureCode: "insufficient_funds", FailureMessage: "Your card has insufficient funds."},
		},
		"failed attempt without decline code": {
			pi: stripe.PaymentIntent{ID: "pi_1", Status: "requires_payment_method", LastPaymentError: &stripe.Error{
				Type: stripe.ErrorTypeCard, Code: stripe.ErrorCodeExpiredCard, Msg: "Your card has expired.",
			}},
			want: payments.Payment{ID: "pi_1", Status: payments.StatusRequiresAction, FailureCode: "expired_card", FailureMessage: "Your card has expired."},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := intentPayment(&tt.pi); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("intentPayment =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestSessionPayment(t *testing.T) {
	refundedPI := &stripe.PaymentIntent{
		ID: "pi_9", Status: "succeeded", Amount: 5000, Currency: "usd",
		LatestCharge: &stripe.Charge{AmountRefunded: 5000, Refunded: true, PaymentMethodDetails: &stripe.ChargePaymentMethodDetails{Type: "card"}},
	}
	usd := provider.Money{Amount: 5000, Currency: "USD"}
	tests := map[string]struct {
		s    stripe.CheckoutSession
		want payments.Payment
	}{
		"open": {
			s:    stripe.CheckoutSession{ID: "cs_1", Status: "open", PaymentStatus: "unpaid", URL: "https://checkout.stripe.com/c/pay/cs_1", AmountTotal: 5000, Currency: "usd"},
			want: payments.Payment{ID: "cs_1", Status: payments.StatusRequiresAction, RedirectURL: "https://checkout.stripe.com/c/pay/cs_1", Amount: usd},
		},
		"complete and paid": {
			s:    stripe.CheckoutSession{ID: "cs_1", Status: "complete", PaymentStatus: "paid", AmountTotal: 5000, Currency: "usd", PaymentIntent: &stripe.PaymentIntent{ID: "pi_9"}},
			want: payments.Payment{ID: "cs_1", Status: payments.StatusSucceeded, Amount: usd},
		},
		"complete, no payment required": {
			s:    stripe.CheckoutSession{ID: "cs_1", Status: "complete", PaymentStatus: "no_payment_required"},
			want: payments.Payment{ID: "cs_1", Status: payments.StatusSucceeded},
		},
		"complete, delayed payment unpaid": {
			s:    stripe.CheckoutSession{ID: "cs_1", Status: "complete", PaymentStatus: "unpaid", PaymentMethodTypes: []string{"sepa_debit"}},
			want: payments.Payment{ID: "cs_1", Status: payments.StatusPending, Method: "sepa_debit"},
		},
		"expired": {
			s:    stripe.CheckoutSession{ID: "cs_1", Status: "expired", URL: "https://checkout.stripe.com/c/pay/cs_1"},
			want: payments.Payment{ID: "cs_1", Status: payments.StatusFailed, FailureCode: "expired", FailureMessage: "checkout session expired before the customer paid"},
		},
		"paid then fully refunded": {
			s:    stripe.CheckoutSession{ID: "cs_1", Status: "complete", PaymentStatus: "paid", AmountTotal: 5000, Currency: "usd", PaymentIntent: refundedPI},
			want: payments.Payment{ID: "cs_1", Status: payments.StatusRefunded, Amount: usd, AmountRefunded: 5000, Method: "card"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := sessionPayment(&tt.s); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("sessionPayment =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}
