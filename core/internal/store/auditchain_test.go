package store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
)

func chainedRecord() store.AuditRecord {
	return store.AuditRecord{
		ID: store.AuditID(42), Seq: 42, TenantID: "t_a", Provider: "admin", Action: "admin.credential.set",
		Status: "permanent", ErrorCode: "E42", ErrorMessage: "provider said no",
		Request: json.RawMessage(`{"field":"secret_key"}`), Response: json.RawMessage(`{"ok":false}`),
		LatencyMS: 12.5, Time: time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC),
		CorrelationID: "corr_1", ResourceID: "stripe/secret_key",
		PrevHash: strings.Repeat("ab", 32),
	}
}

// TestAuditHashEncoding rebuilds the documented encoding byte by byte, so
// that a change of AuditHash that its documentation does not follow fails.
func TestAuditHashEncoding(t *testing.T) {
	r := chainedRecord()
	var b bytes.Buffer
	u64 := func(v uint64) { _ = binary.Write(&b, binary.BigEndian, v) }
	str := func(s string) { u64(uint64(len(s))); b.WriteString(s) }
	b.WriteString(r.PrevHash)
	str("pipecore.audit.v1")
	u64(42)
	for _, s := range []string{"t_a", "admin", "admin.credential.set", "permanent", "E42", "provider said no", `{"field":"secret_key"}`, `{"ok":false}`} {
		str(s)
	}
	u64(math.Float64bits(12.5))
	u64(uint64(r.Time.UnixMicro()))
	str("corr_1")
	str("stripe/secret_key")
	sum := sha256.Sum256(b.Bytes())
	if got, want := store.AuditHash(&r), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("AuditHash = %s, want %s from the documented encoding", got, want)
	}
	if len(store.AuditGenesis) != 64 || strings.Trim(store.AuditGenesis, "0") != "" {
		t.Fatalf("AuditGenesis = %q, want 64 zeros", store.AuditGenesis)
	}
}

// TestAuditHashCoversEveryField: every field but ID and Hash changes the
// hash, and so does moving bytes from one field to the next.
func TestAuditHashCoversEveryField(t *testing.T) {
	base := chainedRecord()
	want := store.AuditHash(&base)
	tests := map[string]struct {
		change  func(r *store.AuditRecord)
		changes bool
	}{
		"seq":            {change: func(r *store.AuditRecord) { r.Seq++ }, changes: true},
		"tenant":         {change: func(r *store.AuditRecord) { r.TenantID = "t_b" }, changes: true},
		"provider":       {change: func(r *store.AuditRecord) { r.Provider = "stripe" }, changes: true},
		"action":         {change: func(r *store.AuditRecord) { r.Action = "admin.credential.delete" }, changes: true},
		"status":         {change: func(r *store.AuditRecord) { r.Status = "ok" }, changes: true},
		"error code":     {change: func(r *store.AuditRecord) { r.ErrorCode = "" }, changes: true},
		"error message":  {change: func(r *store.AuditRecord) { r.ErrorMessage += "." }, changes: true},
		"request":        {change: func(r *store.AuditRecord) { r.Request = json.RawMessage(`{"field":"other"}`) }, changes: true},
		"request bytes":  {change: func(r *store.AuditRecord) { r.Request = json.RawMessage(`{"field": "secret_key"}`) }, changes: true},
		"response":       {change: func(r *store.AuditRecord) { r.Response = nil }, changes: true},
		"latency":        {change: func(r *store.AuditRecord) { r.LatencyMS = 12.500000001 }, changes: true},
		"time":           {change: func(r *store.AuditRecord) { r.Time = r.Time.Add(time.Microsecond) }, changes: true},
		"correlation id": {change: func(r *store.AuditRecord) { r.CorrelationID = "corr_2" }, changes: true},
		"resource id":    {change: func(r *store.AuditRecord) { r.ResourceID = "" }, changes: true},
		"prev hash":      {change: func(r *store.AuditRecord) { r.PrevHash = store.AuditGenesis }, changes: true},
		"bytes moved between fields": {change: func(r *store.AuditRecord) {
			r.ErrorCode, r.ErrorMessage = "E42provider", " said no"
		}, changes: true},
		"id (a function of seq)": {change: func(r *store.AuditRecord) { r.ID = "log_other" }},
		"hash (the output)":      {change: func(r *store.AuditRecord) { r.Hash = want }},
		"time zone (the same instant)": {change: func(r *store.AuditRecord) {
			r.Time = r.Time.In(time.FixedZone("UTC-3", -3*3600))
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := chainedRecord()
			tc.change(&r)
			if got := store.AuditHash(&r); (got != want) != tc.changes {
				t.Fatalf("hash changed: %v, want %v", got != want, tc.changes)
			}
		})
	}
}
