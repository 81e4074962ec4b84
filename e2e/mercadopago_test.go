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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const mpWebhookSecret = "mp-webhook-signing-secret"

// mercadoPago is a fake of the MercadoPago API (providers.md 2): Checkout
// Pro preferences and payments, bearer-token auth.
type mercadoPago struct {
	srv      *httptest.Server
	mu       sync.Mutex
	prefs    map[string]map[string]any
	payments map[string]map[string]any
	down     atomic.Bool // GET /v1/payments answers 503
	fetches  atomic.Int32
}

func newMercadoPago(t *testing.T) *mercadoPago {
	t.Helper()
	m := &mercadoPago{prefs: map[string]map[string]any{}, payments: map[string]map[string]any{}}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer TEST-mp-access-token" {
			w.WriteHeader(401)
			_, _ = io.WriteString(w, `{"message":"invalid access token","error":"unauthorized","status":401,"cause":[]}`)
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		switch {
		case r.Method == "POST" && r.URL.Path == "/checkout/preferences":
			var pref map[string]any
			_ = json.NewDecoder(r.Body).Decode(&pref)
			id := fmt.Sprintf("123456789-%08d-pref", len(m.prefs)+1)
			pref["id"], pref["init_point"] = id, "https://www.mercadopago.cl/checkout/v1/redirect?pref_id="+id
			m.prefs[id] = pref
			w.WriteHeader(201)
			_ = json.NewEncoder(w).Encode(pref)
		case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1/payments/"):
			m.fetches.Add(1)
			if m.down.Load() {
				w.WriteHeader(503)
				_, _ = io.WriteString(w, `{"message":"service unavailable","error":"internal_error","status":503,"cause":[]}`)
				return
			}
			p, ok := m.payments[strings.TrimPrefix(r.URL.Path, "/v1/payments/")]
			if !ok {
				w.WriteHeader(404)
				_, _ = io.WriteString(w, `{"message":"Payment not found","error":"not_found","status":404,"cause":[]}`)
				return
			}
			_ = json.NewEncoder(w).Encode(p)
		default:
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"message":"not found","error":"not_found","status":404,"cause":[]}`)
		}
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// pay records that the buyer paid preference prefID: payment id, approved.
func (m *mercadoPago) pay(prefID, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pref := m.prefs[prefID]
	item := pref["items"].([]any)[0].(map[string]any)
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000-07:00")
	var num int64
	fmt.Sscan(id, &num)
	m.payments[id] = map[string]any{
		"id": num, "status": "approved", "status_detail": "accredited", "currency_id": item["currency_id"],
		"transaction_amount": item["unit_price"], "transaction_amount_refunded": 0, "external_reference": pref["external_reference"],
		"metadata": pref["metadata"], "payment_type_id": "credit_card", "payment_method_id": "visa",
		"date_created": now, "date_approved": now, "date_last_updated": now,
	}
}

// notify posts a MercadoPago notification about payment id, signed as
// MercadoPago signs it (x-signature over id, x-request-id and ts).
func notify(t *testing.T, g *gateway, id, secret string) (int, string) {
	t.Helper()
	reqID := fmt.Sprintf("req-%d-%s", time.Now().UnixNano(), id)
	ts := fmt.Sprint(time.Now().UnixMilli())
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "id:%s;request-id:%s;ts:%s;", id, reqID, ts)
	body := fmt.Sprintf(`{"action":"payment.updated","api_version":"v1","data":{"id":"%s"},"date_created":"2026-11-27T12:00:00Z","id":%d,"live_mode":false,"type":"payment","user_id":"44444"}`, id, time.Now().UnixNano()%1e9)
	req, _ := http.NewRequest("POST", g.url+"/webhooks/mercadopago/tableflow?data.id="+id+"&type=payment", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-request-id", reqID)
	req.Header.Set("x-signature", "ts="+ts+",v1="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMercadoPagoEndToEnd: a Checkout Pro payment is created; MercadoPago's
// signed notification makes the gateway fetch the payment and deliver
// payment.confirmed with the gateway payment id; a bad x-signature is
// refused; a notification whose fetch fails is retried, not lost.
func TestMercadoPagoEndToEnd(t *testing.T) {
	mp := newMercadoPago(t)
	rcv := newReceiver(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
plugins_dir: %s
delivery: { schedule: [50ms], timeout: 400ms, allow_http: true, allow_networks: ["127.0.0.1/32"] }
tenants:
  tableflow:
    api_keys: ["${TABLEFLOW_API_KEY}"]
    defaults: { payments: mercadopago }
    providers:
      mercadopago:
        settings: { base_url: "%s" }
        credentials: { access_token: "TEST-mp-access-token", webhook_secret: "%s" }
    endpoints:
      - { id: backend, url: "%s", secret: "%s", types: ["payment.confirmed"] }
`, freeAddr(), filepath.Join(dir, "data"), copyPlugins(t), mp.srv.URL, mpWebhookSecret, rcv.srv.URL, endpointSecret)
	g := startGateway(t, dir, cfg)

	c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 12990, "currency": "CLP", "reference": "order-9",
		"return_url": "https://tableflow.example/done"}, "Idempotency-Key", "mp-order-9")
	if c.status != 201 || !strings.HasPrefix(c.json(t)["redirect_url"].(string), "https://www.mercadopago.cl/checkout") {
		t.Fatalf("create: %d %s", c.status, c.body)
	}
	payID, prefID := c.json(t)["id"].(string), c.json(t)["provider_payment_id"].(string)
	mp.pay(prefID, "555001")

	if status, resp := notify(t, g, "555001", "someone-elses-secret"); status != 401 {
		t.Fatalf("bad x-signature: %d %s", status, resp)
	}
	if status, resp := notify(t, g, "555001", mpWebhookSecret); status != 200 {
		t.Fatalf("notification: %d %s", status, resp)
	}
	waitFor(t, "payment.confirmed at the tenant", 15*time.Second, func() bool {
		for _, d := range rcv.deliveries() {
			if d.valid && strings.Contains(string(d.body), `"payment.confirmed"`) && strings.Contains(string(d.body), payID) &&
				strings.Contains(string(d.body), `"amount":12990`) && strings.Contains(string(d.body), `"order-9"`) {
				return true
			}
		}
		return false
	})
	if c := g.do("GET", "/v1/payments/"+payID, tableflowKey, nil); c.json(t)["status"] != "succeeded" {
		t.Fatalf("payment after the notification: %s", c.body)
	}

	// The provider is down when the next notification arrives: it is
	// acknowledged, retried, and delivered once the provider is back.
	c = g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 5000, "currency": "CLP", "reference": "order-10",
		"return_url": "https://tableflow.example/done"})
	pay2, pref2 := c.json(t)["id"].(string), c.json(t)["provider_payment_id"].(string)
	mp.pay(pref2, "555002")
	mp.down.Store(true)
	before := mp.fetches.Load()
	if status, resp := notify(t, g, "555002", mpWebhookSecret); status != 200 {
		t.Fatalf("notification while the provider is down: %d %s", status, resp)
	}
	waitFor(t, "a failed fetch", 10*time.Second, func() bool { return mp.fetches.Load() > before })
	mp.down.Store(false)
	waitFor(t, "the retried notification's event", 20*time.Second, func() bool {
		for _, d := range rcv.deliveries() {
			if strings.Contains(string(d.body), `"payment.confirmed"`) && strings.Contains(string(d.body), pay2) {
				return true
			}
		}
		return false
	})
}
