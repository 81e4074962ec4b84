package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var acme = Binding{Tenant: "acme", Provider: "stripe", Field: "secret_key"}

func TestSealOpenRoundTrip(t *testing.T) {
	values := map[string]string{
		"ascii":       "sk_test_51HxYzABCdef",
		"utf8":        "clé-秘密-🔑-ключ",
		"empty":       "",
		"64KiB":       strings.Repeat("0123456789abcdef", 64<<10/16),
		"nul bytes":   "a\x00b\x00",
		"invalid utf": "\xff\xfe\xfd",
	}
	for _, hn := range sortedHolders() {
		h := holders()[hn](t)
		v := newTestVault(t, h)
		for name, value := range values {
			t.Run(hn+"/"+name, func(t *testing.T) {
				s := mustSeal(t, v, acme, value)
				if s.KeyID != h.ID() || s.KeyVersion != 1 {
					t.Errorf("key = %s v%d, want %s v1", s.KeyID, s.KeyVersion, h.ID())
				}
				if len(s.Nonce) != nonceSize || len(s.Ciphertext) != len(value)+tagSize {
					t.Errorf("nonce %d bytes, ciphertext %d bytes; want %d and %d", len(s.Nonce), len(s.Ciphertext), nonceSize, len(value)+tagSize)
				}
				if s.SetAt.IsZero() || s.SetAt.Location() != time.UTC {
					t.Errorf("SetAt = %v, want a UTC time", s.SetAt)
				}
				// Through JSON, as a store keeps it.
				raw, err := json.Marshal(s)
				if err != nil {
					t.Fatal(err)
				}
				var back Sealed
				if err := json.Unmarshal(raw, &back); err != nil {
					t.Fatal(err)
				}
				if got := mustOpen(t, v, acme, back); got != value {
					t.Errorf("Open = %q…, want %q…", trunc(got), trunc(value))
				}
			})
		}
	}
}

func trunc(s string) string {
	if len(s) > 20 {
		return s[:20]
	}
	return s
}

func TestSealTwiceDiffers(t *testing.T) {
	v := newTestVault(t, holders()["local"](t))
	a, b := mustSeal(t, v, acme, "same"), mustSeal(t, v, acme, "same")
	if bytes.Equal(a.Nonce, b.Nonce) || bytes.Equal(a.Ciphertext, b.Ciphertext) || bytes.Equal(a.WrappedDEK, b.WrappedDEK) {
		t.Error("two seals of one value share a nonce, ciphertext or wrapped DEK")
	}
	if a.Fingerprint != b.Fingerprint {
		t.Error("two seals of one value have different fingerprints")
	}
}

func TestOpenOtherBindingFails(t *testing.T) {
	cases := map[string]Binding{
		"other tenant":   {Tenant: "globex", Provider: acme.Provider, Field: acme.Field},
		"other provider": {Tenant: acme.Tenant, Provider: "adyen", Field: acme.Field},
		"other field":    {Tenant: acme.Tenant, Provider: acme.Provider, Field: "webhook_secret"},
		// The same concatenation, split differently: the length prefixes
		// tell them apart.
		"shifted tenant/provider": {Tenant: "acmes", Provider: "tripe", Field: acme.Field},
		"shifted provider/field":  {Tenant: acme.Tenant, Provider: "stripe_secret", Field: "_key"},
	}
	for _, hn := range sortedHolders() {
		v := newTestVault(t, holders()[hn](t))
		s := mustSeal(t, v, acme, "sk_live_moved")
		for name, b := range cases {
			t.Run(hn+"/"+name, func(t *testing.T) {
				got, err := v.Open(context.Background(), b, s)
				if err != ErrDecrypt {
					t.Fatalf("Open = %q, %v; want exactly ErrDecrypt", got, err)
				}
				if err.Error() != "vault: cannot decrypt" {
					t.Errorf("error says %q", err)
				}
			})
		}
	}
}

