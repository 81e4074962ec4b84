package pluginhost

import (
	"context"
	"fmt"
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
type InProcess struct {
	mu        sync.Mutex
	providers map[string]provider.Provider
	current   map[string]*Local
	launches  map[string]int
	// Refuse, when set, makes Launch fail for a name (a tampered binary).
	Refuse func(name string) error
}

// NewInProcess returns a launcher for providers by name.
func NewInProcess(providers map[string]provider.Provider) *InProcess {
	return &InProcess{providers: providers, current: map[string]*Local{}, launches: map[string]int{}}
}

// Binaries returns pinned Binary entries for every provider, for
// NewWithBinaries.
func (l *InProcess) Binaries() []Binary {
	var out []Binary
	for name := range l.providers {
		out = append(out, Binary{Name: name, Path: "inprocess:" + name, Checksum: make([]byte, 32)})
	}
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
	p, ok := l.providers[b.Name]
	if !ok {
		return nil, fmt.Errorf("inprocess: no provider %q", b.Name)
	}
	l.launches[b.Name]++
	inst := &Local{p: p, pid: l.launches[b.Name]}
	l.current[b.Name] = inst
	return inst, nil
}

// Launches returns how many times name was launched.
func (l *InProcess) Launches(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.launches[name]
}

// Current returns the latest instance of name.
func (l *InProcess) Current(name string) *Local {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current[name]
}

// Local is an in-process Instance.
type Local struct {
	p    provider.Provider
	pid  int
	dead atomic.Bool
}

// Info implements Instance; capabilities are filled from the interfaces
// the provider implements.
func (l *Local) Info() provider.Info {
	info := l.p.Info()
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

// Ping implements Instance.
func (l *Local) Ping(context.Context) error { return l.alive() }

// Exited implements Instance.
func (l *Local) Exited() bool { return l.dead.Load() }

// Kill implements Instance: the instance behaves as a crashed process.
func (l *Local) Kill() { l.dead.Store(true) }

// PID implements Instance; it counts launches.
func (l *Local) PID() int { return l.pid }

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
	if err := lp.l.alive(); err != nil {
		return payments.Payment{}, err
	}
	return lp.p.CreatePayment(ctx, r)
}

func (lp *localPayments) GetPayment(ctx context.Context, r payments.GetRequest) (payments.Payment, error) {
	if err := lp.l.alive(); err != nil {
		return payments.Payment{}, err
	}
	return lp.p.GetPayment(ctx, r)
}

func (lp *localPayments) Refund(ctx context.Context, r payments.RefundRequest) (payments.Refund, error) {
	if err := lp.l.alive(); err != nil {
		return payments.Refund{}, err
	}
	return lp.p.Refund(ctx, r)
}

func (lp *localPayments) Capture(ctx context.Context, r payments.CaptureRequest) (payments.Payment, error) {
	c, ok := lp.p.(payments.Capturer)
	if !ok {
		return payments.Payment{}, provider.ErrUnsupported
	}
	if err := lp.l.alive(); err != nil {
		return payments.Payment{}, err
	}
	return c.Capture(ctx, r)
}

func (lp *localPayments) Cancel(ctx context.Context, r payments.CancelRequest) (payments.Payment, error) {
	c, ok := lp.p.(payments.Canceler)
	if !ok {
		return payments.Payment{}, provider.ErrUnsupported
	}
	if err := lp.l.alive(); err != nil {
		return payments.Payment{}, err
	}
	return c.Cancel(ctx, r)
}

func (lp *localPayments) Confirm(ctx context.Context, r payments.ConfirmRequest) (payments.Payment, error) {
	c, ok := lp.p.(payments.Confirmer)
	if !ok {
		return payments.Payment{}, provider.ErrUnsupported
	}
	if err := lp.l.alive(); err != nil {
		return payments.Payment{}, err
	}
	return c.Confirm(ctx, r)
}
