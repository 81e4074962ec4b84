package pluginhost

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// InProcess launches providers living in the gateway's own process, for
// tests: the host cannot tell them from plugin binaries. Killing an
// instance makes its calls fail with ErrUnavailable, as a crashed plugin's
// would; the next launch returns a fresh instance around the same provider.
// Several versions of one provider are added with AddVersion.
type InProcess struct {
	mu        sync.Mutex
	providers map[string]inproc // by Binary.Path
	current   map[string]*Local // by name and by path
	launches  map[string]int    // by name and by path
	// Refuse, when set, makes Launch fail for a name (a tampered binary).
	Refuse func(name string) error
	// RefuseVersion, when set, makes Launch fail for a name and version
	// (a build that crashes at start).
	RefuseVersion func(name, version string) error
}

type inproc struct {
	p       provider.Provider
	version string // overrides the provider's Info.Version when set
}

// NewInProcess returns a launcher for providers by name.
func NewInProcess(providers map[string]provider.Provider) *InProcess {
	l := &InProcess{providers: map[string]inproc{}, current: map[string]*Local{}, launches: map[string]int{}}
	for name, p := range providers {
		l.providers["inprocess:"+name] = inproc{p: p}
	}
	return l
}

// AddVersion adds provider p as version of name and returns its Binary,
// named like a versioned plugin file.
func (l *InProcess) AddVersion(name, version string, p provider.Provider) Binary {
	path := "inprocess:" + BinaryPrefix + name + "@" + version
	l.Provide(path, version, p)
	sum := sha256.Sum256([]byte(path))
	return Binary{Name: name, Version: version, Path: path, Checksum: sum[:]}
}

// Provide makes p the provider launched for the binary at path (a file a
// test put in a plugins directory), reporting version when it is set.
func (l *InProcess) Provide(path, version string, p provider.Provider) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.providers[path] = inproc{p: p, version: version}
}

// Binaries returns pinned Binary entries for every provider added by
// NewInProcess (without a file name version), for NewWithBinaries.
func (l *InProcess) Binaries() []Binary {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Binary
	for path := range l.providers {
		name, ok := strings.CutPrefix(path, "inprocess:")
		if !ok || strings.HasPrefix(name, BinaryPrefix) {
			continue
		}
		out = append(out, Binary{Name: name, Path: path, Checksum: make([]byte, 32)})
	}
	sortBinaries(out)
	return out
}

// Launch implements Launcher.
func (l *InProcess) Launch(_ context.Context, b Binary) (Instance, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Refuse != nil {
		if err := l.Refuse(b.Name); err != nil {
			return nil, err
		}
	}
	ip, ok := l.providers[b.Path]
	if !ok {
		return nil, fmt.Errorf("inprocess: no provider at %q", b.Path)
	}
	version := ip.version
	if version == "" {
		version = ip.p.Info().Version
	}
	if l.RefuseVersion != nil {
		if err := l.RefuseVersion(b.Name, version); err != nil {
			return nil, err
		}
	}
	l.launches[b.Name]++
	l.launches[b.Path]++
	inst := &Local{p: ip.p, version: ip.version, pid: l.launches[b.Name]}
	l.current[b.Name] = inst
	l.current[b.Path] = inst
	return inst, nil
}

// Launches returns how many times name (or the binary at a path) was
// launched.
func (l *InProcess) Launches(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.launches[name]
}

// Current returns the latest instance of name (or of the binary at a
// path).
func (l *InProcess) Current(name string) *Local {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current[name]
}

// Local is an in-process Instance.
type Local struct {
	p       provider.Provider
	version string
	pid     int
	dead    atomic.Bool
	hung    atomic.Bool
}

// Info implements Instance; capabilities are filled from the interfaces
// the provider implements.
func (l *Local) Info() provider.Info {
	info := l.p.Info()
	if l.version != "" {
		info.Version = l.version
	}
	info.Capabilities = nil
	if _, ok := l.p.(payments.Provider); ok {
		info.Capabilities = append(info.Capabilities, provider.CapabilityPayments)
	}
	if _, ok := l.p.(delivery.Provider); ok {
		info.Capabilities = append(info.Capabilities, provider.CapabilityDelivery)
	}
	if _, ok := l.p.(messaging.Provider); ok {
		info.Capabilities = append(info.Capabilities, provider.CapabilityMessaging)
	}
	return info
}

