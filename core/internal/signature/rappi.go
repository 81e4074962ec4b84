package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"strings"

	"github.com/pipecore/pipecore/sdk/provider"
)

const rappiHeader = "Rappi-Signature"

// verifyRappi implements provider.SchemeRappi.
//
// Header: Rappi-Signature: t=<unix seconds>,sign=<hex>
//
// Signed: HMAC-SHA256 with the webhook secret as the key, over the bytes of
// the t value exactly as received, ".", and the raw body; hex encoded
// (either case accepted). Items other than t and sign are ignored; a
// missing or repeated t or sign, or a t that is not a decimal integer, is
// ErrMalformed.
//
// Rappi documents no freshness window. The timestamp is signed, so it is
// enforced in both directions with DefaultTolerance (five minutes) unless
// Options.Tolerance says otherwise, and checked before any MAC is computed.
func verifyRappi(r *Request, secrets []string, opt *Options) error {
	const scheme = provider.SchemeRappi
	h := headerValue(r.Header, rappiHeader)
	if h == "" {
		return fail(ErrMissingSignature, scheme, rappiHeader, "")
	}
	ts, sig, reason := parseRappi(h)
	if reason != "" {
		return fail(ErrMalformed, scheme, rappiHeader, reason)
	}
	sec, _ := parseUnix(ts) // parseRappi checked it
	if a := age(opt.now(), sec); a > opt.tolerance(DefaultTolerance) || -a > opt.tolerance(DefaultTolerance) {
		return fail(ErrTimestamp, scheme, rappiHeader, "t is outside the tolerance")
	}
	var sum [sha256.Size]byte
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		mac := hmac.New(sha256.New, []byte(secret))
		_, _ = mac.Write([]byte(ts))
		_, _ = mac.Write([]byte{'.'})
		_, _ = mac.Write(r.Body)
		if hmac.Equal(mac.Sum(sum[:0]), sig) {
			return nil
		}
	}
	return fail(ErrMismatch, scheme, rappiHeader, "")
}

// parseRappi splits a Rappi-Signature header into the raw t value and the
// decoded signature, or returns a reason it is malformed.
func parseRappi(h string) (ts string, sig []byte, reason string) {
	seenT, seenSign := false, false
	for _, item := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return "", nil, "item is not key=value"
		}
		switch k {
		case "t":
			if seenT {
				return "", nil, "t repeated"
			}
			if _, ok := parseUnix(v); !ok {
				return "", nil, "t is not a unix time"
			}
			ts, seenT = v, true
		case "sign":
			if seenSign {
				return "", nil, "sign repeated"
			}
			var b [sha256.Size]byte
			if !decodeHex(b[:], v) {
				return "", nil, "sign is not 64 hex digits"
			}
			sig, seenSign = b[:], true
		}
	}
	switch {
	case !seenT:
		return "", nil, "t missing"
	case !seenSign:
		return "", nil, "sign missing"
	}
	return ts, sig, ""
}
