package providertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// reporter is the part of *testing.T a contract check uses. Under go test it is
// the subtest's *testing.T; CheckBinary passes a recorder. Fatalf and
// Skipf end the check (runtime.Goexit), as they do in a test.
type reporter interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
}

var _ reporter = (*testing.T)(nil)

// check is one named contract check. Checks of a suite run in order and
// may share state through their closures; subs run after run, each as its
// own check named "name/sub".
type check struct {
	name string
	run  func(t reporter)
	subs []check
}

// runTests maps checks to subtests of t.
func runTests(t *testing.T, checks []check) {
	t.Helper()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.run != nil {
				c.run(t)
			}
			runTests(t, c.subs)
		})
	}
}

// suite holds what every contract check of one provider shares.
type suite struct {
	ctx    context.Context // parent of every call's context
	conn   *Conn
	rec    *errRecorder
	tenant provider.Tenant
	bad    *provider.Tenant
	// callTimeout bounds one call. Zero means 20s.
	callTimeout time.Duration
	// tb is handed to a config's Stall when a check's reporter is not a
	// testing.TB; nil (outside go test) skips the deadline check.
	tb testing.TB
	// extra tenants whose secrets must not leak either.
	extra []provider.Tenant
	// lenient skips, rather than fails, checks whose configuration is
	// missing (CheckBinary has no recipients to send to).
	lenient bool
}

func newSuite(ctx context.Context, conn *Conn, tenant provider.Tenant, bad *provider.Tenant) *suite {
	return &suite{ctx: ctx, conn: conn, rec: &errRecorder{}, tenant: tenant, bad: bad}
}

// callCtx returns a context for one call that ends with the check.
func (s *suite) callCtx(t reporter) context.Context {
	d := s.callTimeout
	if d == 0 {
		d = 20 * time.Second
	}
	c, cancel := context.WithTimeout(s.ctx, d)
	t.Cleanup(cancel)
	return c
}

// key returns an idempotency key unique to the check and the moment.
func key(t reporter) string {
	return fmt.Sprintf("conf_%s_%d", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()), time.Now().UnixNano())
}

func (s *suite) infoCheck(c provider.Capability, served bool) check {
	return check{name: "info", run: func(t reporter) {
		if err := s.conn.Info.Validate(); err != nil {
			t.Fatalf("Info invalid: %v", err)
		}
		if !s.conn.Info.Has(c) || !served {
			t.Fatalf("Info.Capabilities = %v, want %s", s.conn.Info.Capabilities, c)
		}
	}}
}

// deadlineCheck stalls the provider's API and checks that call, given a
// 300ms deadline, returns a retryable error within 5s.
func (s *suite) deadlineCheck(stall func(testing.TB) func(), field string, call func(ctx context.Context, t reporter) error) check {
	return check{name: "deadline", run: func(t reporter) {
		if stall == nil {
			t.Skipf("%s.Stall not set", field)
		}
		tb, ok := t.(testing.TB)
		if !ok {
			tb = s.tb
		}
		if tb == nil {
			t.Skipf("%s.Stall needs a testing.TB: run the suite under go test", field)
		}
		release := stall(tb)
		defer release()
		c, cancel := context.WithTimeout(s.ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := call(c, t)
		s.rec.add(err)
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("call with a 300ms deadline returned after %s", took)
		}
		if err == nil || provider.KindOf(err) != provider.KindRetryable {
			t.Fatalf("stalled call: err = %v (kind %s), want a retryable error", err, provider.KindOf(err))
		}
	}}
}

// webhookChecks parses every case with the suite's tenant and compares the
// events with the case's Want; every event must be complete and of a
// catalog type in catalog.
func (s *suite) webhookChecks(cases []WebhookCase, field string, catalog map[string]bool) check {
	c := check{name: "webhooks"}
	if len(cases) == 0 {
		c.run = func(t reporter) { t.Skipf("%s.Webhooks not set", field) }
		return c
	}
	for i, wc := range cases {
		name := wc.Name
		if name == "" {
			name = fmt.Sprintf("case_%d", i+1)
		}
		c.subs = append(c.subs, check{name: name, run: func(t reporter) {
			if s.conn.Webhooks == nil {
				t.Fatalf("webhook cases given but Info declares no webhook")
			}
			evs, err := s.conn.Webhooks.ParseWebhook(s.callCtx(t), provider.WebhookRequest{
				Tenant: s.tenant, Headers: wc.Headers, Query: wc.Query, Body: wc.Body,
			})
			s.rec.add(err)
			if err != nil {
				t.Fatalf("ParseWebhook: %v (kind %s)", err, provider.KindOf(err))
			}
			checkEvents(t, evs, wc.Want, catalog)
		}})
	}
	return c
}

func checkEvents(t reporter, evs []provider.Event, want []string, catalog map[string]bool) {
	t.Helper()
	got := make([]string, len(evs))
	for i, e := range evs {
		got[i] = e.Type
	}
	if !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Errorf("event types = %q, want %q", got, want)
	}
	for i, e := range evs {
		if !catalog[e.Type] {
			t.Errorf("event %d: type %q is not in the catalog", i, e.Type)
		}
		if e.ID == "" {
			t.Errorf("event %d (%s): empty ID", i, e.Type)
		}
		if e.Subject == "" {
			t.Errorf("event %d (%s): empty Subject", i, e.Type)
		}
		if !json.Valid(e.Data) {
			t.Errorf("event %d (%s): Data is not valid JSON: %q", i, e.Type, e.Data)
		}
	}
}

func (s *suite) classifiedCheck() check {
	return check{name: "errors_classified", run: func(t reporter) {
		for _, err := range s.rec.all() {
			if !classified(err) {
				t.Errorf("error without a kind crossed the wire: %v", err)
			}
		}
	}}
}

func classified(err error) bool {
	var pe *provider.Error
	return errors.As(err, &pe) && pe.Kind >= provider.KindRetryable && pe.Kind <= provider.KindUnsupported
}

// noSecretsCheck looks for every credential of the suite's tenants (values
// of 4 bytes or more) in the recorded errors and the provider's logs.
func (s *suite) noSecretsCheck() check {
	return check{name: "no_secrets_leak", run: func(t reporter) {
		secrets := s.tenant.RevealSecrets()
		others := s.extra
		if s.bad != nil {
			others = append([]provider.Tenant{*s.bad}, others...)
		}
		for i, o := range others {
			for k, v := range o.RevealSecrets() {
				secrets[fmt.Sprintf("%s (tenant %d)", k, i+2)] = v
			}
		}
		logs := ""
		if s.conn.Logs != nil {
			logs = s.conn.Logs.String()
		}
		for name, v := range secrets {
			if len(v) < 4 {
				continue
			}
			if strings.Contains(logs, v) {
				t.Errorf("secret %q appears in the provider's logs", name)
			}
			for _, err := range s.rec.all() {
				if strings.Contains(err.Error(), v) {
					t.Errorf("secret %q appears in an error: %v", name, strings.ReplaceAll(err.Error(), v, "[SECRET]"))
				}
			}
		}
	}}
}

type errRecorder struct {
	mu   sync.Mutex
	errs []error
}

func (r *errRecorder) add(err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *errRecorder) all() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// WebhookCase is a recorded, already verified webhook delivery and the
// catalog event types it must yield.
type WebhookCase struct {
	// Name names the check; empty means "case_N".
	Name           string
	Headers, Query map[string][]string
	Body           []byte
	// Want lists the event types in order; empty means no events.
	Want []string
}
