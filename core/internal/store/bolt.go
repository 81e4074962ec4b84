package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the bbolt layout this build reads and writes. Opening a
// file of an older version migrates it (see migrate); a newer one is
// refused.
//
//   - 1: the first layout.
//   - 2: audit records carry PrevHash and Hash; the admin buckets. A build
//     of version 1 would append unchained records, so it must refuse the
//     file, and does.
//   - 3: the resource buckets (deliveries, quotes, messages). A build of
//     version 2 would not keep them in step with the events it records.
//   - 4: inbox records are written with binary metadata (bolt_inbox.go);
//     those of version 3 are still read. A build of version 3 could not
//     read the new ones.
const SchemaVersion = 4

// Bucket names. Every value is JSON unless said otherwise.
var (
	bucketMeta        = []byte("meta")                   // schema_version, open marker
	bucketPayments    = []byte("payments")               // lp(tenant) lp(id) → Payment
	bucketByProvider  = []byte("payments_by_provider")   // lp(provider) lp(provider id) → payments key
	bucketIdem        = []byte("idempotency")            // lp(tenant) lp(scope) lp(key) → IdemRecord
	bucketIdemCreated = []byte("idempotency_by_created") // be64(created µs) idempotency key → empty
	bucketAudit       = []byte("audit")                  // tenant (bucket) → be64(seq) → AuditRecord (hash chained)
	bucketAuditByRes  = []byte("audit_by_resource")      // lp(tenant) lp(resource id) be64(seq) → empty

	// The event bridge (bolt_inbox.go, bolt_events.go, bolt_outbox.go).
	// "blob" values are a version byte, a uvarint length, that many bytes of
	// JSON metadata and then the body, byte for byte. Index values are empty
	// unless said otherwise.
	bucketInbox         = []byte("inbox")               // tenant (bucket) → be64(seq) → blob(InboxRecord)
	bucketInboxIDs      = []byte("inbox_ids")           // lp(tenant) lp(id) → be64(seq)
	bucketInboxDue      = []byte("inbox_due")           // time(NextAttemptAt) lp(tenant) be64(seq); pending records only
	bucketDedup         = []byte("dedup")               // lp(tenant) lp(provider) lp(dedup key) → time(ReceivedAt) inbox id
	bucketDedupTime     = []byte("dedup_by_time")       // time(ReceivedAt) dedup key
	bucketEvents        = []byte("events")              // tenant (bucket) → be64(seq) → blob(Event)
	bucketEventIDs      = []byte("event_ids")           // lp(tenant) lp(id) → be64(seq)
	bucketEventsByPay   = []byte("events_by_payment")   // lp(tenant) lp(payment id) be64(seq)
	bucketEndpoints     = []byte("endpoints")           // lp(tenant) lp(id) → Endpoint
	bucketDeliveries    = []byte("deliveries")          // lp(tenant) lp(id) → storedDelivery
	bucketDeliveryDue   = []byte("deliveries_due")      // time(NextAttemptAt) lp(tenant) lp(id); pending deliveries only
	bucketDeliveryEvent = []byte("deliveries_by_event") // lp(tenant) lp(event id) lp(id)
	bucketDeliveryQueue = []byte("delivery_queue")      // lp(tenant) lp(endpoint) lp(order key) be64(queue seq) → delivery id; pending and blocked only
	bucketAttempts      = []byte("attempts")            // lp(tenant) lp(delivery id) be64(n-th recorded) → Attempt

	// What operators manage (bolt_admin.go).
	bucketTenants      = []byte("tenants")        // tenant id → TenantRecord
	bucketAPIKeys      = []byte("api_keys")       // lp(tenant) lp(key id) → APIKeyRecord
	bucketAPIKeyIDs    = []byte("api_key_ids")    // key id → its api_keys key
	bucketAPIKeyHashes = []byte("api_key_hashes") // hash → key id; revoked keys' hashes stay
	bucketCredentials  = []byte("credentials")    // lp(tenant) lp(provider) lp(field) → blob(CredentialRecord, Sealed)

	keySchemaVersion = []byte("schema_version") // decimal ASCII
	keyOpen          = []byte("open")           // present while a process has the file open
)

var dataBuckets = [][]byte{
	bucketPayments, bucketByProvider, bucketIdem, bucketIdemCreated, bucketAudit, bucketAuditByRes,
	bucketInbox, bucketInboxIDs, bucketInboxDue, bucketDedup, bucketDedupTime,
	bucketEvents, bucketEventIDs, bucketEventsByPay, bucketEndpoints,
	bucketDeliveries, bucketDeliveryDue, bucketDeliveryEvent, bucketDeliveryQueue, bucketAttempts,
	bucketTenants, bucketAPIKeys, bucketAPIKeyIDs, bucketAPIKeyHashes, bucketCredentials,
	bucketResources, bucketResByProvider, bucketResDue, bucketResCreated,
}

// BoltOptions configures OpenBolt. The zero value means the documented
// defaults.
type BoltOptions struct {
	// Timeout is how long OpenBolt waits for the file lock another process
	// holds before failing with ErrLocked. Zero means 1s.
	Timeout time.Duration
	// Logger receives start-up and recovery messages. Nil discards them.
	Logger *slog.Logger
	// BatchDelay is the longest a write waits for others to share its
	// commit when no commit is running; writes queued during a commit go
	// into the next one at once, so under load the commits' own length
	// (two fdatasyncs) does the batching. Zero means 250µs: on the
	// reference VM that gave the webhook ingress more accepts per second
	// and lower latency than 1 ms, which made one large commit wait for
	// stragglers (see README, Performance).
	BatchDelay time.Duration
	// BatchSize is how many writes a commit takes at most; that many
	// queued start a commit at once. Zero means 256.
	BatchSize int
}

