package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pipecore/pipecore/core/internal/store"
)

// auditIn is the i-th record of a test log.
func auditIn(tenant string, i int) store.AuditRecord {
	return store.AuditRecord{
		TenantID: tenant, Provider: "stripe", Action: "payments.create", Status: "ok",
		Request:   json.RawMessage(fmt.Sprintf(`{"n":%d,"amount":{"value":1999,"currency":"EUR"},"note":"<&>"}`, i)),
		Response:  json.RawMessage(`{"id":"pi_1","status":"succeeded"}`),
		LatencyMS: 12.25, Time: time.Date(2026, 11, 27, 10, 0, i, 0, time.UTC),
		CorrelationID: fmt.Sprintf("corr_%d", i), ResourceID: fmt.Sprintf("pay_%d", i%7),
	}
}

// appendAudit appends n records per tenant from 32 goroutines, so that
// commits are shared.
func appendAudit(t testing.TB, st store.Store, n int, tenants ...string) {
	t.Helper()
	ctx := context.Background()
	next := make(chan store.AuditRecord)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for r := range next {
				if _, err := st.AppendAudit(ctx, r); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range n {
		for _, tenant := range tenants {
			next <- auditIn(tenant, i)
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// copyFile copies the closed database at src to a new temporary file.
func copyFile(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "pipecore.db")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// auditBucket is a tenant's audit log in a raw transaction.
func auditBucket(t testing.TB, tx *bolt.Tx, tenant string) *bolt.Bucket {
	t.Helper()
	b := tx.Bucket([]byte("audit")).Bucket([]byte(tenant))
	if b == nil {
		t.Fatalf("no audit log of %s", tenant)
	}
	return b
}

// editRecord rewrites one stored record as a JSON object.
func editRecord(t testing.TB, tx *bolt.Tx, tenant string, seq uint64, edit func(m map[string]json.RawMessage)) error {
	t.Helper()
	b := auditBucket(t, tx, tenant)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b.Get(seqKey(seq)), &m); err != nil {
		return err
	}
	edit(m)
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return b.Put(seqKey(seq), v)
}

// rehash rewrites one stored record through edit and gives it a hash that
// matches its new content, as a forger who knows the encoding would.
func rehash(t testing.TB, tx *bolt.Tx, tenant string, seq uint64, edit func(r *store.AuditRecord)) error {
	t.Helper()
	b := auditBucket(t, tx, tenant)
	var r store.AuditRecord
	if err := json.Unmarshal(b.Get(seqKey(seq)), &r); err != nil {
		return err
	}
	r.Seq = seq
	edit(&r)
	r.Hash = store.AuditHash(&r)
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(seqKey(seq), v)
}

// TestBoltAuditTamper: a log of 100 records verifies; an edit made straight
// in the file, with the gateway stopped, is reported at the right seq.
func TestBoltAuditTamper(t *testing.T) {
	ctx := context.Background()
	st, path := openBolt(t, store.BoltOptions{})
	appendAudit(t, st, 100, "t_a", "t_b")
	for _, tenant := range []string{"t_a", "t_b"} {
		if v, err := st.VerifyAudit(ctx, tenant); err != nil || v != (store.AuditVerification{Records: 100}) {
			t.Fatalf("%s before tampering: %+v, %v", tenant, v, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	tests := map[string]struct {
		tamper      func(t *testing.T, tx *bolt.Tx) error
		wantBroken  uint64
		wantRecords int
		wantReason  string
	}{
		"a field changed in the JSON": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				return editRecord(t, tx, "t_a", 37, func(m map[string]json.RawMessage) { m["status"] = json.RawMessage(`"forged"`) })
			},
			wantBroken: 37, wantRecords: 100, wantReason: "record 37 does not match its hash",
		},
		"the request payload changed": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				return editRecord(t, tx, "t_a", 37, func(m map[string]json.RawMessage) {
					m["request"] = bytes.Replace(m["request"], []byte(`"value":1999`), []byte(`"value":1`), 1)
				})
			},
			wantBroken: 37, wantRecords: 100, wantReason: "does not match its hash",
		},
		"only whitespace added to the request": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				b := auditBucket(t, tx, "t_a")
				v := bytes.Replace(b.Get(seqKey(37)), []byte(`{"n":`), []byte(`{ "n": `), 1)
				return b.Put(seqKey(37), v)
			},
			wantBroken: 37, wantRecords: 100, wantReason: "does not match its hash",
		},
		"the first record changed": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				return editRecord(t, tx, "t_a", 1, func(m map[string]json.RawMessage) { m["latency_ms"] = json.RawMessage(`1`) })
			},
			wantBroken: 1, wantRecords: 100, wantReason: "record 1 does not match its hash",
		},
		"the last record changed": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				return editRecord(t, tx, "t_a", 100, func(m map[string]json.RawMessage) { m["time"] = json.RawMessage(`"2020-01-01T00:00:00Z"`) })
			},
			wantBroken: 100, wantRecords: 100, wantReason: "record 100 does not match its hash",
		},
		"a change with its hash recomputed breaks the next link": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				return rehash(t, tx, "t_a", 37, func(r *store.AuditRecord) { r.Status = "forged" })
			},
			wantBroken: 38, wantRecords: 100, wantReason: "record 38 does not chain to record 37",
		},
		"a prev_hash changed with the hash recomputed": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				return rehash(t, tx, "t_a", 37, func(r *store.AuditRecord) { r.PrevHash = store.AuditGenesis })
			},
			wantBroken: 37, wantRecords: 100, wantReason: "record 37 does not chain to record 36",
		},
		"a record deleted": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				return auditBucket(t, tx, "t_a").Delete(seqKey(37))
			},
			wantBroken: 37, wantRecords: 99, wantReason: "record 37 is missing",
		},
		"two records deleted": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				b := auditBucket(t, tx, "t_a")
				return errors.Join(b.Delete(seqKey(37)), b.Delete(seqKey(38)))
			},
			wantBroken: 37, wantRecords: 98, wantReason: "records 37 to 38 are missing",
		},
		"the first record deleted": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				return auditBucket(t, tx, "t_a").Delete(seqKey(1))
			},
			wantBroken: 1, wantRecords: 99, wantReason: "record 1 is missing",
		},
		"the last records deleted": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				b := auditBucket(t, tx, "t_a")
				return errors.Join(b.Delete(seqKey(99)), b.Delete(seqKey(100)))
			},
			wantBroken: 99, wantRecords: 98, wantReason: "records 99 to 100 are missing at the end of the log",
		},
		"two records swapped": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				b := auditBucket(t, tx, "t_a")
				a, c := bytes.Clone(b.Get(seqKey(37))), bytes.Clone(b.Get(seqKey(38)))
				return errors.Join(b.Put(seqKey(37), c), b.Put(seqKey(38), a))
			},
			wantBroken: 37, wantRecords: 100, wantReason: "record 37 does not match its hash",
		},
		"another tenant's record put in": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				return auditBucket(t, tx, "t_a").Put(seqKey(37), bytes.Clone(auditBucket(t, tx, "t_b").Get(seqKey(37))))
			},
			wantBroken: 37, wantRecords: 100, wantReason: "record 37 names another tenant",
		},
		"a record that is not JSON": {
			tamper: func(t *testing.T, tx *bolt.Tx) error {
				return auditBucket(t, tx, "t_a").Put(seqKey(37), []byte("garbage"))
			},
			wantBroken: 37, wantRecords: 100, wantReason: "record 37 does not decode",
		},
		"nothing changed": {
			tamper:      func(*testing.T, *bolt.Tx) error { return nil },
			wantRecords: 100,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := copyFile(t, path)
			editBolt(t, p, func(tx *bolt.Tx) error { return tc.tamper(t, tx) })
			st, err := store.OpenBolt(p, store.BoltOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			v, err := st.VerifyAudit(ctx, "t_a")
			if err != nil {
				t.Fatal(err)
			}
			if v.FirstBroken != tc.wantBroken || v.Records != tc.wantRecords || !strings.Contains(v.Reason, tc.wantReason) || v.OK() != (tc.wantBroken == 0) {
				t.Fatalf("VerifyAudit = %+v, want first broken %d of %d records, reason containing %q", v, tc.wantBroken, tc.wantRecords, tc.wantReason)
			}
			if tc.wantBroken == 0 && v.Reason != "" {
				t.Fatalf("an intact log has a reason: %q", v.Reason)
			}
			// The other tenant's log is untouched.
			if v, err := st.VerifyAudit(ctx, "t_b"); err != nil || v != (store.AuditVerification{Records: 100}) {
				t.Fatalf("t_b: %+v, %v", v, err)
			}
			// Appending goes on after the last record; the break stays
			// where it is. Only a log that lost its tail reports the new
			// record's seq as the first past the gap.
			if strings.Contains(tc.wantReason, "does not decode") || strings.Contains(tc.wantReason, "at the end") {
				return
			}
			r, err := st.AppendAudit(ctx, auditIn("t_a", 100))
			if err != nil || r.Seq != 101 {
				t.Fatalf("append after tampering: seq %d, %v", r.Seq, err)
			}
			after, err := st.VerifyAudit(ctx, "t_a")
			if err != nil || after.FirstBroken != tc.wantBroken || after.Records != tc.wantRecords+1 {
				t.Fatalf("after an append: %+v, %v; want first broken %d of %d", after, err, tc.wantBroken, tc.wantRecords+1)
			}
		})
	}
}

