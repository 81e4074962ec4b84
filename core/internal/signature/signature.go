// Package signature verifies the signatures providers put on inbound
// webhooks. Verification happens in core, before a plugin sees a webhook,
// over the exact bytes received: nothing is re-serialised, and nothing is
// trusted before a signature passes.
//
// Every comparison of a MAC, signature or token uses hmac.Equal or
// subtle.ConstantTimeCompare. Errors name the scheme and the header; they
// never contain a secret, an expected MAC, or the value of a header.
//
// The package holds no state: Verify is safe for concurrent use.
package signature

import (
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// Request is what a verifier may look at. The verifier never modifies it
// and keeps no reference to it after Verify returns.
type Request struct {
	// Method is the HTTP method ("POST", "GET").
	Method string
	// URL is the full public URL the provider called: the configured
	// public base URL, the path and the raw query, exactly as the provider
	// requested it. Only SchemeTwilio uses it.
	URL string
	// Header holds the request headers under canonical keys
	// (textproto.CanonicalMIMEHeaderKey, as http.Header does); lookups
	// are case-insensitive because they canonicalise the name they look
	// for. Only the first value of a header is considered, and a header
	// whose first value is empty counts as absent.
	Header map[string][]string
	// Query holds the decoded query parameters of URL. Only
	// SchemeMercadoPago uses it (for "data.id").
	Query map[string][]string
	// Body is the raw request body, never re-serialised.
	Body []byte
}

// Options tunes a verification. The zero value means every scheme's
// documented default.
type Options struct {
	// Header overrides the header that carries the signature for the
	// schemes whose header varies: SchemeHMACSHA256 (default
	// "X-Signature") and SchemeStaticToken (default "Authorization").
	// Other schemes ignore it. "" means the scheme's default.
	Header string
	// Tolerance bounds how far a signed timestamp may be from Now. Zero
	// (or a negative value) means the scheme's default: DefaultTolerance
	// for SchemeStripe, SchemeSvix and SchemeRappi, and no check at all for
	// SchemeMercadoPago and SchemeECDSA, whose timestamp semantics are
	// not documented well enough to enforce by default. Schemes that sign
	// no timestamp ignore it.
	Tolerance time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// DefaultTolerance is the timestamp tolerance of the schemes that sign a
// timestamp and enforce it by default (Stripe, Svix/Standard Webhooks).
const DefaultTolerance = 300 * time.Second

// The errors Verify returns, always wrapped with the scheme and, where one
// is involved, the header name. Match them with errors.Is.
var (
	// ErrUnknownScheme is returned for a scheme this package does not
	// implement.
	ErrUnknownScheme = errors.New("signature: unknown scheme")
	// ErrMissingSignature is returned when a header the scheme requires
	// is absent or empty.
	ErrMissingSignature = errors.New("signature: missing signature header")
	// ErrMalformed is returned when a signature or timestamp header is
	// present but cannot be parsed (and, for SchemeTwilio, when the
	// request has no URL to verify).
	ErrMalformed = errors.New("signature: malformed signature header")
	// ErrTimestamp is returned when the signed timestamp is outside the
	// tolerance: for Stripe only when it is too old; for Svix/Standard
	// Webhooks, and for MercadoPago and SendGrid when a tolerance is set,
	// in either direction.
	ErrTimestamp = errors.New("signature: timestamp outside tolerance")
	// ErrMismatch is returned when the request is well-formed but no
	// configured secret produces a matching signature.
	ErrMismatch = errors.New("signature: no secret matched")
	// ErrNoSecret is returned when no usable secret is configured: every
	// secret is empty or, for SchemeSvix and SchemeECDSA, none of the
	// non-empty ones can be decoded.
	ErrNoSecret = errors.New("signature: no secret configured")
)

// Verify checks r against each secret with the named scheme and returns nil
// when any one of them matches. Up to two secrets are expected during a
// rotation (the current one and the previous one); every non-empty secret
// given is tried, and empty strings are skipped.
//
// What counts as a "secret" depends on the scheme: an HMAC key for most, the
// base64 or PEM public key for SchemeECDSA, the shared token for
// SchemeStaticToken. Each scheme's doc comment (see the Scheme* verifiers
// in this package) states exactly what is signed.
//
// Verify returns ErrUnknownScheme, ErrNoSecret, ErrMissingSignature,
// ErrMalformed, ErrTimestamp or ErrMismatch, wrapped with context, checked
// in that order: no MAC is computed before the header parses and the
// timestamp is within tolerance. (For SchemeSvix and SchemeECDSA, a secret
// that is set but cannot be decoded is found only when the MACs are
// computed; if no secret decodes, that ErrNoSecret comes last.)
func Verify(scheme provider.SignatureScheme, r Request, secrets []string, opt Options) error {
	switch scheme {
	case provider.SchemeStripe, provider.SchemeMercadoPago, provider.SchemeMetaSHA256,
		provider.SchemeTwilio, provider.SchemeSvix, provider.SchemeHMACSHA256,
		provider.SchemeECDSA, provider.SchemeStaticToken, provider.SchemeRappi:
	default:
		return fmt.Errorf("%w: %q", ErrUnknownScheme, scheme)
	}
	if !anySecret(secrets) {
		return fmt.Errorf("%w: %s", ErrNoSecret, scheme)
	}
	switch scheme {
	case provider.SchemeStripe:
		return verifyStripe(&r, secrets, &opt)
	case provider.SchemeMercadoPago:
		return verifyMercadoPago(&r, secrets, &opt)
	case provider.SchemeMetaSHA256:
		return verifyMeta(&r, secrets)
	case provider.SchemeTwilio:
		return verifyTwilio(&r, secrets)
	case provider.SchemeSvix:
		return verifySvix(&r, secrets, &opt)
	case provider.SchemeHMACSHA256:
		return verifyHMACSHA256(&r, secrets, &opt)
	case provider.SchemeECDSA:
		return verifyECDSA(&r, secrets, &opt)
	case provider.SchemeRappi:
		return verifyRappi(&r, secrets, &opt)
	default: // provider.SchemeStaticToken
		return verifyStaticToken(&r, secrets, &opt)
	}
}

func anySecret(secrets []string) bool {
	for _, s := range secrets {
		if s != "" {
			return true
		}
	}
	return false
}

// fail wraps sentinel with the scheme, the header involved and a fixed
// reason. Callers pass only constant reasons and header names: never a
// header value, a secret or a MAC.
func fail(sentinel error, scheme provider.SignatureScheme, header, reason string) error {
	if reason == "" {
		return fmt.Errorf("%w: %s: %s", sentinel, scheme, header)
	}
	return fmt.Errorf("%w: %s: %s: %s", sentinel, scheme, header, reason)
}

// headerValue returns the first value of the header called name (which
// must already be canonical), or "".
func headerValue(h map[string][]string, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// headerName returns the canonical form of override, or def when override
// is empty.
func headerName(override, def string) string {
	if override == "" {
		return def
	}
	return textproto.CanonicalMIMEHeaderKey(override)
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// tolerance returns o.Tolerance, or def when it is zero or negative.
func (o *Options) tolerance(def time.Duration) time.Duration {
	if o.Tolerance > 0 {
		return o.Tolerance
	}
	return def
}

// maxUnixSeconds bounds the timestamps converted to time.Time, so that the
// conversion cannot overflow; anything beyond is simply far away.
const maxUnixSeconds = 1 << 40

// age returns how long before now the unix time sec (in seconds) was;
// negative for a future timestamp. It saturates instead of overflowing.
func age(now time.Time, sec int64) time.Duration {
	switch {
	case sec > maxUnixSeconds:
		return -1 << 63
	case sec < -maxUnixSeconds:
		return 1<<63 - 1
	}
	return now.Sub(time.Unix(sec, 0))
}

// ageMillis is age for a timestamp in milliseconds.
func ageMillis(now time.Time, ms int64) time.Duration {
	sec, rem := ms/1000, ms%1000
	d := age(now, sec)
	if sec > maxUnixSeconds || sec < -maxUnixSeconds {
		return d
	}
	return d - time.Duration(rem)*time.Millisecond
}

// within reports whether a timestamp whose age is d lies within ±tol.
func within(d, tol time.Duration) bool {
	return d <= tol && d >= -tol
}

// parseUnix parses a decimal unix timestamp as strconv.ParseInt does.
func parseUnix(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// decodeHex decodes s, in either case, into dst. It reports false unless s
// is exactly 2*len(dst) hex digits. It never allocates.
func decodeHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := fromHexChar(s[2*i])
		lo, ok2 := fromHexChar(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHexChar(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
