package pluginhost

import (
	"context"
	"log/slog"
	"time"

	"github.com/pipecore/pipecore/core/internal/logging"
	"github.com/pipecore/pipecore/sdk/pluginclient"
)

// Process launches plugin binaries as child processes through
// pluginclient: checksum pinned, AutoMTLS, gRPC only, clean environment,
// killed with the gateway.
type Process struct {
	Logger       *slog.Logger
	StartTimeout time.Duration
}

// Launch implements Launcher.
func (p Process) Launch(ctx context.Context, b Binary) (Instance, error) {
	return pluginclient.Start(ctx, pluginclient.Config{
		Path:         b.Path,
		Checksum:     b.Checksum,
		Logger:       logging.HCLog(p.Logger, "plugin."+b.Name),
		StartTimeout: p.StartTimeout,
	})
}
