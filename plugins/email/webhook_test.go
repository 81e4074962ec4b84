package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/plugins/email/resendfake"
	"github.com/pipecore/pipecore/plugins/email/sendgridfake"
	"github.com/pipecore/pipecore/sdk/provider"
)

// wantEvent is an expected catalog event; Data is compared as JSON.
type wantEvent struct {
	ID, Type, Subject string
	OccurredAt        time.Time
	Data              map[string]any
}

func readTestdata(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", dir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkEventsEqual(t *testing.T, got []provider.Event, want []wantEvent) {
	t.Helper()
	if len(got) != len(want) {
		types := make([]string, len(got))
		for i, e := range got {
			types[i] = e.Type
		}
		t.Fatalf("%d events %v, want %d", len(got), types, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.ID != w.ID || g.Type != w.Type || g.Subject != w.Subject || !g.OccurredAt.Equal(w.OccurredAt) {
			t.Errorf("event %d = {ID:%q Type:%q Subject:%q OccurredAt:%s}, want {ID:%q Type:%q Subject:%q OccurredAt:%s}",
				i, g.ID, g.Type, g.Subject, g.OccurredAt, w.ID, w.Type, w.Subject, w.OccurredAt)
		}
		var data map[string]any
		if err := json.Unmarshal(g.Data, &data); err != nil {
			t.Fatalf("event %d: Data %q: %v", i, g.Data, err)
		}
		if !reflect.DeepEqual(data, w.Data) {
			t.Errorf("event %d: Data = %v, want %v", i, data, w.Data)
		}
	}
}

func sendGridWebhook(body []byte) provider.WebhookRequest {
	return provider.WebhookRequest{
		Tenant: provider.NewTenant("acme", map[string]string{fieldFrom: testFrom}, map[string]string{fieldAPIKey: sendgridfake.APIKey}),
		Headers: map[string][]string{
			"Content-Type":                           {"application/json"},
			"User-Agent":                             {"SendGrid Event API"},
			"X-Twilio-Email-Event-Webhook-Signature": {"MEUCIQD...verified-by-core"},
			"X-Twilio-Email-Event-Webhook-Timestamp": {"1732712600"},
		},
		Body: body,
	}
}

func TestParseSendGridRecorded(t *testing.T) {
	const (
		w86 = "W86EgYT6SQKk0lRflfLRsA"
		ld8 = "LD8AiFnVQQq-bSNvKCg7QQ"
	)
	tests := map[string][]wantEvent{
		"delivered": {{
			ID: "ZGVsaXZlcmVkLTAtMzc0MjkxNjQtVzg2RWdZVDZTUUtrMGxSZmxmTFJzQS0w", Type: catalogDelivered, Subject: w86,
			OccurredAt: time.Unix(1732712587, 0),
			Data:       map[string]any{"message_id": "msg_01JDQ8Z6X4T3N9V2K5R7W1C0AB", "provider_message_id": w86, "to": "camila.rojas@example.cl"},
		}},
		"bounce": {{
			ID: "Ym91bmNlLTAtMzc0MjkxNjQtcTVQcmFqc1JTSm1WSHE3eFJ3Y0xqZy0w", Type: catalogBounced, Subject: "q5PrajsRSJmVHq7xRwcLjg",
			OccurredAt: time.Unix(1732712624, 0),
			Data: map[string]any{"message_id": "msg_01JDQ90B7MEXV0P4S8Y2ZK3D5F", "provider_message_id": "q5PrajsRSJmVHq7xRwcLjg", "to": "no-existe@example.cl",
				"reason": "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces."},
		}},
		"blocked": {{
			ID: "YmxvY2tlZC0wLTM3NDI5MTY0LUpwVDF6d3hRUjZ5cUlCN2NkM2tPNUEtMA", Type: catalogBounced, Subject: "JpT1zwxQR6yqIB7cd3kO5A",
			OccurredAt: time.Unix(1732712642, 0),
			Data: map[string]any{"provider_message_id": "JpT1zwxQR6yqIB7cd3kO5A", "to": "ventas@example.net",
				"reason": "554 5.7.1 Service unavailable; Client host [149.72.123.24] blocked using zen.spamhaus.org"},
		}},
		"dropped": {{
			ID: "ZHJvcHBlZC0wLTM3NDI5MTY0LVhnZ2ZfT0RIUzd1VG9EYkk0VXotdXctMA", Type: catalogBounced, Subject: "Xggf_ODHS7uToDbI4Uz-uw",
			OccurredAt: time.Unix(1732712661, 0),
			Data: map[string]any{"message_id": "msg_01JDQ93F0S2AW6QH1JX8N4TB7G", "provider_message_id": "Xggf_ODHS7uToDbI4Uz-uw",
				"to": "rebotado@example.cl", "reason": "Bounced Address"},
		}},
		"open": {{
			ID: "b3Blbi0wLTM3NDI5MTY0LVc4NkVnWVQ2U1FLazBsUmZsZkxSc0EtMA", Type: catalogOpened, Subject: w86,
			OccurredAt: time.Unix(1732713011, 0),
			Data:       map[string]any{"message_id": "msg_01JDQ8Z6X4T3N9V2K5R7W1C0AB", "provider_message_id": w86, "to": "camila.rojas@example.cl"},
		}},
		"spamreport": {{
			ID: "c3BhbXJlcG9ydC0wLTM3NDI5MTY0LVc4NkVnWVQ2U1FLazBsUmZsZkxSc0EtMA", Type: catalogComplained, Subject: w86,
			OccurredAt: time.Unix(1732716402, 0),
			Data:       map[string]any{"message_id": "msg_01JDQ8Z6X4T3N9V2K5R7W1C0AB", "provider_message_id": w86, "to": "camila.rojas@example.cl"},
		}},
		"batch": {
			{
				ID: "ZGVsaXZlcmVkLTEtMzc0MjkxNjQtTEQ4QWlGblZRUXEtYlNOdktDZzdRUS0w", Type: catalogDelivered, Subject: ld8,
				OccurredAt: time.Unix(1732713264, 0),
				Data:       map[string]any{"message_id": "msg_01JDQ9A1C8YV5K0M2N7P3R9S4T", "provider_message_id": ld8, "to": "pedro.soto@example.cl"},
			},
			{
				ID: "b3Blbi0xLTM3NDI5MTY0LUxEOEFpRm5WUVFxLWJTTnZLQ2c3UVEtMA", Type: catalogOpened, Subject: ld8,
				OccurredAt: time.Unix(1732713392, 0),
				Data:       map[string]any{"message_id": "msg_01JDQ9A1C8YV5K0M2N7P3R9S4T", "provider_message_id": ld8, "to": "pedro.soto@example.cl"},
			},
		},
		"ignored": nil,
		// The delivered event has no sg_event_id (derived id); the
		// spamreport has no sg_message_id and is skipped.
		"no_event_id": {{
			ID:   derivedSendGridID(w86+".filterdrecv-p3las1-5bf99c48d-2j5xv-18-6746F18B-1B.0", "delivered", "1732712587", "camila.rojas@example.cl"),
			Type: catalogDelivered, Subject: w86, OccurredAt: time.Unix(1732712587, 0),
			Data: map[string]any{"provider_message_id": w86, "to": "camila.rojas@example.cl"},
		}},
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, _ := testCtx(t)
			evs, err := newProvider().ParseWebhook(ctx, sendGridWebhook(readTestdata(t, "sendgrid", name)))
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			checkEventsEqual(t, evs, want)
		})
	}
}

