package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// State is a supervised plugin's state.
type State string

// The states of a supervised plugin version.
const (
	StateStarting   State = "starting"
	StateRunning    State = "running"
	StateRestarting State = "restarting"
	StateFailed     State = "failed" // the last launch failed; retried with backoff
	// StateRejected marks a version a reload tried and refused (it did not
	// start or failed its first health check): it serves nothing and is
	// not retried until the next reload.
	StateRejected State = "rejected"
)

// Status describes one plugin version: one binary and its supervisor.
type Status struct {
	Name    string
	Version string
	State   State
	PID     int
	// Restarts counts restarts after a crash, a failed health check or a
	// hang.
	Restarts int
	// Degraded is true after 5 crashes within 5 minutes.
	Degraded  bool
	LastError string
	Since     time.Time
	// Path and Checksum are the binary and its pinned SHA-256.
	Path     string
	Checksum []byte
	// Serving is true when some tenant's calls are routed to this version.
	Serving bool
	// Draining is true while a version no tenant is routed to finishes its
	// in-flight calls before it is stopped.
	Draining bool
	// InFlight counts the calls currently using this version.
	InFlight int
	// Hangs counts the times the version was killed for not answering
	// after a call passed its deadline.
	Hangs int
}

const (
	crashWindow    = 5 * time.Minute
	crashThreshold = 5
	healthyUptime  = time.Minute
	pingTimeout    = 5 * time.Second
)

// supervisor owns one plugin binary: it launches it, health-checks it,
// relaunches it after a crash or a hang, counts the calls using it, and
// stops it when retired. Callers reach the current instance through get,
// which waits (bounded by ctx) while no instance is running.
type supervisor struct {
	cfg Config
	bin Binary

	ctx    context.Context // cancelled to stop the supervisor
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	firstDone chan struct{} // closed after the first launch attempt
	firstOnce sync.Once
	kick      chan struct{} // a caller saw the plugin fail
	probing   atomic.Bool   // a hang probe is running

	mu       sync.Mutex
	inst     Instance
	ready    chan struct{} // closed while inst != nil
	state    State
	lastErr  string
	since    time.Time
	restarts int
	hangs    int
	crashes  []time.Time
	last     provider.Info
	hasInfo  bool
	inflight int
	retired  bool
	drained  chan struct{} // closed when a retired supervisor has no call in flight
}

func newSupervisor(parent context.Context, cfg Config, b Binary) *supervisor {
	ctx, cancel := context.WithCancel(parent)
	return &supervisor{
		cfg: cfg, bin: b, ctx: ctx, cancel: cancel,
		done:      make(chan struct{}),
		firstDone: make(chan struct{}),
		kick:      make(chan struct{}, 1),
		ready:     make(chan struct{}),
		state:     StateStarting,
		since:     time.Now(),
	}
}

// start runs the supervisor on its own goroutine, tracked by wg.
func (s *supervisor) start(wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(s.done)
		s.run()
	}()
}

// stop stops the supervisor and its process and waits for it.
func (s *supervisor) stop() {
	s.cancel()
	<-s.done
}

func (s *supervisor) info() (provider.Info, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.hasInfo
}

// version is the version the binary reported, or the one its file name
// promises before its first launch.
func (s *supervisor) version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.versionLocked()
}

func (s *supervisor) versionLocked() string {
	if s.hasInfo {
		return s.last.Version
	}
	return s.bin.Version
}

func (s *supervisor) logger() *slog.Logger {
	return s.cfg.Logger.With("plugin", s.bin.Name, "plugin_version", s.version())
}

// healthy reports whether an instance is serving.
func (s *supervisor) healthy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inst != nil
}

func (s *supervisor) lastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

func (s *supervisor) status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Name: s.bin.Name, Version: s.versionLocked(), State: s.state, Restarts: s.restarts, LastError: s.lastErr,
		Since: s.since, Path: s.bin.Path, Checksum: s.bin.Checksum, Draining: s.retired, InFlight: s.inflight, Hangs: s.hangs}
	if s.inst != nil {
		st.PID = s.inst.PID()
	}
	st.Degraded = s.recentCrashes(time.Now()) >= crashThreshold
	return st
}

func (s *supervisor) recentCrashes(now time.Time) int {
	n := 0
	for _, c := range s.crashes {
		if now.Sub(c) < crashWindow {
			n++
		}
	}
	return n
}

// acquire counts a call about to use the supervisor. It fails once the
// supervisor is retired: the caller then routes again.
func (s *supervisor) acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired {
		return false
	}
	s.inflight++
	return true
}

