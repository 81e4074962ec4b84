package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
)

func mustGetDelivery(t testing.TB, st store.Store, tenant, id string) store.Delivery {
	t.Helper()
	d, err := st.GetDelivery(context.Background(), tenant, id)
	mustNoErr(t, err)
	return d
}

func deliveryIDs(ds []store.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// sameDeliverySet reports whether a and b hold the same deliveries, in any
// order.
func sameDeliverySet(a, b []store.Delivery) bool {
	x, y := deliveryIDs(a), deliveryIDs(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// dueDeliveries returns what DueDeliveries returns at now, checking that it
// is pending only and earliest first.
func dueDeliveries(t testing.TB, st store.Store, now time.Time) []store.Delivery {
	t.Helper()
	ds, err := st.DueDeliveries(context.Background(), now, 10000)
	mustNoErr(t, err)
	refs, err := st.DueDeliveryRefs(context.Background(), now, 10000)
	mustNoErr(t, err)
	if len(refs) != len(ds) {
		t.Fatalf("DueDeliveryRefs found %d, DueDeliveries %d", len(refs), len(ds))
	}
	for i, d := range ds {
		if refs[i] != (store.DeliveryRef{TenantID: d.TenantID, ID: d.ID}) {
			t.Fatalf("DueDeliveryRefs[%d] = %+v, DueDeliveries has %s/%s", i, refs[i], d.TenantID, d.ID)
		}
		if d.State != store.DeliveryPending || d.NextAttemptAt.After(now) {
			t.Fatalf("DueDeliveries(%v) returned %s %s due %v", now, d.ID, d.State, d.NextAttemptAt)
		}
		if i > 0 && d.NextAttemptAt.Before(ds[i-1].NextAttemptAt) {
			t.Fatalf("DueDeliveries is not earliest first: %v after %v", d.NextAttemptAt, ds[i-1].NextAttemptAt)
		}
	}
	return ds
}

func isDue(t testing.TB, st store.Store, now time.Time, id string) bool {
	t.Helper()
	return slices.Contains(deliveryIDs(dueDeliveries(t, st, now)), id)
}

// attemptAt records an attempt at base+at that leaves d in state: pending
// (a failure, next try a minute later), delivered or dead.
func attemptAt(t testing.TB, st store.Store, d store.Delivery, state store.DeliveryState, at time.Duration) error {
	t.Helper()
	d.State = state
	d.Attempts++
	a := store.Attempt{DeliveryID: d.ID, N: d.Attempts, At: base.Add(at), LatencyMS: 12.5}
	switch state {
	case store.DeliveryPending:
		d.NextAttemptAt, d.LastStatus, d.LastError = base.Add(at+time.Minute), 503, "HTTP 503"
		a.StatusCode, a.Error, a.Response = 503, "HTTP 503", "busy"
	case store.DeliveryDelivered:
		d.LastStatus, d.LastError = 200, ""
		a.StatusCode, a.Response = 200, "ok"
	case store.DeliveryDead:
		d.LastStatus, d.LastError = 500, "attempts exhausted"
		a.StatusCode, a.Error = 500, "HTTP 500"
	}
	return st.RecordAttempt(context.Background(), d, a)
}

func mustAttempt(t testing.TB, st store.Store, d store.Delivery, state store.DeliveryState, at time.Duration) store.Delivery {
	t.Helper()
	mustNoErr(t, attemptAt(t, st, d, state, at))
	return mustGetDelivery(t, st, d.TenantID, d.ID)
}

// deliveryTo returns the one delivery in ds of event to endpoint.
func deliveryTo(t testing.TB, ds []store.Delivery, eventID, endpointID string) store.Delivery {
	t.Helper()
	for _, d := range ds {
		if d.EventID == eventID && d.EndpointID == endpointID {
			return d
		}
	}
	t.Fatalf("no delivery of %s to %s in %v", eventID, endpointID, pairs(ds))
	return store.Delivery{}
}

func testEndpoints(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	errFn := errors.New("storetest: fn refused")
	tests := map[string]func(t *testing.T, st store.Store){
		"put then get returns every field": func(t *testing.T, st store.Store) {
			want := endpoint("t_a", "ep_1", "payment.*", "refund.created")
			want.Secrets = []string{"whsec_new", "whsec_old"}
			want.Ordered, want.DisabledReason, want.Source = true, "paused by the tenant", "config"
			want.CreatedAt, want.UpdatedAt = base.Add(-time.Hour), base
			mustPutEndpoint(t, st, want)
			got, err := st.GetEndpoint(ctx, "t_a", "ep_1")
			mustNoErr(t, err)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		},
		"put replaces, keeping CreatedAt when zero; zero times are now": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
			e := endpoint("t_a", "ep_1", "refund.*")
			e.URL, e.CreatedAt, e.UpdatedAt = "https://new.example/hook", time.Time{}, time.Time{}
			before := time.Now().Add(-time.Second)
			mustPutEndpoint(t, st, e)
			got, err := st.GetEndpoint(ctx, "t_a", "ep_1")
			mustNoErr(t, err)
			if got.URL != e.URL || !slices.Equal(got.Types, []string{"refund.*"}) || !got.CreatedAt.Equal(base) || got.UpdatedAt.Before(before) {
				t.Fatalf("replaced endpoint %+v", got)
			}
			fresh := endpoint("t_a", "ep_2")
			fresh.CreatedAt, fresh.UpdatedAt = time.Time{}, time.Time{}
			mustPutEndpoint(t, st, fresh)
			got, err = st.GetEndpoint(ctx, "t_a", "ep_2")
			mustNoErr(t, err)
			if got.CreatedAt.Before(before) || got.UpdatedAt.Before(before) {
				t.Fatalf("new endpoint times %v %v, want about now", got.CreatedAt, got.UpdatedAt)
			}
		},
		"list is sorted by id and per tenant": func(t *testing.T, st store.Store) {
			for _, id := range []string{"ep_b", "ep_10", "ep_a", "ep_9", "e"} {
				mustPutEndpoint(t, st, endpoint("t_a", id))
			}
			mustPutEndpoint(t, st, endpoint("t_b", "ep_other"))
			list, err := st.ListEndpoints(ctx, "t_a")
			mustNoErr(t, err)
			var ids []string
			for _, e := range list {
				ids = append(ids, e.ID)
			}
			if want := []string{"e", "ep_10", "ep_9", "ep_a", "ep_b"}; !slices.Equal(ids, want) {
				t.Fatalf("ids = %v, want %v", ids, want)
			}
			list, err = st.ListEndpoints(ctx, "t_c")
			mustNoErr(t, err)
			if len(list) != 0 {
				t.Fatalf("t_c lists %d endpoints", len(list))
			}
		},
		"update writes fn's result and sets UpdatedAt": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
			before := time.Now().Add(-time.Second)
			got, err := st.UpdateEndpoint(ctx, "t_a", "ep_1", func(e *store.Endpoint) error {
				e.Enabled, e.DisabledReason = false, "answered 410"
				e.Secrets = append(e.Secrets, "whsec_2")
				return nil
			})
			mustNoErr(t, err)
			if got.Enabled || got.DisabledReason != "answered 410" || len(got.Secrets) != 2 || got.UpdatedAt.Before(before) || !got.CreatedAt.Equal(base) {
				t.Fatalf("returned %+v", got)
			}
			stored, err := st.GetEndpoint(ctx, "t_a", "ep_1")
			mustNoErr(t, err)
			if !reflect.DeepEqual(stored, got) {
				t.Fatalf("stored %+v\nreturned %+v", stored, got)
			}
		},
		"fn's error aborts the update and is returned": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
			_, err := st.UpdateEndpoint(ctx, "t_a", "ep_1", func(e *store.Endpoint) error {
				e.Enabled = false
				return errFn
			})
			mustErrIs(t, err, errFn)
			if got, _ := st.GetEndpoint(ctx, "t_a", "ep_1"); !got.Enabled {
				t.Fatal("an aborted update was written")
			}
		},
		"update must not change identity": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
			for name, fn := range map[string]func(*store.Endpoint){
				"tenant":     func(e *store.Endpoint) { e.TenantID = "t_b" },
				"id":         func(e *store.Endpoint) { e.ID = "ep_2" },
				"created_at": func(e *store.Endpoint) { e.CreatedAt = e.CreatedAt.Add(time.Hour) },
			} {
				_, err := st.UpdateEndpoint(ctx, "t_a", "ep_1", func(e *store.Endpoint) error { fn(e); return nil })
				if !errors.Is(err, store.ErrInvalid) {
					t.Errorf("changing %s: err = %v, want ErrInvalid", name, err)
				}
			}
			_, err := st.GetEndpoint(ctx, "t_b", "ep_1")
			mustErrIs(t, err, store.ErrNotFound)
			_, err = st.GetEndpoint(ctx, "t_a", "ep_2")
			mustErrIs(t, err, store.ErrNotFound)
		},
		"missing endpoint is ErrNotFound everywhere": func(t *testing.T, st store.Store) {
			_, err := st.GetEndpoint(ctx, "t_a", "ep_missing")
			mustErrIs(t, err, store.ErrNotFound)
			_, err = st.UpdateEndpoint(ctx, "t_a", "ep_missing", func(*store.Endpoint) error { return nil })
			mustErrIs(t, err, store.ErrNotFound)
			mustErrIs(t, st.DeleteEndpoint(ctx, "t_a", "ep_missing"), store.ErrNotFound)
			_, err = st.KillEndpointDeliveries(ctx, "t_a", "ep_missing", "gone", base)
			mustErrIs(t, err, store.ErrNotFound)
		},
		"delete removes the endpoint; new events skip it": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
			mustPutEndpoint(t, st, endpoint("t_a", "ep_2"))
			mustNoErr(t, st.DeleteEndpoint(ctx, "t_a", "ep_1"))
			_, err := st.GetEndpoint(ctx, "t_a", "ep_1")
			mustErrIs(t, err, store.ErrNotFound)
			list, err := st.ListEndpoints(ctx, "t_a")
			mustNoErr(t, err)
			if len(list) != 1 || list[0].ID != "ep_2" {
				t.Fatalf("list after delete = %+v", list)
			}
			ds := mustRecord(t, st, "t_a", 0, event("evt_1", "payment.confirmed", "pi_1", ""))
			if got := pairs(ds); !slices.Equal(got, []pair{{"evt_1", "ep_2"}}) {
				t.Fatalf("deliveries after delete = %v", got)
			}
			mustErrIs(t, st.DeleteEndpoint(ctx, "t_a", "ep_1"), store.ErrNotFound)
		},
		"empty tenant or id is ErrInvalid": func(t *testing.T, st store.Store) {
			mustErrIs(t, st.PutEndpoint(ctx, endpoint("", "ep_1")), store.ErrInvalid)
			mustErrIs(t, st.PutEndpoint(ctx, endpoint("t_a", "")), store.ErrInvalid)
		},
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, open(t))
		})
	}
}

