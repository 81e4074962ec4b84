package courier

import (
	"context"
	"slices"
	"strings"

	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Link ties a delivery event parsed from a provider webhook to the
// gateway's delivery. It returns the event's type and data as the tenant
// must see them (the catalog fields from the gateway's record, merged with
// what the webhook said) and the change that records the transition; the
// store drops the event if, by then, it is no longer news. ok is false for
// an event about a delivery the gateway did not book: it passes through
// as the plugin made it.
func (s *Service) Link(ctx context.Context, tenantID, prov string, ev provider.Event, data map[string]any) (out []store.Linked, correlation string, change store.ResourceChange, ok bool) {
	if !strings.HasPrefix(ev.Type, "delivery.") {
		return nil, "", store.ResourceChange{}, false
	}
	ids := []string{}
	if v, _ := data["provider_delivery_id"].(string); v != "" {
		ids = append(ids, v)
	}
	if ev.Subject != "" {
		ids = append(ids, ev.Subject)
	}
	var r store.Resource
	found := false
	for _, id := range ids {
		got, err := s.cfg.Store.ResourceByProviderID(ctx, KindDelivery, prov, id)
		if err == nil && got.TenantID == tenantID {
			r, found = got, true
			break
		}
	}
	if !found {
		return nil, "", store.ResourceChange{}, false
	}
	o := observation{status: statusOf(ev.Type), data: data, at: s.now()}
	if ev.Type == "delivery.courier_location" {
		o.status = ""
		if loc := locationOf(data); loc != nil {
			o.location = loc
		}
		if !ev.OccurredAt.IsZero() {
			o.at = ev.OccurredAt.UTC()
		}
	}
	probe := r
	types := s.transition(&probe, o)
	d := decodeDoc(&probe)
	if len(types) == 0 {
		// Not news now: the store drops it (the transition on the stored
		// record must then give the same nothing, which it refuses).
		out = []store.Linked{{Type: ev.Type, Data: eventData(&probe, &d, probe.Status)}}
		change = store.ResourceChange{Kind: KindDelivery, ID: r.ID, Apply: func(*store.Resource) bool { return false }}
		return out, d.CorrelationID, change, true
	}
	change = store.ResourceChange{Kind: KindDelivery, ID: r.ID, Apply: func(cur *store.Resource) bool {
		return slices.Equal(s.transition(cur, o), types)
	}}
	return s.linked(&probe, &d, types, o), d.CorrelationID, change, true
}

func locationOf(data map[string]any) *Location {
	c, _ := data["courier"].(map[string]any)
	l, _ := c["location"].(map[string]any)
	lat, ok1 := l["lat"].(float64)
	lng, ok2 := l["lng"].(float64)
	if !ok1 || !ok2 {
		return nil
	}
	return &Location{Lat: lat, Lng: lng}
}
