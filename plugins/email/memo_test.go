package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemo(t *testing.T) {
	ctx := context.Background()
	m := newMemo[string](time.Hour, 3)
	now := time.Unix(1_700_000_000, 0)
	m.now = func() time.Time { return now }
	calls := 0
	fn := func(v string, err error) func() (string, error) {
		return func() (string, error) { calls++; return v, err }
	}

	if v, err := m.do(ctx, "k", "fp", fn("a", nil)); v != "a" || err != nil {
		t.Fatalf("first = %q, %v", v, err)
	}
	if v, err := m.do(ctx, "k", "fp", fn("b", nil)); v != "a" || err != nil || calls != 1 {
		t.Fatalf("remembered = %q, %v after %d calls; want a after 1", v, err, calls)
	}
	if _, err := m.do(ctx, "k", "other", fn("c", nil)); !errors.Is(err, errKeyReused) {
		t.Fatalf("other fingerprint: err = %v, want errKeyReused", err)
	}

	// Failures are forgotten.
	boom := errors.New("boom")
	if _, err := m.do(ctx, "f", "fp", fn("", boom)); !errors.Is(err, boom) {
		t.Fatalf("failing call: %v", err)
	}
	if v, err := m.do(ctx, "f", "fp", fn("ok", nil)); v != "ok" || err != nil {
		t.Fatalf("retry after failure = %q, %v", v, err)
	}

	// Entries expire.
	now = now.Add(2 * time.Hour)
	if v, _ := m.do(ctx, "k", "other", fn("fresh", nil)); v != "fresh" {
		t.Fatalf("after expiry = %q, want a new call", v)
	}

	// The memo stays bounded.
	for _, k := range []string{"x", "y", "z", "w"} {
		_, _ = m.do(ctx, k, "fp", fn(k, nil))
	}
	m.mu.Lock()
	n := len(m.entries)
	m.mu.Unlock()
	if n > 3 {
		t.Fatalf("%d entries, want at most 3", n)
	}
}

func TestMemoConcurrent(t *testing.T) {
	m := newMemo[int](time.Hour, 100)
	var calls atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]int, 10)
	for i := range results {
		wg.Go(func() {
			v, err := m.do(context.Background(), "k", "fp", func() (int, error) {
				calls.Add(1)
				<-release
				return 42, nil
			})
			if err != nil {
				t.Errorf("do: %v", err)
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

	// A waiter gives up when its context ends.
	block, started := make(chan struct{}), make(chan struct{})
	defer close(block)
	go func() {
		_, _ = m.do(context.Background(), "slow", "fp", func() (int, error) { close(started); <-block; return 1, nil })
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.do(ctx, "slow", "fp", func() (int, error) { return 2, nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter: err = %v, want the context's deadline", err)
	}
}
