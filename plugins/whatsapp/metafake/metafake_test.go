package metafake_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pipecore/pipecore/plugins/whatsapp/metafake"
)

type answer struct {
	status int
	body   map[string]any
}

func post(t *testing.T, s *metafake.Server, path, token, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL()+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return answer{resp.StatusCode, out}
}

func graphCode(a answer) float64 {
	e, _ := a.body["error"].(map[string]any)
	c, _ := e["code"].(float64)
	return c
}

const (
	path = "/v21.0/" + metafake.PhoneNumberID + "/messages"
	text = `{"messaging_product":"whatsapp","recipient_type":"individual","to":"56987654321","type":"text","text":{"body":"hola ✅"}}`
)

func TestAPI(t *testing.T) {
	s := metafake.Start()
	defer s.Close()
	tests := map[string]struct {
		path, token, body string
		status            int
		code              float64
	}{
		"text":               {path, metafake.AccessToken, text, 200, 0},
		"template":           {path, metafake.AccessToken, `{"messaging_product":"whatsapp","to":"+56987654321","type":"template","template":{"name":"x","language":{"code":"es"}}}`, 200, 0},
		"no token":           {path, "", text, 401, 190},
		"wrong token":        {path, "nope", text, 401, 190},
		"unknown number id":  {"/v21.0/42/messages", metafake.AccessToken, text, 400, 100},
		"unknown path":       {"/v21.0/" + metafake.PhoneNumberID + "/media", metafake.AccessToken, text, 400, 2500},
		"no product":         {path, metafake.AccessToken, `{"to":"56987654321","type":"text","text":{"body":"x"}}`, 400, 100},
		"no to":              {path, metafake.AccessToken, `{"messaging_product":"whatsapp","type":"text","text":{"body":"x"}}`, 400, 100},
		"bad to":             {path, metafake.AccessToken, `{"messaging_product":"whatsapp","to":"abc","type":"text","text":{"body":"x"}}`, 400, 100},
		"no type":            {path, metafake.AccessToken, `{"messaging_product":"whatsapp","to":"56987654321","text":{"body":"x"}}`, 400, 100},
		"empty text":         {path, metafake.AccessToken, `{"messaging_product":"whatsapp","to":"56987654321","type":"text","text":{}}`, 400, 100},
		"template no lang":   {path, metafake.AccessToken, `{"messaging_product":"whatsapp","to":"56987654321","type":"template","template":{"name":"x"}}`, 400, 100},
		"not JSON":           {path, metafake.AccessToken, `to=1`, 400, 100},
		"unknown type value": {path, metafake.AccessToken, `{"messaging_product":"whatsapp","to":"56987654321","type":"fax"}`, 400, 100},
	}
	okCount := 0
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := post(t, s, tc.path, tc.token, tc.body)
			if a.status != tc.status || graphCode(a) != tc.code {
				t.Fatalf("answer = %d %v, want %d with code %v", a.status, a.body, tc.status, tc.code)
			}
			if tc.status == 200 {
				okCount++
				msgs, _ := a.body["messages"].([]any)
				if len(msgs) != 1 || !strings.HasPrefix(msgs[0].(map[string]any)["id"].(string), "wamid.") {
					t.Errorf("success body = %v", a.body)
				}
				return
			}
			if e := a.body["error"].(map[string]any); e["message"] == "" || e["type"] == "" || e["fbtrace_id"] == "" {
				t.Errorf("error body = %v", a.body)
			}
		})
	}
	if got := len(s.Requests()); got != len(tests) {
		t.Errorf("Requests() = %d, want %d", got, len(tests))
	}
	if got := len(s.Sent()); got != okCount {
		t.Errorf("Sent() = %d, want the %d accepted", got, okCount)
	}
}

func TestFailNext(t *testing.T) {
	s := metafake.Start()
	defer s.Close()
	s.FailNext(503, 2)
	for i, want := range []int{503, 503, 200} {
		if a := post(t, s, path, metafake.AccessToken, text); a.status != want {
			t.Errorf("request %d: %d, want %d", i, a.status, want)
		}
	}
	for status, code := range map[int]float64{401: 190, 429: 130429, 500: 131000, 400: 100} {
		s.FailNext(status, 1)
		if a := post(t, s, path, metafake.AccessToken, text); a.status != status || graphCode(a) != code {
			t.Errorf("FailNext(%d): %d %v", status, a.status, a.body)
		}
	}
	if n := len(s.Sent()); n != 1 {
		t.Errorf("Sent() = %d, want 1", n)
	}
}

