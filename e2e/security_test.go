package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	adminToken = "pipecore-admin-token-0123456789abcdefghijkl"
	// credentialSentinel is a Stripe key set through the admin API; it
	// must appear nowhere but inside the encrypted store.
	credentialSentinel = "sk_test_ADMINSENTINEL7c4d"
)

func securityConfig(listen, dataDir, pluginsDir string) string {
	return fmt.Sprintf(`listen: %s
data_dir: %s
plugins_dir: %s
log: { level: debug, format: json }
admin: { token: "${PIPECORE_ADMIN_TOKEN}" }
limits: { tenant_rps: 20, tenant_burst: 40 }
tenants:
  tableflow:
    api_keys: ["${TABLEFLOW_API_KEY}"]
    defaults: { payments: stripe }
    providers:
      stripe:
        settings: { base_url: "%s" }
        credentials: { secret_key: "${STRIPE_SECRET_KEY}", webhook_secret: "whsec_tableflow" }
`, listen, dataDir, pluginsDir, stripeMockURL)
}

// cli runs bin/pipecore with the admin token against g.
func cli(t *testing.T, g *gateway, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "pipecore"), append(args, "--addr", g.url)...)
	cmd.Env = append(os.Environ(), "PIPECORE_ADMIN_TOKEN="+adminToken)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustCLI(t *testing.T, g *gateway, stdin string, args ...string) string {
	t.Helper()
	out, err := cli(t, g, stdin, args...)
	if err != nil {
		t.Fatalf("pipecore %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func mintToken(secret, kid, tid string, iat, exp time.Time) string {
	payload, _ := json.Marshal(map[string]any{"kid": kid, "tid": tid, "iat": iat.Unix(), "exp": exp.Unix()})
	signed := "pct." + base64.RawURLEncoding.EncodeToString(payload)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// TestOperatorsAndIsolation drives the admin CLI and checks tenant
// isolation, tokens, rate limits, key rotation and that no secret leaks.
func TestOperatorsAndIsolation(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	g := startGateway(t, dir, securityConfig(freeAddr(), data, copyPlugins(t)), "PIPECORE_ADMIN_TOKEN="+adminToken)

	// An operator creates a tenant through the CLI, gives it a key, sets its
	// Stripe key (from stdin) and enables Stripe.
	out := mustCLI(t, g, "", "tenants", "create", "bistro", "--default", "payments=stripe")
	if !strings.Contains(out, "bistro") {
		t.Fatalf("tenants create: %s", out)
	}
	if out, err := cli(t, g, "", "providers", "enable", "bistro", "stripe", "--set", "base_url="+stripeMockURL); err == nil {
		t.Fatalf("enabling stripe without its required secret_key succeeded:\n%s", out)
	} else if !strings.Contains(out, "secret_key") {
		t.Fatalf("refusal does not name the missing field:\n%s", out)
	}
	mustCLI(t, g, credentialSentinel+"\n", "credentials", "set", "bistro", "stripe", "secret_key")
	mustCLI(t, g, "", "providers", "enable", "bistro", "stripe", "--set", "base_url="+stripeMockURL)
	var key struct {
		ID, Key string
	}
	if err := json.Unmarshal([]byte(mustCLI(t, g, "", "keys", "create", "bistro", "--json")), &key); err != nil || !strings.HasPrefix(key.Key, "pc_live_") {
		t.Fatalf("keys create: %v %+v", err, key)
	}
	bistroKey := key.Key

	// The new tenant works at once, with the credential set by the operator.
	c := g.do("POST", "/v1/payments", bistroKey, map[string]any{"amount": 4500, "currency": "CLP", "reference": "b-1"})
	if c.status != 201 {
		t.Fatalf("payment with operator-set credentials: %d %s", c.status, c.body)
	}
	bistroPay := c.json(t)["id"].(string)
	c = g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 4500, "currency": "CLP", "reference": "t-1"})
	if c.status != 201 {
		t.Fatalf("tableflow payment: %d %s", c.status, c.body)
	}
	tablePay := c.json(t)["id"].(string)
	c = g.do("POST", "/v1/endpoints", bistroKey, map[string]any{"url": "https://bistro.example/hooks"})
	if c.status != 201 {
		t.Fatalf("bistro endpoint: %d %s", c.status, c.body)
	}
	bistroEndpoint := c.json(t)["id"].(string)

	t.Run("another tenant's ids answer like missing ones", func(t *testing.T) {
		routes := []struct{ method, path, missing string }{
			{"GET", "/v1/payments/" + bistroPay, "/v1/payments/pay_missing"},
			{"POST", "/v1/payments/" + bistroPay + "/refunds", "/v1/payments/pay_missing/refunds"},
			{"GET", "/v1/payments/" + bistroPay + "/timeline", "/v1/payments/pay_missing/timeline"},
			{"GET", "/v1/endpoints/" + bistroEndpoint, "/v1/endpoints/ep_missing"},
			{"PATCH", "/v1/endpoints/" + bistroEndpoint, "/v1/endpoints/ep_missing"},
			{"POST", "/v1/endpoints/" + bistroEndpoint + "/rotate-secret", "/v1/endpoints/ep_missing/rotate-secret"},
			{"DELETE", "/v1/endpoints/" + bistroEndpoint, "/v1/endpoints/ep_missing"},
		}
		for _, r := range routes {
			var body any
			if r.method == "PATCH" {
				body = map[string]any{"enabled": false}
			}
			cross := g.do(r.method, r.path, tableflowKey, body)
			missing := g.do(r.method, r.missing, tableflowKey, body)
			if cross.status != 404 || !bytes.Equal(cross.body, missing.body) {
				t.Errorf("%s %s with another tenant's key: %d %s (missing id: %d %s)", r.method, r.path, cross.status, cross.body, missing.status, missing.body)
			}
		}
		if c := g.do("GET", "/v1/payments/"+bistroPay, bistroKey, nil); c.status != 200 || c.json(t)["amount_refunded"] != float64(0) {
			t.Errorf("bistro's payment changed: %s", c.body)
		}
		if c := g.do("GET", "/v1/endpoints/"+bistroEndpoint, bistroKey, nil); c.status != 200 || c.json(t)["enabled"] != true {
			t.Errorf("bistro's endpoint changed: %s", c.body)
		}
		if c := g.do("GET", "/v1/payments/"+tablePay, bistroKey, nil); c.status != 404 {
			t.Errorf("bistro reads tableflow's payment: %d", c.status)
		}
	})

	t.Run("server-owned fields are refused", func(t *testing.T) {
		for _, b := range []string{
			`{"amount":1,"currency":"CLP","reference":"x","id":"pay_mine"}`,
			`{"amount":1,"currency":"CLP","reference":"x","status":"succeeded"}`,
			`{"amount":1,"currency":"CLP","reference":"x","tenant_id":"bistro"}`,
		} {
			if c := g.do("POST", "/v1/payments", tableflowKey, b); c.status != 400 {
				t.Errorf("%s: %d %s", b, c.status, c.body)
			}
		}
		for _, b := range []string{`{"url":"https://x.example/h","secret":"whsec_mine"}`, `{"url":"https://x.example/h","source":"config"}`} {
			if c := g.do("POST", "/v1/endpoints", tableflowKey, b); c.status != 400 {
				t.Errorf("%s: %d %s", b, c.status, c.body)
			}
		}
	})

	t.Run("short-lived tokens", func(t *testing.T) {
		var ts struct{ Kid, Secret string }
		if err := json.Unmarshal([]byte(mustCLI(t, g, "", "tenants", "token-secret", "bistro", "--json")), &ts); err != nil || ts.Kid == "" {
			t.Fatalf("token-secret: %v", err)
		}
		now := time.Now()
		cases := map[string]struct {
			tok    string
			status int
		}{
			"valid":        {mintToken(ts.Secret, ts.Kid, "bistro", now, now.Add(4*time.Minute)), 200},
			"expired":      {mintToken(ts.Secret, ts.Kid, "bistro", now.Add(-10*time.Minute), now.Add(-5*time.Minute)), 401},
			"future-dated": {mintToken(ts.Secret, ts.Kid, "bistro", now.Add(3*time.Minute), now.Add(5*time.Minute)), 401},
			"wrong tenant": {mintToken(ts.Secret, ts.Kid, "tableflow", now, now.Add(4*time.Minute)), 401},
			"too long":     {mintToken(ts.Secret, ts.Kid, "bistro", now, now.Add(time.Hour)), 401},
		}
		for name, tc := range cases {
			if c := g.do("GET", "/v1/payments/"+bistroPay, tc.tok, nil); c.status != tc.status {
				t.Errorf("%s token: %d %s", name, c.status, c.body)
			}
		}
	})

	t.Run("rate limit is per tenant", func(t *testing.T) {
		var limited *call
		for i := 0; i < 300; i++ {
			c := g.do("GET", "/v1/logs", tableflowKey, nil)
			if c.status == 429 {
				limited = &c
				break
			}
		}
		if limited == nil || limited.header.Get("Retry-After") == "" || limited.errorCode(t) != "rate_limited" {
			t.Fatalf("no 429 with Retry-After after a burst: %+v", limited)
		}
		if c := g.do("GET", "/v1/logs", bistroKey, nil); c.status != 200 {
			t.Fatalf("bistro limited by tableflow's burst: %d %s", c.status, c.body)
		}
	})

	t.Run("master key rotation re-wraps every credential", func(t *testing.T) {
		before := mustCLI(t, g, "", "credentials", "show", "bistro", "--json")
		out := mustCLI(t, g, "", "keys", "rotate", "--json")
		var rot struct {
			CurrentVersion int   `json:"current_version"`
			Rewrapped      int   `json:"rewrapped"`
			Retired        []int `json:"retired"`
		}
		if err := json.Unmarshal([]byte(out), &rot); err != nil || rot.CurrentVersion != 2 || rot.Rewrapped < 1 || len(rot.Retired) != 1 {
			t.Fatalf("keys rotate: %v %s", err, out)
		}
		after := mustCLI(t, g, "", "credentials", "show", "bistro", "--json")
		if strings.Contains(after, `"key_version": 1`) || !strings.Contains(after, `"key_version": 2`) {
			t.Fatalf("a credential is still wrapped by the old key:\nbefore %s\nafter %s", before, after)
		}
		if c := g.do("POST", "/v1/payments", bistroKey, map[string]any{"amount": 100, "currency": "CLP", "reference": "after-rotate"}); c.status != 201 {
			t.Fatalf("payment after rotation: %d %s", c.status, c.body)
		}
	})

	t.Run("operator views and audit", func(t *testing.T) {
		out := mustCLI(t, g, "", "plugins", "list")
		if !strings.Contains(out, "stripe") || !strings.Contains(out, "running") || !strings.Contains(out, "bistro") {
			t.Fatalf("plugins list:\n%s", out)
		}
		out = mustCLI(t, g, "", "tenants", "list")
		for _, want := range []string{"tableflow", "config", "bistro", "api"} {
			if !strings.Contains(out, want) {
				t.Fatalf("tenants list lacks %q:\n%s", want, out)
			}
		}
		if out := mustCLI(t, g, "", "audit", "verify", "bistro"); !strings.Contains(out, "intact") {
			t.Fatalf("audit verify: %s", out)
		}
		logs := g.do("GET", "/v1/logs?provider=admin", bistroKey, nil)
		for _, action := range []string{"admin.tenant.create", "admin.credential.set", "admin.provider.enable", "admin.key.create", "admin.master_key.rotate"} {
			if !strings.Contains(string(logs.body), action) {
				t.Errorf("admin action %s not audited", action)
			}
		}
		if out, err := cli(t, g, "", "tenants", "list", "--addr", g.url); err != nil || strings.Contains(out, "unauthorized") {
			t.Fatalf("%v %s", err, out)
		}
		cmd := exec.Command(filepath.Join(binDir, "pipecore"), "tenants", "list", "--addr", g.url)
		cmd.Env = append(os.Environ(), "PIPECORE_ADMIN_TOKEN=wrong-token-wrong-token-wrong-token")
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
			t.Fatalf("wrong operator token accepted: %s", out)
		}
		if c := g.do("GET", "/admin/v1/tenants", tableflowKey, nil); c.status != 401 {
			t.Fatalf("a tenant key opened the admin API: %d", c.status)
		}
	})

	t.Run("keys, credentials and replays through the CLI", func(t *testing.T) {
		waitFor(t, "the key's last-used time", 10*time.Second, func() bool {
			return strings.Contains(mustCLI(t, g, "", "keys", "list", "bistro", "--json"), `"last_used_at"`)
		})
		var second struct{ ID, Key string }
		if err := json.Unmarshal([]byte(mustCLI(t, g, "", "keys", "create", "bistro", "--json")), &second); err != nil {
			t.Fatal(err)
		}
		if c := g.do("GET", "/v1/logs", second.Key, nil); c.status != 200 {
			t.Fatalf("second key before revoke: %d", c.status)
		}
		mustCLI(t, g, "", "keys", "revoke", "bistro", second.ID)
		if c := g.do("GET", "/v1/logs", second.Key, nil); c.status != 401 {
			t.Fatalf("revoked key: %d", c.status)
		}
		if c := g.do("GET", "/v1/logs", bistroKey, nil); c.status != 200 {
			t.Fatalf("the other key stopped working: %d", c.status)
		}
		if out := mustCLI(t, g, "", "credentials", "show", "bistro"); !strings.Contains(out, "secret_key") || strings.Contains(out, credentialSentinel) {
			t.Fatalf("credentials show:\n%s", out)
		}
		out := mustCLI(t, g, "", "events", "replay", "bistro", "--since", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "--status", "all", "--json")
		if !strings.Contains(out, `"replayed"`) {
			t.Fatalf("events replay: %s", out)
		}
		if out := mustCLI(t, g, "", "tenants", "show", "bistro"); !strings.Contains(out, "bistro") || !strings.Contains(out, "stripe") {
			t.Fatalf("tenants show:\n%s", out)
		}
		// Events of one tenant are invisible to the other.
		evs := g.do("GET", "/v1/events", bistroKey, nil)
		data, _ := evs.json(t)["data"].([]any)
		if len(data) == 0 {
			t.Fatalf("bistro has no events: %s", evs.body)
		}
		evID := data[0].(map[string]any)["id"].(string)
		for _, r := range []struct{ method, path, missing string }{
			{"GET", "/v1/events/" + evID, "/v1/events/evt_missing"},
			{"POST", "/v1/events/" + evID + "/replay", "/v1/events/evt_missing/replay"},
		} {
			cross, missing := g.do(r.method, r.path, tableflowKey, nil), g.do(r.method, r.missing, tableflowKey, nil)
			if cross.status != 404 || !bytes.Equal(cross.body, missing.body) {
				t.Errorf("%s %s across tenants: %d %s", r.method, r.path, cross.status, cross.body)
			}
		}
		mustCLI(t, g, "", "credentials", "unset", "bistro", "stripe", "secret_key")
		c := g.do("POST", "/v1/payments", bistroKey, map[string]any{"amount": 100, "currency": "CLP", "reference": "after-unset"})
		if c.status != 502 || c.errorCode(t) != "provider_unauthorized" {
			t.Fatalf("payment after the credential was unset: %d %s", c.status, c.body)
		}
		mustCLI(t, g, credentialSentinel+"\n", "credentials", "set", "bistro", "stripe", "secret_key")
	})

	t.Run("disabled tenant", func(t *testing.T) {
		mustCLI(t, g, "", "tenants", "disable", "bistro")
		if c := g.do("GET", "/v1/payments/"+bistroPay, bistroKey, nil); c.status != 401 {
			t.Fatalf("disabled tenant's key: %d", c.status)
		}
		mustCLI(t, g, "", "tenants", "enable", "bistro")
		if c := g.do("GET", "/v1/payments/"+bistroPay, bistroKey, nil); c.status != 200 {
			t.Fatalf("re-enabled tenant's key: %d", c.status)
		}
	})

	t.Run("plugin environment lacks the gateway's secrets", func(t *testing.T) {
		pids := g.pluginPIDs()
		if len(pids) != 1 {
			t.Fatalf("plugins: %v", pids)
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pids[0]))
		if err != nil {
			t.Fatal(err)
		}
		master, _ := os.ReadFile(filepath.Join(data, "master.key"))
		for _, s := range []string{"PIPECORE_ADMIN_TOKEN", adminToken, "STRIPE_SECRET_KEY", sentinelSecret, "TABLEFLOW_API_KEY"} {
			if bytes.Contains(env, []byte(s)) {
				t.Errorf("plugin environment contains %q", s)
			}
		}
		if len(master) == 0 || bytes.Contains(env, master) {
			t.Errorf("master key file empty or leaked into the plugin environment")
		}
	})

	t.Run("no secret anywhere", func(t *testing.T) {
		for _, s := range []string{credentialSentinel, sentinelSecret, adminToken, bistroKey} {
			if strings.Contains(g.logs.String(), s) {
				t.Errorf("%.12s… appears in the gateway output", s)
			}
			if hits := grepDir(t, dir, s); len(hits) > 0 && !(s == adminToken && onlyConfig(hits)) {
				t.Errorf("%.12s… appears in %v", s, hits)
			}
		}
		if c := g.do("GET", "/v1/logs?limit=500", bistroKey, nil); strings.Contains(string(c.body), credentialSentinel) {
			t.Error("the credential appears in the audit API")
		}
	})
}

// onlyConfig reports whether every hit is the test's own config file.
func onlyConfig(hits []string) bool {
	for _, h := range hits {
		if filepath.Base(h) != "pipecore.yaml" {
			return false
		}
	}
	return true
}