// Payments implements Instance.
func (l *Local) Payments() payments.Provider {
	if p, ok := l.p.(payments.Provider); ok {
		return &localPayments{l: l, p: p}
	}
	return nil
}

// Delivery implements Instance.
func (l *Local) Delivery() delivery.Provider {
	p, _ := l.p.(delivery.Provider)
	return p
}

// Messaging implements Instance.
func (l *Local) Messaging() messaging.Provider {
	p, _ := l.p.(messaging.Provider)
	return p
}

// WebhookParser implements Instance.
func (l *Local) WebhookParser() provider.WebhookParser {
	p, _ := l.p.(provider.WebhookParser)
	return p
}

// Ping implements Instance. A hung instance does not answer before ctx
// ends.
func (l *Local) Ping(ctx context.Context) error {
	if l.hung.Load() {
		<-ctx.Done()
		return provider.Retryable(fmt.Errorf("%w: in-process plugin hung: %v", ErrUnavailable, ctx.Err()))
	}
	return l.alive()
}

// Exited implements Instance.
func (l *Local) Exited() bool { return l.dead.Load() }

// Kill implements Instance: the instance behaves as a crashed process.
func (l *Local) Kill() { l.dead.Store(true) }

// Hang makes the instance behave as a wedged process: payments calls and
// pings block until their context ends.
func (l *Local) Hang() { l.hung.Store(true) }

// PID implements Instance; it counts launches.
func (l *Local) PID() int { return l.pid }

// wait fails the call as a dead process would; a hung instance blocks
// until the caller's deadline first.
func (l *Local) wait(ctx context.Context) error {
	if l.hung.Load() && !l.dead.Load() {
		<-ctx.Done()
		return provider.Retryable(fmt.Errorf("plugin call: %w", ctx.Err()))
	}
	return l.alive()
}

func (l *Local) alive() error {
	if l.dead.Load() {
		return provider.Retryable(fmt.Errorf("%w: in-process plugin killed", ErrUnavailable))
	}
	return nil
}

type localPayments struct {
	l *Local
	p payments.Provider
}

func (lp *localPayments) Info() provider.Info { return lp.l.Info() }

func (lp *localPayments) CreatePayment(ctx context.Context, r payments.CreateRequest) (payments.Payment, error) {
	if err := lp.l.wait(ctx); err != nil {
		return payments.Payment{}, err
	}
	return lp.p.CreatePayment(ctx, r)
}

func (lp *localPayments) GetPayment(ctx context.Context, r payments.GetRequest) (payments.Payment, error) {
	if err := lp.l.wait(ctx); err != nil {
		return payments.Payment{}, err
	}
	return lp.p.GetPayment(ctx, r)
}

func (lp *localPayments) Refund(ctx context.Context, r payments.RefundRequest) (payments.Refund, error) {
	if err := lp.l.wait(ctx); err != nil {
		return payments.Refund{}, err
	}
	return lp.p.Refund(ctx, r)
}

func (lp *localPayments) Capture(ctx context.Context, r payments.CaptureRequest) (payments.Payment, error) {
	c, ok := lp.p.(payments.Capturer)
	if !ok {
		return payments.Payment{}, provider.ErrUnsupported
	}
	if err := lp.l.wait(ctx); err != nil {
		return payments.Payment{}, err
	}
	return c.Capture(ctx, r)
}

func (lp *localPayments) Cancel(ctx context.Context, r payments.CancelRequest) (payments.Payment, error) {
	c, ok := lp.p.(payments.Canceler)
	if !ok {
		return payments.Payment{}, provider.ErrUnsupported
	}
	if err := lp.l.wait(ctx); err != nil {
		return payments.Payment{}, err
	}
	return c.Cancel(ctx, r)
}

func (lp *localPayments) Confirm(ctx context.Context, r payments.ConfirmRequest) (payments.Payment, error) {
	c, ok := lp.p.(payments.Confirmer)
	if !ok {
		return payments.Payment{}, provider.ErrUnsupported
	}
	if err := lp.l.wait(ctx); err != nil {
		return payments.Payment{}, err
	}
	return c.Confirm(ctx, r)
}

func (lp *localPayments) Reconcile(ctx context.Context, r payments.GetRequest) (payments.Payment, error) {
	c, ok := lp.p.(payments.Reconciler)
	if !ok {
		return payments.Payment{}, provider.ErrUnsupported
	}
	if err := lp.l.wait(ctx); err != nil {
		return payments.Payment{}, err
	}
	return c.Reconcile(ctx, r)
}
