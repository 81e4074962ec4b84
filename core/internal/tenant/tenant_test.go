package tenant

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/pipecore/pipecore/core/internal/config"
)

const (
	keyA = "pc_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	keyB = "pc_live_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	keyC = "pc_live_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
	// sentinel stands for a credential; it must never be printed.
	sentinel = "SENTINEL-credential-4d1e-never-print"
)

func boolPtr(b bool) *bool { return &b }

// tenants returns a configuration with three tenants: "tableflow" (plain
// key, two enabled providers and a disabled one), "booker" (hashed key
// only) and "rotating" (two keys).
func tenants() map[string]config.Tenant {
	return map[string]config.Tenant{
		"tableflow": {
			APIKeys:  []string{keyA},
			Defaults: map[string]string{"payments": "stripe", "delivery": "uber", "messaging": "whatsapp"},
			Providers: map[string]config.Provider{
				"stripe": {
					Enabled:     boolPtr(true),
					Settings:    map[string]string{"base_url": "http://127.0.0.1:12111"},
					Credentials: map[string]string{"secret_key": sentinel, "webhook_secret": "whsec_1", "unused": ""},
				},
				"mercadopago": {Credentials: map[string]string{"access_token": "mp_token"}},
				"uber":        {Enabled: boolPtr(false), Credentials: map[string]string{"client_secret": "uber_secret"}},
			},
		},
		"booker":   {APIKeys: []string{HashKey(keyB)}},
		"rotating": {APIKeys: []string{keyC, keyC + "-next"}},
	}
}

func newRegistry(tb testing.TB) *Registry {
	tb.Helper()
	r, err := New(tenants())
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return r
}

func TestHashKey(t *testing.T) {
	// SHA-256("abc") from FIPS 180-2, appendix B.1.
	const want = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := HashKey("abc"); got != want {
		t.Errorf("HashKey(abc) = %s, want %s", got, want)
	}
}

// The config package prints keys in their hashed form; it must agree with
// HashKey so that an operator can paste it into api_keys.
func TestHashKeyMatchesConfigRedaction(t *testing.T) {
	c := config.Config{Tenants: map[string]config.Tenant{"t": {APIKeys: []string{keyA}}}}
	if got := c.Redacted().Tenants["t"].APIKeys[0]; got != HashKey(keyA) {
		t.Errorf("config prints %s, HashKey gives %s", got, HashKey(keyA))
	}
}

