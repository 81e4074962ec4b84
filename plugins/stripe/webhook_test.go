package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
	stripe "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

var update = flag.Bool("update", false, "rewrite testdata/webhooks/*.golden.json from the parser's output")

const webhookDir = "testdata/webhooks"

// webhookRequest is a verified webhook for tenant "acme", as the gateway
// hands it over.
func webhookRequest(body []byte) provider.WebhookRequest {
	return provider.WebhookRequest{
		Tenant:  provider.NewTenant("acme", nil, map[string]string{fieldSecretKey: testKey, fieldWebhookSecret: "whsec_test_acme"}),
		Headers: map[string][]string{"Content-Type": {"application/json; charset=utf-8"}, "User-Agent": {"Stripe/1.0 (+https://stripe.com/docs/webhooks)"}},
		Body:    body,
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(webhookDir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every recorded payload, keyed by its file name without ".json". want is
// the catalog type expected ("" for none); the golden file holds the rest.
var recordedWebhooks = map[string]struct {
	want      string
	malformed bool
}{
	"payment_intent.succeeded":                 {want: catalogConfirmed},
	"payment_intent.payment_failed":            {want: catalogFailed},
	"payment_intent.canceled":                  {want: catalogCancelled},
	"checkout.session.completed.paid":          {want: catalogConfirmed},
	"checkout.session.completed.unpaid":        {}, // async payment still settling
	"checkout.session.async_payment_succeeded": {want: catalogConfirmed},
	"checkout.session.async_payment_failed":    {want: catalogFailed},
	"checkout.session.expired":                 {want: catalogFailed},
	"charge.refunded.partial":                  {want: catalogRefunded},
	"charge.refunded.full":                     {want: catalogRefunded},
	"charge.refunded.legacy_api":               {want: catalogRefunded},
	"charge.dispute.created":                   {want: catalogDisputed},
	"customer.created":                         {}, // not a payment event
	"malformed":                                {malformed: true},

	"checkout.session.completed.subscription": {want: catalogSubAuthorized},
	"checkout.session.expired.subscription":   {want: catalogSubCancelled},
	"invoice.paid.subscription_cycle":         {want: catalogSubRenewed},
	"invoice.payment_failed":                  {want: catalogSubFailed},
	"customer.subscription.deleted":           {want: catalogSubCancelled},
}

func TestParseWebhookRecorded(t *testing.T) {
	for name, tt := range recordedWebhooks {
		t.Run(name, func(t *testing.T) {
			body := readFixture(t, name)
			evs, err := newProvider().ParseWebhook(context.Background(), webhookRequest(body))
			if tt.malformed {
				wantMalformed(t, evs, err)
				return
			}
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			var types []string
			for _, ev := range evs {
				types = append(types, ev.Type)
			}
			if want := []string{tt.want}; tt.want == "" && len(evs) != 0 || tt.want != "" && !reflect.DeepEqual(types, want) {
				t.Fatalf("event types = %q, want %q", types, tt.want)
			}

			// The fixture must be an event stripe-go itself can read, and
			// every event must honour the catalog whatever the golden says.
			var se stripe.Event
			if err := json.Unmarshal(body, &se); err != nil {
				t.Fatalf("fixture is not a stripe-go v76 Event: %v", err)
			}
			wantStripeObject(t, se)
			for _, ev := range evs {
				if ev.ID != se.ID {
					t.Errorf("ID = %q, want the Stripe event id %q", ev.ID, se.ID)
				}
				if want := time.Unix(se.Created, 0).UTC(); !ev.OccurredAt.Equal(want) || ev.OccurredAt.Location() != time.UTC {
					t.Errorf("OccurredAt = %v, want created %v in UTC", ev.OccurredAt, want)
				}
				checkSubject(t, se, ev)
				checkCatalog(t, ev)
			}
			checkGolden(t, name, evs)
		})
	}
}

// Every fixture has a case and every golden file a fixture, so neither can
// go stale unnoticed.
func TestRecordedWebhooksAreAllTested(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(webhookDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	fixtures := 0
	for _, f := range files {
		base := filepath.Base(f)
		if name, ok := strings.CutSuffix(base, ".golden.json"); ok {
			if tt, known := recordedWebhooks[name]; !known || tt.malformed {
				t.Errorf("%s has no matching test case", base)
			}
			continue
		}
		fixtures++
		if _, known := recordedWebhooks[strings.TrimSuffix(base, ".json")]; !known {
			t.Errorf("fixture %s has no test case in recordedWebhooks", base)
		}
	}
	if fixtures != len(recordedWebhooks) {
		t.Errorf("%d fixtures for %d test cases", fixtures, len(recordedWebhooks))
	}
}

// wantStripeObject checks that data.object decodes into the stripe-go type
// its kind names.
func wantStripeObject(t testing.TB, se stripe.Event) {
	t.Helper()
	if se.Data == nil {
		t.Fatal("fixture has no data")
	}
	targets := map[string]any{
		"payment_intent":   &stripe.PaymentIntent{},
		"checkout.session": &stripe.CheckoutSession{},
		"charge":           &stripe.Charge{},
		"dispute":          &stripe.Dispute{},
		"customer":         &stripe.Customer{},
		"invoice":          &stripe.Invoice{},
		"subscription":     &stripe.Subscription{},
	}
	kind, _ := se.Data.Object["object"].(string)
	v, ok := targets[kind]
	if !ok {
		t.Fatalf("fixture data.object is a %q; add its stripe-go type here", kind)
	}
	if err := json.Unmarshal(se.Data.Raw, v); err != nil {
		t.Fatalf("data.object does not decode as stripe-go's %s: %v", kind, err)
	}
}

// checkGolden compares evs, marshalled with stable indentation, to
// testdata/webhooks/<name>.golden.json, or rewrites that file with -update.
func checkGolden(t testing.TB, name string, evs []provider.Event) {
	t.Helper()
	if evs == nil {
		evs = []provider.Event{}
	}
	got, err := json.MarshalIndent(evs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join(webhookDir, name+".golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestParseWebhookRecorded -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("events differ from %s (run with -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// checkSubject asserts the event's Subject: data.object.id for payment
// events and Checkout Session events (the id CreatePayment and
// CreateSubscription return), the Stripe subscription otherwise.
func checkSubject(t testing.TB, se stripe.Event, ev provider.Event) {
	t.Helper()
	want, _ := se.Data.Object["id"].(string)
	if kind, _ := se.Data.Object["object"].(string); strings.HasPrefix(ev.Type, "subscription.") && kind != "checkout.session" {
		var data struct {
			ProviderSubscriptionID string `json:"provider_subscription_id"`
		}
		_ = json.Unmarshal(ev.Data, &data)
		want = data.ProviderSubscriptionID
		if !strings.HasPrefix(want, "sub_") {
			t.Errorf("provider_subscription_id = %q, want a sub_ id", want)
		}
	}
	if ev.Subject != want {
		t.Errorf("Subject = %q, want %q", ev.Subject, want)
	}
}

// The catalog's payment fields per type (EVENTS.md), plus the plugin's
// documented extra provider_payment_intent_id.
var catalogFields = func() map[string]map[string]bool {
	set := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	common := []string{"payment_id", "provider_payment_id", "provider_payment_intent_id", "status", "amount", "reference", "method", "customer"}
	return map[string]map[string]bool{
		catalogConfirmed: set(common...),
		catalogFailed:    set(append(common, "failure_code", "failure_message")...),
		catalogCancelled: set(append(common, "failure_code", "failure_message")...),
		catalogRefunded:  set(append(common, "refunded_amount", "refund_id", "partial")...),
		catalogDisputed:  set(append(common, "dispute_id", "reason")...),

		catalogSubAuthorized: set(subscriptionFields...),
		catalogSubRenewed:    set(subscriptionFields...),
		catalogSubFailed:     set(subscriptionFields...),
		catalogSubCancelled:  set(subscriptionFields...),
	}
}()

// The fields of subscription.* events (EVENTS.md) the plugin may know.
var subscriptionFields = []string{"subscription_id", "provider_subscription_id", "status", "amount", "provider_payment_id", "current_period_end", "reason"}

// The payment status words each type may carry.
var catalogStatuses = map[string][]string{
	catalogConfirmed: {"succeeded"},
	catalogFailed:    {"failed"},
	catalogCancelled: {"cancelled"},
	catalogRefunded:  {"succeeded", "refunded"},
	catalogDisputed:  {"succeeded", "refunded"},

	catalogSubAuthorized: {"active"},
	catalogSubRenewed:    {"active"},
	catalogSubFailed:     {"past_due"},
	catalogSubCancelled:  {"cancelled"},
}

var upperCurrency = regexp.MustCompile(`^[A-Z]{3}$`)

// checkCatalog asserts what EVENTS.md promises of a payment event: known
// type and fields, a status word, money objects, no empty strings.
func checkCatalog(t testing.TB, ev provider.Event) {
	t.Helper()
	fields, ok := catalogFields[ev.Type]
	if !ok {
		t.Fatalf("type %q is not a catalog payment or subscription type", ev.Type)
	}
	if ev.ID == "" || ev.Subject == "" || ev.OccurredAt.IsZero() {
		t.Errorf("event %+v lacks its id, subject or time", ev)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatalf("Data is not a JSON object: %v: %s", err, ev.Data)
	}
	for k := range data {
		if !fields[k] {
			t.Errorf("%s: field %q is not in the catalog", ev.Type, k)
		}
	}
	switch {
	case strings.HasPrefix(ev.Type, "subscription."):
		if id, _ := data["subscription_id"].(string); !strings.HasPrefix(id, "sub_") {
			t.Errorf("%s: subscription_id = %v, want the gateway's sub_ id from the metadata", ev.Type, data["subscription_id"])
		}
		if v, present := data["current_period_end"]; present {
			s, _ := v.(string)
			if _, err := time.Parse(time.RFC3339, s); err != nil || !strings.HasSuffix(s, "Z") {
				t.Errorf("%s: current_period_end = %v, want RFC 3339 in UTC", ev.Type, v)
			}
		}
		if ev.Type == catalogSubRenewed {
			if _, present := data["amount"]; !present {
				t.Errorf("%s: no amount", ev.Type)
			}
			if id, _ := data["provider_payment_id"].(string); id == "" {
				t.Errorf("%s: no provider_payment_id", ev.Type)
			}
		}
	default:
		if id, _ := data["provider_payment_id"].(string); id == "" {
			t.Errorf("%s: no provider_payment_id", ev.Type)
		}
	}
	status, _ := data["status"].(string)
	if !contains(catalogStatuses[ev.Type], status) {
		t.Errorf("%s: status %q, want one of %q", ev.Type, status, catalogStatuses[ev.Type])
	}
	if v, present := data["amount"]; present {
		m, _ := v.(map[string]any)
		amount, isNum := m["amount"].(float64)
		currency, _ := m["currency"].(string)
		if len(m) != 2 || !isNum || amount < 0 || amount != float64(int64(amount)) || !upperCurrency.MatchString(currency) {
			t.Errorf("%s: amount = %v, want {amount, currency} in minor units with an upper-case currency", ev.Type, v)
		}
	}
	if v, present := data["refunded_amount"]; present {
		// A number in the minor unit of amount's currency, as core's
		// normalizer reads it.
		n, isNum := v.(float64)
		if !isNum || n < 0 || n != float64(int64(n)) {
			t.Errorf("%s: refunded_amount = %v, want a non-negative integer", ev.Type, v)
		}
		if _, hasAmount := data["amount"]; !hasAmount {
			t.Errorf("%s: refunded_amount without amount has no currency", ev.Type)
		}
	}
	if v, present := data["partial"]; present {
		if _, isBool := v.(bool); !isBool {
			t.Errorf("%s: partial = %v, want a boolean", ev.Type, v)
		}
	}
	var noEmpty func(path string, v any)
	noEmpty = func(path string, v any) {
		switch v := v.(type) {
		case string:
			if v == "" {
				t.Errorf("%s: %s is an empty string; unknown fields must be omitted", ev.Type, path)
			}
		case map[string]any:
			for k, x := range v {
				noEmpty(path+"."+k, x)
			}
		case nil:
			t.Errorf("%s: %s is null; unknown fields must be omitted", ev.Type, path)
		}
	}
	noEmpty("data", data)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// wantMalformed asserts the quarantine contract: no events, a permanent
// error in errMalformedWebhook's family, a short message.
func wantMalformed(t testing.TB, evs []provider.Event, err error) {
	t.Helper()
	wantQuarantined(t, evs, err)
	if !errors.Is(err, errMalformedWebhook) {
		t.Errorf("errors.Is(%v, errMalformedWebhook) = false", err)
	}
}

// wantQuarantined is wantMalformed for an error that crossed the wire,
// where only the kind and the message survive.
func wantQuarantined(t testing.TB, evs []provider.Event, err error) {
	t.Helper()
	if evs != nil {
		t.Errorf("events = %+v, want none with an error", evs)
	}
	wantKind(t, err, provider.KindPermanent)
	msg := err.Error()
	if !strings.HasPrefix(msg, "stripe: malformed webhook: ") {
		t.Errorf("message = %q, want the \"stripe: malformed webhook: \" prefix", msg)
	}
	if len(msg) > 400 {
		t.Errorf("message is %d bytes; it must not echo the body: %q", len(msg), msg)
	}
	if strings.Contains(msg, "_secret_") {
		t.Errorf("message echoes a client secret: %q", msg)
	}
}

// intentEvent is a small payment_intent.succeeded body with object
// replacing data.object.
func intentEvent(object string) string {
	return `{"id":"evt_1","object":"event","type":"payment_intent.succeeded","created":1795788187,"data":{"object":` + object + `}}`
}

func TestParseWebhookMalformed(t *testing.T) {
	succeeded := string(readFixture(t, "payment_intent.succeeded"))
	replace := func(old, new string) string {
		t.Helper()
		if !strings.Contains(succeeded, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(succeeded, old, new, 1)
	}
	long := strings.Repeat("x", 5000)
	tests := map[string]struct {
		body string
		// message is a part the error must name.
		message string
	}{
		"empty body":               {body: "", message: "unexpected end of JSON input"},
		"not JSON":                 {body: "<html>502 Bad Gateway</html>", message: "invalid character"},
		"truncated":                {body: `{"id":"evt_1","type":"payment_intent.succeeded"`, message: "unexpected end"},
		"array":                    {body: `[]`, message: "cannot unmarshal array"},
		"null":                     {body: `null`, message: "no id or no type"},
		"string":                   {body: `"evt_1"`, message: "cannot unmarshal string"},
		"no id":                    {body: `{"object":"event","type":"customer.created","created":1}`, message: "no id or no type"},
		"no type":                  {body: `{"id":"evt_1","object":"event","created":1,"data":{"object":{}}}`, message: "no id or no type"},
		"id not a string":          {body: `{"id":42,"type":"customer.created"}`, message: "cannot unmarshal number"},
		"type not a string":        {body: `{"id":"evt_1","type":["charge.refunded"]}`, message: "cannot unmarshal array"},
		"no created":               {body: replace(`"created": 1795788187,`, ""), message: "no created time"},
		"created not a number":     {body: replace(`"created": 1795788187,`, `"created": "2026-11-27T14:03:07Z",`), message: "created: json: cannot unmarshal string"},
		"no data":                  {body: `{"id":"evt_1","type":"charge.refunded","created":1795788187}`, message: "no data.object"},
		"data not an object":       {body: `{"id":"evt_1","type":"charge.refunded","created":1795788187,"data":5}`, message: "data: json: cannot unmarshal number"},
		"null data.object":         {body: intentEvent(`null`), message: "no data.object"},
		"object of another kind":   {body: strings.Replace(intentEvent(`{"id":"ch_1","object":"charge"}`), "payment_intent.succeeded", "payment_intent.canceled", 1), message: `object is "charge", want payment_intent`},
		"object without kind":      {body: intentEvent(`{"id":"pi_1","amount":100}`), message: `object is "", want payment_intent`},
		"object without id":        {body: intentEvent(`{"object":"payment_intent","amount":100}`), message: "payment_intent has no id"},
		"object not an object":     {body: intentEvent(`"pi_1"`), message: "cannot unmarshal string"},
		"amount not a number":      {body: replace(`"amount": 12990,`, `"amount": "12990",`), message: "data.object: json: cannot unmarshal string"},
		"metadata not a map":       {body: replace(`"table": "7"`, `"table": 7`), message: "cannot unmarshal number"},
		"latest_charge a number":   {body: replace(`"latest_charge": "ch_3QxR2mLkdIwHu7ix1m2Yb9Qe"`, `"latest_charge": 7`), message: "cannot unmarshal number"},
		"session intent an array":  {body: strings.Replace(string(readFixture(t, "checkout.session.completed.paid")), `"payment_intent": "pi_3QxU4eLkdIwHu7ix1Bc6Dn8F"`, `"payment_intent": []`, 1), message: "cannot unmarshal array"},
		"charge of another kind":   {body: strings.Replace(string(readFixture(t, "charge.refunded.partial")), `"object": "charge"`, `"object": "refund"`, 1), message: `object is "refund", want charge`},
		"refunds not a list":       {body: strings.Replace(string(readFixture(t, "charge.refunded.legacy_api")), `"refunds": {`, `"refunds": "re_1", "x": {`, 1), message: "cannot unmarshal string"},
		"dispute reason a number":  {body: strings.Replace(string(readFixture(t, "charge.dispute.created")), `"reason": "fraudulent"`, `"reason": 4`, 1), message: "cannot unmarshal number"},
		"invoice of another kind":  {body: strings.Replace(string(readFixture(t, "invoice.paid.subscription_cycle")), `"object": "invoice"`, `"object": "charge"`, 1), message: `object is "charge", want invoice`},
		"invoice period a string":  {body: strings.Replace(string(readFixture(t, "invoice.paid.subscription_cycle")), `"end": 1801058590`, `"end": "soon"`, 1), message: "cannot unmarshal string"},
		"subscription metadata":    {body: strings.Replace(string(readFixture(t, "customer.subscription.deleted")), `"reference": "plan-gold-42"`, `"reference": 42`, 1), message: "cannot unmarshal number"},
		"session subscription num": {body: strings.Replace(string(readFixture(t, "checkout.session.completed.subscription")), `"subscription": "sub_1QyD2fLkdIwHu7ixQw3Er5Ty"`, `"subscription": 5`, 1), message: "cannot unmarshal number"},
		"long id is clipped":       {body: `{"id":"` + long + `","type":"charge.refunded","created":1795788187}`, message: "no data.object"},
		"long object kind clipped": {body: intentEvent(`{"id":"pi_1","object":"` + long + `"}`), message: "want payment_intent"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			evs, err := newProvider().ParseWebhook(context.Background(), webhookRequest([]byte(tt.body)))
			wantMalformed(t, evs, err)
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("message = %q, want it to contain %q", err.Error(), tt.message)
			}
			if strings.Contains(err.Error(), long[:maxClip+1]) {
				t.Errorf("message quotes more than %d bytes of a value", maxClip)
			}
		})
	}
}

func TestParseWebhookIgnored(t *testing.T) {
	withType := func(name, typ string) string {
		return strings.Replace(string(readFixture(t, name)), `"type": "`+typeOf(t, name)+`"`, `"type": "`+typ+`"`, 1)
	}
	session := string(readFixture(t, "checkout.session.completed.paid"))
	tests := map[string]string{
		"payment_intent.created":                   withType("payment_intent.canceled", "payment_intent.created"),
		"payment_intent.amount_capturable_updated": withType("payment_intent.succeeded", "payment_intent.amount_capturable_updated"),
		"payment_intent.processing":                withType("payment_intent.succeeded", "payment_intent.processing"),
		"charge.succeeded":                         withType("charge.refunded.partial", "charge.succeeded"),
		"refund.created":                           `{"id":"evt_1","object":"event","type":"refund.created","created":1795788187,"data":{"object":{"id":"re_1","object":"refund","amount":100}}}`,
		"setup-mode session":                       strings.Replace(session, `"mode": "payment"`, `"mode": "setup"`, 1),
		"setup-mode session expired":               strings.Replace(string(readFixture(t, "checkout.session.expired")), `"mode": "payment"`, `"mode": "setup"`, 1),
		"subscription session completed unpaid":    strings.Replace(string(readFixture(t, "checkout.session.completed.subscription")), `"payment_status": "paid"`, `"payment_status": "unpaid"`, 1),
		"first invoice paid":                       strings.Replace(string(readFixture(t, "invoice.paid.subscription_cycle")), `"billing_reason": "subscription_cycle"`, `"billing_reason": "subscription_create"`, 1),
		"update invoice paid":                      strings.Replace(string(readFixture(t, "invoice.paid.subscription_cycle")), `"billing_reason": "subscription_cycle"`, `"billing_reason": "subscription_update"`, 1),
		"first invoice failed":                     strings.Replace(string(readFixture(t, "invoice.payment_failed")), `"billing_reason": "subscription_cycle"`, `"billing_reason": "subscription_create"`, 1),
		"one-off invoice paid":                     `{"id":"evt_1","object":"event","type":"invoice.paid","created":1795788187,"data":{"object":{"id":"in_1","object":"invoice","billing_reason":"manual","subscription":null,"amount_paid":100,"currency":"usd"}}}`,
		"customer.subscription.updated":            withType("customer.subscription.deleted", "customer.subscription.updated"),
		"invoice.created":                          withType("invoice.paid.subscription_cycle", "invoice.created"),
		"unknown type, odd data":                   `{"id":"evt_1","type":"treasury.flow.created","created":1,"data":[1,2,3]}`,
		"v2 thin event":                            `{"id":"evt_test_65R9Ijk8","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered","created":"2026-11-27T14:03:07.000Z","related_object":{"id":"mtr_1","type":"billing.meter","url":"/v1/billing/meters/mtr_1"}}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			ctx := provider.WithLogger(context.Background(), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			evs, err := newProvider().ParseWebhook(ctx, webhookRequest([]byte(body)))
			if err != nil || evs != nil {
				t.Fatalf("ParseWebhook = %+v, %v; want no events and no error", evs, err)
			}
			if !strings.Contains(logs.String(), "stripe webhook") {
				t.Errorf("nothing logged for an ignored webhook: %q", logs.String())
			}
		})
	}
}

func typeOf(t testing.TB, name string) string {
	t.Helper()
	var ev struct{ Type string }
	if err := json.Unmarshal(readFixture(t, name), &ev); err != nil || ev.Type == "" {
		t.Fatalf("fixture %s has no type: %v", name, err)
	}
	return ev.Type
}

// A Connect endpoint delivers every connected account's events; a tenant
// acting for one account must see only that account's.
func TestParseWebhookConnectAccount(t *testing.T) {
	body := func(account string) []byte {
		b := string(readFixture(t, "payment_intent.succeeded"))
		if account != "" {
			b = strings.Replace(b, `"object": "event",`, `"object": "event", "account": "`+account+`",`, 1)
		}
		return []byte(b)
	}
	tests := map[string]struct {
		setting, account string
		emitted          bool
	}{
		"tenant's account":          {setting: "acct_1Tenant", account: "acct_1Tenant", emitted: true},
		"another account":           {setting: "acct_1Tenant", account: "acct_1Other"},
		"setting with spaces":       {setting: " acct_1Tenant ", account: "acct_1Other"},
		"endpoint on the account":   {setting: "acct_1Tenant", emitted: true},
		"no account setting":        {account: "acct_1Other", emitted: true},
		"neither account nor event": {emitted: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			req := webhookRequest(body(tt.account))
			req.Tenant = provider.NewTenant("acme", map[string]string{fieldAccount: tt.setting}, nil)
			evs, err := newProvider().ParseWebhook(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(evs) == 1; got != tt.emitted {
				t.Errorf("emitted = %v (%d events), want %v", got, len(evs), tt.emitted)
			}
		})
	}
}

// The body the plugin parses is byte for byte what Stripe signs; the plugin
// reads it the same whatever Stripe-Signature says, because core verified
// it already.
func TestParseWebhookSignedPayload(t *testing.T) {
	const secret = "whsec_test_pipecore_acme"
	body := readFixture(t, "payment_intent.succeeded")
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret})
	if err := webhook.ValidatePayload(signed.Payload, signed.Header, secret); err != nil {
		t.Fatalf("stripe-go rejects its own signature over the fixture: %v", err)
	}
	want, err := newProvider().ParseWebhook(context.Background(), webhookRequest(body))
	if err != nil || len(want) != 1 {
		t.Fatalf("ParseWebhook(fixture) = %v, %v", want, err)
	}
	for name, header := range map[string]string{
		"stripe's signature": signed.Header,
		"forged signature":   "t=1,v1=" + strings.Repeat("0", 64),
		"no signature":       "",
	} {
		t.Run(name, func(t *testing.T) {
			req := webhookRequest(signed.Payload)
			if header != "" {
				req.Headers["Stripe-Signature"] = []string{header}
			}
			got, err := newProvider().ParseWebhook(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("events = %+v, want %+v", got, want)
			}
		})
	}
}

// Over the real gRPC path the events arrive intact and a malformed webhook
// stays permanent, so core quarantines it.
func TestParseWebhookOverGRPC(t *testing.T) {
	conn := providertest.Connect(t, newProvider())
	if conn.Webhooks == nil {
		t.Fatal("the host sees no webhook parser")
	}
	for name := range recordedWebhooks {
		t.Run(name, func(t *testing.T) {
			req := webhookRequest(readFixture(t, name))
			direct, derr := newProvider().ParseWebhook(context.Background(), req)
			got, err := conn.Webhooks.ParseWebhook(context.Background(), req)
			if derr != nil {
				wantQuarantined(t, got, err)
				if err.Error() != derr.Error() {
					t.Errorf("message over gRPC = %q, directly %q", err.Error(), derr.Error())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(direct) {
				t.Fatalf("got %d events over gRPC, %d directly", len(got), len(direct))
			}
			for i := range got {
				g, d := got[i], direct[i]
				if g.ID != d.ID || g.Type != d.Type || g.Subject != d.Subject || !g.OccurredAt.Equal(d.OccurredAt) || !bytes.Equal(g.Data, d.Data) {
					t.Errorf("event %d over gRPC = %+v, directly %+v", i, g, d)
				}
			}
		})
	}
}

func TestNewestRefund(t *testing.T) {
	tests := map[string]struct {
		refunds string
		want    string
	}{
		"newest first":        {refunds: `[{"id":"re_new","created":20},{"id":"re_old","created":10}]`, want: "re_new"},
		"newest last":         {refunds: `[{"id":"re_old","created":10},{"id":"re_new","created":20}]`, want: "re_new"},
		"same time":           {refunds: `[{"id":"re_a","created":10},{"id":"re_b","created":10}]`, want: "re_a"},
		"empty list":          {refunds: `[]`},
		"refund without id":   {refunds: `[{"created":30},{"id":"re_1","created":10}]`, want: "re_1"},
		"refund without time": {refunds: `[{"id":"re_1"}]`, want: "re_1"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			raw := `{"id":"ch_1","object":"charge","amount":100,"amount_refunded":10,"currency":"usd","refunds":{"object":"list","data":` + tt.refunds + `}}`
			m, err := mapRefund(eventChargeRefunded, json.RawMessage(raw))
			if err != nil {
				t.Fatal(err)
			}
			if m.data.RefundID != tt.want {
				t.Errorf("refund_id = %q, want %q", m.data.RefundID, tt.want)
			}
		})
	}
}

func TestRefundWithoutPaymentIntent(t *testing.T) {
	// A charge made with the Charges API has no PaymentIntent: the charge
	// identifies the payment.
	raw := `{"id":"ch_legacy","object":"charge","amount":100,"amount_refunded":100,"refunded":true,"currency":"usd","payment_intent":null}`
	m, err := mapRefund(eventChargeRefunded, json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.data.ProviderPaymentID != "ch_legacy" || m.data.Status != "refunded" || *m.data.Partial {
		t.Errorf("data = %+v, want the charge id, refunded, not partial", m.data)
	}
}

func TestExpandedReferences(t *testing.T) {
	// Webhooks send ids; an expanded object (a re-fetched event, a proxy
	// that expands) must read the same, and its charge's method wins.
	raw := intentEvent(`{"id":"pi_1","object":"payment_intent","amount":100,"currency":"usd","payment_method_types":["card","link"],` +
		`"latest_charge":{"id":"ch_1","object":"charge","payment_method_details":{"type":"link"}}}`)
	evs, err := newProvider().ParseWebhook(context.Background(), webhookRequest([]byte(raw)))
	if err != nil || len(evs) != 1 {
		t.Fatalf("ParseWebhook = %v, %v", evs, err)
	}
	var data paymentData
	if err := json.Unmarshal(evs[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.Method != "link" {
		t.Errorf("method = %q, want the expanded charge's link", data.Method)
	}

	session := `{"id":"cs_1","object":"checkout.session","mode":"payment","payment_status":"paid","amount_total":100,"currency":"usd",` +
		`"payment_intent":{"id":"pi_9","object":"payment_intent"}}`
	m, err := mapSession(eventSessionCompleted, json.RawMessage(session))
	if err != nil {
		t.Fatal(err)
	}
	if m.data.ProviderPaymentIntentID != "pi_9" || m.data.ProviderPaymentID != "cs_1" {
		t.Errorf("data = %+v, want cs_1 with its pi_9", m.data)
	}
}

func BenchmarkParseWebhook(b *testing.B) {
	for _, name := range []string{"payment_intent.succeeded", "customer.created"} {
		b.Run(name, func(b *testing.B) {
			req := webhookRequest(readFixture(b, name))
			p := newProvider()
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(req.Body)))
			for b.Loop() {
				if _, err := p.ParseWebhook(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestSessionCompletedPaymentStatus(t *testing.T) {
	tests := map[string]struct {
		status string
		want   string // catalog type; "" for no event
	}{
		"paid":                {status: "paid", want: catalogConfirmed},
		"no payment required": {status: "no_payment_required", want: catalogConfirmed},
		"unpaid":              {status: "unpaid"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			raw := `{"id":"cs_1","object":"checkout.session","mode":"payment","amount_total":0,"currency":"usd","payment_status":"` + tt.status + `"}`
			m, err := mapSession(eventSessionCompleted, json.RawMessage(raw))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == "" && m != nil:
				t.Errorf("mapped to %s, want no event", m.typ)
			case tt.want != "" && (m == nil || m.typ != tt.want):
				t.Errorf("mapped to %+v, want %s", m, tt.want)
			}
		})
	}
}
