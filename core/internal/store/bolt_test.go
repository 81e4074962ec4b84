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
	"runtime"
	"strconv"
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

// TestBoltEventsSurviveReopen: dedup keys, sequences, the due indexes and
// ordered queues are all on disk.
func TestBoltEventsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	st, path := openBolt(t, store.BoltOptions{})
	hook := store.InboxRecord{TenantID: "t_a", Provider: "stripe", DedupKey: "evt_1", Body: []byte(`{"id":"evt_1"}`), ReceivedAt: now}
	first, _, err := st.AcceptWebhook(ctx, hook)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutEndpoint(ctx, store.Endpoint{ID: "ep_1", TenantID: "t_a", Enabled: true, Ordered: true}); err != nil {
		t.Fatal(err)
	}
	ds, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_a", Now: now, Events: []store.Event{
		{ID: "evt_a", Type: "payment.confirmed", Subject: "pi_1", Body: json.RawMessage(`{"n":1}`)},
		{ID: "evt_b", Type: "payment.refunded", Subject: "pi_1", Body: json.RawMessage(`{"n":2}`)},
	}})
	if err != nil || len(ds) != 2 || ds[1].State != store.DeliveryBlocked {
		t.Fatalf("record: %+v, %v", ds, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if got, dup, err := st2.AcceptWebhook(ctx, hook); err != nil || !dup || got.ID != first.ID {
		t.Fatalf("after reopen: dup %v id %s err %v; want a duplicate of %s", dup, got.ID, err, first.ID)
	}
	due, err := st2.DueInbox(ctx, now, 10)
	if err != nil || len(due) != 1 || due[0].ID != first.ID || string(due[0].Body) != `{"id":"evt_1"}` {
		t.Fatalf("due inbox after reopen: %+v, %v", due, err)
	}
	second, _, err := st2.AcceptWebhook(ctx, store.InboxRecord{TenantID: "t_a", Provider: "stripe", DedupKey: "evt_2", ReceivedAt: now})
	if err != nil || second.Seq != 2 {
		t.Fatalf("inbox seq after reopen: %d, %v; want 2", second.Seq, err)
	}
	dd, err := st2.DueDeliveries(ctx, now, 10)
	if err != nil || len(dd) != 1 || dd[0].ID != ds[0].ID {
		t.Fatalf("due deliveries after reopen: %+v, %v", dd, err)
	}
	d := dd[0]
	d.State, d.Attempts = store.DeliveryDelivered, 1
	if err := st2.RecordAttempt(ctx, d, store.Attempt{N: 1, At: now.Add(time.Second), StatusCode: 200}); err != nil {
		t.Fatal(err)
	}
	if got, err := st2.GetDelivery(ctx, "t_a", ds[1].ID); err != nil || got.State != store.DeliveryPending {
		t.Fatalf("the queued delivery after reopen: %+v, %v", got, err)
	}
	more, err := st2.RecordEvents(ctx, store.EventBatch{TenantID: "t_a", Now: now, Events: []store.Event{
		{ID: "evt_c", Type: "payment.confirmed", Subject: "pi_1", Body: json.RawMessage(`{}`)},
	}})
	if err != nil || len(more) != 1 || more[0].State != store.DeliveryBlocked {
		t.Fatalf("a new delivery behind the queue after reopen: %+v, %v", more, err)
	}
	if e, err := st2.GetEvent(ctx, "t_a", "evt_c"); err != nil || e.Seq != 3 {
		t.Fatalf("event seq after reopen: %d, %v; want 3", e.Seq, err)
	}
}

// TestBoltKeyPartLimits: the delivery queue key combines the tenant, the
// endpoint id and the event subject, so the bbolt store bounds each to 1 KiB.
func TestBoltKeyPartLimits(t *testing.T) {
	ctx := context.Background()
	st, _ := openBolt(t, store.BoltOptions{})
	long, limit := strings.Repeat("x", 1025), strings.Repeat("x", 1024)
	ep := func(tenant, id string) store.Endpoint {
		return store.Endpoint{ID: id, TenantID: tenant, Enabled: true, Ordered: true}
	}
	batch := func(tenant, subject string) store.EventBatch {
		return store.EventBatch{TenantID: tenant, Events: []store.Event{{Type: "payment.confirmed", Subject: subject, Body: json.RawMessage(`{}`)}}}
	}
	tests := map[string]struct {
		call    func() error
		wantErr error
	}{
		"endpoint id over the limit": {call: func() error { return st.PutEndpoint(ctx, ep("t_a", long)) }, wantErr: store.ErrInvalid},
		"tenant id over the limit":   {call: func() error { return st.PutEndpoint(ctx, ep(long, "ep_1")) }, wantErr: store.ErrInvalid},
		"subject over the limit": {call: func() error {
			_, err := st.RecordEvents(ctx, batch("t_a", long))
			return err
		}, wantErr: store.ErrInvalid},
		"batch tenant over the limit": {call: func() error {
			_, err := st.RecordEvents(ctx, batch(long, "pi_1"))
			return err
		}, wantErr: store.ErrInvalid},
		"every part at the limit": {call: func() error {
			if err := st.PutEndpoint(ctx, ep(limit, limit)); err != nil {
				return err
			}
			ds, err := st.RecordEvents(ctx, batch(limit, limit))
			if err == nil && len(ds) != 1 {
				return fmt.Errorf("%d deliveries, want 1", len(ds))
			}
			return err
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
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
	newer := strconv.Itoa(store.SchemaVersion + 1)
	editBolt(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), []byte(newer))
	})
	_, err := store.OpenBolt(path, store.BoltOptions{})
	if !errors.Is(err, store.ErrSchema) {
		t.Fatalf("err = %v, want ErrSchema", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "schema version "+newer) || !strings.Contains(msg, path) {
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
func editBolt(t testing.TB, path string, fn func(*bolt.Tx) error) {
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

// webhookBody is a 1.5 KB provider webhook, about a Stripe
// payment_intent.succeeded.
var webhookBody = func() []byte {
	b := []byte(`{"id":"evt_3PqXyZ2eZvKYlo2C1a2b3c4d","object":"event","api_version":"2024-06-20","type":"payment_intent.succeeded","data":{"object":{"id":"pi_3PqXyZ2eZvKYlo2C","object":"payment_intent","amount":1999,"currency":"eur","status":"succeeded","metadata":{"pipecore_payment_id":"pay_01J9","tenant":"t_bench"},"description":"`)
	for len(b) < 1500-4 {
		b = append(b, 'x')
	}
	return append(b, `"}}}`...)
}()

// BenchmarkAcceptWebhook is the ingress hot path: 64 concurrent webhooks
// (whatever GOMAXPROCS is), each with its own dedup key, group committed.
func BenchmarkAcceptWebhook(b *testing.B) {
	st, _ := openBolt(b, store.BoltOptions{})
	ctx := context.Background()
	header := map[string][]string{"Content-Type": {"application/json"}, "Stripe-Signature": {"t=1732700000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"}}
	var next atomic.Int64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.SetBytes(int64(len(webhookBody)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, dup, err := st.AcceptWebhook(ctx, store.InboxRecord{
				TenantID: "t_bench", Provider: "stripe", DedupKey: "evt_" + strconv.FormatInt(next.Add(1), 10),
				Method: "POST", RequestURI: "/webhooks/t_bench/stripe", Header: header, Body: webhookBody,
			})
			if err != nil || dup {
				b.Errorf("dup %v, err %v", dup, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkDueDeliveries reads pages of due deliveries, as the dispatcher
// does, out of 10,000 pending ones of four endpoints.
func BenchmarkDueDeliveries(b *testing.B) {
	st, _ := openBolt(b, store.BoltOptions{})
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for i := range 4 {
		e := store.Endpoint{ID: fmt.Sprintf("ep_%d", i), TenantID: "t_bench", URL: "https://t.example/hook", Secrets: []string{"whsec_x"}, Enabled: true}
		if err := st.PutEndpoint(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	for batch := range 25 {
		evs := make([]store.Event, 100)
		for i := range evs {
			evs[i] = store.Event{Type: "payment.confirmed", Provider: "stripe", Subject: fmt.Sprintf("pi_%d_%d", batch, i), Body: benchRequest}
		}
		if _, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_bench", Events: evs, Now: now.Add(time.Duration(batch) * time.Second)}); err != nil {
			b.Fatal(err)
		}
	}
	for _, limit := range []int{100, 1000} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			b.ReportAllocs()
			records := 0
			start := time.Now()
			for b.Loop() {
				ds, err := st.DueDeliveries(ctx, now.Add(time.Hour), limit)
				if err != nil || len(ds) != limit {
					b.Fatalf("%d deliveries, err %v", len(ds), err)
				}
				records += len(ds)
			}
			b.ReportMetric(float64(records)/time.Since(start).Seconds(), "records/s")
		})
	}
}
