package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
)

// eventBodyOf is an event body with whitespace and HTML characters, which a
// store must keep byte for byte.
func eventBodyOf(typ, subject string) string {
	return fmt.Sprintf("{\"type\": %q,  \"timestamp\": \"2026-11-27T09:59:00.000Z\",\n \"data\": {\"subject\": %q, \"note\": \"<a & b>\"}}", typ, subject)
}

// event is an event of t_a as the normaliser builds it, with the caller's
// id (empty: the store's).
func event(id, typ, subject, paymentID string) store.Event {
	return store.Event{
		ID:              id,
		Type:            typ,
		Provider:        "stripe",
		Subject:         subject,
		PaymentID:       paymentID,
		ProviderEventID: "evt_provider_" + subject,
		OccurredAt:      base.Add(-time.Minute),
		CorrelationID:   "corr_" + subject,
		Body:            json.RawMessage(eventBodyOf(typ, subject)),
	}
}

// endpoint is an enabled endpoint receiving types (none: everything).
func endpoint(tenant, id string, types ...string) store.Endpoint {
	return store.Endpoint{
		ID:        id,
		TenantID:  tenant,
		URL:       "https://" + tenant + ".example/hooks/" + id,
		Secrets:   []string{"whsec_" + id},
		Types:     types,
		Enabled:   true,
		Source:    "api",
		CreatedAt: base,
		UpdatedAt: base,
	}
}

func mustPutEndpoint(t testing.TB, st store.Store, e store.Endpoint) {
	t.Helper()
	mustNoErr(t, st.PutEndpoint(context.Background(), e))
}

// mustRecord records evs for tenant at base+at, without an inbox record.
func mustRecord(t testing.TB, st store.Store, tenant string, at time.Duration, evs ...store.Event) []store.Delivery {
	t.Helper()
	ds, err := st.RecordEvents(context.Background(), store.EventBatch{TenantID: tenant, Events: evs, Now: base.Add(at)})
	mustNoErr(t, err)
	return ds
}

func mustGetEvent(t testing.TB, st store.Store, tenant, id string) store.Event {
	t.Helper()
	e, err := st.GetEvent(context.Background(), tenant, id)
	mustNoErr(t, err)
	return e
}

