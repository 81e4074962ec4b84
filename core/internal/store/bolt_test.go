package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/store/storetest"
)

// openBolt opens a bolt store in a fresh temporary directory and closes it
// when the test ends.
func openBolt(t testing.TB, opts store.BoltOptions) (*store.Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipecore.db")
	st, err := store.OpenBolt(path, opts)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return st, path
}

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		st, _ := openBolt(t, store.BoltOptions{})
		return st
	})
}

func TestBoltDataSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	st, path := openBolt(t, store.BoltOptions{})
	p := store.Payment{ID: "pay_1", TenantID: "t_a", Provider: "stripe", ProviderPaymentID: "pi_1", Status: "pending", Amount: 100, Currency: "EUR"}
	if err := st.CreatePayment(ctx, p); err != nil {
		t.Fatal(err)
	}
	key := store.IdemKey{TenantID: "t_a", Scope: "POST /v1/payments", Key: "k"}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	if _, _, err := st.BeginIdempotent(ctx, key, "h", "op-1", now, time.Hour, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteIdempotent(ctx, key, store.StoredResponse{Status: 201, Body: []byte(`{}`)}, now); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := st.AppendAudit(ctx, store.AuditRecord{TenantID: "t_a", Provider: "stripe", Action: "payments.create", Status: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer st2.Close()
	got, err := st2.PaymentByProviderID(ctx, "stripe", "pi_1")
	if err != nil || got.ID != "pay_1" || got.Amount != 100 {
		t.Fatalf("after reopen: payment %+v, err %v", got, err)
	}
	rec, out, err := st2.BeginIdempotent(ctx, key, "h", "op-2", now.Add(time.Second), time.Hour, time.Minute)
	if err != nil || out != store.IdemReplay || rec.Response == nil || rec.Response.Status != 201 {
		t.Fatalf("after reopen: idempotency %v %+v, err %v", out, rec, err)
	}
	// The audit sequence continues where it stopped.
	r, err := st2.AppendAudit(ctx, store.AuditRecord{TenantID: "t_a", Provider: "stripe", Action: "payments.get", Status: "ok"})
	if err != nil || r.Seq != 4 {
		t.Fatalf("after reopen: seq %d, err %v; want 4", r.Seq, err)
	}
}

// TestBoltSecondOpenIsLocked: bbolt's flock belongs to the open file
// description, so a second Open in the same process is refused exactly like
// one from another process would be.
func TestBoltSecondOpenIsLocked(t *testing.T) {
	st, path := openBolt(t, store.BoltOptions{})
	const timeout = 300 * time.Millisecond
	start := time.Now()
	st2, err := store.OpenBolt(path, store.BoltOptions{Timeout: timeout})
	elapsed := time.Since(start)
	if err == nil {
		st2.Close()
		t.Fatal("a second OpenBolt of a held file succeeded")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name the path %s", err, path)
	}
	if elapsed < timeout/2 || elapsed > timeout+2*time.Second {
		t.Fatalf("second open failed after %v, want about %v", elapsed, timeout)
	}
	// The failed open closed its own descriptor; the owner keeps its lock
	// and its file (flock, unlike fcntl locks, survives that close).
	ctx := context.Background()
	if err := st.CreatePayment(ctx, store.Payment{ID: "pay_1", TenantID: "t_a"}); err != nil {
		t.Fatalf("owner after a refused second open: %v", err)
	}
	if _, err := store.OpenBolt(path, store.BoltOptions{Timeout: 50 * time.Millisecond}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("third open: err = %v, want ErrLocked: the owner lost its lock", err)
	}
}

func TestBoltRefusesNewerSchema(t *testing.T) {
	st, path := openBolt(t, store.BoltOptions{})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	editBolt(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), []byte("2"))
	})
	_, err := store.OpenBolt(path, store.BoltOptions{})
	if !errors.Is(err, store.ErrSchema) {
		t.Fatalf("err = %v, want ErrSchema", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "schema version 2") || !strings.Contains(msg, path) {
		t.Fatalf("error %q should name the version and the path", msg)
	}
}

func TestBoltRefusesForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	editBolt(t, path, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("someone_else"))
		return err
	})
	_, err := store.OpenBolt(path, store.BoltOptions{})
	if !errors.Is(err, store.ErrSchema) {
		t.Fatalf("err = %v, want ErrSchema", err)
	}
}

func TestBoltFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "nested")
	path := filepath.Join(dir, "pipecore.db")
	st, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
}

func TestBoltOptionsValidate(t *testing.T) {
	tests := map[string]store.BoltOptions{
		"negative timeout":     {Timeout: -time.Second},
		"negative batch delay": {BatchDelay: -time.Millisecond},
		"negative batch size":  {BatchSize: -1},
	}
	for name, opts := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := store.OpenBolt(filepath.Join(t.TempDir(), "x.db"), opts)
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := store.OpenBolt("", store.BoltOptions{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("empty path: err = %v, want ErrInvalid", err)
	}
}

// TestBoltUncleanShutdownIsChecked: a file still marked open was not closed
// cleanly; opening it runs the consistency check and says so.
func TestBoltUncleanShutdownIsChecked(t *testing.T) {
	st, path := openBolt(t, store.BoltOptions{})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	editBolt(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("open"), []byte("12345"))
	})
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	st2, err := store.OpenBolt(path, store.BoltOptions{Logger: log})
	if err != nil {
		t.Fatalf("open after unclean shutdown: %v", err)
	}
	if err := st2.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "not closed cleanly") || !strings.Contains(logs.String(), "consistency check passed") {
		t.Fatalf("logs do not report the check:\n%s", logs.String())
	}

	// A clean close leaves no marker: the next open does not check.
	logs.Reset()
	st3, err := store.OpenBolt(path, store.BoltOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st3.Close()
	if strings.Contains(logs.String(), "not closed cleanly") {
		t.Fatalf("a cleanly closed file was checked:\n%s", logs.String())
	}
}

// editBolt changes a closed database directly, as an older or newer build
// (or another program) might have left it.
func editBolt(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// benchWriters is the number of concurrent writers in the benchmarks: 32 per
// GOMAXPROCS, about the in-flight requests of a busy gateway on this box.
const benchWriters = 32

var benchRequest = json.RawMessage(`{"amount":{"value":1999,"currency":"EUR"},"reference":"order-42","description":"two coffees and a croissant","customer":{"email":"[redacted]","name":"Ana"},"metadata":{"cart":"c_123","channel":"web"}}`)

func BenchmarkAppendAudit(b *testing.B) {
	st, _ := openBolt(b, store.BoltOptions{})
	ctx := context.Background()
	b.SetParallelism(benchWriters)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, err := st.AppendAudit(ctx, store.AuditRecord{
				TenantID: "t_bench", Provider: "stripe", Action: "payments.create", Status: "ok",
				Request: benchRequest, Response: benchRequest, LatencyMS: 123.4, CorrelationID: "corr_1", ResourceID: "pay_1",
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

func BenchmarkBeginIdempotent(b *testing.B) {
	st, _ := openBolt(b, store.BoltOptions{})
	ctx := context.Background()
	now := time.Now()
	var next atomic.Int64
	b.SetParallelism(benchWriters)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			key := store.IdemKey{TenantID: "t_bench", Scope: "POST /v1/payments", Key: fmt.Sprintf("key-%d", i)}
			_, out, err := st.BeginIdempotent(ctx, key, "hash", fmt.Sprintf("op-%d", i), now, 24*time.Hour, 30*time.Second)
			if err != nil || out != store.IdemNew {
				b.Errorf("outcome %v, err %v", out, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "begins/s")
}
