package resendfake_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pipecore/pipecore/plugins/email/resendfake"
)

const validBody = `{"from":"Acme <no-reply@acme.cl>","to":["ana@example.cl"],"subject":"Hola","text":"Hola","html":"<p>Hola</p>",
"tags":[{"name":"pipecore_message_id","value":"msg_1"}]}`

func start(t *testing.T) *resendfake.Server {
	t.Helper()
	f := resendfake.Start()
	t.Cleanup(f.Close)
	return f
}

type answer struct {
	status int
	header http.Header
	id     string
	name   string
}

// post sends body to path; auth "" sends no Authorization header.
func post(t *testing.T, url, path, auth, idemKey, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == http.StatusOK {
		var ok struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &ok); err != nil || ok.ID == "" {
			t.Fatalf("200 body %q has no id", b)
		}
		a.id = ok.ID
		return a
	}
	var e struct {
		StatusCode int    `json:"statusCode"`
		Name       string `json:"name"`
		Message    string `json:"message"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.StatusCode != resp.StatusCode || e.Name == "" || e.Message == "" {
		t.Fatalf("HTTP %d body %q is not Resend's error body", resp.StatusCode, b)
	}
	a.name = e.Name
	return a
}

const key = "Bearer " + resendfake.APIKey

func TestSendAndIdempotency(t *testing.T) {
	f := start(t)
	a := post(t, f.URL(), "/emails", key, "k1", validBody)
	if a.status != http.StatusOK || len(a.id) != 36 {
		t.Fatalf("answer %+v, want 200 with a uuid", a)
	}
	if b := post(t, f.URL(), "/emails", key, "k1", validBody); b.id != a.id {
		t.Fatalf("same key, same body: id %q, want %q", b.id, a.id)
	}
	if c := post(t, f.URL(), "/emails", key, "k1", strings.Replace(validBody, "Hola", "Chao", 1)); c.status != http.StatusConflict || c.name != "invalid_idempotent_request" {
		t.Fatalf("same key, other body: %+v, want 409 invalid_idempotent_request", c)
	}
	if d := post(t, f.URL(), "/emails", key, "", validBody); d.id == a.id || d.status != http.StatusOK {
		t.Fatalf("no key: %+v, want a new email", d)
	}
	if n := len(f.Sent()); n != 2 {
		t.Fatalf("%d emails sent, want 2 (the replay is not a new email)", n)
	}
	if got := f.Sent()[0]["subject"]; got != "Hola" {
		t.Fatalf("Sent()[0].subject = %v", got)
	}
	if n := len(f.Requests()); n != 4 {
		t.Fatalf("%d requests recorded, want 4", n)
	}
}

func TestRejects(t *testing.T) {
	f := start(t)
	swap := func(old, new string) string {
		if !strings.Contains(validBody, old) {
			t.Fatalf("%q not in the body", old)
		}
		return strings.Replace(validBody, old, new, 1)
	}
	tests := map[string]struct {
		path, auth, idem, body string
		status                 int
		name                   string
	}{
		"no key":           {auth: "-", status: 401, name: "missing_api_key"},
		"wrong key":        {auth: "Bearer re_other", status: 403, name: "invalid_api_key"},
		"long idem key":    {idem: strings.Repeat("k", 257), status: 400, name: "invalid_idempotency_key"},
		"bad json":         {body: "{", status: 400, name: "validation_error"},
		"other path":       {path: "/emails/batch", status: 404, name: "not_found"},
		"no from":          {body: swap(`"from":"Acme <no-reply@acme.cl>",`, ``), status: 422, name: "missing_required_field"},
		"no to":            {body: swap(`"to":["ana@example.cl"],`, ``), status: 422, name: "missing_required_field"},
		"no subject":       {body: swap(`"subject":"Hola",`, ``), status: 422, name: "missing_required_field"},
		"bad from":         {body: swap(`Acme <no-reply@acme.cl>`, `Acme no-reply`), status: 422, name: "validation_error"},
		"bad to":           {body: swap(`"ana@example.cl"`, `"ana@"`), status: 422, name: "validation_error"},
		"no content":       {body: swap(`"text":"Hola","html":"<p>Hola</p>",`, ``), status: 422, name: "validation_error"},
		"empty attachment": {body: swap(`"tags"`, `"attachments":[{"filename":"a.txt"}],"tags"`), status: 422, name: "invalid_attachment"},
		"bad attachment":   {body: swap(`"tags"`, `"attachments":[{"filename":"a.txt","content":"%%%"}],"tags"`), status: 422, name: "invalid_attachment"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path, auth, body := "/emails", key, validBody
			if tc.path != "" {
				path = tc.path
			}
			switch tc.auth {
			case "":
			case "-":
				auth = ""
			default:
				auth = tc.auth
			}
			if tc.body != "" {
				body = tc.body
			}
			a := post(t, f.URL(), path, auth, tc.idem, body)
			if a.status != tc.status || a.name != tc.name {
				t.Fatalf("answer %d %s, want %d %s", a.status, a.name, tc.status, tc.name)
			}
		})
	}
	if n := len(f.Sent()); n != 0 {
		t.Fatalf("%d rejected emails were sent", n)
	}
}

func TestFailNext(t *testing.T) {
	f := start(t)
	f.FailNext(http.StatusTooManyRequests, 1)
	a := post(t, f.URL(), "/emails", key, "k", validBody)
	if a.status != http.StatusTooManyRequests || a.name != "rate_limit_exceeded" || a.header.Get("Retry-After") != "1" {
		t.Fatalf("answer %+v, want 429 rate_limit_exceeded with retry-after 1", a)
	}
	if b := post(t, f.URL(), "/emails", key, "k", validBody); b.status != http.StatusOK {
		t.Fatalf("after the failure: %+v, want 200", b)
	}
}

func TestEvent(t *testing.T) {
	f := start(t)
	if err := f.Event("x", "email.delivered", nil); err == nil {
		t.Fatal("Event without a webhook succeeded")
	}
	id := post(t, f.URL(), "/emails", key, "", validBody).id

	var mu sync.Mutex
	var got []map[string]any
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		secret, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(resendfake.WebhookSecret, "whsec_"))
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(r.Header.Get("svix-id") + "." + r.Header.Get("svix-timestamp") + "." + string(body)))
		if r.Header.Get("svix-signature") != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev)
		ids = append(ids, r.Header.Get("svix-id"))
	}))
	defer srv.Close()
	f.SetWebhook(srv.URL, "") // "" is WebhookSecret

	if err := f.Event(id, "email.bounced", nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Event(id, "email.delivered", map[string]any{"tags": nil}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || ids[0] == ids[1] || !strings.HasPrefix(ids[0], "msg_") {
		t.Fatalf("posts %v with svix-ids %v", got, ids)
	}
	bounced := got[0]
	data, _ := bounced["data"].(map[string]any)
	tags, _ := data["tags"].(map[string]any)
	bounce, _ := data["bounce"].(map[string]any)
	if bounced["type"] != "email.bounced" || data["email_id"] != id || tags["pipecore_message_id"] != "msg_1" ||
		bounce["message"] == nil || data["subject"] != "Hola" || bounced["created_at"] == nil {
		t.Fatalf("bounced event %v", bounced)
	}
	data, _ = got[1]["data"].(map[string]any)
	if _, ok := data["tags"]; ok {
		t.Fatal("a nil extra value did not remove the key")
	}

	// Signed with another secret, the receiver refuses: Event reports it.
	f.SetWebhook(srv.URL, "whsec_b3RoZXItc2VjcmV0LWZvci10aGUtdGVzdA==")
	mu.Unlock()
	err := f.Event(id, "email.opened", nil)
	mu.Lock()
	if err == nil {
		t.Fatal("a 401 answer was not reported")
	}
}
