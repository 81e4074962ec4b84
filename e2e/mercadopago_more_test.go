package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const mpxToken = "TEST-mp-access-token"

// mpxFake is a stateful fake of the MercadoPago API parts the plugin uses:
// Checkout Pro preferences, payments (get, search, refunds), preapprovals
// and authorized payments. Like MercadoPago it checks the bearer token,
// requires X-Idempotency-Key on writes and replays the first non-5xx
// answer per key, and answers errors as {"message","error","status","cause"}.
// It records every request. failCreate makes preference and preapproval
// creation answer that status; hangCreate makes it create the preference,
// then hold the answer until the caller gives up (the answer is lost).
type mpxFake struct {
	srv *httptest.Server

	mu           sync.Mutex
	reqs         []mpxReq
	prefs        map[string]map[string]any
	payments     map[string]map[string]any
	preapprovals map[string]map[string]any
	authorized   map[string]map[string]any
	replay       map[string]mpxAnswer
	next         int64

	failCreate atomic.Int32
	hangCreate atomic.Bool
}

type mpxReq struct {
	method, path, query, idemKey string
	body                         map[string]any
}

type mpxAnswer struct {
	status int
	body   []byte
}

func mpxTime(t time.Time) string { return t.Format("2006-01-02T15:04:05.000-07:00") }

func mpxErr(status int, code, msg string) mpxAnswer {
	b, _ := json.Marshal(map[string]any{"message": msg, "error": code, "status": status, "cause": []any{}})
	return mpxAnswer{status, b}
}

func mpxOK(status int, v any) mpxAnswer {
	b, _ := json.Marshal(v)
	return mpxAnswer{status, b}
}

func newMPXFake(t *testing.T) *mpxFake {
	t.Helper()
	f := &mpxFake{prefs: map[string]map[string]any{}, payments: map[string]map[string]any{}, preapprovals: map[string]map[string]any{},
		authorized: map[string]map[string]any{}, replay: map[string]mpxAnswer{}, next: 1320000000}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *mpxFake) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	key := r.Header.Get("X-Idempotency-Key")
	f.mu.Lock()
	f.reqs = append(f.reqs, mpxReq{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, idemKey: key, body: body})
	f.mu.Unlock()
	write := func(a mpxAnswer) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = w.Write(a.body)
	}
	creating := r.Method == http.MethodPost && (r.URL.Path == "/checkout/preferences" || r.URL.Path == "/preapproval")
	switch {
	case r.Header.Get("Authorization") != "Bearer "+mpxToken:
		write(mpxErr(401, "unauthorized", "invalid access token"))
		return
	case r.Method != http.MethodGet && key == "":
		write(mpxErr(400, "bad_request", "X-Idempotency-Key header is required"))
		return
	case creating && f.failCreate.Load() != 0:
		s := int(f.failCreate.Load())
		write(mpxErr(s, "internal_error", "service unavailable"))
		return
	}
	f.mu.Lock()
	rk := r.Method + " " + r.URL.Path + " " + key
	a, replayed := f.replay[rk]
	if r.Method == http.MethodGet || !replayed {
		a = f.route(r, raw, body)
		if r.Method != http.MethodGet && a.status < 500 {
			f.replay[rk] = a
		}
	}
	f.mu.Unlock()
	if creating && f.hangCreate.Load() {
		// MercadoPago did the work; its answer never arrives in time.
		select {
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
		}
	}
	write(a)
}