func eventIDs(es []store.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// listEventsCursor returns a valid ListEvents cursor of a scratch tenant.
func listEventsCursor(t testing.TB, st store.Store) ([]store.Event, string) {
	t.Helper()
	ctx := context.Background()
	mustRecord(t, st, "t_cursor", 0, event("", "payment.confirmed", "pi_1", ""), event("", "payment.confirmed", "pi_2", ""))
	list, next, err := st.ListEvents(ctx, "t_cursor", store.EventQuery{Limit: 1})
	mustNoErr(t, err)
	if next == "" {
		t.Fatal("no events cursor")
	}
	return list, next
}

// pair names one delivery: an event and an endpoint.
type pair struct{ event, endpoint string }

func pairs(ds []store.Delivery) []pair {
	out := make([]pair, len(ds))
	for i, d := range ds {
		out[i] = pair{d.EventID, d.EndpointID}
	}
	slices.SortFunc(out, func(a, b pair) int {
		return strings.Compare(a.event+"\x00"+a.endpoint, b.event+"\x00"+b.endpoint)
	})
	return out
}

func testRecordEvents(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()

	tests := map[string]func(t *testing.T, st store.Store){
		"deliveries fan out by the endpoints' type filters": func(t *testing.T, st store.Store) {
			for _, e := range []store.Endpoint{
				endpoint("t_a", "ep_all"),
				endpoint("t_a", "ep_star", "*"),
				endpoint("t_a", "ep_payment", "payment.*"),
				endpoint("t_a", "ep_exact", "payment.confirmed"),
				endpoint("t_a", "ep_refund", "refund.*"),
				endpoint("t_a", "ep_multi", "refund.created", "payment.failed"),
				endpoint("t_a", "ep_near_misses", "payment", "payment*", "payments.*", "payment.confirmed.late"),
				endpoint("t_b", "ep_other_tenant", "*"),
			} {
				mustPutEndpoint(t, st, e)
			}
			disabled := endpoint("t_a", "ep_disabled", "*")
			disabled.Enabled = false
			mustPutEndpoint(t, st, disabled)

			ds := mustRecord(t, st, "t_a", time.Minute,
				event("evt_c", "payment.confirmed", "pi_1", ""),
				event("evt_f", "payment.failed", "pi_2", ""),
				event("evt_r", "refund.created", "re_1", ""))
			want := []pair{
				{"evt_c", "ep_all"}, {"evt_c", "ep_exact"}, {"evt_c", "ep_payment"}, {"evt_c", "ep_star"},
				{"evt_f", "ep_all"}, {"evt_f", "ep_multi"}, {"evt_f", "ep_payment"}, {"evt_f", "ep_star"},
				{"evt_r", "ep_all"}, {"evt_r", "ep_multi"}, {"evt_r", "ep_refund"}, {"evt_r", "ep_star"},
			}
			if got := pairs(ds); !slices.Equal(got, want) {
				t.Fatalf("deliveries %v\nwant       %v", got, want)
			}
			now := base.Add(time.Minute)
			ids := map[string]bool{}
			for _, d := range ds {
				if !strings.HasPrefix(d.ID, "dlv_") || ids[d.ID] {
					t.Fatalf("delivery id %q: want a unique dlv_…", d.ID)
				}
				ids[d.ID] = true
				want := store.Delivery{ID: d.ID, TenantID: "t_a", EventID: d.EventID, EndpointID: d.EndpointID,
					State: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
				if !reflect.DeepEqual(d, want) {
					t.Fatalf("returned %+v\nwant     %+v", d, want)
				}
				if got := mustGetDelivery(t, st, "t_a", d.ID); !reflect.DeepEqual(got, want) {
					t.Fatalf("stored %+v\nwant   %+v", got, want)
				}
			}
			for _, id := range []string{"evt_c", "evt_f", "evt_r"} {
				got, err := st.DeliveriesForEvent(ctx, "t_a", id)
				mustNoErr(t, err)
				var mine []store.Delivery
				for _, d := range ds {
					if d.EventID == id {
						mine = append(mine, d)
					}
				}
				if !sameDeliverySet(got, mine) {
					t.Fatalf("DeliveriesForEvent(%s) = %v, want %v", id, deliveryIDs(got), deliveryIDs(mine))
				}
			}
			due := dueDeliveries(t, st, now)
			if !sameDeliverySet(due, ds) {
				t.Fatalf("due = %v, want every new delivery %v", deliveryIDs(due), deliveryIDs(ds))
			}
			if due := dueDeliveries(t, st, now.Add(-time.Microsecond)); len(due) != 0 {
				t.Fatalf("deliveries due before their time: %v", deliveryIDs(due))
			}
		},
		"no matching endpoint records the events with no deliveries": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, endpoint("t_a", "ep_refund", "refund.*"))
			ds := mustRecord(t, st, "t_a", 0, event("evt_1", "payment.confirmed", "pi_1", ""))
			if ds == nil || len(ds) != 0 {
				t.Fatalf("deliveries = %#v, want empty and not nil", ds)
			}
			mustGetEvent(t, st, "t_a", "evt_1")
		},
		"events get seq and id and keep every field and the body byte for byte": func(t *testing.T, st store.Store) {
			in := []store.Event{
				event("evt_mine", "payment.confirmed", "pi_1", "pay_1"),
				event("", "payment.failed", "pi_2", ""),
				event("", "refund.created", "re_1", "pay_1"),
			}
			in[2].CreatedAt = base.Add(-time.Hour).Add(1500 * time.Nanosecond)
			in[2].TenantID = "t_a"
			mustRecord(t, st, "t_a", time.Minute, in...)
			list, _, err := st.ListEvents(ctx, "t_a", store.EventQuery{})
			mustNoErr(t, err)
			if len(list) != 3 {
				t.Fatalf("listed %d events, want 3", len(list))
			}
			slices.Reverse(list)
			for i, got := range list {
				want := in[i]
				want.TenantID, want.Seq = "t_a", uint64(i+1)
				if want.ID == "" {
					if !strings.HasPrefix(got.ID, "evt_") {
						t.Fatalf("event %d: id %q, want evt_…", i, got.ID)
					}
					want.ID = got.ID
				}
				want.CreatedAt = base.Add(time.Minute)
				if i == 2 {
					want.CreatedAt = base.Add(-time.Hour).Add(time.Microsecond)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("event %d:\ngot  %+v\nwant %+v", i, got, want)
				}
				if string(got.Body) != string(in[i].Body) {
					t.Fatalf("event %d: body %s, want byte for byte %s", i, got.Body, in[i].Body)
				}
				if stored := mustGetEvent(t, st, "t_a", got.ID); !reflect.DeepEqual(stored, want) {
					t.Fatalf("GetEvent(%s) = %+v\nwant %+v", got.ID, stored, want)
				}
			}
			// Another tenant's seqs start at 1.
			mustRecord(t, st, "t_b", 0, event("evt_mine", "payment.confirmed", "pi_1", ""))
			if e := mustGetEvent(t, st, "t_b", "evt_mine"); e.Seq != 1 {
				t.Fatalf("t_b's first event has seq %d", e.Seq)
			}
		},
		"a zero Now is the current time": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
			ds, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_a", Events: []store.Event{event("evt_1", "payment.confirmed", "pi_1", "")}})
			mustNoErr(t, err)
			e := mustGetEvent(t, st, "t_a", "evt_1")
			if d := time.Since(e.CreatedAt); d < -time.Second || d > 5*time.Second || len(ds) != 1 || !ds[0].NextAttemptAt.Equal(e.CreatedAt) {
				t.Fatalf("CreatedAt %v, deliveries %+v; want about now", e.CreatedAt, ds)
			}
		},
		"the inbox record becomes processed with the events' ids and stops being due": func(t *testing.T, st store.Store) {
			r := mustAccept(t, st, webhook("t_a", "stripe", "evt_1", 0))
			mustRecord(t, st, "t_a", 0) // an empty batch changes nothing
			now := base.Add(time.Minute)
			_, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_a", InboxID: r.ID, Now: now, Events: []store.Event{
				event("evt_a", "payment.confirmed", "pi_1", ""), event("", "payment.failed", "pi_1", ""),
			}})
			mustNoErr(t, err)
			got := mustGetInbox(t, st, "t_a", r.ID)
			list, _, err := st.ListEvents(ctx, "t_a", store.EventQuery{})
			mustNoErr(t, err)
			if len(list) != 2 {
				t.Fatalf("%d events, want 2", len(list))
			}
			want := r
			want.State, want.ProcessedAt, want.EventIDs = store.InboxProcessed, now, []string{list[1].ID, list[0].ID}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("inbox record %+v\nwant         %+v", got, want)
			}
			for _, e := range list {
				if e.InboxID != r.ID {
					t.Fatalf("event %s has InboxID %q, want %s", e.ID, e.InboxID, r.ID)
				}
			}
			if due := dueInboxIDs(t, st, base.Add(time.Hour)); len(due) != 0 {
				t.Fatalf("a processed record is due: %v", due)
			}
		},
		"zero events mark the webhook processed": func(t *testing.T, st store.Store) {
			r := mustAccept(t, st, webhook("t_a", "stripe", "evt_1", 0))
			ds, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_a", InboxID: r.ID, Now: base.Add(time.Second)})
			mustNoErr(t, err)
			if ds == nil || len(ds) != 0 {
				t.Fatalf("deliveries = %#v, want empty and not nil", ds)
			}
			if got := mustGetInbox(t, st, "t_a", r.ID); got.State != store.InboxProcessed || len(got.EventIDs) != 0 || !got.ProcessedAt.Equal(base.Add(time.Second)) {
				t.Fatalf("inbox record %+v, want processed at base+1s with no events", got)
			}
		},
		"payment changes are applied; a missing payment is skipped": func(t *testing.T, st store.Store) {
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_b", "pay_2")))
			now := base.Add(time.Hour)
			_, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_a", Now: now,
				Events: []store.Event{event("evt_1", "payment.confirmed", "pi_1", "pay_1")},
				Payments: []store.PaymentChange{
					{PaymentID: "pay_1", Apply: func(p *store.Payment) { p.Status, p.ProviderPaymentID = "succeeded", "pi_1" }},
					{PaymentID: "pay_missing", Apply: func(p *store.Payment) { p.Status = "succeeded" }},
					{PaymentID: "pay_2", Apply: func(p *store.Payment) { p.Status = "succeeded" }}, // t_b's
				}})
			mustNoErr(t, err)
			p, err := st.GetPayment(ctx, "t_a", "pay_1")
			mustNoErr(t, err)
			if p.Status != "succeeded" || !p.UpdatedAt.Equal(now) {
				t.Fatalf("payment status %q updated %v, want succeeded at %v", p.Status, p.UpdatedAt, now)
			}
			byProvider, err := st.PaymentByProviderID(ctx, "stripe", "pi_1")
			mustNoErr(t, err)
			if byProvider.ID != "pay_1" {
				t.Fatalf("provider id index names %s", byProvider.ID)
			}
			other, err := st.GetPayment(ctx, "t_b", "pay_2")
			mustNoErr(t, err)
			if other.Status != "pending" {
				t.Fatalf("another tenant's payment was changed: %q", other.Status)
			}
			_, err = st.GetPayment(ctx, "t_a", "pay_missing")
			mustErrIs(t, err, store.ErrNotFound)
		},
		"a processed inbox record returns (nil, nil) and writes nothing": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
			r := mustAccept(t, st, webhook("t_a", "stripe", "evt_1", 0))
			batch := func(now time.Duration, evs ...store.Event) store.EventBatch {
				return store.EventBatch{TenantID: "t_a", InboxID: r.ID, Now: base.Add(now), Events: evs,
					Payments: []store.PaymentChange{{PaymentID: "pay_1", Apply: func(p *store.Payment) { p.AmountRefunded += 100 }}}}
			}
			first, err := st.RecordEvents(ctx, batch(time.Second, event("", "payment.confirmed", "pi_1", "pay_1")))
			mustNoErr(t, err)
			if len(first) != 1 {
				t.Fatalf("first run made %d deliveries, want 1", len(first))
			}
			processed := mustGetInbox(t, st, "t_a", r.ID)

			again, err := st.RecordEvents(ctx, batch(time.Minute, event("", "payment.confirmed", "pi_1", "pay_1"), event("evt_x", "payment.failed", "pi_1", "")))
			if again != nil || err != nil {
				t.Fatalf("second run = %v, %v; want nil, nil", again, err)
			}
			list, _, err := st.ListEvents(ctx, "t_a", store.EventQuery{})
			mustNoErr(t, err)
			if len(list) != 1 {
				t.Fatalf("%d events after a second run, want 1", len(list))
			}
			_, err = st.GetEvent(ctx, "t_a", "evt_x")
			mustErrIs(t, err, store.ErrNotFound)
			p, err := st.GetPayment(ctx, "t_a", "pay_1")
			mustNoErr(t, err)
			if p.AmountRefunded != 100 {
				t.Fatalf("AmountRefunded = %d: the payment change was applied again", p.AmountRefunded)
			}
			if due := dueDeliveries(t, st, base.Add(time.Hour)); !sameDeliverySet(due, first) {
				t.Fatalf("due deliveries %v, want only the first run's %v", deliveryIDs(due), deliveryIDs(first))
			}
			if got := mustGetInbox(t, st, "t_a", r.ID); !reflect.DeepEqual(got, processed) {
				t.Fatalf("inbox record changed by the second run: %+v", got)
			}
		},
		"invalid batches are ErrInvalid and write nothing": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
			r := mustAccept(t, st, webhook("t_a", "stripe", "evt_1", 0))
			good := func() store.Event { return event("evt_good", "payment.confirmed", "pi_1", "pay_1") }
			change := store.PaymentChange{PaymentID: "pay_1", Apply: func(p *store.Payment) { p.Status = "succeeded" }}
			bad := map[string]func(b *store.EventBatch){
				"no tenant":               func(b *store.EventBatch) { b.TenantID = "" },
				"an event without a type": func(b *store.EventBatch) { b.Events[1].Type = "" },
				"a body that is not JSON": func(b *store.EventBatch) { b.Events[1].Body = json.RawMessage(`{"type":`) },
				"an empty body":           func(b *store.EventBatch) { b.Events[1].Body = nil },
				"another tenant's event":  func(b *store.EventBatch) { b.Events[1].TenantID = "t_b" },
				"one id twice":            func(b *store.EventBatch) { b.Events[1].ID = "evt_good" },
				"a change without a payment": func(b *store.EventBatch) {
					b.Payments = append(b.Payments, store.PaymentChange{Apply: change.Apply})
				},
				"a change without Apply": func(b *store.EventBatch) {
					b.Payments = append(b.Payments, store.PaymentChange{PaymentID: "pay_1"})
				},
				"a change of a payment's identity": func(b *store.EventBatch) {
					b.Payments = append(b.Payments, store.PaymentChange{PaymentID: "pay_1", Apply: func(p *store.Payment) { p.ID = "pay_2" }})
				},
			}
			for name, edit := range bad {
				b := store.EventBatch{TenantID: "t_a", InboxID: r.ID, Now: base,
					Events: []store.Event{good(), event("", "payment.failed", "pi_2", "")}, Payments: []store.PaymentChange{change}}
				edit(&b)
				ds, err := st.RecordEvents(ctx, b)
				if !errors.Is(err, store.ErrInvalid) || ds != nil {
					t.Errorf("%s: deliveries %v, err = %v; want none and ErrInvalid", name, ds, err)
				}
			}
			assertNothingRecorded(t, st, r)
		},
		"an unknown or another tenant's inbox id is ErrNotFound and writes nothing": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, endpoint("t_b", "ep_1"))
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_b", "pay_1")))
			r := mustAccept(t, st, webhook("t_a", "stripe", "evt_1", 0))
			for _, inbox := range []string{"wh_missing", r.ID} {
				_, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_b", InboxID: inbox, Now: base,
					Events:   []store.Event{event("evt_1", "payment.confirmed", "pi_1", "pay_1")},
					Payments: []store.PaymentChange{{PaymentID: "pay_1", Apply: func(p *store.Payment) { p.Status = "succeeded" }}}})
				mustErrIs(t, err, store.ErrNotFound)
			}
			list, _, err := st.ListEvents(ctx, "t_b", store.EventQuery{})
			mustNoErr(t, err)
			p, err := st.GetPayment(ctx, "t_b", "pay_1")
			mustNoErr(t, err)
			if len(list) != 0 || p.Status != "pending" || len(dueDeliveries(t, st, base.Add(time.Hour))) != 0 {
				t.Fatalf("a refused batch wrote: %d events, payment %q", len(list), p.Status)
			}
			if got := mustGetInbox(t, st, "t_a", r.ID); got.State != store.InboxPending {
				t.Fatalf("t_a's record is %s", got.State)
			}
		},
		"an event id the tenant already has is ErrExists and writes nothing": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
			first := mustRecord(t, st, "t_a", 0, event("evt_good", "payment.confirmed", "pi_1", ""))
			r := mustAccept(t, st, webhook("t_a", "stripe", "evt_1", 0))
			_, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_a", InboxID: r.ID, Now: base,
				Events:   []store.Event{event("evt_new", "payment.confirmed", "pi_1", "pay_1"), event("evt_good", "payment.failed", "pi_1", "")},
				Payments: []store.PaymentChange{{PaymentID: "pay_1", Apply: func(p *store.Payment) { p.Status = "succeeded" }}}})
			mustErrIs(t, err, store.ErrExists)
			_, err = st.GetEvent(ctx, "t_a", "evt_new")
			mustErrIs(t, err, store.ErrNotFound)
			if e := mustGetEvent(t, st, "t_a", "evt_good"); e.Type != "payment.confirmed" {
				t.Fatalf("the existing event was overwritten: %+v", e)
			}
			p, err := st.GetPayment(ctx, "t_a", "pay_1")
			mustNoErr(t, err)
			if p.Status != "pending" {
				t.Fatal("a refused batch changed the payment")
			}
			if due := dueDeliveries(t, st, base.Add(time.Hour)); !sameDeliverySet(due, first) {
				t.Fatalf("due %v, want only %v", deliveryIDs(due), deliveryIDs(first))
			}
			if got := mustGetInbox(t, st, "t_a", r.ID); got.State != store.InboxPending {
				t.Fatalf("inbox record is %s after a refused batch", got.State)
			}
		},
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, open(t))
		})
	}
}

