package signature

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pipecore/pipecore/sdk/provider"
)

// The fuzz targets feed arbitrary header values (and, for Twilio, URLs,
// bodies and content types) to Verify over the requests in the vectors
// file. Verify must never panic, must fail only with one of the sentinels,
// and must never accept an input unless it carries the signature of the
// seed it was derived from. Run one with, for example:
//
//	go test -run '^$' -fuzz '^FuzzStripeHeader$' -fuzztime 20s ./internal/signature/

// checkFuzzErr fails unless err matches exactly one sentinel.
func checkFuzzErr(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("Verify() = %v matches %d sentinels, want 1", err, n)
	}
}

// fuzzVector picks the seed vector i and a copy of its request.
func fuzzVector(t *testing.T, vs []vector, i uint8) (vector, Request) {
	v := vs[int(i)%len(vs)]
	return v, v.request(t)
}

func setOrDelete(h map[string][]string, name, value string) {
	if value == "" {
		delete(h, name)
		return
	}
	h[name] = []string{value}
}

// items splits s on sep, trimming nothing.
func items(s, sep string) []string { return strings.Split(s, sep) }

func FuzzStripeHeader(f *testing.F) {
	vs := vectorsOf(f, provider.SchemeStripe)
	for i, v := range vs {
		f.Add(uint8(i), v.Headers["Stripe-Signature"][0])
		f.Add(uint8(i), v.Garbled)
		f.Add(uint8(i), strings.Repeat("v1=00,", 1000)+"t=1")
	}
	f.Fuzz(func(t *testing.T, i uint8, h string) {
		v, r := fuzzVector(t, vs, i)
		setOrDelete(r.Header, "Stripe-Signature", h)
		err := Verify(v.Scheme, r, v.Secrets, v.options(v.Now))
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		// Accepted: h must carry the t and one of the v1 values of a seed
		// (any seed: vectors that share a secret and body share signatures).
		if !carriesSeedSignature(vs, "Stripe-Signature", "v1=", h) {
			t.Fatalf("accepted %q, which carries no seed's signature", h)
		}
	})
}

func FuzzMercadoPagoHeader(f *testing.F) {
	vs := vectorsOf(f, provider.SchemeMercadoPago)
	for i, v := range vs {
		id := ""
		if q := v.Query["data.id"]; len(q) > 0 {
			id = q[0]
		}
		f.Add(uint8(i), v.Headers["X-Signature"][0], v.Headers["X-Request-Id"][0], id)
		f.Add(uint8(i), v.Garbled, "", "ORD01ABC")
	}
	f.Fuzz(func(t *testing.T, i uint8, xsig, requestID, dataID string) {
		v, r := fuzzVector(t, vs, i)
		setOrDelete(r.Header, "X-Signature", xsig)
		setOrDelete(r.Header, "X-Request-Id", requestID)
		r.Query = map[string][]string{"data.id": {dataID}}
		err := Verify(v.Scheme, r, v.Secrets, v.options(v.Now))
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		for _, sv := range vs {
			seed := sv.Headers["X-Signature"][0]
			ts, mac := seed[:strings.Index(seed, ",")], seed[strings.Index(seed, "v1=")+3:]
			if strings.Contains(strings.ToLower(xsig), mac) && strings.Contains(xsig, ts[len("ts="):]) &&
				strings.TrimSpace(requestID) == sv.Headers["X-Request-Id"][0] {
				return
			}
		}
		t.Fatalf("accepted x-signature %q, x-request-id %q, which carry no seed's signature", xsig, requestID)
	})
}

func FuzzMetaHeader(f *testing.F) {
	vs := vectorsOf(f, provider.SchemeMetaSHA256)
	for i, v := range vs {
		f.Add(uint8(i), v.Headers["X-Hub-Signature-256"][0])
		f.Add(uint8(i), v.Garbled)
	}
	f.Fuzz(func(t *testing.T, i uint8, h string) {
		v, r := fuzzVector(t, vs, i)
		setOrDelete(r.Header, "X-Hub-Signature-256", h)
		err := Verify(v.Scheme, r, v.Secrets, v.options(v.Now))
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		for _, sv := range vs {
			if strings.HasPrefix(h, "sha256=") && strings.EqualFold(h, sv.Headers["X-Hub-Signature-256"][0]) {
				return
			}
		}
		t.Fatalf("accepted %q, which is no seed's signature", h)
	})
}

