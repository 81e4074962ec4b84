// Package httpserver owns the gateway's fasthttp server: timeouts, size
// limits, request ids, panic recovery, access logs and graceful shutdown.
// Routing and handlers live in package api.
package httpserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/logging"
)

// Config configures the server. Zero values mean the documented defaults.
type Config struct {
	// ReadTimeout bounds reading a whole request. Zero means 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response. Zero means 30s.
	WriteTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections. Zero means 120s.
	IdleTimeout time.Duration
	// MaxBodyBytes caps every request body; larger ones get 413. Zero
	// means 5 MiB (the webhook cap; the API applies its own, lower cap).
	MaxBodyBytes int
	// MaxHeaderBytes caps the request line and headers; larger ones get
	// 431. Zero means 64 KiB.
	MaxHeaderBytes int
	// MaxConns caps concurrent connections. Zero means 10000.
	MaxConns int
	Logger   *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 5 << 20
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.MaxConns == 0 {
		c.MaxConns = 10000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is the gateway's HTTP server.
type Server struct {
	srv *fasthttp.Server
	log *slog.Logger
}

// New returns a server running h behind the request-id, recovery and
// access-log middleware.
func New(cfg Config, h fasthttp.RequestHandler) *Server {
	cfg.setDefaults()
	s := &Server{log: cfg.Logger}
	s.srv = &fasthttp.Server{
		Name:                          "pipecore",
		Handler:                       s.requestID(s.recover(s.accessLog(h))),
		ErrorHandler:                  s.errorHandler,
		ReadTimeout:                   cfg.ReadTimeout,
		WriteTimeout:                  cfg.WriteTimeout,
		IdleTimeout:                   cfg.IdleTimeout,
		MaxRequestBodySize:            cfg.MaxBodyBytes,
		ReadBufferSize:                cfg.MaxHeaderBytes,
		Concurrency:                   cfg.MaxConns,
		DisablePreParseMultipartForm:  true,
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		Logger:                        logging.Printf{L: cfg.Logger},
	}
	return s
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.ShutdownWithContext(ctx) }

// errorHandler answers requests fasthttp rejects before any handler runs.
func (s *Server) errorHandler(ctx *fasthttp.RequestCtx, err error) {
	var netErr net.Error
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small):
		WriteError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "request headers exceed the limit")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		WriteError(ctx, fasthttp.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds the limit")
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		WriteError(ctx, fasthttp.StatusRequestTimeout, "request_timeout", "request not received in time")
	default:
		WriteError(ctx, fasthttp.StatusBadRequest, "bad_request", "malformed HTTP request")
	}
	s.log.Debug("rejected request", "error", err)
}

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

// RequestID returns the request's id, set by the middleware.
func RequestID(ctx *fasthttp.RequestCtx) string {
	id, _ := ctx.UserValue(requestIDKey).(string)
	return id
}

const requestIDKey = "pipecore.request_id"

func (s *Server) requestID(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		id := string(ctx.Request.Header.Peek(RequestIDHeader))
		if !validRequestID(id) {
			id = newRequestID()
		}
		ctx.SetUserValue(requestIDKey, id)
		ctx.Response.Header.Set(RequestIDHeader, id)
		next(ctx)
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

func (s *Server) recover(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("handler panic", "request_id", RequestID(ctx), "path", string(ctx.Path()),
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				ctx.ResetBody()
				WriteError(ctx, fasthttp.StatusInternalServerError, "internal_error", "internal error")
			}
		}()
		next(ctx)
	}
}

func (s *Server) accessLog(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !s.log.Enabled(context.Background(), slog.LevelInfo) {
			// Skip the clock and the attributes' copies the handler
			// would drop anyway (the gateway logs at warn by default).
			next(ctx)
			return
		}
		start := time.Now()
		next(ctx)
		s.log.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.String("request_id", RequestID(ctx)),
			slog.String("method", string(ctx.Method())),
			slog.String("path", string(ctx.Path())),
			slog.Int("status", ctx.Response.StatusCode()),
			slog.Float64("ms", float64(time.Since(start).Microseconds())/1000),
		)
	}
}

// WriteError writes the gateway's error shape:
// {"error":{"code":"…","message":"…"}}.
func WriteError(ctx *fasthttp.RequestCtx, status int, code, message string) {
	WriteJSON(ctx, status, ErrorBody{Error: ErrorDetail{Code: code, Message: message}})
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes one error.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Retryable is set when the same request may succeed later.
	Retryable bool `json:"retryable,omitempty"`
	// ProviderCode is the provider's own code, e.g. "card_declined".
	ProviderCode string `json:"provider_code,omitempty"`
}
