package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
)

// tenantRecord is a tenant with every field set.
func tenantRecord(id string) store.TenantRecord {
	return store.TenantRecord{
		ID:       id,
		Defaults: map[string]string{"currency": "EUR", "provider": "stripe"},
		Providers: map[string]store.TenantProvider{
			"stripe":      {Enabled: true, Settings: map[string]string{"account": "acct_1"}},
			"mercadopago": {Enabled: false},
		},
		CreatedAt: base.Add(1500 * time.Nanosecond),
		UpdatedAt: base.Add(time.Hour),
	}
}

func mustPutTenant(t testing.TB, st store.Store, r store.TenantRecord) {
	t.Helper()
	mustNoErr(t, st.PutTenant(context.Background(), r))
}

func mustGetTenant(t testing.TB, st store.Store, id string) store.TenantRecord {
	t.Helper()
	r, err := st.GetTenant(context.Background(), id)
	mustNoErr(t, err)
	return r
}

func tenantIDs(rs []store.TenantRecord) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func testTenants(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	errFn := errors.New("storetest: fn refused")

	tests := map[string]func(t *testing.T, st store.Store){
		"put then get returns every field": func(t *testing.T, st store.Store) {
			want := tenantRecord("t_a")
			want.Disabled = true
			mustPutTenant(t, st, want)
			got := mustGetTenant(t, st, "t_a")
			if !sameTime(got.CreatedAt, want.CreatedAt) || !sameTime(got.UpdatedAt, want.UpdatedAt) {
				t.Fatalf("times %v/%v, want %v/%v", got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
			}
			got.CreatedAt, got.UpdatedAt = want.CreatedAt, want.UpdatedAt
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		},
		"put fills zero times": func(t *testing.T, st store.Store) {
			r := tenantRecord("t_a")
			r.CreatedAt, r.UpdatedAt = time.Time{}, time.Time{}
			before := time.Now().Add(-time.Second)
			mustPutTenant(t, st, r)
			got := mustGetTenant(t, st, "t_a")
			if got.CreatedAt.Before(before) || got.UpdatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Second)) {
				t.Fatalf("times %v/%v, want about now", got.CreatedAt, got.UpdatedAt)
			}
		},
		"replacing keeps CreatedAt and replaces everything else": func(t *testing.T, st store.Store) {
			mustPutTenant(t, st, tenantRecord("t_a"))
			repl := store.TenantRecord{ID: "t_a", Disabled: true, Defaults: map[string]string{"currency": "BRL"}, CreatedAt: base.Add(48 * time.Hour)}
			mustPutTenant(t, st, repl)
			got := mustGetTenant(t, st, "t_a")
			if !sameTime(got.CreatedAt, tenantRecord("").CreatedAt) {
				t.Fatalf("CreatedAt = %v, want the first put's %v", got.CreatedAt, tenantRecord("").CreatedAt)
			}
			if !got.Disabled || !reflect.DeepEqual(got.Defaults, repl.Defaults) || got.Providers != nil {
				t.Fatalf("replaced tenant %+v, want %+v", got, repl)
			}
		},
		"missing tenant is ErrNotFound": func(t *testing.T, st store.Store) {
			_, err := st.GetTenant(ctx, "t_missing")
			mustErrIs(t, err, store.ErrNotFound)
		},
		"list is sorted by id and empty when there are none": func(t *testing.T, st store.Store) {
			list, err := st.ListTenants(ctx)
			mustNoErr(t, err)
			if list == nil || len(list) != 0 {
				t.Fatalf("empty list = %#v, want empty and not nil", list)
			}
			for _, id := range []string{"t_b", "t_a2", "T_z", "t_a", "t_ä", "t_a10"} {
				mustPutTenant(t, st, tenantRecord(id))
			}
			list, err = st.ListTenants(ctx)
			mustNoErr(t, err)
			want := []string{"T_z", "t_a", "t_a10", "t_a2", "t_b", "t_ä"}
			if got := tenantIDs(list); !slices.Equal(got, want) {
				t.Fatalf("ids %v, want %v", got, want)
			}
			if !reflect.DeepEqual(list[1].Providers, tenantRecord("").Providers) {
				t.Fatalf("listed tenant %+v lost its providers", list[1])
			}
		},
		"update writes fn's result and sets UpdatedAt": func(t *testing.T, st store.Store) {
			mustPutTenant(t, st, tenantRecord("t_a"))
			before := time.Now().Add(-time.Second)
			got, err := st.UpdateTenant(ctx, "t_a", func(r *store.TenantRecord) error {
				r.Disabled = true
				r.Defaults["currency"] = "USD"
				p := r.Providers["stripe"]
				p.Settings["account"] = "acct_2"
				r.Providers["stripe"] = p
				return nil
			})
			mustNoErr(t, err)
			if !got.Disabled || got.Defaults["currency"] != "USD" || got.Providers["stripe"].Settings["account"] != "acct_2" {
				t.Fatalf("returned %+v, want the update applied", got)
			}
			if got.UpdatedAt.Before(before) || !sameTime(got.CreatedAt, tenantRecord("").CreatedAt) {
				t.Fatalf("times %v/%v: want CreatedAt kept and UpdatedAt about now", got.CreatedAt, got.UpdatedAt)
			}
			if stored := mustGetTenant(t, st, "t_a"); !reflect.DeepEqual(stored, got) {
				t.Fatalf("stored %+v\nreturned %+v", stored, got)
			}
		},
		"fn's error aborts the update and is returned": func(t *testing.T, st store.Store) {
			mustPutTenant(t, st, tenantRecord("t_a"))
			_, err := st.UpdateTenant(ctx, "t_a", func(r *store.TenantRecord) error {
				r.Disabled = true
				r.Providers["stripe"].Settings["account"] = "acct_changed"
				return errFn
			})
			mustErrIs(t, err, errFn)
			got := mustGetTenant(t, st, "t_a")
			if got.Disabled || got.Providers["stripe"].Settings["account"] != "acct_1" {
				t.Fatalf("aborted update was written: %+v", got)
			}
		},
		"update must not change identity": func(t *testing.T, st store.Store) {
			mustPutTenant(t, st, tenantRecord("t_a"))
			for name, fn := range map[string]func(*store.TenantRecord){
				"id":         func(r *store.TenantRecord) { r.ID = "t_b" },
				"created_at": func(r *store.TenantRecord) { r.CreatedAt = r.CreatedAt.Add(time.Hour) },
			} {
				_, err := st.UpdateTenant(ctx, "t_a", func(r *store.TenantRecord) error { fn(r); r.Disabled = true; return nil })
				if !errors.Is(err, store.ErrInvalid) {
					t.Errorf("changing %s: err = %v, want ErrInvalid", name, err)
				}
			}
			if got := mustGetTenant(t, st, "t_a"); got.Disabled {
				t.Fatal("a refused update was written")
			}
			_, err := st.GetTenant(ctx, "t_b")
			mustErrIs(t, err, store.ErrNotFound)
		},
		"update of a missing tenant is ErrNotFound and fn is not called": func(t *testing.T, st store.Store) {
			called := false
			_, err := st.UpdateTenant(ctx, "t_missing", func(*store.TenantRecord) error { called = true; return nil })
			mustErrIs(t, err, store.ErrNotFound)
			if called {
				t.Fatal("fn was called without a tenant")
			}
		},
		"empty id is ErrInvalid": func(t *testing.T, st store.Store) {
			mustErrIs(t, st.PutTenant(ctx, tenantRecord("")), store.ErrInvalid)
			list, err := st.ListTenants(ctx)
			mustNoErr(t, err)
			if len(list) != 0 {
				t.Fatalf("an invalid tenant was stored: %+v", list)
			}
		},
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, open(t))
		})
	}
}

