// Package storetest is the conformance suite of store.Store. Every store
// implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openTestStore(t) })
//	}
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
)

// Run runs the suite. open must return a new, empty store each time it is
// called and register its own cleanup with t.Cleanup; that cleanup must
// tolerate a store the suite already closed (Close returning ErrClosed).
// Subtests run in parallel, so open must be safe to call concurrently.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Payments", func(t *testing.T) { t.Parallel(); testPayments(t, open) })
	t.Run("Resources", func(t *testing.T) { t.Parallel(); testResources(t, open) })
	t.Run("ResourceEvents", func(t *testing.T) { t.Parallel(); testResourceEvents(t, open) })
	t.Run("PaymentKeep", func(t *testing.T) { t.Parallel(); testPaymentKeep(t, open) })
	t.Run("EventsAfter", func(t *testing.T) { t.Parallel(); testEventsAfter(t, open) })
	t.Run("PaymentsConcurrentUpdate", func(t *testing.T) { t.Parallel(); testConcurrentUpdate(t, open) })
	t.Run("Idempotency", func(t *testing.T) { t.Parallel(); testIdempotency(t, open) })
	t.Run("IdempotencyFinish", func(t *testing.T) { t.Parallel(); testIdempotencyFinish(t, open) })
	t.Run("IdempotencyConcurrentBegin", func(t *testing.T) { t.Parallel(); testConcurrentBegin(t, open) })
	t.Run("IdempotencySweep", func(t *testing.T) { t.Parallel(); testSweep(t, open) })
	t.Run("Audit", func(t *testing.T) { t.Parallel(); testAudit(t, open) })
	t.Run("AuditPagination", func(t *testing.T) { t.Parallel(); testAuditPagination(t, open) })
	t.Run("AuditQueryValidation", func(t *testing.T) { t.Parallel(); testAuditQueryValidation(t, open) })
	t.Run("AuditConcurrentAppend", func(t *testing.T) { t.Parallel(); testConcurrentAppend(t, open) })
	t.Run("AuditResource", func(t *testing.T) { t.Parallel(); testAuditResource(t, open) })
	t.Run("AuditChain", func(t *testing.T) { t.Parallel(); testAuditChain(t, open) })
	t.Run("Inbox", func(t *testing.T) { t.Parallel(); testInbox(t, open) })
	t.Run("InboxConcurrentDedup", func(t *testing.T) { t.Parallel(); testInboxConcurrentDedup(t, open) })
	t.Run("InboxDedupSweep", func(t *testing.T) { t.Parallel(); testDedupSweep(t, open) })
	t.Run("InboxDue", func(t *testing.T) { t.Parallel(); testInboxDue(t, open) })
	t.Run("InboxStates", func(t *testing.T) { t.Parallel(); testInboxStates(t, open) })
	t.Run("InboxList", func(t *testing.T) { t.Parallel(); testInboxList(t, open) })
	t.Run("RecordEvents", func(t *testing.T) { t.Parallel(); testRecordEvents(t, open) })
	t.Run("ListEvents", func(t *testing.T) { t.Parallel(); testListEvents(t, open) })
	t.Run("Endpoints", func(t *testing.T) { t.Parallel(); testEndpoints(t, open) })
	t.Run("Deliveries", func(t *testing.T) { t.Parallel(); testDeliveries(t, open) })
	t.Run("DeliveriesConcurrentAttempt", func(t *testing.T) { t.Parallel(); testConcurrentAttempt(t, open) })
	t.Run("OrderedDelivery", func(t *testing.T) { t.Parallel(); testOrderedDelivery(t, open) })
	t.Run("Replay", func(t *testing.T) { t.Parallel(); testReplay(t, open) })
	t.Run("KillDeliveries", func(t *testing.T) { t.Parallel(); testKillDeliveries(t, open) })
	t.Run("EventIsolation", func(t *testing.T) { t.Parallel(); testEventIsolation(t, open) })
	t.Run("Tenants", func(t *testing.T) { t.Parallel(); testTenants(t, open) })
	t.Run("TenantsConcurrentUpdate", func(t *testing.T) { t.Parallel(); testConcurrentTenantUpdate(t, open) })
	t.Run("APIKeys", func(t *testing.T) { t.Parallel(); testAPIKeys(t, open) })
	t.Run("APIKeysConcurrent", func(t *testing.T) { t.Parallel(); testConcurrentAPIKeys(t, open) })
	t.Run("Credentials", func(t *testing.T) { t.Parallel(); testCredentials(t, open) })
	t.Run("CredentialsReplace", func(t *testing.T) { t.Parallel(); testReplaceCredentials(t, open) })
	t.Run("AdminIsolation", func(t *testing.T) { t.Parallel(); testAdminIsolation(t, open) })
	t.Run("Lifecycle", func(t *testing.T) { t.Parallel(); testLifecycle(t, open) })
}

// base is the suite's clock: a whole second, so that no store's time
// precision matters.
var base = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// sameTime reports whether got is want at the microsecond precision every
// store keeps.
func sameTime(got, want time.Time) bool {
	d := got.Sub(want)
	return d > -time.Microsecond && d < time.Microsecond
}

func mustErrIs(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want errors.Is(err, %v)", err, want)
	}
}

func mustNoErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func samplePayment(tenant, id string) store.Payment {
	return store.Payment{
		ID:                id,
		TenantID:          tenant,
		Provider:          "stripe",
		ProviderPaymentID: "",
		Status:            "pending",
		Amount:            1999,
		Currency:          "EUR",
		Reference:         "order-" + id,
		Description:       "two coffees",
		ReturnURL:         "https://shop.example/return",
		Customer:          &store.Customer{Email: "ana@example.com", Phone: "+34600000000", Name: "Ana"},
		Metadata:          map[string]string{"cart": "c_1"},
		CorrelationID:     "corr_" + id,
		CreatedAt:         base.Add(123456789 * time.Nanosecond),
	}
}

// ---- payments

