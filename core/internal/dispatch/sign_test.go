package dispatch_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/dispatch"
)

// The Standard Webhooks known-answer vector (spec and reference libraries).
const (
	kaID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	kaSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	kaBody   = `{"test": 2432232314}`
	kaSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var kaTime = time.Unix(1614265330, 0)

func TestSign(t *testing.T) {
	t.Parallel()
	other := mustSecret(t)
	otherSig, err := dispatch.Sign([]string{other}, kaID, kaTime, []byte(kaBody))
	if err != nil {
		t.Fatalf("Sign(other): %v", err)
	}
	tests := map[string]struct {
		secrets []string
		ts      time.Time
		want    string
	}{
		"known answer":             {secrets: []string{kaSecret}, ts: kaTime, want: kaSig},
		"known answer, no prefix":  {secrets: []string{strings.TrimPrefix(kaSecret, "whsec_")}, ts: kaTime, want: kaSig},
		"sub-second part ignored":  {secrets: []string{kaSecret}, ts: kaTime.Add(999 * time.Millisecond), want: kaSig},
		"time zone ignored":        {secrets: []string{kaSecret}, ts: kaTime.In(time.FixedZone("CLT", -3*3600)), want: kaSig},
		"rotation: two signatures": {secrets: []string{kaSecret, other}, ts: kaTime, want: kaSig + " " + otherSig},
		"rotation: order kept":     {secrets: []string{other, kaSecret}, ts: kaTime, want: otherSig + " " + kaSig},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := dispatch.Sign(tc.secrets, kaID, tc.ts, []byte(kaBody))
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if got != tc.want {
				t.Errorf("Sign = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSignChangesWithEveryInput(t *testing.T) {
	t.Parallel()
	base, err := dispatch.Sign([]string{kaSecret}, kaID, kaTime, []byte(kaBody))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	tests := map[string]struct {
		secret, id string
		ts         time.Time
		body       string
	}{
		"other secret": {secret: mustSecret(t), id: kaID, ts: kaTime, body: kaBody},
		"other id":     {secret: kaSecret, id: kaID + "x", ts: kaTime, body: kaBody},
		"next second":  {secret: kaSecret, id: kaID, ts: kaTime.Add(time.Second), body: kaBody},
		"other body":   {secret: kaSecret, id: kaID, ts: kaTime, body: `{"test": 2432232315}`},
		"re-encoded":   {secret: kaSecret, id: kaID, ts: kaTime, body: `{"test":2432232314}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := dispatch.Sign([]string{tc.secret}, tc.id, tc.ts, []byte(tc.body))
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if got == base {
				t.Errorf("Sign = %q, the same as for the known-answer inputs", got)
			}
		})
	}
}

func TestSignErrors(t *testing.T) {
	t.Parallel()
	const leaky = "whsec_SENTINEL-secret-never-print!"
	tests := map[string]struct {
		secrets []string
		id      string
		want    error
	}{
		"no secrets":          {secrets: nil, id: kaID, want: dispatch.ErrNoSecret},
		"empty secret":        {secrets: []string{""}, id: kaID, want: dispatch.ErrInvalidSecret},
		"prefix only":         {secrets: []string{"whsec_"}, id: kaID, want: dispatch.ErrInvalidSecret},
		"not base64":          {secrets: []string{leaky}, id: kaID, want: dispatch.ErrInvalidSecret},
		"unpadded base64":     {secrets: []string{"whsec_" + base64.RawStdEncoding.EncodeToString([]byte("abcd"))}, id: kaID, want: dispatch.ErrInvalidSecret},
		"url-safe base64":     {secrets: []string{"whsec_" + base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe})}, id: kaID, want: dispatch.ErrInvalidSecret},
		"second secret bad":   {secrets: []string{kaSecret, leaky}, id: kaID, want: dispatch.ErrInvalidSecret},
		"id with a dot":       {secrets: []string{kaSecret}, id: "msg_1.2", want: dispatch.ErrInvalidID},
		"id only a dot":       {secrets: []string{kaSecret}, id: ".", want: dispatch.ErrInvalidID},
		"empty id":            {secrets: []string{kaSecret}, id: "", want: dispatch.ErrInvalidID},
		"id with a space":     {secrets: []string{kaSecret}, id: "msg 1", want: dispatch.ErrInvalidID},
		"id with a newline":   {secrets: []string{kaSecret}, id: "msg_1\r\nx-evil: 1", want: dispatch.ErrInvalidID},
		"id with non-ascii":   {secrets: []string{kaSecret}, id: "msg_ñ", want: dispatch.ErrInvalidID},
		"bad id and bad key":  {secrets: []string{leaky}, id: "a.b", want: dispatch.ErrInvalidID},
		"bad id and no key":   {secrets: nil, id: "a.b", want: dispatch.ErrInvalidID},
		"good id and nil key": {secrets: []string{}, id: kaID, want: dispatch.ErrNoSecret},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := dispatch.Sign(tc.secrets, tc.id, kaTime, []byte(kaBody))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Sign error = %v, want %v", err, tc.want)
			}
			if got != "" {
				t.Errorf("Sign returned %q with an error", got)
			}
			for _, s := range tc.secrets {
				if enc := strings.TrimPrefix(s, "whsec_"); enc != "" && strings.Contains(err.Error(), enc) {
					t.Errorf("error %q holds a secret", err)
				}
			}
		})
	}
}

func TestGenerateSecret(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 16 {
		s, err := dispatch.GenerateSecret()
		if err != nil {
			t.Fatalf("GenerateSecret: %v", err)
		}
		enc, ok := strings.CutPrefix(s, "whsec_")
		if !ok {
			t.Fatalf("secret %q lacks the whsec_ prefix", s)
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(key) != 32 {
			t.Fatalf("secret decodes to %d bytes, err %v; want 32 bytes", len(key), err)
		}
		if seen[s] {
			t.Fatalf("GenerateSecret repeated %q", s)
		}
		seen[s] = true
		if _, err := dispatch.Sign([]string{s}, kaID, kaTime, nil); err != nil {
			t.Fatalf("Sign rejects a generated secret: %v", err)
		}
	}
}

func mustSecret(tb testing.TB) string {
	tb.Helper()
	s, err := dispatch.GenerateSecret()
	if err != nil {
		tb.Fatalf("GenerateSecret: %v", err)
	}
	return s
}

func BenchmarkSign(b *testing.B) {
	body := envelope(1500)
	secrets := map[string][]string{"one secret": {mustSecret(b)}, "two secrets": {mustSecret(b), mustSecret(b)}}
	for name, s := range secrets {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := dispatch.Sign(s, kaID, kaTime, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
