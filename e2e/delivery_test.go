package e2e

import (
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// misbehaving is a tenant endpoint that answers each attempt from a script.
type misbehaving struct {
	srv   *httptest.Server
	calls atomic.Int32
	mu    sync.Mutex
	ids   []string
	times []time.Time
}

func newMisbehaving(t *testing.T, answer func(n int, w http.ResponseWriter)) *misbehaving {
	t.Helper()
	m := &misbehaving{}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(m.calls.Add(1))
		m.mu.Lock()
		m.ids = append(m.ids, r.Header.Get("webhook-id"))
		m.times = append(m.times, time.Now())
		m.mu.Unlock()
		answer(n, w)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// blackHole accepts connections and never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String() + "/hook"
}

// TestDeliveryToMisbehavingEndpoints follows the retry schedule against
// endpoints that fail in every documented way; each delivery ends
// delivered or dead-lettered, and replaying a dead letter delivers it
// under the same webhook-id.
func TestDeliveryToMisbehavingEndpoints(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	g := startGateway(t, dir, bridgeConfig(freeAddr(), filepath.Join(dir, "data"), copyPlugins(t), stripeMockURL, rcv.srv.URL))

	good := newMisbehaving(t, func(int, http.ResponseWriter) {})
	var fail500 atomic.Bool
	fail500.Store(true)
	endpoints := map[string]*misbehaving{
		"flaky": newMisbehaving(t, func(n int, w http.ResponseWriter) {
			if n <= 2 {
				w.WriteHeader(500)
			}
		}),
		"down": newMisbehaving(t, func(n int, w http.ResponseWriter) {
			if fail500.Load() {
				w.WriteHeader(503)
			}
		}),
		"slow": newMisbehaving(t, func(n int, w http.ResponseWriter) {
			if n == 1 {
				time.Sleep(time.Second)
			}
		}),
		"gone": newMisbehaving(t, func(n int, w http.ResponseWriter) { w.WriteHeader(410) }),
		"throttled": newMisbehaving(t, func(n int, w http.ResponseWriter) {
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(429)
			}
		}),
		"redirect": newMisbehaving(t, func(n int, w http.ResponseWriter) {
			w.Header().Set("Location", good.srv.URL)
			w.WriteHeader(302)
		}),
	}
	ids := map[string]string{}
	for name, m := range endpoints {
		c := g.do("POST", "/v1/endpoints", tableflowKey, map[string]any{"url": m.srv.URL + "/" + name, "types": []string{"payment.confirmed"}})
		if c.status != 201 || !strings.HasPrefix(c.json(t)["secret"].(string), "whsec_") {
			t.Fatalf("create endpoint %s: %d %s", name, c.status, c.body)
		}
		ids[name] = c.json(t)["id"].(string)
	}
	c := g.do("POST", "/v1/endpoints", tableflowKey, map[string]any{"url": blackHole(t), "types": []string{"payment.confirmed"}})
	if c.status != 201 {
		t.Fatalf("create black hole endpoint: %d %s", c.status, c.body)
	}
	ids["blackhole"] = c.json(t)["id"].(string)

	body := stripeEvent("evt_chaos_1", "payment_intent.succeeded", "pi_chaos_1", 990)
	if status, resp, _ := postWebhook(g.url+"/webhooks/stripe/tableflow", body, signStripe(stripeWebhookSecret, body, time.Now())); status != 200 {
		t.Fatalf("webhook: %d %s", status, resp)
	}
	var eventID string
	waitFor(t, "the event", 10*time.Second, func() bool {
		c := g.do("GET", "/v1/events?type=payment.confirmed", tableflowKey, nil)
		data, _ := c.json(t)["data"].([]any)
		if len(data) == 1 {
			eventID = data[0].(map[string]any)["id"].(string)
		}
		return eventID != ""
	})

	// Every delivery ends delivered or dead.
	states := map[string]string{}
	waitFor(t, "every delivery to settle", 30*time.Second, func() bool {
		c := g.do("GET", "/v1/events/"+eventID, tableflowKey, nil)
		settled := true
		for _, d := range c.json(t)["deliveries"].([]any) {
			dm := d.(map[string]any)
			states[dm["endpoint_id"].(string)] = dm["state"].(string)
			if s := dm["state"]; s != "delivered" && s != "dead" {
				settled = false
			}
		}
		return settled && len(states) == len(ids)+1
	})
	want := map[string]string{"backend": "delivered", "flaky": "delivered", "slow": "delivered", "throttled": "delivered",
		"down": "dead", "gone": "dead", "redirect": "dead", "blackhole": "dead"}
	for name, state := range want {
		id := name
		if name != "backend" {
			id = ids[name]
		}
		if states[id] != state {
			t.Errorf("%s: state %q, want %q", name, states[id], state)
		}
	}
	if n := endpoints["flaky"].calls.Load(); n != 3 {
		t.Errorf("flaky endpoint called %d times, want 3 (500, 500, 200)", n)
	}
	if n := endpoints["down"].calls.Load(); n != 4 {
		t.Errorf("down endpoint called %d times, want 4 (the whole schedule)", n)
	}
	if n := endpoints["gone"].calls.Load(); n != 1 {
		t.Errorf("gone endpoint called %d times, want 1", n)
	}
	if c := g.do("GET", "/v1/endpoints/"+ids["gone"], tableflowKey, nil); c.json(t)["enabled"] != false {
		t.Errorf("410 did not disable the endpoint: %s", c.body)
	}
	th := endpoints["throttled"]
	th.mu.Lock()
	if len(th.times) != 2 || th.times[1].Sub(th.times[0]) < 900*time.Millisecond {
		t.Errorf("Retry-After: 1 not honoured: attempts at %v", th.times)
	}
	th.mu.Unlock()
	if n := good.calls.Load(); n != 0 {
		t.Errorf("the redirect target was called %d times; redirects must not be followed", n)
	}

	// The attempt log says what happened.
	c = g.do("GET", "/v1/events/"+eventID, tableflowKey, nil)
	if !strings.Contains(string(c.body), "status 503") || !strings.Contains(string(c.body), "redirect 302 not followed") || !strings.Contains(string(c.body), "timeout") {
		t.Errorf("attempt log lacks the failure reasons: %s", c.body)
	}

	// Replay of the dead letter, once the endpoint is back, delivers it
	// under the same webhook-id.
	fail500.Store(false)
	down := endpoints["down"]
	before := down.calls.Load()
	if c := g.do("POST", "/v1/events/"+eventID+"/replay", tableflowKey, nil); c.status != 202 {
		t.Fatalf("replay: %d %s", c.status, c.body)
	}
	waitFor(t, "the replayed delivery", 10*time.Second, func() bool { return down.calls.Load() > before })
	waitFor(t, "the replay to settle", 10*time.Second, func() bool {
		c := g.do("GET", "/v1/events/"+eventID, tableflowKey, nil)
		for _, d := range c.json(t)["deliveries"].([]any) {
			dm := d.(map[string]any)
			if dm["endpoint_id"] == ids["down"] {
				return dm["state"] == "delivered"
			}
		}
		return false
	})
	down.mu.Lock()
	for _, id := range down.ids {
		if id != eventID {
			t.Errorf("delivery carried webhook-id %q, want the event id %q", id, eventID)
		}
	}
	down.mu.Unlock()
}