// testConcurrentTenantUpdate: concurrent read-modify-writes of a tenant are
// never lost.
func testConcurrentTenantUpdate(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	mustPutTenant(t, st, store.TenantRecord{ID: "t_a", Defaults: map[string]string{}})
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := st.UpdateTenant(ctx, "t_a", func(r *store.TenantRecord) error {
				if r.Defaults == nil { // an empty map is stored as none
					r.Defaults = map[string]string{}
				}
				r.Defaults[fmt.Sprintf("k%d", i)] = "v"
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		mustNoErr(t, err)
	}
	if got := mustGetTenant(t, st, "t_a"); len(got.Defaults) != n {
		t.Fatalf("%d defaults after %d concurrent updates", len(got.Defaults), n)
	}
}

// keyHash is a well-formed key hash for name.
func keyHash(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// apiKey is a key of tenant created at base+at.
func apiKey(tenant, id string, at time.Duration) store.APIKeyRecord {
	return store.APIKeyRecord{ID: id, TenantID: tenant, Hash: keyHash(tenant + "/" + id), Prefix: "pck_live_" + id[len(id)-3:], CreatedAt: base.Add(at)}
}

func mustPutKey(t testing.TB, st store.Store, k store.APIKeyRecord) {
	t.Helper()
	mustNoErr(t, st.PutAPIKey(context.Background(), k))
}

func keyIDs(ks []store.APIKeyRecord) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.ID
	}
	return out
}

