package store

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ---- shared by the event bridge

// idEncoding is base32hex in lower case, which sorts like the bytes it
// encodes.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// newID returns prefix followed by 26 characters: the base32hex of 8 bytes
// of wall-clock Unix nanoseconds and 8 random bytes (the runtime's ChaCha8
// generator). IDs made later sort later, to the clock's resolution; two IDs
// made in the same nanosecond collide with odds of 2^-64.
func newID(prefix string) string {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint64(raw[8:], rand.Uint64())
	b := make([]byte, len(prefix)+idEncoding.EncodedLen(len(raw)))
	copy(b, prefix)
	idEncoding.Encode(b[len(prefix):], raw[:])
	return string(b)
}

// A blob value is blobVersion, the uvarint length of the JSON metadata, the
// metadata, and then the body byte for byte. Keeping the body out of the
// JSON saves base64 on the ingress path and keeps event bodies exactly as
// given (encoding/json would compact and HTML-escape a json.RawMessage).
const blobVersion = 1

var errCorrupt = errors.New("store: corrupt value")

func appendBlob(dst, meta, body []byte) []byte {
	dst = append(dst, blobVersion)
	dst = binary.AppendUvarint(dst, uint64(len(meta)))
	dst = append(dst, meta...)
	return append(dst, body...)
}

func blobSize(meta, body []byte) int { return 1 + binary.MaxVarintLen64 + len(meta) + len(body) }

// splitBlob returns the parts of v; they alias v.
func splitBlob(v []byte) (meta, body []byte, err error) {
	if len(v) == 0 || v[0] != blobVersion {
		return nil, nil, errCorrupt
	}
	n, w := binary.Uvarint(v[1:])
	if w <= 0 || n > uint64(len(v)-1-w) {
		return nil, nil, errCorrupt
	}
	start := 1 + w
	return v[start : start+int(n)], v[start+int(n):], nil
}

// cloneBody copies a body out of the database; an empty one is nil.
func cloneBody(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

// cutLP splits a length-prefixed part (see lp) off the front of b.
func cutLP(b []byte) (part, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, false
	}
	return b[w : w+int(n)], b[w+int(n):], true
}

// List cursors of ListInbox and ListEvents: base64url of a kind byte and
// the big-endian seq of the last record returned. The kinds differ from
// each other and from the audit cursor's version byte, so a cursor of one
// list is refused by another.
const (
	cursorInbox  = 2
	cursorEvents = 3
)

func encodeListCursor(kind byte, seq uint64) string {
	return base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64([]byte{kind}, seq))
}

// decodeListCursor returns the seq below which the page starts; "" is 0.
func decodeListCursor(kind byte, s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 9 || b[0] != kind {
		return 0, fmt.Errorf("%w: malformed cursor", ErrInvalidQuery)
	}
	seq := binary.BigEndian.Uint64(b[1:])
	if seq == 0 {
		return 0, fmt.Errorf("%w: malformed cursor", ErrInvalidQuery)
	}
	return seq, nil
}

// checkDueLimit checks the limit of DueInbox and DueDeliveries.
func checkDueLimit(limit int) error {
	if limit < 1 {
		return fmt.Errorf("%w: limit %d must be positive", ErrInvalid, limit)
	}
	return nil
}

// ---- inbox

func tenantIDKey(tenantID, id string) []byte {
	return lp(lp(make([]byte, 0, len(tenantID)+len(id)+4), tenantID), id)
}

func inboxDueKey(t time.Time, tenantID string, seq uint64) []byte {
	b := timeKey(make([]byte, 0, 8+len(tenantID)+2+8), t)
	return binary.BigEndian.AppendUint64(lp(b, tenantID), seq)
}

func dedupKey(tenantID, provider, key string) []byte {
	b := make([]byte, 0, len(tenantID)+len(provider)+len(key)+6)
	return lp(lp(lp(b, tenantID), provider), key)
}

// encodeInbox encodes r without Seq, which follows from the key.
func encodeInbox(r *InboxRecord) ([]byte, error) {
	return encodeInboxWith(r, r.Body)
}

