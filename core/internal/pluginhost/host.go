// Package pluginhost runs the gateway's provider plugins: it discovers the
// binaries in the plugins directory (several versions of one plugin may sit
// side by side, as pipecore-plugin-NAME@VERSION), pins each to the SHA-256
// listed in SHA256SUMS or registered by an operator, launches the versions
// tenants use, health-checks them, restarts a crashed or hung plugin with
// backoff, swaps versions without a restart of the gateway, and stops them
// with the gateway.
//
// Callers get Go interfaces (payments.Provider, ...) that stay valid across
// restarts and swaps. Each call is routed by the request's tenant to the
// version serving that tenant: the newest healthy version that satisfies
// the tenant's version constraint (SetVersions). A call made while a
// plugin restarts waits for it up to the call's deadline, then fails with
// a retryable error wrapping ErrUnavailable.
package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/pluginclient"
	"github.com/pipecore/pipecore/sdk/provider"
)

var (
	// ErrUnavailable is wrapped by calls to a plugin that is not running
	// (crashed, restarting, refused). Such errors are retryable.
	ErrUnavailable = pluginclient.ErrUnavailable
	// ErrUnknown is returned for a plugin name no binary provides.
	ErrUnknown = errors.New("pluginhost: no such plugin")
	// ErrCapability is returned when a plugin lacks the capability asked for.
	ErrCapability = errors.New("pluginhost: plugin lacks the capability")
	// ErrNoMatch is returned when no installed version of a plugin
	// satisfies a tenant's version constraint.
	ErrNoMatch = errors.New("pluginhost: no installed version matches")
)

// Instance is one running plugin. *pluginclient.Plugin implements it; tests
// use InProcess.
type Instance interface {
	Info() provider.Info
	Payments() payments.Provider
	Delivery() delivery.Provider
	Messaging() messaging.Provider
	WebhookParser() provider.WebhookParser
	Ping(ctx context.Context) error
	Exited() bool
	Kill()
	PID() int
}

// Launcher starts a plugin binary. b.Version is the file name's version,
// or the version the binary reported at an earlier launch, or "".
type Launcher interface {
	Launch(ctx context.Context, b Binary) (Instance, error)
}

// Config configures a Host. Zero values mean the documented defaults.
type Config struct {
	// Dir is the plugins directory (binaries and SHA256SUMS).
	Dir string
	// PinsFile keeps the binaries operators register (Register) across
	// restarts, as JSON. Empty keeps registrations in memory only.
	PinsFile string
	// Launcher starts binaries. Nil means real processes (Process).
	Launcher Launcher
	Logger   *slog.Logger
	// StartTimeout bounds one launch. Zero means 10s.
	StartTimeout time.Duration
	// HealthInterval is how often a running plugin is pinged. Zero means 5s.
	HealthInterval time.Duration
	// MinBackoff and MaxBackoff bound the delay between restarts after
	// repeated crashes. Zero means 1s and 60s. The first restart after a
	// healthy minute is immediate.
	MinBackoff, MaxBackoff time.Duration
	// DrainTimeout bounds how long a version no tenant is routed to any
	// more may finish its in-flight calls before it is stopped. Zero means
	// 30s.
	DrainTimeout time.Duration
	// SettleTime is how long a new version must stay healthy after its
	// first health check before a swap routes traffic to it. Zero means
	// 500ms.
	SettleTime time.Duration
	// WatchInterval, when positive, polls Dir and PinsFile at that interval
	// and reloads the started plugins when a binary or a pin changed, as
	// Reload would. Zero disables watching.
	WatchInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 10 * time.Second
	}
	if c.Launcher == nil {
		c.Launcher = Process{Logger: c.Logger, StartTimeout: c.StartTimeout}
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 5 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 60 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.SettleTime == 0 {
		c.SettleTime = 500 * time.Millisecond
	}
}

