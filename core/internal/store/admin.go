package store

import (
	"context"
	"encoding/json"
	"time"
)

// AdminStore holds what operators manage at runtime: tenants, their API
// keys and their sealed provider credentials. It is part of Store; see the
// package documentation for the contract.
//
// The store keeps no secret in the clear: an API key is stored only as its
// keyed hash, a credential only as the value package vault sealed.
type AdminStore interface {
	// PutTenant creates or replaces the tenant t.ID. Replacing keeps the
	// CreatedAt of the stored tenant, whatever t says; a new tenant's zero
	// CreatedAt is now. A zero UpdatedAt is now. ErrInvalid without an ID.
	PutTenant(ctx context.Context, t TenantRecord) error
	// GetTenant returns the tenant, or ErrNotFound.
	GetTenant(ctx context.Context, id string) (TenantRecord, error)
	// ListTenants returns every tenant sorted by ID (empty, not nil, when
	// there are none).
	ListTenants(ctx context.Context) ([]TenantRecord, error)
	// UpdateTenant is read-modify-write of one tenant with UpdatePayment's
	// rules for fn: fn gets a copy that shares nothing with the stored
	// record, may run more than once, and its error aborts the update and is
	// returned as is. fn must not change ID or CreatedAt (ErrInvalid).
	// UpdatedAt is set to now. ErrNotFound if there is no such tenant.
	UpdateTenant(ctx context.Context, id string, fn func(*TenantRecord) error) (TenantRecord, error)

	// PutAPIKey stores a new API key. ErrExists when any tenant already has
	// a key with k.ID or k.Hash, revoked keys included (a hash is never
	// reused). ErrInvalid without an ID or TenantID, when Hash is not 64
	// lowercase hex digits, or when Prefix is longer than APIKeyPrefixLen:
	// both guard against storing the key itself. A zero CreatedAt is now.
	PutAPIKey(ctx context.Context, k APIKeyRecord) error
	// ListAPIKeys returns the tenant's keys, revoked ones included, sorted
	// by CreatedAt and then ID.
	ListAPIKeys(ctx context.Context, tenantID string) ([]APIKeyRecord, error)
	// AllAPIKeys returns every tenant's keys that are not revoked, sorted by
	// TenantID, CreatedAt and ID. The gateway loads them at start and after
	// every change.
	AllAPIKeys(ctx context.Context) ([]APIKeyRecord, error)
	// RevokeAPIKey sets the key's RevokedAt to at (zero: now). Revoking a
	// revoked key keeps its first RevokedAt and returns nil. ErrNotFound if
	// the tenant has no such key, another tenant's key included.
	RevokeAPIKey(ctx context.Context, tenantID, keyID string, at time.Time) error
	// TouchAPIKeys records when keys were last used, keyID → time, in one
	// write. LastUsedAt only moves forward: an earlier time than the stored
	// one is ignored, as is an unknown key id.
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error

	// PutCredential creates or replaces the tenant's credential (Provider,
	// Field). Sealed is kept byte for byte. ErrInvalid without a TenantID,
	// Provider or Field, or when Sealed is empty or not JSON. A zero SetAt
	// is now.
	PutCredential(ctx context.Context, c CredentialRecord) error
	// DeleteCredential removes the tenant's credential, or returns
	// ErrNotFound.
	DeleteCredential(ctx context.Context, tenantID, provider, field string) error
	// ListCredentials returns the tenant's credentials sorted by Provider
	// and then Field.
	ListCredentials(ctx context.Context, tenantID string) ([]CredentialRecord, error)
	// AllCredentials returns every tenant's credentials sorted by TenantID,
	// Provider and Field.
	AllCredentials(ctx context.Context) ([]CredentialRecord, error)
	// ReplaceCredentials rewrites existing credentials in one transaction:
	// the key-rotation rewrap, which reads AllCredentials, seals each value
	// again and hands the records back with the new Sealed. Only Sealed
	// changes; the rest of the stored record stays. A record that no longer
	// exists is skipped, and so is one that was set again since it was read
	// (its stored SetAt or Fingerprint differs from the record's): a rewrap
	// never reverts a credential an operator just changed. Every record is
	// checked as in PutCredential and a key may appear once (ErrInvalid);
	// on any error nothing is written.
	ReplaceCredentials(ctx context.Context, recs []CredentialRecord) error
}

// TenantRecord is a tenant as operators manage it.
type TenantRecord struct {
	ID       string `json:"id"`
	Disabled bool   `json:"disabled"`
	// Defaults are the tenant's default settings, by name.
	Defaults map[string]string `json:"defaults,omitempty"`
	// Providers are the tenant's provider settings, by provider name.
	Providers map[string]TenantProvider `json:"providers,omitempty"`
	CreatedAt time.Time                 `json:"created_at"`
	UpdatedAt time.Time                 `json:"updated_at"`
}

// TenantProvider is one provider's settings for a tenant. Secrets are not
// settings: they are credentials (CredentialRecord).
type TenantProvider struct {
	Enabled  bool              `json:"enabled"`
	Settings map[string]string `json:"settings,omitempty"`
}

// APIKeyPrefixLen is the most characters of an API key APIKeyRecord.Prefix
// may hold.
const APIKeyPrefixLen = 12

// APIKeyRecord is one tenant API key. The key itself is never stored.
type APIKeyRecord struct {
	ID       string `json:"id"` // "key_…"
	TenantID string `json:"tenant_id"`
	// Hash is the keyed hash of the key (HMAC-SHA256, lowercase hex).
	Hash string `json:"hash"`
	// Prefix is the key's first characters (at most APIKeyPrefixLen), for
	// display.
	Prefix     string    `json:"prefix"`
	CreatedAt  time.Time `json:"created_at"`
	RevokedAt  time.Time `json:"revoked_at"`   // zero: active
	LastUsedAt time.Time `json:"last_used_at"` // zero: never used
}

// Revoked reports whether the key was revoked.
func (k APIKeyRecord) Revoked() bool { return !k.RevokedAt.IsZero() }

// CredentialRecord is one sealed credential field of a tenant's provider,
// e.g. {"t_1", "stripe", "secret_key"}.
type CredentialRecord struct {
	TenantID string `json:"tenant_id"`
	Provider string `json:"provider"`
	Field    string `json:"field"`
	// Sealed is the encrypted value produced by package vault; the store
	// keeps it byte for byte and never looks inside.
	Sealed json.RawMessage `json:"sealed"`
	// Fingerprint identifies the plaintext without revealing it (vault's
	// keyed hash); it lets operators see that a value changed.
	Fingerprint string    `json:"fingerprint,omitempty"`
	SetAt       time.Time `json:"set_at"`
	SetBy       string    `json:"set_by,omitempty"` // who set the value
}