// An inbox value is a blob of version inboxVersion: its metadata is binary
// (appendInboxMeta), about half the size of the JSON of version 1, so that
// a webhook of 1.5 KB and its record still fit two to a page. Records
// written by schema 3 builds (version 1, JSON metadata) are read as well.
const inboxVersion = 2

func encodeInboxWith(r *InboxRecord, body []byte) ([]byte, error) {
	scratch := metaBufs.Get().(*[]byte)
	meta := appendInboxMeta((*scratch)[:0], r)
	val := make([]byte, 0, 1+binary.MaxVarintLen64+len(meta)+len(body))
	val = append(val, inboxVersion)
	val = binary.AppendUvarint(val, uint64(len(meta)))
	val = append(append(val, meta...), body...)
	*scratch = meta
	metaBufs.Put(scratch)
	return val, nil
}

// metaBufs holds scratch buffers for encoding metadata.
var metaBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// appendInboxMeta appends r without Seq and Body: its strings with a
// uvarint length each (lp), Attempts as a uvarint, its times as varint
// Unix microseconds (the store keeps microseconds; the zero time has one
// too), then Header (the number of keys, then per key the key, the number
// of values plus one, 0 for nil, and the values) and EventIDs (the
// number, then each). Every store time is UTC; decoding returns UTC.
func appendInboxMeta(b []byte, r *InboxRecord) []byte {
	for _, s := range [...]string{r.ID, r.TenantID, r.Provider, r.DedupKey, r.Method, r.RequestURI, r.CorrelationID, string(r.State), r.LastError} {
		b = lp(b, s)
	}
	b = binary.AppendUvarint(b, uint64(r.Attempts))
	for _, t := range [...]time.Time{r.ReceivedAt, r.NextAttemptAt, r.ProcessedAt} {
		b = binary.AppendVarint(b, t.UnixMicro())
	}
	b = binary.AppendUvarint(b, uint64(len(r.Header)))
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		b = lp(b, k)
		vs := r.Header[k]
		if vs == nil {
			b = append(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(vs))+1)
		for _, v := range vs {
			b = lp(b, v)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(r.EventIDs)))
	for _, id := range r.EventIDs {
		b = lp(b, id)
	}
	return b
}

// metaReader reads appendInboxMeta's fields; the first malformed one
// sets bad and makes every later read return a zero value.
type metaReader struct {
	b   []byte
	bad bool
}

func (m *metaReader) uvarint() uint64 {
	n, w := binary.Uvarint(m.b)
	if w <= 0 {
		m.bad, m.b = true, nil
		return 0
	}
	m.b = m.b[w:]
	return n
}

func (m *metaReader) string() string {
	part, rest, ok := cutLP(m.b)
	if !ok {
		m.bad, m.b = true, nil
		return ""
	}
	m.b = rest
	return string(part)
}

func (m *metaReader) time() time.Time {
	n, w := binary.Varint(m.b)
	if w <= 0 {
		m.bad, m.b = true, nil
		return time.Time{}
	}
	m.b = m.b[w:]
	return time.UnixMicro(n).UTC()
}

// count reads a number of items, each at least one byte long.
func (m *metaReader) count() int {
	n := m.uvarint()
	if n > uint64(len(m.b)) {
		m.bad, m.b = true, nil
		return 0
	}
	return int(n)
}

// decodeInboxMeta decodes appendInboxMeta's form into r.
func decodeInboxMeta(meta []byte, r *InboxRecord) error {
	m := metaReader{b: meta}
	r.ID, r.TenantID, r.Provider, r.DedupKey = m.string(), m.string(), m.string(), m.string()
	r.Method, r.RequestURI, r.CorrelationID = m.string(), m.string(), m.string()
	r.State, r.LastError = InboxState(m.string()), m.string()
	r.Attempts = int(m.uvarint())
	r.ReceivedAt, r.NextAttemptAt, r.ProcessedAt = m.time(), m.time(), m.time()
	if n := m.count(); n > 0 {
		r.Header = make(map[string][]string, n)
		for range n {
			k := m.string()
			var vs []string
			if nv := m.count(); nv > 0 {
				vs = make([]string, nv-1)
				for i := range vs {
					vs[i] = m.string()
				}
			}
			r.Header[k] = vs
		}
	}
	if n := m.count(); n > 0 {
		r.EventIDs = make([]string, n)
		for i := range r.EventIDs {
			r.EventIDs[i] = m.string()
		}
	}
	if m.bad || len(m.b) != 0 {
		return errCorrupt
	}
	return nil
}

