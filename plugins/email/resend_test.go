package main

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/plugins/email/resendfake"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

func TestResendSend(t *testing.T) {
	f := startResend(t)
	ctx, _ := testCtx(t)
	ten := tenant(transportResend, f.URL(), resendfake.APIKey, func(s, _ map[string]string) {
		s[fieldReplyTo] = "soporte@acme.cl"
	})
	req := emailReq(ten, "r1")
	req.Attachments = []messaging.Attachment{{Filename: "boleta.pdf", ContentType: "application/pdf", Content: []byte("%PDF-1.4 boleta")}}

	rc, err := newProvider().Send(ctx, req)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(rc.ID) != 36 || rc.Status != messaging.StatusQueued {
		t.Fatalf("receipt = %+v, want Resend's uuid and status queued", rc)
	}
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/emails" {
		t.Errorf("request = %s %s, want POST /emails", r.Method, r.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+resendfake.APIKey {
		t.Errorf("Authorization = %q", got)
	}
	if got := r.Header.Get("Idempotency-Key"); got != "r1" {
		t.Errorf("Idempotency-Key = %q, want r1", got)
	}
	sent := f.Sent()
	if len(sent) != 1 {
		t.Fatalf("%d sent, want 1", len(sent))
	}
	want := map[string]any{
		"from":                       testFrom,
		"to.0":                       req.To,
		"subject":                    req.Subject,
		"text":                       req.Text,
		"html":                       req.HTML,
		"reply_to":                   "soporte@acme.cl",
		"tags.0.name":                "pipecore_message_id",
		"tags.0.value":               "msg_r1",
		"attachments.0.filename":     "boleta.pdf",
		"attachments.0.content_type": "application/pdf",
		"attachments.0.content":      base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 boleta")),
	}
	for path, v := range want {
		if got := jsonPath(sent[0], path); got != v {
			t.Errorf("%s = %v, want %v", path, got, v)
		}
	}
}

func TestResendIdempotency(t *testing.T) {
	f := startResend(t)
	ctx, _ := testCtx(t)
	ten := tenant(transportResend, f.URL(), resendfake.APIKey, nil)
	// Two provider instances: the key, not process memory, makes Resend
	// answer the first email.
	a, err := newProvider().Send(ctx, emailReq(ten, "same"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := newProvider().Send(ctx, emailReq(ten, "same"))
	if err != nil {
		t.Fatal(err)
	}
	if a != b || len(f.Sent()) != 1 || len(f.Requests()) != 2 {
		t.Fatalf("receipts %+v, %+v; %d sent of %d requests; want one email", a, b, len(f.Sent()), len(f.Requests()))
	}
	changed := emailReq(ten, "same")
	changed.Text = "otro texto"
	_, err = newProvider().Send(ctx, changed)
	wantKind(t, err, provider.KindInvalid)
	if provider.CodeOf(err) != "invalid_idempotent_request" {
		t.Errorf("code = %q, want invalid_idempotent_request", provider.CodeOf(err))
	}

	long := strings.Repeat("k", 300)
	if _, err := newProvider().Send(ctx, emailReq(ten, long)); err != nil {
		t.Fatalf("Send with a 300-character key: %v", err)
	}
	reqs := f.Requests()
	if got := reqs[len(reqs)-1].Header.Get("Idempotency-Key"); len(got) > 256 || !strings.HasPrefix(got, "sha256-") {
		t.Errorf("Idempotency-Key for a long key = %q, want a sha256- digest of at most 256 characters", got)
	}
}

func TestResendNoTagForOddMessageID(t *testing.T) {
	f := startResend(t)
	ctx, _ := testCtx(t)
	req := emailReq(tenant(transportResend, f.URL(), resendfake.APIKey, nil), "odd")
	req.MessageID = "msg with spaces"
	if _, err := newProvider().Send(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := jsonPath(f.Sent()[0], "tags"); got != nil {
		t.Errorf("tags = %v, want none for a message id Resend would refuse as a tag", got)
	}
}

func TestResendErrors(t *testing.T) {
	tests := map[string]struct {
		status     int
		kind       provider.Kind
		code       string
		retryAfter time.Duration
	}{
		"400 validation":  {status: 400, kind: provider.KindInvalid, code: "validation_error"},
		"401 missing key": {status: 401, kind: provider.KindUnauthorized, code: "missing_api_key"},
		"403 invalid key": {status: 403, kind: provider.KindUnauthorized, code: "invalid_api_key"},
		"409 concurrent":  {status: 409, kind: provider.KindRetryable, code: "concurrent_idempotent_requests"},
		"422 validation":  {status: 422, kind: provider.KindInvalid, code: "validation_error"},
		"429 rate limit":  {status: 429, kind: provider.KindRateLimited, code: "rate_limit_exceeded", retryAfter: time.Second},
		"500 retryable":   {status: 500, kind: provider.KindRetryable, code: "internal_server_error"},
		"502 retryable":   {status: 502, kind: provider.KindRetryable, code: "application_error"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := startResend(t)
			ctx, _ := testCtx(t)
			ten := tenant(transportResend, f.URL(), resendfake.APIKey, nil)
			f.FailNext(tc.status, 1)
			_, err := newProvider().Send(ctx, emailReq(ten, "k"))
			wantKind(t, err, tc.kind)
			if provider.CodeOf(err) != tc.code {
				t.Errorf("code = %q, want %q", provider.CodeOf(err), tc.code)
			}
			if provider.RetryAfter(err) != tc.retryAfter {
				t.Errorf("RetryAfter = %s, want %s", provider.RetryAfter(err), tc.retryAfter)
			}
			if _, err := newProvider().Send(ctx, emailReq(ten, "k")); err != nil {
				t.Fatalf("retry after %d: %v", tc.status, err)
			}
		})
	}
}

// TestResendClassify covers answers the fake does not give: Resend's 403s
// that are about the message, not the key.
func TestResendClassify(t *testing.T) {
	a := account{transport: transportResend, apiKey: provider.NewSecret("re_secret_12345678")}
	tests := map[string]struct {
		status int
		body   string
		kind   provider.Kind
	}{
		"403 unverified domain":  {403, `{"statusCode":403,"name":"validation_error","message":"The acme.cl domain is not verified. Please, add and verify your domain."}`, provider.KindInvalid},
		"403 testing recipient":  {403, `{"statusCode":403,"name":"validation_error","message":"You can only send testing emails to your own email address."}`, provider.KindInvalid},
		"403 invalid from":       {403, `{"statusCode":403,"name":"invalid_from_address","message":"The from address is not valid."}`, provider.KindInvalid},
		"403 restricted key":     {403, `{"statusCode":403,"name":"restricted_api_key","message":"This API key is restricted."}`, provider.KindUnauthorized},
		"403 no body":            {403, ``, provider.KindUnauthorized},
		"409 reused key":         {409, `{"statusCode":409,"name":"invalid_idempotent_request","message":"Same idempotency key used with a different request payload."}`, provider.KindInvalid},
		"429 daily quota":        {429, `{"statusCode":429,"name":"daily_quota_exceeded","message":"You have reached your daily email sending quota."}`, provider.KindRateLimited},
		"500 html":               {500, `<html>oops</html>`, provider.KindRetryable},
		"echoed key is redacted": {400, `{"statusCode":400,"name":"validation_error","message":"bad key re_secret_12345678"}`, provider.KindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req := a.request("send", resendEmailsPath, nil, nil)
			err := resendError(&httpapi.Response{Status: tc.status, Header: http.Header{}, Body: []byte(tc.body), Request: &req})
			wantKind(t, err, tc.kind)
			noSecret(t, "error", err.Error(), "re_secret_12345678")
		})
	}
}

func TestResendBadKey(t *testing.T) {
	f := startResend(t)
	ctx, logs := testCtx(t)
	const wrong = "re_wrong_key_5d1c0e7a9b"
	_, err := newProvider().Send(ctx, emailReq(tenant(transportResend, f.URL(), wrong, nil), "k"))
	wantKind(t, err, provider.KindUnauthorized)
	if provider.CodeOf(err) != "invalid_api_key" {
		t.Errorf("code = %q, want invalid_api_key", provider.CodeOf(err))
	}
	noSecret(t, "error", err.Error(), wrong)
	noSecret(t, "logs", logs.String(), wrong)
}
