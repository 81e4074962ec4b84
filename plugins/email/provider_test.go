package main

import (
	"testing"

	"github.com/pipecore/pipecore/plugins/email/sendgridfake"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

func TestInfo(t *testing.T) {
	info := newProvider().Info()
	if err := info.Validate(); err != nil {
		t.Fatalf("Info invalid: %v", err)
	}
	if info.Name != "email" {
		t.Errorf("Name = %q, want email", info.Name)
	}
	for name, secret := range map[string]bool{
		fieldTransport: false, fieldFrom: false, fieldReplyTo: false, provider.BaseURLField: false,
		fieldAPIKey: true, fieldWebhookPublicKey: true, fieldWebhookSecret: true,
	} {
		f, ok := info.Field(name)
		if !ok || f.Secret != secret {
			t.Errorf("field %q: declared %v, secret %v; want declared, secret %v", name, ok, f.Secret, secret)
		}
	}
	if f, _ := info.Field(fieldFrom); !f.Required {
		t.Errorf("from must be required")
	}
	tests := map[string]struct {
		scheme provider.SignatureScheme
		secret string
		dedup  []string
	}{
		"":         {provider.SchemeECDSA, fieldWebhookPublicKey, nil},
		"sendgrid": {provider.SchemeECDSA, fieldWebhookPublicKey, nil},
		"resend":   {provider.SchemeSvix, fieldWebhookSecret, []string{"header:svix-id"}},
		"Resend":   {provider.SchemeECDSA, fieldWebhookPublicKey, nil}, // values are exact
	}
	for value, tc := range tests {
		spec := info.Webhook.For(value)
		if spec.Scheme != tc.scheme || spec.SecretField != tc.secret || len(spec.DedupKey) != len(tc.dedup) || (len(tc.dedup) > 0 && spec.DedupKey[0] != tc.dedup[0]) {
			t.Errorf("transport %q: spec %+v, want scheme %s, secret %s, dedup %v", value, spec, tc.scheme, tc.secret, tc.dedup)
		}
	}
}

func TestSendRejects(t *testing.T) {
	f := startSendGrid(t)
	good := tenant(transportSendGrid, f.URL(), sendgridfake.APIKey, nil)
	with := func(mut func(s, c map[string]string)) provider.Tenant {
		return tenant(transportSendGrid, f.URL(), sendgridfake.APIKey, mut)
	}
	tests := map[string]struct {
		req  func() messaging.SendRequest
		kind provider.Kind
	}{
		"whatsapp channel": {func() messaging.SendRequest {
			r := emailReq(good, "k")
			r.Channel = messaging.ChannelWhatsApp
			return r
		}, provider.KindUnsupported},
		"sms channel": {func() messaging.SendRequest { r := emailReq(good, "k"); r.Channel = messaging.ChannelSMS; return r }, provider.KindUnsupported},
		"no channel":  {func() messaging.SendRequest { r := emailReq(good, "k"); r.Channel = ""; return r }, provider.KindUnsupported},
		"unknown transport": {func() messaging.SendRequest {
			return emailReq(with(func(s, _ map[string]string) { s[fieldTransport] = "mailgun" }), "k")
		}, provider.KindInvalid},
		"base_url with query": {func() messaging.SendRequest {
			return emailReq(with(func(s, _ map[string]string) { s[provider.BaseURLField] = "https://api.sendgrid.com/?x=1" }), "k")
		}, provider.KindInvalid},
		"base_url ftp": {func() messaging.SendRequest {
			return emailReq(with(func(s, _ map[string]string) { s[provider.BaseURLField] = "ftp://api.sendgrid.com" }), "k")
		}, provider.KindInvalid},
		"no from": {func() messaging.SendRequest {
			return emailReq(with(func(s, _ map[string]string) { delete(s, fieldFrom) }), "k")
		}, provider.KindInvalid},
		"bad from": {func() messaging.SendRequest {
			return emailReq(with(func(s, _ map[string]string) { s[fieldFrom] = "Acme no-reply" }), "k")
		}, provider.KindInvalid},
		"bad reply_to": {func() messaging.SendRequest {
			return emailReq(with(func(s, _ map[string]string) { s[fieldReplyTo] = "soporte@" }), "k")
		}, provider.KindInvalid},
		"no api key": {func() messaging.SendRequest {
			return emailReq(with(func(_, c map[string]string) { delete(c, fieldAPIKey) }), "k")
		}, provider.KindUnauthorized},
		"empty to":       {func() messaging.SendRequest { r := emailReq(good, "k"); r.To = " "; return r }, provider.KindInvalid},
		"not an address": {func() messaging.SendRequest { r := emailReq(good, "k"); r.To = "not-an-address"; return r }, provider.KindInvalid},
		"two addresses":  {func() messaging.SendRequest { r := emailReq(good, "k"); r.To = "a@example.cl, b@example.cl"; return r }, provider.KindInvalid},
		"phone number":   {func() messaging.SendRequest { r := emailReq(good, "k"); r.To = "+56912345678"; return r }, provider.KindInvalid},
		"no subject":     {func() messaging.SendRequest { r := emailReq(good, "k"); r.Subject = ""; return r }, provider.KindInvalid},
		"subject CRLF":   {func() messaging.SendRequest { r := emailReq(good, "k"); r.Subject = "Hola\r\nBcc: x@y.z"; return r }, provider.KindInvalid},
		"no body":        {func() messaging.SendRequest { r := emailReq(good, "k"); r.Text, r.HTML = "", ""; return r }, provider.KindInvalid},
		"template only": {func() messaging.SendRequest {
			r := emailReq(good, "k")
			r.Text, r.HTML, r.Template = "", "", &messaging.Template{Name: "order_shipped", Language: "es"}
			return r
		}, provider.KindUnsupported},
		"attachment without name": {func() messaging.SendRequest {
			r := emailReq(good, "k")
			r.Attachments = []messaging.Attachment{{Content: []byte("x")}}
			return r
		}, provider.KindInvalid},
		"empty attachment": {func() messaging.SendRequest {
			r := emailReq(good, "k")
			r.Attachments = []messaging.Attachment{{Filename: "a.txt"}}
			return r
		}, provider.KindInvalid},
		"attachment type with parameters": {func() messaging.SendRequest {
			r := emailReq(good, "k")
			r.Attachments = []messaging.Attachment{{Filename: "a.txt", ContentType: "text/plain; charset=utf-8", Content: []byte("x")}}
			return r
		}, provider.KindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, _ := testCtx(t)
			_, err := newProvider().Send(ctx, tc.req())
			wantKind(t, err, tc.kind)
		})
	}
	if n := len(f.Requests()); n != 0 {
		t.Fatalf("%d requests reached SendGrid; rejected sends must not call it", n)
	}
}