// splitInbox returns the metadata and the body of an inbox value, and
// whether the metadata is JSON (version 1); they alias v.
func splitInbox(v []byte) (meta, body []byte, isJSON bool, err error) {
	if len(v) > 0 && v[0] == inboxVersion {
		n, w := binary.Uvarint(v[1:])
		if w <= 0 || n > uint64(len(v)-1-w) {
			return nil, nil, false, errCorrupt
		}
		start := 1 + w
		return v[start : start+int(n)], v[start+int(n):], false, nil
	}
	meta, body, err = splitBlob(v)
	return meta, body, true, err
}

// decodeInbox decodes a stored record; withBody false leaves Body nil.
func decodeInbox(v []byte, seq uint64, withBody bool) (InboxRecord, error) {
	meta, body, isJSON, err := splitInbox(v)
	if err != nil {
		return InboxRecord{}, fmt.Errorf("store: decode inbox record: %w", err)
	}
	var r InboxRecord
	if isJSON {
		err = json.Unmarshal(meta, &r)
	} else {
		err = decodeInboxMeta(meta, &r)
	}
	if err != nil {
		return InboxRecord{}, fmt.Errorf("store: decode inbox record: %w", err)
	}
	r.Seq = seq
	if withBody {
		r.Body = cloneBody(body)
	}
	return r, nil
}

// inboxRef is one stored inbox record inside a transaction.
type inboxRef struct {
	tb  *bolt.Bucket // the tenant's inbox bucket
	sk  []byte       // the record's key in tb
	seq uint64
	val []byte // the stored value; valid until the transaction ends
}

func findInbox(tx *bolt.Tx, tenantID, id string) (inboxRef, bool) {
	sk := tx.Bucket(bucketInboxIDs).Get(tenantIDKey(tenantID, id))
	if len(sk) != 8 {
		return inboxRef{}, false
	}
	tb := tx.Bucket(bucketInbox).Bucket([]byte(tenantID))
	if tb == nil {
		return inboxRef{}, false
	}
	v := tb.Get(sk)
	if v == nil {
		return inboxRef{}, false
	}
	return inboxRef{tb: tb, sk: bytes.Clone(sk), seq: binary.BigEndian.Uint64(sk), val: v}, true
}

// rewrite stores r's metadata over the record, keeping the stored body, and
// moves the record in the due index to match r's State and NextAttemptAt.
// old is the record as it was stored.
func (ref inboxRef) rewrite(tx *bolt.Tx, old, r *InboxRecord) error {
	_, body, _, err := splitInbox(ref.val)
	if err != nil {
		return fmt.Errorf("store: decode inbox record: %w", err)
	}
	val, err := encodeInboxWith(r, body)
	if err != nil {
		return err
	}
	due := tx.Bucket(bucketInboxDue)
	if old.State == InboxPending {
		if err := due.Delete(inboxDueKey(old.NextAttemptAt, old.TenantID, ref.seq)); err != nil {
			return err
		}
	}
	if r.State == InboxPending {
		if err := due.Put(inboxDueKey(r.NextAttemptAt, r.TenantID, ref.seq), []byte{}); err != nil {
			return err
		}
	}
	return ref.tb.Put(ref.sk, val)
}