func mustListKeys(t testing.TB, st store.Store, tenant string) []store.APIKeyRecord {
	t.Helper()
	ks, err := st.ListAPIKeys(context.Background(), tenant)
	mustNoErr(t, err)
	return ks
}

// keyByID returns the tenant's key id from ListAPIKeys.
func keyByID(t testing.TB, st store.Store, tenant, id string) store.APIKeyRecord {
	t.Helper()
	for _, k := range mustListKeys(t, st, tenant) {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("%s has no key %s", tenant, id)
	return store.APIKeyRecord{}
}

func testAPIKeys(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()

	tests := map[string]func(t *testing.T, st store.Store){
		"put then list returns every field": func(t *testing.T, st store.Store) {
			want := apiKey("t_a", "key_001", 0)
			want.CreatedAt = want.CreatedAt.Add(1500 * time.Nanosecond)
			want.LastUsedAt = base.Add(time.Hour)
			mustPutKey(t, st, want)
			got := mustListKeys(t, st, "t_a")
			if len(got) != 1 {
				t.Fatalf("%d keys, want 1", len(got))
			}
			if !sameTime(got[0].CreatedAt, want.CreatedAt) || !sameTime(got[0].LastUsedAt, want.LastUsedAt) || !got[0].RevokedAt.IsZero() {
				t.Fatalf("times %+v, want %+v", got[0], want)
			}
			got[0].CreatedAt, got[0].LastUsedAt = want.CreatedAt, want.LastUsedAt
			if !reflect.DeepEqual(got[0], want) {
				t.Fatalf("got  %+v\nwant %+v", got[0], want)
			}
		},
		"a zero CreatedAt is now": func(t *testing.T, st store.Store) {
			k := apiKey("t_a", "key_001", 0)
			k.CreatedAt = time.Time{}
			mustPutKey(t, st, k)
			if got := keyByID(t, st, "t_a", "key_001"); time.Since(got.CreatedAt) > 5*time.Second || time.Since(got.CreatedAt) < -time.Second {
				t.Fatalf("CreatedAt = %v, want about now", got.CreatedAt)
			}
		},
		"a duplicate id is ErrExists, in any tenant": func(t *testing.T, st store.Store) {
			mustPutKey(t, st, apiKey("t_a", "key_001", 0))
			dup := apiKey("t_b", "key_001", time.Second)
			dup.Hash = keyHash("another key")
			mustErrIs(t, st.PutAPIKey(ctx, dup), store.ErrExists)
			if ks := mustListKeys(t, st, "t_b"); len(ks) != 0 {
				t.Fatalf("the duplicate was stored: %+v", ks)
			}
		},
		"a duplicate hash is ErrExists, in any tenant and after revocation": func(t *testing.T, st store.Store) {
			first := apiKey("t_a", "key_001", 0)
			mustPutKey(t, st, first)
			mustNoErr(t, st.RevokeAPIKey(ctx, "t_a", "key_001", base.Add(time.Minute)))
			for _, tenant := range []string{"t_a", "t_b"} {
				dup := apiKey(tenant, "key_002", time.Second)
				dup.Hash = first.Hash
				mustErrIs(t, st.PutAPIKey(ctx, dup), store.ErrExists)
			}
			all, err := st.AllAPIKeys(ctx)
			mustNoErr(t, err)
			if len(all) != 0 {
				t.Fatalf("a duplicate hash was stored: %+v", all)
			}
		},
		"list is the tenant's keys, revoked included, by CreatedAt then id": func(t *testing.T, st store.Store) {
			for _, k := range []store.APIKeyRecord{
				apiKey("t_a", "key_003", time.Second),
				apiKey("t_a", "key_002", 2*time.Second),
				apiKey("t_a", "key_001", 2*time.Second),
				apiKey("t_a", "key_009", 0),
				apiKey("t_b", "key_004", 0),
			} {
				mustPutKey(t, st, k)
			}
			mustNoErr(t, st.RevokeAPIKey(ctx, "t_a", "key_003", base.Add(time.Hour)))
			want := []string{"key_009", "key_003", "key_001", "key_002"}
			if got := keyIDs(mustListKeys(t, st, "t_a")); !slices.Equal(got, want) {
				t.Fatalf("t_a keys %v, want %v", got, want)
			}
			if got := mustListKeys(t, st, "t_none"); got == nil || len(got) != 0 {
				t.Fatalf("a tenant without keys lists %#v, want empty and not nil", got)
			}
		},
		"all keys are every tenant's active keys by tenant, CreatedAt, id": func(t *testing.T, st store.Store) {
			for _, k := range []store.APIKeyRecord{
				apiKey("t_b", "key_b01", 0),
				apiKey("t_a", "key_a02", time.Second),
				apiKey("t_a", "key_a01", 2*time.Second),
				apiKey("t_a", "key_a03", 0),
				apiKey("t_c", "key_c01", 0),
			} {
				mustPutKey(t, st, k)
			}
			mustNoErr(t, st.RevokeAPIKey(ctx, "t_a", "key_a03", base.Add(time.Hour)))
			mustNoErr(t, st.RevokeAPIKey(ctx, "t_c", "key_c01", base.Add(time.Hour)))
			all, err := st.AllAPIKeys(ctx)
			mustNoErr(t, err)
			want := []string{"key_a02", "key_a01", "key_b01"}
			if got := keyIDs(all); !slices.Equal(got, want) {
				t.Fatalf("all keys %v, want %v", got, want)
			}
			for _, k := range all {
				if k.Hash != keyHash(k.TenantID+"/"+k.ID) {
					t.Fatalf("key %s came back with hash %q", k.ID, k.Hash)
				}
			}
		},
		"revoke sets RevokedAt once and keeps the key listed": func(t *testing.T, st store.Store) {
			mustPutKey(t, st, apiKey("t_a", "key_001", 0))
			mustNoErr(t, st.RevokeAPIKey(ctx, "t_a", "key_001", base.Add(time.Minute)))
			mustNoErr(t, st.RevokeAPIKey(ctx, "t_a", "key_001", base.Add(time.Hour)))
			got := keyByID(t, st, "t_a", "key_001")
			if !got.Revoked() || !sameTime(got.RevokedAt, base.Add(time.Minute)) {
				t.Fatalf("RevokedAt = %v, want the first revocation's %v", got.RevokedAt, base.Add(time.Minute))
			}
		},
		"revoke at a zero time is now": func(t *testing.T, st store.Store) {
			mustPutKey(t, st, apiKey("t_a", "key_001", 0))
			mustNoErr(t, st.RevokeAPIKey(ctx, "t_a", "key_001", time.Time{}))
			if got := keyByID(t, st, "t_a", "key_001"); time.Since(got.RevokedAt) > 5*time.Second || time.Since(got.RevokedAt) < -time.Second {
				t.Fatalf("RevokedAt = %v, want about now", got.RevokedAt)
			}
		},
		"revoking another tenant's key is ErrNotFound, like a missing one": func(t *testing.T, st store.Store) {
			mustPutKey(t, st, apiKey("t_a", "key_001", 0))
			err := st.RevokeAPIKey(ctx, "t_b", "key_001", base)
			mustErrIs(t, err, store.ErrNotFound)
			missing := st.RevokeAPIKey(ctx, "t_b", "key_999", base)
			mustErrIs(t, missing, store.ErrNotFound)
			if err.Error() != missing.Error() {
				t.Fatalf("another tenant's key (%q) is distinguishable from a missing one (%q)", err, missing)
			}
			if keyByID(t, st, "t_a", "key_001").Revoked() {
				t.Fatal("another tenant revoked the key")
			}
		},
		"touch moves LastUsedAt forward only and ignores unknown ids": func(t *testing.T, st store.Store) {
			mustPutKey(t, st, apiKey("t_a", "key_001", 0))
			mustPutKey(t, st, apiKey("t_a", "key_002", 0))
			mustPutKey(t, st, apiKey("t_b", "key_003", 0))
			mustNoErr(t, st.TouchAPIKeys(ctx, map[string]time.Time{
				"key_001": base.Add(time.Hour), "key_003": base.Add(time.Minute), "key_unknown": base, "": base,
			}))
			mustNoErr(t, st.TouchAPIKeys(ctx, map[string]time.Time{
				"key_001": base.Add(time.Minute), "key_002": base.Add(2 * time.Hour).Add(1500 * time.Nanosecond),
			}))
			mustNoErr(t, st.TouchAPIKeys(ctx, nil))
			want := map[string]time.Time{
				"t_a/key_001": base.Add(time.Hour),
				"t_a/key_002": base.Add(2 * time.Hour).Add(time.Microsecond),
				"t_b/key_003": base.Add(time.Minute),
			}
			for tk, at := range want {
				tenant, id, _ := strings.Cut(tk, "/")
				if got := keyByID(t, st, tenant, id); !got.LastUsedAt.Equal(at) {
					t.Errorf("%s: LastUsedAt = %v, want %v", tk, got.LastUsedAt, at)
				}
			}
			all, err := st.AllAPIKeys(ctx)
			mustNoErr(t, err)
			if len(all) != 3 {
				t.Fatalf("touching created or dropped keys: %v", keyIDs(all))
			}
		},
		"invalid keys are ErrInvalid": func(t *testing.T, st store.Store) {
			bad := map[string]func(*store.APIKeyRecord){
				"empty id":               func(k *store.APIKeyRecord) { k.ID = "" },
				"empty tenant":           func(k *store.APIKeyRecord) { k.TenantID = "" },
				"empty hash":             func(k *store.APIKeyRecord) { k.Hash = "" },
				"hash of the wrong size": func(k *store.APIKeyRecord) { k.Hash = k.Hash[:62] },
				"upper-case hash":        func(k *store.APIKeyRecord) { k.Hash = strings.ToUpper(k.Hash) },
				"the key itself as hash": func(k *store.APIKeyRecord) { k.Hash = "pck_live_" + strings.Repeat("A", 55) },
				"prefix over 12 chars":   func(k *store.APIKeyRecord) { k.Prefix = "pck_live_abcd" },
			}
			for name, change := range bad {
				k := apiKey("t_a", "key_001", 0)
				change(&k)
				if err := st.PutAPIKey(ctx, k); !errors.Is(err, store.ErrInvalid) {
					t.Errorf("%s: err = %v, want ErrInvalid", name, err)
				}
			}
			k := apiKey("t_a", "key_001", 0)
			k.Prefix = "pck_live_abc"
			mustPutKey(t, st, k) // 12 characters is allowed
			if got := keyIDs(mustListKeys(t, st, "t_a")); !slices.Equal(got, []string{"key_001"}) {
				t.Fatalf("keys %v, want only the valid one", got)
			}
		},
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, open(t))
		})
	}
}

