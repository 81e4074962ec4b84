package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"strings"

	"github.com/pipecore/pipecore/sdk/provider"
)

const (
	mercadoPagoHeader    = "X-Signature"
	mercadoPagoRequestID = "X-Request-Id"
	mercadoPagoDataID    = "data.id" // query parameter of the notification URL
)

// mercadoPagoTryLowercaseDataID decides how an alphanumeric data.id enters
// the manifest. MercadoPago's docs say it is lower-cased; SDK v1.12.0 did
// that, and v1.13.0 stopped ("preserve data.id case"), saying MercadoPago
// signs the original case. The sources conflict, so when this is true the
// verifier tries the data.id as received first and then, if it has any
// upper-case letter, its lower-cased form; either may match. Numeric ids
// are unaffected. Setting it to false accepts only the case as received.
const mercadoPagoTryLowercaseDataID = true

// mercadoPagoMillis is the smallest ts read as milliseconds rather than
// seconds when a tolerance is enforced (1e12 ms is September 2001; 1e12 s
// is in the year 33658).
const mercadoPagoMillis = 1_000_000_000_000

// mercadoPagoMaxBodyForID caps the body searched for data.id. MercadoPago
// notifications are well under 1 KB; the cap keeps a forged request with a
// well-formed header from making the verifier parse megabytes of JSON.
const mercadoPagoMaxBodyForID = 64 << 10

// verifyMercadoPago implements provider.SchemeMercadoPago.
//
// Headers: x-signature: ts=<ts>,v1=<hex> and x-request-id: <id>.
//
// Signed: HMAC-SHA256 with the application's webhook secret over the
// manifest "id:<data.id>;request-id:<x-request-id>;ts:<ts>;", hex encoded
// (either case accepted). A section whose value is absent (no data.id, no
// x-request-id) is left out together with its ";". The ts is used verbatim.
//
// data.id comes from the "data.id" query parameter of the notification URL
// (r.Query). Only when the query has none is it read from the JSON body's
// top-level "data" object, key "id" (exact keys; a string, or a number used
// as written), and only from bodies of at most mercadoPagoMaxBodyForID
// bytes: that value is only an input to the manifest, so it is
// authenticated by the MAC like everything else, and nothing else in the
// body is looked at. See mercadoPagoTryLowercaseDataID for its case.
//
// x-signature is split on ","; each item on its first "="; keys are
// trimmed and case-insensitive, items without "=" are skipped, and for a
// repeated key the last wins, as MercadoPago's SDK does. A missing ts or
// v1, or a v1 that is not 64 hex digits, is ErrMalformed.
//
// The unit of ts (seconds or milliseconds) is not verified, so no tolerance
// is enforced by default. With Options.Tolerance > 0, ts must be a decimal
// integer (else ErrMalformed), values of at least 1e12 are read as
// milliseconds and smaller ones as seconds, and a ts further than the
// tolerance from now, in either direction, is ErrTimestamp.
func verifyMercadoPago(r *Request, secrets []string, opt *Options) error {
	const scheme = provider.SchemeMercadoPago
	h := strings.TrimSpace(headerValue(r.Header, mercadoPagoHeader))
	if h == "" {
		return fail(ErrMissingSignature, scheme, mercadoPagoHeader, "")
	}
	var ts, v1 string
	for rest := h; ; {
		item, tail, more := strings.Cut(rest, ",")
		if k, v, ok := strings.Cut(item, "="); ok {
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch {
			case strings.EqualFold(k, "ts"):
				ts = v
			case strings.EqualFold(k, "v1"):
				v1 = v
			}
		}
		if !more {
			break
		}
		rest = tail
	}
	if ts == "" {
		return fail(ErrMalformed, scheme, mercadoPagoHeader, "ts is missing")
	}
	if v1 == "" {
		return fail(ErrMalformed, scheme, mercadoPagoHeader, "v1 is missing")
	}
	var sig [sha256.Size]byte
	if !decodeHex(sig[:], v1) {
		return fail(ErrMalformed, scheme, mercadoPagoHeader, "v1 is not a hex SHA-256 MAC")
	}
	if tol := opt.Tolerance; tol > 0 {
		n, ok := parseUnix(ts)
		if !ok {
			return fail(ErrMalformed, scheme, mercadoPagoHeader, "ts is not an integer")
		}
		now := opt.now()
		d := age(now, n)
		if n >= mercadoPagoMillis || n <= -mercadoPagoMillis {
			d = ageMillis(now, n)
		}
		if !within(d, tol) {
			return fail(ErrTimestamp, scheme, mercadoPagoHeader, "ts is outside the tolerance")
		}
	}

	requestID := strings.TrimSpace(headerValue(r.Header, mercadoPagoRequestID))
	ids := [2]string{mercadoPagoID(r)}
	n := 1
	if mercadoPagoTryLowercaseDataID {
		if lower := strings.ToLower(ids[0]); lower != ids[0] {
			ids[1], n = lower, 2
		}
	}
	var manifests [2][]byte
	for i, id := range ids[:n] {
		manifests[i] = mercadoPagoManifest(id, requestID, ts)
	}
	var sum [sha256.Size]byte
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		for _, m := range manifests[:n] {
			mac := hmac.New(sha256.New, []byte(secret))
			_, _ = mac.Write(m)
			if hmac.Equal(mac.Sum(sum[:0]), sig[:]) {
				return nil
			}
		}
	}
	return fail(ErrMismatch, scheme, mercadoPagoHeader, "")
}

// mercadoPagoManifest builds "id:<id>;request-id:<requestID>;ts:<ts>;",
// leaving out a section whose value is empty.
func mercadoPagoManifest(id, requestID, ts string) []byte {
	m := make([]byte, 0, len("id:;request-id:;ts:;")+len(id)+len(requestID)+len(ts))
	if id != "" {
		m = append(append(append(m, "id:"...), id...), ';')
	}
	if requestID != "" {
		m = append(append(append(m, "request-id:"...), requestID...), ';')
	}
	return append(append(append(m, "ts:"...), ts...), ';')
}

// mercadoPagoID returns the trimmed data.id for the manifest: the query
// parameter when present, else the body's data.id, else "".
func mercadoPagoID(r *Request) string {
	if v := r.Query[mercadoPagoDataID]; len(v) > 0 {
		if id := strings.TrimSpace(v[0]); id != "" {
			return id
		}
	}
	if len(r.Body) > mercadoPagoMaxBodyForID {
		return ""
	}
	return strings.TrimSpace(bodyDataID(r.Body))
}

// bodyDataID extracts the top-level data.id of a JSON body, matching keys
// exactly. It returns "" for anything it does not understand.
func bodyDataID(body []byte) string {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return ""
	}
	var data map[string]json.RawMessage
	if json.Unmarshal(top["data"], &data) != nil {
		return ""
	}
	raw := data["id"]
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return s
	case c == '-' || '0' <= c && c <= '9':
		return string(raw)
	}
	return ""
}
