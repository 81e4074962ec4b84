package audit

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode"
)

const sentinel = "sk_live_SENTINEL_51Hx9"

// panicky fails to encode in the worst way.
type panicky struct{}

func (panicky) MarshalJSON() ([]byte, error) { panic("boom") }

// failing fails to encode politely.
type failing struct{}

func (failing) MarshalJSON() ([]byte, error) { return nil, errors.New("no") }

type cardRequest struct {
	Amount int64             `json:"amount"`
	Card   map[string]string `json:"card"`
	Note   string            `json:"note"`
}

func TestRedact(t *testing.T) {
	tests := map[string]struct {
		in      any
		secrets []string
		want    string
	}{
		"plain values pass through": {
			in:   map[string]any{"amount": 1999, "currency": "EUR", "ok": true, "none": nil, "pi": 3.25},
			want: `{"amount":1999,"currency":"EUR","none":null,"ok":true,"pi":3.25}`,
		},
		"sensitive keys at any depth, in objects inside arrays": {
			in: map[string]any{
				"client_secret": "pi_1_secret_abc",
				"outer": map[string]any{
					"Password": "hunter2",
					"list":     []any{map[string]any{"api_key": "k1", "name": "ok"}, "plain"},
				},
			},
			want: `{"client_secret":"[redacted]","outer":{"Password":"[redacted]","list":[{"api_key":"[redacted]","name":"ok"},"plain"]}}`,
		},
		"a sensitive key hides a whole object": {
			in:   map[string]any{"credentials": map[string]any{"user": "u", "key": "k"}, "token": []any{1, 2}},
			want: `{"credentials":"[redacted]","token":"[redacted]"}`,
		},
		"header-style and camel-case key names": {
			in: map[string]any{
				"Authorization": "Bearer abc", "X-Api-Key": "k", "apiKey": "k", "CVC": "123",
				"card_cvv": "123", "cardNumber": "x", "cardPAN": "x", "pan": "x", "Set-Cookie": "sid=1",
			},
			want: `{"Authorization":"[redacted]","CVC":"[redacted]","Set-Cookie":"[redacted]","X-Api-Key":"[redacted]","apiKey":"[redacted]","cardNumber":"[redacted]","cardPAN":"[redacted]","card_cvv":"[redacted]","pan":"[redacted]"}`,
		},
		"words that merely contain pan are kept": {
			in:   map[string]any{"company": "ACME", "span": "x", "expand": []any{"a"}, "panel": "p"},
			want: `{"company":"ACME","expand":["a"],"panel":"p","span":"x"}`,
		},
		"a secret inside a longer string": {
			in:      map[string]any{"note": "calling with key " + sentinel + " now", "n": "x" + sentinel},
			secrets: []string{sentinel},
			want:    `{"n":"x[redacted]","note":"calling with key [redacted] now"}`,
		},
		"a secret in a key and in a number": {
			in:      map[string]any{"k_" + "s3cr3tv4lue": 1, "n": json.Number("99123456")},
			secrets: []string{"s3cr3tv4lue", "123456"},
			want:    `{"k_[redacted]":1,"n":"99[redacted]"}`,
		},
		"overlapping secrets become one marker": {
			in:      "xxabcdefyy",
			secrets: []string{"abcd", "cdef", "", "abcd"},
			want:    `"xx[redacted]yy"`,
		},
		"a Luhn-valid PAN with spaces is masked": {
			in:   map[string]any{"note": "card 4242 4242 4242 4242 exp 12/34"},
			want: `{"note":"card ************4242 exp 12/34"}`,
		},
		"PANs with dashes, bare, and 15-digit Amex": {
			in:   []any{"5555-5555-5555-4444", "4000056655665556", "Amex 378282246310005."},
			want: `["************4444","************5556","Amex ***********0005."]`,
		},
		"a PAN followed by its CVC": {
			in:   "4242 4242 4242 4242 123",
			want: `"************4242 123"`,
		},
		"a non-Luhn 16-digit order number is untouched": {
			in:   map[string]any{"reference": "order 4242424242424241", "id": "1234567812345678"},
			want: `{"id":"1234567812345678","reference":"order 4242424242424241"}`,
		},
		"a 20-digit run is no card number": {
			in:   "42424242424242424242",
			want: `"42424242424242424242"`,
		},
		"card numbers as JSON numbers; timestamps stay numbers": {
			in:   map[string]any{"value": json.Number("4242424242424242"), "ts_ms": json.Number("1764237600000"), "big": json.Number("12345678901234567890")},
			want: `{"big":12345678901234567890,"value":"************4242","ts_ms":1764237600000}`,
		},
		"struct with a card field": {
			in:   cardRequest{Amount: 100, Card: map[string]string{"number": "4242424242424242", "exp": "12/34", "cvc": "314"}, Note: "hi"},
			want: `{"amount":100,"card":{"cvc":"[redacted]","exp":"12/34","number":"************4242"},"note":"hi"}`,
		},
		"raw JSON bytes are redacted as JSON": {
			in:   []byte(`{"password":"p","n":1}`),
			want: `{"n":1,"password":"[redacted]"}`,
		},
		"raw non-JSON bytes are one string": {
			in:      json.RawMessage("token=" + sentinel + "&card=4242424242424242"),
			secrets: []string{sentinel},
			want:    `"token=[redacted]&card=************4242"`,
		},
		"empty raw message is null": {
			in:   json.RawMessage(nil),
			want: `null`,
		},
		"HTML characters are not escaped": {
			in:   map[string]any{"url": "https://x.example/?a=1&b=<2>"},
			want: `{"url":"https://x.example/?a=1&b=<2>"}`,
		},
		"a MarshalJSON that panics": {
			in:   map[string]any{"x": panicky{}},
			want: `{"error":"unencodable"}`,
		},
		"a MarshalJSON that fails": {
			in:   failing{},
			want: `{"error":"unencodable"}`,
		},
		"a channel": {
			in:   make(chan int),
			want: `{"error":"unencodable"}`,
		},
		"nil": {
			in:   nil,
			want: `null`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Redact(tc.in, tc.secrets)
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			if !sameJSON(t, got, []byte(tc.want)) {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("unmarshal want %s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func TestScrub(t *testing.T) {
	tests := map[string]struct {
		in, want string
		secrets  []string
	}{
		"no secrets, no digits": {in: "stripe: card declined", want: "stripe: card declined"},
		"secret in an error":    {in: `POST /v1/charges: invalid api key "` + sentinel + `"`, secrets: []string{sentinel}, want: `POST /v1/charges: invalid api key "[redacted]"`},
		"pan in an error":       {in: "card 4111111111111111 declined", want: "card ************1111 declined"},
		"two pans":              {in: "4242424242424242/5555555555554444", want: "************4242/************4444"},
		"short digit runs":      {in: "order 1234 5678 9012", want: "order 1234 5678 9012"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Scrub(tc.in, tc.secrets); got != tc.want {
				t.Fatalf("Scrub(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestLuhn(t *testing.T) {
	tests := map[string]bool{
		"4242424242424242": true, "4111111111111111": true, "378282246310005": true, "6011111111111117": true,
		"4242424242424241": false, "1234567812345678": false, "0000000000000001": false,
	}
	for digits, want := range tests {
		if got := luhn([]byte(digits)); got != want {
			t.Errorf("luhn(%s) = %v, want %v", digits, got, want)
		}
	}
}

// FuzzRedact: Redact never panics, always returns valid JSON, and an
// alphanumeric secret never survives in any string, key or number.
func FuzzRedact(f *testing.F) {
	f.Add([]byte(`{"a":"b"}`), "b")
	f.Add([]byte(`{"password":"x","list":[1,"4242 4242 4242 4242",{"k":"zzsecretzz"}]}`), "secret")
	f.Add([]byte(`"4242-4242-4242-4242 1234"`), "1234")
	f.Add([]byte(`[4242424242424242, 1e400, -0.0, "\u0000\ud800"]`), "")
	f.Add([]byte(`not json at all 378282246310005`), "json")
	f.Add([]byte(`{"a":{"b":{"c":[[[[["deep"]]]]]}}}`), "deep")
	f.Fuzz(func(t *testing.T, data []byte, secret string) {
		out := Redact(json.RawMessage(data), []string{secret})
		if !json.Valid(out) {
			t.Fatalf("invalid JSON output %q for input %q", out, data)
		}
		if !checkable(secret) {
			return
		}
		var doc any
		dec := json.NewDecoder(strings.NewReader(string(out)))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("output does not decode: %v", err)
		}
		walkStrings(doc, func(s string) {
			if strings.Contains(s, secret) {
				t.Fatalf("secret %q survives in %q (input %q)", secret, s, data)
			}
		})
	})
}

// checkable: secrets whose absence from the output the fuzz test can assert.
// Shorter or punctuated ones can legitimately appear in the markers.
func checkable(secret string) bool {
	if len(secret) < 4 || strings.Contains(Redacted+string(unencodable), secret) {
		return false
	}
	for _, r := range secret {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return false
		}
	}
	return true
}

func walkStrings(v any, fn func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			fn(k)
			walkStrings(val, fn)
		}
	case []any:
		for _, val := range x {
			walkStrings(val, fn)
		}
	case string:
		fn(x)
	case json.Number:
		fn(string(x))
	}
}

func BenchmarkRedact(b *testing.B) {
	req := map[string]any{
		"amount":      map[string]any{"value": 1999, "currency": "EUR"},
		"reference":   "order-42",
		"description": "two coffees and a croissant",
		"customer":    map[string]any{"email": "ana@example.com", "name": "Ana", "phone": "+34600000000"},
		"metadata":    map[string]any{"cart": "c_123", "channel": "web"},
		"card":        map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "314"},
		"api_key":     sentinel,
	}
	secrets := []string{sentinel, "whsec_abc123"}
	b.ReportAllocs()
	for b.Loop() {
		Redact(req, secrets)
	}
}