func FuzzHMACSHA256Header(f *testing.F) {
	vs := vectorsOf(f, provider.SchemeHMACSHA256)
	name := func(v vector) string { return headerName(v.OptionsHeader, hmacSHA256Header) }
	for i, v := range vs {
		f.Add(uint8(i), v.Headers[name(v)][0])
		f.Add(uint8(i), v.Garbled)
	}
	norm := func(s string) string { return strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "sha256=")) }
	f.Fuzz(func(t *testing.T, i uint8, h string) {
		v, r := fuzzVector(t, vs, i)
		setOrDelete(r.Header, name(v), h)
		err := Verify(v.Scheme, r, v.Secrets, v.options(v.Now))
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		for _, sv := range vs {
			if norm(h) == norm(sv.Headers[name(sv)][0]) {
				return
			}
		}
		t.Fatalf("accepted %q, which is no seed's signature", h)
	})
}

func FuzzSvixHeader(f *testing.F) {
	vs := vectorsOf(f, provider.SchemeSvix)
	set := func(v vector) [3]string {
		if _, ok := v.Headers["Svix-Signature"]; ok {
			return svixHeaders
		}
		return standardHeaders
	}
	for i, v := range vs {
		n := set(v)
		f.Add(uint8(i), v.Headers[n[0]][0], v.Headers[n[1]][0], v.Headers[n[2]][0])
		f.Add(uint8(i), v.Headers[n[0]][0], "1e9", "v1, v1,,  v2")
	}
	f.Fuzz(func(t *testing.T, i uint8, id, ts, sig string) {
		v, r := fuzzVector(t, vs, i)
		n := set(v)
		setOrDelete(r.Header, n[0], id)
		setOrDelete(r.Header, n[1], ts)
		setOrDelete(r.Header, n[2], sig)
		err := Verify(v.Scheme, r, v.Secrets, v.options(v.Now))
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		for _, sv := range vs {
			sn := set(sv)
			seedSigs := items(sv.Headers[sn[2]][0], " ")
			carries := false
			for _, e := range items(sig, " ") {
				carries = carries || strings.HasPrefix(e, "v1,") && slices.Contains(seedSigs, e)
			}
			if carries && id == sv.Headers[sn[0]][0] && ts == sv.Headers[sn[1]][0] {
				return
			}
		}
		t.Fatalf("accepted id %q ts %q sig %q, which carry no seed's signature", id, ts, sig)
	})
}

func FuzzTwilio(f *testing.F) {
	vs := vectorsOf(f, provider.SchemeTwilio)
	for i, v := range vs {
		ct := ""
		if c := v.Headers["Content-Type"]; len(c) > 0 {
			ct = c[0]
		}
		f.Add(uint8(i), v.URL, v.Headers["X-Twilio-Signature"][0], string(v.body(f)), ct)
		f.Add(uint8(i), strings.Replace(v.URL, "://", "://u@", 1)+"#x", v.Headers["X-Twilio-Signature"][0], "a=%&b=;", "application/x-www-form-urlencoded")
	}
	decode := func(s string) []byte {
		b, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil {
			return nil
		}
		return b
	}
	f.Fuzz(func(t *testing.T, i uint8, rawURL, sig, body, ct string) {
		v, r := fuzzVector(t, vs, i)
		r.URL, r.Body = rawURL, []byte(body)
		setOrDelete(r.Header, "X-Twilio-Signature", sig)
		setOrDelete(r.Header, "Content-Type", ct)
		err := Verify(v.Scheme, r, v.Secrets, v.options(v.Now))
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		for _, sv := range vs {
			if got := decode(sig); got != nil && string(got) == string(decode(sv.Headers["X-Twilio-Signature"][0])) {
				return
			}
		}
		t.Fatalf("accepted signature %q for URL %q, which is no seed's signature", sig, rawURL)
	})
}

