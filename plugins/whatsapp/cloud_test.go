package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/pipecore/pipecore/plugins/whatsapp/metafake"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

func TestCloudSendText(t *testing.T) {
	f := metafake.Start()
	defer f.Close()
	p := newProvider()
	const text = "Tu pedido fue confirmado ✅ <b>&</b>"
	rc, err := p.Send(testCtx(t), messaging.SendRequest{
		Tenant: cloudTenant(f.URL(), nil), IdempotencyKey: "k1", MessageID: "msg_1",
		Channel: messaging.ChannelWhatsApp, To: "+56987654321", Text: text,
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if !strings.HasPrefix(rc.ID, "wamid.") || rc.Status != messaging.StatusQueued {
		t.Errorf("receipt = %+v, want a wamid, queued", rc)
	}
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/"+defaultGraphVersion+"/"+metafake.PhoneNumberID+"/messages" {
		t.Errorf("request = %s %s", r.Method, r.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+metafake.AccessToken {
		t.Errorf("Authorization = %q", got)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !bytes.Contains(r.Body, []byte("✅ <b>&</b>")) {
		t.Errorf("body does not carry the text as UTF-8 bytes: %s", r.Body)
	}
	want := map[string]any{
		"messaging_product": "whatsapp", "recipient_type": "individual", "to": "56987654321", "type": "text",
		"text": map[string]any{"preview_url": false, "body": text},
	}
	if sent := f.Sent(); len(sent) != 1 || !reflect.DeepEqual(sent[0], want) {
		t.Errorf("sent = %#v\nwant %#v", sent, want)
	}
}

func TestCloudSendTemplate(t *testing.T) {
	tests := map[string]struct {
		tpl  messaging.Template
		want map[string]any
	}{
		"with parameters in order": {
			tpl: messaging.Template{Name: "pedido_confirmado", Language: "es", Params: []string{"#123", "mañana ✅", "Ana"}},
			want: map[string]any{
				"name": "pedido_confirmado", "language": map[string]any{"code": "es"},
				"components": []any{map[string]any{"type": "body", "parameters": []any{
					map[string]any{"type": "text", "text": "#123"},
					map[string]any{"type": "text", "text": "mañana ✅"},
					map[string]any{"type": "text", "text": "Ana"},
				}}},
			},
		},
		"without parameters": {
			tpl:  messaging.Template{Name: "hello_world", Language: "en_US"},
			want: map[string]any{"name": "hello_world", "language": map[string]any{"code": "en_US"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := metafake.Start()
			defer f.Close()
			rc, err := newProvider().Send(testCtx(t), messaging.SendRequest{
				Tenant: cloudTenant(f.URL(), map[string]string{fieldGraphVersion: "v20.0"}), IdempotencyKey: "k",
				Channel: messaging.ChannelWhatsApp, To: "+56987654321", Template: &tc.tpl, Text: "ignored on the cloud transport",
			})
			if err != nil || rc.ID == "" {
				t.Fatalf("Send = %+v, %v", rc, err)
			}
			if path := f.Requests()[0].Path; path != "/v20.0/"+metafake.PhoneNumberID+"/messages" {
				t.Errorf("path = %s, want the tenant's graph_version", path)
			}
			sent := f.Sent()
			if len(sent) != 1 || sent[0]["type"] != "template" || sent[0]["text"] != nil {
				t.Fatalf("sent = %#v, want one template message without text", sent)
			}
			if !reflect.DeepEqual(sent[0]["template"], tc.want) {
				t.Errorf("template = %#v\nwant %#v", sent[0]["template"], tc.want)
			}
		})
	}
}

func TestCloudSendErrors(t *testing.T) {
	f := metafake.Start()
	defer f.Close()
	tests := map[string]struct {
		fail   int
		tenant provider.Tenant
		kind   provider.Kind
		code   string
	}{
		"unknown token":        {tenant: cloudTenant(f.URL(), map[string]string{fieldAccessToken: "EAAG-wrong-token-123456"}), kind: provider.KindUnauthorized, code: "190"},
		"unknown phone number": {tenant: cloudTenant(f.URL(), map[string]string{fieldPhoneNumberID: "999"}), kind: provider.KindInvalid, code: "100"},
		"401":                  {fail: 401, kind: provider.KindUnauthorized, code: "190"},
		"400 invalid":          {fail: 400, kind: provider.KindInvalid, code: "100"},
		"429":                  {fail: 429, kind: provider.KindRateLimited, code: "130429"},
		"500":                  {fail: 500, kind: provider.KindRetryable, code: "131000"},
		"503":                  {fail: 503, kind: provider.KindRetryable, code: "2"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tn := tc.tenant
			if tc.fail != 0 {
				tn = cloudTenant(f.URL(), nil)
				f.FailNext(tc.fail, 1)
			}
			_, err := newProvider().Send(testCtx(t), messaging.SendRequest{
				Tenant: tn, IdempotencyKey: "k-" + name, Channel: messaging.ChannelWhatsApp, To: "+56987654321", Text: "hola",
			})
			if provider.KindOf(err) != tc.kind || provider.CodeOf(err) != tc.code {
				t.Fatalf("err = %v (kind %s, code %q), want kind %s code %q", err, provider.KindOf(err), provider.CodeOf(err), tc.kind, tc.code)
			}
			if !strings.HasPrefix(err.Error(), "whatsapp: send: HTTP ") {
				t.Errorf("message = %q", err)
			}
			noSecret(t, err.Error())
		})
	}
}

// Graph error codes decide the kind where the HTTP status would mislead.
func TestCloudGraphCodes(t *testing.T) {
	tests := map[string]struct {
		status int
		body   string
		kind   provider.Kind
		code   string
		retry  string
	}{
		"pair rate limit on 400": {400, `{"error":{"message":"(#131056) (Business Account, Consumer Account) pair rate limit hit","type":"OAuthException","code":131056,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."},"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}`, provider.KindRateLimited, "131056", "7"},
		"expired token on 400":   {400, `{"error":{"message":"Error validating access token: Session has expired on Friday, 27-Nov-26.","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"AbC"}}`, provider.KindUnauthorized, "190", ""},
		"recipient not allowed":  {400, `{"error":{"message":"(#131030) Recipient phone number not in allowed list","type":"OAuthException","code":131030,"error_data":{"messaging_product":"whatsapp","details":"Recipient phone number not in allowed list: Add recipient phone number to recipient list and try again."},"fbtrace_id":"AbC"}}`, provider.KindInvalid, "131030", ""},
		"something went wrong":   {500, `{"error":{"message":"(#131000) Something went wrong","type":"OAuthException","code":131000,"fbtrace_id":"AbC"}}`, provider.KindRetryable, "131000", ""},
		"html gateway page":      {502, `<html>Bad Gateway</html>`, provider.KindRetryable, "", ""},
		"echoes the token":       {400, `{"error":{"message":"bad token ` + metafake.AccessToken + `","code":100}}`, provider.KindInvalid, "100", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.retry != "" {
					w.Header().Set("Retry-After", tc.retry)
				}
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			_, err := newProvider().Send(testCtx(t), messaging.SendRequest{
				Tenant: cloudTenant(srv.URL, nil), Channel: messaging.ChannelWhatsApp, To: "+56987654321", Text: "hola",
			})
			if provider.KindOf(err) != tc.kind || provider.CodeOf(err) != tc.code {
				t.Fatalf("err = %v (kind %s, code %q), want kind %s code %q", err, provider.KindOf(err), provider.CodeOf(err), tc.kind, tc.code)
			}
			if tc.retry != "" && provider.RetryAfter(err).Seconds() != 7 {
				t.Errorf("RetryAfter = %s, want 7s", provider.RetryAfter(err))
			}
			noSecret(t, err.Error())
		})
	}
}

func TestCloudMalformedSuccess(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"messaging_product":"whatsapp","contacts":[],"messages":[]}`)
	}))
	defer srv.Close()
	_, err := newProvider().Send(testCtx(t), messaging.SendRequest{
		Tenant: cloudTenant(srv.URL, nil), Channel: messaging.ChannelWhatsApp, To: "+56987654321", Text: "hola",
	})
	if provider.KindOf(err) != provider.KindRetryable {
		t.Fatalf("err = %v (kind %s), want retryable", err, provider.KindOf(err))
	}
}

// Requests the plugin refuses before calling the API.
func TestSendValidation(t *testing.T) {
	f := metafake.Start()
	defer f.Close()
	text := func(r *messaging.SendRequest) {}
	tests := map[string]struct {
		tenant      provider.Tenant
		mut         func(*messaging.SendRequest)
		kind        provider.Kind
		unsupported bool
	}{
		"no access token":     {tenant: cloudTenant(f.URL(), map[string]string{fieldAccessToken: ""}), mut: text, kind: provider.KindUnauthorized},
		"no phone number id":  {tenant: cloudTenant(f.URL(), map[string]string{fieldPhoneNumberID: ""}), mut: text, kind: provider.KindUnauthorized},
		"phone id not digits": {tenant: cloudTenant(f.URL(), map[string]string{fieldPhoneNumberID: "../x"}), mut: text, kind: provider.KindInvalid},
		"bad graph version":   {tenant: cloudTenant(f.URL(), map[string]string{fieldGraphVersion: "21"}), mut: text, kind: provider.KindInvalid},
		"bad base url":        {tenant: cloudTenant("graph.facebook.com", nil), mut: text, kind: provider.KindInvalid},
		"base url with query": {tenant: cloudTenant(f.URL()+"/?x=1", nil), mut: text, kind: provider.KindInvalid},
		"unknown transport":   {tenant: cloudTenant(f.URL(), map[string]string{fieldTransport: "Twilio"}), mut: text, kind: provider.KindInvalid},
		"sms on cloud": {mut: func(r *messaging.SendRequest) { r.Channel = messaging.ChannelSMS },
			kind: provider.KindUnsupported, unsupported: true},
		"email": {mut: func(r *messaging.SendRequest) { r.Channel = messaging.ChannelEmail; r.To = "a@example.com" },
			kind: provider.KindUnsupported, unsupported: true},
		"attachment": {mut: func(r *messaging.SendRequest) {
			r.Attachments = []messaging.Attachment{{Filename: "a.pdf", ContentType: "application/pdf", Content: []byte("%PDF")}}
		}, kind: provider.KindUnsupported, unsupported: true},
		"recipient without plus": {mut: func(r *messaging.SendRequest) { r.To = "56987654321" }, kind: provider.KindInvalid},
		"recipient too short":    {mut: func(r *messaging.SendRequest) { r.To = "+5698" }, kind: provider.KindInvalid},
		"recipient whatsapp:":    {mut: func(r *messaging.SendRequest) { r.To = "whatsapp:+56987654321" }, kind: provider.KindInvalid},
		"no text":                {mut: func(r *messaging.SendRequest) { r.Text = "" }, kind: provider.KindInvalid},
		"template without language": {mut: func(r *messaging.SendRequest) {
			r.Template = &messaging.Template{Name: "pedido"}
		}, kind: provider.KindInvalid},
		"template with empty parameter": {mut: func(r *messaging.SendRequest) {
			r.Template = &messaging.Template{Name: "pedido", Language: "es", Params: []string{"a", ""}}
		}, kind: provider.KindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := len(f.Requests())
			tn := tc.tenant
			if tn.ID() == "" {
				tn = cloudTenant(f.URL(), nil)
			}
			r := messaging.SendRequest{Tenant: tn, IdempotencyKey: "k", Channel: messaging.ChannelWhatsApp, To: "+56987654321", Text: "hola"}
			tc.mut(&r)
			_, err := newProvider().Send(testCtx(t), r)
			if provider.KindOf(err) != tc.kind {
				t.Fatalf("err = %v (kind %s), want %s", err, provider.KindOf(err), tc.kind)
			}
			if tc.unsupported && !errors.Is(err, provider.ErrUnsupported) {
				t.Errorf("err = %v, want provider.ErrUnsupported in the chain", err)
			}
			if n := len(f.Requests()) - before; n != 0 {
				t.Errorf("%d requests reached the API, want 0", n)
			}
			noSecret(t, err.Error())
		})
	}
}

func TestSendDefaultsToWhatsApp(t *testing.T) {
	f := metafake.Start()
	defer f.Close()
	_, err := newProvider().Send(testCtx(t), messaging.SendRequest{Tenant: cloudTenant(f.URL(), map[string]string{fieldTransport: transportCloud}), To: "+56987654321", Text: "hola"})
	if err != nil || len(f.Sent()) != 1 {
		t.Fatalf("Send without channel: %v, %d sent", err, len(f.Sent()))
	}
}

func TestCloudDefaultHost(t *testing.T) {
	c, err := newCloudClient(provider.NewTenant("acme", map[string]string{fieldPhoneNumberID: "1"}, map[string]string{fieldAccessToken: "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.base != "https://graph.facebook.com" || c.version != "v21.0" {
		t.Errorf("base, version = %q, %q", c.base, c.version)
	}
}