func testPayments(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	errFn := errors.New("storetest: fn refused")

	tests := map[string]func(t *testing.T, st store.Store){
		"create then get returns every field": func(t *testing.T, st store.Store) {
			want := samplePayment("t_a", "pay_1")
			want.ProviderPaymentID = "pi_1"
			want.AmountRefunded = 5
			want.RedirectURL = "https://pay.example/r"
			want.Method = "card"
			want.FailureCode = "card_declined"
			want.FailureMessage = "declined"
			want.UpdatedAt = base.Add(time.Hour)
			mustNoErr(t, st.CreatePayment(ctx, want))
			got, err := st.GetPayment(ctx, "t_a", "pay_1")
			mustNoErr(t, err)
			if !sameTime(got.CreatedAt, want.CreatedAt) || !sameTime(got.UpdatedAt, want.UpdatedAt) {
				t.Fatalf("times = %v/%v, want %v/%v", got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
			}
			got.CreatedAt, got.UpdatedAt = want.CreatedAt, want.UpdatedAt
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		},
		"create fills zero times": func(t *testing.T, st store.Store) {
			p := samplePayment("t_a", "pay_1")
			p.CreatedAt = time.Time{}
			before := time.Now().Add(-time.Second)
			mustNoErr(t, st.CreatePayment(ctx, p))
			got, err := st.GetPayment(ctx, "t_a", "pay_1")
			mustNoErr(t, err)
			if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Second)) {
				t.Fatalf("CreatedAt = %v, want about now", got.CreatedAt)
			}
			if !got.UpdatedAt.Equal(got.CreatedAt) {
				t.Fatalf("UpdatedAt = %v, want CreatedAt %v", got.UpdatedAt, got.CreatedAt)
			}
		},
		"duplicate id for the same tenant is ErrExists": func(t *testing.T, st store.Store) {
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
			dup := samplePayment("t_a", "pay_1")
			dup.Amount = 1
			mustErrIs(t, st.CreatePayment(ctx, dup), store.ErrExists)
			got, err := st.GetPayment(ctx, "t_a", "pay_1")
			mustNoErr(t, err)
			if got.Amount != 1999 {
				t.Fatalf("duplicate overwrote the payment: amount %d", got.Amount)
			}
		},
		"the same id under another tenant is a different payment": func(t *testing.T, st store.Store) {
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
			other := samplePayment("t_b", "pay_1")
			other.Amount = 7
			mustNoErr(t, st.CreatePayment(ctx, other))
			a, err := st.GetPayment(ctx, "t_a", "pay_1")
			mustNoErr(t, err)
			b, err := st.GetPayment(ctx, "t_b", "pay_1")
			mustNoErr(t, err)
			if a.Amount != 1999 || b.Amount != 7 {
				t.Fatalf("amounts = %d, %d; want 1999, 7", a.Amount, b.Amount)
			}
		},
		"missing payment is ErrNotFound": func(t *testing.T, st store.Store) {
			_, err := st.GetPayment(ctx, "t_a", "pay_missing")
			mustErrIs(t, err, store.ErrNotFound)
		},
		"another tenant's payment is ErrNotFound on get": func(t *testing.T, st store.Store) {
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
			_, err := st.GetPayment(ctx, "t_b", "pay_1")
			mustErrIs(t, err, store.ErrNotFound)
			_, missing := st.GetPayment(ctx, "t_b", "pay_2")
			if err.Error() != missing.Error() {
				t.Fatalf("another tenant's payment (%q) is distinguishable from a missing one (%q)", err, missing)
			}
		},
		"another tenant's payment is ErrNotFound on update and stays unchanged": func(t *testing.T, st store.Store) {
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
			called := false
			_, err := st.UpdatePayment(ctx, "t_b", "pay_1", func(p *store.Payment) error {
				called = true
				p.Status = "succeeded"
				return nil
			})
			mustErrIs(t, err, store.ErrNotFound)
			if called {
				t.Fatal("fn was called with another tenant's payment")
			}
			got, err := st.GetPayment(ctx, "t_a", "pay_1")
			mustNoErr(t, err)
			if got.Status != "pending" {
				t.Fatalf("status = %q, want pending", got.Status)
			}
		},
		"update writes fn's result and sets UpdatedAt": func(t *testing.T, st store.Store) {
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
			before := time.Now().Add(-time.Second)
			got, err := st.UpdatePayment(ctx, "t_a", "pay_1", func(p *store.Payment) error {
				p.Status = "succeeded"
				p.Metadata["charge"] = "ch_1"
				return nil
			})
			mustNoErr(t, err)
			if got.Status != "succeeded" || got.Metadata["charge"] != "ch_1" {
				t.Fatalf("returned %+v, want the update applied", got)
			}
			if got.UpdatedAt.Before(before) {
				t.Fatalf("UpdatedAt = %v, want about now", got.UpdatedAt)
			}
			if !sameTime(got.CreatedAt, samplePayment("", "").CreatedAt) {
				t.Fatalf("CreatedAt changed to %v", got.CreatedAt)
			}
			stored, err := st.GetPayment(ctx, "t_a", "pay_1")
			mustNoErr(t, err)
			if !reflect.DeepEqual(stored, got) {
				t.Fatalf("stored %+v\nreturned %+v", stored, got)
			}
		},
		"update of a missing payment is ErrNotFound": func(t *testing.T, st store.Store) {
			_, err := st.UpdatePayment(ctx, "t_a", "pay_missing", func(*store.Payment) error { return nil })
			mustErrIs(t, err, store.ErrNotFound)
		},
		"fn's error aborts the update and is returned": func(t *testing.T, st store.Store) {
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
			_, err := st.UpdatePayment(ctx, "t_a", "pay_1", func(p *store.Payment) error {
				p.Status = "failed"
				return errFn
			})
			mustErrIs(t, err, errFn)
			got, err := st.GetPayment(ctx, "t_a", "pay_1")
			mustNoErr(t, err)
			if got.Status != "pending" {
				t.Fatalf("status = %q after an aborted update", got.Status)
			}
		},
		"update must not change identity": func(t *testing.T, st store.Store) {
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
			for name, fn := range map[string]func(*store.Payment){
				"tenant":     func(p *store.Payment) { p.TenantID = "t_b" },
				"id":         func(p *store.Payment) { p.ID = "pay_2" },
				"created_at": func(p *store.Payment) { p.CreatedAt = p.CreatedAt.Add(time.Hour) },
			} {
				_, err := st.UpdatePayment(ctx, "t_a", "pay_1", func(p *store.Payment) error { fn(p); return nil })
				if !errors.Is(err, store.ErrInvalid) {
					t.Errorf("changing %s: err = %v, want ErrInvalid", name, err)
				}
			}
			_, err := st.GetPayment(ctx, "t_b", "pay_1")
			mustErrIs(t, err, store.ErrNotFound)
			_, err = st.GetPayment(ctx, "t_a", "pay_2")
			mustErrIs(t, err, store.ErrNotFound)
		},
		"payment by provider id follows create and update": func(t *testing.T, st store.Store) {
			p := samplePayment("t_a", "pay_1")
			p.ProviderPaymentID = "pi_1"
			mustNoErr(t, st.CreatePayment(ctx, p))
			got, err := st.PaymentByProviderID(ctx, "stripe", "pi_1")
			mustNoErr(t, err)
			if got.TenantID != "t_a" || got.ID != "pay_1" {
				t.Fatalf("found %s/%s, want t_a/pay_1", got.TenantID, got.ID)
			}
			_, err = st.PaymentByProviderID(ctx, "mercadopago", "pi_1")
			mustErrIs(t, err, store.ErrNotFound)

			_, err = st.UpdatePayment(ctx, "t_a", "pay_1", func(p *store.Payment) error {
				p.ProviderPaymentID = "pi_2"
				return nil
			})
			mustNoErr(t, err)
			_, err = st.PaymentByProviderID(ctx, "stripe", "pi_1")
			mustErrIs(t, err, store.ErrNotFound)
			got, err = st.PaymentByProviderID(ctx, "stripe", "pi_2")
			mustNoErr(t, err)
			if got.ID != "pay_1" {
				t.Fatalf("found %s, want pay_1", got.ID)
			}
		},
		"payment by provider id set only by an update": func(t *testing.T, st store.Store) {
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
			_, err := st.PaymentByProviderID(ctx, "stripe", "")
			mustErrIs(t, err, store.ErrNotFound)
			_, err = st.UpdatePayment(ctx, "t_a", "pay_1", func(p *store.Payment) error {
				p.ProviderPaymentID = "pi_9"
				return nil
			})
			mustNoErr(t, err)
			got, err := st.PaymentByProviderID(ctx, "stripe", "pi_9")
			mustNoErr(t, err)
			if got.ID != "pay_1" || got.ProviderPaymentID != "pi_9" {
				t.Fatalf("found %+v", got)
			}
		},
		"missing provider id is ErrNotFound": func(t *testing.T, st store.Store) {
			_, err := st.PaymentByProviderID(ctx, "stripe", "pi_missing")
			mustErrIs(t, err, store.ErrNotFound)
		},
		"a provider id already used is ErrExists on create": func(t *testing.T, st store.Store) {
			p := samplePayment("t_a", "pay_1")
			p.ProviderPaymentID = "pi_1"
			mustNoErr(t, st.CreatePayment(ctx, p))
			q := samplePayment("t_b", "pay_2")
			q.ProviderPaymentID = "pi_1"
			mustErrIs(t, st.CreatePayment(ctx, q), store.ErrExists)
			_, err := st.GetPayment(ctx, "t_b", "pay_2")
			mustErrIs(t, err, store.ErrNotFound)
			got, err := st.PaymentByProviderID(ctx, "stripe", "pi_1")
			mustNoErr(t, err)
			if got.TenantID != "t_a" {
				t.Fatalf("index now points at %s", got.TenantID)
			}
		},
		"a provider id already used is ErrExists on update": func(t *testing.T, st store.Store) {
			p := samplePayment("t_a", "pay_1")
			p.ProviderPaymentID = "pi_1"
			mustNoErr(t, st.CreatePayment(ctx, p))
			mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_2")))
			_, err := st.UpdatePayment(ctx, "t_a", "pay_2", func(p *store.Payment) error {
				p.ProviderPaymentID = "pi_1"
				p.Status = "succeeded"
				return nil
			})
			mustErrIs(t, err, store.ErrExists)
			got, err := st.GetPayment(ctx, "t_a", "pay_2")
			mustNoErr(t, err)
			if got.ProviderPaymentID != "" || got.Status != "pending" {
				t.Fatalf("rejected update was written: %+v", got)
			}
			// Re-stating a payment's own provider id is no conflict.
			_, err = st.UpdatePayment(ctx, "t_a", "pay_1", func(p *store.Payment) error {
				p.Status = "succeeded"
				return nil
			})
			mustNoErr(t, err)
		},
		"empty tenant or id is ErrInvalid": func(t *testing.T, st store.Store) {
			mustErrIs(t, st.CreatePayment(ctx, samplePayment("", "pay_1")), store.ErrInvalid)
			mustErrIs(t, st.CreatePayment(ctx, samplePayment("t_a", "")), store.ErrInvalid)
		},
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, open(t))
		})
	}
}