// route answers one request; f.mu is held.
func (f *mpxFake) route(r *http.Request, raw []byte, body map[string]any) mpxAnswer {
	now := mpxTime(time.Now())
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == "POST" && r.URL.Path == "/checkout/preferences":
		items, _ := body["items"].([]any)
		if len(items) != 1 {
			return mpxErr(400, "bad_request", "items required")
		}
		f.next++
		id := fmt.Sprintf("987654321-%08x-4ebb-40be-966f-700250fa5370", f.next)
		body["id"], body["date_created"] = id, now
		body["init_point"] = "https://www.mercadopago.cl/checkout/v1/redirect?pref_id=" + id
		body["sandbox_init_point"] = "https://sandbox.mercadopago.cl/checkout/v1/redirect?pref_id=" + id
		f.prefs[id] = body
		return mpxOK(201, body)
	case r.Method == "GET" && len(parts) == 3 && parts[0] == "checkout" && parts[1] == "preferences":
		if p, ok := f.prefs[parts[2]]; ok {
			return mpxOK(200, p)
		}
		return mpxErr(404, "not_found", "preference not found")
	case r.Method == "GET" && r.URL.Path == "/v1/payments/search":
		ref := r.URL.Query().Get("external_reference")
		res := []any{}
		for _, p := range f.payments {
			if p["external_reference"] == ref {
				res = append(res, p)
			}
		}
		return mpxOK(200, map[string]any{"paging": map[string]any{"total": len(res), "limit": 30, "offset": 0}, "results": res})
	case len(parts) >= 3 && parts[0] == "v1" && parts[1] == "payments":
		p := f.payments[parts[2]]
		if p == nil {
			return mpxErr(404, "not_found", "Payment not found")
		}
		switch {
		case r.Method == "GET" && len(parts) == 3:
			return mpxOK(200, p)
		case r.Method == "POST" && len(parts) == 4 && parts[3] == "refunds":
			if p["status"] != "approved" {
				return mpxErr(400, "bad_request", "Payment not refundable")
			}
			total, done := p["transaction_amount"].(float64), p["transaction_amount_refunded"].(float64)
			amount := total - done
			if v, ok := body["amount"].(float64); ok && v > 0 {
				amount = v
			}
			if amount > total-done+1e-9 {
				return mpxErr(400, "bad_request", "amount exceeds the refundable amount")
			}
			f.next++
			ref := map[string]any{"id": f.next, "payment_id": p["id"], "amount": amount, "status": "approved", "date_created": now,
				"source": map[string]any{"id": "987654321", "name": "Seller", "type": "collector"}, "refund_mode": "standard"}
			p["refunds"] = append(p["refunds"].([]any), ref)
			p["transaction_amount_refunded"] = done + amount
			p["status_detail"], p["date_last_updated"] = "partially_refunded", now
			if done+amount >= total-1e-9 {
				p["status"], p["status_detail"] = "refunded", "refunded"
			}
			return mpxOK(201, ref)
		}
	case r.Method == "POST" && r.URL.Path == "/preapproval":
		email, _ := body["payer_email"].(string)
		back, _ := body["back_url"].(string)
		rec, _ := body["auto_recurring"].(map[string]any)
		if email == "" || back == "" || rec == nil {
			return mpxErr(400, "bad_request", "payer_email, back_url and auto_recurring are required")
		}
		f.next++
		id := fmt.Sprintf("2c938084%024x", f.next)
		rec["start_date"] = now
		body["id"], body["payer_id"], body["collector_id"], body["application_id"] = id, 123123123, 987654321, 1234567812345678
		body["init_point"] = "https://www.mercadopago.cl/subscriptions/checkout?preapproval_id=" + id
		body["sandbox_init_point"] = "https://sandbox.mercadopago.cl/subscriptions/checkout?preapproval_id=" + id
		body["date_created"], body["last_modified"], body["next_payment_date"], body["version"] = now, now, now, 0
		if _, ok := body["status"]; !ok {
			body["status"] = "pending"
		}
		f.preapprovals[id] = body
		return mpxOK(201, body)
	case len(parts) == 2 && parts[0] == "preapproval":
		p := f.preapprovals[parts[1]]
		if p == nil {
			return mpxErr(404, "not_found", "preapproval not found")
		}
		if r.Method == "GET" {
			return mpxOK(200, p)
		}
		if r.Method == "PUT" {
			if p["status"] == "cancelled" {
				return mpxErr(400, "bad_request", "You can not modify a cancelled preapproval")
			}
			if s, _ := body["status"].(string); s == "cancelled" || s == "paused" || s == "authorized" {
				p["status"], p["last_modified"] = s, now
				return mpxOK(200, p)
			}
			return mpxErr(400, "bad_request", "invalid status")
		}
	case r.Method == "GET" && len(parts) == 2 && parts[0] == "authorized_payments":
		if a := f.authorized[parts[1]]; a != nil {
			return mpxOK(200, a)
		}
		return mpxErr(404, "not_found", "authorized payment not found")
	}
	_ = raw
	return mpxErr(404, "not_found", "resource not found")
}

