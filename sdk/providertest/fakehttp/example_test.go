package fakehttp_test

import (
	"fmt"
	"io"
	"net/http"

	"github.com/pipecore/pipecore/sdk/providertest/fakehttp"
)

// Fake is the skeleton of a provider fake: the wire format is its own, the
// rest is fakehttp's.
type Fake struct {
	api *fakehttp.Server
}

// Request is what Requests returns.
type Request = fakehttp.Request

func StartFake() *Fake {
	f := &Fake{api: fakehttp.New(fakehttp.Options{Name: "acmefake"})}
	f.api.Start(http.HandlerFunc(f.serve))
	return f
}

func (f *Fake) URL() string            { return f.api.URL() }
func (f *Fake) Close()                 { f.api.Close() }
func (f *Fake) FailNext(status, n int) { f.api.FailNext(status, n) }
func (f *Fake) Requests() []Request    { return f.api.Requests() }

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	f.api.Record(r, body)
	if status, ok := f.api.TakeFailure(); ok {
		http.Error(w, `{"error":"injected"}`, status)
		return
	}
	if r.Header.Get("Authorization") != "Bearer acme-test-key" {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	_, _ = io.WriteString(w, `{"id":"ch_1"}`)
}

func Example() {
	f := StartFake()
	defer f.Close()
	f.FailNext(http.StatusServiceUnavailable, 1)
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, f.URL()+"/v1/charges", nil)
		req.Header.Set("Authorization", "Bearer acme-test-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	fmt.Println(len(f.Requests()), f.Requests()[0].Path)
	// Output:
	// 503
	// 200
	// 2 /v1/charges
}
