package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"strings"

	"github.com/pipecore/pipecore/sdk/provider"
)

const stripeHeader = "Stripe-Signature"

// verifyStripe implements provider.SchemeStripe.
//
// Header: Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]
//
// Signed: HMAC-SHA256 with the endpoint secret used verbatim as the key
// (the whole "whsec_…" string; it is not decoded), over the bytes of the t
// value exactly as received, ".", and the raw body. Encoded as hex (either
// case accepted). Any v1 may match; v0 and unknown keys are ignored.
//
// Parsing follows stripe-go v76: the header is split on ","; every item must
// split on "=" into exactly two parts, and t must be a decimal integer, or
// the header is ErrMalformed; a v1 that is not 64 hex digits is skipped.
// Two deliberate deviations, both stricter: a missing t or a repeated t is
// ErrMalformed (stripe-go would treat a missing t as year 1 and report it
// too old, and let the last t win). A header with no usable v1 is
// ErrMismatch, as stripe-go's ErrNoValidSignature.
//
// Tolerance (default DefaultTolerance) rejects only timestamps older than
// now-tolerance with ErrTimestamp; future timestamps are accepted, as
// stripe-go does. The timestamp is checked before any MAC is computed.
func verifyStripe(r *Request, secrets []string, opt *Options) error {
	const scheme = provider.SchemeStripe
	h := headerValue(r.Header, stripeHeader)
	if h == "" {
		return fail(ErrMissingSignature, scheme, stripeHeader, "")
	}
	ts, nsig, reason := parseStripe(h)
	if reason != "" {
		return fail(ErrMalformed, scheme, stripeHeader, reason)
	}
	if nsig == 0 {
		return fail(ErrMismatch, scheme, stripeHeader, "no valid v1 signature")
	}
	sec, _ := parseUnix(ts) // parseStripe checked it
	if age(opt.now(), sec) > opt.tolerance(DefaultTolerance) {
		return fail(ErrTimestamp, scheme, stripeHeader, "t is too old")
	}
	prefix := make([]byte, 0, len(ts)+1)
	prefix = append(append(prefix, ts...), '.')
	var sum [sha256.Size]byte
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		mac := hmac.New(sha256.New, []byte(secret))
		_, _ = mac.Write(prefix)
		_, _ = mac.Write(r.Body)
		if stripeMatches(h, mac.Sum(sum[:0])) {
			return nil
		}
	}
	return fail(ErrMismatch, scheme, stripeHeader, "")
}

// parseStripe validates a Stripe-Signature header and returns the raw t
// value and the number of well-formed v1 signatures, or a reason it is
// malformed.
func parseStripe(h string) (ts string, nsig int, reason string) {
	var sig [sha256.Size]byte
	seenT := false
	for rest := h; ; {
		item, tail, more := strings.Cut(rest, ",")
		k, v, ok := strings.Cut(item, "=")
		if !ok || strings.Contains(v, "=") {
			return "", 0, "item is not key=value"
		}
		switch k {
		case "t":
			if seenT {
				return "", 0, "t is repeated"
			}
			if _, ok := parseUnix(v); !ok {
				return "", 0, "t is not an integer"
			}
			seenT, ts = true, v
		case "v1":
			if decodeHex(sig[:], v) {
				nsig++
			}
		}
		if !more {
			break
		}
		rest = tail
	}
	if !seenT {
		return "", 0, "t is missing"
	}
	return ts, nsig, ""
}

// stripeMatches reports whether any well-formed v1 in the (already
// validated) header h equals expected.
func stripeMatches(h string, expected []byte) bool {
	var sig [sha256.Size]byte
	match := false
	for rest := h; ; {
		item, tail, more := strings.Cut(rest, ",")
		if k, v, _ := strings.Cut(item, "="); k == "v1" && decodeHex(sig[:], v) {
			// Keep going after a match: the work done does not depend on
			// which v1 matched.
			if hmac.Equal(sig[:], expected) {
				match = true
			}
		}
		if !more {
			return match
		}
		rest = tail
	}
}