// testConcurrentAPIKeys: of many keys put at once with one hash, exactly
// one is stored; concurrent touches keep the latest time.
func testConcurrentAPIKeys(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	const n = 40
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k := apiKey(fmt.Sprintf("t_%d", i%4), fmt.Sprintf("key_%03d", i), 0)
			k.Hash = keyHash("same key")
			errs[i] = st.PutAPIKey(ctx, k)
		})
	}
	wg.Wait()
	stored := 0
	for _, err := range errs {
		switch {
		case err == nil:
			stored++
		case !errors.Is(err, store.ErrExists):
			t.Fatalf("err = %v, want nil or ErrExists", err)
		}
	}
	all, err := st.AllAPIKeys(ctx)
	mustNoErr(t, err)
	if stored != 1 || len(all) != 1 {
		t.Fatalf("%d puts succeeded and %d keys are stored, want 1 and 1", stored, len(all))
	}

	key := all[0]
	for i := range n {
		wg.Go(func() {
			errs[i] = st.TouchAPIKeys(ctx, map[string]time.Time{key.ID: base.Add(time.Duration(i) * time.Second)})
		})
	}
	wg.Wait()
	for _, err := range errs {
		mustNoErr(t, err)
	}
	if got := keyByID(t, st, key.TenantID, key.ID); !got.LastUsedAt.Equal(base.Add((n - 1) * time.Second)) {
		t.Fatalf("LastUsedAt = %v after concurrent touches, want the latest %v", got.LastUsedAt, base.Add((n-1)*time.Second))
	}
}

