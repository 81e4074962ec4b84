package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The plugin lifecycle through the real binaries: several versions of the
// Stripe plugin side by side, tenants pinned to versions, hot swaps under
// load, a swap to a build that crashes at start, a crash loop, and the
// conformance command.

const otherStripeWebhookSecret = "whsec_otherco_stripe_signing"

// repoRoot is the repository holding this module.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

var (
	lcBuildMu  sync.Mutex
	lcBuildDir string
	lcBuilt    = map[string]string{}
)

// lcBuild runs `go build -o <cache>/<file> <pkg>` in dir once per test
// binary (with extra build flags) and returns the binary's path.
func lcBuild(t *testing.T, dir, pkg, file string, env []string, flags ...string) string {
	t.Helper()
	lcBuildMu.Lock()
	defer lcBuildMu.Unlock()
	if path, ok := lcBuilt[file]; ok {
		return path
	}
	if lcBuildDir == "" {
		d, err := os.MkdirTemp("", "pipecore-e2e-lifecycle")
		if err != nil {
			t.Fatal(err)
		}
		lcBuildDir = d
	}
	path := filepath.Join(lcBuildDir, file)
	args := append([]string{"build", "-trimpath"}, flags...)
	cmd := exec.Command("go", append(args, "-o", path, pkg)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", file, err, out)
	}
	lcBuilt[file] = path
	return path
}

// stripeBuild builds plugins/stripe reporting version.
func stripeBuild(t *testing.T, version string) string {
	return lcBuild(t, filepath.Join(repoRoot(), "plugins", "stripe"), ".", "pipecore-plugin-stripe@"+version, nil,
		"-ldflags", "-X main.version="+version)
}

// crashBuild is e2e/testdata/crashplugin: it exits 1 at start.
func crashBuild(t *testing.T) string {
	return lcBuild(t, filepath.Join(repoRoot(), "e2e"), "./testdata/crashplugin", "crashplugin", nil)
}

// protocolBuild is a plugin built for wire protocol version 2.
func protocolBuild(t *testing.T) string {
	return lcBuild(t, filepath.Join(repoRoot(), "sdk"), "./pluginclient/testdata/protoplugin", "protoplugin", nil)
}

func lcCopy(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeSums pins every pipecore-plugin-* file of dir in SHA256SUMS.
func writeSums(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "pipecore-plugin-") {
			fmt.Fprintf(&b, "%s  %s\n", fileSum(t, filepath.Join(dir, e.Name())), e.Name())
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// stripeDir is a plugins directory holding the given files (name → path).
func stripeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range files {
		lcCopy(t, src, filepath.Join(dir, name))
	}
	writeSums(t, dir)
	return dir
}

// lifecycleConfig is a gateway with two Stripe tenants, each with its own
// Stripe endpoint (stripeA, stripeB) and event receiver; tableflow's
// Stripe version constraint is tableflowVersion ("" for none).
func lifecycleConfig(listen, dataDir, pluginsDir, tableflowVersion, stripeA, stripeB, rcvA, rcvB string) string {
	version := ""
	if tableflowVersion != "" {
		version = fmt.Sprintf("version: %q\n        ", tableflowVersion)
	}
	return fmt.Sprintf(`listen: %s
public_url: http://%s
data_dir: %s
plugins_dir: %s
log: { level: info, format: json }
plugins: { call_timeout: 5s, start_timeout: 30s }
admin: { token: "${PIPECORE_ADMIN_TOKEN}" }
limits: { tenant_rps: 100000, tenant_burst: 100000 }
delivery: { schedule: [50ms, 100ms, 150ms, 300ms, 1s], timeout: 2s, allow_http: true, allow_networks: ["127.0.0.1/32"] }
tenants:
  tableflow:
    api_keys: ["${TABLEFLOW_API_KEY}"]
    defaults: { payments: stripe }
    providers:
      stripe:
        %ssettings: { base_url: "%s" }
        credentials: { secret_key: "${STRIPE_SECRET_KEY}", webhook_secret: "%s" }
    endpoints:
      - { id: backend, url: "%s", secret: "%s", types: ["payment.*"] }
  otherco:
    api_keys: ["sha256:%s"]
    defaults: { payments: stripe }
    providers:
      stripe:
        settings: { base_url: "%s" }
        credentials: { secret_key: "sk_test_otherco", webhook_secret: "%s" }
    endpoints:
      - { id: backend, url: "%s", secret: "%s", types: ["payment.*"] }
`, listen, listen, dataDir, pluginsDir, version, stripeA, stripeWebhookSecret, rcvA, endpointSecret,
		sha256hex(otherKey), stripeB, otherStripeWebhookSecret, rcvB, endpointSecret)
}

// attributingProxy forwards to stripe-mock and records, for every request,
// which process sent it: the plugin process whose socket is the request's
// client end. A request whose form holds reference=slow-drain is held
// until the test closes release (at most 30s): on a loaded machine a fixed
// hold can end before a reload has even started its candidate.
type attributingProxy struct {
	srv     *httptest.Server
	port    int
	mu      sync.Mutex
	seen    []attribution
	ports   map[int]int // client port → pid
	slow    chan struct{}
	release chan struct{}
}

type attribution struct {
	at  time.Time
	pid int
}

func newAttributingProxy(t *testing.T) *attributingProxy {
	t.Helper()
	target, _ := url.Parse(stripeMockURL)
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &attributingProxy{ports: map[int]int{}, slow: make(chan struct{}, 16), release: make(chan struct{})}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		_, portStr, _ := strings.Cut(r.RemoteAddr, ":")
		port, _ := strconv.Atoi(portStr)
		pid := p.pidOf(port)
		p.mu.Lock()
		p.seen = append(p.seen, attribution{at: at, pid: pid})
		p.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if strings.Contains(string(body), "slow-drain") {
			p.slow <- struct{}{}
			select {
			case <-p.release:
			case <-time.After(30 * time.Second):
			}
		}
		rp.ServeHTTP(w, r)
	}))
	u, _ := url.Parse(p.srv.URL)
	p.port, _ = strconv.Atoi(u.Port())
	t.Cleanup(p.srv.Close)
	return p
}

