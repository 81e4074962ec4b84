package signature

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

var sentinels = []error{ErrUnknownScheme, ErrMissingSignature, ErrMalformed, ErrTimestamp, ErrMismatch, ErrNoSecret}

// checkErr asserts that err is want (nil meaning success), that it matches
// exactly one sentinel, and that its text contains none of forbidden.
func checkErr(tb testing.TB, err, want error, forbidden ...string) {
	tb.Helper()
	if want == nil {
		if err != nil {
			tb.Fatalf("Verify() = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, want) {
		tb.Fatalf("Verify() = %v, want %v", err, want)
	}
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		tb.Fatalf("Verify() = %v matches %d sentinels, want 1", err, n)
	}
	for _, f := range forbidden {
		if f != "" && strings.Contains(err.Error(), f) {
			tb.Fatalf("error %q leaks %q", err, f)
		}
	}
}

type verifyCase struct {
	req     Request
	secrets []string
	opt     *Options // nil: the fixture's options
	want    error
}

func runCases(t *testing.T, f fixture, cases map[string]verifyCase, forbidden []string) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		c := cases[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opt := f.options()
			if c.opt != nil {
				opt = *c.opt
			}
			checkErr(t, Verify(f.scheme, c.req, c.secrets, opt), c.want, forbidden...)
		})
	}
}

// TestVerify runs the same attacks against every scheme variant.
func TestVerify(t *testing.T) {
	t.Parallel()
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			now := testNow
			valid := f.sign(t, f.cur, now, f.body)
			cur, old, wrong := f.cur.verify, f.old.verify, f.wrong.verify
			forbidden := append(f.secretStrings(), valid.Header[f.sigHeader]...)
			cases := map[string]verifyCase{
				"valid":                          {req: valid, secrets: []string{cur}},
				"flipped body byte":              {req: f.flip(valid), secrets: []string{cur}, want: f.flipErr},
				"trailing newline on body":       {req: appendNewline(valid), secrets: []string{cur}, want: f.appendErr},
				"wrong secret":                   {req: valid, secrets: []string{wrong}, want: ErrMismatch},
				"signed with other tenant":       {req: f.sign(t, f.tenantB, now, f.body), secrets: []string{cur}, want: ErrMismatch},
				"other tenant's secret":          {req: valid, secrets: []string{f.tenantB.verify}, want: ErrMismatch},
				"garbled header":                 {req: withHeader(valid, f.sigHeader, f.garbled), secrets: []string{cur}, want: f.garbledErr},
				"missing header":                 {req: withoutHeader(valid, f.sigHeader), secrets: []string{cur}, want: ErrMissingSignature},
				"empty header":                   {req: withHeader(valid, f.sigHeader, ""), secrets: []string{cur}, want: ErrMissingSignature},
				"no headers at all":              {req: Request{Method: valid.Method, URL: valid.URL, Body: valid.Body}, secrets: []string{cur}, want: ErrMissingSignature},
				"rotation: signed with old":      {req: f.sign(t, f.old, now, f.body), secrets: []string{old, cur}, want: nil},
				"rotation: signed with new":      {req: valid, secrets: []string{old, cur}, want: nil},
				"rotation: new listed first":     {req: f.sign(t, f.old, now, f.body), secrets: []string{cur, old}, want: nil},
				"rotation: signed with neither":  {req: f.sign(t, f.wrong, now, f.body), secrets: []string{old, cur}, want: ErrMismatch},
				"empty secret skipped":           {req: valid, secrets: []string{"", cur}, want: nil},
				"nil secrets":                    {req: valid, secrets: nil, want: ErrNoSecret},
				"only empty secrets":             {req: valid, secrets: []string{"", ""}, want: ErrNoSecret},
				"no secret beats missing header": {req: withoutHeader(valid, f.sigHeader), secrets: []string{}, want: ErrNoSecret},
			}
			if f.tol > 0 {
				cases["expired timestamp"] = verifyCase{req: f.sign(t, f.cur, now.Add(-f.tol-time.Second), f.body), secrets: []string{cur}, want: ErrTimestamp}
				cases["expired timestamp, wrong secret"] = verifyCase{req: f.sign(t, f.wrong, now.Add(-f.tol-time.Second), f.body), secrets: []string{cur}, want: ErrTimestamp}
				cases["oldest accepted timestamp"] = verifyCase{req: f.sign(t, f.cur, now.Add(-f.tol), f.body), secrets: []string{cur}}
				cases["future timestamp"] = verifyCase{req: f.sign(t, f.cur, now.Add(f.tol+time.Second), f.body), secrets: []string{cur}, want: f.futureErr}
				cases["newest accepted timestamp"] = verifyCase{req: f.sign(t, f.cur, now.Add(f.tol), f.body), secrets: []string{cur}}
			} else {
				// Nothing bounds the age: replays are stopped only by
				// deduplication on the provider's event id.
				cases["day-old signature"] = verifyCase{req: f.sign(t, f.cur, now.Add(-24*time.Hour), f.body), secrets: []string{cur}}
			}
			runCases(t, f, cases, forbidden)
		})
	}
}

func TestVerifyUnknownScheme(t *testing.T) {
	t.Parallel()
	for name, scheme := range map[string]provider.SignatureScheme{
		"empty":      "",
		"unknown":    "hmac-md5",
		"wrong case": "Stripe",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := Verify(scheme, Request{}, []string{"s3cr3t"}, Options{})
			checkErr(t, err, ErrUnknownScheme, "s3cr3t")
		})
	}
}

