package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/pluginhost"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/vault"
	"github.com/pipecore/pipecore/sdk/provider"
)

const testToken = "operator-token-0123456789abcdefghijklmnop"

// fakePlugins is the plugin host as the admin API sees it.
type fakePlugins struct {
	status   []pluginhost.Status
	versions map[string]string // tenant → version of stripe
	reports  []pluginhost.Report
	reloaded []string
	regErr   error
	reg      []string
}

func (f *fakePlugins) Status() []pluginhost.Status       { return f.status }
func (f *fakePlugins) Catalog() map[string]provider.Info { return nil }
func (f *fakePlugins) Version(name, tenantID string) (string, bool) {
	v, ok := f.versions[tenantID]
	return v, ok && name == "stripe"
}
func (f *fakePlugins) Reload(_ context.Context, names []string) ([]pluginhost.Report, error) {
	f.reloaded = names
	return f.reports, nil
}
func (f *fakePlugins) Register(name, path string, sum []byte) (pluginhost.Binary, error) {
	if f.regErr != nil {
		return pluginhost.Binary{}, f.regErr
	}
	f.reg = append(f.reg, name+" "+path)
	return pluginhost.Binary{Name: name, Version: "1.4.0", Path: path, Checksum: sum}, nil
}

type fakeGateway struct{ reg *tenant.Registry }

func (g fakeGateway) Registry() *tenant.Registry                 { return g.reg }
func (g fakeGateway) Reload(context.Context) error               { return nil }
func (g fakeGateway) EnsurePlugin(context.Context, string) error { return nil }
func (g fakeGateway) ConfigTenant(string) bool                   { return true }
func (g fakeGateway) Check(context.Context, string, func(*store.TenantRecord)) error {
	return nil
}
func (g fakeGateway) Replay(context.Context, string, string, string, time.Time, time.Time) (int, error) {
	return 0, nil
}

