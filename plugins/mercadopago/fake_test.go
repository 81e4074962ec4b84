package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeToken is the access token the fake API accepts.
const fakeToken = "TEST-1234567890123456-112714-0f1e2d3c4b5a69788796a5b4c3d2e1f0-987654321"

// fakeMP is an httptest fake of the MercadoPago API parts the plugin uses,
// following the documented wire format: Bearer auth, X-Idempotency-Key
// replay on non-GET requests, decimal amounts and the error body
// {"message","error","status","cause":[]}. It records every request.
type fakeMP struct {
	*httptest.Server
	t testing.TB

	mu       sync.Mutex
	requests []recorded
	payments map[int]*fakePayment
	raw      map[int][]byte // recorded payment payloads served verbatim
	prefs    map[string]map[string]any
	// preapprovals are the subscriptions created or loaded; rawPreapprovals
	// and rawAuthorized are recorded payloads served verbatim for GET
	// /preapproval/{id} and GET /authorized_payments/{id}.
	preapprovals    map[string]map[string]any
	rawPreapprovals map[string][]byte
	rawAuthorized   map[string][]byte
	replay          map[string]replayed
	nextID          int
	// autoPay makes every created preference paid at once by a buyer: an
	// approved payment with the preference's external_reference and
	// metadata appears.
	autoPay bool
	// directStatus is the status of payments created with POST /v1/payments.
	directStatus string
	// fail, when set, answers every request with this status and body.
	fail *replayed
	// stall, when set, blocks every request until closed or the client
	// goes away.
	stall chan struct{}
}

type recorded struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

type replayed struct {
	status int
	body   []byte
	header http.Header
}

type fakePayment struct {
	ID                        int            `json:"id"`
	Status                    string         `json:"status"`
	StatusDetail              string         `json:"status_detail,omitempty"`
	CurrencyID                string         `json:"currency_id"`
	PaymentTypeID             string         `json:"payment_type_id,omitempty"`
	PaymentMethodID           string         `json:"payment_method_id,omitempty"`
	ExternalReference         string         `json:"external_reference,omitempty"`
	TransactionAmount         float64        `json:"transaction_amount"`
	TransactionAmountRefunded float64        `json:"transaction_amount_refunded"`
	DateCreated               string         `json:"date_created,omitempty"`
	DateApproved              string         `json:"date_approved,omitempty"`
	DateLastUpdated           string         `json:"date_last_updated,omitempty"`
	Metadata                  map[string]any `json:"metadata,omitempty"`
	Refunds                   []fakeRefund   `json:"refunds"`
}

type fakeRefund struct {
	ID        int     `json:"id"`
	PaymentID int     `json:"payment_id"`
	Amount    float64 `json:"amount"`
	Status    string  `json:"status"`
}

func newFakeMP(t testing.TB) *fakeMP {
	t.Helper()
	f := &fakeMP{
		t: t, payments: map[int]*fakePayment{}, raw: map[int][]byte{}, prefs: map[string]map[string]any{},
		preapprovals: map[string]map[string]any{}, rawPreapprovals: map[string][]byte{}, rawAuthorized: map[string][]byte{},
		replay: map[string]replayed{}, nextID: 1300000000, directStatus: "approved",
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.release()
		f.Close()
	})
	return f
}

// settings returns tenant settings pointing the plugin at the fake.
func (f *fakeMP) settings() map[string]string {
	return map[string]string{"base_url": f.URL}
}

func (f *fakeMP) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stall != nil {
		close(f.stall)
		f.stall = nil
	}
}

func (f *fakeMP) stallAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stall == nil {
		f.stall = make(chan struct{})
	}
}

func (f *fakeMP) failWith(status int, body string, header http.Header) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = &replayed{status: status, body: []byte(body), header: header}
}

func (f *fakeMP) addPayment(p fakePayment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.payments[p.ID] = &p
}

