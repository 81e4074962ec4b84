package dispatch

import (
	"math"
	"math/rand/v2"
	"time"
)

const (
	// Jitter is the spread of a scheduled delay: a slot of d waits between
	// d×(1−Jitter) and d×(1+Jitter).
	Jitter = 0.2
	// RetryAfterGrace is how far past its slot a Retry-After may push an
	// attempt.
	RetryAfterGrace = time.Hour
)

// Schedule holds the delay before each attempt: Schedule[i] is the wait
// before attempt i+1, counted from the failure of attempt i (Schedule[0]
// is the wait before the first attempt). len(Schedule) is the number of
// attempts in all.
type Schedule []time.Duration

// DefaultSchedule is the Standard Webhooks example: immediately, then 5s,
// 5m, 30m, 2h, 5h, 10h, 14h, 20h and 24h; 10 attempts over about 75.5h.
// Treat it as read-only.
var DefaultSchedule = Schedule{
	0,
	5 * time.Second,
	5 * time.Minute,
	30 * time.Minute,
	2 * time.Hour,
	5 * time.Hour,
	10 * time.Hour,
	14 * time.Hour,
	20 * time.Hour,
	24 * time.Hour,
}

// Next returns when attempt attempts+1 should run, given that attempts
// attempts have failed, the last one at now; ok is false when the schedule
// is exhausted (attempts >= len(s)) and the message should be dead-lettered.
// attempts below 0 count as 0.
//
// The delay is computed, then rounded to the millisecond, as:
//
//	slot     = s[attempts]
//	jittered = slot × (1 + Jitter×(2×rnd() − 1))      // within ±20% of slot
//	delay    = max(jittered, min(retryAfter, slot + RetryAfterGrace))
//
// So a Retry-After never makes an attempt earlier than its jittered slot,
// can push it later by up to an hour past the slot, and is otherwise
// ignored; retryAfter <= 0 means none. rnd returns a value in [0, 1) (out of
// range values are clamped); nil means math/rand/v2's Float64.
func (s Schedule) Next(attempts int, now time.Time, retryAfter time.Duration, rnd func() float64) (at time.Time, ok bool) {
	attempts = max(attempts, 0)
	if attempts >= len(s) {
		return time.Time{}, false
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	f := rnd()
	switch {
	case !(f >= 0): // also NaN
		f = 0
	case f >= 1:
		f = math.Nextafter(1, 0)
	}
	slot := max(s[attempts], 0)
	delay := time.Duration(float64(slot) * (1 + Jitter*(2*f-1)))
	if retryAfter > 0 {
		delay = max(delay, min(retryAfter, slot+RetryAfterGrace))
	}
	return now.Add(delay.Round(time.Millisecond)), true
}
