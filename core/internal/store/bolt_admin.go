package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// ---- tenants

func validTenantID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: tenant needs an id", ErrInvalid)
	}
	return checkPart("tenant id", id)
}

func getTenant(tx *bolt.Tx, id string) (TenantRecord, bool, error) {
	v := tx.Bucket(bucketTenants).Get([]byte(id))
	if v == nil {
		return TenantRecord{}, false, nil
	}
	var t TenantRecord
	if err := json.Unmarshal(v, &t); err != nil {
		return TenantRecord{}, false, fmt.Errorf("store: decode tenant: %w", err)
	}
	return t, true, nil
}

func putTenant(tx *bolt.Tx, t *TenantRecord) error {
	v, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("store: encode tenant: %w", err)
	}
	return tx.Bucket(bucketTenants).Put([]byte(t.ID), v)
}

// PutTenant implements AdminStore. The tenant id is at most 1 KiB
// (ErrInvalid), like everywhere else.
func (b *Bolt) PutTenant(ctx context.Context, t TenantRecord) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	if err := validTenantID(t.ID); err != nil {
		return err
	}
	now := normTime(time.Now())
	err := b.batch(func(tx *bolt.Tx) error {
		put := t
		old, found, err := getTenant(tx, t.ID)
		if err != nil {
			return err
		}
		switch {
		case found:
			put.CreatedAt = old.CreatedAt
		case put.CreatedAt.IsZero():
			put.CreatedAt = now
		}
		if put.UpdatedAt.IsZero() {
			put.UpdatedAt = now
		}
		put.CreatedAt, put.UpdatedAt = normTime(put.CreatedAt), normTime(put.UpdatedAt)
		return putTenant(tx, &put)
	})
	if err != nil {
		return fmt.Errorf("store: put tenant: %w", err)
	}
	return nil
}

// GetTenant implements AdminStore.
func (b *Bolt) GetTenant(ctx context.Context, id string) (TenantRecord, error) {
	if err := b.ready(ctx); err != nil {
		return TenantRecord{}, err
	}
	var t TenantRecord
	err := b.view(func(tx *bolt.Tx) error {
		var (
			found bool
			err   error
		)
		t, found, err = getTenant(tx, id)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	return t, err
}

// ListTenants implements AdminStore: the bucket's byte order is the ID
// order.
func (b *Bolt) ListTenants(ctx context.Context) ([]TenantRecord, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	out := []TenantRecord{}
	err := b.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTenants).ForEach(func(_, v []byte) error {
			var t TenantRecord
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("store: decode tenant: %w", err)
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateTenant implements AdminStore. fn gets the record freshly decoded
// from the database, so it shares nothing with the stored one or with an
// earlier run.
func (b *Bolt) UpdateTenant(ctx context.Context, id string, fn func(*TenantRecord) error) (TenantRecord, error) {
	if err := b.ready(ctx); err != nil {
		return TenantRecord{}, err
	}
	now := normTime(time.Now())
	var (
		out     TenantRecord
		outcome error
	)
	err := b.batch(func(tx *bolt.Tx) error {
		out, outcome = TenantRecord{}, nil
		t, found, err := getTenant(tx, id)
		if err != nil {
			return err
		}
		if !found {
			outcome = ErrNotFound
			return nil
		}
		createdAt := t.CreatedAt
		if err := fn(&t); err != nil {
			outcome = err
			return nil
		}
		if t.ID != id || !t.CreatedAt.Equal(createdAt) {
			outcome = fmt.Errorf("%w: update must not change a tenant's id or created_at", ErrInvalid)
			return nil
		}
		t.CreatedAt, t.UpdatedAt = createdAt, now
		if err := putTenant(tx, &t); err != nil {
			return err
		}
		out = t
		return nil
	})
	if err != nil {
		return TenantRecord{}, fmt.Errorf("store: update tenant: %w", err)
	}
	if outcome != nil {
		return TenantRecord{}, outcome
	}
	return out, nil
}

// ---- API keys

func getAPIKey(keys *bolt.Bucket, k []byte) (APIKeyRecord, bool, error) {
	v := keys.Get(k)
	if v == nil {
		return APIKeyRecord{}, false, nil
	}
	var r APIKeyRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return APIKeyRecord{}, false, fmt.Errorf("store: decode api key: %w", err)
	}
	return r, true, nil
}

func putAPIKey(keys *bolt.Bucket, k []byte, r *APIKeyRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: encode api key: %w", err)
	}
	return keys.Put(k, v)
}

// PutAPIKey implements AdminStore. The tenant id is at most 1 KiB
// (ErrInvalid).
func (b *Bolt) PutAPIKey(ctx context.Context, k APIKeyRecord) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	if k.ID == "" || k.TenantID == "" {
		return fmt.Errorf("%w: api key needs an id and a tenant", ErrInvalid)
	}
	if err := checkPart("tenant id", k.TenantID); err != nil {
		return err
	}
	if !isHexSHA256(k.Hash) {
		return fmt.Errorf("%w: api key hash must be 64 lowercase hex digits", ErrInvalid)
	}
	if utf8.RuneCountInString(k.Prefix) > APIKeyPrefixLen {
		return fmt.Errorf("%w: api key prefix longer than %d characters", ErrInvalid, APIKeyPrefixLen)
	}
	kk := tenantIDKey(k.TenantID, k.ID)
	if err := checkKey("api key id", kk); err != nil {
		return err
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	k.CreatedAt, k.RevokedAt, k.LastUsedAt = normTime(k.CreatedAt), normTime(k.RevokedAt), normTime(k.LastUsedAt)
	var outcome error
	err := b.batch(func(tx *bolt.Tx) error {
		outcome = nil
		ids, hashes := tx.Bucket(bucketAPIKeyIDs), tx.Bucket(bucketAPIKeyHashes)
		if ids.Get([]byte(k.ID)) != nil {
			outcome = fmt.Errorf("%w: api key %s", ErrExists, k.ID)
			return nil
		}
		if hashes.Get([]byte(k.Hash)) != nil {
			outcome = fmt.Errorf("%w: an api key with that hash", ErrExists)
			return nil
		}
		if err := ids.Put([]byte(k.ID), kk); err != nil {
			return err
		}
		if err := hashes.Put([]byte(k.Hash), []byte(k.ID)); err != nil {
			return err
		}
		return putAPIKey(tx.Bucket(bucketAPIKeys), kk, &k)
	})
	if err != nil {
		return fmt.Errorf("store: put api key: %w", err)
	}
	return outcome
}

// scanAPIKeys returns the keys under prefix (nil: all) that keep says to.
func scanAPIKeys(tx *bolt.Tx, prefix []byte, keep func(*APIKeyRecord) bool) ([]APIKeyRecord, error) {
	out := []APIKeyRecord{}
	c := tx.Bucket(bucketAPIKeys).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var r APIKeyRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, fmt.Errorf("store: decode api key: %w", err)
		}
		if keep(&r) {
			out = append(out, r)
		}
	}
	return out, nil
}