func testDeliveries(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	// setup: two endpoints, evt_1 at base and evt_2 at base+1s.
	setup := func(t *testing.T, st store.Store) (d1, d2, d3, d4 store.Delivery) {
		t.Helper()
		mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
		mustPutEndpoint(t, st, endpoint("t_a", "ep_2"))
		first := mustRecord(t, st, "t_a", 0, event("evt_1", "payment.confirmed", "pi_1", ""))
		second := mustRecord(t, st, "t_a", time.Second, event("evt_2", "payment.confirmed", "pi_2", ""))
		return deliveryTo(t, first, "evt_1", "ep_1"), deliveryTo(t, first, "evt_1", "ep_2"),
			deliveryTo(t, second, "evt_2", "ep_1"), deliveryTo(t, second, "evt_2", "ep_2")
	}
	tests := map[string]func(t *testing.T, st store.Store){
		"due deliveries come earliest first, up to the limit": func(t *testing.T, st store.Store) {
			d1, d2, d3, d4 := setup(t, st)
			mustPutEndpoint(t, st, endpoint("t_b", "ep_1"))
			other := mustRecord(t, st, "t_b", 500*time.Millisecond, event("evt_1", "payment.confirmed", "pi_1", ""))
			got := dueDeliveries(t, st, base.Add(time.Minute))
			if len(got) != 5 || !sameDeliverySet(got[:2], []store.Delivery{d1, d2}) || got[2].ID != other[0].ID || !sameDeliverySet(got[3:], []store.Delivery{d3, d4}) {
				t.Fatalf("due = %v", pairs(got))
			}
			limited, err := st.DueDeliveries(ctx, base.Add(time.Minute), 3)
			mustNoErr(t, err)
			if !slices.Equal(deliveryIDs(limited), deliveryIDs(got[:3])) {
				t.Fatalf("limit 3 = %v, want %v", deliveryIDs(limited), deliveryIDs(got[:3]))
			}
			if got := dueDeliveries(t, st, base.Add(999*time.Millisecond)); len(got) != 3 {
				t.Fatalf("due before evt_2 = %v, want 3", deliveryIDs(got))
			}
			for _, limit := range []int{0, -1} {
				if _, err := st.DueDeliveries(ctx, base, limit); !errors.Is(err, store.ErrInvalid) {
					t.Errorf("limit %d: err = %v, want ErrInvalid", limit, err)
				}
			}
		},
		"a failed attempt keeps the delivery pending, due at its next time": func(t *testing.T, st store.Store) {
			d1, _, _, _ := setup(t, st)
			got := mustAttempt(t, st, d1, store.DeliveryPending, 10*time.Second)
			want := d1
			want.Attempts, want.NextAttemptAt, want.LastStatus, want.LastError, want.UpdatedAt = 1, base.Add(70*time.Second), 503, "HTTP 503", base.Add(10*time.Second)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("stored %+v\nwant   %+v", got, want)
			}
			if isDue(t, st, base.Add(69*time.Second), d1.ID) || !isDue(t, st, base.Add(70*time.Second), d1.ID) {
				t.Fatal("the retried delivery is not due exactly at its next time")
			}
		},
		"a delivered attempt sets DeliveredAt and ends the delivery": func(t *testing.T, st store.Store) {
			d1, _, _, _ := setup(t, st)
			mustAttempt(t, st, d1, store.DeliveryPending, 10*time.Second)
			d1 = mustGetDelivery(t, st, "t_a", d1.ID)
			got := mustAttempt(t, st, d1, store.DeliveryDelivered, 80*time.Second)
			if got.State != store.DeliveryDelivered || got.Attempts != 2 || !got.DeliveredAt.Equal(base.Add(80*time.Second)) ||
				got.LastStatus != 200 || got.LastError != "" || !got.UpdatedAt.Equal(base.Add(80*time.Second)) {
				t.Fatalf("stored %+v", got)
			}
			if isDue(t, st, base.Add(time.Hour), d1.ID) {
				t.Fatal("a delivered delivery is due")
			}
			atts, err := st.ListAttempts(ctx, "t_a", d1.ID)
			mustNoErr(t, err)
			want := []store.Attempt{
				{DeliveryID: d1.ID, N: 1, At: base.Add(10 * time.Second), StatusCode: 503, LatencyMS: 12.5, Error: "HTTP 503", Response: "busy"},
				{DeliveryID: d1.ID, N: 2, At: base.Add(80 * time.Second), StatusCode: 200, LatencyMS: 12.5, Response: "ok"},
			}
			if !reflect.DeepEqual(atts, want) {
				t.Fatalf("attempts %+v\nwant     %+v", atts, want)
			}
		},
		"a dead attempt ends the delivery": func(t *testing.T, st store.Store) {
			d1, _, _, _ := setup(t, st)
			got := mustAttempt(t, st, d1, store.DeliveryDead, 10*time.Second)
			if got.State != store.DeliveryDead || got.LastError != "attempts exhausted" || !got.DeliveredAt.IsZero() {
				t.Fatalf("stored %+v", got)
			}
			if isDue(t, st, base.Add(time.Hour), d1.ID) {
				t.Fatal("a dead delivery is due")
			}
		},
		"an attempt on a delivery that is not pending is ErrNotFound and writes nothing": func(t *testing.T, st store.Store) {
			d1, d2, _, _ := setup(t, st)
			delivered := mustAttempt(t, st, d1, store.DeliveryDelivered, time.Second)
			dead := mustAttempt(t, st, d2, store.DeliveryDead, time.Second)
			for _, d := range []store.Delivery{delivered, dead} {
				for _, state := range []store.DeliveryState{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryDead} {
					mustErrIs(t, attemptAt(t, st, d, state, time.Minute), store.ErrNotFound)
				}
				if got := mustGetDelivery(t, st, "t_a", d.ID); !reflect.DeepEqual(got, d) {
					t.Fatalf("a refused attempt changed the delivery: %+v", got)
				}
				atts, err := st.ListAttempts(ctx, "t_a", d.ID)
				mustNoErr(t, err)
				if len(atts) != 1 {
					t.Fatalf("%d attempts listed, want the one accepted", len(atts))
				}
			}
			missing := d1
			missing.ID = "dlv_missing"
			mustErrIs(t, attemptAt(t, st, missing, store.DeliveryDelivered, time.Minute), store.ErrNotFound)
		},
		"invalid attempts are ErrInvalid": func(t *testing.T, st store.Store) {
			d1, d2, _, _ := setup(t, st)
			bad := map[string]func() error{
				"blocked state": func() error { return attemptAt(t, st, d1, store.DeliveryBlocked, time.Second) },
				"unknown state": func() error { return attemptAt(t, st, d1, "lost", time.Second) },
				"no tenant": func() error {
					d := d1
					d.TenantID = ""
					return attemptAt(t, st, d, store.DeliveryDelivered, time.Second)
				},
				"no id": func() error {
					d := d1
					d.ID = ""
					return st.RecordAttempt(ctx, d, store.Attempt{N: 1, At: base})
				},
				"another delivery's attempt": func() error {
					d := d1
					d.State = store.DeliveryDelivered
					return st.RecordAttempt(ctx, d, store.Attempt{DeliveryID: d2.ID, N: 1, At: base})
				},
			}
			for name, call := range bad {
				if err := call(); !errors.Is(err, store.ErrInvalid) {
					t.Errorf("%s: err = %v, want ErrInvalid", name, err)
				}
			}
			if got := mustGetDelivery(t, st, "t_a", d1.ID); !reflect.DeepEqual(got, d1) {
				t.Fatalf("an invalid attempt changed the delivery: %+v", got)
			}
		},
		"an attempt without a delivery id or time gets them": func(t *testing.T, st store.Store) {
			d1, _, _, _ := setup(t, st)
			d := d1
			d.State, d.Attempts = store.DeliveryDelivered, 1
			before := time.Now().Add(-time.Second)
			mustNoErr(t, st.RecordAttempt(ctx, d, store.Attempt{N: 1, StatusCode: 204}))
			atts, err := st.ListAttempts(ctx, "t_a", d1.ID)
			mustNoErr(t, err)
			if len(atts) != 1 || atts[0].DeliveryID != d1.ID || atts[0].At.Before(before) {
				t.Fatalf("attempts %+v", atts)
			}
			if got := mustGetDelivery(t, st, "t_a", d1.ID); !got.DeliveredAt.Equal(atts[0].At) {
				t.Fatalf("DeliveredAt %v, want the attempt's time %v", got.DeliveredAt, atts[0].At)
			}
		},
		"postpone moves a pending delivery without an attempt": func(t *testing.T, st store.Store) {
			d1, d2, _, _ := setup(t, st)
			mustNoErr(t, st.PostponeDelivery(ctx, "t_a", d1.ID, base.Add(time.Hour)))
			got := mustGetDelivery(t, st, "t_a", d1.ID)
			want := d1
			want.NextAttemptAt = base.Add(time.Hour)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("stored %+v\nwant   %+v", got, want)
			}
			if isDue(t, st, base.Add(59*time.Minute), d1.ID) || !isDue(t, st, base.Add(time.Hour), d1.ID) {
				t.Fatal("the postponed delivery is not due exactly at its new time")
			}
			atts, err := st.ListAttempts(ctx, "t_a", d1.ID)
			mustNoErr(t, err)
			if len(atts) != 0 {
				t.Fatalf("postpone recorded %d attempts", len(atts))
			}
			mustAttempt(t, st, d2, store.DeliveryDelivered, time.Second)
			mustErrIs(t, st.PostponeDelivery(ctx, "t_a", d2.ID, base.Add(time.Hour)), store.ErrNotFound)
			mustErrIs(t, st.PostponeDelivery(ctx, "t_a", "dlv_missing", base.Add(time.Hour)), store.ErrNotFound)
		},
		"deliveries and attempts of an unknown event or delivery are ErrNotFound": func(t *testing.T, st store.Store) {
			setup(t, st)
			_, err := st.DeliveriesForEvent(ctx, "t_a", "evt_missing")
			mustErrIs(t, err, store.ErrNotFound)
			_, err = st.ListAttempts(ctx, "t_a", "dlv_missing")
			mustErrIs(t, err, store.ErrNotFound)
			_, err = st.GetDelivery(ctx, "t_a", "dlv_missing")
			mustErrIs(t, err, store.ErrNotFound)
		},
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, open(t))
		})
	}
}