// pidOf finds the process owning the loopback TCP socket whose local port
// is clientPort and whose peer is the proxy.
func (p *attributingProxy) pidOf(clientPort int) int {
	p.mu.Lock()
	pid, ok := p.ports[clientPort]
	p.mu.Unlock()
	if ok {
		return pid
	}
	inode := socketInode(clientPort, p.port)
	if inode == "" {
		return 0
	}
	want := "socket:[" + inode + "]"
	for _, pid := range childrenNamed(0, "pipecore-plugin") {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); link == want {
				p.mu.Lock()
				p.ports[clientPort] = pid
				p.mu.Unlock()
				return pid
			}
		}
	}
	return 0
}

// socketInode reads /proc/net/tcp for the socket local:port → remote port.
func socketInode(local, remote int) string {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	wantLocal, wantRemote := fmt.Sprintf(":%04X", local), fmt.Sprintf(":%04X", remote)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		if strings.HasSuffix(fields[1], wantLocal) && strings.HasSuffix(fields[2], wantRemote) {
			return fields[9]
		}
	}
	return ""
}

// pidsSince returns the pids that sent requests at or after t, with counts.
func (p *attributingProxy) pidsSince(from, until time.Time) map[int]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int]int{}
	for _, a := range p.seen {
		if !a.at.Before(from) && a.at.Before(until) {
			out[a.pid]++
		}
	}
	return out
}

// pluginRow is one row of `pipecore plugins list --json`.
type pluginRow struct {
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	State     string   `json:"state"`
	Serving   bool     `json:"serving"`
	Draining  bool     `json:"draining"`
	PID       int      `json:"pid"`
	Restarts  int      `json:"restarts"`
	Degraded  bool     `json:"degraded"`
	LastError string   `json:"last_error"`
	Tenants   []string `json:"tenants"`
}

// adminPlugins reads GET /admin/v1/plugins, by version.
func adminPlugins(t *testing.T, g *gateway) map[string]pluginRow {
	t.Helper()
	c := g.do("GET", "/admin/v1/plugins", adminToken, nil)
	var v struct {
		Data []pluginRow `json:"data"`
	}
	if c.status != 200 || json.Unmarshal(c.body, &v) != nil {
		t.Fatalf("GET /admin/v1/plugins: %d %s", c.status, c.body)
	}
	rows := map[string]pluginRow{}
	for _, r := range v.Data {
		rows[r.Version] = r
	}
	return rows
}

