package main

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// target is one server the load is sent to.
type target struct {
	name   string
	url    string // absolute URL of the webhook route
	addr   string // host:port
	secret string // the Stripe webhook signing secret it checks
}

// result is what one load phase measured.
type result struct {
	elapsed    time.Duration
	sent       int64
	ok         int64 // 2xx
	non2xx     int64
	errs       int64           // transport errors and timeouts
	duplicates int64           // 2xx answers that say "duplicate"
	lat        []time.Duration // of the 2xx answers, sorted
}

func (r *result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// pct returns the p-th percentile (0 < p ≤ 100) of the 2xx latencies.
func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat))*p/100+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

func (r *result) failed() int64 { return r.non2xx + r.errs }

// generator sends signed events to one target. Every event carries a
// sequence number from seq, so no two are alike.
type generator struct {
	t     target
	mk    *eventMaker
	seq   *atomic.Uint64
	hc    *fasthttp.HostClient
	dupAt []byte
	// onSend, if set, is called with each event's sequence number and the
	// time right before its POST; onDone after a 2xx answer.
	onSend func(seq uint64, at time.Time)
	onDone func(seq uint64)
}

func newGenerator(t target, mk *eventMaker, seq *atomic.Uint64, conns int) *generator {
	return &generator{t: t, mk: mk, seq: seq, dupAt: []byte(`"duplicate"`), hc: &fasthttp.HostClient{
		Addr:                     t.addr,
		MaxConns:                 conns,
		MaxConnWaitTimeout:       time.Minute,
		ReadTimeout:              30 * time.Second,
		WriteTimeout:             30 * time.Second,
		MaxIdleConnDuration:      time.Minute,
		NoDefaultUserAgentHeader: true,
	}}
}

func (g *generator) close() { g.hc.CloseIdleConnections() }

// worker is one sender's reusable state.
type worker struct {
	g    *generator
	req  *fasthttp.Request
	resp *fasthttp.Response
	buf  []byte
	sig  *signer
	r    result
}

func (g *generator) newWorker(latCap int) *worker {
	w := &worker{g: g, req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse(), buf: g.mk.fresh(), sig: newSigner(g.t.secret)}
	w.req.SetRequestURI(g.t.url)
	w.req.Header.SetMethod(fasthttp.MethodPost)
	w.req.Header.SetContentType("application/json")
	w.r.lat = make([]time.Duration, 0, latCap)
	return w
}

func (w *worker) release() {
	fasthttp.ReleaseRequest(w.req)
	fasthttp.ReleaseResponse(w.resp)
}

// send posts one new event. The latency is counted from since, or from
// right before the POST when since is zero.
func (w *worker) send(since time.Time) {
	seq := w.g.seq.Add(1)
	w.g.mk.put(w.buf, seq)
	now := time.Now()
	w.req.Header.SetBytesV("Stripe-Signature", w.sig.sign(w.buf, now.Unix()))
	w.req.SetBodyRaw(w.buf)
	if since.IsZero() {
		since = now
	}
	if w.g.onSend != nil {
		w.g.onSend(seq, now)
	}
	w.r.sent++
	err := w.g.hc.Do(w.req, w.resp)
	lat := time.Since(since)
	switch {
	case err != nil:
		w.r.errs++
	case w.resp.StatusCode()/100 != 2:
		w.r.non2xx++
	default:
		w.r.ok++
		w.r.lat = append(w.r.lat, lat)
		if bytes.Contains(w.resp.Body(), w.g.dupAt) {
			w.r.duplicates++
		}
		if w.g.onDone != nil {
			w.g.onDone(seq)
		}
	}
}

// merge adds the workers' results up and sorts the latencies.
func merge(ws []*worker, elapsed time.Duration) result {
	out := result{elapsed: elapsed}
	n := 0
	for _, w := range ws {
		n += len(w.r.lat)
	}
	out.lat = make([]time.Duration, 0, n)
	for _, w := range ws {
		out.sent += w.r.sent
		out.ok += w.r.ok
		out.non2xx += w.r.non2xx
		out.errs += w.r.errs
		out.duplicates += w.r.duplicates
		out.lat = append(out.lat, w.r.lat...)
		w.release()
	}
	slices.Sort(out.lat)
	return out
}

// closedLoop runs conns senders for d, each sending its next event as soon
// as the previous one is answered.
func (g *generator) closedLoop(ctx context.Context, conns int, d time.Duration) result {
	ws := make([]*worker, conns)
	for i := range ws {
		ws[i] = g.newWorker(1 << 14)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	go func() {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		stop.Store(true)
	}()
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				w.send(time.Time{})
			}
		}()
	}
	wg.Wait()
	return merge(ws, time.Since(start))
}

// openLoop sends rate events per second for d, whatever the answers, from
// up to senders concurrent requests. Each latency is counted from the time
// the event was due, so a stalled server is charged for the queue it
// causes (no coordinated omission).
func (g *generator) openLoop(ctx context.Context, rate float64, d time.Duration, senders int) result {
	total := int(rate * d.Seconds())
	if total < 1 {
		total = 1
	}
	due := make(chan time.Time, min(total, 1<<20))
	ws := make([]*worker, senders)
	for i := range ws {
		ws[i] = g.newWorker(total/senders + 64)
	}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for at := range due {
				if ctx.Err() != nil {
					continue
				}
				w.send(at)
			}
		}()
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; i < total && ctx.Err() == nil; {
		now := time.Since(start)
		for ; i < total && time.Duration(i)*interval <= now; i++ {
			due <- start.Add(time.Duration(i) * interval)
		}
		if i < total {
			time.Sleep(min(max(time.Until(start.Add(time.Duration(i)*interval)), 50*time.Microsecond), time.Millisecond))
		}
	}
	close(due)
	wg.Wait()
	return merge(ws, time.Since(start))
}
