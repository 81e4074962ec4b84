package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// receiver is the tenant backend the gateway delivers events to. It
// verifies each delivery's Standard Webhooks signature, reads the
// envelope's data.provider_payment_id to learn which generated webhook the
// event came from, and records the first arrival of each. Safe for
// concurrent use.
type receiver struct {
	key    []byte // the endpoint secret, base64-decoded
	srv    *fasthttp.Server
	ln     net.Listener
	served chan error

	unique  atomic.Int64 // verified deliveries of a webhook not seen before
	dups    atomic.Int64 // verified deliveries of a webhook seen before
	invalid atomic.Int64 // deliveries that did not verify
	foreign atomic.Int64 // verified deliveries naming no generated webhook

	mu      sync.Mutex
	seen    []uint64 // bitmap of the sequence numbers delivered
	lo, hi  uint64   // the window whose arrival times are kept
	arrived []int64  // unix nanoseconds of the first arrival of lo+i; 0 if none
}

// startReceiver serves on a free 127.0.0.1 port. secret is the endpoint
// secret as configured: "whsec_" and base64.
func startReceiver(secret string) (*receiver, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return nil, fmt.Errorf("receiver: secret: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: listen: %w", err)
	}
	r := &receiver{key: key, ln: ln, served: make(chan error, 1)}
	r.srv = &fasthttp.Server{
		Handler:               r.handle,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           120 * time.Second,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
	}
	go func() { r.served <- r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) url() string { return "http://" + r.ln.Addr().String() + "/events" }

func (r *receiver) close() { _ = r.srv.Shutdown() }

func (r *receiver) handle(ctx *fasthttp.RequestCtx) {
	now := time.Now()
	h := &ctx.Request.Header
	body := ctx.Request.Body()
	if !verifyStandardWebhook(r.key, h.Peek("webhook-id"), h.Peek("webhook-timestamp"), h.Peek("webhook-signature"), body, now) {
		r.invalid.Add(1)
		ctx.SetStatusCode(fasthttp.StatusUnauthorized)
		return
	}
	var env struct {
		Data struct {
			ProviderPaymentID string `json:"provider_payment_id"`
		} `json:"data"`
	}
	seq, ok := uint64(0), false
	if json.Unmarshal(body, &env) == nil {
		seq, ok = seqOf(env.Data.ProviderPaymentID)
	}
	if !ok {
		r.foreign.Add(1)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	r.record(seq, now)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

func (r *receiver) record(seq uint64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, bit := seq/64, uint64(1)<<(seq%64)
	if w >= uint64(len(r.seen)) {
		r.seen = append(r.seen, make([]uint64, max(int(w)+1-len(r.seen), len(r.seen)))...)
	}
	if r.seen[w]&bit != 0 {
		r.dups.Add(1)
		return
	}
	r.seen[w] |= bit
	r.unique.Add(1)
	if seq >= r.lo && seq < r.hi {
		r.arrived[seq-r.lo] = at.UnixNano()
	}
}

// watch starts keeping the arrival times of sequence numbers [lo, hi).
func (r *receiver) watch(lo, hi uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lo, r.hi, r.arrived = lo, hi, make([]int64, hi-lo)
}

// arrival returns the first arrival of seq, inside the watched window.
func (r *receiver) arrival(seq uint64) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq < r.lo || seq >= r.hi || r.arrived[seq-r.lo] == 0 {
		return 0, false
	}
	return r.arrived[seq-r.lo], true
}

// verifyStandardWebhook checks a delivery as the Standard Webhooks spec
// tells a receiver to: HMAC-SHA256 with the decoded secret over
// "id.timestamp.body", any "v1,<base64>" signature matching, timestamp
// within five minutes.
func verifyStandardWebhook(key, id, ts, sigHeader, body []byte, now time.Time) bool {
	sec, err := strconv.ParseInt(string(ts), 10, 64)
	if err != nil || len(id) == 0 {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(id)
	mac.Write([]byte{'.'})
	mac.Write(ts)
	mac.Write([]byte{'.'})
	mac.Write(body)
	want := mac.Sum(nil)
	var got [48]byte
	for _, s := range bytes.Fields(sigHeader) {
		v, b64, ok := bytes.Cut(s, []byte{','})
		if !ok || string(v) != "v1" || base64.StdEncoding.DecodedLen(len(b64)) > len(got) {
			continue
		}
		n, err := base64.StdEncoding.Decode(got[:], b64)
		if err == nil && hmac.Equal(got[:n], want) {
			return true
		}
	}
	return false
}
