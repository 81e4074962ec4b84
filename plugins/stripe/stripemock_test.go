package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The one stripe-mock shared by every test of this binary; TestMain stops it.
var shared struct {
	once sync.Once
	base string
	stop func()
	err  error
}

func TestMain(m *testing.M) {
	// Failures are logged through provider.Log, which falls back to the
	// default logger; keep test output to the tests' own.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

// startStripeMock returns the base URL of a stripe-mock listening on free
// 127.0.0.1 ports. The first call starts it; every test of the binary shares
// it (stripe-mock is stateless, so tests cannot disturb each other) and
// TestMain stops it when the tests end.
func startStripeMock(t testing.TB) (baseURL string) {
	t.Helper()
	shared.once.Do(func() { shared.base, shared.stop, shared.err = launchStripeMock() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.base
}

// stripeMockBinary finds stripe-mock: $STRIPE_MOCK, then $GOPATH/bin, then
// $PATH.
func stripeMockBinary() (string, error) {
	if p := os.Getenv("STRIPE_MOCK"); p != "" {
		if !fileExists(p) {
			return "", fmt.Errorf("stripe-mock not installed at STRIPE_MOCK=%s: run make test (it installs github.com/stripe/stripe-mock@v0.203.0)", p)
		}
		return p, nil
	}
	if p := filepath.Join(build.Default.GOPATH, "bin", "stripe-mock"); fileExists(p) {
		return p, nil
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p, nil
	}
	return "", errors.New("stripe-mock not installed: run make test (it installs github.com/stripe/stripe-mock@v0.203.0)")
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// launchStripeMock starts stripe-mock bound to 127.0.0.1 and waits until it
// answers HTTP. Another process may take a free port between our probe and
// stripe-mock's bind, so a start that dies early is retried.
func launchStripeMock() (base string, stop func(), err error) {
	bin, err := stripeMockBinary()
	if err != nil {
		return "", nil, err
	}
	for attempt := 0; attempt < 3; attempt++ {
		base, stop, err = runStripeMock(bin)
		if err == nil {
			return base, stop, nil
		}
	}
	return "", nil, err
}

func runStripeMock(bin string) (string, func(), error) {
	httpPort, err := freePort()
	if err != nil {
		return "", nil, err
	}
	httpsPort, err := freePort()
	if err != nil {
		return "", nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(httpPort)
	var out bytes.Buffer
	cmd := exec.Command(bin, "-http-addr", addr, "-https-addr", "127.0.0.1:"+strconv.Itoa(httpsPort))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start stripe-mock: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	base := "http://" + addr
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return "", nil, fmt.Errorf("stripe-mock exited during start-up: %s", out.String())
		default:
		}
		// Any HTTP answer, even a 401, means it is serving.
		if res, err := hc.Get(base + "/v1/balance"); err == nil {
			res.Body.Close()
			return base, stop, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("stripe-mock did not answer on %s: %s", addr, out.String())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// seenRequest is a request the upstream proxy received.
type seenRequest struct {
	Method string
	Path   string
	Header http.Header
	// Form holds the query of a GET or the url-encoded body of a POST.
	Form url.Values
}

// upstream is a reverse proxy in front of a Stripe API (stripe-mock) that
// records every request and can answer in its place: point a tenant's
// base_url at URL.
type upstream struct {
	URL   string
	proxy *httputil.ReverseProxy

	mu        sync.Mutex
	seen      []seenRequest
	intercept http.HandlerFunc
	replay    map[string]*httptest.ResponseRecorder // nil: forward every request
	// modes remembers the mode of each Checkout Session created through
	// the proxy, which stateless stripe-mock forgets: its GET answers
	// always say "payment". It has its own lock: replayed forwards with mu
	// held.
	modeMu sync.Mutex
	modes  map[string]string
}

// sessionsPath is the Checkout Sessions collection.
const sessionsPath = "/v1/checkout/sessions"

// modeHeader carries a created session's mode from the request to
// ModifyResponse.
const modeHeader = "X-Test-Session-Mode"

// newUpstream starts a recording proxy to target, closed when t ends.
func newUpstream(t testing.TB, target string) *upstream {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	up := &upstream{proxy: proxy, modes: map[string]string{}}
	proxy.ModifyResponse = up.rememberMode
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(r.URL.RawQuery)
		if len(body) > 0 {
			form, _ = url.ParseQuery(string(body))
		}
		if r.Method == http.MethodPost && r.URL.Path == sessionsPath {
			r.Header.Set(modeHeader, form.Get("mode"))
		}
		up.mu.Lock()
		up.seen = append(up.seen, seenRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: form})
		intercept := up.intercept
		up.mu.Unlock()
		if intercept != nil {
			intercept(w, r)
			return
		}
		if rec := up.replayed(r); rec != nil {
			writeRecorded(w, rec)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	up.URL = srv.URL
	return up
}

// rememberMode records the mode of a session stripe-mock created and puts
// it back into stripe-mock's answers for that session, as Stripe, which
// keeps the session, would.
func (u *upstream) rememberMode(res *http.Response) error {
	req := res.Request
	created := req.Method == http.MethodPost && req.URL.Path == sessionsPath
	id, read := strings.CutPrefix(req.URL.Path, sessionsPath+"/")
	if res.StatusCode != http.StatusOK || !(created || read) {
		return nil
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err == nil {
		u.modeMu.Lock()
		if created {
			if sid, _ := obj["id"].(string); sid != "" && req.Header.Get(modeHeader) != "" {
				u.modes[sid] = req.Header.Get(modeHeader)
			}
		} else if mode, ok := u.modes[strings.TrimSuffix(id, "/expire")]; ok {
			obj["mode"] = mode
			body, _ = json.Marshal(obj)
		}
		u.modeMu.Unlock()
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	res.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// emulateIdempotency makes the proxy behave like Stripe's idempotency
// layer, which stateless stripe-mock lacks: the first response to a POST
// with an Idempotency-Key is stored and replayed for every later request
// with the same key and API key.
func (u *upstream) emulateIdempotency() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.replay = map[string]*httptest.ResponseRecorder{}
}

// replayed forwards r once per idempotency key and returns the stored
// response, or returns nil when r is not subject to replay.
func (u *upstream) replayed(r *http.Request) *httptest.ResponseRecorder {
	key := r.Header.Get("Idempotency-Key")
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.replay == nil || r.Method != http.MethodPost || key == "" {
		return nil
	}
	k := r.Header.Get("Authorization") + "\x00" + key
	if rec, ok := u.replay[k]; ok {
		return rec
	}
	// Forwarding under the lock serialises requests; Stripe instead answers
	// a concurrent duplicate with 409, which no test here provokes.
	rec := httptest.NewRecorder()
	u.proxy.ServeHTTP(rec, r)
	u.replay[k] = rec
	return rec
}

func writeRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// answer makes the proxy run h instead of forwarding; nil forwards again.
func (u *upstream) answer(h http.HandlerFunc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.intercept = h
}

// requests returns what the proxy has received so far.
func (u *upstream) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen...)
}

// only returns the single request the proxy received, failing otherwise.
func (u *upstream) only(t testing.TB) seenRequest {
	t.Helper()
	reqs := u.requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream received %d requests, want 1: %+v", len(reqs), reqs)
	}
	return reqs[0]
}

// stall holds every request until the client gives up.
func stall(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// respond answers every request with status, header and a JSON body, the
// way Stripe answers a failed call.
func respond(status int, header http.Header, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_test")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}
