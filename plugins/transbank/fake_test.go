package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeWebpay is an httptest fake of the Webpay Plus REST API v1.2 that
// follows providers.md §3: the documented paths under basePath, the
// Tbk-Api-Key-Id / Tbk-Api-Key-Secret / Content-Type headers (a wrong
// secret is a 401), the JSON shapes and the transaction state machine:
//
//	create               → INITIALIZED
//	commit               → AUTHORIZED, response_code 0, or FAILED,
//	                       response_code -1 for rejectAmount
//	commit again         → 422 "Transaction already locked by another process"
//	refund all, untouched → REVERSED
//	refund part          → PARTIALLY_NULLIFIED with balance, NULLIFIED at 0
//	refund uncommitted   → 422
type fakeWebpay struct {
	*httptest.Server

	mu      sync.Mutex
	keys    map[string]string // commerce code → secret
	txs     map[string]*fakeTx
	calls   []fakeCall
	answer  func(w http.ResponseWriter, r *http.Request) bool // overrides when it returns true
	stalled chan struct{}                                     // non-nil: requests wait until it closes
}

// rejectAmount is the amount the fake's "card" rejects at commit.
const rejectAmount = 666

type fakeTx struct {
	create    createBody
	commerce  string
	status    string
	code      int
	committed bool
	balance   int64
	nullified bool
	authSeq   int
}

type fakeCall struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

func newFakeWebpay(t testing.TB) *fakeWebpay {
	t.Helper()
	f := &fakeWebpay{
		keys: map[string]string{integrationCommerceCode: integrationAPIKey, prodCommerce: prodSecret},
		txs:  map[string]*fakeTx{},
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// Production credentials the fake accepts.
const (
	prodCommerce = "597099999999"
	prodSecret   = "prod-secret-7f3a9c2e1b5d4f60a8e9"
)

// stall makes requests hang until the returned func is called.
func (f *fakeWebpay) stall() func() {
	ch := make(chan struct{})
	f.mu.Lock()
	f.stalled = ch
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.stalled = nil
			f.mu.Unlock()
			close(ch)
		})
	}
}

// override makes fn answer requests instead of the fake while it returns true.
func (f *fakeWebpay) override(fn func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	f.answer = fn
	f.mu.Unlock()
}

// callsTo returns the recorded calls whose method and path suffix match.
func (f *fakeWebpay) callsTo(method, pathSuffix string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.Method == method && strings.HasSuffix(c.Path, pathSuffix) {
			out = append(out, c)
		}
	}
	return out
}

func fakeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error_message": msg})
}

func fakeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeWebpay) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	stalled, answer := f.stalled, f.answer
	f.mu.Unlock()
	if stalled != nil {
		select {
		case <-stalled:
		case <-r.Context().Done():
			return
		}
	}
	if answer != nil && answer(w, r) {
		return
	}

	id, secret := r.Header.Get("Tbk-Api-Key-Id"), r.Header.Get("Tbk-Api-Key-Secret")
	f.mu.Lock()
	want, known := f.keys[id]
	f.mu.Unlock()
	if !known || secret != want {
		fakeError(w, http.StatusUnauthorized, "Not Authorized")
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		fakeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, basePath+"/transactions")
	if !ok {
		fakeError(w, http.StatusNotFound, "Not Found")
		return
	}
	parts := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	switch {
	case rest == "" && r.Method == http.MethodPost:
		f.create(w, id, body)
	case len(parts) == 1 && parts[0] != "" && r.Method == http.MethodPut:
		f.commit(w, id, parts[0])
	case len(parts) == 1 && parts[0] != "" && r.Method == http.MethodGet:
		f.status(w, id, parts[0])
	case len(parts) == 2 && parts[1] == "refunds" && r.Method == http.MethodPost:
		f.refund(w, id, parts[0], body)
	default:
		fakeError(w, http.StatusNotFound, "Not Found")
	}
}

func allowedBuyOrder(s string) bool {
	if s == "" || len(s) > maxBuyOrder {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("|_=&%.,~:/?[+!@()>-", r)) {
			return false
		}
	}
	return true
}

