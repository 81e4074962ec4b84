package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestBoltBatchRerun: when one function of a shared commit fails, bbolt
// rolls the commit back and runs the others again. The store's functions
// must come out of that as if they had run once: outputs reassigned, no
// sequence number lost or duplicated, the audit chain linked in the order
// of the commit that stuck, exactly one IdemNew.
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
		probeDone <- b.batch(func(*bolt.Tx) error { probeRuns.Add(1); return nil })
	}()
	time.Sleep(5 * time.Millisecond)

	const n = 40
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	key := IdemKey{TenantID: "t_a", Scope: "POST /v1/payments", Key: "k"}
	var wg sync.WaitGroup
	recs := make([]AuditRecord, n)
	outs := make([]IdemOutcome, n)
	errs := make([]error, 2*n)
	for i := range n {
		wg.Go(func() {
			recs[i], errs[i] = b.AppendAudit(ctx, AuditRecord{TenantID: "t_a", Action: fmt.Sprintf("a%d", i), Status: "ok"})
		})
		wg.Go(func() {
			_, out, err := b.BeginIdempotent(ctx, key, "h", fmt.Sprintf("op-%d", i), now, time.Hour, time.Minute)
			outs[i], errs[n+i] = out, err
		})
	}
	time.Sleep(20 * time.Millisecond)
	errBoom := errors.New("boom")
	if err := b.batch(func(*bolt.Tx) error { return errBoom }); !errors.Is(err, errBoom) {
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
	stored := map[uint64]AuditRecord{}
	for _, r := range list {
		stored[r.Seq] = r
	}
	for i, r := range recs {
		if r.Seq < 1 || r.Seq > n {
			t.Fatalf("caller %d was told seq %d, outside 1..%d", i, r.Seq, n)
		}
		if !reflect.DeepEqual(stored[r.Seq], r) {
			t.Fatalf("caller %d was told %+v\nstored %+v", i, r, stored[r.Seq])
		}
	}
	if v, err := b.VerifyAudit(ctx, "t_a"); err != nil || v != (AuditVerification{Records: n}) {
		t.Fatalf("VerifyAudit after a rerun = %+v, %v", v, err)
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

// TestBoltBatchRerunEvents is TestBoltBatchRerun for the event bridge: a
// rerun AcceptWebhook still stores each dedup key once and tells every
// caller the stored id, and a rerun RecordEvents records its events and
// deliveries once.
func TestBoltBatchRerunEvents(t *testing.T) {
	ctx := context.Background()
	b, err := OpenBolt(filepath.Join(t.TempDir(), "pipecore.db"), BoltOptions{BatchDelay: 100 * time.Millisecond, BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	if err := b.PutEndpoint(ctx, Endpoint{ID: "ep_1", TenantID: "t_a", Enabled: true, Ordered: true}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var (
		pending    [n]InboxRecord
		pendingErr [n]error
		setup      sync.WaitGroup
	)
	for i := range pending {
		setup.Go(func() {
			pending[i], _, pendingErr[i] = b.AcceptWebhook(ctx, InboxRecord{TenantID: "t_a", Provider: "stripe", DedupKey: fmt.Sprintf("pre-%d", i), ReceivedAt: now})
		})
	}
	setup.Wait()
	if err := errors.Join(pendingErr[:]...); err != nil {
		t.Fatal(err)
	}

	var probeRuns atomic.Int32
	probeDone := make(chan error, 1)
	go func() {
		probeDone <- b.batch(func(*bolt.Tx) error { probeRuns.Add(1); return nil })
	}()
	time.Sleep(5 * time.Millisecond)

	type accepted struct {
		r   InboxRecord
		dup bool
		err error
	}
	var wg sync.WaitGroup
	acc := make([]accepted, 2*n)
	recErrs := make([]error, n)
	for i := range n {
		for j := range 2 {
			wg.Go(func() {
				r, dup, err := b.AcceptWebhook(ctx, InboxRecord{TenantID: "t_a", Provider: "stripe", DedupKey: fmt.Sprintf("k%d", i), ReceivedAt: now})
				acc[2*i+j] = accepted{r, dup, err}
			})
		}
		wg.Go(func() {
			_, recErrs[i] = b.RecordEvents(ctx, EventBatch{TenantID: "t_a", InboxID: pending[i].ID, Now: now,
				Events: []Event{{Type: "payment.confirmed", Subject: "pi_1", Body: json.RawMessage(`{}`)}}})
		})
	}
	time.Sleep(20 * time.Millisecond)
	errBoom := errors.New("boom")
	if err := b.batch(func(*bolt.Tx) error { return errBoom }); !errors.Is(err, errBoom) {
		t.Fatalf("failing batch function: err = %v", err)
	}
	wg.Wait()
	if err := <-probeDone; err != nil {
		t.Fatal(err)
	}
	if probeRuns.Load() < 2 {
		t.Skipf("the failing function did not share a commit with the others (probe ran %d times)", probeRuns.Load())
	}
	for i := range n {
		a, c := acc[2*i], acc[2*i+1]
		if a.err != nil || c.err != nil || recErrs[i] != nil {
			t.Fatal(a.err, c.err, recErrs[i])
		}
		if a.dup == c.dup || a.r.ID != c.r.ID {
			t.Fatalf("k%d: dup %v/%v ids %s/%s; want one new, one duplicate, one id", i, a.dup, c.dup, a.r.ID, c.r.ID)
		}
	}
	inbox, _, err := b.ListInbox(ctx, "t_a", "", ListQuery{Limit: MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(inbox) != 2*n {
		t.Fatalf("%d inbox records, want %d", len(inbox), 2*n)
	}
	for i, r := range inbox {
		if r.Seq != uint64(2*n-i) {
			t.Fatalf("inbox position %d has seq %d: a gap or a duplicate", i, r.Seq)
		}
	}
	events, _, err := b.ListEvents(ctx, "t_a", EventQuery{Limit: MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != n {
		t.Fatalf("%d events, want %d", len(events), n)
	}
	// One subject, one ordered endpoint: exactly one delivery is pending.
	due, err := b.DueDeliveries(ctx, now.Add(time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 {
		t.Fatalf("%d deliveries due on an ordered endpoint, want 1", len(due))
	}
}

// TestInboxEncoding: the webhook body is stored once, byte for byte, next
// to a small JSON header, with few allocations on the ingress path.
func TestInboxEncoding(t *testing.T) {
	body := bytes.Repeat([]byte(`{"a":"<b>&"} `), 120)
	r := InboxRecord{ID: "wh_1", TenantID: "t_a", Provider: "stripe", DedupKey: "evt_1", Method: "POST", RequestURI: "/webhooks/t_a/stripe",
		Header: map[string][]string{"Content-Type": {"application/json"}, "Stripe-Signature": {"t=1,v1=abc"}}, Body: body,
		ReceivedAt: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), State: InboxPending}
	val, err := encodeInbox(&r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(val, body) != 1 || len(val) > len(body)+512 {
		t.Fatalf("value of %d bytes for a %d-byte body: the body is not stored verbatim once", len(val), len(body))
	}
	got, err := decodeInbox(val, 7, true)
	if err != nil {
		t.Fatal(err)
	}
	r.Seq = 7
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip %+v\nwant %+v", got, r)
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = encodeInbox(&r) }); allocs > 20 {
		t.Fatalf("encodeInbox makes %.0f allocations, want at most 20", allocs)
	}
	for _, bad := range [][]byte{nil, {0}, {2, 0}, {1, 9, '{'}, {1, 0xff}} {
		if _, err := decodeInbox(bad, 1, true); !errors.Is(err, errCorrupt) {
			t.Errorf("value %v: err = %v, want errCorrupt", bad, err)
		}
	}
}

func TestNewIDSortsAndIsUnique(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for range 10000 {
		id := newID("dlv_")
		if len(id) != len("dlv_")+26 || !strings.HasPrefix(id, "dlv_") || seen[id] {
			t.Fatalf("id %q: wrong shape or repeated", id)
		}
		// The first 12 characters after the prefix are 60 bits of time.
		if prev != "" && id[:4+12] < prev[:4+12] {
			t.Fatalf("id %q sorts before the earlier %q", id, prev)
		}
		seen[id], prev = true, id
	}
}

func TestListCursorKinds(t *testing.T) {
	c := encodeListCursor(cursorEvents, 42)
	if seq, err := decodeListCursor(cursorEvents, c); err != nil || seq != 42 {
		t.Fatalf("round trip: %d, %v", seq, err)
	}
	for _, bad := range []string{encodeListCursor(cursorInbox, 42), encodeAuditCursor(42), encodeListCursor(cursorEvents, 0), "x"} {
		if _, err := decodeListCursor(cursorEvents, bad); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("cursor %q: err = %v, want ErrInvalidQuery", bad, err)
		}
	}
}

// TestAuditTail: the fast paths of AppendAudit see the layout they expect,
// and read what encoding/json reads or decline.
func TestAuditTail(t *testing.T) {
	r := AuditRecord{TenantID: "t_a", Action: "x", Request: json.RawMessage(`{"hash":"x"}`), PrevHash: AuditGenesis, Hash: AuditGenesis}
	tmpl, err := encodeAudit(&r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(tmpl, placeholderTail) {
		t.Fatalf("encodeAudit no longer ends with the hashes (%s): the fast path is lost", tmpl)
	}
	prev, hash := strings.Repeat("1", 64), strings.Repeat("2", 64)
	v := withAuditHashes(tmpl, prev, hash)
	var got AuditRecord
	if err := json.Unmarshal(v, &got); err != nil || got.PrevHash != prev || got.Hash != hash || got.Action != "x" {
		t.Fatalf("spliced %s: %+v, %v", v, got, err)
	}
	if !bytes.HasSuffix(tmpl, placeholderTail) {
		t.Fatal("withAuditHashes changed its template")
	}

	tests := map[string]struct {
		v      string
		want   string
		wantOK bool
	}{
		"as encoded":              {v: string(v), want: hash, wantOK: true},
		"hash not last":           {v: `{"hash":"` + hash + `","prev_hash":"` + prev + `"}`},
		"another key ending hash": {v: `{"a":"b","x\"hash":"` + hash + `"}`},
		"upper case key":          {v: `{"a":"b","HASH":"` + hash + `"}`},
		"not hex":                 {v: `{"a":"b","hash":"` + strings.Repeat("z", 64) + `"}`},
		"short":                   {v: `"}`},
		"empty":                   {v: ``},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h, ok := tailAuditHash([]byte(tc.v))
			if ok != tc.wantOK || (ok && h != tc.want) {
				t.Fatalf("tailAuditHash = %q, %v; want %q, %v", h, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestInboxMetaRoundTrip: an inbox record's binary metadata decodes to
// the record, whatever its strings hold; records of schema 3 (JSON
// metadata) are still read; malformed metadata is errCorrupt.
func TestInboxMetaRoundTrip(t *testing.T) {
	odd := []string{"", "plain", `quote " and \ backslash`, "ctl \x00\x01\x1f\x7f tab\tnl\nret\r", "html <b>&amp;</b>",
		"utf8 é 漢字 😀 \u2028\u2029", "bad utf8 \xff\xfe\xc3", strings.Repeat("long ", 100)}
	when := time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC)
	body := []byte(`{"id":"evt_1"}`)
	for i, s := range odd {
		r := InboxRecord{ID: "wh_" + s, TenantID: s, Provider: "p" + s, DedupKey: s, Method: s, RequestURI: "/x?" + s,
			Header: map[string][]string{"X-A": {s, "b"}, s: {"v"}, "Nil": nil, "Empty": {}}, Body: body, ReceivedAt: when,
			CorrelationID: s, State: InboxQuarantined, Attempts: i * 1000, NextAttemptAt: when.Add(time.Hour), LastError: s,
			EventIDs: []string{"evt_1", s}, ProcessedAt: when.Add(-time.Second)}
		if i%2 == 1 {
			r.Header, r.EventIDs, r.ProcessedAt, r.DedupKey = nil, nil, time.Time{}, ""
		}
		val, err := encodeInbox(&r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeInbox(val, 9, true)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		r.Seq = 9
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%q:\n got %+v\nwant %+v", s, got, r)
		}
		if st, err := inboxStateOf(val); err != nil || st != r.State {
			t.Errorf("%q: state %q, %v", s, st, err)
		}
		meta, _, isJSON, err := splitInbox(val)
		if err != nil || isJSON {
			t.Fatalf("%q: split %v, JSON %v", s, err, isJSON)
		}
		for cut := range len(meta) {
			if err := decodeInboxMeta(meta[:cut], new(InboxRecord)); !errors.Is(err, errCorrupt) {
				t.Fatalf("%q: metadata cut at %d of %d: err = %v, want errCorrupt", s, cut, len(meta), err)
			}
		}
		if err := decodeInboxMeta(append(bytes.Clone(meta), 0), new(InboxRecord)); !errors.Is(err, errCorrupt) {
			t.Fatalf("%q: metadata with a trailing byte: err = %v", s, err)
		}
	}

	// A record as a schema 3 build wrote it.
	old := InboxRecord{ID: "wh_old", TenantID: "t_a", Provider: "stripe", DedupKey: "evt_1", Method: "POST", RequestURI: "/w",
		Header: map[string][]string{"Content-Type": {"application/json"}}, ReceivedAt: when, State: InboxProcessed,
		NextAttemptAt: when, EventIDs: []string{"evt_a"}, ProcessedAt: when.Add(time.Second)}
	meta, _ := json.Marshal(&old)
	v1 := appendBlob(nil, meta, body)
	got, err := decodeInbox(v1, 3, true)
	old.Seq, old.Body = 3, body
	if err != nil || !reflect.DeepEqual(got, old) {
		t.Fatalf("schema 3 record: %+v, %v\nwant %+v", got, err, old)
	}
	if st, err := inboxStateOf(v1); err != nil || st != InboxProcessed {
		t.Fatalf("schema 3 record state %q, %v", st, err)
	}
}
