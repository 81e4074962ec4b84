package main

import (
	"context"
	"errors"
	"sync"
	"time"
)

// SendGrid has no idempotency header, so the plugin remembers each
// successful SendGrid send for memoTTL, per process, keyed by the account
// (tenant, base URL, API key digest) and the gateway's idempotency key. A
// retry inside that window gets the first receipt instead of a second
// email. After a plugin restart the gateway's own idempotency record is
// what protects against duplicates.
const (
	memoTTL = time.Hour
	memoMax = 10000
)

// errKeyReused is returned when an idempotency key comes back with a
// different message.
var errKeyReused = errors.New("email: idempotency key reused with a different message")

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
	done        chan struct{} // closed once val and err are set
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
// key with another fingerprint returns errKeyReused. A caller waiting for
// an in-flight call with the same key gives up when ctx ends.
func (m *memo[T]) do(ctx context.Context, key, fingerprint string, fn func() (T, error)) (T, error) {
	var zero T
	for {
		m.mu.Lock()
		now := m.now()
		e, found := m.entries[key]
		if found && !e.expires.IsZero() && !now.Before(e.expires) {
			delete(m.entries, key)
			found = false
		}
		if !found {
			break // m.mu still held
		}
		m.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
		if e.err != nil {
			continue // the first call failed and was forgotten: try again
		}
		if e.fingerprint != fingerprint {
			return zero, errKeyReused
		}
		return e.val, nil
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