func (o *BoltOptions) setDefaults() {
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BatchDelay == 0 {
		o.BatchDelay = 250 * time.Microsecond
	}
	if o.BatchSize == 0 {
		o.BatchSize = 256
	}
}

// Validate rejects negative settings.
func (o BoltOptions) Validate() error {
	if o.Timeout < 0 || o.BatchDelay < 0 || o.BatchSize < 0 {
		return fmt.Errorf("%w: negative bolt option", ErrInvalid)
	}
	return nil
}

// Bolt is the Store on a single bbolt file. One process at a time owns the
// file (an exclusive flock); every commit is fsynced before the method that
// made it returns, and concurrent writes share commits (see committer).
type Bolt struct {
	db     *bolt.DB
	commit *committer
	path   string
	log    *slog.Logger
	closed atomic.Bool
}

var _ Store = (*Bolt)(nil)

// lockedError is returned when the file lock cannot be taken in time.
type lockedError struct {
	path string
	err  error
}

func (e *lockedError) Error() string {
	return "store: another process holds " + e.path + " (is another gateway running?)"
}

func (e *lockedError) Unwrap() []error { return []error{ErrLocked, e.err} }

// OpenBolt opens (creating if needed) the database at path: the parent
// directory with mode 0700, the file with 0600. It fails with an error
// wrapping ErrLocked when another process holds the file for longer than
// opts.Timeout, and with ErrSchema when the file was written by a newer build.
// After an unclean shutdown it runs bbolt's consistency check and refuses a
// damaged file.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, fmt.Errorf("%w: empty database path", ErrInvalid)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create directory: %w", err)
	}
	// Address space, not memory: a file that grows within the mapping is
	// not remapped, and a remap waits for every read transaction and holds
	// up every commit meanwhile.
	mmapSize := 64 << 20
	if strconv.IntSize == 64 {
		mmapSize = 1 << 30
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         opts.Timeout,
		NoSync:          false,
		NoGrowSync:      false,
		InitialMmapSize: mmapSize,
		FreelistType:    bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, &lockedError{path: path, err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// The file grows in steps of this size, each with an fsync: fewer,
	// larger steps keep those fsyncs out of most commits. The space is
	// allocated sparsely.
	db.AllocSize = 64 << 20
	if db.NoSync || db.NoGrowSync {
		_ = db.Close()
		return nil, errors.New("store: bbolt opened without fsync")
	}
	b := &Bolt{db: db, path: path, log: opts.Logger}
	if err := b.init(); err != nil {
		_ = db.Close()
		return nil, err
	}
	b.commit = newCommitter(db, opts.BatchDelay, opts.BatchSize)
	return b, nil
}

// init creates or checks the schema, migrates an older one and marks the
// file open, all in one transaction. A file that was still marked open was
// not closed cleanly, and is checked.
func (b *Bolt) init() error {
	var (
		unclean  bool
		from     int
		migrated migration
	)
	err := b.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			var other bool
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { other = true; return nil })
			if other {
				return fmt.Errorf("%w: %s is not a PipeCore database (no meta bucket)", ErrSchema, b.path)
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return err
			}
		}
		v, err := strconv.Atoi(string(meta.Get(keySchemaVersion)))
		switch {
		case err != nil || v < 1:
			return fmt.Errorf("%w: %s has a malformed schema_version %q", ErrSchema, b.path, meta.Get(keySchemaVersion))
		case v > SchemaVersion:
			return fmt.Errorf("%w: %s has schema version %d, newer than this build supports (%d); run a newer gateway", ErrSchema, b.path, v, SchemaVersion)
		}
		for _, name := range dataBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if from = v; v < SchemaVersion {
			if migrated, err = migrate(tx, v); err != nil {
				return fmt.Errorf("migrate from schema %d: %w", v, err)
			}
			if err := meta.Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return err
			}
		}
		unclean = meta.Get(keyOpen) != nil
		return meta.Put(keyOpen, []byte(strconv.Itoa(os.Getpid())))
	})
	if err != nil {
		if errors.Is(err, ErrSchema) {
			return err
		}
		return fmt.Errorf("store: initialise %s: %w", b.path, err)
	}
	if from < SchemaVersion {
		b.log.Info("store: migrated the database", "path", b.path, "from", from, "to", SchemaVersion,
			"audit_tenants", migrated.auditTenants, "audit_records", migrated.auditRecords)
	}
	if unclean {
		b.log.Warn("store: database was not closed cleanly; checking it", "path", b.path)
		if err := b.check(); err != nil {
			return err
		}
		b.log.Info("store: consistency check passed", "path", b.path)
	}
	b.log.Info("store: opened", "path", b.path, "schema_version", SchemaVersion)
	return nil
}

// migration counts what migrate changed.
type migration struct {
	auditTenants, auditRecords int
}

