package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipecore/pipecore/plugins/uberdirect/uberfake"
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

func TestTokenCachedAcrossCalls(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	for i := range 3 {
		if _, err := p.Quote(ctxT(t), quoteReq(f)); err != nil {
			t.Fatalf("Quote %d: %v", i, err)
		}
	}
	if n := f.TokenRequests(); n != 1 {
		t.Fatalf("token requests = %d, want 1", n)
	}
	// Another tenant with the same credentials has its own token.
	other := provider.NewTenant("globex",
		map[string]string{provider.BaseURLField: f.URL(), fieldCustomerID: uberfake.CustomerID},
		map[string]string{fieldClientID: uberfake.ClientID, fieldClientSecret: uberfake.ClientSecret})
	req := quoteReq(f)
	req.Tenant = other
	if _, err := p.Quote(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	if n := f.TokenRequests(); n != 2 {
		t.Fatalf("token requests = %d, want 2 (one per tenant)", n)
	}
}

func TestTokenRefreshOn401(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	sh := mustCreate(t, p, f, "refresh")
	f.ExpireTokens()
	got, err := p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: testTenant(f.URL()), ID: sh.ID})
	if err != nil || got.ID != sh.ID {
		t.Fatalf("GetShipment after ExpireTokens = %+v, %v", got, err)
	}
	if n := f.TokenRequests(); n != 2 {
		t.Fatalf("token requests = %d, want exactly one refresh", n)
	}
	gets := requestsTo(f, http.MethodGet, "/deliveries/"+sh.ID)
	if len(gets) != 2 || gets[0].Header.Get("Authorization") == gets[1].Header.Get("Authorization") {
		t.Fatalf("want the GET sent twice with two tokens, got %d", len(gets))
	}
	// Later calls use the new token without another request.
	if _, err := p.Quote(ctxT(t), quoteReq(f)); err != nil || f.TokenRequests() != 2 {
		t.Fatalf("Quote = %v, token requests = %d", err, f.TokenRequests())
	}
}

func TestTokenRefreshOnlyOnce(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	if _, err := p.Quote(ctxT(t), quoteReq(f)); err != nil {
		t.Fatal(err)
	}
	// Every API call answers 401 for a while: one refresh, one retry, then
	// KindUnauthorized.
	f.FailNext(http.StatusUnauthorized, 2)
	_, err := p.Quote(ctxT(t), quoteReq(f))
	if provider.KindOf(err) != provider.KindUnauthorized || provider.CodeOf(err) != "unauthorized" {
		t.Fatalf("Quote with a 401 after refresh = %v (kind %s)", err, provider.KindOf(err))
	}
	if n := f.TokenRequests(); n != 2 {
		t.Fatalf("token requests = %d, want 2", n)
	}
	if n := len(requestsTo(f, http.MethodPost, "/delivery_quotes")); n != 3 {
		t.Fatalf("quote requests = %d, want 3 (first, refused, retried once)", n)
	}
}

func TestTokenConcurrentCallersShareOneRefresh(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	const n = 24
	run := func(t *testing.T) {
		t.Helper()
		var wg sync.WaitGroup
		var failed atomic.Int32
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := p.Quote(ctxT(t), quoteReq(f)); err != nil {
					failed.Add(1)
					t.Errorf("Quote: %v", err)
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.FailNow()
		}
	}
	run(t) // cold cache: one token for everyone
	if got := f.TokenRequests(); got != 1 {
		t.Fatalf("token requests after %d concurrent cold calls = %d, want 1", n, got)
	}
	f.ExpireTokens()
	run(t) // one expiry: one refresh for everyone
	if got := f.TokenRequests(); got != 2 {
		t.Fatalf("token requests after an expiry under %d concurrent calls = %d, want 2", n, got)
	}
}

func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	f := startFake(t)
	f.SetTokenTTL(time.Hour)
	p := newProvider()
	var mu sync.Mutex
	now := time.Now()
	p.tokens.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	if _, err := p.Quote(ctxT(t), quoteReq(f)); err != nil {
		t.Fatal(err)
	}
	advance(54 * time.Minute) // margin: 5 minutes of a 1h token
	if _, err := p.Quote(ctxT(t), quoteReq(f)); err != nil || f.TokenRequests() != 1 {
		t.Fatalf("at 54m: %v, token requests %d, want 1", err, f.TokenRequests())
	}
	advance(2 * time.Minute)
	if _, err := p.Quote(ctxT(t), quoteReq(f)); err != nil || f.TokenRequests() != 2 {
		t.Fatalf("at 56m: %v, token requests %d, want 2", err, f.TokenRequests())
	}
}

func TestTokenRequestShape(t *testing.T) {
	var got *http.Request
	var form map[string][]string
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got, form = r, r.PostForm
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"tok-123456","token_type":"Bearer","expires_in":2592000,"scope":"eats.deliveries"}`))
	})
	c, err := newProvider().client(tenantWith(srv, "s3cr3t-value"))
	if err != nil {
		t.Fatal(err)
	}
	tok, ttl, err := c.fetchToken(context.Background())
	if err != nil || tok != "tok-123456" || ttl != 30*24*time.Hour {
		t.Fatalf("fetchToken = %q, %s, %v", tok, ttl, err)
	}
	if got.URL.Path != "/oauth/v2/token" || got.Method != http.MethodPost || got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Fatalf("request = %s %s %s", got.Method, got.URL.Path, got.Header.Get("Content-Type"))
	}
	want := map[string]string{"client_id": uberfake.ClientID, "client_secret": "s3cr3t-value", "grant_type": "client_credentials", "scope": "eats.deliveries"}
	for k, v := range want {
		if f := form[k]; len(f) != 1 || f[0] != v {
			t.Errorf("form %s = %v, want %q", k, f, v)
		}
	}
}

func TestBadCredentials(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	if _, err := p.Quote(ctxT(t), quoteReq(f)); err != nil { // a good token is cached for this tenant
		t.Fatal(err)
	}
	const wrong = "wrong-secret-5d1c0e7a9b"
	req := quoteReq(f)
	req.Tenant = tenantWith(f.URL(), wrong)
	_, err := p.Quote(ctxT(t), req)
	if provider.KindOf(err) != provider.KindUnauthorized || provider.CodeOf(err) != "invalid_client" {
		t.Fatalf("wrong secret = %v (kind %s, code %q); the cached token must not be reused", err, provider.KindOf(err), provider.CodeOf(err))
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), uberfake.ClientID) {
		t.Fatalf("error leaks a credential: %v", err)
	}
}

func TestTokenWaitHonoursContext(t *testing.T) {
	c := newTokenCache()
	release := make(chan struct{})
	defer close(release)
	fetch := func(ctx context.Context) (string, time.Duration, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "", 0, errors.New("stopped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.get(ctx, tokenKey{tenant: "t"}, fetch, "")
	if provider.KindOf(err) != provider.KindRetryable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get = %v", err)
	}
}

// newRecorder starts an HTTP server answering with h and returns its URL.
func newRecorder(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
