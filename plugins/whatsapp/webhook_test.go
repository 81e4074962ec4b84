package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// payload reads a recorded webhook body.
func payload(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimRight(b, "\n")
}

func parse(t testing.TB, tn provider.Tenant, body []byte) ([]provider.Event, error) {
	t.Helper()
	return newProvider().ParseWebhook(testCtx(t), provider.WebhookRequest{Tenant: tn, Body: body})
}

// event is an Event with its Data decoded, for comparisons.
type event struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	Subject    string         `json:"subject"`
	OccurredAt time.Time      `json:"occurred_at"`
	Data       map[string]any `json:"data"`
}

func decode(t testing.TB, evs []provider.Event) []event {
	t.Helper()
	out := make([]event, len(evs))
	for i, e := range evs {
		out[i] = event{ID: e.ID, Type: e.Type, Subject: e.Subject, OccurredAt: e.OccurredAt}
		if err := json.Unmarshal(e.Data, &out[i].Data); err != nil {
			t.Fatalf("event %d: Data %q: %v", i, e.Data, err)
		}
	}
	return out
}

const (
	wamidOut   = "wamid.HBgLNTY5ODc2NTQzMjEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
	wamidText  = "wamid.HBgLNTY5ODc2NTQzMjEVAgASGBQzQTdGRjQ1QkQ5RjM2QjUwRjEwNQA="
	wamidImage = "wamid.HBgLNTY5ODc2NTQzMjEVAgASGBQzQUI2RTZGMjc1QzY0RDkxQjUxNwA="
	twWASID    = "SM5b6f1e1b2f0c4a3f9d8e7c6b5a4f3e2d"
	twSMSSID   = "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9"
)

