package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/store"
)

const (
	sentinel = "sk_live_SENTINEL_51Hx9"
	pan      = "4242 4242 4242 4242"
	panBare  = "4242424242424242"
)

func openStore(t *testing.T) (*store.Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipecore.db")
	st, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Error(err)
		}
	})
	return st, path
}

type chargeRequest struct {
	Amount        int64             `json:"amount"`
	Description   string            `json:"description"`
	Card          map[string]string `json:"card"`
	Headers       map[string]string `json:"headers"`
	Metadata      map[string]string `json:"metadata"`
	Authorization string            `json:"authorization"`
}

// secretEntry spreads the sentinel and a card number over every field that
// can carry them.
func secretEntry() audit.Entry {
	return audit.Entry{
		TenantID:      "t_a",
		Provider:      "stripe",
		Action:        "payments.create",
		CorrelationID: "corr_1",
		ResourceID:    "pay_1",
		Request: chargeRequest{
			Amount:        1999,
			Description:   "paid with " + pan + " using " + sentinel,
			Card:          map[string]string{"number": panBare, "cvc": "314"},
			Headers:       map[string]string{"Authorization": "Bearer " + sentinel, "Idempotency-Key": "op-1"},
			Metadata:      map[string]string{"echo": "x" + sentinel + "x"},
			Authorization: "Basic " + sentinel,
		},
		Response: json.RawMessage(`{"id":"pi_1","client_secret":"pi_1_secret_zz","last_response":{"key":"` + sentinel + `"}}`),
		Err:      errors.New(`stripe: 401 invalid api key "` + sentinel + `" for card ` + pan),
		ErrKind:  "unauthorized",
		ErrCode:  "invalid_api_key",
		Latency:  1500 * time.Microsecond,
		Time:     time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		Secrets:  []string{sentinel, ""},
	}
}

func TestRecorderNeverStoresSecrets(t *testing.T) {
	ctx := context.Background()
	st, path := openStore(t)
	rec := audit.NewRecorder(st, nil)
	if err := rec.Record(ctx, secretEntry()); err != nil {
		t.Fatal(err)
	}

	list, _, err := st.ListAudit(ctx, "t_a", store.AuditQuery{})
	if err != nil || len(list) != 1 {
		t.Fatalf("ListAudit: %d records, err %v", len(list), err)
	}
	got := list[0]
	stored, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{sentinel, panBare, pan, "pi_1_secret_zz", "314"} {
		if bytes.Contains(stored, []byte(leak)) {
			t.Errorf("stored record contains %q:\n%s", leak, stored)
		}
	}
	if !bytes.Contains(stored, []byte("************4242")) {
		t.Errorf("stored record lacks the masked card number:\n%s", stored)
	}
	if got.Status != "unauthorized" || got.ErrorCode != "invalid_api_key" || got.LatencyMS != 1.5 ||
		got.CorrelationID != "corr_1" || got.ResourceID != "pay_1" || got.Provider != "stripe" || got.Action != "payments.create" {
		t.Errorf("record fields: %+v", got)
	}
	if want := `stripe: 401 invalid api key "[redacted]" for card ************4242`; got.ErrorMessage != want {
		t.Errorf("ErrorMessage = %q, want %q", got.ErrorMessage, want)
	}

	// Nothing in the file itself: not in a value, not in a free page.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(sentinel)) || bytes.Contains(raw, []byte(panBare)) {
		t.Fatal("the database file contains the sentinel or the card number")
	}
	if !bytes.Contains(raw, []byte("invalid_api_key")) {
		t.Fatal("the raw file check reads nothing: the record itself is not in it")
	}
}

// TestRawFileCheckCanFail: the raw-file check above does see a secret that
// reaches storage unredacted.
func TestRawFileCheckCanFail(t *testing.T) {
	st, path := openStore(t)
	_, err := st.AppendAudit(context.Background(), store.AuditRecord{
		TenantID: "t_a", Provider: "stripe", Action: "payments.create", Status: "ok",
		Request: json.RawMessage(`{"key":"` + sentinel + `"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(sentinel)) {
		t.Fatal("an unredacted sentinel is not found in the raw file")
	}
}

func TestRecorderStatus(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		entry      audit.Entry
		wantStatus string
		wantMsg    string
		wantReq    bool
	}{
		"success": {
			entry:      audit.Entry{TenantID: "t_a", Provider: "stripe", Action: "payments.get", Request: map[string]string{"id": "pi_1"}},
			wantStatus: "ok", wantReq: true,
		},
		"error with a kind": {
			entry:      audit.Entry{TenantID: "t_a", Provider: "stripe", Action: "payments.get", Err: errors.New("deadline"), ErrKind: "timeout"},
			wantStatus: "timeout", wantMsg: "deadline",
		},
		"error without a kind": {
			entry:      audit.Entry{TenantID: "t_a", Provider: "stripe", Action: "payments.get", Err: errors.New("boom")},
			wantStatus: "error", wantMsg: "boom",
		},
		"kind ignored on success": {
			entry:      audit.Entry{TenantID: "t_a", Provider: "stripe", Action: "payments.get", ErrKind: "retryable"},
			wantStatus: "ok",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st, _ := openStore(t)
			if err := audit.NewRecorder(st, nil).Record(ctx, tc.entry); err != nil {
				t.Fatal(err)
			}
			list, _, err := st.ListAudit(ctx, "t_a", store.AuditQuery{})
			if err != nil || len(list) != 1 {
				t.Fatalf("%d records, err %v", len(list), err)
			}
			got := list[0]
			if got.Status != tc.wantStatus || got.ErrorMessage != tc.wantMsg {
				t.Fatalf("status %q message %q, want %q %q", got.Status, got.ErrorMessage, tc.wantStatus, tc.wantMsg)
			}
			if (got.Request != nil) != tc.wantReq || got.Response != nil {
				t.Fatalf("request %s response %s", got.Request, got.Response)
			}
			if time.Since(got.Time) > time.Minute {
				t.Fatalf("zero Time was not set to now: %v", got.Time)
			}
		})
	}
}

// TestRecorderAppendFailure: a failed append is returned and logged, and the
// log line carries no secret.
func TestRecorderAppendFailure(t *testing.T) {
	st, _ := openStore(t)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	rec := audit.NewRecorder(st, slog.New(slog.NewJSONHandler(&logs, nil)))
	err := rec.Record(context.Background(), secretEntry())
	if !errors.Is(err, store.ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
	if strings.Contains(err.Error(), sentinel) {
		t.Fatalf("returned error carries the secret: %v", err)
	}
	if !strings.Contains(logs.String(), "audit: append failed") || !strings.Contains(logs.String(), "corr_1") {
		t.Fatalf("failure not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), sentinel) || strings.Contains(logs.String(), panBare) {
		t.Fatalf("log carries a secret:\n%s", logs.String())
	}
}
