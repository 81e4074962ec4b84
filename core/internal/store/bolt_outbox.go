package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The outbox on bbolt. Every live (pending or blocked) delivery has one
// entry in delivery_queue under (tenant, endpoint, order key) in the order
// it was queued; only pending deliveries are in deliveries_due.
//
// Ordered endpoints: a delivery is queued blocked when its queue already
// holds a live delivery, and when a delivery leaves the queue (delivered,
// dead) the queue's new head, if blocked, becomes pending, due now. So a
// queue holds its pending deliveries before its blocked ones, and at most
// one is pending while the endpoint stays ordered. Deliveries of unordered
// endpoints are queued too (order key "", never blocked): that is how an
// endpoint's live deliveries are found.

// storedDelivery is a delivery with its place in the queue.
type storedDelivery struct {
	Delivery
	QueueSeq uint64 `json:"queue_seq,omitempty"`
}

func deliveryDueKey(t time.Time, tenantID, id string) []byte {
	b := timeKey(make([]byte, 0, 8+len(tenantID)+len(id)+4), t)
	return lp(lp(b, tenantID), id)
}

func deliveryEventKey(tenantID, eventID, id string) []byte {
	b := make([]byte, 0, len(tenantID)+len(eventID)+len(id)+6)
	return lp(lp(lp(b, tenantID), eventID), id)
}

// queuePrefix is the key prefix of one endpoint's live deliveries, and with
// an order key of one queue.
func queuePrefix(tenantID, endpointID string, orderKey ...string) []byte {
	b := lp(lp(make([]byte, 0, len(tenantID)+len(endpointID)+16), tenantID), endpointID)
	for _, k := range orderKey {
		b = lp(b, k)
	}
	return b
}

func (d *storedDelivery) queueKey() []byte {
	return binary.BigEndian.AppendUint64(queuePrefix(d.TenantID, d.EndpointID, d.OrderKey), d.QueueSeq)
}

// outbox holds the delivery buckets of one write transaction.
type outbox struct {
	deliveries, due, byEvent, queue, attempts *bolt.Bucket
}

func openOutbox(tx *bolt.Tx) outbox {
	return outbox{
		deliveries: tx.Bucket(bucketDeliveries),
		due:        tx.Bucket(bucketDeliveryDue),
		byEvent:    tx.Bucket(bucketDeliveryEvent),
		queue:      tx.Bucket(bucketDeliveryQueue),
		attempts:   tx.Bucket(bucketAttempts),
	}
}

func getDelivery(b *bolt.Bucket, tenantID, id string) (storedDelivery, bool, error) {
	v := b.Get(tenantIDKey(tenantID, id))
	if v == nil {
		return storedDelivery{}, false, nil
	}
	var d storedDelivery
	if err := json.Unmarshal(v, &d); err != nil {
		return storedDelivery{}, false, fmt.Errorf("store: decode delivery: %w", err)
	}
	return d, true, nil
}

func (o outbox) get(tenantID, id string) (storedDelivery, bool, error) {
	return getDelivery(o.deliveries, tenantID, id)
}

func (o outbox) put(d *storedDelivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("store: encode delivery: %w", err)
	}
	return o.deliveries.Put(tenantIDKey(d.TenantID, d.ID), v)
}

// enqueue queues d at now: blocked behind a live delivery of its queue when
// ordered, otherwise pending and due now. The caller puts d.
func (o outbox) enqueue(d *storedDelivery, ordered bool, now time.Time) error {
	busy := false
	if ordered {
		prefix := queuePrefix(d.TenantID, d.EndpointID, d.OrderKey)
		k, _ := o.queue.Cursor().Seek(prefix)
		busy = k != nil && bytes.HasPrefix(k, prefix)
	}
	seq, err := o.queue.NextSequence()
	if err != nil {
		return err
	}
	d.QueueSeq, d.NextAttemptAt, d.UpdatedAt = seq, now, now
	if err := o.queue.Put(d.queueKey(), []byte(d.ID)); err != nil {
		return err
	}
	if busy {
		d.State = DeliveryBlocked
		return nil
	}
	d.State = DeliveryPending
	return o.due.Put(deliveryDueKey(now, d.TenantID, d.ID), []byte{})
}

