package main

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/pipecore/pipecore/plugins/whatsapp/twiliofake"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

func TestTwilioSend(t *testing.T) {
	const text = "Tu pedido fue confirmado ✅"
	tests := map[string]struct {
		over    map[string]string
		channel messaging.Channel
		tpl     *messaging.Template
		want    url.Values
	}{
		"whatsapp": {
			channel: messaging.ChannelWhatsApp,
			want:    url.Values{"To": {"whatsapp:+56987654321"}, "From": {"whatsapp:" + twilioSender}, "Body": {text}},
		},
		"sms": {
			channel: messaging.ChannelSMS,
			want:    url.Values{"To": {"+56987654321"}, "From": {twilioSender}, "Body": {text}},
		},
		"from written with the whatsapp prefix": {
			over:    map[string]string{fieldFrom: "whatsapp:" + twilioSender},
			channel: messaging.ChannelSMS,
			want:    url.Values{"To": {"+56987654321"}, "From": {twilioSender}, "Body": {text}},
		},
		"messaging service without from": {
			over:    map[string]string{fieldFrom: "", fieldMessagingServiceSID: "MG9752274e9e519418a7406176694466fa"},
			channel: messaging.ChannelWhatsApp,
			want:    url.Values{"To": {"whatsapp:+56987654321"}, "MessagingServiceSid": {"MG9752274e9e519418a7406176694466fa"}, "Body": {text}},
		},
		"status callback": {
			over:    map[string]string{fieldStatusCallback: "https://gw.example/webhooks/whatsapp/acme"},
			channel: messaging.ChannelSMS,
			want: url.Values{"To": {"+56987654321"}, "From": {twilioSender}, "Body": {text},
				"StatusCallback": {"https://gw.example/webhooks/whatsapp/acme"}},
		},
		"template sends the rendered text": {
			channel: messaging.ChannelWhatsApp,
			tpl:     &messaging.Template{Name: "pedido_confirmado", Language: "es", Params: []string{"#123"}},
			want:    url.Values{"To": {"whatsapp:+56987654321"}, "From": {"whatsapp:" + twilioSender}, "Body": {text}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := twiliofake.Start()
			defer f.Close()
			rc, err := newProvider().Send(testCtx(t), messaging.SendRequest{
				Tenant: twilioTenant(f.URL(), tc.over), IdempotencyKey: "k", MessageID: "msg_1",
				Channel: tc.channel, To: "+56987654321", Text: text, Template: tc.tpl,
			})
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if !strings.HasPrefix(rc.ID, "SM") || len(rc.ID) != 34 || rc.Status != messaging.StatusQueued {
				t.Errorf("receipt = %+v, want an SM sid, queued", rc)
			}
			sent := f.Sent()
			if len(sent) != 1 || !reflect.DeepEqual(sent[0], tc.want) {
				t.Errorf("form = %v\nwant %v", sent, tc.want)
			}
			r := f.Requests()[0]
			if r.Method != http.MethodPost || r.Path != "/2010-04-01/Accounts/"+twiliofake.AccountSID+"/Messages.json" {
				t.Errorf("request = %s %s", r.Method, r.Path)
			}
			wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(twiliofake.AccountSID+":"+twiliofake.AuthToken))
			if got := r.Header.Get("Authorization"); got != wantAuth {
				t.Errorf("Authorization = %q", got)
			}
			if !strings.Contains(string(r.Body), "Body=Tu+pedido+fue+confirmado+%E2%9C%85") {
				t.Errorf("body does not carry the UTF-8 text: %s", r.Body)
			}
		})
	}
}