// migrate brings a file of schema version from up to SchemaVersion inside
// init's transaction: all of it or nothing. The new buckets already exist.
//
// From 1: every audit record gets PrevHash and Hash, chained in seq order
// per tenant from AuditGenesis. The chain then vouches for those records
// from the migration on; what happened to them before is not known. A gap
// in an old log is chained over and VerifyAudit reports it.
func migrate(tx *bolt.Tx, from int) (migration, error) {
	var m migration
	if from >= 2 {
		return m, nil
	}
	ab := tx.Bucket(bucketAudit)
	var tenants [][]byte
	if err := ab.ForEachBucket(func(k []byte) error {
		tenants = append(tenants, bytes.Clone(k))
		return nil
	}); err != nil {
		return m, err
	}
	for _, tenant := range tenants {
		tb := ab.Bucket(tenant)
		var keys [][]byte // collected first: a Put moves a cursor
		if err := tb.ForEach(func(k, _ []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		}); err != nil {
			return m, err
		}
		prev := AuditGenesis
		for _, k := range keys {
			v := tb.Get(k)
			if len(k) != 8 || v == nil {
				return m, fmt.Errorf("audit log of %q holds a key that is not a seq: %w", tenant, errCorrupt)
			}
			r, err := decodeAudit(v, binary.BigEndian.Uint64(k))
			if err != nil {
				return m, err
			}
			if err := compactAuditPayloads(&r); err != nil {
				return m, err
			}
			r.PrevHash = prev
			r.Hash = AuditHash(&r)
			val, err := encodeAudit(&r)
			if err != nil {
				return m, err
			}
			if err := tb.Put(k, val); err != nil {
				return m, err
			}
			prev = r.Hash
			m.auditRecords++
		}
		m.auditTenants++
	}
	return m, nil
}

// check runs bbolt's consistency check and reports the first few problems.
func (b *Bolt) check() error {
	var problems []error
	err := b.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if len(problems) < 10 {
				problems = append(problems, err)
			}
		}
		return nil
	})
	if err == nil && len(problems) > 0 {
		err = errors.Join(problems...)
	}
	if err != nil {
		return fmt.Errorf("store: %s failed its consistency check: %w", b.path, err)
	}
	return nil
}

// Path returns the database file's path.
func (b *Bolt) Path() string { return b.path }

// Close clears the open marker and releases the file. A second Close
// returns ErrClosed.
func (b *Bolt) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	b.commit.stop()
	err := b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyOpen) })
	if err != nil {
		b.log.Error("store: clear open marker", "path", b.path, "err", err)
	}
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", b.path, err)
	}
	return nil
}

// Ping reads the schema version.
func (b *Bolt) Ping(ctx context.Context) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	return b.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get(keySchemaVersion) == nil {
			return fmt.Errorf("%w: schema_version missing", ErrSchema)
		}
		return nil
	})
}

// ready is the common entry check of every method.
func (b *Bolt) ready(ctx context.Context) error {
	if b.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// batch runs fn in a shared, fsynced write transaction (group commit, see
// committer). fn may run more than once and must only touch tx and
// (re)assign its outputs.
func (b *Bolt) batch(fn func(*bolt.Tx) error) error {
	return b.mapErr(b.commit.do(fn))
}

// update runs fn in a write transaction of its own, exactly once.
func (b *Bolt) update(fn func(*bolt.Tx) error) error {
	return b.mapErr(b.db.Update(fn))
}

func (b *Bolt) view(fn func(*bolt.Tx) error) error {
	return b.mapErr(b.db.View(fn))
}

func (b *Bolt) mapErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// ---- keys

// lp appends s with a uvarint length prefix, so composite keys are
// unambiguous whatever bytes their parts hold.
func lp(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func paymentKey(tenantID, id string) []byte {
	return lp(lp(make([]byte, 0, len(tenantID)+len(id)+4), tenantID), id)
}

func providerKey(provider, providerPaymentID string) []byte {
	return lp(lp(make([]byte, 0, len(provider)+len(providerPaymentID)+4), provider), providerPaymentID)
}

func idemKey(k IdemKey) []byte {
	b := make([]byte, 0, len(k.TenantID)+len(k.Scope)+len(k.Key)+6)
	return lp(lp(lp(b, k.TenantID), k.Scope), k.Key)
}

// timeKey is a sortable 8-byte encoding of t (µs since the epoch, sign bit
// flipped so negative times sort first).
func timeKey(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixMicro())^(1<<63))
}

func createdKey(t time.Time, key []byte) []byte {
	return append(timeKey(make([]byte, 0, 8+len(key)), t), key...)
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// maxKey leaves room for the index prefixes under bbolt's key size limit.
const maxKey = bolt.MaxKeySize - 64

func checkKey(what string, k []byte) error {
	if len(k) > maxKey {
		return fmt.Errorf("%w: %s too long", ErrInvalid, what)
	}
	return nil
}

// maxPart bounds each part of the delivery queue key (tenant, endpoint id,
// event subject), which combines three caller-chosen strings.
const maxPart = 1024

func checkPart(what, s string) error {
	if len(s) > maxPart {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, what, maxPart)
	}
	return nil
}

// ---- payments

