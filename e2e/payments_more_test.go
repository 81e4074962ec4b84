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

// wpPlus is a richer fake of Transbank's Webpay Plus REST API than
// newWebpay. A per-buy_order script plays the buyer's side (paying, or
// not, without coming back) and commits behave like Webpay's: a commit
// (PUT) of a transaction the buyer has not paid, or that failed or timed
// out, is refused with 422; a paid one is authorized once, and every
// later commit is refused. Refunds follow Transbank's nullification
// answers, and create can fail with 503 or hang until the caller gives up.
type wpPlus struct {
	srv     *httptest.Server
	release chan struct{} // closed at cleanup: frees hung requests
	mu      sync.Mutex
	// createMode is "", "503" or "hang".
	createMode string
	// creates counts create requests, whatever their outcome.
	creates int
	// hangsCancelled counts hung requests the caller gave up on.
	hangsCancelled int
	txs            map[string]*wpTx // by token
	byOrder        map[string]string
	scripts        map[string][]string // buy_order → the buyer's side at successive commits
	refundCalls    []wpRefundCall
	refundSeq      int
}

type wpTx struct {
	token, buyOrder, sessionID, returnURL string
	amount, balance                       int64
	// status is what GET answers: INITIALIZED until the commit authorizes
	// a paid transaction (AUTHORIZED) or the script fails or expires it
	// (FAILED, TIMEOUT); refunds then move it on.
	status string
	// buyer is the scripted buyer's side: INITIALIZED (not paid yet), PAID
	// (authorized by the card holder, awaiting the commit), FAILED, TIMEOUT.
	buyer  string
	script []string
	// gets counts status reads, commits commit attempts (PUT), committed
	// the commits that authorized the transaction.
	gets, commits, committed int
	created                  time.Time
}

type wpRefundCall struct {
	token, contentType string
	body               []byte
}

func newWpPlus(t *testing.T) *wpPlus {
	t.Helper()
	w := &wpPlus{release: make(chan struct{}), txs: map[string]*wpTx{}, byOrder: map[string]string{}, scripts: map[string][]string{}}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	t.Cleanup(func() { close(w.release) }) // runs before srv.Close
	return w
}

// script plays the buyer's side of buyOrder's transaction: the n-th commit
// attempt finds the buyer at steps[n-1] (the last step repeats; FAILED and
// TIMEOUT are final). Steps: "INITIALIZED" (still on Webpay's form, not
// paid), "PAID" (authorized, not committed: the commit succeeds),
// "FAILED" (rejected), "TIMEOUT" (the form expired). Without a script the
// buyer has paid by the first commit, as on a normal return.
func (w *wpPlus) script(buyOrder string, statuses ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.scripts[buyOrder] = statuses
}

func (w *wpPlus) setCreateMode(m string) { w.mu.Lock(); defer w.mu.Unlock(); w.createMode = m }

func (w *wpPlus) tx(buyOrder string) wpTx {
	w.mu.Lock()
	defer w.mu.Unlock()
	if tx := w.txs[w.byOrder[buyOrder]]; tx != nil {
		return *tx
	}
	return wpTx{}
}

func (w *wpPlus) counts() (creates, stored, hangsCancelled int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.creates, len(w.txs), w.hangsCancelled
}

func (w *wpPlus) refunds() []wpRefundCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]wpRefundCall(nil), w.refundCalls...)
}

func (w *wpPlus) answer(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(v)
}

func (w *wpPlus) fail(rw http.ResponseWriter, status int, msg string) {
	w.answer(rw, status, map[string]string{"error_message": msg})
}

// view is the JSON of GET (status) and PUT (commit) for tx.
func (tx *wpTx) view() map[string]any {
	v := map[string]any{"amount": tx.amount, "status": tx.status, "buy_order": tx.buyOrder, "session_id": tx.sessionID,
		"accounting_date": "1127", "transaction_date": tx.created.Format(time.RFC3339), "installments_number": 0,
		"card_detail": map[string]string{"card_number": "6623"}, "vci": ""}
	switch tx.status {
	case "INITIALIZED", "TIMEOUT", "ABORTED":
	case "FAILED":
		v["response_code"] = -1
	default:
		v["response_code"], v["authorization_code"], v["payment_type_code"], v["vci"] = 0, "1213", "VN", "TSY"
	}
	if strings.Contains(tx.status, "NULLIFIED") {
		v["balance"] = tx.balance
	}
	return v
}

