package dispatch_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/dispatch"
)

func fixed(f float64) func() float64 { return func() float64 { return f } }

func TestDefaultSchedule(t *testing.T) {
	t.Parallel()
	want := []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
		5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour}
	if len(dispatch.DefaultSchedule) != len(want) {
		t.Fatalf("DefaultSchedule has %d attempts, want %d", len(dispatch.DefaultSchedule), len(want))
	}
	var total time.Duration
	for i, d := range dispatch.DefaultSchedule {
		if d != want[i] {
			t.Errorf("DefaultSchedule[%d] = %v, want %v", i, d, want[i])
		}
		total += d
	}
	if wantTotal := 75*time.Hour + 35*time.Minute + 5*time.Second; total != wantTotal {
		t.Errorf("schedule spans %v, want %v", total, wantTotal)
	}
}

func TestScheduleNext(t *testing.T) {
	t.Parallel()
	now := fixedNow
	tests := map[string]struct {
		attempts   int
		rnd        float64
		retryAfter time.Duration
		want       time.Duration // delay after now
		exhausted  bool
	}{
		// Jitter bounds: rnd 0 is −20%, 0.5 the slot itself, 0.999 just under +20%.
		"after 1, rnd 0":      {attempts: 1, rnd: 0, want: 4 * time.Second},
		"after 1, rnd 0.5":    {attempts: 1, rnd: 0.5, want: 5 * time.Second},
		"after 1, rnd 0.999":  {attempts: 1, rnd: 0.999, want: 5998 * time.Millisecond},
		"after 2, rnd 0":      {attempts: 2, rnd: 0, want: 4 * time.Minute},
		"after 2, rnd 0.5":    {attempts: 2, rnd: 0.5, want: 5 * time.Minute},
		"after 2, rnd 0.999":  {attempts: 2, rnd: 0.999, want: 359880 * time.Millisecond},
		"after 3, rnd 0":      {attempts: 3, rnd: 0, want: 24 * time.Minute},
		"after 3, rnd 0.999":  {attempts: 3, rnd: 0.999, want: 2159280 * time.Millisecond},
		"after 4, rnd 0.5":    {attempts: 4, rnd: 0.5, want: 2 * time.Hour},
		"after 5, rnd 0":      {attempts: 5, rnd: 0, want: 4 * time.Hour},
		"after 6, rnd 0.5":    {attempts: 6, rnd: 0.5, want: 10 * time.Hour},
		"after 7, rnd 0.999":  {attempts: 7, rnd: 0.999, want: 60459840 * time.Millisecond},
		"after 8, rnd 0":      {attempts: 8, rnd: 0, want: 16 * time.Hour},
		"after 9, rnd 0":      {attempts: 9, rnd: 0, want: 1152 * time.Minute},
		"after 9, rnd 0.5":    {attempts: 9, rnd: 0.5, want: 24 * time.Hour},
		"after 9, rnd 0.999":  {attempts: 9, rnd: 0.999, want: 103645440 * time.Millisecond},
		"first attempt":       {attempts: 0, rnd: 0.999, want: 0},
		"negative attempts":   {attempts: -3, rnd: 0.5, want: 0},
		"rnd 1 clamped":       {attempts: 1, rnd: 1, want: 6 * time.Second},
		"rnd above 1 clamped": {attempts: 1, rnd: 7, want: 6 * time.Second},
		"rnd below 0 clamped": {attempts: 1, rnd: -1, want: 4 * time.Second},
		"rnd NaN clamped":     {attempts: 1, rnd: math.NaN(), want: 4 * time.Second},

		// Retry-After: below the jittered slot it changes nothing; within
		// the cap it is the delay; above it, the cap (slot + 1h).
		"after 1, Retry-After below slot": {attempts: 1, rnd: 0.5, retryAfter: 2 * time.Second, want: 5 * time.Second},
		"after 1, Retry-After = slot":     {attempts: 1, rnd: 0.5, retryAfter: 5 * time.Second, want: 5 * time.Second},
		"after 1, Retry-After above jit":  {attempts: 1, rnd: 0, retryAfter: 4500 * time.Millisecond, want: 4500 * time.Millisecond},
		"after 1, Retry-After within cap": {attempts: 1, rnd: 0.5, retryAfter: 30 * time.Minute, want: 30 * time.Minute},
		"after 1, Retry-After at cap":     {attempts: 1, rnd: 0.5, retryAfter: time.Hour + 5*time.Second, want: time.Hour + 5*time.Second},
		"after 1, Retry-After above cap":  {attempts: 1, rnd: 0.5, retryAfter: 3 * time.Hour, want: time.Hour + 5*time.Second},
		"after 4, Retry-After above cap":  {attempts: 4, rnd: 0, retryAfter: 24 * time.Hour, want: 3 * time.Hour},
		"after 4, Retry-After within cap": {attempts: 4, rnd: 0, retryAfter: 150 * time.Minute, want: 150 * time.Minute},
		"after 9, Retry-After within cap": {attempts: 9, rnd: 0, retryAfter: 20 * time.Hour, want: 20 * time.Hour},
		"after 9, Retry-After above cap":  {attempts: 9, rnd: 0, retryAfter: 48 * time.Hour, want: 25 * time.Hour},
		// +20% of 24h is past slot + 1h: the jittered slot wins.
		"after 9, jitter above the cap": {attempts: 9, rnd: 0.999, retryAfter: 48 * time.Hour, want: 103645440 * time.Millisecond},
		"first attempt, Retry-After":    {attempts: 0, rnd: 0.5, retryAfter: 2 * time.Hour, want: time.Hour},
		"negative Retry-After ignored":  {attempts: 1, rnd: 0.5, retryAfter: -time.Hour, want: 5 * time.Second},

		"exhausted after the 10th":    {attempts: 10, rnd: 0.5, exhausted: true},
		"exhausted with Retry-After":  {attempts: 10, rnd: 0.5, retryAfter: time.Second, exhausted: true},
		"exhausted long after":        {attempts: 11, rnd: 0.5, exhausted: true},
		"exhausted at math.MaxInt":    {attempts: math.MaxInt, rnd: 0.5, exhausted: true},
		"not exhausted after the 9th": {attempts: 9, rnd: 0.5, want: 24 * time.Hour},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			at, ok := dispatch.DefaultSchedule.Next(tc.attempts, now, tc.retryAfter, fixed(tc.rnd))
			if ok == tc.exhausted {
				t.Fatalf("Next ok = %v, want %v", ok, !tc.exhausted)
			}
			if tc.exhausted {
				if !at.IsZero() {
					t.Errorf("exhausted Next returned %v, want the zero time", at)
				}
				return
			}
			if got := at.Sub(now); got != tc.want {
				t.Errorf("Next delay = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestScheduleNextJitterBounds draws real random numbers and checks every
// delay stays within ±20% of its slot.
func TestScheduleNextJitterBounds(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for attempts := 1; attempts < len(dispatch.DefaultSchedule); attempts++ {
		slot := dispatch.DefaultSchedule[attempts]
		lo, hi := time.Duration(float64(slot)*0.8), time.Duration(float64(slot)*1.2)
		var below, above bool
		for range 500 {
			at, ok := dispatch.DefaultSchedule.Next(attempts, fixedNow, 0, r.Float64)
			d := at.Sub(fixedNow)
			if !ok || d < lo || d > hi {
				t.Fatalf("attempts %d: delay %v (ok %v) outside [%v, %v]", attempts, d, ok, lo, hi)
			}
			below = below || d < slot
			above = above || d > slot
		}
		if !below || !above {
			t.Errorf("attempts %d: 500 draws never fell on both sides of %v", attempts, slot)
		}
	}
	// A nil rnd uses math/rand and stays in bounds too.
	at, ok := dispatch.DefaultSchedule.Next(2, fixedNow, 0, nil)
	if d := at.Sub(fixedNow); !ok || d < 4*time.Minute || d > 6*time.Minute {
		t.Errorf("nil rnd: delay %v (ok %v), want within [4m, 6m]", d, ok)
	}
}

func TestScheduleCustom(t *testing.T) {
	t.Parallel()
	s := dispatch.Schedule{time.Second, time.Minute}
	tests := map[string]struct {
		attempts int
		want     time.Duration
		ok       bool
	}{
		"first":     {attempts: 0, want: time.Second, ok: true},
		"second":    {attempts: 1, want: time.Minute, ok: true},
		"exhausted": {attempts: 2, ok: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			at, ok := s.Next(tc.attempts, fixedNow, 0, fixed(0.5))
			if ok != tc.ok || (ok && at.Sub(fixedNow) != tc.want) {
				t.Errorf("Next = %v, %v; want +%v, %v", at.Sub(fixedNow), ok, tc.want, tc.ok)
			}
		})
	}
	if _, ok := dispatch.Schedule(nil).Next(0, fixedNow, 0, nil); ok {
		t.Error("an empty schedule is not exhausted")
	}
}
