package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// State is a supervised plugin's state.
type State string

// The states of a supervised plugin.
const (
	StateStarting   State = "starting"
	StateRunning    State = "running"
	StateRestarting State = "restarting"
	StateFailed     State = "failed" // the last launch failed; retried with backoff
)

// Status describes one supervised plugin.
type Status struct {
	Name     string
	Version  string
	State    State
	PID      int
	Restarts int
	// Degraded is true after 5 crashes within 5 minutes.
	Degraded  bool
	LastError string
	Since     time.Time
}

const (
	crashWindow    = 5 * time.Minute
	crashThreshold = 5
	healthyUptime  = time.Minute
	pingTimeout    = 2 * time.Second
)

// supervisor owns one plugin: it launches it, watches it, and relaunches it
// after a crash. Callers reach the current instance through get, which
// waits (bounded by ctx) while no instance is running.
type supervisor struct {
	cfg Config
	bin Binary

	firstDone chan struct{} // closed after the first launch attempt
	firstOnce sync.Once
	kick      chan struct{} // a caller saw the plugin fail

	mu       sync.Mutex
	inst     Instance
	ready    chan struct{} // closed while inst != nil
	state    State
	lastErr  string
	since    time.Time
	restarts int
	crashes  []time.Time
	last     provider.Info
	hasInfo  bool
}

func newSupervisor(cfg Config, b Binary) *supervisor {
	return &supervisor{
		cfg: cfg, bin: b,
		firstDone: make(chan struct{}),
		kick:      make(chan struct{}, 1),
		ready:     make(chan struct{}),
		state:     StateStarting,
		since:     time.Now(),
	}
}

func (s *supervisor) info() (provider.Info, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.hasInfo
}

func (s *supervisor) status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Name: s.bin.Name, State: s.state, Restarts: s.restarts, LastError: s.lastErr, Since: s.since, Version: s.last.Version}
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

func (s *supervisor) run(ctx context.Context) {
	log := s.cfg.Logger.With("plugin", s.bin.Name)
	defer s.signalFirst()
	failures := 0
	for ctx.Err() == nil {
		inst, err := s.launch(ctx)
		if err != nil {
			failures++
			s.mu.Lock()
			s.state, s.lastErr, s.since = StateFailed, err.Error(), time.Now()
			s.mu.Unlock()
			delay := s.backoff(failures)
			log.Error("plugin launch failed", "error", err, "retry_in", delay)
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
		log.Info("plugin running", "version", inst.Info().Version, "pid", inst.PID())
		s.signalFirst()

		started := time.Now()
		reason := s.watch(ctx, inst)
		if ctx.Err() != nil {
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
		log.Warn("plugin down; restarting", "reason", reason, "restart_in", delay)
		if !sleep(ctx, delay) {
			return
		}
	}
}

// signalFirst closes firstDone once: Start waits for it.
func (s *supervisor) signalFirst() { s.firstOnce.Do(func() { close(s.firstDone) }) }

func (s *supervisor) launch(ctx context.Context) (Instance, error) {
	if s.bin.Checksum == nil {
		return nil, fmt.Errorf("pluginhost: %s is not listed in %s; refusing to run it", s.bin.Path, SumsFile)
	}
	lctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	inst, err := s.cfg.Launcher.Launch(lctx, s.bin)
	if err != nil {
		return nil, err
	}
	if got := inst.Info().Name; got != s.bin.Name {
		inst.Kill()
		return nil, fmt.Errorf("pluginhost: %s reports name %q, want %q", s.bin.Path, got, s.bin.Name)
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
			return "gateway stopping"
		case <-s.kick:
			s.mu.Lock()
			current := s.inst == inst
			s.mu.Unlock()
			if !current {
				return "plugin stopped answering"
			}
		case <-poll.C:
			if inst.Exited() {
				return "plugin process exited"
			}
		case <-health.C:
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err := inst.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
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
// provider sees at most one effect.
func do[T any](ctx context.Context, s *supervisor, fn func(Instance) (T, error)) (T, error) {
	var zero T
	inst, err := s.get(ctx)
	if err != nil {
		return zero, err
	}
	out, err := fn(inst)
	if err == nil || !errors.Is(err, ErrUnavailable) {
		return out, err
	}
	s.failed(inst)
	inst, gerr := s.get(ctx)
	if gerr != nil {
		return zero, gerr
	}
	return fn(inst)
}