// pay records that a buyer paid preference prefID: a new approved payment
// with the preference's external_reference and metadata. It returns the
// payment id.
func (f *mpxFake) pay(t *testing.T, prefID string) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	pref := f.prefs[prefID]
	if pref == nil {
		t.Fatalf("no preference %s at the fake", prefID)
	}
	item := pref["items"].([]any)[0].(map[string]any)
	f.next++
	now := mpxTime(time.Now())
	id := strconv.FormatInt(f.next, 10)
	f.payments[id] = map[string]any{"id": f.next, "status": "approved", "status_detail": "accredited", "currency_id": item["currency_id"],
		"transaction_amount": item["unit_price"], "transaction_amount_refunded": 0.0, "external_reference": pref["external_reference"],
		"metadata": pref["metadata"], "payment_type_id": "credit_card", "payment_method_id": "visa", "refunds": []any{},
		"date_created": now, "date_approved": now, "date_last_updated": now}
	return id
}

func (f *mpxFake) setPreapproval(id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.preapprovals[id]; p != nil {
		p["status"], p["last_modified"] = status, mpxTime(time.Now())
	}
}

// charge records one recurring charge of preapproval pre: an authorized
// payment whose payment has paymentStatus. It returns the authorized
// payment id and the payment id.
func (f *mpxFake) charge(pre, paymentStatus, detail string) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.preapprovals[pre]
	rec := p["auto_recurring"].(map[string]any)
	f.next++
	apID := f.next
	f.next++
	payID := f.next
	status := "processed"
	if paymentStatus != "approved" {
		status = "recycling"
	}
	now := time.Now()
	p["next_payment_date"] = mpxTime(now.Add(14 * 24 * time.Hour))
	f.authorized[strconv.FormatInt(apID, 10)] = map[string]any{"id": apID, "type": "scheduled", "date_created": mpxTime(now),
		"last_modified": mpxTime(now), "preapproval_id": pre, "reason": p["reason"], "external_reference": p["external_reference"],
		"currency_id": rec["currency_id"], "transaction_amount": rec["transaction_amount"], "debit_date": mpxTime(now), "retry_attempt": 0,
		"status": status, "summarized": "done", "payment": map[string]any{"id": payID, "status": paymentStatus, "status_detail": detail},
		"payment_method_id": "visa"}
	return strconv.FormatInt(apID, 10), strconv.FormatInt(payID, 10)
}

func (f *mpxFake) requests(method, path string) []mpxReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mpxReq
	for _, r := range f.reqs {
		if r.method == method && r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// summary lists every request as "METHOD path".
func (f *mpxFake) summary() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reqs {
		out = append(out, r.method+" "+r.path)
	}
	return out
}

func (f *mpxFake) countPrefs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.prefs)
}

