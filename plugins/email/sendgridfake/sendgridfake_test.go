package sendgridfake_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pipecore/pipecore/plugins/email/sendgridfake"
)

const validBody = `{"personalizations":[{"to":[{"email":"ana@example.cl","name":"Ana"}]}],
"from":{"email":"no-reply@acme.cl","name":"Acme"},"subject":"Hola",
"content":[{"type":"text/plain","value":"Hola"},{"type":"text/html","value":"<p>Hola</p>"}],
"custom_args":{"pipecore_message_id":"msg_1"}}`

func start(t *testing.T) *sendgridfake.Server {
	t.Helper()
	f := sendgridfake.Start()
	t.Cleanup(f.Close)
	return f
}

type answer struct {
	status int
	header http.Header
	errors []struct {
		Message string  `json:"message"`
		Field   *string `json:"field"`
	}
}

func post(t *testing.T, url, path, auth, contentType, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusAccepted {
		var eb struct {
			Errors []struct {
				Message string  `json:"message"`
				Field   *string `json:"field"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(b, &eb); err != nil || len(eb.Errors) == 0 {
			t.Fatalf("HTTP %d body %q is not SendGrid's error body", resp.StatusCode, b)
		}
		a.errors = eb.Errors
	} else if len(b) != 0 {
		t.Fatalf("202 with a body: %q", b)
	}
	return a
}

func TestSend(t *testing.T) {
	f := start(t)
	a := post(t, f.URL(), "/v3/mail/send", "Bearer "+sendgridfake.APIKey, "application/json", validBody)
	id := a.header.Get("X-Message-Id")
	if a.status != http.StatusAccepted || len(id) != 22 || strings.Contains(id, ".") {
		t.Fatalf("answer %d, X-Message-Id %q; want 202 and a 22-character id", a.status, id)
	}
	sent := f.Sent()
	if len(sent) != 1 || sent[0]["subject"] != "Hola" {
		t.Fatalf("Sent = %v", sent)
	}
	sent[0]["subject"] = "changed"
	if f.Sent()[0]["subject"] != "Hola" {
		t.Fatal("Sent returned the fake's own map")
	}
	reqs := f.Requests()
	if len(reqs) != 1 || reqs[0].Method != http.MethodPost || reqs[0].Path != "/v3/mail/send" || !json.Valid(reqs[0].Body) {
		t.Fatalf("Requests = %+v", reqs)
	}
	b := post(t, f.URL(), "/v3/mail/send", "Bearer "+sendgridfake.APIKey, "application/json", validBody)
	if b.header.Get("X-Message-Id") == id {
		t.Fatal("two sends got one X-Message-Id: SendGrid has no idempotency")
	}
}

func TestRejects(t *testing.T) {
	f := start(t)
	const key = "Bearer " + sendgridfake.APIKey
	swap := func(old, new string) string {
		if !strings.Contains(validBody, old) {
			t.Fatalf("%q not in the body", old)
		}
		return strings.Replace(validBody, old, new, 1)
	}
	tests := map[string]struct {
		path, auth, ct, body string // auth "" means the right key, "-" none
		status               int
		field                string
	}{
		"no key":          {auth: "-", status: 401},
		"wrong key":       {auth: "Bearer SG.other", status: 401},
		"basic auth":      {auth: "Basic " + sendgridfake.APIKey, status: 401},
		"form body":       {ct: "application/x-www-form-urlencoded", status: 415},
		"bad json":        {body: "{", status: 400},
		"other path":      {path: "/v3/mail/batch", status: 404},
		"no to":           {body: swap(`"to":[{"email":"ana@example.cl","name":"Ana"}]`, `"to":[]`), status: 400, field: "personalizations.0.to"},
		"bad to":          {body: swap(`"ana@example.cl"`, `"ana@"`), status: 400, field: "personalizations.0.to.0.email"},
		"no from":         {body: swap(`"from":{"email":"no-reply@acme.cl","name":"Acme"},`, ``), status: 400, field: "from"},
		"no subject":      {body: swap(`"subject":"Hola",`, ``), status: 400, field: "subject"},
		"no content":      {body: swap(`"content":[{"type":"text/plain","value":"Hola"},{"type":"text/html","value":"<p>Hola</p>"}],`, ``), status: 400, field: "content"},
		"empty value":     {body: swap(`"value":"Hola"}`, `"value":""}`), status: 400, field: "content.0.value"},
		"html then plain": {body: swap(`{"type":"text/plain","value":"Hola"},{"type":"text/html","value":"<p>Hola</p>"}`, `{"type":"text/html","value":"<p>Hola</p>"},{"type":"text/plain","value":"Hola"}`), status: 400, field: "content"},
		"bad attachment":  {body: swap(`"custom_args"`, `"attachments":[{"content":"%%%","filename":"a.txt"}],"custom_args"`), status: 400, field: "attachments.0.content"},
		"no filename":     {body: swap(`"custom_args"`, `"attachments":[{"content":"aGk="}],"custom_args"`), status: 400, field: "attachments.0.filename"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path, auth, ct, body := "/v3/mail/send", key, "application/json", validBody
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
			if tc.ct != "" {
				ct = tc.ct
			}
			if tc.body != "" {
				body = tc.body
			}
			a := post(t, f.URL(), path, auth, ct, body)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d (%+v)", a.status, tc.status, a.errors)
			}
			if tc.field != "" {
				found := false
				for _, e := range a.errors {
					found = found || (e.Field != nil && *e.Field == tc.field)
				}
				if !found {
					t.Fatalf("errors %+v lack field %q", a.errors, tc.field)
				}
			}
		})
	}
	if n := len(f.Sent()); n != 0 {
		t.Fatalf("%d rejected sends were accepted", n)
	}
}

func TestFailNext(t *testing.T) {
	f := start(t)
	f.FailNext(http.StatusTooManyRequests, 2)
	for range 2 {
		a := post(t, f.URL(), "/v3/mail/send", "Bearer "+sendgridfake.APIKey, "application/json", validBody)
		if a.status != http.StatusTooManyRequests || a.header.Get("X-RateLimit-Reset") == "" {
			t.Fatalf("status %d, headers %v; want 429 with X-RateLimit-Reset", a.status, a.header)
		}
	}
	if a := post(t, f.URL(), "/v3/mail/send", "Bearer "+sendgridfake.APIKey, "application/json", validBody); a.status != http.StatusAccepted {
		t.Fatalf("third request: %d, want 202", a.status)
	}
	if n := len(f.Requests()); n != 3 {
		t.Fatalf("%d requests recorded, want 3", n)
	}
}

func TestEvent(t *testing.T) {
	f := start(t)
	if err := f.Event("x", "delivered", nil); err == nil {
		t.Fatal("Event without a webhook succeeded")
	}
	a := post(t, f.URL(), "/v3/mail/send", "Bearer "+sendgridfake.APIKey, "application/json", validBody)
	id := a.header.Get("X-Message-Id")

	der, err := base64.StdEncoding.DecodeString(f.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got [][]map[string]any
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sig, _ := base64.StdEncoding.DecodeString(r.Header.Get("X-Twilio-Email-Event-Webhook-Signature"))
		digest := sha256.Sum256(append([]byte(r.Header.Get("X-Twilio-Email-Event-Webhook-Timestamp")), body...))
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var evs []map[string]any
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&evs); err != nil {
			http.Error(w, "not an array", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, evs)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	f.SetWebhook(srv.URL)

	if err := f.Event(id, "bounce", map[string]any{"type": "blocked", "status": nil}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || len(got[0]) != 1 {
		t.Fatalf("posts %v, want one one-event array", got)
	}
	ev := got[0][0]
	sgID, _ := ev["sg_message_id"].(string)
	if ev["event"] != "bounce" || ev["type"] != "blocked" || ev["email"] != "ana@example.cl" ||
		ev["pipecore_message_id"] != "msg_1" || !strings.HasPrefix(sgID, id+".") || ev["sg_event_id"] == "" || ev["reason"] == nil {
		t.Fatalf("event %v", ev)
	}
	if _, ok := ev["status"]; ok {
		t.Fatal("a nil extra value did not remove the key")
	}
	status = http.StatusInternalServerError
	mu.Unlock()
	err = f.Event(id, "delivered", nil)
	mu.Lock()
	if err == nil {
		t.Fatal("a 500 answer was not reported")
	}
}
