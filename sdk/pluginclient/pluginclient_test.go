package pluginclient_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/pluginclient"
	"github.com/pipecore/pipecore/sdk/provider"
)

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// testPlugin builds ./testdata/<pkg> once per test binary.
func testPlugin(t testing.TB, pkg string) (path string, sum []byte) {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "pluginclient-test")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = dir
	}
	path, ok := built[pkg]
	if !ok {
		path = filepath.Join(buildDir, "pipecore-plugin-"+pkg)
		out, err := exec.Command("go", "build", "-o", path, "./testdata/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
		built[pkg] = path
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return path, s[:]
}

// fakePlugin builds testdata/fakeplugin once per test binary.
func fakePlugin(t testing.TB) (path string, sum []byte) { return testPlugin(t, "fakeplugin") }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func start(t *testing.T) (*pluginclient.Plugin, *syncBuf) {
	t.Helper()
	path, sum := fakePlugin(t)
	logs := &syncBuf{}
	p, err := pluginclient.Start(context.Background(), pluginclient.Config{
		Path: path, Checksum: sum,
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug, JSONFormat: true}),
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(p.Kill)
	return p, logs
}

func create(t *testing.T, p *pluginclient.Plugin, behavior string) (payments.Payment, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Payments().CreatePayment(ctx, payments.CreateRequest{
		Tenant:         provider.NewTenant("acme", map[string]string{"behavior": behavior}, map[string]string{"api_key": "k"}),
		IdempotencyKey: "idem-1", PaymentID: "pay_1", Reference: "order-1",
		Amount: provider.Money{Amount: 1000, Currency: "CLP"},
	})
}

func TestStartAndCall(t *testing.T) {
	p, logs := start(t)
	if got := p.Info(); got.Name != "fakeplugin" || !got.Has(provider.CapabilityPayments) {
		t.Fatalf("Info = %+v", got)
	}
	if p.PID() <= 0 {
		t.Fatalf("PID = %d", p.PID())
	}
	if p.Delivery() != nil || p.Messaging() != nil || p.WebhookParser() == nil {
		t.Fatal("capability views do not match Info")
	}
	if err := p.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	pmt, err := create(t, p, "log")
	if err != nil || pmt.ID == "" || pmt.Amount.Currency != "CLP" {
		t.Fatalf("CreatePayment = %+v, %v", pmt, err)
	}
	// The plugin's structured log line reaches the host logger with its level and fields.
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(logs.String(), `"reference":"order-1"`) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin log line not forwarded; host log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"@level":"info"`) {
		t.Errorf("plugin log line lost its level:\n%s", logs.String())
	}
}

func TestChecksumMismatchRefusesToRun(t *testing.T) {
	path, sum := fakePlugin(t)
	bad := append([]byte(nil), sum...)
	bad[0] ^= 0xff
	_, err := pluginclient.Start(context.Background(), pluginclient.Config{Path: path, Checksum: bad})
	if !errors.Is(err, pluginclient.ErrChecksum) {
		t.Fatalf("Start with a wrong checksum: err = %v, want ErrChecksum", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the binary", err)
	}
	if _, err := pluginclient.Start(context.Background(), pluginclient.Config{Path: path}); err == nil {
		t.Fatal("Start without a checksum succeeded")
	}
}

func TestPluginEnvironmentIsClean(t *testing.T) {
	t.Setenv("PIPECORE_TEST_MASTER_KEY", "SENTINEL-master-key")
	p, _ := start(t)
	_, err := create(t, p, "env:PIPECORE_TEST_MASTER_KEY")
	if err == nil || !strings.Contains(err.Error(), "is unset") {
		t.Fatalf("plugin saw the gateway's environment: %v", err)
	}
	_, err = create(t, p, "env:PATH")
	if err == nil || !strings.Contains(err.Error(), "is set") {
		t.Fatalf("plugin lacks PATH: %v", err)
	}
}

func TestCrashMidCall(t *testing.T) {
	p, _ := start(t)
	_, err := create(t, p, "crash")
	if !errors.Is(err, pluginclient.ErrUnavailable) || provider.KindOf(err) != provider.KindRetryable {
		t.Fatalf("call that crashed the plugin: err = %v (kind %s), want retryable ErrUnavailable", err, provider.KindOf(err))
	}
	deadline := time.Now().Add(3 * time.Second)
	for !p.Exited() {
		if time.Now().After(deadline) {
			t.Fatal("Exited() still false 3s after the crash")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.Ping(context.Background()); !errors.Is(err, pluginclient.ErrUnavailable) {
		t.Fatalf("Ping after crash: %v", err)
	}
	if _, err := create(t, p, ""); !errors.Is(err, pluginclient.ErrUnavailable) {
		t.Fatalf("call after crash: %v, want ErrUnavailable", err)
	}
}

func TestPanicInHandlerKeepsPluginAlive(t *testing.T) {
	p, _ := start(t)
	_, err := create(t, p, "panic")
	if err == nil || provider.KindOf(err) != provider.KindRetryable || errors.Is(err, pluginclient.ErrUnavailable) {
		t.Fatalf("panicking call: err = %v, want a retryable error from a live plugin", err)
	}
	if err := p.Ping(context.Background()); err != nil {
		t.Fatalf("plugin died after a handler panic: %v", err)
	}
	if _, err := create(t, p, ""); err != nil {
		t.Fatalf("call after panic: %v", err)
	}
}

func TestKillStopsTheProcess(t *testing.T) {
	p, _ := start(t)
	pid := p.PID()
	p.Kill()
	deadline := time.Now().Add(3 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("plugin process %d alive 3s after Kill", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProtocolMismatchNamesBothVersions starts a plugin built for wire
// protocol version 2: it is refused, and the error names both versions.
// It also pins the go-plugin error text classifyStart recognizes.
func TestProtocolMismatchNamesBothVersions(t *testing.T) {
	path, sum := testPlugin(t, "protoplugin")
	_, err := pluginclient.Start(context.Background(), pluginclient.Config{Path: path, Checksum: sum})
	if !errors.Is(err, pluginclient.ErrProtocol) {
		t.Fatalf("Start of a protocol 2 plugin: err = %v, want ErrProtocol", err)
	}
	for _, want := range []string{path, "protocol version 2", "this gateway speaks 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestCrashAtStartSaysWhy: a binary that dies before the handshake fails
// Start with what it wrote on stderr, and that line reaches the log.
func TestCrashAtStartSaysWhy(t *testing.T) {
	path, sum := testPlugin(t, "startcrash")
	logs := &syncBuf{}
	_, err := pluginclient.Start(context.Background(), pluginclient.Config{
		Path: path, Checksum: sum,
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info, JSONFormat: true}),
	})
	if err == nil || !strings.Contains(err.Error(), "startcrash: cannot open its configuration") {
		t.Fatalf("Start of a crashing binary: err = %v, want it to quote the plugin's stderr", err)
	}
	if !strings.Contains(logs.String(), `"line":"startcrash: cannot open its configuration"`) || !strings.Contains(logs.String(), `"@level":"warn"`) {
		t.Fatalf("the plugin's stderr line is not in the log at warn level:\n%s", logs.String())
	}
}

// TestKillStoppedProcess: Kill returns and the process dies even when the
// plugin is frozen (SIGSTOP) and cannot answer the graceful shutdown.
func TestKillStoppedProcess(t *testing.T) {
	p, _ := start(t)
	pid := p.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Kill(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Kill of a stopped plugin did not return in 10s")
	}
	deadline := time.Now().Add(3 * time.Second)
	for syscall.Kill(pid, 0) == nil && !p.Exited() {
		if time.Now().After(deadline) {
			t.Fatalf("stopped plugin %d alive after Kill", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
