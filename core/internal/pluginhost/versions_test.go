package pluginhost_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipecore/pipecore/core/internal/pluginhost"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

func TestParseFileName(t *testing.T) {
	tests := map[string]struct {
		name, version string
		ok            bool
	}{
		"pipecore-plugin-stripe":              {"stripe", "", true},
		"pipecore-plugin-stripe@1.4.0":        {"stripe", "1.4.0", true},
		"pipecore-plugin-stripe@1.4.0-rc.1":   {"stripe", "1.4.0-rc.1", true},
		"pipecore-plugin-stripe@v1.4.0":       {ok: false},
		"pipecore-plugin-stripe@1.4":          {ok: false},
		"pipecore-plugin-stripe@banana":       {ok: false},
		"pipecore-plugin-stripe.bak":          {ok: false},
		"pipecore-plugin-":                    {ok: false},
		"stripe@1.4.0":                        {ok: false},
		"pipecore-plugin-uber_direct@2.0.0+b": {"uber_direct", "2.0.0+b", true},
	}
	for file, tc := range tests {
		t.Run(file, func(t *testing.T) {
			name, version, ok := pluginhost.ParseFileName(file)
			if ok != tc.ok || name != tc.name || version != tc.version {
				t.Fatalf("ParseFileName(%q) = %q, %q, %v; want %q, %q, %v", file, name, version, ok, tc.name, tc.version, tc.ok)
			}
		})
	}
}

func TestConstraintAllows(t *testing.T) {
	tests := []struct {
		constraint, version string
		want                bool
	}{
		{"~1.3", "1.3.0", true},
		{"~1.3", "1.3.9", true},
		{"~1.3", "1.4.0", false},
		{"~1.3", "1.2.9", false},
		{"^1.2", "1.9.0", true},
		{"^1.2", "2.0.0", false},
		{">= 1.2, < 1.5", "1.4.2", true},
		{"1.3.0 || 1.5.0", "1.5.0", true},
		{"~1.3", "dev", false},
		{"~1.3", "b347fe8", false},
		{"", "dev", true},
		{"", "1.0.0", true},
	}
	for _, tc := range tests {
		c, err := pluginhost.ParseConstraint(tc.constraint)
		if err != nil {
			t.Fatalf("ParseConstraint(%q): %v", tc.constraint, err)
		}
		if got := c.Allows(tc.version); got != tc.want {
			t.Errorf("%q allows %q = %v, want %v", tc.constraint, tc.version, got, tc.want)
		}
	}
	if _, err := pluginhost.ParseConstraint("~one.three"); err == nil || !strings.Contains(err.Error(), "~one.three") {
		t.Fatalf("bad constraint: %v", err)
	}
}

// pluginsDir is a plugins directory whose files the InProcess launcher
// serves: each file is a stand-in binary with its SHA-256 in SHA256SUMS.
type pluginsDir struct {
	t   *testing.T
	dir string
	l   *pluginhost.InProcess
	mu  sync.Mutex
	fns map[string]*providertest.FakePayments // by version
}

func newPluginsDir(t *testing.T) *pluginsDir {
	t.Helper()
	d := &pluginsDir{t: t, dir: t.TempDir(), l: pluginhost.NewInProcess(nil), fns: map[string]*providertest.FakePayments{}}
	d.writeSums()
	return d
}

// add puts fake version (file pipecore-plugin-fake@version, or the
// unversioned file when fileVersion is false) in the directory.
func (d *pluginsDir) add(version string, fileVersion bool) *providertest.FakePayments {
	d.t.Helper()
	file := pluginhost.BinaryPrefix + "fake"
	if fileVersion {
		file += "@" + version
	}
	path := filepath.Join(d.dir, file)
	if err := os.WriteFile(path, []byte("stand-in for fake "+version), 0o755); err != nil {
		d.t.Fatal(err)
	}
	f := &providertest.FakePayments{Name: "fake"}
	d.l.Provide(path, version, f)
	d.mu.Lock()
	d.fns[version] = f
	d.mu.Unlock()
	d.writeSums()
	return f
}

