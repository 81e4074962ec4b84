// Command ingressbench measures PipeCore's webhook ingress on this machine
// against a bare baseline, and the latency from a provider's POST to the
// tenant's receipt of the event.
//
// It starts bin/pipecore serve with one tenant (Stripe plugin, one endpoint
// served in this process) and, in a process of its own (this program run
// again), a bare fasthttp server that verifies the same Stripe signature
// and writes each body durably to bbolt with db.Batch (row 4c of
// perf-limits.md). A closed-loop generator
// sends signed 1.5 KB Stripe events, each unique, over -conns keep-alive
// connections to each server in turn (baseline, gateway, baseline,
// gateway), waiting after each gateway phase until every accepted webhook
// has reached the endpoint. Then it loads the gateway at half its measured
// rate with an open-loop generator, and finally sends -rate webhooks/s and
// times each one until its event arrives at the endpoint.
//
// With -profile DIR the gateway serves net/http/pprof on a loopback port
// (PIPECORE_PPROF) and a CPU profile of it is saved for every closed-loop
// phase and for the drain after it.
//
// Everything listens on 127.0.0.1; the temporary directory is removed and
// the gateway is stopped on exit and on Ctrl-C. The targets are reported,
// not asserted: the exit status is non-zero only when the setup fails (1)
// or the run is interrupted (130).
//
//	cd e2e && go run ./cmd/ingressbench -bin ../bin
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	bin         string
	duration    time.Duration
	conns       int
	rate        float64
	e2eDuration time.Duration
	warmup      time.Duration
	rounds      int
	deliver     bool
	profile     string
	inProcess   bool
}

func main() {
	if dir := os.Getenv(baselineEnv); dir != "" {
		os.Exit(serveBaseline(dir))
	}
	os.Exit(run())
}

func run() int {
	var o options
	flag.StringVar(&o.bin, "bin", "./bin", "directory with pipecore and plugins/ (make build)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each load phase")
	flag.IntVar(&o.conns, "conns", 64, "concurrent connections of the closed-loop phases")
	flag.Float64Var(&o.rate, "rate", 500, "webhooks per second of the end-to-end phase")
	flag.DurationVar(&o.e2eDuration, "e2e-duration", 10*time.Second, "length of the end-to-end phase")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "closed-loop warm-up of each server, not counted")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of baseline then gateway; the report takes the median")
	flag.BoolVar(&o.deliver, "deliver", true, "give the tenant an endpoint; false measures ingress and normalisation without delivery, and skips the end-to-end phase")
	flag.BoolVar(&o.inProcess, "baseline-in-process", false, "run the baseline server inside this process, beside the load generator and the endpoint, as runs before 2026-11-27 did, instead of in a process of its own")
	flag.StringVar(&o.profile, "profile", "", "directory for CPU profiles of the gateway (go tool pprof bin/pipecore FILE): one per closed-loop gateway phase and one of the drain after it")
	flag.Parse()
	if o.duration <= 0 || o.e2eDuration <= 0 || o.warmup < 0 || o.conns < 1 || o.rate <= 0 || o.rounds < 1 {
		fmt.Fprintln(os.Stderr, "ingressbench: -duration, -e2e-duration, -conns, -rate and -rounds must be positive")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b, err := setup(ctx, o)
	if err != nil {
		b.close()
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "ingressbench: interrupted")
			return 130
		}
		fmt.Fprintln(os.Stderr, "ingressbench: setup:", err)
		return 1
	}
	rep := b.measure()
	b.close()
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "ingressbench: interrupted")
		return 130
	}
	rep.print(os.Stdout)
	return 0
}

// bench is the running setup.
type bench struct {
	o      options
	ctx    context.Context
	dir    string
	stripe *stripeAPI
	rcv    *receiver
	base   baselineServer
	gw     *gateway
	mk     *eventMaker
	seq    atomic.Uint64
	secret string // the Stripe webhook signing secret of both servers

	baseT, gwT target
	// gwAccepted counts the gateway's 2xx answers that were not
	// duplicates: each must become one event at the endpoint.
	gwAccepted int64
	log        io.Writer
	pprofAddr  string     // the gateway's pprof address with -profile
	loadStart  string     // /proc/loadavg when the run started
	fsyncStart fsyncTimes // fdatasync before the run
}

