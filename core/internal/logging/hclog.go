package logging

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// HCLog adapts a slog logger to hclog.Logger, the logger go-plugin wants.
// go-plugin re-levels each line a plugin writes and logs it here, so plugin
// logs land in the gateway's log with their level and fields.
func HCLog(l *slog.Logger, name string) hclog.Logger {
	return &hcl{l: l.With("logger", name), name: name}
}

type hcl struct {
	l       *slog.Logger
	name    string
	implied []any
}

var _ hclog.Logger = (*hcl)(nil)

func toSlog(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (h *hcl) Log(level hclog.Level, msg string, args ...any) {
	h.l.Log(context.Background(), toSlog(level), msg, args...)
}
func (h *hcl) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hcl) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hcl) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hcl) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hcl) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hcl) enabled(l slog.Level) bool { return h.l.Enabled(context.Background(), l) }
func (h *hcl) IsTrace() bool             { return h.enabled(slog.LevelDebug) }
func (h *hcl) IsDebug() bool             { return h.enabled(slog.LevelDebug) }
func (h *hcl) IsInfo() bool              { return h.enabled(slog.LevelInfo) }
func (h *hcl) IsWarn() bool              { return h.enabled(slog.LevelWarn) }
func (h *hcl) IsError() bool             { return h.enabled(slog.LevelError) }

func (h *hcl) ImpliedArgs() []any { return h.implied }

func (h *hcl) With(args ...any) hclog.Logger {
	return &hcl{l: h.l.With(args...), name: h.name, implied: append(append([]any(nil), h.implied...), args...)}
}

func (h *hcl) Name() string { return h.name }

func (h *hcl) Named(name string) hclog.Logger {
	n := name
	if h.name != "" {
		n = h.name + "." + name
	}
	return &hcl{l: h.l.With("logger", n), name: n, implied: h.implied}
}

func (h *hcl) ResetNamed(name string) hclog.Logger {
	return &hcl{l: h.l.With("logger", name), name: name, implied: h.implied}
}

// SetLevel is a no-op: the gateway's level is set once at start.
func (h *hcl) SetLevel(hclog.Level) {}

func (h *hcl) GetLevel() hclog.Level {
	switch {
	case h.IsDebug():
		return hclog.Debug
	case h.IsInfo():
		return hclog.Info
	case h.IsWarn():
		return hclog.Warn
	}
	return hclog.Error
}

func (h *hcl) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.Handler(), slog.LevelInfo)
}

func (h *hcl) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return h.StandardLogger(nil).Writer()
}
