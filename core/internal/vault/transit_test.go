package vault

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// TestTransitWireFormat checks the requests Transit sends against the
// documented API: paths, token header, base64 fields, associated_data and,
// for derived keys only, context.
func TestTransitWireFormat(t *testing.T) {
	for _, derived := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "derived"}[derived]
		t.Run(name, func(t *testing.T) {
			f := newFakeTransit(t, "transit")
			f.createKey(t, "pipecore", derived)
			tr := newTestTransit(t, f, TransitConfig{Key: "pipecore", Derived: derived})
			v := newTestVault(t, tr)
			s := mustSeal(t, v, acme, "wire")
			mustOpen(t, v, acme, s)
			if !strings.HasPrefix(string(s.WrappedDEK), "vault:v1:") {
				t.Errorf("wrapped DEK %q is not a vault:v1: ciphertext", s.WrappedDEK)
			}
			if s.KeyID != "transit:pipecore" {
				t.Errorf("KeyID = %q", s.KeyID)
			}

			reqs := f.seen()
			if len(reqs) != 2 {
				t.Fatalf("fake saw %d requests, want encrypt and decrypt", len(reqs))
			}
			wantAD := base64.StdEncoding.EncodeToString(acme.aad())
			sum := sha256.Sum256(acme.aad())
			wantCtx := base64.StdEncoding.EncodeToString(sum[:])
			for i, want := range []string{"/v1/transit/encrypt/pipecore", "/v1/transit/decrypt/pipecore"} {
				r := reqs[i]
				if r.Path != want || (r.Method != http.MethodPost && r.Method != http.MethodPut) {
					t.Errorf("request %d: %s %s, want a write to %s", i, r.Method, r.Path, want)
				}
				if r.Token != fakeToken {
					t.Errorf("request %d: X-Vault-Token %q", i, r.Token)
				}
				var body map[string]string
				if err := json.Unmarshal(r.Body, &body); err != nil {
					t.Fatalf("request %d body is not a JSON object of strings: %v", i, err)
				}
				if body["associated_data"] != wantAD {
					t.Errorf("request %d associated_data = %q, want %q", i, body["associated_data"], wantAD)
				}
				if got, has := body["context"]; has != derived || (derived && got != wantCtx) {
					t.Errorf("request %d context = %q (present %t), want present=%t %q", i, got, has, derived, wantCtx)
				}
			}
			var enc map[string]string
			_ = json.Unmarshal(reqs[0].Body, &enc)
			if dek, err := base64.StdEncoding.DecodeString(enc["plaintext"]); err != nil || len(dek) != dekSize {
				t.Errorf("encrypt plaintext is not base64 of a %d-byte DEK: %v", dekSize, err)
			}
			var dec map[string]string
			_ = json.Unmarshal(reqs[1].Body, &dec)
			if dec["ciphertext"] != string(s.WrappedDEK) {
				t.Errorf("decrypt ciphertext %q, want the wrapped DEK", dec["ciphertext"])
			}
		})
	}
}

