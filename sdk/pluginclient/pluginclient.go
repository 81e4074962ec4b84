// Package pluginclient launches a provider plugin binary and gives the
// gateway core Go interfaces back: the same payments.Provider,
// delivery.Provider and messaging.Provider a plugin author implements, so
// core cannot tell an out-of-process plugin from an in-process fake.
//
// Plugin authors do not need this package.
//
// Every launch pins the binary's SHA-256 (go-plugin SecureConfig), speaks
// gRPC only, uses AutoMTLS, starts the plugin with a clean environment, and
// forks from one dedicated, locked OS thread so that Pdeathsig kills the
// plugin when the gateway dies, even by SIGKILL.
package pluginclient

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/internal/wire"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

var (
	// ErrUnavailable is wrapped by errors of calls that never reached a
	// live plugin: it exited, is restarting or its connection broke.
	ErrUnavailable = wire.ErrUnavailable
	// ErrChecksum is returned by Start when the binary's SHA-256 differs
	// from the pinned one; the binary is not executed.
	ErrChecksum = errors.New("pluginclient: checksum mismatch")
	// ErrProtocol is returned by Start when the plugin speaks no wire
	// protocol version this host supports; the message names both.
	ErrProtocol = errors.New("pluginclient: unsupported wire protocol version")
)

// ProtocolVersion is the newest wire contract version this host speaks.
const ProtocolVersion = wire.ProtocolVersion

// ProtocolVersions lists every wire contract version this host speaks;
// the handshake picks the newest one the plugin serves too.
func ProtocolVersions() []int { return wire.ProtocolVersions() }

// Config describes one plugin launch.
type Config struct {
	// Path is the plugin binary.
	Path string
	// Checksum is the SHA-256 the binary must have. Required.
	Checksum []byte
	// Logger receives the plugin's log lines and stray output. Nil discards.
	Logger hclog.Logger
	// Env holds extra KEY=VALUE variables. The plugin's environment is only
	// PATH, TZ, the gateway's PID, go-plugin's handshake variables and Env:
	// nothing of the gateway's own environment (such as a master key)
	// reaches it.
	Env []string
	// StartTimeout bounds the launch and handshake. Zero means 10s.
	StartTimeout time.Duration
}

// Plugin is one running plugin process. Its methods are safe for
// concurrent use. Once the process exits the Plugin is dead for good:
// start a new one.
type Plugin struct {
	client *plugin.Client
	wire   *wire.Client
	conn   *grpc.ClientConn
	info   provider.Info
	pid    int
}

// Start launches the plugin, performs the handshake and reads its Info.
// The returned error names the binary; errors.Is matches ErrChecksum when
// the binary does not match its pin.
func Start(ctx context.Context, cfg Config) (*Plugin, error) {
	if len(cfg.Checksum) != sha256.Size {
		return nil, fmt.Errorf("pluginclient: %s: a SHA-256 checksum is required", cfg.Path)
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	cmd := exec.Command(cfg.Path)
	cmd.Env = append(baseEnv(), cfg.Env...)
	out := lineWriter(log)
	errOut := &stderrTail{log: log}
	c, err := launch(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.HostPluginSet(),
		Cmd:              cmd,
		Stderr:           errOut,
		SecureConfig:     &plugin.SecureConfig{Checksum: cfg.Checksum, Hash: sha256.New()},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     cfg.StartTimeout,
		Logger:           log,
		SyncStdout:       out,
		SyncStderr:       out,
		GRPCDialOptions:  wire.DialOptions(),
	})
	if err != nil {
		err = classifyStart(cfg.Path, err)
		if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrChecksum) {
			err = errOut.explain(err)
		}
		return nil, err
	}
	p, err := dispense(ctx, c, cfg)
	if err != nil {
		c.Kill()
		return nil, errOut.explain(err)
	}
	return p, nil
}