// TestTemplateWithRenderedContent: the gateway may pass the template it
// rendered along with the result; the rendered fields are sent.
func TestTemplateWithRenderedContent(t *testing.T) {
	f := startSendGrid(t)
	ctx, _ := testCtx(t)
	r := emailReq(tenant(transportSendGrid, f.URL(), sendgridfake.APIKey, nil), "tpl")
	r.Template = &messaging.Template{Name: "order_shipped", Language: "es"}
	if _, err := newProvider().Send(ctx, r); err != nil {
		t.Fatalf("Send: %v", err)
	}
	sent := f.Sent()
	if len(sent) != 1 || jsonPath(sent[0], "subject") != r.Subject || jsonPath(sent[0], "template_id") != nil {
		t.Fatalf("sent %v, want the rendered subject and no template_id", sent)
	}
}

func TestClip(t *testing.T) {
	long := ""
	for range 300 {
		long += "ñ"
	}
	got := clip(long)
	if len(got) > maxClip+len("…") || got[len(got)-len("…"):] != "…" {
		t.Fatalf("clip = %d bytes", len(got))
	}
	for _, r := range got {
		if r == '\uFFFD' {
			t.Fatalf("clip cut a rune in half")
		}
	}
	if clip("short") != "short" {
		t.Fatal("clip changed a short string")
	}
}