// derivedSendGridID repeats the documented rule for events without
// sg_event_id.
func derivedSendGridID(messageID, event, timestamp, email string) string {
	sum := sha256.Sum256([]byte(messageID + "\x00" + event + "\x00" + timestamp + "\x00" + email))
	return "sg_" + hex.EncodeToString(sum[:16])
}

func resendWebhook(body []byte, svixID string) provider.WebhookRequest {
	h := map[string][]string{
		"Content-Type":   {"application/json"},
		"Svix-Timestamp": {"1732712587"},
		"Svix-Signature": {"v1,verified-by-core"},
	}
	if svixID != "" {
		h["Svix-Id"] = []string{svixID}
	}
	return provider.WebhookRequest{
		Tenant:  provider.NewTenant("acme", map[string]string{fieldFrom: testFrom, fieldTransport: transportResend}, map[string]string{fieldAPIKey: resendfake.APIKey}),
		Headers: h,
		Body:    body,
	}
}

func TestParseResendRecorded(t *testing.T) {
	const (
		svixID  = "msg_2pQ7vXbN1cR8kTz4LmW0yHd3Fs9"
		emailID = "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"
		msgID   = "msg_01JDQ8Z6X4T3N9V2K5R7W1C0AB"
		to      = "camila.rojas@example.cl"
	)
	at := time.Date(2024, 11, 27, 13, 3, 7, 512e6, time.UTC)
	one := func(resendType, typ, reason string) []wantEvent {
		data := map[string]any{"message_id": msgID, "provider_message_id": emailID, "to": to}
		if reason != "" {
			data["reason"] = reason
		}
		return []wantEvent{{ID: svixID + ":" + resendType, Type: typ, Subject: emailID, OccurredAt: at, Data: data}}
	}
	tests := map[string][]wantEvent{
		"email.delivered":        one("email.delivered", catalogDelivered, ""),
		"email.bounced":          one("email.bounced", catalogBounced, "The recipient's email provider sent a hard bounce message, but didn't specify the reason for the hard bounce. We recommend removing the recipient's email address from your mailing list."),
		"email.failed":           one("email.failed", catalogBounced, "reached_daily_quota"),
		"email.suppressed":       one("email.suppressed", catalogBounced, "This email address is on the suppression list because a previous email to it hard bounced."),
		"email.opened":           one("email.opened", catalogOpened, ""),
		"email.complained":       one("email.complained", catalogComplained, ""),
		"email.sent":             nil,
		"email.delivery_delayed": nil,
		"email.clicked":          nil,
		"contact.created":        nil,
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, _ := testCtx(t)
			evs, err := newProvider().ParseWebhook(ctx, resendWebhook(readTestdata(t, "resend", name), svixID))
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			checkEventsEqual(t, evs, want)
		})
	}
}