func setup(ctx context.Context, o options) (*bench, error) {
	b := &bench{o: o, ctx: ctx, secret: "whsec_ingressbench_" + randomHex(12), mk: newEventMaker(time.Now()), log: os.Stderr, loadStart: loadAvg()}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return b, err
	}
	for _, p := range []string{"pipecore", "plugins/pipecore-plugin-stripe", "plugins/SHA256SUMS"} {
		if _, err := os.Stat(filepath.Join(bin, p)); err != nil {
			return b, fmt.Errorf("%s missing in %s: run make build", p, bin)
		}
	}
	if b.dir, err = os.MkdirTemp("", "ingressbench-"); err != nil {
		return b, err
	}
	if b.fsyncStart, err = fsyncProbe(b.dir, 500); err != nil {
		return b, fmt.Errorf("fsync probe: %w", err)
	}
	if b.stripe, err = startStripeAPI(); err != nil {
		return b, err
	}
	endpointSecret := newEndpointSecret()
	if b.rcv, err = startReceiver(endpointSecret); err != nil {
		return b, err
	}
	if o.inProcess {
		b.base, err = startBaseline(b.dir, b.secret)
	} else {
		b.base, err = startBaselineProc(b.dir, b.secret)
	}
	if err != nil {
		return b, err
	}
	b.baseT = target{name: "baseline", addr: b.base.addr(), url: "http://" + b.base.addr() + "/webhooks/stripe/" + benchTenant, secret: b.secret}

	addr, err := freeAddr()
	if err != nil {
		return b, err
	}
	gwDir := filepath.Join(b.dir, "gateway")
	if err := os.Mkdir(gwDir, 0o700); err != nil {
		return b, err
	}
	receiverURL := b.rcv.url()
	if !o.deliver {
		receiverURL = ""
	}
	cfg := gatewayConfig(addr, filepath.Join(gwDir, "data"), filepath.Join(bin, "plugins"), b.stripe.url, b.secret, receiverURL, endpointSecret)
	var env []string
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return b, err
		}
		if b.pprofAddr, err = freeAddr(); err != nil {
			return b, err
		}
		env = append(env, "PIPECORE_PPROF="+b.pprofAddr)
	}
	if b.gw, err = startGateway(bin, gwDir, addr, cfg, env); err != nil {
		return b, err
	}
	if err := b.gw.waitReady(30 * time.Second); err != nil {
		return b, err
	}
	b.gwT = target{name: "gateway", addr: addr, url: "http://" + addr + "/webhooks/stripe/" + benchTenant, secret: b.secret}

	// One webhook each, to prove the setup before timing anything.
	for _, t := range []target{b.baseT, b.gwT} {
		g := newGenerator(t, b.mk, &b.seq, 1)
		w := g.newWorker(1)
		w.send(time.Time{})
		r := merge([]*worker{w}, 0)
		g.close()
		if r.ok != 1 || r.duplicates != 0 {
			return b, fmt.Errorf("%s did not accept a signed webhook (%d non-2xx, %d errors)", t.name, r.non2xx, r.errs)
		}
		if t.name == "gateway" {
			b.gwAccepted++
		}
	}
	if _, ok := b.drain(15 * time.Second); !ok {
		return b, fmt.Errorf("the first accepted webhook did not get through the gateway within 15s (receiver: %d delivered, %d failed verification, %d without a known provider_payment_id)\n%s",
			b.rcv.unique.Load(), b.rcv.invalid.Load(), b.rcv.foreign.Load(), b.gw.logTail(20))
	}
	return b, ctx.Err()
}

