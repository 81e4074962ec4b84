package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/plugins/email/sendgridfake"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

func TestSendGridSend(t *testing.T) {
	f := startSendGrid(t)
	ctx, _ := testCtx(t)
	ten := tenant(transportSendGrid, f.URL(), sendgridfake.APIKey, func(s, _ map[string]string) {
		s[fieldReplyTo] = "Soporte Acme <soporte@acme.cl>"
	})
	req := emailReq(ten, "k1")
	req.Attachments = []messaging.Attachment{{Filename: "boleta.pdf", ContentType: "application/pdf", Content: []byte("%PDF-1.4 boleta")}}

	rc, err := newProvider().Send(ctx, req)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(rc.ID) != 22 || strings.Contains(rc.ID, ".") || rc.Status != messaging.StatusQueued {
		t.Fatalf("receipt = %+v, want the 22-character X-Message-Id and status queued", rc)
	}

	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/v3/mail/send" {
		t.Errorf("request = %s %s, want POST /v3/mail/send", r.Method, r.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+sendgridfake.APIKey {
		t.Errorf("Authorization = %q", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	if r.Header.Get("Idempotency-Key") != "" {
		t.Errorf("SendGrid has no idempotency header, got one")
	}

	sent := f.Sent()
	if len(sent) != 1 {
		t.Fatalf("%d sent, want 1", len(sent))
	}
	want := map[string]any{
		"personalizations.0.to.0.email":   "camila.rojas@example.cl",
		"personalizations.0.to.0.name":    "Camila Rojas",
		"from.email":                      "no-reply@acme.cl",
		"from.name":                       "Acme",
		"reply_to.email":                  "soporte@acme.cl",
		"reply_to.name":                   "Soporte Acme",
		"subject":                         req.Subject,
		"content.0.type":                  "text/plain",
		"content.0.value":                 req.Text,
		"content.1.type":                  "text/html",
		"content.1.value":                 req.HTML,
		"custom_args.pipecore_message_id": "msg_k1",
		"attachments.0.filename":          "boleta.pdf",
		"attachments.0.type":              "application/pdf",
		"attachments.0.disposition":       "attachment",
		"attachments.0.content":           base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 boleta")),
	}
	for path, v := range want {
		if got := jsonPath(sent[0], path); got != v {
			t.Errorf("%s = %v, want %v", path, got, v)
		}
	}
}

func TestSendGridOnlyHTML(t *testing.T) {
	f := startSendGrid(t)
	ctx, _ := testCtx(t)
	req := emailReq(tenant("", f.URL(), sendgridfake.APIKey, nil), "html-only") // "" transport means sendgrid
	req.Text, req.MessageID = "", ""
	if _, err := newProvider().Send(ctx, req); err != nil {
		t.Fatalf("Send: %v", err)
	}
	sent := f.Sent()
	if len(sent) != 1 {
		t.Fatalf("%d sent, want 1", len(sent))
	}
	if got := jsonPath(sent[0], "content.0.type"); got != "text/html" {
		t.Errorf("content.0.type = %v, want text/html", got)
	}
	if got := jsonPath(sent[0], "custom_args"); got != nil {
		t.Errorf("custom_args = %v, want none without a MessageID", got)
	}
}

func TestSendGridIdempotency(t *testing.T) {
	f := startSendGrid(t)
	ctx, _ := testCtx(t)
	p := newProvider()
	ten := tenant(transportSendGrid, f.URL(), sendgridfake.APIKey, nil)

	a, err := p.Send(ctx, emailReq(ten, "same"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Send(ctx, emailReq(ten, "same"))
	if err != nil {
		t.Fatal(err)
	}
	if a != b || len(f.Requests()) != 1 {
		t.Fatalf("repeated key: receipts %+v and %+v after %d requests, want one request and one receipt", a, b, len(f.Requests()))
	}

	changed := emailReq(ten, "same")
	changed.Subject = "Otro asunto"
	_, err = p.Send(ctx, changed)
	wantKind(t, err, provider.KindInvalid)

	// Another tenant with the same key is another message.
	other := provider.NewTenant("other", ten.Settings(), map[string]string{fieldAPIKey: sendgridfake.APIKey})
	c, err := p.Send(ctx, emailReq(other, "same"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == a.ID {
		t.Fatalf("another tenant's send reused the first receipt")
	}

	// Concurrent sends with one key reach SendGrid once.
	before := len(f.Requests())
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			rc, err := p.Send(ctx, emailReq(ten, "concurrent"))
			if err != nil {
				t.Errorf("concurrent Send: %v", err)
			}
			ids[i] = rc.ID
		})
	}
	wg.Wait()
	if n := len(f.Requests()) - before; n != 1 {
		t.Fatalf("concurrent sends with one key made %d requests, want 1", n)
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent sends gave receipts %q", ids)
		}
	}

	// Without a key every send is a new message.
	before = len(f.Requests())
	for range 2 {
		if _, err := p.Send(ctx, emailReq(ten, "")); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.Requests()) - before; n != 2 {
		t.Fatalf("two sends without a key made %d requests, want 2", n)
	}
}

func TestSendGridErrors(t *testing.T) {
	tests := map[string]struct {
		status     int
		kind       provider.Kind
		retryAfter bool
		message    string // part of SendGrid's answer the error must quote
	}{
		"400 invalid":         {status: 400, kind: provider.KindInvalid, message: "The from email does not contain a valid address. (from.email)"},
		"401 unauthorized":    {status: 401, kind: provider.KindUnauthorized, message: "authorization grant is invalid"},
		"403 unauthorized":    {status: 403, kind: provider.KindUnauthorized, message: "access forbidden"},
		"413 invalid":         {status: 413, kind: provider.KindInvalid},
		"429 rate limited":    {status: 429, kind: provider.KindRateLimited, retryAfter: true},
		"500 retryable":       {status: 500, kind: provider.KindRetryable, message: "internal server error"},
		"503 retryable":       {status: 503, kind: provider.KindRetryable},
		"404 invalid (proxy)": {status: 404, kind: provider.KindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := startSendGrid(t)
			ctx, logs := testCtx(t)
			p := newProvider()
			ten := tenant(transportSendGrid, f.URL(), sendgridfake.APIKey, nil)
			f.FailNext(tc.status, 1)
			_, err := p.Send(ctx, emailReq(ten, "fail-then-retry"))
			wantKind(t, err, tc.kind)
			if tc.message != "" && !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not quote SendGrid's %q", err, tc.message)
			}
			if d := provider.RetryAfter(err); tc.retryAfter && (d <= 0 || d > 2*time.Second) {
				t.Errorf("RetryAfter = %s, want about 1s from X-RateLimit-Reset", d)
			}
			if !strings.Contains(logs.String(), `"kind":"`+tc.kind.String()+`"`) {
				t.Errorf("failure not logged with its kind: %s", logs)
			}
			// The failure is forgotten: a retry with the same key sends.
			if _, err := p.Send(ctx, emailReq(ten, "fail-then-retry")); err != nil {
				t.Fatalf("retry after %d: %v", tc.status, err)
			}
			if n := len(f.Sent()); n != 1 {
				t.Fatalf("%d messages accepted, want 1", n)
			}
		})
	}
}

func TestSendGridBadKey(t *testing.T) {
	f := startSendGrid(t)
	ctx, logs := testCtx(t)
	const wrong = "SG.wrong-key-4b1d7e0c9a"
	_, err := newProvider().Send(ctx, emailReq(tenant(transportSendGrid, f.URL(), wrong, nil), "k"))
	wantKind(t, err, provider.KindUnauthorized)
	noSecret(t, "error", err.Error(), wrong)
	noSecret(t, "logs", logs.String(), wrong)

	_, err = newProvider().Send(ctx, emailReq(tenant(transportSendGrid, f.URL(), "", nil), "k"))
	wantKind(t, err, provider.KindUnauthorized)
	if n := len(f.Requests()); n != 1 {
		t.Fatalf("%d requests, want 1 (a tenant without a key must not call SendGrid)", n)
	}
}

func TestSendGridDeadline(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := newProvider().Send(ctx, emailReq(tenant(transportSendGrid, hang.URL, sendgridfake.APIKey, nil), "slow"))
	wantKind(t, err, provider.KindRetryable)
	if !provider.IsTimeout(err) {
		t.Errorf("err = %v, want a timeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Send returned after %s", took)
	}
}

func TestSendGridRetryAfter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := map[string]struct {
		h    http.Header
		want time.Duration
	}{
		"retry-after wins": {http.Header{"Retry-After": {"7"}, "X-Ratelimit-Reset": {"1700000100"}}, 7 * time.Second},
		"reset ahead":      {http.Header{"X-Ratelimit-Reset": {"1700000030"}}, 30 * time.Second},
		"reset passed":     {http.Header{"X-Ratelimit-Reset": {"1699999990"}}, time.Second},
		"reset now":        {http.Header{"X-Ratelimit-Reset": {"1700000000"}}, time.Second},
		"reset far":        {http.Header{"X-Ratelimit-Reset": {"1800000000"}}, time.Hour},
		"garbage":          {http.Header{"X-Ratelimit-Reset": {"soon"}}, 0},
		"none":             {http.Header{}, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := sendGridRetryAfter(tc.h, now); got != tc.want {
				t.Fatalf("sendGridRetryAfter = %s, want %s", got, tc.want)
			}
		})
	}
}