func TestParseResendIDs(t *testing.T) {
	ctx, _ := testCtx(t)
	body := readTestdata(t, "resend", "email.delivered")
	p := newProvider()

	req := resendWebhook(body, "")
	req.Headers["Webhook-Id"] = []string{"msg_standard"}
	evs, err := p.ParseWebhook(ctx, req)
	if err != nil || len(evs) != 1 || evs[0].ID != "msg_standard:email.delivered" {
		t.Fatalf("with webhook-id only: %+v, %v; want ID msg_standard:email.delivered", evs, err)
	}

	a, err := p.ParseWebhook(ctx, resendWebhook(body, ""))
	if err != nil || len(a) != 1 {
		t.Fatal(err)
	}
	b, _ := p.ParseWebhook(ctx, resendWebhook(body, ""))
	if !strings.HasPrefix(a[0].ID, "resend_") || a[0].ID != b[0].ID {
		t.Fatalf("without a delivery id: IDs %q and %q, want one deterministic resend_… id", a[0].ID, b[0].ID)
	}

	// A lower-case header key (not canonicalised) is found too.
	req = resendWebhook(body, "")
	req.Headers["svix-id"] = []string{"msg_lower"}
	evs, _ = p.ParseWebhook(ctx, req)
	if len(evs) != 1 || evs[0].ID != "msg_lower:email.delivered" {
		t.Fatalf("lower-case svix-id: %+v", evs)
	}
}