func TestBindingAADIsUnambiguous(t *testing.T) {
	seen := map[string]Binding{}
	for _, b := range []Binding{
		{"ab", "c", "d"}, {"a", "bc", "d"}, {"a", "b", "cd"},
		{"a\x00", "b", "c"}, {"a", "\x00b", "c"}, {"abc", "d", "e"},
	} {
		k := string(b.aad())
		if prev, dup := seen[k]; dup {
			t.Errorf("bindings %v and %v share associated data", prev, b)
		}
		seen[k] = b
		if !bytes.HasPrefix(b.aad(), append([]byte{0, 0, 0, 11}, aadContext...)) {
			t.Errorf("aad of %v does not start with the context", b)
		}
	}
}

// tamper returns a copy of s changed by f; byte slices are copied first.
func tamper(s Sealed, f func(*Sealed)) Sealed {
	s.WrappedDEK = bytes.Clone(s.WrappedDEK)
	s.Nonce = bytes.Clone(s.Nonce)
	s.Ciphertext = bytes.Clone(s.Ciphertext)
	f(&s)
	return s
}

// flipWrapped changes one byte in the middle of a wrapped DEK, keeping a
// transit ciphertext's characters within base64.
func flipWrapped(s *Sealed) {
	i := len(s.WrappedDEK) - 8
	if s.WrappedDEK[i] == 'A' {
		s.WrappedDEK[i] = 'B'
	} else if bytes.HasPrefix(s.WrappedDEK, []byte("vault:")) {
		s.WrappedDEK[i] = 'A'
	} else {
		s.WrappedDEK[i] ^= 1
	}
}

func TestOpenTamperedFails(t *testing.T) {
	cases := map[string]struct {
		f    func(s *Sealed, other Sealed)
		want error
	}{
		"ciphertext byte":       {func(s *Sealed, _ Sealed) { s.Ciphertext[0] ^= 1 }, ErrDecrypt},
		"tag byte":              {func(s *Sealed, _ Sealed) { s.Ciphertext[len(s.Ciphertext)-1] ^= 0x80 }, ErrDecrypt},
		"truncated":             {func(s *Sealed, _ Sealed) { s.Ciphertext = s.Ciphertext[:tagSize-1] }, ErrDecrypt},
		"appended":              {func(s *Sealed, _ Sealed) { s.Ciphertext = append(s.Ciphertext, 0) }, ErrDecrypt},
		"nonce byte":            {func(s *Sealed, _ Sealed) { s.Nonce[5] ^= 1 }, ErrDecrypt},
		"short nonce":           {func(s *Sealed, _ Sealed) { s.Nonce = s.Nonce[:8] }, ErrDecrypt},
		"no nonce":              {func(s *Sealed, _ Sealed) { s.Nonce = nil }, ErrDecrypt},
		"wrapped dek byte":      {func(s *Sealed, _ Sealed) { flipWrapped(s) }, ErrDecrypt},
		"wrapped dek cut":       {func(s *Sealed, _ Sealed) { s.WrappedDEK = s.WrappedDEK[:len(s.WrappedDEK)/2] }, ErrDecrypt},
		"no wrapped dek":        {func(s *Sealed, _ Sealed) { s.WrappedDEK = nil }, ErrDecrypt},
		"huge wrapped dek":      {func(s *Sealed, _ Sealed) { s.WrappedDEK = make([]byte, maxWrapped+1) }, ErrDecrypt},
		"next version":          {func(s *Sealed, _ Sealed) { s.KeyVersion++ }, ErrDecrypt},
		"version zero":          {func(s *Sealed, _ Sealed) { s.KeyVersion = 0 }, ErrDecrypt},
		"other key id":          {func(s *Sealed, _ Sealed) { s.KeyID = "other" }, ErrWrongHolder},
		"another value's dek":   {func(s *Sealed, o Sealed) { s.WrappedDEK = o.WrappedDEK }, ErrDecrypt},
		"another value's nonce": {func(s *Sealed, o Sealed) { s.Nonce = o.Nonce }, ErrDecrypt},
	}
	for _, hn := range sortedHolders() {
		v := newTestVault(t, holders()[hn](t))
		s := mustSeal(t, v, acme, "sk_live_tamper")
		other := mustSeal(t, v, acme, "sk_live_other")
		for name, c := range cases {
			t.Run(hn+"/"+name, func(t *testing.T) {
				bad := tamper(s, func(b *Sealed) { c.f(b, other) })
				got, err := v.Open(context.Background(), acme, bad)
				if !errors.Is(err, c.want) || got != "" {
					t.Fatalf("Open = %q, %v; want %v", got, err, c.want)
				}
			})
		}
	}
}

