package dispatch_test

// Independent verification: every delivery is checked by the reference
// Standard Webhooks Go library, exactly as a tenant would check it.

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/pipecore/pipecore/core/internal/dispatch"
)

func TestReceiverVerifiesDeliveries(t *testing.T) {
	t.Parallel()
	current, previous, stranger := mustSecret(t), mustSecret(t), mustSecret(t)
	tests := map[string]struct {
		secrets []string // signed with
		verify  string   // the tenant's secret
		want    error    // from the library's Verify
	}{
		"one secret":                   {secrets: []string{current}, verify: current},
		"rotation, new secret":         {secrets: []string{current, previous}, verify: current},
		"rotation, old secret":         {secrets: []string{current, previous}, verify: previous},
		"known-answer secret":          {secrets: []string{kaSecret}, verify: kaSecret},
		"control: wrong secret":        {secrets: []string{current}, verify: stranger, want: standardwebhooks.ErrNoMatchingSignature},
		"control: rotation, wrong one": {secrets: []string{current, previous}, verify: stranger, want: standardwebhooks.ErrNoMatchingSignature},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			wh, err := standardwebhooks.NewWebhook(tc.verify)
			if err != nil {
				t.Fatalf("NewWebhook: %v", err)
			}
			verdict := make(chan error, 1)
			url := receiver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(r.Body)
				if err == nil {
					err = wh.Verify(body, r.Header) // checks the ±5 min tolerance too
				}
				verdict <- err
				if err != nil {
					w.WriteHeader(http.StatusUnauthorized)
				}
			}))
			res := newSender(t, dispatch.SenderConfig{}).Send(t.Context(), dispatch.Target{URL: url, Secrets: tc.secrets}, message())
			if err := <-verdict; !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			wantOutcome := dispatch.Delivered
			if tc.want != nil {
				wantOutcome = dispatch.Retry
			}
			if res.Outcome != wantOutcome {
				t.Errorf("Send = %+v, want %v", res, wantOutcome)
			}
		})
	}
}

// TestReceiverRejectsStaleTimestamp: a sender whose clock is 10 minutes
// off is refused by the library's tolerance check, so the test above does
// exercise the timestamp header.
func TestReceiverRejectsStaleTimestamp(t *testing.T) {
	t.Parallel()
	secret := mustSecret(t)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	tests := map[string]struct {
		skew time.Duration
		want error
	}{
		"10 minutes behind": {skew: -10 * time.Minute, want: standardwebhooks.ErrMessageTooOld},
		"10 minutes ahead":  {skew: 10 * time.Minute, want: standardwebhooks.ErrMessageTooNew},
		"1 minute behind":   {skew: -time.Minute},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			verdict := make(chan error, 1)
			url := receiver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				verdict <- wh.Verify(body, r.Header)
			}))
			s := newSender(t, dispatch.SenderConfig{Now: func() time.Time { return time.Now().Add(tc.skew) }})
			s.Send(t.Context(), dispatch.Target{URL: url, Secrets: []string{secret}}, message())
			if err := <-verdict; !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestSignMatchesLibrary compares Sign with the library's own signer over
// odd ids, times and bodies.
func TestSignMatchesLibrary(t *testing.T) {
	t.Parallel()
	secret := mustSecret(t)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	tests := map[string]struct {
		id   string
		ts   time.Time
		body []byte
	}{
		"empty body":     {id: "msg_1", ts: fixedNow, body: nil},
		"binary body":    {id: "msg_1", ts: fixedNow, body: []byte{0, 0xff, '.', '\n'}},
		"body with dots": {id: "msg_1", ts: fixedNow, body: []byte("1.2.3")},
		"large body":     {id: "msg_01JDQ7", ts: fixedNow, body: envelope(64 << 10)},
		"epoch":          {id: "a", ts: time.Unix(0, 0), body: []byte("{}")},
		"far future":     {id: "evt_" + strings.Repeat("z", 200), ts: time.Unix(1<<40, 0), body: []byte("{}")},
		"before epoch":   {id: "x", ts: time.Unix(-5, 0), body: []byte("{}")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, err := wh.Sign(tc.id, tc.ts, tc.body)
			if err != nil {
				t.Fatalf("library Sign: %v", err)
			}
			got, err := dispatch.Sign([]string{secret}, tc.id, tc.ts, tc.body)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if got != want {
				t.Errorf("Sign = %q, library says %q", got, want)
			}
		})
	}
	t.Run("known answer", func(t *testing.T) {
		t.Parallel()
		kw, err := standardwebhooks.NewWebhook(kaSecret)
		if err != nil {
			t.Fatalf("NewWebhook: %v", err)
		}
		if got, _ := kw.Sign(kaID, kaTime, []byte(kaBody)); got != kaSig {
			t.Fatalf("library signs the vector as %q, want %q", got, kaSig)
		}
	})
}
