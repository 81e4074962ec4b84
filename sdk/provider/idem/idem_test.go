package idem

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// constant returns a fn for Do that counts its calls and answers v, err.
func constant[T any](calls *atomic.Int64, v T, err error) func() (T, error) {
	return func() (T, error) { calls.Add(1); return v, err }
}

func TestDo(t *testing.T) {
	ctx := context.Background()
	m := New[string](Options{Name: "acme", TTL: time.Minute, Max: 3})
	now := time.Unix(1_800_000_000, 0)
	m.now = func() time.Time { return now }
	var calls atomic.Int64

	if v, err := m.Do(ctx, "k", "fp", constant(&calls, "a", nil)); v != "a" || err != nil {
		t.Fatalf("first = %q, %v", v, err)
	}
	if v, err := m.Do(ctx, "k", "fp", constant(&calls, "b", nil)); v != "a" || err != nil || calls.Load() != 1 {
		t.Fatalf("remembered = %q, %v after %d calls; want a after 1", v, err, calls.Load())
	}

	_, err := m.Do(ctx, "k", "other", constant(&calls, "c", nil))
	if !errors.Is(err, ErrKeyReused) || provider.KindOf(err) != provider.KindInvalid {
		t.Fatalf("other fingerprint: err = %v (kind %s), want invalid ErrKeyReused", err, provider.KindOf(err))
	}
	if !strings.HasPrefix(err.Error(), "acme: ") {
		t.Errorf("message %q lacks the name", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("a reused key called fn (%d calls)", calls.Load())
	}

	// Failures are returned as is and forgotten.
	boom := provider.Retryable(errors.New("boom"))
	if _, err := m.Do(ctx, "f", "fp", constant(&calls, "", boom)); err != boom {
		t.Fatalf("failing call: %v", err)
	}
	if v, err := m.Do(ctx, "f", "fp", constant(&calls, "ok", nil)); v != "ok" || err != nil {
		t.Fatalf("retry after a failure = %q, %v; want a new call", v, err)
	}

	// An empty key is a key like any other.
	if v, _ := m.Do(ctx, "", "fp", constant(&calls, "empty", nil)); v != "empty" {
		t.Fatalf("empty key = %q", v)
	}
	if v, _ := m.Do(ctx, "", "fp", constant(&calls, "again", nil)); v != "empty" {
		t.Fatalf("empty key remembered = %q", v)
	}

	// Entries expire; then any fingerprint starts afresh.
	now = now.Add(2 * time.Minute)
	if v, _ := m.Do(ctx, "k", "other", constant(&calls, "fresh", nil)); v != "fresh" {
		t.Fatalf("after expiry = %q, want a new call", v)
	}
}

func TestBounded(t *testing.T) {
	ctx := context.Background()
	m := New[int](Options{TTL: time.Minute, Max: 2})
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	var calls atomic.Int64
	_, _ = m.Do(ctx, "a", "", constant(&calls, 1, nil))
	now = now.Add(time.Second)
	_, _ = m.Do(ctx, "b", "", constant(&calls, 2, nil))
	now = now.Add(time.Second)
	_, _ = m.Do(ctx, "c", "", constant(&calls, 3, nil)) // evicts a, the closest to expiry
	if n := len(m.entries); n > 2 {
		t.Fatalf("%d entries, want at most 2", n)
	}
	if v, _ := m.Do(ctx, "a", "", constant(&calls, 10, nil)); v != 10 {
		t.Errorf("evicted entry a answered %d, want a new call", v)
	}
	// a came back in b's place (b was the closest to expiry); c stayed.
	if v, _ := m.Do(ctx, "c", "", constant(&calls, 30, nil)); v != 3 {
		t.Errorf("entry c answered %d, want 3", v)
	}
}

func TestDefaults(t *testing.T) {
	m := New[int](Options{})
	if m.ttl != DefaultTTL || m.max != DefaultMax || m.prefix != "" {
		t.Fatalf("defaults: ttl %s, max %d, prefix %q", m.ttl, m.max, m.prefix)
	}
	_, err := m.Do(context.Background(), "k", "a", func() (int, error) { return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Do(context.Background(), "k", "b", func() (int, error) { return 2, nil })
	if err == nil || err.Error() != ErrKeyReused.Error() {
		t.Fatalf("unnamed memo: err = %v, want the bare ErrKeyReused message", err)
	}
}

func TestConcurrentCallersShareOneCall(t *testing.T) {
	m := New[int](Options{})
	var calls atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]int, 10)
	for i := range results {
		wg.Go(func() {
			v, err := m.Do(context.Background(), "k", "fp", func() (int, error) {
				calls.Add(1)
				<-release
				return 42, nil
			})
			if err != nil {
				t.Errorf("Do: %v", err)
			}
			results[i] = v
		})
	}
	time.Sleep(20 * time.Millisecond) // let the goroutines queue up; the result does not depend on it
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("%d calls, want 1", calls.Load())
	}
	for _, v := range results {
		if v != 42 {
			t.Fatalf("results %v", results)
		}
	}
}

// inFlight starts a call with key k that blocks until the returned
// channel gets its result, and waits until it holds the key.
func inFlight(t *testing.T, m *Memo[int], k, fingerprint string) chan<- error {
	t.Helper()
	finish := make(chan error)
	started := make(chan struct{})
	go func() {
		_, _ = m.Do(context.Background(), k, fingerprint, func() (int, error) {
			close(started)
			if err := <-finish; err != nil {
				return 0, err
			}
			return 1, nil
		})
	}()
	<-started
	return finish
}

func TestWaiterHonoursItsContext(t *testing.T) {
	m := New[int](Options{Name: "acme"})
	finish := inFlight(t, m, "slow", "fp")
	defer close(finish)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := m.Do(ctx, "slow", "fp", func() (int, error) { return 2, nil })
	if !errors.Is(err, context.DeadlineExceeded) || provider.KindOf(err) != provider.KindRetryable {
		t.Fatalf("waiter: err = %v (kind %s), want a retryable DeadlineExceeded", err, provider.KindOf(err))
	}
	if !strings.HasPrefix(err.Error(), "acme: ") {
		t.Errorf("message %q lacks the name", err)
	}
}

func TestOtherFingerprintWhileInFlight(t *testing.T) {
	t.Run("the first call succeeds: refused", func(t *testing.T) {
		m := New[int](Options{})
		finish := inFlight(t, m, "k", "a")
		errc := make(chan error, 1)
		go func() {
			_, err := m.Do(context.Background(), "k", "b", func() (int, error) { return 2, nil })
			errc <- err
		}()
		finish <- nil
		if err := <-errc; !errors.Is(err, ErrKeyReused) {
			t.Fatalf("err = %v, want ErrKeyReused", err)
		}
	})
	t.Run("the first call fails: the key is free", func(t *testing.T) {
		m := New[int](Options{})
		finish := inFlight(t, m, "k", "a")
		type result struct {
			v   int
			err error
		}
		res := make(chan result, 1)
		go func() {
			v, err := m.Do(context.Background(), "k", "b", func() (int, error) { return 2, nil })
			res <- result{v, err}
		}()
		time.Sleep(10 * time.Millisecond) // let the second caller wait; the result does not depend on it
		finish <- errors.New("boom")
		if r := <-res; r.v != 2 || r.err != nil {
			t.Fatalf("second caller = %d, %v; want its own call", r.v, r.err)
		}
	})
}