func compareAPIKeys(a, b APIKeyRecord) int {
	return cmp.Or(strings.Compare(a.TenantID, b.TenantID), a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
}

// ListAPIKeys implements AdminStore.
func (b *Bolt) ListAPIKeys(ctx context.Context, tenantID string) ([]APIKeyRecord, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	var out []APIKeyRecord
	err := b.view(func(tx *bolt.Tx) error {
		var err error
		out, err = scanAPIKeys(tx, lp(nil, tenantID), func(*APIKeyRecord) bool { return true })
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, compareAPIKeys)
	return out, nil
}

// AllAPIKeys implements AdminStore. It reads every key, revoked ones too.
func (b *Bolt) AllAPIKeys(ctx context.Context) ([]APIKeyRecord, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	var out []APIKeyRecord
	err := b.view(func(tx *bolt.Tx) error {
		var err error
		out, err = scanAPIKeys(tx, nil, func(r *APIKeyRecord) bool { return !r.Revoked() })
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, compareAPIKeys)
	return out, nil
}

// RevokeAPIKey implements AdminStore.
func (b *Bolt) RevokeAPIKey(ctx context.Context, tenantID, keyID string, at time.Time) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	if at.IsZero() {
		at = time.Now()
	}
	at = normTime(at)
	kk := tenantIDKey(tenantID, keyID)
	var outcome error
	err := b.batch(func(tx *bolt.Tx) error {
		outcome = nil
		keys := tx.Bucket(bucketAPIKeys)
		r, found, err := getAPIKey(keys, kk)
		if err != nil {
			return err
		}
		if !found {
			outcome = fmt.Errorf("%w: api key", ErrNotFound)
			return nil
		}
		if r.Revoked() {
			return nil
		}
		r.RevokedAt = at
		return putAPIKey(keys, kk, &r)
	})
	if err != nil {
		return fmt.Errorf("store: revoke api key: %w", err)
	}
	return outcome
}

// TouchAPIKeys implements AdminStore: one group-committed write for the
// whole map. Times are kept at microsecond precision, so a time within the
// same microsecond as the stored one does not move it.
func (b *Bolt) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	if len(lastUsed) == 0 {
		return nil
	}
	err := b.batch(func(tx *bolt.Tx) error {
		ids, keys := tx.Bucket(bucketAPIKeyIDs), tx.Bucket(bucketAPIKeys)
		for id, at := range lastUsed {
			if id == "" {
				continue
			}
			kk := ids.Get([]byte(id))
			if kk == nil {
				continue
			}
			kk = bytes.Clone(kk)
			r, found, err := getAPIKey(keys, kk)
			if err != nil {
				return err
			}
			if at = normTime(at); !found || !at.After(r.LastUsedAt) {
				continue
			}
			r.LastUsedAt = at
			if err := putAPIKey(keys, kk, &r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: touch api keys: %w", err)
	}
	return nil
}

// ---- credentials

func credentialKey(tenantID, provider, field string) []byte {
	b := make([]byte, 0, len(tenantID)+len(provider)+len(field)+6)
	return lp(lp(lp(b, tenantID), provider), field)
}

// validCredential checks c as PutCredential takes it and returns its key.
func validCredential(c *CredentialRecord) ([]byte, error) {
	if c.TenantID == "" || c.Provider == "" || c.Field == "" {
		return nil, fmt.Errorf("%w: credential needs a tenant, a provider and a field", ErrInvalid)
	}
	if len(c.Sealed) == 0 || !json.Valid(c.Sealed) {
		return nil, fmt.Errorf("%w: credential %s/%s: sealed value is empty or not JSON", ErrInvalid, c.Provider, c.Field)
	}
	k := credentialKey(c.TenantID, c.Provider, c.Field)
	return k, checkKey("credential", k)
}

// encodeCredential stores Sealed as a blob body, so it comes back byte for
// byte (encoding/json would compact it).
func encodeCredential(c *CredentialRecord) ([]byte, error) {
	m := *c
	m.Sealed = nil
	meta, err := json.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("store: encode credential: %w", err)
	}
	return appendBlob(make([]byte, 0, blobSize(meta, c.Sealed)), meta, c.Sealed), nil
}

func decodeCredential(v []byte) (CredentialRecord, error) {
	meta, body, err := splitBlob(v)
	if err != nil {
		return CredentialRecord{}, fmt.Errorf("store: decode credential: %w", err)
	}
	var c CredentialRecord
	if err := json.Unmarshal(meta, &c); err != nil {
		return CredentialRecord{}, fmt.Errorf("store: decode credential: %w", err)
	}
	c.Sealed = cloneBody(body)
	return c, nil
}

// PutCredential implements AdminStore.
func (b *Bolt) PutCredential(ctx context.Context, c CredentialRecord) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	k, err := validCredential(&c)
	if err != nil {
		return err
	}
	if c.SetAt.IsZero() {
		c.SetAt = time.Now()
	}
	c.SetAt = normTime(c.SetAt)
	val, err := encodeCredential(&c)
	if err != nil {
		return err
	}
	err = b.batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCredentials).Put(k, val)
	})
	if err != nil {
		return fmt.Errorf("store: put credential: %w", err)
	}
	return nil
}

