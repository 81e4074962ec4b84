package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
)

// webhookBody has whitespace and HTML characters: a store must keep bodies
// byte for byte.
const webhookBody = "{\"id\": \"evt_1\",\n  \"type\": \"payment_intent.succeeded\", \"note\": \"<a & b>\"}"

// webhook is an inbox record as the ingress hands it over, received at
// base+at.
func webhook(tenant, provider, dedupKey string, at time.Duration) store.InboxRecord {
	return store.InboxRecord{
		TenantID:      tenant,
		Provider:      provider,
		DedupKey:      dedupKey,
		Method:        "POST",
		RequestURI:    "/webhooks/" + tenant + "/" + provider + "?source=test",
		Header:        map[string][]string{"Content-Type": {"application/json"}, "Stripe-Signature": {"t=1,v1=abc", "v0=def"}},
		Body:          []byte(webhookBody),
		ReceivedAt:    base.Add(at),
		CorrelationID: "req_" + dedupKey,
	}
}

// mustAccept accepts r and fails unless it is new.
func mustAccept(t testing.TB, st store.Store, r store.InboxRecord) store.InboxRecord {
	t.Helper()
	got, dup, err := st.AcceptWebhook(context.Background(), r)
	mustNoErr(t, err)
	if dup {
		t.Fatalf("accept %s/%s/%s: duplicate, want new", r.TenantID, r.Provider, r.DedupKey)
	}
	return got
}

func mustGetInbox(t testing.TB, st store.Store, tenant, id string) store.InboxRecord {
	t.Helper()
	r, err := st.GetInbox(context.Background(), tenant, id)
	mustNoErr(t, err)
	return r
}

func inboxIDs(rs []store.InboxRecord) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// dueInboxIDs returns the IDs DueInbox returns at now.
func dueInboxIDs(t testing.TB, st store.Store, now time.Time) []string {
	t.Helper()
	rs, err := st.DueInbox(context.Background(), now, 1000)
	mustNoErr(t, err)
	for _, r := range rs {
		if r.State != store.InboxPending {
			t.Fatalf("DueInbox returned %s in state %s", r.ID, r.State)
		}
	}
	return inboxIDs(rs)
}