// TestBoltAuditCorruptLastRecord: a last record without a valid hash
// cannot be chained to, so appending fails rather than extend a chain that
// cannot verify.
func TestBoltAuditCorruptLastRecord(t *testing.T) {
	ctx := context.Background()
	tests := map[string]func(t *testing.T, tx *bolt.Tx) error{
		"not JSON": func(t *testing.T, tx *bolt.Tx) error {
			return auditBucket(t, tx, "t_a").Put(seqKey(3), []byte("{"))
		},
		"no hash": func(t *testing.T, tx *bolt.Tx) error {
			return editRecord(t, tx, "t_a", 3, func(m map[string]json.RawMessage) { delete(m, "hash") })
		},
		"a hash that is not hex": func(t *testing.T, tx *bolt.Tx) error {
			return editRecord(t, tx, "t_a", 3, func(m map[string]json.RawMessage) {
				m["hash"] = json.RawMessage(`"` + strings.Repeat("Z", 64) + `"`)
			})
		},
	}
	for name, tamper := range tests {
		t.Run(name, func(t *testing.T) {
			st, path := openBolt(t, store.BoltOptions{})
			appendAudit(t, st, 3, "t_a")
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			editBolt(t, path, func(tx *bolt.Tx) error { return tamper(t, tx) })
			st2, err := store.OpenBolt(path, store.BoltOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer st2.Close()
			if _, err := st2.AppendAudit(ctx, auditIn("t_a", 3)); err == nil {
				t.Fatal("appended after a last record without a valid hash")
			}
			v, err := st2.VerifyAudit(ctx, "t_a")
			if err != nil || v.Records != 3 || v.FirstBroken != 3 {
				t.Fatalf("VerifyAudit = %+v, %v; want 3 records broken at 3 and nothing appended", v, err)
			}
			// Other tenants are not held up.
			if _, err := st2.AppendAudit(ctx, auditIn("t_b", 0)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBoltAuditVerifyLongLog: VerifyAudit reads a long log in several read
// transactions; the walk carries the chain across them.
func TestBoltAuditVerifyLongLog(t *testing.T) {
	ctx := context.Background()
	st, path := openBolt(t, store.BoltOptions{})
	const n = 2500
	appendAudit(t, st, n, "t_a")
	if v, err := st.VerifyAudit(ctx, "t_a"); err != nil || v != (store.AuditVerification{Records: n}) {
		t.Fatalf("VerifyAudit = %+v, %v", v, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		seq         uint64
		deleteIt    bool
		wantRecords int
	}{
		"changed at the end of a read":      {seq: 1000, wantRecords: n},
		"changed at the start of a read":    {seq: 1001, wantRecords: n},
		"changed in the last read":          {seq: 2001, wantRecords: n},
		"deleted at the end of a read":      {seq: 1000, deleteIt: true, wantRecords: n - 1},
		"deleted at the start of a read":    {seq: 1001, deleteIt: true, wantRecords: n - 1},
		"deleted at the start of the third": {seq: 2001, deleteIt: true, wantRecords: n - 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := copyFile(t, path)
			editBolt(t, p, func(tx *bolt.Tx) error {
				if tc.deleteIt {
					return auditBucket(t, tx, "t_a").Delete(seqKey(tc.seq))
				}
				return editRecord(t, tx, "t_a", tc.seq, func(m map[string]json.RawMessage) { m["action"] = json.RawMessage(`"payments.refund"`) })
			})
			st, err := store.OpenBolt(p, store.BoltOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			v, err := st.VerifyAudit(ctx, "t_a")
			if err != nil || v.FirstBroken != tc.seq || v.Records != tc.wantRecords {
				t.Fatalf("VerifyAudit = %+v, %v; want first broken %d of %d records", v, err, tc.seq, tc.wantRecords)
			}
		})
	}
}

// TestBoltAuditVerifyCancelled: a cancelled walk returns the context's
// error, not a verdict.
func TestBoltAuditVerifyCancelled(t *testing.T) {
	st, _ := openBolt(t, store.BoltOptions{})
	appendAudit(t, st, 3, "t_a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if v, err := st.VerifyAudit(ctx, "t_a"); !errors.Is(err, context.Canceled) || v != (store.AuditVerification{}) {
		t.Fatalf("VerifyAudit = %+v, %v; want context.Canceled and no verdict", v, err)
	}
}

// downgradeToV1 makes a closed database look as a build of schema 1 left
// it: no admin buckets, audit records without prev_hash and hash.
func downgradeToV1(t testing.TB, path string) {
	t.Helper()
	editBolt(t, path, func(tx *bolt.Tx) error {
		for _, name := range []string{"tenants", "api_keys", "api_key_ids", "api_key_hashes", "credentials"} {
			if err := tx.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		audit := tx.Bucket([]byte("audit"))
		err := audit.ForEachBucket(func(tenant []byte) error {
			b := audit.Bucket(tenant)
			var keys [][]byte
			_ = b.ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil })
			for _, k := range keys {
				var m map[string]json.RawMessage
				if err := json.Unmarshal(b.Get(k), &m); err != nil {
					return err
				}
				delete(m, "prev_hash")
				delete(m, "hash")
				v, err := json.Marshal(m)
				if err != nil {
					return err
				}
				if err := b.Put(k, v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), []byte("1"))
	})
}

func schemaVersion(t testing.TB, path string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	_ = db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket([]byte("meta")).Get([]byte("schema_version")))
		return nil
	})
	return v
}

// withoutHashes returns rs with PrevHash and Hash cleared.
func withoutHashes(rs []store.AuditRecord) []store.AuditRecord {
	out := make([]store.AuditRecord, len(rs))
	for i, r := range rs {
		r.PrevHash, r.Hash = "", ""
		out[i] = r
	}
	return out
}

// TestBoltMigratesSchema1: opening a file of schema 1 chains its audit
// logs as they are, adds the admin buckets and says so; the logs then
// verify and appends continue the chain.
func TestBoltMigratesSchema1(t *testing.T) {
	ctx := context.Background()
	st, path := openBolt(t, store.BoltOptions{})
	appendAudit(t, st, 30, "t_a", "t_b")
	before, _, err := st.ListAudit(ctx, "t_a", store.AuditQuery{Limit: store.MaxAuditLimit})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	downgradeToV1(t, path)

	var logs bytes.Buffer
	st2, err := store.OpenBolt(path, store.BoltOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("open a schema 1 file: %v", err)
	}
	defer st2.Close()
	if !strings.Contains(logs.String(), `"msg":"store: migrated the database"`) || !strings.Contains(logs.String(), `"audit_records":60`) {
		t.Fatalf("the migration is not logged with its counts:\n%s", logs.String())
	}
	for _, tenant := range []string{"t_a", "t_b"} {
		if v, err := st2.VerifyAudit(ctx, tenant); err != nil || v != (store.AuditVerification{Records: 30}) {
			t.Fatalf("%s after migration: %+v, %v", tenant, v, err)
		}
	}
	after, _, err := st2.ListAudit(ctx, "t_a", store.AuditQuery{Limit: store.MaxAuditLimit})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(withoutHashes(after), withoutHashes(before)) {
		t.Fatal("the migration changed the records' content")
	}
	r, err := st2.AppendAudit(ctx, auditIn("t_a", 30))
	if err != nil || r.Seq != 31 || r.PrevHash != after[0].Hash {
		t.Fatalf("append after migration: seq %d prev %s, %v; want 31 chained to %s", r.Seq, r.PrevHash, err, after[0].Hash)
	}
	if err := st2.PutTenant(ctx, store.TenantRecord{ID: "t_a"}); err != nil {
		t.Fatalf("the admin buckets are missing: %v", err)
	}
	if v, err := st2.VerifyAudit(ctx, "t_a"); err != nil || !v.OK() || v.Records != 31 {
		t.Fatalf("after an append: %+v, %v", v, err)
	}
	if err := st2.Close(); err != nil {
		t.Fatal(err)
	}
	if v := schemaVersion(t, path); v != fmt.Sprint(store.SchemaVersion) {
		t.Fatalf("schema_version %q after migration, want %d", v, store.SchemaVersion)
	}
}

// TestBoltMigrationIsAtomic: a schema 1 file the migration cannot read is
// refused and left exactly as it was, still schema 1.
func TestBoltMigrationIsAtomic(t *testing.T) {
	st, path := openBolt(t, store.BoltOptions{})
	appendAudit(t, st, 5, "t_a")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	downgradeToV1(t, path)
	editBolt(t, path, func(tx *bolt.Tx) error { return auditBucket(t, tx, "t_a").Put(seqKey(4), []byte("garbage")) })
	var first []byte
	editBolt(t, path, func(tx *bolt.Tx) error { first = bytes.Clone(auditBucket(t, tx, "t_a").Get(seqKey(1))); return nil })

	if st, err := store.OpenBolt(path, store.BoltOptions{}); err == nil {
		st.Close()
		t.Fatal("a schema 1 file with an unreadable audit record opened")
	}
	if v := schemaVersion(t, path); v != "1" {
		t.Fatalf("schema_version %q after a failed migration, want 1", v)
	}
	editBolt(t, path, func(tx *bolt.Tx) error {
		if got := auditBucket(t, tx, "t_a").Get(seqKey(1)); !bytes.Equal(got, first) {
			t.Errorf("record 1 changed by a failed migration:\n%s\nwas\n%s", got, first)
		}
		if tx.Bucket([]byte("tenants")) != nil {
			t.Error("a failed migration left the admin buckets")
		}
		return nil
	})
}