func TestStripeHeaderRules(t *testing.T) {
	t.Parallel()
	f := fixtureNamed(t, "stripe")
	secret := f.cur.sign
	body := f.body
	ts := strconv.FormatInt(testNow.Unix(), 10)
	good := stripeSign(secret, testNow.Unix(), body)
	_, v1, _ := strings.Cut(good, ",")
	other := stripeSign(f.wrong.sign, testNow.Unix(), body)
	_, v1other, _ := strings.Cut(other, ",")
	req := func(h string) Request {
		return Request{Method: "POST", Header: headers("Stripe-Signature", h), Body: body}
	}
	cases := map[string]verifyCase{
		"several v1, last matches":    {req: req("t=" + ts + "," + v1other + "," + v1), want: nil},
		"several v1, first matches":   {req: req("t=" + ts + "," + v1 + "," + v1other), want: nil},
		"v0 and unknown keys ignored": {req: req("t=" + ts + "," + v1 + ",v0=deadbeef,scheme=x"), want: nil},
		"upper-case hex":              {req: req("t=" + ts + ",v1=" + strings.ToUpper(strings.TrimPrefix(v1, "v1="))), want: nil},
		"bad hex v1 skipped":          {req: req("t=" + ts + ",v1=zz," + v1), want: nil},
		"only bad hex v1":             {req: req("t=" + ts + ",v1=zz"), want: ErrMismatch},
		"v1 with an extra byte":       {req: req("t=" + ts + "," + v1 + "00"), want: ErrMismatch},
		"only v0":                     {req: req("t=" + ts + ",v0=" + strings.TrimPrefix(v1, "v1=")), want: ErrMismatch},
		"no t":                        {req: req(v1), want: ErrMalformed},
		"repeated t":                  {req: req("t=" + ts + ",t=" + ts + "," + v1), want: ErrMalformed},
		"t not an integer":            {req: req("t=now," + v1), want: ErrMalformed},
		"item without =":              {req: req("t=" + ts + "," + v1 + ",garbage"), want: ErrMalformed},
		"item with two =":             {req: req("t=" + ts + "," + v1 + "="), want: ErrMalformed},
		"trailing comma":              {req: req("t=" + ts + "," + v1 + ","), want: ErrMalformed},
		"spaces are not trimmed":      {req: req("t=" + ts + ", " + v1), want: ErrMismatch},
		"t changed":                   {req: req("t=" + strconv.FormatInt(testNow.Unix()-1, 10) + "," + v1), want: ErrMismatch},
		"t with leading zero":         {req: req("t=0" + ts + "," + v1), want: ErrMismatch},
		"t with plus sign":            {req: req("t=+" + ts + "," + v1), want: ErrMismatch},
		"negative t is too old":       {req: req("t=-1," + v1), want: ErrTimestamp},
		"huge t is in the future":     {req: req("t=9223372036854775807," + v1), want: ErrMismatch},
		"t overflows":                 {req: req("t=9223372036854775808," + v1), want: ErrMalformed},
		"custom tolerance":            {req: req("t=" + strconv.FormatInt(testNow.Unix()-61, 10) + "," + v1), opt: &Options{Tolerance: time.Minute, Now: fixedNow}, want: ErrTimestamp},
		"secret is not decoded":       {req: req(stripeSign(strings.TrimPrefix(secret, "whsec_"), testNow.Unix(), body)), want: ErrMismatch},
		"signature over another body": {req: req(stripeSign(secret, testNow.Unix(), append([]byte("x"), body...))), want: ErrMismatch},
	}
	for name, c := range cases {
		c.secrets = []string{secret}
		cases[name] = c
	}
	runCases(t, f, cases, []string{secret, strings.TrimPrefix(v1, "v1=")})
}

