package fakehttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// start runs a fake whose handler records, waits, takes a failure and
// answers 200 "ok".
func start(t *testing.T, o Options) *Server {
	t.Helper()
	s := New(o)
	s.Start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.Record(r, body)
		if err := s.Wait(r.Context(), time.Now()); err != nil {
			if errors.Is(err, ErrClosed) {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		if status, ok := s.TakeFailure(); ok {
			w.WriteHeader(status)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, client *http.Client, url string) (int, error) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, nil
}

func TestRecord(t *testing.T) {
	for name, tc := range map[string]struct {
		withQuery bool
		want      string
	}{
		"path only":  {false, "/v1/things"},
		"with query": {true, "/v1/things?x=1&y=2"},
	} {
		t.Run(name, func(t *testing.T) {
			s := start(t, Options{PathWithQuery: tc.withQuery})
			if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
				t.Fatalf("URL %q is not on 127.0.0.1", s.URL())
			}
			req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v1/things?x=1&y=2", strings.NewReader("hola"))
			req.Header.Set("X-Key", "k1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := s.Requests()
			if len(got) != 1 || got[0].Method != "POST" || got[0].Path != tc.want || got[0].Header.Get("X-Key") != "k1" || string(got[0].Body) != "hola" {
				t.Fatalf("Requests = %+v", got)
			}
			// Requests returns copies.
			got[0].Body[0], got[0].Header["X-Key"][0] = 'X', "changed"
			if again := s.Requests()[0]; string(again.Body) != "hola" || again.Header.Get("X-Key") != "k1" {
				t.Fatalf("a caller changed the record: %+v", again)
			}
		})
	}
}

func TestFailNext(t *testing.T) {
	s := start(t, Options{})
	s.FailNext(http.StatusTooManyRequests, 2)
	var got []int
	for range 3 {
		st, err := get(t, http.DefaultClient, s.URL())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, st)
	}
	if got[0] != 429 || got[1] != 429 || got[2] != 200 {
		t.Fatalf("statuses %v, want 429 429 200", got)
	}
	s.FailNext(500, 5)
	s.FailNext(500, 0) // cancels
	if st, _ := get(t, http.DefaultClient, s.URL()); st != 200 {
		t.Fatalf("after cancelling: HTTP %d", st)
	}
}

func TestDelay(t *testing.T) {
	s := start(t, Options{})
	s.SetDelay(time.Hour)
	impatient := &http.Client{Timeout: 100 * time.Millisecond}
	if _, err := get(t, impatient, s.URL()); err == nil {
		t.Fatal("a delayed request was answered")
	}

	// SetDelay(0) releases an answer already held back.
	done := make(chan int, 1)
	go func() {
		st, _ := get(t, http.DefaultClient, s.URL())
		done <- st
	}()
	for len(s.Requests()) < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	s.SetDelay(0)
	select {
	case st := <-done:
		if st != 200 {
			t.Fatalf("released answer: HTTP %d", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SetDelay(0) did not release the held-back answer")
	}

	// A short delay just delays.
	s.SetDelay(30 * time.Millisecond)
	begin := time.Now()
	if st, err := get(t, http.DefaultClient, s.URL()); err != nil || st != 200 || time.Since(begin) < 30*time.Millisecond {
		t.Fatalf("short delay: HTTP %d, %v after %s", st, err, time.Since(begin))
	}
}

func TestCloseEndsHeldAnswersAndWebhooks(t *testing.T) {
	s := start(t, Options{})
	s.SetDelay(time.Hour)
	answered := make(chan int, 1)
	go func() {
		st, _ := get(t, http.DefaultClient, s.URL())
		answered <- st
	}()
	for len(s.Requests()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}

	stall := make(chan struct{})
	receiver := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-stall }))
	defer receiver.Close()
	defer close(stall)
	posted := make(chan error, 1)
	go func() { posted <- s.PostWebhook(receiver.URL, nil, []byte("{}")) }()
	time.Sleep(20 * time.Millisecond) // let the POST reach the receiver; the result does not depend on it

	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung")
	}
	if st := <-answered; st != http.StatusServiceUnavailable {
		t.Errorf("held-back answer: HTTP %d, want the handler's 503", st)
	}
	if err := <-posted; err == nil {
		t.Error("a webhook in flight survived Close")
	}
	s.Close() // twice is fine
}

func TestWaitHonoursTheClient(t *testing.T) {
	s := New(Options{})
	s.SetDelay(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Wait(ctx, time.Now()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want the context's error", err)
	}
	if err := s.Wait(context.Background(), time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatalf("Wait after the delay = %v", err)
	}
	s.Close() // never started: still fine
}

func TestPostWebhook(t *testing.T) {
	var status atomic.Int64
	status.Store(204)
	got := make(chan *http.Request, 4)
	bodies := make(chan string, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- string(b)
		w.WriteHeader(int(status.Load()))
		_, _ = io.WriteString(w, " refused \n")
	}))
	defer receiver.Close()
	s := New(Options{Name: "acmefake"})
	defer s.Close()

	if err := s.PostWebhook(receiver.URL+"/hooks", http.Header{"Content-Type": {"application/json"}, "x-signature": {"v1,abc"}}, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.Method != "POST" || r.URL.Path != "/hooks" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Signature") != "v1,abc" || <-bodies != `{"a":1}` {
		t.Fatalf("webhook %s %s %v", r.Method, r.URL.Path, r.Header)
	}

	status.Store(401)
	err := s.PostWebhook(receiver.URL, nil, nil)
	if err == nil || err.Error() != "acmefake: webhook answered HTTP 401: refused" {
		t.Fatalf("refused webhook: %v", err)
	}
	<-got
	<-bodies

	if err := s.PostWebhook("http://127.0.0.1:1/nothing", nil, nil); err == nil || !strings.HasPrefix(err.Error(), "acmefake: post webhook: ") {
		t.Fatalf("unreachable receiver: %v", err)
	}
	if err := s.PostWebhook("::bad", nil, nil); err == nil || !strings.HasPrefix(err.Error(), "acmefake: webhook request: ") {
		t.Fatalf("bad URL: %v", err)
	}
}

func TestCloneJSON(t *testing.T) {
	in := []map[string]any{{"to": "+56911112222", "n": 1.5, "tags": []any{"a", map[string]any{"k": true}}}}
	out := CloneJSON(in)
	out[0]["to"] = "changed"
	out[0]["tags"].([]any)[1].(map[string]any)["k"] = false
	if in[0]["to"] != "+56911112222" || in[0]["tags"].([]any)[1].(map[string]any)["k"] != true {
		t.Fatalf("the copy shares memory with the original: %v", in)
	}
	if empty := CloneJSON([]map[string]any{}); empty == nil || len(empty) != 0 {
		t.Fatalf("empty slice = %#v, want empty and not nil", empty)
	}
	if bad := CloneJSON(map[string]any{"f": func() {}}); bad != nil {
		t.Fatalf("unencodable value = %v, want the zero value", bad)
	}
}