// webhookCases are the recorded payloads: the events they must yield and
// the data fields that matter (a subset; the golden files hold the rest).
var webhookCases = []struct {
	file      string
	transport string
	types     []string
	ids       []string
	subject   string
	at        int64 // Unix seconds of the first event; 0 = zero time
	data      map[string]any
}{
	{file: "meta/text_message.json", transport: transportCloud, types: []string{eventReceived}, ids: []string{wamidText + ":received"},
		subject: wamidText, at: 1795700587, data: map[string]any{
			"provider_message_id": wamidText, "channel": "whatsapp", "status": "received",
			"from": "+56987654321", "to": "+56911110000", "text": "Hola, ¿dónde está mi pedido? ✅"}},
	{file: "meta/image_message.json", transport: transportCloud, types: []string{eventReceived}, ids: []string{wamidImage + ":received"},
		subject: wamidImage, at: 1795700642, data: map[string]any{
			"from": "+56987654321", "to": "+56911110000", "text": "La caja llegó dañada 😞", "reply_to": wamidOut,
			"media": map[string]any{"type": "image", "id": "1148370290474135", "mime_type": "image/jpeg"}}},
	{file: "meta/status_sent.json", transport: transportCloud, types: []string{eventSent}, ids: []string{wamidOut + ":sent"},
		subject: wamidOut, at: 1795700400, data: map[string]any{
			"provider_message_id": wamidOut, "channel": "whatsapp", "status": "sent", "to": "+56987654321"}},
	{file: "meta/status_delivered.json", transport: transportCloud, types: []string{eventDelivered}, ids: []string{wamidOut + ":delivered"},
		subject: wamidOut, at: 1795700402, data: map[string]any{"status": "delivered", "to": "+56987654321"}},
	{file: "meta/status_read.json", transport: transportCloud, types: []string{eventRead}, ids: []string{wamidOut + ":read"},
		subject: wamidOut, at: 1795700460, data: map[string]any{"status": "read"}},
	{file: "meta/status_failed.json", transport: transportCloud, types: []string{eventFailed}, ids: []string{wamidOut + ":failed"},
		subject: wamidOut, at: 1795700401, data: map[string]any{"status": "failed", "error": map[string]any{
			"code":    "131047",
			"message": "Re-engagement message: Message failed to send because more than 24 hours have passed since the customer last replied to this number."}}},
	// Two statuses of one message, one status without a catalog event,
	// and a change for another phone number id (ignored).
	{file: "meta/batch.json", transport: transportCloud, types: []string{eventDelivered, eventRead},
		ids: []string{
			"wamid.HBgLNTY5MTExMTIyMjIVAgARGBJBMUIyQzNENEU1RjZBN0I4QzkA:delivered",
			"wamid.HBgLNTY5MTExMTIyMjIVAgARGBJBMUIyQzNENEU1RjZBN0I4QzkA:read",
		}, subject: "wamid.HBgLNTY5MTExMTIyMjIVAgARGBJBMUIyQzNENEU1RjZBN0I4QzkA", at: 1795700500,
		data: map[string]any{"to": "+56911112222"}},
	{file: "meta/template_status_update.json", transport: transportCloud},

	{file: "twilio/status_whatsapp_sent.form", transport: transportTwilio, types: []string{eventSent}, ids: []string{twWASID + ":sent"},
		subject: twWASID, data: map[string]any{"provider_message_id": twWASID, "channel": "whatsapp", "status": "sent", "to": "+56987654321"}},
	{file: "twilio/status_whatsapp_delivered.form", transport: transportTwilio, types: []string{eventDelivered}, ids: []string{twWASID + ":delivered"},
		subject: twWASID, data: map[string]any{"channel": "whatsapp", "status": "delivered"}},
	{file: "twilio/status_whatsapp_read.form", transport: transportTwilio, types: []string{eventRead}, ids: []string{twWASID + ":read"},
		subject: twWASID, data: map[string]any{"channel": "whatsapp", "status": "read"}},
	{file: "twilio/status_whatsapp_failed.form", transport: transportTwilio, types: []string{eventFailed}, ids: []string{twWASID + ":failed"},
		subject: twWASID, data: map[string]any{"status": "failed", "error": map[string]any{"code": "63016"}}},
	{file: "twilio/status_sms_sent.form", transport: transportTwilio, types: []string{eventSent}, ids: []string{twSMSSID + ":sent"},
		subject: twSMSSID, data: map[string]any{"channel": "sms", "status": "sent", "to": "+56987654321"}},
	{file: "twilio/status_sms_undelivered.form", transport: transportTwilio, types: []string{eventFailed}, ids: []string{twSMSSID + ":undelivered"},
		subject: twSMSSID, data: map[string]any{"channel": "sms", "status": "failed", "error": map[string]any{"code": "30003"}}},
	{file: "twilio/status_sms_sending.form", transport: transportTwilio},
	{file: "twilio/inbound_whatsapp.form", transport: transportTwilio, types: []string{eventReceived},
		ids: []string{"SM7c2d0b9f3e4a45b6a7c8d9e0f1a2b3c4:received"}, subject: "SM7c2d0b9f3e4a45b6a7c8d9e0f1a2b3c4",
		data: map[string]any{"channel": "whatsapp", "status": "received", "from": "+56987654321", "to": "+14155238886",
			"text": "Hola, ¿dónde está mi pedido? ✅"}},
	{file: "twilio/inbound_whatsapp_image.form", transport: transportTwilio, types: []string{eventReceived},
		ids: []string{"MM3f2e1d0c9b8a47f6e5d4c3b2a1f0e9d8:received"}, subject: "MM3f2e1d0c9b8a47f6e5d4c3b2a1f0e9d8",
		data: map[string]any{"channel": "whatsapp", "from": "+56987654321", "reply_to": twWASID,
			"media": map[string]any{"type": "image", "mime_type": "image/jpeg",
				"url": "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000001/Messages/MM3f2e1d0c9b8a47f6e5d4c3b2a1f0e9d8/Media/ME6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d"}}},
	{file: "twilio/inbound_sms.form", transport: transportTwilio, types: []string{eventReceived},
		ids: []string{"SM9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b:received"}, subject: "SM9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b",
		data: map[string]any{"channel": "sms", "status": "received", "from": "+56987654321", "to": "+56911110000", "text": "STOP"}},
}

func webhookTenant(transport string) provider.Tenant {
	if transport == transportTwilio {
		return twilioTenant("", nil)
	}
	return cloudTenant("", nil)
}