func TestMercadoPagoRules(t *testing.T) {
	t.Parallel()
	f := fixtureNamed(t, "mercadopago/query-id")
	secret := f.cur.sign
	const rid = "req-1"
	const ts = "1750000000"
	req := func(xsig string, query map[string][]string, body string, rid string) Request {
		h := headers("X-Signature", xsig)
		if rid != "" {
			h["X-Request-Id"] = []string{rid}
		}
		return Request{Method: "POST", Header: h, Query: query, Body: []byte(body)}
	}
	q := func(id string) map[string][]string { return map[string][]string{"data.id": {id}} }
	hexOf := func(xsig string) string { _, v, _ := strings.Cut(xsig, "v1="); return v }
	ms := strconv.FormatInt(testNow.UnixMilli(), 10)
	tol := &Options{Tolerance: time.Minute, Now: fixedNow}
	cases := map[string]verifyCase{
		"numeric id from query":          {req: req(mercadoPagoSign(secret, "123", rid, ts), q("123"), "", rid)},
		"id as received (upper case)":    {req: req(mercadoPagoSign(secret, "ORD01JQ4S4KY", rid, ts), q("ORD01JQ4S4KY"), "", rid)},
		"id lower-cased":                 {req: req(mercadoPagoSign(secret, "ord01jq4s4ky", rid, ts), q("ORD01JQ4S4KY"), "", rid)},
		"id signed upper, sent lower":    {req: req(mercadoPagoSign(secret, "ORD01JQ4S4KY", rid, ts), q("ord01jq4s4ky"), "", rid), want: ErrMismatch},
		"query id wins over body id":     {req: req(mercadoPagoSign(secret, "123", rid, ts), q("123"), `{"data":{"id":"456"}}`, rid)},
		"body id ignored when in query":  {req: req(mercadoPagoSign(secret, "456", rid, ts), q("123"), `{"data":{"id":"456"}}`, rid), want: ErrMismatch},
		"body id as string":              {req: req(mercadoPagoSign(secret, "456", rid, ts), nil, `{"data":{"id":"456"}}`, rid)},
		"body id as number":              {req: req(mercadoPagoSign(secret, "456", rid, ts), nil, `{"data":{"id":456}}`, rid)},
		"body keys match exactly":        {req: req(mercadoPagoSign(secret, "456", rid, ts), nil, `{"Data":{"ID":"456"}}`, rid), want: ErrMismatch},
		"body keys case ignored → no id": {req: req(mercadoPagoSign(secret, "", rid, ts), nil, `{"Data":{"ID":"456"}}`, rid)},
		"body not JSON → no id":          {req: req(mercadoPagoSign(secret, "", rid, ts), nil, `id=456`, rid)},
		"body id beyond the size cap":    {req: req(mercadoPagoSign(secret, "456", rid, ts), nil, `{"data":{"id":"456"},"pad":"`+strings.Repeat("x", 64<<10)+`"}`, rid), want: ErrMismatch},
		"body id within the size cap":    {req: req(mercadoPagoSign(secret, "456", rid, ts), nil, `{"data":{"id":"456"},"pad":"`+strings.Repeat("x", 60<<10)+`"}`, rid)},
		"empty query id falls back":      {req: req(mercadoPagoSign(secret, "456", rid, ts), q(" "), `{"data":{"id":"456"}}`, rid)},
		"no request id":                  {req: req(mercadoPagoSign(secret, "123", "", ts), q("123"), "", "")},
		"no id, no request id":           {req: req(mercadoPagoSign(secret, "", "", ts), nil, "", "")},
		"request id dropped":             {req: req(mercadoPagoSign(secret, "123", rid, ts), q("123"), "", ""), want: ErrMismatch},
		"request id changed":             {req: req(mercadoPagoSign(secret, "123", rid, ts), q("123"), "", "req-2"), want: ErrMismatch},
		"id changed":                     {req: req(mercadoPagoSign(secret, "123", rid, ts), q("124"), "", rid), want: ErrMismatch},
		"spaces and key case tolerated":  {req: req(" TS = "+ts+" , V1 = "+hexOf(mercadoPagoSign(secret, "123", rid, ts))+" ", q(" 123 "), "", " "+rid+" ")},
		"v1 before ts":                   {req: req("v1="+hexOf(mercadoPagoSign(secret, "123", rid, ts))+",ts="+ts, q("123"), "", rid)},
		"unknown versions ignored":       {req: req(mercadoPagoSign(secret, "123", rid, ts)+",v2=zz,junk", q("123"), "", rid)},
		"last v1 wins":                   {req: req(mercadoPagoSign(secret, "123", rid, ts)+",v1="+strings.Repeat("0", 64), q("123"), "", rid), want: ErrMismatch},
		"upper-case hex":                 {req: req("ts="+ts+",v1="+strings.ToUpper(hexOf(mercadoPagoSign(secret, "123", rid, ts))), q("123"), "", rid)},
		"no ts":                          {req: req("v1="+hexOf(mercadoPagoSign(secret, "123", rid, ts)), q("123"), "", rid), want: ErrMalformed},
		"no v1":                          {req: req("ts="+ts+",v2=abc", q("123"), "", rid), want: ErrMalformed},
		"garbage":                        {req: req("this-is-garbage", q("123"), "", rid), want: ErrMalformed},
		"short v1":                       {req: req("ts="+ts+",v1=abcd", q("123"), "", rid), want: ErrMalformed},
		"ts changed":                     {req: req("ts=1750000001,v1="+hexOf(mercadoPagoSign(secret, "123", rid, ts)), q("123"), "", rid), want: ErrMismatch},
		"ts not checked by default":      {req: req(mercadoPagoSign(secret, "123", rid, "1"), q("123"), "", rid)},
		"ts not parsed by default":       {req: req(mercadoPagoSign(secret, "123", rid, "soon"), q("123"), "", rid)},
		"tolerance: seconds in window":   {req: req(mercadoPagoSign(secret, "123", rid, ts), q("123"), "", rid), opt: tol},
		"tolerance: millis in window":    {req: req(mercadoPagoSign(secret, "123", rid, ms), q("123"), "", rid), opt: tol},
		"tolerance: millis 61s old":      {req: req(mercadoPagoSign(secret, "123", rid, strconv.FormatInt(testNow.UnixMilli()-61_000, 10)), q("123"), "", rid), opt: tol, want: ErrTimestamp},
		"tolerance: millis 59.9s ahead":  {req: req(mercadoPagoSign(secret, "123", rid, strconv.FormatInt(testNow.UnixMilli()+59_900, 10)), q("123"), "", rid), opt: tol},
		"tolerance: millis 60.4s ahead":  {req: req(mercadoPagoSign(secret, "123", rid, strconv.FormatInt(testNow.UnixMilli()+60_400, 10)), q("123"), "", rid), opt: tol, want: ErrTimestamp},
		"tolerance: millis 60s ahead":    {req: req(mercadoPagoSign(secret, "123", rid, strconv.FormatInt(testNow.UnixMilli()+60_000, 10)), q("123"), "", rid), opt: tol},
		"tolerance: seconds 61s ahead":   {req: req(mercadoPagoSign(secret, "123", rid, "1750000061"), q("123"), "", rid), opt: tol, want: ErrTimestamp},
		"tolerance: ts not an integer":   {req: req(mercadoPagoSign(secret, "123", rid, "soon"), q("123"), "", rid), opt: tol, want: ErrMalformed},
		"tolerance: ts checked first":    {req: req(mercadoPagoSign("other", "123", rid, "1"), q("123"), "", rid), opt: tol, want: ErrTimestamp},
	}
	for name, c := range cases {
		c.secrets = []string{secret}
		cases[name] = c
	}
	runCases(t, f, cases, []string{secret})
}

