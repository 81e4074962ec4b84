// Package courier runs the gateway's last-mile delivery flows: quotes
// fanned out to every delivery provider a tenant enabled, booking,
// tracking and cancelling. The gateway keeps a reference record of each
// delivery (store.Resource of kind "delivery") and announces each status
// transition to the tenant exactly once and in order, whether a webhook,
// a poll or an API call saw it first: every announcement goes through
// store.RecordEvents with a ResourceChange that re-checks the transition
// against the stored record inside the transaction.
package courier

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/plugincall"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/validation"
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Resource kinds this package owns.
const (
	KindDelivery = "delivery"
	KindQuote    = "quote"
)

// LocationInterval is the least time between two delivery.courier_location
// events of one delivery.
const LocationInterval = 30 * time.Second

var (
	// ErrNotFound: no delivery or quote with that id for the tenant.
	ErrNotFound = errors.New("courier: not found")
	// ErrNoProvider: no delivery provider is enabled for the tenant, or
	// the named one is not.
	ErrNoProvider = errors.New("courier: no delivery provider")
	// ErrQuoteExpired: the quote can no longer be booked.
	ErrQuoteExpired = errors.New("courier: quote expired")
	// ErrConflict: the delivery is in a state that refuses the operation
	// (e.g. cancel after pickup).
	ErrConflict = errors.New("courier: refused in the delivery's state")
)

// ValidationError is a request refused before calling anyone.
type ValidationError = validation.Error

// Plugins gives the delivery capability of a plugin and what each running
// plugin offers.
type Plugins interface {
	Delivery(name string) (delivery.Provider, error)
	Catalog() map[string]provider.Info
}

// Config configures a Service. Zero values mean the documented defaults.
type Config struct {
	Store   store.Store
	Plugins Plugins
	Audit   *audit.Recorder
	Tenants *tenant.Registry
	Logger  *slog.Logger
	// CallTimeout bounds one plugin call. Zero means 30s.
	CallTimeout time.Duration
	// QuoteTimeout is each provider's deadline in a quote fan-out. Zero
	// means 8s.
	QuoteTimeout time.Duration
	// PollInterval is how long an unfinished delivery may go without news
	// before the tracker reads its status. Zero means 2m.
	PollInterval time.Duration
	// Notify wakes the event dispatcher after events were recorded.
	Notify func()
	Now    func() time.Time
}