// dequeue takes d out of its queue and, if the queue's new head is blocked,
// makes it pending, due now. The caller puts d.
func (o outbox) dequeue(d *storedDelivery, now time.Time) error {
	if d.QueueSeq == 0 {
		return nil
	}
	if err := o.queue.Delete(d.queueKey()); err != nil {
		return err
	}
	d.QueueSeq = 0
	prefix := queuePrefix(d.TenantID, d.EndpointID, d.OrderKey)
	k, v := o.queue.Cursor().Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil
	}
	head, ok, err := o.get(d.TenantID, string(v))
	if err != nil || !ok || head.State != DeliveryBlocked {
		return err
	}
	return o.unblock(&head, now)
}

func (o outbox) unblock(d *storedDelivery, now time.Time) error {
	d.State, d.NextAttemptAt, d.UpdatedAt = DeliveryPending, now, now
	if err := o.due.Put(deliveryDueKey(now, d.TenantID, d.ID), []byte{}); err != nil {
		return err
	}
	return o.put(d)
}

// create makes and stores a new delivery of e to ep.
func (o outbox) create(e *Event, ep *Endpoint, now time.Time) (Delivery, error) {
	d := storedDelivery{Delivery: Delivery{
		ID:         newID("dlv_"),
		TenantID:   e.TenantID,
		EventID:    e.ID,
		EndpointID: ep.ID,
		CreatedAt:  now,
	}}
	if ep.Ordered {
		d.OrderKey = e.Subject
	}
	if err := o.enqueue(&d, ep.Ordered, now); err != nil {
		return Delivery{}, err
	}
	if err := o.byEvent.Put(deliveryEventKey(d.TenantID, d.EventID, d.ID), []byte{}); err != nil {
		return Delivery{}, err
	}
	return d.Delivery, o.put(&d)
}