func testInbox(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	tests := map[string]func(t *testing.T, st store.Store){
		"accept fills id, seq, state and due time; get returns every field": func(t *testing.T, st store.Store) {
			in := webhook("t_a", "stripe", "evt_1", time.Second)
			in.Attempts, in.LastError, in.EventIDs, in.State = 7, "caller junk", []string{"evt_x"}, store.InboxProcessed
			got := mustAccept(t, st, in)
			if len(got.ID) < 4 || got.ID[:3] != "wh_" {
				t.Fatalf("ID = %q, want wh_…", got.ID)
			}
			want := webhook("t_a", "stripe", "evt_1", time.Second)
			want.ID, want.Seq, want.State, want.NextAttemptAt = got.ID, 1, store.InboxPending, want.ReceivedAt
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("returned %+v\nwant     %+v", got, want)
			}
			stored := mustGetInbox(t, st, "t_a", got.ID)
			if !reflect.DeepEqual(stored, want) {
				t.Fatalf("stored %+v\nwant   %+v", stored, want)
			}
			if string(stored.Body) != webhookBody {
				t.Fatalf("body = %q, want it byte for byte", stored.Body)
			}
		},
		"the caller's body buffer may be reused after accept": func(t *testing.T, st store.Store) {
			in := webhook("t_a", "stripe", "evt_1", 0)
			got := mustAccept(t, st, in)
			for i := range in.Body {
				in.Body[i] = 'x'
			}
			if stored := mustGetInbox(t, st, "t_a", got.ID); string(stored.Body) != webhookBody {
				t.Fatalf("stored body changed with the caller's buffer: %q", stored.Body)
			}
		},
		"ids are unique and seqs count per tenant": func(t *testing.T, st store.Store) {
			ids := map[string]bool{}
			for i := range 3 {
				for _, tenant := range []string{"t_a", "t_b"} {
					r := mustAccept(t, st, webhook(tenant, "stripe", fmt.Sprintf("evt_%d", i), 0))
					if r.Seq != uint64(i+1) {
						t.Fatalf("%s record %d: seq %d, want %d", tenant, i, r.Seq, i+1)
					}
					if ids[r.ID] {
						t.Fatalf("id %s given twice", r.ID)
					}
					ids[r.ID] = true
				}
			}
		},
		"a caller's id is kept; the same id again is ErrExists": func(t *testing.T, st store.Store) {
			in := webhook("t_a", "stripe", "evt_1", 0)
			in.ID = "wh_mine"
			if got := mustAccept(t, st, in); got.ID != "wh_mine" {
				t.Fatalf("ID = %q, want wh_mine", got.ID)
			}
			again := webhook("t_a", "stripe", "evt_2", 0)
			again.ID = "wh_mine"
			_, _, err := st.AcceptWebhook(ctx, again)
			mustErrIs(t, err, store.ErrExists)
			list, _, err := st.ListInbox(ctx, "t_a", "", store.ListQuery{})
			mustNoErr(t, err)
			if len(list) != 1 {
				t.Fatalf("%d records after a refused accept, want 1", len(list))
			}
			// Another tenant may use the same id.
			other := webhook("t_b", "stripe", "evt_1", 0)
			other.ID = "wh_mine"
			mustAccept(t, st, other)
		},
		"a zero ReceivedAt is now": func(t *testing.T, st store.Store) {
			in := webhook("t_a", "stripe", "evt_1", 0)
			in.ReceivedAt = time.Time{}
			got := mustAccept(t, st, in)
			if d := time.Since(got.ReceivedAt); d < -time.Second || d > 5*time.Second {
				t.Fatalf("ReceivedAt = %v, want about now", got.ReceivedAt)
			}
			if !got.NextAttemptAt.Equal(got.ReceivedAt) || got.ReceivedAt.Location() != time.UTC {
				t.Fatalf("NextAttemptAt %v, ReceivedAt %v: want equal, in UTC", got.NextAttemptAt, got.ReceivedAt)
			}
		},
		"times are kept in UTC at microsecond precision": func(t *testing.T, st store.Store) {
			in := webhook("t_a", "stripe", "evt_1", 0)
			in.ReceivedAt = base.Add(1234567 * time.Nanosecond).In(time.FixedZone("X", 3600))
			got := mustAccept(t, st, in)
			want := base.Add(1234 * time.Microsecond)
			stored := mustGetInbox(t, st, "t_a", got.ID)
			for name, tm := range map[string]time.Time{"returned": got.ReceivedAt, "stored": stored.ReceivedAt, "due": stored.NextAttemptAt} {
				if !tm.Equal(want) || tm.Location() != time.UTC {
					t.Errorf("%s time %v, want %v in UTC", name, tm, want)
				}
			}
		},
		"a duplicate returns the earlier record and writes nothing": func(t *testing.T, st store.Store) {
			first := mustAccept(t, st, webhook("t_a", "stripe", "evt_1", 0))
			again := webhook("t_a", "stripe", "evt_1", time.Minute)
			again.Body = []byte(`{"another":"body"}`)
			got, dup, err := st.AcceptWebhook(ctx, again)
			mustNoErr(t, err)
			if !dup || got.ID != first.ID {
				t.Fatalf("duplicate = %v id %q, want true and %q", dup, got.ID, first.ID)
			}
			if !reflect.DeepEqual(got, first) {
				t.Fatalf("duplicate returned %+v\nwant the earlier record %+v", got, first)
			}
			list, _, err := st.ListInbox(ctx, "t_a", "", store.ListQuery{})
			mustNoErr(t, err)
			if len(list) != 1 || string(list[0].Body) != webhookBody {
				t.Fatalf("inbox holds %d records after a duplicate, want the first only", len(list))
			}
			if due := dueInboxIDs(t, st, base.Add(time.Hour)); !slices.Equal(due, []string{first.ID}) {
				t.Fatalf("due = %v, want only %s", due, first.ID)
			}
		},
		"a duplicate of a processed record is still a duplicate": func(t *testing.T, st store.Store) {
			first := mustAccept(t, st, webhook("t_a", "stripe", "evt_1", 0))
			_, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_a", InboxID: first.ID, Now: base})
			mustNoErr(t, err)
			got, dup, err := st.AcceptWebhook(ctx, webhook("t_a", "stripe", "evt_1", time.Hour))
			mustNoErr(t, err)
			if !dup || got.ID != first.ID || got.State != store.InboxProcessed {
				t.Fatalf("dup %v id %s state %s; want the processed earlier record", dup, got.ID, got.State)
			}
		},
		"the same dedup key under another provider or tenant is new": func(t *testing.T, st store.Store) {
			a := mustAccept(t, st, webhook("t_a", "stripe", "evt_1", 0))
			b := mustAccept(t, st, webhook("t_a", "mercadopago", "evt_1", 0))
			c := mustAccept(t, st, webhook("t_b", "stripe", "evt_1", 0))
			if a.ID == b.ID || a.ID == c.ID || b.ID == c.ID {
				t.Fatalf("ids %s %s %s are not distinct", a.ID, b.ID, c.ID)
			}
		},
		"an empty dedup key never deduplicates": func(t *testing.T, st store.Store) {
			a := mustAccept(t, st, webhook("t_a", "stripe", "", 0))
			b := mustAccept(t, st, webhook("t_a", "stripe", "", 0))
			if a.ID == b.ID {
				t.Fatal("two records without a dedup key got one id")
			}
		},
		"missing tenant or provider is ErrInvalid": func(t *testing.T, st store.Store) {
			for name, r := range map[string]store.InboxRecord{
				"no tenant":   webhook("", "stripe", "evt_1", 0),
				"no provider": webhook("t_a", "", "evt_1", 0),
			} {
				if _, _, err := st.AcceptWebhook(ctx, r); !errors.Is(err, store.ErrInvalid) {
					t.Errorf("%s: err = %v, want ErrInvalid", name, err)
				}
			}
		},
		"missing record is ErrNotFound everywhere": func(t *testing.T, st store.Store) {
			_, err := st.GetInbox(ctx, "t_a", "wh_missing")
			mustErrIs(t, err, store.ErrNotFound)
			mustErrIs(t, st.RetryInbox(ctx, "t_a", "wh_missing", base, "x"), store.ErrNotFound)
			mustErrIs(t, st.QuarantineInbox(ctx, "t_a", "wh_missing", "x"), store.ErrNotFound)
			_, err = st.ReleaseQuarantine(ctx, "t_a", "wh_missing", base)
			mustErrIs(t, err, store.ErrNotFound)
		},
		"another tenant's record is ErrNotFound and stays unchanged": func(t *testing.T, st store.Store) {
			r := mustAccept(t, st, webhook("t_a", "stripe", "evt_1", 0))
			q := mustAccept(t, st, webhook("t_a", "stripe", "evt_2", 0))
			mustNoErr(t, st.QuarantineInbox(ctx, "t_a", q.ID, "bad"))
			_, err := st.GetInbox(ctx, "t_b", r.ID)
			mustErrIs(t, err, store.ErrNotFound)
			_, missing := st.GetInbox(ctx, "t_b", "wh_missing")
			if err.Error() != missing.Error() {
				t.Fatalf("another tenant's record (%q) is distinguishable from a missing one (%q)", err, missing)
			}
			mustErrIs(t, st.RetryInbox(ctx, "t_b", r.ID, base.Add(time.Hour), "x"), store.ErrNotFound)
			mustErrIs(t, st.QuarantineInbox(ctx, "t_b", r.ID, "x"), store.ErrNotFound)
			_, err = st.ReleaseQuarantine(ctx, "t_b", q.ID, base)
			mustErrIs(t, err, store.ErrNotFound)
			_, err = st.RecordEvents(ctx, store.EventBatch{TenantID: "t_b", InboxID: r.ID, Now: base})
			mustErrIs(t, err, store.ErrNotFound)
			if got := mustGetInbox(t, st, "t_a", r.ID); !reflect.DeepEqual(got, r) {
				t.Fatalf("record changed through another tenant: %+v", got)
			}
			if got := mustGetInbox(t, st, "t_a", q.ID); got.State != store.InboxQuarantined {
				t.Fatalf("quarantined record released through another tenant: %s", got.State)
			}
			list, _, err := st.ListInbox(ctx, "t_b", "", store.ListQuery{})
			mustNoErr(t, err)
			if len(list) != 0 {
				t.Fatalf("t_b lists %d of t_a's records", len(list))
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

// testInboxConcurrentDedup: of many simultaneous deliveries of one provider
// event, exactly one is stored, and every caller learns its id.
func testInboxConcurrentDedup(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	const n = 50
	type result struct {
		r   store.InboxRecord
		dup bool
		err error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			r, dup, err := st.AcceptWebhook(ctx, webhook("t_a", "stripe", "evt_same", 0))
			results <- result{r, dup, err}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	news, dups := 0, 0
	ids := map[string]bool{}
	for res := range results {
		mustNoErr(t, res.err)
		if res.dup {
			dups++
		} else {
			news++
		}
		ids[res.r.ID] = true
	}
	if news != 1 || dups != n-1 {
		t.Fatalf("%d new and %d duplicates, want 1 and %d", news, dups, n-1)
	}
	if len(ids) != 1 {
		t.Fatalf("callers were given ids %v, want one", ids)
	}
	list, _, err := st.ListInbox(ctx, "t_a", "", store.ListQuery{Limit: store.MaxListLimit})
	mustNoErr(t, err)
	if len(list) != 1 || !ids[list[0].ID] {
		t.Fatalf("inbox holds %v, want the one id returned", inboxIDs(list))
	}
	if due := dueInboxIDs(t, st, base); len(due) != 1 {
		t.Fatalf("due = %v, want one record", due)
	}
}

func testDedupSweep(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	k0 := mustAccept(t, st, webhook("t_a", "stripe", "evt_0", 0))
	k1 := mustAccept(t, st, webhook("t_a", "stripe", "evt_1", time.Hour))
	mustAccept(t, st, webhook("t_b", "stripe", "evt_0", 2*time.Hour))

	n, err := st.SweepDedup(ctx, base.Add(time.Hour))
	mustNoErr(t, err)
	if n != 1 {
		t.Fatalf("swept %d keys, want 1 (t_a evt_0)", n)
	}
	// The swept key is accepted again as a new record; the kept ones are
	// still duplicates. The old record itself stays.
	again := mustAccept(t, st, webhook("t_a", "stripe", "evt_0", 3*time.Hour))
	if again.ID == k0.ID {
		t.Fatal("the re-accepted webhook reused the old record's id")
	}
	got, dup, err := st.AcceptWebhook(ctx, webhook("t_a", "stripe", "evt_1", 3*time.Hour))
	mustNoErr(t, err)
	if !dup || got.ID != k1.ID {
		t.Fatalf("kept key: dup %v id %s, want a duplicate of %s", dup, got.ID, k1.ID)
	}
	if _, dup, err := st.AcceptWebhook(ctx, webhook("t_b", "stripe", "evt_0", 3*time.Hour)); err != nil || !dup {
		t.Fatalf("t_b's key: dup %v err %v, want a duplicate", dup, err)
	}
	mustGetInbox(t, st, "t_a", k0.ID)

	// The renewed key is young again: a sweep up to just after the first
	// acceptance leaves it alone.
	n, err = st.SweepDedup(ctx, base.Add(time.Hour+time.Second))
	mustNoErr(t, err)
	if n != 1 {
		t.Fatalf("second sweep removed %d keys, want 1 (t_a evt_1)", n)
	}
	if _, dup, err := st.AcceptWebhook(ctx, webhook("t_a", "stripe", "evt_0", 4*time.Hour)); err != nil || !dup {
		t.Fatalf("renewed key: dup %v err %v, want a duplicate", dup, err)
	}
	n, err = st.SweepDedup(ctx, base)
	mustNoErr(t, err)
	if n != 0 {
		t.Fatalf("a sweep before everything removed %d keys", n)
	}
}

func testInboxDue(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	// Received out of order, across tenants.
	r3 := mustAccept(t, st, webhook("t_a", "stripe", "evt_3", 3*time.Second))
	r1 := mustAccept(t, st, webhook("t_b", "stripe", "evt_1", 1*time.Second))
	r2 := mustAccept(t, st, webhook("t_a", "stripe", "evt_2", 2*time.Second))
	r5 := mustAccept(t, st, webhook("t_c", "stripe", "evt_5", 5*time.Second))
	r4 := mustAccept(t, st, webhook("t_b", "stripe", "evt_4", 4*time.Second))

	tests := map[string]struct {
		now   time.Duration
		limit int
		want  []string
	}{
		"nothing due yet":               {now: 0, limit: 10, want: []string{}},
		"due exactly at NextAttemptAt":  {now: time.Second, limit: 10, want: []string{r1.ID}},
		"earliest first across tenants": {now: time.Minute, limit: 10, want: []string{r1.ID, r2.ID, r3.ID, r4.ID, r5.ID}},
		"limit takes the earliest":      {now: time.Minute, limit: 2, want: []string{r1.ID, r2.ID}},
		"limit one":                     {now: 4 * time.Second, limit: 1, want: []string{r1.ID}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := st.DueInbox(ctx, base.Add(tc.now), tc.limit)
			mustNoErr(t, err)
			if ids := inboxIDs(got); !slices.Equal(ids, tc.want) {
				t.Fatalf("due = %v, want %v", ids, tc.want)
			}
		})
	}
	for _, limit := range []int{0, -1} {
		if _, err := st.DueInbox(ctx, base, limit); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("limit %d: err = %v, want ErrInvalid", limit, err)
		}
	}

	// Retrying r1 moves it behind the others; quarantined and processed
	// records are never due.
	mustNoErr(t, st.RetryInbox(ctx, "t_b", r1.ID, base.Add(10*time.Second), "plugin down"))
	mustNoErr(t, st.QuarantineInbox(ctx, "t_a", r2.ID, "unparseable"))
	_, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_a", InboxID: r3.ID, Now: base})
	mustNoErr(t, err)
	if got := dueInboxIDs(t, st, base.Add(9*time.Second)); !slices.Equal(got, []string{r4.ID, r5.ID}) {
		t.Fatalf("due before the retry = %v, want [%s %s]", got, r4.ID, r5.ID)
	}
	if got := dueInboxIDs(t, st, base.Add(10*time.Second)); !slices.Equal(got, []string{r4.ID, r5.ID, r1.ID}) {
		t.Fatalf("due at the retry = %v, want [%s %s %s]", got, r4.ID, r5.ID, r1.ID)
	}
	// Released from quarantine at base+7s: due from then on.
	if _, err := st.ReleaseQuarantine(ctx, "t_a", r2.ID, base.Add(7*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := dueInboxIDs(t, st, base.Add(10*time.Second)); !slices.Equal(got, []string{r4.ID, r5.ID, r2.ID, r1.ID}) {
		t.Fatalf("due after the release = %v, want [%s %s %s %s]", got, r4.ID, r5.ID, r2.ID, r1.ID)
	}
}

func testInboxStates(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	// Each setup leaves the record in a state and returns it.
	pending := func(t *testing.T, st store.Store) store.InboxRecord {
		t.Helper()
		return mustAccept(t, st, webhook("t_a", "stripe", "evt_1", 0))
	}
	quarantined := func(t *testing.T, st store.Store) store.InboxRecord {
		t.Helper()
		r := pending(t, st)
		mustNoErr(t, st.RetryInbox(ctx, "t_a", r.ID, base.Add(time.Minute), "timeout"))
		mustNoErr(t, st.QuarantineInbox(ctx, "t_a", r.ID, "no such event type"))
		return mustGetInbox(t, st, "t_a", r.ID)
	}
	processed := func(t *testing.T, st store.Store) store.InboxRecord {
		t.Helper()
		r := pending(t, st)
		_, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_a", InboxID: r.ID, Now: base.Add(time.Second)})
		mustNoErr(t, err)
		return mustGetInbox(t, st, "t_a", r.ID)
	}
	type call func(st store.Store, id string) (store.InboxRecord, error)
	retry := func(st store.Store, id string) (store.InboxRecord, error) {
		return store.InboxRecord{}, st.RetryInbox(ctx, "t_a", id, base.Add(time.Hour), "plugin unavailable")
	}
	quarantine := func(st store.Store, id string) (store.InboxRecord, error) {
		return store.InboxRecord{}, st.QuarantineInbox(ctx, "t_a", id, "unparseable body")
	}
	release := func(st store.Store, id string) (store.InboxRecord, error) {
		return st.ReleaseQuarantine(ctx, "t_a", id, base.Add(2*time.Hour))
	}

	tests := map[string]struct {
		setup   func(t *testing.T, st store.Store) store.InboxRecord
		call    call
		wantErr error
		// want edits the record as it was before the call into the record
		// expected after it.
		want    func(r *store.InboxRecord)
		wantDue bool // due at base+2h
	}{
		"retry a pending record": {
			setup: pending, call: retry, wantDue: true,
			want: func(r *store.InboxRecord) {
				r.Attempts, r.LastError, r.NextAttemptAt = 1, "plugin unavailable", base.Add(time.Hour)
			},
		},
		"quarantine a pending record": {
			setup: pending, call: quarantine,
			want: func(r *store.InboxRecord) { r.State, r.LastError = store.InboxQuarantined, "unparseable body" },
		},
		"release a quarantined record keeps its reason and attempts": {
			setup: quarantined, call: release, wantDue: true,
			want: func(r *store.InboxRecord) { r.State, r.NextAttemptAt = store.InboxPending, base.Add(2*time.Hour) },
		},
		"retry a quarantined record":      {setup: quarantined, call: retry, wantErr: store.ErrNotFound},
		"quarantine a quarantined record": {setup: quarantined, call: quarantine, wantErr: store.ErrNotFound},
		"release a pending record":        {setup: pending, call: release, wantErr: store.ErrNotFound, wantDue: true},
		"retry a processed record":        {setup: processed, call: retry, wantErr: store.ErrNotFound},
		"quarantine a processed record":   {setup: processed, call: quarantine, wantErr: store.ErrNotFound},
		"release a processed record":      {setup: processed, call: release, wantErr: store.ErrNotFound},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			before := tc.setup(t, st)
			returned, err := tc.call(st, before.ID)
			want := before
			if tc.wantErr != nil {
				mustErrIs(t, err, tc.wantErr)
			} else {
				mustNoErr(t, err)
				tc.want(&want)
			}
			got := mustGetInbox(t, st, "t_a", before.ID)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("stored %+v\nwant   %+v", got, want)
			}
			if returned.ID != "" && !reflect.DeepEqual(returned, want) {
				t.Fatalf("returned %+v\nwant     %+v", returned, want)
			}
			due := slices.Contains(dueInboxIDs(t, st, base.Add(2*time.Hour)), before.ID)
			if due != tc.wantDue {
				t.Fatalf("due at base+2h: %v, want %v", due, tc.wantDue)
			}
		})
	}
}

func testInboxList(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	st := open(t)
	const total = 60
	var all []store.InboxRecord // newest first
	for i := range total {
		r := mustAccept(t, st, webhook("t_a", "stripe", fmt.Sprintf("evt_%d", i), time.Duration(i)*time.Second))
		mustAccept(t, st, webhook("t_noise", "stripe", fmt.Sprintf("evt_%d", i), 0))
		switch i % 3 {
		case 1:
			mustNoErr(t, st.QuarantineInbox(ctx, "t_a", r.ID, "bad"))
		case 2:
			_, err := st.RecordEvents(ctx, store.EventBatch{TenantID: "t_a", InboxID: r.ID, Now: base})
			mustNoErr(t, err)
		}
		all = append(all, mustGetInbox(t, st, "t_a", r.ID))
	}
	slices.Reverse(all)

	tests := map[string]struct {
		state     store.InboxState
		limit     int
		wantPages int
	}{
		"every state, default limit":     {limit: 0, wantPages: 2},
		"every state, one page":          {limit: store.MaxListLimit, wantPages: 1},
		"pending, pages fill exactly":    {state: store.InboxPending, limit: 5, wantPages: 4},
		"quarantined, limit one":         {state: store.InboxQuarantined, limit: 1, wantPages: 20},
		"processed, uneven last page":    {state: store.InboxProcessed, limit: 7, wantPages: 3},
		"every state, exactly two pages": {limit: 30, wantPages: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var want []store.InboxRecord
			for _, r := range all {
				if tc.state == "" || r.State == tc.state {
					want = append(want, r)
				}
			}
			limit := tc.limit
			if limit == 0 {
				limit = store.DefaultListLimit
			}
			var got []store.InboxRecord
			q, pages := store.ListQuery{Limit: tc.limit}, 0
			for {
				list, next, err := st.ListInbox(ctx, "t_a", tc.state, q)
				mustNoErr(t, err)
				pages++
				if len(list) > limit || (next != "" && len(list) != limit) {
					t.Fatalf("page %d: %d records, next %q, limit %d", pages, len(list), next, limit)
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
			if pages != tc.wantPages {
				t.Errorf("pages = %d, want %d", pages, tc.wantPages)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("paged %v\nwant  %v", inboxIDs(got), inboxIDs(want))
			}
		})
	}

	_, eventsCursor := listEventsCursor(t, st)
	_, auditCursor := auditCursorOf(t, st)
	invalid := map[string]struct {
		state store.InboxState
		q     store.ListQuery
	}{
		"negative limit":          {q: store.ListQuery{Limit: -1}},
		"limit over the maximum":  {q: store.ListQuery{Limit: store.MaxListLimit + 1}},
		"cursor not base64":       {q: store.ListQuery{Cursor: "!!"}},
		"cursor of another shape": {q: store.ListQuery{Cursor: "AAAA"}},
		"an events cursor":        {q: store.ListQuery{Cursor: eventsCursor}},
		"an audit cursor":         {q: store.ListQuery{Cursor: auditCursor}},
		"unknown state":           {state: "lost"},
	}
	for name, tc := range invalid {
		t.Run(name, func(t *testing.T) {
			list, next, err := st.ListInbox(ctx, "t_a", tc.state, tc.q)
			mustErrIs(t, err, store.ErrInvalidQuery)
			if list != nil || next != "" {
				t.Fatalf("an invalid query returned %d records and next %q", len(list), next)
			}
		})
	}
	t.Run("a cursor of another tenant lists only the caller's records", func(t *testing.T) {
		_, next, err := st.ListInbox(ctx, "t_a", "", store.ListQuery{Limit: 1})
		mustNoErr(t, err)
		list, _, err := st.ListInbox(ctx, "t_noise", "", store.ListQuery{Cursor: next, Limit: store.MaxListLimit})
		mustNoErr(t, err)
		for _, r := range list {
			if r.TenantID != "t_noise" {
				t.Fatalf("t_noise listed a record of %s", r.TenantID)
			}
		}
	})
}

// auditCursorOf returns a valid ListAudit cursor of a scratch tenant.
func auditCursorOf(t testing.TB, st store.Store) ([]store.AuditRecord, string) {
	t.Helper()
	ctx := context.Background()
	for i := range 2 {
		_, err := st.AppendAudit(ctx, auditRecord("t_cursor", i))
		mustNoErr(t, err)
	}
	list, next, err := st.ListAudit(ctx, "t_cursor", store.AuditQuery{Limit: 1})
	mustNoErr(t, err)
	if next == "" {
		t.Fatal("no audit cursor")
	}
	return list, next
}
