package bus

import (
	"context"
	"sync/atomic"
	"time"
)

// Pacer lets the background stages (normalisation, delivery) give way to
// the webhook ingress. A provider waits for its 2xx on the ingress, which
// on two cores competes for CPU and for the store's commits with every
// other stage; the inbox exists to absorb bursts, so while the ingress is
// busy the stages work in slices and rest between them.
//
// The ingress calls Enter and Leave around each webhook. The ingress is
// busy while at least Threshold webhooks are in flight at once, and for
// Hold after that last happened. A stage calls Pace after each slice of
// its work; while the ingress is busy, Pace sleeps long enough for the
// stage to work at most Share of the time. At low rates nothing is paced,
// so events reach tenants as fast as they can.
//
// A nil *Pacer never paces. A Pacer is safe for concurrent use.
type Pacer struct {
	cfg       PacerConfig
	inflight  atomic.Int64
	busyUntil atomic.Int64 // unix nanoseconds
}

// PacerConfig tunes a Pacer. Zero values mean the documented defaults.
type PacerConfig struct {
	// Threshold is how many webhooks in flight at once make the ingress
	// busy. Zero means 16: at the 2–3 ms a durable accept takes under
	// load, some 6,000 webhooks/s, about what normalisation and delivery
	// keep up with on two cores.
	Threshold int
	// Hold is how long the ingress stays busy after the last time it had
	// Threshold webhooks in flight. Zero means 250ms.
	Hold time.Duration
	// Share is the part of the time a paced stage may work while the
	// ingress is busy, in (0, 1]. Zero means 0.1.
	Share float64
	// MaxPause bounds one pause. Zero means 250ms.
	MaxPause time.Duration
}

// NewPacer returns a Pacer.
func NewPacer(cfg PacerConfig) *Pacer {
	if cfg.Threshold <= 0 {
		cfg.Threshold = 16
	}
	if cfg.Hold <= 0 {
		cfg.Hold = 250 * time.Millisecond
	}
	if cfg.Share <= 0 || cfg.Share > 1 {
		cfg.Share = 0.1
	}
	if cfg.MaxPause <= 0 {
		cfg.MaxPause = 250 * time.Millisecond
	}
	return &Pacer{cfg: cfg}
}

// Enter records a webhook coming in.
func (p *Pacer) Enter() {
	if p == nil {
		return
	}
	if p.inflight.Add(1) >= int64(p.cfg.Threshold) {
		p.busyUntil.Store(time.Now().Add(p.cfg.Hold).UnixNano())
	}
}

// Leave records a webhook answered.
func (p *Pacer) Leave() {
	if p != nil {
		p.inflight.Add(-1)
	}
}

// Busy reports whether the ingress is busy.
func (p *Pacer) Busy() bool {
	return p != nil && time.Now().UnixNano() < p.busyUntil.Load()
}

// Pace is called by a stage after a slice of work that took worked. While
// the ingress is busy it sleeps worked×(1−Share)/Share (at most MaxPause),
// or until ctx ends; otherwise it returns at once.
func (p *Pacer) Pace(ctx context.Context, worked time.Duration) {
	if !p.Busy() || worked <= 0 {
		return
	}
	pause := min(time.Duration(float64(worked)*(1-p.cfg.Share)/p.cfg.Share), p.cfg.MaxPause)
	t := time.NewTimer(pause)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
