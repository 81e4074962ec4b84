package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the resource store (schema 3).
var (
	bucketResources     = []byte("resources")             // lp(kind) lp(tenant) lp(id) → Resource
	bucketResByProvider = []byte("resources_by_provider") // lp(kind) lp(provider) lp(provider id) → resources key
	bucketResDue        = []byte("resources_due")         // lp(kind) time(CheckAt) resources key; records with CheckAt set
	bucketResCreated    = []byte("resources_by_created")  // lp(kind) lp(tenant) time(CreatedAt) lp(id) → empty
)

const cursorResources = 4

func resourceKey(kind, tenantID, id string) []byte {
	return lp(lp(lp(make([]byte, 0, len(kind)+len(tenantID)+len(id)+6), kind), tenantID), id)
}

func resourceProviderKey(kind, provider, providerID string) []byte {
	return lp(lp(lp(make([]byte, 0, len(kind)+len(provider)+len(providerID)+6), kind), provider), providerID)
}

func resourceDueKey(kind string, at time.Time, rk []byte) []byte {
	return append(timeKey(lp(make([]byte, 0, len(kind)+10+len(rk)), kind), at), rk...)
}

func resourceCreatedPrefix(kind, tenantID string) []byte {
	return lp(lp(make([]byte, 0, len(kind)+len(tenantID)+4), kind), tenantID)
}

func resourceCreatedKey(r *Resource) []byte {
	return lp(timeKey(resourceCreatedPrefix(r.Kind, r.TenantID), r.CreatedAt), r.ID)
}

func checkResource(r *Resource) error {
	if r.Kind == "" || r.TenantID == "" || r.ID == "" {
		return fmt.Errorf("%w: resource needs a kind, a tenant and an id", ErrInvalid)
	}
	if err := checkKey("resource id", resourceKey(r.Kind, r.TenantID, r.ID)); err != nil {
		return err
	}
	if r.ProviderID != "" {
		if err := checkKey("provider id", resourceProviderKey(r.Kind, r.Provider, r.ProviderID)); err != nil {
			return err
		}
	}
	if len(r.Doc) > 0 && !json.Valid(r.Doc) {
		return fmt.Errorf("%w: resource doc is not JSON", ErrInvalid)
	}
	return nil
}

// CreateResource implements ResourceStore.
func (b *Bolt) CreateResource(ctx context.Context, r Resource) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	if err := checkResource(&r); err != nil {
		return err
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.CreatedAt
	}
	r.CreatedAt, r.UpdatedAt = normTime(r.CreatedAt), normTime(r.UpdatedAt)
	if !r.CheckAt.IsZero() {
		r.CheckAt = normTime(r.CheckAt)
	}
	val, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: encode resource: %w", err)
	}
	rk := resourceKey(r.Kind, r.TenantID, r.ID)
	var outcome error
	err = b.batch(func(tx *bolt.Tx) error {
		outcome = nil
		rb := tx.Bucket(bucketResources)
		if rb.Get(rk) != nil {
			outcome = fmt.Errorf("%w: %s %s", ErrExists, r.Kind, r.ID)
			return nil
		}
		if r.ProviderID != "" {
			xb := tx.Bucket(bucketResByProvider)
			xk := resourceProviderKey(r.Kind, r.Provider, r.ProviderID)
			if xb.Get(xk) != nil {
				outcome = fmt.Errorf("%w: provider %s id %s/%s", ErrExists, r.Kind, r.Provider, r.ProviderID)
				return nil
			}
			if err := xb.Put(xk, rk); err != nil {
				return err
			}
		}
		if !r.CheckAt.IsZero() {
			if err := tx.Bucket(bucketResDue).Put(resourceDueKey(r.Kind, r.CheckAt, rk), []byte{}); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketResCreated).Put(resourceCreatedKey(&r), []byte{}); err != nil {
			return err
		}
		return rb.Put(rk, val)
	})
	if err != nil {
		return fmt.Errorf("store: create resource: %w", err)
	}
	return outcome
}

// GetResource implements ResourceStore.
func (b *Bolt) GetResource(ctx context.Context, kind, tenantID, id string) (Resource, error) {
	if err := b.ready(ctx); err != nil {
		return Resource{}, err
	}
	var r Resource
	err := b.view(func(tx *bolt.Tx) error {
		return getResource(tx, resourceKey(kind, tenantID, id), &r)
	})
	return r, err
}

func getResource(tx *bolt.Tx, rk []byte, r *Resource) error {
	v := tx.Bucket(bucketResources).Get(rk)
	if v == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(v, r); err != nil {
		return fmt.Errorf("store: decode resource: %w", err)
	}
	return nil
}

// UpdateResource implements ResourceStore.
func (b *Bolt) UpdateResource(ctx context.Context, kind, tenantID, id string, fn func(*Resource) error) (Resource, error) {
	if err := b.ready(ctx); err != nil {
		return Resource{}, err
	}
	rk := resourceKey(kind, tenantID, id)
	now := normTime(time.Now())
	var (
		out     Resource
		outcome error
	)
	err := b.batch(func(tx *bolt.Tx) error {
		var err error
		out, outcome, err = updateResourceTx(tx, rk, now, fn)
		return err
	})
	if err != nil {
		return Resource{}, fmt.Errorf("store: update resource: %w", err)
	}
	if outcome != nil {
		return Resource{}, outcome
	}
	return out, nil
}