func FuzzSendGridHeader(f *testing.F) {
	vs := vectorsOf(f, provider.SchemeECDSA)
	const sigName, tsName = "X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"
	for i, v := range vs {
		f.Add(uint8(i), v.Headers[sigName][0], v.Headers[tsName][0])
		f.Add(uint8(i), "MAYCAQECAQE=", v.Headers[tsName][0]) // DER of r=1, s=1
	}
	f.Fuzz(func(t *testing.T, i uint8, sig, ts string) {
		v, r := fuzzVector(t, vs, i)
		setOrDelete(r.Header, sigName, sig)
		setOrDelete(r.Header, tsName, ts)
		err := Verify(v.Scheme, r, v.Secrets, v.options(v.Now))
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		got, _ := base64.StdEncoding.DecodeString(sig)
		for _, sv := range vs {
			seed, _ := base64.StdEncoding.DecodeString(sv.Headers[sigName][0])
			if string(got) == string(seed) && ts == sv.Headers[tsName][0] {
				return
			}
		}
		t.Fatalf("accepted signature %q ts %q, which is no seed's signature", sig, ts)
	})
}

func FuzzStaticToken(f *testing.F) {
	vs := vectorsOf(f, provider.SchemeStaticToken)
	name := func(v vector) string { return headerName(v.OptionsHeader, staticTokenHeader) }
	for i, v := range vs {
		f.Add(uint8(i), v.Headers[name(v)][0])
		f.Add(uint8(i), v.Garbled)
	}
	f.Fuzz(func(t *testing.T, i uint8, h string) {
		v, r := fuzzVector(t, vs, i)
		setOrDelete(r.Header, name(v), h)
		err := Verify(v.Scheme, r, v.Secrets, v.options(v.Now))
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		token := v.Secrets[0]
		if h != token && !(len(h) > 7 && strings.EqualFold(h[:7], "bearer ") && h[7:] == token) {
			t.Fatalf("accepted %q for token %q", h, token)
		}
	})
}

func FuzzRappiHeader(f *testing.F) {
	vs := vectorsOf(f, provider.SchemeRappi)
	for i, v := range vs {
		f.Add(uint8(i), v.Headers["Rappi-Signature"][0])
		f.Add(uint8(i), v.Garbled)
		f.Add(uint8(i), strings.Repeat("sign=00,", 500)+"t=1")
	}
	f.Fuzz(func(t *testing.T, i uint8, h string) {
		v, r := fuzzVector(t, vs, i)
		setOrDelete(r.Header, "Rappi-Signature", h)
		err := Verify(v.Scheme, r, v.Secrets, v.options(v.Now))
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		// Accepted: h must carry a seed's t and, in either case, its sign.
		if !carriesSeedSignature(vs, "Rappi-Signature", "sign=", h) {
			t.Fatalf("accepted %q, which carries no seed's signature", h)
		}
	})
}

// carriesSeedSignature reports whether the "t=…,<sig>=…" header h holds
// the t of one seed vector's header and, in either case, one of that
// seed's signatures (items starting with sigPrefix).
func carriesSeedSignature(vs []vector, header, sigPrefix, h string) bool {
	for _, sv := range vs {
		seed := items(sv.Headers[header][0], ",")
		hasT, hasSig := false, false
		for _, it := range items(h, ",") {
			it = strings.TrimSpace(it)
			hasT = hasT || strings.HasPrefix(it, "t=") && slices.Contains(seed, it)
			hasSig = hasSig || strings.HasPrefix(it, sigPrefix) && slices.ContainsFunc(seed, func(s string) bool { return strings.EqualFold(s, it) })
		}
		if hasT && hasSig {
			return true
		}
	}
	return false
}