func TestRotateThenOpenOldAndNew(t *testing.T) {
	for _, hn := range sortedHolders() {
		t.Run(hn, func(t *testing.T) {
			ctx := context.Background()
			h := holders()[hn](t)
			v := newTestVault(t, h)
			old := mustSeal(t, v, acme, "before rotation")
			if n := mustRotate(t, h); n != 2 {
				t.Fatalf("Rotate = %d, want 2", n)
			}
			if cur, err := h.Current(ctx); err != nil || cur != 2 {
				t.Fatalf("Current = %d, %v; want 2", cur, err)
			}
			fresh := mustSeal(t, v, acme, "after rotation")
			if old.KeyVersion != 1 || fresh.KeyVersion != 2 {
				t.Errorf("versions %d and %d, want 1 and 2", old.KeyVersion, fresh.KeyVersion)
			}
			if got := mustOpen(t, v, acme, old); got != "before rotation" {
				t.Errorf("old value opens as %q", got)
			}
			if got := mustOpen(t, v, acme, fresh); got != "after rotation" {
				t.Errorf("new value opens as %q", got)
			}
			if vs, err := h.Versions(ctx); err != nil || !slices.Equal(vs, []int{1, 2}) {
				t.Errorf("Versions = %v, %v; want [1 2]", vs, err)
			}
			// The old value's DEK under the new version's key does not open.
			moved := tamper(old, func(s *Sealed) { s.KeyVersion = 2 })
			if _, err := v.Open(ctx, acme, moved); !errors.Is(err, ErrDecrypt) {
				t.Errorf("old wrapped DEK with version 2: %v, want ErrDecrypt", err)
			}
		})
	}
}