// updateResourceTx is UpdateResource inside tx; outcomes as updatePaymentTx.
func updateResourceTx(tx *bolt.Tx, rk []byte, now time.Time, fn func(*Resource) error) (out Resource, outcome, err error) {
	var r Resource
	if err := getResource(tx, rk, &r); err != nil {
		if errors.Is(err, ErrNotFound) {
			return Resource{}, err, nil
		}
		return Resource{}, nil, err
	}
	old := r
	old.Doc = bytes.Clone(r.Doc)
	if err := fn(&r); err != nil {
		return Resource{}, err, nil
	}
	if r.Kind != old.Kind || r.TenantID != old.TenantID || r.ID != old.ID || !r.CreatedAt.Equal(old.CreatedAt) {
		return Resource{}, fmt.Errorf("%w: update must not change a resource's kind, tenant, id or created_at", ErrInvalid), nil
	}
	if len(r.Doc) > 0 && !json.Valid(r.Doc) {
		return Resource{}, fmt.Errorf("%w: resource doc is not JSON", ErrInvalid), nil
	}
	r.CreatedAt, r.UpdatedAt = old.CreatedAt, now
	if !r.CheckAt.IsZero() {
		r.CheckAt = normTime(r.CheckAt)
	}
	if r.Status != old.Status || !bytes.Equal(r.Doc, old.Doc) {
		r.Version = old.Version + 1
	}

	if r.Provider != old.Provider || r.ProviderID != old.ProviderID {
		xb := tx.Bucket(bucketResByProvider)
		var xk []byte
		if r.ProviderID != "" {
			xk = resourceProviderKey(r.Kind, r.Provider, r.ProviderID)
			if len(xk) > maxKey {
				return Resource{}, fmt.Errorf("%w: provider id too long", ErrInvalid), nil
			}
			if cur := xb.Get(xk); cur != nil && !bytes.Equal(cur, rk) {
				return Resource{}, fmt.Errorf("%w: provider %s id %s/%s", ErrExists, r.Kind, r.Provider, r.ProviderID), nil
			}
		}
		if old.ProviderID != "" {
			ok := resourceProviderKey(old.Kind, old.Provider, old.ProviderID)
			if bytes.Equal(xb.Get(ok), rk) {
				if err := xb.Delete(ok); err != nil {
					return Resource{}, nil, err
				}
			}
		}
		if xk != nil {
			if err := xb.Put(xk, rk); err != nil {
				return Resource{}, nil, err
			}
		}
	}
	if !r.CheckAt.Equal(old.CheckAt) {
		due := tx.Bucket(bucketResDue)
		if !old.CheckAt.IsZero() {
			if err := due.Delete(resourceDueKey(old.Kind, old.CheckAt, rk)); err != nil {
				return Resource{}, nil, err
			}
		}
		if !r.CheckAt.IsZero() {
			if err := due.Put(resourceDueKey(r.Kind, r.CheckAt, rk), []byte{}); err != nil {
				return Resource{}, nil, err
			}
		}
	}
	val, err := json.Marshal(r)
	if err != nil {
		return Resource{}, nil, fmt.Errorf("store: encode resource: %w", err)
	}
	if err := tx.Bucket(bucketResources).Put(rk, val); err != nil {
		return Resource{}, nil, err
	}
	return r, nil, nil
}

// ResourceByProviderID implements ResourceStore.
func (b *Bolt) ResourceByProviderID(ctx context.Context, kind, provider, providerID string) (Resource, error) {
	if err := b.ready(ctx); err != nil {
		return Resource{}, err
	}
	if providerID == "" {
		return Resource{}, ErrNotFound
	}
	var r Resource
	err := b.view(func(tx *bolt.Tx) error {
		rk := tx.Bucket(bucketResByProvider).Get(resourceProviderKey(kind, provider, providerID))
		if rk == nil {
			return ErrNotFound
		}
		return getResource(tx, rk, &r)
	})
	return r, err
}

// DueResources implements ResourceStore.
func (b *Bolt) DueResources(ctx context.Context, kind string, now time.Time, limit int) ([]Resource, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	if err := checkDueLimit(limit); err != nil {
		return nil, err
	}
	prefix := lp(nil, kind)
	end := timeKey(bytes.Clone(prefix), normTime(now).Add(time.Microsecond))
	out := []Resource{}
	err := b.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketResDue).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && bytes.Compare(k, end) < 0 && len(out) < limit; k, _ = c.Next() {
			var r Resource
			if err := getResource(tx, k[len(prefix)+8:], &r); err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// ListResources implements ResourceStore. The cursor is the created-index
// key of the last record returned, after the (kind, tenant) prefix.
func (b *Bolt) ListResources(ctx context.Context, kind, tenantID string, q ListQuery) ([]Resource, string, error) {
	if err := b.ready(ctx); err != nil {
		return nil, "", err
	}
	if err := q.Validate(); err != nil {
		return nil, "", err
	}
	prefix := resourceCreatedPrefix(kind, tenantID)
	start := append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	if q.Cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil || len(raw) < 2 || raw[0] != cursorResources {
			return nil, "", fmt.Errorf("%w: malformed cursor", ErrInvalidQuery)
		}
		start = append(bytes.Clone(prefix), raw[1:]...)
	}
	limit := q.limit()
	out := []Resource{}
	var last []byte
	more := false
	err := b.view(func(tx *bolt.Tx) error {
		if tenantID == "" {
			return nil
		}
		c := tx.Bucket(bucketResCreated).Cursor()
		k, _ := c.Seek(start)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			if len(out) == limit {
				more = true
				return nil
			}
			id, _, ok := cutLP(k[len(prefix)+8:])
			if !ok {
				return fmt.Errorf("store: resource index key: %w", errCorrupt)
			}
			var r Resource
			if err := getResource(tx, resourceKey(kind, tenantID, string(id)), &r); err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
			out = append(out, r)
			last = bytes.Clone(k[len(prefix):])
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		next = base64.RawURLEncoding.EncodeToString(append([]byte{cursorResources}, last...))
	}
	return out, next, nil
}
