// Package fakehttp is what the exported fakes of provider APIs
// (plugins/*/…fake) share: an httptest server bound to 127.0.0.1 that
// records every request it gets, fails the next n on demand, holds
// answers back, and posts webhooks synchronously. Each fake adds its
// provider's wire format: routes, auth checks, error bodies and webhook
// signatures.
//
// A fake embeds a *Server as an unexported field, creates it with [New],
// starts it with [Server.Start] and, in its handler, calls the pieces in
// the order its provider needs, e.g.:
//
//	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
//	s.api.Record(r, body)
//	if err := s.api.Wait(r.Context(), start); err != nil { ... }
//	if status, ok := s.api.TakeFailure(); ok { writeError(w, status, ...); return }
//
// A Server is safe for concurrent use; Close stops everything, held-back
// answers and webhooks in flight included.
package fakehttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// DefaultWebhookTimeout bounds one webhook POST when Options leaves it
// zero.
const DefaultWebhookTimeout = 10 * time.Second

// ErrClosed is what [Server.Wait] returns when the server closes.
var ErrClosed = errors.New("fakehttp: server closed")

// Request is one request a fake received, as received.
type Request struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// Options configure a [Server]. The zero value means the defaults.
type Options struct {
	// Name prefixes errors, e.g. "metafake: webhook answered HTTP 500".
	Name string
	// PathWithQuery records a request's path with its query
	// ("/v3/shippings?referenceId=R"); by default only the path.
	PathWithQuery bool
	// WebhookTimeout bounds one webhook POST; zero means
	// DefaultWebhookTimeout.
	WebhookTimeout time.Duration
}

// Server is a fake's HTTP side. Create it with [New] and [Server.Start].
type Server struct {
	name      string
	withQuery bool
	srv       *httptest.Server
	hooks     *http.Client
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	mu         sync.Mutex
	requests   []Request
	failStatus int
	failLeft   int
	delay      time.Duration
	delaySet   chan struct{} // closed and replaced by SetDelay
}

// New returns a server that is not listening yet; call Start.
func New(o Options) *Server {
	timeout := o.WebhookTimeout
	if timeout <= 0 {
		timeout = DefaultWebhookTimeout
	}
	return &Server{
		name:      o.Name,
		withQuery: o.PathWithQuery,
		hooks:     &http.Client{Timeout: timeout},
		done:      make(chan struct{}),
		delaySet:  make(chan struct{}),
	}
}

// Start serves h on 127.0.0.1. The fake must be ready to serve: its
// handler may run as soon as Start begins; URL is valid in it.
func (s *Server) Start(h http.Handler) {
	s.srv = httptest.NewUnstartedServer(h)
	s.srv.Start()
}

// URL is the server's base URL ("http://127.0.0.1:<port>"), for a
// tenant's base_url setting.
func (s *Server) URL() string { return s.srv.URL }

// Close ends held-back answers (Wait returns ErrClosed) and webhooks in
// flight, then stops the server and waits for its handlers to return. It
// is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		if s.srv != nil {
			s.srv.Close()
		}
		s.hooks.CloseIdleConnections()
	})
}

// Record appends r, with body (already read), to the requests Requests
// returns.
func (s *Server) Record(r *http.Request, body []byte) {
	path := r.URL.Path
	if s.withQuery {
		path = r.URL.RequestURI()
	}
	req := Request{Method: r.Method, Path: path, Header: r.Header.Clone(), Body: bytes.Clone(body)}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
}

// Requests returns a copy of every request recorded, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = Request{Method: r.Method, Path: r.Path, Header: r.Header.Clone(), Body: bytes.Clone(r.Body)}
	}
	return out
}

// FailNext makes the next n calls of TakeFailure report status; n <= 0
// cancels a pending failure.
func (s *Server) FailNext(status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failStatus, s.failLeft = status, max(n, 0)
}

// TakeFailure spends one of the failures FailNext asked for and returns
// its status; false when none is pending.
func (s *Server) TakeFailure() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failLeft <= 0 {
		return 0, false
	}
	s.failLeft--
	return s.failStatus, true
}

// SetDelay makes Wait hold answers back by d; zero releases them. Answers
// already held back follow the new delay.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
	close(s.delaySet)
	s.delaySet = make(chan struct{})
}

// Wait returns once the delay set with SetDelay has passed since start
// (at once without one), following SetDelay changes. It returns ctx.Err()
// when ctx ends first (the client gave up: answer nothing) and ErrClosed
// when the server closes first.
func (s *Server) Wait(ctx context.Context, start time.Time) error {
	for {
		s.mu.Lock()
		left := s.delay - time.Since(start)
		changed := s.delaySet
		s.mu.Unlock()
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(left)
		select {
		case <-t.C:
			return nil
		case <-changed:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.done:
			t.Stop()
			return ErrClosed
		}
	}
}

// PostWebhook POSTs body with header to url and waits for the answer; a
// failure to deliver it or a non-2xx answer is an error. Close aborts it.
func (s *Server) PostWebhook(url string, header http.Header, body []byte) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: webhook request: %w", s.name, err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := s.hooks.Do(req)
	if err != nil {
		return fmt.Errorf("%s: post webhook: %w", s.name, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: webhook answered HTTP %d: %s", s.name, resp.StatusCode, bytes.TrimSpace(answer))
	}
	return nil
}

// CloneJSON returns a deep copy of v made by a JSON round trip, for a fake
// to hand out what it decoded from requests (maps, slices, strings,
// float64, bool, nil) without sharing it. v must survive the round trip:
// a value JSON cannot encode gives the zero value.
func CloneJSON[T any](v T) T {
	var out T
	if b, err := json.Marshal(v); err == nil {
		_ = json.Unmarshal(b, &out)
	}
	return out
}