// CreatePayment implements Store.
func (b *Bolt) CreatePayment(ctx context.Context, p Payment) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	if p.TenantID == "" || p.ID == "" {
		return fmt.Errorf("%w: payment needs a tenant and an id", ErrInvalid)
	}
	pk := paymentKey(p.TenantID, p.ID)
	if err := checkKey("payment id", pk); err != nil {
		return err
	}
	var xk []byte
	if p.ProviderPaymentID != "" {
		xk = providerKey(p.Provider, p.ProviderPaymentID)
		if err := checkKey("provider payment id", xk); err != nil {
			return err
		}
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = time.Now()
	}
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = p.CreatedAt
	}
	p.CreatedAt, p.UpdatedAt = normTime(p.CreatedAt), normTime(p.UpdatedAt)
	val, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("store: encode payment: %w", err)
	}

	var outcome error
	err = b.batch(func(tx *bolt.Tx) error {
		outcome = nil
		pb, xb := tx.Bucket(bucketPayments), tx.Bucket(bucketByProvider)
		if pb.Get(pk) != nil {
			outcome = fmt.Errorf("%w: payment %s", ErrExists, p.ID)
			return nil
		}
		if xk != nil {
			if xb.Get(xk) != nil {
				outcome = fmt.Errorf("%w: provider payment id %s/%s", ErrExists, p.Provider, p.ProviderPaymentID)
				return nil
			}
			if err := xb.Put(xk, pk); err != nil {
				return err
			}
		}
		return pb.Put(pk, val)
	})
	if err != nil {
		return fmt.Errorf("store: create payment: %w", err)
	}
	return outcome
}

// GetPayment implements Store.
func (b *Bolt) GetPayment(ctx context.Context, tenantID, id string) (Payment, error) {
	if err := b.ready(ctx); err != nil {
		return Payment{}, err
	}
	var p Payment
	err := b.view(func(tx *bolt.Tx) error {
		return getPayment(tx, paymentKey(tenantID, id), &p)
	})
	return p, err
}

func getPayment(tx *bolt.Tx, pk []byte, p *Payment) error {
	v := tx.Bucket(bucketPayments).Get(pk)
	if v == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(v, p); err != nil {
		return fmt.Errorf("store: decode payment: %w", err)
	}
	return nil
}

// UpdatePayment implements Store. fn runs inside a shared write transaction
// and may run more than once (see Store).
func (b *Bolt) UpdatePayment(ctx context.Context, tenantID, id string, fn func(*Payment) error) (Payment, error) {
	if err := b.ready(ctx); err != nil {
		return Payment{}, err
	}
	pk := paymentKey(tenantID, id)
	now := normTime(time.Now())

	var (
		out     Payment
		outcome error
	)
	err := b.batch(func(tx *bolt.Tx) error {
		var err error
		out, outcome, err = updatePaymentTx(tx, pk, now, fn)
		return err
	})
	if err != nil {
		return Payment{}, fmt.Errorf("store: update payment: %w", err)
	}
	if outcome != nil {
		return Payment{}, outcome
	}
	return out, nil
}

// updatePaymentTx is UpdatePayment inside tx. An outcome (ErrNotFound, fn's
// error, ErrInvalid, ErrExists) is returned before anything is written; err
// is a storage failure.
func updatePaymentTx(tx *bolt.Tx, pk []byte, now time.Time, fn func(*Payment) error) (out Payment, outcome, err error) {
	var p Payment
	if err := getPayment(tx, pk, &p); err != nil {
		if errors.Is(err, ErrNotFound) {
			return Payment{}, err, nil
		}
		return Payment{}, nil, err
	}
	old := p
	if err := fn(&p); err != nil {
		return Payment{}, err, nil
	}
	if p.TenantID != old.TenantID || p.ID != old.ID || !p.CreatedAt.Equal(old.CreatedAt) {
		return Payment{}, fmt.Errorf("%w: update must not change a payment's tenant, id or created_at", ErrInvalid), nil
	}
	p.CreatedAt, p.UpdatedAt = old.CreatedAt, now

	if p.Provider != old.Provider || p.ProviderPaymentID != old.ProviderPaymentID {
		xb := tx.Bucket(bucketByProvider)
		var xk []byte
		if p.ProviderPaymentID != "" {
			xk = providerKey(p.Provider, p.ProviderPaymentID)
			if len(xk) > maxKey {
				return Payment{}, fmt.Errorf("%w: provider payment id too long", ErrInvalid), nil
			}
			if cur := xb.Get(xk); cur != nil && !bytes.Equal(cur, pk) {
				return Payment{}, fmt.Errorf("%w: provider payment id %s/%s", ErrExists, p.Provider, p.ProviderPaymentID), nil
			}
		}
		if old.ProviderPaymentID != "" {
			ok := providerKey(old.Provider, old.ProviderPaymentID)
			if bytes.Equal(xb.Get(ok), pk) {
				if err := xb.Delete(ok); err != nil {
					return Payment{}, nil, err
				}
			}
		}
		if xk != nil {
			if err := xb.Put(xk, pk); err != nil {
				return Payment{}, nil, err
			}
		}
	}
	val, err := json.Marshal(p)
	if err != nil {
		return Payment{}, nil, fmt.Errorf("store: encode payment: %w", err)
	}
	if err := tx.Bucket(bucketPayments).Put(pk, val); err != nil {
		return Payment{}, nil, err
	}
	return p, nil, nil
}

// PaymentByProviderID implements Store.
func (b *Bolt) PaymentByProviderID(ctx context.Context, provider, providerPaymentID string) (Payment, error) {
	if err := b.ready(ctx); err != nil {
		return Payment{}, err
	}
	if providerPaymentID == "" {
		return Payment{}, ErrNotFound
	}
	var p Payment
	err := b.view(func(tx *bolt.Tx) error {
		pk := tx.Bucket(bucketByProvider).Get(providerKey(provider, providerPaymentID))
		if pk == nil {
			return ErrNotFound
		}
		return getPayment(tx, pk, &p)
	})
	return p, err
}

// ---- idempotency