// sealedOf is a sealed value as package vault might produce it, with
// whitespace and HTML characters a store must keep byte for byte.
func sealedOf(v string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf("{\"v\": 1, \"kek\": \"kek_1:3\",\n \"ct\": %q, \"note\": \"<&>\"}", v))
}

func credential(tenant, provider, field string) store.CredentialRecord {
	return store.CredentialRecord{
		TenantID: tenant, Provider: provider, Field: field,
		Sealed:      sealedOf(tenant + "/" + provider + "/" + field),
		Fingerprint: "fp_" + field,
		SetAt:       base.Add(1500 * time.Nanosecond),
		SetBy:       "ops@example.com",
	}
}

func mustPutCredential(t testing.TB, st store.Store, c store.CredentialRecord) {
	t.Helper()
	mustNoErr(t, st.PutCredential(context.Background(), c))
}

func mustListCredentials(t testing.TB, st store.Store, tenant string) []store.CredentialRecord {
	t.Helper()
	cs, err := st.ListCredentials(context.Background(), tenant)
	mustNoErr(t, err)
	return cs
}

func credKeys(cs []store.CredentialRecord) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.TenantID + "/" + c.Provider + "/" + c.Field
	}
	return out
}

// sameCredential compares c with want at the store's time precision.
func sameCredential(t testing.TB, got, want store.CredentialRecord) {
	t.Helper()
	if !sameTime(got.SetAt, want.SetAt) {
		t.Fatalf("SetAt = %v, want %v", got.SetAt, want.SetAt)
	}
	got.SetAt = want.SetAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v (sealed %s)\nwant %+v (sealed %s)", got, got.Sealed, want, want.Sealed)
	}
}