func dispense(ctx context.Context, c *plugin.Client, cfg Config) (*Plugin, error) {
	proto, err := c.Client()
	if err != nil {
		return nil, classifyStart(cfg.Path, err)
	}
	raw, err := proto.Dispense(wire.PluginName)
	if err != nil {
		return nil, fmt.Errorf("pluginclient: %s: dispense: %w", cfg.Path, err)
	}
	wc, ok := raw.(*wire.Client)
	if !ok {
		return nil, fmt.Errorf("pluginclient: %s: unexpected plugin type %T", cfg.Path, raw)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	info, err := wc.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("pluginclient: %s: %w", cfg.Path, err)
	}
	p := &Plugin{client: c, wire: wc, info: info}
	if conn, ok := wc.Conn().(*grpc.ClientConn); ok {
		p.conn = conn
	}
	if rc := c.ReattachConfig(); rc != nil {
		p.pid = rc.Pid
	}
	return p, nil
}

// incompatibleVersion matches go-plugin v1.8's handshake error for a
// plugin serving no version the host listed ("incompatible API version
// with plugin. Plugin version: 2, Client versions: [1]"). go-plugin has no
// typed error for it; TestProtocolMismatchNamesBothVersions pins the text
// against the real library.
var incompatibleVersion = regexp.MustCompile(`incompatible API version with plugin\. Plugin version: (\d+)`)

func classifyStart(path string, err error) error {
	if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
		return fmt.Errorf("%w: %s does not match its pinned SHA-256; refusing to run it", ErrChecksum, path)
	}
	if m := incompatibleVersion.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("%w: %s speaks wire protocol version %s; this gateway speaks %s (rebuild the plugin against a compatible PipeCore SDK)",
			ErrProtocol, path, m[1], joinInts(ProtocolVersions()))
	}
	// go-plugin's start errors carry a long, generic explanation after
	// their first line.
	first, _, _ := strings.Cut(err.Error(), "\n")
	first = strings.TrimSuffix(strings.TrimSpace(first), ":")
	return &startError{msg: fmt.Sprintf("pluginclient: start %s: %s", path, first), err: err}
}

// startError is a start failure whose message keeps only the first line
// of go-plugin's error.
type startError struct {
	msg string
	err error
}

func (e *startError) Error() string { return e.msg }
func (e *startError) Unwrap() error { return e.err }

func joinInts(vs []int) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ", ")
}

// stderrTail receives the plugin's raw stderr lines (go-plugin's
// ClientConfig.Stderr). It keeps the last few for start errors, and logs
// the plain-text lines go-plugin would log only at debug level, such as
// what a plugin prints before it exits at start, at warn level.
type stderrTail struct {
	log   hclog.Logger
	mu    sync.Mutex
	lines []string
}

const stderrTailLines = 5

func (t *stderrTail) Write(p []byte) (int, error) {
	for _, line := range strings.Split(string(p), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		t.mu.Lock()
		t.lines = append(t.lines, line)
		if len(t.lines) > stderrTailLines {
			t.lines = t.lines[len(t.lines)-stderrTailLines:]
		}
		t.mu.Unlock()
		if !plainLine(line) {
			continue
		}
		t.log.Warn("plugin stderr", "line", line)
	}
	return len(p), nil
}

// plainLine reports whether go-plugin logs line at debug level: not JSON,
// no level prefix, not a panic.
func plainLine(line string) bool {
	if strings.HasPrefix(line, "{") || strings.HasPrefix(line, "panic:") {
		return false
	}
	for _, prefix := range []string{"[TRACE]", "[DEBUG]", "[INFO]", "[WARN]", "[ERROR]"} {
		if strings.HasPrefix(line, prefix) {
			return false
		}
	}
	return true
}

// explain appends what the plugin last wrote to stderr to a start error.
func (t *stderrTail) explain(err error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return err
	}
	return fmt.Errorf("%w; plugin stderr: %s", err, strings.Join(t.lines, " | "))
}

