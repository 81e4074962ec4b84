package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
)

// AuditGenesis is the PrevHash of a tenant's first audit record: 64 zeros.
const AuditGenesis = "0000000000000000000000000000000000000000000000000000000000000000"

// auditHashTag names the version of the encoding AuditHash hashes.
const auditHashTag = "pipecore.audit.v1"

// AuditHash returns the hash that chains r into its tenant's audit log: the
// lowercase hex of SHA-256 over r.PrevHash followed by the canonical
// encoding of r's other fields.
//
// With u64(x) the 8-byte big-endian x and str(s) = u64(len(s)) followed by
// the bytes of s, the hashed bytes are, in this order:
//
//	PrevHash        its 64 ASCII hex digits as stored (AuditGenesis for seq 1)
//	str("pipecore.audit.v1")
//	u64(Seq)
//	str(TenantID) str(Provider) str(Action) str(Status)
//	str(ErrorCode) str(ErrorMessage)
//	str(Request) str(Response)   the raw JSON bytes as stored (and returned):
//	                             compact, absent = empty
//	u64(math.Float64bits(LatencyMS))
//	u64(Time.UnixMicro())        two's complement; the store keeps µs, in UTC
//	str(CorrelationID) str(ResourceID)
//
// Hash itself is not hashed, and neither is ID, which is a function of Seq
// (AuditID). Every variable-length field is length-prefixed, so no two
// records encode alike. A later encoding changes the tag.
func AuditHash(r *AuditRecord) string {
	const fixed = 14 * 8 // 11 length prefixes, Seq, LatencyMS and Time
	n := fixed + len(r.PrevHash) + len(auditHashTag) +
		len(r.TenantID) + len(r.Provider) + len(r.Action) + len(r.Status) +
		len(r.ErrorCode) + len(r.ErrorMessage) + len(r.Request) + len(r.Response) +
		len(r.CorrelationID) + len(r.ResourceID)
	b := make([]byte, 0, n)
	b = append(b, r.PrevHash...)
	b = appendHashStr(b, auditHashTag)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	for _, s := range []string{r.TenantID, r.Provider, r.Action, r.Status, r.ErrorCode, r.ErrorMessage} {
		b = appendHashStr(b, s)
	}
	b = appendHashStr(b, []byte(r.Request))
	b = appendHashStr(b, []byte(r.Response))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.LatencyMS))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixMicro()))
	b = appendHashStr(b, r.CorrelationID)
	b = appendHashStr(b, r.ResourceID)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func appendHashStr[S string | []byte](b []byte, s S) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// isHexSHA256 reports whether s has the form of a SHA-256 in lowercase hex
// (an audit Hash, an API key Hash): 64 digits.
func isHexSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// AuditVerification is the result of VerifyAudit. The log is intact when
// FirstBroken is 0. Otherwise FirstBroken is the first seq at which the
// chain breaks and Reason says how:
//   - a record's Hash does not match its content (AuditHash), or the record
//     does not decode or names another tenant: that record's seq;
//   - a record's PrevHash is not the previous record's Hash: that record's
//     seq (its predecessor was rewritten with a recomputed hash);
//   - a record is missing, between two others or at the end of the log
//     (the store's sequence went past the last record): the first missing
//     seq.
//
// A hash chain shows edits made by someone who did not recompute the hashes
// that follow; to catch a rewritten tail too, keep a recent record's Seq
// and Hash somewhere else and compare.
type AuditVerification struct {
	// Records is how many records the tenant's log holds, broken or not.
	Records     int    `json:"records"`
	FirstBroken uint64 `json:"first_broken"`
	Reason      string `json:"reason,omitempty"`
}

// OK reports whether the log verified intact.
func (v AuditVerification) OK() bool { return v.FirstBroken == 0 }