// AcceptWebhook implements EventStore. The dedup check and the insert share
// one transaction, group committed with concurrent calls (see committer). The
// record is encoded before the commit; Body and Header are copied, so the
// caller may reuse them once it returns. The dedup key is remembered with
// ReceivedAt, which is what SweepDedup compares. A caller-chosen ID that the
// tenant already has is ErrExists.
func (b *Bolt) AcceptWebhook(ctx context.Context, r InboxRecord) (InboxRecord, bool, error) {
	if err := b.ready(ctx); err != nil {
		return InboxRecord{}, false, err
	}
	if r.TenantID == "" || r.Provider == "" {
		return InboxRecord{}, false, fmt.Errorf("%w: inbox record needs a tenant and a provider", ErrInvalid)
	}
	if r.ID == "" {
		r.ID = newID("wh_")
	}
	idk := tenantIDKey(r.TenantID, r.ID)
	if err := checkKey("inbox id", idk); err != nil {
		return InboxRecord{}, false, err
	}
	var dk, dv, dtk []byte
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = time.Now()
	}
	r.ReceivedAt = normTime(r.ReceivedAt)
	if r.DedupKey != "" {
		dk = dedupKey(r.TenantID, r.Provider, r.DedupKey)
		if err := checkKey("dedup key", dk); err != nil {
			return InboxRecord{}, false, err
		}
		dv = append(timeKey(make([]byte, 0, 8+len(r.ID)), r.ReceivedAt), r.ID...)
		dtk = append(timeKey(make([]byte, 0, 8+len(dk)), r.ReceivedAt), dk...)
	}
	r.Seq, r.State, r.Attempts, r.NextAttemptAt = 0, InboxPending, 0, r.ReceivedAt
	r.LastError, r.EventIDs, r.ProcessedAt = "", nil, time.Time{}
	val, err := encodeInbox(&r)
	if err != nil {
		return InboxRecord{}, false, err
	}
	tenant, _, _ := cutLP(idk) // the tenant id, without a copy

	// The outputs, reset on every run; one struct is one allocation.
	var out struct {
		seq     uint64
		dup     bool
		earlier InboxRecord
		outcome error
	}
	err = b.batch(func(tx *bolt.Tx) error {
		out.seq, out.dup, out.earlier, out.outcome = 0, false, InboxRecord{}, nil
		if dk != nil {
			if v := tx.Bucket(bucketDedup).Get(dk); v != nil {
				if len(v) < 8 {
					return fmt.Errorf("store: dedup entry: %w", errCorrupt)
				}
				out.dup = true
				ref, ok := findInbox(tx, r.TenantID, string(v[8:]))
				if !ok {
					return fmt.Errorf("store: dedup entry names a missing inbox record: %w", errCorrupt)
				}
				var err error
				out.earlier, err = decodeInbox(ref.val, ref.seq, true)
				return err
			}
		}
		ids := tx.Bucket(bucketInboxIDs)
		if ids.Get(idk) != nil {
			out.outcome = fmt.Errorf("%w: inbox record %s", ErrExists, r.ID)
			return nil
		}
		tb, err := tx.Bucket(bucketInbox).CreateBucketIfNotExists(tenant)
		if err != nil {
			return err
		}
		// These keys grow with time (seq, time-sorted ids, due and accept
		// times): full pages, as bbolt's default half-full split would
		// write twice as many.
		tb.FillPercent, ids.FillPercent = 1, 1
		tx.Bucket(bucketInboxDue).FillPercent, tx.Bucket(bucketDedupTime).FillPercent = 1, 1
		seq, err := tb.NextSequence()
		if err != nil {
			return err
		}
		out.seq = seq
		sk := seqKey(seq)
		if err := tb.Put(sk, val); err != nil {
			return err
		}
		if err := ids.Put(idk, sk); err != nil {
			return err
		}
		if err := tx.Bucket(bucketInboxDue).Put(inboxDueKey(r.NextAttemptAt, r.TenantID, seq), []byte{}); err != nil {
			return err
		}
		if dk != nil {
			if err := tx.Bucket(bucketDedup).Put(dk, dv); err != nil {
				return err
			}
			return tx.Bucket(bucketDedupTime).Put(dtk, []byte{})
		}
		return nil
	})
	if err != nil {
		return InboxRecord{}, false, fmt.Errorf("store: accept webhook: %w", err)
	}
	if out.outcome != nil {
		return InboxRecord{}, false, out.outcome
	}
	if out.dup {
		return out.earlier, true, nil
	}
	r.Seq = out.seq
	return r, false, nil
}

