// Package tenant resolves the tenant of a request from its API key and
// holds each tenant's enabled providers with their settings and
// credentials.
//
// A Registry is built once from the configuration and is immutable: it is
// safe for concurrent use, and a configuration reload builds a new one.
// API keys are kept only as SHA-256 hashes.
package tenant

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/sdk/provider"
)

// KeyPrefix starts every key made by GenerateKey.
const KeyPrefix = "pc_live_"

// keyBytes is the number of random bytes in a generated key.
const keyBytes = 32

var (
	// ErrInvalidKey reports a configured API key that is empty, too short
	// or a malformed "sha256:" hash.
	ErrInvalidKey = errors.New("tenant: invalid api key")
	// ErrDuplicateKey reports one API key configured for two tenants.
	ErrDuplicateKey = errors.New("tenant: api key shared by two tenants")
	// ErrInvalidID reports an empty tenant id.
	ErrInvalidID = errors.New("tenant: invalid tenant id")
)

// HashKey returns the stored form of an API key: "sha256:" followed by the
// lowercase hex SHA-256 of key. Configuring this string instead of the key
// authenticates the same key.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return config.HashedKeyPrefix + hex.EncodeToString(sum[:])
}

// GenerateKey returns a new API key: KeyPrefix followed by 32 bytes from
// crypto/rand, base64url-encoded without padding (51 characters in all).
func GenerateKey() (string, error) {
	var b [keyBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("tenant: generate key: %w", err)
	}
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Registry maps API keys to tenants. It is immutable and safe for
// concurrent use.
type Registry struct {
	byHash map[[sha256.Size]byte]keyEntry
	byID   map[string]*Tenant
	ids    []string
}

type keyEntry struct {
	hash   [sha256.Size]byte
	tenant *Tenant
}

// New builds a Registry from the configured tenants. Plain API keys are
// hashed at once and only their hashes are kept; keys already given as
// "sha256:<hex>" are decoded. Only enabled providers are kept. New rejects
// an empty tenant id, an empty, short (see config.MinAPIKeyLength) or
// malformed key and a key configured for two tenants; run
// config.Validate for the complete checks. The map is not retained.
func New(tenants map[string]config.Tenant) (*Registry, error) {
	r := &Registry{
		byHash: make(map[[sha256.Size]byte]keyEntry),
		byID:   make(map[string]*Tenant, len(tenants)),
		ids:    slices.Sorted(maps.Keys(tenants)),
	}
	for _, id := range r.ids {
		if id == "" {
			return nil, ErrInvalidID
		}
		ct := tenants[id]
		t := newTenant(id, ct)
		r.byID[id] = t
		for i, key := range ct.APIKeys {
			h, err := parseKey(key)
			if err != nil {
				return nil, fmt.Errorf("%w: tenant %q, api_keys[%d]: %s", ErrInvalidKey, id, i, err)
			}
			if e, dup := r.byHash[h]; dup && e.tenant != t {
				return nil, fmt.Errorf("%w: tenants %q and %q", ErrDuplicateKey, e.tenant.ID, id)
			}
			r.byHash[h] = keyEntry{hash: h, tenant: t}
		}
	}
	return r, nil
}

// parseKey returns the SHA-256 of a configured key, plain or hashed. The
// error never contains the key.
func parseKey(key string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	prefix := config.HashedKeyPrefix
	if len(key) >= len(prefix) && strings.EqualFold(key[:len(prefix)], prefix) {
		hexSum := key[len(prefix):]
		if key[:len(prefix)] != prefix || len(hexSum) != 2*sha256.Size || strings.ToLower(hexSum) != hexSum {
			return h, errors.New(`a hashed key must be "sha256:" followed by 64 lowercase hex digits`)
		}
		if _, err := hex.Decode(h[:], []byte(hexSum)); err != nil {
			return h, errors.New(`a hashed key must be "sha256:" followed by 64 lowercase hex digits`)
		}
		return h, nil
	}
	if n := utf8.RuneCountInString(key); n < config.MinAPIKeyLength {
		return h, fmt.Errorf("a key must be at least %d characters, got %d", config.MinAPIKeyLength, n)
	}
	return sha256.Sum256([]byte(key)), nil
}

// stackKeyLen is the longest key Authenticate hashes without allocating.
const stackKeyLen = 256

// Authenticate returns the tenant whose API key is key. It hashes key,
// looks the hash up and confirms it in constant time; an empty or unknown
// key reports false. It does not allocate for keys up to 256 bytes.
func (r *Registry) Authenticate(key string) (*Tenant, bool) {
	if r == nil || key == "" {
		return nil, false
	}
	var sum [sha256.Size]byte
	if len(key) <= stackKeyLen {
		var buf [stackKeyLen]byte
		sum = sha256.Sum256(buf[:copy(buf[:], key)])
	} else {
		sum = sha256.Sum256([]byte(key))
	}
	e, ok := r.byHash[sum]
	if !ok || subtle.ConstantTimeCompare(sum[:], e.hash[:]) != 1 {
		return nil, false
	}
	return e.tenant, true
}

// Get returns the tenant called id.
func (r *Registry) Get(id string) (*Tenant, bool) {
	if r == nil {
		return nil, false
	}
	t, ok := r.byID[id]
	return t, ok
}

// IDs returns every tenant id, sorted. The slice is the caller's.
func (r *Registry) IDs() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.ids)
}

