// Package providerserver runs a provider as a PipeCore plugin. It is the one
// call in a plugin's main:
//
//	func main() { providerserver.Serve(newProvider()) }
//
// Serve hides go-plugin and gRPC: the handshake, the gRPC server with its
// message limits and error mapping, hclog-shaped JSON logging on stderr that
// the gateway re-levels, and a watchdog that exits the plugin when the
// gateway dies.
package providerserver

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/pipecore/pipecore/sdk/internal/wire"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Option changes how Serve runs. The zero set of options is right for
// production.
type Option func(*options)

type options struct {
	level  slog.Level
	stderr io.Writer
}

// WithLogLevel sets the lowest level the plugin logs. The default is Info;
// the gateway filters again by its own level.
func WithLogLevel(l slog.Level) Option { return func(o *options) { o.level = l } }

// Serve runs p as a gateway plugin and returns only after the gateway closes
// the connection. It exits the process with status 1 if p implements no
// capability or its Info is invalid, or if the binary is run by hand rather
// than launched by the gateway.
func Serve(p provider.Provider, opts ...Option) {
	o := options{level: slog.LevelInfo, stderr: os.Stderr}
	for _, opt := range opts {
		opt(&o)
	}
	// The logger must capture the real stderr before plugin.Serve swaps it.
	log := NewLogger(o.stderr, o.level)
	info := wire.InfoOf(p)
	if err := info.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "pipecore plugin:", err)
		os.Exit(1)
	}
	if len(info.Capabilities) == 0 {
		fmt.Fprintf(os.Stderr, "pipecore plugin %s: implements no capability (payments.Provider, delivery.Provider or messaging.Provider)\n", info.Name)
		os.Exit(1)
	}
	if os.Getenv(wire.Handshake.MagicCookieKey) != wire.Handshake.MagicCookieValue {
		fmt.Fprintf(os.Stderr, "pipecore-plugin-%s %s: this binary is a PipeCore plugin; the gateway launches it (put it in plugins_dir and list it in SHA256SUMS)\n", info.Name, info.Version)
		os.Exit(1)
	}
	watchParent(log)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.PluginSet(p, log),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, wire.ServerOptions(log)...)...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{Name: info.Name, Output: o.stderr, JSONFormat: true, Level: hclog.Info}),
	})
}

// watchParent exits the plugin when the gateway that launched it is gone,
// so a SIGKILLed gateway leaves no orphans even where Pdeathsig did not
// apply. The gateway passes its PID; without it the parent at start counts.
func watchParent(log *slog.Logger) {
	want, err := strconv.Atoi(os.Getenv(wire.EnvGatewayPID))
	if err != nil || want <= 1 {
		want = os.Getppid()
	}
	if os.Getppid() != want {
		log.Error("gateway already gone at start; exiting", "gateway_pid", want)
		os.Exit(0)
	}
	go func() {
		for range time.Tick(200 * time.Millisecond) {
			if os.Getppid() != want {
				os.Exit(0)
			}
		}
	}()
}

// NewLogger returns a slog logger writing JSON lines in the shape go-plugin
// parses on the host (@level, @message, @timestamp), so the gateway keeps
// the level and fields of every line.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.LevelKey:
				return slog.String("@level", strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			}
			return a
		},
	})
	return slog.New(h)
}