// close stops everything and removes the temporary directory. Safe on a
// partial setup.
func (b *bench) close() {
	if b.gw != nil {
		if b.ctx.Err() != nil {
			b.gw.kill()
		} else {
			b.gw.stop()
		}
	}
	if b.base != nil {
		b.base.close()
	}
	if b.rcv != nil {
		b.rcv.close()
	}
	if b.stripe != nil {
		b.stripe.close()
	}
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// cpuSnap is the CPU time used so far by this process (the load generator
// and the endpoint), the baseline process, the gateway and its plugins.
type cpuSnap struct{ self, base, gw, plugins time.Duration }

func (b *bench) cpu() cpuSnap {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	s := cpuSnap{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), base: b.base.cpuTime()}
	s.gw, s.plugins = b.gw.cpu()
	return s
}

func (s cpuSnap) sub(o cpuSnap) cpuSnap {
	return cpuSnap{self: s.self - o.self, base: s.base - o.base, gw: s.gw - o.gw, plugins: s.plugins - o.plugins}
}

// share formats the CPU used over wall as cores.
func (s cpuSnap) share(wall time.Duration) string {
	c := func(d time.Duration) float64 { return d.Seconds() / wall.Seconds() }
	return fmt.Sprintf("cores used: load generator %.2f, baseline %.2f, pipecore %.2f, plugin %.2f", c(s.self), c(s.base), c(s.gw), c(s.plugins))
}

// through counts the accepted webhooks that have gone through the
// gateway: delivered to the endpoint, or without one (-deliver=false)
// turned into events.
func (b *bench) through() int64 {
	if b.o.deliver {
		return b.rcv.unique.Load()
	}
	n, err := b.gw.normalised()
	if err != nil {
		return -1
	}
	return n
}

