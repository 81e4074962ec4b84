package rappifake_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/plugins/rappi/internal/wire"
	"github.com/pipecore/pipecore/plugins/rappi/rappifake"
)

func start(t testing.TB) *rappifake.Server {
	t.Helper()
	s := rappifake.Start()
	t.Cleanup(s.Close)
	return s
}

// do sends one request and returns the status and the decoded body.
func do(t testing.TB, method, url, token string, hdr map[string]string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("x-authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %q", method, url, data)
		}
	}
	return resp.StatusCode, out
}

func login(t testing.TB, s *rappifake.Server) string {
	t.Helper()
	st, out := do(t, "POST", s.URL()+wire.TokenPath, "", nil, map[string]string{"client_id": rappifake.ClientID, "client_secret": rappifake.ClientSecret})
	if st != 200 {
		t.Fatalf("login: HTTP %d %v", st, out)
	}
	tok, _ := out["access_token"].(string)
	if tok == "" || out["expires_in"] != float64(7*24*3600) {
		t.Fatalf("login answer %v, want an access_token and expires_in of one week", out)
	}
	return tok
}

func order(external string) map[string]any {
	stop := map[string]any{"address": map[string]any{"street": "Avenida Providencia"}, "contact": map[string]any{"phone": "+56912345678"}}
	return map[string]any{
		"external_id": external, "pickup": stop, "dropoff": stop,
		"items": []any{map[string]any{"name": "box", "quantity": 1}},
	}
}

func TestLogin(t *testing.T) {
	s := start(t)
	tests := map[string]struct {
		body any
		want int
		code string
	}{
		"good":          {map[string]string{"client_id": rappifake.ClientID, "client_secret": rappifake.ClientSecret}, 200, ""},
		"wrong secret":  {map[string]string{"client_id": rappifake.ClientID, "client_secret": "nope"}, 401, wire.CodeInvalidClient},
		"wrong id":      {map[string]string{"client_id": "other", "client_secret": rappifake.ClientSecret}, 401, wire.CodeInvalidClient},
		"missing field": {map[string]string{"client_id": rappifake.ClientID}, 400, wire.CodeInvalidRequest},
		"not json":      {"just a string", 400, wire.CodeInvalidRequest},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st, out := do(t, "POST", s.URL()+wire.TokenPath, "", nil, tc.body)
			if st != tc.want {
				t.Fatalf("HTTP %d, want %d (%v)", st, tc.want, out)
			}
			if tc.code != "" && out["code"] != tc.code {
				t.Fatalf("code = %v, want %s", out["code"], tc.code)
			}
		})
	}
}

func TestAuthRequired(t *testing.T) {
	s := start(t)
	tok := login(t, s)
	for name, hdr := range map[string]string{
		"none":           "",
		"unknown token":  "Bearer rappi_tok_unknown",
		"no scheme":      tok,
		"wrong header":   "",
		"empty after it": "Bearer ",
	} {
		t.Run(name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/json"}
			if hdr != "" {
				h["X-Authorization"] = hdr
			}
			if name == "wrong header" {
				h["Authorization"] = "Bearer " + tok
			}
			st, out := do(t, "GET", s.URL()+wire.DeliveryPath("1"), "", h, nil)
			if st != 401 || out["code"] != wire.CodeUnauthorized || out["message"] == "" {
				t.Fatalf("HTTP %d %v, want 401 with code %s and a message", st, out, wire.CodeUnauthorized)
			}
		})
	}
	for _, form := range []string{"Bearer " + tok, "bearer " + tok, "Bearer: " + tok} {
		st, _ := do(t, "GET", s.URL()+wire.DeliveryPath("1"), "", map[string]string{"X-Authorization": form}, nil)
		if st != 404 { // authorized, unknown delivery
			t.Errorf("%q: HTTP %d, want 404 (authorized)", strings.Replace(form, tok, "<tok>", 1), st)
		}
	}
}

func TestValidation(t *testing.T) {
	s := start(t)
	tok := login(t, s)
	tests := map[string]func(o map[string]any){
		"no external_id": func(o map[string]any) { delete(o, "external_id") },
		"no pickup":      func(o map[string]any) { delete(o, "pickup") },
		"empty dropoff":  func(o map[string]any) { o["dropoff"] = map[string]any{"contact": map[string]any{"phone": "+569"}} },
		"no items":       func(o map[string]any) { o["items"] = []any{} },
		"zero quantity":  func(o map[string]any) { o["items"] = []any{map[string]any{"name": "x", "quantity": 0}} },
		"bad ready_at":   func(o map[string]any) { o["ready_at"] = "tomorrow" },
		"unknown quote":  func(o map[string]any) { o["quote_id"] = "rq_nope" },
		"wrong type":     func(o map[string]any) { o["items"] = "box" },
	}
	for name, mut := range tests {
		t.Run(name, func(t *testing.T) {
			o := order("ext-" + name)
			mut(o)
			st, out := do(t, "POST", s.URL()+wire.DeliveriesPath, tok, nil, o)
			if st != 400 || out["message"] == "" {
				t.Fatalf("HTTP %d %v, want 400 with a message", st, out)
			}
		})
	}
	if n := s.Deliveries(); n != 0 {
		t.Fatalf("Deliveries() = %d after only invalid creates", n)
	}
	st, out := do(t, "POST", s.URL()+wire.QuotesPath, tok, nil, map[string]any{"pickup": map[string]any{}})
	if st != 400 || out["code"] != wire.CodeInvalidRequest {
		t.Fatalf("invalid quote: HTTP %d %v", st, out)
	}
	st, _ = do(t, "POST", s.URL()+wire.DeliveriesPath, tok, map[string]string{"Content-Type": "text/plain"}, order("ext-ct"))
	if st != 400 {
		t.Fatalf("text/plain create: HTTP %d, want 400", st)
	}
}

