package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
)

func resource(tenant, id, providerID string) store.Resource {
	return store.Resource{
		Kind: "delivery", ID: id, TenantID: tenant, Provider: "uberdirect", ProviderID: providerID,
		Status: "pending", Doc: json.RawMessage(`{"reference":"order-1","fee":{"amount":2500,"currency":"CLP"}}`),
		CreatedAt: base,
	}
}

func testResources(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)

	r := resource("t_a", "del_1", "uber_1")
	r.CheckAt = base.Add(time.Minute)
	mustNoErr(t, st.CreateResource(ctx, r))
	if err := st.CreateResource(ctx, r); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create twice: err = %v, want ErrExists", err)
	}
	dup := resource("t_b", "del_9", "uber_1")
	if err := st.CreateResource(ctx, dup); !errors.Is(err, store.ErrExists) {
		t.Fatalf("same provider id for another record: err = %v, want ErrExists", err)
	}
	if err := st.CreateResource(ctx, store.Resource{Kind: "delivery", TenantID: "t_a"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("no id: err = %v, want ErrInvalid", err)
	}

	got, err := st.GetResource(ctx, "delivery", "t_a", "del_1")
	mustNoErr(t, err)
	if got.Status != "pending" || got.ProviderID != "uber_1" || !got.CreatedAt.Equal(base) || !got.CheckAt.Equal(base.Add(time.Minute)) {
		t.Fatalf("GetResource = %+v", got)
	}
	if _, err := st.GetResource(ctx, "delivery", "t_b", "del_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's record: err = %v, want ErrNotFound", err)
	}
	if _, err := st.GetResource(ctx, "message", "t_a", "del_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another kind: err = %v, want ErrNotFound", err)
	}
	byp, err := st.ResourceByProviderID(ctx, "delivery", "uberdirect", "uber_1")
	mustNoErr(t, err)
	if byp.ID != "del_1" || byp.TenantID != "t_a" {
		t.Fatalf("ResourceByProviderID = %+v", byp)
	}

	// Due: only records with CheckAt at or before now, earliest first.
	r2 := resource("t_b", "del_2", "")
	r2.CheckAt = base.Add(30 * time.Second)
	mustNoErr(t, st.CreateResource(ctx, r2))
	mustNoErr(t, st.CreateResource(ctx, resource("t_a", "del_3", ""))) // never due
	due, err := st.DueResources(ctx, "delivery", base.Add(time.Minute), 10)
	mustNoErr(t, err)
	if ids := resourceIDs(due); fmt.Sprint(ids) != "[del_2 del_1]" {
		t.Fatalf("DueResources = %v, want [del_2 del_1]", ids)
	}
	due, _ = st.DueResources(ctx, "delivery", base.Add(45*time.Second), 10)
	if ids := resourceIDs(due); fmt.Sprint(ids) != "[del_2]" {
		t.Fatalf("DueResources before del_1's time = %v", ids)
	}

	// Update: status/doc changes bump Version; CheckAt moves in the due index.
	up, err := st.UpdateResource(ctx, "delivery", "t_a", "del_1", func(r *store.Resource) error {
		r.Status, r.CheckAt, r.ProviderID = "assigned", time.Time{}, "uber_1b"
		return nil
	})
	mustNoErr(t, err)
	if up.Version != 1 || up.Status != "assigned" {
		t.Fatalf("after update: %+v", up)
	}
	due, _ = st.DueResources(ctx, "delivery", base.Add(time.Hour), 10)
	if ids := resourceIDs(due); fmt.Sprint(ids) != "[del_2]" {
		t.Fatalf("DueResources after clearing CheckAt = %v", ids)
	}
	if _, err := st.ResourceByProviderID(ctx, "delivery", "uberdirect", "uber_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old provider id still indexed: %v", err)
	}
	if _, err := st.UpdateResource(ctx, "delivery", "t_a", "del_1", func(r *store.Resource) error { r.TenantID = "t_b"; return nil }); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("changing the tenant: err = %v, want ErrInvalid", err)
	}
	sentinel := errors.New("nope")
	if _, err := st.UpdateResource(ctx, "delivery", "t_a", "del_1", func(*store.Resource) error { return sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("fn error: %v", err)
	}

	// List newest first with cursors.
	for i := range 5 {
		x := resource("t_c", fmt.Sprintf("del_c%d", i), "")
		x.CreatedAt = base.Add(time.Duration(i) * time.Second)
		mustNoErr(t, st.CreateResource(ctx, x))
	}
	page, next, err := st.ListResources(ctx, "delivery", "t_c", store.ListQuery{Limit: 3})
	mustNoErr(t, err)
	page2, next2, err := st.ListResources(ctx, "delivery", "t_c", store.ListQuery{Limit: 3, Cursor: next})
	mustNoErr(t, err)
	if a, b := fmt.Sprint(resourceIDs(page)), fmt.Sprint(resourceIDs(page2)); a != "[del_c4 del_c3 del_c2]" || b != "[del_c1 del_c0]" || next == "" || next2 != "" {
		t.Fatalf("pages %s %s (next %q, %q)", a, b, next, next2)
	}
	if _, _, err := st.ListResources(ctx, "delivery", "t_c", store.ListQuery{Cursor: "garbage"}); !errors.Is(err, store.ErrInvalidQuery) {
		t.Fatalf("bad cursor: %v", err)
	}
}