// testConcurrentUpdate checks read-modify-write: concurrent increments are
// never lost.
func testConcurrentUpdate(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	mustNoErr(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")))
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := st.UpdatePayment(ctx, "t_a", "pay_1", func(p *store.Payment) error {
				p.AmountRefunded++
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		mustNoErr(t, err)
	}
	got, err := st.GetPayment(ctx, "t_a", "pay_1")
	mustNoErr(t, err)
	if got.AmountRefunded != n {
		t.Fatalf("AmountRefunded = %d after %d concurrent increments", got.AmountRefunded, n)
	}
}

// ---- idempotency

const (
	ttl   = 24 * time.Hour
	lease = 30 * time.Second
)

var idemKey = store.IdemKey{TenantID: "t_a", Scope: "POST /v1/payments", Key: "order-42"}

func testIdempotency(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	resp := store.StoredResponse{Status: 201, Body: []byte(`{"id":"pay_1"}`)}

	// Steps that put the key in a state before the call under test. Each
	// runs at base and uses operation id "op-1" and hash "h1".
	begin := func(t *testing.T, st store.Store) {
		t.Helper()
		_, out, err := st.BeginIdempotent(ctx, idemKey, "h1", "op-1", base, ttl, lease)
		mustNoErr(t, err)
		if out != store.IdemNew {
			t.Fatalf("setup: outcome %v, want new", out)
		}
	}
	complete := func(t *testing.T, st store.Store) {
		t.Helper()
		begin(t, st)
		mustNoErr(t, st.CompleteIdempotent(ctx, idemKey, resp, base.Add(time.Second)))
	}
	release := func(t *testing.T, st store.Store) {
		t.Helper()
		begin(t, st)
		mustNoErr(t, st.ReleaseIdempotent(ctx, idemKey, base.Add(time.Second)))
	}

	tests := map[string]struct {
		setup     func(t *testing.T, st store.Store)
		key       store.IdemKey // zero: idemKey
		hash      string
		at        time.Duration // after base
		want      store.IdemOutcome
		wantOp    string
		wantState store.IdemState
		wantResp  bool
		wantBorn  time.Duration // expected CreatedAt, after base
		wantTouch time.Duration // expected UpdatedAt, after base
	}{
		"no record is new": {
			hash: "h1", want: store.IdemNew, wantOp: "op-new", wantState: store.IdemStateInFlight,
		},
		"completed is replayed": {
			setup: complete, hash: "h1", at: 2 * time.Second,
			want: store.IdemReplay, wantOp: "op-1", wantState: store.IdemStateCompleted, wantResp: true, wantTouch: time.Second,
		},
		"a different body on a completed key is a mismatch": {
			setup: complete, hash: "h2", at: 2 * time.Second,
			want: store.IdemMismatch, wantOp: "op-1", wantState: store.IdemStateCompleted, wantResp: true, wantTouch: time.Second,
		},
		"a different body on an in-flight key is a mismatch": {
			setup: begin, hash: "h2", at: time.Second,
			want: store.IdemMismatch, wantOp: "op-1", wantState: store.IdemStateInFlight,
		},
		"a different body on a released key is a mismatch": {
			setup: release, hash: "h2", at: 2 * time.Second,
			want: store.IdemMismatch, wantOp: "op-1", wantState: store.IdemStateReleased, wantTouch: time.Second,
		},
		"a different body on a stale in-flight key is a mismatch": {
			setup: begin, hash: "h2", at: time.Hour,
			want: store.IdemMismatch, wantOp: "op-1", wantState: store.IdemStateInFlight,
		},
		"in flight within the lease": {
			setup: begin, hash: "h1", at: lease - time.Second,
			want: store.IdemInFlight, wantOp: "op-1", wantState: store.IdemStateInFlight,
		},
		"a stale lease is reclaimed with the old operation id": {
			setup: begin, hash: "h1", at: lease + time.Second,
			want: store.IdemNew, wantOp: "op-1", wantState: store.IdemStateInFlight, wantTouch: lease + time.Second,
		},
		"the lease ends exactly at UpdatedAt+lease": {
			setup: begin, hash: "h1", at: lease,
			want: store.IdemNew, wantOp: "op-1", wantState: store.IdemStateInFlight, wantTouch: lease,
		},
		"a released key is reclaimed with the old operation id": {
			setup: release, hash: "h1", at: 2 * time.Second,
			want: store.IdemNew, wantOp: "op-1", wantState: store.IdemStateInFlight, wantTouch: 2 * time.Second,
		},
		"an expired completed key starts over with a new operation id": {
			setup: complete, hash: "h1", at: ttl,
			want: store.IdemNew, wantOp: "op-new", wantState: store.IdemStateInFlight, wantBorn: ttl, wantTouch: ttl,
		},
		"an expired key with a different body starts over": {
			setup: complete, hash: "h2", at: ttl + time.Minute,
			want: store.IdemNew, wantOp: "op-new", wantState: store.IdemStateInFlight, wantBorn: ttl + time.Minute, wantTouch: ttl + time.Minute,
		},
		"not yet expired one microsecond before ttl": {
			setup: complete, hash: "h1", at: ttl - time.Microsecond,
			want: store.IdemReplay, wantOp: "op-1", wantState: store.IdemStateCompleted, wantResp: true, wantTouch: time.Second,
		},
		"the same key under another tenant is new": {
			setup: complete, key: store.IdemKey{TenantID: "t_b", Scope: idemKey.Scope, Key: idemKey.Key}, hash: "h1", at: 2 * time.Second,
			want: store.IdemNew, wantOp: "op-new", wantState: store.IdemStateInFlight, wantBorn: 2 * time.Second, wantTouch: 2 * time.Second,
		},
		"the same key under another scope is new": {
			setup: complete, key: store.IdemKey{TenantID: idemKey.TenantID, Scope: "POST /v1/refunds", Key: idemKey.Key}, hash: "h1", at: 2 * time.Second,
			want: store.IdemNew, wantOp: "op-new", wantState: store.IdemStateInFlight, wantBorn: 2 * time.Second, wantTouch: 2 * time.Second,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			if tc.setup != nil {
				tc.setup(t, st)
			}
			key := tc.key
			if key == (store.IdemKey{}) {
				key = idemKey
			}
			rec, out, err := st.BeginIdempotent(ctx, key, tc.hash, "op-new", base.Add(tc.at), ttl, lease)
			mustNoErr(t, err)
			if out != tc.want {
				t.Fatalf("outcome = %v, want %v", out, tc.want)
			}
			if rec.OperationID != tc.wantOp || rec.State != tc.wantState {
				t.Fatalf("record op %q state %q, want op %q state %q", rec.OperationID, rec.State, tc.wantOp, tc.wantState)
			}
			if rec.Key != key {
				t.Fatalf("record key = %+v, want %+v", rec.Key, key)
			}
			if !sameTime(rec.CreatedAt, base.Add(tc.wantBorn)) || !sameTime(rec.UpdatedAt, base.Add(tc.wantTouch)) {
				t.Fatalf("record created %v updated %v, want %v and %v", rec.CreatedAt, rec.UpdatedAt, base.Add(tc.wantBorn), base.Add(tc.wantTouch))
			}
			if tc.wantResp {
				if rec.Response == nil || !reflect.DeepEqual(*rec.Response, resp) {
					t.Fatalf("response = %+v, want %+v", rec.Response, resp)
				}
			} else if rec.Response != nil {
				t.Fatalf("response = %+v, want none", rec.Response)
			}
			if out != store.IdemNew {
				return
			}
			// Whoever got IdemNew now holds the key.
			_, again, err := st.BeginIdempotent(ctx, key, tc.hash, "op-other", base.Add(tc.at+time.Second), ttl, lease)
			mustNoErr(t, err)
			if again != store.IdemInFlight {
				t.Fatalf("a second begin right after IdemNew = %v, want in_flight", again)
			}
		})
	}
}

func testIdempotencyFinish(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	resp := store.StoredResponse{Status: 402, Body: []byte(`{"error":"card_declined"}`)}
	tests := map[string]func(t *testing.T, st store.Store){
		"complete of a missing key is ErrNotFound": func(t *testing.T, st store.Store) {
			mustErrIs(t, st.CompleteIdempotent(ctx, idemKey, resp, base), store.ErrNotFound)
		},
		"release of a missing key is ErrNotFound": func(t *testing.T, st store.Store) {
			mustErrIs(t, st.ReleaseIdempotent(ctx, idemKey, base), store.ErrNotFound)
		},
		"complete stores the response for replay": func(t *testing.T, st store.Store) {
			_, _, err := st.BeginIdempotent(ctx, idemKey, "h1", "op-1", base, ttl, lease)
			mustNoErr(t, err)
			mustNoErr(t, st.CompleteIdempotent(ctx, idemKey, resp, base.Add(time.Second)))
			rec, out, err := st.BeginIdempotent(ctx, idemKey, "h1", "op-2", base.Add(time.Minute), ttl, lease)
			mustNoErr(t, err)
			if out != store.IdemReplay || rec.Response == nil || rec.Response.Status != 402 || string(rec.Response.Body) != string(resp.Body) {
				t.Fatalf("outcome %v response %+v, want replay of %+v", out, rec.Response, resp)
			}
		},
		"release of a completed key keeps the response": func(t *testing.T, st store.Store) {
			_, _, err := st.BeginIdempotent(ctx, idemKey, "h1", "op-1", base, ttl, lease)
			mustNoErr(t, err)
			mustNoErr(t, st.CompleteIdempotent(ctx, idemKey, resp, base.Add(time.Second)))
			mustNoErr(t, st.ReleaseIdempotent(ctx, idemKey, base.Add(2*time.Second)))
			rec, out, err := st.BeginIdempotent(ctx, idemKey, "h1", "op-2", base.Add(time.Minute), ttl, lease)
			mustNoErr(t, err)
			if out != store.IdemReplay || !sameTime(rec.UpdatedAt, base.Add(time.Second)) {
				t.Fatalf("outcome %v updated %v, want replay last updated at completion", out, rec.UpdatedAt)
			}
		},
		"a reclaimed key completes normally": func(t *testing.T, st store.Store) {
			_, _, err := st.BeginIdempotent(ctx, idemKey, "h1", "op-1", base, ttl, lease)
			mustNoErr(t, err)
			mustNoErr(t, st.ReleaseIdempotent(ctx, idemKey, base.Add(time.Second)))
			rec, out, err := st.BeginIdempotent(ctx, idemKey, "h1", "op-2", base.Add(2*time.Second), ttl, lease)
			mustNoErr(t, err)
			if out != store.IdemNew || rec.OperationID != "op-1" {
				t.Fatalf("reclaim: outcome %v op %q", out, rec.OperationID)
			}
			mustNoErr(t, st.CompleteIdempotent(ctx, idemKey, resp, base.Add(3*time.Second)))
			rec, out, err = st.BeginIdempotent(ctx, idemKey, "h1", "op-3", base.Add(4*time.Second), ttl, lease)
			mustNoErr(t, err)
			if out != store.IdemReplay || rec.OperationID != "op-1" {
				t.Fatalf("after completion: outcome %v op %q, want replay of op-1", out, rec.OperationID)
			}
		},
		"invalid arguments are ErrInvalid": func(t *testing.T, st store.Store) {
			bad := map[string]func() error{
				"empty tenant": func() error {
					_, _, err := st.BeginIdempotent(ctx, store.IdemKey{Scope: "s", Key: "k"}, "h", "op", base, ttl, lease)
					return err
				},
				"empty scope": func() error {
					_, _, err := st.BeginIdempotent(ctx, store.IdemKey{TenantID: "t", Key: "k"}, "h", "op", base, ttl, lease)
					return err
				},
				"empty key": func() error {
					_, _, err := st.BeginIdempotent(ctx, store.IdemKey{TenantID: "t", Scope: "s"}, "h", "op", base, ttl, lease)
					return err
				},
				"empty operation id": func() error {
					_, _, err := st.BeginIdempotent(ctx, idemKey, "h", "", base, ttl, lease)
					return err
				},
				"zero ttl": func() error {
					_, _, err := st.BeginIdempotent(ctx, idemKey, "h", "op", base, 0, lease)
					return err
				},
				"negative lease": func() error {
					_, _, err := st.BeginIdempotent(ctx, idemKey, "h", "op", base, ttl, -time.Second)
					return err
				},
				"complete with empty key": func() error {
					return st.CompleteIdempotent(ctx, store.IdemKey{}, resp, base)
				},
			}
			for name, call := range bad {
				if err := call(); !errors.Is(err, store.ErrInvalid) {
					t.Errorf("%s: err = %v, want ErrInvalid", name, err)
				}
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

// testConcurrentBegin: of many simultaneous requests with one key, exactly
// one runs the operation.
func testConcurrentBegin(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	const n = 50
	type result struct {
		rec store.IdemRecord
		out store.IdemOutcome
		err error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			rec, out, err := st.BeginIdempotent(ctx, idemKey, "h1", fmt.Sprintf("op-%d", i), base, ttl, lease)
			results <- result{rec, out, err}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	counts := map[store.IdemOutcome]int{}
	ops := map[string]bool{}
	for r := range results {
		mustNoErr(t, r.err)
		counts[r.out]++
		ops[r.rec.OperationID] = true
	}
	if counts[store.IdemNew] != 1 || counts[store.IdemInFlight] != n-1 {
		t.Fatalf("outcomes = %v, want exactly one new and %d in_flight", counts, n-1)
	}
	if len(ops) != 1 {
		t.Fatalf("callers saw operation ids %v, want one", ops)
	}
}

func testSweep(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	keys := make([]store.IdemKey, 4)
	for i := range keys {
		keys[i] = store.IdemKey{TenantID: "t_a", Scope: "POST /v1/payments", Key: fmt.Sprintf("k%d", i)}
		_, _, err := st.BeginIdempotent(ctx, keys[i], "h", "op-1", base.Add(time.Duration(i)*time.Hour), ttl, lease)
		mustNoErr(t, err)
	}
	// Key 0 expires and starts over at base+24h30m: it is young again, and
	// the sweep must not take it for the old record.
	renewed := base.Add(ttl + 30*time.Minute)
	_, out, err := st.BeginIdempotent(ctx, keys[0], "h", "op-2", renewed, ttl, lease)
	mustNoErr(t, err)
	if out != store.IdemNew {
		t.Fatalf("expired key: outcome %v, want new", out)
	}
	mustNoErr(t, st.CompleteIdempotent(ctx, keys[1], store.StoredResponse{Status: 200}, base.Add(2*time.Hour)))

	n, err := st.SweepIdempotent(ctx, base.Add(2*time.Hour+30*time.Minute))
	mustNoErr(t, err)
	if n != 2 {
		t.Fatalf("swept %d records, want 2 (k1, k2)", n)
	}
	// A swept key starts over with the caller's operation id; a kept one
	// keeps its own (k0 is in flight, k3's lease is stale and reclaimed).
	type after struct {
		out store.IdemOutcome
		op  string
	}
	wantAfter := map[int]after{
		0: {store.IdemInFlight, "op-2"},
		1: {store.IdemNew, "op-3"},
		2: {store.IdemNew, "op-3"},
		3: {store.IdemNew, "op-1"},
	}
	for i, want := range wantAfter {
		rec, out, err := st.BeginIdempotent(ctx, keys[i], "h", "op-3", renewed.Add(time.Second), ttl, lease)
		mustNoErr(t, err)
		if out != want.out || rec.OperationID != want.op {
			t.Errorf("k%d after sweep: outcome %v op %s, want %v %s", i, out, rec.OperationID, want.out, want.op)
		}
	}
	n, err = st.SweepIdempotent(ctx, base)
	mustNoErr(t, err)
	if n != 0 {
		t.Fatalf("second sweep deleted %d, want 0", n)
	}
}

// ---- audit

func auditRecord(tenant string, i int) store.AuditRecord {
	providers := []string{"stripe", "mercadopago"}
	actions := []string{"payments.create", "payments.get", "payments.refund"}
	statuses := []string{"ok", "ok", "retryable", "permanent"}
	r := store.AuditRecord{
		TenantID:      tenant,
		Provider:      providers[i%len(providers)],
		Action:        actions[i%len(actions)],
		Status:        statuses[i%len(statuses)],
		Request:       json.RawMessage(fmt.Sprintf(`{"n": %d, "amount": {"value": 1999, "currency": "EUR"}}`, i)),
		Response:      json.RawMessage(`{"id":"pi_1","status":"succeeded"}`),
		LatencyMS:     12.5,
		Time:          base.Add(time.Duration(i) * time.Second),
		CorrelationID: fmt.Sprintf("corr_%d", i),
		ResourceID:    fmt.Sprintf("pay_%d", i),
	}
	if r.Status != "ok" {
		r.ErrorCode, r.ErrorMessage = "E42", "provider said no"
	}
	return r
}

// sameJSON compares two JSON documents by value.
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func seqs(rs []store.AuditRecord) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

func testAudit(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	tests := map[string]func(t *testing.T, st store.Store){
		"append assigns seq and id and keeps every field": func(t *testing.T, st store.Store) {
			for i := 1; i <= 3; i++ {
				in := auditRecord("t_a", i)
				in.ID, in.Seq = "caller-id", 999
				got, err := st.AppendAudit(ctx, in)
				mustNoErr(t, err)
				if got.Seq != uint64(i) || got.ID != store.AuditID(uint64(i)) {
					t.Fatalf("append %d: seq %d id %q, want %d %q", i, got.Seq, got.ID, i, store.AuditID(uint64(i)))
				}
			}
			list, next, err := st.ListAudit(ctx, "t_a", store.AuditQuery{})
			mustNoErr(t, err)
			if next != "" || !slices.Equal(seqs(list), []uint64{3, 2, 1}) {
				t.Fatalf("list seqs %v next %q, want [3 2 1] and no next", seqs(list), next)
			}
			got, want := list[0], auditRecord("t_a", 3)
			if !sameTime(got.Time, want.Time) || !sameJSON(got.Request, want.Request) || !sameJSON(got.Response, want.Response) {
				t.Fatalf("stored %+v\nwant %+v", got, want)
			}
			want.ID, want.Seq, want.Time, want.Request, want.Response = got.ID, got.Seq, got.Time, got.Request, got.Response
			want.PrevHash, want.Hash = got.PrevHash, got.Hash
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("stored %+v\nwant %+v", got, want)
			}
		},
		"ids sort like seqs": func(t *testing.T, st store.Store) {
			for _, pair := range [][2]uint64{{1, 2}, {9, 10}, {35, 36}, {1295, 1296}, {1<<32 - 1, 1 << 32}, {1<<64 - 2, 1<<64 - 1}} {
				a, b := store.AuditID(pair[0]), store.AuditID(pair[1])
				if a >= b || len(a) != len(b) {
					t.Errorf("AuditID(%d) = %q, AuditID(%d) = %q: not sorted or not the same width", pair[0], a, pair[1], b)
				}
			}
		},
		"zero time is set to now": func(t *testing.T, st store.Store) {
			in := auditRecord("t_a", 1)
			in.Time = time.Time{}
			got, err := st.AppendAudit(ctx, in)
			mustNoErr(t, err)
			if d := time.Since(got.Time); d < -time.Second || d > 5*time.Second {
				t.Fatalf("Time = %v, want about now", got.Time)
			}
		},
		"tenants never see each other's records": func(t *testing.T, st store.Store) {
			for i := range 3 {
				_, err := st.AppendAudit(ctx, auditRecord("t_a", i))
				mustNoErr(t, err)
			}
			got, err := st.AppendAudit(ctx, auditRecord("t_b", 0))
			mustNoErr(t, err)
			if got.Seq != 1 {
				t.Fatalf("t_b's first seq = %d, want 1", got.Seq)
			}
			list, _, err := st.ListAudit(ctx, "t_b", store.AuditQuery{})
			mustNoErr(t, err)
			if len(list) != 1 || list[0].TenantID != "t_b" {
				t.Fatalf("t_b sees %+v", list)
			}
			list, _, err = st.ListAudit(ctx, "t_c", store.AuditQuery{})
			mustNoErr(t, err)
			if len(list) != 0 {
				t.Fatalf("t_c sees %d records", len(list))
			}
			// A cursor issued to t_a, used by t_b, shows only t_b's records.
			_, next, err := st.ListAudit(ctx, "t_a", store.AuditQuery{Limit: 1})
			mustNoErr(t, err)
			list, _, err = st.ListAudit(ctx, "t_b", store.AuditQuery{Cursor: next})
			mustNoErr(t, err)
			for _, r := range list {
				if r.TenantID != "t_b" {
					t.Fatalf("t_b listed a record of %s", r.TenantID)
				}
			}
		},
		"filters match exactly": func(t *testing.T, st store.Store) {
			for i := range 12 {
				_, err := st.AppendAudit(ctx, auditRecord("t_a", i))
				mustNoErr(t, err)
			}
			for name, q := range map[string]store.AuditQuery{
				"provider prefix": {Provider: "strip"},
				"action prefix":   {Action: "payments"},
				"status case":     {Status: "OK"},
				"unknown":         {Provider: "adyen"},
			} {
				list, next, err := st.ListAudit(ctx, "t_a", q)
				mustNoErr(t, err)
				if len(list) != 0 || next != "" {
					t.Errorf("%s: %d records, next %q; want none", name, len(list), next)
				}
			}
		},
		"empty tenant id is rejected": func(t *testing.T, st store.Store) {
			_, err := st.AppendAudit(ctx, auditRecord("", 1))
			mustErrIs(t, err, store.ErrInvalid)
		},
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, open(t))
		})
	}
}

func testAuditPagination(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	const total = 120
	var all []store.AuditRecord
	for i := range total {
		r, err := st.AppendAudit(ctx, auditRecord("t_a", i))
		mustNoErr(t, err)
		all = append(all, r)
		_, err = st.AppendAudit(ctx, auditRecord("t_noise", i))
		mustNoErr(t, err)
	}
	slices.Reverse(all) // newest first

	tests := map[string]struct {
		q         store.AuditQuery
		wantPages int
	}{
		"stripe ok, three pages":                  {q: store.AuditQuery{Provider: "stripe", Status: "ok", Limit: 11}, wantPages: 3},
		"mercadopago refunds, pages fill exactly": {q: store.AuditQuery{Provider: "mercadopago", Action: "payments.refund", Limit: 5}, wantPages: 4},
		"no filter, default limit":                {q: store.AuditQuery{}, wantPages: 3},
		"no filter, one page of max limit":        {q: store.AuditQuery{Limit: store.MaxAuditLimit}, wantPages: 1},
		"status only, limit one":                  {q: store.AuditQuery{Status: "permanent", Limit: 1}, wantPages: 30},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var want []uint64
			for _, r := range all {
				if (tc.q.Provider == "" || r.Provider == tc.q.Provider) &&
					(tc.q.Action == "" || r.Action == tc.q.Action) &&
					(tc.q.Status == "" || r.Status == tc.q.Status) {
					want = append(want, r.Seq)
				}
			}
			limit := tc.q.Limit
			if limit == 0 {
				limit = store.DefaultAuditLimit
			}
			var got []uint64
			q, pages := tc.q, 0
			for {
				list, next, err := st.ListAudit(ctx, "t_a", q)
				mustNoErr(t, err)
				pages++
				if len(list) > limit {
					t.Fatalf("page %d has %d records, limit %d", pages, len(list), limit)
				}
				if next != "" && len(list) != limit {
					t.Fatalf("page %d has %d records and a next cursor; only full pages may have one", pages, len(list))
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
			if pages != tc.wantPages {
				t.Errorf("pages = %d, want %d", pages, tc.wantPages)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("paged seqs %v\nwant %v", got, want)
			}
		})
	}
}

func testAuditQueryValidation(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	for i := range 3 {
		_, err := st.AppendAudit(ctx, auditRecord("t_a", i))
		mustNoErr(t, err)
	}
	tests := map[string]struct {
		q       store.AuditQuery
		wantErr error
	}{
		"limit zero means the default": {q: store.AuditQuery{Limit: 0}},
		"limit at the maximum":         {q: store.AuditQuery{Limit: store.MaxAuditLimit}},
		"negative limit":               {q: store.AuditQuery{Limit: -1}, wantErr: store.ErrInvalidQuery},
		"limit over the maximum":       {q: store.AuditQuery{Limit: store.MaxAuditLimit + 1}, wantErr: store.ErrInvalidQuery},
		"cursor not base64":            {q: store.AuditQuery{Cursor: "!!not a cursor!!"}, wantErr: store.ErrInvalidQuery},
		"cursor of the wrong shape":    {q: store.AuditQuery{Cursor: "AAAA"}, wantErr: store.ErrInvalidQuery},
		"cursor that is a number":      {q: store.AuditQuery{Cursor: "12"}, wantErr: store.ErrInvalidQuery},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			list, next, err := st.ListAudit(ctx, "t_a", tc.q)
			if tc.wantErr != nil {
				mustErrIs(t, err, tc.wantErr)
				if list != nil || next != "" {
					t.Fatalf("an invalid query returned %d records and next %q", len(list), next)
				}
				return
			}
			mustNoErr(t, err)
			if len(list) != 3 || next != "" {
				t.Fatalf("got %d records next %q, want 3 and none", len(list), next)
			}
		})
	}
}

