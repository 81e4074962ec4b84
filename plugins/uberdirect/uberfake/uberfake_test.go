package uberfake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock lets a test move the fake's time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func start(t *testing.T) (*Server, *fakeClock) {
	t.Helper()
	s := Start()
	t.Cleanup(s.Close)
	clk := &fakeClock{now: time.Now()}
	s.mu.Lock()
	s.now = clk.Now
	s.mu.Unlock()
	return s, clk
}

func tokenFor(t *testing.T, s *Server) string {
	t.Helper()
	status, body := do(t, http.MethodPost, s.URL()+"/oauth/v2/token", "application/x-www-form-urlencoded",
		"client_id="+ClientID+"&client_secret="+ClientSecret+"&grant_type=client_credentials&scope=eats.deliveries", "")
	if status != http.StatusOK {
		t.Fatalf("token: %d %s", status, body)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		Scope       string `json:"scope"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" || tr.TokenType != "Bearer" || tr.Scope != "eats.deliveries" {
		t.Fatalf("token answer %s", body)
	}
	return tr.AccessToken
}

func do(t *testing.T, method, u, contentType, body, token string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func api(s *Server) string { return s.URL() + "/v1/customers/" + CustomerID }

// errorCode decodes Uber's error body.
func errorCode(t *testing.T, body []byte) (code string, metadata map[string]any) {
	t.Helper()
	var e struct {
		Code     string         `json:"code"`
		Message  string         `json:"message"`
		Metadata map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code == "" || e.Message == "" {
		t.Fatalf("not an Uber error body: %s", body)
	}
	return e.Code, e.Metadata
}

const (
	pickupAddr  = `{"street_address":["Avenida Providencia 1234"],"city":"Providencia","state":"RM","zip_code":"7500000","country":"CL"}`
	dropoffAddr = `{"street_address":["Avenida Apoquindo 4500"],"city":"Las Condes","country":"CL"}`
)

func createBodyJSON(mut func(map[string]any)) string {
	b := map[string]any{
		"pickup_name": "Tienda", "pickup_address": pickupAddr, "pickup_phone_number": "+56912345678",
		"dropoff_name": "Camila", "dropoff_address": dropoffAddr, "dropoff_phone_number": "+56987654321",
		"manifest_items": []map[string]any{{"name": "Pedido", "quantity": 1, "size": "small"}},
	}
	if mut != nil {
		mut(b)
	}
	out, _ := json.Marshal(b)
	return string(out)
}

func TestTokenEndpoint(t *testing.T) {
	s, _ := start(t)
	tests := map[string]struct {
		contentType, body string
		status            int
		code              string
	}{
		"json body":       {"application/json", `{"client_id":"x"}`, 400, "invalid_request"},
		"wrong grant":     {"application/x-www-form-urlencoded", "client_id=" + ClientID + "&client_secret=" + ClientSecret + "&grant_type=password&scope=eats.deliveries", 400, "unsupported_grant_type"},
		"wrong secret":    {"application/x-www-form-urlencoded", "client_id=" + ClientID + "&client_secret=nope&grant_type=client_credentials&scope=eats.deliveries", 401, "invalid_client"},
		"wrong client id": {"application/x-www-form-urlencoded", "client_id=nope&client_secret=" + ClientSecret + "&grant_type=client_credentials&scope=eats.deliveries", 401, "invalid_client"},
		"wrong scope":     {"application/x-www-form-urlencoded", "client_id=" + ClientID + "&client_secret=" + ClientSecret + "&grant_type=client_credentials&scope=direct.organizations", 400, "invalid_scope"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status, body := do(t, http.MethodPost, s.URL()+"/oauth/v2/token", tc.contentType, tc.body, "")
			var e map[string]string
			_ = json.Unmarshal(body, &e)
			if status != tc.status || e["error"] != tc.code {
				t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
	tok := tokenFor(t, s)
	if n := s.TokenRequests(); n != len(tests)+1 {
		t.Fatalf("TokenRequests = %d, want %d", n, len(tests)+1)
	}
	if len(s.Requests()) != 0 {
		t.Fatalf("token requests were recorded as API requests")
	}
	if st, _ := do(t, http.MethodGet, api(s)+"/deliveries", "", "", tok); st != http.StatusOK {
		t.Fatalf("list with a fresh token = %d", st)
	}
}

func TestAPIAuth(t *testing.T) {
	s, clk := start(t)
	s.SetTokenTTL(time.Minute)
	tok := tokenFor(t, s)
	list := api(s) + "/deliveries"

	if st, body := do(t, http.MethodGet, list, "", "", ""); st != 401 {
		t.Fatalf("no token = %d %s", st, body)
	} else if code, _ := errorCode(t, body); code != "unauthorized" {
		t.Fatalf("code = %s", code)
	}
	if st, _ := do(t, http.MethodGet, list, "", "", "IA.forged"); st != 401 {
		t.Fatalf("unknown token = %d", st)
	}
	if st, _ := do(t, http.MethodGet, list, "", "", tok); st != 200 {
		t.Fatalf("valid token = %d", st)
	}
	if st, body := do(t, http.MethodGet, s.URL()+"/v1/customers/cus_other/deliveries", "", "", tok); st != 404 {
		t.Fatalf("other customer = %d %s", st, body)
	} else if code, _ := errorCode(t, body); code != "customer_not_found" {
		t.Fatalf("code = %s", code)
	}
	clk.Add(61 * time.Second)
	if st, body := do(t, http.MethodGet, list, "", "", tok); st != 401 || !strings.Contains(string(body), "Invalid OAuth 2.0 credentials provided.") {
		t.Fatalf("expired token = %d %s", st, body)
	}
	tok2 := tokenFor(t, s)
	s.ExpireTokens()
	if st, _ := do(t, http.MethodGet, list, "", "", tok2); st != 401 {
		t.Fatalf("revoked token = %d", st)
	}
	if n := len(s.Requests()); n != 6 {
		t.Fatalf("recorded %d API requests, want 6", n)
	}
}

func TestQuoteAndCreateValidation(t *testing.T) {
	s, clk := start(t)
	s.SetFee(3100, "clp")
	s.SetETA(40 * time.Minute)
	tok := tokenFor(t, s)
	post := func(path, body string) (int, []byte) {
		return do(t, http.MethodPost, api(s)+path, "application/json", body, tok)
	}

	if st, body := post("/delivery_quotes", `{"dropoff_address":"x"}`); st != 400 {
		t.Fatalf("quote without pickup = %d %s", st, body)
	} else if code, md := errorCode(t, body); code != "invalid_params" || md["pickup_address"] == nil {
		t.Fatalf("quote without pickup: %s %v", code, md)
	}
	if st, _ := do(t, http.MethodPost, api(s)+"/delivery_quotes", "text/plain", `{}`, tok); st != 400 {
		t.Fatalf("quote as text/plain = %d", st)
	}
	if st, body := post("/delivery_quotes", `{"pickup_address":"{\"city\":\"x\"}","dropoff_address":"y"}`); st != 400 {
		t.Fatalf("structured address without street = %d %s", st, body)
	}
	if st, body := post("/delivery_quotes", `{"pickup_address":"a","dropoff_address":"b","pickup_ready_dt":"2000-01-01T00:00:00Z"}`); st != 400 {
		t.Fatalf("ready in the past = %d", st)
	} else if code, _ := errorCode(t, body); code != "pickup_ready_too_early" {
		t.Fatalf("code = %s", code)
	}

	quote := func() map[string]any {
		st, body := post("/delivery_quotes", `{"pickup_address":`+jsonString(pickupAddr)+`,"dropoff_address":`+jsonString(dropoffAddr)+`,"pickup_phone_number":"+56912345678"}`)
		if st != 200 {
			t.Fatalf("quote = %d %s", st, body)
		}
		var q map[string]any
		_ = json.Unmarshal(body, &q)
		return q
	}
	q := quote()
	if q["kind"] != "delivery_quote" || !strings.HasPrefix(q["id"].(string), "dqt_") || q["fee"] != 3100.0 ||
		q["currency"] != "clp" || q["currency_type"] != "CLP" || q["duration"] != 40.0 {
		t.Fatalf("quote = %v", q)
	}
	created, _ := time.Parse(time.RFC3339, q["created"].(string))
	expires, _ := time.Parse(time.RFC3339, q["expires"].(string))
	if expires.Sub(created) != 15*time.Minute {
		t.Fatalf("quote valid %s", expires.Sub(created))
	}

	for _, field := range []string{"pickup_name", "pickup_address", "pickup_phone_number", "dropoff_name", "dropoff_address", "dropoff_phone_number", "manifest_items"} {
		st, body := post("/deliveries", createBodyJSON(func(b map[string]any) { delete(b, field) }))
		code, md := errorCode(t, body)
		if st != 400 || code != "invalid_params" || md[field] != "This field is required." {
			t.Errorf("create without %s = %d %s %v", field, st, code, md)
		}
	}
	if st, body := post("/deliveries", createBodyJSON(func(b map[string]any) { b["dropoff_phone_number"] = "987654321" })); st != 400 {
		t.Fatalf("bad phone = %d %s", st, body)
	}
	if st, _ := post("/deliveries", createBodyJSON(func(b map[string]any) {
		b["manifest_items"] = []map[string]any{{"name": "x", "quantity": 0}}
	})); st != 400 {
		t.Fatalf("quantity 0 = %d", st)
	}

	// Quote rules: mismatch, expiry, single use.
	st, body := post("/deliveries", createBodyJSON(func(b map[string]any) { b["quote_id"] = q["id"]; b["dropoff_address"] = "Otra 1" }))
	if code, _ := errorCode(t, body); st != 400 || code != "mismatched_price_quote" {
		t.Fatalf("mismatched quote = %d %s", st, code)
	}
	clk.Add(15*time.Minute + time.Second)
	st, body = post("/deliveries", createBodyJSON(func(b map[string]any) { b["quote_id"] = q["id"] }))
	if code, _ := errorCode(t, body); st != 400 || code != "expired_quote" {
		t.Fatalf("expired quote = %d %s", st, code)
	}
	q2 := quote()
	st, body = post("/deliveries", createBodyJSON(func(b map[string]any) { b["quote_id"] = q2["id"]; b["external_id"] = "gw_1" }))
	if st != 200 {
		t.Fatalf("create = %d %s", st, body)
	}
	var d map[string]any
	_ = json.Unmarshal(body, &d)
	if d["status"] != "pending" || d["fee"] != 3100.0 || d["currency"] != "clp" || d["external_id"] != "gw_1" || d["quote_id"] != q2["id"] || d["courier"] != nil {
		t.Fatalf("delivery = %v", d)
	}
	st, body = post("/deliveries", createBodyJSON(func(b map[string]any) { b["quote_id"] = q2["id"] }))
	if code, _ := errorCode(t, body); st != 400 || code != "used_quote" {
		t.Fatalf("used quote = %d %s", st, code)
	}
	if s.Deliveries() != 1 {
		t.Fatalf("Deliveries = %d", s.Deliveries())
	}
}

func TestDuplicates(t *testing.T) {
	s, clk := start(t)
	tok := tokenFor(t, s)
	post := func(body string) (int, []byte) {
		return do(t, http.MethodPost, api(s)+"/deliveries", "application/json", body, tok)
	}
	st, body := post(createBodyJSON(func(b map[string]any) { b["idempotency_key"] = "k1" }))
	var first map[string]any
	_ = json.Unmarshal(body, &first)
	if st != 200 {
		t.Fatalf("create = %d", st)
	}
	st, body = post(createBodyJSON(func(b map[string]any) { b["idempotency_key"] = "k1" }))
	code, md := errorCode(t, body)
	if st != 409 || code != "duplicate_delivery" || md["delivery_id"] != first["id"] {
		t.Fatalf("repeated idempotency_key = %d %s %v", st, code, md)
	}
	st, body = post(createBodyJSON(func(b map[string]any) { b["external_id"] = "e"; b["manifest_reference"] = "r" }))
	if st != 200 {
		t.Fatalf("create = %d %s", st, body)
	}
	st, _ = post(createBodyJSON(func(b map[string]any) { b["external_id"] = "e"; b["manifest_reference"] = "r" }))
	if st != 409 {
		t.Fatalf("repeated external_id+manifest_reference = %d", st)
	}
	clk.Add(61 * time.Minute)
	if st, _ = post(createBodyJSON(func(b map[string]any) { b["idempotency_key"] = "k1" })); st != 200 {
		t.Fatalf("idempotency_key after 60 minutes = %d", st)
	}
	if s.Deliveries() != 3 {
		t.Fatalf("Deliveries = %d", s.Deliveries())
	}
}

func TestListPagination(t *testing.T) {
	s, _ := start(t)
	tok := tokenFor(t, s)
	var ids []string
	for i := range 5 {
		_, body := do(t, http.MethodPost, api(s)+"/deliveries", "application/json", createBodyJSON(func(b map[string]any) { b["external_id"] = "e" + string(rune('0'+i)) }), tok)
		var d map[string]any
		_ = json.Unmarshal(body, &d)
		ids = append(ids, d["id"].(string))
	}
	page := func(q string) (data []map[string]any, next string) {
		st, body := do(t, http.MethodGet, api(s)+"/deliveries?"+q, "", "", tok)
		if st != 200 {
			t.Fatalf("list %s = %d %s", q, st, body)
		}
		var lr struct {
			Data       []map[string]any `json:"data"`
			NextHref   string           `json:"next_href"`
			TotalCount int              `json:"total_count"`
		}
		_ = json.Unmarshal(body, &lr)
		if lr.TotalCount != -1 {
			t.Fatalf("total_count = %d", lr.TotalCount)
		}
		return lr.Data, lr.NextHref
	}
	data, next := page("limit=2")
	if len(data) != 2 || data[0]["id"] != ids[4] || data[1]["id"] != ids[3] || next == "" {
		t.Fatalf("page 1 = %v next %q", data, next)
	}
	u, _ := url.Parse(next)
	data, next = page(u.RawQuery)
	if len(data) != 2 || data[0]["id"] != ids[2] {
		t.Fatalf("page 2 = %v", data)
	}
	u, _ = url.Parse(next)
	data, next = page(u.RawQuery)
	if len(data) != 1 || data[0]["id"] != ids[0] || next != "" {
		t.Fatalf("page 3 = %v next %q", data, next)
	}
	if st, _ := do(t, http.MethodGet, api(s)+"/deliveries?limit=500", "", "", tok); st != 400 {
		t.Fatalf("limit 500 = %d", st)
	}
	if st, _ := do(t, http.MethodGet, api(s)+"/deliveries?filter=lost", "", "", tok); st != 400 {
		t.Fatalf("bad filter = %d", st)
	}
	if _, err := s.Advance(ids[1]); err != nil {
		t.Fatal(err)
	}
	if data, _ := page("filter=pickup"); len(data) != 1 || data[0]["id"] != ids[1] {
		t.Fatalf("filter=pickup = %v", data)
	}
}

func TestLifecycleCancelAndWebhooks(t *testing.T) {
	s, _ := start(t)
	tok := tokenFor(t, s)
	const key = "signing-key-1"
	var mu sync.Mutex
	var got []map[string]any
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write(body)
		want := hex.EncodeToString(mac.Sum(nil))
		if r.Header.Get("X-Uber-Signature") != want || r.Header.Get("X-Postmates-Signature") != want || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}))
	defer rcv.Close()

	create := func() string {
		_, body := do(t, http.MethodPost, api(s)+"/deliveries", "application/json", createBodyJSON(func(b map[string]any) {
			b["dropoff_verification"] = map[string]any{"signature_requirement": map[string]any{"enabled": true}, "pincode": map[string]any{"enabled": true}}
		}), tok)
		var d map[string]any
		_ = json.Unmarshal(body, &d)
		return d["id"].(string)
	}
	id := create()
	if err := s.CourierUpdate(id, 1, 2); err == nil {
		t.Fatal("CourierUpdate before assignment succeeded")
	}
	if _, err := s.Advance("del_nope"); err == nil {
		t.Fatal("Advance of an unknown delivery succeeded")
	}
	// Without a webhook Advance just moves.
	if st, err := s.Advance(id); err != nil || st != "pickup" {
		t.Fatalf("Advance = %s, %v", st, err)
	}
	s.SetWebhook(rcv.URL, key)
	if err := s.CourierUpdate(id, -33.1, -70.2); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pickup_complete", "dropoff", "delivered"} {
		if st, err := s.Advance(id); err != nil || st != want {
			t.Fatalf("Advance = %s, %v; want %s", st, err, want)
		}
	}
	mu.Lock()
	if len(got) != 4 || got[0]["kind"] != "event.courier_update" || got[3]["kind"] != "event.delivery_status" || got[3]["status"] != "delivered" {
		t.Fatalf("webhooks = %v", got)
	}
	loc := got[0]["location"].(map[string]any)
	data := got[3]["data"].(map[string]any)
	ver := data["dropoff"].(map[string]any)["verification"].(map[string]any)
	if loc["lat"] != -33.1 || !strings.HasPrefix(got[0]["id"].(string), "evt_") || got[3]["delivery_id"] != id || data["id"] != id ||
		ver["picture"] == nil || ver["signature"] == nil || ver["pin_code"].(map[string]any)["entered"] == "" {
		t.Fatalf("webhook bodies = %v", got)
	}
	mu.Unlock()

	// Cancel: refused once picked up, allowed before.
	st, body := do(t, http.MethodPost, api(s)+"/deliveries/"+id+"/cancel", "", "", tok)
	if code, _ := errorCode(t, body); st != 400 || code != "noncancelable_delivery" || !strings.Contains(string(body), "Delivery cannot be cancelled") {
		t.Fatalf("cancel delivered = %d %s", st, body)
	}
	id2 := create()
	s.SetWebhook("", "")
	_, _ = s.Advance(id2)
	if st, body := do(t, http.MethodPost, api(s)+"/deliveries/"+id2+"/cancel", "", "", tok); st != 200 || !strings.Contains(string(body), `"status":"canceled"`) {
		t.Fatalf("cancel assigned = %d %s", st, body)
	}
	if _, err := s.Advance(id2); err == nil {
		t.Fatal("Advance of a cancelled delivery succeeded")
	}
	id3 := create()
	_, _ = s.Advance(id3)
	_, _ = s.Advance(id3)
	if st, _ := do(t, http.MethodPost, api(s)+"/deliveries/"+id3+"/cancel", "", "", tok); st != 400 {
		t.Fatalf("cancel at pickup_complete = %d", st)
	}
	if st, _ := do(t, http.MethodGet, api(s)+"/deliveries/del_nope", "", "", tok); st != 404 {
		t.Fatalf("get unknown = %d", st)
	}
}

func TestFailNextAndDelay(t *testing.T) {
	s, _ := start(t)
	tok := tokenFor(t, s)
	s.FailNext(http.StatusTooManyRequests, 2)
	for range 2 {
		st, body := do(t, http.MethodGet, api(s)+"/deliveries", "", "", tok)
		if code, _ := errorCode(t, body); st != 429 || code != "customer_limited" {
			t.Fatalf("FailNext answer = %d %s", st, code)
		}
	}
	if st, _ := do(t, http.MethodGet, api(s)+"/deliveries", "", "", tok); st != 200 {
		t.Fatalf("after FailNext = %d", st)
	}

	// A held-back answer is released by SetDelay(0); the work was done.
	s.SetDelay(time.Hour)
	done := make(chan int, 1)
	go func() {
		st, _ := do(t, http.MethodPost, api(s)+"/deliveries", "application/json", createBodyJSON(nil), tok)
		done <- st
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.Deliveries() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s.Deliveries() != 1 {
		t.Fatal("the held-back create was not processed")
	}
	select {
	case st := <-done:
		t.Fatalf("answer arrived despite the delay: %d", st)
	case <-time.After(50 * time.Millisecond):
	}
	s.SetDelay(0)
	select {
	case st := <-done:
		if st != 200 {
			t.Fatalf("released answer = %d", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SetDelay(0) did not release the answer")
	}

	// The token endpoint is never delayed; a client giving up frees the
	// handler; Close returns promptly with answers held back.
	s.SetDelay(time.Hour)
	tokenFor(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api(s)+"/deliveries", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("delayed request answered")
	}
	go func() { _, _ = http.Get(api(s) + "/deliveries") }()
	time.Sleep(20 * time.Millisecond)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a held-back answer")
	}
}

func TestConcurrentUse(t *testing.T) {
	s, _ := start(t)
	tok := tokenFor(t, s)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body := do(t, http.MethodPost, api(s)+"/deliveries", "application/json", createBodyJSON(nil), tok)
			if st != 200 {
				t.Errorf("create = %d %s", st, body)
				return
			}
			var d map[string]any
			_ = json.Unmarshal(body, &d)
			if i%2 == 0 {
				_, _ = s.Advance(d["id"].(string))
			}
			_ = s.Requests()
			_ = s.TokenRequests()
		}()
	}
	wg.Wait()
	if s.Deliveries() != 16 {
		t.Fatalf("Deliveries = %d", s.Deliveries())
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(bytes.TrimSpace(b))
}
