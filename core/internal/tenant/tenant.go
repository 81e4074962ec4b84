// Package tenant resolves the tenant of a request from its API key and
// holds each tenant's enabled providers with their settings and
// credentials.
//
// A Registry is built from the configuration and the operator-managed
// records in the store (see Sources); when operators change tenants, a new
// one is built and swapped in. API keys are kept only as hashes: SHA-256
// for keys in the config file, a keyed HMAC for keys made by operators.
package tenant

import (
	"cmp"
	"crypto/hmac"
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
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/store"
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

// Registry maps API keys and tokens to tenants. It is safe for concurrent
// use. Its contents change only as a whole, through Swap, when operators
// change tenants at runtime; a Tenant value, once returned, never changes.
type Registry struct {
	state atomic.Pointer[snapshot]
}

// snapshot is one immutable version of the registry.
type snapshot struct {
	byHash  map[[sha256.Size]byte]keyEntry // config keys: SHA-256
	byKeyed map[[sha256.Size]byte]keyEntry // operator keys: HMAC-SHA256(pepper)
	pepper  []byte
	byID    map[string]*Tenant
	ids     []string
	tokens  map[string]map[string]string // tenant -> kid -> token secret
	now     func() time.Time
}

type keyEntry struct {
	hash   [sha256.Size]byte
	tenant *Tenant
	keyID  string // operator keys only
}

// Swap makes r serve n's contents from now on. n must not be used after.
func (r *Registry) Swap(n *Registry) { r.state.Store(n.state.Load()) }

func (r *Registry) snap() *snapshot {
	if r == nil {
		return nil
	}
	return r.state.Load()
}

// New builds a Registry from the configured tenants only. See Build.
func New(tenants map[string]config.Tenant) (*Registry, error) {
	return Build(Sources{Config: tenants})
}

// Sources are everything a Registry is built from.
//
// Precedence: a tenant exists when the config file or the store names it.
// For a tenant in both, the store's record overlays the config: its
// Disabled flag, each default it sets, and per provider the Enabled flag
// and the settings it sets win; stored (operator-set) credentials win over
// config credentials field by field. API keys from both places are
// accepted. A tenant only in the store is defined entirely by it.
type Sources struct {
	Config  map[string]config.Tenant
	Records []store.TenantRecord
	// Keys are operator-made API keys (revoked ones are skipped); their
	// Hash is HMAC-SHA256(Pepper, key) in hex.
	Keys   []store.APIKeyRecord
	Pepper []byte
	// Credentials are the decrypted operator-set credential values.
	Credentials map[CredentialKey]string
	// TokenSecrets are the tenants' token signing secrets: tenant -> key id
	// -> secret.
	TokenSecrets map[string]map[string]string
	// Now is the clock for token expiry. Nil means time.Now.
	Now func() time.Time
}

// CredentialKey names one credential field.
type CredentialKey struct{ Tenant, Provider, Field string }

// Build assembles a Registry (see Sources for the precedence). Plain config
// keys are hashed at once; it rejects an empty tenant id, a short or
// malformed config key and a key shared by two tenants.
func Build(src Sources) (*Registry, error) {
	merged, disabled := Merge(src)
	return build(src, merged, disabled)
}

// Merge applies the precedence of Sources and returns every tenant as a
// config.Tenant (for validation against the plugins' fields) and which
// tenants are disabled. Keys and token secrets are not part of it.
func Merge(src Sources) (map[string]config.Tenant, map[string]bool) {
	merged := make(map[string]config.Tenant, len(src.Config)+len(src.Records))
	disabled := map[string]bool{}
	for id, ct := range src.Config {
		merged[id] = ct
	}
	for _, rec := range src.Records {
		ct := merged[rec.ID]
		ct.Defaults = maps.Clone(ct.Defaults)
		if ct.Defaults == nil {
			ct.Defaults = map[string]string{}
		}
		maps.Copy(ct.Defaults, rec.Defaults)
		provs := make(map[string]config.Provider, len(ct.Providers)+len(rec.Providers))
		for name, p := range ct.Providers {
			provs[name] = p
		}
		for name, tp := range rec.Providers {
			p := provs[name]
			enabled := tp.Enabled
			p.Enabled = &enabled
			p.Settings = maps.Clone(p.Settings)
			if p.Settings == nil {
				p.Settings = map[string]string{}
			}
			maps.Copy(p.Settings, tp.Settings)
			provs[name] = p
		}
		ct.Providers = provs
		merged[rec.ID] = ct
		disabled[rec.ID] = rec.Disabled
	}
	for k, v := range src.Credentials {
		ct, ok := merged[k.Tenant]
		if !ok {
			continue
		}
		p := ct.Providers[k.Provider]
		p.Credentials = maps.Clone(p.Credentials)
		if p.Credentials == nil {
			p.Credentials = map[string]string{}
		}
		p.Credentials[k.Field] = v
		provs := maps.Clone(ct.Providers)
		if provs == nil {
			provs = map[string]config.Provider{}
		}
		provs[k.Provider] = p
		ct.Providers = provs
		merged[k.Tenant] = ct
	}
	return merged, disabled
}

func build(src Sources, merged map[string]config.Tenant, disabled map[string]bool) (*Registry, error) {
	s := &snapshot{
		byHash:  make(map[[sha256.Size]byte]keyEntry),
		byKeyed: make(map[[sha256.Size]byte]keyEntry),
		pepper:  slices.Clone(src.Pepper),
		byID:    make(map[string]*Tenant, len(merged)),
		ids:     slices.Sorted(maps.Keys(merged)),
		tokens:  src.TokenSecrets,
		now:     src.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, id := range s.ids {
		if id == "" {
			return nil, ErrInvalidID
		}
		ct := merged[id]
		t := newTenant(id, ct)
		t.Disabled = disabled[id]
		s.byID[id] = t
		for i, key := range ct.APIKeys {
			h, err := parseKey(key)
			if err != nil {
				return nil, fmt.Errorf("%w: tenant %q, api_keys[%d]: %s", ErrInvalidKey, id, i, err)
			}
			if e, dup := s.byHash[h]; dup && e.tenant != t {
				return nil, fmt.Errorf("%w: tenants %q and %q", ErrDuplicateKey, e.tenant.ID, id)
			}
			s.byHash[h] = keyEntry{hash: h, tenant: t}
		}
	}
	for _, k := range src.Keys {
		t, ok := s.byID[k.TenantID]
		if !ok || k.Revoked() {
			continue
		}
		var h [sha256.Size]byte
		if n, err := hex.Decode(h[:], []byte(k.Hash)); err != nil || n != sha256.Size {
			return nil, fmt.Errorf("%w: stored key %s of tenant %q has a malformed hash", ErrInvalidKey, k.ID, k.TenantID)
		}
		s.byKeyed[h] = keyEntry{hash: h, tenant: t, keyID: k.ID}
	}
	r := &Registry{}
	r.state.Store(s)
	return r, nil
}

// KeyedHash returns the stored form of an operator-made API key:
// HMAC-SHA256(pepper, key) in hex.
func KeyedHash(pepper []byte, key string) string {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil))
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

// Authenticate returns the tenant whose API key or token is key. See
// Identify.
func (r *Registry) Authenticate(key string) (*Tenant, bool) {
	t, _, ok := r.Identify(key)
	return t, ok
}

// Identify resolves key: a short-lived token (TokenPrefix) is verified
// against the tenant's token secrets; anything else is hashed, looked up
// among config keys (SHA-256) and operator keys (keyed hash) and confirmed
// in constant time. keyID names the operator key that matched ("" for
// config keys and tokens). An empty, unknown or refused key, or a disabled
// tenant, reports false. A config key up to 256 bytes costs no allocation.
func (r *Registry) Identify(key string) (t *Tenant, keyID string, ok bool) {
	s := r.snap()
	if s == nil || key == "" {
		return nil, "", false
	}
	if strings.HasPrefix(key, TokenPrefix) {
		c, err := verifyToken(key, func(tid, kid string) (string, bool) {
			sec, ok := s.tokens[tid][kid]
			return sec, ok
		}, s.now())
		if err != nil {
			return nil, "", false
		}
		t, ok := s.byID[c.TenantID]
		if !ok || t.Disabled {
			return nil, "", false
		}
		return t, "", true
	}
	var sum [sha256.Size]byte
	if len(key) <= stackKeyLen {
		var buf [stackKeyLen]byte
		sum = sha256.Sum256(buf[:copy(buf[:], key)])
	} else {
		sum = sha256.Sum256([]byte(key))
	}
	e, found := s.byHash[sum]
	if !found || subtle.ConstantTimeCompare(sum[:], e.hash[:]) != 1 {
		if len(s.byKeyed) == 0 {
			return nil, "", false
		}
		e, found = s.keyed(key)
		if !found {
			return nil, "", false
		}
	}
	if e.tenant.Disabled {
		return nil, "", false
	}
	return e.tenant, e.keyID, true
}

// keyed looks an operator key up by its keyed hash. It is its own function
// so that the config-key path above keeps its hash on the stack.
func (s *snapshot) keyed(key string) (keyEntry, bool) {
	m := hmac.New(sha256.New, s.pepper)
	m.Write([]byte(key))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	e, ok := s.byKeyed[sum]
	if !ok || subtle.ConstantTimeCompare(sum[:], e.hash[:]) != 1 {
		return keyEntry{}, false
	}
	return e, true
}

// Get returns the tenant called id, disabled or not.
func (r *Registry) Get(id string) (*Tenant, bool) {
	s := r.snap()
	if s == nil {
		return nil, false
	}
	t, ok := s.byID[id]
	return t, ok
}

// IDs returns every tenant id, sorted. The slice is the caller's.
func (r *Registry) IDs() []string {
	s := r.snap()
	if s == nil {
		return nil
	}
	return slices.Clone(s.ids)
}

// Tenant is one gateway customer with its enabled providers. It is
// immutable and safe for concurrent use. Printing a Tenant with fmt or
// slog shows its ID only, never a setting or credential.
type Tenant struct {
	// ID is the tenant's identifier, e.g. "tableflow".
	ID string
	// Disabled tenants authenticate nothing and receive no webhooks.
	Disabled bool

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