func TestTwilioRules(t *testing.T) {
	t.Parallel()
	f := fixtureNamed(t, "twilio/form")
	token := f.cur.sign
	const u = "https://hooks.pipecore.test/twilio?tenant=acme"
	const ct = "application/x-www-form-urlencoded"
	form := func(body string, sig string) Request {
		return Request{Method: "POST", URL: u, Body: []byte(body), Header: headers("X-Twilio-Signature", sig, "Content-Type", ct)}
	}
	signed := func(body string) Request {
		vals, err := urlParseQuery(body)
		if err != nil {
			t.Fatal(err)
		}
		return form(body, twilioSign(token, u, vals))
	}
	// sigOver signs a literal string, to pin the exact concatenation.
	sigOver := func(s string) string {
		return base64.StdEncoding.EncodeToString(macSum(sha1New, []byte(token), []byte(s)))
	}
	at := func(rawURL string) Request {
		return Request{Method: "GET", URL: rawURL, Header: headers("X-Twilio-Signature", sigOver(rawURL))}
	}
	withURL := func(r Request, rawURL string) Request { c := clone(r); c.URL = rawURL; return c }
	jsonURL := func(body string) string {
		return "https://hooks.pipecore.test/twilio?bodySHA256=" + sha256Hex([]byte(body))
	}
	upperHashURL := "https://hooks.pipecore.test/twilio?bodySHA256=" + strings.ToUpper(sha256Hex([]byte(`{"a":1}`)))
	cases := map[string]verifyCase{
		"params sorted by name":                 {req: form("To=b&From=a&Body=hi", sigOver(u+"Bodyhi"+"Froma"+"Tob"))},
		"repeated names: every value, sorted":   {req: form("Media=b&Media=a&To=x", sigOver(u+"Mediaa"+"Mediab"+"Tox"))},
		"repeated names: one value only":        {req: form("Media=b&Media=a&To=x", sigOver(u+"Mediab"+"Tox")), want: ErrMismatch},
		"values are form-decoded":               {req: form("Body=a+b%26c&From=%2B1", sigOver(u+"Bodya b&c"+"From+1"))},
		"empty value kept":                      {req: form("Body=&To=x", sigOver(u+"Body"+"Tox"))},
		"param order on the wire is irrelevant": {req: form("To=x&Body=y", sigOver(u+"Bodyy"+"Tox"))},
		"byte-wise sort (upper before lower)":   {req: form("a=1&B=2", sigOver(u+"B2"+"a1"))},
		"param added":                           {req: withBody(signed("Body=hi&To=x"), "Body=hi&To=x&Extra=1"), want: ErrMismatch},
		"param removed":                         {req: withBody(signed("Body=hi&To=x"), "Body=hi"), want: ErrMismatch},
		"invalid form body":                     {req: withBody(signed("Body=hi"), "Body=%zz"), want: ErrMismatch},
		"semicolon in form body":                {req: form("Body=hi;To=x", sigOver(u+"Bodyhi;To=x")), want: ErrMismatch},
		"form params ignored when not a form":   {req: withHeader(form("Body=hi", sigOver(u+"Bodyhi")), "Content-Type", "text/plain"), want: ErrMismatch},
		"charset parameter on content type":     {req: withHeader(signed("Body=hi"), "Content-Type", "Application/X-WWW-Form-URLEncoded ; charset=UTF-8")},
		"signature over URL alone, form body":   {req: form("Body=hi", sigOver(u)), want: ErrMismatch},
		"empty form body":                       {req: form("", sigOver(u))},
		"URL changed":                           {req: withURL(signed("Body=hi"), u+"&x=1"), want: ErrMismatch},
		"scheme changed":                        {req: withURL(signed("Body=hi"), strings.Replace(u, "https", "http", 1)), want: ErrMismatch},
		"empty URL":                             {req: withURL(signed("Body=hi"), ""), want: ErrMalformed},
		"https, signed with default port":       {req: withHeader(at("https://h.test/p?q=1"), "X-Twilio-Signature", sigOver("https://h.test:443/p?q=1"))},
		"https, signed without port":            {req: withURL(at("https://h.test/p?q=1"), "https://h.test:8443/p?q=1")},
		"http, signed with default port":        {req: withHeader(at("http://h.test/p"), "X-Twilio-Signature", sigOver("http://h.test:80/p"))},
		"http, custom port signed with it":      {req: at("http://h.test:8080/p")},
		"custom port not replaced by default":   {req: withHeader(at("https://h.test:8443/p"), "X-Twilio-Signature", sigOver("https://h.test:443/p")), want: ErrMismatch},
		"userinfo, default port added":          {req: withHeader(at("https://u:p@h.test/p"), "X-Twilio-Signature", sigOver("https://u:p@h.test:443/p"))},
		"json: bodySHA256 after a fragment":     {req: Request{Method: "POST", URL: "https://h.test/p?a=1#&bodySHA256=" + sha256Hex([]byte("{}")), Body: []byte(`{}`), Header: headers("X-Twilio-Signature", sigOver("https://h.test/p?a=1#&bodySHA256="+sha256Hex([]byte("{}"))))}, want: ErrMismatch},
		"userinfo and port":                     {req: withURL(at("https://u:p@h.test/p"), "https://u:p@h.test:9/p")},
		"IPv6 literal with port":                {req: withURL(at("https://[::1]/p"), "https://[::1]:8443/p")},
		"IPv6 literal, default port added":      {req: withHeader(at("https://[::1]/p"), "X-Twilio-Signature", sigOver("https://[::1]:443/p"))},
		"no path":                               {req: withHeader(at("https://h.test?x=1"), "X-Twilio-Signature", sigOver("https://h.test:443?x=1"))},
		"colon in path is not a port":           {req: withHeader(at("https://h.test/a:b"), "X-Twilio-Signature", sigOver("https://h.test:443/a:b"))},
		"not a URL: used as is":                 {req: at("hooks.pipecore.test/p")},
		"GET with a body nothing covers":        {req: withBody(at("https://h.test/p"), "x"), want: ErrMismatch},
		"json: body hash matches":               {req: Request{Method: "POST", URL: jsonURL(`{"a":1}`), Body: []byte(`{"a":1}`), Header: headers("X-Twilio-Signature", sigOver(jsonURL(`{"a":1}`)), "Content-Type", "application/json")}},
		"json: upper-case body hash":            {req: Request{Method: "POST", URL: upperHashURL, Body: []byte(`{"a":1}`), Header: headers("X-Twilio-Signature", sigOver(upperHashURL))}},
		"json: body changed":                    {req: Request{Method: "POST", URL: jsonURL(`{"a":1}`), Body: []byte(`{"a":2}`), Header: headers("X-Twilio-Signature", sigOver(jsonURL(`{"a":1}`)))}, want: ErrMismatch},
		"json: body hash not hex":               {req: Request{Method: "POST", URL: u + "&bodySHA256=xyz", Body: []byte(`{}`), Header: headers("X-Twilio-Signature", sigOver(u+"&bodySHA256=xyz"))}, want: ErrMismatch},
		"json: form content type ignored":       {req: Request{Method: "POST", URL: jsonURL("a=1"), Body: []byte("a=1"), Header: headers("X-Twilio-Signature", sigOver(jsonURL("a=1")), "Content-Type", ct)}},
		"json: empty bodySHA256 is absent":      {req: Request{Method: "POST", URL: u + "&bodySHA256=", Body: []byte(`{}`), Header: headers("X-Twilio-Signature", sigOver(u+"&bodySHA256="))}, want: ErrMismatch},
		"json: bodySHA256 in fragment ignored":  {req: Request{Method: "POST", URL: u + "#bodySHA256=" + sha256Hex([]byte("{}")), Body: []byte(`{}`), Header: headers("X-Twilio-Signature", sigOver(u+"#bodySHA256="+sha256Hex([]byte("{}"))))}, want: ErrMismatch},
		"signature not padded":                  {req: withHeader(signed("Body=hi"), "X-Twilio-Signature", strings.TrimRight(twilioSign(token, u, mustQuery("Body=hi")), "=")), want: ErrMalformed},
		"signature in URL alphabet":             {req: form("Body=hi", "-_-_-_-_-_-_-_-_-_-_-_-_-_8="), want: ErrMalformed},
		"signature too long":                    {req: form("Body=hi", base64.StdEncoding.EncodeToString(make([]byte, 32))), want: ErrMalformed},
	}
	for name, c := range cases {
		c.secrets = []string{token}
		cases[name] = c
	}
	runCases(t, f, cases, []string{token})
}