// release ends a call counted by acquire.
func (s *supervisor) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	if s.retired && s.inflight == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// beginRetire refuses new calls; the returned channel is closed once no
// call is in flight.
func (s *supervisor) beginRetire() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retired = true
	ch := make(chan struct{})
	if s.inflight == 0 {
		close(ch)
	} else {
		s.drained = ch
	}
	return ch
}

// retire waits up to drain for the calls in flight to finish (ch is
// beginRetire's), then stops the plugin. It reports whether every call
// finished.
func (s *supervisor) retire(ch <-chan struct{}, drain time.Duration) bool {
	s.mu.Lock()
	n := s.inflight
	s.mu.Unlock()
	clean := true
	if n > 0 {
		s.logger().Info("plugin version draining", "in_flight", n, "drain_timeout", drain)
		t := time.NewTimer(drain)
		select {
		case <-ch:
		case <-t.C:
			clean = false
			s.logger().Warn("plugin version drain timed out; stopping it with calls in flight", "in_flight", s.status().InFlight)
		case <-s.ctx.Done():
		}
		t.Stop()
	}
	s.stop()
	return clean
}

// get returns the running instance, waiting for a (re)start while ctx
// allows.
func (s *supervisor) get(ctx context.Context) (Instance, error) {
	for {
		s.mu.Lock()
		inst, ready, lastErr := s.inst, s.ready, s.lastErr
		s.mu.Unlock()
		if inst != nil {
			return inst, nil
		}
		select {
		case <-ready:
		case <-s.ctx.Done():
			return nil, provider.Retryable(fmt.Errorf("%w: plugin %s %s stopped", ErrUnavailable, s.bin.Name, s.version()))
		case <-ctx.Done():
			msg := "not running"
			if lastErr != "" {
				msg = "not running: " + lastErr
			}
			return nil, provider.Retryable(fmt.Errorf("%w: plugin %s %s", ErrUnavailable, s.bin.Name, msg))
		}
	}
}

// failed is called by a caller whose call on inst returned ErrUnavailable.
// If inst does not answer a ping, it is taken out of service at once, so
// the next caller waits for the restart instead of hitting a dead socket.
func (s *supervisor) failed(inst Instance) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if inst.Ping(ctx) == nil {
		return
	}
	s.down(inst, "plugin stopped answering")
}

// suspectHang is called when a call on inst passed its deadline. A plugin
// that still answers its health check is only slow (its provider is, most
// likely) and is left alone; one that does not answer within pingTimeout
// is hung: it is killed and restarted. At most one probe runs at a time.
func (s *supervisor) suspectHang(inst Instance) {
	if !s.probing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.probing.Store(false)
		ctx, cancel := context.WithTimeout(s.ctx, pingTimeout)
		err := inst.Ping(ctx)
		cancel()
		if err == nil || s.ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		current := s.inst == inst
		if current {
			s.hangs++
		}
		s.mu.Unlock()
		if !current {
			return
		}
		s.logger().Error("plugin hung: a call passed its deadline and the plugin does not answer its health check; killing it", "pid", inst.PID(), "error", err)
		s.down(inst, fmt.Sprintf("plugin hung: a call passed its deadline and no answer to a health check within %s", pingTimeout))
	}()
}

// down takes inst out of service (if it is still the current instance) and
// wakes the run loop.
func (s *supervisor) down(inst Instance, reason string) {
	s.mu.Lock()
	if s.inst == inst && inst != nil {
		s.inst = nil
		s.ready = make(chan struct{})
		s.state = StateRestarting
		s.lastErr = reason
		s.since = time.Now()
		s.crashes = append(s.crashes, time.Now())
	}
	s.mu.Unlock()
	inst.Kill()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *supervisor) run() {
	ctx := s.ctx
	defer s.signalFirst()
	failures := 0
	for ctx.Err() == nil {
		inst, err := s.launch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			s.mu.Lock()
			s.state, s.lastErr, s.since = StateFailed, err.Error(), time.Now()
			s.mu.Unlock()
			delay := s.backoff(failures)
			s.logger().Error("plugin launch failed", "error", err, "retry_in", delay)
			s.signalFirst()
			if !sleep(ctx, delay) {
				return
			}
			continue
		}
		s.mu.Lock()
		s.inst, s.state, s.lastErr, s.since = inst, StateRunning, "", time.Now()
		s.last, s.hasInfo = inst.Info(), true
		close(s.ready)
		s.mu.Unlock()
		s.logger().Info("plugin running", "pid", inst.PID(), "path", s.bin.Path)
		s.signalFirst()

		started := time.Now()
		reason := s.watch(ctx, inst)
		if ctx.Err() != nil {
			s.mu.Lock()
			if s.inst == inst {
				s.inst, s.ready = nil, make(chan struct{})
			}
			s.mu.Unlock()
			inst.Kill()
			return
		}
		s.down(inst, reason)
		if time.Since(started) >= healthyUptime {
			failures = 0
		}
		failures++
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
		delay := time.Duration(0)
		if failures > 1 {
			delay = s.backoff(failures - 1)
		}
		s.logger().Warn("plugin down; restarting", "reason", reason, "restart_in", delay)
		if !sleep(ctx, delay) {
			return
		}
	}
}