func (f *fakeWebpay) create(w http.ResponseWriter, commerce string, body []byte) {
	var in createBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		fakeError(w, http.StatusBadRequest, "Invalid request body")
		return
	}
	switch {
	case !allowedBuyOrder(in.BuyOrder):
		fakeError(w, http.StatusUnprocessableEntity, "Invalid value for parameter: buy_order")
		return
	case in.SessionID == "" || len(in.SessionID) > maxSessionID:
		fakeError(w, http.StatusUnprocessableEntity, "Invalid value for parameter: session_id")
		return
	case in.Amount <= 0:
		fakeError(w, http.StatusUnprocessableEntity, "Invalid value for parameter: amount")
		return
	case in.ReturnURL == "" || len(in.ReturnURL) > maxReturnURL:
		fakeError(w, http.StatusUnprocessableEntity, "Invalid value for parameter: return_url")
		return
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	token := hex.EncodeToString(raw) // 64 characters, like Transbank's
	f.mu.Lock()
	f.txs[token] = &fakeTx{create: in, commerce: commerce, status: "INITIALIZED", balance: in.Amount}
	f.mu.Unlock()
	fakeJSON(w, createAnswer{Token: token, URL: f.URL + "/webpayserver/initTransaction"})
}

// lookup returns the transaction for token of commerce; the caller holds f.mu.
func (f *fakeWebpay) lookup(w http.ResponseWriter, commerce, token string) *fakeTx {
	tx := f.txs[token]
	if tx == nil || tx.commerce != commerce {
		fakeError(w, http.StatusNotFound, "Transaction not found")
		return nil
	}
	return tx
}

func (f *fakeWebpay) commit(w http.ResponseWriter, commerce, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tx := f.lookup(w, commerce, token)
	if tx == nil {
		return
	}
	if tx.committed {
		fakeError(w, http.StatusUnprocessableEntity, "Transaction already locked by another process")
		return
	}
	tx.committed = true
	if tx.create.Amount == rejectAmount {
		tx.status, tx.code, tx.balance = "FAILED", -1, 0
	} else {
		tx.status, tx.code = "AUTHORIZED", 0
	}
	fakeJSON(w, txAnswer(tx))
}

func (f *fakeWebpay) status(w http.ResponseWriter, commerce, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if tx := f.lookup(w, commerce, token); tx != nil {
		fakeJSON(w, txAnswer(tx))
	}
}

func txAnswer(tx *fakeTx) map[string]any {
	out := map[string]any{
		"amount":     tx.create.Amount,
		"status":     tx.status,
		"buy_order":  tx.create.BuyOrder,
		"session_id": tx.create.SessionID,
	}
	if tx.committed {
		out["vci"] = "TSY"
		out["card_detail"] = map[string]string{"card_number": "6623"}
		out["accounting_date"] = "1127"
		out["transaction_date"] = "2026-11-27T14:03:07.512Z"
		out["authorization_code"] = "1213"
		out["payment_type_code"] = "VD"
		out["response_code"] = tx.code
		out["installments_number"] = 0
	}
	if tx.nullified {
		out["balance"] = tx.balance
	}
	return out
}

func (f *fakeWebpay) refund(w http.ResponseWriter, commerce, token string, body []byte) {
	var in refundBody
	if err := json.Unmarshal(body, &in); err != nil {
		fakeError(w, http.StatusBadRequest, "Invalid request body")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tx := f.lookup(w, commerce, token)
	if tx == nil {
		return
	}
	switch {
	case !tx.committed || tx.status == "FAILED" || tx.status == "REVERSED" || tx.status == "NULLIFIED":
		fakeError(w, http.StatusUnprocessableEntity, "Transaction is not in a state that allows refunds")
		return
	case in.Amount <= 0 || in.Amount > tx.balance:
		fakeError(w, http.StatusUnprocessableEntity, "Invalid value for parameter: amount")
		return
	}
	if !tx.nullified && in.Amount == tx.create.Amount {
		tx.status, tx.balance = "REVERSED", 0
		fakeJSON(w, map[string]any{"type": "REVERSED"})
		return
	}
	tx.nullified = true
	tx.balance -= in.Amount
	tx.authSeq++
	tx.status = "PARTIALLY_NULLIFIED"
	if tx.balance == 0 {
		tx.status = "NULLIFIED"
	}
	fakeJSON(w, map[string]any{
		"type":               "NULLIFIED",
		"authorization_code": "12345" + string(rune('0'+tx.authSeq%10)),
		"authorization_date": time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC).Format(time.RFC3339),
		"nullified_amount":   in.Amount,
		"balance":            tx.balance,
		"response_code":      0,
	})
}