func TestParseWebhookRecorded(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range webhookCases {
		seen[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			evs, err := parse(t, webhookTenant(tc.transport), payload(t, tc.file))
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			got := decode(t, evs)
			var types, ids []string
			for _, e := range got {
				types, ids = append(types, e.Type), append(ids, e.ID)
				if e.Subject == "" || e.Data["provider_message_id"] != e.Subject {
					t.Errorf("event %s: subject %q, provider_message_id %v", e.ID, e.Subject, e.Data["provider_message_id"])
				}
			}
			if !slices.Equal(types, tc.types) || !slices.Equal(ids, tc.ids) {
				t.Fatalf("events = %v %v, want %v %v", types, ids, tc.types, tc.ids)
			}
			if len(got) == 0 {
				return
			}
			first := got[0]
			if first.Subject != tc.subject {
				t.Errorf("subject = %q, want %q", first.Subject, tc.subject)
			}
			switch {
			case tc.at == 0 && !first.OccurredAt.IsZero():
				t.Errorf("occurred_at = %s, want zero", first.OccurredAt)
			case tc.at != 0 && first.OccurredAt.Unix() != tc.at:
				t.Errorf("occurred_at = %s, want Unix %d", first.OccurredAt, tc.at)
			}
			for k, want := range tc.data {
				if g, _ := json.Marshal(first.Data[k]); string(g) != string(mustJSON(t, want)) {
					t.Errorf("data.%s = %s, want %s", k, g, mustJSON(t, want))
				}
			}
			for k, v := range first.Data {
				if v == "" || v == nil {
					t.Errorf("data.%s is empty; unknown fields must be omitted", k)
				}
			}
		})
	}
	for _, dir := range []string{"meta", "twilio"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*"))
		for _, f := range files {
			if name := dir + "/" + filepath.Base(f); !seen[name] {
				t.Errorf("recorded payload %s has no case", name)
			}
		}
	}
}

