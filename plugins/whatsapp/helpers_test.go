package main

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/plugins/whatsapp/metafake"
	"github.com/pipecore/pipecore/plugins/whatsapp/twiliofake"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Secrets of the test tenants besides the fakes' tokens; long enough for
// the leak checks to find them.
const (
	testAppSecret   = "meta-app-secret-5f0c2a9e71"
	testVerifyToken = "meta-verify-token-84b1d3"
	twilioSender    = "+14155238886"
)

// cloudTenant is a Cloud API tenant pointed at base; over replaces or
// (with an empty value) removes settings and secrets by name.
func cloudTenant(base string, over map[string]string) provider.Tenant {
	settings := map[string]string{
		provider.BaseURLField: base,
		fieldPhoneNumberID:    metafake.PhoneNumberID,
	}
	secrets := map[string]string{
		fieldAccessToken: metafake.AccessToken,
		fieldAppSecret:   testAppSecret,
		fieldVerifyToken: testVerifyToken,
	}
	return tenant("acme", settings, secrets, over)
}

// twilioTenant is a Twilio tenant pointed at base; see cloudTenant.
func twilioTenant(base string, over map[string]string) provider.Tenant {
	settings := map[string]string{
		fieldTransport:        transportTwilio,
		provider.BaseURLField: base,
		fieldAccountSID:       twiliofake.AccountSID,
		fieldFrom:             twilioSender,
	}
	secrets := map[string]string{fieldAuthToken: twiliofake.AuthToken}
	return tenant("acme", settings, secrets, over)
}

var secretFields = map[string]bool{fieldAccessToken: true, fieldAppSecret: true, fieldVerifyToken: true, fieldAuthToken: true}

func tenant(id string, settings, secrets, over map[string]string) provider.Tenant {
	settings, secrets = maps.Clone(settings), maps.Clone(secrets)
	for k, v := range over {
		m := settings
		if secretFields[k] {
			m = secrets
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return provider.NewTenant(id, settings, secrets)
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// stallProxy fronts a fake with a reverse proxy that can be made to hang,
// for deadline checks without touching the fakes' API.
type stallProxy struct {
	*httptest.Server
	mu      sync.Mutex
	stalled chan struct{}
}

func newStallProxy(t testing.TB, target string) *stallProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		ch := p.stalled
		p.mu.Unlock()
		if ch != nil {
			select {
			case <-ch:
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// stall makes requests hang until the returned func is called.
func (p *stallProxy) stall(testing.TB) func() {
	ch := make(chan struct{})
	p.mu.Lock()
	p.stalled = ch
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.stalled = nil
			p.mu.Unlock()
			close(ch)
		})
	}
}

// noSecret fails t when msg contains one of the test credentials.
func noSecret(t testing.TB, msg string) {
	t.Helper()
	for _, s := range []string{metafake.AccessToken, twiliofake.AuthToken, testAppSecret, testVerifyToken} {
		if strings.Contains(msg, s) {
			t.Errorf("a secret leaks: %s", msg)
		}
	}
}
