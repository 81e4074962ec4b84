package signature

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"strings"

	"github.com/pipecore/pipecore/sdk/provider"
)

const (
	sendGridSignatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
	sendGridTimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// verifyECDSA implements provider.SchemeECDSA (SendGrid's Signed Event
// Webhook).
//
// Headers: X-Twilio-Email-Event-Webhook-Signature: <base64 of an ASN.1 DER
// ECDSA signature> and X-Twilio-Email-Event-Webhook-Timestamp: <ts>.
//
// Signed: ECDSA P-256 over SHA-256 of the timestamp header's bytes exactly
// as received followed directly by the raw body (no separator). The
// "secret" is the public key SendGrid shows: base64 (standard alphabet) of
// a DER SubjectPublicKeyInfo, or the same in a PEM "PUBLIC KEY" block. A key
// that does not parse as a P-256 ECDSA public key is unusable (if none is
// usable, ErrNoSecret).
//
// A signature header that is not base64 is ErrMalformed. SendGrid documents
// no freshness window, so none is enforced by default; with
// Options.Tolerance > 0 the timestamp must be decimal unix seconds (else
// ErrMalformed) within the tolerance of now, in either direction (else
// ErrTimestamp).
func verifyECDSA(r *Request, secrets []string, opt *Options) error {
	const scheme = provider.SchemeECDSA
	h := headerValue(r.Header, sendGridSignatureHeader)
	if h == "" {
		return fail(ErrMissingSignature, scheme, sendGridSignatureHeader, "")
	}
	ts := headerValue(r.Header, sendGridTimestampHeader)
	if ts == "" {
		return fail(ErrMissingSignature, scheme, sendGridTimestampHeader, "")
	}
	sig, err := base64.StdEncoding.DecodeString(h)
	if err != nil || len(sig) == 0 {
		return fail(ErrMalformed, scheme, sendGridSignatureHeader, "not base64")
	}
	if tol := opt.Tolerance; tol > 0 {
		sec, ok := parseUnix(ts)
		if !ok {
			return fail(ErrMalformed, scheme, sendGridTimestampHeader, "not an integer")
		}
		if !within(age(opt.now(), sec), tol) {
			return fail(ErrTimestamp, scheme, sendGridTimestampHeader, "outside the tolerance")
		}
	}

	d := sha256.New()
	_, _ = io.WriteString(d, ts)
	_, _ = d.Write(r.Body)
	digest := d.Sum(nil)
	usable := false
	for _, secret := range secrets {
		pub, ok := parseECDSAKey(secret)
		if !ok {
			continue
		}
		usable = true
		if ecdsa.VerifyASN1(pub, digest, sig) {
			return nil
		}
	}
	if !usable {
		return fail(ErrNoSecret, scheme, sendGridSignatureHeader, "no secret is a P-256 public key")
	}
	return fail(ErrMismatch, scheme, sendGridSignatureHeader, "")
}

// parseECDSAKey parses a base64 DER or PEM SubjectPublicKeyInfo holding a
// P-256 ECDSA key.
func parseECDSAKey(s string) (*ecdsa.PublicKey, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, false
	}
	var der []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		block, _ := pem.Decode([]byte(s))
		if block == nil || block.Type != "PUBLIC KEY" {
			return nil, false
		}
		der = block.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, false
		}
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, false
	}
	pub, ok := key.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, false
	}
	return pub, true
}
