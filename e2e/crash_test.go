package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestCrashMidBurstLosesNothing sends 2,000 signed webhooks from 50
// concurrent senders, SIGKILLs the gateway mid-burst and starts it again on
// the same data directory: every webhook that got a 2xx must reach the
// tenant endpoint at least once, always under the same webhook-id.
func TestCrashMidBurstLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	rcv := newReceiver(t)
	dir := t.TempDir()
	data, plugins := filepath.Join(dir, "data"), copyPlugins(t)
	listen := freeAddr()
	cfg := bridgeConfig(listen, data, plugins, stripeMockURL, rcv.srv.URL)
	g := startGateway(t, dir, cfg)
	hook := g.url + "/webhooks/stripe/tableflow"

	const total, senders = 2000, 50
	var next, sent atomic.Int64
	var mu sync.Mutex
	acked := map[string]bool{} // provider payment ids whose webhook got a 2xx
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				pi := fmt.Sprintf("pi_crash_%05d", i)
				body := stripeEvent(fmt.Sprintf("evt_crash_%05d", i), "payment_intent.succeeded", pi, int(i))
				status, _, err := postWebhook(hook, body, signStripe(stripeWebhookSecret, body, time.Now()))
				if n := sent.Add(1); n == total*2/5 {
					// Kill the gateway while 50 senders are mid-flight.
					_ = g.cmd.Process.Signal(syscall.SIGKILL)
					close(killed)
				}
				if err == nil && status/100 == 2 {
					mu.Lock()
					acked[pi] = true
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	<-killed
	g.wait(10 * time.Second)
	t.Logf("acknowledged before and around the crash: %d of %d", len(acked), total)
	if len(acked) < total/5 {
		t.Fatalf("only %d webhooks were acknowledged before the crash; the test proves nothing", len(acked))
	}

	// Restart on the same data: the inbox still holds what was acknowledged.
	startGateway(t, t.TempDir(), cfg)
	byPI := map[string]map[string]int{} // pi -> webhook-id -> deliveries
	waitFor(t, "every acknowledged webhook at the tenant endpoint", 90*time.Second, func() bool {
		for k := range byPI {
			delete(byPI, k)
		}
		for _, d := range rcv.deliveries() {
			var env struct {
				Data struct {
					PI string `json:"provider_payment_id"`
				} `json:"data"`
			}
			if json.Unmarshal(d.body, &env) != nil || !d.valid {
				t.Fatalf("invalid delivery %q: %s", d.id, d.body)
			}
			if byPI[env.Data.PI] == nil {
				byPI[env.Data.PI] = map[string]int{}
			}
			byPI[env.Data.PI][d.id]++
		}
		for pi := range acked {
			if byPI[pi] == nil {
				return false
			}
		}
		return true
	})
	dups := 0
	for pi, ids := range byPI {
		if len(ids) != 1 {
			t.Errorf("%s arrived under %d different webhook-ids: %v", pi, len(ids), ids)
		}
		for _, n := range ids {
			dups += n - 1
		}
		if !strings.HasPrefix(pi, "pi_crash_") {
			t.Errorf("unexpected delivery for %s", pi)
		}
	}
	t.Logf("delivered %d distinct webhooks (%d acknowledged), %d duplicate deliveries", len(byPI), len(acked), dups)
	fmt.Printf("crash test: %d acknowledged, %d delivered, %d duplicates\n", len(acked), len(byPI), dups)
}
