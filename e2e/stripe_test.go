package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestStripeEndToEnd drives the foundation's promises through the real
// binaries: payments created, read and refunded through the Stripe plugin
// against stripe-mock; idempotency; tenant isolation; auth; clear errors;
// automatic plugin restart; no secret anywhere.
func TestStripeEndToEnd(t *testing.T) {
	proxy := newStripeProxy(t)
	dir := t.TempDir()
	g := startGateway(t, dir, gatewayConfig(freeAddr(), filepath.Join(dir, "data"), copyPlugins(t), proxy.srv.URL))

	createBody := map[string]any{
		"amount": 12990, "currency": "CLP", "reference": "order-1001", "description": "2 pizzas",
		"customer": map[string]string{"email": "ana@example.cl", "phone": "+56988888888", "name": "Ana"},
		"metadata": map[string]string{"table": "7"},
	}
	var paymentID string

	t.Run("create", func(t *testing.T) {
		c := g.do("POST", "/v1/payments", tableflowKey, createBody, "Idempotency-Key", "order-1001")
		if c.status != 201 {
			t.Fatalf("create: %d %s", c.status, c.body)
		}
		p := c.json(t)
		paymentID, _ = p["id"].(string)
		if !strings.HasPrefix(paymentID, "pay_") || p["provider"] != "stripe" || !strings.HasPrefix(p["provider_payment_id"].(string), "pi_") {
			t.Fatalf("create response: %s", c.body)
		}
		if p["amount"] != float64(12990) || p["currency"] != "CLP" || p["reference"] != "order-1001" || p["client_secret"] == nil {
			t.Fatalf("create response fields: %s", c.body)
		}
		switch p["status"] {
		case "pending", "requires_action", "succeeded", "failed", "cancelled", "refunded":
		default:
			t.Fatalf("status %v not in the enum", p["status"])
		}
		if c.header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id on the response")
		}
	})
	if paymentID == "" {
		t.Fatal("no payment created")
	}

	t.Run("idempotent replay makes one provider call", func(t *testing.T) {
		before := proxy.count("POST /v1/payment_intents")
		c := g.do("POST", "/v1/payments", tableflowKey, createBody, "Idempotency-Key", "order-1001")
		if c.status != 201 || c.json(t)["id"] != paymentID || c.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %d %s", c.status, c.body)
		}
		if after := proxy.count("POST /v1/payment_intents"); after != before || before != 1 {
			t.Fatalf("provider calls for one key: before %d, after %d; want 1 and 1", before, after)
		}
	})

	t.Run("same key, other body is 422", func(t *testing.T) {
		changed := map[string]any{"amount": 13990, "currency": "CLP", "reference": "order-1001"}
		c := g.do("POST", "/v1/payments", tableflowKey, changed, "Idempotency-Key", "order-1001")
		if c.status != 422 || c.errorCode(t) != "idempotency_key_reused" {
			t.Fatalf("changed body: %d %s", c.status, c.body)
		}
	})

	t.Run("read", func(t *testing.T) {
		c := g.do("GET", "/v1/payments/"+paymentID, tableflowKey, nil)
		if c.status != 200 || c.json(t)["id"] != paymentID {
			t.Fatalf("get: %d %s", c.status, c.body)
		}
		c = g.do("GET", "/v1/payments/"+paymentID+"?refresh=true", tableflowKey, nil)
		if c.status != 200 || proxy.count("GET /v1/payment_intents/"+c.json(t)["provider_payment_id"].(string)) != 1 {
			t.Fatalf("refresh: %d %s", c.status, c.body)
		}
	})

	t.Run("refund", func(t *testing.T) {
		c := g.do("POST", "/v1/payments/"+paymentID+"/refunds", tableflowKey, map[string]any{"amount": 2990}, "Idempotency-Key", "refund-1")
		if c.status != 200 || c.json(t)["amount_refunded"] != float64(2990) {
			t.Fatalf("partial refund: %d %s", c.status, c.body)
		}
		c = g.do("POST", "/v1/payments/"+paymentID+"/refunds", tableflowKey, map[string]any{"amount": 2990}, "Idempotency-Key", "refund-1")
		if c.status != 200 || c.json(t)["amount_refunded"] != float64(2990) || proxy.count("POST /v1/refunds") != 1 {
			t.Fatalf("replayed refund refunded twice: %d %s (provider refunds %d)", c.status, c.body, proxy.count("POST /v1/refunds"))
		}
		c = g.do("POST", "/v1/payments/"+paymentID+"/refunds", tableflowKey, nil)
		p := c.json(t)
		if c.status != 200 || p["amount_refunded"] != float64(12990) || p["status"] != "refunded" {
			t.Fatalf("full refund: %d %s", c.status, c.body)
		}
		c = g.do("POST", "/v1/payments/"+paymentID+"/refunds", tableflowKey, map[string]any{"amount": 1})
		if c.status != 400 || c.errorCode(t) != "invalid_request" {
			t.Fatalf("refund of a refunded payment: %d %s", c.status, c.body)
		}
	})

	t.Run("another tenant's payment is 404 like a missing one", func(t *testing.T) {
		other := g.do("GET", "/v1/payments/"+paymentID, otherKey, nil)
		missing := g.do("GET", "/v1/payments/pay_doesnotexist", otherKey, nil)
		if other.status != 404 || !bytes.Equal(other.body, missing.body) {
			t.Fatalf("other tenant: %d %s; missing: %d %s", other.status, other.body, missing.status, missing.body)
		}
		c := g.do("POST", "/v1/payments/"+paymentID+"/refunds", otherKey, map[string]any{"amount": 1})
		if c.status != 404 {
			t.Fatalf("other tenant refund: %d %s", c.status, c.body)
		}
	})

	t.Run("auth", func(t *testing.T) {
		for name, key := range map[string]string{"no key": "", "wrong key": "pc_live_wrong_wrong_wrong_wrong_wrong_wrong"} {
			c := g.do("GET", "/v1/payments/"+paymentID, key, nil)
			if c.status != 401 || c.errorCode(t) != "unauthorized" {
				t.Fatalf("%s: %d %s", name, c.status, c.body)
			}
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		tests := map[string]struct {
			body   any
			status int
			code   string
			says   string
		}{
			"malformed json":     {body: `{"amount":`, status: 400, code: "invalid_request", says: "malformed JSON"},
			"unknown field":      {body: `{"amount":1,"currency":"CLP","reference":"x","colour":"red"}`, status: 400, code: "invalid_request", says: `"colour"`},
			"amount as string":   {body: `{"amount":"12990","currency":"CLP","reference":"x"}`, status: 400, code: "invalid_request", says: `"amount"`},
			"negative amount":    {body: `{"amount":-5,"currency":"CLP","reference":"x"}`, status: 400, code: "invalid_request", says: "amount"},
			"bad currency":       {body: `{"amount":5,"currency":"pesos","reference":"x"}`, status: 400, code: "invalid_request", says: "currency"},
			"missing reference":  {body: `{"amount":5,"currency":"CLP"}`, status: 400, code: "invalid_request", says: "reference"},
			"provider not on":    {body: `{"provider":"mercadopago","amount":5,"currency":"CLP","reference":"x"}`, status: 400, code: "provider_not_enabled", says: "mercadopago"},
			"oversized body":     {body: `{"amount":5,"currency":"CLP","reference":"` + strings.Repeat("x", 2<<20) + `"}`, status: 413, code: "body_too_large"},
			"not an object":      {body: `[1,2]`, status: 400, code: "invalid_request", says: "object"},
			"trailing data":      {body: `{"amount":5,"currency":"CLP","reference":"x"} {}`, status: 400, code: "invalid_request", says: "after"},
			"provider times out": {body: `{"amount":5,"currency":"CLP","reference":"slow"}`, status: 504, code: "provider_timeout"},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				c := g.do("POST", "/v1/payments", tableflowKey, tc.body)
				if c.status != tc.status || c.errorCode(t) != tc.code || !strings.Contains(c.errorMessage(t), tc.says) {
					t.Fatalf("%d %s; want %d %s mentioning %q", c.status, c.body, tc.status, tc.code, tc.says)
				}
			})
		}
		if c := g.do("GET", "/v1/payments/x?refresh=maybe", tableflowKey, nil); c.status != 400 {
			t.Errorf("bad refresh flag: %d %s", c.status, c.body)
		}
		if c := g.do("GET", "/v1/nothing", tableflowKey, nil); c.status != 404 || c.errorCode(t) != "not_found" {
			t.Errorf("unknown route: %d %s", c.status, c.body)
		}
		if c := g.do("GET", "/v1/logs?limit=abc", tableflowKey, nil); c.status != 400 {
			t.Errorf("bad limit: %d %s", c.status, c.body)
		}
	})

	t.Run("audit log", func(t *testing.T) {
		c := g.do("GET", "/v1/logs?provider=stripe&action=payments.create&limit=50", tableflowKey, nil)
		if c.status != 200 {
			t.Fatalf("logs: %d %s", c.status, c.body)
		}
		data, _ := c.json(t)["data"].([]any)
		var ok, timeout int
		for _, r := range data {
			rec := r.(map[string]any)
			if rec["tenant_id"] != "tableflow" || rec["action"] != "payments.create" {
				t.Fatalf("foreign record: %v", rec)
			}
			switch rec["status"] {
			case "ok":
				ok++
			case "timeout":
				timeout++
			}
		}
		if ok != 1 || timeout != 1 {
			t.Fatalf("create records: ok %d timeout %d, want 1 and 1: %s", ok, timeout, c.body)
		}
		c = g.do("GET", "/v1/logs?limit=2", tableflowKey, nil)
		next, _ := c.json(t)["next_cursor"].(string)
		if next == "" {
			t.Fatalf("no next cursor after 2 of many records: %s", c.body)
		}
		if c := g.do("GET", "/v1/logs?limit=2&cursor="+next, tableflowKey, nil); c.status != 200 {
			t.Fatalf("second page: %d %s", c.status, c.body)
		}
		if c := g.do("GET", "/v1/logs", otherKey, nil); c.status != 200 || strings.Contains(string(c.body), "tableflow") {
			t.Fatalf("other tenant sees tableflow's log: %s", c.body)
		}
	})

	t.Run("plugin killed, next call succeeds after restart", func(t *testing.T) {
		pids := g.pluginPIDs()
		if len(pids) != 1 {
			t.Fatalf("plugin processes: %v", pids)
		}
		if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 5000, "currency": "CLP", "reference": "after-crash"})
		if c.status != 201 {
			t.Fatalf("call after the plugin was killed: %d %s", c.status, c.body)
		}
		now := g.pluginPIDs()
		if len(now) != 1 || now[0] == pids[0] {
			t.Fatalf("plugin not restarted: before %v, now %v", pids, now)
		}
		ready := g.do("GET", "/readyz", "", nil)
		if ready.status != 200 || !strings.Contains(string(ready.body), `"restarts":1`) {
			t.Fatalf("readyz after restart: %d %s", ready.status, ready.body)
		}
	})

	t.Run("no secret leaks", func(t *testing.T) {
		if strings.Contains(g.logs.String(), sentinelSecret) {
			t.Error("the Stripe secret key appears in the gateway's output")
		}
		if hits := grepDir(t, g.dir, sentinelSecret); len(hits) > 0 {
			t.Errorf("the Stripe secret key appears in %v", hits)
		}
	})
}

