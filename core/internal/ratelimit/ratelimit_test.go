package ratelimit_test

import (
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/ratelimit"
)

func TestBurstThenRefusedPerKey(t *testing.T) {
	l := ratelimit.New(10, 5)
	now := time.Unix(1700000000, 0)
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow("a", now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow("a", now)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("6th request: ok=%v wait=%s, want refused with ~100ms", ok, wait)
	}
	if ok, _ := l.Allow("b", now); !ok {
		t.Fatal("another key was limited by a's burst")
	}
	if ok, _ := l.Allow("a", now.Add(150*time.Millisecond)); !ok {
		t.Fatal("a token did not come back after its interval")
	}
	if ok, _ := ratelimit.New(0, 0).Allow("x", now); !ok {
		t.Fatal("a zero rate must not limit")
	}
}