func TestTransitRotateAndRetireUseKeyEndpoints(t *testing.T) {
	ctx := context.Background()
	f := newFakeTransit(t, "transit")
	f.createKey(t, "pipecore", false)
	tr := newTestTransit(t, f, TransitConfig{Key: "pipecore"})
	if n := mustRotate(t, tr); n != 2 || f.key("pipecore").latest != 2 {
		t.Fatalf("Rotate = %d, fake latest %d; want 2", n, f.key("pipecore").latest)
	}
	if err := tr.Retire(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := f.key("pipecore").minDecrypt; got != 2 {
		t.Errorf("min_decryption_version = %d after Retire(1), want 2", got)
	}
	var sawRotate, sawConfig bool
	for _, r := range f.seen() {
		switch r.Path {
		case "/v1/transit/keys/pipecore/rotate":
			sawRotate = true
		case "/v1/transit/keys/pipecore/config":
			sawConfig = true
			if string(r.Body) != `{"min_decryption_version":2}` {
				t.Errorf("config body %s", r.Body)
			}
		}
	}
	if !sawRotate || !sawConfig {
		t.Errorf("rotate seen %t, config seen %t; want both", sawRotate, sawConfig)
	}
}

func TestTransitOtherMount(t *testing.T) {
	f := newFakeTransit(t, "team/kms")
	f.createKey(t, "creds", false)
	tr := newTestTransit(t, f, TransitConfig{Key: "creds", Mount: "/team/kms/"})
	if tr.ID() != "transit:team/kms/creds" {
		t.Errorf("ID = %q", tr.ID())
	}
	v := newTestVault(t, tr)
	if got := mustOpen(t, v, acme, mustSeal(t, v, acme, "mounted")); got != "mounted" {
		t.Errorf("Open = %q", got)
	}
}

func TestTransitFailures(t *testing.T) {
	ctx := context.Background()
	type setup struct {
		f  *fakeTransit
		tr *Transit
		s  Sealed // sealed before the failure
	}
	build := func(t *testing.T, cfg TransitConfig, token string) setup {
		f := newFakeTransit(t, "transit")
		f.createKey(t, "pipecore", false)
		good := newTestVault(t, newTestTransit(t, f, TransitConfig{Key: "pipecore"}))
		s := mustSeal(t, good, acme, "before")
		if cfg.Key == "" {
			cfg.Key = "pipecore"
		}
		cfg.Client = noRetryClient(t, f, token)
		tr, err := NewTransit(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return setup{f, tr, s}
	}
	cases := map[string]struct {
		cfg    TransitConfig
		token  string
		prep   func(setup)
		status int   // HTTP status in the *api.ResponseError, if any
		want   error // sentinel, if any
	}{
		"bad token": {token: "hvs.wrong", status: http.StatusForbidden},
		"unavailable": {token: fakeToken, prep: func(s setup) { s.f.setFail(http.StatusServiceUnavailable) },
			status: http.StatusServiceUnavailable},
		"key missing":     {cfg: TransitConfig{Key: "nope"}, token: fakeToken, want: ErrTransitKeyNotFound},
		"derived differs": {cfg: TransitConfig{Derived: true}, token: fakeToken, want: ErrTransitConfig},
		"null data":       {token: fakeToken, prep: func(s setup) { s.f.setNullData(true) }, want: ErrTransitResponse},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			st := build(t, c.cfg, c.token)
			if c.prep != nil {
				c.prep(st)
			}
			// readsKey: the operation reads the key first, so it fails
			// with c.want.
			check := func(op string, readsKey bool, err error) {
				t.Helper()
				if err == nil {
					t.Errorf("%s: no error", op)
					return
				}
				if readsKey && c.want != nil && !errors.Is(err, c.want) {
					t.Errorf("%s = %v, want %v", op, err, c.want)
				}
				var re *api.ResponseError
				if c.status != 0 && (!errors.As(err, &re) || re.StatusCode != c.status) {
					t.Errorf("%s = %v, want a Vault response error with status %d", op, err, c.status)
				}
				// A failure to reach Vault is never ErrDecrypt: callers
				// retry it instead of treating the value as broken.
				if errors.Is(err, ErrDecrypt) {
					t.Errorf("%s = %v, which claims the value cannot be decrypted", op, err)
				}
			}
			_, err := st.tr.Current(ctx)
			check("Current", true, err)
			_, err = st.tr.Versions(ctx)
			check("Versions", true, err)
			check("Retire", true, st.tr.Retire(ctx, 1))
			_, err = st.tr.Rotate(ctx)
			check("Rotate", false, err)
			if c.status != 0 {
				v := newTestVault(t, st.tr)
				_, err = v.Seal(ctx, acme, "x")
				check("Seal", false, err)
				_, err = v.Open(ctx, acme, st.s)
				check("Open", false, err)
			}
		})
	}
}

func TestTransitConfig(t *testing.T) {
	cases := map[string]struct {
		cfg    TransitConfig
		wantID string // "" means invalid
	}{
		"key only":         {TransitConfig{Key: "pipecore"}, "transit:pipecore"},
		"default mount":    {TransitConfig{Key: "pipecore", Mount: "/transit/"}, "transit:pipecore"},
		"nested mount":     {TransitConfig{Key: "k-1.a_b", Mount: "ops/transit"}, "transit:ops/transit/k-1.a_b"},
		"no key":           {TransitConfig{}, ""},
		"key with slash":   {TransitConfig{Key: "a/b"}, ""},
		"key with dot end": {TransitConfig{Key: "a."}, ""},
		"key with space":   {TransitConfig{Key: "a b"}, ""},
		"dot-dot mount":    {TransitConfig{Key: "k", Mount: "ops/../sys"}, ""},
		"mount with space": {TransitConfig{Key: "k", Mount: "a b"}, ""},
		"negative timeout": {TransitConfig{Key: "k", Timeout: -time.Second}, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			c.cfg.Address = "http://127.0.0.1:1"
			tr, err := NewTransit(c.cfg)
			switch {
			case c.wantID == "" && !errors.Is(err, ErrTransitConfig):
				t.Errorf("NewTransit = %v, want ErrTransitConfig", err)
			case c.wantID != "" && err != nil:
				t.Errorf("NewTransit: %v", err)
			case c.wantID != "" && tr.ID() != c.wantID:
				t.Errorf("ID = %q, want %q", tr.ID(), c.wantID)
			}
		})
	}
	tr, err := NewTransit(TransitConfig{Key: "k", Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if tr.timeout != DefaultTransitTimeout || tr.mount != DefaultTransitMount {
		t.Errorf("defaults: timeout %v, mount %q", tr.timeout, tr.mount)
	}
}

func TestTransitVersion(t *testing.T) {
	cases := map[string]struct {
		in   string
		want int // 0: rejected
	}{
		"v1":            {"vault:v1:AAAA", 1},
		"v12 padded":    {"vault:v12:AAA=", 12},
		"v0":            {"vault:v0:AAAA", 0},
		"leading zero":  {"vault:v01:AAAA", 0},
		"no v":          {"vault:1:AAAA", 0},
		"no body":       {"vault:v1:", 0},
		"no prefix":     {"AAAA", 0},
		"quote in body": {`vault:v1:AA"A`, 0},
		"newline":       {"vault:v1:AAAA\n", 0},
		"huge version":  {"vault:v99999999999:AAAA", 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := transitVersion([]byte(c.in))
			if ok != (c.want != 0) || got != c.want {
				t.Errorf("transitVersion(%q) = %d, %t; want %d", c.in, got, ok, c.want)
			}
		})
	}
}
