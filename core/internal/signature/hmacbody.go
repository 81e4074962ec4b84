package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"strings"

	"github.com/pipecore/pipecore/sdk/provider"
)

const (
	metaHeader       = "X-Hub-Signature-256"
	hmacSHA256Header = "X-Signature"
)

// verifyMeta implements provider.SchemeMetaSHA256 (WhatsApp Cloud API and
// other Meta webhooks).
//
// Header: X-Hub-Signature-256: sha256=<hex>
//
// Signed: HMAC-SHA256 with the Meta app secret over the raw body, hex
// encoded (either case accepted). No timestamp is signed, so replays are
// stopped only by deduplication. The "sha256=" prefix is required; a value
// without it, or whose MAC is not 64 hex digits, is ErrMalformed.
func verifyMeta(r *Request, secrets []string) error {
	const scheme = provider.SchemeMetaSHA256
	h := headerValue(r.Header, metaHeader)
	if h == "" {
		return fail(ErrMissingSignature, scheme, metaHeader, "")
	}
	hexMAC, ok := strings.CutPrefix(h, "sha256=")
	if !ok {
		return fail(ErrMalformed, scheme, metaHeader, `no "sha256=" prefix`)
	}
	var sig [sha256.Size]byte
	if !decodeHex(sig[:], hexMAC) {
		return fail(ErrMalformed, scheme, metaHeader, "not a hex SHA-256 MAC")
	}
	if bodyMACMatches(secrets, r.Body, sig[:]) {
		return nil
	}
	return fail(ErrMismatch, scheme, metaHeader, "")
}

// verifyHMACSHA256 implements provider.SchemeHMACSHA256 (Uber Direct's
// X-Uber-Signature, and other providers that sign only the body).
//
// Header: Options.Header, default X-Signature: [sha256=]<hex>
//
// Signed: HMAC-SHA256 with the shared secret over the raw body, hex encoded
// (either case accepted). Surrounding spaces and an optional "sha256="
// prefix are ignored; anything that is not then 64 hex digits is
// ErrMalformed. No timestamp is signed.
func verifyHMACSHA256(r *Request, secrets []string, opt *Options) error {
	const scheme = provider.SchemeHMACSHA256
	name := headerName(opt.Header, hmacSHA256Header)
	h := strings.TrimSpace(headerValue(r.Header, name))
	if h == "" {
		return fail(ErrMissingSignature, scheme, name, "")
	}
	h = strings.TrimPrefix(h, "sha256=")
	var sig [sha256.Size]byte
	if !decodeHex(sig[:], h) {
		return fail(ErrMalformed, scheme, name, "not a hex SHA-256 MAC")
	}
	if bodyMACMatches(secrets, r.Body, sig[:]) {
		return nil
	}
	return fail(ErrMismatch, scheme, name, "")
}

// bodyMACMatches reports whether HMAC-SHA256(secret, body) equals sig for
// any non-empty secret.
func bodyMACMatches(secrets []string, body, sig []byte) bool {
	var sum [sha256.Size]byte
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		mac := hmac.New(sha256.New, []byte(secret))
		_, _ = mac.Write(body)
		if hmac.Equal(mac.Sum(sum[:0]), sig) {
			return true
		}
	}
	return false
}
