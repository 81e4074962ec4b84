package courier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/validation"
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Courier is who carries a delivery.
type Courier struct {
	Name     string    `json:"name,omitempty"`
	Phone    string    `json:"phone,omitempty"`
	Vehicle  string    `json:"vehicle,omitempty"`
	Location *Location `json:"location,omitempty"`
}

// Proof is the provider's proof of delivery.
type Proof struct {
	PhotoURL     string `json:"photo_url,omitempty"`
	SignatureURL string `json:"signature_url,omitempty"`
	PIN          string `json:"pin,omitempty"`
}

// Delivery is the gateway's view of one delivery, as the tenant sees it.
type Delivery struct {
	ID                 string     `json:"id"` // "del_…"
	Provider           string     `json:"provider"`
	ProviderDeliveryID string     `json:"provider_delivery_id"`
	Status             string     `json:"status"`
	Reference          string     `json:"reference"`
	QuoteID            string     `json:"quote_id,omitempty"`
	Fee                *Money     `json:"fee,omitempty"`
	TrackingURL        string     `json:"tracking_url,omitempty"`
	Courier            *Courier   `json:"courier,omitempty"`
	ETA                *time.Time `json:"eta,omitempty"`
	Proof              *Proof     `json:"proof_of_delivery,omitempty"`
	Reason             string     `json:"reason,omitempty"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
}

// doc is the delivery's document in the store: the view's fields that are
// not the resource's own, and the tracking state.
type doc struct {
	Reference      string     `json:"reference"`
	QuoteID        string     `json:"quote_id,omitempty"`
	Fee            *Money     `json:"fee,omitempty"`
	TrackingURL    string     `json:"tracking_url,omitempty"`
	Courier        *Courier   `json:"courier,omitempty"`
	ETA            *time.Time `json:"eta,omitempty"`
	Proof          *Proof     `json:"proof_of_delivery,omitempty"`
	Reason         string     `json:"reason,omitempty"`
	CorrelationID  string     `json:"correlation_id,omitempty"`
	LastLocationAt time.Time  `json:"last_location_at"`
	Polls          int        `json:"polls,omitempty"`
}

func decodeDoc(r *store.Resource) doc {
	var d doc
	_ = json.Unmarshal(r.Doc, &d) // written by this package only
	return d
}

func view(r store.Resource) Delivery {
	d := decodeDoc(&r)
	return Delivery{
		ID: r.ID, Provider: r.Provider, ProviderDeliveryID: r.ProviderID, Status: r.Status,
		Reference: d.Reference, QuoteID: d.QuoteID, Fee: d.Fee, TrackingURL: d.TrackingURL, Courier: d.Courier,
		ETA: d.ETA, Proof: d.Proof, Reason: d.Reason, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// rank orders the statuses; a delivery only moves to a higher rank, and
// the terminal ones share the highest.
func rank(s string) int {
	switch delivery.Status(s) {
	case delivery.StatusPending:
		return 0
	case delivery.StatusAssigned:
		return 1
	case delivery.StatusPickedUp:
		return 2
	case delivery.StatusDelivered, delivery.StatusCancelled, delivery.StatusFailed:
		return 3
	}
	return -1
}

// Terminal reports whether a delivery in status s is finished.
func Terminal(s string) bool { return rank(s) == 3 }

// eventType is the event announcing a move to status s.
func eventType(s string) string {
	switch delivery.Status(s) {
	case delivery.StatusPending:
		return "delivery.created"
	case delivery.StatusAssigned:
		return "delivery.assigned"
	case delivery.StatusPickedUp:
		return "delivery.picked_up"
	case delivery.StatusDelivered:
		return "delivery.completed"
	case delivery.StatusCancelled:
		return "delivery.cancelled"
	case delivery.StatusFailed:
		return "delivery.failed"
	}
	return ""
}

// statusOf is the status an event type announces ("" for none).
func statusOf(typ string) string {
	for _, s := range []delivery.Status{delivery.StatusPending, delivery.StatusAssigned, delivery.StatusPickedUp,
		delivery.StatusDelivered, delivery.StatusCancelled, delivery.StatusFailed} {
		if eventType(string(s)) == typ {
			return string(s)
		}
	}
	return ""
}

// CreateInput books a delivery: from a quote, or directly.
type CreateInput struct {
	QuoteID string
	Request *Request
}

// Create books a delivery as operation opID: the delivery id and the
// provider's idempotency key derive from opID, so running the same
// operation again returns the same delivery. It announces delivery.created.
func (s *Service) Create(ctx context.Context, t *tenant.Tenant, opID string, in CreateInput) (Delivery, error) {
	var (
		req     Request
		quoteID string
		provQID string
		name    string
	)
	switch {
	case in.QuoteID != "" && in.Request != nil:
		return Delivery{}, validation.New("quote_id", "give either quote_id or a delivery request, not both")
	case in.QuoteID != "":
		_, qd, err := s.loadQuote(ctx, t, in.QuoteID)
		if err != nil {
			return Delivery{}, err
		}
		req, quoteID, provQID, name = qd.Request, in.QuoteID, qd.ProviderQuoteID, qd.Request.Provider
	case in.Request != nil:
		req = *in.Request
		if err := req.Validate(); err != nil {
			return Delivery{}, err
		}
		if req.Provider == "" {
			return Delivery{}, validation.New("provider", "is required when booking without a quote_id")
		}
		names, err := s.providers(t, req.Provider)
		if err != nil {
			return Delivery{}, err
		}
		name = names[0]
	default:
		return Delivery{}, validation.New("quote_id", "is required (or provider with pickup, dropoff, items and reference)")
	}
	dp, pt, err := s.plugin(t, name)
	if err != nil {
		return Delivery{}, err
	}
	id := DeliveryID(opID)
	pickup, dropoff := req.stops()
	preq := delivery.CreateRequest{
		Tenant: pt, IdempotencyKey: providerKey(t.ID, opID), DeliveryID: id, QuoteID: provQID,
		Pickup: pickup, Dropoff: dropoff, Items: req.items(), ReadyAt: req.readyAt(), Reference: req.Reference,
	}
	var got delivery.Shipment
	av := quoteView(req)
	av["quote_id"], av["idempotency_key"] = provQID, preq.IdempotencyKey
	err = s.call(ctx, t, name, "delivery.create", id, 0, av, func(ctx context.Context) (any, error) {
		var err error
		got, err = dp.CreateShipment(ctx, preq)
		return shipmentView(got), err
	})
	if err != nil {
		return Delivery{}, err
	}
	if got.ID == "" {
		return Delivery{}, fmt.Errorf("courier: %s returned a delivery without an id", name)
	}
	now := s.now()
	d := doc{Reference: req.Reference, QuoteID: quoteID, CorrelationID: provider.RequestID(ctx)}
	merge(&d, got)
	res := store.Resource{
		Kind: KindDelivery, ID: id, TenantID: t.ID, Provider: name, ProviderID: got.ID,
		Status: "", Doc: mustJSON(d), CheckAt: now.Add(s.cfg.PollInterval), CreatedAt: now,
	}
	err = s.cfg.Store.CreateResource(ctx, res)
	if err != nil && !errors.Is(err, store.ErrExists) {
		return Delivery{}, fmt.Errorf("courier: store %s: %w", id, err)
	}
	// Announce the booking (once, whatever a retry does), then the
	// provider's status if it is already further along.
	if err := s.observe(ctx, t.ID, id, observation{status: string(delivery.StatusPending), at: now}); err != nil {
		return Delivery{}, err
	}
	if st := string(got.Status); rank(st) > 0 {
		if err := s.observe(ctx, t.ID, id, observation{status: st, shipment: &got, at: now}); err != nil {
			return Delivery{}, err
		}
	}
	return s.Get(ctx, t, id, false)
}

// Get returns the tenant's delivery; with refresh it first reads the
// provider's current status and announces any transition.
func (s *Service) Get(ctx context.Context, t *tenant.Tenant, id string, refresh bool) (Delivery, error) {
	r, err := s.load(ctx, t.ID, id)
	if err != nil {
		return Delivery{}, err
	}
	if refresh {
		if err := s.poll(ctx, t, r); err != nil {
			return Delivery{}, err
		}
		if r, err = s.load(ctx, t.ID, id); err != nil {
			return Delivery{}, err
		}
	}
	return view(r), nil
}

// List returns the tenant's deliveries newest first.
func (s *Service) List(ctx context.Context, t *tenant.Tenant, q store.ListQuery) ([]Delivery, string, error) {
	rs, next, err := s.cfg.Store.ListResources(ctx, KindDelivery, t.ID, q)
	if err != nil {
		return nil, "", err
	}
	out := make([]Delivery, len(rs))
	for i, r := range rs {
		out[i] = view(r)
	}
	return out, next, nil
}

// Cancel cancels the tenant's delivery as operation opID. A delivery
// already picked up, finished, or one the provider refuses to cancel, is
// ErrConflict with the reason.
func (s *Service) Cancel(ctx context.Context, t *tenant.Tenant, id, opID, reason string) (Delivery, error) {
	r, err := s.load(ctx, t.ID, id)
	if err != nil {
		return Delivery{}, err
	}
	switch {
	case r.Status == string(delivery.StatusCancelled):
		return view(r), nil
	case Terminal(r.Status):
		return Delivery{}, fmt.Errorf("%w: delivery %s is already %s", ErrConflict, id, r.Status)
	case rank(r.Status) >= rank(string(delivery.StatusPickedUp)):
		return Delivery{}, fmt.Errorf("%w: delivery %s was already picked up; it can no longer be cancelled", ErrConflict, id)
	}
	dp, pt, err := s.plugin(t, r.Provider)
	if err != nil {
		return Delivery{}, err
	}
	req := delivery.CancelRequest{Tenant: pt, IdempotencyKey: providerKey(t.ID, opID), ID: r.ProviderID, Reason: reason}
	var got delivery.Shipment
	err = s.call(ctx, t, r.Provider, "delivery.cancel", id, 0, map[string]any{"id": req.ID, "idempotency_key": req.IdempotencyKey, "reason": reason}, func(ctx context.Context) (any, error) {
		var err error
		got, err = dp.CancelShipment(ctx, req)
		return shipmentView(got), err
	})
	if err != nil {
		if provider.KindOf(err) == provider.KindPermanent {
			return Delivery{}, fmt.Errorf("%w: the provider refused to cancel delivery %s: %s", ErrConflict, id, providerMessage(err))
		}
		return Delivery{}, err
	}
	st := string(got.Status)
	if st == "" || rank(st) < 0 {
		st = string(delivery.StatusCancelled)
	}
	if got.Reason == "" {
		got.Reason = reason
	}
	if err := s.observe(ctx, t.ID, id, observation{status: st, shipment: &got, at: s.now()}); err != nil {
		return Delivery{}, err
	}
	return s.Get(ctx, t, id, false)
}

func (s *Service) load(ctx context.Context, tenantID, id string) (store.Resource, error) {
	r, err := s.cfg.Store.GetResource(ctx, KindDelivery, tenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return r, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return r, err
}

// merge copies what the provider says of a shipment onto the document.
func merge(d *doc, sh delivery.Shipment) {
	if sh.Fee.Currency != "" {
		d.Fee = &Money{sh.Fee.Amount, sh.Fee.Currency}
	}
	if sh.TrackingURL != "" {
		d.TrackingURL = sh.TrackingURL
	}
	if c := sh.Courier; c != nil {
		nc := &Courier{Name: c.Name, Phone: c.Phone, Vehicle: c.Vehicle}
		if c.Location != nil {
			nc.Location = &Location{c.Location.Lat, c.Location.Lng}
		} else if d.Courier != nil {
			nc.Location = d.Courier.Location
		}
		d.Courier = nc
	}
	if !sh.ETA.IsZero() {
		eta := sh.ETA.UTC()
		d.ETA = &eta
	}
	if p := sh.Proof; p != nil {
		d.Proof = &Proof{PhotoURL: p.PhotoURL, SignatureURL: p.SignatureURL, PIN: p.PIN}
	}
	if sh.Reason != "" {
		d.Reason = sh.Reason
	}
}

// shipmentView is what the audit log keeps of a provider's shipment.
func shipmentView(sh delivery.Shipment) map[string]any {
	return map[string]any{"id": sh.ID, "status": sh.Status, "fee": sh.Fee, "tracking_url": sh.TrackingURL, "reason": sh.Reason}
}

// eventData is the catalog data of a delivery event.
func eventData(r *store.Resource, d *doc, status string) map[string]any {
	data := map[string]any{
		"delivery_id": r.ID, "provider_delivery_id": r.ProviderID, "status": status, "reference": d.Reference,
		"tracking_url": d.TrackingURL,
	}
	if d.Fee != nil {
		data["fee"] = d.Fee
	}
	if d.Courier != nil {
		data["courier"] = d.Courier
	}
	if d.ETA != nil {
		data["eta"] = d.ETA.Format(time.RFC3339)
	}
	if status == string(delivery.StatusDelivered) && d.Proof != nil {
		data["proof_of_delivery"] = d.Proof
	}
	if (status == string(delivery.StatusCancelled) || status == string(delivery.StatusFailed)) && d.Reason != "" {
		data["reason"] = d.Reason
	}
	return data
}

// providerMessage is the provider's own words in err, without the
// gateway's wrapping.
func providerMessage(err error) string {
	var pe *provider.Error
	if errors.As(err, &pe) && pe.Err != nil {
		return pe.Err.Error()
	}
	return err.Error()
}