// mpxNotify posts a MercadoPago notification of topic about dataID to the
// tenant's webhook URL, signed as MercadoPago signs it.
func mpxNotify(t *testing.T, g *gateway, topic, action, dataID string) {
	t.Helper()
	reqID := fmt.Sprintf("mpx-%d-%s", time.Now().UnixNano(), dataID)
	ts := fmt.Sprint(time.Now().UnixMilli())
	mac := hmac.New(sha256.New, []byte(mpWebhookSecret))
	fmt.Fprintf(mac, "id:%s;request-id:%s;ts:%s;", dataID, reqID, ts)
	body := fmt.Sprintf(`{"action":%q,"api_version":"v1","application_id":1234567812345678,"data":{"id":%q},"date_created":%q,"id":%d,"live_mode":false,"type":%q,"user_id":"987654321","version":1}`,
		action, dataID, time.Now().UTC().Format(time.RFC3339), time.Now().UnixNano()%1e9, topic)
	req, _ := http.NewRequest("POST", g.url+"/webhooks/mercadopago/tableflow?data.id="+dataID+"&type="+topic, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-request-id", reqID)
	req.Header.Set("x-signature", "ts="+ts+",v1="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("notification %s %s: %d %s", topic, dataID, resp.StatusCode, b)
	}
}

// startMPXGateway runs a gateway whose tenant tableflow uses the fake as
// its MercadoPago, with every event going to rcv.
func startMPXGateway(t *testing.T, f *mpxFake, rcv *receiver, callTimeout string) *gateway {
	t.Helper()
	dir := t.TempDir()
	listen := freeAddr()
	cfg := fmt.Sprintf(`listen: %s
public_url: http://%s
data_dir: %s
plugins_dir: %s
log: { level: info, format: json }
plugins: { call_timeout: %s, start_timeout: 10s }
delivery: { schedule: [50ms, 100ms, 150ms], timeout: 400ms, allow_http: true, allow_networks: ["127.0.0.1/32"] }
tenants:
  tableflow:
    api_keys: ["${TABLEFLOW_API_KEY}"]
    defaults: { payments: mercadopago }
    providers:
      mercadopago:
        settings: { base_url: "%s" }
        credentials: { access_token: "%s", webhook_secret: "%s" }
    endpoints:
      - { id: backend, url: "%s", secret: "%s", types: ["payment.*", "subscription.*"] }
`, listen, listen, filepath.Join(dir, "data"), copyPlugins(t), callTimeout, f.srv.URL, mpxToken, mpWebhookSecret, rcv.srv.URL, endpointSecret)
	return startGateway(t, dir, cfg)
}

// TestMercadoPagoSubscription: a MercadoPago subscription is a preapproval
// (external_reference = the gateway id, auto_recurring in major units);
// the preapproval's authorization, an approved charge and a rejected one
// reach the tenant as subscription.authorized (once, however many
// notifications), subscription.renewed with the charge's payment id and
// subscription.payment_failed (status past_due); DELETE cancels the
// preapproval once.
func TestMercadoPagoSubscription(t *testing.T) {
	mp := newMPXFake(t)
	rcv := newReceiver(t)
	g := startMPXGateway(t, mp, rcv, "5s")

	// BRL has cents, so the conversion to MercadoPago's major units shows.
	c := g.do("POST", "/v1/subscriptions", tableflowKey, map[string]any{
		"plan":     map[string]any{"amount": 2990, "currency": "BRL", "interval": "week", "interval_count": 2},
		"customer": map[string]string{"email": "ana@example.com"}, "reference": "club-42", "description": "Club semanal",
		"return_url": "https://tableflow.example/subscribed"}, "Idempotency-Key", "mpx-sub-1")
	if c.status != 201 {
		t.Fatalf("create: %d %s", c.status, c.body)
	}
	sub := c.json(t)
	gid, pre := sub["id"].(string), sub["provider_subscription_id"].(string)
	if !strings.HasPrefix(gid, "sub_") || sub["provider"] != "mercadopago" || sub["status"] != "pending" ||
		sub["redirect_url"] != "https://www.mercadopago.cl/subscriptions/checkout?preapproval_id="+pre {
		t.Fatalf("created subscription: %s", c.body)
	}
	posts := mp.requests("POST", "/preapproval")
	if len(posts) != 1 {
		t.Fatalf("fake got %d POST /preapproval, want 1", len(posts))
	}
	b := posts[0].body
	rec, _ := b["auto_recurring"].(map[string]any)
	if b["external_reference"] != gid || b["payer_email"] != "ana@example.com" || b["back_url"] == nil || b["reason"] != "Club semanal" ||
		rec["transaction_amount"] != 29.9 || rec["currency_id"] != "BRL" || rec["frequency"] != float64(14) || rec["frequency_type"] != "days" ||
		posts[0].idemKey == "" {
		t.Fatalf("POST /preapproval body %v (X-Idempotency-Key %q)", b, posts[0].idemKey)
	}

	t.Run("authorized preapproval announces subscription.authorized once", func(t *testing.T) {
		mp.setPreapproval(pre, "authorized")
		mpxNotify(t, g, "subscription_preapproval", "updated", pre)
		mpxNotify(t, g, "subscription_preapproval", "updated", pre) // MercadoPago repeats itself
		sbWebhooksDone(t, g, "mercadopago", 2)
		waitFor(t, "subscription.authorized", 10*time.Second, func() bool { return len(sbEvents(rcv, "subscription.authorized", gid)) >= 1 })
		time.Sleep(300 * time.Millisecond)
		got := sbEvents(rcv, "subscription.authorized", gid)
		if len(got) != 1 || !got[0].valid || got[0].Data["status"] != "active" || got[0].Data["provider_subscription_id"] != pre ||
			got[0].Data["reference"] != "club-42" {
			t.Fatalf("subscription.authorized deliveries: %+v", got)
		}
		if s := g.do("GET", "/v1/subscriptions/"+gid, tableflowKey, nil).json(t); s["status"] != "active" {
			t.Fatalf("subscription after authorization: %v", s)
		}
	})

	t.Run("approved charge announces subscription.renewed", func(t *testing.T) {
		ap, pay := mp.charge(pre, "approved", "accredited")
		mpxNotify(t, g, "subscription_authorized_payment", "created", ap)
		waitFor(t, "subscription.renewed", 10*time.Second, func() bool { return len(sbEvents(rcv, "subscription.renewed", gid)) >= 1 })
		e := sbEvents(rcv, "subscription.renewed", gid)[0]
		a, _ := e.Data["amount"].(map[string]any)
		if !e.valid || e.Data["provider_payment_id"] != pay || e.Data["status"] != "active" || e.Data["provider_subscription_id"] != pre ||
			a["amount"] != float64(2990) || a["currency"] != "BRL" || e.Data["current_period_end"] == nil {
			t.Fatalf("subscription.renewed: valid=%v %v", e.valid, e.Data)
		}
		if n := len(mp.requests("GET", "/authorized_payments/"+ap)); n < 1 {
			t.Fatalf("the plugin did not fetch the authorized payment")
		}
		if s := g.do("GET", "/v1/subscriptions/"+gid, tableflowKey, nil).json(t); s["status"] != "active" || s["renewals"] != float64(1) {
			t.Fatalf("subscription after a renewal: %v", s)
		}
	})

	t.Run("rejected charge announces subscription.payment_failed and past_due", func(t *testing.T) {
		ap, pay := mp.charge(pre, "rejected", "cc_rejected_insufficient_amount")
		mpxNotify(t, g, "subscription_authorized_payment", "created", ap)
		waitFor(t, "subscription.payment_failed", 10*time.Second, func() bool { return len(sbEvents(rcv, "subscription.payment_failed", gid)) >= 1 })
		e := sbEvents(rcv, "subscription.payment_failed", gid)[0]
		if !e.valid || e.Data["status"] != "past_due" || e.Data["provider_payment_id"] != pay || e.Data["reason"] != "cc_rejected_insufficient_amount" {
			t.Fatalf("subscription.payment_failed: valid=%v %v", e.valid, e.Data)
		}
		if s := g.do("GET", "/v1/subscriptions/"+gid, tableflowKey, nil).json(t); s["status"] != "past_due" || s["renewals"] != float64(1) {
			t.Fatalf("subscription after a failed charge: %v", s)
		}
	})

	t.Run("DELETE cancels the preapproval once", func(t *testing.T) {
		c := g.do("DELETE", "/v1/subscriptions/"+gid, tableflowKey, nil)
		if c.status != 200 || c.json(t)["status"] != "cancelled" {
			t.Fatalf("cancel: %d %s", c.status, c.body)
		}
		puts := mp.requests("PUT", "/preapproval/"+pre)
		if len(puts) != 1 || puts[0].body["status"] != "cancelled" {
			t.Fatalf("fake got PUT /preapproval/%s: %+v", pre, puts)
		}
		// MercadoPago then notifies the cancellation: not news.
		before := sbMetric(t, g, `pipecore_inbox_lag_seconds_count{provider="mercadopago"}`)
		mpxNotify(t, g, "subscription_preapproval", "updated", pre)
		sbWebhooksDone(t, g, "mercadopago", int(before)+1)
		waitFor(t, "subscription.cancelled", 10*time.Second, func() bool { return len(sbEvents(rcv, "subscription.cancelled", gid)) >= 1 })
		time.Sleep(300 * time.Millisecond)
		if got := sbEvents(rcv, "subscription.cancelled", gid); len(got) != 1 {
			t.Fatalf("got %d subscription.cancelled, want 1", len(got))
		}
	})
}

// TestMercadoPagoRefund: a Checkout Pro payment confirmed by MercadoPago's
// notification is partially refunded through the gateway; the refund goes
// to MercadoPago's payment (not the preference the gateway stored at
// creation), and MercadoPago's next notification reaches the tenant as
// payment.refunded; refunding the rest makes the payment refunded.
func TestMercadoPagoRefund(t *testing.T) {
	mp := newMPXFake(t)
	rcv := newReceiver(t)
	g := startMPXGateway(t, mp, rcv, "5s")

	c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 12990, "currency": "CLP", "reference": "order-77",
		"return_url": "https://tableflow.example/done"}, "Idempotency-Key", "mpx-order-77")
	if c.status != 201 {
		t.Fatalf("create: %d %s", c.status, c.body)
	}
	payID, prefID := c.json(t)["id"].(string), c.json(t)["provider_payment_id"].(string)
	mpPay := mp.pay(t, prefID)
	mpxNotify(t, g, "payment", "payment.created", mpPay)
	waitFor(t, "payment.confirmed", 10*time.Second, func() bool { return len(sbEvents(rcv, "payment.confirmed", payID)) >= 1 })

	c = g.do("POST", "/v1/payments/"+payID+"/refunds", tableflowKey, map[string]any{"amount": 2990}, "Idempotency-Key", "mpx-refund-1")
	if c.status != 200 {
		t.Fatalf("partial refund: %d %s", c.status, c.body)
	}
	if p := c.json(t); p["amount_refunded"] != float64(2990) || p["status"] != "succeeded" {
		t.Fatalf("payment after the partial refund: %s", c.body)
	}
	refunds := mp.requests("POST", "/v1/payments/"+mpPay+"/refunds")
	if len(refunds) != 1 || refunds[0].body["amount"] != float64(2990) || refunds[0].idemKey == "" {
		t.Fatalf("MercadoPago payment %s got refunds %+v; every request: %v", mpPay, refunds, mp.summary())
	}

	mpxNotify(t, g, "payment", "payment.updated", mpPay)
	waitFor(t, "payment.refunded (partial)", 10*time.Second, func() bool { return len(sbEvents(rcv, "payment.refunded", payID)) >= 1 })
	e := sbEvents(rcv, "payment.refunded", payID)[0]
	if !e.valid || e.Data["refunded_amount"] != float64(2990) || e.Data["partial"] != true || e.Data["provider"] != "mercadopago" {
		t.Fatalf("payment.refunded: valid=%v %v", e.valid, e.Data)
	}

	// The rest: a full refund (no amount) of what remains.
	c = g.do("POST", "/v1/payments/"+payID+"/refunds", tableflowKey, map[string]any{}, "Idempotency-Key", "mpx-refund-2")
	if c.status != 200 || c.json(t)["status"] != "refunded" || c.json(t)["amount_refunded"] != float64(12990) {
		t.Fatalf("refund of the rest: %d %s", c.status, c.body)
	}
	if n := len(mp.requests("POST", "/v1/payments/"+mpPay+"/refunds")); n != 2 {
		t.Fatalf("MercadoPago payment %s got %d refunds, want 2", mpPay, n)
	}
	mpxNotify(t, g, "payment", "payment.updated", mpPay)
	waitFor(t, "payment.refunded (full)", 10*time.Second, func() bool {
		for _, e := range sbEvents(rcv, "payment.refunded", payID) {
			if e.Data["refunded_amount"] == float64(12990) && e.Data["partial"] != true && e.Data["status"] == "refunded" {
				return true
			}
		}
		return false
	})
	if p := g.do("GET", "/v1/payments/"+payID, tableflowKey, nil).json(t); p["status"] != "refunded" || p["amount_refunded"] != float64(12990) {
		t.Fatalf("payment at the end: %v", p)
	}

	// Reading MercadoPago's view must not undo what its webhooks said. The
	// gateway still names the payment by its preference id, for which the
	// plugin reports requires_action (a preference has no status).
	t.Run("refresh keeps the settled status", func(t *testing.T) {
		c := g.do("GET", "/v1/payments/"+payID+"?refresh=true", tableflowKey, nil)
		if p := c.json(t); c.status != 200 || p["status"] != "refunded" || p["amount_refunded"] != float64(12990) {
			t.Fatalf("GET ?refresh=true of a refunded Checkout Pro payment: %d %s", c.status, c.body)
		}
	})
}