// The golden files hold every event of every recorded payload in full; run
// with -update after a deliberate change and review the diff.
func TestParseWebhookGolden(t *testing.T) {
	for _, tc := range webhookCases {
		t.Run(tc.file, func(t *testing.T) {
			evs, err := parse(t, webhookTenant(tc.transport), payload(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(decode(t, evs), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "golden", strings.NewReplacer("/", "_", ".json", "", ".form", "").Replace(tc.file)+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("events differ from %s:\n got %s\nwant %s", golden, got, want)
			}
		})
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseWebhookMalformed(t *testing.T) {
	tests := map[string]struct {
		transport string
		body      string
	}{
		"cloud: not JSON":             {transportCloud, `object=whatsapp_business_account`},
		"cloud: empty body":           {transportCloud, ``},
		"cloud: entry not a list":     {transportCloud, `{"object":"whatsapp_business_account","entry":{}}`},
		"cloud: status without id":    {transportCloud, `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"statuses":[{"status":"read"}]}}]}]}`},
		"cloud: message without id":   {transportCloud, `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"from":"1","type":"text","text":{"body":"x"}}]}}]}]}`},
		"twilio: bad form encoding":   {transportTwilio, `MessageSid=SM1&Body=%zz`},
		"twilio: no MessageSid":       {transportTwilio, `MessageStatus=delivered&To=%2B56987654321`},
		"twilio: JSON body":           {transportTwilio, `{"MessageSid":"SM1","MessageStatus":"delivered"}`},
		"twilio: empty body":          {transportTwilio, ``},
		"cloud payload on twilio":     {transportTwilio, string(payload(t, "meta/status_read.json"))},
		"twilio payload on the cloud": {transportCloud, string(payload(t, "twilio/status_whatsapp_read.form"))},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			evs, err := parse(t, webhookTenant(tc.transport), []byte(tc.body))
			if provider.KindOf(err) != provider.KindInvalid || !errors.Is(err, errMalformedWebhook) || evs != nil {
				t.Fatalf("ParseWebhook = %v, %v (kind %s), want kind invalid", evs, err, provider.KindOf(err))
			}
		})
	}
}

func TestParseWebhookIgnored(t *testing.T) {
	tests := map[string]struct {
		transport string
		body      string
	}{
		"cloud: another object":        {transportCloud, `{"object":"page","entry":[{"id":"1","changes":[]}]}`},
		"cloud: no entries":            {transportCloud, `{"object":"whatsapp_business_account","entry":[]}`},
		"twilio: queued":               {transportTwilio, `MessageSid=SM1&MessageStatus=queued&To=%2B56987654321`},
		"twilio: accepted":             {transportTwilio, `MessageSid=SM1&MessageStatus=accepted&To=%2B56987654321`},
		"twilio: unknown status":       {transportTwilio, `MessageSid=SM1&MessageStatus=teleported`},
		"twilio: partially_delivered":  {transportTwilio, `MessageSid=SM1&MessageStatus=partially_delivered`},
		"twilio: status without value": {transportTwilio, `MessageSid=SM1`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			evs, err := parse(t, webhookTenant(tc.transport), []byte(tc.body))
			if err != nil || len(evs) != 0 {
				t.Fatalf("ParseWebhook = %v, %v; want no events and no error", evs, err)
			}
		})
	}
}

func TestParseWebhookUnknownTransport(t *testing.T) {
	_, err := parse(t, cloudTenant("", map[string]string{fieldTransport: "sms"}), payload(t, "meta/status_read.json"))
	if provider.KindOf(err) != provider.KindInvalid {
		t.Fatalf("err = %v (kind %s), want invalid", err, provider.KindOf(err))
	}
}

// Twilio's canceled status and statuses written only as SmsStatus.
func TestParseTwilioEdgeCases(t *testing.T) {
	evs, err := parse(t, twilioTenant("", nil), []byte(`SmsSid=SM1&SmsStatus=canceled&To=%2B56987654321&From=%2B14155238886`))
	if err != nil || len(evs) != 1 {
		t.Fatalf("canceled: %v, %v", evs, err)
	}
	got := decode(t, evs)[0]
	if got.Type != eventFailed || got.ID != "SM1:canceled" || got.Data["channel"] != "sms" {
		t.Errorf("canceled = %+v", got)
	}
	if e, _ := got.Data["error"].(map[string]any); e == nil || e["message"] == "" || e["code"] != nil {
		t.Errorf("canceled error = %v, want a message and no code", got.Data["error"])
	}
	// An inbound message without a status (older webhooks) is recognised by its Body.
	evs, err = parse(t, twilioTenant("", nil), []byte(`MessageSid=SM2&From=whatsapp%3A%2B56987654321&To=whatsapp%3A%2B14155238886&Body=hola`))
	if err != nil || len(evs) != 1 || evs[0].Type != eventReceived {
		t.Fatalf("inbound without status: %v, %v", evs, err)
	}
}

// Media types the Cloud API sends, and the reply context of a reaction.
func TestParseCloudMessageTypes(t *testing.T) {
	wrap := func(msg string) []byte {
		return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"+56 9 1111 0000","phone_number_id":"1065550001"},"messages":[` + msg + `]}}]}]}`)
	}
	tests := map[string]struct {
		msg  string
		want map[string]any
	}{
		"document": {`{"from":"56987654321","id":"wamid.D","timestamp":"1","type":"document","document":{"filename":"boleta.pdf","mime_type":"application/pdf","id":"77"}}`,
			map[string]any{"media": map[string]any{"type": "document", "id": "77", "mime_type": "application/pdf"}, "to": "+56911110000"}},
		"audio": {`{"from":"56987654321","id":"wamid.A","timestamp":"1","type":"audio","audio":{"mime_type":"audio/ogg; codecs=opus","id":"78","voice":true}}`,
			map[string]any{"media": map[string]any{"type": "audio", "id": "78", "mime_type": "audio/ogg; codecs=opus"}}},
		"button": {`{"from":"56987654321","id":"wamid.B","timestamp":"1","type":"button","context":{"from":"56911110000","id":"wamid.T"},"button":{"text":"Confirmar","payload":"yes"}}`,
			map[string]any{"text": "Confirmar", "reply_to": "wamid.T"}},
		"interactive list": {`{"from":"56987654321","id":"wamid.I","timestamp":"1","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"r1","title":"Retiro en tienda"}}}`,
			map[string]any{"text": "Retiro en tienda"}},
		"reaction": {`{"from":"56987654321","id":"wamid.R","timestamp":"1","type":"reaction","reaction":{"message_id":"wamid.X","emoji":"\ud83d\udc4d"}}`,
			map[string]any{"text": "👍", "reply_to": "wamid.X"}},
		"location": {`{"from":"56987654321","id":"wamid.L","timestamp":"1","type":"location","location":{"latitude":-33.4,"longitude":-70.6}}`,
			map[string]any{"text": nil, "media": nil, "from": "+56987654321"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			evs, err := parse(t, cloudTenant("", nil), wrap(tc.msg))
			if err != nil || len(evs) != 1 {
				t.Fatalf("ParseWebhook = %v, %v", evs, err)
			}
			got := decode(t, evs)[0]
			for k, want := range tc.want {
				if g, _ := json.Marshal(got.Data[k]); string(g) != string(mustJSON(t, want)) {
					t.Errorf("data.%s = %s, want %s", k, g, mustJSON(t, want))
				}
			}
		})
	}
}

func TestPlusDigits(t *testing.T) {
	for in, want := range map[string]string{
		"56987654321": "+56987654321", "+56 9 8765-4321": "+56987654321", "": "", "US.13491208655302741918": "US.13491208655302741918",
	} {
		if got := plusDigits(in); got != want {
			t.Errorf("plusDigits(%q) = %q, want %q", in, got, want)
		}
	}
}
