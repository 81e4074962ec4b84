package bus_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/bus"
)

// TestPublishFoldsWhileTheHandlerIsBusy: a message published while the
// previous one waits for a free worker is folded into it, and a message
// published after the handler took the previous one is delivered, so the
// handler always runs after the last publish.
func TestPublishFoldsWhileTheHandlerIsBusy(t *testing.T) {
	b := bus.NewInProcess(nil)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	var calls atomic.Int32
	started := make(chan string, 100)
	if err := b.Consume(ctx, "t", 1, func(_ context.Context, _, id string) error {
		calls.Add(1)
		started <- id
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("t", "ten", "first"); err != nil {
		t.Fatal(err)
	}
	if id := <-started; id != "first" {
		t.Fatalf("handler got %q", id)
	}
	// The handler is busy: one more message waits for it, the rest fold.
	for i := range 100 {
		if err := b.Publish("t", "ten", "more"+string(rune('a'+i%26))); err != nil {
			t.Fatal(err)
		}
	}
	release <- struct{}{} // first returns; the waiting message starts
	if id := <-started; id != "morea" {
		t.Fatalf("second handler call got %q, want the first message published while busy", id)
	}
	release <- struct{}{}
	select {
	case id := <-started:
		t.Fatalf("a third call (%q): the 99 other messages were not folded", id)
	case <-time.After(50 * time.Millisecond):
	}
	// Nothing waits now: the next publish is delivered.
	if err := b.Publish("t", "ten", "last"); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-started:
		if id != "last" {
			t.Fatalf("got %q, want last", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a message published after the handler took the previous one was lost")
	}
	close(release)
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d handler calls, want 3", n)
	}
}

// TestPublishWithoutConsumerIsNotFolded: a topic nobody consumes keeps no
// state that would swallow later messages once a consumer subscribes.
func TestPublishWithoutConsumerIsNotFolded(t *testing.T) {
	b := bus.NewInProcess(nil)
	defer b.Close()
	for range 3 {
		if err := b.Publish("t", "ten", "early"); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan string, 1)
	if err := b.Consume(context.Background(), "t", 1, func(_ context.Context, _, id string) error { got <- id; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("t", "ten", "late"); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != "late" {
			t.Fatalf("got %q", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first message after subscribing was lost")
	}
}

func TestPacer(t *testing.T) {
	p := bus.NewPacer(bus.PacerConfig{Threshold: 3, Hold: 100 * time.Millisecond, Share: 0.25, MaxPause: time.Second})
	ctx := context.Background()
	pause := func() time.Duration {
		start := time.Now()
		p.Pace(ctx, 10*time.Millisecond)
		return time.Since(start)
	}
	p.Enter()
	p.Enter()
	if p.Busy() {
		t.Fatal("busy with 2 webhooks in flight, threshold 3")
	}
	if d := pause(); d > 5*time.Millisecond {
		t.Fatalf("paced %s while not busy", d)
	}
	p.Enter()
	p.Leave()
	p.Leave()
	p.Leave()
	if !p.Busy() {
		t.Fatal("not busy right after 3 webhooks were in flight")
	}
	// 10ms of work at a quarter of the time: 30ms of rest.
	if d := pause(); d < 30*time.Millisecond || d > 500*time.Millisecond {
		t.Fatalf("paced %s after 10ms of work at share 0.25, want 30ms", d)
	}
	time.Sleep(110 * time.Millisecond)
	if p.Busy() {
		t.Fatal("still busy after Hold with nothing in flight")
	}
	// Pace gives up at ctx's end.
	p.Enter()
	p.Enter()
	p.Enter()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	start := time.Now()
	p.Pace(cctx, time.Hour)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("Pace with an ended context took %s", d)
	}
	var nilPacer *bus.Pacer
	nilPacer.Enter()
	nilPacer.Leave()
	nilPacer.Pace(ctx, time.Hour)
	if nilPacer.Busy() {
		t.Fatal("a nil Pacer is busy")
	}
}

// TestPacerConcurrentUse is for the race detector.
func TestPacerConcurrentUse(t *testing.T) {
	p := bus.NewPacer(bus.PacerConfig{Threshold: 2})
	p.Enter() // one stays in flight throughout
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				p.Enter()
				_ = p.Busy()
				p.Leave()
			}
		})
	}
	wg.Wait()
	if !p.Busy() {
		t.Fatal("webhooks in flight with one held and threshold 2 never made the ingress busy")
	}
}