// GetInbox implements EventStore.
func (b *Bolt) GetInbox(ctx context.Context, tenantID, id string) (InboxRecord, error) {
	if err := b.ready(ctx); err != nil {
		return InboxRecord{}, err
	}
	var r InboxRecord
	err := b.view(func(tx *bolt.Tx) error {
		ref, ok := findInbox(tx, tenantID, id)
		if !ok {
			return ErrNotFound
		}
		var err error
		r, err = decodeInbox(ref.val, ref.seq, true)
		return err
	})
	return r, err
}

// DueInbox implements EventStore: it walks the due index, which holds the
// pending records only, ordered by NextAttemptAt, then tenant, then seq. A
// limit below 1 is ErrInvalid.
func (b *Bolt) DueInbox(ctx context.Context, now time.Time, limit int) ([]InboxRecord, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	if err := checkDueLimit(limit); err != nil {
		return nil, err
	}
	end := timeKey(nil, normTime(now))
	out := []InboxRecord{}
	err := b.view(func(tx *bolt.Tx) error {
		inbox := tx.Bucket(bucketInbox)
		c := tx.Bucket(bucketInboxDue).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) < 8 || bytes.Compare(k[:8], end) > 0 {
				break
			}
			tenant, sk, ok := cutLP(k[8:])
			if !ok || len(sk) != 8 {
				return fmt.Errorf("store: inbox due index: %w", errCorrupt)
			}
			tb := inbox.Bucket(tenant)
			if tb == nil {
				return fmt.Errorf("store: inbox due index names a missing tenant: %w", errCorrupt)
			}
			v := tb.Get(sk)
			if v == nil {
				return fmt.Errorf("store: inbox due index names a missing record: %w", errCorrupt)
			}
			r, err := decodeInbox(v, binary.BigEndian.Uint64(sk), true)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// changeInbox reads the tenant's record, lets change edit it and writes the
// result, keeping the body and the due index in step. change returns an
// outcome (the record is not in the state it needs), and nothing is written.
// The returned record has its Body only when withBody is set.
func (b *Bolt) changeInbox(ctx context.Context, what, tenantID, id string, withBody bool, change func(*InboxRecord) error) (InboxRecord, error) {
	if err := b.ready(ctx); err != nil {
		return InboxRecord{}, err
	}
	var (
		out     InboxRecord
		outcome error
	)
	err := b.batch(func(tx *bolt.Tx) error {
		out, outcome = InboxRecord{}, nil
		ref, ok := findInbox(tx, tenantID, id)
		if !ok {
			outcome = ErrNotFound
			return nil
		}
		old, err := decodeInbox(ref.val, ref.seq, withBody)
		if err != nil {
			return err
		}
		r := old
		if outcome = change(&r); outcome != nil {
			return nil
		}
		if err := ref.rewrite(tx, &old, &r); err != nil { // rewrite keeps the stored body
			return err
		}
		out = r
		return nil
	})
	if err != nil {
		return InboxRecord{}, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, outcome
}

func notInState(state InboxState) error {
	return fmt.Errorf("%w: no %s inbox record with that id", ErrNotFound, state)
}

// RetryInbox implements EventStore.
func (b *Bolt) RetryInbox(ctx context.Context, tenantID, id string, next time.Time, lastErr string) error {
	next = normTime(next)
	_, err := b.changeInbox(ctx, "retry inbox", tenantID, id, false, func(r *InboxRecord) error {
		if r.State != InboxPending {
			return notInState(InboxPending)
		}
		r.Attempts++
		r.LastError, r.NextAttemptAt = lastErr, next
		return nil
	})
	return err
}

// QuarantineInbox implements EventStore. ErrNotFound if the record is not
// pending. NextAttemptAt and Attempts are kept as they were.
func (b *Bolt) QuarantineInbox(ctx context.Context, tenantID, id, reason string) error {
	_, err := b.changeInbox(ctx, "quarantine inbox", tenantID, id, false, func(r *InboxRecord) error {
		if r.State != InboxPending {
			return notInState(InboxPending)
		}
		r.State, r.LastError = InboxQuarantined, reason
		return nil
	})
	return err
}

// ReleaseQuarantine implements EventStore. Attempts is kept: a quarantine
// is a verdict on the body, not on the retry budget. The returned record
// has its Body.
func (b *Bolt) ReleaseQuarantine(ctx context.Context, tenantID, id string, now time.Time) (InboxRecord, error) {
	now = normTime(now)
	return b.changeInbox(ctx, "release quarantine", tenantID, id, true, func(r *InboxRecord) error {
		if r.State != InboxQuarantined {
			return notInState(InboxQuarantined)
		}
		r.State, r.NextAttemptAt = InboxPending, now
		return nil
	})
}

// inboxFilter is the part of a JSON record ListInbox filters on.
type inboxFilter struct {
	State InboxState `json:"state"`
}

// inboxStateOf reads the State of a stored record without decoding the
// rest.
func inboxStateOf(v []byte) (InboxState, error) {
	meta, _, isJSON, err := splitInbox(v)
	if err != nil {
		return "", err
	}
	if isJSON {
		var f inboxFilter
		err := json.Unmarshal(meta, &f)
		return f.State, err
	}
	for range 7 { // the strings before State
		var ok bool
		if _, meta, ok = cutLP(meta); !ok {
			return "", errCorrupt
		}
	}
	st, _, ok := cutLP(meta)
	if !ok {
		return "", errCorrupt
	}
	return InboxState(st), nil
}

// ListInbox implements EventStore: newest (highest Seq) first. A state
// filter walks the tenant's inbox, so a rare state reads far.
func (b *Bolt) ListInbox(ctx context.Context, tenantID string, state InboxState, q ListQuery) ([]InboxRecord, string, error) {
	if err := b.ready(ctx); err != nil {
		return nil, "", err
	}
	if err := q.Validate(); err != nil {
		return nil, "", err
	}
	switch state {
	case "", InboxPending, InboxProcessed, InboxQuarantined:
	default:
		return nil, "", fmt.Errorf("%w: unknown inbox state %q", ErrInvalidQuery, string(state))
	}
	below, err := decodeListCursor(cursorInbox, q.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := q.limit()
	out := []InboxRecord{}
	more := false
	err = b.view(func(tx *bolt.Tx) error {
		if tenantID == "" {
			return nil
		}
		tb := tx.Bucket(bucketInbox).Bucket([]byte(tenantID))
		if tb == nil {
			return nil
		}
		c := tb.Cursor()
		for k, v := seekBefore(c, nil, below); k != nil; k, v = c.Prev() {
			if len(k) != 8 || v == nil {
				continue
			}
			if state != "" {
				got, err := inboxStateOf(v)
				if err != nil {
					return fmt.Errorf("store: decode inbox record: %w", err)
				}
				if got != state {
					continue
				}
			}
			if len(out) == limit {
				more = true
				return nil
			}
			r, err := decodeInbox(v, binary.BigEndian.Uint64(k), true)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		next = encodeListCursor(cursorInbox, out[len(out)-1].Seq)
	}
	return out, next, nil
}

// SweepDedup implements EventStore, in transactions of at most sweepChunk
// keys like SweepIdempotent. The inbox records themselves stay.
func (b *Bolt) SweepDedup(ctx context.Context, before time.Time) (int, error) {
	return b.sweepByTime(ctx, bucketDedupTime, before, "dedup", func(tx *bolt.Tx, dk, stamp []byte) (bool, error) {
		db := tx.Bucket(bucketDedup)
		// Only a key accepted at that time goes (not one re-accepted since).
		if v := db.Get(dk); len(v) < 8 || !bytes.Equal(v[:8], stamp) {
			return false, nil
		}
		return true, db.Delete(dk)
	})
}