func testCredentials(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()

	tests := map[string]func(t *testing.T, st store.Store){
		"put then list returns every field and the sealed value byte for byte": func(t *testing.T, st store.Store) {
			want := credential("t_a", "stripe", "secret_key")
			mustPutCredential(t, st, want)
			got := mustListCredentials(t, st, "t_a")
			if len(got) != 1 {
				t.Fatalf("%d credentials, want 1", len(got))
			}
			sameCredential(t, got[0], want)
		},
		"a zero SetAt is now": func(t *testing.T, st store.Store) {
			c := credential("t_a", "stripe", "secret_key")
			c.SetAt = time.Time{}
			mustPutCredential(t, st, c)
			if got := mustListCredentials(t, st, "t_a")[0]; time.Since(got.SetAt) > 5*time.Second || time.Since(got.SetAt) < -time.Second {
				t.Fatalf("SetAt = %v, want about now", got.SetAt)
			}
		},
		"put replaces the same field": func(t *testing.T, st store.Store) {
			mustPutCredential(t, st, credential("t_a", "stripe", "secret_key"))
			repl := credential("t_a", "stripe", "secret_key")
			repl.Sealed, repl.Fingerprint, repl.SetAt, repl.SetBy = sealedOf("new"), "fp_new", base.Add(time.Hour), "other@example.com"
			mustPutCredential(t, st, repl)
			got := mustListCredentials(t, st, "t_a")
			if len(got) != 1 {
				t.Fatalf("%d credentials after a replace, want 1", len(got))
			}
			sameCredential(t, got[0], repl)
		},
		"list is the tenant's credentials by provider then field": func(t *testing.T, st store.Store) {
			for _, c := range []store.CredentialRecord{
				credential("t_a", "stripe", "webhook_secret"),
				credential("t_a", "mercadopago", "access_token"),
				credential("t_a", "stripe", "secret_key"),
				credential("t_a", "stripe", "a"),
				credential("t_a", "mp", "zz"),
				credential("t_ab", "stripe", "secret_key"),
				credential("t_b", "stripe", "secret_key"),
			} {
				mustPutCredential(t, st, c)
			}
			want := []string{"t_a/mercadopago/access_token", "t_a/mp/zz", "t_a/stripe/a", "t_a/stripe/secret_key", "t_a/stripe/webhook_secret"}
			if got := credKeys(mustListCredentials(t, st, "t_a")); !slices.Equal(got, want) {
				t.Fatalf("t_a credentials %v\nwant %v", got, want)
			}
			if got := mustListCredentials(t, st, "t_none"); got == nil || len(got) != 0 {
				t.Fatalf("a tenant without credentials lists %#v, want empty and not nil", got)
			}
		},
		"all credentials are sorted by tenant, provider, field": func(t *testing.T, st store.Store) {
			for _, c := range []store.CredentialRecord{
				credential("t_b", "stripe", "secret_key"),
				credential("t_a", "stripe", "secret_key"),
				credential("t_ab", "mp", "token"),
				credential("t_a", "mp", "token"),
			} {
				mustPutCredential(t, st, c)
			}
			all, err := st.AllCredentials(ctx)
			mustNoErr(t, err)
			want := []string{"t_a/mp/token", "t_a/stripe/secret_key", "t_ab/mp/token", "t_b/stripe/secret_key"}
			if got := credKeys(all); !slices.Equal(got, want) {
				t.Fatalf("all credentials %v\nwant %v", got, want)
			}
			for _, c := range all {
				sameCredential(t, c, credential(c.TenantID, c.Provider, c.Field))
			}
		},
		"delete removes one credential": func(t *testing.T, st store.Store) {
			mustPutCredential(t, st, credential("t_a", "stripe", "secret_key"))
			mustPutCredential(t, st, credential("t_a", "stripe", "webhook_secret"))
			mustNoErr(t, st.DeleteCredential(ctx, "t_a", "stripe", "secret_key"))
			if got := credKeys(mustListCredentials(t, st, "t_a")); !slices.Equal(got, []string{"t_a/stripe/webhook_secret"}) {
				t.Fatalf("credentials after delete %v", got)
			}
			mustErrIs(t, st.DeleteCredential(ctx, "t_a", "stripe", "secret_key"), store.ErrNotFound)
		},
		"another tenant's credential is ErrNotFound on delete, like a missing one": func(t *testing.T, st store.Store) {
			mustPutCredential(t, st, credential("t_a", "stripe", "secret_key"))
			err := st.DeleteCredential(ctx, "t_b", "stripe", "secret_key")
			mustErrIs(t, err, store.ErrNotFound)
			missing := st.DeleteCredential(ctx, "t_b", "stripe", "nothing")
			mustErrIs(t, missing, store.ErrNotFound)
			if err.Error() != missing.Error() {
				t.Fatalf("another tenant's credential (%q) is distinguishable from a missing one (%q)", err, missing)
			}
			if got := mustListCredentials(t, st, "t_a"); len(got) != 1 {
				t.Fatal("another tenant deleted the credential")
			}
		},
		"invalid credentials are ErrInvalid": func(t *testing.T, st store.Store) {
			bad := map[string]func(*store.CredentialRecord){
				"empty tenant":        func(c *store.CredentialRecord) { c.TenantID = "" },
				"empty provider":      func(c *store.CredentialRecord) { c.Provider = "" },
				"empty field":         func(c *store.CredentialRecord) { c.Field = "" },
				"no sealed value":     func(c *store.CredentialRecord) { c.Sealed = nil },
				"sealed is not JSON":  func(c *store.CredentialRecord) { c.Sealed = json.RawMessage("sk_live_plaintext") },
				"field over the size": func(c *store.CredentialRecord) { c.Field = strings.Repeat("f", 40000) },
			}
			for name, change := range bad {
				c := credential("t_a", "stripe", "secret_key")
				change(&c)
				if err := st.PutCredential(ctx, c); !errors.Is(err, store.ErrInvalid) {
					t.Errorf("%s: err = %v, want ErrInvalid", name, err)
				}
			}
			all, err := st.AllCredentials(ctx)
			mustNoErr(t, err)
			if len(all) != 0 {
				t.Fatalf("invalid credentials were stored: %v", credKeys(all))
			}
		},
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, open(t))
		})
	}
}

