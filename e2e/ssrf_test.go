package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEndpointSSRFGuard: with the default policy, endpoint URLs aimed at
// internal addresses are refused at registration, and a host name allowed
// at registration but resolving to loopback is refused at dial time.
func TestEndpointSSRFGuard(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
plugins_dir: %s
delivery: { schedule: [50ms], timeout: 400ms, allow_hosts: ["localhost"] }
tenants:
  tableflow:
    api_keys: ["${TABLEFLOW_API_KEY}"]
    providers:
      stripe:
        settings: { base_url: "%s" }
        credentials: { secret_key: "${STRIPE_SECRET_KEY}", webhook_secret: "%s" }
`, freeAddr(), filepath.Join(dir, "data"), copyPlugins(t), stripeMockURL, stripeWebhookSecret)
	g := startGateway(t, dir, cfg)

	for _, u := range []string{
		"https://127.0.0.1/hook", "https://[::1]/hook", "https://169.254.169.254/latest/meta-data", "https://10.0.0.5/hook",
		"https://[::ffff:127.0.0.1]/hook", "https://0x7f000001/hook", "https://2130706433/hook", "http://example.com/hook",
	} {
		c := g.do("POST", "/v1/endpoints", tableflowKey, map[string]any{"url": u})
		if c.status != 400 || c.errorCode(t) != "invalid_request" {
			t.Errorf("%s: %d %s, want 400", u, c.status, c.body)
		}
	}

	// localhost passes registration (allow_hosts) but resolves to loopback,
	// which no allow_networks entry admits: the dialer refuses it.
	port := rcv.srv.URL[strings.LastIndex(rcv.srv.URL, ":")+1:]
	c := g.do("POST", "/v1/endpoints", tableflowKey, map[string]any{"url": "https://localhost:" + port + "/hook"})
	if c.status != 201 {
		t.Fatalf("localhost endpoint: %d %s", c.status, c.body)
	}
	body := stripeEvent("evt_ssrf_1", "payment_intent.succeeded", "pi_ssrf_1", 100)
	if status, resp, _ := postWebhook(g.url+"/webhooks/stripe/tableflow", body, signStripe(stripeWebhookSecret, body, time.Now())); status != 200 {
		t.Fatalf("webhook: %d %s", status, resp)
	}
	waitFor(t, "the refused delivery to be dead-lettered", 15*time.Second, func() bool {
		c := g.do("GET", "/v1/events?status=dead", tableflowKey, nil)
		data, _ := c.json(t)["data"].([]any)
		if len(data) != 1 {
			return false
		}
		ev := g.do("GET", "/v1/events/"+data[0].(map[string]any)["id"].(string), tableflowKey, nil)
		return strings.Contains(string(ev.body), "address not allowed")
	})
	if n := len(rcv.deliveries()); n != 0 {
		t.Fatalf("the loopback receiver got %d deliveries", n)
	}
}