func TestTwilioSendErrors(t *testing.T) {
	f := twiliofake.Start()
	defer f.Close()
	tests := map[string]struct {
		fail   int
		tenant provider.Tenant
		kind   provider.Kind
		code   string
	}{
		"wrong token":        {tenant: twilioTenant(f.URL(), map[string]string{fieldAuthToken: "wrong-twilio-token-123"}), kind: provider.KindUnauthorized, code: "20003"},
		"unknown account":    {tenant: twilioTenant(f.URL(), map[string]string{fieldAccountSID: "AC0000000000000000000000000000000f"}), kind: provider.KindUnauthorized, code: "20003"},
		"401":                {fail: 401, kind: provider.KindUnauthorized, code: "20003"},
		"400 invalid number": {fail: 400, kind: provider.KindInvalid, code: "21211"},
		"429":                {fail: 429, kind: provider.KindRateLimited, code: "20429"},
		"500":                {fail: 500, kind: provider.KindRetryable, code: "20500"},
		"503":                {fail: 503, kind: provider.KindRetryable, code: "20500"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tn := tc.tenant
			if tc.fail != 0 {
				tn = twilioTenant(f.URL(), nil)
				f.FailNext(tc.fail, 1)
			}
			_, err := newProvider().Send(testCtx(t), messaging.SendRequest{
				Tenant: tn, IdempotencyKey: "k-" + name, Channel: messaging.ChannelSMS, To: "+56987654321", Text: "hola",
			})
			if provider.KindOf(err) != tc.kind || provider.CodeOf(err) != tc.code {
				t.Fatalf("err = %v (kind %s, code %q), want kind %s code %q", err, provider.KindOf(err), provider.CodeOf(err), tc.kind, tc.code)
			}
			noSecret(t, err.Error())
		})
	}
}

// A 429 honours Retry-After.
func TestTwilioRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}`)
	}))
	defer srv.Close()
	_, err := newProvider().Send(testCtx(t), messaging.SendRequest{
		Tenant: twilioTenant(srv.URL, nil), Channel: messaging.ChannelWhatsApp, To: "+56987654321", Text: "hola",
	})
	if provider.KindOf(err) != provider.KindRateLimited || provider.RetryAfter(err).Seconds() != 3 {
		t.Fatalf("err = %v (kind %s, retry %s), want rate_limited after 3s", err, provider.KindOf(err), provider.RetryAfter(err))
	}
}

func TestTwilioValidation(t *testing.T) {
	f := twiliofake.Start()
	defer f.Close()
	tests := map[string]struct {
		over map[string]string
		mut  func(*messaging.SendRequest)
		kind provider.Kind
	}{
		"no auth token":            {over: map[string]string{fieldAuthToken: ""}, kind: provider.KindUnauthorized},
		"no account sid":           {over: map[string]string{fieldAccountSID: ""}, kind: provider.KindUnauthorized},
		"malformed account sid":    {over: map[string]string{fieldAccountSID: "AC123/../x"}, kind: provider.KindInvalid},
		"neither from nor service": {over: map[string]string{fieldFrom: ""}, kind: provider.KindInvalid},
		"from not E.164":           {over: map[string]string{fieldFrom: "14155238886"}, kind: provider.KindInvalid},
		"template without text": {mut: func(r *messaging.SendRequest) {
			r.Text, r.Template = "", &messaging.Template{Name: "pedido", Language: "es"}
		}, kind: provider.KindInvalid},
		"email": {mut: func(r *messaging.SendRequest) { r.Channel = messaging.ChannelEmail }, kind: provider.KindUnsupported},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := messaging.SendRequest{Tenant: twilioTenant(f.URL(), tc.over), Channel: messaging.ChannelWhatsApp, To: "+56987654321", Text: "hola"}
			if tc.mut != nil {
				tc.mut(&r)
			}
			_, err := newProvider().Send(testCtx(t), r)
			if provider.KindOf(err) != tc.kind {
				t.Fatalf("err = %v (kind %s), want %s", err, provider.KindOf(err), tc.kind)
			}
			if n := len(f.Requests()); n != 0 {
				t.Errorf("%d requests reached the API, want 0", n)
			}
		})
	}
}

func TestTwilioDefaultHost(t *testing.T) {
	c, err := newTwilioClient(twilioTenant("", nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.base != "https://api.twilio.com" {
		t.Errorf("base = %q", c.base)
	}
}
