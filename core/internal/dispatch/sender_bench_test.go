package dispatch_test

import (
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/dispatch"
)

// BenchmarkSend measures delivery throughput with 32 parallel senders, each
// signing and POSTing a 1.5 KB envelope to a local fasthttp receiver (the
// setup of perf-limits rows 6a/6b). "sender" is dispatch.Sender (net/http);
// "fasthttp-client" does the same signing and headers with a fasthttp
// client, as the baseline the choice of net/http is weighed against.
// sends/s is the figure to compare; the receiver shares the CPU.
func BenchmarkSend(b *testing.B) {
	url := fasthttpReceiver(b)
	secrets := []string{mustSecret(b)}
	body := envelope(1500)
	const senders = 32
	parallelism := (senders + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)

	b.Run("sender", func(b *testing.B) {
		s := newSender(b, dispatch.SenderConfig{})
		tgt := dispatch.Target{URL: url, Secrets: secrets}
		m := dispatch.Message{ID: "msg_01JDQ7Z8M2", Body: body}
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if res := s.Send(b.Context(), tgt, m); res.Outcome != dispatch.Delivered {
					b.Errorf("Send: %+v", res)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
	})

	b.Run("fasthttp-client", func(b *testing.B) {
		c := &fasthttp.Client{MaxConnsPerHost: 64, ReadTimeout: 15 * time.Second, WriteTimeout: 15 * time.Second}
		b.Cleanup(c.CloseIdleConnections)
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for pb.Next() {
				ts := time.Now()
				sig, err := dispatch.Sign(secrets, "msg_01JDQ7Z8M2", ts, body)
				if err != nil {
					b.Errorf("Sign: %v", err)
					return
				}
				req.Reset()
				req.SetRequestURI(url)
				req.Header.SetMethod(fasthttp.MethodPost)
				req.Header.Set("webhook-id", "msg_01JDQ7Z8M2")
				req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
				req.Header.Set("webhook-signature", sig)
				req.Header.SetContentType("application/json")
				req.Header.SetUserAgent("PipeCore-Webhooks/1")
				req.SetBody(body)
				if err := c.DoTimeout(req, resp, 15*time.Second); err != nil || resp.StatusCode() != 200 {
					b.Errorf("Do: %v, status %d", err, resp.StatusCode())
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
	})
}

// fasthttpReceiver serves 200 "ok" to every request on 127.0.0.1.
func fasthttpReceiver(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if len(ctx.Request.Header.Peek("webhook-signature")) == 0 {
			ctx.SetStatusCode(fasthttp.StatusBadRequest)
			return
		}
		ctx.SetBodyString("ok")
	}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	tb.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return "http://" + ln.Addr().String() + "/hooks"
}
