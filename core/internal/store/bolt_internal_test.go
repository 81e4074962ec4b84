package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestBoltBatchRerun: when one function of a shared commit fails, bbolt
// rolls the commit back and runs the others again. The store's functions
// must come out of that as if they had run once: outputs reassigned, no
// sequence number lost or duplicated, exactly one IdemNew.
func TestBoltBatchRerun(t *testing.T) {
	ctx := context.Background()
	b, err := OpenBolt(filepath.Join(t.TempDir(), "pipecore.db"), BoltOptions{BatchDelay: 100 * time.Millisecond, BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// The probe is queued first, the failure last: if they share a commit,
	// the probe runs again.
	var probeRuns atomic.Int32
	probeDone := make(chan error, 1)
	go func() {
		probeDone <- b.db.Batch(func(*bolt.Tx) error { probeRuns.Add(1); return nil })
	}()
	time.Sleep(5 * time.Millisecond)

	const n = 40
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	key := IdemKey{TenantID: "t_a", Scope: "POST /v1/payments", Key: "k"}
	var wg sync.WaitGroup
	seqs := make([]uint64, n)
	outs := make([]IdemOutcome, n)
	errs := make([]error, 2*n)
	for i := range n {
		wg.Go(func() {
			r, err := b.AppendAudit(ctx, AuditRecord{TenantID: "t_a", Action: fmt.Sprintf("a%d", i), Status: "ok"})
			seqs[i], errs[i] = r.Seq, err
		})
		wg.Go(func() {
			_, out, err := b.BeginIdempotent(ctx, key, "h", fmt.Sprintf("op-%d", i), now, time.Hour, time.Minute)
			outs[i], errs[n+i] = out, err
		})
	}
	time.Sleep(20 * time.Millisecond)
	errBoom := errors.New("boom")
	if err := b.db.Batch(func(*bolt.Tx) error { return errBoom }); !errors.Is(err, errBoom) {
		t.Fatalf("failing batch function: err = %v", err)
	}
	wg.Wait()
	if err := <-probeDone; err != nil {
		t.Fatal(err)
	}
	if probeRuns.Load() < 2 {
		t.Skipf("the failing function did not share a commit with the others (probe ran %d times)", probeRuns.Load())
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	list, _, err := b.ListAudit(ctx, "t_a", AuditQuery{Limit: MaxAuditLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("%d audit records, want %d", len(list), n)
	}
	actionAt := map[uint64]string{}
	for _, r := range list {
		actionAt[r.Seq] = r.Action
	}
	for i, seq := range seqs {
		if seq < 1 || seq > n {
			t.Fatalf("caller %d was told seq %d, outside 1..%d", i, seq, n)
		}
		if actionAt[seq] != fmt.Sprintf("a%d", i) {
			t.Fatalf("caller %d was told seq %d, which holds %q", i, seq, actionAt[seq])
		}
	}
	news := 0
	for _, out := range outs {
		if out == IdemNew {
			news++
		}
	}
	if news != 1 {
		t.Fatalf("%d callers got IdemNew after a rerun, want 1", news)
	}
}

func TestAuditCursorRoundTrip(t *testing.T) {
	for _, seq := range []uint64{1, 255, 1 << 40, 1<<64 - 1} {
		got, err := decodeAuditCursor(encodeAuditCursor(seq))
		if err != nil || got != seq {
			t.Errorf("seq %d: decoded %d, err %v", seq, got, err)
		}
	}
	for _, bad := range []string{"", "=", encodeAuditCursor(0), "AQ", "AgAAAAAAAAAB"} {
		if _, err := decodeAuditCursor(bad); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("cursor %q: err = %v, want ErrInvalidQuery", bad, err)
		}
	}
}

func TestKeysAreUnambiguous(t *testing.T) {
	a := idemKey(IdemKey{TenantID: "t", Scope: "ab", Key: "c"})
	b := idemKey(IdemKey{TenantID: "t", Scope: "a", Key: "bc"})
	if string(a) == string(b) {
		t.Fatal("different idempotency keys encode the same")
	}
	if string(paymentKey("t_a", "x")) == string(paymentKey("t_", "ax")) {
		t.Fatal("different payment keys encode the same")
	}
	early, late := timeKey(nil, time.Unix(-5, 0)), timeKey(nil, time.Unix(5, 0))
	if string(early) >= string(late) {
		t.Fatal("time keys do not sort by time")
	}
}
