package storetest

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/pipecore/pipecore/core/internal/store"
)

// mustVerify verifies the tenant's log and fails unless it is intact with
// n records.
func mustVerify(t testing.TB, st store.Store, tenant string, n int) {
	t.Helper()
	v, err := st.VerifyAudit(context.Background(), tenant)
	mustNoErr(t, err)
	if want := (store.AuditVerification{Records: n}); v != want || !v.OK() {
		t.Fatalf("VerifyAudit(%s) = %+v, want %+v", tenant, v, want)
	}
}

// awkwardPayloads are Request/Response values whose stored form differs
// from what the caller gave (whitespace, HTML characters, U+2028), or that
// are edge cases (null, absent).
var awkwardPayloads = []json.RawMessage{
	json.RawMessage("{\n  \"note\": \"<b> & </b>\",\t\"line\": \"a\u2028b\" }"),
	json.RawMessage(`null`),
	nil,
	json.RawMessage(`  [1, 2.50, "x"]  `),
	json.RawMessage(`"\u00e9t\u00e9"`),
}

func testAuditChain(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()

	tests := map[string]func(t *testing.T, st store.Store){
		"each record chains to the previous one and the log verifies": func(t *testing.T, st store.Store) {
			const n = 100
			prev := store.AuditGenesis
			for i := range n {
				in := auditRecord("t_a", i)
				in.Request = awkwardPayloads[i%len(awkwardPayloads)]
				in.Response = awkwardPayloads[(i+1)%len(awkwardPayloads)]
				r, err := st.AppendAudit(ctx, in)
				mustNoErr(t, err)
				if r.PrevHash != prev {
					t.Fatalf("seq %d: PrevHash %q, want the previous Hash %q", r.Seq, r.PrevHash, prev)
				}
				if r.Hash != store.AuditHash(&r) || len(r.Hash) != 64 {
					t.Fatalf("seq %d: Hash %q, want AuditHash of the returned record %q", r.Seq, r.Hash, store.AuditHash(&r))
				}
				if !sameJSON(r.Request, in.Request) && in.Request != nil {
					t.Fatalf("seq %d: Request %s, want %s", r.Seq, r.Request, in.Request)
				}
				prev = r.Hash
			}
			mustVerify(t, st, "t_a", n)
		},
		"the returned record is what is stored, hashes included": func(t *testing.T, st store.Store) {
			var returned []store.AuditRecord
			for i := range len(awkwardPayloads) {
				in := auditRecord("t_a", i)
				in.Request = awkwardPayloads[i]
				r, err := st.AppendAudit(ctx, in)
				mustNoErr(t, err)
				returned = append(returned, r)
			}
			list, _, err := st.ListAudit(ctx, "t_a", store.AuditQuery{})
			mustNoErr(t, err)
			if len(list) != len(returned) {
				t.Fatalf("listed %d records, want %d", len(list), len(returned))
			}
			for i, got := range list {
				want := returned[len(returned)-1-i]
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("listed %+v\nreturned %+v", got, want)
				}
			}
		},
		"the caller's PrevHash and Hash are ignored": func(t *testing.T, st store.Store) {
			in := auditRecord("t_a", 1)
			in.PrevHash, in.Hash = strings.Repeat("a", 64), strings.Repeat("b", 64)
			r, err := st.AppendAudit(ctx, in)
			mustNoErr(t, err)
			if r.PrevHash != store.AuditGenesis || r.Hash != store.AuditHash(&r) {
				t.Fatalf("PrevHash %q Hash %q: the caller's values were kept", r.PrevHash, r.Hash)
			}
			mustVerify(t, st, "t_a", 1)
		},
		"every tenant has its own chain from genesis": func(t *testing.T, st store.Store) {
			for i := range 5 {
				_, err := st.AppendAudit(ctx, auditRecord("t_a", i))
				mustNoErr(t, err)
			}
			b, err := st.AppendAudit(ctx, auditRecord("t_b", 0))
			mustNoErr(t, err)
			if b.PrevHash != store.AuditGenesis {
				t.Fatalf("t_b's first record chains to %q, want genesis", b.PrevHash)
			}
			mustVerify(t, st, "t_a", 5)
			mustVerify(t, st, "t_b", 1)
			mustVerify(t, st, "t_none", 0)
		},
		"admin actions chain like any other record": func(t *testing.T, st store.Store) {
			_, err := st.AppendAudit(ctx, auditRecord("t_a", 0))
			mustNoErr(t, err)
			for _, action := range []string{"admin.credential.set", "admin.api_key.create", "admin.tenant.update"} {
				r, err := st.AppendAudit(ctx, store.AuditRecord{TenantID: "t_a", Provider: "admin", Action: action, Status: "ok",
					Request: json.RawMessage(`{"provider":"stripe","field":"secret_key","fingerprint":"fp_1"}`), ResourceID: "stripe/secret_key"})
				mustNoErr(t, err)
				if r.Hash != store.AuditHash(&r) {
					t.Fatalf("%s: Hash %q does not match the record", action, r.Hash)
				}
			}
			list, _, err := st.ListAudit(ctx, "t_a", store.AuditQuery{Provider: "admin"})
			mustNoErr(t, err)
			if len(list) != 3 {
				t.Fatalf("%d admin records, want 3", len(list))
			}
			mustVerify(t, st, "t_a", 4)
		},
		"an empty tenant is ErrInvalid": func(t *testing.T, st store.Store) {
			_, err := st.VerifyAudit(ctx, "")
			mustErrIs(t, err, store.ErrInvalid)
		},
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, open(t))
		})
	}
}
