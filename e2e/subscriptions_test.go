package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sbStripeProxy sits between the Stripe plugin and stripe-mock. It records
// every request (method, path, form) and makes stripe-mock's Checkout
// Session answers reflect what the test says happened: stripe-mock always
// answers mode "payment" and status "open", so a GET of a session the test
// has marked complete answers mode subscription, status complete and the
// expanded Subscription the customer's checkout created.
type sbStripeProxy struct {
	srv *httptest.Server
	mu  sync.Mutex
	log []sbStripeCall
	// complete maps a cs_… id to the sub_… id its completion created.
	complete map[string]string
}

type sbStripeCall struct {
	method, path string
	form         url.Values
}

func newSBStripeProxy(t *testing.T) *sbStripeProxy {
	t.Helper()
	target, _ := url.Parse(stripeMockURL)
	p := &sbStripeProxy{complete: map[string]string{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		p.mu.Lock()
		p.log = append(p.log, sbStripeCall{method: r.Method, path: r.URL.Path, form: form})
		p.mu.Unlock()
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		out := rec.Body.Bytes()
		if strings.HasPrefix(r.URL.Path, "/v1/checkout/sessions/") && r.Method == http.MethodGet && rec.Code == 200 {
			id := strings.TrimPrefix(r.URL.Path, "/v1/checkout/sessions/")
			var s map[string]any
			if json.Unmarshal(out, &s) == nil {
				s["mode"] = "subscription"
				p.mu.Lock()
				sub, done := p.complete[id]
				p.mu.Unlock()
				if done {
					s["status"], s["payment_status"] = "complete", "paid"
					obj, _ := s["subscription"].(map[string]any)
					if obj == nil {
						obj = map[string]any{"object": "subscription"}
					}
					obj["id"], obj["status"] = sub, "active"
					s["subscription"] = obj
				} else {
					s["status"], s["subscription"] = "open", nil
				}
				out, _ = json.Marshal(s)
			}
		}
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(out)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// calls returns the recorded requests with this method and path.
func (p *sbStripeProxy) calls(method, path string) []sbStripeCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []sbStripeCall
	for _, c := range p.log {
		if c.method == method && c.path == path {
			out = append(out, c)
		}
	}
	return out
}

func (p *sbStripeProxy) markComplete(cs, sub string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.complete[cs] = sub
}

// sbEvent is one verified delivery at the tenant endpoint.
type sbEvent struct {
	Type      string         `json:"type"`
	Timestamp string         `json:"timestamp"`
	Data      map[string]any `json:"data"`
	id        string
	valid     bool
}

// sbEvents returns the deliveries of type typ ("" for all) whose
// data.subscription_id or data.payment_id is id ("" for any), deduplicated
// by webhook-id (a delivery retried counts once).
func sbEvents(rcv *receiver, typ, id string) []sbEvent {
	seen := map[string]bool{}
	var out []sbEvent
	for _, d := range rcv.deliveries() {
		var e sbEvent
		if json.Unmarshal(d.body, &e) != nil || seen[d.id] {
			continue
		}
		if typ != "" && e.Type != typ {
			continue
		}
		if id != "" && e.Data["subscription_id"] != id && e.Data["payment_id"] != id {
			continue
		}
		seen[d.id] = true
		e.id, e.valid = d.id, d.valid
		out = append(out, e)
	}
	return out
}

// sbMetric sums the samples of the gateway's /metrics lines that start
// with prefix (a metric name, optionally with the start of its labels).
func sbMetric(t *testing.T, g *gateway, prefix string) float64 {
	t.Helper()
	resp, err := http.Get(g.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// sbWebhooksDone waits until the gateway has finished processing n
// webhooks of provider prov (the inbox-lag histogram counts each one once
// its events, if any, are recorded), so a test may assert that something
// did NOT happen.
func sbWebhooksDone(t *testing.T, g *gateway, prov string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d %s webhooks processed", n, prov), 15*time.Second, func() bool {
		return sbMetric(t, g, `pipecore_inbox_lag_seconds_count{provider="`+prov+`"}`) >= float64(n)
	})
}

func sbStripeEvent(id, typ string, object map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": "2023-10-16", "created": time.Now().Unix(),
		"livemode": false, "pending_webhooks": 1, "type": typ, "data": map[string]any{"object": object},
		"request": map[string]any{"id": nil, "idempotency_key": nil}})
	return b
}