func (d *pluginsDir) writeSums() {
	d.t.Helper()
	entries, _ := os.ReadDir(d.dir)
	var b strings.Builder
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), pluginhost.BinaryPrefix) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(d.dir, e.Name()))
		if err != nil {
			d.t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(sum[:]), e.Name())
	}
	if err := os.WriteFile(filepath.Join(d.dir, pluginhost.SumsFile), []byte(b.String()), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

func (d *pluginsDir) host(cfg pluginhost.Config) *pluginhost.Host {
	d.t.Helper()
	cfg.Dir, cfg.Launcher = d.dir, d.l
	cfg.HealthInterval, cfg.MinBackoff, cfg.MaxBackoff = 50*time.Millisecond, 20*time.Millisecond, 100*time.Millisecond
	if cfg.SettleTime == 0 {
		cfg.SettleTime = 20 * time.Millisecond
	}
	h, err := pluginhost.New(cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(h.Close)
	return h
}

func createFor(ctx context.Context, p payments.Provider, tenantID, key string) error {
	_, err := p.CreatePayment(ctx, payments.CreateRequest{
		Tenant: provider.NewTenant(tenantID, nil, map[string]string{"api_key": "k"}), IdempotencyKey: key,
		Amount: provider.Money{Amount: 100, Currency: "USD"},
	})
	return err
}

func status(h *pluginhost.Host, version string) (pluginhost.Status, bool) {
	for _, st := range h.Status() {
		if st.Version == version {
			return st, true
		}
	}
	return pluginhost.Status{}, false
}

// TestTenantsPinnedToVersions runs two versions at once: the tenant pinned
// to ~1.3 gets 1.3.0, every other tenant the newest.
func TestTenantsPinnedToVersions(t *testing.T) {
	d := newPluginsDir(t)
	old, cur := d.add("1.3.0", true), d.add("1.4.0", true)
	h := d.host(pluginhost.Config{})
	if err := h.SetVersions(map[string]map[string]string{"acme": {"fake": "~1.3"}, "beta": {"fake": ""}}); err != nil {
		t.Fatal(err)
	}
	catalog, err := h.Start(context.Background(), []string{"fake"})
	if err != nil || catalog["fake"].Version != "1.4.0" {
		t.Fatalf("Start = %v, %v; want the catalog to show the newest version", catalog, err)
	}
	p, err := h.Payments("fake")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		if err := createFor(ctx, p, "acme", fmt.Sprint("a", i)); err != nil {
			t.Fatal(err)
		}
		if err := createFor(ctx, p, "beta", fmt.Sprint("b", i)); err != nil {
			t.Fatal(err)
		}
	}
	if old.Calls() != 3 || cur.Calls() != 3 {
		t.Fatalf("calls: 1.3.0 served %d, 1.4.0 served %d; want 3 and 3", old.Calls(), cur.Calls())
	}
	if v, _ := h.Version("fake", "acme"); v != "1.3.0" {
		t.Errorf("Version(acme) = %q", v)
	}
	if v, _ := h.Version("fake", "anyone"); v != "1.4.0" {
		t.Errorf("Version(anyone) = %q", v)
	}
	for _, v := range []string{"1.3.0", "1.4.0"} {
		if st, ok := status(h, v); !ok || !st.Serving || st.State != pluginhost.StateRunning {
			t.Errorf("status of %s: %+v", v, st)
		}
	}
}

func TestConstraintWithoutMatchFailsStart(t *testing.T) {
	d := newPluginsDir(t)
	d.add("1.3.0", true)
	h := d.host(pluginhost.Config{})
	if err := h.SetVersions(map[string]map[string]string{"acme": {"fake": "~2.0"}}); err != nil {
		t.Fatal(err)
	}
	_, err := h.Start(context.Background(), []string{"fake"})
	if !errors.Is(err, pluginhost.ErrNoMatch) {
		t.Fatalf("Start = %v, want ErrNoMatch", err)
	}
	for _, want := range []string{"acme", "~2.0", "1.3.0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if err := h.SetVersions(map[string]map[string]string{"acme": {"fake": "~one"}}); err == nil || !strings.Contains(err.Error(), `tenant "acme"`) {
		t.Fatalf("SetVersions with a bad constraint: %v", err)
	}
}

// TestUnversionedFileLearnsItsVersion: a binary whose file name has no
// version is launched to learn it, and constraints apply to it.
func TestUnversionedFileLearnsItsVersion(t *testing.T) {
	d := newPluginsDir(t)
	legacy := d.add("1.2.0", false)
	d.add("1.3.0", true)
	h := d.host(pluginhost.Config{})
	if err := h.SetVersions(map[string]map[string]string{"acme": {"fake": "~1.2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	p, _ := h.Payments("fake")
	if err := createFor(context.Background(), p, "acme", "k"); err != nil || legacy.Calls() != 1 {
		t.Fatalf("acme's call: %v; the unversioned 1.2.0 served %d calls", err, legacy.Calls())
	}
	if v, _ := h.Version("fake", "other"); v != "1.3.0" {
		t.Fatalf("Version(other) = %q", v)
	}
}

// TestReloadSwapsAndDrains swaps 1.3.0 for 1.4.0 while a call is in
// flight on 1.3.0: the call finishes there, new calls go to 1.4.0, then
// 1.3.0 stops.
func TestReloadSwapsAndDrains(t *testing.T) {
	d := newPluginsDir(t)
	old := d.add("1.3.0", true)
	h := d.host(pluginhost.Config{})
	if _, err := h.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	p, _ := h.Payments("fake")
	old.SetDelay(400 * time.Millisecond)
	inflight := make(chan error, 1)
	go func() { inflight <- createFor(context.Background(), p, "acme", "slow") }()
	deadline := time.Now().Add(2 * time.Second)
	for st, _ := status(h, "1.3.0"); st.InFlight == 0; st, _ = status(h, "1.3.0") {
		if time.Now().After(deadline) {
			t.Fatal("the slow call never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cur := d.add("1.4.0", true)
	reps, err := h.Reload(context.Background(), []string{"fake"})
	if err != nil || len(reps) != 1 || !reps[0].OK() {
		t.Fatalf("Reload = %+v, %v", reps, err)
	}
	if r := reps[0].Routes[0]; r.From != "1.3.0" || r.To != "1.4.0" || !r.Healthy {
		t.Fatalf("route after reload: %+v", r)
	}
	if err := createFor(context.Background(), p, "acme", "new"); err != nil || cur.Calls() != 1 {
		t.Fatalf("call after the swap: %v; 1.4.0 served %d", err, cur.Calls())
	}
	if st, ok := status(h, "1.3.0"); !ok || !st.Draining || st.Serving {
		t.Fatalf("1.3.0 while its call is in flight: %+v (listed %v)", st, ok)
	}
	if err := <-inflight; err != nil {
		t.Fatalf("the call in flight during the swap failed: %v", err)
	}
	deadline = time.Now().Add(2 * time.Second)
	for {
		if _, ok := status(h, "1.3.0"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("1.3.0 not stopped after its call finished: %+v", h.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if inst := d.l.Current(filepath.Join(d.dir, "pipecore-plugin-fake@1.3.0")); !inst.Exited() {
		t.Fatal("1.3.0's instance still runs")
	}
}

// TestDrainIsBounded: a call outlasting DrainTimeout does not keep the
// old version alive.
func TestDrainIsBounded(t *testing.T) {
	d := newPluginsDir(t)
	old := d.add("1.3.0", true)
	h := d.host(pluginhost.Config{DrainTimeout: 100 * time.Millisecond})
	if _, err := h.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	p, _ := h.Payments("fake")
	old.SetDelay(5 * time.Second)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = createFor(ctx, p, "acme", "stuck")
	}()
	time.Sleep(50 * time.Millisecond)
	d.add("1.4.0", true)
	start := time.Now()
	if _, err := h.Reload(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, ok := status(h, "1.3.0"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("1.3.0 still listed %s after the reload: %+v", time.Since(start), h.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReloadRefusesCrashingVersion: a new version that dies at start is
// refused and reported; traffic stays on the serving version.
func TestReloadRefusesCrashingVersion(t *testing.T) {
	d := newPluginsDir(t)
	cur := d.add("1.4.0", true)
	d.l.RefuseVersion = func(_, version string) error {
		if version == "1.5.0" {
			return errors.New("plugin exited before we could connect (plugin stderr: boom)")
		}
		return nil
	}
	h := d.host(pluginhost.Config{})
	if _, err := h.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	d.add("1.5.0", true)
	reps, err := h.Reload(context.Background(), nil)
	if err != nil || len(reps) != 1 {
		t.Fatalf("Reload = %+v, %v", reps, err)
	}
	rep := reps[0]
	if rep.OK() || len(rep.Refused) != 1 || rep.Refused[0].Version != "1.5.0" || !strings.Contains(rep.Refused[0].Error, "boom") {
		t.Fatalf("report: %+v", rep)
	}
	if r := rep.Routes[0]; r.From != "1.4.0" || r.To != "1.4.0" {
		t.Fatalf("route: %+v", r)
	}
	p, _ := h.Payments("fake")
	if err := createFor(context.Background(), p, "acme", "k"); err != nil || cur.Calls() != 1 {
		t.Fatalf("call after the refused swap: %v (1.4.0 served %d)", err, cur.Calls())
	}
	st, ok := status(h, "1.5.0")
	if !ok || st.State != pluginhost.StateRejected || !strings.Contains(st.LastError, "boom") || st.Serving {
		t.Fatalf("status of the refused version: %+v (listed %v)", st, ok)
	}
	if ok, _ := h.Readiness(); !ok {
		t.Error("a refused candidate made the host not ready")
	}
}

// TestHungPluginIsKilledAndRestarted: a plugin that stops answering is
// killed after a call passes its deadline, and restarted.
func TestHungPluginIsKilledAndRestarted(t *testing.T) {
	l := pluginhost.NewInProcess(map[string]provider.Provider{"fake": &providertest.FakePayments{}})
	// No periodic health check: the call's deadline alone must catch it.
	h := pluginhost.NewWithBinaries(pluginhost.Config{Launcher: l, HealthInterval: time.Hour, MinBackoff: 20 * time.Millisecond}, l.Binaries())
	t.Cleanup(h.Close)
	if _, err := h.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	p, _ := h.Payments("fake")
	l.Current("fake").Hang()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := createFor(ctx, p, "acme", "k")
	cancel()
	if !provider.IsTimeout(err) {
		t.Fatalf("call to a hung plugin: %v, want a timeout", err)
	}
	// The probe that declares the hang waits pingTimeout (5s) for an
	// answer, then the plugin is killed and relaunched.
	deadline := time.Now().Add(15 * time.Second)
	for l.Launches("fake") < 2 || h.Status()[0].State != pluginhost.StateRunning {
		if time.Now().After(deadline) {
			t.Fatalf("hung plugin not restarted: %+v", h.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := h.Status()[0]; st.Hangs != 1 || st.Restarts != 1 {
		t.Fatalf("status after the hang: %+v", st)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := createFor(ctx, p, "acme", "k2"); err != nil {
		t.Fatalf("call after the restart: %v", err)
	}
}

// TestSlowCallDoesNotKill: a call that passes its deadline on a plugin
// that still answers its health check leaves the plugin alone.
func TestSlowCallDoesNotKill(t *testing.T) {
	f := &providertest.FakePayments{}
	l := pluginhost.NewInProcess(map[string]provider.Provider{"fake": f})
	h := newHost(t, l)
	if _, err := h.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	p, _ := h.Payments("fake")
	f.SetDelay(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := createFor(ctx, p, "acme", "k")
	cancel()
	if !provider.IsTimeout(err) {
		t.Fatalf("slow call: %v", err)
	}
	time.Sleep(5500 * time.Millisecond) // past the probe's deadline (pingTimeout)
	if n := l.Launches("fake"); n != 1 {
		t.Fatalf("a slow but healthy plugin was restarted (%d launches)", n)
	}
}

func TestRegister(t *testing.T) {
	d := newPluginsDir(t)
	d.add("1.3.0", true)
	pins := filepath.Join(t.TempDir(), "data", "plugins.json")
	h := d.host(pluginhost.Config{PinsFile: pins})
	if _, err := h.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	build := filepath.Join(t.TempDir(), "pipecore-plugin-fake@1.4.0")
	if err := os.WriteFile(build, []byte("build 1.4.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &providertest.FakePayments{Name: "fake"}
	d.l.Provide(build, "1.4.0", f)
	sum := sha256.Sum256([]byte("build 1.4.0"))
	wrong := sha256.Sum256([]byte("something else"))

	tests := map[string]struct {
		name, path string
		sum        []byte
		want       error
		says       string
	}{
		"wrong checksum":  {"fake", build, wrong[:], pluginhost.ErrChecksumMismatch, hex.EncodeToString(sum[:])},
		"relative path":   {"fake", "pipecore-plugin-fake@1.4.0", sum[:], pluginhost.ErrInvalid, "absolute"},
		"missing file":    {"fake", build + ".gone", sum[:], pluginhost.ErrInvalid, "no such file"},
		"other plugin":    {"stripe", build, sum[:], pluginhost.ErrInvalid, `not "stripe"`},
		"short checksum":  {"fake", build, sum[:8], pluginhost.ErrInvalid, "64 hex"},
		"bad plugin name": {"Fake!", build, sum[:], pluginhost.ErrInvalid, "lowercase"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := h.Register(tc.name, tc.path, tc.sum)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Register = %v, want %v saying %q", err, tc.want, tc.says)
			}
		})
	}
	if _, err := os.Stat(pins); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused registration wrote the pins file: %v", err)
	}
	b, err := h.Register("fake", build, sum[:])
	if err != nil || b.Version != "1.4.0" {
		t.Fatalf("Register = %+v, %v", b, err)
	}
	if _, err := h.Register("fake", build, sum[:]); err != nil {
		t.Fatalf("registering the same binary again: %v", err)
	}
	// Another build claiming 1.3.0, which the plugins directory holds.
	dup := filepath.Join(t.TempDir(), "pipecore-plugin-fake@1.3.0")
	_ = os.WriteFile(dup, []byte("another 1.3.0"), 0o755)
	dupSum := sha256.Sum256([]byte("another 1.3.0"))
	if _, err := h.Register("fake", dup, dupSum[:]); !errors.Is(err, pluginhost.ErrInvalid) || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("registering another 1.3.0: %v", err)
	}
	reps, err := h.Reload(context.Background(), []string{"fake"})
	if err != nil || !reps[0].OK() || reps[0].Routes[0].To != "1.4.0" {
		t.Fatalf("Reload after Register: %+v, %v", reps, err)
	}
	// The pin survives a restart of the gateway.
	h2 := d.host(pluginhost.Config{PinsFile: pins})
	if _, err := h2.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := h2.Version("fake", "acme"); v != "1.4.0" {
		t.Fatalf("after a restart the registered 1.4.0 is not served: %q", v)
	}
}

func TestWatchReloadsOnChange(t *testing.T) {
	d := newPluginsDir(t)
	d.add("1.3.0", true)
	h := d.host(pluginhost.Config{WatchInterval: 30 * time.Millisecond})
	if _, err := h.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	d.add("1.4.0", true)
	deadline := time.Now().Add(5 * time.Second)
	for v, _ := h.Version("fake", "acme"); v != "1.4.0"; v, _ = h.Version("fake", "acme") {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher did not swap to 1.4.0: %q", v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMetricsExportDegraded(t *testing.T) {
	l := pluginhost.NewInProcess(map[string]provider.Provider{"fake": &providertest.FakePayments{}})
	h := newHost(t, l)
	if _, err := h.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	value := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				if g := m.GetGauge(); g != nil {
					return g.GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("metric %s not exported", name)
		return 0
	}
	if value("pipecore_plugin_up") != 1 || value("pipecore_plugin_degraded") != 0 {
		t.Fatal("a healthy plugin is not up, or is degraded")
	}
	for i := range 5 {
		deadline := time.Now().Add(3 * time.Second)
		for l.Launches("fake") != i+1 || h.Status()[0].State != pluginhost.StateRunning {
			if time.Now().After(deadline) {
				t.Fatalf("launch %d never came", i+1)
			}
			time.Sleep(5 * time.Millisecond)
		}
		l.Current("fake").Kill()
	}
	deadline := time.Now().Add(3 * time.Second)
	for value("pipecore_plugin_degraded") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("degraded not exported after 5 crashes: %+v", h.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if value("pipecore_plugin_restarts_total") < 4 {
		t.Fatal("restarts not counted")
	}
	if _, ok := h.Catalog()["fake"]; !ok {
		t.Fatal("a degraded plugin left the catalog: its webhooks would be refused")
	}
}
