package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// eventPaymentPrefix is the key prefix of one payment's entries in
// events_by_payment, with room for the seq.
func eventPaymentPrefix(tenantID, paymentID string) []byte {
	return lp(lp(make([]byte, 0, len(tenantID)+len(paymentID)+4+8), tenantID), paymentID)
}

// encodeEvent encodes e without Seq, which follows from the key; the body
// is kept byte for byte.
func encodeEvent(e *Event) ([]byte, error) {
	m := *e
	m.Seq, m.Body = 0, nil
	meta, err := json.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("store: encode event: %w", err)
	}
	return appendBlob(make([]byte, 0, blobSize(meta, e.Body)), meta, e.Body), nil
}

func decodeEvent(v []byte, seq uint64) (Event, error) {
	meta, body, err := splitBlob(v)
	if err != nil {
		return Event{}, fmt.Errorf("store: decode event: %w", err)
	}
	var e Event
	if err := json.Unmarshal(meta, &e); err != nil {
		return Event{}, fmt.Errorf("store: decode event: %w", err)
	}
	e.Seq, e.Body = seq, cloneBody(body)
	return e, nil
}

func getEvent(tx *bolt.Tx, tenantID, id string) (Event, bool, error) {
	sk := tx.Bucket(bucketEventIDs).Get(tenantIDKey(tenantID, id))
	if len(sk) != 8 {
		return Event{}, false, nil
	}
	tb := tx.Bucket(bucketEvents).Bucket([]byte(tenantID))
	if tb == nil {
		return Event{}, false, nil
	}
	v := tb.Get(sk)
	if v == nil {
		return Event{}, false, nil
	}
	e, err := decodeEvent(v, binary.BigEndian.Uint64(sk))
	return e, err == nil, err
}