func TestRewrapThenRetire(t *testing.T) {
	other := Binding{Tenant: "globex", Provider: "stripe", Field: "secret_key"}
	for _, hn := range sortedHolders() {
		t.Run(hn, func(t *testing.T) {
			ctx := context.Background()
			h := holders()[hn](t)
			v := newTestVault(t, h)
			a := mustSeal(t, v, acme, "value a")
			b := mustSeal(t, v, other, "value b")
			mustRotate(t, h)
			c := mustSeal(t, v, acme, "value c")
			stored := []Sealed{a, b, c}

			if !v.InUse(stored, 1) {
				t.Fatal("InUse(1) = false before rewrap")
			}
			if err := v.Retire(ctx, 1, stored); !errors.Is(err, ErrVersionInUse) {
				t.Fatalf("Retire(1) before rewrap = %v, want ErrVersionInUse", err)
			}

			// A wrong binding fails as Open does and leaves the value alone.
			if got, changed, err := v.Rewrap(ctx, other, a); !errors.Is(err, ErrDecrypt) || changed || !sameSealed(got, a) {
				t.Errorf("Rewrap with wrong binding = changed %t, %v; want ErrDecrypt, unchanged", changed, err)
			}

			// So does a broken ciphertext, though its DEK unwraps.
			broken := tamper(a, func(s *Sealed) { s.Ciphertext[0] ^= 1 })
			if got, changed, err := v.Rewrap(ctx, acme, broken); !errors.Is(err, ErrDecrypt) || changed || !sameSealed(got, broken) {
				t.Errorf("Rewrap of a broken ciphertext = changed %t, %v; want ErrDecrypt, unchanged", changed, err)
			}

			a2, changed, err := v.Rewrap(ctx, acme, a)
			if err != nil || !changed {
				t.Fatalf("Rewrap(a) = changed %t, %v", changed, err)
			}
			if a2.KeyVersion != 2 || bytes.Equal(a2.WrappedDEK, a.WrappedDEK) {
				t.Errorf("rewrapped a: version %d, wrapped DEK changed %t; want 2, true", a2.KeyVersion, !bytes.Equal(a2.WrappedDEK, a.WrappedDEK))
			}
			if !bytes.Equal(a2.Ciphertext, a.Ciphertext) || !bytes.Equal(a2.Nonce, a.Nonce) ||
				a2.Fingerprint != a.Fingerprint || !a2.SetAt.Equal(a.SetAt) || a2.KeyID != a.KeyID {
				t.Error("Rewrap changed the value's ciphertext, nonce, fingerprint, set time or key id")
			}
			if got := mustOpen(t, v, acme, a2); got != "value a" {
				t.Errorf("rewrapped a opens as %q", got)
			}
			c2, changed, err := v.Rewrap(ctx, acme, c)
			if err != nil || changed || !sameSealed(c2, c) {
				t.Errorf("Rewrap(c) at current version = changed %t, %v; want unchanged", changed, err)
			}
			b2, _, err := v.Rewrap(ctx, other, b)
			if err != nil {
				t.Fatal(err)
			}
			stored = []Sealed{a2, b2, c2}

			if v.InUse(stored, 1) {
				t.Fatal("InUse(1) = true after rewrap")
			}
			if !v.InUse(stored, 2) {
				t.Error("InUse(2) = false")
			}
			if vs, _ := h.Versions(ctx); !slices.Equal(vs, []int{1, 2}) {
				t.Errorf("Versions before retire = %v", vs)
			}
			if err := v.Retire(ctx, 2, stored); !errors.Is(err, ErrVersionInUse) {
				t.Errorf("Retire(2) with values on 2 = %v, want ErrVersionInUse", err)
			}
			if err := v.Retire(ctx, 2, nil); !errors.Is(err, ErrRetireCurrent) {
				t.Errorf("Retire(current) = %v, want ErrRetireCurrent", err)
			}
			if err := v.Retire(ctx, 1, stored); err != nil {
				t.Fatalf("Retire(1) after rewrap: %v", err)
			}
			if vs, err := h.Versions(ctx); err != nil || !slices.Equal(vs, []int{2}) {
				t.Errorf("Versions after retire = %v, %v; want [2]", vs, err)
			}
			if err := v.Retire(ctx, 1, stored); err != nil {
				t.Errorf("Retire of a retired version = %v, want nil", err)
			}
			for i, s := range stored {
				if _, err := v.Open(ctx, []Binding{acme, other, acme}[i], s); err != nil {
					t.Errorf("stored value %d after retire: %v", i, err)
				}
			}
			// The copy from before the rewrap is now unreadable.
			if _, err := v.Open(ctx, acme, a); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Open of a retired-version copy = %v, want ErrDecrypt", err)
			}
			if _, _, err := v.Rewrap(ctx, acme, a); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Rewrap of a retired-version copy = %v, want ErrDecrypt", err)
			}
		})
	}
}

func TestInUse(t *testing.T) {
	v := newTestVault(t, holders()["local"](t))
	at := func(id string, version int) Sealed { return Sealed{KeyID: id, KeyVersion: version} }
	cases := map[string]struct {
		stored  []Sealed
		version int
		want    bool
	}{
		"none":                 {nil, 1, false},
		"same version":         {[]Sealed{at(LocalID, 3)}, 3, true},
		"older version":        {[]Sealed{at(LocalID, 3), at(LocalID, 1)}, 2, true},
		"only newer":           {[]Sealed{at(LocalID, 3), at(LocalID, 4)}, 2, false},
		"other holder's older": {[]Sealed{at("transit:pipecore", 1), at(LocalID, 3)}, 2, false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := v.InUse(c.stored, c.version); got != c.want {
				t.Errorf("InUse(%d) = %t, want %t", c.version, got, c.want)
			}
		})
	}
}

