package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/testkit"
	"github.com/pipecore/pipecore/core/internal/webhook"
	"github.com/pipecore/pipecore/sdk/provider"
)

type catalog map[string]provider.Info

func (c catalog) Catalog() map[string]provider.Info { return c }

type recorder struct {
	mu  sync.Mutex
	ids []string
}

func (r *recorder) Publish(_, _, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
	return nil
}

const (
	secret     = "hook-secret-current"
	previous   = "hook-secret-previous"
	apiKey     = "pc_live_acme_0123456789abcdefghijklmnopqrstuvwxyz"
	otherKey   = "pc_live_other_0123456789abcdefghijklmnopqrstuvwxyz"
	otherValue = "other-tenant-secret"
)

// gauge counts the webhooks the ingress says are in flight.
type gauge struct{ enters, leaves atomic.Int32 }

func (g *gauge) Enter() { g.enters.Add(1) }
func (g *gauge) Leave() { g.leaves.Add(1) }

type env struct {
	url   string
	st    *store.Bolt
	bus   *recorder
	gauge *gauge
	limit int
}

func setup(t *testing.T) *env {
	t.Helper()
	st := testkit.Store(t)
	off := false
	reg, err := tenant.New(map[string]config.Tenant{
		"acme": {APIKeys: []string{apiKey}, Providers: map[string]config.Provider{
			"fake":    {Credentials: map[string]string{"webhook_secret": secret, "webhook_secret_previous": previous}},
			"off":     {Enabled: &off, Credentials: map[string]string{"webhook_secret": secret}},
			"nohooks": {},
			"down":    {Credentials: map[string]string{"webhook_secret": secret}},
		}},
		"other": {APIKeys: []string{otherKey}, Providers: map[string]config.Provider{
			"fake": {Credentials: map[string]string{"webhook_secret": otherValue}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := &provider.WebhookSpec{Scheme: provider.SchemeHMACSHA256, Header: "X-Fake-Signature", SecretField: "webhook_secret", DedupKey: []string{"json:id"}}
	cat := catalog{
		"fake":    {Name: "fake", Version: "1", Webhook: spec},
		"off":     {Name: "off", Version: "1", Webhook: spec},
		"nohooks": {Name: "nohooks", Version: "1"},
	}
	e := &env{st: st, bus: &recorder{}, gauge: &gauge{}, limit: 4096}
	in := webhook.New(webhook.Config{Tenants: reg, Plugins: cat, Store: st, Bus: e.bus, Topic: "inbox", Gauge: e.gauge, PublicURL: "http://gw.example", MaxBodyBytes: e.limit})
	r := router.New()
	r.POST("/webhooks/{provider}/{tenant}", in.Post)
	r.GET("/webhooks/{provider}/{tenant}", in.Get)
	srv := &fasthttp.Server{Handler: r.Handler}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	e.url = "http://" + ln.Addr().String()
	return e
}

func sign(key, body string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func (e *env) post(t *testing.T, path, body, sig string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(body))
	if sig != "" {
		req.Header.Set("X-Fake-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) stored(t *testing.T, tenantID string) int {
	t.Helper()
	recs, _, err := e.st.ListInbox(context.Background(), tenantID, "", store.ListQuery{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

func TestIngress(t *testing.T) {
	const body = `{"id":"evt_1","type":"x"}`
	tests := map[string]struct {
		path, body, sig string
		status          int
		says            string
		stored          int
	}{
		"valid":                      {path: "/webhooks/fake/acme", body: body, sig: sign(secret, body), status: 200, says: `"accepted"`, stored: 1},
		"previous secret (rotation)": {path: "/webhooks/fake/acme", body: body, sig: sign(previous, body), status: 200, says: `"accepted"`, stored: 1},
		"wrong secret":               {path: "/webhooks/fake/acme", body: body, sig: sign("nope", body), status: 401, says: "invalid_signature"},
		"another tenant's secret":    {path: "/webhooks/fake/acme", body: body, sig: sign(otherValue, body), status: 401, says: "invalid_signature"},
		"no signature":               {path: "/webhooks/fake/acme", body: body, status: 401},
		"flipped body byte":          {path: "/webhooks/fake/acme", body: strings.Replace(body, "1", "2", 1), sig: sign(secret, body), status: 401},
		"unknown tenant":             {path: "/webhooks/fake/nobody", body: body, sig: sign(secret, body), status: 404, says: "not_found"},
		"disabled provider":          {path: "/webhooks/off/acme", body: body, sig: sign(secret, body), status: 404, says: "not_found"},
		"provider without webhooks":  {path: "/webhooks/nohooks/acme", body: body, sig: sign(secret, body), status: 404, says: "not_found"},
		"provider not enabled":       {path: "/webhooks/paypal/acme", body: body, sig: sign(secret, body), status: 404, says: "not_found"},
		"plugin not running":         {path: "/webhooks/down/acme", body: body, sig: sign(secret, body), status: 503, says: "plugin_unavailable"},
		"oversized body":             {path: "/webhooks/fake/acme", body: strings.Repeat("x", 5000), sig: sign(secret, strings.Repeat("x", 5000)), status: 413},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := setup(t)
			status, resp := e.post(t, tc.path, tc.body, tc.sig)
			if status != tc.status || !strings.Contains(resp, tc.says) {
				t.Fatalf("%d %s, want %d mentioning %q", status, resp, tc.status, tc.says)
			}
			if got := e.stored(t, "acme"); got != tc.stored {
				t.Fatalf("inbox holds %d records, want %d", got, tc.stored)
			}
			if len(e.bus.ids) != tc.stored {
				t.Fatalf("announced %d, want %d", len(e.bus.ids), tc.stored)
			}
			if in, out := e.gauge.enters.Load(), e.gauge.leaves.Load(); in != 1 || out != 1 {
				t.Fatalf("gauge told of %d webhooks in and %d out, want 1 and 1", in, out)
			}
		})
	}
}

func TestDuplicatesAreStoredOnce(t *testing.T) {
	e := setup(t)
	const body = `{"id":"evt_dup","type":"x"}`
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, resp := e.post(t, "/webhooks/fake/acme", body, sign(secret, body))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == 200 && strings.Contains(resp, `"accepted"`):
				counts["accepted"]++
			case status == 200 && strings.Contains(resp, `"duplicate"`):
				counts["duplicate"]++
			default:
				counts["other"]++
			}
		}()
	}
	wg.Wait()
	if counts["accepted"] != 1 || counts["duplicate"] != 49 || e.stored(t, "acme") != 1 {
		t.Fatalf("outcomes %v, stored %d", counts, e.stored(t, "acme"))
	}
	// A body without the declared id falls back to the body hash.
	const noID = `{"type":"x"}`
	for i := 0; i < 2; i++ {
		if status, resp := e.post(t, "/webhooks/fake/acme", noID, sign(secret, noID)); status != 200 {
			t.Fatalf("no id: %d %s", status, resp)
		}
	}
	if got := e.stored(t, "acme"); got != 2 {
		t.Fatalf("byte-identical redelivery stored twice: %d records", got)
	}
}

func TestStorageFailureIsNever2xx(t *testing.T) {
	e := setup(t)
	_ = e.st.Close()
	const body = `{"id":"evt_s","type":"x"}`
	req, _ := http.NewRequest("POST", e.url+"/webhooks/fake/acme", strings.NewReader(body))
	req.Header.Set("X-Fake-Signature", sign(secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("closed store: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestDedupKeySources(t *testing.T) {
	tests := map[string]struct {
		sources []string
		body    string
		header  map[string][]string
		query   map[string][]string
		want    string
	}{
		"json path":          {sources: []string{"json:id"}, body: `{"id":"evt_1"}`, want: "evt_1"},
		"nested and array":   {sources: []string{"json:entry.0.id", "json:n"}, body: `{"entry":[{"id":"e1"}],"n":7}`, want: "e1|7"},
		"header and query":   {sources: []string{"header:x-request-id", "query:data.id"}, header: map[string][]string{"X-Request-Id": {"r1"}}, query: map[string][]string{"data.id": {"42"}}, want: "r1|42"},
		"form":               {sources: []string{"form:MessageSid", "form:MessageStatus"}, body: "MessageSid=SM1&MessageStatus=delivered", want: "SM1|delivered"},
		"missing falls back": {sources: []string{"json:id"}, body: `{"x":1}`, want: "sha256:"},
		"no sources":         {body: "abc", want: "sha256:ba7816bf"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := webhook.DedupKey(tc.sources, signatureRequest(tc.body, tc.header, tc.query))
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("DedupKey = %q, want prefix %q", got, tc.want)
			}
		})
	}
}
