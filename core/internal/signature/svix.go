package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/pipecore/pipecore/sdk/provider"
)

// The two header sets of SchemeSvix: Svix's own and Standard Webhooks'.
var (
	svixHeaders     = [3]string{"Svix-Id", "Svix-Timestamp", "Svix-Signature"}
	standardHeaders = [3]string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}
)

// svixSecretPrefix marks a Svix / Standard Webhooks secret.
const svixSecretPrefix = "whsec_"

// verifySvix implements provider.SchemeSvix: Svix (used by Resend) and
// Standard Webhooks, the same scheme under two header sets.
//
// Headers: svix-id, svix-timestamp, svix-signature when all three are
// present, else webhook-id, webhook-timestamp, webhook-signature; when
// neither set is complete, ErrMissingSignature.
//
// Signed: HMAC-SHA256 over the id, ".", the timestamp exactly as received,
// ".", and the raw body. The key is the secret with any "whsec_" prefix
// removed, then base64-decoded (standard alphabet, padded); a secret
// without the prefix is decoded too, and one that does not decode is
// unusable (if none is usable, ErrNoSecret). The signature header is a
// space-separated list of "<version>,<base64 MAC>"; only v1 entries are
// compared, any may match, and other versions and unparseable entries are
// ignored, so a header with no usable v1 is ErrMismatch.
//
// The timestamp is unix seconds; one that is not a decimal integer is
// ErrMalformed, and one further than the tolerance (default
// DefaultTolerance) from now, in either direction, is ErrTimestamp.
func verifySvix(r *Request, secrets []string, opt *Options) error {
	const scheme = provider.SchemeSvix
	names := svixHeaders
	id, ts, sigs := svixValues(r.Header, names)
	if id == "" || ts == "" || sigs == "" {
		names = standardHeaders
		id, ts, sigs = svixValues(r.Header, names)
		if id == "" || ts == "" || sigs == "" {
			return fail(ErrMissingSignature, scheme, "Svix-Id, Svix-Timestamp, Svix-Signature (or Webhook-*)", "")
		}
	}
	sec, ok := parseUnix(ts)
	if !ok {
		return fail(ErrMalformed, scheme, names[1], "not an integer")
	}
	if !within(age(opt.now(), sec), opt.tolerance(DefaultTolerance)) {
		return fail(ErrTimestamp, scheme, names[1], "outside the tolerance")
	}

	prefix := make([]byte, 0, len(id)+len(ts)+2)
	prefix = append(append(append(append(prefix, id...), '.'), ts...), '.')
	usable := false
	var keyBuf [64]byte
	var sum [sha256.Size]byte
	for _, secret := range secrets {
		key, ok := svixKey(keyBuf[:0], secret)
		if !ok {
			continue
		}
		usable = true
		mac := hmac.New(sha256.New, key)
		_, _ = mac.Write(prefix)
		_, _ = mac.Write(r.Body)
		if svixMatches(sigs, mac.Sum(sum[:0])) {
			return nil
		}
	}
	if !usable {
		return fail(ErrNoSecret, scheme, names[2], "no secret is valid base64")
	}
	return fail(ErrMismatch, scheme, names[2], "")
}

func svixValues(h map[string][]string, names [3]string) (id, ts, sigs string) {
	return headerValue(h, names[0]), headerValue(h, names[1]), headerValue(h, names[2])
}

// svixKey decodes a whsec_ secret into buf (growing it if needed). It
// reports false for an empty secret or one that is not valid base64.
func svixKey(buf []byte, secret string) ([]byte, bool) {
	secret = strings.TrimPrefix(secret, svixSecretPrefix)
	if secret == "" {
		return nil, false
	}
	key, err := base64.StdEncoding.AppendDecode(buf, []byte(secret))
	if err != nil || len(key) == 0 {
		return nil, false
	}
	return key, true
}

// svixMatches reports whether any v1 entry of the space-separated list
// sigs is the base64 of expected.
func svixMatches(sigs string, expected []byte) bool {
	var enc [44]byte // base64 of a SHA-256 MAC
	base64.StdEncoding.Encode(enc[:], expected)
	match := false
	for rest := sigs; rest != ""; {
		var entry string
		entry, rest, _ = strings.Cut(rest, " ")
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		// Compare the encoded forms, so only the canonical encoding of the
		// MAC matches; keep going after a match so the work done does not
		// depend on which entry matched.
		if hmac.Equal([]byte(sig), enc[:]) {
			match = true
		}
	}
	return match
}