func TestGenerateKey(t *testing.T) {
	k1, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if k1 == k2 {
		t.Error("two generated keys are equal")
	}
	for _, k := range []string{k1, k2} {
		body, ok := strings.CutPrefix(k, KeyPrefix)
		if !ok {
			t.Fatalf("key %q lacks prefix %q", k, KeyPrefix)
		}
		raw, err := base64.RawURLEncoding.DecodeString(body)
		if err != nil || len(raw) != 32 {
			t.Errorf("key body decodes to %d bytes (err %v), want 32", len(raw), err)
		}
		if len(k) != 51 {
			t.Errorf("len(key) = %d, want 51", len(k))
		}
		env := func(string) (string, bool) { return k, true }
		if _, err := config.Parse([]byte("tenants: { t: { api_keys: [\"${KEY}\"] } }"), "test.yaml", env); err != nil {
			t.Errorf("config rejects a generated key: %v", err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := map[string]struct {
		tenants map[string]config.Tenant
		want    error
		msg     []string
	}{
		"short key": {
			tenants: map[string]config.Tenant{"a": {APIKeys: []string{"short-" + sentinel[:5]}}},
			want:    ErrInvalidKey,
			msg:     []string{`tenant "a", api_keys[0]`, "at least 32 characters, got 11"},
		},
		"empty key": {
			tenants: map[string]config.Tenant{"a": {APIKeys: []string{keyA, ""}}},
			want:    ErrInvalidKey,
			msg:     []string{`tenant "a", api_keys[1]`, "got 0"},
		},
		"hash too short": {
			tenants: map[string]config.Tenant{"a": {APIKeys: []string{"sha256:abcd"}}},
			want:    ErrInvalidKey,
			msg:     []string{`tenant "a", api_keys[0]`, "64 lowercase hex digits"},
		},
		"hash with upper-case hex": {
			tenants: map[string]config.Tenant{"a": {APIKeys: []string{"sha256:" + strings.ToUpper(HashKey(keyA)[7:])}}},
			want:    ErrInvalidKey,
			msg:     []string{`tenant "a", api_keys[0]`, "64 lowercase hex digits"},
		},
		"hash with upper-case prefix": {
			tenants: map[string]config.Tenant{"a": {APIKeys: []string{"SHA256:" + HashKey(keyA)[7:]}}},
			want:    ErrInvalidKey,
			msg:     []string{`tenant "a", api_keys[0]`, "64 lowercase hex digits"},
		},
		"hash not hex": {
			tenants: map[string]config.Tenant{"a": {APIKeys: []string{"sha256:" + strings.Repeat("zz", 32)}}},
			want:    ErrInvalidKey,
			msg:     []string{`tenant "a", api_keys[0]`, "64 lowercase hex digits"},
		},
		"same key for two tenants": {
			tenants: map[string]config.Tenant{"a": {APIKeys: []string{keyA}}, "b": {APIKeys: []string{keyA}}},
			want:    ErrDuplicateKey,
			msg:     []string{`tenants "a" and "b"`},
		},
		"plain and hashed forms of one key": {
			tenants: map[string]config.Tenant{"a": {APIKeys: []string{HashKey(keyA)}}, "b": {APIKeys: []string{keyB, keyA}}},
			want:    ErrDuplicateKey,
			msg:     []string{`tenants "a" and "b"`},
		},
		"empty tenant id": {
			tenants: map[string]config.Tenant{"": {APIKeys: []string{keyA}}},
			want:    ErrInvalidID,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := New(tc.tenants)
			if !errors.Is(err, tc.want) {
				t.Fatalf("New() error = %v, want %v", err, tc.want)
			}
			if r != nil {
				t.Error("New returned a registry with an error")
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not contain %q", err, m)
				}
			}
			if strings.Contains(err.Error(), keyA) || strings.Contains(err.Error(), sentinel[:5]) {
				t.Errorf("error leaks a key: %v", err)
			}
		})
	}
}

func TestNewAcceptsDuplicateKeyWithinTenant(t *testing.T) {
	r, err := New(map[string]config.Tenant{"a": {APIKeys: []string{keyA, HashKey(keyA)}}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if tn, ok := r.Authenticate(keyA); !ok || tn.ID != "a" {
		t.Errorf("Authenticate = %v, %v", tn, ok)
	}
}

func TestAuthenticate(t *testing.T) {
	r := newRegistry(t)
	tests := map[string]struct {
		key  string
		want string // tenant id; "" means rejected
	}{
		"plain key":                      {keyA, "tableflow"},
		"key configured by its hash":     {keyB, "booker"},
		"first of two keys":              {keyC, "rotating"},
		"second of two keys":             {keyC + "-next", "rotating"},
		"empty":                          {"", ""},
		"unknown":                        {"pc_live_" + strings.Repeat("Z", 43), ""},
		"the stored hash is not a key":   {HashKey(keyB), ""},
		"prefix of a key":                {keyA[:len(keyA)-1], ""},
		"key with a trailing newline":    {keyA + "\n", ""},
		"key in another case":            {strings.ToLower(keyA), ""},
		"two keys concatenated":          {keyA + keyB, ""},
		"hash of a plain configured key": {HashKey(keyA), ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := r.Authenticate(tc.key)
			if tc.want == "" {
				if ok || got != nil {
					t.Errorf("Authenticate accepted the key as %v", got)
				}
				return
			}
			if !ok || got == nil || got.ID != tc.want {
				t.Errorf("Authenticate = %v, %v; want tenant %q", got, ok, tc.want)
			}
		})
	}

	var nilRegistry *Registry
	if _, ok := nilRegistry.Authenticate(keyA); ok {
		t.Error("a nil registry authenticated a key")
	}
}

func TestAuthenticateConcurrent(t *testing.T) {
	r := newRegistry(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			key, want := keyA, "tableflow"
			if i%2 == 1 {
				key, want = keyB, "booker"
			}
			for range 200 {
				if tn, ok := r.Authenticate(key); !ok || tn.ID != want {
					t.Errorf("Authenticate(%s key) = %v, %v", want, tn, ok)
					return
				}
				if _, ok := r.Authenticate("nope"); ok {
					t.Error("accepted an unknown key")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestRegistryLookup(t *testing.T) {
	r := newRegistry(t)
	ids := r.IDs()
	if strings.Join(ids, ",") != "booker,rotating,tableflow" {
		t.Errorf("IDs() = %v, want sorted ids", ids)
	}
	ids[0] = "mutated"
	if r.IDs()[0] != "booker" {
		t.Error("IDs returned the registry's own slice")
	}
	if tn, ok := r.Get("booker"); !ok || tn.ID != "booker" {
		t.Errorf("Get(booker) = %v, %v", tn, ok)
	}
	if tn, ok := r.Get("nobody"); ok || tn != nil {
		t.Errorf("Get(nobody) = %v, %v", tn, ok)
	}
	a, _ := r.Get("tableflow")
	b, _ := r.Authenticate(keyA)
	if a != b {
		t.Error("Get and Authenticate return different tenants")
	}
}

func TestTenantProviders(t *testing.T) {
	r := newRegistry(t)
	tn, _ := r.Get("tableflow")

	enabled := map[string]bool{"stripe": true, "mercadopago": true, "uber": false, "whatsapp": false}
	for name, want := range enabled {
		if got := tn.Enabled(name); got != want {
			t.Errorf("Enabled(%s) = %v, want %v", name, got, want)
		}
	}
	if got := strings.Join(tn.Providers(), ","); got != "mercadopago,stripe" {
		t.Errorf("Providers() = %s, want enabled providers sorted", got)
	}

	defaults := map[string]struct {
		want string
		ok   bool
	}{
		"payments":  {"stripe", true},
		"delivery":  {"", false}, // uber is disabled
		"messaging": {"", false}, // whatsapp is not configured
		"ads":       {"", false},
	}
	for capability, want := range defaults {
		if got, ok := tn.DefaultProvider(capability); got != want.want || ok != want.ok {
			t.Errorf("DefaultProvider(%s) = %q, %v; want %q, %v", capability, got, ok, want.want, want.ok)
		}
	}

	pt, ok := tn.ProviderTenant("stripe")
	if !ok {
		t.Fatal("ProviderTenant(stripe) not found")
	}
	if pt.ID() != "tableflow" || pt.Setting("base_url") != "http://127.0.0.1:12111" || pt.Secret("secret_key").Reveal() != sentinel {
		t.Errorf("ProviderTenant(stripe) = id %q, base_url %q", pt.ID(), pt.Setting("base_url"))
	}
	if _, ok := tn.ProviderTenant("uber"); ok {
		t.Error("ProviderTenant returned a disabled provider")
	}

	secrets := tn.SecretValues("stripe")
	if len(secrets) != 2 || secrets[0] != sentinel || secrets[1] != "whsec_1" {
		t.Errorf("SecretValues(stripe) = %d values, want the 2 non-empty ones, longest first", len(secrets))
	}
	if tn.SecretValues("uber") != nil {
		t.Error("SecretValues returned a disabled provider's credentials")
	}

	settings := tn.Settings("stripe")
	settings["base_url"] = "http://evil"
	if tn.Settings("stripe")["base_url"] != "http://127.0.0.1:12111" {
		t.Error("Settings returned the tenant's own map")
	}
	if tn.Settings("uber") != nil {
		t.Error("Settings returned a disabled provider's settings")
	}
}

// New must copy what it keeps: later changes to the configuration do not
// reach the registry.
func TestNewCopiesConfiguration(t *testing.T) {
	ts := tenants()
	r, err := New(ts)
	if err != nil {
		t.Fatal(err)
	}
	ts["tableflow"].Providers["stripe"].Settings["base_url"] = "http://changed"
	ts["tableflow"].Providers["stripe"].Credentials["secret_key"] = "changed"
	ts["tableflow"].Defaults["payments"] = "mercadopago"
	tn, _ := r.Get("tableflow")
	pt, _ := tn.ProviderTenant("stripe")
	if pt.Setting("base_url") != "http://127.0.0.1:12111" || pt.Secret("secret_key").Reveal() != sentinel {
		t.Error("registry shares maps with the configuration")
	}
	if p, _ := tn.DefaultProvider("payments"); p != "stripe" {
		t.Errorf("default changed to %q with the configuration", p)
	}
}

func TestTenantNeverPrintsSecrets(t *testing.T) {
	r := newRegistry(t)
	tn, _ := r.Get("tableflow")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("call", "tenant", tn, "value", *tn)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("call", "tenant", tn, "value", *tn)
	printed := map[string]string{
		"%v":   fmt.Sprintf("%v", tn),
		"%+v":  fmt.Sprintf("%+v", *tn),
		"%#v":  fmt.Sprintf("%#v", tn),
		"%s":   fmt.Sprintf("%s", tn),
		"%d":   fmt.Sprintf("%d", *tn),
		"%q":   fmt.Sprintf("%q", tn),
		"slog": logs.String(),
	}
	for verb, s := range printed {
		if strings.Contains(s, sentinel) || strings.Contains(s, "whsec_1") || strings.Contains(s, "base_url") {
			t.Errorf("%s prints more than the id: %s", verb, s)
		}
		if !strings.Contains(s, "tableflow") {
			t.Errorf("%s does not print the id: %s", verb, s)
		}
	}
	if got := fmt.Sprintf("%#v", tn); got != `tenant.Tenant{ID:"tableflow"}` {
		t.Errorf("%%#v = %s", got)
	}
	if tn.String() != "tableflow" {
		t.Errorf("String() = %q", tn.String())
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	r := newRegistry(b)
	key, err := GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	ts := tenants()
	ts["bench"] = config.Tenant{APIKeys: []string{key}}
	if r, err = New(ts); err != nil {
		b.Fatal(err)
	}
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := r.Authenticate(key); !ok {
				b.Fatal("rejected")
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		miss := key[:len(key)-1] + "x"
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := r.Authenticate(miss); ok {
				b.Fatal("accepted")
			}
		}
	})
}

// Keys longer than Authenticate's stack buffer take the allocating path and
// must authenticate all the same.
func TestAuthenticateLongKey(t *testing.T) {
	long := strings.Repeat("L", stackKeyLen+1)
	r, err := New(map[string]config.Tenant{"a": {APIKeys: []string{long}}, "b": {APIKeys: []string{HashKey(long + "b")}}})
	if err != nil {
		t.Fatal(err)
	}
	if tn, ok := r.Authenticate(long); !ok || tn.ID != "a" {
		t.Errorf("Authenticate(long plain) = %v, %v", tn, ok)
	}
	if tn, ok := r.Authenticate(long + "b"); !ok || tn.ID != "b" {
		t.Errorf("Authenticate(long hashed) = %v, %v", tn, ok)
	}
	if _, ok := r.Authenticate(long[:stackKeyLen]); ok {
		t.Error("a truncated long key authenticated")
	}
}
