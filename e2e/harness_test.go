package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// binDir holds bin/pipecore and bin/plugins, built once per test binary.
var binDir string

func TestMain(m *testing.M) {
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	code := m.Run()
	teardown()
	os.Exit(code)
}

var stripeMockCmd *exec.Cmd
var stripeMockURL string

func setup() error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	binDir = os.Getenv("PIPECORE_BIN")
	if binDir == "" {
		// Not run through make: build the real binaries ourselves.
		dir, err := os.MkdirTemp("", "pipecore-e2e-bin")
		if err != nil {
			return err
		}
		cmd := exec.Command("make", "-C", root, "build", "BIN="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("make build: %v\n%s", err, out)
		}
		binDir = dir
	}
	for _, p := range []string{"pipecore", "plugins/pipecore-plugin-stripe", "plugins/SHA256SUMS"} {
		if _, err := os.Stat(filepath.Join(binDir, p)); err != nil {
			return fmt.Errorf("%s missing in %s: run make build", p, binDir)
		}
	}
	mock := os.Getenv("STRIPE_MOCK")
	if mock == "" {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		mock = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "stripe-mock")
	}
	if _, err := os.Stat(mock); err != nil {
		return fmt.Errorf("stripe-mock not installed at %s: run make test (it installs github.com/stripe/stripe-mock@v0.203.0)", mock)
	}
	httpAddr, httpsAddr := freeAddr(), freeAddr()
	stripeMockCmd = exec.Command(mock, "-http-addr", httpAddr, "-https-addr", httpsAddr)
	stripeMockCmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := stripeMockCmd.Start(); err != nil {
		return err
	}
	stripeMockURL = "http://" + httpAddr
	if err := waitTCP(httpAddr, 15*time.Second); err != nil {
		teardown()
		return fmt.Errorf("stripe-mock did not start: %w", err)
	}
	return nil
}