// TestFailingEndpointDisabledThenResumed: an endpoint that fails every
// attempt for delivery.disable_after is disabled with a reason while its
// delivery waits, neither dead nor retried; enabling it again through the
// API delivers the backlog at once under the same webhook-id.
func TestFailingEndpointDisabledThenResumed(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	cfg := bridgeConfig(freeAddr(), filepath.Join(dir, "data"), copyPlugins(t), stripeMockURL, rcv.srv.URL)
	cfg = strings.Replace(cfg, "delivery: { schedule: [50ms, 100ms, 150ms],",
		"delivery: { disable_after: 300ms, schedule: [100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms],", 1)
	if !strings.Contains(cfg, "disable_after: 300ms") {
		t.Fatal("the bridge config's delivery line changed; update this test")
	}
	g := startGateway(t, dir, cfg)

	var down atomic.Bool
	down.Store(true)
	ep := newMisbehaving(t, func(_ int, w http.ResponseWriter) {
		if down.Load() {
			w.WriteHeader(503)
		}
	})
	c := g.do("POST", "/v1/endpoints", tableflowKey, map[string]any{"url": ep.srv.URL + "/hook", "types": []string{"payment.confirmed"}})
	if c.status != 201 {
		t.Fatalf("create endpoint: %d %s", c.status, c.body)
	}
	id := c.json(t)["id"].(string)

	body := stripeEvent("evt_down_1", "payment_intent.succeeded", "pi_down_1", 1990)
	if status, resp, _ := postWebhook(g.url+"/webhooks/stripe/tableflow", body, signStripe(stripeWebhookSecret, body, time.Now())); status != 200 {
		t.Fatalf("webhook: %d %s", status, resp)
	}
	var endpoint map[string]any
	waitFor(t, "the failing endpoint to be disabled", 15*time.Second, func() bool {
		endpoint = g.do("GET", "/v1/endpoints/"+id, tableflowKey, nil).json(t)
		return endpoint["enabled"] == false
	})
	reason, _ := endpoint["disabled_reason"].(string)
	if !strings.HasPrefix(reason, "every attempt failed from ") || endpoint["failing_since"] == nil {
		t.Fatalf("disabled endpoint: %v", endpoint)
	}
	calls := ep.calls.Load()
	if calls < 3 {
		t.Fatalf("disabled after %d attempts; the failures must span disable_after", calls)
	}

	// While disabled its delivery waits: pending, no more attempts.
	var eventID string
	state := func() string {
		c := g.do("GET", "/v1/events?type=payment.confirmed", tableflowKey, nil)
		data, _ := c.json(t)["data"].([]any)
		if len(data) != 1 {
			return ""
		}
		eventID = data[0].(map[string]any)["id"].(string)
		for _, d := range g.do("GET", "/v1/events/"+eventID, tableflowKey, nil).json(t)["deliveries"].([]any) {
			if dm := d.(map[string]any); dm["endpoint_id"] == id {
				return dm["state"].(string)
			}
		}
		return ""
	}
	time.Sleep(time.Second) // the rest of the schedule, had it gone on
	if s := state(); s != "pending" || ep.calls.Load() != calls {
		t.Fatalf("while disabled: delivery %q, %d attempts (were %d)", s, ep.calls.Load(), calls)
	}
	if m := string(g.do("GET", "/metrics", "", nil).body); !strings.Contains(m, `pipecore_endpoints_disabled_total{reason="failing"} 1`) {
		t.Errorf("metrics lack the disabled endpoint")
	}

	// Back up and enabled again: delivered at once (not after the
	// disabled-endpoint recheck), same webhook-id, streak cleared.
	down.Store(false)
	enabled := time.Now()
	if c := g.do("PATCH", "/v1/endpoints/"+id, tableflowKey, map[string]any{"enabled": true}); c.status != 200 {
		t.Fatalf("enable: %d %s", c.status, c.body)
	}
	waitFor(t, "the backlog delivered", 10*time.Second, func() bool { return state() == "delivered" })
	if took := time.Since(enabled); took > 5*time.Second {
		t.Errorf("the backlog took %s after enabling", took)
	}
	endpoint = g.do("GET", "/v1/endpoints/"+id, tableflowKey, nil).json(t)
	if endpoint["enabled"] != true || endpoint["disabled_reason"] != nil || endpoint["failing_since"] != nil {
		t.Errorf("enabled endpoint: %v", endpoint)
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	for _, wid := range ep.ids {
		if wid != eventID {
			t.Fatalf("webhook-id %q, want %q on every attempt", wid, eventID)
		}
	}
}
