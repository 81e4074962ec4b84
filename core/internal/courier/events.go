package courier

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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

// transition applies o to the stored delivery r and returns the events
// it announces, in order: none when there is nothing new to tell (same or
// earlier status, a location within LocationInterval of the last one);
// the new status's event; and before it, on the way to picked_up or
// delivered, the states the delivery skipped (delivery.assigned before
// delivery.picked_up), so the tenant hears every step once and in order
// even when the provider's webhooks arrive out of order or a poll sees two
// steps at once. It only computes; the store runs it inside the
// transaction that records the events.
func (s *Service) transition(r *store.Resource, o observation) (types []string) {
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
			return nil
		}
		d.LastLocationAt = o.at
		types = []string{"delivery.courier_location"}
	case rank(o.status) > rank(r.Status) && !Terminal(r.Status):
		if o.status == string(delivery.StatusPickedUp) || o.status == string(delivery.StatusDelivered) {
			for _, skipped := range []delivery.Status{delivery.StatusAssigned, delivery.StatusPickedUp} {
				if rank(string(skipped)) > rank(r.Status) && rank(string(skipped)) < rank(o.status) && rank(r.Status) >= 0 {
					types = append(types, eventType(string(skipped)))
				}
			}
		}
		r.Status = o.status
		types = append(types, eventType(o.status))
	}
	// News pushes the next poll out; a finished delivery is not polled.
	if Terminal(r.Status) {
		r.CheckAt = time.Time{}
	} else if len(types) > 0 {
		r.CheckAt = o.at.Add(s.cfg.PollInterval)
	}
	r.Doc = mustJSON(d)
	return types
}

// statusAfter is the status a delivery announces with event type typ.
func statusAfter(typ string) string { return statusOf(typ) }

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
// events are recorded (and delivered to the tenant's endpoints) in the same
// transaction as the delivery's new state; otherwise nothing is written.
func (s *Service) observe(ctx context.Context, tenantID, id string, o observation) error {
	r, err := s.load(ctx, tenantID, id)
	if err != nil {
		return err
	}
	// Render the events from what the transition would make of the record
	// now; the store re-runs the transition on the record as stored and
	// drops them unless they are still news.
	probe := r
	types := s.transition(&probe, o)
	if len(types) == 0 {
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
	now := s.now()
	batch := store.EventBatch{TenantID: tenantID, Now: now}
	change := store.ResourceChange{Kind: KindDelivery, ID: id, Apply: func(r *store.Resource) bool {
		return slices.Equal(s.transition(r, o), types)
	}}
	for _, lk := range s.linked(&probe, &d, types, o) {
		ev, err := event.New(tenantID, r.Provider, lk.Type, o.at, d.CorrelationID, lk.Data)
		if err != nil {
			return fmt.Errorf("courier: render %s: %w", lk.Type, err)
		}
		ev.Subject, ev.CreatedAt = r.ProviderID, now
		change.Events = append(change.Events, len(batch.Events))
		batch.Events = append(batch.Events, ev)
	}
	batch.Resources = []store.ResourceChange{change}
	if _, err := s.cfg.Store.RecordEvents(ctx, batch); err != nil {
		return fmt.Errorf("courier: record %v: %w", types, err)
	}
	s.cfg.Notify()
	return nil
}

// linked renders the events of types for the delivery as probe (after the
// transition), each with the status it announces.
func (s *Service) linked(probe *store.Resource, d *doc, types []string, o observation) []store.Linked {
	out := make([]store.Linked, 0, len(types))
	for _, typ := range types {
		if typ == "delivery.courier_location" {
			out = append(out, store.Linked{Type: typ, Data: map[string]any{"delivery_id": probe.ID, "provider_delivery_id": probe.ProviderID,
				"courier": map[string]any{"location": o.location}}})
			continue
		}
		out = append(out, store.Linked{Type: typ, Data: eventData(probe, d, statusAfter(typ))})
	}
	return out
}