// signalFirst closes firstDone once: Start and Reload wait for it.
func (s *supervisor) signalFirst() { s.firstOnce.Do(func() { close(s.firstDone) }) }

// waitFirst waits for the first launch attempt; it reports whether the
// plugin is serving.
func (s *supervisor) waitFirst(ctx context.Context) bool {
	select {
	case <-s.firstDone:
	case <-ctx.Done():
		return false
	}
	return s.healthy()
}

// launch starts the binary (its checksum re-checked by the launcher),
// checks that it is the plugin and version it claims to be, and that it
// answers its health check.
func (s *supervisor) launch(ctx context.Context) (Instance, error) {
	if s.bin.Checksum == nil {
		return nil, fmt.Errorf("pluginhost: %s is not listed in %s; refusing to run it", s.bin.Path, SumsFile)
	}
	lctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	b := s.bin
	if b.Version == "" {
		b.Version = s.version() // known after a first launch: tags the plugin's log lines
	}
	inst, err := s.cfg.Launcher.Launch(lctx, b)
	if err != nil {
		return nil, err
	}
	info := inst.Info()
	if info.Name != s.bin.Name {
		inst.Kill()
		return nil, fmt.Errorf("pluginhost: %s reports name %q, want %q", s.bin.Path, info.Name, s.bin.Name)
	}
	if s.bin.Version != "" && !sameVersion(info.Version, s.bin.Version) {
		inst.Kill()
		return nil, fmt.Errorf("pluginhost: %s reports version %q, but its file name says %s", s.bin.Path, info.Version, s.bin.Version)
	}
	pctx, pcancel := context.WithTimeout(ctx, pingTimeout)
	defer pcancel()
	if err := inst.Ping(pctx); err != nil {
		inst.Kill()
		return nil, fmt.Errorf("pluginhost: %s %s failed its health check after start: %w", s.bin.Name, info.Version, err)
	}
	return inst, nil
}

// watch blocks until inst dies, fails a health check, a caller reports it
// down, or ctx ends; it returns why.
func (s *supervisor) watch(ctx context.Context, inst Instance) string {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	health := time.NewTicker(s.cfg.HealthInterval)
	defer health.Stop()
	for {
		select {
		case <-ctx.Done():
			return "stopping"
		case <-s.kick:
			s.mu.Lock()
			current, reason := s.inst == inst, s.lastErr
			s.mu.Unlock()
			if !current {
				return reason
			}
		case <-poll.C:
			if inst.Exited() {
				return "plugin process exited"
			}
		case <-health.C:
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err := inst.Ping(pctx)
			hung := pctx.Err() != nil
			cancel()
			switch {
			case err == nil || ctx.Err() != nil:
			case hung:
				s.mu.Lock()
				s.hangs++
				s.mu.Unlock()
				s.logger().Error("plugin hung: no answer to its health check; killing it", "pid", inst.PID(), "timeout", pingTimeout)
				return fmt.Sprintf("plugin hung: no answer to a health check within %s", pingTimeout)
			default:
				return "health check failed: " + err.Error()
			}
		}
	}
}

func (s *supervisor) backoff(failures int) time.Duration {
	d := s.cfg.MinBackoff
	for i := 1; i < failures && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.cfg.MaxBackoff)
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// do runs fn on the current instance. When the call fails because the
// plugin is gone, it waits for the restart (bounded by ctx) and runs fn once
// more: every mutating plugin call carries an idempotency key, so the
// provider sees at most one effect. A call that passes its deadline has
// the plugin probed for a hang.
func do[T any](ctx context.Context, s *supervisor, fn func(Instance) (T, error)) (T, error) {
	var zero T
	inst, err := s.get(ctx)
	if err != nil {
		return zero, err
	}
	out, err := fn(inst)
	if err == nil {
		return out, nil
	}
	if provider.IsTimeout(err) && ctx.Err() != nil {
		s.suspectHang(inst)
		return out, err
	}
	if !errors.Is(err, ErrUnavailable) {
		return out, err
	}
	s.failed(inst)
	inst, gerr := s.get(ctx)
	if gerr != nil {
		return zero, gerr
	}
	return fn(inst)
}