// testConcurrentAppend: concurrent appends get unique, gap-free sequence
// numbers per tenant, each caller is told the seq (and the hashes) its record
// got, and each tenant's log still verifies: the chain follows commit order.
func testConcurrentAppend(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	const n = 200
	tenants := []string{"t_a", "t_b"}
	type result struct {
		r   store.AuditRecord
		err error
	}
	results := make(chan result, n*len(tenants))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		for _, tenant := range tenants {
			wg.Go(func() {
				<-start
				in := auditRecord(tenant, i)
				in.CorrelationID = fmt.Sprintf("%s-%d", tenant, i)
				r, err := st.AppendAudit(ctx, in)
				results <- result{r, err}
			})
		}
	}
	close(start)
	wg.Wait()
	close(results)
	bySeq := map[string]map[uint64]string{}
	hashes := map[string]map[uint64][2]string{}
	for _, tenant := range tenants {
		bySeq[tenant] = map[uint64]string{}
		hashes[tenant] = map[uint64][2]string{}
	}
	for res := range results {
		mustNoErr(t, res.err)
		m := bySeq[res.r.TenantID]
		if prev, dup := m[res.r.Seq]; dup {
			t.Fatalf("%s: seq %d given to %s and %s", res.r.TenantID, res.r.Seq, prev, res.r.CorrelationID)
		}
		m[res.r.Seq] = res.r.CorrelationID
		hashes[res.r.TenantID][res.r.Seq] = [2]string{res.r.PrevHash, res.r.Hash}
	}
	for _, tenant := range tenants {
		list, next, err := st.ListAudit(ctx, tenant, store.AuditQuery{Limit: store.MaxAuditLimit})
		mustNoErr(t, err)
		if len(list) != n || next != "" {
			t.Fatalf("%s: listed %d records (next %q), want %d", tenant, len(list), next, n)
		}
		ids := map[string]bool{}
		for i, r := range list {
			if want := uint64(n - i); r.Seq != want {
				t.Fatalf("%s: position %d has seq %d, want %d (gap or duplicate)", tenant, i, r.Seq, want)
			}
			if bySeq[tenant][r.Seq] != r.CorrelationID {
				t.Fatalf("%s: seq %d holds %s but its caller was told it got %s", tenant, r.Seq, r.CorrelationID, bySeq[tenant][r.Seq])
			}
			if told := hashes[tenant][r.Seq]; told != [2]string{r.PrevHash, r.Hash} {
				t.Fatalf("%s: seq %d is stored with hashes %s/%s but its caller was told %s/%s", tenant, r.Seq, r.PrevHash, r.Hash, told[0], told[1])
			}
			if ids[r.ID] {
				t.Fatalf("%s: duplicate id %s", tenant, r.ID)
			}
			ids[r.ID] = true
		}
		mustVerify(t, st, tenant, n)
	}
}