// TestTamperedPluginIsRefused flips one byte of the plugin binary: the
// gateway refuses to run it, says why, reports not ready, and answers 503.
func TestTamperedPluginIsRefused(t *testing.T) {
	plugins := copyPlugins(t)
	bin := filepath.Join(plugins, "pipecore-plugin-stripe")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	g := startGateway(t, dir, gatewayConfig(freeAddr(), filepath.Join(dir, "data"), plugins, stripeMockURL))
	if got := g.pluginPIDs(); len(got) != 0 {
		t.Fatalf("tampered plugin is running: %v", got)
	}
	ready := g.do("GET", "/readyz", "", nil)
	if ready.status != 503 || !strings.Contains(string(ready.body), "SHA-256") {
		t.Fatalf("readyz: %d %s", ready.status, ready.body)
	}
	c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 5, "currency": "CLP", "reference": "x"})
	if c.status != 503 || c.errorCode(t) != "plugin_unavailable" || c.header.Get("Retry-After") == "" {
		t.Fatalf("call to refused plugin: %d %s", c.status, c.body)
	}
	if !strings.Contains(g.logs.String(), "does not match its pinned SHA-256") {
		t.Fatalf("log does not say why the plugin was refused:\n%s", g.logs)
	}
}

// TestGatewaySIGKILLLeavesNoPlugin kills the gateway with SIGKILL and
// checks its plugin process is gone within a few seconds.
func TestGatewaySIGKILLLeavesNoPlugin(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, dir, gatewayConfig(freeAddr(), filepath.Join(dir, "data"), copyPlugins(t), stripeMockURL))
	pids := g.pluginPIDs()
	if len(pids) != 1 {
		t.Fatalf("plugin processes: %v", pids)
	}
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	g.wait(5 * time.Second)
	deadline := time.Now().Add(3 * time.Second)
	for alive(pids[0]) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d still alive 3s after the gateway was SIGKILLed", pids[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGracefulShutdownStopsPlugins sends SIGTERM: the gateway exits 0 and