// Host supervises the gateway's plugins. Its methods are safe for
// concurrent use.
type Host struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	changeMu sync.Mutex // one Start, Reload or Register at a time

	mu          sync.RWMutex
	discovered  []Binary                         // from Dir
	pinned      []Binary                         // registered
	constraints map[string]map[string]Constraint // name → tenant → constraint
	started     map[string]bool                  // names Start was asked for
	sups        map[string]*supervisor           // by Binary.id(): live (serving or probed)
	draining    map[*supervisor]bool             // retired, finishing their calls
	rejected    map[string][]Status              // by name: versions the last reload refused
	learned     map[string]string                // Binary.id() → version reported at a launch

	routes atomic.Pointer[routeTable]
}

// routeTable maps a plugin name to its routes. Published tables are never
// mutated: a change publishes a new table.
type routeTable map[string]*nameRoute

// nameRoute routes one plugin's calls: tenants with a version constraint
// by tenant (a nil supervisor: no version satisfies it), every other
// tenant to def.
type nameRoute struct {
	def     *supervisor
	tenants map[string]*supervisor
	groups  map[string]string // tenant → constraint
}

// New returns a Host for the binaries found in cfg.Dir and registered in
// cfg.PinsFile. It launches nothing yet; see Start.
func New(cfg Config) (*Host, error) {
	cfg.setDefaults()
	bins, err := Discover(cfg.Dir)
	if err != nil {
		return nil, err
	}
	pins, err := loadPins(cfg.PinsFile)
	if err != nil {
		return nil, err
	}
	h := newHost(cfg, bins)
	h.pinned = pins
	return h, nil
}

// NewWithBinaries returns a Host for an explicit list of binaries (tests).
// Reload keeps the list unless cfg.Dir is set.
func NewWithBinaries(cfg Config, bins []Binary) *Host {
	cfg.setDefaults()
	return newHost(cfg, bins)
}

func newHost(cfg Config, bins []Binary) *Host {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Host{cfg: cfg, ctx: ctx, cancel: cancel, discovered: bins,
		constraints: map[string]map[string]Constraint{}, started: map[string]bool{}, sups: map[string]*supervisor{},
		draining: map[*supervisor]bool{}, rejected: map[string][]Status{}, learned: map[string]string{}}
	h.routes.Store(&routeTable{})
	if cfg.WatchInterval > 0 {
		h.wg.Add(1)
		go func() { defer h.wg.Done(); h.watch(ctx) }()
	}
	return h
}

// binariesOf returns the pinned and discovered binaries of name, one per
// content (the plugins directory's copy first).
func (h *Host) binariesOf(name string) []Binary {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []Binary
	seen := map[string]bool{}
	for _, b := range slices.Concat(h.discovered, h.pinned) {
		if b.Name == name && !seen[b.id()] {
			seen[b.id()] = true
			out = append(out, b)
		}
	}
	return out
}

// Available returns the names of the plugin binaries found, sorted.
func (h *Host) Available() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var names []string
	for _, b := range slices.Concat(h.discovered, h.pinned) {
		if !slices.Contains(names, b.Name) {
			names = append(names, b.Name)
		}
	}
	sort.Strings(names)
	return names
}