// testConcurrentAttempt: of many workers finishing one delivery at once,
// exactly one records its attempt.
func testConcurrentAttempt(t *testing.T, open func(t *testing.T) store.Store) {
	st := open(t)
	mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
	d := mustRecord(t, st, "t_a", 0, event("evt_1", "payment.confirmed", "pi_1", ""))[0]
	const n = 20
	errs := make(chan error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			errs <- attemptAt(t, st, d, store.DeliveryDelivered, time.Second)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrNotFound):
			t.Fatalf("err = %v, want nil or ErrNotFound", err)
		}
	}
	atts, err := st.ListAttempts(context.Background(), "t_a", d.ID)
	mustNoErr(t, err)
	if ok != 1 || len(atts) != 1 {
		t.Fatalf("%d attempts succeeded and %d were stored, want 1 and 1", ok, len(atts))
	}
}

func ordered(tenant, id string) store.Endpoint {
	e := endpoint(tenant, id)
	e.Ordered = true
	return e
}

func testOrderedDelivery(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	// setup: an ordered and an unordered endpoint; evt_1 and evt_2 are about
	// pi_1, evt_3 about pi_2, recorded a second apart; evt_4 and evt_5 about
	// pi_3 in one batch.
	type world struct {
		o1, o2, o3, o4, o5 store.Delivery // to ep_o
		unordered          []store.Delivery
	}
	setup := func(t *testing.T, st store.Store) world {
		t.Helper()
		mustPutEndpoint(t, st, ordered("t_a", "ep_o"))
		mustPutEndpoint(t, st, endpoint("t_a", "ep_u"))
		var all []store.Delivery
		all = append(all, mustRecord(t, st, "t_a", 0, event("evt_1", "payment.confirmed", "pi_1", ""))...)
		all = append(all, mustRecord(t, st, "t_a", time.Second, event("evt_2", "payment.refunded", "pi_1", ""))...)
		all = append(all, mustRecord(t, st, "t_a", 2*time.Second, event("evt_3", "payment.confirmed", "pi_2", ""))...)
		all = append(all, mustRecord(t, st, "t_a", 3*time.Second, event("evt_4", "payment.confirmed", "pi_3", ""), event("evt_5", "payment.failed", "pi_3", ""))...)
		w := world{
			o1: deliveryTo(t, all, "evt_1", "ep_o"), o2: deliveryTo(t, all, "evt_2", "ep_o"), o3: deliveryTo(t, all, "evt_3", "ep_o"),
			o4: deliveryTo(t, all, "evt_4", "ep_o"), o5: deliveryTo(t, all, "evt_5", "ep_o"),
		}
		for _, d := range all {
			if d.EndpointID == "ep_u" {
				w.unordered = append(w.unordered, d)
			}
		}
		return w
	}
	state := func(t *testing.T, st store.Store, d store.Delivery) store.DeliveryState {
		t.Helper()
		return mustGetDelivery(t, st, "t_a", d.ID).State
	}
	tests := map[string]func(t *testing.T, st store.Store){
		"a later delivery of the same subject is blocked; other subjects and unordered endpoints are not": func(t *testing.T, st store.Store) {
			w := setup(t, st)
			for _, c := range []struct {
				d     store.Delivery
				state store.DeliveryState
				key   string
			}{
				{w.o1, store.DeliveryPending, "pi_1"}, {w.o2, store.DeliveryBlocked, "pi_1"}, {w.o3, store.DeliveryPending, "pi_2"},
				{w.o4, store.DeliveryPending, "pi_3"}, {w.o5, store.DeliveryBlocked, "pi_3"},
			} {
				if c.d.State != c.state || c.d.OrderKey != c.key {
					t.Errorf("%s: returned %s with order key %q, want %s and %q", c.d.EventID, c.d.State, c.d.OrderKey, c.state, c.key)
				}
				if got := mustGetDelivery(t, st, "t_a", c.d.ID); got.State != c.state || got.OrderKey != c.key {
					t.Errorf("%s: stored %s with order key %q", c.d.EventID, got.State, got.OrderKey)
				}
			}
			if len(w.unordered) != 5 {
				t.Fatalf("%d unordered deliveries, want 5", len(w.unordered))
			}
			for _, d := range w.unordered {
				if d.State != store.DeliveryPending || d.OrderKey != "" {
					t.Errorf("unordered %s: %s with order key %q", d.EventID, d.State, d.OrderKey)
				}
			}
			due := dueDeliveries(t, st, base.Add(time.Hour))
			want := append([]store.Delivery{w.o1, w.o3, w.o4}, w.unordered...)
			if !sameDeliverySet(due, want) {
				t.Fatalf("due = %v, want %v", pairs(due), pairs(want))
			}
		},
		"a delivered head unblocks the next, due now": func(t *testing.T, st store.Store) {
			w := setup(t, st)
			mustAttempt(t, st, w.o1, store.DeliveryDelivered, 10*time.Second)
			got := mustGetDelivery(t, st, "t_a", w.o2.ID)
			if got.State != store.DeliveryPending || !got.NextAttemptAt.Equal(base.Add(10*time.Second)) || !got.UpdatedAt.Equal(base.Add(10*time.Second)) || got.Attempts != 0 {
				t.Fatalf("next delivery %+v, want pending and due at base+10s", got)
			}
			if !isDue(t, st, base.Add(10*time.Second), w.o2.ID) {
				t.Fatal("the unblocked delivery is not due")
			}
			if state(t, st, w.o5) != store.DeliveryBlocked {
				t.Fatal("another subject's queue moved")
			}
		},
		"a dead head unblocks the next": func(t *testing.T, st store.Store) {
			w := setup(t, st)
			mustAttempt(t, st, w.o4, store.DeliveryDead, 10*time.Second)
			if got := mustGetDelivery(t, st, "t_a", w.o5.ID); got.State != store.DeliveryPending || !got.NextAttemptAt.Equal(base.Add(10*time.Second)) {
				t.Fatalf("next delivery %+v, want pending at base+10s", got)
			}
			if state(t, st, w.o2) != store.DeliveryBlocked {
				t.Fatal("another subject's queue moved")
			}
		},
		"a failed attempt of the head unblocks nothing": func(t *testing.T, st store.Store) {
			w := setup(t, st)
			mustAttempt(t, st, w.o1, store.DeliveryPending, 10*time.Second)
			if state(t, st, w.o2) != store.DeliveryBlocked {
				t.Fatal("a retry unblocked the next delivery")
			}
		},
		"a blocked delivery takes no attempt": func(t *testing.T, st store.Store) {
			w := setup(t, st)
			mustErrIs(t, attemptAt(t, st, w.o2, store.DeliveryDelivered, time.Second), store.ErrNotFound)
			mustErrIs(t, st.PostponeDelivery(ctx, "t_a", w.o2.ID, base.Add(time.Hour)), store.ErrNotFound)
			if state(t, st, w.o2) != store.DeliveryBlocked {
				t.Fatal("a blocked delivery changed")
			}
		},
		"a subject's deliveries go one at a time, in order": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, ordered("t_a", "ep_o"))
			var ds []store.Delivery
			for i := range 4 {
				ds = append(ds, mustRecord(t, st, "t_a", time.Duration(i)*time.Second, event(fmt.Sprintf("evt_%d", i), "payment.confirmed", "pi_1", ""))...)
			}
			for i := range ds {
				due := dueDeliveries(t, st, base.Add(time.Hour))
				if len(due) != 1 || due[0].ID != ds[i].ID {
					t.Fatalf("step %d: due %v, want only %s", i, pairs(due), ds[i].EventID)
				}
				state := store.DeliveryDelivered
				if i%2 == 1 {
					state = store.DeliveryDead
				}
				mustAttempt(t, st, due[0], store.DeliveryPending, time.Duration(10*i)*time.Second)
				mustAttempt(t, st, mustGetDelivery(t, st, "t_a", due[0].ID), state, time.Duration(10*i+5)*time.Second)
			}
			if due := dueDeliveries(t, st, base.Add(time.Hour)); len(due) != 0 {
				t.Fatalf("due after the last = %v", pairs(due))
			}
		},
		"an endpoint that stops being ordered releases its blocked deliveries": func(t *testing.T, st store.Store) {
			w := setup(t, st)
			before := time.Now().Add(-time.Second)
			_, err := st.UpdateEndpoint(ctx, "t_a", "ep_o", func(e *store.Endpoint) error { e.Ordered = false; return nil })
			mustNoErr(t, err)
			for _, d := range []store.Delivery{w.o2, w.o5} {
				got := mustGetDelivery(t, st, "t_a", d.ID)
				if got.State != store.DeliveryPending || got.NextAttemptAt.Before(before) {
					t.Fatalf("%s after the update: %+v, want pending and due about now", d.EventID, got)
				}
			}
			// New deliveries are not blocked any more.
			ds := mustRecord(t, st, "t_a", time.Minute, event("evt_6", "payment.confirmed", "pi_1", ""))
			if o := deliveryTo(t, ds, "evt_6", "ep_o"); o.State != store.DeliveryPending {
				t.Fatalf("a new delivery of an unordered endpoint is %s", o.State)
			}
		},
		"an endpoint enabled again has its waiting deliveries due at once": func(t *testing.T, st store.Store) {
			w := setup(t, st)
			// ep_o is disabled; its head delivery waits an hour (a retry slot
			// or a disabled-endpoint recheck).
			_, err := st.UpdateEndpoint(ctx, "t_a", "ep_o", func(e *store.Endpoint) error { e.Enabled = false; return nil })
			mustNoErr(t, err)
			later := time.Now().Add(time.Hour)
			mustNoErr(t, st.PostponeDelivery(ctx, "t_a", w.o1.ID, later))
			// An edit that leaves it disabled moves nothing.
			_, err = st.UpdateEndpoint(ctx, "t_a", "ep_o", func(e *store.Endpoint) error { e.Types = []string{"payment.*"}; return nil })
			mustNoErr(t, err)
			if got := mustGetDelivery(t, st, "t_a", w.o1.ID); got.NextAttemptAt.Sub(later).Abs() > time.Millisecond {
				t.Fatalf("a disabled endpoint's delivery moved: %+v", got)
			}
			before := time.Now().Add(-time.Second)
			_, err = st.UpdateEndpoint(ctx, "t_a", "ep_o", func(e *store.Endpoint) error { e.Enabled = true; return nil })
			mustNoErr(t, err)
			got := mustGetDelivery(t, st, "t_a", w.o1.ID)
			if got.State != store.DeliveryPending || got.NextAttemptAt.Before(before) || got.NextAttemptAt.After(time.Now()) {
				t.Fatalf("after enabling: %+v, want pending and due about now", got)
			}
			if !isDue(t, st, time.Now(), w.o1.ID) {
				t.Fatal("the released delivery is not in the due index at its new time")
			}
			if isDue(t, st, time.Now().Add(2*time.Hour), w.o2.ID) {
				t.Fatal("a blocked delivery of the ordered endpoint became due")
			}
		},
		"putting an endpoint as unordered releases its blocked deliveries": func(t *testing.T, st store.Store) {
			w := setup(t, st)
			mustPutEndpoint(t, st, endpoint("t_a", "ep_o"))
			if state(t, st, w.o2) != store.DeliveryPending || state(t, st, w.o5) != store.DeliveryPending {
				t.Fatal("blocked deliveries stayed blocked")
			}
		},
		"an endpoint that becomes ordered blocks behind what it already owes": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
			mustRecord(t, st, "t_a", 0, event("evt_1", "payment.confirmed", "pi_1", ""))
			mustPutEndpoint(t, st, ordered("t_a", "ep_1"))
			ds := mustRecord(t, st, "t_a", time.Second, event("evt_2", "payment.confirmed", "pi_1", ""), event("evt_3", "payment.confirmed", "pi_1", ""))
			if ds[0].State != store.DeliveryPending || ds[1].State != store.DeliveryBlocked {
				t.Fatalf("states %s %s, want pending then blocked", ds[0].State, ds[1].State)
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

func testReplay(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	at := base.Add(time.Hour)
	// setup: evt_1 goes to ep_1 (everything) and ep_2 (payment.*).
	setup := func(t *testing.T, st store.Store) (store.Event, store.Delivery, store.Delivery) {
		t.Helper()
		mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
		mustPutEndpoint(t, st, endpoint("t_a", "ep_2", "payment.*"))
		ds := mustRecord(t, st, "t_a", 0, event("evt_1", "payment.confirmed", "pi_1", "pay_1"))
		return mustGetEvent(t, st, "t_a", "evt_1"), deliveryTo(t, ds, "evt_1", "ep_1"), deliveryTo(t, ds, "evt_1", "ep_2")
	}
	replay := func(t *testing.T, st store.Store) []store.Delivery {
		t.Helper()
		ds, err := st.ReplayEvent(ctx, "t_a", "evt_1", at)
		mustNoErr(t, err)
		for i := range ds {
			if i > 0 && ds[i].ID < ds[i-1].ID {
				t.Fatalf("replay returned %v, not sorted by id", deliveryIDs(ds))
			}
			if got := mustGetDelivery(t, st, "t_a", ds[i].ID); !reflect.DeepEqual(got, ds[i]) {
				t.Fatalf("replay returned %+v\nbut stored %+v", ds[i], got)
			}
		}
		return ds
	}
	tests := map[string]func(t *testing.T, st store.Store){
		"delivered and dead deliveries become pending with attempts 0; the event is unchanged": func(t *testing.T, st store.Store) {
			ev, d1, d2 := setup(t, st)
			mustAttempt(t, st, d1, store.DeliveryPending, time.Second)
			mustAttempt(t, st, mustGetDelivery(t, st, "t_a", d1.ID), store.DeliveryDelivered, time.Minute)
			mustAttempt(t, st, d2, store.DeliveryDead, time.Second)

			ds := replay(t, st)
			if !sameDeliverySet(ds, []store.Delivery{d1, d2}) {
				t.Fatalf("replay returned %v, want the two deliveries", pairs(ds))
			}
			for _, d := range ds {
				want := store.Delivery{ID: d.ID, TenantID: "t_a", EventID: "evt_1", EndpointID: d.EndpointID,
					State: store.DeliveryPending, NextAttemptAt: at, CreatedAt: base, UpdatedAt: at}
				if !reflect.DeepEqual(d, want) {
					t.Fatalf("replayed %+v\nwant     %+v", d, want)
				}
			}
			if got := mustGetEvent(t, st, "t_a", "evt_1"); !reflect.DeepEqual(got, ev) || string(got.Body) != eventBodyOf("payment.confirmed", "pi_1") {
				t.Fatalf("event after replay %+v\nwant %+v", got, ev)
			}
			if due := dueDeliveries(t, st, at); !sameDeliverySet(due, ds) {
				t.Fatalf("due after replay = %v", pairs(due))
			}
			// The history stays; the next attempt is attempt 1 again.
			mustAttempt(t, st, mustGetDelivery(t, st, "t_a", d1.ID), store.DeliveryDelivered, 2*time.Hour)
			atts, err := st.ListAttempts(ctx, "t_a", d1.ID)
			mustNoErr(t, err)
			var ns []int
			for _, a := range atts {
				ns = append(ns, a.N)
			}
			if !slices.Equal(ns, []int{1, 2, 1}) {
				t.Fatalf("attempt numbers %v, want [1 2 1], oldest first", ns)
			}
		},
		"pending deliveries are left alone": func(t *testing.T, st store.Store) {
			_, d1, d2 := setup(t, st)
			retried := mustAttempt(t, st, d1, store.DeliveryPending, time.Second)
			mustAttempt(t, st, d2, store.DeliveryDelivered, time.Second)
			ds := replay(t, st)
			if !sameDeliverySet(ds, []store.Delivery{d1, d2}) {
				t.Fatalf("replay returned %v", pairs(ds))
			}
			if got := mustGetDelivery(t, st, "t_a", d1.ID); !reflect.DeepEqual(got, retried) {
				t.Fatalf("a pending delivery changed: %+v\nwas %+v", got, retried)
			}
		},
		"a new matching endpoint gets a delivery; disabled and other types do not": func(t *testing.T, st store.Store) {
			_, d1, d2 := setup(t, st)
			mustAttempt(t, st, d1, store.DeliveryDelivered, time.Second)
			mustAttempt(t, st, d2, store.DeliveryDelivered, time.Second)
			mustPutEndpoint(t, st, endpoint("t_a", "ep_3", "payment.confirmed"))
			disabled := endpoint("t_a", "ep_4")
			disabled.Enabled = false
			mustPutEndpoint(t, st, disabled)
			mustPutEndpoint(t, st, endpoint("t_a", "ep_5", "refund.*"))
			mustPutEndpoint(t, st, endpoint("t_b", "ep_6"))
			ds := replay(t, st)
			want := []pair{{"evt_1", "ep_1"}, {"evt_1", "ep_2"}, {"evt_1", "ep_3"}}
			if got := pairs(ds); !slices.Equal(got, want) {
				t.Fatalf("replay returned %v, want %v", got, want)
			}
			all, err := st.DeliveriesForEvent(ctx, "t_a", "evt_1")
			mustNoErr(t, err)
			if !sameDeliverySet(all, ds) {
				t.Fatalf("deliveries of the event %v, want %v", pairs(all), pairs(ds))
			}
			n := deliveryTo(t, ds, "evt_1", "ep_3")
			if n.State != store.DeliveryPending || !n.CreatedAt.Equal(at) || !n.NextAttemptAt.Equal(at) || n.ID == d1.ID || n.ID == d2.ID {
				t.Fatalf("new delivery %+v", n)
			}
			// A second replay finds ep_3's delivery and makes no other.
			if again := replay(t, st); !sameDeliverySet(again, ds) {
				t.Fatalf("second replay %v, want %v", pairs(again), pairs(ds))
			}
		},
		"a deleted endpoint's delivery stays dead": func(t *testing.T, st store.Store) {
			_, d1, d2 := setup(t, st)
			mustAttempt(t, st, d1, store.DeliveryDelivered, time.Second)
			mustNoErr(t, st.DeleteEndpoint(ctx, "t_a", "ep_2"))
			ds := replay(t, st)
			if got := pairs(ds); !slices.Equal(got, []pair{{"evt_1", "ep_1"}}) {
				t.Fatalf("replay returned %v, want ep_1's only", got)
			}
			if got := mustGetDelivery(t, st, "t_a", d2.ID); got.State != store.DeliveryDead || got.LastError != "endpoint deleted" {
				t.Fatalf("deleted endpoint's delivery %+v", got)
			}
		},
		"on an ordered endpoint a replay queues behind the subject's live delivery": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, ordered("t_a", "ep_o"))
			d1 := mustRecord(t, st, "t_a", 0, event("evt_1", "payment.confirmed", "pi_1", ""))[0]
			mustAttempt(t, st, d1, store.DeliveryDelivered, time.Second)
			d2 := mustRecord(t, st, "t_a", time.Minute, event("evt_2", "payment.refunded", "pi_1", ""))[0]
			if d2.State != store.DeliveryPending {
				t.Fatalf("evt_2's delivery is %s with nothing before it", d2.State)
			}
			ds := replay(t, st)
			if len(ds) != 1 || ds[0].ID != d1.ID || ds[0].State != store.DeliveryBlocked || ds[0].OrderKey != "pi_1" || ds[0].Attempts != 0 {
				t.Fatalf("replay returned %+v, want d1 blocked behind evt_2", ds)
			}
			if isDue(t, st, at.Add(time.Hour), d1.ID) {
				t.Fatal("the blocked replay is due")
			}
			mustAttempt(t, st, d2, store.DeliveryDelivered, 2*time.Hour)
			if got := mustGetDelivery(t, st, "t_a", d1.ID); got.State != store.DeliveryPending || !got.NextAttemptAt.Equal(base.Add(2*time.Hour)) {
				t.Fatalf("the replay after evt_2 was delivered: %+v", got)
			}
		},
		"on an ordered endpoint a replay of an idle subject is pending": func(t *testing.T, st store.Store) {
			mustPutEndpoint(t, st, ordered("t_a", "ep_o"))
			d1 := mustRecord(t, st, "t_a", 0, event("evt_1", "payment.confirmed", "pi_1", ""))[0]
			mustAttempt(t, st, d1, store.DeliveryDead, time.Second)
			ds := replay(t, st)
			if len(ds) != 1 || ds[0].State != store.DeliveryPending || ds[0].OrderKey != "pi_1" {
				t.Fatalf("replay returned %+v", ds)
			}
			// It heads its queue: a new event of the subject waits for it.
			d2 := mustRecord(t, st, "t_a", 2*time.Hour, event("evt_2", "payment.refunded", "pi_1", ""))[0]
			if d2.State != store.DeliveryBlocked {
				t.Fatalf("a new delivery behind the replay is %s", d2.State)
			}
		},
		"an unknown or another tenant's event is ErrNotFound and nothing changes": func(t *testing.T, st store.Store) {
			_, d1, _ := setup(t, st)
			delivered := mustAttempt(t, st, d1, store.DeliveryDelivered, time.Second)
			mustPutEndpoint(t, st, endpoint("t_b", "ep_1"))
			for _, tenant := range []string{"t_a", "t_b"} {
				id := "evt_1"
				if tenant == "t_a" {
					id = "evt_missing"
				}
				ds, err := st.ReplayEvent(ctx, tenant, id, at)
				mustErrIs(t, err, store.ErrNotFound)
				if ds != nil {
					t.Fatalf("%s: replay returned %v with an error", tenant, ds)
				}
			}
			if got := mustGetDelivery(t, st, "t_a", d1.ID); !reflect.DeepEqual(got, delivered) {
				t.Fatalf("delivery changed: %+v", got)
			}
			if due := dueDeliveries(t, st, at.Add(time.Hour)); len(due) != 1 {
				t.Fatalf("due = %v, want ep_2's delivery only", pairs(due))
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

func testKillDeliveries(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	// setup: ep_1 is ordered; after evt_3 is delivered, ep_1 owes d1
	// (pending) and d2 (blocked); ep_2 owes all three.
	type world struct {
		d1, d2, d3 store.Delivery   // to ep_1
		ep2        []store.Delivery // to ep_2
	}
	setup := func(t *testing.T, st store.Store) world {
		t.Helper()
		mustPutEndpoint(t, st, ordered("t_a", "ep_1"))
		mustPutEndpoint(t, st, endpoint("t_a", "ep_2"))
		ds := mustRecord(t, st, "t_a", 0,
			event("evt_1", "payment.confirmed", "pi_1", ""),
			event("evt_2", "payment.refunded", "pi_1", ""),
			event("evt_3", "payment.confirmed", "pi_2", ""))
		w := world{d1: deliveryTo(t, ds, "evt_1", "ep_1"), d2: deliveryTo(t, ds, "evt_2", "ep_1"), d3: deliveryTo(t, ds, "evt_3", "ep_1")}
		w.d3 = mustAttempt(t, st, w.d3, store.DeliveryDelivered, time.Second)
		for _, d := range ds {
			if d.EndpointID == "ep_2" {
				w.ep2 = append(w.ep2, d)
			}
		}
		return w
	}
	assertKilled := func(t *testing.T, st store.Store, w world, reason string, at time.Time) {
		t.Helper()
		for _, d := range []store.Delivery{w.d1, w.d2} {
			got := mustGetDelivery(t, st, "t_a", d.ID)
			if got.State != store.DeliveryDead || got.LastError != reason || (!at.IsZero() && !got.UpdatedAt.Equal(at)) {
				t.Fatalf("%s: %+v, want dead with %q", d.EventID, got, reason)
			}
			mustErrIs(t, attemptAt(t, st, got, store.DeliveryDelivered, 2*time.Hour), store.ErrNotFound)
		}
		if got := mustGetDelivery(t, st, "t_a", w.d3.ID); !reflect.DeepEqual(got, w.d3) {
			t.Fatalf("the delivered delivery changed: %+v", got)
		}
		due := dueDeliveries(t, st, base.Add(24*time.Hour))
		if !sameDeliverySet(due, w.ep2) {
			t.Fatalf("due = %v, want ep_2's only", pairs(due))
		}
	}
	tests := map[string]func(t *testing.T, st store.Store){
		"kill makes pending and blocked deliveries dead and counts them": func(t *testing.T, st store.Store) {
			w := setup(t, st)
			n, err := st.KillEndpointDeliveries(ctx, "t_a", "ep_1", "endpoint answered 410 Gone", base.Add(time.Hour))
			mustNoErr(t, err)
			if n != 2 {
				t.Fatalf("killed %d, want 2", n)
			}
			assertKilled(t, st, w, "endpoint answered 410 Gone", base.Add(time.Hour))
			n, err = st.KillEndpointDeliveries(ctx, "t_a", "ep_1", "again", base.Add(2*time.Hour))
			mustNoErr(t, err)
			if n != 0 {
				t.Fatalf("a second kill killed %d", n)
			}
			// The endpoint stays and gets new events.
			ds := mustRecord(t, st, "t_a", 3*time.Hour, event("evt_4", "payment.confirmed", "pi_1", ""))
			if d := deliveryTo(t, ds, "evt_4", "ep_1"); d.State != store.DeliveryPending {
				t.Fatalf("a new delivery after the kill is %s", d.State)
			}
		},
		"delete makes the endpoint's deliveries dead with \"endpoint deleted\"": func(t *testing.T, st store.Store) {
			w := setup(t, st)
			mustNoErr(t, st.DeleteEndpoint(ctx, "t_a", "ep_1"))
			assertKilled(t, st, w, "endpoint deleted", time.Time{})
			_, err := st.KillEndpointDeliveries(ctx, "t_a", "ep_1", "gone", base)
			mustErrIs(t, err, store.ErrNotFound)
		},
		"another tenant cannot kill or delete": func(t *testing.T, st store.Store) {
			w := setup(t, st)
			_, err := st.KillEndpointDeliveries(ctx, "t_b", "ep_1", "gone", base)
			mustErrIs(t, err, store.ErrNotFound)
			mustErrIs(t, st.DeleteEndpoint(ctx, "t_b", "ep_1"), store.ErrNotFound)
			if got := mustGetDelivery(t, st, "t_a", w.d1.ID); got.State != store.DeliveryPending {
				t.Fatalf("d1 is %s", got.State)
			}
			if got := mustGetDelivery(t, st, "t_a", w.d2.ID); got.State != store.DeliveryBlocked {
				t.Fatalf("d2 is %s", got.State)
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

// testEventIsolation: every EventStore method, called by another tenant
// with a tenant's ids, finds nothing and changes nothing.
func testEventIsolation(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	mustPutEndpoint(t, st, endpoint("t_a", "ep_1"))
	quarantined := mustAccept(t, st, webhook("t_a", "stripe", "evt_q", 0))
	mustNoErr(t, st.QuarantineInbox(ctx, "t_a", quarantined.ID, "bad"))
	pending := mustAccept(t, st, webhook("t_a", "stripe", "evt_p", 0))
	d := mustRecord(t, st, "t_a", 0, event("evt_1", "payment.confirmed", "pi_1", "pay_1"))[0]
	mustAttempt(t, st, d, store.DeliveryPending, time.Second)
	snapshot := func() any {
		inbox, _, err := st.ListInbox(ctx, "t_a", "", store.ListQuery{})
		mustNoErr(t, err)
		events, _, err := st.ListEvents(ctx, "t_a", store.EventQuery{})
		mustNoErr(t, err)
		eps, err := st.ListEndpoints(ctx, "t_a")
		mustNoErr(t, err)
		ds, err := st.DeliveriesForEvent(ctx, "t_a", "evt_1")
		mustNoErr(t, err)
		atts, err := st.ListAttempts(ctx, "t_a", d.ID)
		mustNoErr(t, err)
		return []any{inbox, events, eps, ds, atts}
	}
	before := snapshot()

	notFound := map[string]func() error{
		"GetInbox":          func() error { _, err := st.GetInbox(ctx, "t_b", pending.ID); return err },
		"RetryInbox":        func() error { return st.RetryInbox(ctx, "t_b", pending.ID, base.Add(time.Hour), "x") },
		"QuarantineInbox":   func() error { return st.QuarantineInbox(ctx, "t_b", pending.ID, "x") },
		"ReleaseQuarantine": func() error { _, err := st.ReleaseQuarantine(ctx, "t_b", quarantined.ID, base); return err },
		"RecordEvents": func() error {
			_, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_b", InboxID: pending.ID, Now: base})
			return err
		},
		"GetEvent":           func() error { _, err := st.GetEvent(ctx, "t_b", "evt_1"); return err },
		"DeliveriesForEvent": func() error { _, err := st.DeliveriesForEvent(ctx, "t_b", "evt_1"); return err },
		"ReplayEvent":        func() error { _, err := st.ReplayEvent(ctx, "t_b", "evt_1", base); return err },
		"GetEndpoint":        func() error { _, err := st.GetEndpoint(ctx, "t_b", "ep_1"); return err },
		"UpdateEndpoint": func() error {
			_, err := st.UpdateEndpoint(ctx, "t_b", "ep_1", func(e *store.Endpoint) error {
				t.Error("UpdateEndpoint called fn with another tenant's endpoint")
				e.Enabled = false
				return nil
			})
			return err
		},
		"DeleteEndpoint": func() error { return st.DeleteEndpoint(ctx, "t_b", "ep_1") },
		"KillEndpointDeliveries": func() error {
			_, err := st.KillEndpointDeliveries(ctx, "t_b", "ep_1", "x", base)
			return err
		},
		"GetDelivery": func() error { _, err := st.GetDelivery(ctx, "t_b", d.ID); return err },
		"RecordAttempt": func() error {
			other := mustGetDelivery(t, st, "t_a", d.ID)
			other.TenantID, other.State = "t_b", store.DeliveryDelivered
			return st.RecordAttempt(ctx, other, store.Attempt{DeliveryID: d.ID, N: 2, At: base})
		},
		"PostponeDelivery": func() error { return st.PostponeDelivery(ctx, "t_b", d.ID, base.Add(time.Hour)) },
		"ListAttempts":     func() error { _, err := st.ListAttempts(ctx, "t_b", d.ID); return err },
	}
	for name, call := range notFound {
		if err := call(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s as another tenant: err = %v, want ErrNotFound", name, err)
		}
	}
	inbox, _, err := st.ListInbox(ctx, "t_b", "", store.ListQuery{})
	mustNoErr(t, err)
	events, _, err := st.ListEvents(ctx, "t_b", store.EventQuery{PaymentID: "pay_1"})
	mustNoErr(t, err)
	eps, err := st.ListEndpoints(ctx, "t_b")
	mustNoErr(t, err)
	if len(inbox) != 0 || len(events) != 0 || len(eps) != 0 {
		t.Fatalf("t_b lists %d inbox records, %d events, %d endpoints of t_a", len(inbox), len(events), len(eps))
	}
	if after := snapshot(); !reflect.DeepEqual(after, before) {
		t.Fatalf("t_a's data changed through t_b:\nbefore %+v\nafter  %+v", before, after)
	}
}

func testAuditResource(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	const total = 90
	resources := []string{"pay_0", "pay_1", "pay_2", ""}
	var all []store.AuditRecord
	for i := range total {
		r := auditRecord("t_a", i)
		r.ResourceID = resources[i%len(resources)]
		stored, err := st.AppendAudit(ctx, r)
		mustNoErr(t, err)
		all = append(all, stored)
		noise := auditRecord("t_noise", i)
		noise.ResourceID = "pay_1"
		_, err = st.AppendAudit(ctx, noise)
		mustNoErr(t, err)
	}
	slices.Reverse(all)
	tests := map[string]store.AuditQuery{
		"one resource, default limit":          {ResourceID: "pay_1"},
		"one resource, pages of four":          {ResourceID: "pay_0", Limit: 4},
		"one resource, pages of one":           {ResourceID: "pay_2", Limit: 1},
		"a resource and a status":              {ResourceID: "pay_1", Status: "ok", Limit: 3},
		"a resource, a provider and an action": {ResourceID: "pay_0", Provider: "stripe", Action: "payments.create", Limit: 2},
		"an unknown resource":                  {ResourceID: "pay_9"},
		"a resource id that is a prefix":       {ResourceID: "pay_"},
	}
	for name, q := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var want []uint64
			for _, r := range all {
				if r.ResourceID == q.ResourceID && (q.Provider == "" || r.Provider == q.Provider) &&
					(q.Action == "" || r.Action == q.Action) && (q.Status == "" || r.Status == q.Status) {
					want = append(want, r.Seq)
				}
			}
			limit := q.Limit
			if limit == 0 {
				limit = store.DefaultAuditLimit
			}
			var got []uint64
			pages := 0
			for {
				list, next, err := st.ListAudit(ctx, "t_a", q)
				mustNoErr(t, err)
				pages++
				if len(list) > limit || (next != "" && len(list) != limit) {
					t.Fatalf("page %d: %d records, next %q, limit %d", pages, len(list), next, limit)
				}
				for _, r := range list {
					if r.TenantID != "t_a" || r.ResourceID != q.ResourceID {
						t.Fatalf("listed %s/%s", r.TenantID, r.ResourceID)
					}
				}
				got = append(got, seqs(list)...)
				if next == "" {
					break
				}
				if pages > total {
					t.Fatal("pagination does not end")
				}
				q.Cursor = next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("paged seqs %v\nwant       %v", got, want)
			}
			if wantPages := max(1, (len(want)+limit-1)/limit); pages != wantPages {
				t.Errorf("pages = %d, want %d", pages, wantPages)
			}
		})
	}
	t.Run("another tenant's records of the resource are not listed", func(t *testing.T) {
		list, _, err := st.ListAudit(ctx, "t_b", store.AuditQuery{ResourceID: "pay_1"})
		mustNoErr(t, err)
		if len(list) != 0 {
			t.Fatalf("t_b lists %d records", len(list))
		}
		list, _, err = st.ListAudit(ctx, "t_noise", store.AuditQuery{ResourceID: "pay_1", Limit: store.MaxAuditLimit})
		mustNoErr(t, err)
		if len(list) != total || !strings.HasPrefix(list[0].CorrelationID, "corr_") {
			t.Fatalf("t_noise lists %d of its %d records", len(list), total)
		}
	})
}
