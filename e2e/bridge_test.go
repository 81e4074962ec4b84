package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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

const (
	stripeWebhookSecret = "whsec_tableflow_stripe_signing"
	endpointSecret      = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// bridgeConfig is a gateway with tableflow's events going to receiverURL,
// on a fast retry schedule so tests run the whole schedule in seconds.
func bridgeConfig(listen, dataDir, pluginsDir, stripeURL, receiverURL string) string {
	return fmt.Sprintf(`listen: %s
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
      - { id: backend, url: "%s", secret: "%s", types: ["payment.*"] }
  otherco:
    api_keys: ["sha256:%s"]
    providers:
      stripe:
        enabled: false
        credentials: { secret_key: "sk_test_otherco" }
`, listen, listen, dataDir, pluginsDir, stripeURL, stripeWebhookSecret, receiverURL, endpointSecret, sha256hex(otherKey))
}

// stripeEvent is a Stripe event body of the given type about payment
// intent pi.
func stripeEvent(id, typ, pi string, amount int) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2023-10-16","created":%d,"livemode":false,"pending_webhooks":1,"type":%q,`+
		`"data":{"object":{"id":%q,"object":"payment_intent","amount":%d,"currency":"clp","status":"succeeded","payment_method_types":["card"],"metadata":{}}}}`,
		id, time.Now().Unix(), typ, pi, amount))
}

// signStripe returns the Stripe-Signature header for body, as Stripe
// computes it.
func signStripe(secret string, body []byte, ts time.Time) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", ts.Unix())
	mac.Write(body)
	return fmt.Sprintf("t=%d,v1=%s", ts.Unix(), hex.EncodeToString(mac.Sum(nil)))
}

func postWebhook(url string, body []byte, sig string) (int, string, error) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// receiver is a tenant backend: it verifies each delivery's Standard
// Webhooks signature and records what arrived.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []delivery
	status atomic.Int32 // status to answer; 0 means 200
}