// receiver records verified webhooks.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	fail   bool
}

func (r *receiver) handler(t *testing.T, secret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if req.Header.Get("X-Hub-Signature-256") != "sha256="+hex.EncodeToString(mac.Sum(nil)) || req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		r.bodies = append(r.bodies, body)
	})
}

func TestWebhooks(t *testing.T) {
	s := metafake.Start()
	defer s.Close()
	if err := s.Status("wamid.x", "read"); err == nil {
		t.Fatal("Status without SetWebhook: err = nil")
	}
	rec := &receiver{}
	hook := httptest.NewServer(rec.handler(t, "app-secret"))
	defer hook.Close()
	s.SetWebhook(hook.URL, "app-secret")

	a := post(t, s, path, metafake.AccessToken, text)
	wamid := a.body["messages"].([]any)[0].(map[string]any)["id"].(string)
	if err := s.Status(wamid, "failed"); err != nil {
		t.Fatal(err)
	}
	if err := s.Status(wamid, "pending"); err == nil {
		t.Error("Status(pending): err = nil, want an error")
	}
	id, err := s.Inbound("+56987654321", "¿Dónde? 😞")
	if err != nil {
		t.Fatal(err)
	}

	rec.mu.Lock()
	bodies := rec.bodies
	rec.mu.Unlock()
	if len(bodies) != 2 {
		t.Fatalf("%d webhooks, want 2", len(bodies))
	}
	for _, b := range bodies {
		if bytes.ContainsFunc(b, func(r rune) bool { return r >= 0x80 }) {
			t.Errorf("webhook body is not escaped to ASCII: %s", b)
		}
	}
	if !bytes.Contains(bodies[1], []byte(`\ud83d\ude1e`)) {
		t.Errorf("emoji not escaped as a surrogate pair: %s", bodies[1])
	}
	var st struct {
		Object string `json:"object"`
		Entry  []struct {
			Changes []struct {
				Field string `json:"field"`
				Value struct {
					Metadata struct {
						Display string `json:"display_phone_number"`
						ID      string `json:"phone_number_id"`
					} `json:"metadata"`
					Statuses []map[string]any `json:"statuses"`
				} `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bodies[0], &st); err != nil {
		t.Fatal(err)
	}
	v := st.Entry[0].Changes[0].Value
	if st.Object != "whatsapp_business_account" || st.Entry[0].Changes[0].Field != "messages" || v.Metadata.ID != metafake.PhoneNumberID || v.Metadata.Display != "56911110000" {
		t.Errorf("notification = %s", bodies[0])
	}
	if s0 := v.Statuses[0]; s0["id"] != wamid || s0["status"] != "failed" || s0["recipient_id"] != "56987654321" || s0["errors"] == nil {
		t.Errorf("status = %v", s0)
	}
	var in map[string]any
	_ = json.Unmarshal(bodies[1], &in)
	msg := in["entry"].([]any)[0].(map[string]any)["changes"].([]any)[0].(map[string]any)["value"].(map[string]any)["messages"].([]any)[0].(map[string]any)
	if msg["id"] != id || msg["from"] != "56987654321" || msg["type"] != "text" || msg["text"].(map[string]any)["body"] != "¿Dónde? 😞" {
		t.Errorf("inbound message = %v", msg)
	}

	rec.mu.Lock()
	rec.fail = true
	rec.mu.Unlock()
	if err := s.Status(wamid, "read"); err == nil {
		t.Error("Status with a failing receiver: err = nil")
	}
	s.SetWebhook(hook.URL, "wrong-secret")
	rec.mu.Lock()
	rec.fail = false
	rec.mu.Unlock()
	if err := s.Status(wamid, "read"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("Status signed with another secret: err = %v, want the receiver's 401", err)
	}
}

func TestClose(t *testing.T) {
	s := metafake.Start()
	u := s.URL()
	s.Close()
	if resp, err := http.Post(u+path, "application/json", strings.NewReader(text)); err == nil {
		resp.Body.Close()
		t.Fatal("the fake still answers after Close")
	}
}