func TestLifecycle(t *testing.T) {
	s := start(t)
	s.SetFee(2500, "clp")
	s.SetETA(25 * time.Minute)
	tok := login(t, s)

	st, q := do(t, "POST", s.URL()+wire.QuotesPath, tok, nil, order(""))
	if st != 200 || q["quote_id"] == "" || q["eta_minutes"] != float64(25) {
		t.Fatalf("quote: HTTP %d %v", st, q)
	}
	if fee := q["fee"].(map[string]any); fee["amount"] != float64(2500) || fee["currency"] != "CLP" {
		t.Fatalf("quote fee = %v, want 2500 CLP", fee)
	}
	o := order("del_1")
	o["quote_id"] = q["quote_id"]
	st, d := do(t, "POST", s.URL()+wire.DeliveriesPath, tok, map[string]string{"Idempotency-Key": "k1"}, o)
	if st != 201 || d["status"] != wire.StatusCreated || d["external_id"] != "del_1" {
		t.Fatalf("create: HTTP %d %v", st, d)
	}
	id := d["id"].(string)

	// The same key, or the same external_id under another key, books nothing new.
	for name, c := range map[string]struct {
		key, external string
	}{"same key": {"k1", "del_other"}, "same external_id": {"k2", "del_1"}} {
		st, again := do(t, "POST", s.URL()+wire.DeliveriesPath, tok, map[string]string{"Idempotency-Key": c.key}, order(c.external))
		if st != 200 || again["id"] != id {
			t.Fatalf("%s: HTTP %d id %v, want 200 and %s", name, st, again["id"], id)
		}
	}
	if n := s.Deliveries(); n != 1 {
		t.Fatalf("Deliveries() = %d, want 1", n)
	}

	for _, want := range []string{"assigned", "picked_up", "delivered"} {
		got, err := s.Advance(id)
		if err != nil || got != want {
			t.Fatalf("Advance = %q, %v; want %q", got, err, want)
		}
		_, d = do(t, "GET", s.URL()+wire.DeliveryPath(id), tok, nil, nil)
		if d["status"] != strings.ToUpper(want) || d["courier"] == nil {
			t.Fatalf("after Advance to %s: %v", want, d)
		}
	}
	if d["proof_of_delivery"] == nil {
		t.Fatalf("delivered without proof: %v", d)
	}
	if _, err := s.Advance(id); err == nil {
		t.Fatal("Advance past delivered succeeded")
	}
	if _, err := s.Advance("nope"); err == nil {
		t.Fatal("Advance of an unknown delivery succeeded")
	}
}

func TestCancel(t *testing.T) {
	s := start(t)
	tok := login(t, s)
	book := func(ext string) string {
		_, d := do(t, "POST", s.URL()+wire.DeliveriesPath, tok, nil, order(ext))
		return d["id"].(string)
	}
	tests := map[string]struct {
		advance int
		want    int
		status  string
	}{
		"created":   {0, 200, wire.StatusCanceled},
		"assigned":  {1, 200, wire.StatusCanceled},
		"picked up": {2, 409, ""},
		"delivered": {3, 409, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id := book("ext-" + name)
			for range tc.advance {
				if _, err := s.Advance(id); err != nil {
					t.Fatal(err)
				}
			}
			st, out := do(t, "POST", s.URL()+wire.CancelPath(id), tok, nil, map[string]string{"reason": "changed my mind"})
			if st != tc.want {
				t.Fatalf("HTTP %d %v, want %d", st, out, tc.want)
			}
			if tc.want == 409 {
				if out["code"] != wire.CodeCancelNotAllowed || out["message"] == "" {
					t.Fatalf("refusal body %v", out)
				}
				return
			}
			if out["status"] != tc.status || out["cancellation_reason"] != "changed my mind" {
				t.Fatalf("cancel answer %v", out)
			}
			if st, again := do(t, "POST", s.URL()+wire.CancelPath(id), tok, nil, nil); st != 200 || again["status"] != wire.StatusCanceled {
				t.Fatalf("second cancel: HTTP %d %v", st, again)
			}
			if _, err := s.Advance(id); err == nil {
				t.Fatal("Advance of a cancelled delivery succeeded")
			}
		})
	}
	if st, _ := do(t, "POST", s.URL()+wire.CancelPath("404"), tok, nil, nil); st != 404 {
		t.Fatalf("cancel unknown: HTTP %d", st)
	}
}