// testReplaceCredentials is the key rotation rewrap: read everything, seal
// again, write back what did not change meanwhile.
func testReplaceCredentials(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	rewrapped := func(c store.CredentialRecord) store.CredentialRecord {
		c.Sealed = sealedOf("rewrapped " + c.Provider + "/" + c.Field)
		return c
	}
	// operator is t_b's token as an operator sets it again during the
	// rewrap; operatorSameValue is the same value set again (same
	// fingerprint, a later SetAt).
	operator := credential("t_b", "mp", "token")
	operator.Sealed, operator.Fingerprint, operator.SetAt = sealedOf("operator"), "fp_operator", base.Add(time.Hour)
	operatorSameValue := operator
	operatorSameValue.Fingerprint = credential("", "", "token").Fingerprint

	const (
		original = iota
		rewrap
		byOperator
	)
	tests := map[string]struct {
		deleted string                  // a t_a stripe field deleted during the rewrap
		set     *store.CredentialRecord // a record set during the rewrap
		change  func(recs []store.CredentialRecord) []store.CredentialRecord
		want    map[string]int // how each credential ends
		wantErr error
	}{
		"every record is rewritten with only Sealed changed": {
			want: map[string]int{"t_a/stripe/secret_key": rewrap, "t_a/stripe/webhook_secret": rewrap, "t_b/mp/token": rewrap},
		},
		"a record deleted meanwhile is skipped, not recreated": {
			deleted: "webhook_secret",
			want:    map[string]int{"t_a/stripe/secret_key": rewrap, "t_b/mp/token": rewrap},
		},
		"a record set again meanwhile keeps the operator's value": {
			set:  &operator,
			want: map[string]int{"t_a/stripe/secret_key": rewrap, "t_a/stripe/webhook_secret": rewrap, "t_b/mp/token": byOperator},
		},
		"a record set again with the same fingerprint keeps the operator's value": {
			set:  &operatorSameValue,
			want: map[string]int{"t_a/stripe/secret_key": rewrap, "t_a/stripe/webhook_secret": rewrap, "t_b/mp/token": byOperator},
		},
		"metadata changed by the caller is not written": {
			change: func(recs []store.CredentialRecord) []store.CredentialRecord {
				for i := range recs {
					recs[i].SetBy = "rewrap-job"
				}
				return recs
			},
			want: map[string]int{"t_a/stripe/secret_key": rewrap, "t_a/stripe/webhook_secret": rewrap, "t_b/mp/token": rewrap},
		},
		"an invalid record fails the whole call": {
			change: func(recs []store.CredentialRecord) []store.CredentialRecord {
				recs[len(recs)-1].Sealed = json.RawMessage("not json")
				return recs
			},
			want:    map[string]int{"t_a/stripe/secret_key": original, "t_a/stripe/webhook_secret": original, "t_b/mp/token": original},
			wantErr: store.ErrInvalid,
		},
		"a record twice fails the whole call": {
			change: func(recs []store.CredentialRecord) []store.CredentialRecord {
				return append(recs, recs[0])
			},
			want:    map[string]int{"t_a/stripe/secret_key": original, "t_a/stripe/webhook_secret": original, "t_b/mp/token": original},
			wantErr: store.ErrInvalid,
		},
		"nothing to replace is a no-op": {
			change: func([]store.CredentialRecord) []store.CredentialRecord { return nil },
			want:   map[string]int{"t_a/stripe/secret_key": original, "t_a/stripe/webhook_secret": original, "t_b/mp/token": original},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			for _, c := range []store.CredentialRecord{
				credential("t_a", "stripe", "secret_key"),
				credential("t_a", "stripe", "webhook_secret"),
				credential("t_b", "mp", "token"),
			} {
				mustPutCredential(t, st, c)
			}
			read, err := st.AllCredentials(ctx)
			mustNoErr(t, err)
			recs := make([]store.CredentialRecord, len(read))
			for i, c := range read {
				recs[i] = rewrapped(c)
			}
			if tc.change != nil {
				recs = tc.change(recs)
			}
			if tc.deleted != "" {
				mustNoErr(t, st.DeleteCredential(ctx, "t_a", "stripe", tc.deleted))
			}
			if tc.set != nil {
				mustPutCredential(t, st, *tc.set)
			}
			err = st.ReplaceCredentials(ctx, recs)
			if tc.wantErr != nil {
				mustErrIs(t, err, tc.wantErr)
			} else {
				mustNoErr(t, err)
			}
			all, err := st.AllCredentials(ctx)
			mustNoErr(t, err)
			if got, want := credKeys(all), slices.Sorted(maps.Keys(tc.want)); !slices.Equal(got, want) {
				t.Fatalf("credentials %v, want %v", got, want)
			}
			for _, c := range all {
				want := credential(c.TenantID, c.Provider, c.Field)
				switch tc.want[c.TenantID+"/"+c.Provider+"/"+c.Field] {
				case rewrap:
					want = rewrapped(want)
				case byOperator:
					want = *tc.set
				}
				sameCredential(t, c, want)
			}
		})
	}
}

