package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
)

func TestPrintReload(t *testing.T) {
	var v map[string]any
	raw := `{"ok":false,"data":[{"name":"stripe","ok":false,
		"routes":[{"constraint":"","tenants":null,"from":"1.3.0","to":"1.4.0","healthy":true},
		          {"constraint":"~1.3","tenants":["acme"],"from":"1.3.0","to":"1.3.0","healthy":true},
		          {"constraint":"~2.0","tenants":["beta"],"from":"","to":"","healthy":false}],
		"refused":[{"version":"1.5.0","path":"/p/pipecore-plugin-stripe@1.5.0","error":"exited\nat start"}],
		"error":"no installed version matches"}]}`
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printReload(&out, v); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`(?m)^PLUGIN\s+TENANTS\s+CONSTRAINT\s+FROM\s+TO\s+RESULT$`,
		`(?m)^stripe\s+\(no constraint\)\s+\*\s+1\.3\.0\s+1\.4\.0\s+swapped$`,
		`(?m)^stripe\s+acme\s+~1\.3\s+1\.3\.0\s+1\.3\.0\s+unchanged$`,
		`(?m)^stripe\s+beta\s+~2\.0\s+-\s+-\s+NO VERSION$`,
		`(?m)^stripe\s+-\s+-\s+-\s+1\.5\.0\s+REFUSED: exited at start \(/p/pipecore-plugin-stripe@1\.5\.0\)$`,
		`(?m)^stripe\s+-\s+-\s+-\s+-\s+ERROR: no installed version matches$`,
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("output does not match %s:\n%s", want, out.String())
		}
	}
}

func TestPluginsTestFlags(t *testing.T) {
	cmd := root()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"plugins", "test", "/nonexistent/pipecore-plugin-x", "--set", "nokeyvalue"})
	if err := cmd.Execute(); err == nil || !regexp.MustCompile(`want key=value`).MatchString(err.Error()) {
		t.Fatalf("--set without =: %v", err)
	}
	cmd = root()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"plugins", "test", "/nonexistent/pipecore-plugin-x"})
	if err := cmd.Execute(); err == nil || !regexp.MustCompile(`no such file`).MatchString(err.Error()) {
		t.Fatalf("missing binary: %v", err)
	}
	cmd = root()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"plugins", "register", "stripe", "/x", "--sha256", "abc"})
	if err := cmd.Execute(); err == nil || !regexp.MustCompile(`64 hex`).MatchString(err.Error()) {
		t.Fatalf("register with a short checksum: %v", err)
	}
}