// assertNothingRecorded checks that t_a has no events, deliveries or
// payment changes and that r is still pending.
func assertNothingRecorded(t testing.TB, st store.Store, r store.InboxRecord) {
	t.Helper()
	ctx := context.Background()
	list, _, err := st.ListEvents(ctx, "t_a", store.EventQuery{})
	mustNoErr(t, err)
	if len(list) != 0 {
		t.Fatalf("%d events were written", len(list))
	}
	if due := dueDeliveries(t, st, base.Add(24*time.Hour)); len(due) != 0 {
		t.Fatalf("deliveries were written: %v", deliveryIDs(due))
	}
	p, err := st.GetPayment(ctx, "t_a", "pay_1")
	mustNoErr(t, err)
	if p.Status != "pending" || p.ID != "pay_1" {
		t.Fatalf("the payment was changed: %+v", p)
	}
	if got := mustGetInbox(t, st, "t_a", r.ID); got.State != store.InboxPending {
		t.Fatalf("the inbox record is %s", got.State)
	}
}

func testListEvents(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	types := []string{"payment.confirmed", "payment.failed", "refund.created", "payment.refunded"}
	payments := []string{"pay_0", "", "pay_1", "pay_0", ""}
	const total = 40
	for i := range total {
		e := event("", types[i%len(types)], fmt.Sprintf("pi_%d", i), payments[i%len(payments)])
		mustRecord(t, st, "t_a", time.Duration(i)*time.Minute, e)
		mustRecord(t, st, "t_noise", time.Duration(i)*time.Minute, e)
	}
	all, next, err := st.ListEvents(ctx, "t_a", store.EventQuery{Limit: store.MaxListLimit})
	mustNoErr(t, err)
	if len(all) != total || next != "" {
		t.Fatalf("listed %d events and next %q, want %d", len(all), next, total)
	}
	for i, e := range all {
		if e.Seq != uint64(total-i) {
			t.Fatalf("position %d has seq %d: not newest first", i, e.Seq)
		}
	}

	tests := map[string]struct {
		q     store.EventQuery
		match func(e store.Event) bool
	}{
		"everything, default limit": {match: func(store.Event) bool { return true }},
		"exact type":                {q: store.EventQuery{Type: "payment.failed", Limit: 3}, match: func(e store.Event) bool { return e.Type == "payment.failed" }},
		"type prefix": {q: store.EventQuery{Type: "payment.*", Limit: 7},
			match: func(e store.Event) bool { return strings.HasPrefix(e.Type, "payment.") }},
		"a type is not a prefix": {q: store.EventQuery{Type: "payment", Limit: 5}, match: func(store.Event) bool { return false }},
		"a prefix needs its dot": {q: store.EventQuery{Type: "pay.*", Limit: 5}, match: func(store.Event) bool { return false }},
		"payment id":             {q: store.EventQuery{PaymentID: "pay_0", Limit: 4}, match: func(e store.Event) bool { return e.PaymentID == "pay_0" }},
		"unknown payment id":     {q: store.EventQuery{PaymentID: "pay_9"}, match: func(store.Event) bool { return false }},
		"payment id and type":    {q: store.EventQuery{PaymentID: "pay_0", Type: "payment.confirmed", Limit: 2}, match: func(e store.Event) bool { return e.PaymentID == "pay_0" && e.Type == "payment.confirmed" }},
		"since is inclusive":     {q: store.EventQuery{Since: base.Add(30 * time.Minute), Limit: 4}, match: func(e store.Event) bool { return !e.CreatedAt.Before(base.Add(30 * time.Minute)) }},
		"until is exclusive":     {q: store.EventQuery{Until: base.Add(10 * time.Minute), Limit: 4}, match: func(e store.Event) bool { return e.CreatedAt.Before(base.Add(10 * time.Minute)) }},
		"a window with a prefix": {q: store.EventQuery{Type: "refund.*", Since: base.Add(5 * time.Minute), Until: base.Add(35 * time.Minute), Limit: 2}, match: func(e store.Event) bool {
			return e.Type == "refund.created" && !e.CreatedAt.Before(base.Add(5*time.Minute)) && e.CreatedAt.Before(base.Add(35*time.Minute))
		}},
		"a window with a payment": {q: store.EventQuery{PaymentID: "pay_1", Since: base.Add(12 * time.Minute), Until: base.Add(27 * time.Minute)}, match: func(e store.Event) bool {
			return e.PaymentID == "pay_1" && !e.CreatedAt.Before(base.Add(12*time.Minute)) && e.CreatedAt.Before(base.Add(27*time.Minute))
		}},
		"an empty window":           {q: store.EventQuery{Since: base.Add(time.Minute), Until: base.Add(time.Minute)}, match: func(store.Event) bool { return false }},
		"pages of one":              {q: store.EventQuery{Type: "payment.refunded", Limit: 1}, match: func(e store.Event) bool { return e.Type == "payment.refunded" }},
		"the maximum limit at once": {q: store.EventQuery{Limit: store.MaxListLimit}, match: func(store.Event) bool { return true }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var want []string
			for _, e := range all {
				if tc.match(e) {
					want = append(want, e.ID)
				}
			}
			limit := tc.q.Limit
			if limit == 0 {
				limit = store.DefaultListLimit
			}
			var got []store.Event
			q, pages := tc.q, 0
			for {
				list, next, err := st.ListEvents(ctx, "t_a", q)
				mustNoErr(t, err)
				pages++
				if len(list) > limit || (next != "" && len(list) != limit) {
					t.Fatalf("page %d: %d events, next %q, limit %d", pages, len(list), next, limit)
				}
				got = append(got, list...)
				if next == "" {
					break
				}
				if pages > total {
					t.Fatal("pagination does not end")
				}
				q.Cursor = next
			}
			if wantPages := max(1, (len(want)+limit-1)/limit); pages != wantPages {
				t.Errorf("pages = %d, want %d", pages, wantPages)
			}
			if ids := eventIDs(got); !slices.Equal(ids, want) && !(len(ids) == 0 && len(want) == 0) {
				t.Fatalf("paged %v\nwant  %v", ids, want)
			}
			for _, e := range got {
				if e.TenantID != "t_a" || len(e.Body) == 0 {
					t.Fatalf("listed %+v", e)
				}
			}
		})
	}

	mustAccept(t, st, webhook("t_cursor", "stripe", "a", 0))
	mustAccept(t, st, webhook("t_cursor", "stripe", "b", 0))
	_, inboxCursor, err := st.ListInbox(ctx, "t_cursor", "", store.ListQuery{Limit: 1})
	mustNoErr(t, err)
	if inboxCursor == "" {
		t.Fatal("no inbox cursor")
	}
	invalid := map[string]store.EventQuery{
		"negative limit":         {Limit: -1},
		"limit over the maximum": {Limit: store.MaxListLimit + 1},
		"cursor not base64":      {Cursor: "%%%"},
		"an inbox cursor":        {Cursor: inboxCursor},
		"since after until":      {Since: base.Add(time.Hour), Until: base},
	}
	for name, q := range invalid {
		t.Run(name, func(t *testing.T) {
			list, next, err := st.ListEvents(ctx, "t_a", q)
			mustErrIs(t, err, store.ErrInvalidQuery)
			if list != nil || next != "" {
				t.Fatalf("an invalid query returned %d events and next %q", len(list), next)
			}
		})
	}
	t.Run("tenants never see each other's events", func(t *testing.T) {
		list, _, err := st.ListEvents(ctx, "t_nobody", store.EventQuery{})
		mustNoErr(t, err)
		if len(list) != 0 {
			t.Fatalf("t_nobody lists %d events", len(list))
		}
		_, err = st.GetEvent(ctx, "t_nobody", all[0].ID)
		mustErrIs(t, err, store.ErrNotFound)
		_, next, err := st.ListEvents(ctx, "t_a", store.EventQuery{Limit: 1})
		mustNoErr(t, err)
		list, _, err = st.ListEvents(ctx, "t_noise", store.EventQuery{Cursor: next, Limit: store.MaxListLimit})
		mustNoErr(t, err)
		for _, e := range list {
			if e.TenantID != "t_noise" {
				t.Fatalf("t_noise listed an event of %s", e.TenantID)
			}
		}
	})
}