func TestFailNextAndDelay(t *testing.T) {
	s := start(t)
	s.FailNext(429, 2)
	tok := login(t, s) // the token endpoint is never failed
	for i := range 2 {
		st, out := do(t, "GET", s.URL()+wire.DeliveryPath("1"), tok, nil, nil)
		if st != 429 || out["code"] != "injected_failure" {
			t.Fatalf("call %d: HTTP %d %v, want the injected 429", i, st, out)
		}
	}
	if st, _ := do(t, "GET", s.URL()+wire.DeliveryPath("1"), tok, nil, nil); st != 404 {
		t.Fatalf("after the failures: HTTP %d, want 404", st)
	}

	s.SetDelay(time.Hour)
	login(t, s) // not delayed
	client := &http.Client{Timeout: 200 * time.Millisecond}
	req, _ := http.NewRequest("GET", s.URL()+wire.DeliveryPath("1"), nil)
	start := time.Now()
	if _, err := client.Do(req); err == nil {
		t.Fatal("delayed call answered")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("client timeout took %s", took)
	}
	s.SetDelay(0)
	if st, _ := do(t, "GET", s.URL()+wire.DeliveryPath("1"), tok, nil, nil); st != 404 {
		t.Fatalf("after SetDelay(0): HTTP %d", st)
	}
}

func TestCloseEndsDelayedCalls(t *testing.T) {
	s := rappifake.Start()
	s.SetDelay(time.Hour)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(s.URL() + wire.DeliveryPath("1"))
		if err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Requests()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a delayed call")
	}
	<-done
	s.Close() // twice is fine
}

// verify checks a Rappi-Signature the way Rappi documents it.
func verify(t testing.TB, header, secret string, body []byte) {
	t.Helper()
	var ts, sign string
	for _, item := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(item, "=")
		switch k {
		case "t":
			ts = v
		case "sign":
			sign = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		t.Fatalf("t=%q is not a current unix time", ts)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	if want := hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(want), []byte(sign)) {
		t.Fatalf("sign mismatch for %q", header)
	}
}

func TestAdvancePostsSignedWebhooks(t *testing.T) {
	s := start(t)
	tok := login(t, s)
	_, d := do(t, "POST", s.URL()+wire.DeliveriesPath, tok, nil, order("del_hook"))
	id := d["id"].(string)

	var mu sync.Mutex
	var got []wire.Webhook
	status := 200
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		verify(t, r.Header.Get("Rappi-Signature"), "whsec-test", body)
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook Content-Type %q", r.Header.Get("Content-Type"))
		}
		var h wire.Webhook
		if err := json.Unmarshal(body, &h); err != nil {
			t.Errorf("webhook body %q: %v", body, err)
		}
		mu.Lock()
		got = append(got, h)
		st := status
		mu.Unlock()
		w.WriteHeader(st)
	}))
	defer hooks.Close()
	s.SetWebhook(hooks.URL, "whsec-test")

	if _, err := s.Advance(id); err != nil {
		t.Fatalf("Advance: %v", err)
	}
	mu.Lock()
	status = 500
	mu.Unlock()
	if st, err := s.Advance(id); err == nil || st != "picked_up" {
		t.Fatalf("Advance with a 500 receiver = %q, %v; want picked_up and an error", st, err)
	}
	s.SetWebhook("", "")
	if _, err := s.Advance(id); err != nil {
		t.Fatalf("Advance without a webhook: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("got %d webhooks, want 2", len(got))
	}
	first := got[0]
	if first.Event != wire.StatusAssigned || string(first.OrderID) != id || first.ExternalID != "del_hook" || first.EventTime == "" {
		t.Fatalf("first webhook %+v", first)
	}
	if c := first.AdditionalInformation.CourierData; c == nil || c.FullName == "" || c.Phone == "" || c.Location == nil {
		t.Fatalf("assigned webhook has no courier: %+v", first.AdditionalInformation)
	}
	if got[1].Event != wire.StatusPickedUp {
		t.Fatalf("second webhook event %q", got[1].Event)
	}
}

func TestRequestsRecorded(t *testing.T) {
	s := start(t)
	tok := login(t, s)
	do(t, "POST", s.URL()+wire.DeliveriesPath, tok, map[string]string{"Idempotency-Key": "idem-1"}, order("del_r"))
	reqs := s.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests recorded, want 2", len(reqs))
	}
	if reqs[0].Path != wire.TokenPath || reqs[1].Method != "POST" || reqs[1].Path != wire.DeliveriesPath {
		t.Fatalf("requests %v %v", reqs[0].Path, reqs[1].Path)
	}
	if reqs[1].Header.Get("Idempotency-Key") != "idem-1" || !bytes.Contains(reqs[1].Body, []byte(`"del_r"`)) {
		t.Fatalf("second request %+v", reqs[1])
	}
}