func TestParseWebhookMalformed(t *testing.T) {
	tests := map[string]provider.WebhookRequest{
		"sendgrid object":          sendGridWebhook(readTestdata(t, "sendgrid", "malformed_object")),
		"sendgrid element":         sendGridWebhook(readTestdata(t, "sendgrid", "malformed_element")),
		"sendgrid timestamp":       sendGridWebhook(readTestdata(t, "sendgrid", "malformed_timestamp")),
		"sendgrid not json":        sendGridWebhook([]byte("event=delivered")),
		"sendgrid no event name":   sendGridWebhook([]byte(`[{"sg_message_id":"a.b"}]`)),
		"resend no email_id":       resendWebhook(readTestdata(t, "resend", "malformed_no_email_id"), "msg_x"),
		"resend array":             resendWebhook(readTestdata(t, "resend", "malformed_array"), "msg_x"),
		"resend no type":           resendWebhook([]byte(`{"data":{"email_id":"x"}}`), "msg_x"),
		"resend data not object":   resendWebhook([]byte(`{"type":"email.opened","data":"x"}`), "msg_x"),
		"resend body for sendgrid": sendGridWebhook(readTestdata(t, "resend", "email.delivered")),
		"sendgrid body for resend": resendWebhook(readTestdata(t, "sendgrid", "delivered"), "msg_x"),
	}
	for name, req := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, _ := testCtx(t)
			evs, err := newProvider().ParseWebhook(ctx, req)
			wantKind(t, err, provider.KindInvalid)
			if !errors.Is(err, errMalformedWebhook) || evs != nil {
				t.Fatalf("ParseWebhook = %v, %v; want no events and errMalformedWebhook", evs, err)
			}
		})
	}
	t.Run("unknown transport", func(t *testing.T) {
		ctx, _ := testCtx(t)
		req := sendGridWebhook(readTestdata(t, "sendgrid", "delivered"))
		req.Tenant = provider.NewTenant("acme", map[string]string{fieldTransport: "smtp"}, nil)
		_, err := newProvider().ParseWebhook(ctx, req)
		wantKind(t, err, provider.KindInvalid)
	})
}

// captured is one webhook POST a test receiver got.
type captured struct {
	header http.Header
	body   []byte
}

// receiver starts a webhook endpoint that checks every POST with verify
// (401 when it fails) and keeps the verified ones.
func receiver(t *testing.T, verify func(h http.Header, body []byte) error) (string, func() []captured) {
	t.Helper()
	var mu sync.Mutex
	var got []captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verify(r.Header, body); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		got = append(got, captured{header: r.Header.Clone(), body: body})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), got...)
	}
}

// verifySendGrid checks SendGrid's Signed Event Webhook (providers.md
// §8.2), independently of core.
func verifySendGrid(publicKey string) func(http.Header, []byte) error {
	return func(h http.Header, body []byte) error {
		der, err := base64.StdEncoding.DecodeString(publicKey)
		if err != nil {
			return err
		}
		key, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return err
		}
		sig, err := base64.StdEncoding.DecodeString(h.Get("X-Twilio-Email-Event-Webhook-Signature"))
		if err != nil {
			return err
		}
		digest := sha256.Sum256(append([]byte(h.Get("X-Twilio-Email-Event-Webhook-Timestamp")), body...))
		if !ecdsa.VerifyASN1(key.(*ecdsa.PublicKey), digest[:], sig) {
			return errors.New("bad signature")
		}
		return nil
	}
}

// verifySvix checks the Svix scheme (providers.md §9.2), independently of
// core.
func verifySvix(secret string) func(http.Header, []byte) error {
	return func(h http.Header, body []byte) error {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err != nil {
			return err
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(h.Get("svix-id") + "." + h.Get("svix-timestamp") + "."))
		mac.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		for _, s := range strings.Fields(h.Get("svix-signature")) {
			if hmac.Equal([]byte(s), []byte(want)) {
				return nil
			}
		}
		return errors.New("bad signature")
	}
}

