package store

import (
	"context"
	"encoding/json"
	"time"
)

// ResourceStore keeps the gateway's reference records of provider objects
// other than payments: deliveries ("del_…"), delivery quotes ("dq_…"),
// messages ("msg_…"), subscriptions. Each record carries what every kind
// shares (tenant, provider, the provider's id, a status, when to check it
// next) and the kind's own document as JSON, which the owning service
// defines; the store never interprets Doc.
//
// The rules of Store apply: every method is tenant-scoped, a record of
// another tenant is ErrNotFound, times come back UTC at µs precision.
type ResourceStore interface {
	// CreateResource stores a new record. Zero CreatedAt/UpdatedAt are
	// set to now. ErrExists when the tenant already has a record of that
	// kind and id, or another record of the kind has the same (Provider,
	// ProviderID); ErrInvalid without a kind, tenant or id.
	CreateResource(ctx context.Context, r Resource) error
	// GetResource returns the tenant's record, or ErrNotFound.
	GetResource(ctx context.Context, kind, tenantID, id string) (Resource, error)
	// UpdateResource is read-modify-write of one record with
	// UpdatePayment's rules for fn (it may run more than once, must not
	// change Kind, TenantID, ID or CreatedAt). It sets UpdatedAt.
	UpdateResource(ctx context.Context, kind, tenantID, id string, fn func(*Resource) error) (Resource, error)
	// ResourceByProviderID finds a record of any tenant by the provider's
	// id for it, or ErrNotFound.
	ResourceByProviderID(ctx context.Context, kind, provider, providerID string) (Resource, error)
	// DueResources returns up to limit records of the kind, of every
	// tenant, whose CheckAt is set and at or before now, earliest first.
	// A limit below 1 is ErrInvalid.
	DueResources(ctx context.Context, kind string, now time.Time, limit int) ([]Resource, error)
	// ListResources returns the tenant's records of a kind, newest first
	// by CreatedAt, with ListQuery's limits and cursors.
	ListResources(ctx context.Context, kind, tenantID string, q ListQuery) ([]Resource, string, error)
}

// Resource is the gateway's record of one provider object.
type Resource struct {
	Kind       string `json:"kind"` // "delivery", "quote", "message", ...
	ID         string `json:"id"`
	TenantID   string `json:"tenant_id"`
	Provider   string `json:"provider"`
	ProviderID string `json:"provider_id,omitempty"`
	Status     string `json:"status"`
	// Version counts the updates that changed Status or Doc; services use
	// it to order what they announce.
	Version uint64 `json:"version"`
	// CheckAt, when set, is when a background job should look at the
	// record again (poll its status, reconcile it, expire it).
	CheckAt time.Time `json:"check_at"`
	// Doc is the kind's own document.
	Doc       json.RawMessage `json:"doc,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// ResourceChange updates a resource as part of RecordEvents. Apply gets the
// stored record (UpdateResource's rules for fn) and reports whether the
// events listed in Events stay in the batch: false drops them and writes
// neither them nor the change. A missing record drops them too. This is how
// a status transition is announced exactly once, whether a webhook or a
// poll saw it first.
type ResourceChange struct {
	Kind, ID string
	// Events are indexes into the batch's Events.
	Events []int
	Apply  func(*Resource) bool
}

// Linked is one event a linker (package normalize) records for a webhook
// event about a resource: its type and catalog data.
type Linked struct {
	Type string
	Data map[string]any
}
