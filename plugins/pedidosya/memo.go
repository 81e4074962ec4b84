package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// The plugin remembers each successful create for memoTTL, per process,
// keyed by tenant, base URL, token and the gateway's idempotency key (at
// most memoMax entries). A retry inside that window gets the first
// shipment without calling PedidosYa; concurrent calls with one key wait
// for the first. Outside the window, or after a restart, the lookup by
// referenceId (see create) is what prevents a second shipping.
const (
	memoTTL = time.Hour
	memoMax = 10000
)

// errFingerprint is returned when a key is reused for a different request.
var errFingerprint = errors.New("pedidosya: idempotency key reused with a different request")

// memo runs a function at most once per key while its success is
// remembered. Failures are forgotten, so a retry calls again. It is safe
// for concurrent use.
type memo[T any] struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	entries map[string]*memoEntry[T]
	now     func() time.Time
}

type memoEntry[T any] struct {
	done        chan struct{} // closed when val and err are set
	fingerprint string
	val         T
	err         error
	expires     time.Time // zero while in flight
}

func newMemo[T any](ttl time.Duration, max int) *memo[T] {
	return &memo[T]{ttl: ttl, max: max, entries: make(map[string]*memoEntry[T]), now: time.Now}
}

// do returns the remembered result for key, or calls fn and remembers its
// result when it succeeds. fingerprint describes the request: reusing a
// key with another fingerprint is KindInvalid. A caller that gives up
// waiting for another's call gets a retryable error wrapping ctx.Err().
func (m *memo[T]) do(ctx context.Context, key, fingerprint string, fn func() (T, error)) (T, error) {
	var zero T
	for {
		m.mu.Lock()
		now := m.now()
		e, ok := m.entries[key]
		if ok && !e.expires.IsZero() && !now.Before(e.expires) {
			delete(m.entries, key)
			ok = false
		}
		if !ok {
			break // m.mu still held
		}
		m.mu.Unlock()
		if e.fingerprint != fingerprint {
			return zero, provider.Invalid(errFingerprint)
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return zero, provider.Retryable(fmt.Errorf("pedidosya: waiting for a concurrent create with the same idempotency key: %w", ctx.Err()))
		}
		if e.err == nil {
			return e.val, nil
		}
		// The first call failed and its entry is gone: try again.
	}
	m.prune(m.now())
	e := &memoEntry[T]{done: make(chan struct{}), fingerprint: fingerprint}
	m.entries[key] = e
	m.mu.Unlock()

	val, err := fn()
	m.mu.Lock()
	e.val, e.err = val, err
	if err != nil {
		if m.entries[key] == e {
			delete(m.entries, key)
		}
	} else {
		e.expires = m.now().Add(m.ttl)
	}
	m.mu.Unlock()
	close(e.done)
	return val, err
}

// prune drops expired entries and, at max, the oldest finished ones. The
// caller holds m.mu.
func (m *memo[T]) prune(now time.Time) {
	for k, e := range m.entries {
		if !e.expires.IsZero() && !now.Before(e.expires) {
			delete(m.entries, k)
		}
	}
	for len(m.entries) >= m.max {
		var oldest string
		var at time.Time
		for k, e := range m.entries {
			if !e.expires.IsZero() && (oldest == "" || e.expires.Before(at)) {
				oldest, at = k, e.expires
			}
		}
		if oldest == "" {
			return // every entry is in flight
		}
		delete(m.entries, oldest)
	}
}