// testResourceEvents checks that a ResourceChange in RecordEvents decides
// whether its events are recorded, atomically with the change.
func testResourceEvents(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
	mustNoErr(t, st.CreateResource(ctx, resource("t_a", "del_1", "uber_1")))

	advance := func(to string) func(*store.Resource) bool {
		return func(r *store.Resource) bool {
			if r.Status == to {
				return false
			}
			r.Status = to
			return true
		}
	}
	batch := func(typ, to string) store.EventBatch {
		return store.EventBatch{TenantID: "t_a", Now: base, Events: []store.Event{event("", typ, "uber_1", "")},
			Resources: []store.ResourceChange{{Kind: "delivery", ID: "del_1", Events: []int{0}, Apply: advance(to)}}}
	}
	ds, err := st.RecordEvents(ctx, batch("delivery.assigned", "assigned"))
	mustNoErr(t, err)
	if len(ds) != 1 {
		t.Fatalf("first transition: %d deliveries, want 1", len(ds))
	}
	ds, err = st.RecordEvents(ctx, batch("delivery.assigned", "assigned"))
	mustNoErr(t, err)
	if len(ds) != 0 {
		t.Fatalf("repeated transition: %d deliveries, want 0 (event dropped)", len(ds))
	}
	evs, _, err := st.ListEvents(ctx, "t_a", store.EventQuery{})
	mustNoErr(t, err)
	if len(evs) != 1 {
		t.Fatalf("%d events recorded, want 1", len(evs))
	}
	got, _ := st.GetResource(ctx, "delivery", "t_a", "del_1")
	if got.Status != "assigned" || got.Version != 1 {
		t.Fatalf("resource after the batches: %+v", got)
	}

	// A missing resource drops its events; other events of the batch stay.
	b := store.EventBatch{TenantID: "t_a", Now: base, Events: []store.Event{event("", "delivery.assigned", "x", ""), event("", "payment.created", "y", "")},
		Resources: []store.ResourceChange{{Kind: "delivery", ID: "del_missing", Events: []int{0}, Apply: advance("assigned")}}}
	ds, err = st.RecordEvents(ctx, b)
	mustNoErr(t, err)
	if len(ds) != 1 {
		t.Fatalf("batch with a missing resource: %d deliveries, want 1", len(ds))
	}
	bad := batch("delivery.picked_up", "picked_up")
	bad.Resources[0].Events = []int{3}
	if _, err := st.RecordEvents(ctx, bad); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("event index out of range: err = %v, want ErrInvalid", err)
	}
}

func testEventsAfter(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	for i := range 5 {
		mustRecord(t, st, "t_a", time.Duration(i)*time.Second, event("", "payment.created", fmt.Sprintf("s%d", i), ""))
	}
	mustRecord(t, st, "t_b", 0, event("", "payment.created", "other", ""))
	first, err := st.EventsAfter(ctx, "t_a", 0, 3)
	mustNoErr(t, err)
	if len(first) != 3 || first[0].Subject != "s0" || first[2].Subject != "s2" {
		t.Fatalf("first page = %v", eventIDs(first))
	}
	rest, err := st.EventsAfter(ctx, "t_a", first[2].Seq, 10)
	mustNoErr(t, err)
	if len(rest) != 2 || rest[0].Subject != "s3" || rest[1].Subject != "s4" {
		t.Fatalf("rest = %v", eventIDs(rest))
	}
	none, err := st.EventsAfter(ctx, "t_a", rest[1].Seq, 10)
	mustNoErr(t, err)
	if len(none) != 0 {
		t.Fatalf("after the last: %v", eventIDs(none))
	}
	if _, err := st.EventsAfter(ctx, "t_a", 0, 0); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("limit 0: %v", err)
	}
}

// testPaymentKeep checks that a PaymentChange's Keep drops its events
// atomically: the same status change announced twice is recorded once.
func testPaymentKeep(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	mustNoErr(t, st.CreatePayment(ctx, store.Payment{ID: "pay_1", TenantID: "t_a", Provider: "stripe", ProviderPaymentID: "pi_1", Status: "pending", Amount: 100, Currency: "CLP"}))
	confirm := func() store.EventBatch {
		return store.EventBatch{TenantID: "t_a", Now: base, Events: []store.Event{event("", "payment.confirmed", "pi_1", "pay_1")},
			Payments: []store.PaymentChange{{PaymentID: "pay_1", Events: []int{0},
				Keep:  func(p *store.Payment) bool { return p.Status != "succeeded" },
				Apply: func(p *store.Payment) { p.Status = "succeeded" }}}}
	}
	for range 2 {
		_, err := st.RecordEvents(ctx, confirm())
		mustNoErr(t, err)
	}
	evs, _, err := st.ListEvents(ctx, "t_a", store.EventQuery{})
	mustNoErr(t, err)
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	p, _ := st.GetPayment(ctx, "t_a", "pay_1")
	if p.Status != "succeeded" {
		t.Fatalf("status %q", p.Status)
	}
}

func resourceIDs(rs []store.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}