// Tenant is one gateway customer with its enabled providers. It is
// immutable and safe for concurrent use. Printing a Tenant with fmt or
// slog shows its ID only, never a setting or credential.
type Tenant struct {
	// ID is the tenant's identifier, e.g. "tableflow".
	ID string

	providers map[string]providerSetup // enabled providers only
	names     []string                 // keys of providers, sorted
	defaults  map[string]string        // capability → provider
}

type providerSetup struct {
	tenant  provider.Tenant // settings and credentials, as plugins see them
	secrets []string        // distinct non-empty credential values, longest first
}

func newTenant(id string, ct config.Tenant) *Tenant {
	t := &Tenant{
		ID:        id,
		providers: make(map[string]providerSetup, len(ct.Providers)),
		defaults:  maps.Clone(ct.Defaults),
	}
	for name, p := range ct.Providers {
		if !p.IsEnabled() {
			continue
		}
		t.providers[name] = providerSetup{
			tenant:  provider.NewTenant(id, p.Settings, p.Credentials),
			secrets: secretValues(p.Credentials),
		}
		t.names = append(t.names, name)
	}
	slices.Sort(t.names)
	return t
}

// secretValues returns the distinct non-empty values of creds, longest
// first so that a redactor replacing them in order never leaves part of a
// longer secret that contains a shorter one.
func secretValues(creds map[string]string) []string {
	var out []string
	for _, v := range creds {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	return out
}

// Enabled reports whether the tenant has the provider enabled.
func (t *Tenant) Enabled(name string) bool {
	_, ok := t.providers[name]
	return ok
}

// Providers returns the names of the enabled providers, sorted. The slice
// is the caller's.
func (t *Tenant) Providers() []string { return slices.Clone(t.names) }

// DefaultProvider returns the provider configured as the tenant's default
// for capability (payments, delivery, messaging), if it is enabled.
func (t *Tenant) DefaultProvider(capability string) (string, bool) {
	name, ok := t.defaults[capability]
	if !ok || !t.Enabled(name) {
		return "", false
	}
	return name, true
}

// ProviderTenant returns the tenant as the plugin called name sees it: id,
// settings and credentials. It reports false when the provider is not
// enabled.
func (t *Tenant) ProviderTenant(name string) (provider.Tenant, bool) {
	p, ok := t.providers[name]
	return p.tenant, ok
}

// SecretValues returns the non-empty credential values of the provider,
// longest first, for redaction (e.g. by the audit log); nil when the
// provider is not enabled. The slice is the caller's; never log it.
func (t *Tenant) SecretValues(name string) []string {
	return slices.Clone(t.providers[name].secrets)
}

// Settings returns a copy of the provider's non-secret settings; nil when
// the provider is not enabled.
func (t *Tenant) Settings(name string) map[string]string {
	p, ok := t.providers[name]
	if !ok {
		return nil
	}
	return p.tenant.Settings()
}

// String returns the tenant's ID.
func (t Tenant) String() string { return t.ID }

// GoString returns a Go-syntax form holding the ID only.
func (t Tenant) GoString() string { return fmt.Sprintf("tenant.Tenant{ID:%q}", t.ID) }

// Format prints the tenant's ID for every verb (the GoString form for %#v),
// so that no verb prints its settings or credentials.
func (t Tenant) Format(f fmt.State, verb rune) {
	s := t.ID
	if verb == 'v' && f.Flag('#') {
		s = t.GoString()
	}
	_, _ = f.Write([]byte(s))
}

// LogValue logs the tenant's ID.
func (t Tenant) LogValue() slog.Value { return slog.StringValue(t.ID) }