// DeleteCredential implements AdminStore.
func (b *Bolt) DeleteCredential(ctx context.Context, tenantID, provider, field string) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	k := credentialKey(tenantID, provider, field)
	var outcome error
	err := b.batch(func(tx *bolt.Tx) error {
		outcome = nil
		cb := tx.Bucket(bucketCredentials)
		if cb.Get(k) == nil {
			outcome = fmt.Errorf("%w: credential", ErrNotFound)
			return nil
		}
		return cb.Delete(k)
	})
	if err != nil {
		return fmt.Errorf("store: delete credential: %w", err)
	}
	return outcome
}

func compareCredentials(a, b CredentialRecord) int {
	return cmp.Or(strings.Compare(a.TenantID, b.TenantID), strings.Compare(a.Provider, b.Provider), strings.Compare(a.Field, b.Field))
}

// scanCredentials returns the credentials under prefix (nil: all), sorted.
// Keys are length-prefixed, so their byte order is not the sort order.
func (b *Bolt) scanCredentials(ctx context.Context, prefix []byte) ([]CredentialRecord, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	out := []CredentialRecord{}
	err := b.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCredentials).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			cr, err := decodeCredential(v)
			if err != nil {
				return err
			}
			out = append(out, cr)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, compareCredentials)
	return out, nil
}

// ListCredentials implements AdminStore.
func (b *Bolt) ListCredentials(ctx context.Context, tenantID string) ([]CredentialRecord, error) {
	return b.scanCredentials(ctx, lp(nil, tenantID))
}

// AllCredentials implements AdminStore.
func (b *Bolt) AllCredentials(ctx context.Context) ([]CredentialRecord, error) {
	return b.scanCredentials(ctx, nil)
}

// ReplaceCredentials implements AdminStore, in one write transaction of its
// own (a rewrap may be large; it does not hold up the group commits).
func (b *Bolt) ReplaceCredentials(ctx context.Context, recs []CredentialRecord) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	keys := make([][]byte, len(recs))
	seen := make(map[string]bool, len(recs))
	for i := range recs {
		k, err := validCredential(&recs[i])
		if err != nil {
			return fmt.Errorf("credential %d: %w", i, err)
		}
		if seen[string(k)] {
			return fmt.Errorf("%w: credential %s/%s twice", ErrInvalid, recs[i].Provider, recs[i].Field)
		}
		seen[string(k)], keys[i] = true, k
	}
	err := b.update(func(tx *bolt.Tx) error {
		cb := tx.Bucket(bucketCredentials)
		for i := range recs {
			v := cb.Get(keys[i])
			if v == nil {
				continue // deleted since it was read
			}
			cur, err := decodeCredential(v)
			if err != nil {
				return err
			}
			if !cur.SetAt.Equal(normTime(recs[i].SetAt)) || cur.Fingerprint != recs[i].Fingerprint {
				continue // set again since it was read
			}
			cur.Sealed = recs[i].Sealed
			val, err := encodeCredential(&cur)
			if err != nil {
				return err
			}
			if err := cb.Put(keys[i], val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: replace credentials: %w", err)
	}
	return nil
}
