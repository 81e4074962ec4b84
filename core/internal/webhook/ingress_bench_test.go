//go:build unix

package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/webhook"
	"github.com/pipecore/pipecore/sdk/provider"
)

// BenchmarkIngress is the whole ingress path of a signed 1.5 KB Stripe
// event without the network: resolve, verify, dedup key, durable accept
// (group committed, fsync'd) and announce, 64 webhooks in flight (as
// e2e/cmd/ingressbench loads it). cpu-µs/op is the process's CPU time per
// webhook, the figure that decides how many a core can take.
func BenchmarkIngress(b *testing.B) {
	const whsec = "whsec_bench"
	st, err := store.OpenBolt(filepath.Join(b.TempDir(), "pipecore.db"), store.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	reg, err := tenant.New(map[string]config.Tenant{"bench": {APIKeys: []string{apiKey},
		Providers: map[string]config.Provider{"stripe": {Credentials: map[string]string{"webhook_secret": whsec}}}}})
	if err != nil {
		b.Fatal(err)
	}
	spec := &provider.WebhookSpec{Scheme: provider.SchemeStripe, Header: "Stripe-Signature", SecretField: "webhook_secret", Tolerance: 300 * time.Second, DedupKey: []string{"json:id"}}
	in := webhook.New(webhook.Config{Tenants: reg, Plugins: catalog{"stripe": {Name: "stripe", Version: "1", Webhook: spec}},
		Store: st, Bus: &recorder{}, Topic: "inbox", PublicURL: "http://gw.example"})
	var seq atomic.Int64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.SetBytes(int64(len(stripeEvent)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		mac := hmac.New(sha256.New, []byte(whsec))
		for pb.Next() {
			n := seq.Add(1)
			body := strings.Replace(stripeEvent, "evt_bench_000000000001", fmt.Sprintf("evt_bench_%012d", n), 1)
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			mac.Reset()
			mac.Write([]byte(ts + "." + body))
			ctx.Request.Reset()
			ctx.Response.Reset()
			ctx.Request.Header.SetMethod(fasthttp.MethodPost)
			ctx.Request.SetRequestURI("/webhooks/stripe/bench")
			ctx.Request.Header.SetContentType("application/json")
			ctx.Request.Header.Set("Stripe-Signature", "t="+ts+",v1="+hex.EncodeToString(mac.Sum(nil)))
			ctx.Request.SetBodyString(body)
			ctx.SetUserValue("provider", "stripe")
			ctx.SetUserValue("tenant", "bench")
			in.Post(&ctx)
			if ctx.Response.StatusCode() != fasthttp.StatusOK {
				b.Errorf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
