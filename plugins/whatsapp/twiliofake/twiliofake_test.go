package twiliofake_test

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Twilio's signature is HMAC-SHA1.
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pipecore/pipecore/plugins/whatsapp/twiliofake"
)

const path = "/2010-04-01/Accounts/" + twiliofake.AccountSID + "/Messages.json"

type answer struct {
	status int
	body   map[string]any
}

func send(t *testing.T, s *twiliofake.Server, p, user, pass string, form url.Values) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL()+p, strings.NewReader(form.Encode()))
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
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

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func TestAPI(t *testing.T) {
	s := twiliofake.Start()
	defer s.Close()
	const sid, tok = twiliofake.AccountSID, twiliofake.AuthToken
	tests := map[string]struct {
		path, user, pass string
		form             url.Values
		status           int
		code             float64
	}{
		"sms":                {path, sid, tok, form("To", "+56987654321", "From", "+14155238886", "Body", "hola ✅"), 201, 0},
		"whatsapp":           {path, sid, tok, form("To", "whatsapp:+56987654321", "From", "whatsapp:+14155238886", "Body", "hola"), 201, 0},
		"messaging service":  {path, sid, tok, form("To", "+56987654321", "MessagingServiceSid", "MG1", "Body", "hola"), 201, 0},
		"no auth":            {path, "", "", form("To", "+56987654321", "From", "+14155238886", "Body", "x"), 401, 20003},
		"wrong token":        {path, sid, "nope", form("To", "+56987654321", "From", "+14155238886", "Body", "x"), 401, 20003},
		"other account path": {"/2010-04-01/Accounts/AC1/Messages.json", sid, tok, form("To", "+56987654321", "From", "+1", "Body", "x"), 404, 20404},
		"no To":              {path, sid, tok, form("From", "+14155238886", "Body", "x"), 400, 21604},
		"no From":            {path, sid, tok, form("To", "+56987654321", "Body", "x"), 400, 21603},
		"no Body":            {path, sid, tok, form("To", "+56987654321", "From", "+14155238886"), 400, 21602},
		"bad To":             {path, sid, tok, form("To", "56987654321", "From", "+14155238886", "Body", "x"), 400, 21211},
		"channel mismatch":   {path, sid, tok, form("To", "whatsapp:+56987654321", "From", "+14155238886", "Body", "x"), 400, 21910},
	}
	accepted := 0
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := send(t, s, tc.path, tc.user, tc.pass, tc.form)
			code, _ := a.body["code"].(float64)
			if a.status != tc.status || code != tc.code {
				t.Fatalf("answer = %d %v, want %d with code %v", a.status, a.body, tc.status, tc.code)
			}
			if tc.status == 201 {
				accepted++
				id, _ := a.body["sid"].(string)
				if !strings.HasPrefix(id, "SM") || len(id) != 34 || a.body["status"] != "queued" || a.body["body"] != tc.form.Get("Body") {
					t.Errorf("message = %v", a.body)
				}
				return
			}
			if a.body["message"] == "" || a.body["more_info"] == "" || a.body["status"] != float64(tc.status) {
				t.Errorf("error body = %v", a.body)
			}
		})
	}
	if got := len(s.Requests()); got != len(tests) {
		t.Errorf("Requests() = %d, want %d", got, len(tests))
	}
	sent := s.Sent()
	if len(sent) != accepted {
		t.Fatalf("Sent() = %d, want the %d accepted", len(sent), accepted)
	}
}

func TestFailNext(t *testing.T) {
	s := twiliofake.Start()
	defer s.Close()
	ok := form("To", "+56987654321", "From", "+14155238886", "Body", "x")
	s.FailNext(503, 2)
	for i, want := range []int{503, 503, 201} {
		if a := send(t, s, path, twiliofake.AccountSID, twiliofake.AuthToken, ok); a.status != want {
			t.Errorf("request %d: %d, want %d", i, a.status, want)
		}
	}
	for status, code := range map[int]float64{401: 20003, 429: 20429, 500: 20500, 400: 21211} {
		s.FailNext(status, 1)
		if a := send(t, s, path, twiliofake.AccountSID, twiliofake.AuthToken, ok); a.status != status || a.body["code"] != code {
			t.Errorf("FailNext(%d): %d %v", status, a.status, a.body)
		}
	}
}

// receiver verifies webhooks the way Twilio's SDKs do, over hookURL.
type receiver struct {
	mu      sync.Mutex
	hookURL string
	forms   []url.Values
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	f, err := url.ParseQuery(string(body))
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.hookURL
	for _, k := range slices.Sorted(maps.Keys(f)) {
		s += k + f.Get(k)
	}
	mac := hmac.New(sha1.New, []byte(twiliofake.AuthToken))
	mac.Write([]byte(s))
	if err != nil || req.Header.Get("X-Twilio-Signature") != base64.StdEncoding.EncodeToString(mac.Sum(nil)) ||
		req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	r.forms = append(r.forms, f)
}

func TestWebhooks(t *testing.T) {
	s := twiliofake.Start()
	defer s.Close()
	if _, err := s.Inbound("+56987654321", "+14155238886", "x"); err == nil {
		t.Fatal("Inbound without SetWebhook: err = nil")
	}
	rec := &receiver{}
	hook := httptest.NewServer(rec)
	defer hook.Close()
	rec.hookURL = hook.URL + "/webhooks/whatsapp/acme"
	s.SetWebhook(rec.hookURL)

	a := send(t, s, path, twiliofake.AccountSID, twiliofake.AuthToken,
		form("To", "whatsapp:+56987654321", "From", "whatsapp:+14155238886", "Body", "hola"))
	sid := a.body["sid"].(string)
	if err := s.Status(sid, "delivered"); err != nil {
		t.Fatal(err)
	}
	if err := s.Status(sid, "undelivered"); err != nil {
		t.Fatal(err)
	}
	if err := s.Status(sid, "lost"); err == nil {
		t.Error("Status(lost): err = nil")
	}
	in, err := s.Inbound("whatsapp:+56987654321", "whatsapp:+14155238886", "¿Dónde? ✅ & más")
	if err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	forms := rec.forms
	rec.mu.Unlock()
	if len(forms) != 3 {
		t.Fatalf("%d webhooks, want 3", len(forms))
	}
	if f := forms[0]; f.Get("MessageSid") != sid || f.Get("MessageStatus") != "delivered" || f.Get("To") != "whatsapp:+56987654321" ||
		f.Get("From") != "whatsapp:+14155238886" || f.Get("AccountSid") != twiliofake.AccountSID || f.Has("ErrorCode") {
		t.Errorf("status callback = %v", f)
	}
	if f := forms[1]; f.Get("MessageStatus") != "undelivered" || f.Get("ErrorCode") == "" {
		t.Errorf("undelivered callback = %v", f)
	}
	if f := forms[2]; f.Get("MessageSid") != in || f.Get("Body") != "¿Dónde? ✅ & más" || f.Get("SmsStatus") != "received" ||
		f.Get("NumMedia") != "0" || f.Get("WaId") != "56987654321" || f.Has("MessageStatus") {
		t.Errorf("inbound = %v", f)
	}

	s.SetWebhook(rec.hookURL + "?x=1") // signed over a URL the receiver does not expect
	if err := s.Status(sid, "read"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("Status signed over another URL: err = %v, want the receiver's 403", err)
	}
}

func TestClose(t *testing.T) {
	s := twiliofake.Start()
	u := s.URL()
	s.Close()
	if resp, err := http.PostForm(u+path, url.Values{}); err == nil {
		resp.Body.Close()
		t.Fatal("the fake still answers after Close")
	}
}