// ---- lifecycle

func testLifecycle(t *testing.T, open func(t *testing.T) store.Store) {
	tests := map[string]func(t *testing.T, st store.Store){
		"ping an open store": func(t *testing.T, st store.Store) {
			mustNoErr(t, st.Ping(context.Background()))
		},
		"a cancelled context is refused": func(t *testing.T, st store.Store) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			mustErrIs(t, st.CreatePayment(ctx, samplePayment("t_a", "pay_1")), context.Canceled)
			_, err := st.GetPayment(context.Background(), "t_a", "pay_1")
			mustErrIs(t, err, store.ErrNotFound)
		},
		"every method after Close is ErrClosed": func(t *testing.T, st store.Store) {
			ctx := context.Background()
			mustNoErr(t, st.Close())
			calls := map[string]func() error{
				"Ping":          func() error { return st.Ping(ctx) },
				"CreatePayment": func() error { return st.CreatePayment(ctx, samplePayment("t_a", "pay_1")) },
				"GetPayment":    func() error { _, err := st.GetPayment(ctx, "t_a", "pay_1"); return err },
				"UpdatePayment": func() error {
					_, err := st.UpdatePayment(ctx, "t_a", "pay_1", func(*store.Payment) error { return nil })
					return err
				},
				"PaymentByProviderID": func() error { _, err := st.PaymentByProviderID(ctx, "stripe", "pi_1"); return err },
				"BeginIdempotent": func() error {
					_, _, err := st.BeginIdempotent(ctx, idemKey, "h", "op", base, ttl, lease)
					return err
				},
				"CompleteIdempotent": func() error { return st.CompleteIdempotent(ctx, idemKey, store.StoredResponse{}, base) },
				"ReleaseIdempotent":  func() error { return st.ReleaseIdempotent(ctx, idemKey, base) },
				"SweepIdempotent":    func() error { _, err := st.SweepIdempotent(ctx, base); return err },
				"AppendAudit":        func() error { _, err := st.AppendAudit(ctx, auditRecord("t_a", 1)); return err },
				"ListAudit":          func() error { _, _, err := st.ListAudit(ctx, "t_a", store.AuditQuery{}); return err },
				"VerifyAudit":        func() error { _, err := st.VerifyAudit(ctx, "t_a"); return err },
				"AcceptWebhook": func() error {
					_, _, err := st.AcceptWebhook(ctx, webhook("t_a", "stripe", "evt_1", 0))
					return err
				},
				"GetInbox":          func() error { _, err := st.GetInbox(ctx, "t_a", "wh_1"); return err },
				"DueInbox":          func() error { _, err := st.DueInbox(ctx, base, 10); return err },
				"RetryInbox":        func() error { return st.RetryInbox(ctx, "t_a", "wh_1", base, "x") },
				"QuarantineInbox":   func() error { return st.QuarantineInbox(ctx, "t_a", "wh_1", "x") },
				"ReleaseQuarantine": func() error { _, err := st.ReleaseQuarantine(ctx, "t_a", "wh_1", base); return err },
				"ListInbox":         func() error { _, _, err := st.ListInbox(ctx, "t_a", "", store.ListQuery{}); return err },
				"SweepDedup":        func() error { _, err := st.SweepDedup(ctx, base); return err },
				"RecordEvents": func() error {
					_, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_a", Now: base})
					return err
				},
				"GetEvent":       func() error { _, err := st.GetEvent(ctx, "t_a", "evt_1"); return err },
				"EventsAfter":    func() error { _, err := st.EventsAfter(ctx, "t_a", 0, 1); return err },
				"CreateResource": func() error { return st.CreateResource(ctx, resource("t_a", "del_1", "")) },
				"GetResource":    func() error { _, err := st.GetResource(ctx, "delivery", "t_a", "del_1"); return err },
				"UpdateResource": func() error {
					_, err := st.UpdateResource(ctx, "delivery", "t_a", "del_1", func(*store.Resource) error { return nil })
					return err
				},
				"ResourceByProviderID": func() error { _, err := st.ResourceByProviderID(ctx, "delivery", "p", "x"); return err },
				"DueResources":         func() error { _, err := st.DueResources(ctx, "delivery", base, 1); return err },
				"ListResources":        func() error { _, _, err := st.ListResources(ctx, "delivery", "t_a", store.ListQuery{}); return err },
				"ListEvents":           func() error { _, _, err := st.ListEvents(ctx, "t_a", store.EventQuery{}); return err },
				"PutEndpoint":          func() error { return st.PutEndpoint(ctx, endpoint("t_a", "ep_1")) },
				"GetEndpoint":          func() error { _, err := st.GetEndpoint(ctx, "t_a", "ep_1"); return err },
				"ListEndpoints":        func() error { _, err := st.ListEndpoints(ctx, "t_a"); return err },
				"DeleteEndpoint":       func() error { return st.DeleteEndpoint(ctx, "t_a", "ep_1") },
				"UpdateEndpoint": func() error {
					_, err := st.UpdateEndpoint(ctx, "t_a", "ep_1", func(*store.Endpoint) error { return nil })
					return err
				},
				"DueDeliveries":   func() error { _, err := st.DueDeliveries(ctx, base, 10); return err },
				"DueDeliveryRefs": func() error { _, err := st.DueDeliveryRefs(ctx, base, 10); return err },
				"RecordAttempt": func() error {
					d := store.Delivery{ID: "dlv_1", TenantID: "t_a", State: store.DeliveryDelivered}
					return st.RecordAttempt(ctx, d, store.Attempt{N: 1, At: base})
				},
				"PostponeDelivery":   func() error { return st.PostponeDelivery(ctx, "t_a", "dlv_1", base) },
				"GetDelivery":        func() error { _, err := st.GetDelivery(ctx, "t_a", "dlv_1"); return err },
				"DeliveriesForEvent": func() error { _, err := st.DeliveriesForEvent(ctx, "t_a", "evt_1"); return err },
				"ListAttempts":       func() error { _, err := st.ListAttempts(ctx, "t_a", "dlv_1"); return err },
				"ReplayEvent":        func() error { _, err := st.ReplayEvent(ctx, "t_a", "evt_1", base); return err },
				"KillEndpointDeliveries": func() error {
					_, err := st.KillEndpointDeliveries(ctx, "t_a", "ep_1", "x", base)
					return err
				},
				"PutTenant":   func() error { return st.PutTenant(ctx, tenantRecord("t_a")) },
				"GetTenant":   func() error { _, err := st.GetTenant(ctx, "t_a"); return err },
				"ListTenants": func() error { _, err := st.ListTenants(ctx); return err },
				"UpdateTenant": func() error {
					_, err := st.UpdateTenant(ctx, "t_a", func(*store.TenantRecord) error { return nil })
					return err
				},
				"PutAPIKey":    func() error { return st.PutAPIKey(ctx, apiKey("t_a", "key_001", 0)) },
				"ListAPIKeys":  func() error { _, err := st.ListAPIKeys(ctx, "t_a"); return err },
				"AllAPIKeys":   func() error { _, err := st.AllAPIKeys(ctx); return err },
				"RevokeAPIKey": func() error { return st.RevokeAPIKey(ctx, "t_a", "key_001", base) },
				"TouchAPIKeys": func() error { return st.TouchAPIKeys(ctx, map[string]time.Time{"key_001": base}) },
				"PutCredential": func() error {
					return st.PutCredential(ctx, credential("t_a", "stripe", "secret_key"))
				},
				"DeleteCredential": func() error { return st.DeleteCredential(ctx, "t_a", "stripe", "secret_key") },
				"ListCredentials":  func() error { _, err := st.ListCredentials(ctx, "t_a"); return err },
				"AllCredentials":   func() error { _, err := st.AllCredentials(ctx); return err },
				"ReplaceCredentials": func() error {
					return st.ReplaceCredentials(ctx, []store.CredentialRecord{credential("t_a", "stripe", "secret_key")})
				},
				"Close": st.Close,
			}
			if n := reflect.TypeFor[store.Store]().NumMethod(); len(calls) != n {
				t.Errorf("the suite calls %d methods after Close, Store has %d", len(calls), n)
			}
			for name, call := range calls {
				if err := call(); !errors.Is(err, store.ErrClosed) {
					t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
				}
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