// live returns the endpoint's pending and blocked deliveries in queue order.
func (o outbox) live(tenantID, endpointID string) ([]storedDelivery, error) {
	prefix := queuePrefix(tenantID, endpointID)
	var ids []string
	c := o.queue.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		ids = append(ids, string(v))
	}
	out := make([]storedDelivery, 0, len(ids))
	for _, id := range ids {
		d, ok, err := o.get(tenantID, id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// kill makes every live delivery of the endpoint dead with reason. Whole
// queues go at once, so nothing is unblocked.
func (o outbox) kill(tenantID, endpointID, reason string, now time.Time) (int, error) {
	live, err := o.live(tenantID, endpointID)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range live {
		d := &live[i]
		if err := o.queue.Delete(d.queueKey()); err != nil {
			return 0, err
		}
		switch d.State {
		case DeliveryPending:
			if err := o.due.Delete(deliveryDueKey(d.NextAttemptAt, d.TenantID, d.ID)); err != nil {
				return 0, err
			}
		case DeliveryBlocked:
		default:
			continue // a stale queue entry
		}
		d.State, d.LastError, d.UpdatedAt, d.QueueSeq = DeliveryDead, reason, now, 0
		if err := o.put(d); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// unblockAll makes every blocked delivery of the endpoint pending, due now:
// the endpoint stopped being ordered.
func (o outbox) unblockAll(tenantID, endpointID string, now time.Time) error {
	live, err := o.live(tenantID, endpointID)
	if err != nil {
		return err
	}
	for i := range live {
		if live[i].State == DeliveryBlocked {
			if err := o.unblock(&live[i], now); err != nil {
				return err
			}
		}
	}
	return nil
}

// releaseWaiting makes the endpoint's pending deliveries that wait for a
// later time due now: an endpoint enabled again gets its backlog at once,
// not at each delivery's next retry slot or disabled-endpoint recheck.
func (o outbox) releaseWaiting(tenantID, endpointID string, now time.Time) error {
	live, err := o.live(tenantID, endpointID)
	if err != nil {
		return err
	}
	for i := range live {
		d := &live[i]
		if d.State != DeliveryPending || !d.NextAttemptAt.After(now) {
			continue
		}
		d.UpdatedAt = now
		if err := o.reschedule(d, now); err != nil {
			return err
		}
	}
	return nil
}

// reschedule moves the pending delivery d to next, in the due index and in
// its stored record.
func (o outbox) reschedule(d *storedDelivery, next time.Time) error {
	if err := o.due.Delete(deliveryDueKey(d.NextAttemptAt, d.TenantID, d.ID)); err != nil {
		return err
	}
	d.NextAttemptAt = next
	if err := o.due.Put(deliveryDueKey(next, d.TenantID, d.ID), []byte{}); err != nil {
		return err
	}
	return o.put(d)
}

// ---- endpoints

func getEndpoint(tx *bolt.Tx, tenantID, id string) (Endpoint, bool, error) {
	v := tx.Bucket(bucketEndpoints).Get(tenantIDKey(tenantID, id))
	if v == nil {
		return Endpoint{}, false, nil
	}
	var e Endpoint
	if err := json.Unmarshal(v, &e); err != nil {
		return Endpoint{}, false, fmt.Errorf("store: decode endpoint: %w", err)
	}
	return e, true, nil
}

func putEndpoint(tx *bolt.Tx, e *Endpoint) error {
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("store: encode endpoint: %w", err)
	}
	return tx.Bucket(bucketEndpoints).Put(tenantIDKey(e.TenantID, e.ID), v)
}

// tenantEndpoints returns the tenant's endpoints sorted by ID.
func tenantEndpoints(tx *bolt.Tx, tenantID string) ([]Endpoint, error) {
	prefix := lp(nil, tenantID)
	out := []Endpoint{}
	c := tx.Bucket(bucketEndpoints).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var e Endpoint
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("store: decode endpoint: %w", err)
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func validEndpointKey(tenantID, id string) error {
	if tenantID == "" || id == "" {
		return fmt.Errorf("%w: endpoint needs a tenant and an id", ErrInvalid)
	}
	if err := checkPart("tenant id", tenantID); err != nil {
		return err
	}
	return checkPart("endpoint id", id)
}

// PutEndpoint implements EventStore. The tenant and endpoint ids are at
// most 1 KiB each (ErrInvalid). A zero CreatedAt is kept from the
// endpoint it replaces, or set to now; a zero UpdatedAt is set to now. An
// endpoint that stops being ordered releases its blocked deliveries
// (pending, due now).
func (b *Bolt) PutEndpoint(ctx context.Context, e Endpoint) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	if err := validEndpointKey(e.TenantID, e.ID); err != nil {
		return err
	}
	now := normTime(time.Now())
	err := b.batch(func(tx *bolt.Tx) error {
		put := e
		old, found, err := getEndpoint(tx, e.TenantID, e.ID)
		if err != nil {
			return err
		}
		switch {
		case !put.CreatedAt.IsZero():
		case found:
			put.CreatedAt = old.CreatedAt
		default:
			put.CreatedAt = now
		}
		if put.UpdatedAt.IsZero() {
			put.UpdatedAt = now
		}
		put.CreatedAt, put.UpdatedAt = normTime(put.CreatedAt), normTime(put.UpdatedAt)
		if err := putEndpoint(tx, &put); err != nil {
			return err
		}
		if found && old.Ordered && !put.Ordered {
			return openOutbox(tx).unblockAll(e.TenantID, e.ID, now)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: put endpoint: %w", err)
	}
	return nil
}

// GetEndpoint implements EventStore.
func (b *Bolt) GetEndpoint(ctx context.Context, tenantID, id string) (Endpoint, error) {
	if err := b.ready(ctx); err != nil {
		return Endpoint{}, err
	}
	var e Endpoint
	err := b.view(func(tx *bolt.Tx) error {
		var (
			found bool
			err   error
		)
		e, found, err = getEndpoint(tx, tenantID, id)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	return e, err
}

// ListEndpoints implements EventStore. No endpoints is an empty slice.
func (b *Bolt) ListEndpoints(ctx context.Context, tenantID string) ([]Endpoint, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	var out []Endpoint
	err := b.view(func(tx *bolt.Tx) error {
		var err error
		out, err = tenantEndpoints(tx, tenantID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateEndpoint implements EventStore. fn must not change TenantID, ID or
// CreatedAt (ErrInvalid); UpdatedAt is set to now. An endpoint that stops
// being ordered releases its blocked deliveries, as in PutEndpoint.
func (b *Bolt) UpdateEndpoint(ctx context.Context, tenantID, id string, fn func(*Endpoint) error) (Endpoint, error) {
	if err := b.ready(ctx); err != nil {
		return Endpoint{}, err
	}
	now := normTime(time.Now())
	var (
		out     Endpoint
		outcome error
	)
	err := b.batch(func(tx *bolt.Tx) error {
		out, outcome = Endpoint{}, nil
		old, found, err := getEndpoint(tx, tenantID, id)
		if err != nil {
			return err
		}
		if !found {
			outcome = ErrNotFound
			return nil
		}
		// fn gets a copy that shares nothing with old.
		e := old
		e.Secrets, e.Types = slices.Clone(old.Secrets), slices.Clone(old.Types)
		if err := fn(&e); err != nil {
			outcome = err
			return nil
		}
		if e.TenantID != old.TenantID || e.ID != old.ID || !e.CreatedAt.Equal(old.CreatedAt) {
			outcome = fmt.Errorf("%w: update must not change an endpoint's tenant, id or created_at", ErrInvalid)
			return nil
		}
		e.CreatedAt, e.UpdatedAt = old.CreatedAt, now
		if err := putEndpoint(tx, &e); err != nil {
			return err
		}
		if old.Ordered && !e.Ordered {
			if err := openOutbox(tx).unblockAll(tenantID, id, now); err != nil {
				return err
			}
		}
		if !old.Enabled && e.Enabled {
			if err := openOutbox(tx).releaseWaiting(tenantID, id, now); err != nil {
				return err
			}
		}
		out = e
		return nil
	})
	if err != nil {
		return Endpoint{}, fmt.Errorf("store: update endpoint: %w", err)
	}
	if outcome != nil {
		return Endpoint{}, outcome
	}
	return out, nil
}

// DeleteEndpoint implements EventStore. ErrNotFound if the tenant has no
// such endpoint.
func (b *Bolt) DeleteEndpoint(ctx context.Context, tenantID, id string) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	now := normTime(time.Now())
	var outcome error
	err := b.batch(func(tx *bolt.Tx) error {
		outcome = nil
		_, found, err := getEndpoint(tx, tenantID, id)
		if err != nil {
			return err
		}
		if !found {
			outcome = ErrNotFound
			return nil
		}
		if _, err := openOutbox(tx).kill(tenantID, id, "endpoint deleted", now); err != nil {
			return err
		}
		return tx.Bucket(bucketEndpoints).Delete(tenantIDKey(tenantID, id))
	})
	if err != nil {
		return fmt.Errorf("store: delete endpoint: %w", err)
	}
	return outcome
}

// KillEndpointDeliveries implements EventStore. ErrNotFound if the tenant
// has no such endpoint.
func (b *Bolt) KillEndpointDeliveries(ctx context.Context, tenantID, endpointID, reason string, now time.Time) (int, error) {
	if err := b.ready(ctx); err != nil {
		return 0, err
	}
	now = normTime(now)
	var (
		n       int
		outcome error
	)
	err := b.batch(func(tx *bolt.Tx) error {
		n, outcome = 0, nil
		_, found, err := getEndpoint(tx, tenantID, endpointID)
		if err != nil {
			return err
		}
		if !found {
			outcome = ErrNotFound
			return nil
		}
		n, err = openOutbox(tx).kill(tenantID, endpointID, reason, now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: kill endpoint deliveries: %w", err)
	}
	return n, outcome
}

// ---- deliveries

// DueDeliveries implements EventStore: it walks the due index, which holds
// the pending deliveries only, ordered by NextAttemptAt, then tenant, then
// ID. A limit below 1 is ErrInvalid. Deliveries of a disabled endpoint are
// returned too: pausing them is the caller's decision.
func (b *Bolt) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	if err := checkDueLimit(limit); err != nil {
		return nil, err
	}
	end := timeKey(nil, normTime(now))
	out := []Delivery{}
	err := b.view(func(tx *bolt.Tx) error {
		deliveries := tx.Bucket(bucketDeliveries)
		c := tx.Bucket(bucketDeliveryDue).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) < 8 || bytes.Compare(k[:8], end) > 0 {
				break
			}
			v := deliveries.Get(k[8:])
			if v == nil {
				return fmt.Errorf("store: delivery due index names a missing delivery: %w", errCorrupt)
			}
			var d storedDelivery
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("store: decode delivery: %w", err)
			}
			out = append(out, d.Delivery)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DueDeliveryRefs implements EventStore.
func (b *Bolt) DueDeliveryRefs(ctx context.Context, now time.Time, limit int) ([]DeliveryRef, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	if err := checkDueLimit(limit); err != nil {
		return nil, err
	}
	end := timeKey(nil, normTime(now))
	out := []DeliveryRef{}
	err := b.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDeliveryDue).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) < 8 || bytes.Compare(k[:8], end) > 0 {
				break
			}
			tenantID, rest, ok := cutLP(k[8:])
			id, _, ok2 := cutLP(rest)
			if !ok || !ok2 {
				return fmt.Errorf("store: malformed delivery due key: %w", errCorrupt)
			}
			out = append(out, DeliveryRef{TenantID: string(tenantID), ID: string(id)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RecordAttempt implements EventStore. d needs TenantID and ID and a State
// of pending, delivered or dead (ErrInvalid otherwise). a.DeliveryID may be
// empty (it is set to d.ID) but no other delivery's; a zero a.At is now.
// The delivery's UpdatedAt becomes a.At; a pending d with a zero
// NextAttemptAt is due at a.At; a delivered one gets DeliveredAt =
// d.DeliveredAt, or a.At when that is zero. The attempt is appended to the
// delivery's history, which survives replays (ListAttempts keeps every
// attempt even when N starts again at 1).
func (b *Bolt) RecordAttempt(ctx context.Context, d Delivery, a Attempt) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	if d.TenantID == "" || d.ID == "" {
		return fmt.Errorf("%w: delivery needs a tenant and an id", ErrInvalid)
	}
	switch d.State {
	case DeliveryPending, DeliveryDelivered, DeliveryDead:
	default:
		return fmt.Errorf("%w: an attempt cannot leave a delivery %q", ErrInvalid, d.State)
	}
	if a.DeliveryID == "" {
		a.DeliveryID = d.ID
	}
	if a.DeliveryID != d.ID {
		return fmt.Errorf("%w: attempt of delivery %s recorded on %s", ErrInvalid, a.DeliveryID, d.ID)
	}
	if err := checkKey("delivery id", tenantIDKey(d.TenantID, d.ID)); err != nil {
		return err
	}
	if a.At.IsZero() {
		a.At = time.Now()
	}
	a.At = normTime(a.At)
	next := normTime(d.NextAttemptAt)
	if d.State == DeliveryPending && next.IsZero() {
		next = a.At
	}
	deliveredAt := normTime(d.DeliveredAt)
	if d.State == DeliveryDelivered && deliveredAt.IsZero() {
		deliveredAt = a.At
	}
	aval, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("store: encode attempt: %w", err)
	}
	prefix := tenantIDKey(d.TenantID, d.ID)

	var outcome error
	err = b.batch(func(tx *bolt.Tx) error {
		outcome = nil
		o := openOutbox(tx)
		cur, ok, err := o.get(d.TenantID, d.ID)
		if err != nil {
			return err
		}
		if !ok || cur.State != DeliveryPending {
			outcome = fmt.Errorf("%w: no pending delivery %s", ErrNotFound, d.ID)
			return nil
		}
		if err := o.due.Delete(deliveryDueKey(cur.NextAttemptAt, cur.TenantID, cur.ID)); err != nil {
			return err
		}
		cur.State, cur.Attempts, cur.LastStatus, cur.LastError = d.State, d.Attempts, d.LastStatus, d.LastError
		cur.NextAttemptAt, cur.UpdatedAt = next, a.At
		if d.State == DeliveryDelivered {
			cur.DeliveredAt = deliveredAt
		}
		if d.State == DeliveryPending {
			if err := o.due.Put(deliveryDueKey(next, cur.TenantID, cur.ID), []byte{}); err != nil {
				return err
			}
		} else if err := o.dequeue(&cur, a.At); err != nil {
			return err
		}
		if err := o.put(&cur); err != nil {
			return err
		}
		// The attempt goes after the delivery's last one.
		n := uint64(1)
		if k, _ := seekBefore(o.attempts.Cursor(), prefix, 0); k != nil && len(k) == len(prefix)+8 {
			n = binary.BigEndian.Uint64(k[len(prefix):]) + 1
		}
		return o.attempts.Put(binary.BigEndian.AppendUint64(bytes.Clone(prefix), n), aval)
	})
	if err != nil {
		return fmt.Errorf("store: record attempt: %w", err)
	}
	return outcome
}

// PostponeDelivery implements EventStore. UpdatedAt is left as it was too.
func (b *Bolt) PostponeDelivery(ctx context.Context, tenantID, id string, next time.Time) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	next = normTime(next)
	var outcome error
	err := b.batch(func(tx *bolt.Tx) error {
		outcome = nil
		o := openOutbox(tx)
		cur, ok, err := o.get(tenantID, id)
		if err != nil {
			return err
		}
		if !ok || cur.State != DeliveryPending {
			outcome = fmt.Errorf("%w: no pending delivery %s", ErrNotFound, id)
			return nil
		}
		return o.reschedule(&cur, next)
	})
	if err != nil {
		return fmt.Errorf("store: postpone delivery: %w", err)
	}
	return outcome
}

// GetDelivery implements EventStore.
func (b *Bolt) GetDelivery(ctx context.Context, tenantID, id string) (Delivery, error) {
	if err := b.ready(ctx); err != nil {
		return Delivery{}, err
	}
	var d storedDelivery
	err := b.view(func(tx *bolt.Tx) error {
		var (
			found bool
			err   error
		)
		d, found, err = getDelivery(tx.Bucket(bucketDeliveries), tenantID, id)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	return d.Delivery, err
}

// eventDeliveries returns the deliveries of one event sorted by ID.
func eventDeliveries(tx *bolt.Tx, tenantID, eventID string) ([]storedDelivery, error) {
	prefix := lp(lp(nil, tenantID), eventID)
	var ids []string
	c := tx.Bucket(bucketDeliveryEvent).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id, rest, ok := cutLP(k[len(prefix):])
		if !ok || len(rest) != 0 {
			return nil, fmt.Errorf("store: deliveries by event: %w", errCorrupt)
		}
		ids = append(ids, string(id))
	}
	slices.Sort(ids)
	dl := tx.Bucket(bucketDeliveries)
	out := make([]storedDelivery, 0, len(ids))
	for _, id := range ids {
		d, ok, err := getDelivery(dl, tenantID, id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// DeliveriesForEvent implements EventStore: sorted by ID, which is the
// order they were made in. ErrNotFound if the tenant has no such event.
func (b *Bolt) DeliveriesForEvent(ctx context.Context, tenantID, eventID string) ([]Delivery, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	var out []Delivery
	err := b.view(func(tx *bolt.Tx) error {
		if sk := tx.Bucket(bucketEventIDs).Get(tenantIDKey(tenantID, eventID)); sk == nil {
			return ErrNotFound
		}
		ds, err := eventDeliveries(tx, tenantID, eventID)
		if err != nil {
			return err
		}
		out = make([]Delivery, len(ds))
		for i := range ds {
			out[i] = ds[i].Delivery
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListAttempts implements EventStore: in the order they were recorded.
// ErrNotFound if the tenant has no such delivery.
func (b *Bolt) ListAttempts(ctx context.Context, tenantID, deliveryID string) ([]Attempt, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	out := []Attempt{}
	err := b.view(func(tx *bolt.Tx) error {
		prefix := tenantIDKey(tenantID, deliveryID)
		if tx.Bucket(bucketDeliveries).Get(prefix) == nil {
			return ErrNotFound
		}
		c := tx.Bucket(bucketAttempts).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+8 {
				continue
			}
			var a Attempt
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("store: decode attempt: %w", err)
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReplayEvent implements EventStore. Beyond the interface's rules:
//   - a delivered or dead delivery whose endpoint was deleted stays as it
//     is; one whose endpoint still exists is replayed even if the endpoint
//     is now disabled or no longer matches (pausing is the worker's call);
//   - a replayed delivery loses LastStatus, LastError and DeliveredAt (its
//     attempts stay in ListAttempts) and is queued again at now like a new
//     one: on an ordered endpoint it carries OrderKey = the event's Subject
//     and waits, blocked, behind whatever the endpoint still owes for that
//     subject; it is never sent ahead of a delivery already in flight;
//   - it returns the event's live deliveries after the call, sorted by ID:
//     pending ones, and blocked ones queued behind another delivery.
//
// ErrNotFound if the tenant has no such event. A zero now is the current
// time.
func (b *Bolt) ReplayEvent(ctx context.Context, tenantID, eventID string, now time.Time) ([]Delivery, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	if now.IsZero() {
		now = time.Now()
	}
	now = normTime(now)
	var (
		out     []Delivery
		outcome error
	)
	err := b.batch(func(tx *bolt.Tx) error {
		out, outcome = []Delivery{}, nil
		ev, found, err := getEvent(tx, tenantID, eventID)
		if err != nil {
			return err
		}
		if !found {
			outcome = ErrNotFound
			return nil
		}
		endpoints, err := tenantEndpoints(tx, tenantID)
		if err != nil {
			return err
		}
		byID := make(map[string]*Endpoint, len(endpoints))
		for i := range endpoints {
			byID[endpoints[i].ID] = &endpoints[i]
		}
		existing, err := eventDeliveries(tx, tenantID, eventID)
		if err != nil {
			return err
		}
		o := openOutbox(tx)
		has := make(map[string]bool, len(existing))
		for i := range existing {
			d := &existing[i]
			has[d.EndpointID] = true
			switch d.State {
			case DeliveryPending, DeliveryBlocked:
				out = append(out, d.Delivery)
				continue
			}
			ep, ok := byID[d.EndpointID]
			if !ok {
				continue
			}
			d.Attempts, d.LastStatus, d.LastError, d.DeliveredAt = 0, 0, "", time.Time{}
			d.OrderKey = ""
			if ep.Ordered {
				d.OrderKey = ev.Subject
			}
			if err := o.enqueue(d, ep.Ordered, now); err != nil {
				return err
			}
			if err := o.put(d); err != nil {
				return err
			}
			out = append(out, d.Delivery)
		}
		for i := range endpoints {
			ep := &endpoints[i]
			if has[ep.ID] || !ep.Enabled || !EndpointMatches(ep.Types, ev.Type) {
				continue
			}
			d, err := o.create(&ev, ep, now)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		slices.SortFunc(out, func(a, b Delivery) int { return strings.Compare(a.ID, b.ID) })
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: replay event: %w", err)
	}
	if outcome != nil {
		return nil, outcome
	}
	return out, nil
}