// loadPayment serves testdata/payments/<name>.json verbatim for id.
func (f *fakeMP) loadPayment(id int, name string) {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "payments", name+".json"))
	if err != nil {
		f.t.Fatalf("fake: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.raw[id] = b
}

// loadPreapproval serves testdata/preapprovals/<name>.json verbatim for id.
func (f *fakeMP) loadPreapproval(id, name string) {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rawPreapprovals[id] = f.readTestdata("preapprovals", name)
}

// loadAuthorizedPayment serves testdata/authorized_payments/<name>.json
// verbatim for id.
func (f *fakeMP) loadAuthorizedPayment(id, name string) {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rawAuthorized[id] = f.readTestdata("authorized_payments", name)
}

func (f *fakeMP) readTestdata(dir, name string) []byte {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", dir, name+".json"))
	if err != nil {
		f.t.Fatalf("fake: %v", err)
	}
	return b
}

// setPreapprovalStatus moves a created preapproval, as the customer (who
// authorizes it) or MercadoPago would.
func (f *fakeMP) setPreapprovalStatus(id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.preapprovals[id]; p != nil {
		p["status"] = status
	}
}

// preapproval returns a created preapproval as served.
func (f *fakeMP) preapproval(id string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.preapprovals[id]
}

func (f *fakeMP) recorded() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.requests...)
}

func (f *fakeMP) payment(id int) fakePayment {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.payments[id]; p != nil {
		return *p
	}
	return fakePayment{}
}

func apiErr(status int, code, msg string) replayed {
	b, _ := json.Marshal(map[string]any{"message": msg, "error": code, "status": status, "cause": []any{}})
	return replayed{status: status, body: b}
}

func ok(status int, v any) replayed {
	b, _ := json.Marshal(v)
	return replayed{status: status, body: b}
}

func (f *fakeMP) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	stall, fail := f.stall, f.fail
	f.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-r.Context().Done():
			return
		}
	}
	res := f.answer(r, body, fail)
	for k, v := range res.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

