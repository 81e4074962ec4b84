package provider

import (
	"context"
	"log/slog"
)

type logKey struct{}

// WithLogger returns a context that carries l; Log returns it. The plugin
// server installs a request-scoped logger before every call.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, logKey{}, l)
}

// Log returns the request-scoped logger, with tenant and request id
// attached, or slog.Default() outside a call. Log through it rather than to
// stdout or stderr: the gateway re-levels and tags every line.
func Log(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.Default()
}