// takes its plugins with it.
func TestGracefulShutdownStopsPlugins(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, dir, gatewayConfig(freeAddr(), filepath.Join(dir, "data"), copyPlugins(t), stripeMockURL))
	pids := g.pluginPIDs()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := g.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, g.logs)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Fatalf("plugin %d outlived a graceful shutdown", pid)
		}
	}
}

// TestBadConfigFailsClearly starts the gateway on broken configs: each
// exits with status 2 and a message naming the tenant, provider and field.
func TestBadConfigFailsClearly(t *testing.T) {
	plugins := copyPlugins(t)
	good := func(dir string) string {
		return gatewayConfig(freeAddr(), filepath.Join(dir, "data"), plugins, stripeMockURL)
	}
	tests := map[string]struct {
		edit func(string) string
		env  []string
		says []string
	}{
		"unknown key": {
			edit: func(c string) string { return strings.Replace(c, "enabled: true", "enabeld: true", 1) },
			says: []string{"tenants.tableflow.providers.stripe", `unknown key "enabeld"`},
		},
		"unset env": {
			edit: func(c string) string { return strings.Replace(c, "${STRIPE_SECRET_KEY}", "${PIPECORE_E2E_UNSET}", 1) },
			says: []string{"tenants.tableflow.providers.stripe.credentials.secret_key", "PIPECORE_E2E_UNSET"},
		},
		"missing required credential": {
			edit: func(c string) string {
				return strings.Replace(c, `credentials: { secret_key: "sk_test_otherco" }`, `credentials: { webhook_secret: "whsec_x" }`, 1)
			},
			says: []string{`tenant "otherco"`, `provider "stripe"`, "secret_key"},
		},
		"provider without plugin": {
			edit: func(c string) string {
				return c + "  ghost:\n    api_keys: [\"sha256:" + sha256hex("ghost-key") + "\"]\n    providers:\n      strpe: { credentials: { key: x } }\n"
			},
			says: []string{`tenant "ghost"`, `provider "strpe"`, "no plugin provides it"},
		},
		"short api key": {
			edit: func(c string) string { return c },
			env:  []string{"TABLEFLOW_API_KEY=short"},
			says: []string{"tenants.tableflow", "32"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			g := runGateway(t, dir, tc.edit(good(dir)), tc.env...)
			if code := g.wait(20 * time.Second); code != 2 {
				t.Fatalf("exit code %d, want 2\n%s", code, g.logs)
			}
			out := g.logs.String()
			for _, s := range tc.says {
				if !strings.Contains(out, s) {
					t.Errorf("output does not mention %q:\n%s", s, out)
				}
			}
			if strings.Contains(out, "panic") || strings.Contains(out, sentinelSecret) {
				t.Errorf("output panics or leaks the secret:\n%s", out)
			}
		})
	}
}

// TestSecondGatewayOnSameDataDir: the bbolt file is locked by the first
// gateway; the second fails at start with a message saying so.
func TestSecondGatewayOnSameDataDir(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	startGateway(t, dir, gatewayConfig(freeAddr(), data, copyPlugins(t), stripeMockURL))
	second := runGateway(t, t.TempDir(), gatewayConfig(freeAddr(), data, copyPlugins(t), stripeMockURL))
	if code := second.wait(20 * time.Second); code == 0 {
		t.Fatal("second gateway on the same data dir exited 0")
	}
	if out := second.logs.String(); !strings.Contains(out, "another process holds") || !strings.Contains(out, "pipecore.db") {
		t.Fatalf("second gateway's error does not explain the lock:\n%s", out)
	}
}