func (f *fakeMP) answer(r *http.Request, body []byte, fail *replayed) replayed {
	if fail != nil {
		return *fail
	}
	if r.Header.Get("Authorization") != "Bearer "+fakeToken {
		return apiErr(http.StatusUnauthorized, "unauthorized", "invalid access token")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.Header.Get("X-Idempotency-Key")
	if r.Method != http.MethodGet {
		if key == "" {
			return apiErr(http.StatusBadRequest, "bad_request", "X-Idempotency-Key header is required")
		}
		if prev, ok := f.replay[r.Method+" "+r.URL.Path+" "+key]; ok {
			return prev
		}
	}
	res := f.route(r, body)
	if r.Method != http.MethodGet && res.status < 500 {
		f.replay[r.Method+" "+r.URL.Path+" "+key] = res
	}
	return res
}

// route handles one request; f.mu is held.
func (f *fakeMP) route(r *http.Request, body []byte) replayed {
	now := time.Now().Format("2006-01-02T15:04:05.000-07:00")
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/checkout/preferences":
		var pref map[string]any
		if err := json.Unmarshal(body, &pref); err != nil {
			return apiErr(http.StatusBadRequest, "bad_request", "invalid json")
		}
		items, _ := pref["items"].([]any)
		if len(items) == 0 {
			return apiErr(http.StatusBadRequest, "invalid_items", "items needed")
		}
		item, _ := items[0].(map[string]any)
		price, _ := item["unit_price"].(float64)
		if price <= 0 {
			return apiErr(http.StatusBadRequest, "invalid_unit_price", "unit_price invalid")
		}
		f.nextID++
		id := fmt.Sprintf("987654321-%08x-4ebb-40be-966f-700250fa5370", f.nextID)
		pref["id"] = id
		pref["init_point"] = "https://www.mercadopago.com/checkout/v1/redirect?pref_id=" + id
		pref["sandbox_init_point"] = "https://sandbox.mercadopago.com/checkout/v1/redirect?pref_id=" + id
		pref["date_created"] = now
		f.prefs[id] = pref
		if f.autoPay {
			f.nextID++
			meta, _ := pref["metadata"].(map[string]any)
			ref, _ := pref["external_reference"].(string)
			cur, _ := item["currency_id"].(string)
			f.payments[f.nextID] = &fakePayment{
				ID: f.nextID, Status: "approved", StatusDetail: "accredited", CurrencyID: cur, PaymentTypeID: "credit_card",
				ExternalReference: ref, TransactionAmount: price, DateCreated: now, DateApproved: now, DateLastUpdated: now, Metadata: meta,
			}
		}
		return ok(http.StatusCreated, pref)
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "checkout" && parts[1] == "preferences":
		if pref, ok2 := f.prefs[parts[2]]; ok2 {
			return ok(http.StatusOK, pref)
		}
		return apiErr(http.StatusNotFound, "not_found", "preference not found")
	case r.Method == http.MethodPost && r.URL.Path == "/v1/payments":
		var req struct {
			TransactionAmount float64        `json:"transaction_amount"`
			Token             string         `json:"token"`
			PaymentMethodID   string         `json:"payment_method_id"`
			ExternalReference string         `json:"external_reference"`
			Metadata          map[string]any `json:"metadata"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Token == "" || req.PaymentMethodID == "" || req.TransactionAmount <= 0 {
			return apiErr(http.StatusBadRequest, "bad_request", "invalid payment request")
		}
		f.nextID++
		p := &fakePayment{ID: f.nextID, Status: f.directStatus, CurrencyID: "CLP", PaymentTypeID: "credit_card", PaymentMethodID: req.PaymentMethodID,
			ExternalReference: req.ExternalReference, TransactionAmount: req.TransactionAmount, DateCreated: now, DateLastUpdated: now, Metadata: req.Metadata}
		f.payments[p.ID] = p
		return ok(http.StatusCreated, p)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/payments/search":
		ref := r.URL.Query().Get("external_reference")
		results := []fakePayment{}
		for _, p := range f.payments {
			if p.ExternalReference == ref {
				results = append(results, *p)
			}
		}
		return ok(http.StatusOK, map[string]any{"paging": map[string]int{"total": len(results), "limit": 30}, "results": results})
	case r.URL.Path == "/preapproval" || strings.HasPrefix(r.URL.Path, "/preapproval/"):
		return f.routePreapproval(r, parts, body, now)
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "authorized_payments":
		if raw, ok2 := f.rawAuthorized[parts[1]]; ok2 {
			return replayed{status: http.StatusOK, body: raw}
		}
		return apiErr(http.StatusNotFound, "not_found", "authorized payment not found")
	case len(parts) >= 3 && parts[0] == "v1" && parts[1] == "payments":
		id, err := strconv.Atoi(parts[2])
		if err != nil {
			return apiErr(http.StatusBadRequest, "bad_request", "invalid id")
		}
		if raw, ok2 := f.raw[id]; ok2 && r.Method == http.MethodGet && len(parts) == 3 {
			return replayed{status: http.StatusOK, body: raw}
		}
		p := f.payments[id]
		if p == nil {
			return apiErr(http.StatusNotFound, "not_found", "Payment not found")
		}
		switch {
		case r.Method == http.MethodGet && len(parts) == 3:
			return ok(http.StatusOK, p)
		case r.Method == http.MethodPut && len(parts) == 3:
			var req struct {
				Status string `json:"status"`
			}
			_ = json.Unmarshal(body, &req)
			if req.Status != "cancelled" {
				return apiErr(http.StatusBadRequest, "bad_request", "unsupported update")
			}
			switch p.Status {
			case "pending", "in_process", "authorized":
				p.Status, p.StatusDetail, p.DateLastUpdated = "cancelled", "by_collector", now
				return ok(http.StatusOK, p)
			}
			return apiErr(http.StatusBadRequest, "bad_request", "Invalid payment status")
		case r.Method == http.MethodPost && len(parts) == 4 && parts[3] == "refunds":
			if p.Status != "approved" {
				return apiErr(http.StatusBadRequest, "bad_request", "Payment not refundable")
			}
			amount := p.TransactionAmount - p.TransactionAmountRefunded
			if len(body) > 0 {
				var req struct {
					Amount float64 `json:"amount"`
				}
				if err := json.Unmarshal(body, &req); err != nil {
					return apiErr(http.StatusBadRequest, "bad_request", "invalid json")
				}
				if req.Amount > 0 {
					amount = req.Amount
				}
			}
			if amount > p.TransactionAmount-p.TransactionAmountRefunded+1e-9 {
				return apiErr(http.StatusBadRequest, "bad_request", "amount exceeds the refundable amount")
			}
			f.nextID++
			ref := fakeRefund{ID: f.nextID, PaymentID: p.ID, Amount: amount, Status: "approved"}
			p.Refunds = append(p.Refunds, ref)
			p.TransactionAmountRefunded += amount
			if p.TransactionAmountRefunded >= p.TransactionAmount-1e-9 {
				p.Status, p.StatusDetail = "refunded", "refunded"
			}
			p.DateLastUpdated = now
			return ok(http.StatusCreated, ref)
		}
	}
	return apiErr(http.StatusNotFound, "not_found", "resource not found")
}

// routePreapproval serves POST /preapproval and GET/PUT /preapproval/{id}
// with MercadoPago's validation of the fields the plugin sends; f.mu is
// held.
func (f *fakeMP) routePreapproval(r *http.Request, parts []string, body []byte, now string) replayed {
	switch {
	case r.Method == http.MethodPost && len(parts) == 1:
		var req map[string]any
		if err := json.Unmarshal(body, &req); err != nil {
			return apiErr(http.StatusBadRequest, "bad_request", "invalid json")
		}
		email, _ := req["payer_email"].(string)
		back, _ := req["back_url"].(string)
		plan, _ := req["preapproval_plan_id"].(string)
		switch {
		case email == "":
			return apiErr(http.StatusBadRequest, "bad_request", "payer_email is required")
		case back == "":
			return apiErr(http.StatusBadRequest, "bad_request", "back_url is required")
		}
		if plan != "" {
			// The plan's recurrence, as MercadoPago copies it.
			req["auto_recurring"] = map[string]any{"frequency": 1, "frequency_type": "months", "transaction_amount": 9990, "currency_id": "CLP"}
		}
		rec, _ := req["auto_recurring"].(map[string]any)
		freq, _ := rec["frequency"].(float64)
		ftype, _ := rec["frequency_type"].(string)
		amount, _ := rec["transaction_amount"].(float64)
		cur, _ := rec["currency_id"].(string)
		if plan == "" && (freq < 1 || freq != float64(int(freq)) || (ftype != "days" && ftype != "months") || amount <= 0 || cur == "") {
			return apiErr(http.StatusBadRequest, "bad_request", "auto_recurring: frequency, frequency_type (days or months), transaction_amount and currency_id are required")
		}
		rec["start_date"] = now
		f.nextID++
		id := fmt.Sprintf("2c938084%024x", f.nextID)
		req["id"] = id
		req["payer_id"] = 123123123
		req["collector_id"] = 987654321
		req["application_id"] = 1234567812345678
		req["init_point"] = "https://www.mercadopago.cl/subscriptions/checkout?preapproval_id=" + id
		req["sandbox_init_point"] = "https://sandbox.mercadopago.cl/subscriptions/checkout?preapproval_id=" + id
		req["date_created"] = now
		req["last_modified"] = now
		req["next_payment_date"] = now
		req["version"] = 0
		if _, ok := req["status"]; !ok {
			req["status"] = "pending"
		}
		f.preapprovals[id] = req
		return ok(http.StatusCreated, req)
	case len(parts) != 2:
		return apiErr(http.StatusNotFound, "not_found", "resource not found")
	case r.Method == http.MethodGet:
		if raw, ok2 := f.rawPreapprovals[parts[1]]; ok2 {
			return replayed{status: http.StatusOK, body: raw}
		}
		if p := f.preapprovals[parts[1]]; p != nil {
			return ok(http.StatusOK, p)
		}
		return apiErr(http.StatusNotFound, "not_found", "preapproval not found")
	case r.Method == http.MethodPut:
		p := f.preapprovals[parts[1]]
		if p == nil {
			return apiErr(http.StatusNotFound, "not_found", "preapproval not found")
		}
		var req struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return apiErr(http.StatusBadRequest, "bad_request", "invalid json")
		}
		if p["status"] == "cancelled" {
			return apiErr(http.StatusBadRequest, "bad_request", "You can not modify a cancelled preapproval")
		}
		switch req.Status {
		case "cancelled", "paused", "authorized":
			p["status"], p["last_modified"] = req.Status, now
			p["version"] = p["version"].(int) + 1
			return ok(http.StatusOK, p)
		}
		return apiErr(http.StatusBadRequest, "bad_request", "invalid status")
	}
	return apiErr(http.StatusNotFound, "not_found", "resource not found")
}
