package store

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// hold blocks the committer in a commit until the returned function is
// called, which waits for that commit.
func hold(t *testing.T, b *Bolt) (release func()) {
	t.Helper()
	started, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- b.batch(func(*bolt.Tx) error { close(started); <-unblock; return nil })
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// waitQueued waits until n functions are queued for the next commit.
func waitQueued(t *testing.T, b *Bolt, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Microsecond) {
		b.commit.mu.Lock()
		got := len(b.commit.queue)
		b.commit.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d functions queued, want %d", got, n)
		}
	}
}

func openCommitTest(t *testing.T, delay time.Duration) *Bolt {
	t.Helper()
	b, err := OpenBolt(filepath.Join(t.TempDir(), "pipecore.db"), BoltOptions{BatchDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// txLog records which write transaction each function ran in.
type txLog struct {
	mu  sync.Mutex
	ids map[int]bool
	ran []int // the functions' numbers, in the order they ran
}

func (l *txLog) fn(n int) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.ids == nil {
			l.ids = map[int]bool{}
		}
		l.ids[tx.ID()] = true
		l.ran = append(l.ran, n)
		return nil
	}
}

// TestCommitterFillsTheNextCommitWhileOneRuns: writes queued while a
// commit runs all go into the next commit, however long that commit takes
// and however the writes are spread over it (bbolt's db.Batch would cut a
// batch every BatchDelay and queue them up behind each other).
func TestCommitterFillsTheNextCommitWhileOneRuns(t *testing.T) {
	b := openCommitTest(t, time.Millisecond)
	release := hold(t, b)
	var log txLog
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := b.batch(log.fn(i)); err != nil {
				t.Error(err)
			}
		})
		time.Sleep(2 * time.Millisecond) // two windows apart
	}
	waitQueued(t, b, 20)
	release()
	wg.Wait()
	if len(log.ids) != 1 || len(log.ran) != 20 {
		t.Fatalf("20 writes queued during one commit ran %d times in %d commits, want 20 in 1", len(log.ran), len(log.ids))
	}
}

// TestCommitterKeepsOrderAndIsolatesFailures: functions of one commit run
// in the order they were queued; one that fails is taken out, the others
// run again without it and commit, and it runs alone and gets its own
// error; a panic is an error, not a crash.
func TestCommitterKeepsOrderAndIsolatesFailures(t *testing.T) {
	b := openCommitTest(t, time.Millisecond)
	release := hold(t, b)
	var log txLog
	errBoom := errors.New("boom")
	errs := make([]error, 6)
	var wg sync.WaitGroup
	for i := range 6 {
		fn := log.fn(i)
		switch i {
		case 2:
			fn = func(*bolt.Tx) error { return errBoom }
		case 4:
			fn = func(*bolt.Tx) error { panic("kaboom") }
		}
		wg.Go(func() { errs[i] = b.batch(fn) })
		waitQueued(t, b, i+1) // queued in this order
	}
	release()
	wg.Wait()
	for i, err := range errs {
		switch i {
		case 2:
			if !errors.Is(err, errBoom) {
				t.Errorf("failing function: %v", err)
			}
		case 4:
			if err == nil {
				t.Error("panicking function: no error")
			}
		default:
			if err != nil {
				t.Errorf("function %d: %v", i, err)
			}
		}
	}
	// The good ones ran in order: 0 1 3 5, then again as 0 1 3 5 after
	// each failure was taken out; the last run is the one that stuck.
	ran := log.ran
	if len(ran) < 4 {
		t.Fatalf("ran %v", ran)
	}
	if last := ran[len(ran)-4:]; last[0] != 0 || last[1] != 1 || last[2] != 3 || last[3] != 5 {
		t.Fatalf("the commit that stuck ran %v, want [0 1 3 5]", last)
	}
}

// TestCommitterClose: writes queued when Close is called are committed;
// writes after it fail with ErrClosed.
func TestCommitterClose(t *testing.T) {
	b, err := OpenBolt(filepath.Join(t.TempDir(), "pipecore.db"), BoltOptions{BatchDelay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	queued := make(chan error, 1)
	go func() {
		queued <- b.batch(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("probe"), []byte("1")) })
	}()
	time.Sleep(20 * time.Millisecond) // queued, waiting for its window
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-queued; err != nil {
		t.Fatalf("write queued before Close: %v", err)
	}
	if err := b.batch(func(*bolt.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close: %v, want ErrClosed", err)
	}
	if _, _, err := b.AcceptWebhook(context.Background(), InboxRecord{TenantID: "t", Provider: "p"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AcceptWebhook after Close: %v, want ErrClosed", err)
	}
}