func sameSealed(a, b Sealed) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestHolderContract(t *testing.T) {
	aad := acme.aad()
	otherAAD := Binding{"globex", "stripe", "secret_key"}.aad()
	for _, hn := range sortedHolders() {
		t.Run(hn, func(t *testing.T) {
			ctx := context.Background()
			h := holders()[hn](t)
			dek := bytes.Repeat([]byte{7}, dekSize)
			version, wrapped, err := h.Wrap(ctx, dek, aad)
			if err != nil || version != 1 {
				t.Fatalf("Wrap = v%d, %v", version, err)
			}
			if bytes.Contains(wrapped, dek) {
				t.Error("wrapped DEK contains the DEK")
			}
			got, err := h.Unwrap(ctx, version, wrapped, aad)
			if err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("Unwrap = %x, %v", got, err)
			}
			cases := map[string]struct {
				version int
				wrapped []byte
				aad     []byte
			}{
				"other aad":     {version, wrapped, otherAAD},
				"no aad":        {version, wrapped, nil},
				"unknown":       {9, wrapped, aad},
				"garbage":       {version, []byte("garbage"), aad},
				"empty wrapped": {version, nil, aad},
			}
			for name, c := range cases {
				if got, err := h.Unwrap(ctx, c.version, c.wrapped, c.aad); !errors.Is(err, ErrDecrypt) || got != nil {
					t.Errorf("Unwrap %s = %x, %v; want ErrDecrypt", name, got, err)
				}
			}
			for _, bad := range []int{0, -1} {
				if err := h.Retire(ctx, bad); err == nil {
					t.Errorf("Retire(%d) = nil, want an error", bad)
				}
			}
			if err := h.Retire(ctx, 1); !errors.Is(err, ErrRetireCurrent) {
				t.Errorf("Retire(current) = %v, want ErrRetireCurrent", err)
			}
			if err := h.Retire(ctx, 5); !errors.Is(err, ErrRetireCurrent) {
				t.Errorf("Retire(newer than current) = %v, want ErrRetireCurrent", err)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	v := newTestVault(t, holders()["local"](t))
	otherKey := bytes.Repeat([]byte{0xa5}, MinFingerprintKey)
	w, err := New(v.Holder(), otherKey)
	if err != nil {
		t.Fatal(err)
	}
	fp := v.Fingerprint("sk_live_one")
	cases := map[string]struct {
		got  string
		same bool
	}{
		"same value":            {v.Fingerprint("sk_live_one"), true},
		"sealed value":          {mustSeal(t, v, acme, "sk_live_one").Fingerprint, true},
		"other binding":         {mustSeal(t, v, Binding{"globex", "adyen", "api_key"}, "sk_live_one").Fingerprint, true},
		"other value":           {v.Fingerprint("sk_live_two"), false},
		"one byte longer":       {v.Fingerprint("sk_live_one "), false},
		"empty":                 {v.Fingerprint(""), false},
		"other fingerprint key": {w.Fingerprint("sk_live_one"), false},
	}
	if len(fp) != 16 || strings.Trim(fp, "0123456789abcdef") != "" {
		t.Fatalf("fingerprint %q is not 16 lowercase hex digits", fp)
	}
	for name, c := range cases {
		if (c.got == fp) != c.same {
			t.Errorf("%s: fingerprint %s vs %s, want same=%t", name, c.got, fp, c.same)
		}
	}
}

func TestNewRejects(t *testing.T) {
	h := holders()["local"](t)
	cases := map[string]struct {
		h    KeyHolder
		key  []byte
		want error
	}{
		"nil holder": {nil, testFPKey, nil},
		"short key":  {h, testFPKey[:MinFingerprintKey-1], ErrFingerprintKey},
		"no key":     {h, nil, ErrFingerprintKey},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			v, err := New(c.h, c.key)
			if err == nil || v != nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Errorf("New = %v, %v; want an error %v", v, err, c.want)
			}
		})
	}
	// New copies the key: zeroing the caller's copy changes nothing.
	key := bytes.Clone(testFPKey)
	v, err := New(h, key)
	if err != nil {
		t.Fatal(err)
	}
	before := v.Fingerprint("x")
	clear(key)
	if v.Fingerprint("x") != before {
		t.Error("Vault shares the caller's fingerprint key")
	}
}