type delivery struct {
	id, ts, sig string
	body        []byte
	valid       bool
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := delivery{id: req.Header.Get("webhook-id"), ts: req.Header.Get("webhook-timestamp"), sig: req.Header.Get("webhook-signature"), body: body}
		d.valid = verifyStandardWebhook(endpointSecret, d.id, d.ts, d.sig, body)
		r.mu.Lock()
		r.got = append(r.got, d)
		r.mu.Unlock()
		if s := r.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// verifyStandardWebhook checks a delivery the way the Standard Webhooks
// spec says a receiver must: HMAC-SHA256 over id.timestamp.body with the
// base64-decoded secret, any v1 signature matching, timestamp within 5 min.
func verifyStandardWebhook(secret, id, ts, sigHeader string, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || id == "" {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigHeader) {
		v, b64, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhookToTenantEndpoint: a signed Stripe webhook about a payment the
// gateway created reaches the tenant's endpoint as payment.confirmed with
// the gateway payment id, signed per Standard Webhooks; the payment's
// status follows; 50 copies make one event; bad signatures, unknown
// tenants and disabled providers are refused and not stored.
func TestWebhookToTenantEndpoint(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	g := startGateway(t, dir, bridgeConfig(freeAddr(), filepath.Join(dir, "data"), copyPlugins(t), stripeMockURL, rcv.srv.URL))

	c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 12990, "currency": "CLP", "reference": "order-7",
		"customer": map[string]string{"phone": "+56988888888"}})
	if c.status != 201 {
		t.Fatalf("create: %d %s", c.status, c.body)
	}
	pay := c.json(t)
	payID, pi := pay["id"].(string), pay["provider_payment_id"].(string)
	hook := g.url + "/webhooks/stripe/tableflow"
	body := stripeEvent("evt_confirm_1", "payment_intent.succeeded", pi, 12990)

	t.Run("bad signatures are refused", func(t *testing.T) {
		tests := map[string]string{
			"no header":      "",
			"wrong secret":   signStripe("whsec_someone_else", body, time.Now()),
			"garbled header": "t=abc,v1=zz",
			"expired":        signStripe(stripeWebhookSecret, body, time.Now().Add(-10*time.Minute)),
		}
		for name, sig := range tests {
			status, resp, err := postWebhook(hook, body, sig)
			if err != nil || status != 401 {
				t.Errorf("%s: %d %s %v", name, status, resp, err)
			}
		}
		flipped := append([]byte(nil), body...)
		flipped[len(flipped)/2] ^= 1
		if status, resp, _ := postWebhook(hook, flipped, signStripe(stripeWebhookSecret, body, time.Now())); status != 401 {
			t.Errorf("flipped body byte: %d %s", status, resp)
		}
	})

	t.Run("unknown tenant and disabled plugin are 404 and not stored", func(t *testing.T) {
		for _, url := range []string{g.url + "/webhooks/stripe/nobody", g.url + "/webhooks/stripe/otherco", g.url + "/webhooks/paypal/tableflow"} {
			status, resp, _ := postWebhook(url, body, signStripe(stripeWebhookSecret, body, time.Now()))
			if status != 404 {
				t.Errorf("%s: %d %s", url, status, resp)
			}
		}
	})

	t.Run("50 copies, 10 at a time, make one event", func(t *testing.T) {
		sem := make(chan struct{}, 10)
		var wg sync.WaitGroup
		var accepted, dup, failed atomic.Int32
		for i := 0; i < 50; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				status, resp, err := postWebhook(hook, body, signStripe(stripeWebhookSecret, body, time.Now()))
				switch {
				case err != nil || status != 200:
					failed.Add(1)
				case strings.Contains(resp, `"accepted"`):
					accepted.Add(1)
				case strings.Contains(resp, `"duplicate"`):
					dup.Add(1)
				}
			}()
		}
		wg.Wait()
		if accepted.Load() != 1 || dup.Load() != 49 || failed.Load() != 0 {
			t.Fatalf("accepted %d, duplicates %d, failed %d; want 1, 49, 0", accepted.Load(), dup.Load(), failed.Load())
		}
		byType := func() map[string][]delivery {
			out := map[string][]delivery{}
			for _, d := range rcv.deliveries() {
				var env struct {
					Type string `json:"type"`
				}
				_ = json.Unmarshal(d.body, &env)
				out[env.Type] = append(out[env.Type], d)
			}
			return out
		}
		waitFor(t, "the event at the tenant endpoint", 10*time.Second, func() bool { return len(byType()["payment.confirmed"]) >= 1 })
		time.Sleep(300 * time.Millisecond)
		got := byType()
		if len(got["payment.confirmed"]) != 1 || len(got["payment.created"]) != 1 {
			t.Fatalf("tenant endpoint got %d payment.confirmed and %d payment.created, want 1 each", len(got["payment.confirmed"]), len(got["payment.created"]))
		}
		if !strings.Contains(string(got["payment.created"][0].body), payID) {
			t.Errorf("payment.created lacks the payment id: %s", got["payment.created"][0].body)
		}
		d := got["payment.confirmed"][0]
		if !d.valid {
			t.Fatalf("delivery does not verify as a Standard Webhook: id %q ts %q sig %q", d.id, d.ts, d.sig)
		}
		var env struct {
			Type      string         `json:"type"`
			Timestamp string         `json:"timestamp"`
			Data      map[string]any `json:"data"`
		}
		if err := json.Unmarshal(d.body, &env); err != nil {
			t.Fatal(err)
		}
		if env.Type != "payment.confirmed" || env.Data["payment_id"] != payID || env.Data["tenant_id"] != "tableflow" ||
			env.Data["provider"] != "stripe" || env.Data["provider_payment_id"] != pi || env.Data["reference"] != "order-7" || env.Timestamp == "" {
			t.Fatalf("envelope: %s", d.body)
		}
		ev := g.do("GET", "/v1/events?type=payment.confirmed", tableflowKey, nil)
		data, _ := ev.json(t)["data"].([]any)
		if len(data) != 1 || data[0].(map[string]any)["id"] != d.id || data[0].(map[string]any)["status"] != "delivered" {
			t.Fatalf("events API: %s (webhook-id %s)", ev.body, d.id)
		}
		p := g.do("GET", "/v1/payments/"+payID, tableflowKey, nil)
		if p.json(t)["status"] != "succeeded" {
			t.Fatalf("payment status after payment.confirmed: %s", p.body)
		}
		tl := g.do("GET", "/v1/payments/"+payID+"/timeline", tableflowKey, nil)
		for _, kind := range []string{`"api_call"`, `"webhook"`, `"event"`, `"delivery_attempt"`} {
			if !strings.Contains(string(tl.body), kind) {
				t.Errorf("timeline lacks %s: %s", kind, tl.body)
			}
		}
	})

	t.Run("refund then charge.refunded reaches the tenant as payment.refunded", func(t *testing.T) {
		if c := g.do("POST", "/v1/payments/"+payID+"/refunds", tableflowKey, map[string]any{"amount": 2990}); c.status != 200 {
			t.Fatalf("refund: %d %s", c.status, c.body)
		}
		refund := []byte(fmt.Sprintf(`{"id":"evt_refund_1","object":"event","api_version":"2023-10-16","created":%d,"livemode":false,"pending_webhooks":1,"type":"charge.refunded",`+
			`"data":{"object":{"id":"ch_refund_1","object":"charge","payment_intent":%q,"amount":12990,"amount_refunded":2990,"currency":"clp","refunded":false,"status":"succeeded","metadata":{}}}}`,
			time.Now().Unix(), pi))
		if status, resp, _ := postWebhook(hook, refund, signStripe(stripeWebhookSecret, refund, time.Now())); status != 200 {
			t.Fatalf("charge.refunded: %d %s", status, resp)
		}
		waitFor(t, "payment.refunded at the tenant", 10*time.Second, func() bool {
			for _, d := range rcv.deliveries() {
				b := string(d.body)
				if d.valid && strings.Contains(b, `"payment.refunded"`) && strings.Contains(b, payID) && strings.Contains(b, `"refunded_amount":2990`) && strings.Contains(b, `"partial":true`) {
					return true
				}
			}
			return false
		})
	})

	t.Run("verified but unparseable goes to quarantine", func(t *testing.T) {
		bad := []byte(`{"id":"evt_bad_1","object":"event","type":"payment_intent.succeeded","created":1700000000,"data":{"object":"not an object"}}`)
		status, resp, _ := postWebhook(hook, bad, signStripe(stripeWebhookSecret, bad, time.Now()))
		if status != 200 {
			t.Fatalf("a verified webhook must be acknowledged even if unparseable: %d %s", status, resp)
		}
		var q map[string]any
		waitFor(t, "the webhook in quarantine", 10*time.Second, func() bool {
			c := g.do("GET", "/v1/webhooks/quarantine", tableflowKey, nil)
			data, _ := c.json(t)["data"].([]any)
			if len(data) == 1 {
				q = data[0].(map[string]any)
			}
			return q != nil
		})
		if q["provider"] != "stripe" || q["reason"] == "" || !strings.Contains(q["body"].(string), "evt_bad_1") {
			t.Fatalf("quarantine entry: %v", q)
		}
		if c := g.do("GET", "/v1/webhooks/quarantine", otherKey, nil); strings.Contains(string(c.body), "evt_bad_1") {
			t.Fatalf("another tenant sees the quarantine: %s", c.body)
		}
		// Replaying it with the plugin unchanged puts it back in quarantine.
		if c := g.do("POST", "/v1/webhooks/quarantine/"+q["id"].(string)+"/replay", tableflowKey, nil); c.status != 202 {
			t.Fatalf("replay: %d %s", c.status, c.body)
		}
		waitFor(t, "the replayed webhook back in quarantine", 10*time.Second, func() bool {
			c := g.do("GET", "/v1/webhooks/quarantine", tableflowKey, nil)
			data, _ := c.json(t)["data"].([]any)
			return len(data) == 1
		})
		if c := g.do("POST", "/v1/webhooks/quarantine/wh_nope/replay", tableflowKey, nil); c.status != 404 {
			t.Fatalf("replay of a missing webhook: %d %s", c.status, c.body)
		}
	})

	t.Run("GET on a provider without a handshake", func(t *testing.T) {
		resp, err := http.Get(hook)
		if err != nil || resp.StatusCode != 405 {
			t.Fatalf("GET %s: %v %v", hook, resp, err)
		}
		resp.Body.Close()
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get(g.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, m := range []string{`pipecore_webhooks_received_total{outcome="accepted",provider="stripe"} 3`,
			`pipecore_webhooks_received_total{outcome="duplicate",provider="stripe"} 49`,
			`pipecore_webhooks_rejected_total{provider="stripe",reason="invalid_signature"}`,
			`pipecore_deliveries_total{outcome="delivered"} 3`, `pipecore_webhooks_quarantined_total{provider="stripe"} 2`,
			`pipecore_plugin_call_seconds_count{method="ParseWebhook"`} {
			if !strings.Contains(string(b), m) {
				t.Errorf("metrics lack %s", m)
			}
		}
	})
}