// TestStripeSubscriptionLifecycle: a Stripe subscription (Checkout in
// subscription mode, through stripe-mock) is created pending with the
// hosted page's URL; checkout.session.completed (sent twice under two
// event ids) announces subscription.authorized once; two invoice.paid
// cycles announce two subscription.renewed; DELETE cancels the Stripe
// Subscription and announces subscription.cancelled once, and Stripe's
// later customer.subscription.deleted announces nothing more.
func TestStripeSubscriptionLifecycle(t *testing.T) {
	proxy := newSBStripeProxy(t)
	rcv := newReceiver(t)
	dir := t.TempDir()
	listen := freeAddr()
	cfg := fmt.Sprintf(`listen: %s
public_url: http://%s
data_dir: %s
plugins_dir: %s
log: { level: info, format: json }
plugins: { call_timeout: 5s, start_timeout: 10s }
delivery: { schedule: [50ms, 100ms, 150ms], timeout: 400ms, allow_http: true, allow_networks: ["127.0.0.1/32"] }
tenants:
  tableflow:
    api_keys: ["${TABLEFLOW_API_KEY}"]
    defaults: { payments: stripe }
    providers:
      stripe:
        settings: { base_url: "%s" }
        credentials: { secret_key: "${STRIPE_SECRET_KEY}", webhook_secret: "%s" }
    endpoints:
      - { id: backend, url: "%s", secret: "%s", types: ["subscription.*"] }
`, listen, listen, filepath.Join(dir, "data"), copyPlugins(t), proxy.srv.URL, stripeWebhookSecret, rcv.srv.URL, endpointSecret)
	g := startGateway(t, dir, cfg)
	hook := g.url + "/webhooks/stripe/tableflow"
	post := func(body []byte) {
		t.Helper()
		status, resp, err := postWebhook(hook, body, signStripe(stripeWebhookSecret, body, time.Now()))
		if err != nil || status != 200 {
			t.Fatalf("webhook: %d %s %v", status, resp, err)
		}
	}

	c := g.do("POST", "/v1/subscriptions", tableflowKey, map[string]any{
		"plan":     map[string]any{"amount": 1500, "currency": "usd", "interval": "month"},
		"customer": map[string]string{"email": "ana@example.com", "name": "Ana Rojas"}, "reference": "plan-gold-e2e",
		"description": "Gold plan", "return_url": "https://tableflow.example/subscribed"})
	if c.status != 201 {
		t.Fatalf("create: %d %s", c.status, c.body)
	}
	sub := c.json(t)
	gid, cs := sub["id"].(string), sub["provider_subscription_id"].(string)
	if !strings.HasPrefix(gid, "sub_") || !strings.HasPrefix(cs, "cs_") || sub["provider"] != "stripe" || sub["status"] != "pending" ||
		!strings.HasPrefix(fmt.Sprint(sub["redirect_url"]), "https://") {
		t.Fatalf("created subscription: %s", c.body)
	}
	creates := proxy.calls("POST", "/v1/checkout/sessions")
	if len(creates) != 1 {
		t.Fatalf("stripe got %d session creations, want 1", len(creates))
	}
	f := creates[0].form
	if f.Get("mode") != "subscription" || f.Get("metadata[pipecore_subscription_id]") != gid || f.Get("client_reference_id") != gid ||
		f.Get("subscription_data[metadata][pipecore_subscription_id]") != gid || f.Get("customer_email") != "ana@example.com" ||
		f.Get("line_items[0][price_data][unit_amount]") != "1500" || f.Get("line_items[0][price_data][currency]") != "usd" ||
		f.Get("line_items[0][price_data][recurring][interval]") != "month" || !strings.Contains(f.Get("success_url"), "subscription_id="+gid) {
		t.Fatalf("session creation form: %v", f)
	}

	const stripeSub = "sub_1E2eSbLkdIwHu7ixQw3Er5Ty"
	meta := map[string]any{"pipecore_subscription_id": gid, "reference": "plan-gold-e2e"}
	session := map[string]any{"id": cs, "object": "checkout.session", "mode": "subscription", "status": "complete", "payment_status": "paid",
		"amount_total": 1500, "amount_subtotal": 1500, "currency": "usd", "client_reference_id": gid, "customer": "cus_RfT2mLkdIwHu7i",
		"customer_email": "ana@example.com", "invoice": "in_1E2eFirst", "metadata": meta, "payment_intent": nil, "subscription": stripeSub}

	t.Run("checkout.session.completed twice announces authorized once", func(t *testing.T) {
		proxy.markComplete(cs, stripeSub)
		post(sbStripeEvent("evt_1E2eSbCompletedA", "checkout.session.completed", session))
		post(sbStripeEvent("evt_1E2eSbCompletedB", "checkout.session.completed", session))
		sbWebhooksDone(t, g, "stripe", 2)
		waitFor(t, "subscription.authorized at the tenant", 10*time.Second, func() bool { return len(sbEvents(rcv, "subscription.authorized", gid)) >= 1 })
		time.Sleep(300 * time.Millisecond) // room for a wrong second delivery to show up
		got := sbEvents(rcv, "subscription.authorized", gid)
		if len(got) != 1 {
			t.Fatalf("got %d subscription.authorized, want 1", len(got))
		}
		e := got[0]
		if !e.valid || e.Data["status"] != "active" || e.Data["provider_subscription_id"] != stripeSub || e.Data["reference"] != "plan-gold-e2e" ||
			e.Data["provider"] != "stripe" || e.Data["tenant_id"] != "tableflow" {
			t.Fatalf("subscription.authorized: valid=%v %v", e.valid, e.Data)
		}
		s := g.do("GET", "/v1/subscriptions/"+gid, tableflowKey, nil).json(t)
		if s["status"] != "active" || s["provider_subscription_id"] != stripeSub {
			t.Fatalf("subscription after authorization: %v", s)
		}
	})

	t.Run("two invoice.paid cycles announce two renewals", func(t *testing.T) {
		for i, evt := range []string{"evt_1E2eSbRenewA", "evt_1E2eSbRenewB"} {
			start := time.Now().Add(time.Duration(i) * 30 * 24 * time.Hour).Unix()
			end := start + 30*24*3600
			inv := map[string]any{"id": fmt.Sprintf("in_1E2eCycle%d", i), "object": "invoice", "billing_reason": "subscription_cycle",
				"amount_due": 1500, "amount_paid": 1500, "amount_remaining": 0, "currency": "usd", "customer": "cus_RfT2mLkdIwHu7i",
				"charge": fmt.Sprintf("ch_1E2eCycle%d", i), "payment_intent": fmt.Sprintf("pi_1E2eCycle%d", i), "paid": true, "status": "paid",
				"subscription": stripeSub, "subscription_details": map[string]any{"metadata": meta}, "metadata": map[string]any{},
				"period_start": start - 30*24*3600, "period_end": start,
				"lines": map[string]any{"object": "list", "has_more": false, "total_count": 1, "data": []any{map[string]any{
					"id": fmt.Sprintf("il_1E2eCycle%d", i), "object": "line_item", "amount": 1500, "currency": "usd", "metadata": meta,
					"period": map[string]any{"start": start, "end": end}, "subscription": stripeSub, "type": "subscription", "quantity": 1}}}}
			post(sbStripeEvent(evt, "invoice.paid", inv))
		}
		waitFor(t, "two subscription.renewed", 10*time.Second, func() bool { return len(sbEvents(rcv, "subscription.renewed", gid)) >= 2 })
		sbWebhooksDone(t, g, "stripe", 4)
		time.Sleep(300 * time.Millisecond)
		got := sbEvents(rcv, "subscription.renewed", gid)
		if len(got) != 2 {
			t.Fatalf("got %d subscription.renewed, want 2", len(got))
		}
		pis := map[any]bool{}
		for _, e := range got {
			pis[e.Data["provider_payment_id"]] = true
			if !e.valid || e.Data["status"] != "active" || e.Data["provider_subscription_id"] != stripeSub || e.Data["current_period_end"] == nil {
				t.Errorf("subscription.renewed: valid=%v %v", e.valid, e.Data)
			}
			if a, _ := e.Data["amount"].(map[string]any); a["amount"] != float64(1500) || a["currency"] != "USD" {
				t.Errorf("renewal amount: %v", e.Data["amount"])
			}
		}
		if !pis["pi_1E2eCycle0"] || !pis["pi_1E2eCycle1"] {
			t.Errorf("renewals' provider_payment_id: %v", pis)
		}
		s := g.do("GET", "/v1/subscriptions/"+gid, tableflowKey, nil).json(t)
		if s["status"] != "active" || s["renewals"] != float64(2) || s["current_period_end"] == nil {
			t.Fatalf("subscription after two renewals: %v", s)
		}
		if len(sbEvents(rcv, "subscription.authorized", gid)) != 1 {
			t.Fatalf("a renewal re-announced the authorization")
		}
	})

	t.Run("DELETE cancels once; Stripe's later deleted event is not news", func(t *testing.T) {
		c := g.do("DELETE", "/v1/subscriptions/"+gid, tableflowKey, nil)
		if c.status != 200 || c.json(t)["status"] != "cancelled" {
			t.Fatalf("cancel: %d %s", c.status, c.body)
		}
		if n := len(proxy.calls("DELETE", "/v1/subscriptions/"+stripeSub)); n != 1 {
			t.Fatalf("stripe got %d DELETE /v1/subscriptions/%s, want 1", n, stripeSub)
		}
		if n := len(proxy.calls("POST", "/v1/checkout/sessions/"+cs+"/expire")); n != 0 {
			t.Fatalf("a completed session was expired instead of cancelling its subscription (%d calls)", n)
		}
		waitFor(t, "subscription.cancelled at the tenant", 10*time.Second, func() bool { return len(sbEvents(rcv, "subscription.cancelled", gid)) >= 1 })
		// A second DELETE answers the stored state without calling Stripe.
		if c := g.do("DELETE", "/v1/subscriptions/"+gid, tableflowKey, nil); c.status != 200 || c.json(t)["status"] != "cancelled" {
			t.Fatalf("second cancel: %d %s", c.status, c.body)
		}
		if n := len(proxy.calls("DELETE", "/v1/subscriptions/"+stripeSub)); n != 1 {
			t.Fatalf("second cancel called Stripe again: %d DELETEs", n)
		}

		deleted := map[string]any{"id": stripeSub, "object": "subscription", "status": "canceled", "customer": "cus_RfT2mLkdIwHu7i",
			"canceled_at": time.Now().Unix(), "ended_at": time.Now().Unix(), "currency": "usd", "metadata": meta,
			"cancellation_details": map[string]any{"reason": "cancellation_requested", "comment": nil, "feedback": nil}}
		post(sbStripeEvent("evt_1E2eSbDeleted", "customer.subscription.deleted", deleted))
		// A renewal arriving after the cancellation changes nothing either.
		post(sbStripeEvent("evt_1E2eSbLateFail", "invoice.payment_failed", map[string]any{"id": "in_1E2eLate", "object": "invoice",
			"billing_reason": "subscription_cycle", "amount_due": 1500, "amount_paid": 0, "currency": "usd", "payment_intent": "pi_1E2eLate",
			"subscription": stripeSub, "subscription_details": map[string]any{"metadata": meta}, "status": "open",
			"lines": map[string]any{"object": "list", "data": []any{}}}))
		sbWebhooksDone(t, g, "stripe", 6)
		time.Sleep(300 * time.Millisecond)
		if got := sbEvents(rcv, "subscription.cancelled", gid); len(got) != 1 || !got[0].valid || got[0].Data["status"] != "cancelled" {
			t.Fatalf("subscription.cancelled deliveries: %+v", got)
		}
		if got := sbEvents(rcv, "subscription.payment_failed", gid); len(got) != 0 {
			t.Fatalf("a failed charge after cancellation was announced: %+v", got)
		}
		if s := g.do("GET", "/v1/subscriptions/"+gid, tableflowKey, nil).json(t); s["status"] != "cancelled" || s["renewals"] != float64(2) {
			t.Fatalf("subscription at the end: %v", s)
		}
		ev := g.do("GET", "/v1/events?type=subscription.cancelled", tableflowKey, nil)
		if data, _ := ev.json(t)["data"].([]any); len(data) != 1 {
			t.Fatalf("events API has %d subscription.cancelled: %s", len(data), ev.body)
		}
		if q := g.do("GET", "/v1/webhooks/quarantine", tableflowKey, nil); strings.Contains(string(q.body), "evt_1E2eSb") {
			t.Fatalf("a subscription webhook went to quarantine: %s", q.body)
		}
	})
}
