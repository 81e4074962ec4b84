package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

func TestMemo(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	m := newMemo[int](time.Minute, 3)
	m.now = func() time.Time { return now }
	var calls atomic.Int64
	fn := func(v int, err error) func() (int, error) {
		return func() (int, error) { calls.Add(1); return v, err }
	}

	if v, err := m.do(ctx, "a", "fp", fn(1, nil)); v != 1 || err != nil {
		t.Fatalf("first = %d, %v", v, err)
	}
	if v, err := m.do(ctx, "a", "fp", fn(2, nil)); v != 1 || err != nil || calls.Load() != 1 {
		t.Fatalf("repeat = %d, %v after %d calls", v, err, calls.Load())
	}
	if _, err := m.do(ctx, "a", "other", fn(3, nil)); provider.KindOf(err) != provider.KindInvalid || !errors.Is(err, errFingerprint) {
		t.Fatalf("other fingerprint: %v", err)
	}
	boom := provider.Retryable(errors.New("boom"))
	if _, err := m.do(ctx, "b", "fp", fn(0, boom)); !errors.Is(err, boom) {
		t.Fatalf("failure = %v", err)
	}
	if v, err := m.do(ctx, "b", "fp", fn(4, nil)); v != 4 || err != nil {
		t.Fatalf("after a failure = %d, %v; want a new call", v, err)
	}
	now = now.Add(2 * time.Minute)
	if v, _ := m.do(ctx, "a", "fp", fn(5, nil)); v != 5 {
		t.Fatalf("after expiry = %d, want a new call", v)
	}
	for _, k := range []string{"c", "d", "e", "f"} {
		if _, err := m.do(ctx, k, "fp", fn(6, nil)); err != nil {
			t.Fatal(err)
		}
	}
	m.mu.Lock()
	n := len(m.entries)
	m.mu.Unlock()
	if n > 3 {
		t.Fatalf("%d entries kept, max 3", n)
	}
}

func TestMemoConcurrent(t *testing.T) {
	m := newMemo[int](time.Minute, 10)
	release := make(chan struct{})
	var calls atomic.Int64
	var wg sync.WaitGroup
	res := make([]int, 10)
	for i := range res {
		wg.Go(func() {
			v, err := m.do(context.Background(), "k", "fp", func() (int, error) {
				calls.Add(1)
				<-release
				return 7, nil
			})
			if err != nil {
				t.Error(err)
			}
			res[i] = v
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("%d calls, want 1", calls.Load())
	}
	for _, v := range res {
		if v != 7 {
			t.Fatalf("results %v", res)
		}
	}

	// A waiter whose context ends gives up with a retryable error.
	block := make(chan struct{})
	defer close(block)
	go func() {
		_, _ = m.do(context.Background(), "slow", "fp", func() (int, error) { <-block; return 1, nil })
	}()
	for {
		m.mu.Lock()
		_, started := m.entries["slow"]
		m.mu.Unlock()
		if started {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := m.do(ctx, "slow", "fp", func() (int, error) { return 2, nil }); provider.KindOf(err) != provider.KindRetryable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter: %v", err)
	}
}