func TestSealRejects(t *testing.T) {
	v := newTestVault(t, holders()["local"](t))
	long := strings.Repeat("t", MaxBindingPart+1)
	cases := map[string]struct {
		b     Binding
		value string
		want  error
	}{
		"no tenant":   {Binding{"", "stripe", "key"}, "x", ErrBinding},
		"no provider": {Binding{"acme", "", "key"}, "x", ErrBinding},
		"no field":    {Binding{"acme", "stripe", ""}, "x", ErrBinding},
		"long tenant": {Binding{long, "stripe", "key"}, "x", ErrBinding},
		"too large":   {acme, strings.Repeat("x", MaxPlaintext+1), ErrTooLarge},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Seal(context.Background(), c.b, c.value); !errors.Is(err, c.want) {
				t.Errorf("Seal = %v, want %v", err, c.want)
			}
		})
	}
	s := mustSeal(t, v, acme, "x")
	if _, err := v.Open(context.Background(), Binding{"", "stripe", "key"}, s); !errors.Is(err, ErrBinding) {
		t.Errorf("Open with an empty tenant = %v, want ErrBinding", err)
	}
	if _, err := v.Seal(context.Background(), acme, strings.Repeat("x", MaxPlaintext)); err != nil {
		t.Errorf("Seal of MaxPlaintext bytes: %v", err)
	}
}

func TestHolderUnreachable(t *testing.T) {
	ctx := context.Background()
	real := holders()["local"](t)
	v := newTestVault(t, real)
	s := mustSeal(t, v, acme, "x")
	down := newTestVault(t, failingHolder{real})
	if _, err := down.Seal(ctx, acme, "x"); !errors.Is(err, errHolderDown) || errors.Is(err, ErrDecrypt) {
		t.Errorf("Seal with the holder down = %v, want the holder's error", err)
	}
	// Unreachable is not "cannot decrypt": callers retry the one and
	// alert on the other.
	if _, err := down.Open(ctx, acme, s); !errors.Is(err, errHolderDown) || errors.Is(err, ErrDecrypt) {
		t.Errorf("Open with the holder down = %v, want the holder's error", err)
	}
}

// TestDEKZeroed checks that Seal, Open and Rewrap zero the DEKs they
// handle, including on a failed Open.
func TestDEKZeroed(t *testing.T) {
	ctx := context.Background()
	spy := &spyHolder{KeyHolder: holders()["local"](t)}
	v := newTestVault(t, spy)
	s := mustSeal(t, v, acme, "zero me")
	mustOpen(t, v, acme, s)
	if _, err := v.Open(ctx, acme, tamper(s, func(s *Sealed) { s.Ciphertext[0] ^= 1 })); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered Open = %v", err)
	}
	mustRotate(t, spy)
	if _, changed, err := v.Rewrap(ctx, acme, s); err != nil || !changed {
		t.Fatalf("Rewrap = %t, %v", changed, err)
	}
	if len(spy.wrapped) != 2 || len(spy.unwrapped) != 3 {
		t.Fatalf("spy saw %d wraps and %d unwraps, want 2 and 3", len(spy.wrapped), len(spy.unwrapped))
	}
	for i, dek := range slices.Concat(spy.wrapped, spy.unwrapped) {
		if len(dek) != dekSize || !isZero(dek) {
			t.Errorf("DEK %d (%d bytes) is not zeroed: %x", i, len(dek), dek)
		}
	}
}