func validIdemKey(k IdemKey) error {
	if k.TenantID == "" || k.Scope == "" || k.Key == "" {
		return fmt.Errorf("%w: idempotency key needs a tenant, scope and key", ErrInvalid)
	}
	return checkKey("idempotency key", idemKey(k))
}

func getIdem(b *bolt.Bucket, k []byte) (IdemRecord, bool, error) {
	v := b.Get(k)
	if v == nil {
		return IdemRecord{}, false, nil
	}
	var r IdemRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return IdemRecord{}, false, fmt.Errorf("store: decode idempotency record: %w", err)
	}
	return r, true, nil
}

func putIdem(b *bolt.Bucket, k []byte, r IdemRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: encode idempotency record: %w", err)
	}
	return b.Put(k, v)
}

// BeginIdempotent implements Store.
func (b *Bolt) BeginIdempotent(ctx context.Context, key IdemKey, requestHash, newOperationID string, now time.Time, ttl, lease time.Duration) (IdemRecord, IdemOutcome, error) {
	if err := b.ready(ctx); err != nil {
		return IdemRecord{}, 0, err
	}
	if err := validIdemKey(key); err != nil {
		return IdemRecord{}, 0, err
	}
	if newOperationID == "" || ttl <= 0 || lease <= 0 {
		return IdemRecord{}, 0, fmt.Errorf("%w: idempotency needs an operation id and a positive ttl and lease", ErrInvalid)
	}
	k := idemKey(key)
	now = normTime(now)

	var (
		rec     IdemRecord
		outcome IdemOutcome
	)
	err := b.batch(func(tx *bolt.Tx) error {
		ib, cb := tx.Bucket(bucketIdem), tx.Bucket(bucketIdemCreated)
		cur, found, err := getIdem(ib, k)
		if err != nil {
			return err
		}
		switch {
		case !found || !cur.CreatedAt.Add(ttl).After(now):
			if found {
				if err := cb.Delete(createdKey(cur.CreatedAt, k)); err != nil {
					return err
				}
			}
			cur = IdemRecord{
				Key:         key,
				RequestHash: requestHash,
				State:       IdemStateInFlight,
				OperationID: newOperationID,
				CreatedAt:   now,
				UpdatedAt:   now,
			}
			if err := cb.Put(createdKey(now, k), []byte{}); err != nil {
				return err
			}
			outcome = IdemNew
		case cur.RequestHash != requestHash:
			rec, outcome = cur, IdemMismatch
			return nil
		case cur.State == IdemStateCompleted:
			rec, outcome = cur, IdemReplay
			return nil
		case cur.State == IdemStateInFlight && cur.UpdatedAt.Add(lease).After(now):
			rec, outcome = cur, IdemInFlight
			return nil
		default: // a stale lease, or released: reclaim under the same operation id
			cur.State, cur.UpdatedAt, cur.Response = IdemStateInFlight, now, nil
			outcome = IdemNew
		}
		if err := putIdem(ib, k, cur); err != nil {
			return err
		}
		rec = cur
		return nil
	})
	if err != nil {
		return IdemRecord{}, 0, fmt.Errorf("store: begin idempotent: %w", err)
	}
	return rec, outcome, nil
}

// CompleteIdempotent implements Store.
func (b *Bolt) CompleteIdempotent(ctx context.Context, key IdemKey, resp StoredResponse, now time.Time) error {
	return b.finishIdem(ctx, key, now, func(r *IdemRecord) bool {
		r.State, r.Response = IdemStateCompleted, &resp
		return true
	})
}

// ReleaseIdempotent implements Store.
func (b *Bolt) ReleaseIdempotent(ctx context.Context, key IdemKey, now time.Time) error {
	return b.finishIdem(ctx, key, now, func(r *IdemRecord) bool {
		if r.State == IdemStateCompleted {
			return false // the stored response stays authoritative
		}
		r.State = IdemStateReleased
		return true
	})
}

// finishIdem applies change to the stored record and, when change reports a
// change, sets UpdatedAt and writes it.
func (b *Bolt) finishIdem(ctx context.Context, key IdemKey, now time.Time, change func(*IdemRecord) bool) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	if err := validIdemKey(key); err != nil {
		return err
	}
	k := idemKey(key)
	now = normTime(now)
	var outcome error
	err := b.batch(func(tx *bolt.Tx) error {
		outcome = nil
		ib := tx.Bucket(bucketIdem)
		r, found, err := getIdem(ib, k)
		if err != nil {
			return err
		}
		if !found {
			outcome = ErrNotFound
			return nil
		}
		if !change(&r) {
			return nil
		}
		r.UpdatedAt = now
		return putIdem(ib, k, r)
	})
	if err != nil {
		return fmt.Errorf("store: finish idempotent: %w", err)
	}
	return outcome
}

// SweepIdempotent implements Store. It deletes in transactions of at most
// sweepChunk records so that no single commit grows without bound.
func (b *Bolt) SweepIdempotent(ctx context.Context, before time.Time) (int, error) {
	return b.sweepByTime(ctx, bucketIdemCreated, before, "idempotency", func(tx *bolt.Tx, k, stamp []byte) (bool, error) {
		ib := tx.Bucket(bucketIdem)
		r, found, err := getIdem(ib, k)
		if err != nil {
			return false, err
		}
		// The index entry may be stale if the record was renewed; only a
		// record that is itself old enough goes.
		if !found || !bytes.Equal(timeKey(nil, r.CreatedAt), stamp) {
			return false, nil
		}
		return true, ib.Delete(k)
	})
}