func pluginList(t *testing.T, g *gateway) map[string]pluginRow {
	t.Helper()
	out := mustCLI(t, g, "", "plugins", "list", "--json")
	var v struct {
		Data []pluginRow `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("plugins list --json: %v\n%s", err, out)
	}
	rows := map[string]pluginRow{}
	for _, r := range v.Data {
		rows[r.Version] = r
	}
	return rows
}

// load drives payments and signed webhooks for one tenant until stopped.
type load struct {
	tenant, key, secret, hook string
	gatewayURL                string
	payOK, payFail            atomic.Int64
	hookOK, hookFail          atomic.Int64
	mu                        sync.Mutex
	failures                  []string
	acked                     map[string]bool // payment intents whose webhook got a 2xx
	stop                      chan struct{}
	wg                        sync.WaitGroup
}

func startLoad(g *gateway, tenant, key, secret string, payers, hookers int) *load {
	l := &load{tenant: tenant, key: key, secret: secret, hook: g.url + "/webhooks/stripe/" + tenant, gatewayURL: g.url,
		acked: map[string]bool{}, stop: make(chan struct{})}
	client := &http.Client{Timeout: 30 * time.Second}
	var seq atomic.Int64
	for w := 0; w < payers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				n := seq.Add(1)
				body := fmt.Sprintf(`{"amount":%d,"currency":"CLP","reference":"load-%s-%d"}`, 1000+n, tenant, n)
				req, _ := http.NewRequest("POST", l.gatewayURL+"/v1/payments", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", fmt.Sprintf("load-%s-%d", tenant, n))
				resp, err := client.Do(req)
				if err != nil {
					l.fail("payment %d: %v", n, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					l.fail("payment %d: %d %s", n, resp.StatusCode, b)
					continue
				}
				l.payOK.Add(1)
			}
		}()
	}
	for w := 0; w < hookers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				n := seq.Add(1)
				pi := fmt.Sprintf("pi_lc_%s_%06d", tenant, n)
				body := stripeEvent(fmt.Sprintf("evt_lc_%s_%06d", tenant, n), "payment_intent.succeeded", pi, int(n))
				status, text, err := postWebhook(l.hook, body, signStripe(secret, body, time.Now()))
				if err != nil || status/100 != 2 {
					l.hookFail.Add(1)
					l.fail("webhook %s: %d %s %v", pi, status, text, err)
					continue
				}
				l.hookOK.Add(1)
				l.mu.Lock()
				l.acked[pi] = true
				l.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

func (l *load) fail(format string, args ...any) {
	if strings.HasPrefix(format, "payment") {
		l.payFail.Add(1)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < 20 {
		l.failures = append(l.failures, fmt.Sprintf(format, args...))
	}
}

func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
}

func (l *load) check(t *testing.T) {
	t.Helper()
	t.Logf("%s: %d payments created, %d failed; %d webhooks acknowledged, %d refused", l.tenant, l.payOK.Load(), l.payFail.Load(), l.hookOK.Load(), l.hookFail.Load())
	if l.payFail.Load() != 0 || l.hookFail.Load() != 0 {
		t.Errorf("%s: failed calls under load: %v", l.tenant, l.failures)
	}
}

// delivered waits until every acknowledged webhook of l reached rcv.
func (l *load) delivered(t *testing.T, rcv *receiver) {
	t.Helper()
	l.mu.Lock()
	acked := make(map[string]bool, len(l.acked))
	for k := range l.acked {
		acked[k] = true
	}
	l.mu.Unlock()
	var missing int
	waitFor(t, l.tenant+"'s acknowledged webhooks at its endpoint", 90*time.Second, func() bool {
		got := map[string]bool{}
		for _, d := range rcv.deliveries() {
			var env struct {
				Data struct {
					PI string `json:"provider_payment_id"`
				} `json:"data"`
			}
			if json.Unmarshal(d.body, &env) == nil && d.valid {
				got[env.Data.PI] = true
			}
		}
		missing = 0
		for pi := range acked {
			if !got[pi] {
				missing++
			}
		}
		return missing == 0
	})
	t.Logf("%s: all %d acknowledged webhooks delivered", l.tenant, len(acked))
}

// orphans lists live processes launched by the gateway with pid gw.
func orphans(gw int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	marker := []byte("PIPECORE_GATEWAY_PID=" + strconv.Itoa(gw) + "\x00")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, marker) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// killGatewayAndCheckOrphans SIGKILLs the gateway and checks that no
// process it launched survives, among them every pid in seen.
func killGatewayAndCheckOrphans(t *testing.T, g *gateway, seen []int) {
	t.Helper()
	gw := g.cmd.Process.Pid
	if len(orphans(gw)) == 0 {
		t.Fatal("no process of the gateway found before the kill: the orphan check would prove nothing")
	}
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	g.wait(5 * time.Second)
	waitFor(t, "every plugin process gone after the gateway's SIGKILL", 5*time.Second, func() bool {
		for _, pid := range seen {
			if alive(pid) {
				return false
			}
		}
		return len(orphans(gw)) == 0
	})
}

func startLifecycleGateway(t *testing.T, plugins, tableflowVersion, stripeA, stripeB, rcvA, rcvB string) *gateway {
	t.Helper()
	dir := t.TempDir()
	cfg := lifecycleConfig(freeAddr(), filepath.Join(dir, "data"), plugins, tableflowVersion, stripeA, stripeB, rcvA, rcvB)
	return startGateway(t, dir, cfg, "PIPECORE_ADMIN_TOKEN="+adminToken)
}

// TestLifecycleHotSwapUnderLoad swaps Stripe 1.3.0 → 1.4.0 (registered
// through the CLI) while two tenants send payments and webhooks: tableflow,
// pinned to ~1.3, stays on 1.3.0 while otherco moves. Then 1.4.0 → 1.4.1
// (dropped in the plugins directory) with a call in flight on 1.4.0: the
// call finishes there and 1.4.0 stops. Nothing fails, nothing is lost, and
// every Stripe request is traced to the process of the version it should
// come from.
func TestLifecycleHotSwapUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("lifecycle test skipped in -short mode")
	}
	v130, v140, v141 := stripeBuild(t, "1.3.0"), stripeBuild(t, "1.4.0"), stripeBuild(t, "1.4.1")
	plugins := stripeDir(t, map[string]string{"pipecore-plugin-stripe@1.3.0": v130})
	proxyA, proxyB := newAttributingProxy(t), newAttributingProxy(t)
	rcvA, rcvB := newReceiver(t), newReceiver(t)
	g := startLifecycleGateway(t, plugins, "~1.3", proxyA.srv.URL, proxyB.srv.URL, rcvA.srv.URL, rcvB.srv.URL)

	rows := pluginList(t, g)
	if r := rows["1.3.0"]; len(rows) != 1 || !r.Serving || strings.Join(r.Tenants, ",") != "otherco,tableflow" {
		t.Fatalf("before the swap: %+v", rows)
	}
	pid130 := rows["1.3.0"].PID

	a := startLoad(g, "tableflow", tableflowKey, stripeWebhookSecret, 3, 2)
	b := startLoad(g, "otherco", otherKey, otherStripeWebhookSecret, 3, 2)
	stopped := false
	defer func() {
		if !stopped {
			a.halt()
			b.halt()
		}
	}()
	time.Sleep(1500 * time.Millisecond)

	// Swap 1: register 1.4.0 from outside the plugins directory, reload.
	out := mustCLI(t, g, "", "plugins", "register", "stripe", v140, "--sha256", fileSum(t, v140))
	if !strings.Contains(out, "registered stripe 1.4.0") {
		t.Fatalf("register: %s", out)
	}
	start := time.Now()
	out = mustCLI(t, g, "", "plugins", "reload", "stripe")
	swap1 := time.Now()
	t.Logf("swap 1 took %s:\n%s", swap1.Sub(start).Round(time.Millisecond), out)
	if !strings.Contains(out, "tableflow") || !regexpMatch(out, `(?m)^stripe\s+tableflow\s+~1.3\s+1.3.0\s+1.3.0\s+unchanged`) ||
		!regexpMatch(out, `(?m)^stripe\s+\(no constraint\)\s+\*\s+1.3.0\s+1.4.0\s+swapped`) {
		t.Fatalf("reload output:\n%s", out)
	}
	rows = pluginList(t, g)
	if r := rows["1.3.0"]; !r.Serving || strings.Join(r.Tenants, ",") != "tableflow" || r.PID != pid130 {
		t.Fatalf("1.3.0 after swap 1: %+v", rows)
	}
	if r := rows["1.4.0"]; !r.Serving || strings.Join(r.Tenants, ",") != "otherco" || r.State != "running" {
		t.Fatalf("1.4.0 after swap 1: %+v", rows)
	}
	pid140 := rows["1.4.0"].PID
	time.Sleep(1500 * time.Millisecond)

	// Swap 2: drop 1.4.1 in the plugins directory, with a slow otherco call
	// in flight on 1.4.0.
	slow := make(chan call, 1)
	go func() {
		req, _ := http.NewRequest("POST", g.url+"/v1/payments", strings.NewReader(`{"amount":777,"currency":"CLP","reference":"slow-drain"}`))
		req.Header.Set("Authorization", "Bearer "+otherKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- call{status: 0, body: []byte(err.Error())}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- call{status: resp.StatusCode, body: body}
	}()
	select {
	case <-proxyB.slow:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow call never reached Stripe")
	}
	lcCopy(t, v141, filepath.Join(plugins, "pipecore-plugin-stripe@1.4.1"))
	writeSums(t, plugins)
	reload2 := time.Now()
	out = mustCLI(t, g, "", "plugins", "reload")
	swap2 := time.Now()
	if !regexpMatch(out, `(?m)^stripe\s+\(no constraint\)\s+\*\s+1.4.0\s+1.4.1\s+swapped`) {
		t.Fatalf("reload 2 output:\n%s", out)
	}
	rows = pluginList(t, g)
	if r := rows["1.4.0"]; !r.Draining || r.Serving || !alive(pid140) {
		t.Fatalf("1.4.0 with a call in flight after swap 2: %+v (alive %v)", rows, alive(pid140))
	}
	close(proxyB.release)
	res := <-slow
	if res.status != http.StatusCreated {
		t.Fatalf("the call in flight during swap 2: %d %s", res.status, res.body)
	}
	waitFor(t, "1.4.0's process to stop once drained", 10*time.Second, func() bool { return !alive(pid140) })
	time.Sleep(1 * time.Second)
	a.halt()
	b.halt()
	stopped = true
	done := time.Now()

	a.check(t)
	b.check(t)
	if a.payOK.Load() < 30 || b.payOK.Load() < 30 || a.hookOK.Load() < 30 || b.hookOK.Load() < 30 {
		t.Fatalf("too little traffic to prove anything: %d/%d payments, %d/%d webhooks", a.payOK.Load(), b.payOK.Load(), a.hookOK.Load(), b.hookOK.Load())
	}
	rows = pluginList(t, g)
	pid141 := rows["1.4.1"].PID
	if _, listed := rows["1.4.0"]; listed || !rows["1.4.1"].Serving || strings.Join(rows["1.4.1"].Tenants, ",") != "otherco" ||
		strings.Join(rows["1.3.0"].Tenants, ",") != "tableflow" {
		t.Fatalf("after swap 2: %+v", rows)
	}

	// Which process sent each Stripe request. A call that started before a
	// swap may reach Stripe just after it; allow 300ms.
	settle := 300 * time.Millisecond
	only := func(what string, got map[int]int, pid int) {
		t.Helper()
		if len(got) == 0 {
			t.Errorf("%s: no Stripe request at all", what)
		}
		for p, n := range got {
			if p != pid {
				t.Errorf("%s: %d requests came from pid %d, want all from %d (%v)", what, n, p, pid, got)
			}
		}
	}
	only("tableflow before swap 1", proxyA.pidsSince(time.Time{}, start), pid130)
	only("otherco before swap 1", proxyB.pidsSince(time.Time{}, start), pid130)
	only("tableflow after swap 1 (pinned to ~1.3)", proxyA.pidsSince(swap1.Add(settle), done), pid130)
	only("otherco between the swaps", proxyB.pidsSince(swap1.Add(settle), reload2), pid140)
	only("otherco after swap 2", proxyB.pidsSince(swap2.Add(settle), done), pid141)

	a.delivered(t, rcvA)
	b.delivered(t, rcvB)
	if !strings.Contains(g.logs.String(), `"msg":"plugin version swapped"`) {
		t.Error("the swaps are not in the gateway log")
	}
	killGatewayAndCheckOrphans(t, g, []int{pid130, pid140, pid141})
}

// TestLifecycleSwapToBrokenVersionKeepsTraffic drops a build that crashes
// at start (1.5.0) and one built for wire protocol 2 (1.6.0, registered)
// next to the serving 1.4.0: the reload refuses both, says why (the crash
// message, both protocol versions) in the CLI output, the log and plugins
// list, exits 1, and traffic stays on 1.4.0 without a failed call.
func TestLifecycleSwapToBrokenVersionKeepsTraffic(t *testing.T) {
	v140 := stripeBuild(t, "1.4.0")
	plugins := stripeDir(t, map[string]string{"pipecore-plugin-stripe@1.4.0": v140})
	rcvA, rcvB := newReceiver(t), newReceiver(t)
	g := startLifecycleGateway(t, plugins, "", stripeMockURL, stripeMockURL, rcvA.srv.URL, rcvB.srv.URL)
	pid140 := pluginList(t, g)["1.4.0"].PID

	a := startLoad(g, "tableflow", tableflowKey, stripeWebhookSecret, 2, 1)
	time.Sleep(500 * time.Millisecond)
	lcCopy(t, crashBuild(t), filepath.Join(plugins, "pipecore-plugin-stripe@1.5.0"))
	writeSums(t, plugins)
	proto := protocolBuild(t)
	protoPath := filepath.Join(t.TempDir(), "pipecore-plugin-stripe@1.6.0")
	lcCopy(t, proto, protoPath)
	mustCLI(t, g, "", "plugins", "register", "stripe", protoPath, "--sha256", fileSum(t, protoPath))

	out, err := cli(t, g, "", "plugins", "reload", "stripe")
	time.Sleep(500 * time.Millisecond)
	a.halt()
	if err == nil {
		t.Fatalf("reload to broken versions exited 0:\n%s", out)
	}
	t.Logf("reload output:\n%s", out)
	for _, want := range []string{"REFUSED", "1.5.0", "crashplugin: cannot load its certificate bundle", "1.6.0",
		"wire protocol version 2", "this gateway speaks 1", "traffic stays on the serving versions"} {
		if !strings.Contains(out, want) {
			t.Errorf("reload output does not say %q", want)
		}
	}
	if !regexpMatch(out, `(?m)^stripe\s+\(no constraint\)\s+\*\s+1.4.0\s+1.4.0\s+unchanged`) {
		t.Errorf("reload output does not keep 1.4.0:\n%s", out)
	}
	a.check(t)
	if a.payOK.Load() < 10 {
		t.Fatalf("too little traffic: %d payments", a.payOK.Load())
	}
	rows := pluginList(t, g)
	if r := rows["1.4.0"]; !r.Serving || r.State != "running" || r.PID != pid140 {
		t.Fatalf("1.4.0 after the refused swap: %+v", rows)
	}
	if r := rows["1.5.0"]; r.State != "rejected" || r.Serving || !strings.Contains(r.LastError, "crashplugin: cannot load") {
		t.Fatalf("1.5.0 in plugins list: %+v", rows)
	}
	if r := rows["1.6.0"]; r.State != "rejected" || !strings.Contains(r.LastError, "protocol version 2") {
		t.Fatalf("1.6.0 in plugins list: %+v", rows)
	}
	if c := g.do("GET", "/readyz", "", nil); c.status != 200 {
		t.Fatalf("readyz after a refused swap: %d %s", c.status, c.body)
	}
	logs := g.logs.String()
	if !logLine(logs, "plugin version refused; traffic stays on the serving version", `"plugin_version":"1.5.0"`, `"serving":"1.4.0"`) {
		t.Errorf("the refusal of 1.5.0 is not logged with its version")
	}
	if !logLine(logs, "plugin stderr", `"plugin":"stripe"`, `"plugin_version":"1.5.0"`, "crashplugin: cannot load") {
		t.Errorf("the crashing build's stderr is not in the log with the plugin's name and version")
	}
	if c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 5, "currency": "CLP", "reference": "after"}); c.status != 201 {
		t.Fatalf("payment after the refused swap: %d %s", c.status, c.body)
	}
	a.delivered(t, rcvA)
}

// TestLifecycleCrashLoopDegradedWebhooksQueued kills the Stripe plugin
// five times: it is marked degraded (readyz, plugins list, metrics); the
// webhooks posted while it is down are accepted and queued, and delivered
// once it is back; payments work again. Then the gateway is SIGKILLed and
// no plugin process survives it.
func TestLifecycleCrashLoopDegradedWebhooksQueued(t *testing.T) {
	if testing.Short() {
		t.Skip("lifecycle test skipped in -short mode")
	}
	v140 := stripeBuild(t, "1.4.0")
	plugins := stripeDir(t, map[string]string{"pipecore-plugin-stripe@1.4.0": v140})
	rcvA, rcvB := newReceiver(t), newReceiver(t)
	g := startLifecycleGateway(t, plugins, "", stripeMockURL, stripeMockURL, rcvA.srv.URL, rcvB.srv.URL)

	var seen []int
	prev := 0
	for i := 1; i <= 5; i++ {
		var pid int
		waitFor(t, fmt.Sprintf("plugin process %d running", i), 30*time.Second, func() bool {
			r := adminPlugins(t, g)["1.4.0"]
			if r.State == "running" && r.PID != 0 && r.PID != prev {
				pid = r.PID
				return true
			}
			return false
		})
		seen = append(seen, pid)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		prev = pid
	}
	// Fifth crash in 5 minutes: degraded, and down for the 8s backoff.
	var ready call
	waitFor(t, "readyz to report the plugin degraded", 10*time.Second, func() bool {
		ready = g.do("GET", "/readyz", "", nil)
		return strings.Contains(string(ready.body), `"degraded":true`)
	})
	if ready.status != 503 {
		t.Errorf("readyz while the degraded plugin is down: %d %s", ready.status, ready.body)
	}
	if r := pluginList(t, g)["1.4.0"]; !r.Degraded || r.Restarts < 4 {
		t.Errorf("plugins list while degraded: %+v", r)
	}
	metrics := g.do("GET", "/metrics", "", nil)
	if !strings.Contains(string(metrics.body), `pipecore_plugin_degraded{plugin="stripe",version="1.4.0"} 1`) {
		t.Errorf("metrics do not show the plugin degraded:\n%s", grepLines(string(metrics.body), "pipecore_plugin_"))
	}

	// Webhooks while the plugin is down: accepted at once and queued.
	var acked []string
	hook := g.url + "/webhooks/stripe/tableflow"
	for i := 0; i < 20; i++ {
		pi := fmt.Sprintf("pi_degraded_%03d", i)
		body := stripeEvent(fmt.Sprintf("evt_degraded_%03d", i), "payment_intent.succeeded", pi, 100+i)
		start := time.Now()
		status, text, err := postWebhook(hook, body, signStripe(stripeWebhookSecret, body, time.Now()))
		if err != nil || status/100 != 2 || time.Since(start) > 2*time.Second {
			t.Fatalf("webhook while the plugin is down: %d %s %v (took %s)", status, text, err, time.Since(start))
		}
		acked = append(acked, pi)
	}
	if pids := g.pluginPIDs(); len(pids) != 0 {
		t.Logf("note: the plugin came back (%v) before all webhooks were posted", pids)
	}

	// Back to normal service.
	waitFor(t, "the plugin back after its backoff", 30*time.Second, func() bool {
		c := g.do("GET", "/readyz", "", nil)
		return c.status == 200
	})
	if c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 5, "currency": "CLP", "reference": "after-crash-loop"}); c.status != 201 {
		t.Fatalf("payment after the crash loop: %d %s", c.status, c.body)
	}
	waitFor(t, "the webhooks queued while the plugin was down at the endpoint", 60*time.Second, func() bool {
		got := map[string]bool{}
		for _, d := range rcvA.deliveries() {
			for _, pi := range acked {
				if d.valid && bytes.Contains(d.body, []byte(pi)) {
					got[pi] = true
				}
			}
		}
		return len(got) == len(acked)
	})
	seen = append(seen, g.pluginPIDs()...)
	killGatewayAndCheckOrphans(t, g, seen)
}

// TestLifecycleHungPluginIsKilled stops the plugin process (SIGSTOP): the
// next call passes its deadline, the gateway finds the plugin does not
// answer its health check, kills it and starts a new one.
func TestLifecycleHungPluginIsKilled(t *testing.T) {
	v140 := stripeBuild(t, "1.4.0")
	plugins := stripeDir(t, map[string]string{"pipecore-plugin-stripe@1.4.0": v140})
	rcvA, rcvB := newReceiver(t), newReceiver(t)
	g := startLifecycleGateway(t, plugins, "", stripeMockURL, stripeMockURL, rcvA.srv.URL, rcvB.srv.URL)
	pids := g.pluginPIDs()
	if len(pids) != 1 {
		t.Fatalf("plugin processes: %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 5, "currency": "CLP", "reference": "to-hung"})
	if c.status/100 == 2 {
		t.Fatalf("a call to a stopped plugin succeeded: %d %s", c.status, c.body)
	}
	waitFor(t, "a new plugin process", 15*time.Second, func() bool {
		now := g.pluginPIDs()
		return len(now) == 1 && now[0] != pids[0] && !alive(pids[0])
	})
	if !logLine(g.logs.String(), "plugin hung", `"plugin":"stripe"`, `"plugin_version":"1.4.0"`) {
		t.Error("the hang is not logged with the plugin's name and version")
	}
	if c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 5, "currency": "CLP", "reference": "after-hang"}); c.status != 201 {
		t.Fatalf("payment after the hung plugin was replaced: %d %s", c.status, c.body)
	}
}

// TestPluginTestCommand runs `pipecore plugins test` on every plugin of
// the repository, on the example plugin, and on the deliberately broken
// plugin of the conformance kit.
func TestPluginTestCommand(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join(binDir, "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "pipecore-plugin-") {
			paths = append(paths, filepath.Join(binDir, "plugins", e.Name()))
		}
	}
	if len(paths) < 8 {
		t.Fatalf("only %d plugins in %s", len(paths), binDir)
	}
	manual := lcBuild(t, filepath.Join(repoRoot(), "examples", "manual"), ".", "pipecore-plugin-manual", []string{"GOWORK=off"})
	paths = append(paths, manual, stripeBuild(t, "1.4.0"))
	run := func(path string) (string, int) {
		cmd := exec.Command(filepath.Join(binDir, "pipecore"), "plugins", "test", path)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), 0
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			out, code := run(path)
			if code != 0 || !strings.Contains(out, "0 failed") || !strings.Contains(out, "PASS") || strings.Contains(out, " fail ") {
				t.Fatalf("plugins test %s: exit %d\n%s", path, code, out)
			}
			if !strings.Contains(out, "CHECK") || !strings.Contains(out, "handshake") || !strings.Contains(out, "clean_exit") {
				t.Fatalf("no conformance table:\n%s", out)
			}
		})
	}
	t.Run("broken", func(t *testing.T) {
		t.Parallel()
		broken := lcBuild(t, filepath.Join(repoRoot(), "sdk"), "./providertest/testdata/broken", "pipecore-plugin-broken", nil)
		out, code := run(broken)
		if code != 1 {
			t.Fatalf("plugins test of the broken plugin exited %d:\n%s", code, out)
		}
		for _, want := range []string{
			"CHECK", "RESULT", "DETAIL",
			"webhook/empty_body", "want kind invalid or permanent",
			"unreachable/payments/refused", "the plugin ignores base_url",
			"no_secrets_leak", `secret "api_key" appears in the provider's logs`,
			"does not conform",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output does not say %q:\n%s", want, out)
			}
		}
		if !regexpMatch(out, `(?m)^webhook/empty_body\s+fail\s+`) {
			t.Errorf("the table does not mark webhook/empty_body failed:\n%s", out)
		}
	})
}

func regexpMatch(s, pattern string) bool {
	return regexp.MustCompile(pattern).MatchString(s)
}

// logLine reports whether some JSON log line has msg and contains every
// fragment.
func logLine(logs, msg string, fragments ...string) bool {
	for line := range strings.SplitSeq(logs, "\n") {
		if !strings.Contains(line, `"msg":"`+msg) {
			continue
		}
		ok := true
		for _, f := range fragments {
			ok = ok && strings.Contains(line, f)
		}
		if ok {
			return true
		}
	}
	return false
}

func grepLines(s, needle string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, needle) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
