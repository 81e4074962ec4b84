package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/valyala/fasthttp"
	bolt "go.etcd.io/bbolt"
)

// baseline is the bare floor the gateway is compared with (row 4c of
// perf-limits.md): a fasthttp server that copies the body, verifies a
// Stripe-style signature and writes the body durably to bbolt through
// db.Batch (1 ms window, at most 256 per commit, fsync on) before it
// answers 200. It runs in the benchmark's own process.
type baseline struct {
	db     *bolt.DB
	srv    *fasthttp.Server
	ln     net.Listener
	secret []byte
	served chan error
}

var bucketBodies = []byte("bodies")

// startBaseline opens dir/baseline.db and serves on a free 127.0.0.1 port.
func startBaseline(dir, secret string) (*baseline, error) {
	db, err := bolt.Open(filepath.Join(dir, "baseline.db"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: false})
	if err != nil {
		return nil, fmt.Errorf("baseline: open bbolt: %w", err)
	}
	db.MaxBatchDelay = time.Millisecond
	db.MaxBatchSize = 256
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketBodies)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("baseline: create bucket: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("baseline: listen: %w", err)
	}
	b := &baseline{db: db, ln: ln, secret: []byte(secret), served: make(chan error, 1)}
	b.srv = &fasthttp.Server{
		Handler:               b.handle,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           120 * time.Second,
		MaxRequestBodySize:    5 << 20,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
	}
	go func() { b.served <- b.srv.Serve(ln) }()
	return b, nil
}

func (b *baseline) addr() string { return b.ln.Addr().String() }

var (
	ackAccepted = []byte(`{"status":"accepted"}`)
	ackRefused  = []byte(`{"error":"signature"}`)
	ackStorage  = []byte(`{"error":"storage"}`)
)

func (b *baseline) handle(ctx *fasthttp.RequestCtx) {
	// fasthttp reuses the request's buffers once the handler returns, and
	// db.Batch may run the write after other handlers' writes: copy.
	body := bytes.Clone(ctx.Request.Body())
	ctx.SetContentType("application/json")
	if err := verifyStripe(b.secret, ctx.Request.Header.Peek("Stripe-Signature"), body, time.Now()); err != nil {
		ctx.SetStatusCode(fasthttp.StatusUnauthorized)
		ctx.SetBody(ackRefused)
		return
	}
	err := b.db.Batch(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketBodies)
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		return bk.Put(binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq), body)
	})
	if err != nil {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBody(ackStorage)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBody(ackAccepted)
}

// close stops the server and closes the database.
func (b *baseline) close() {
	_ = b.srv.Shutdown()
	_ = b.db.Close()
}