func teardown() {
	if stripeMockCmd != nil && stripeMockCmd.Process != nil {
		_ = stripeMockCmd.Process.Kill()
		_ = stripeMockCmd.Wait()
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitTCP(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stripeProxy sits between the Stripe plugin and stripe-mock. It counts
// the requests per method and path, replays Stripe's idempotency (the
// first response per Idempotency-Key, as Stripe does; stripe-mock keeps no
// state), and stalls requests whose form says reference=slow.
type stripeProxy struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls map[string]int
	seen  map[string][]byte
	stall atomic.Bool
}

func newStripeProxy(t *testing.T) *stripeProxy {
	t.Helper()
	target, _ := url.Parse(stripeMockURL)
	p := &stripeProxy{calls: map[string]int{}, seen: map[string][]byte{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		key := r.Method + " " + r.URL.Path
		p.mu.Lock()
		p.calls[key]++
		idem := r.Header.Get("Idempotency-Key")
		replay, ok := p.seen[idem]
		p.mu.Unlock()
		if strings.Contains(string(body), "=slow") || p.stall.Load() {
			select {
			case <-time.After(10 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		if r.Method == http.MethodPost && idem != "" && ok {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Idempotent-Replayed", "true")
			_, _ = w.Write(replay)
			return
		}
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		if r.Method == http.MethodPost && idem != "" && rec.Code < 300 {
			p.mu.Lock()
			p.seen[idem] = rec.Body.Bytes()
			p.mu.Unlock()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *stripeProxy) count(methodPath string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[methodPath]
}

// gateway is one running bin/pipecore serve.
type gateway struct {
	t       *testing.T
	cmd     *exec.Cmd
	url     string
	dir     string
	logs    *syncBuffer
	exited  chan struct{}
	exitErr error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

const (
	tableflowKey = "pc_live_tableflow_0123456789abcdefghijklmnopqrstuv"
	otherKey     = "pc_live_otherco_0123456789abcdefghijklmnopqrstuvwx"
	// sentinelSecret must never appear in logs, audit records, responses
	// or the data directory.
	sentinelSecret = "sk_test_SENTINEL9f3c1e2e"
)

// gatewayConfig is the YAML of a two-tenant gateway whose Stripe calls go
// to stripeURL.
func gatewayConfig(listen, dataDir, pluginsDir, stripeURL string) string {
	return fmt.Sprintf(`listen: %s
public_url: http://%s
data_dir: %s
plugins_dir: %s
log: { level: debug, format: json }
plugins: { call_timeout: 2s, start_timeout: 10s }
tenants:
  tableflow:
    api_keys: ["${TABLEFLOW_API_KEY}"]
    defaults: { payments: stripe }
    providers:
      stripe:
        enabled: true
        settings: { base_url: "%s" }
        credentials: { secret_key: "${STRIPE_SECRET_KEY}", webhook_secret: "whsec_tableflow" }
  otherco:
    api_keys: ["sha256:%s"]
    defaults: { payments: stripe }
    providers:
      stripe:
        settings: { base_url: "%s" }
        credentials: { secret_key: "sk_test_otherco" }
`, listen, listen, dataDir, pluginsDir, stripeURL, sha256hex(otherKey), stripeURL)
}

// copyPlugins copies the built plugins into a fresh directory the test may
// tamper with.
func copyPlugins(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(binDir, "plugins")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, _ := e.Info()
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// startGateway writes cfg to a file and runs bin/pipecore serve on it. It
// waits until /healthz answers; the process is killed when the test ends.
func startGateway(t *testing.T, dir, cfg string, env ...string) *gateway {
	t.Helper()
	g := runGateway(t, dir, cfg, env...)
	addr := strings.TrimPrefix(g.url, "http://")
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-g.exited:
			t.Fatalf("gateway exited during start: %v\n%s", g.exitErr, g.logs)
		default:
		}
		resp, err := http.Get(g.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway on %s not healthy after 20s\n%s", addr, g.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runGateway starts the process without waiting for it.
func runGateway(t *testing.T, dir, cfg string, env ...string) *gateway {
	t.Helper()
	path := filepath.Join(dir, "pipecore.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := ""
	for _, line := range strings.Split(cfg, "\n") {
		if v, ok := strings.CutPrefix(line, "listen: "); ok {
			listen = strings.TrimSpace(v)
		}
	}
	g := &gateway{t: t, url: "http://" + listen, dir: dir, logs: &syncBuffer{}, exited: make(chan struct{})}
	g.cmd = exec.Command(filepath.Join(binDir, "pipecore"), "serve", "--config", path)
	g.cmd.Dir = dir
	g.cmd.Env = append(os.Environ(), "TABLEFLOW_API_KEY="+tableflowKey, "STRIPE_SECRET_KEY="+sentinelSecret)
	g.cmd.Env = append(g.cmd.Env, env...)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.exitErr = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		_ = g.cmd.Process.Kill()
		<-g.exited
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.logs)
		}
	})
	return g
}

// wait returns the exit code once the process ends (or fails the test).
func (g *gateway) wait(d time.Duration) int {
	select {
	case <-g.exited:
	case <-time.After(d):
		g.t.Fatalf("gateway still running after %s\n%s", d, g.logs)
	}
	if ee, ok := g.exitErr.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// pluginPIDs lists the gateway's child processes running a plugin.
func (g *gateway) pluginPIDs() []int { return childrenNamed(g.cmd.Process.Pid, "pipecore-plugin") }

func childrenNamed(ppid int, prefix string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < 0 {
			continue
		}
		comm := s[open+1 : closing]
		fields := strings.Fields(s[closing+1:])
		if len(fields) < 2 || fields[0] == "Z" {
			continue
		}
		parent, _ := strconv.Atoi(fields[1])
		if (ppid == 0 || parent == ppid) && strings.HasPrefix(comm, prefix[:min(len(prefix), 15)]) {
			out = append(out, pid)
		}
	}
	return out
}

func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// call is one HTTP exchange with the gateway.
type call struct {
	status int
	header http.Header
	body   []byte
}

func (c call) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(c.body, &m); err != nil {
		t.Fatalf("response is not JSON (%d): %s", c.status, c.body)
	}
	return m
}

func (c call) errorCode(t *testing.T) string {
	t.Helper()
	e, _ := c.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func (c call) errorMessage(t *testing.T) string {
	t.Helper()
	e, _ := c.json(t)["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

func (g *gateway) do(method, path, key string, body any, headers ...string) call {
	g.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, g.url+path, rd)
	if err != nil {
		g.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return call{status: resp.StatusCode, header: resp.Header, body: b}
}

// grepDir reports the files under dir that contain needle.
func grepDir(t *testing.T, dir, needle string) []string {
	t.Helper()
	var hits []string
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		r := bufio.NewReaderSize(f, 1<<20)
		data, _ := io.ReadAll(r)
		if bytes.Contains(data, []byte(needle)) {
			hits = append(hits, path)
		}
		return nil
	})
	return hits
}
