package providertest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/providertest"
)

// build compiles the package in dir (relative to this package) into a
// temporary directory; env adds environment variables.
func build(t *testing.T, dir, name string, env []string, ldflags string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a plugin binary")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "pipecore-plugin-"+name)
	cmd := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".")
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	return bin
}

func checkBinary(t *testing.T, path string, cfg providertest.BinaryConfig) providertest.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := providertest.CheckBinary(ctx, path, cfg)
	if err != nil {
		t.Fatalf("CheckBinary: %v", err)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s\n%s", rep.Plugin, rep.Version, buf.String())
	return rep
}

func statuses(rep providertest.Report) map[string]string {
	out := map[string]string{}
	for _, r := range rep.Results {
		out[r.Check] = r.Status
	}
	return out
}

func TestCheckBinaryBroken(t *testing.T) {
	bin := build(t, "testdata/broken", "broken", nil, "")
	rep := checkBinary(t, bin, providertest.BinaryConfig{
		Settings:    map[string]string{"base_url": "http://127.0.0.1:1"},
		Credentials: map[string]string{"api_key": "SENTINEL-broken-key-42"},
		Timeout:     5 * time.Second,
	})
	if !rep.Failed() || rep.Plugin != "broken" || rep.Version != "0.0.1" {
		t.Fatalf("report = %s %s failed=%v, want a failed report of broken 0.0.1", rep.Plugin, rep.Version, rep.Failed())
	}
	got := statuses(rep)
	want := map[string]string{
		"handshake":                    providertest.StatusPass,
		"info":                         providertest.StatusPass,
		"capabilities/payments":        providertest.StatusPass,
		"webhook/empty_body":           providertest.StatusFail,
		"webhook/garbage_body":         providertest.StatusFail,
		"optional_operations":          providertest.StatusFail,
		"unreachable/payments/refused": providertest.StatusFail,
		"unreachable/payments/stalled": providertest.StatusFail,
		"payments/create":              providertest.StatusFail,
		"payments/invalid_amount":      providertest.StatusFail,
		"payments/bad_credentials":     providertest.StatusFail,
		"payments/optional_operations": providertest.StatusSkip,
		"no_secrets_leak":              providertest.StatusFail,
		"clean_exit":                   providertest.StatusFail,
		"payments/deadline":            providertest.StatusSkip,
		"payments/redirect":            providertest.StatusSkip,
		"payments/refund":              providertest.StatusSkip,
		"payments/get":                 providertest.StatusSkip,
		"payments/idempotency":         providertest.StatusPass,
		"payments/info":                providertest.StatusPass,
		"errors_classified":            providertest.StatusPass,
	}
	for check, status := range want {
		if got[check] != status {
			t.Errorf("%s = %q, want %q", check, got[check], status)
		}
	}
	if r, _ := rep.Result("no_secrets_leak"); strings.Contains(r.Detail, "SENTINEL-broken-key-42") {
		t.Errorf("the report itself leaks the secret: %s", r.Detail)
	}
}

func TestCheckBinaryRefusesToStart(t *testing.T) {
	bin := build(t, "testdata/broken", "broken", nil, "-X main.version=")
	rep := checkBinary(t, bin, providertest.BinaryConfig{})
	r, ok := rep.Result("handshake")
	if !ok || r.Status != providertest.StatusFail || !strings.Contains(r.Detail, "version is empty") {
		t.Fatalf("handshake = %+v, want a failure that quotes the plugin's complaint", r)
	}
	if len(rep.Results) != 1 || !rep.Failed() {
		t.Fatalf("results = %+v, want only the failed handshake", rep.Results)
	}
}

func TestCheckBinaryMissingPath(t *testing.T) {
	if _, err := providertest.CheckBinary(context.Background(), filepath.Join(t.TempDir(), "nope"), providertest.BinaryConfig{}); err == nil {
		t.Fatal("CheckBinary of a missing file returned no error")
	}
}

func TestReportTable(t *testing.T) {
	rep := providertest.Report{Results: []providertest.Result{
		{Check: "handshake", Status: providertest.StatusPass, Detail: "protocol 1"},
		{Check: "webhook/empty_body", Status: providertest.StatusFail, Detail: "line one\nline two"},
	}}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	want := "CHECK               RESULT  DETAIL\n" +
		"handshake           pass    protocol 1\n" +
		"webhook/empty_body  fail    line one; line two\n"
	if buf.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", buf.String(), want)
	}
	if !rep.Failed() || (providertest.Report{}).Failed() {
		t.Fatal("Failed() wrong")
	}
}

// The manual example (examples/manual, its own module) passes the whole
// contract, offline and online; checks it cannot exercise skip.
func TestCheckBinaryManualExample(t *testing.T) {
	const dir = "../../examples/manual"
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Skipf("examples/manual not present: %v", err)
	}
	bin := build(t, dir, "manual", []string{"GOWORK=off"}, "-X main.version=1.0.0")
	rep := checkBinary(t, bin, providertest.BinaryConfig{Settings: map[string]string{"method": "cash"}})
	if rep.Failed() || rep.Plugin != "manual" || rep.Version != "1.0.0" {
		t.Fatalf("report = %s %s failed=%v, want manual 1.0.0 with no failure", rep.Plugin, rep.Version, rep.Failed())
	}
	got := statuses(rep)
	for _, check := range []string{"handshake", "info", "capabilities/payments", "optional_operations", "payments/create",
		"payments/idempotency", "payments/get", "payments/invalid_amount", "errors_classified", "no_secrets_leak", "clean_exit"} {
		if got[check] != providertest.StatusPass {
			t.Errorf("%s = %q, want pass", check, got[check])
		}
	}
	for _, check := range []string{"webhook/empty_body", "unreachable/payments/refused", "payments/bad_credentials"} {
		if got[check] != providertest.StatusSkip {
			t.Errorf("%s = %q, want skip (no webhook, no API, no credentials)", check, got[check])
		}
	}
}

// The gateway refuses pipecore-plugin-X whose Info.Name is not X; so does
// the check.
func TestCheckBinaryNameMismatch(t *testing.T) {
	const dir = "../../examples/manual"
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Skipf("examples/manual not present: %v", err)
	}
	bin := build(t, dir, "cash", []string{"GOWORK=off"}, "")
	rep := checkBinary(t, bin, providertest.BinaryConfig{})
	if r, _ := rep.Result("info"); r.Status != providertest.StatusFail || !strings.Contains(r.Detail, `"manual"`) {
		t.Fatalf("info = %+v, want a failure naming the mismatch", r)
	}
}
