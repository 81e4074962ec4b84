package providertest

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
)

// The statuses of a Result.
const (
	StatusPass = "pass"
	StatusFail = "fail"
	StatusSkip = "skip"
)

// Result is the outcome of one contract check.
type Result struct {
	// Check names the check, "/"-separated like a subtest ("webhooks/empty_body").
	Check string
	// Status is StatusPass, StatusFail or StatusSkip.
	Status string
	// Detail says why a check failed or was skipped; empty on a pass.
	Detail string
}

// Report is the outcome of CheckBinary.
type Report struct {
	// Plugin and Version are the plugin's Info, when it could be read.
	Plugin, Version string
	Results         []Result
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, res := range r.Results {
		if res.Status == StatusFail {
			return true
		}
	}
	return false
}

// Result returns the result of the named check, if it ran.
func (r Report) Result(check string) (Result, bool) {
	for _, res := range r.Results {
		if res.Check == check {
			return res, true
		}
	}
	return Result{}, false
}

// WriteTable writes the report as an aligned table with the columns CHECK,
// RESULT and DETAIL, one row per check; multi-line details are joined with
// "; ".
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if _, err := fmt.Fprintln(tw, "CHECK\tRESULT\tDETAIL"); err != nil {
		return err
	}
	for _, res := range r.Results {
		detail := strings.Join(strings.Fields(strings.ReplaceAll(res.Detail, "\n", "; ")), " ")
		if _, err := fmt.Fprintf(tw, "%s\t%s\t%s\n", res.Check, res.Status, detail); err != nil {
			return err
		}
	}
	return tw.Flush()
}

// recorder implements reporter for checks run outside go test.
type recorder struct {
	name     string
	mu       sync.Mutex
	failed   bool
	skipped  bool
	msgs     []string
	cleanups []func()
}

func (r *recorder) Helper()      {}
func (r *recorder) Name() string { return r.name }

func (r *recorder) log(fail bool, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if fail {
		r.failed = true
	} else {
		r.skipped = true
	}
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recorder) Errorf(format string, args ...any) { r.log(true, format, args...) }

func (r *recorder) Fatalf(format string, args ...any) {
	r.log(true, format, args...)
	runtime.Goexit()
}

func (r *recorder) Skipf(format string, args ...any) {
	r.log(false, format, args...)
	runtime.Goexit()
}

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

// runRecorded runs checks in order, each on its own goroutine so that
// Fatalf and Skipf end only that check, and returns one Result per check
// that has a body, followed by its subs.
func runRecorded(checks []check, prefix string) []Result {
	var out []Result
	for _, c := range checks {
		name := prefix + c.name
		if c.run != nil {
			r := &recorder{name: name}
			done := make(chan struct{})
			go func() {
				defer close(done)
				defer func() {
					if p := recover(); p != nil {
						r.log(true, "panic: %v", p)
					}
				}()
				c.run(r)
			}()
			<-done
			for i := len(r.cleanups) - 1; i >= 0; i-- {
				r.cleanups[i]()
			}
			res := Result{Check: name, Status: StatusPass}
			switch {
			case r.failed:
				res.Status = StatusFail
			case r.skipped:
				res.Status = StatusSkip
			}
			res.Detail = strings.Join(r.msgs, "; ")
			out = append(out, res)
			if res.Status != StatusPass && len(c.subs) > 0 {
				continue
			}
		}
		out = append(out, runRecorded(c.subs, name+"/")...)
	}
	return out
}