// TestSendGridRoundTrip sends through the fake, has it post signed events
// and parses them: every event's Subject is the receipt id.
func TestSendGridRoundTrip(t *testing.T) {
	f := startSendGrid(t)
	url, got := receiver(t, verifySendGrid(f.PublicKey()))
	f.SetWebhook(url)
	ctx, _ := testCtx(t)
	ten := tenant(transportSendGrid, f.URL(), sendgridfake.APIKey, nil)
	rc, err := newProvider().Send(ctx, emailReq(ten, "round"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{"processed", "delivered", "open", "bounce", "dropped", "spamreport", "click"} {
		if err := f.Event(rc.ID, ev, nil); err != nil {
			t.Fatalf("Event(%s): %v", ev, err)
		}
	}
	if err := f.Event(rc.ID, "bounce", map[string]any{"type": "blocked", "reason": nil}); err != nil {
		t.Fatal(err)
	}
	posts := got()
	if len(posts) != 8 {
		t.Fatalf("%d verified posts, want 8", len(posts))
	}
	wantTypes := []string{"", catalogDelivered, catalogOpened, catalogBounced, catalogBounced, catalogComplained, "", catalogBounced}
	wantReason := map[int]string{3: "550 5.1.1 The email account that you tried to reach does not exist.", 4: "Bounced Address", 7: "blocked"}
	for i, post := range posts {
		req := sendGridWebhook(post.body)
		req.Tenant = ten
		req.Headers = post.header
		evs, err := newProvider().ParseWebhook(context.Background(), req)
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		if wantTypes[i] == "" {
			if len(evs) != 0 {
				t.Errorf("post %d: %d events, want none", i, len(evs))
			}
			continue
		}
		if len(evs) != 1 || evs[0].Type != wantTypes[i] || evs[0].Subject != rc.ID || evs[0].ID == "" {
			t.Fatalf("post %d: events %+v, want one %s about %s", i, evs, wantTypes[i], rc.ID)
		}
		var data map[string]any
		_ = json.Unmarshal(evs[0].Data, &data)
		if data["message_id"] != "msg_round" || data["to"] != "camila.rojas@example.cl" || data["provider_message_id"] != rc.ID {
			t.Errorf("post %d: data %v", i, data)
		}
		if r, ok := wantReason[i]; ok && data["reason"] != r {
			t.Errorf("post %d: reason %v, want %q", i, data["reason"], r)
		}
	}

	f.SetWebhook("")
	if err := f.Event(rc.ID, "delivered", nil); err == nil {
		t.Fatal("Event without a webhook URL succeeded")
	}
}

// TestResendRoundTrip does the same through the Resend fake.
func TestResendRoundTrip(t *testing.T) {
	f := startResend(t)
	const secret = "whsec_cm91bmQtdHJpcC1zZWNyZXQtZm9yLXJlc2VuZA=="
	url, got := receiver(t, verifySvix(secret))
	f.SetWebhook(url, secret)
	ctx, _ := testCtx(t)
	ten := tenant(transportResend, f.URL(), resendfake.APIKey, nil)
	rc, err := newProvider().Send(ctx, emailReq(ten, "round"))
	if err != nil {
		t.Fatal(err)
	}
	types := []string{"email.sent", "email.delivered", "email.opened", "email.bounced", "email.complained", "email.clicked", "email.failed", "email.suppressed"}
	wantTypes := []string{"", catalogDelivered, catalogOpened, catalogBounced, catalogComplained, "", catalogBounced, catalogBounced}
	for _, typ := range types {
		if err := f.Event(rc.ID, typ, nil); err != nil {
			t.Fatalf("Event(%s): %v", typ, err)
		}
	}
	posts := got()
	if len(posts) != len(types) {
		t.Fatalf("%d verified posts, want %d", len(posts), len(types))
	}
	seen := map[string]bool{}
	for i, post := range posts {
		evs, err := newProvider().ParseWebhook(context.Background(), provider.WebhookRequest{Tenant: ten, Headers: post.header, Body: post.body})
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		if wantTypes[i] == "" {
			if len(evs) != 0 {
				t.Errorf("post %d (%s): %d events, want none", i, types[i], len(evs))
			}
			continue
		}
		if len(evs) != 1 || evs[0].Type != wantTypes[i] || evs[0].Subject != rc.ID {
			t.Fatalf("post %d: events %+v, want one %s about %s", i, evs, wantTypes[i], rc.ID)
		}
		if want := post.header.Get("svix-id") + ":" + types[i]; evs[0].ID != want || seen[want] {
			t.Errorf("post %d: ID %q, want the unique %q", i, evs[0].ID, want)
		}
		seen[evs[0].ID] = true
		var data map[string]any
		_ = json.Unmarshal(evs[0].Data, &data)
		if data["message_id"] != "msg_round" || data["to"] != "Camila Rojas <camila.rojas@example.cl>" {
			t.Errorf("post %d: data %v", i, data)
		}
		if wantTypes[i] == catalogBounced && data["reason"] == nil {
			t.Errorf("post %d: bounced without a reason", i)
		}
	}

	// A receiver with another secret refuses the fake's signature.
	url2, _ := receiver(t, verifySvix(resendfake.WebhookSecret))
	f.SetWebhook(url2, secret)
	if err := f.Event(rc.ID, "email.delivered", nil); err == nil {
		t.Fatal("a post signed with another secret was accepted")
	}
}