// SetVersions sets every tenant's version constraints: tenant id → plugin
// name → constraint ("~1.3"; "" or absent means any version). It replaces
// the previous set; Start and Reload apply it. An unparsable constraint is
// an error naming the tenant and the plugin, and nothing changes.
func (h *Host) SetVersions(byTenant map[string]map[string]string) error {
	next := map[string]map[string]Constraint{}
	var errs []error
	for _, tid := range slices.Sorted(maps.Keys(byTenant)) {
		for _, name := range slices.Sorted(maps.Keys(byTenant[tid])) {
			c, err := ParseConstraint(byTenant[tid][name])
			if err != nil {
				errs = append(errs, fmt.Errorf("tenant %q: provider %q: %w", tid, name, err))
				continue
			}
			if c.Any() {
				continue
			}
			if next[name] == nil {
				next[name] = map[string]Constraint{}
			}
			next[name][tid] = c
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	h.mu.Lock()
	h.constraints = next
	h.mu.Unlock()
	return nil
}

// Start routes and launches the named plugins and waits for each first
// launch to finish. A name without a binary is an error, and so is a
// tenant constraint no installed version satisfies. A plugin that fails to
// launch (checksum mismatch, crash at start) does not fail Start: it is
// reported by Status, retried with backoff, and its calls fail with
// ErrUnavailable. Start returns the Info of every plugin that is running.
func (h *Host) Start(ctx context.Context, names []string) (map[string]provider.Info, error) {
	h.changeMu.Lock()
	defer h.changeMu.Unlock()
	var missing, todo []string
	for _, n := range names {
		h.mu.RLock()
		started := h.started[n]
		h.mu.RUnlock()
		switch {
		case started || slices.Contains(todo, n):
		case len(h.binariesOf(n)) == 0:
			missing = append(missing, n)
		default:
			todo = append(todo, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %v (binaries in %s: %v)", ErrUnknown, missing, h.cfg.Dir, h.Available())
	}
	reports := make([]Report, len(todo))
	var wg sync.WaitGroup
	for i, n := range todo {
		wg.Add(1)
		go func() { defer wg.Done(); reports[i] = h.resolve(ctx, n) }()
	}
	wg.Wait()
	var errs []error
	for _, r := range reports {
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		h.mu.Lock()
		h.started[r.Name] = true
		h.mu.Unlock()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return h.Catalog(), errors.Join(errs...)
}

// Catalog returns, by name, the Info of the version serving tenants
// without a version constraint (the newest), for every plugin that has run
// at least once. A plugin that is down keeps its entry: the gateway goes on
// accepting its webhooks.
func (h *Host) Catalog() map[string]provider.Info {
	t := *h.routes.Load()
	out := make(map[string]provider.Info, len(t))
	for name, nr := range t {
		for _, s := range nr.all() {
			if info, ok := s.info(); ok {
				out[name] = info
				break
			}
		}
	}
	return out
}

// all returns the route's supervisors, def first, without duplicates.
func (nr *nameRoute) all() []*supervisor {
	var out []*supervisor
	if nr.def != nil {
		out = append(out, nr.def)
	}
	for _, tid := range slices.Sorted(maps.Keys(nr.tenants)) {
		if s := nr.tenants[tid]; s != nil && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Version returns the version serving tenantID's calls to the named
// plugin, and whether one does.
func (h *Host) Version(name, tenantID string) (string, bool) {
	s := h.route(name, tenantID)
	if s == nil {
		return "", false
	}
	return s.version(), true
}

// route returns the supervisor serving tenantID's calls to name, or nil.
func (h *Host) route(name, tenantID string) *supervisor {
	nr := (*h.routes.Load())[name]
	if nr == nil {
		return nil
	}
	if s, pinned := nr.tenants[tenantID]; pinned {
		return s
	}
	return nr.def
}

// acquire returns the supervisor serving tenantID's calls to name with
// the call counted; the caller must release it.
func (h *Host) acquire(name, tenantID string) (*supervisor, error) {
	for range 3 {
		nr := (*h.routes.Load())[name]
		if nr == nil {
			return nil, fmt.Errorf("%w: %q", ErrUnknown, name)
		}
		s, pinned := nr.tenants[tenantID]
		if !pinned {
			s = nr.def
		}
		if s == nil {
			return nil, provider.Retryable(fmt.Errorf("%w: no installed version of plugin %s satisfies tenant %s's version constraint %q",
				ErrUnavailable, name, tenantID, nr.groups[tenantID]))
		}
		if s.acquire() {
			return s, nil
		}
		// Retired between the table read and acquire: the table that
		// retired it is already published.
	}
	return nil, provider.Retryable(fmt.Errorf("%w: plugin %s is being swapped", ErrUnavailable, name))
}

// call runs fn on the instance serving tenant's calls to name.
func call[T any](ctx context.Context, h *Host, name string, tenant provider.Tenant, fn func(Instance) (T, error)) (T, error) {
	s, err := h.acquire(name, tenant.ID())
	if err != nil {
		var zero T
		return zero, err
	}
	defer s.release()
	return do(ctx, s, fn)
}

// info returns the Info of the version serving tenants without a
// constraint.
func (h *Host) info(name string) (provider.Info, bool) {
	info, ok := h.Catalog()[name]
	return info, ok
}

func (h *Host) known(name string) error {
	if (*h.routes.Load())[name] == nil {
		return fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	return nil
}

// Payments returns the payments capability of the named plugin. The value
// stays valid across restarts and swaps of the plugin; each call goes to
// the version serving the request's tenant.
func (h *Host) Payments(name string) (payments.Provider, error) {
	if err := h.known(name); err != nil {
		return nil, err
	}
	if info, ok := h.info(name); ok && !info.Has(provider.CapabilityPayments) {
		return nil, fmt.Errorf("%w: %s has no payments", ErrCapability, name)
	}
	return &paymentsProxy{h: h, name: name}, nil
}

// WebhookParser returns the named plugin's webhook parser; each call goes
// to the version serving the request's tenant.
func (h *Host) WebhookParser(name string) (provider.WebhookParser, error) {
	if err := h.known(name); err != nil {
		return nil, err
	}
	return &webhookProxy{h: h, name: name}, nil
}

// Status reports every plugin version the host knows of: serving,
// draining, probed and (from the last reload) rejected, sorted by name,
// then newest version first.
func (h *Host) Status() []Status {
	t := *h.routes.Load()
	serving := map[*supervisor]bool{}
	for _, nr := range t {
		for _, s := range nr.all() {
			serving[s] = true
		}
	}
	h.mu.RLock()
	sups := slices.Collect(maps.Values(h.sups))
	sups = append(sups, slices.Collect(maps.Keys(h.draining))...)
	var out []Status
	for _, r := range h.rejected {
		out = append(out, r...)
	}
	h.mu.RUnlock()
	for _, s := range sups {
		st := s.status()
		st.Serving = serving[s]
		out = append(out, st)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return newer(out[i].Version, out[j].Version)
	})
	return out
}

// Checksums returns, by name, the pinned SHA-256 of the binary serving
// tenants without a constraint, or of the first binary found when the
// plugin is not started.
func (h *Host) Checksums() map[string][]byte {
	out := map[string][]byte{}
	for _, name := range h.Available() {
		if s := h.route(name, ""); s != nil {
			out[name] = s.bin.Checksum
			continue
		}
		if bins := h.binariesOf(name); len(bins) > 0 {
			out[name] = bins[0].Checksum
		}
	}
	return out
}

// Readiness reports whether every version serving tenants is running, and
// for /readyz, by plugin name: the state, version, restarts, degraded flag
// and last error of the version serving tenants without a constraint, and
// "versions" listing every version when more than one runs.
func (h *Host) Readiness() (bool, map[string]any) {
	ok := true
	byName := map[string][]Status{}
	for _, st := range h.Status() {
		if st.Serving && st.State != StateRunning {
			ok = false
		}
		byName[st.Name] = append(byName[st.Name], st)
	}
	out := map[string]any{}
	for name, sts := range byName {
		entry := func(st Status) map[string]any {
			e := map[string]any{"state": st.State, "version": st.Version, "restarts": st.Restarts}
			if st.Degraded {
				e["degraded"] = true
			}
			if st.LastError != "" {
				e["error"] = st.LastError
			}
			return e
		}
		primary := sts[0]
		if s := h.route(name, ""); s != nil {
			for _, st := range sts {
				if st.Path == s.bin.Path && st.Serving {
					primary = st
				}
			}
		}
		e := entry(primary)
		if len(sts) > 1 {
			var versions []map[string]any
			for _, st := range sts {
				v := entry(st)
				v["serving"] = st.Serving
				versions = append(versions, v)
			}
			e["versions"] = versions
		}
		out[name] = e
	}
	return ok, out
}

// Close stops every plugin and waits for the supervisors to exit.
func (h *Host) Close() {
	h.cancel()
	h.wg.Wait()
}

// plural joins names for messages.
func plural(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
