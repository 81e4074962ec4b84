// Package pluginhost runs the gateway's provider plugins: it discovers the
// binaries in the plugins directory, pins each to the SHA-256 listed in
// SHA256SUMS, launches the ones tenants use, health-checks them, restarts a
// crashed plugin with backoff and stops them with the gateway.
//
// Callers get Go interfaces (payments.Provider, ...) that stay valid across
// restarts: a call made while a plugin restarts waits for it up to the
// call's deadline, then fails with a retryable error wrapping
// ErrUnavailable.
package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
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

// Launcher starts a plugin binary.
type Launcher interface {
	Launch(ctx context.Context, b Binary) (Instance, error)
}

// Config configures a Host. Zero values mean the documented defaults.
type Config struct {
	// Dir is the plugins directory (binaries and SHA256SUMS).
	Dir string
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
}

// Host supervises the gateway's plugins. Its methods are safe for
// concurrent use.
type Host struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.RWMutex
	binaries map[string]Binary
	sups     map[string]*supervisor
}

// New returns a Host for the binaries found in cfg.Dir. It launches
// nothing yet; see Start.
func New(cfg Config) (*Host, error) {
	cfg.setDefaults()
	bins, err := Discover(cfg.Dir)
	if err != nil {
		return nil, err
	}
	return newHost(cfg, bins), nil
}

// NewWithBinaries returns a Host for an explicit list of binaries (tests).
func NewWithBinaries(cfg Config, bins []Binary) *Host {
	cfg.setDefaults()
	return newHost(cfg, bins)
}

func newHost(cfg Config, bins []Binary) *Host {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Host{cfg: cfg, ctx: ctx, cancel: cancel, binaries: map[string]Binary{}, sups: map[string]*supervisor{}}
	for _, b := range bins {
		h.binaries[b.Name] = b
	}
	return h
}

// Available returns the names of the plugin binaries found, sorted.
func (h *Host) Available() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	names := make([]string, 0, len(h.binaries))
	for n := range h.binaries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Start launches the named plugins and waits for each first launch to
// finish. A name without a binary is an error. A plugin that fails to
// launch (checksum mismatch, crash at start) does not fail Start: it is
// reported by Status, retried with backoff, and its calls fail with
// ErrUnavailable. Start returns the Info of every plugin that is running.
func (h *Host) Start(ctx context.Context, names []string) (map[string]provider.Info, error) {
	var missing []string
	h.mu.Lock()
	var started []*supervisor
	for _, n := range names {
		if _, ok := h.sups[n]; ok {
			continue
		}
		b, ok := h.binaries[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		s := newSupervisor(h.cfg, b)
		h.sups[n] = s
		started = append(started, s)
	}
	h.mu.Unlock()
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %v (binaries in %s: %v)", ErrUnknown, missing, h.cfg.Dir, h.Available())
	}
	for _, s := range started {
		h.wg.Add(1)
		go func() { defer h.wg.Done(); s.run(h.ctx) }()
	}
	for _, s := range started {
		select {
		case <-s.firstDone:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return h.Catalog(), nil
}

// Catalog returns the Info of every running plugin, by name.
func (h *Host) Catalog() map[string]provider.Info {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make(map[string]provider.Info, len(h.sups))
	for n, s := range h.sups {
		if info, ok := s.info(); ok {
			out[n] = info
		}
	}
	return out
}

// Status reports every supervised plugin, sorted by name.
func (h *Host) Status() []Status {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]Status, 0, len(h.sups))
	for _, s := range h.sups {
		out = append(out, s.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (h *Host) supervisor(name string) (*supervisor, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s, ok := h.sups[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	return s, nil
}

// Payments returns the payments capability of the named plugin. The value
// stays valid across restarts of the plugin.
func (h *Host) Payments(name string) (payments.Provider, error) {
	s, err := h.supervisor(name)
	if err != nil {
		return nil, err
	}
	if info, ok := s.info(); ok && !info.Has(provider.CapabilityPayments) {
		return nil, fmt.Errorf("%w: %s has no payments", ErrCapability, name)
	}
	return &paymentsProxy{s: s}, nil
}

// WebhookParser returns the named plugin's webhook parser.
func (h *Host) WebhookParser(name string) (provider.WebhookParser, error) {
	s, err := h.supervisor(name)
	if err != nil {
		return nil, err
	}
	return &webhookProxy{s: s}, nil
}

// Close stops every plugin and waits for the supervisors to exit.
func (h *Host) Close() {
	h.cancel()
	h.wg.Wait()
}

// Checksums returns the pinned SHA-256 of every discovered binary, by name.
func (h *Host) Checksums() map[string][]byte {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make(map[string][]byte, len(h.binaries))
	for n, b := range h.binaries {
		out[n] = b.Checksum
	}
	return out
}