// Service runs delivery flows. It is safe for concurrent use.
type Service struct {
	cfg    Config
	runner plugincall.Runner
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Plugins == nil || cfg.Audit == nil || cfg.Tenants == nil {
		return nil, errors.New("courier: Store, Plugins, Audit and Tenants are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.QuoteTimeout == 0 {
		cfg.QuoteTimeout = 8 * time.Second
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 2 * time.Minute
	}
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, runner: plugincall.Runner{Audit: cfg.Audit, Logger: cfg.Logger, Now: cfg.Now}}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// newID returns prefix and 24 random base32 characters.
func newID(prefix string) string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// DeliveryID is the gateway id of the delivery booked by operation opID.
func DeliveryID(opID string) string { return "del_" + opID }

// providerKey is the idempotency key the provider sees for operation opID.
func providerKey(tenantID, opID string) string { return "pipecore:" + tenantID + ":" + opID }

// ---- request shapes (the tenant API's JSON)

// Money is an amount in minor units.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Address is a postal address.
type Address struct {
	Street     string `json:"street"`
	Number     string `json:"number,omitempty"`
	City       string `json:"city"`
	Region     string `json:"region,omitempty"`
	Country    string `json:"country"`
	PostalCode string `json:"postal_code,omitempty"`
}

// Location is a WGS84 coordinate.
type Location struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// Contact is a person at a stop.
type Contact struct {
	Name  string `json:"name"`
	Phone string `json:"phone"`
}

// Stop is a pickup or drop-off.
type Stop struct {
	Address  Address   `json:"address"`
	Location *Location `json:"location,omitempty"`
	Contact  Contact   `json:"contact"`
	Notes    string    `json:"notes,omitempty"`
}

// Item is one thing to carry.
type Item struct {
	Name     string `json:"name"`
	Quantity int    `json:"quantity"`
	Size     string `json:"size,omitempty"`
	Price    *Money `json:"price,omitempty"`
}

// Request is what a quote or a direct booking asks for.
type Request struct {
	Provider  string     `json:"provider,omitempty"`
	Pickup    Stop       `json:"pickup"`
	Dropoff   Stop       `json:"dropoff"`
	Items     []Item     `json:"items"`
	ReadyAt   *time.Time `json:"ready_at,omitempty"`
	Reference string     `json:"reference"`
}

// Validate checks r without calling anyone.
func (r *Request) Validate() error {
	if err := validStop("pickup", &r.Pickup); err != nil {
		return err
	}
	if err := validStop("dropoff", &r.Dropoff); err != nil {
		return err
	}
	if len(r.Items) == 0 {
		return validation.New("items", "at least one item is required")
	}
	if len(r.Items) > 100 {
		return validation.New("items", "at most 100 items")
	}
	for i, it := range r.Items {
		f := fmt.Sprintf("items[%d]", i)
		switch {
		case strings.TrimSpace(it.Name) == "":
			return validation.New(f+".name", "is required")
		case it.Quantity < 1:
			return validation.New(f+".quantity", "must be a positive integer")
		case it.Size != "" && it.Size != "small" && it.Size != "medium" && it.Size != "large" && it.Size != "xlarge":
			return validation.New(f+".size", "must be small, medium, large or xlarge")
		case it.Price != nil && (provider.Money{Amount: it.Price.Amount, Currency: strings.ToUpper(it.Price.Currency)}).Validate() != nil:
			return validation.New(f+".price", "must be {amount (minor units, positive), currency (ISO 4217)}")
		}
	}
	switch ref := strings.TrimSpace(r.Reference); {
	case ref == "":
		return validation.New("reference", "is required (your order id)")
	case len(ref) > 200:
		return validation.New("reference", "must be at most 200 characters")
	}
	return nil
}

func validStop(name string, s *Stop) error {
	a := &s.Address
	switch {
	case strings.TrimSpace(a.Street) == "":
		return validation.New(name+".address.street", "is required")
	case strings.TrimSpace(a.City) == "":
		return validation.New(name+".address.city", "is required")
	case len(a.Country) != 2:
		return validation.New(name+".address.country", "must be an ISO 3166-1 alpha-2 code such as CL")
	case strings.TrimSpace(s.Contact.Name) == "":
		return validation.New(name+".contact.name", "is required")
	case !isE164(s.Contact.Phone):
		return validation.New(name+".contact.phone", "must be an E.164 number such as +56912345678")
	}
	a.Country = strings.ToUpper(a.Country)
	if l := s.Location; l != nil && (l.Lat < -90 || l.Lat > 90 || l.Lng < -180 || l.Lng > 180) {
		return validation.New(name+".location", "lat must be within ±90 and lng within ±180")
	}
	return nil
}

// isE164 reports whether p is "+" and 8 to 15 digits, the first not 0.
func isE164(p string) bool {
	if len(p) < 9 || len(p) > 16 || p[0] != '+' || p[1] == '0' {
		return false
	}
	for _, c := range p[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (r *Request) stops() (delivery.Stop, delivery.Stop) {
	return sdkStop(r.Pickup), sdkStop(r.Dropoff)
}

func sdkStop(s Stop) delivery.Stop {
	out := delivery.Stop{
		Address: delivery.Address{Street: s.Address.Street, Number: s.Address.Number, City: s.Address.City,
			Region: s.Address.Region, Country: s.Address.Country, PostalCode: s.Address.PostalCode},
		Contact: delivery.Contact{Name: s.Contact.Name, Phone: s.Contact.Phone}, Notes: s.Notes,
	}
	if s.Location != nil {
		out.Location = &delivery.Location{Lat: s.Location.Lat, Lng: s.Location.Lng}
	}
	return out
}

func (r *Request) items() []delivery.Item {
	out := make([]delivery.Item, len(r.Items))
	for i, it := range r.Items {
		out[i] = delivery.Item{Name: it.Name, Quantity: it.Quantity, Size: it.Size}
		if it.Price != nil {
			out[i].Price = &provider.Money{Amount: it.Price.Amount, Currency: strings.ToUpper(it.Price.Currency)}
		}
	}
	return out
}

func (r *Request) readyAt() time.Time {
	if r.ReadyAt == nil {
		return time.Time{}
	}
	return *r.ReadyAt
}

// providers resolves which delivery providers a request goes to: the one
// it names, or every provider enabled for the tenant whose running plugin
// offers delivery.
func (s *Service) providers(t *tenant.Tenant, name string) ([]string, error) {
	catalog := s.cfg.Plugins.Catalog()
	if name != "" {
		if !t.Enabled(name) {
			return nil, fmt.Errorf("%w: provider %q is not enabled for this tenant", ErrNoProvider, name)
		}
		if info, ok := catalog[name]; ok && !info.Has(provider.CapabilityDelivery) {
			return nil, fmt.Errorf("%w: provider %q does not offer deliveries", ErrNoProvider, name)
		}
		return []string{name}, nil
	}
	var out []string
	for _, p := range t.Providers() {
		if info, ok := catalog[p]; ok && info.Has(provider.CapabilityDelivery) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: tenant %s has no delivery provider enabled", ErrNoProvider, t.ID)
	}
	return out, nil
}

func (s *Service) plugin(t *tenant.Tenant, name string) (delivery.Provider, provider.Tenant, error) {
	pt, ok := t.ProviderTenant(name)
	if !ok {
		return nil, provider.Tenant{}, fmt.Errorf("%w: provider %q is not enabled for this tenant", ErrNoProvider, name)
	}
	dp, err := s.cfg.Plugins.Delivery(name)
	if err != nil {
		return nil, provider.Tenant{}, err
	}
	return dp, pt, nil
}

func (s *Service) call(ctx context.Context, t *tenant.Tenant, prov, action, resource string, timeout time.Duration, req any, fn func(context.Context) (any, error)) error {
	if timeout == 0 {
		timeout = s.cfg.CallTimeout
	}
	err := s.runner.Run(ctx, plugincall.Call{
		TenantID: t.ID, Provider: prov, Action: action, Resource: resource,
		Request: req, Secrets: t.SecretValues(prov), Timeout: timeout,
	}, fn)
	if err != nil {
		return fmt.Errorf("courier: %w", err)
	}
	return nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only the package's own plain structs are marshalled
	}
	return b
}
