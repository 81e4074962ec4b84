package signature

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Twilio's scheme is HMAC-SHA1; HMAC does not rely on SHA-1's collision resistance.
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/pipecore/pipecore/sdk/provider"
)

const (
	twilioHeader        = "X-Twilio-Signature"
	twilioBodyHashParam = "bodySHA256"
	formMediaType       = "application/x-www-form-urlencoded"
)

// verifyTwilio implements provider.SchemeTwilio.
//
// Header: X-Twilio-Signature: <base64 of HMAC-SHA1>
//
// Signed: HMAC-SHA1 with the account's Auth Token, base64 (standard
// alphabet, padded). What is signed depends on the request:
//
//   - When r.URL's query has a non-empty bodySHA256 parameter (Twilio's
//     JSON-body webhooks), the MAC covers r.URL alone, bodySHA256
//     included, and the hex SHA-256 of the raw body must equal bodySHA256.
//   - Otherwise, for an application/x-www-form-urlencoded body, the MAC
//     covers r.URL followed by every form parameter as name+value with no
//     separators, sorted by name (byte-wise). A name that repeats
//     contributes name+value once per value, those values sorted byte-wise.
//     Twilio's documentation of repeated names is not verified; twilio-go
//     keeps only one value per name. A body that is not valid form
//     encoding is ErrMismatch.
//   - Otherwise (GET webhooks, whose parameters are in the URL), the MAC
//     covers r.URL alone and the body must be empty: a non-empty body that
//     is neither form-encoded nor covered by bodySHA256 is ErrMismatch,
//     because nothing would authenticate it.
//
// As twilio-go does, two spellings of r.URL are accepted: with the port
// (the default port of http or https added when r.URL has none) and with
// the port removed; the spelling received is tried first. The rest of
// r.URL is used byte for byte, so it must be the public URL exactly as the
// provider requested it, including the query.
//
// No timestamp is signed. A header that is not base64 of 20 bytes is
// ErrMalformed; an empty r.URL is ErrMalformed too.
func verifyTwilio(r *Request, secrets []string) error {
	const scheme = provider.SchemeTwilio
	h := headerValue(r.Header, twilioHeader)
	if h == "" {
		return fail(ErrMissingSignature, scheme, twilioHeader, "")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(h)
	if err != nil || len(sig) != sha1.Size {
		return fail(ErrMalformed, scheme, twilioHeader, "not base64 of an HMAC-SHA1")
	}
	if r.URL == "" {
		return fail(ErrMalformed, scheme, twilioHeader, "request URL is empty")
	}

	bodyHash, _ := rawQueryParam(r.URL, twilioBodyHashParam)
	hasBodyHash := bodyHash != "" // an empty bodySHA256 counts as absent, as in twilio-go
	var params []byte
	switch {
	case hasBodyHash:
	case isForm(headerValue(r.Header, "Content-Type")):
		form, err := url.ParseQuery(string(r.Body))
		if err != nil {
			return fail(ErrMismatch, scheme, twilioHeader, "body is not valid form encoding")
		}
		params = twilioParams(form)
	case len(r.Body) != 0:
		return fail(ErrMismatch, scheme, twilioHeader, "body is neither form-encoded nor covered by bodySHA256")
	}

	if !twilioMatches(secrets, r.URL, params, sig) {
		return fail(ErrMismatch, scheme, twilioHeader, "")
	}
	if hasBodyHash {
		var want [sha256.Size]byte
		if !decodeHex(want[:], bodyHash) {
			return fail(ErrMismatch, scheme, twilioHeader, "bodySHA256 is not a hex SHA-256")
		}
		got := sha256.Sum256(r.Body)
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return fail(ErrMismatch, scheme, twilioHeader, "body does not match bodySHA256")
		}
	}
	return nil
}

// twilioMatches reports whether any secret signs either spelling of rawURL
// followed by params. The spelling received is tried first.
func twilioMatches(secrets []string, rawURL string, params, sig []byte) bool {
	urls := [2]string{rawURL}
	n := 1
	withPort, withoutPort := twilioURLs(rawURL)
	if withPort != rawURL {
		urls[1], n = withPort, 2
	} else if withoutPort != rawURL {
		urls[1], n = withoutPort, 2
	}
	var sum [sha1.Size]byte
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		for _, u := range urls[:n] {
			mac := hmac.New(sha1.New, []byte(secret))
			_, _ = io.WriteString(mac, u)
			_, _ = mac.Write(params)
			if hmac.Equal(mac.Sum(sum[:0]), sig) {
				return true
			}
		}
	}
	return false
}

// twilioParams concatenates name+value for every parameter of form, sorted
// by name and then by value.
func twilioParams(form url.Values) []byte {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(form)) {
		vs := form[k]
		slices.Sort(vs)
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, v...)
		}
	}
	return b
}

// twilioURLs returns rawURL with its port (the scheme's default port added
// when it has none; rawURL itself when it has one or its scheme is neither
// http nor https) and rawURL without its port. Only the authority is
// touched; every other byte is kept as is.
func twilioURLs(rawURL string) (withPort, withoutPort string) {
	i := strings.Index(rawURL, "://")
	if i < 0 {
		return rawURL, rawURL
	}
	start := i + len("://")
	end := len(rawURL)
	if j := strings.IndexAny(rawURL[start:], "/?#"); j >= 0 {
		end = start + j
	}
	hostStart := start
	if at := strings.LastIndexByte(rawURL[start:end], '@'); at >= 0 {
		hostStart = start + at + 1
	}
	host := rawURL[hostStart:end]
	colon := -1
	if strings.HasPrefix(host, "[") { // IPv6 literal
		if k := strings.Index(host, "]:"); k >= 0 {
			colon = k + 1
		}
	} else {
		colon = strings.LastIndexByte(host, ':')
	}
	if colon >= 0 {
		return rawURL, rawURL[:hostStart+colon] + rawURL[end:]
	}
	var port string
	switch strings.ToLower(rawURL[:i]) {
	case "https":
		port = ":443"
	case "http":
		port = ":80"
	default:
		return rawURL, rawURL
	}
	return rawURL[:end] + port + rawURL[end:], rawURL
}

// rawQueryParam returns the raw (not unescaped) value of the first query
// parameter of rawURL called name.
func rawQueryParam(rawURL, name string) (string, bool) {
	_, q, ok := strings.Cut(rawURL, "?")
	if !ok {
		return "", false
	}
	q, _, _ = strings.Cut(q, "#")
	for q != "" {
		var item string
		item, q, _ = strings.Cut(q, "&")
		if k, v, _ := strings.Cut(item, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// isForm reports whether a Content-Type names form encoding, ignoring
// parameters such as charset.
func isForm(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), formMediaType)
}
