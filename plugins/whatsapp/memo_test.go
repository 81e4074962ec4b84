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
	t.Run("concurrent callers share one call", func(t *testing.T) {
		m := newMemo[int](time.Hour, 10)
		var calls atomic.Int32
		gate := make(chan struct{})
		var wg sync.WaitGroup
		results := make([]int, 8)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := m.do(ctx, "k", "fp", func() (int, error) {
					calls.Add(1)
					<-gate
					return 42, nil
				})
				if err != nil {
					t.Error(err)
				}
				results[i] = v
			}()
		}
		time.Sleep(20 * time.Millisecond)
		close(gate)
		wg.Wait()
		if calls.Load() != 1 {
			t.Errorf("%d calls, want 1", calls.Load())
		}
		for _, v := range results {
			if v != 42 {
				t.Errorf("result %d, want 42", v)
			}
		}
	})
	t.Run("failures are forgotten", func(t *testing.T) {
		m := newMemo[int](time.Hour, 10)
		boom := errors.New("boom")
		if _, err := m.do(ctx, "k", "fp", func() (int, error) { return 0, boom }); !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		v, err := m.do(ctx, "k", "fp", func() (int, error) { return 7, nil })
		if err != nil || v != 7 {
			t.Errorf("retry = %d, %v; want 7", v, err)
		}
	})
	t.Run("another fingerprint is refused as invalid", func(t *testing.T) {
		m := newMemo[int](time.Hour, 10)
		_, _ = m.do(ctx, "k", "a", func() (int, error) { return 1, nil })
		_, err := m.do(ctx, "k", "b", func() (int, error) { return 2, nil })
		if !errors.As(err, new(errFingerprint)) || provider.KindOf(err) != provider.KindInvalid {
			t.Errorf("err = %v (kind %s), want errFingerprint of kind invalid", err, provider.KindOf(err))
		}
	})
	t.Run("entries expire and the oldest is evicted", func(t *testing.T) {
		m := newMemo[int](time.Minute, 2)
		now := time.Unix(1000, 0)
		m.now = func() time.Time { return now }
		_, _ = m.do(ctx, "a", "", func() (int, error) { return 1, nil })
		now = now.Add(time.Second)
		_, _ = m.do(ctx, "b", "", func() (int, error) { return 2, nil })
		_, _ = m.do(ctx, "c", "", func() (int, error) { return 3, nil }) // evicts a
		if v, _ := m.do(ctx, "a", "", func() (int, error) { return 10, nil }); v != 10 {
			t.Errorf("evicted entry a answered %d, want a new call", v)
		}
		now = now.Add(2 * time.Minute)
		if v, _ := m.do(ctx, "c", "", func() (int, error) { return 30, nil }); v != 30 {
			t.Errorf("expired entry c answered %d, want a new call", v)
		}
	})
	t.Run("a waiting caller honours its context", func(t *testing.T) {
		m := newMemo[int](time.Hour, 10)
		gate := make(chan struct{})
		defer close(gate)
		started := make(chan struct{})
		go func() { _, _ = m.do(ctx, "k", "", func() (int, error) { close(started); <-gate; return 1, nil }) }()
		<-started
		c, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		_, err := m.do(c, "k", "", func() (int, error) { return 2, nil })
		if !errors.Is(err, context.DeadlineExceeded) || provider.KindOf(err) != provider.KindRetryable {
			t.Errorf("err = %v (kind %s), want a retryable DeadlineExceeded", err, provider.KindOf(err))
		}
	})
}