// TestNoSecretLeaks seals a sentinel and looks for it, in every encoding,
// in the stored JSON, in every error a failing call returns, in the key
// file, and in what the transit fake received.
func TestNoSecretLeaks(t *testing.T) {
	sentinel := fmt.Sprintf("SENTINEL-9f3c-%d-do-not-leak", time.Now().UnixNano())
	for _, hn := range sortedHolders() {
		t.Run(hn, func(t *testing.T) {
			ctx := context.Background()
			spy := &spyHolder{KeyHolder: holders()[hn](t)}
			v := newTestVault(t, spy)
			s := mustSeal(t, v, acme, sentinel)
			dek, err := spy.KeyHolder.Unwrap(ctx, s.KeyVersion, s.WrappedDEK, acme.aad())
			if err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			assertAbsent(t, "Sealed JSON", string(raw), sentinel)
			assertAbsent(t, "Sealed JSON", string(raw), string(dek))
			assertAbsent(t, "Sealed %+v", fmt.Sprintf("%+v %#v", s, s), sentinel)

			var errs []error
			collect := func(_ any, err error) {
				if err == nil {
					t.Error("expected an error, got nil")
				}
				errs = append(errs, err)
			}
			collect(v.Open(ctx, Binding{"globex", "stripe", "secret_key"}, s))
			collect(v.Open(ctx, acme, tamper(s, func(s *Sealed) { s.Ciphertext[0] ^= 1 })))
			collect(v.Open(ctx, acme, tamper(s, flipWrapped)))
			collect(v.Open(ctx, acme, tamper(s, func(s *Sealed) { s.KeyVersion = 7 })))
			collect(v.Open(ctx, acme, tamper(s, func(s *Sealed) { s.KeyID = "x" })))
			collect(v.Seal(ctx, acme, sentinel+strings.Repeat("x", MaxPlaintext)))
			collect(v.Seal(ctx, Binding{"", "p", "f"}, sentinel))
			down := newTestVault(t, failingHolder{spy.KeyHolder})
			collect(down.Seal(ctx, acme, sentinel))
			collect(down.Open(ctx, acme, s))
			for _, err := range errs {
				if err != nil {
					assertAbsent(t, "error "+err.Error(), err.Error(), sentinel)
					assertAbsent(t, "error "+err.Error(), err.Error(), string(dek))
				}
			}

			switch h := spy.KeyHolder.(type) {
			case *Local:
				file, err := os.ReadFile(h.path)
				if err != nil {
					t.Fatal(err)
				}
				assertAbsent(t, "key file", string(file), sentinel)
				assertAbsent(t, "key file", string(file), string(dek))
			case *Transit:
				// The value never leaves the process: Vault sees only DEKs.
				f := fakeFor(t, h)
				for _, r := range f.seen() {
					assertAbsent(t, "request to Vault "+r.Path, string(r.Body), sentinel)
				}
			default:
				t.Fatalf("unexpected holder %T", h)
			}
		})
	}
}

// fakeFor finds the fake a test Transit talks to.
func fakeFor(tb testing.TB, tr *Transit) *fakeTransit {
	tb.Helper()
	fakesMu.Lock()
	defer fakesMu.Unlock()
	f := fakes[tr.c.Address()]
	if f == nil {
		tb.Fatalf("no fake at %s", tr.c.Address())
	}
	return f
}

// TestRotateUnderLoad seals and opens from several goroutines while the
// key rotates and values are rewrapped: no operation may fail.
func TestRotateUnderLoad(t *testing.T) {
	for _, hn := range sortedHolders() {
		t.Run(hn, func(t *testing.T) {
			ctx := context.Background()
			h := holders()[hn](t)
			v := newTestVault(t, h)
			var wg sync.WaitGroup
			errc := make(chan error, 100)
			stop := make(chan struct{})
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					b := Binding{Tenant: fmt.Sprintf("t%d", w), Provider: "stripe", Field: "key"}
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						want := fmt.Sprintf("value-%d-%d", w, i)
						s, err := v.Seal(ctx, b, want)
						if err == nil {
							var got string
							if got, err = v.Open(ctx, b, s); err == nil && got != want {
								err = fmt.Errorf("opened %q, want %q", got, want)
							}
						}
						if err == nil {
							s, _, err = v.Rewrap(ctx, b, s)
						}
						if err == nil {
							_, err = v.Open(ctx, b, s)
						}
						if err != nil {
							errc <- err
							return
						}
					}
				}()
			}
			for range 4 {
				mustRotate(t, h)
				time.Sleep(5 * time.Millisecond)
			}
			close(stop)
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Error(err)
			}
		})
	}
}
