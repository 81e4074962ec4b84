package pluginhost_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/pluginhost"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

func newHost(t *testing.T, l *pluginhost.InProcess) *pluginhost.Host {
	t.Helper()
	h := pluginhost.NewWithBinaries(pluginhost.Config{
		Launcher: l, HealthInterval: 50 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	}, l.Binaries())
	t.Cleanup(h.Close)
	return h
}

var tenant = provider.NewTenant("acme", nil, map[string]string{"api_key": "k"})

func create(ctx context.Context, p payments.Provider, key string) (payments.Payment, error) {
	return p.CreatePayment(ctx, payments.CreateRequest{Tenant: tenant, IdempotencyKey: key, Amount: provider.Money{Amount: 100, Currency: "USD"}})
}

func TestStartUnknownPlugin(t *testing.T) {
	h := newHost(t, pluginhost.NewInProcess(map[string]provider.Provider{"fake": &providertest.FakePayments{}}))
	_, err := h.Start(context.Background(), []string{"fake", "strpe"})
	if !errors.Is(err, pluginhost.ErrUnknown) || !strings.Contains(err.Error(), "strpe") || !strings.Contains(err.Error(), "fake") {
		t.Fatalf("Start = %v, want ErrUnknown naming the missing and the available plugins", err)
	}
}

func TestCallsSurviveACrash(t *testing.T) {
	l := pluginhost.NewInProcess(map[string]provider.Provider{"fake": &providertest.FakePayments{}})
	h := newHost(t, l)
	catalog, err := h.Start(context.Background(), []string{"fake"})
	if err != nil || !catalog["fake"].Has(provider.CapabilityPayments) {
		t.Fatalf("Start = %v, %v", catalog, err)
	}
	p, err := h.Payments("fake")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	first, err := create(ctx, p, "k1")
	if err != nil {
		t.Fatal(err)
	}
	l.Current("fake").Kill() // the process "crashes" between calls
	again, err := create(ctx, p, "k1")
	if err != nil {
		t.Fatalf("call after crash: %v", err)
	}
	if again.ID != first.ID {
		t.Fatalf("retried create made a second payment: %s vs %s", again.ID, first.ID)
	}
	if n := l.Launches("fake"); n != 2 {
		t.Fatalf("launches = %d, want 2", n)
	}
	st := h.Status()
	if len(st) != 1 || st[0].State != pluginhost.StateRunning || st[0].Restarts != 1 {
		t.Fatalf("Status = %+v", st)
	}
}

func TestRefusedPluginFailsCallsRetryably(t *testing.T) {
	l := pluginhost.NewInProcess(map[string]provider.Provider{"fake": &providertest.FakePayments{}})
	l.Refuse = func(string) error { return errors.New("checksum mismatch") }
	h := newHost(t, l)
	catalog, err := h.Start(context.Background(), []string{"fake"})
	if err != nil {
		t.Fatalf("Start must not fail for a refused plugin: %v", err)
	}
	if _, ok := catalog["fake"]; ok {
		t.Fatal("refused plugin is in the catalog")
	}
	st := h.Status()[0]
	if st.State != pluginhost.StateFailed || !strings.Contains(st.LastError, "checksum mismatch") {
		t.Fatalf("Status = %+v", st)
	}
	p, err := h.Payments("fake")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = create(ctx, p, "k")
	if !errors.Is(err, pluginhost.ErrUnavailable) || provider.KindOf(err) != provider.KindRetryable {
		t.Fatalf("call to refused plugin: %v (kind %s)", err, provider.KindOf(err))
	}
	if took := time.Since(start); took < 150*time.Millisecond || took > 2*time.Second {
		t.Fatalf("call waited %s, want about its 200ms deadline", took)
	}
	if !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("error %q does not say why", err)
	}
}

func TestRestartedAfterRefusalClears(t *testing.T) {
	l := pluginhost.NewInProcess(map[string]provider.Provider{"fake": &providertest.FakePayments{}})
	refuse := true
	done := make(chan struct{})
	l.Refuse = func(string) error {
		select {
		case <-done:
			return nil
		default:
		}
		if refuse {
			return errors.New("not yet")
		}
		return nil
	}
	h := newHost(t, l)
	if _, err := h.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	close(done) // the operator fixed the binary
	p, _ := h.Payments("fake")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := create(ctx, p, "k"); err != nil {
		t.Fatalf("call after the plugin recovered: %v", err)
	}
}

func TestDegradedAfterCrashLoop(t *testing.T) {
	l := pluginhost.NewInProcess(map[string]provider.Provider{"fake": &providertest.FakePayments{}})
	h := newHost(t, l)
	if _, err := h.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		deadline := time.Now().Add(3 * time.Second)
		for l.Launches("fake") != i+1 || h.Status()[0].State != pluginhost.StateRunning {
			if time.Now().After(deadline) {
				t.Fatalf("launch %d never came: %+v", i+1, h.Status())
			}
			time.Sleep(5 * time.Millisecond)
		}
		l.Current("fake").Kill()
	}
	deadline := time.Now().Add(3 * time.Second)
	for !h.Status()[0].Degraded {
		if time.Now().After(deadline) {
			t.Fatalf("not degraded after 5 crashes: %+v", h.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pluginhost.Discover(dir); err == nil || !strings.Contains(err.Error(), "SHA256SUMS") {
		t.Fatalf("Discover without SHA256SUMS = %v", err)
	}
	write("pipecore-plugin-stripe", 0o755, "x")
	write("pipecore-plugin-rogue", 0o755, "y")
	write("pipecore-plugin-noexec", 0o644, "z")
	write("README", 0o644, "")
	write("SHA256SUMS", 0o644, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881  pipecore-plugin-stripe\n")
	bins, err := pluginhost.Discover(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(bins) != 2 || bins[0].Name != "rogue" || bins[0].Checksum != nil || bins[1].Name != "stripe" || len(bins[1].Checksum) != 32 {
		t.Fatalf("Discover = %+v", bins)
	}
	write("SHA256SUMS", 0o644, "nothex  pipecore-plugin-stripe\n")
	if _, err := pluginhost.Discover(dir); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("malformed SHA256SUMS: %v", err)
	}
}

func TestUnlistedBinaryIsRefused(t *testing.T) {
	l := pluginhost.NewInProcess(map[string]provider.Provider{"fake": &providertest.FakePayments{}})
	h := pluginhost.NewWithBinaries(pluginhost.Config{Launcher: l}, []pluginhost.Binary{{Name: "fake", Path: "/x/pipecore-plugin-fake"}})
	t.Cleanup(h.Close)
	if _, err := h.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	if st := h.Status()[0]; st.State != pluginhost.StateFailed || !strings.Contains(st.LastError, "not listed") || l.Launches("fake") != 0 {
		t.Fatalf("unlisted binary: %+v, launches %d", st, l.Launches("fake"))
	}
}