func newPluginsAPI(t *testing.T, plugins *fakePlugins) fasthttp.RequestHandler {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	kf, err := vault.NewKeyFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(kf, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	on := true
	reg, err := tenant.New(map[string]config.Tenant{
		"acme": {APIKeys: []string{"sha256:" + strings.Repeat("ab", 32)}, Providers: map[string]config.Provider{"stripe": {Enabled: &on}}},
		"beta": {APIKeys: []string{"sha256:" + strings.Repeat("cd", 32)}, Providers: map[string]config.Provider{"stripe": {Enabled: &on}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(testToken))
	api, err := New(Config{TokenHash: sum[:], Store: st, Vault: v, Gateway: fakeGateway{reg: reg}, Plugins: plugins})
	if err != nil {
		t.Fatal(err)
	}
	r := router.New()
	api.Register(r)
	return r.Handler
}

func request(h fasthttp.RequestHandler, method, path, body string) (int, map[string]any) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	ctx.Request.Header.Set("Authorization", "Bearer "+testToken)
	ctx.Request.SetBodyString(body)
	h(&ctx)
	var out map[string]any
	_ = json.Unmarshal(ctx.Response.Body(), &out)
	return ctx.Response.StatusCode(), out
}

func TestListPluginsShowsTenantsPerVersion(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	h := newPluginsAPI(t, &fakePlugins{
		status: []pluginhost.Status{
			{Name: "stripe", Version: "1.4.0", State: pluginhost.StateRunning, Serving: true, Checksum: sum[:]},
			{Name: "stripe", Version: "1.3.0", State: pluginhost.StateRunning, Serving: true},
			{Name: "stripe", Version: "1.5.0", State: pluginhost.StateRejected, LastError: "boom"},
		},
		versions: map[string]string{"acme": "1.3.0", "beta": "1.4.0"},
	})
	status, out := request(h, "GET", "/admin/v1/plugins", "")
	data, _ := out["data"].([]any)
	if status != 200 || len(data) != 3 {
		t.Fatalf("GET /plugins: %d %v", status, out)
	}
	want := map[string]string{"1.4.0": "beta", "1.3.0": "acme", "1.5.0": ""}
	for _, d := range data {
		row := d.(map[string]any)
		var tenants []string
		for _, x := range row["tenants"].([]any) {
			tenants = append(tenants, x.(string))
		}
		if got := strings.Join(tenants, ","); got != want[row["version"].(string)] {
			t.Errorf("%v serves %q, want %q", row["version"], got, want[row["version"].(string)])
		}
		if row["version"] == "1.4.0" && row["sha256"] != hex.EncodeToString(sum[:]) {
			t.Errorf("sha256 = %v", row["sha256"])
		}
		if row["version"] == "1.5.0" && (row["state"] != "rejected" || row["last_error"] != "boom") {
			t.Errorf("refused version: %v", row)
		}
	}
}

func TestReloadPlugins(t *testing.T) {
	f := &fakePlugins{reports: []pluginhost.Report{{
		Name:    "stripe",
		Routes:  []pluginhost.Route{{From: "1.3.0", To: "1.3.0", Healthy: true}},
		Refused: []pluginhost.Refusal{{Version: "1.5.0", Path: "/p/pipecore-plugin-stripe@1.5.0", Error: "exited at start"}},
	}}}
	h := newPluginsAPI(t, f)
	status, out := request(h, "POST", "/admin/v1/plugins/reload", `{"name":"stripe"}`)
	if status != 200 || out["ok"] != false || strings.Join(f.reloaded, ",") != "stripe" {
		t.Fatalf("reload: %d %v (reloaded %v)", status, out, f.reloaded)
	}
	row := out["data"].([]any)[0].(map[string]any)
	refused := row["refused"].([]any)[0].(map[string]any)
	if row["ok"] != false || refused["version"] != "1.5.0" || refused["error"] != "exited at start" {
		t.Fatalf("reload row: %v", row)
	}
	if status, _ := request(h, "POST", "/admin/v1/plugins/reload", `{"name":"../etc"}`); status != 400 {
		t.Fatalf("reload of a bad name: %d", status)
	}
	f.reports[0].Refused = nil
	if status, out := request(h, "POST", "/admin/v1/plugins/reload", ``); status != 200 || out["ok"] != true || f.reloaded != nil {
		t.Fatalf("reload all: %d %v (names %v)", status, out, f.reloaded)
	}
}

func TestRegisterPlugin(t *testing.T) {
	f := &fakePlugins{}
	h := newPluginsAPI(t, f)
	sum := strings.Repeat("ab", 32)
	tests := map[string]struct {
		body   string
		regErr error
		status int
		says   string
	}{
		"ok":             {body: `{"name":"stripe","path":"/opt/p","sha256":"` + sum + `"}`, status: 201, says: "1.4.0"},
		"short checksum": {body: `{"name":"stripe","path":"/opt/p","sha256":"abcd"}`, status: 400, says: "64 hex"},
		"no path":        {body: `{"name":"stripe","sha256":"` + sum + `"}`, status: 400, says: "path"},
		"unknown field":  {body: `{"name":"stripe","path":"/opt/p","sha256":"` + sum + `","x":1}`, status: 400, says: "unknown field"},
		"mismatch": {body: `{"name":"stripe","path":"/opt/p","sha256":"` + sum + `"}`, status: 400, says: "not the",
			regErr: errors.Join(pluginhost.ErrChecksumMismatch, errors.New("the SHA-256 of /opt/p is 00, not the ab given"))},
		"host failure": {body: `{"name":"stripe","path":"/opt/p","sha256":"` + sum + `"}`, status: 503, says: "gateway log",
			regErr: errors.New("disk full")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f.regErr = tc.regErr
			status, out := request(h, "POST", "/admin/v1/plugins/register", tc.body)
			b, _ := json.Marshal(out)
			if status != tc.status || !strings.Contains(string(b), tc.says) {
				t.Fatalf("register: %d %s; want %d saying %q", status, b, tc.status, tc.says)
			}
		})
	}
}
