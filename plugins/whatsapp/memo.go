package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// Neither the Cloud API nor Twilio takes an idempotency key, so the plugin
// remembers the receipt of each successful send for memoTTL, per process,
// keyed by tenant, transport, sending account and the gateway's
// idempotency key. A retry inside that window gets the first receipt
// instead of a second message. The memory is bounded (memoMax entries, the
// oldest dropped first) and lost when the plugin restarts; the gateway's
// own idempotency record is what guarantees one Send per key, this is a
// second line of defence.
const (
	memoTTL = time.Hour
	memoMax = 10000
)

// memo runs a function at most once per key while its success is
// remembered. Failures are forgotten, so a retry calls again. It is safe
// for concurrent use; concurrent callers with one key wait for the first.
type memo[T any] struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	entries map[string]*memoEntry[T]
	now     func() time.Time
}

type memoEntry[T any] struct {
	done        chan struct{} // closed when val, err and fingerprint are set
	fingerprint string
	val         T
	err         error
	expires     time.Time
}

func newMemo[T any](ttl time.Duration, max int) *memo[T] {
	return &memo[T]{ttl: ttl, max: max, entries: make(map[string]*memoEntry[T]), now: time.Now}
}

// errFingerprint is in the chain of the KindInvalid error returned when a
// key is reused for a different request.
type errFingerprint struct{}

func (errFingerprint) Error() string {
	return "whatsapp: idempotency key reused with a different message"
}

// do returns the remembered result for key, or calls fn and remembers its
// result when it succeeds. fingerprint describes the request: reusing a
// key with another fingerprint is KindInvalid (wrapping errFingerprint).
// Waiting for a concurrent first call ends with ctx, as KindRetryable.
func (m *memo[T]) do(ctx context.Context, key, fingerprint string, fn func() (T, error)) (T, error) {
	var zero T
	m.mu.Lock()
	now := m.now()
	if e, ok := m.entries[key]; ok && (e.expires.IsZero() || now.Before(e.expires)) {
		m.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return zero, provider.Retryable(fmt.Errorf("whatsapp: waiting for a send with the same idempotency key: %w", ctx.Err()))
		}
		if e.err != nil { // the first call failed: try again
			return m.do(ctx, key, fingerprint, fn)
		}
		if e.fingerprint != fingerprint {
			return zero, provider.Invalid(errFingerprint{})
		}
		return e.val, nil
	}
	m.prune(now)
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

// prune drops expired entries and, above max, the oldest finished ones.
// The caller holds m.mu.
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
