package courier

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pipecore/pipecore/core/internal/event"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// observation is one thing learnt about a delivery: a status (possibly the
// same as before), and the provider's shipment or event data with it.
type observation struct {
	status   string
	shipment *delivery.Shipment
	data     map[string]any // a webhook event's data
	location *Location      // a courier position update
	at       time.Time
}

// transition applies o to the stored delivery r and reports which event it
// announces: "" when there is nothing new to tell (same or earlier status,
// a location within LocationInterval of the last one). It only computes;
// the store runs it inside the transaction that records the event.
func (s *Service) transition(r *store.Resource, o observation) (typ string) {
	d := decodeDoc(r)
	if o.shipment != nil {
		merge(&d, *o.shipment)
	}
	if o.data != nil {
		mergeData(&d, o.data)
	}
	switch {
	case o.location != nil:
		if d.Courier == nil {
			d.Courier = &Courier{}
		}
		d.Courier.Location = o.location
		if Terminal(r.Status) || (!d.LastLocationAt.IsZero() && o.at.Sub(d.LastLocationAt) < LocationInterval) {
			r.Doc = mustJSON(d)
			return ""
		}
		d.LastLocationAt = o.at
		typ = "delivery.courier_location"
	case rank(o.status) > rank(r.Status) && !Terminal(r.Status):
		r.Status = o.status
		typ = eventType(o.status)
	}
	// News pushes the next poll out; a finished delivery is not polled.
	if Terminal(r.Status) {
		r.CheckAt = time.Time{}
	} else if typ != "" {
		r.CheckAt = o.at.Add(s.cfg.PollInterval)
	}
	r.Doc = mustJSON(d)
	return typ
}

// mergeData copies a webhook event's catalog fields onto the document.
func mergeData(d *doc, data map[string]any) {
	raw, err := json.Marshal(data)
	if err != nil {
		return
	}
	var in struct {
		Fee         *Money     `json:"fee"`
		TrackingURL string     `json:"tracking_url"`
		Courier     *Courier   `json:"courier"`
		ETA         *time.Time `json:"eta"`
		Proof       *Proof     `json:"proof_of_delivery"`
		Reason      string     `json:"reason"`
	}
	if json.Unmarshal(raw, &in) != nil {
		return
	}
	sh := delivery.Shipment{TrackingURL: in.TrackingURL, Reason: in.Reason}
	if in.Fee != nil {
		sh.Fee = provider.Money{Amount: in.Fee.Amount, Currency: in.Fee.Currency}
	}
	if c := in.Courier; c != nil && (c.Name != "" || c.Phone != "" || c.Vehicle != "") {
		sh.Courier = &delivery.Courier{Name: c.Name, Phone: c.Phone, Vehicle: c.Vehicle}
		if c.Location != nil {
			sh.Courier.Location = &delivery.Location{Lat: c.Location.Lat, Lng: c.Location.Lng}
		}
	} else if c != nil && c.Location != nil && d.Courier != nil {
		d.Courier.Location = c.Location
	}
	if in.ETA != nil {
		sh.ETA = *in.ETA
	}
	if p := in.Proof; p != nil {
		sh.Proof = &delivery.ProofOfDelivery{PhotoURL: p.PhotoURL, SignatureURL: p.SignatureURL, PIN: p.PIN}
	}
	merge(d, sh)
}

// observe records o against the tenant's delivery id: when it is news, the
// event is recorded (and delivered to the tenant's endpoints) in the same
// transaction as the delivery's new state; otherwise nothing is written.
func (s *Service) observe(ctx context.Context, tenantID, id string, o observation) error {
	r, err := s.load(ctx, tenantID, id)
	if err != nil {
		return err
	}
	// Render the event from what the transition would make of the record
	// now; the store re-runs the transition on the record as stored and
	// drops the event unless it is still news.
	probe := r
	typ := s.transition(&probe, o)
	if typ == "" {
		if o.shipment != nil || o.data != nil {
			// Same status, fresher details (courier, ETA...): keep them.
			_, err := s.cfg.Store.UpdateResource(ctx, KindDelivery, tenantID, id, func(r *store.Resource) error {
				s.transition(r, o)
				return nil
			})
			return err
		}
		return nil
	}
	d := decodeDoc(&probe)
	status := probe.Status
	data := eventData(&probe, &d, status)
	if typ == "delivery.courier_location" {
		data = map[string]any{"delivery_id": probe.ID, "provider_delivery_id": probe.ProviderID, "courier": map[string]any{"location": o.location}}
	}
	ev, err := event.New(tenantID, r.Provider, typ, o.at, d.CorrelationID, data)
	if err != nil {
		return fmt.Errorf("courier: render %s: %w", typ, err)
	}
	ev.Subject, ev.CreatedAt = r.ProviderID, s.now()
	_, err = s.cfg.Store.RecordEvents(ctx, store.EventBatch{
		TenantID: tenantID, Now: ev.CreatedAt, Events: []store.Event{ev},
		Resources: []store.ResourceChange{{Kind: KindDelivery, ID: id, Events: []int{0}, Apply: func(r *store.Resource) bool {
			return s.transition(r, o) == typ
		}}},
	})
	if err != nil {
		return fmt.Errorf("courier: record %s: %w", typ, err)
	}
	s.cfg.Notify()
	return nil
}
