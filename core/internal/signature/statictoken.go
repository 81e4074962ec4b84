package signature

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/pipecore/pipecore/sdk/provider"
)

const staticTokenHeader = "Authorization"

// verifyStaticToken implements provider.SchemeStaticToken (PedidosYa's
// webhook authorizationKey).
//
// Header: Options.Header, default Authorization: [Bearer ]<token>
//
// Nothing is signed: the header carries a shared token, which must equal a
// configured secret. The value matches when it equals the secret as is or,
// after a case-insensitive "Bearer " prefix is removed, equals it then. The
// body and the time are not covered at all, so only deduplication and a
// re-fetch of the resource stop replays and tampering.
//
// The comparison uses subtle.ConstantTimeCompare on SHA-256 digests of both
// sides, so its timing reveals neither the token's contents nor its length.
// There is no malformed case: any value that does not match is ErrMismatch.
func verifyStaticToken(r *Request, secrets []string, opt *Options) error {
	const scheme = provider.SchemeStaticToken
	name := headerName(opt.Header, staticTokenHeader)
	h := headerValue(r.Header, name)
	if h == "" {
		return fail(ErrMissingSignature, scheme, name, "")
	}
	got := sha256.Sum256([]byte(h))
	stripped := got
	if len(h) > len("Bearer ") && strings.EqualFold(h[:len("Bearer ")], "Bearer ") {
		stripped = sha256.Sum256([]byte(h[len("Bearer "):]))
	}
	match := 0
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		want := sha256.Sum256([]byte(secret))
		match |= subtle.ConstantTimeCompare(got[:], want[:])
		match |= subtle.ConstantTimeCompare(stripped[:], want[:])
	}
	if match == 1 {
		return nil
	}
	return fail(ErrMismatch, scheme, name, "")
}
