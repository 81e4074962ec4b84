package signature

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // Twilio's scheme
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// This file holds the test-side signers: small, independent encodings of
// each provider's documented scheme, used to make valid requests for the
// tests, the vectors and the benchmarks.

// testNow is the clock of every test that does not talk to an external
// library.
var testNow = time.Unix(1_750_000_000, 0)

func fixedNow() time.Time { return testNow }

// key is one credential: what a provider signs with and what Verify is
// given. They differ only for ECDSA (private key vs public key).
type key struct {
	sign   string // HMAC secret, token, or base64 PKCS#8 ECDSA private key
	verify string // what goes into Verify's secrets
}

func hmacKey(s string) key { return key{sign: s, verify: s} }

// ecdsaKey derives the base64 SPKI public key of a base64 PKCS#8 P-256
// private key. It panics on a bad constant: test setup only.
func ecdsaKey(pkcs8 string) key {
	priv := ecdsaPrivate(pkcs8)
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		panic(err)
	}
	return key{sign: pkcs8, verify: base64.StdEncoding.EncodeToString(der)}
}

func ecdsaPrivate(pkcs8 string) *ecdsa.PrivateKey {
	der, err := base64.StdEncoding.DecodeString(pkcs8)
	if err != nil {
		panic(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		panic(err)
	}
	return k.(*ecdsa.PrivateKey)
}

// P-256 test keys generated for this package (openssl genpkey), PKCS#8 DER
// in base64. They sign nothing outside these tests.
var (
	ecdsaCur     = ecdsaKey("MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgG5awj/sZTU3zofKOQIv4F2Qk8aLMGanDgYA6MryMN1OhRANCAARz5Zk1gA/XywM1Aq2s2EMEudi6dfEgwY9jHH13rG2QjgeXFuk6cMf5qDsTWGXp4stJQjqWoEUb9dGlnWBLhDSD")
	ecdsaOld     = ecdsaKey("MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgBPrYmvU4JcIi0xTOlde0s/GAUEWNsuvnZ3cAEx/3V52hRANCAASJ3xzi1Ynq4dLsliCYVXNAJ9zV2a1UVxZvIlFFVm7iy4FX98xkCC/CxTr6V3y2+4gtiYCFpW847dbMsf+WbwKC")
	ecdsaWrong   = ecdsaKey("MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQ/YhjbjqxHtA7HCHqXCDtV6rc2YEdA300iT+gOTL39GhRANCAASlsE/XWgnUwr/iUD9ZpC7qHEMDPdKxG+dnDmsQ/iMXIrScCI+YJPqnrjgpIr6KDthyn4bC+TZutRhr5Ir49sKj")
	ecdsaTenantB = ecdsaKey("MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgLwCFzD2YmqPSu1MH5iEGtinXIg7DVp81yt8kxN9rRrKhRANCAASXwTqrW0J77EyRLIVd9HBo2NlGYkvMV8KNwtbWnmSOjTYax4fohvLBhKgpnTEyTqoNiuAzAqrdOFD/xnhiUMRe")
)

// whsec builds a Svix / Standard Webhooks secret from raw key bytes.
func whsec(raw string) string { return "whsec_" + base64.StdEncoding.EncodeToString([]byte(raw)) }

func macHex(h func() hash.Hash, key string, parts ...[]byte) string {
	return hex.EncodeToString(macSum(h, []byte(key), parts...))
}

func macSum(h func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

var (
	sha1New       = sha1.New
	sha256New     = sha256.New
	urlParseQuery = url.ParseQuery
)

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func mustQuery(s string) url.Values {
	v, err := url.ParseQuery(s)
	if err != nil {
		panic(err)
	}
	return v
}

// svixSignRawKey signs like Svix but keys the HMAC with the secret string
// itself instead of its decoded bytes: the mistake the tests guard against.
func svixSignRawKey(secret, msg string) string {
	return "v1," + base64.StdEncoding.EncodeToString(macSum(sha256.New, []byte(secret), []byte(msg)))
}

// ---- per-scheme signers ----

func stripeSign(secret string, ts int64, body []byte) string {
	t := strconv.FormatInt(ts, 10)
	return "t=" + t + ",v1=" + macHex(sha256.New, secret, []byte(t+"."), body)
}

func mercadoPagoSign(secret, dataID, requestID, ts string) string {
	var manifest string
	if dataID != "" {
		manifest += "id:" + dataID + ";"
	}
	if requestID != "" {
		manifest += "request-id:" + requestID + ";"
	}
	manifest += "ts:" + ts + ";"
	return "ts=" + ts + ",v1=" + macHex(sha256.New, secret, []byte(manifest))
}

func metaSign(secret string, body []byte) string {
	return "sha256=" + macHex(sha256.New, secret, body)
}

// twilioSign signs u followed by the sorted name+value pairs of form.
func twilioSign(token, u string, form url.Values) string {
	s := u
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		vs := slices.Clone(form[k])
		slices.Sort(vs)
		for _, v := range vs {
			s += k + v
		}
	}
	return base64.StdEncoding.EncodeToString(macSum(sha1.New, []byte(token), []byte(s)))
}

func svixSign(secret, id, ts string, body []byte) string {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	return "v1," + base64.StdEncoding.EncodeToString(macSum(sha256.New, raw, []byte(id+"."+ts+"."), body))
}

func ecdsaSign(tb testing.TB, pkcs8, ts string, body []byte) string {
	tb.Helper()
	digest := sha256.Sum256(append([]byte(ts), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, ecdsaPrivate(pkcs8), digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// ---- fixtures: one per scheme variant ----

// fixture describes one scheme variant and what each attack on it yields.
type fixture struct {
	name   string
	scheme provider.SignatureScheme
	opt    Options // Now is filled in by options()
	// cur, old: the rotation pair; wrong: a secret nobody signed with;
	// tenantB: another tenant's secret for the same provider.
	cur, old, wrong, tenantB key
	body                     []byte
	// sign returns a request signed with k at time at over body.
	sign func(tb testing.TB, k key, at time.Time, body []byte) Request
	// sigHeader is the header whose absence is ErrMissingSignature.
	sigHeader string
	// garbled replaces sigHeader's value; garbledErr is the outcome.
	garbled    string
	garbledErr error
	// flip changes one byte of what the body carries; flipErr is the
	// outcome (nil where the scheme does not cover the body), appendErr
	// the outcome of a "\n" appended to the body.
	flip      func(Request) Request
	flipErr   error
	appendErr error
	// tol is the timestamp tolerance enforced (0: no timestamp checked);
	// futureErr is the outcome of a timestamp tol+1s in the future.
	tol       time.Duration
	futureErr error
}

func (f fixture) options() Options {
	o := f.opt
	o.Now = fixedNow
	return o
}

// secretStrings lists every credential string of f, for leak checks.
func (f fixture) secretStrings() []string {
	var s []string
	for _, k := range []key{f.cur, f.old, f.wrong, f.tenantB} {
		s = append(s, k.sign, k.verify)
	}
	return s
}

const hookURL = "https://hooks.pipecore.test/v1/webhooks/acme"

func headers(kv ...string) map[string][]string {
	h := make(map[string][]string, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		h[kv[i]] = []string{kv[i+1]}
	}
	return h
}

// clone deep-copies the parts of r that tests mutate.
func clone(r Request) Request {
	c := r
	c.Header = make(map[string][]string, len(r.Header))
	for k, v := range r.Header {
		c.Header[k] = slices.Clone(v)
	}
	c.Body = bytes.Clone(r.Body)
	return c
}

func withHeader(r Request, name, value string) Request {
	c := clone(r)
	c.Header[name] = []string{value}
	return c
}

func withoutHeader(r Request, name string) Request {
	c := clone(r)
	delete(c.Header, name)
	return c
}

func flipBodyAt(i int) func(Request) Request {
	return func(r Request) Request {
		c := clone(r)
		j := i
		if j < 0 {
			j = len(c.Body) / 2
		}
		c.Body[j] ^= 0x01
		return c
	}
}

func appendNewline(r Request) Request {
	c := clone(r)
	c.Body = append(c.Body, '\n')
	return c
}

var (
	jsonBody        = []byte(`{"id":"evt_1PcT","type":"payment_intent.succeeded","data":{"object":{"id":"pi_3Pc","amount":1999,"currency":"usd","description":"café ☕ — 2×"}}}`)
	mercadoPagoBody = []byte(`{"action":"payment.updated","api_version":"v1","data":{"id":"987654321"},"date_created":"2025-06-15T12:00:00Z","live_mode":false,"type":"payment"}`)
	twilioForm      = url.Values{
		"AccountSid":    {"AC00000000000000000000000000000000"},
		"Body":          {"Hola, ¿cómo estás? & más"},
		"From":          {"whatsapp:+56911111111"},
		"MessageSid":    {"SM11111111111111111111111111111111"},
		"MessageStatus": {"delivered"},
		"To":            {"whatsapp:+56922222222"},
	}
)

// fixtures returns every scheme variant the table tests run over.
func fixtures() []fixture {
	stripeKeys := [4]key{hmacKey("whsec_pipecoreStripeCurrent0000000001"), hmacKey("whsec_pipecoreStripePrevious000000002"), hmacKey("whsec_pipecoreStripeWrong00000000003"), hmacKey("whsec_pipecoreStripeTenantB0000000004")}
	mpKeys := [4]key{hmacKey("mp-secret-current-5f2c"), hmacKey("mp-secret-previous-91ab"), hmacKey("mp-secret-wrong-0000"), hmacKey("mp-secret-tenant-b-77de")}
	metaKeys := [4]key{hmacKey("meta-app-secret-current"), hmacKey("meta-app-secret-previous"), hmacKey("meta-app-secret-wrong"), hmacKey("meta-app-secret-tenant-b")}
	twilioKeys := [4]key{hmacKey("twilio-auth-token-current-00001"), hmacKey("twilio-auth-token-previous-0002"), hmacKey("twilio-auth-token-wrong-0000003"), hmacKey("twilio-auth-token-tenant-b-0004")}
	svixKeys := [4]key{hmacKey(whsec("svix-current-key-0123456789abcde")), hmacKey(whsec("svix-previous-key-0123456789abcd")), hmacKey(whsec("svix-wrong-key-0123456789abcdefg")), hmacKey(whsec("svix-tenant-b-key-0123456789abcd"))}
	uberKeys := [4]key{hmacKey("uber-signing-key-current"), hmacKey("uber-signing-key-previous"), hmacKey("uber-signing-key-wrong"), hmacKey("uber-signing-key-tenant-b")}
	ecKeys := [4]key{ecdsaCur, ecdsaOld, ecdsaWrong, ecdsaTenantB}
	rappiKeys := [4]key{hmacKey("rappi-webhook-secret-current"), hmacKey("rappi-webhook-secret-previous"), hmacKey("rappi-webhook-secret-wrong"), hmacKey("rappi-webhook-secret-tenant-b")}
	tokenKeys := [4]key{hmacKey("pdy-authorization-key-current"), hmacKey("pdy-authorization-key-previous"), hmacKey("pdy-authorization-key-wrong"), hmacKey("pdy-authorization-key-tenant-b")}

	with := func(f fixture, k [4]key) fixture {
		f.cur, f.old, f.wrong, f.tenantB = k[0], k[1], k[2], k[3]
		if f.flip == nil {
			f.flip = flipBodyAt(-1)
		}
		return f
	}
	formBody := []byte(twilioForm.Encode())
	jsonHash := sha256.Sum256(jsonBody)
	twilioJSONURL := hookURL + "?tenant=acme&bodySHA256=" + hex.EncodeToString(jsonHash[:])
	twilioGetURL := hookURL + "?MessageSid=SM11111111111111111111111111111111&MessageStatus=read"

	mp := func(dataIDInQuery bool, millis bool) func(testing.TB, key, time.Time, []byte) Request {
		return func(_ testing.TB, k key, at time.Time, body []byte) Request {
			ts := strconv.FormatInt(at.Unix(), 10)
			if millis {
				ts = strconv.FormatInt(at.UnixMilli(), 10)
			}
			const rid = "2066ca19-c6f1-498a-be75-1923005edd06"
			r := Request{Method: "POST", URL: hookURL, Body: body}
			id := "987654321"
			if dataIDInQuery {
				r.URL += "?data.id=" + id + "&type=payment"
				r.Query = map[string][]string{"data.id": {id}, "type": {"payment"}}
			}
			r.Header = headers("X-Signature", mercadoPagoSign(k.sign, id, rid, ts), "X-Request-Id", rid, "Content-Type", "application/json")
			return r
		}
	}
	svix := func(names [3]string) func(testing.TB, key, time.Time, []byte) Request {
		return func(_ testing.TB, k key, at time.Time, body []byte) Request {
			const id = "msg_2hS3kPcKVtqhrqNqk1Qo2Kx6n1C"
			ts := strconv.FormatInt(at.Unix(), 10)
			return Request{Method: "POST", URL: hookURL, Body: body, Header: headers(
				names[0], id, names[1], ts, names[2], "v1a,bm90LWFuLWVkMjU1MTktc2ln "+svixSign(k.sign, id, ts, body),
				"Content-Type", "application/json")}
		}
	}
	sendgridSigned := func(tb testing.TB, k key, at time.Time, body []byte) Request {
		ts := strconv.FormatInt(at.Unix(), 10)
		return Request{Method: "POST", URL: hookURL, Body: body, Header: headers(
			"X-Twilio-Email-Event-Webhook-Signature", ecdsaSign(tb, k.sign, ts, body),
			"X-Twilio-Email-Event-Webhook-Timestamp", ts, "Content-Type", "application/json")}
	}
	sendgridBody := []byte(`[{"email":"ana@example.com","event":"delivered","sg_event_id":"ZGVsaXZlcmVk","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001","timestamp":1750000000}]`)

	return []fixture{
		with(fixture{
			name: "stripe", scheme: provider.SchemeStripe, body: jsonBody,
			sign: func(_ testing.TB, k key, at time.Time, body []byte) Request {
				return Request{Method: "POST", URL: hookURL, Body: body,
					Header: headers("Stripe-Signature", stripeSign(k.sign, at.Unix(), body), "Content-Type", "application/json")}
			},
			sigHeader: "Stripe-Signature", garbled: "t=16x,v1=00", garbledErr: ErrMalformed,
			flipErr: ErrMismatch, appendErr: ErrMismatch,
			tol: DefaultTolerance, futureErr: nil, // stripe-go accepts future timestamps
		}, stripeKeys),
		with(fixture{
			name: "mercadopago/query-id", scheme: provider.SchemeMercadoPago, body: mercadoPagoBody,
			sign:      mp(true, false),
			sigHeader: "X-Signature", garbled: "ts=1750000000,v1=not-hex", garbledErr: ErrMalformed,
			// The manifest does not cover the body: the body is a hint,
			// and the payment is fetched with our own credentials.
			flipErr: nil, appendErr: nil,
		}, mpKeys),
		with(fixture{
			name: "mercadopago/body-id", scheme: provider.SchemeMercadoPago, body: mercadoPagoBody,
			sign:      mp(false, false),
			sigHeader: "X-Signature", garbled: "v1=00", garbledErr: ErrMalformed,
			// data.id comes from the body: changing it breaks the MAC;
			// a trailing newline leaves the JSON (and the id) unchanged.
			flip:    flipBodyAt(bytes.Index(mercadoPagoBody, []byte("987654321")) + 2),
			flipErr: ErrMismatch, appendErr: nil,
		}, mpKeys),
		with(fixture{
			name: "mercadopago/tolerance-ms", scheme: provider.SchemeMercadoPago, body: mercadoPagoBody,
			opt:       Options{Tolerance: 5 * time.Minute},
			sign:      mp(true, true),
			sigHeader: "X-Signature", garbled: "ts=soon,v1=" + strings.Repeat("ab", 32), garbledErr: ErrMalformed,
			flipErr: nil, appendErr: nil,
			tol: 5 * time.Minute, futureErr: ErrTimestamp,
		}, mpKeys),
		with(fixture{
			name: "mercadopago/tolerance-s", scheme: provider.SchemeMercadoPago, body: mercadoPagoBody,
			opt:       Options{Tolerance: 2 * time.Minute},
			sign:      mp(true, false),
			sigHeader: "X-Signature", garbled: "ts=1750000000", garbledErr: ErrMalformed,
			flipErr: nil, appendErr: nil,
			tol: 2 * time.Minute, futureErr: ErrTimestamp,
		}, mpKeys),
		with(fixture{
			name: "meta-sha256", scheme: provider.SchemeMetaSHA256, body: jsonBody,
			sign: func(_ testing.TB, k key, _ time.Time, body []byte) Request {
				return Request{Method: "POST", URL: hookURL, Body: body,
					Header: headers("X-Hub-Signature-256", metaSign(k.sign, body), "Content-Type", "application/json")}
			},
			sigHeader: "X-Hub-Signature-256", garbled: "sha1=0123456789abcdef0123456789abcdef01234567", garbledErr: ErrMalformed,
			flipErr: ErrMismatch, appendErr: ErrMismatch,
		}, metaKeys),
		with(fixture{
			name: "twilio/form", scheme: provider.SchemeTwilio, body: formBody,
			sign: func(_ testing.TB, k key, _ time.Time, body []byte) Request {
				form, err := url.ParseQuery(string(body))
				if err != nil {
					panic(err)
				}
				return Request{Method: "POST", URL: hookURL, Body: body, Header: headers(
					"X-Twilio-Signature", twilioSign(k.sign, hookURL, form),
					"Content-Type", "application/x-www-form-urlencoded; charset=utf-8")}
			},
			sigHeader: "X-Twilio-Signature", garbled: "not base64!", garbledErr: ErrMalformed,
			flipErr: ErrMismatch, appendErr: ErrMismatch,
		}, twilioKeys),
		with(fixture{
			name: "twilio/json", scheme: provider.SchemeTwilio, body: jsonBody,
			sign: func(_ testing.TB, k key, _ time.Time, body []byte) Request {
				return Request{Method: "POST", URL: twilioJSONURL, Body: body, Header: headers(
					"X-Twilio-Signature", twilioSign(k.sign, twilioJSONURL, nil), "Content-Type", "application/json")}
			},
			sigHeader: "X-Twilio-Signature", garbled: base64.StdEncoding.EncodeToString([]byte("nineteen bytes only")), garbledErr: ErrMalformed,
			flipErr: ErrMismatch, appendErr: ErrMismatch,
		}, twilioKeys),
		with(fixture{
			name: "twilio/get", scheme: provider.SchemeTwilio,
			sign: func(_ testing.TB, k key, _ time.Time, _ []byte) Request {
				return Request{Method: "GET", URL: twilioGetURL, Header: headers("X-Twilio-Signature", twilioSign(k.sign, twilioGetURL, nil))}
			},
			sigHeader: "X-Twilio-Signature", garbled: "AAAA", garbledErr: ErrMalformed,
			// A GET carries its data in the URL: flip a byte of the query.
			flip: func(r Request) Request {
				c := clone(r)
				c.URL = strings.Replace(c.URL, "=read", "=reae", 1)
				return c
			},
			flipErr:   ErrMismatch,
			appendErr: ErrMismatch, // a body nothing authenticates
		}, twilioKeys),
		with(fixture{
			name: "svix", scheme: provider.SchemeSvix, body: jsonBody,
			sign:      svix(svixHeaders),
			sigHeader: "Svix-Signature", garbled: "v1,AAAA v2,garbage nonsense", garbledErr: ErrMismatch,
			flipErr: ErrMismatch, appendErr: ErrMismatch,
			tol: DefaultTolerance, futureErr: ErrTimestamp,
		}, svixKeys),
		with(fixture{
			name: "svix/standard-webhooks", scheme: provider.SchemeSvix, body: jsonBody,
			sign:      svix(standardHeaders),
			sigHeader: "Webhook-Timestamp", garbled: "1750000000.5", garbledErr: ErrMalformed,
			flipErr: ErrMismatch, appendErr: ErrMismatch,
			tol: DefaultTolerance, futureErr: ErrTimestamp,
		}, svixKeys),
		with(fixture{
			name: "hmac-sha256/uber", scheme: provider.SchemeHMACSHA256, body: jsonBody,
			opt: Options{Header: "x-uber-signature"}, // not canonical on purpose
			sign: func(_ testing.TB, k key, _ time.Time, body []byte) Request {
				return Request{Method: "POST", URL: hookURL, Body: body,
					Header: headers("X-Uber-Signature", macHex(sha256.New, k.sign, body), "Content-Type", "application/json")}
			},
			sigHeader: "X-Uber-Signature", garbled: "sha256=" + strings.Repeat("g", 64), garbledErr: ErrMalformed,
			flipErr: ErrMismatch, appendErr: ErrMismatch,
		}, uberKeys),
		with(fixture{
			name: "hmac-sha256/default-header", scheme: provider.SchemeHMACSHA256, body: jsonBody,
			sign: func(_ testing.TB, k key, _ time.Time, body []byte) Request {
				return Request{Method: "POST", URL: hookURL, Body: body,
					Header: headers("X-Signature", " sha256="+strings.ToUpper(macHex(sha256.New, k.sign, body))+" ")}
			},
			sigHeader: "X-Signature", garbled: "sha256=abc", garbledErr: ErrMalformed,
			flipErr: ErrMismatch, appendErr: ErrMismatch,
		}, uberKeys),
		with(fixture{
			name: "sendgrid-ecdsa", scheme: provider.SchemeECDSA, body: sendgridBody,
			sign:      sendgridSigned,
			sigHeader: "X-Twilio-Email-Event-Webhook-Signature", garbled: "%%% not base64 %%%", garbledErr: ErrMalformed,
			flipErr: ErrMismatch, appendErr: ErrMismatch,
		}, ecKeys),
		with(fixture{
			name: "sendgrid-ecdsa/tolerance", scheme: provider.SchemeECDSA, body: sendgridBody,
			opt:       Options{Tolerance: 10 * time.Minute},
			sign:      sendgridSigned,
			sigHeader: "X-Twilio-Email-Event-Webhook-Timestamp", garbled: "yesterday", garbledErr: ErrMalformed,
			flipErr: ErrMismatch, appendErr: ErrMismatch,
			tol: 10 * time.Minute, futureErr: ErrTimestamp,
		}, ecKeys),
		with(fixture{
			name: "rappi", scheme: provider.SchemeRappi, body: jsonBody,
			sign: func(_ testing.TB, k key, at time.Time, body []byte) Request {
				ts := strconv.FormatInt(at.Unix(), 10)
				return Request{Method: "POST", URL: hookURL, Body: body, Header: headers(
					"Rappi-Signature", "t="+ts+",sign="+macHex(sha256.New, k.sign, []byte(ts+"."), body), "Content-Type", "application/json")}
			},
			sigHeader: "Rappi-Signature", garbled: "t=1750000000,sign=xyz", garbledErr: ErrMalformed,
			flipErr: ErrMismatch, appendErr: ErrMismatch,
			tol: DefaultTolerance, futureErr: ErrTimestamp,
		}, rappiKeys),
		with(fixture{
			name: "static-token", scheme: provider.SchemeStaticToken, body: jsonBody,
			sign: func(_ testing.TB, k key, _ time.Time, body []byte) Request {
				return Request{Method: "POST", URL: hookURL, Body: body, Header: headers("Authorization", k.sign)}
			},
			sigHeader: "Authorization", garbled: "pdy-authorization-key-curren", garbledErr: ErrMismatch,
			// A static token covers neither the body nor the time.
			flipErr: nil, appendErr: nil,
		}, tokenKeys),
		with(fixture{
			name: "static-token/bearer", scheme: provider.SchemeStaticToken, body: jsonBody,
			opt: Options{Header: "X-PedidosYa-Key"},
			sign: func(_ testing.TB, k key, _ time.Time, body []byte) Request {
				return Request{Method: "POST", URL: hookURL, Body: body, Header: headers("X-Pedidosya-Key", "bearer "+k.sign)}
			},
			sigHeader: "X-Pedidosya-Key", garbled: "Bearer  pdy-authorization-key-current", garbledErr: ErrMismatch,
			flipErr: nil, appendErr: nil,
		}, tokenKeys),
	}
}

// fixtureNamed returns the fixture called name.
func fixtureNamed(tb testing.TB, name string) fixture {
	tb.Helper()
	for _, f := range fixtures() {
		if f.name == name {
			return f
		}
	}
	tb.Fatalf("no fixture %q", name)
	return fixture{}
}