// TestTwilioPublishedVectors checks the signatures published in twilio-go's
// request validator tests (auth token "12345").
func TestTwilioPublishedVectors(t *testing.T) {
	t.Parallel()
	f := fixtureNamed(t, "twilio/form")
	const base = "https://mycompany.com/myapp.php?foo=1&bar=2"
	const bodyHash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
	formBody := "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212"
	jsonBody := `{"property": "value", "boolean": true}`
	post := func(rawURL, body, ct, sig string) Request {
		return Request{Method: "POST", URL: rawURL, Body: []byte(body), Header: headers("X-Twilio-Signature", sig, "Content-Type", ct)}
	}
	const ct = "application/x-www-form-urlencoded"
	cases := map[string]verifyCase{
		"form":                                 {req: post(base, formBody, ct, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")},
		"form, wrong signature":                {req: post(base, formBody, ct, "RSOYDt4T1cUTdK1PDd93/VVr8B4="), want: ErrMismatch},
		"non-canonical base64 (trailing bits)": {req: post(base, formBody, ct, "RSOYDt4T1cUTdK1PDd93/VVr8B9="), want: ErrMalformed},
		"https with port, signed without it":   {req: post(strings.Replace(base, ".com", ".com:1234", 1), formBody, ct, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")},
		"https without port, signed with 443":  {req: post(base, formBody, ct, "kvajT1Ptam85bY51eRf/AJRuM3w=")},
		"http without port, signed with 80":    {req: post(strings.Replace(base, "https", "http", 1), formBody, ct, "0ZXoZLH/DfblKGATFgpif+LLRf4=")},
		"http with port, signed with it":       {req: post(strings.Replace(strings.Replace(base, ".com", ".com:1234", 1), "https", "http", 1), formBody, ct, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=")},
		"json body":                            {req: post(base+"&bodySHA256="+bodyHash, jsonBody, "application/json", "a9nBmqA0ju/hNViExpshrM61xv4=")},
		"json body, no other params":           {req: post("https://mycompany.com/myapp.php?bodySHA256="+bodyHash, jsonBody, "application/json", "y77kIzt2vzLz71DgmJGsen2scGs=")},
		"json body, tampered":                  {req: post(base+"&bodySHA256="+bodyHash, jsonBody+" ", "application/json", "a9nBmqA0ju/hNViExpshrM61xv4="), want: ErrMismatch},
	}
	for name, c := range cases {
		c.secrets = []string{"12345"}
		cases[name] = c
	}
	runCases(t, f, cases, []string{"12345"})
}

func TestSvixRules(t *testing.T) {
	t.Parallel()
	f := fixtureNamed(t, "svix")
	secret := f.cur.sign
	raw := strings.TrimPrefix(secret, "whsec_")
	const id = "msg_1"
	ts := strconv.FormatInt(testNow.Unix(), 10)
	body := []byte(`{"type":"email.delivered"}`)
	sig := svixSign(secret, id, ts, body)
	other := svixSign(f.wrong.sign, id, ts, body)
	req := func(kv ...string) Request { return Request{Method: "POST", Header: headers(kv...), Body: body} }
	svixReq := func(sigs string) Request { return req("Svix-Id", id, "Svix-Timestamp", ts, "Svix-Signature", sigs) }
	cases := map[string]verifyCase{
		"several entries, one matches":     {req: svixReq(other + " " + sig)},
		"unknown versions ignored":         {req: svixReq("v1a,abc v2," + strings.TrimPrefix(sig, "v1,") + " " + sig)},
		"only another version":             {req: svixReq("v2," + strings.TrimPrefix(sig, "v1,")), want: ErrMismatch},
		"entry without comma skipped":      {req: svixReq("garbage " + sig)},
		"double space tolerated":           {req: svixReq(other + "  " + sig)},
		"non-canonical padding rejected":   {req: svixReq(strings.TrimSuffix(sig, "=")), want: ErrMismatch},
		"id changed":                       {req: req("Svix-Id", "msg_2", "Svix-Timestamp", ts, "Svix-Signature", sig), want: ErrMismatch},
		"timestamp changed":                {req: req("Svix-Id", id, "Svix-Timestamp", strconv.FormatInt(testNow.Unix()+1, 10), "Svix-Signature", sig), want: ErrMismatch},
		"timestamp with leading zero":      {req: req("Svix-Id", id, "Svix-Timestamp", "0"+ts, "Svix-Signature", sig), want: ErrMismatch},
		"timestamp in milliseconds":        {req: req("Svix-Id", id, "Svix-Timestamp", ts+"000", "Svix-Signature", sig), want: ErrTimestamp},
		"timestamp not an integer":         {req: req("Svix-Id", id, "Svix-Timestamp", "now", "Svix-Signature", sig), want: ErrMalformed},
		"webhook-* headers":                {req: req("Webhook-Id", id, "Webhook-Timestamp", ts, "Webhook-Signature", sig)},
		"incomplete svix set falls back":   {req: req("Svix-Id", id, "Webhook-Id", id, "Webhook-Timestamp", ts, "Webhook-Signature", sig)},
		"mixed sets are not combined":      {req: req("Svix-Id", id, "Svix-Timestamp", ts, "Webhook-Signature", sig), want: ErrMissingSignature},
		"svix set preferred":               {req: req("Svix-Id", id, "Svix-Timestamp", ts, "Svix-Signature", sig, "Webhook-Id", "x", "Webhook-Timestamp", "x", "Webhook-Signature", "x")},
		"missing id":                       {req: req("Svix-Timestamp", ts, "Svix-Signature", sig), want: ErrMissingSignature},
		"secret without whsec_ prefix":     {req: svixReq(sig), secrets: []string{raw}},
		"secret used raw is wrong":         {req: svixReq(svixSignRawKey(secret, id+"."+ts+"."+string(body))), want: ErrMismatch},
		"secret not base64":                {req: svixReq(sig), secrets: []string{"whsec_%%%"}, want: ErrNoSecret},
		"bare whsec_ prefix":               {req: svixReq(sig), secrets: []string{"whsec_"}, want: ErrNoSecret},
		"bad secret next to a good one":    {req: svixReq(sig), secrets: []string{"whsec_%%%", secret}},
		"bad secret next to a wrong one":   {req: svixReq(sig), secrets: []string{"whsec_%%%", f.wrong.sign}, want: ErrMismatch},
		"long secret (over 64 bytes)":      {req: svixReq(svixSign(whsec(strings.Repeat("k", 100)), id, ts, body)), secrets: []string{whsec(strings.Repeat("k", 100))}},
		"timestamp checked before the MAC": {req: req("Svix-Id", id, "Svix-Timestamp", "1", "Svix-Signature", "v1,x"), want: ErrTimestamp},
		"custom tolerance, future":         {req: req("Svix-Id", id, "Svix-Timestamp", strconv.FormatInt(testNow.Unix()+31, 10), "Svix-Signature", sig), opt: &Options{Tolerance: 30 * time.Second, Now: fixedNow}, want: ErrTimestamp},
		"negative tolerance means default": {req: req("Svix-Id", id, "Svix-Timestamp", strconv.FormatInt(testNow.Unix()-299, 10), "Svix-Signature", svixSign(secret, id, strconv.FormatInt(testNow.Unix()-299, 10), body)), opt: &Options{Tolerance: -1, Now: fixedNow}},
		"far-future timestamp saturates":   {req: req("Svix-Id", id, "Svix-Timestamp", "9223372036854775807", "Svix-Signature", sig), want: ErrTimestamp},
		"far-past timestamp saturates":     {req: req("Svix-Id", id, "Svix-Timestamp", "-9223372036854775808", "Svix-Signature", sig), want: ErrTimestamp},
	}
	for name, c := range cases {
		if c.secrets == nil {
			c.secrets = []string{secret}
		}
		cases[name] = c
	}
	runCases(t, f, cases, []string{secret, raw, strings.TrimPrefix(sig, "v1,")})
}

func TestHMACSHA256Rules(t *testing.T) {
	t.Parallel()
	f := fixtureNamed(t, "hmac-sha256/default-header")
	secret := f.cur.sign
	body := []byte(`{"id":"evt_1"}`)
	mac := macHex(sha256New, secret, body)
	req := func(kv ...string) Request { return Request{Method: "POST", Header: headers(kv...), Body: body} }
	cases := map[string]verifyCase{
		"default header, bare hex":   {req: req("X-Signature", mac)},
		"prefix":                     {req: req("X-Signature", "sha256="+mac)},
		"upper-case hex":             {req: req("X-Signature", strings.ToUpper(mac))},
		"surrounding spaces":         {req: req("X-Signature", "\t"+mac+" ")},
		"upper-case prefix rejected": {req: req("X-Signature", "SHA256="+mac), want: ErrMalformed},
		"other prefix":               {req: req("X-Signature", "sha1="+mac), want: ErrMalformed},
		"truncated":                  {req: req("X-Signature", mac[:62]), want: ErrMalformed},
		"extended":                   {req: req("X-Signature", mac+"00"), want: ErrMalformed},
		"wrong header":               {req: req("X-Uber-Signature", mac), want: ErrMissingSignature},
		"override header":            {req: req("X-Uber-Signature", mac), opt: &Options{Header: "X-UBER-SIGNATURE", Now: fixedNow}},
		"override ignores default":   {req: req("X-Signature", mac), opt: &Options{Header: "X-Uber-Signature", Now: fixedNow}, want: ErrMissingSignature},
		"only first value counts":    {req: Request{Header: map[string][]string{"X-Signature": {strings.Repeat("0", 64), mac}}, Body: body}, want: ErrMismatch},
	}
	for name, c := range cases {
		c.secrets = []string{secret}
		cases[name] = c
	}
	runCases(t, f, cases, []string{secret, mac})
}

func TestMetaRules(t *testing.T) {
	t.Parallel()
	f := fixtureNamed(t, "meta-sha256")
	secret := f.cur.sign
	body := []byte("{\"entry\":[{\"changes\":[{\"value\":{\"text\":\"\\u00e9 \xf0\x9f\x98\x80\"}}]}]}")
	mac := macHex(sha256New, secret, body)
	req := func(v string) Request {
		return Request{Method: "POST", Header: headers("X-Hub-Signature-256", v), Body: body}
	}
	cases := map[string]verifyCase{
		"escaped and raw non-ASCII":   {req: req("sha256=" + mac)},
		"upper-case hex":              {req: req("sha256=" + strings.ToUpper(mac))},
		"no prefix":                   {req: req(mac), want: ErrMalformed},
		"space after prefix":          {req: req("sha256= " + mac), want: ErrMalformed},
		"sha1 header value":           {req: req("sha1=" + mac[:40]), want: ErrMalformed},
		"access token is not the key": {req: req("sha256=" + macHex(sha256New, "EAAG-access-token", body)), want: ErrMismatch},
	}
	for name, c := range cases {
		c.secrets = []string{secret}
		cases[name] = c
	}
	runCases(t, f, cases, []string{secret, mac})
}

func TestECDSARules(t *testing.T) {
	t.Parallel()
	f := fixtureNamed(t, "sendgrid-ecdsa")
	pubDER, _ := base64.StdEncoding.DecodeString(f.cur.verify)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	ts := "1750000000"
	body := []byte(`[{"event":"open"}]`)
	sig := ecdsaSign(t, f.cur.sign, ts, body)
	req := func(sig, ts string) Request {
		return Request{Method: "POST", Body: body, Header: headers(
			"X-Twilio-Email-Event-Webhook-Signature", sig, "X-Twilio-Email-Event-Webhook-Timestamp", ts)}
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.MarshalPKIXPublicKey(edPub)
	if err != nil {
		t.Fatal(err)
	}
	edSPKI := base64.StdEncoding.EncodeToString(edDER) // a valid key, but not ECDSA
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384DER, err := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p384SPKI := base64.StdEncoding.EncodeToString(p384DER)
	p384Digest := sha256.Sum256(append([]byte(ts), body...))
	p384DERSig, err := ecdsa.SignASN1(rand.Reader, p384, p384Digest[:])
	if err != nil {
		t.Fatal(err)
	}
	p384Sig := base64.StdEncoding.EncodeToString(p384DERSig) // valid for the P-384 key
	sigDER, _ := base64.StdEncoding.DecodeString(sig)
	cases := map[string]verifyCase{
		"base64 DER key":                {req: req(sig, ts), secrets: []string{f.cur.verify}},
		"PEM key":                       {req: req(sig, ts), secrets: []string{pubPEM}},
		"key with surrounding spaces":   {req: req(sig, ts), secrets: []string{" " + f.cur.verify + "\n"}},
		"timestamp changed":             {req: req(sig, "1750000001"), secrets: []string{f.cur.verify}, want: ErrMismatch},
		"timestamp is not separated":    {req: req(ecdsaSign(t, f.cur.sign, ts+".", body), ts), secrets: []string{f.cur.verify}, want: ErrMismatch},
		"missing timestamp":             {req: withoutHeader(req(sig, ts), "X-Twilio-Email-Event-Webhook-Timestamp"), secrets: []string{f.cur.verify}, want: ErrMissingSignature},
		"not DER":                       {req: req(base64.StdEncoding.EncodeToString([]byte("not a DER signature")), ts), secrets: []string{f.cur.verify}, want: ErrMismatch},
		"trailing data after DER":       {req: req(base64.StdEncoding.EncodeToString(append(sigDER, 0)), ts), secrets: []string{f.cur.verify}, want: ErrMismatch},
		"empty signature after decode":  {req: req("====", ts), secrets: []string{f.cur.verify}, want: ErrMalformed},
		"key not base64":                {req: req(sig, ts), secrets: []string{"%%%"}, want: ErrNoSecret},
		"key is not ECDSA":              {req: req(sig, ts), secrets: []string{edSPKI}, want: ErrNoSecret},
		"key is not P-256":              {req: req(p384Sig, ts), secrets: []string{p384SPKI}, want: ErrNoSecret},
		"PEM of another type":           {req: req(sig, ts), secrets: []string{strings.ReplaceAll(pubPEM, "PUBLIC KEY", "CERTIFICATE")}, want: ErrNoSecret},
		"bad key next to a good one":    {req: req(sig, ts), secrets: []string{"%%%", f.cur.verify}},
		"private key is not accepted":   {req: req(sig, ts), secrets: []string{f.cur.sign}, want: ErrNoSecret},
		"tolerance off: old timestamp":  {req: req(ecdsaSign(t, f.cur.sign, "1", body), "1"), secrets: []string{f.cur.verify}},
		"tolerance off: not a number":   {req: req(ecdsaSign(t, f.cur.sign, "soon", body), "soon"), secrets: []string{f.cur.verify}},
		"tolerance on: old timestamp":   {req: req(ecdsaSign(t, f.cur.sign, "1", body), "1"), secrets: []string{f.cur.verify}, opt: &Options{Tolerance: time.Minute, Now: fixedNow}, want: ErrTimestamp},
		"tolerance on: timestamp in ms": {req: req(ecdsaSign(t, f.cur.sign, "1750000000000", body), "1750000000000"), secrets: []string{f.cur.verify}, opt: &Options{Tolerance: time.Minute, Now: fixedNow}, want: ErrTimestamp},
	}
	runCases(t, f, cases, []string{f.cur.sign})
}

// TestSendGridPublishedVector checks the vector published in sendgrid-go's
// eventwebhook tests.
func TestSendGridPublishedVector(t *testing.T) {
	t.Parallel()
	f := fixtureNamed(t, "sendgrid-ecdsa")
	const (
		pub = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
		sig = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="
		ts  = "1588788367"
	)
	body := `{"category":"example_payload","event":"test_event","message_id":"message_id"}`
	req := func(body, sig, ts string) Request {
		return Request{Method: "POST", Body: []byte(body), Header: headers(
			"X-Twilio-Email-Event-Webhook-Signature", sig, "X-Twilio-Email-Event-Webhook-Timestamp", ts)}
	}
	cases := map[string]verifyCase{
		"published":          {req: req(body, sig, ts)},
		"other payload":      {req: req("this is not valid payload for the given signature", sig, ts), want: ErrMismatch},
		"invalid timestamp":  {req: req(body, sig, "invalid timestamp"), want: ErrMismatch},
		"corrupt signature":  {req: req(body, sig+"causing failure", ts), want: ErrMalformed},
		"our key":            {req: req(body, sig, ts), secrets: []string{f.cur.verify}, want: ErrMismatch},
		"tolerance enforced": {req: req(body, sig, ts), opt: &Options{Tolerance: time.Hour, Now: fixedNow}, want: ErrTimestamp},
	}
	for name, c := range cases {
		if c.secrets == nil {
			c.secrets = []string{pub}
		}
		cases[name] = c
	}
	runCases(t, f, cases, nil)
}

func TestStaticTokenRules(t *testing.T) {
	t.Parallel()
	f := fixtureNamed(t, "static-token")
	token := f.cur.sign
	req := func(v string) Request { return Request{Method: "POST", Header: headers("Authorization", v)} }
	cases := map[string]verifyCase{
		"raw token":                            {req: req(token)},
		"Bearer prefix":                        {req: req("Bearer " + token)},
		"BEARER prefix":                        {req: req("BEARER " + token)},
		"Basic prefix":                         {req: req("Basic " + token), want: ErrMismatch},
		"prefix of the token":                  {req: req(token[:len(token)-1]), want: ErrMismatch},
		"token plus a byte":                    {req: req(token + "x"), want: ErrMismatch},
		"token in another case":                {req: req(strings.ToUpper(token)), want: ErrMismatch},
		"bare Bearer":                          {req: req("Bearer "), want: ErrMismatch},
		"token that looks like a prefix":       {req: req("Bearer xyz"), secrets: []string{"Bearer xyz"}},
		"configured with Bearer, sent without": {req: req("xyz"), secrets: []string{"Bearer xyz"}, want: ErrMismatch},
		"rotation":                             {req: req("Bearer " + f.old.sign), secrets: []string{f.old.sign, token}},
	}
	for name, c := range cases {
		if c.secrets == nil {
			c.secrets = []string{token}
		}
		cases[name] = c
	}
	runCases(t, f, cases, []string{token, f.old.sign})
}

// TestErrorsNeverContainSecrets drives every scheme through its failure
// modes with distinctive secrets and header values, and checks that no
// error text repeats any of them.
func TestErrorsNeverContainSecrets(t *testing.T) {
	t.Parallel()
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			valid := f.sign(t, f.cur, testNow, f.body)
			forbidden := append(f.secretStrings(), f.garbled)
			for _, vs := range valid.Header {
				for _, v := range vs {
					if len(v) >= 8 { // skip short, generic values like "1750000000"
						forbidden = append(forbidden, v)
					}
				}
			}
			reqs := []Request{
				valid, f.flip(valid), appendNewline(valid),
				withHeader(valid, f.sigHeader, f.garbled), withoutHeader(valid, f.sigHeader),
				f.sign(t, f.cur, testNow.Add(-time.Hour), f.body),
			}
			secretSets := [][]string{{f.wrong.verify}, {f.tenantB.verify, f.old.verify}, {""}, {"whsec_%%%"}}
			errs := 0
			for _, r := range reqs {
				for _, s := range secretSets {
					err := Verify(f.scheme, r, s, f.options())
					if err == nil {
						continue
					}
					errs++
					for _, bad := range forbidden {
						if bad != "" && strings.Contains(err.Error(), bad) {
							t.Fatalf("error %q leaks %q", err, bad)
						}
					}
					if !strings.HasPrefix(err.Error(), "signature: ") {
						t.Errorf("error %q lacks the package prefix", err)
					}
				}
			}
			if errs < len(reqs) {
				t.Fatalf("only %d errors produced; the test would prove nothing", errs)
			}
		})
	}
}

func withBody(r Request, body string) Request {
	c := clone(r)
	c.Body = []byte(body)
	return c
}
