// Package logging builds the gateway's one structured logger and adapts it
// to the libraries that want their own logger type: hclog for go-plugin
// and fasthttp's Logger.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// New returns a logger writing to w. level is debug, info, warn or error
// (empty means info); format is json or text (empty means json).
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "", "info":
		lv = slog.LevelInfo
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("logging: unknown level %q (want debug, info, warn or error)", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("logging: unknown format %q (want json or text)", format)
}

// Printf adapts l to fasthttp's Logger interface, at warn level: fasthttp
// only logs connection-level errors.
type Printf struct{ L *slog.Logger }

// Printf implements fasthttp.Logger.
func (p Printf) Printf(format string, args ...any) {
	p.L.Warn(strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "fasthttp")
}