// drain waits until every webhook the gateway accepted has gone through
// it, for at most maxWait and while there is progress.
func (b *bench) drain(maxWait time.Duration) (time.Duration, bool) {
	start := time.Now()
	last, lastMove := b.through(), start
	for {
		got := b.through()
		if got >= b.gwAccepted {
			return time.Since(start), true
		}
		if got != last {
			last, lastMove = got, time.Now()
		}
		if time.Since(start) > maxWait || time.Since(lastMove) > 30*time.Second || b.ctx.Err() != nil {
			return time.Since(start), false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const maxDrain = 10 * time.Minute

// gatewayPhase is one closed-loop phase against the gateway and the wait
// for its events to reach the endpoint.
type gatewayPhase struct {
	res      result
	cpu      cpuSnap // during the load
	backlog  int64   // accepted but not yet through when the load stopped
	drain    time.Duration
	drained  bool
	drainCPU cpuSnap
}

func (b *bench) closed(t target, d time.Duration) (result, cpuSnap) {
	g := newGenerator(t, b.mk, &b.seq, b.o.conns)
	defer g.close()
	before := b.cpu()
	r := g.closedLoop(b.ctx, b.o.conns, d)
	return r, b.cpu().sub(before)
}

func (b *bench) closedGateway(d time.Duration, name string) gatewayPhase {
	var p gatewayPhase
	loaded := b.profileGateway(name+"-loaded", d-time.Second)
	p.res, p.cpu = b.closed(b.gwT, d)
	loaded()
	b.gwAccepted += p.res.ok - p.res.duplicates
	p.backlog = b.gwAccepted - b.through()
	drain := b.profileGateway(name+"-drain", min(d, 10*time.Second))
	before := b.cpu()
	p.drain, p.drained = b.drain(maxDrain)
	p.drainCPU = b.cpu().sub(before)
	drain()
	return p
}

// profileGateway starts a CPU profile of the gateway of length d, saved
// as name.pprof in the -profile directory, and returns a function that
// waits for it. Without -profile it does nothing.
func (b *bench) profileGateway(name string, d time.Duration) (wait func()) {
	if b.o.profile == "" || d < time.Second {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := filepath.Join(b.o.profile, name+".pprof")
		if err := fetchProfile("http://"+b.pprofAddr+"/debug/pprof/profile?seconds="+strconv.Itoa(int(d.Seconds())), path, d); err != nil {
			b.logf("profile %s: %v", name, err)
			return
		}
		b.logf("profile %s", path)
	}()
	return func() { <-done }
}

func (b *bench) logf(format string, args ...any) { fmt.Fprintf(b.log, "  · "+format+"\n", args...) }

func (b *bench) logResult(what string, r result, c cpuSnap) {
	b.logf("%-22s %9s/s  p50 %s  p99 %s  (%s ok, %d non-2xx, %d errors, %d duplicates; %s)",
		what, thousands(int64(r.rate())), ms(r.pct(50)), ms(r.pct(99)), thousands(r.ok), r.non2xx, r.errs, r.duplicates, c.share(r.elapsed))
}

func (b *bench) logGateway(p gatewayPhase) {
	b.logResult("gateway", p.res, p.cpu)
	perOK := func(d time.Duration, n int64) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(n))
	}
	b.logf("  gateway CPU per accepted webhook while loaded: pipecore %s, plugin %s", perOK(p.cpu.gw, p.res.ok), perOK(p.cpu.plugins, p.res.ok))
	state := "drained"
	if !p.drained {
		state = "NOT drained"
	}
	b.logf("  %s webhooks accepted but not yet %s when the load stopped; %s in %.1fs (pipecore %s, plugin %s per backlog webhook)",
		thousands(p.backlog), b.throughWord(), state, p.drain.Seconds(), perOK(p.drainCPU.gw, p.backlog), perOK(p.drainCPU.plugins, p.backlog))
}

func (b *bench) throughWord() string {
	if b.o.deliver {
		return "delivered"
	}
	return "normalised"
}

// report is what the run measured.
type report struct {
	o          options
	loadStart  string
	loadEnd    string
	fsyncStart fsyncTimes
	fsyncEnd   fsyncTimes
	through    string
	bodySize   int
	base       []result
	gw         []gatewayPhase
	half       result
	halfBase   result // the baseline at the same rate, for comparison
	halfRate   float64
	halfDrain  bool
	e2e        result
	e2eLat     []time.Duration // sorted
	e2eOK      int64
	e2eArrived int64
	e2eDrained bool
	stripe     string
	rcvInvalid int64
	rcvDups    int64
	rcvForeign int64
	gwLog      []string
}

func (b *bench) measure() *report {
	rep := &report{o: b.o, bodySize: b.mk.size(), loadStart: b.loadStart, through: b.throughWord(), fsyncStart: b.fsyncStart}
	defer func() {
		rep.loadEnd = loadAvg()
		rep.fsyncEnd, _ = fsyncProbe(b.dir, 500)
	}()
	fmt.Fprintf(b.log, "ingressbench: %d-byte events, %d connections, %s per phase, %d rounds; baseline %s, gateway %s\n",
		b.mk.size(), b.o.conns, b.o.duration, b.o.rounds, b.baseT.addr, b.gwT.addr)
	if b.o.warmup > 0 {
		r, c := b.closed(b.baseT, b.o.warmup)
		b.logResult("warm-up baseline", r, c)
		p := b.closedGateway(b.o.warmup, "warmup")
		b.logResult("warm-up gateway", p.res, p.cpu)
	}
	for i := 0; i < b.o.rounds && b.ctx.Err() == nil; i++ {
		fmt.Fprintf(b.log, "round %d/%d\n", i+1, b.o.rounds)
		r, c := b.closed(b.baseT, b.o.duration)
		b.logResult("baseline", r, c)
		rep.base = append(rep.base, r)
		if b.ctx.Err() != nil {
			break
		}
		p := b.closedGateway(b.o.duration, fmt.Sprintf("round%d", i+1))
		b.logGateway(p)
		rep.gw = append(rep.gw, p)
	}
	if b.ctx.Err() != nil {
		return rep
	}

	// Half the measured rate, open loop.
	rep.halfRate = median(rep.gw, func(p gatewayPhase) float64 { return p.res.rate() }) / 2
	if rep.halfRate >= 1 {
		fmt.Fprintf(b.log, "gateway at half rate: %.0f/s open loop for %s\n", rep.halfRate, b.o.duration)
		g := newGenerator(b.gwT, b.mk, &b.seq, 4*b.o.conns)
		before := b.cpu()
		rep.half = g.openLoop(b.ctx, rep.halfRate, b.o.duration, 4*b.o.conns)
		g.close()
		b.gwAccepted += rep.half.ok - rep.half.duplicates
		b.logResult("gateway half rate", rep.half, b.cpu().sub(before))
		var wait time.Duration
		wait, rep.halfDrain = b.drain(maxDrain)
		b.logf("  drained in %.1fs", wait.Seconds())
		if b.ctx.Err() == nil {
			g := newGenerator(b.baseT, b.mk, &b.seq, 4*b.o.conns)
			before := b.cpu()
			rep.halfBase = g.openLoop(b.ctx, rep.halfRate, b.o.duration, 4*b.o.conns)
			g.close()
			b.logResult("baseline same rate", rep.halfBase, b.cpu().sub(before))
		}
	}
	if b.ctx.Err() != nil {
		return rep
	}
	rep.stripe = b.stripe.describe()
	rep.gwLog = b.gw.logLines()
	if !b.o.deliver {
		return rep
	}

	// End to end: provider POST to tenant receipt.
	fmt.Fprintf(b.log, "end to end: %.0f/s for %s\n", b.o.rate, b.o.e2eDuration)
	total := max(int(b.o.rate*b.o.e2eDuration.Seconds()), 1)
	lo := b.seq.Load() + 1
	b.rcv.watch(lo, lo+uint64(total))
	sentAt := make([]int64, total)
	accepted := make([]bool, total)
	g := newGenerator(b.gwT, b.mk, &b.seq, 4*b.o.conns)
	g.onSend = func(seq uint64, at time.Time) {
		if i := seq - lo; i < uint64(total) {
			sentAt[i] = at.UnixNano()
		}
	}
	g.onDone = func(seq uint64) {
		if i := seq - lo; i < uint64(total) {
			accepted[i] = true
		}
	}
	before := b.cpu()
	rep.e2e = g.openLoop(b.ctx, b.o.rate, b.o.e2eDuration, 4*b.o.conns)
	g.close()
	b.gwAccepted += rep.e2e.ok - rep.e2e.duplicates
	b.logResult("gateway e2e phase", rep.e2e, b.cpu().sub(before))
	var wait time.Duration
	wait, rep.e2eDrained = b.drain(time.Minute)
	b.logf("  last event arrived %.1fs after the load stopped", wait.Seconds())
	for i, ok := range accepted {
		if !ok {
			continue
		}
		rep.e2eOK++
		if at, ok := b.rcv.arrival(lo + uint64(i)); ok {
			rep.e2eArrived++
			rep.e2eLat = append(rep.e2eLat, time.Duration(at-sentAt[i]))
		}
	}
	slices.Sort(rep.e2eLat)

	rep.stripe = b.stripe.describe()
	rep.rcvInvalid, rep.rcvDups, rep.rcvForeign = b.rcv.invalid.Load(), b.rcv.dups.Load(), b.rcv.foreign.Load()
	rep.gwLog = b.gw.logLines()
	return rep
}

// median returns the median of f over xs; 0 if xs is empty.
func median[T any](xs []T, f func(T) float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (rep *report) print(w io.Writer) {
	o := rep.o
	fmt.Fprintf(w, "\nPipeCore ingress benchmark — %d cores, %s, %s, %s\n", runtime.NumCPU(), runtime.Version(), cpuModel(), time.Now().UTC().Format("2006-01-02 15:04 MST"))
	where := "in a process of its own"
	if o.inProcess {
		where = "inside the load generator's process"
	}
	fmt.Fprintf(w, "%d-byte signed Stripe events, each unique; closed loop over %d keep-alive connections, %s per phase; median of %d rounds (baseline and gateway interleaved; baseline %s)\n\n",
		rep.bodySize, o.conns, o.duration, len(rep.gw), where)
	fmt.Fprintf(w, "%-40s %11s %9s %9s %8s %7s\n", "", "accepted/s", "p50", "p99", "non-2xx", "errors")
	row := func(name string, rs []result) float64 {
		rate := median(rs, func(r result) float64 { return r.rate() })
		p50 := median(rs, func(r result) float64 { return float64(r.pct(50)) })
		p99 := median(rs, func(r result) float64 { return float64(r.pct(99)) })
		var non2xx, errs int64
		for _, r := range rs {
			non2xx += r.non2xx
			errs += r.errs
		}
		fmt.Fprintf(w, "%-40s %11s %9s %9s %8d %7d\n", name, thousands(int64(rate)), ms(time.Duration(p50)), ms(time.Duration(p99)), non2xx, errs)
		return rate
	}
	gwRes := make([]result, len(rep.gw))
	for i, p := range rep.gw {
		gwRes[i] = p.res
	}
	baseRate := row("baseline (fasthttp+HMAC+bbolt batch)", rep.base)
	gwRate := row("gateway /webhooks/stripe/{tenant}", gwRes)
	ratio := 0.0
	if baseRate > 0 {
		ratio = gwRate / baseRate
	}
	fmt.Fprintf(w, "ratio gateway/baseline: %.2f  (target ≥ 0.90: %s)\n", ratio, verdict(ratio >= 0.90))
	fmt.Fprintf(w, "gateway at half rate (%s/s open loop, %s/s achieved, %d failed): p50 %s  p99 %s  (target p99 < 20 ms: %s)\n",
		thousands(int64(rep.halfRate)), thousands(int64(rep.half.rate())), rep.half.failed(), ms(rep.half.pct(50)), ms(rep.half.pct(99)), verdict(rep.half.pct(99) < 20*time.Millisecond && rep.half.ok > 0))
	if rep.halfBase.sent > 0 {
		fmt.Fprintf(w, "baseline at the same rate, for comparison: p50 %s  p99 %s  (%d failed)\n", ms(rep.halfBase.pct(50)), ms(rep.halfBase.pct(99)), rep.halfBase.failed())
	}
	if o.deliver {
		e2e := result{lat: rep.e2eLat}
		fmt.Fprintf(w, "end to end at %.0f/s: delivered %d/%d, p50 %s, p99 %s  (provider POST → tenant endpoint receipt; %d of %d POSTs accepted)\n",
			o.rate, rep.e2eArrived, rep.e2eOK, ms(e2e.pct(50)), ms(e2e.pct(99)), rep.e2e.ok, rep.e2e.sent)
	} else {
		fmt.Fprintln(w, "end to end: skipped (-deliver=false: the tenant has no endpoint)")
	}

	fmt.Fprintln(w, "\ndetails:")
	for i, p := range rep.gw {
		drained := ""
		if !p.drained {
			drained = " (NOT all)"
		}
		roundRatio := 0.0
		if r := rep.base[i].rate(); r > 0 {
			roundRatio = p.res.rate() / r
		}
		fmt.Fprintf(w, "  round %d: baseline %s/s, gateway %s/s, ratio %.2f; %s accepted webhooks not yet %s at the end of the phase, %s %.1fs later%s\n",
			i+1, thousands(int64(rep.base[i].rate())), thousands(int64(p.res.rate())), roundRatio, thousands(p.backlog), rep.through, rep.through, p.drain.Seconds(), drained)
	}
	fmt.Fprintf(w, "  latencies are of 2xx answers, measured by the client; open-loop latencies count from the time each POST was due\n")
	if o.deliver {
		fmt.Fprintf(w, "  receiver: %d deliveries failed verification, %d repeated, %d named no generated payment\n", rep.rcvInvalid, rep.rcvDups, rep.rcvForeign)
	}
	fmt.Fprintf(w, "  host: load average (1, 5, 15 min) %s at start, %s at end; 1.5 KB write+fdatasync %s at start, %s at end (perf-limits row 3a: median 0.20 ms)\n",
		rep.loadStart, rep.loadEnd, rep.fsyncStart, rep.fsyncEnd)
	fmt.Fprintf(w, "  Stripe API (plugin base_url): %s\n", rep.stripe)
	fmt.Fprintf(w, "  gateway log (level warn): %d lines\n", len(rep.gwLog))
	for _, l := range rep.gwLog[:min(len(rep.gwLog), 5)] {
		fmt.Fprintf(w, "    %s\n", clip(l, 200))
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// thousands formats n with thin separators: 21,345.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
