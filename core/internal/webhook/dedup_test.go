package webhook_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/pipecore/pipecore/core/internal/webhook"
)

// referenceDedupKey is DedupKey's json sources done the plain way: decode
// the whole body into an interface value and walk it. DedupKey must agree
// with it on every body, valid or not.
func referenceDedupKey(paths []string, body []byte) string {
	fallback := func() string {
		sum := sha256.Sum256(body)
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return fallback()
	}
	parts := make([]string, 0, len(paths))
	for _, path := range paths {
		cur := doc
		for _, seg := range strings.Split(path, ".") {
			switch node := cur.(type) {
			case map[string]any:
				cur = node[seg]
			case []any:
				i, err := strconv.Atoi(seg)
				if err != nil || i < 0 || i >= len(node) {
					cur = nil
				} else {
					cur = node[i]
				}
			default:
				cur = nil
			}
		}
		var v string
		switch x := cur.(type) {
		case string:
			v = x
		case float64:
			v = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			v = strconv.FormatBool(x)
		}
		if v == "" {
			return fallback()
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, "|")
}

var dedupBodies = []string{
	stripeEvent,
	`{"id":"evt_1"}`,
	` { "id" : "evt_1" , "type" : "x" } `,
	`{"id":"evt_1","id":"evt_2"}`,
	`{"data":{"id":"a"},"data":{"other":1}}`,
	`{"data":{"object":{"id":"pi_1","amount":1999}}}`,
	`{"entry":[{"id":"e1","changes":[{"value":{"statuses":[{"id":"wamid.1"}]}}]}],"n":7}`,
	`{"n":1e400}`,
	`{"id":"x","deep":[1,2,{"big":-1E+309}]}`,
	`{"id":"x","small":1e-400}`,
	`{"n":12345678901234567890123,"f":1.50,"z":-0,"e":2.5e3}`,
	`{"i\u0064":"escaped key","id2":"a\"b\\c\u00e9\ud83d\ude00"}`,
	"{\"id\":\"bad utf8 \xff\xfe\",\"\xff\":\"k\"}",
	`{"b":true,"f":false,"n":null,"o":{},"a":[]}`,
	`{"":"empty key","a":{"":{"":"deep"}}}`,
	`["zero",{"id":"one"}]`,
	`"just a string"`,
	`42`,
	`{"id":"evt_1"} trailing`,
	`{"id":"evt_1"`,
	`{"id":evt_1}`,
	`{"id":"tab	in string"}`,
	``,
	`{"a":[[[[{"b":[0,1,2,{"c":"found"}]}]]]]}`,
	`{"x":"}","y":"]","id":"br{ack[ets"}`,
	`{"id":"\/slash","k":"\b\f\n\r\t"}`,
	`{"id":-}`, `{"id":01}`, `{"id":1.}`, `{"id":.5}`, `{"id":1e}`, `{"id":1e+}`, `{"id":-0.0e-0}`, `{"id":"\u12"}`, `{"id":"\u12g4"}`,
	`{"id":"\x"}`, "{\"id\":\"ctl\x01\"}", `{"id":tru}`, `{"id":nul}`, `{"id":falsey}`, `{"id":"a",}`, `{"id":"a" "b":1}`, `{,}`, `[1,]`,
	`{"id" "a"}`, `{id:"a"}`, `{"id":"a"}}`, `{"id":["a"}`, `  `, "\t{\"id\":\"ws\"}\r\n", `{"id":"a"}{}`, `{"id":1E400}`, `{"id":-1e308}`,
	`{"id":"` + strings.Repeat("9", 400) + `"}`, `{"id":` + strings.Repeat("9", 400) + `}`, `{"id":"x","n":` + strings.Repeat("9", 310) + `}`,
	`{"id":"d","x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
	`{"id":"d","x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
}

var dedupPaths = [][]string{
	{"id"}, {"id2"}, {"type"}, {"data.id"}, {"data.other"}, {"data.object.id"}, {"data.object.amount"},
	{"entry.0.id"}, {"entry.0.changes.0.value.statuses.0.id"}, {"entry.1.id"}, {"entry.-1.id"}, {"entry.+0.id"}, {"entry.00.id"},
	{"n"}, {"f"}, {"z"}, {"e"}, {"b"}, {"o"}, {"a"}, {""}, {"a."}, {"a.."}, {"1.id"}, {"0"}, {"\ufffd"},
	{"a.0.0.0.0.b.3.c"}, {"x"}, {"y"}, {"k"}, {"small"}, {"deep.2.big"},
	{"id", "type"}, {"id", "n"}, {"entry.0.id", "n"}, {"id", "missing"},
}

func TestDedupKeyMatchesDecoding(t *testing.T) {
	for _, body := range dedupBodies {
		for _, paths := range dedupPaths {
			sources := make([]string, len(paths))
			for i, p := range paths {
				sources[i] = "json:" + p
			}
			got := webhook.DedupKey(sources, signatureRequest(body, nil, nil))
			if want := referenceDedupKey(paths, []byte(body)); got != want {
				t.Errorf("body %q, paths %q: DedupKey = %q, decoding says %q", body, paths, got, want)
			}
		}
	}
}

func FuzzDedupKey(f *testing.F) {
	for _, body := range dedupBodies {
		f.Add(body, "id")
		f.Add(body, "data.object.id")
		f.Add(body, "entry.0.id")
	}
	f.Fuzz(func(t *testing.T, body, path string) {
		got := webhook.DedupKey([]string{"json:" + path}, signatureRequest(body, nil, nil))
		if want := referenceDedupKey([]string{path}, []byte(body)); got != want {
			t.Fatalf("body %q, path %q: DedupKey = %q, decoding says %q", body, path, got, want)
		}
	})
}

// stripeEvent is a 1.5 KB Stripe payment_intent.succeeded event, as
// e2e/cmd/ingressbench sends.
const stripeEvent = `{"id":"evt_bench_000000000001","object":"event","api_version":"2023-10-16","created":1764230400,` +
	`"data":{"object":{"id":"pi_bench_000000000001","object":"payment_intent","amount":12990,"amount_capturable":0,` +
	`"amount_details":{"tip":{}},"amount_received":12990,"application":null,"application_fee_amount":null,` +
	`"automatic_payment_methods":{"allow_redirects":"always","enabled":true},"canceled_at":null,` +
	`"cancellation_reason":null,"capture_method":"automatic","client_secret":"pi_bench_000000000001_secret_Xq2Lm9RtVb4NcZ8wPd3Ks7Jf",` +
	`"confirmation_method":"automatic","created":1764230360,"currency":"clp","customer":"cus_QxBenchCustomer01",` +
	`"description":"Table 7: two coffees, one cake","invoice":null,"last_payment_error":null,` +
	`"latest_charge":"ch_bench_000000000001","livemode":false,"metadata":{"reference":"order-000000000001","table":"7"},` +
	`"next_action":null,"on_behalf_of":null,"payment_method":"pm_1QxR3bBenchMethod0001",` +
	`"payment_method_options":{"card":{"installments":null,"mandate_options":null,"network":null,"request_three_d_secure":"automatic"}},` +
	`"payment_method_types":["card"],"processing":null,"receipt_email":"ana@example.com","review":null,` +
	`"setup_future_usage":null,"shipping":null,"source":null,"statement_descriptor":null,"statement_descriptor_suffix":null,` +
	`"status":"succeeded","transfer_data":null,"transfer_group":null}},"livemode":false,"pending_webhooks":1,` +
	`"request":{"id":"req_Vd3kq9ZtR2mN8x","idempotency_key":"d3c1f0a2-6b8e-4f57-9c1a-2e7b5d9f4a61"},` +
	`"type":"payment_intent.succeeded"}`

func BenchmarkDedupKey(b *testing.B) {
	r := signatureRequest(stripeEvent, nil, nil)
	b.SetBytes(int64(len(stripeEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if k := webhook.DedupKey([]string{"json:id"}, r); k != "evt_bench_000000000001" {
			b.Fatal(k)
		}
	}
}