// TestMercadoPagoOutageOnCreate: MercadoPago answering 503 makes a create
// fail as 502 provider_error (retryable); MercadoPago taking longer than
// plugins.call_timeout makes it 504 provider_timeout. Each failure is in
// the audit log, neither stores a payment, and retrying each with its
// Idempotency-Key once MercadoPago is back creates exactly one payment
// (and one payment.created) per key, the hung one with the preference
// MercadoPago had created (same X-Idempotency-Key).
func TestMercadoPagoOutageOnCreate(t *testing.T) {
	mp := newMPXFake(t)
	rcv := newReceiver(t)
	g := startMPXGateway(t, mp, rcv, "1s")
	body := func(ref string) map[string]any {
		return map[string]any{"amount": 8990, "currency": "CLP", "reference": ref, "return_url": "https://tableflow.example/done"}
	}

	mp.failCreate.Store(503)
	c := g.do("POST", "/v1/payments", tableflowKey, body("order-down"), "Idempotency-Key", "mpx-outage-503")
	if c.status != 502 || c.errorCode(t) != "provider_error" || c.json(t)["error"].(map[string]any)["retryable"] != true {
		t.Fatalf("create while MercadoPago answers 503: %d %s", c.status, c.body)
	}
	mp.failCreate.Store(0)

	mp.hangCreate.Store(true)
	start := time.Now()
	c = g.do("POST", "/v1/payments", tableflowKey, body("order-slow"), "Idempotency-Key", "mpx-outage-hang")
	took := time.Since(start)
	if c.status != 504 || c.errorCode(t) != "provider_timeout" {
		t.Fatalf("create while MercadoPago hangs: %d %s", c.status, c.body)
	}
	if took < 900*time.Millisecond || took > 5*time.Second {
		t.Fatalf("the hung create answered after %s, want about call_timeout (1s)", took)
	}
	mp.hangCreate.Store(false)

	logs := g.do("GET", "/v1/logs?action=payments.create", tableflowKey, nil)
	var recs []map[string]any
	for _, r := range logs.json(t)["data"].([]any) {
		recs = append(recs, r.(map[string]any))
	}
	statuses := map[string]int{}
	for _, r := range recs {
		statuses[fmt.Sprint(r["status"])]++
		if r["provider"] != "mercadopago" || r["error_message"] == nil || r["error_message"] == "" {
			t.Errorf("audit record of a failed create: %v", r)
		}
	}
	if len(recs) != 2 || statuses["retryable"] != 1 || statuses["timeout"] != 1 {
		t.Fatalf("audit records of the failed creates: %s", logs.body)
	}
	if ev := g.do("GET", "/v1/events?type=payment.created", tableflowKey, nil); len(ev.json(t)["data"].([]any)) != 0 {
		t.Fatalf("a failed create announced a payment: %s", ev.body)
	}

	// MercadoPago is back: each key creates its payment, once.
	ids := map[string]string{}
	for _, key := range []string{"mpx-outage-503", "mpx-outage-hang"} {
		ref := map[string]string{"mpx-outage-503": "order-down", "mpx-outage-hang": "order-slow"}[key]
		c := g.do("POST", "/v1/payments", tableflowKey, body(ref), "Idempotency-Key", key)
		if c.status != 201 {
			t.Fatalf("%s after recovery: %d %s", key, c.status, c.body)
		}
		ids[key] = c.json(t)["id"].(string)
		again := g.do("POST", "/v1/payments", tableflowKey, body(ref), "Idempotency-Key", key)
		if again.status != 201 || again.json(t)["id"] != ids[key] || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%s replay: %d %s (%v)", key, again.status, again.body, again.header)
		}
	}
	if ids["mpx-outage-503"] == ids["mpx-outage-hang"] {
		t.Fatalf("two keys gave one payment %s", ids["mpx-outage-503"])
	}
	// The hung create had reached MercadoPago; the retry sent the same
	// X-Idempotency-Key and got that preference back, so there are two.
	if n := mp.countPrefs(); n != 2 {
		t.Fatalf("MercadoPago has %d preferences, want 2", n)
	}
	posts := mp.requests("POST", "/checkout/preferences")
	keys := map[string]int{}
	for _, p := range posts {
		keys[p.idemKey]++
	}
	if len(keys) != 2 {
		t.Fatalf("X-Idempotency-Keys of the preference creations: %v (a retry under the same Idempotency-Key must reuse its key)", keys)
	}
	waitFor(t, "two payment.created", 10*time.Second, func() bool { return len(sbEvents(rcv, "payment.created", "")) >= 2 })
	time.Sleep(300 * time.Millisecond)
	created := sbEvents(rcv, "payment.created", "")
	if len(created) != 2 || created[0].Data["payment_id"] == created[1].Data["payment_id"] {
		t.Fatalf("payment.created deliveries: %+v", created)
	}
	for _, id := range ids {
		if len(sbEvents(rcv, "payment.created", id)) != 1 {
			t.Fatalf("payment %s: %d payment.created", id, len(sbEvents(rcv, "payment.created", id)))
		}
	}
	if ev := g.do("GET", "/v1/events?type=payment.created", tableflowKey, nil); len(ev.json(t)["data"].([]any)) != 2 {
		t.Fatalf("events API: %s", ev.body)
	}
}