func (w *wpPlus) serve(rw http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Tbk-Api-Key-Id") != tbkCommerce || r.Header.Get("Tbk-Api-Key-Secret") != tbkSecret {
		w.fail(rw, 401, "Not Authorized")
		return
	}
	body, _ := io.ReadAll(r.Body)
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, tbkBase), "/")
	parts := strings.Split(rest, "/")
	if r.Method == "POST" && rest == "" {
		w.create(rw, r, body)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	tx := w.txs[parts[0]]
	if tx == nil {
		w.fail(rw, 404, "Transaction not found")
		return
	}
	switch {
	case r.Method == "GET" && len(parts) == 1:
		tx.gets++
		w.answer(rw, 200, tx.view())
	case r.Method == "PUT" && len(parts) == 1:
		tx.commits++
		if tx.committed > 0 {
			w.fail(rw, 422, "Transaction already locked by another process")
			return
		}
		if tx.status == "INITIALIZED" { // FAILED and TIMEOUT are final
			tx.buyer = "PAID"
			if len(tx.script) > 0 {
				tx.buyer = tx.script[min(tx.commits, len(tx.script))-1]
			}
			if tx.buyer == "FAILED" || tx.buyer == "TIMEOUT" {
				tx.status = tx.buyer
			}
		}
		switch {
		case tx.status == "INITIALIZED" && tx.buyer == "PAID":
			tx.status = "AUTHORIZED"
			tx.committed++
			w.answer(rw, 200, tx.view())
		case tx.status == "INITIALIZED":
			w.fail(rw, 422, "Invalid status '0' for transaction while authorizing. Commerce will be notified by webpay to authorize")
		default:
			w.fail(rw, 422, fmt.Sprintf("Invalid status '%s' for transaction while authorizing", tx.status))
		}
	case r.Method == "POST" && len(parts) == 2 && parts[1] == "refunds":
		w.refundCalls = append(w.refundCalls, wpRefundCall{token: tx.token, contentType: r.Header.Get("Content-Type"), body: body})
		var req struct {
			Amount int64 `json:"amount"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Amount <= 0 {
			w.fail(rw, 422, "invalid amount")
			return
		}
		if tx.status != "AUTHORIZED" && tx.status != "PARTIALLY_NULLIFIED" {
			w.fail(rw, 422, "Invalid status for refund")
			return
		}
		if req.Amount > tx.balance {
			w.fail(rw, 422, "Amount to refund is greater than the balance")
			return
		}
		tx.balance -= req.Amount
		tx.status = "PARTIALLY_NULLIFIED"
		if tx.balance == 0 {
			tx.status = "NULLIFIED"
		}
		w.refundSeq++
		w.answer(rw, 200, map[string]any{"type": "NULLIFIED", "authorization_code": fmt.Sprintf("R%05d", w.refundSeq),
			"authorization_date": time.Now().UTC().Format(time.RFC3339), "nullified_amount": req.Amount, "balance": tx.balance, "response_code": 0})
	default:
		w.fail(rw, 404, "no such route")
	}
}

func (w *wpPlus) create(rw http.ResponseWriter, r *http.Request, body []byte) {
	w.mu.Lock()
	w.creates++
	mode := w.createMode
	w.mu.Unlock()
	switch mode {
	case "503":
		w.fail(rw, 503, "Service Unavailable")
		return
	case "hang":
		select {
		case <-r.Context().Done():
			w.mu.Lock()
			w.hangsCancelled++
			w.mu.Unlock()
		case <-w.release:
		case <-time.After(20 * time.Second):
		}
		return
	}
	var req struct {
		BuyOrder  string `json:"buy_order"`
		SessionID string `json:"session_id"`
		Amount    int64  `json:"amount"`
		ReturnURL string `json:"return_url"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.BuyOrder == "" || len(req.BuyOrder) > 26 || req.Amount <= 0 || req.ReturnURL == "" {
		w.fail(rw, 422, "invalid create request")
		return
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	w.mu.Lock()
	w.txs[tok] = &wpTx{token: tok, buyOrder: req.BuyOrder, sessionID: req.SessionID, returnURL: req.ReturnURL, amount: req.Amount,
		balance: req.Amount, status: "INITIALIZED", script: w.scripts[req.BuyOrder], created: time.Now().UTC()}
	w.byOrder[req.BuyOrder] = tok
	w.mu.Unlock()
	w.answer(rw, 200, map[string]string{"token": tok, "url": w.srv.URL + "/webpayserver/initTransaction"})
}

// pmTbkConfig is a one-tenant gateway paying through Transbank at
// webpayURL, with every payment.* event going to receiverURL and
// reconciliation after 1s.
func pmTbkConfig(t *testing.T, dir, webpayURL, receiverURL, callTimeout string) string {
	listen := freeAddr()
	return fmt.Sprintf(`listen: %s
public_url: http://%s
data_dir: %s
plugins_dir: %s
log: { level: debug, format: json }
plugins: { call_timeout: %s, start_timeout: 10s }
payments: { reconcile_after: 1s, reconcile_max_age: 1h }
delivery: { schedule: [50ms, 100ms], timeout: 400ms, allow_http: true, allow_networks: ["127.0.0.1/32"] }
tenants:
  tableflow:
    api_keys: ["${TABLEFLOW_API_KEY}"]
    defaults: { payments: transbank }
    providers:
      transbank:
        settings: { base_url: "%s", commerce_code: "%s" }
        credentials: { api_key_secret: "%s" }
    endpoints:
      - { id: backend, url: "%s", secret: "%s", types: ["payment.*"] }
`, listen, listen, filepath.Join(dir, "data"), copyPlugins(t), callTimeout, webpayURL, tbkCommerce, tbkSecret, receiverURL, endpointSecret)
}

// pmEvent is one delivery's envelope.
type pmEvent struct {
	id   string
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

// pmEventsFor returns the verified deliveries about payment id of type typ,
// one per webhook-id (a redelivery of one event counts once).
func pmEventsFor(t *testing.T, rcv *receiver, id, typ string) []pmEvent {
	t.Helper()
	var out []pmEvent
	seen := map[string]bool{}
	for _, d := range rcv.deliveries() {
		var e pmEvent
		if err := json.Unmarshal(d.body, &e); err != nil {
			t.Fatalf("delivery is not JSON: %s", d.body)
		}
		if !d.valid {
			t.Fatalf("delivery does not verify as a Standard Webhook: %s", d.body)
		}
		if e.Type != typ || e.Data["payment_id"] != id || seen[d.id] {
			continue
		}
		seen[d.id], e.id = true, d.id
		out = append(out, e)
	}
	return out
}

// pmStoredTypes lists the types of the gateway's events about payment
// id, from GET /v1/events.
func pmStoredTypes(t *testing.T, g *gateway, id string) []string {
	t.Helper()
	c := g.do("GET", "/v1/events?limit=100&payment_id="+id, tableflowKey, nil)
	if c.status != 200 {
		t.Fatalf("GET /v1/events: %d %s", c.status, c.body)
	}
	var out []string
	data, _ := c.json(t)["data"].([]any)
	for _, e := range data {
		typ, _ := e.(map[string]any)["type"].(string)
		out = append(out, typ)
	}
	return out
}

func pmCount(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

// pmAudit returns the tenant's audit records of action (newest first, as
// GET /v1/logs lists them), optionally only those about resource.
func pmAudit(t *testing.T, g *gateway, action, resource string) []map[string]any {
	t.Helper()
	c := g.do("GET", "/v1/logs?limit=100&action="+action, tableflowKey, nil)
	if c.status != 200 {
		t.Fatalf("GET /v1/logs: %d %s", c.status, c.body)
	}
	var out []map[string]any
	data, _ := c.json(t)["data"].([]any)
	for _, r := range data {
		rec := r.(map[string]any)
		if rec["action"] != action {
			t.Fatalf("GET /v1/logs?action=%s returned %v", action, rec)
		}
		if resource == "" || rec["resource_id"] == resource {
			out = append(out, rec)
		}
	}
	return out
}

var pmNoRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// pmReturn posts the buyer's return form to the return_url Transbank got.
func pmReturn(t *testing.T, returnURL string, form url.Values) (int, string) {
	t.Helper()
	resp, err := pmNoRedirect.PostForm(returnURL, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestTransbankReconciliation: Transbank sends no webhooks and reverses
// an authorization that is not committed in time, so for a payment whose
// buyer never comes back the reconciliation job commits it (PUT), exactly
// as the return would, through the plugin's payments.Reconciler. Webpay
// refuses the commit (422) while the buyer has not paid, and the plugin
// then reads the status: the payment stays requires_action and the job
// tries again on its backoff. The paid payment is committed once and
// succeeds; the rejected and expired ones end failed and cancelled with no
// successful commit. The tenant hears exactly one payment.confirmed /
// payment.failed / payment.cancelled, and a late return of the buyer (a
// commit Webpay refuses, then a status read) adds nothing.
func TestTransbankReconciliation(t *testing.T) {
	wp := newWpPlus(t)
	rcv := newReceiver(t)
	dir := t.TempDir()
	// The buyer's side at the job's 1st, 2nd, 3rd commit attempt.
	wp.script("recon-paid", "INITIALIZED", "INITIALIZED", "PAID")
	wp.script("recon-rejected", "INITIALIZED", "FAILED")
	wp.script("recon-expired", "INITIALIZED", "TIMEOUT")
	wp.script("recon-barrier", "PAID")
	g := startGateway(t, dir, pmTbkConfig(t, dir, wp.srv.URL, rcv.srv.URL, "5s"))

	create := func(ref string) string {
		t.Helper()
		c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 15990, "currency": "CLP", "reference": ref,
			"return_url": "https://tableflow.example/orders/" + ref})
		if c.status != 201 || c.json(t)["status"] != "requires_action" {
			t.Fatalf("create %s: %d %s", ref, c.status, c.body)
		}
		return c.json(t)["id"].(string)
	}
	start := time.Now()
	paid, rejected, expired := create("recon-paid"), create("recon-rejected"), create("recon-expired")
	status := func(id string) string {
		return g.do("GET", "/v1/payments/"+id, tableflowKey, nil).json(t)["status"].(string)
	}

	// Reading the payment (without refresh) does not call Transbank: only
	// the job does.
	if s := status(paid); s != "requires_action" {
		t.Fatalf("fresh payment: %s", s)
	}
	if tx := wp.tx("recon-paid"); tx.gets != 0 || tx.commits != 0 {
		t.Fatalf("reading a fresh payment called Webpay: %d status reads, %d commits", tx.gets, tx.commits)
	}

	settled := func() bool {
		return status(paid) == "succeeded" && status(rejected) == "failed" && status(expired) == "cancelled"
	}
	deadline := time.Now().Add(20 * time.Second)
	for !settled() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !settled() {
		for _, ref := range []string{"recon-paid", "recon-rejected", "recon-expired"} {
			tx := wp.tx(ref)
			t.Logf("%s at the fake: %d status reads, %d commit attempts, %d authorized", ref, tx.gets, tx.commits, tx.committed)
		}
		t.Fatalf("the reconciliation job did not settle the payments in 20s: paid %s, rejected %s, expired %s (want succeeded, failed, cancelled)",
			status(paid), status(rejected), status(expired))
	}
	settledAfter := time.Since(start)
	if settledAfter < time.Second {
		t.Errorf("payments settled %s after creation, before reconcile_after (1s)", settledAfter)
	}
	t.Logf("settled by reconciliation after %s", settledAfter.Round(100*time.Millisecond))

	t.Run("the job committed on its schedule; only the paid payment was authorized", func(t *testing.T) {
		// One commit attempt per run of the job: refused while the buyer
		// had not paid, authorizing once they had.
		for ref, want := range map[string]struct{ attempts, authorized int }{
			"recon-paid": {3, 1}, "recon-rejected": {2, 0}, "recon-expired": {2, 0},
		} {
			tx := wp.tx(ref)
			if tx.commits != want.attempts || tx.committed != want.authorized {
				t.Errorf("%s: %d commit attempts (%d authorized) at the fake, want %d (%d)", ref, tx.commits, tx.committed, want.attempts, want.authorized)
			}
			// A refused commit is followed by a status read.
			if tx.gets < want.attempts-want.authorized {
				t.Errorf("%s: %d status reads after %d refused commits", ref, tx.gets, want.attempts-want.authorized)
			}
		}
		for id, want := range map[string]int{paid: 3, rejected: 2, expired: 2} {
			recs := pmAudit(t, g, "payments.reconcile", id)
			if len(recs) != want {
				t.Errorf("audit log has %d payments.reconcile records for %s, want %d", len(recs), id, want)
			}
			for _, r := range recs {
				if r["status"] != "ok" || r["provider"] != "transbank" {
					t.Errorf("payments.reconcile record of %s: %v", id, r)
				}
			}
			if n := len(pmAudit(t, g, "payments.get", id)); n != 0 {
				t.Errorf("audit log has %d payments.get records for %s: the job read the status instead of reconciling", n, id)
			}
		}
	})

	t.Run("GET /v1/payments/{id} shows the settled payment", func(t *testing.T) {
		p := g.do("GET", "/v1/payments/"+paid, tableflowKey, nil).json(t)
		if p["status"] != "succeeded" || p["method"] != "credit" || p["amount"] != float64(15990) {
			t.Errorf("paid: %v", p)
		}
		p = g.do("GET", "/v1/payments/"+rejected, tableflowKey, nil).json(t)
		if p["status"] != "failed" || p["failure_code"] != "-1" {
			t.Errorf("rejected: %v", p)
		}
		p = g.do("GET", "/v1/payments/"+expired, tableflowKey, nil).json(t)
		if p["status"] != "cancelled" || p["failure_code"] != "timeout" {
			t.Errorf("expired: %v", p)
		}
	})

	t.Run("exactly one status event reaches the tenant", func(t *testing.T) {
		waitFor(t, "the three status events at the tenant endpoint", 10*time.Second, func() bool {
			return len(pmEventsFor(t, rcv, paid, "payment.confirmed")) >= 1 && len(pmEventsFor(t, rcv, rejected, "payment.failed")) >= 1 &&
				len(pmEventsFor(t, rcv, expired, "payment.cancelled")) >= 1
		})
		e := pmEventsFor(t, rcv, paid, "payment.confirmed")[0]
		if e.Data["status"] != "succeeded" || e.Data["provider"] != "transbank" || e.Data["provider_payment_id"] != wp.tx("recon-paid").token ||
			e.Data["reference"] != "recon-paid" {
			t.Errorf("payment.confirmed: %v", e.Data)
		}
		f := pmEventsFor(t, rcv, rejected, "payment.failed")[0]
		if f.Data["failure_code"] != "-1" {
			t.Errorf("payment.failed: %v", f.Data)
		}
		c := pmEventsFor(t, rcv, expired, "payment.cancelled")[0]
		if c.Data["status"] != "cancelled" || c.Data["reference"] != "recon-expired" {
			t.Errorf("payment.cancelled: %v", c.Data)
		}
	})

	t.Run("a late return of the buyer adds no event", func(t *testing.T) {
		// The buyer's browser finally comes back with token_ws: Webpay
		// refuses the second commit (422) and the plugin reads the status.
		before := map[string]wpTx{}
		for _, ref := range []string{"recon-paid", "recon-rejected", "recon-expired"} {
			before[ref] = wp.tx(ref)
		}
		tx := before["recon-paid"]
		code, loc := pmReturn(t, tx.returnURL, url.Values{"token_ws": {tx.token}})
		if code != 303 || !strings.Contains(loc, "status=succeeded") || !strings.Contains(loc, "payment_id="+paid) {
			t.Errorf("late return of the paid payment: %d %q", code, loc)
		}
		rtx := before["recon-rejected"]
		code, loc = pmReturn(t, rtx.returnURL, url.Values{"token_ws": {rtx.token}})
		if code != 303 || !strings.Contains(loc, "status=failed") {
			t.Errorf("late return of the rejected payment: %d %q", code, loc)
		}
		etx := before["recon-expired"]
		code, loc = pmReturn(t, etx.returnURL, url.Values{"TBK_TOKEN": {etx.token}, "TBK_ORDEN_COMPRA": {"recon-expired"}, "TBK_ID_SESION": {expired}})
		if code != 303 || !strings.Contains(loc, "status=cancelled") {
			t.Errorf("late abort of the expired payment: %d %q", code, loc)
		}
		for _, ref := range []string{"recon-paid", "recon-rejected"} {
			b, a := before[ref], wp.tx(ref)
			if a.commits != b.commits+1 || a.committed != b.committed || a.gets < b.gets+1 {
				t.Errorf("%s: the late return made %d commit attempts (%d authorized) and %d status reads; want 1 refused commit then a status read",
					ref, a.commits-b.commits, a.committed-b.committed, a.gets-b.gets)
			}
		}
		// An abort of a settled payment is answered by the gateway itself,
		// without calling Webpay.
		if b, a := before["recon-expired"], wp.tx("recon-expired"); a.gets != b.gets || a.commits != b.commits {
			t.Errorf("recon-expired: the late abort made %d status reads and %d commit attempts at Webpay, want none", a.gets-b.gets, a.commits-b.commits)
		}
		// Events are recorded before the return answers: the store is
		// authoritative now.
		for id, want := range map[string]string{paid: "payment.confirmed", rejected: "payment.failed", expired: "payment.cancelled"} {
			types := pmStoredTypes(t, g, id)
			if len(types) != 2 || pmCount(types, "payment.created") != 1 || pmCount(types, want) != 1 {
				t.Errorf("events of %s: %v, want one payment.created and one %s", id, types, want)
			}
		}
		for id, want := range map[string]string{paid: "succeeded", rejected: "failed", expired: "cancelled"} {
			if s := status(id); s != want {
				t.Errorf("%s after the late return: %s, want %s", id, s, want)
			}
		}
		// A later payment settled by the job is delivered after them: by
		// then any duplicate would have been delivered too.
		barrier := create("recon-barrier")
		waitFor(t, "the barrier payment's payment.confirmed", 15*time.Second, func() bool {
			return len(pmEventsFor(t, rcv, barrier, "payment.confirmed")) == 1
		})
		for id, typ := range map[string]string{paid: "payment.confirmed", rejected: "payment.failed", expired: "payment.cancelled"} {
			if n := len(pmEventsFor(t, rcv, id, typ)); n != 1 {
				t.Errorf("tenant endpoint got %d %s for %s, want 1", n, typ, id)
			}
			for _, other := range []string{"payment.confirmed", "payment.failed", "payment.cancelled"} {
				if other != typ && len(pmEventsFor(t, rcv, id, other)) != 0 {
					t.Errorf("tenant endpoint got %s for %s (settled as %s)", other, id, typ)
				}
			}
		}
		// The job stopped committing settled payments: nothing reached
		// Webpay since the late returns.
		for ref, want := range map[string]int{"recon-paid": 4, "recon-rejected": 3, "recon-expired": 2} {
			if tx := wp.tx(ref); tx.commits != want {
				t.Errorf("%s: %d commit attempts at the fake, want %d", ref, tx.commits, want)
			}
		}
		if tx := wp.tx("recon-barrier"); tx.commits != 1 || tx.committed != 1 {
			t.Errorf("recon-barrier: %d commit attempts (%d authorized), want 1 (1)", tx.commits, tx.committed)
		}
	})
}

// TestTransbankOutageOnCreate: when Webpay answers 503 the tenant gets 502
// provider_error (retryable); when it hangs past plugins.call_timeout, 504
// provider_timeout (retryable). Each failed call is in the audit log and
// stores no payment and no event; retrying with the same Idempotency-Key
// after the outage creates exactly one payment.
func TestTransbankOutageOnCreate(t *testing.T) {
	wp := newWpPlus(t)
	rcv := newReceiver(t)
	dir := t.TempDir()
	g := startGateway(t, dir, pmTbkConfig(t, dir, wp.srv.URL, rcv.srv.URL, "1s"))
	body := map[string]any{"amount": 8990, "currency": "CLP", "reference": "outage-1", "return_url": "https://tableflow.example/orders/outage-1"}

	errorOf := func(c call) map[string]any {
		t.Helper()
		e, _ := c.json(t)["error"].(map[string]any)
		return e
	}
	// lastCreateAudit is the newest payments.create record, which must be
	// a failure of kind status; no payment with its resource id exists.
	lastCreateAudit := func(status string) map[string]any {
		t.Helper()
		recs := pmAudit(t, g, "payments.create", "")
		if len(recs) == 0 {
			t.Fatal("no payments.create record in the audit log")
		}
		rec := recs[0]
		if rec["status"] != status || rec["provider"] != "transbank" || rec["error_message"] == nil {
			t.Errorf("audit record of the failed create: %v, want status %q", rec, status)
		}
		id, _ := rec["resource_id"].(string)
		if !strings.HasPrefix(id, "pay_") {
			t.Fatalf("audit record has no payment id: %v", rec)
		}
		if c := g.do("GET", "/v1/payments/"+id, tableflowKey, nil); c.status != 404 {
			t.Errorf("a payment was stored for the failed create %s: %d %s", id, c.status, c.body)
		}
		if types := pmStoredTypes(t, g, id); len(types) != 0 {
			t.Errorf("events for the failed create %s: %v", id, types)
		}
		return rec
	}

	t.Run("503 is a retryable provider_error", func(t *testing.T) {
		wp.setCreateMode("503")
		c := g.do("POST", "/v1/payments", tableflowKey, body)
		e := errorOf(c)
		if c.status != 502 || e["code"] != "provider_error" || e["retryable"] != true {
			t.Fatalf("create during a 503: %d %s", c.status, c.body)
		}
		if strings.Contains(string(c.body), tbkSecret) {
			t.Fatalf("the answer leaks the secret: %s", c.body)
		}
		lastCreateAudit("retryable")
	})

	t.Run("a hang past call_timeout is a retryable provider_timeout", func(t *testing.T) {
		wp.setCreateMode("hang")
		_, _, cancelledBefore := wp.counts()
		began := time.Now()
		c := g.do("POST", "/v1/payments", tableflowKey, body)
		took := time.Since(began)
		e := errorOf(c)
		if c.status != 504 || e["code"] != "provider_timeout" || e["retryable"] != true {
			t.Fatalf("create during a hang: %d %s (after %s)", c.status, c.body, took)
		}
		if took > 5*time.Second {
			t.Errorf("the tenant waited %s with call_timeout 1s", took)
		}
		lastCreateAudit("timeout")
		// The plugin's request to Webpay is abandoned with the call.
		waitFor(t, "the hung Webpay request to be cancelled", 5*time.Second, func() bool {
			_, _, n := wp.counts()
			return n > cancelledBefore
		})
	})

	t.Run("retrying one Idempotency-Key through the outage creates one payment", func(t *testing.T) {
		const key = "order-outage-2-attempt"
		body := map[string]any{"amount": 8990, "currency": "CLP", "reference": "outage-2", "return_url": "https://tableflow.example/orders/outage-2"}
		wp.script("outage-2", "INITIALIZED") // the buyer never pays: the payment stays requires_action
		wp.setCreateMode("503")
		if c := g.do("POST", "/v1/payments", tableflowKey, body, "Idempotency-Key", key); c.status != 502 || c.errorCode(t) != "provider_error" {
			t.Fatalf("first attempt (503): %d %s", c.status, c.body)
		}
		first := lastCreateAudit("retryable")["resource_id"].(string)
		wp.setCreateMode("hang")
		if c := g.do("POST", "/v1/payments", tableflowKey, body, "Idempotency-Key", key); c.status != 504 || c.errorCode(t) != "provider_timeout" {
			t.Fatalf("second attempt (hang): %d %s", c.status, c.body)
		}
		second := lastCreateAudit("timeout")["resource_id"].(string)
		if second != first {
			t.Errorf("retries of one Idempotency-Key ran as different operations: %s then %s", first, second)
		}
		creates, stored, _ := wp.counts()
		if stored != 0 {
			t.Fatalf("the fake stored %d transactions during the outage", stored)
		}
		wp.setCreateMode("")
		c := g.do("POST", "/v1/payments", tableflowKey, body, "Idempotency-Key", key)
		if c.status != 201 {
			t.Fatalf("attempt after recovery: %d %s", c.status, c.body)
		}
		id := c.json(t)["id"].(string)
		if id != first {
			t.Errorf("payment id after recovery %s, want the operation's id %s", id, first)
		}
		again := g.do("POST", "/v1/payments", tableflowKey, body, "Idempotency-Key", key)
		if again.status != 201 || again.json(t)["id"] != id || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay after success: %d %s %v", again.status, again.body, again.header)
		}
		if n, stored, _ := wp.counts(); n != creates+1 || stored != 1 {
			t.Errorf("Webpay got %d more creates and holds %d transactions, want 1 and 1", n-creates, stored)
		}
		var statuses []string
		for _, r := range pmAudit(t, g, "payments.create", id) {
			statuses = append(statuses, r["status"].(string))
		}
		if strings.Join(statuses, ",") != "ok,timeout,retryable" {
			t.Errorf("audit of operation %s (newest first): %v, want ok,timeout,retryable", id, statuses)
		}
		// One payment, one payment.created, in the store and at the tenant.
		ev := g.do("GET", "/v1/events?limit=100&type=payment.created", tableflowKey, nil)
		data, _ := ev.json(t)["data"].([]any)
		if len(data) != 1 || !strings.Contains(string(ev.body), id) {
			t.Fatalf("payment.created events: %s", ev.body)
		}
		waitFor(t, "payment.created at the tenant", 10*time.Second, func() bool { return len(pmEventsFor(t, rcv, id, "payment.created")) == 1 })
		for _, d := range rcv.deliveries() {
			if !strings.Contains(string(d.body), id) {
				t.Errorf("tenant endpoint got an event about another payment: %s", d.body)
			}
		}
	})
}

// TestTransbankRefunds: Transbank has no webhooks, so the gateway
// announces payment.refunded from the refund call's answer: a partial
// refund then the rest reach the tenant as two payment.refunded with
// refunded_amount and partial, and Webpay got each refund with the
// documented body {"amount": n}.
func TestTransbankRefunds(t *testing.T) {
	wp := newWpPlus(t)
	rcv := newReceiver(t)
	dir := t.TempDir()
	g := startGateway(t, dir, pmTbkConfig(t, dir, wp.srv.URL, rcv.srv.URL, "5s"))

	c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 12990, "currency": "CLP", "reference": "refund-1",
		"return_url": "https://tableflow.example/orders/refund-1"})
	if c.status != 201 {
		t.Fatalf("create: %d %s", c.status, c.body)
	}
	id := c.json(t)["id"].(string)
	tx := wp.tx("refund-1")
	if code, loc := pmReturn(t, tx.returnURL, url.Values{"token_ws": {tx.token}}); code != 303 || !strings.Contains(loc, "status=succeeded") {
		t.Fatalf("return: %d %q", code, loc)
	}
	waitFor(t, "payment.confirmed at the tenant", 10*time.Second, func() bool { return len(pmEventsFor(t, rcv, id, "payment.confirmed")) == 1 })

	refundEvent := func(n int) pmEvent {
		t.Helper()
		waitFor(t, fmt.Sprintf("payment.refunded #%d at the tenant", n), 10*time.Second, func() bool {
			return len(pmEventsFor(t, rcv, id, "payment.refunded")) >= n
		})
		return pmEventsFor(t, rcv, id, "payment.refunded")[n-1]
	}

	t.Run("partial refund", func(t *testing.T) {
		c := g.do("POST", "/v1/payments/"+id+"/refunds", tableflowKey, map[string]any{"amount": 3000}, "Idempotency-Key", "refund-1-partial")
		p := c.json(t)
		if c.status != 200 || p["amount_refunded"] != float64(3000) || p["status"] != "succeeded" {
			t.Fatalf("partial refund: %d %s", c.status, c.body)
		}
		e := refundEvent(1)
		if e.Data["refunded_amount"] != float64(3000) || e.Data["partial"] != true || e.Data["refund_id"] != "R00001" || e.Data["provider"] != "transbank" {
			t.Fatalf("payment.refunded: %v", e.Data)
		}
		// A replay of the same Idempotency-Key refunds nothing more.
		r := g.do("POST", "/v1/payments/"+id+"/refunds", tableflowKey, map[string]any{"amount": 3000}, "Idempotency-Key", "refund-1-partial")
		if r.status != 200 || r.header.Get("Idempotent-Replayed") != "true" || r.json(t)["amount_refunded"] != float64(3000) {
			t.Fatalf("replay: %d %s", r.status, r.body)
		}
		if n := len(wp.refunds()); n != 1 {
			t.Fatalf("Webpay got %d refunds after a replay, want 1", n)
		}
	})

	t.Run("refund of the rest", func(t *testing.T) {
		c := g.do("POST", "/v1/payments/"+id+"/refunds", tableflowKey, nil)
		p := c.json(t)
		if c.status != 200 || p["amount_refunded"] != float64(12990) || p["status"] != "refunded" {
			t.Fatalf("refund of the rest: %d %s", c.status, c.body)
		}
		e := refundEvent(2)
		if e.Data["refunded_amount"] != float64(9990) || e.Data["partial"] != false || e.Data["refund_id"] != "R00002" {
			t.Fatalf("payment.refunded: %v", e.Data)
		}
		if got := g.do("GET", "/v1/payments/"+id, tableflowKey, nil).json(t); got["status"] != "refunded" || got["amount_refunded"] != float64(12990) {
			t.Fatalf("payment after the full refund: %v", got)
		}
	})

	t.Run("Webpay got the documented refund requests", func(t *testing.T) {
		calls := wp.refunds()
		if len(calls) != 2 {
			t.Fatalf("Webpay got %d refunds, want 2", len(calls))
		}
		for i, want := range []int64{3000, 9990} {
			var b map[string]any
			if err := json.Unmarshal(calls[i].body, &b); err != nil {
				t.Fatalf("refund %d body: %s", i+1, calls[i].body)
			}
			if calls[i].token != tx.token || !strings.HasPrefix(calls[i].contentType, "application/json") || len(b) != 1 || b["amount"] != float64(want) {
				t.Errorf("refund %d: token %s content-type %q body %s; want {\"amount\":%d}", i+1, calls[i].token, calls[i].contentType, calls[i].body, want)
			}
		}
		if st := wp.tx("refund-1"); st.status != "NULLIFIED" || st.balance != 0 {
			t.Errorf("fake's transaction after the refunds: %s balance %d", st.status, st.balance)
		}
	})

	t.Run("nothing left to refund", func(t *testing.T) {
		c := g.do("POST", "/v1/payments/"+id+"/refunds", tableflowKey, map[string]any{"amount": 1})
		if c.status != 400 || c.errorCode(t) != "invalid_request" {
			t.Fatalf("refund of a refunded payment: %d %s", c.status, c.body)
		}
		if n := len(wp.refunds()); n != 2 {
			t.Fatalf("Webpay got %d refunds, want 2", n)
		}
		types := pmStoredTypes(t, g, id)
		if pmCount(types, "payment.refunded") != 2 || pmCount(types, "payment.confirmed") != 1 || pmCount(types, "payment.created") != 1 {
			t.Fatalf("events of the payment: %v", types)
		}
		if recs := pmAudit(t, g, "payments.refund", id); len(recs) != 2 || recs[0]["status"] != "ok" || recs[1]["status"] != "ok" {
			t.Fatalf("audit of the refunds: %v", recs)
		}
	})
}
