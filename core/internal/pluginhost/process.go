package pluginhost

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pipecore/pipecore/core/internal/logging"
	"github.com/pipecore/pipecore/sdk/pluginclient"
)

// Process launches plugin binaries as child processes through
// pluginclient: checksum re-checked at every launch, AutoMTLS, gRPC only,
// clean environment, killed with the gateway. Every line the plugin logs or
// writes to stderr reaches Logger tagged with plugin (its name) and
// plugin_version.
type Process struct {
	Logger       *slog.Logger
	StartTimeout time.Duration
}

// Launch implements Launcher.
func (p Process) Launch(ctx context.Context, b Binary) (Instance, error) {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tag := &versionTag{}
	tag.set(b.Version)
	log = slog.New(&versionHandler{inner: log.Handler(), tag: tag}).With("plugin", b.Name)
	pl, err := pluginclient.Start(ctx, pluginclient.Config{
		Path:         b.Path,
		Checksum:     b.Checksum,
		Logger:       logging.HCLog(log, "plugin."+b.Name),
		StartTimeout: p.StartTimeout,
	})
	if err != nil {
		return nil, err
	}
	tag.set(pl.Info().Version)
	return pl, nil
}

// versionTag holds the version a plugin's log lines are tagged with: the
// file name's until the plugin reports its own.
type versionTag struct{ v atomic.Pointer[string] }

func (t *versionTag) set(v string) {
	if v == "" {
		v = "unknown"
	}
	t.v.Store(&v)
}

func (t *versionTag) get() string { return *t.v.Load() }

// versionHandler adds plugin_version, read when each record is handled, to
// every record.
type versionHandler struct {
	inner slog.Handler
	tag   *versionTag
}

func (h *versionHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *versionHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(slog.String("plugin_version", h.tag.get()))
	return h.inner.Handle(ctx, r)
}

func (h *versionHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &versionHandler{inner: h.inner.WithAttrs(as), tag: h.tag}
}

func (h *versionHandler) WithGroup(name string) slog.Handler {
	return &versionHandler{inner: h.inner.WithGroup(name), tag: h.tag}
}
