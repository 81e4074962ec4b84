package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	tbkCommerce = "597055555532"
	tbkSecret   = "579B532A7440BB0C9079DED94D31EA1615BACEB56610332264630D42D0A36B1C"
	tbkBase     = "/rswebpaytransaction/api/webpay/v1.2/transactions"
)

// webpay is a fake of Transbank's Webpay Plus REST API (providers.md 3):
// create, commit, status and refunds, with its headers checked.
type webpay struct {
	srv *httptest.Server
	mu  sync.Mutex
	txs map[string]map[string]any
	// commits counts PUT commits per token.
	commits map[string]int
	// returnURL is the return_url of the last create.
	returnURL string
}

func newWebpay(t *testing.T) *webpay {
	t.Helper()
	w := &webpay{txs: map[string]map[string]any{}, commits: map[string]int{}}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webpay) lastReturn() string { w.mu.Lock(); defer w.mu.Unlock(); return w.returnURL }

func (w *webpay) commitCount(tok string) int { w.mu.Lock(); defer w.mu.Unlock(); return w.commits[tok] }

func (w *webpay) fail(rw http.ResponseWriter, status int, msg string) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(map[string]string{"error_message": msg})
}

func (w *webpay) serve(rw http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Tbk-Api-Key-Id") != tbkCommerce || r.Header.Get("Tbk-Api-Key-Secret") != tbkSecret {
		w.fail(rw, 401, "Not Authorized")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	rest := strings.TrimPrefix(r.URL.Path, tbkBase)
	switch {
	case r.Method == "POST" && rest == "":
		var req struct {
			BuyOrder  string `json:"buy_order"`
			SessionID string `json:"session_id"`
			Amount    int64  `json:"amount"`
			ReturnURL string `json:"return_url"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.BuyOrder == "" || len(req.BuyOrder) > 26 || req.Amount <= 0 || req.ReturnURL == "" {
			w.fail(rw, 422, "invalid create request")
			return
		}
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		tok := hex.EncodeToString(b)
		w.txs[tok] = map[string]any{"amount": req.Amount, "status": "INITIALIZED", "buy_order": req.BuyOrder, "session_id": req.SessionID,
			"response_code": 0, "vci": "", "accounting_date": "1127", "transaction_date": time.Now().UTC().Format(time.RFC3339),
			"installments_number": 0, "card_detail": map[string]string{"card_number": "6623"}}
		w.returnURL = req.ReturnURL
		_ = json.NewEncoder(rw).Encode(map[string]string{"token": tok, "url": w.srv.URL + "/webpayserver/initTransaction"})
	case r.Method == "PUT" && len(rest) == 65:
		tok := rest[1:]
		tx, ok := w.txs[tok]
		if !ok {
			w.fail(rw, 404, "Transaction not found")
			return
		}
		w.commits[tok]++
		if tx["status"] != "INITIALIZED" {
			w.fail(rw, 422, "Transaction already locked by another process")
			return
		}
		tx["status"], tx["authorization_code"], tx["payment_type_code"], tx["vci"] = "AUTHORIZED", "1213", "VD", "TSY"
		_ = json.NewEncoder(rw).Encode(tx)
	case r.Method == "GET" && len(rest) == 65:
		tx, ok := w.txs[rest[1:]]
		if !ok {
			w.fail(rw, 404, "Transaction not found")
			return
		}
		_ = json.NewEncoder(rw).Encode(tx)
	default:
		w.fail(rw, 404, "no such route")
	}
}

// TestTransbankRedirectFlow: a Webpay Plus payment is created, the buyer's
// browser posts token_ws back to the gateway, the commit reaches the fake,
// the browser is redirected to the tenant's return_url and
// payment.confirmed reaches the tenant endpoint; an aborted payment fails.
func TestTransbankRedirectFlow(t *testing.T) {
	wp := newWebpay(t)
	rcv := newReceiver(t)
	dir := t.TempDir()
	listen := freeAddr()
	cfg := fmt.Sprintf(`listen: %s
public_url: http://%s
data_dir: %s
plugins_dir: %s
delivery: { schedule: [50ms], timeout: 400ms, allow_http: true, allow_networks: ["127.0.0.1/32"] }
tenants:
  tableflow:
    api_keys: ["${TABLEFLOW_API_KEY}"]
    defaults: { payments: transbank }
    providers:
      transbank:
        settings: { base_url: "%s", commerce_code: "%s" }
        credentials: { api_key_secret: "%s" }
    endpoints:
      - { id: backend, url: "%s", secret: "%s", types: ["payment.confirmed", "payment.failed"] }
`, listen, listen, filepath.Join(dir, "data"), copyPlugins(t), wp.srv.URL, tbkCommerce, tbkSecret, rcv.srv.URL, endpointSecret)
	g := startGateway(t, dir, cfg)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	create := func(ref string) (string, string) {
		c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 12990, "currency": "CLP", "reference": ref,
			"return_url": "https://tableflow.example/orders/" + ref})
		if c.status != 201 || c.json(t)["redirect_url"] == nil {
			t.Fatalf("create: %d %s", c.status, c.body)
		}
		return c.json(t)["id"].(string), c.json(t)["provider_payment_id"].(string)
	}
	// The browser comes back by POST with token_ws (integration environment).
	back := func(form url.Values) *http.Response {
		t.Helper()
		ret := wp.lastReturn()
		if !strings.HasPrefix(ret, g.url+"/return/transbank/tableflow") {
			t.Fatalf("Transbank got return_url %q, want the gateway's return route", ret)
		}
		resp, err := noRedirect.PostForm(ret, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	id, token := create("order-1")
	// The tenant's redirect_url is the gateway's checkout page: it posts
	// token_ws to Webpay's form URL, as Transbank requires.
	page := g.do("GET", "/v1/payments/"+id, tableflowKey, nil).json(t)["redirect_url"].(string)
	if !strings.HasPrefix(page, g.url+"/checkout/tableflow/"+id) {
		t.Fatalf("redirect_url = %q, want the gateway's checkout page", page)
	}
	pr, err := http.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(pr.Body)
	pr.Body.Close()
	if pr.StatusCode != 200 || !strings.Contains(string(html), `<form method="post" action="`+wp.srv.URL) ||
		!strings.Contains(string(html), `name="token_ws" value="`+token+`"`) || !strings.HasPrefix(pr.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("checkout page: %d %s\n%s", pr.StatusCode, pr.Header.Get("Content-Type"), html)
	}
	if r, err := http.Get(g.url + "/checkout/otherco/" + id); err != nil || r.StatusCode != 404 {
		t.Fatalf("checkout page under another tenant: %v %v", r, err)
	}
	resp := back(url.Values{"token_ws": {token}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 303 || !strings.HasPrefix(loc, "https://tableflow.example/orders/order-1?") || !strings.Contains(loc, "status=succeeded") || !strings.Contains(loc, "payment_id="+id) {
		t.Fatalf("return: %d %q", resp.StatusCode, loc)
	}
	if n := wp.commitCount(token); n != 1 {
		t.Fatalf("commits of the token: %d, want 1", n)
	}
	if c := g.do("GET", "/v1/payments/"+id, tableflowKey, nil); c.json(t)["status"] != "succeeded" {
		t.Fatalf("payment after commit: %s", c.body)
	}
	waitFor(t, "payment.confirmed at the tenant", 10*time.Second, func() bool {
		for _, d := range rcv.deliveries() {
			if strings.Contains(string(d.body), `"payment.confirmed"`) && strings.Contains(string(d.body), id) && d.valid {
				return true
			}
		}
		return false
	})

	aid, atoken := create("order-2")
	resp = back(url.Values{"TBK_TOKEN": {atoken}, "TBK_ORDEN_COMPRA": {"order-2"}, "TBK_ID_SESION": {aid}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || !strings.Contains(loc, "status=failed") {
		t.Fatalf("abort: %d %q", resp.StatusCode, loc)
	}
	if wp.commitCount(atoken) != 0 {
		t.Fatal("an aborted payment was committed")
	}
	waitFor(t, "payment.failed at the tenant", 10*time.Second, func() bool {
		for _, d := range rcv.deliveries() {
			if strings.Contains(string(d.body), `"payment.failed"`) && strings.Contains(string(d.body), aid) && strings.Contains(string(d.body), `"aborted"`) {
				return true
			}
		}
		return false
	})
}
