// Package idem gives a plugin a memory of its recent successful calls, for
// providers that take no idempotency key: a retry with the same key gets
// the first answer instead of a second charge, shipment or message.
//
// A [Memo] runs a function at most once per key while its success is
// remembered. Concurrent callers with one key wait for the first call and
// share its result; a failure is forgotten at once, so a retry calls again.
// A key reused for a different request (another fingerprint) is refused.
// Successes are remembered for a TTL, at most Max of them (the oldest
// dropped first).
//
// The memory is per process: it is lost when the plugin restarts, where
// the gateway's own idempotency record is what prevents duplicates. Key
// the memo per tenant and credential (and whatever else selects the
// provider account) so that two accounts never share an entry.
package idem

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// Defaults of [Options].
const (
	DefaultTTL = time.Hour
	DefaultMax = 10000
)

// ErrKeyReused is in the chain of the KindInvalid error [Memo.Do] returns
// when a key comes back with a different fingerprint.
var ErrKeyReused = errors.New("idempotency key reused with a different request")

// Options configure a [Memo]. The zero value means the defaults.
type Options struct {
	// Name prefixes error messages, e.g. "transbank" gives "transbank:
	// idempotency key reused with a different request". Empty: no prefix.
	Name string
	// TTL is how long a success is remembered; zero means DefaultTTL.
	TTL time.Duration
	// Max bounds the entries kept; zero means DefaultMax. Past it, the
	// successes closest to expiry are dropped; calls in flight never are.
	Max int
}

// Memo remembers successful results of type T per key. It is safe for
// concurrent use. Create it with [New].
type Memo[T any] struct {
	prefix string
	ttl    time.Duration
	max    int
	now    func() time.Time // replaced by tests

	mu      sync.Mutex
	entries map[string]*entry[T]
}

type entry[T any] struct {
	done        chan struct{} // closed once val and err are set
	fingerprint string
	val         T
	err         error
	expires     time.Time // zero while in flight
}

// New returns an empty memo.
func New[T any](o Options) *Memo[T] {
	m := &Memo[T]{ttl: o.TTL, max: o.Max, now: time.Now, entries: make(map[string]*entry[T])}
	if o.Name != "" {
		m.prefix = o.Name + ": "
	}
	if m.ttl <= 0 {
		m.ttl = DefaultTTL
	}
	if m.max <= 0 {
		m.max = DefaultMax
	}
	return m
}

// Do returns the remembered result for key, or calls fn and remembers its
// result when it succeeds (a failure is returned as is and forgotten).
// fingerprint describes the request made with key, e.g. a digest of the
// body sent.
//
// A caller that finds a call with key in flight waits for it: its success
// is then shared, its failure makes this caller try again. Once a success
// is known, a different fingerprint is KindInvalid with [ErrKeyReused] in
// the chain. A caller whose ctx ends while waiting gets a KindRetryable
// error wrapping ctx.Err(). fn is never called with the memo locked and is
// responsible for its own context.
func (m *Memo[T]) Do(ctx context.Context, key, fingerprint string, fn func() (T, error)) (T, error) {
	var zero T
	for {
		m.mu.Lock()
		e, found := m.entries[key]
		if found && !e.expires.IsZero() && !m.now().Before(e.expires) {
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
			return zero, provider.Retryable(fmt.Errorf("%swaiting for a concurrent call with the same idempotency key: %w", m.prefix, ctx.Err()))
		}
		if e.err != nil {
			continue // the first call failed and was forgotten: try again
		}
		if e.fingerprint != fingerprint {
			return zero, provider.Invalid(fmt.Errorf("%s%w", m.prefix, ErrKeyReused))
		}
		return e.val, nil
	}
	m.prune(m.now())
	e := &entry[T]{done: make(chan struct{}), fingerprint: fingerprint}
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

// prune drops expired entries and, at max, the finished ones closest to
// expiry. The caller holds m.mu.
func (m *Memo[T]) prune(now time.Time) {
	for k, e := range m.entries {
		if !e.expires.IsZero() && !now.Before(e.expires) {
			delete(m.entries, k)
		}
	}
	for len(m.entries) >= m.max {
		var oldest string
		var at time.Time
		found := false
		for k, e := range m.entries {
			if !e.expires.IsZero() && (!found || e.expires.Before(at)) {
				oldest, at, found = k, e.expires, true
			}
		}
		if !found {
			return // every entry is in flight
		}
		delete(m.entries, oldest)
	}
}
