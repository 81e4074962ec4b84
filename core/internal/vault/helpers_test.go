package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/pipecore/pipecore/sdk/provider"
)

// testFPKey is the fingerprint key of every test Vault.
var testFPKey = bytes.Repeat([]byte{0x5a}, MinFingerprintKey)

// holderFactory makes a fresh key holder with one version.
type holderFactory func(tb testing.TB) KeyHolder

// holders are the implementations every flow test runs against.
func holders() map[string]holderFactory {
	return map[string]holderFactory{
		"local": func(tb testing.TB) KeyHolder {
			tb.Helper()
			l, err := NewKeyFile(filepath.Join(tb.TempDir(), "keys.json"))
			if err != nil {
				tb.Fatalf("NewKeyFile: %v", err)
			}
			return l
		},
		"transit": func(tb testing.TB) KeyHolder {
			tb.Helper()
			f := newFakeTransit(tb, "transit")
			f.createKey(tb, "pipecore", false)
			return newTestTransit(tb, f, TransitConfig{Key: "pipecore"})
		},
		"transit-derived": func(tb testing.TB) KeyHolder {
			tb.Helper()
			f := newFakeTransit(tb, "transit")
			f.createKey(tb, "pipecore", true)
			return newTestTransit(tb, f, TransitConfig{Key: "pipecore", Derived: true})
		},
	}
}

// sortedHolders returns the holder names in a stable order.
func sortedHolders() []string {
	var names []string
	for n := range holders() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// newTestTransit builds a Transit against f through Address and Token.
func newTestTransit(tb testing.TB, f *fakeTransit, cfg TransitConfig) *Transit {
	tb.Helper()
	cfg.Address = f.srv.URL
	cfg.Token = provider.NewSecret(f.token)
	tr, err := NewTransit(cfg)
	if err != nil {
		tb.Fatalf("NewTransit: %v", err)
	}
	return tr
}

// noRetryClient is a Vault client for f that does not retry, so failure
// tests stay fast.
func noRetryClient(tb testing.TB, f *fakeTransit, token string) *api.Client {
	tb.Helper()
	conf := api.DefaultConfig()
	conf.Address = f.srv.URL
	conf.MaxRetries = 0
	c, err := api.NewClient(conf)
	if err != nil {
		tb.Fatalf("api.NewClient: %v", err)
	}
	c.SetToken(token)
	return c
}

func newTestVault(tb testing.TB, h KeyHolder) *Vault {
	tb.Helper()
	v, err := New(h, testFPKey)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return v
}

func mustSeal(tb testing.TB, v *Vault, b Binding, plaintext string) Sealed {
	tb.Helper()
	s, err := v.Seal(context.Background(), b, plaintext)
	if err != nil {
		tb.Fatalf("Seal: %v", err)
	}
	return s
}

func mustOpen(tb testing.TB, v *Vault, b Binding, s Sealed) string {
	tb.Helper()
	got, err := v.Open(context.Background(), b, s)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return got
}

func mustRotate(tb testing.TB, h KeyHolder) int {
	tb.Helper()
	n, err := h.Rotate(context.Background())
	if err != nil {
		tb.Fatalf("Rotate: %v", err)
	}
	return n
}

// encodings returns s and the forms it would take if a byte string holding
// it were hex- or base64-encoded: hex, and for each of the three base64
// alignments the part of the encoding that depends on s alone, in the
// standard and URL alphabets.
func encodings(s string) []string {
	out := []string{s, hex.EncodeToString([]byte(s)), strings.ToUpper(hex.EncodeToString([]byte(s)))}
	for pad := range 3 {
		in := append(bytes.Repeat([]byte{0}, pad), s...)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			e := enc.EncodeToString(in)
			out = append(out, e[4:len(e)-4])
		}
	}
	return out
}

// assertAbsent fails if any encoding of secret occurs in text.
func assertAbsent(tb testing.TB, where, text, secret string) {
	tb.Helper()
	for _, e := range encodings(secret) {
		if strings.Contains(text, e) {
			tb.Errorf("%s contains the secret (as %q)", where, e)
		}
	}
}

// spyHolder wraps a KeyHolder and keeps the DEK slices it is handed and
// hands out, to check that Vault zeroes them.
type spyHolder struct {
	KeyHolder
	mu        sync.Mutex
	wrapped   [][]byte // dek arguments of Wrap
	unwrapped [][]byte // results of Unwrap
}

func (s *spyHolder) Wrap(ctx context.Context, dek, aad []byte) (int, []byte, error) {
	s.mu.Lock()
	s.wrapped = append(s.wrapped, dek)
	s.mu.Unlock()
	return s.KeyHolder.Wrap(ctx, dek, aad)
}

func (s *spyHolder) Unwrap(ctx context.Context, version int, wrapped, aad []byte) ([]byte, error) {
	dek, err := s.KeyHolder.Unwrap(ctx, version, wrapped, aad)
	s.mu.Lock()
	s.unwrapped = append(s.unwrapped, dek)
	s.mu.Unlock()
	return dek, err
}

// failingHolder is a KeyHolder that cannot be reached.
type failingHolder struct{ KeyHolder }

var errHolderDown = errors.New("key holder unreachable")

func (failingHolder) Wrap(context.Context, []byte, []byte) (int, []byte, error) {
	return 0, nil, errHolderDown
}

func (failingHolder) Unwrap(context.Context, int, []byte, []byte) ([]byte, error) {
	return nil, errHolderDown
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
