package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	bolt "go.etcd.io/bbolt"
)

// baseline is the bare floor the gateway is compared with (row 4c of
// perf-limits.md): a fasthttp server that copies the body, verifies a
// Stripe-style signature and writes the body durably to bbolt through
// db.Batch (1 ms window, at most 256 per commit, fsync on) before it
// answers 200. It runs in a process of its own, this program started again
// with baselineEnv set (see baselineProc), so that it meets the load the
// way the gateway does: over loopback from another process, with a Go
// runtime of its own.
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

// cpuTime is 0: in this process, the baseline's CPU is the benchmark's.
func (b *baseline) cpuTime() time.Duration { return 0 }

// baselineServer is the baseline, in this process (-baseline-in-process)
// or in one of its own.
type baselineServer interface {
	addr() string
	cpuTime() time.Duration // CPU used by its process, if it has one
	close()
}

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

// baselineEnv, when set, makes this program the baseline server: the value
// is the directory of its database, and the signing secret is read from the
// first line of standard input.
const baselineEnv = "INGRESSBENCH_BASELINE_DIR"

// serveBaseline is the baseline process: it prints its address on
// standard output and serves until its standard input closes, which
// happens when the benchmark exits, however it exits.
func serveBaseline(dir string) int {
	in := bufio.NewReader(os.Stdin)
	secret, err := in.ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingressbench baseline: read secret:", err)
		return 1
	}
	b, err := startBaseline(dir, strings.TrimSpace(secret))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingressbench baseline:", err)
		return 1
	}
	fmt.Println(b.addr())
	_, _ = io.Copy(io.Discard, in)
	b.close()
	return 0
}

// baselineProc is the running baseline process.
type baselineProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	address string
	done    chan struct{}
}

// startBaselineProc starts this program again as the baseline server on
// dir and waits for its address.
func startBaselineProc(dir, secret string) (*baselineProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), baselineEnv+"="+dir)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("baseline: start: %w", err)
	}
	p := &baselineProc{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	if _, err := io.WriteString(stdin, secret+"\n"); err != nil {
		p.close()
		return nil, fmt.Errorf("baseline: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		p.close()
		return nil, errors.New("baseline: the process exited before it listened")
	}
	p.address = strings.TrimSpace(line)
	return p, nil
}

func (p *baselineProc) addr() string { return p.address }

// cpuTime is the CPU time the baseline process has used so far.
func (p *baselineProc) cpuTime() time.Duration {
	d, _ := procCPU(p.cmd.Process.Pid)
	return d
}

// close ends the process: it closes its database when its input closes,
// and is killed if it has not exited 10 s later.
func (p *baselineProc) close() {
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
