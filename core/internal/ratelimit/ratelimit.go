// Package ratelimit keeps one token bucket per tenant, so a tenant that
// bursts past its allowance gets 429s while every other tenant is served.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter holds a token bucket per key. The zero rate means unlimited.
// Safe for concurrent use.
type Limiter struct {
	rate  rate.Limit
	burst int
	mu    sync.Mutex
	keys  map[string]*rate.Limiter
}

// New returns a Limiter allowing perSecond requests per key with bursts of
// burst. perSecond <= 0 disables limiting.
func New(perSecond float64, burst int) *Limiter {
	if burst < 1 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &Limiter{rate: rate.Limit(perSecond), burst: burst, keys: map[string]*rate.Limiter{}}
}

// Allow takes a token for key at now. When none is left it reports false
// and how long until one is.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	b, ok := l.keys[key]
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst)
		l.keys[key] = b
	}
	l.mu.Unlock()
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
