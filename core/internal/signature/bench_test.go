package signature

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// benchBody is a 1.5 KB (1536-byte) JSON body, the size of a typical
// provider event.
var benchBody = func() []byte {
	const head = `{"id":"evt_bench","type":"payment_intent.succeeded","data":{"object":{"id":"pi_bench","description":"`
	const tail = `"}}}`
	return []byte(head + strings.Repeat("x", 1536-len(head)-len(tail)) + tail)
}()

// benchForm is a 1.5 KB form body for Twilio.
var benchForm = func() []byte {
	v := url.Values{}
	for k, vs := range twilioForm {
		v[k] = vs
	}
	v.Set("Body", strings.Repeat("hola ", 250))
	return []byte(v.Encode())
}()

// benchCases are the requests BenchmarkVerify and the allocation test use:
// each scheme's main fixture, signed over a 1.5 KB body.
func benchCases(tb testing.TB) map[string]struct {
	f       fixture
	req     Request
	secrets []string
} {
	tb.Helper()
	out := map[string]struct {
		f       fixture
		req     Request
		secrets []string
	}{}
	for name, fx := range map[string]string{
		"stripe":         "stripe",
		"mercadopago":    "mercadopago/query-id",
		"meta-sha256":    "meta-sha256",
		"twilio":         "twilio/form",
		"twilio-json":    "twilio/json",
		"svix":           "svix",
		"hmac-sha256":    "hmac-sha256/uber",
		"sendgrid-ecdsa": "sendgrid-ecdsa",
		"static-token":   "static-token",
	} {
		f := fixtureNamed(tb, fx)
		body := benchBody
		if fx == "twilio/form" {
			body = benchForm
		}
		if fx == "twilio/json" {
			continue // its URL pins the fixture body's hash
		}
		out[name] = struct {
			f       fixture
			req     Request
			secrets []string
		}{f, f.sign(tb, f.cur, testNow, body), []string{f.cur.verify}}
	}
	f := fixtureNamed(tb, "twilio/json")
	out["twilio-json"] = struct {
		f       fixture
		req     Request
		secrets []string
	}{f, f.sign(tb, f.cur, testNow, f.body), []string{f.cur.verify}}
	// A rotation in progress: the second secret matches.
	s := out["stripe"]
	s.secrets = []string{s.f.old.verify, s.f.cur.verify}
	out["stripe-rotation"] = s
	return out
}

func BenchmarkVerify(b *testing.B) {
	if n := len(benchBody); n != 1536 {
		b.Fatalf("bench body is %d bytes", n)
	}
	for name, c := range benchCases(b) {
		opt := c.f.options()
		if err := Verify(c.f.scheme, c.req, c.secrets, opt); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.req.Body)))
			for b.Loop() {
				if err := Verify(c.f.scheme, c.req, c.secrets, opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReject measures the cost of turning away unsigned or garbled
// requests, the bulk of an unauthenticated flood.
func BenchmarkReject(b *testing.B) {
	f := fixtureNamed(b, "stripe")
	valid := f.sign(b, f.cur, testNow, benchBody)
	opt := f.options()
	for name, c := range map[string]struct {
		req  Request
		want error
	}{
		"stripe/missing-header": {withoutHeader(valid, "Stripe-Signature"), ErrMissingSignature},
		"stripe/malformed":      {withHeader(valid, "Stripe-Signature", "garbage"), ErrMalformed},
		"stripe/expired":        {f.sign(b, f.cur, testNow.Add(-time.Hour), benchBody), ErrTimestamp},
		"stripe/mismatch":       {f.sign(b, f.wrong, testNow, benchBody), ErrMismatch},
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := Verify(f.scheme, c.req, []string{f.cur.verify}, opt); !errors.Is(err, c.want) {
					b.Fatal(err)
				}
			}
		})
	}
}