// Info returns the plugin's description, read at start.
func (p *Plugin) Info() provider.Info { return p.info }

// PID returns the plugin's process id.
func (p *Plugin) PID() int { return p.pid }

// Payments returns the payments capability, or nil when the plugin lacks it.
func (p *Plugin) Payments() payments.Provider {
	if pc := p.wire.Payments(); pc != nil {
		return pc
	}
	return nil
}

// Delivery returns the delivery capability, or nil.
func (p *Plugin) Delivery() delivery.Provider {
	if dc := p.wire.Delivery(); dc != nil {
		return dc
	}
	return nil
}

// Messaging returns the messaging capability, or nil.
func (p *Plugin) Messaging() messaging.Provider {
	if mc := p.wire.Messaging(); mc != nil {
		return mc
	}
	return nil
}

// WebhookParser returns the webhook parser, or nil when the plugin declares
// no webhook.
func (p *Plugin) WebhookParser() provider.WebhookParser {
	if p.info.Webhook == nil {
		return nil
	}
	return p.wire
}

// Ping checks that the plugin process answers its gRPC health service
// within ctx's deadline.
func (p *Plugin) Ping(ctx context.Context) error {
	if p.client.Exited() {
		return fmt.Errorf("%w: process exited", ErrUnavailable)
	}
	if p.conn == nil {
		return fmt.Errorf("%w: no connection", ErrUnavailable)
	}
	resp, err := healthpb.NewHealthClient(p.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "plugin"})
	if err != nil {
		return fmt.Errorf("%w: health check: %v", ErrUnavailable, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%w: health status %s", ErrUnavailable, resp.GetStatus())
	}
	return nil
}

// Exited reports whether the plugin process has exited.
func (p *Plugin) Exited() bool { return p.client.Exited() }

// killGrace bounds a graceful stop: go-plugin asks the plugin to shut down
// over gRPC without a deadline, which never returns from a hung (or
// stopped) process.
const killGrace = 3 * time.Second

// Kill stops the plugin process: gracefully first, then by force, within
// about killGrace even when the plugin is hung. It is safe to call more
// than once and on an exited plugin.
func (p *Plugin) Kill() {
	done := make(chan struct{})
	go func() { p.client.Kill(); close(done) }()
	t := time.NewTimer(killGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		if p.pid > 0 && !p.client.Exited() {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
		<-done
	}
}

func baseEnv() []string {
	env := []string{wire.EnvGatewayPID + "=" + strconv.Itoa(os.Getpid())}
	for _, k := range []string{"PATH", "TZ", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// lineWriter logs every line written to it at warn level: plugins should log
// through their structured logger, so stray output deserves attention.
func lineWriter(log hclog.Logger) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			log.Warn("plugin output", "line", sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return pw
}

// The launcher forks every plugin from one OS thread that is locked and
// never released, because Pdeathsig fires when the thread that forked the
// child exits, not the process. A goroutine-scoped fork would see plugins
// killed at random while the gateway is alive.
type launchReq struct {
	cfg  *plugin.ClientConfig
	done chan launchResult
}

type launchResult struct {
	client *plugin.Client
	err    error
}

var (
	launchOnce sync.Once
	launchCh   chan launchReq
)

func launch(cfg *plugin.ClientConfig) (*plugin.Client, error) {
	launchOnce.Do(func() {
		launchCh = make(chan launchReq)
		go launcher(launchCh)
	})
	req := launchReq{cfg: cfg, done: make(chan launchResult, 1)}
	launchCh <- req
	res := <-req.done
	return res.client, res.err
}

func launcher(reqs <-chan launchReq) {
	runtime.LockOSThread() // never unlocked: this goroutine never returns
	for r := range reqs {
		r.cfg.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		c := plugin.NewClient(r.cfg)
		if _, err := c.Start(); err != nil {
			c.Kill()
			r.done <- launchResult{err: err}
			continue
		}
		r.done <- launchResult{client: c}
	}
	select {}
}
