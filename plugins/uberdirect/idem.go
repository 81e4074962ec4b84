package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Uber documents no idempotency header. The plugin sends the gateway's key
// as the body field idempotency_key (Uber keeps it about 60 minutes) and
// also remembers, per process, what each key led to: the booked delivery,
// or that an attempt ended without an answer and may have booked one. A
// repeated key then reads the booked delivery, or looks it up by
// external_id, instead of booking again.
const (
	idemTTL = 24 * time.Hour
	idemMax = 10000
)

// idemStore serialises calls per idempotency key and keeps their records
// for idemTTL. It is safe for concurrent use.
type idemStore struct {
	mu    sync.Mutex
	slots map[string]*idemSlot
	max   int
	now   func() time.Time
}

// idemSlot is one key. lock holds a token while a call owns the slot;
// rec is read and written only by the owner. refs and expires are guarded
// by the store's mutex.
type idemSlot struct {
	lock    chan struct{}
	rec     idemRecord
	refs    int
	expires time.Time
}

// idemRecord is what the plugin knows about a key.
type idemRecord struct {
	// fingerprint identifies the request first made with the key.
	fingerprint string
	// shipment is the booked delivery, once known.
	shipment *delivery.Shipment
	// uncertain means an attempt got no usable answer and may have booked
	// a delivery: look it up by external_id before creating.
	uncertain bool
}

func newIdemStore(max int) *idemStore {
	return &idemStore{slots: make(map[string]*idemSlot), max: max, now: time.Now}
}

// acquire waits until the caller owns key's slot (or ctx ends) and returns
// the slot and the func that releases it. Records of released slots live
// for idemTTL.
func (s *idemStore) acquire(ctx context.Context, key string) (*idemSlot, func(), error) {
	s.mu.Lock()
	sl := s.slots[key]
	if sl == nil {
		s.prune()
		sl = &idemSlot{lock: make(chan struct{}, 1)}
		s.slots[key] = sl
	}
	sl.refs++
	s.mu.Unlock()

	select {
	case sl.lock <- struct{}{}:
	case <-ctx.Done():
		s.mu.Lock()
		sl.refs--
		s.mu.Unlock()
		return nil, nil, provider.Retryable(fmt.Errorf("uberdirect: waiting for a concurrent create with the same idempotency key: %w", ctx.Err()))
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			s.mu.Lock()
			sl.refs--
			sl.expires = s.now().Add(idemTTL)
			s.mu.Unlock()
			<-sl.lock
		})
	}
	return sl, release, nil
}

// prune drops expired unused slots and, at max, the unused slots closest
// to expiry. The caller holds s.mu.
func (s *idemStore) prune() {
	now := s.now()
	for k, sl := range s.slots {
		if sl.refs == 0 && !now.Before(sl.expires) {
			delete(s.slots, k)
		}
	}
	for len(s.slots) >= s.max {
		var oldest string
		var at time.Time
		for k, sl := range s.slots {
			if sl.refs == 0 && (oldest == "" || sl.expires.Before(at)) {
				oldest, at = k, sl.expires
			}
		}
		if oldest == "" {
			return // every slot is in use
		}
		delete(s.slots, oldest)
	}
}