// sweepChunk bounds the deletions of one sweep transaction.
const sweepChunk = 1000

// sweepByTime walks a time index (keys: 8-byte timeKey + record key) up to
// before, in transactions of at most sweepChunk entries, deleting each
// index entry and calling drop for its record key; drop reports whether it
// deleted a record. It returns how many records were deleted.
func (b *Bolt) sweepByTime(ctx context.Context, index []byte, before time.Time, what string, drop func(tx *bolt.Tx, key, stamp []byte) (bool, error)) (int, error) {
	if err := b.ready(ctx); err != nil {
		return 0, err
	}
	limit := timeKey(nil, normTime(before))
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, more := 0, false
		err := b.update(func(tx *bolt.Tx) error {
			n, more = 0, false
			ib := tx.Bucket(index)
			var keys [][]byte
			c := ib.Cursor()
			for k, _ := c.First(); len(k) > 8 && bytes.Compare(k[:8], limit) < 0; k, _ = c.Next() {
				if len(keys) == sweepChunk {
					more = true
					break
				}
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if err := ib.Delete(k); err != nil {
					return err
				}
				dropped, err := drop(tx, k[8:], k[:8])
				if err != nil {
					return err
				}
				if dropped {
					n++
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("store: sweep %s: %w", what, err)
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// ---- audit

// AppendAudit implements Store. The stored value is the record's JSON
// without ID and Seq, which follow from the key.
//
// Request and Response are first brought to the compact form in which
// encoding/json stores a json.RawMessage, so the hash covers exactly the
// bytes ListAudit and VerifyAudit read back. The chain link is made inside
// the shared commit: every run of the batch function reads the tenant's
// last record in its own transaction, so a batch that bbolt runs again
// chains afresh, and concurrent appends of one tenant chain in commit order.
// The JSON is encoded before the commit with placeholder hashes, which the
// commit overwrites (see auditTail): encoding inside it would hold up every
// writer sharing it.
func (b *Bolt) AppendAudit(ctx context.Context, r AuditRecord) (AuditRecord, error) {
	if err := b.ready(ctx); err != nil {
		return AuditRecord{}, err
	}
	if r.TenantID == "" {
		return AuditRecord{}, fmt.Errorf("%w: audit record needs a tenant", ErrInvalid)
	}
	if len(r.TenantID) > maxKey {
		return AuditRecord{}, fmt.Errorf("%w: tenant id too long", ErrInvalid)
	}
	var rk []byte // the resource index prefix
	if r.ResourceID != "" {
		rk = auditResourcePrefix(r.TenantID, r.ResourceID)
		if err := checkKey("audit resource id", rk); err != nil {
			return AuditRecord{}, err
		}
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = normTime(r.Time)
	if err := compactAuditPayloads(&r); err != nil {
		return AuditRecord{}, err
	}
	r.ID, r.Seq, r.PrevHash, r.Hash = "", 0, AuditGenesis, AuditGenesis
	tmpl, err := encodeAudit(&r)
	if err != nil {
		return AuditRecord{}, err
	}
	if !bytes.HasSuffix(tmpl, placeholderTail) {
		tmpl = nil // not the layout auditTail expects: encode in the commit
	}
	tenant := []byte(r.TenantID)

	var stored AuditRecord
	err = b.batch(func(tx *bolt.Tx) error {
		tb, err := tx.Bucket(bucketAudit).CreateBucketIfNotExists(tenant)
		if err != nil {
			return err
		}
		tb.FillPercent = 1 // append-only: keep leaves full
		rec := r
		if rec.PrevHash, err = lastAuditHash(tb); err != nil {
			return err
		}
		if rec.Seq, err = tb.NextSequence(); err != nil {
			return err
		}
		rec.Hash = AuditHash(&rec)
		var val []byte
		if tmpl != nil {
			val = withAuditHashes(tmpl, rec.PrevHash, rec.Hash)
		} else if val, err = encodeAudit(&rec); err != nil {
			return err
		}
		if rk != nil {
			if err := tx.Bucket(bucketAuditByRes).Put(binary.BigEndian.AppendUint64(rk, rec.Seq), []byte{}); err != nil {
				return err
			}
		}
		if err := tb.Put(seqKey(rec.Seq), val); err != nil {
			return err
		}
		rec.ID = AuditID(rec.Seq)
		stored = rec
		return nil
	})
	if err != nil {
		return AuditRecord{}, fmt.Errorf("store: append audit: %w", err)
	}
	return stored, nil
}

// compactAuditPayloads replaces Request and Response by the bytes
// encoding/json writes for them (compact, HTML-escaped; empty is nil),
// which it writes unchanged when they are marshalled again.
func compactAuditPayloads(r *AuditRecord) error {
	for _, p := range []*json.RawMessage{&r.Request, &r.Response} {
		if len(*p) == 0 {
			*p = nil
			continue
		}
		c, err := json.Marshal(*p)
		if err != nil {
			return fmt.Errorf("store: encode audit record: %w", err)
		}
		*p = c
	}
	return nil
}

// encodeAudit encodes r without ID and Seq.
func encodeAudit(r *AuditRecord) ([]byte, error) {
	m := *r
	m.ID, m.Seq = "", 0
	v, err := json.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("store: encode audit record: %w", err)
	}
	return v, nil
}

func decodeAudit(v []byte, seq uint64) (AuditRecord, error) {
	var r AuditRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return AuditRecord{}, fmt.Errorf("store: decode audit record: %w", err)
	}
	r.Seq, r.ID = seq, AuditID(seq)
	return r, nil
}

// auditTail is how encodeAudit's output ends, because PrevHash and Hash
// are the last fields of AuditRecord and hex needs no escaping:
//
//	,"prev_hash":"<64 hex>","hash":"<64 hex>"}
//
// AppendAudit and lastAuditHash use it to write and read the hashes
// without encoding or decoding the rest; both fall back to encoding/json
// when a value does not end like this.
const (
	auditTailPrev = `,"prev_hash":"`
	auditTailHash = `","hash":"`
	auditTailEnd  = `"}`
)

var placeholderTail = []byte(auditTailPrev + AuditGenesis + auditTailHash + AuditGenesis + auditTailEnd)

// withAuditHashes returns a copy of tmpl, which ends in placeholderTail,
// with prev and hash in the placeholders' places.
func withAuditHashes(tmpl []byte, prev, hash string) []byte {
	v := bytes.Clone(tmpl)
	hashAt := len(v) - len(auditTailEnd) - len(hash)
	copy(v[hashAt:], hash)
	copy(v[hashAt-len(auditTailHash)-len(prev):], prev)
	return v
}

// lastAuditHash returns the Hash of the last record of a tenant's audit
// bucket, or AuditGenesis when there is none. A last record without a valid
// hash is corrupt: appending after it would extend a chain that cannot be
// verified, so the append fails instead.
func lastAuditHash(tb *bolt.Bucket) (string, error) {
	k, v := tb.Cursor().Last()
	if k == nil {
		return AuditGenesis, nil
	}
	if h, ok := tailAuditHash(v); ok {
		return h, nil
	}
	var last struct {
		Hash string `json:"hash"`
	}
	if len(k) != 8 || v == nil || json.Unmarshal(v, &last) != nil || !isHexSHA256(last.Hash) {
		return "", fmt.Errorf("store: the tenant's last audit record has no valid hash: %w", errCorrupt)
	}
	return last.Hash, nil
}

// tailAuditHash reads the Hash of a stored record that ends as auditTail
// says. In JSON, `","hash":"` cannot be inside a string, so this is the
// object's last key, which encoding/json would decode too (the last of
// duplicate keys wins). VerifyAudit decodes in full either way.
func tailAuditHash(v []byte) (string, bool) {
	n := len(v) - len(auditTailEnd) - 2*sha256.Size
	if n < len(auditTailHash) || !bytes.HasSuffix(v, []byte(auditTailEnd)) || string(v[n-len(auditTailHash):n]) != auditTailHash {
		return "", false
	}
	h := string(v[n : len(v)-len(auditTailEnd)])
	return h, isHexSHA256(h)
}

// auditVerifyChunk is how many records VerifyAudit reads per read
// transaction, so that a long log does not hold one open for long.
const auditVerifyChunk = 1000

// VerifyAudit implements Store. It reads the log in read transactions of
// auditVerifyChunk records; appends made meanwhile extend the log and are
// verified too when they land before the walk reaches the end. A log whose
// bucket sequence (the last seq handed out) is past its last record lost
// its tail.
func (b *Bolt) VerifyAudit(ctx context.Context, tenantID string) (AuditVerification, error) {
	if err := b.ready(ctx); err != nil {
		return AuditVerification{}, err
	}
	if tenantID == "" {
		return AuditVerification{}, fmt.Errorf("%w: audit verification needs a tenant", ErrInvalid)
	}
	var (
		out    AuditVerification
		expect = uint64(1)    // the next seq the chain needs
		prev   = AuditGenesis // the Hash the next record must name
		after  uint64         // the last seq walked
	)
	broken := func(seq uint64, reason string, args ...any) {
		if out.FirstBroken == 0 {
			out.FirstBroken, out.Reason = seq, fmt.Sprintf(reason, args...)
		}
	}
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return AuditVerification{}, err
		}
		err := b.view(func(tx *bolt.Tx) error {
			tb := tx.Bucket(bucketAudit).Bucket([]byte(tenantID))
			if tb == nil {
				done = true
				return nil
			}
			c := tb.Cursor()
			k, v := c.First()
			if after > 0 {
				k, v = c.Seek(seqKey(after + 1))
			}
			for n := 0; k != nil; k, v = c.Next() {
				if n == auditVerifyChunk {
					return nil
				}
				n++
				if len(k) != 8 || v == nil {
					return fmt.Errorf("store: audit log of %q holds a key that is not a seq: %w", tenantID, errCorrupt)
				}
				seq := binary.BigEndian.Uint64(k)
				after = seq
				out.Records++
				if out.FirstBroken != 0 {
					continue // only counting now
				}
				if seq != expect {
					broken(expect, "%s missing", seqRange(expect, seq-1))
					continue
				}
				r, err := decodeAudit(v, seq)
				switch {
				case err != nil:
					broken(seq, "record %d does not decode", seq)
				case r.TenantID != tenantID:
					broken(seq, "record %d names another tenant", seq)
				case AuditHash(&r) != r.Hash:
					broken(seq, "record %d does not match its hash", seq)
				case r.PrevHash != prev:
					broken(seq, "record %d does not chain to record %d (prev_hash differs from its hash)", seq, seq-1)
				}
				prev, expect = r.Hash, seq+1
			}
			done = true
			if last := tb.Sequence(); last >= expect {
				broken(expect, "%s missing at the end of the log", seqRange(expect, last))
			}
			return nil
		})
		if err != nil {
			return AuditVerification{}, fmt.Errorf("store: verify audit: %w", err)
		}
	}
	return out, nil
}

// seqRange names records from..to.
func seqRange(from, to uint64) string {
	if from == to {
		return fmt.Sprintf("record %d is", from)
	}
	return fmt.Sprintf("records %d to %d are", from, to)
}

// Audit cursors: base64url of a version byte and the big-endian sequence
// number of the last record returned.
const auditCursorVersion = 1

func encodeAuditCursor(seq uint64) string {
	b := binary.BigEndian.AppendUint64([]byte{auditCursorVersion}, seq)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeAuditCursor(s string) (uint64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 9 || b[0] != auditCursorVersion {
		return 0, fmt.Errorf("%w: malformed cursor", ErrInvalidQuery)
	}
	seq := binary.BigEndian.Uint64(b[1:])
	if seq == 0 {
		return 0, fmt.Errorf("%w: malformed cursor", ErrInvalidQuery)
	}
	return seq, nil
}

// auditFilter is the part of a record ListAudit filters on; decoding only it
// skips the payloads of records that do not match.
type auditFilter struct {
	Provider string `json:"provider"`
	Action   string `json:"action"`
	Status   string `json:"status"`
}

// auditResourcePrefix is the key prefix of one resource's entries in
// audit_by_resource. It has room for the sequence number.
func auditResourcePrefix(tenantID, resourceID string) []byte {
	return lp(lp(make([]byte, 0, len(tenantID)+len(resourceID)+4+8), tenantID), resourceID)
}

// ListAudit implements Store. Filtering walks the tenant's log newest first,
// so a filter that matches rarely reads far; a ResourceID filter walks only
// that resource's index (audit_by_resource) and applies the other filters to
// the records it names.
func (b *Bolt) ListAudit(ctx context.Context, tenantID string, q AuditQuery) ([]AuditRecord, string, error) {
	if err := b.ready(ctx); err != nil {
		return nil, "", err
	}
	if err := q.Validate(); err != nil {
		return nil, "", err
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultAuditLimit
	}
	var below uint64 // list records with seq < below; 0: from the newest
	if q.Cursor != "" {
		var err error
		if below, err = decodeAuditCursor(q.Cursor); err != nil {
			return nil, "", err
		}
	}
	out := []AuditRecord{}
	more := false
	err := b.view(func(tx *bolt.Tx) error {
		if tenantID == "" {
			return nil
		}
		tb := tx.Bucket(bucketAudit).Bucket([]byte(tenantID))
		if tb == nil {
			return nil
		}
		// next yields the tenant's records newest first, below the cursor.
		var next func() (k, v []byte)
		if q.ResourceID != "" {
			next = newestFirst(tb, tx.Bucket(bucketAuditByRes).Cursor(), auditResourcePrefix(tenantID, q.ResourceID), below)
		} else {
			next = newestFirst(tb, nil, nil, below)
		}
		for k, v := next(); k != nil; k, v = next() {
			if q.Provider != "" || q.Action != "" || q.Status != "" {
				var f auditFilter
				if err := json.Unmarshal(v, &f); err != nil {
					return fmt.Errorf("store: decode audit record: %w", err)
				}
				if (q.Provider != "" && f.Provider != q.Provider) ||
					(q.Action != "" && f.Action != q.Action) ||
					(q.Status != "" && f.Status != q.Status) {
					continue
				}
			}
			if len(out) == limit {
				more = true
				return nil
			}
			r, err := decodeAudit(v, binary.BigEndian.Uint64(k))
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
		next = encodeAuditCursor(out[len(out)-1].Seq)
	}
	return out, next, nil
}

// seekBefore positions c on the last key of the form prefix+be64(seq) with
// seq < below (below 0: any seq) and returns it, or nil when there is none
// with that prefix. Walk on with c.Prev and stop when the prefix ends.
// newestFirst iterates a tenant's records (tb: 8-byte big-endian seq keys)
// from the newest below the cursor position below (0: from the newest)
// downwards. With an index cursor, it walks the index keys under prefix
// (prefix + 8-byte seq) instead and reads each record from tb, skipping
// index entries whose record is gone. It returns nil, nil when done.
func newestFirst(tb *bolt.Bucket, index *bolt.Cursor, prefix []byte, below uint64) func() (k, v []byte) {
	if index != nil {
		ik, _ := seekBefore(index, prefix, below)
		return func() ([]byte, []byte) {
			for ik != nil && bytes.HasPrefix(ik, prefix) && len(ik) == len(prefix)+8 {
				k := ik[len(prefix):]
				ik, _ = index.Prev()
				if v := tb.Get(k); v != nil {
					return k, v
				}
			}
			return nil, nil
		}
	}
	c := tb.Cursor()
	k, v := seekBefore(c, nil, below)
	return func() ([]byte, []byte) {
		for k != nil {
			rk, rv := k, v
			k, v = c.Prev()
			if rv != nil && len(rk) == 8 {
				return rk, rv
			}
		}
		return nil, nil
	}
}

func seekBefore(c *bolt.Cursor, prefix []byte, below uint64) ([]byte, []byte) {
	target := append(make([]byte, 0, len(prefix)+9), prefix...)
	if below == 0 {
		target = append(target, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	} else {
		target = binary.BigEndian.AppendUint64(target, below)
	}
	var k, v []byte
	if k, _ = c.Seek(target); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil, nil
	}
	return k, v
}
