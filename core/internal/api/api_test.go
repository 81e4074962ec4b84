package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/api"
	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/payment"
	"github.com/pipecore/pipecore/core/internal/pluginhost"
	"github.com/pipecore/pipecore/core/internal/ratelimit"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/testkit"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

const (
	keyA    = "pc_live_tenant_a_0123456789abcdefghijklmnopqrst"
	keyB    = "pc_live_tenant_b_0123456789abcdefghijklmnopqrst"
	secretA = "SENTINEL-api-key-a-77"
)

type env struct {
	url  string
	fake *providertest.FakePayments
	st   store.Store
}

// newEnv serves the API over real HTTP on 127.0.0.1 with an in-process
// fake payments provider behind the plugin host.
func newEnv(t *testing.T, opts ...func(*api.Config)) *env {
	t.Helper()
	fake := &providertest.FakePayments{}
	launcher := pluginhost.NewInProcess(map[string]provider.Provider{"fake": fake})
	host := pluginhost.NewWithBinaries(pluginhost.Config{Launcher: launcher}, launcher.Binaries())
	t.Cleanup(host.Close)
	if _, err := host.Start(context.Background(), []string{"fake"}); err != nil {
		t.Fatal(err)
	}
	st := testkit.Store(t)
	reg, err := tenant.New(map[string]config.Tenant{
		"a": {APIKeys: []string{keyA}, Defaults: map[string]string{"payments": "fake"},
			Providers: map[string]config.Provider{"fake": {Credentials: map[string]string{"api_key": secretA}}}},
		"b": {APIKeys: []string{tenant.HashKey(keyB)}, Defaults: map[string]string{"payments": "fake"},
			Providers: map[string]config.Provider{"fake": {Credentials: map[string]string{"api_key": "key-b"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	pay, err := payment.New(payment.Config{Store: st, Plugins: host, Audit: audit.NewRecorder(st, nil), CallTimeout: 500 * time.Millisecond,
		PublicURL: "https://gw.example"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Tenants: reg, Payments: pay, Store: st}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httpserver.New(httpserver.Config{}, a.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return &env{url: "http://" + ln.Addr().String(), fake: fake, st: st}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *env) post(t *testing.T, path, key, idem string, body string) reply {
	t.Helper()
	req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	return e.send(t, req)
}

func (e *env) send(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (r reply) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

const body1 = `{"amount":12990,"currency":"CLP","reference":"order-1"}`

func TestConcurrentDuplicateGets409(t *testing.T) {
	e := newEnv(t)
	e.fake.SetDelay(300 * time.Millisecond)
	var wg sync.WaitGroup
	results := make(chan reply, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- e.post(t, "/v1/payments", keyA, "dup-1", body1)
		}()
	}
	wg.Wait()
	close(results)
	counts := map[int]int{}
	var id string
	for r := range results {
		counts[r.status]++
		if r.status == 201 {
			id, _ = r.body["id"].(string)
		} else if r.status != 409 || r.code() != "idempotency_key_in_use" {
			t.Errorf("unexpected reply %d %s", r.status, r.raw)
		}
	}
	if counts[201] != 1 || counts[409] != 9 {
		t.Fatalf("statuses %v, want one 201 and nine 409", counts)
	}
	e.fake.SetDelay(0)
	again := e.post(t, "/v1/payments", keyA, "dup-1", body1)
	if again.status != 201 || again.body["id"] != id || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay after completion: %d %s", again.status, again.raw)
	}
	if n := e.fake.Calls(); n != 1 {
		t.Fatalf("provider calls = %d, want 1", n)
	}
}

func TestIdempotencyKeysAreScopedPerTenant(t *testing.T) {
	e := newEnv(t)
	a := e.post(t, "/v1/payments", keyA, "shared-key", body1)
	b := e.post(t, "/v1/payments", keyB, "shared-key", `{"amount":1,"currency":"USD","reference":"other"}`)
	if a.status != 201 || b.status != 201 || a.body["id"] == b.body["id"] {
		t.Fatalf("same key in two tenants: %d %s / %d %s", a.status, a.raw, b.status, b.raw)
	}
}

func TestProviderErrorsMapToStatuses(t *testing.T) {
	tests := map[string]struct {
		err        error
		status     int
		code       string
		retryAfter string
		retryable  bool
	}{
		"declined":     {err: provider.WithCode(provider.Permanent(errors.New("card declined")), "card_declined"), status: 422, code: "provider_rejected"},
		"rate limited": {err: provider.RateLimited(errors.New("slow down"), 2500*time.Millisecond), status: 429, code: "provider_rate_limited", retryAfter: "3", retryable: true},
		"unauthorized": {err: provider.Unauthorized(errors.New("key rejected")), status: 502, code: "provider_unauthorized"},
		"invalid":      {err: provider.Invalid(errors.New("currency not supported")), status: 400, code: "provider_invalid_request"},
		"outage":       {err: provider.Retryable(errors.New("upstream 503")), status: 502, code: "provider_error", retryable: true},
		"timeout":      {err: provider.Retryable(context.DeadlineExceeded), status: 504, code: "provider_timeout", retryable: true},
		"leaky error":  {err: provider.Permanent(errors.New("rejected key " + secretA)), status: 422, code: "provider_rejected"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.Fail = func(string, provider.Tenant) error { return tc.err }
			r := e.post(t, "/v1/payments", keyA, "", body1)
			if r.status != tc.status || r.code() != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
			if got := r.header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
			}
			if got, _ := r.body["error"].(map[string]any)["retryable"].(bool); got != tc.retryable {
				t.Errorf("retryable = %v, want %v", got, tc.retryable)
			}
			if strings.Contains(r.raw, secretA) {
				t.Errorf("secret leaked in the response: %s", r.raw)
			}
			recs, _, err := e.st.ListAudit(context.Background(), "a", store.AuditQuery{})
			if err != nil || len(recs) != 1 || recs[0].Status == audit.StatusOK {
				t.Fatalf("audit records %+v, %v", recs, err)
			}
			rawRec, _ := json.Marshal(recs[0])
			if bytes.Contains(rawRec, []byte(secretA)) {
				t.Errorf("secret leaked in the audit record: %s", rawRec)
			}
		})
	}
}

func TestRetryAfterOutageRunsTheSameOperation(t *testing.T) {
	e := newEnv(t)
	failing := true
	var mu sync.Mutex
	e.fake.Fail = func(string, provider.Tenant) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return provider.Retryable(errors.New("upstream 503"))
		}
		return nil
	}
	if r := e.post(t, "/v1/payments", keyA, "retry-1", body1); r.status != 502 {
		t.Fatalf("first attempt: %d %s", r.status, r.raw)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	first := e.post(t, "/v1/payments", keyA, "retry-1", body1)
	second := e.post(t, "/v1/payments", keyA, "retry-1", body1)
	if first.status != 201 || second.body["id"] != first.body["id"] {
		t.Fatalf("retry after outage: %d %s / %s", first.status, first.raw, second.raw)
	}
	// The failed attempt and the retry carried the same provider key, so
	// they name the same gateway payment.
	recs, _, _ := e.st.ListAudit(context.Background(), "a", store.AuditQuery{Action: "payments.create"})
	if len(recs) != 2 || recs[0].ResourceID != recs[1].ResourceID {
		t.Fatalf("attempts did not share the operation: %+v", recs)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(e.url + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("DELETE", e.url+"/v1/payments", nil)
	if r := e.send(t, req); r.status != 405 || r.code() != "method_not_allowed" {
		t.Fatalf("DELETE /v1/payments: %d %s", r.status, r.raw)
	}
}

func TestIdempotencyKeyValidation(t *testing.T) {
	e := newEnv(t)
	r := e.post(t, "/v1/payments", keyA, strings.Repeat("k", 256), body1)
	if r.status != 400 || !strings.Contains(r.raw, "Idempotency-Key") {
		t.Fatalf("256-character key: %d %s", r.status, r.raw)
	}
	if n := e.fake.Calls(); n != 0 {
		t.Fatalf("provider called %d times for a rejected request", n)
	}
}

func TestRateLimitIsPerTenant(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.RateLimit = ratelimit.New(0.5, 3) })
	get := func(key string) reply {
		req, _ := http.NewRequest("GET", e.url+"/v1/logs", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		return e.send(t, req)
	}
	for i := 0; i < 3; i++ {
		if r := get(keyA); r.status != 200 {
			t.Fatalf("request %d of the burst: %d %s", i+1, r.status, r.raw)
		}
	}
	r := get(keyA)
	if r.status != 429 || r.code() != "rate_limited" || r.header.Get("Retry-After") != "2" {
		t.Fatalf("past the burst: %d %s Retry-After=%q", r.status, r.raw, r.header.Get("Retry-After"))
	}
	if r := get(keyB); r.status != 200 {
		t.Fatalf("tenant b limited by a's burst: %d %s", r.status, r.raw)
	}
}

func TestDeepJSONIsRefused(t *testing.T) {
	e := newEnv(t)
	deep := `{"amount":1,"currency":"CLP","reference":"x","metadata":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`
	r := e.post(t, "/v1/payments", keyA, "", deep)
	if r.status != 400 || !strings.Contains(r.raw, "nested deeper") {
		t.Fatalf("deep body: %d %s", r.status, r.raw)
	}
}

func TestCaptureAndCancel(t *testing.T) {
	e := newEnv(t)
	created := e.post(t, "/v1/payments", keyA, "c-1", body1)
	id, _ := created.body["id"].(string)
	if r := e.post(t, "/v1/payments/"+id+"/capture", keyA, "cap-1", `{"amount":5000}`); r.status != 200 || r.body["status"] != "succeeded" {
		t.Fatalf("capture: %d %s", r.status, r.raw)
	}
	if r := e.post(t, "/v1/payments/"+id+"/capture", keyA, "", `{"amount":999999}`); r.status != 400 || r.code() != "invalid_request" {
		t.Fatalf("capture beyond the amount: %d %s", r.status, r.raw)
	}
	other := e.post(t, "/v1/payments", keyA, "c-2", `{"amount":100,"currency":"CLP","reference":"o-2"}`)
	oid, _ := other.body["id"].(string)
	if r := e.post(t, "/v1/payments/"+oid+"/cancel", keyA, "can-1", `{"reason":"requested_by_customer"}`); r.status != 200 || r.body["status"] != "cancelled" {
		t.Fatalf("cancel: %d %s", r.status, r.raw)
	}
	if r := e.post(t, "/v1/payments/"+oid+"/cancel", keyB, "", ``); r.status != 404 {
		t.Fatalf("cancel with another tenant's key: %d %s", r.status, r.raw)
	}
	recs, _, _ := e.st.ListAudit(context.Background(), "a", store.AuditQuery{ResourceID: oid})
	if len(recs) != 2 || recs[0].Action != "payments.cancel" {
		t.Fatalf("audit of the cancelled payment: %+v", recs)
	}
}

func TestRedirectReturnCommitsAndRedirects(t *testing.T) {
	e := newEnv(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	create := func(key, amount string) (id, token string) {
		r := e.post(t, "/v1/payments", keyA, key, `{"amount":`+amount+`,"currency":"CLP","reference":"r-`+key+`","return_url":"https://shop.example/done?order=7"}`)
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.raw)
		}
		return r.body["id"].(string), r.body["provider_payment_id"].(string)
	}
	back := func(form string) *http.Response {
		req, _ := http.NewRequest("POST", e.url+"/return/fake/a", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	id, token := create("ret-1", "12990")
	if got := e.fake.LastReturnURL(); got != "https://gw.example/return/fake/a?payment_id="+id {
		t.Fatalf("the provider got return URL %q, want the gateway's", got)
	}
	resp := back("token_ws=" + token)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 303 || !strings.HasPrefix(loc, "https://shop.example/done?") || !strings.Contains(loc, "payment_id="+id) || !strings.Contains(loc, "status=succeeded") || !strings.Contains(loc, "order=7") {
		t.Fatalf("return: %d Location %q", resp.StatusCode, loc)
	}
	evs, _, _ := e.st.ListEvents(context.Background(), "a", store.EventQuery{PaymentID: id})
	types := []string{}
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	if strings.Join(types, ",") != "payment.confirmed,payment.created" {
		t.Fatalf("events of the payment: %v", types)
	}
	// Coming back twice (browser refresh) confirms once.
	if resp := back("token_ws=" + token); resp.StatusCode != 303 {
		t.Fatalf("second return: %d", resp.StatusCode)
	}
	if evs, _, _ := e.st.ListEvents(context.Background(), "a", store.EventQuery{PaymentID: id}); len(evs) != 2 {
		t.Fatalf("a second return announced again: %d events", len(evs))
	}

	aid, atoken := create("ret-2", "5000")
	resp = back("TBK_TOKEN=" + atoken)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || !strings.Contains(loc, "status=failed") || !strings.Contains(loc, "payment_id="+aid) {
		t.Fatalf("abort: %d %q", resp.StatusCode, loc)
	}
	p, _ := e.st.GetPayment(context.Background(), "a", aid)
	if p.FailureCode != "aborted" {
		t.Fatalf("aborted payment: %+v", p)
	}
	bid, btoken := create("ret-3", "6000")
	if resp := back("token_ws=" + btoken + "&TBK_TOKEN=" + btoken); !strings.Contains(resp.Header.Get("Location"), "status=failed") {
		t.Fatalf("error after the form was committed: %q", resp.Header.Get("Location"))
	}
	if p, _ := e.st.GetPayment(context.Background(), "a", bid); p.Status != "failed" || p.FailureCode != "aborted" {
		t.Fatalf("token_ws with TBK_TOKEN: %+v", p)
	}
	tid, _ := create("ret-4", "7000")
	if resp := back("payment_id=" + tid + "&TBK_ORDEN_COMPRA=o-4&TBK_ID_SESION=s-4"); !strings.Contains(resp.Header.Get("Location"), "status=failed") {
		t.Fatalf("timeout: %q", resp.Header.Get("Location"))
	}
	if p, _ := e.st.GetPayment(context.Background(), "a", tid); p.FailureCode != "timeout" {
		t.Fatalf("timed-out payment: %+v", p)
	}
	if resp := back("token_ws=fk_unknown"); resp.StatusCode != 404 {
		t.Fatalf("unknown token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", e.url+"/return/fake/b", strings.NewReader("token_ws="+token))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, _ := noRedirect.Do(req); resp.StatusCode != 404 {
		t.Fatalf("tenant a's token returned through tenant b: %d", resp.StatusCode)
	}
}
