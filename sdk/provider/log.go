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

type requestIDKey struct{}

// WithRequestID returns a context carrying the gateway's request id. The
// gateway sets it on every call; it reaches the plugin over the wire.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the gateway's request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