// testAdminIsolation: one tenant's keys and credentials are invisible to
// another, even when names collide or share prefixes.
func testAdminIsolation(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	mustPutKey(t, st, apiKey("t_a", "key_a01", 0))
	mustPutKey(t, st, apiKey("t_ab", "key_b01", 0))
	mustPutCredential(t, st, credential("t_a", "stripe", "secret_key"))
	mustPutCredential(t, st, credential("t_ab", "stripe", "secret_key"))

	tests := map[string]struct {
		tenant   string
		keys     []string
		creds    []string
		revoke   string // a key id the tenant may not revoke
		delField string // a stripe field the tenant may not delete
	}{
		"t_a sees only its own":                 {tenant: "t_a", keys: []string{"key_a01"}, creds: []string{"t_a/stripe/secret_key"}, revoke: "key_b01"},
		"t_ab sees only its own":                {tenant: "t_ab", keys: []string{"key_b01"}, creds: []string{"t_ab/stripe/secret_key"}, revoke: "key_a01"},
		"a prefix of a tenant id sees nothing":  {tenant: "t_", keys: []string{}, creds: []string{}, revoke: "key_a01", delField: "secret_key"},
		"the empty tenant id sees nothing":      {tenant: "", keys: []string{}, creds: []string{}, revoke: "key_a01", delField: "secret_key"},
		"a tenant with no records sees nothing": {tenant: "t_c", keys: []string{}, creds: []string{}, revoke: "key_b01", delField: "secret_key"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := keyIDs(mustListKeys(t, st, tc.tenant)); !slices.Equal(got, tc.keys) {
				t.Errorf("keys %v, want %v", got, tc.keys)
			}
			if got := credKeys(mustListCredentials(t, st, tc.tenant)); !slices.Equal(got, tc.creds) {
				t.Errorf("credentials %v, want %v", got, tc.creds)
			}
			mustErrIs(t, st.RevokeAPIKey(ctx, tc.tenant, tc.revoke, base), store.ErrNotFound)
			if tc.delField != "" {
				mustErrIs(t, st.DeleteCredential(ctx, tc.tenant, "stripe", tc.delField), store.ErrNotFound)
			}
		})
	}
	all, err := st.AllAPIKeys(ctx)
	mustNoErr(t, err)
	if len(all) != 2 {
		t.Fatalf("refused revocations changed keys: %v", keyIDs(all))
	}
	creds, err := st.AllCredentials(ctx)
	mustNoErr(t, err)
	if len(creds) != 2 {
		t.Fatalf("refused deletions changed credentials: %v", credKeys(creds))
	}
}