// RecordEvents implements EventStore. Beyond the interface's rules:
//   - the batch's TenantID and every event's Subject are at most 1 KiB
//     (ErrInvalid): they are parts of the delivery queue key;
//   - an event's empty InboxID is set to the batch's, a zero Now is the
//     current time and an event's zero CreatedAt is Now;
//   - each PaymentChange's Apply runs as UpdatePayment's fn, at Now and
//     possibly more than once; a change of a payment's identity is
//     ErrInvalid and aborts the whole batch.
func (b *Bolt) RecordEvents(ctx context.Context, r EventBatch) ([]Delivery, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	if r.TenantID == "" {
		return nil, fmt.Errorf("%w: event batch needs a tenant", ErrInvalid)
	}
	if err := checkPart("tenant id", r.TenantID); err != nil {
		return nil, err
	}
	if err := checkKey("inbox id", tenantIDKey(r.TenantID, r.InboxID)); err != nil {
		return nil, err
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = normTime(now)

	events := make([]Event, len(r.Events))
	vals := make([][]byte, len(r.Events))
	idKeys := make([][]byte, len(r.Events))
	eventIDs := make([]string, len(r.Events))
	seen := make(map[string]bool, len(r.Events))
	for i, e := range r.Events {
		switch {
		case e.TenantID != "" && e.TenantID != r.TenantID:
			return nil, fmt.Errorf("%w: event %d belongs to another tenant than its batch", ErrInvalid, i)
		case e.Type == "":
			return nil, fmt.Errorf("%w: event %d has no type", ErrInvalid, i)
		case !json.Valid(e.Body):
			return nil, fmt.Errorf("%w: event %d: body is not JSON", ErrInvalid, i)
		}
		if err := checkPart("event subject", e.Subject); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		e.TenantID, e.Seq = r.TenantID, 0
		if e.ID == "" {
			e.ID = newID("evt_")
		}
		if seen[e.ID] {
			return nil, fmt.Errorf("%w: event id %s twice in one batch", ErrInvalid, e.ID)
		}
		seen[e.ID] = true
		if e.InboxID == "" {
			e.InboxID = r.InboxID
		}
		if e.CreatedAt.IsZero() {
			e.CreatedAt = now
		}
		e.CreatedAt, e.OccurredAt = normTime(e.CreatedAt), normTime(e.OccurredAt)
		idKeys[i] = tenantIDKey(r.TenantID, e.ID)
		if err := checkKey("event id", idKeys[i]); err != nil {
			return nil, err
		}
		if err := checkKey("payment id", eventPaymentPrefix(r.TenantID, e.PaymentID)); err != nil {
			return nil, err
		}
		val, err := encodeEvent(&e)
		if err != nil {
			return nil, err
		}
		events[i], vals[i], eventIDs[i] = e, val, e.ID
	}
	for i, pc := range r.Payments {
		if pc.PaymentID == "" || pc.Apply == nil {
			return nil, fmt.Errorf("%w: payment change %d needs a payment id and Apply", ErrInvalid, i)
		}
		for _, ei := range pc.Events {
			if ei < 0 || ei >= len(events) {
				return nil, fmt.Errorf("%w: payment change %d names event %d of %d", ErrInvalid, i, ei, len(events))
			}
		}
	}
	for i, rc := range r.Resources {
		if rc.Kind == "" || rc.ID == "" || rc.Apply == nil {
			return nil, fmt.Errorf("%w: resource change %d needs a kind, an id and Apply", ErrInvalid, i)
		}
		for _, ei := range rc.Events {
			if ei < 0 || ei >= len(events) {
				return nil, fmt.Errorf("%w: resource change %d names event %d of %d", ErrInvalid, i, ei, len(events))
			}
		}
	}
	tenant := []byte(r.TenantID)

	var (
		created []Delivery
		already bool
		outcome error
	)
	err := b.batch(func(tx *bolt.Tx) error {
		created, already, outcome = nil, false, nil

		// Checks first: an outcome returns before anything is written.
		var (
			ref   inboxRef
			inbox InboxRecord
		)
		if r.InboxID != "" {
			var ok bool
			if ref, ok = findInbox(tx, r.TenantID, r.InboxID); !ok {
				outcome = fmt.Errorf("%w: inbox record %s", ErrNotFound, r.InboxID)
				return nil
			}
			var err error
			if inbox, err = decodeInbox(ref.val, ref.seq, false); err != nil {
				return err
			}
			if inbox.State == InboxProcessed {
				already = true
				return nil
			}
		}
		ids := tx.Bucket(bucketEventIDs)
		for i, k := range idKeys {
			if ids.Get(k) != nil {
				outcome = fmt.Errorf("%w: event %s", ErrExists, events[i].ID)
				return nil
			}
		}

		// Payment changes. A rejected change after an accepted one has
		// written: return it as an error, which rolls everything back.
		drop := map[int]bool{}
		for _, pc := range r.Payments {
			apply, keep := pc.Apply, pc.Keep
			_, oc, err := updatePaymentTx(tx, paymentKey(r.TenantID, pc.PaymentID), now, func(p *Payment) error {
				if keep != nil && !keep(p) {
					return errDropChange
				}
				apply(p)
				return nil
			})
			if err != nil {
				return err
			}
			switch {
			case oc == nil, errors.Is(oc, ErrNotFound):
			case errors.Is(oc, errDropChange):
				for _, ei := range pc.Events {
					drop[ei] = true
				}
			default:
				return fmt.Errorf("payment %s: %w", pc.PaymentID, oc)
			}
		}

		// Resource changes decide which of their events stay.
		for _, rc := range r.Resources {
			apply, keep := rc.Apply, false
			_, oc, err := updateResourceTx(tx, resourceKey(rc.Kind, r.TenantID, rc.ID), now, func(res *Resource) error {
				if keep = apply(res); !keep {
					return errDropChange
				}
				return nil
			})
			if err != nil {
				return err
			}
			switch {
			case oc == nil:
			case errors.Is(oc, errDropChange) || errors.Is(oc, ErrNotFound):
				for _, ei := range rc.Events {
					drop[ei] = true
				}
			default:
				return fmt.Errorf("%s %s: %w", rc.Kind, rc.ID, oc)
			}
		}
		kept := eventIDs[:0:0]
		for i := range events {
			if !drop[i] {
				kept = append(kept, eventIDs[i])
			}
		}

		endpoints, err := tenantEndpoints(tx, r.TenantID)
		if err != nil {
			return err
		}
		tb, err := tx.Bucket(bucketEvents).CreateBucketIfNotExists(tenant)
		if err != nil {
			return err
		}
		tb.FillPercent = 1 // append-only
		byPayment := tx.Bucket(bucketEventsByPay)
		ob := openOutbox(tx)
		for i := range events {
			if drop[i] {
				continue
			}
			e := &events[i]
			seq, err := tb.NextSequence()
			if err != nil {
				return err
			}
			sk := seqKey(seq)
			if err := tb.Put(sk, vals[i]); err != nil {
				return err
			}
			if err := ids.Put(idKeys[i], sk); err != nil {
				return err
			}
			if e.PaymentID != "" {
				if err := byPayment.Put(append(eventPaymentPrefix(r.TenantID, e.PaymentID), sk...), []byte{}); err != nil {
					return err
				}
			}
			for j := range endpoints {
				ep := &endpoints[j]
				if !ep.Enabled || !EndpointMatches(ep.Types, e.Type) {
					continue
				}
				d, err := ob.create(e, ep, now)
				if err != nil {
					return err
				}
				created = append(created, d)
			}
		}

		if r.InboxID != "" {
			done := inbox
			done.State, done.EventIDs, done.ProcessedAt = InboxProcessed, kept, now
			if err := ref.rewrite(tx, &inbox, &done); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: record events: %w", err)
	}
	if outcome != nil || already {
		return nil, outcome
	}
	if created == nil {
		created = []Delivery{}
	}
	return created, nil
}

// errDropChange aborts a resource change whose Apply dropped its events.
var errDropChange = errors.New("store: resource change dropped")

// GetEvent implements EventStore.
func (b *Bolt) GetEvent(ctx context.Context, tenantID, id string) (Event, error) {
	if err := b.ready(ctx); err != nil {
		return Event{}, err
	}
	var e Event
	err := b.view(func(tx *bolt.Tx) error {
		var (
			found bool
			err   error
		)
		e, found, err = getEvent(tx, tenantID, id)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	return e, err
}

// eventFilter is the part of an event ListEvents filters on.
type eventFilter struct {
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
}

// ListEvents implements EventStore: newest (highest Seq) first. A PaymentID
// walks that payment's index only; Type, Since and Until are checked on
// every event walked, so a rare match reads far. A Type of "*" matches
// everything, as in EndpointMatches.
func (b *Bolt) ListEvents(ctx context.Context, tenantID string, q EventQuery) ([]Event, string, error) {
	if err := b.ready(ctx); err != nil {
		return nil, "", err
	}
	if err := q.Validate(); err != nil {
		return nil, "", err
	}
	below, err := decodeListCursor(cursorEvents, q.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := ListQuery{Limit: q.Limit}.limit()
	since, until := normTime(q.Since), normTime(q.Until)
	filtered := q.Type != "" || !q.Since.IsZero() || !q.Until.IsZero()
	var types []string
	if q.Type != "" {
		types = []string{q.Type}
	}
	out := []Event{}
	more := false
	err = b.view(func(tx *bolt.Tx) error {
		if tenantID == "" {
			return nil
		}
		tb := tx.Bucket(bucketEvents).Bucket([]byte(tenantID))
		if tb == nil {
			return nil
		}
		// next yields the tenant's records newest first, below the cursor.
		var next func() (k, v []byte)
		if q.PaymentID != "" {
			next = newestFirst(tb, tx.Bucket(bucketEventsByPay).Cursor(), eventPaymentPrefix(tenantID, q.PaymentID), below)
		} else {
			next = newestFirst(tb, nil, nil, below)
		}
		for k, v := next(); k != nil; k, v = next() {
			if filtered {
				meta, _, err := splitBlob(v)
				if err != nil {
					return fmt.Errorf("store: decode event: %w", err)
				}
				var f eventFilter
				if err := json.Unmarshal(meta, &f); err != nil {
					return fmt.Errorf("store: decode event: %w", err)
				}
				if (types != nil && !EndpointMatches(types, f.Type)) ||
					(!since.IsZero() && f.CreatedAt.Before(since)) ||
					(!until.IsZero() && !f.CreatedAt.Before(until)) {
					continue
				}
			}
			if len(out) == limit {
				more = true
				return nil
			}
			e, err := decodeEvent(v, binary.BigEndian.Uint64(k))
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		next = encodeListCursor(cursorEvents, out[len(out)-1].Seq)
	}
	return out, next, nil
}

// EventsAfter implements EventStore.
func (b *Bolt) EventsAfter(ctx context.Context, tenantID string, after uint64, limit int) ([]Event, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	if err := checkDueLimit(limit); err != nil {
		return nil, err
	}
	out := []Event{}
	err := b.view(func(tx *bolt.Tx) error {
		if tenantID == "" {
			return nil
		}
		tb := tx.Bucket(bucketEvents).Bucket([]byte(tenantID))
		if tb == nil {
			return nil
		}
		c := tb.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			if len(k) != 8 || v == nil {
				continue
			}
			e, err := decodeEvent(v, binary.BigEndian.Uint64(k))
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
