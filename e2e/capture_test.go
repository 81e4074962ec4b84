package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// formRecorder sits in front of stripe-mock and keeps each request's form.
type formRecorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []recordedForm
}

type recordedForm struct {
	method, path string
	form         url.Values
}

func newFormRecorder(t *testing.T) *formRecorder {
	t.Helper()
	target, _ := url.Parse(stripeMockURL)
	rp := httputil.NewSingleHostReverseProxy(target)
	f := &formRecorder{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		f.mu.Lock()
		f.seen = append(f.seen, recordedForm{r.Method, r.URL.Path, form})
		f.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *formRecorder) find(method, prefix string) []recordedForm {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []recordedForm
	for _, s := range f.seen {
		if s.method == method && strings.HasPrefix(s.path, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// TestStripeManualCapture: capture_method manual creates an authorization
// only (capture_method=manual at Stripe), and capture takes the money.
func TestStripeManualCapture(t *testing.T) {
	rec := newFormRecorder(t)
	dir := t.TempDir()
	listen := freeAddr()
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
plugins_dir: %s
tenants:
  tableflow:
    api_keys: ["${TABLEFLOW_API_KEY}"]
    defaults: { payments: stripe }
    providers:
      stripe:
        settings: { base_url: "%s" }
        credentials: { secret_key: "${STRIPE_SECRET_KEY}", webhook_secret: "whsec_capture" }
`, listen, filepath.Join(dir, "data"), copyPlugins(t), rec.srv.URL)
	g := startGateway(t, dir, cfg)

	bad := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 5000, "currency": "CLP", "reference": "order-c0", "capture_method": "later"})
	if bad.status != 400 || !strings.HasPrefix(bad.errorMessage(t), "capture_method") {
		t.Fatalf("bad capture_method: %d %s", bad.status, bad.body)
	}
	c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 5000, "currency": "CLP", "reference": "order-c1", "capture_method": "manual"})
	if c.status != 201 {
		t.Fatalf("create: %d %s", c.status, c.body)
	}
	creates := rec.find("POST", "/v1/payment_intents")
	if len(creates) != 1 || creates[0].form.Get("capture_method") != "manual" {
		t.Fatalf("payment intent creates: %+v", creates)
	}
	id, pi := c.json(t)["id"].(string), c.json(t)["provider_payment_id"].(string)
	cp := g.do("POST", "/v1/payments/"+id+"/capture", tableflowKey, map[string]any{"amount": 4000})
	if cp.status != 200 {
		t.Fatalf("capture: %d %s", cp.status, cp.body)
	}
	caps := rec.find("POST", "/v1/payment_intents/"+pi+"/capture")
	if len(caps) != 1 || caps[0].form.Get("amount_to_capture") != "4000" {
		t.Fatalf("captures at Stripe: %+v", caps)
	}
}
