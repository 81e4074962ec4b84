package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// benchTenant is the one tenant of the gateway under test.
const benchTenant = "bench"

// gatewayConfig is the YAML of the gateway under test: one tenant with the
// Stripe plugin enabled, its Stripe API at stripeURL (never called during
// ingress), and one endpoint that takes every payment event, unless
// receiverURL is empty. The endpoint is plain http on loopback, which the
// gateway's SSRF guard refuses unless allowed.
func gatewayConfig(listen, dataDir, pluginsDir, stripeURL, webhookSecret, receiverURL, endpointSecret string) string {
	sum := sha256.Sum256([]byte("pc_bench_" + randomHex(24)))
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
plugins_dir: %s
log: { level: warn, format: json }
delivery: { allow_http: true, allow_networks: ["127.0.0.1/32"] }
tenants:
  %s:
    api_keys: ["sha256:%s"]
    providers:
      stripe:
        settings: { base_url: %q }
        credentials: { secret_key: "sk_test_ingressbench", webhook_secret: %q }
`, listen, dataDir, pluginsDir, benchTenant, hex.EncodeToString(sum[:]), stripeURL, webhookSecret)
	if receiverURL != "" {
		cfg += fmt.Sprintf(`    endpoints:
      - { id: receiver, url: %q, secret: %q, types: ["payment.*"] }
`, receiverURL, endpointSecret)
	}
	return cfg
}

// newEndpointSecret returns a Standard Webhooks secret: "whsec_" and the
// base64 of 32 random bytes.
func newEndpointSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// gateway is the running bin/pipecore serve.
type gateway struct {
	cmd     *exec.Cmd
	addr    string
	logPath string
	exited  chan struct{}
	stopped atomic.Bool
}

// startGateway writes cfg into dir and starts bin/pipecore serve on it,
// with env added to this process's environment. The process gets SIGKILL
// if the benchmark dies (its plugins follow it).
func startGateway(bin, dir, addr, cfg string, env []string) (*gateway, error) {
	path := filepath.Join(dir, "pipecore.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	g := &gateway{addr: addr, logPath: filepath.Join(dir, "gateway.log"), exited: make(chan struct{})}
	logf, err := os.Create(g.logPath)
	if err != nil {
		return nil, err
	}
	g.cmd = exec.Command(filepath.Join(bin, "pipecore"), "serve", "--config", path)
	g.cmd.Dir = dir
	g.cmd.Env = append(os.Environ(), env...)
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", g.cmd.Path, err)
	}
	go func() {
		_ = g.cmd.Wait()
		logf.Close()
		close(g.exited)
	}()
	return g, nil
}

// waitReady polls /readyz until it answers 200.
func (g *gateway) waitReady(d time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(d)
	for {
		select {
		case <-g.exited:
			return fmt.Errorf("gateway exited during start: %s\n%s", g.cmd.ProcessState, g.logTail(20))
		default:
		}
		resp, err := client.Get("http://" + g.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway on %s not ready after %s\n%s", g.addr, d, g.logTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop asks the gateway to shut down, and kills it after a grace period.
// Safe to call more than once.
func (g *gateway) stop() {
	if g == nil || !g.stopped.CompareAndSwap(false, true) {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(5 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
}

// normalised reads from /metrics how many webhooks the gateway has turned
// into events so far (the count of pipecore_inbox_lag_seconds).
func (g *gateway) normalised() (int64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + g.addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var n int64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "pipecore_inbox_lag_seconds_count") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics: %q: %w", line, err)
		}
		n += int64(v)
	}
	return n, sc.Err()
}

// kill ends the gateway at once (on Ctrl-C).
func (g *gateway) kill() {
	if g == nil || !g.stopped.CompareAndSwap(false, true) {
		return
	}
	_ = g.cmd.Process.Kill()
	<-g.exited
}

// logLines returns the gateway's log lines (warn and above, per config).
func (g *gateway) logLines() []string {
	f, err := os.Open(g.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func (g *gateway) logTail(n int) string {
	lines := g.logLines()
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// cpu returns the CPU time used so far by the gateway and, separately, by
// its live plugin processes.
func (g *gateway) cpu() (gw, plugins time.Duration) {
	pid := g.cmd.Process.Pid
	gw, _ = procCPU(pid)
	for _, child := range childPIDs(pid) {
		if d, ok := procCPU(child); ok {
			plugins += d
		}
	}
	return gw, plugins
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times on Linux.
const clockTick = 100

// procCPU reads utime+stime of a process from /proc.
func procCPU(pid int) (time.Duration, bool) {
	fields, ok := procStat(pid)
	if !ok || len(fields) < 13 {
		return 0, false
	}
	// After "pid (comm)": state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime ...
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * time.Second / clockTick, true
}

// procStat returns the fields of /proc/<pid>/stat after the command name.
func procStat(pid int) ([]string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(s[i+1:]), true
}

// childPIDs lists the live children of ppid.
func childPIDs(ppid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fields, ok := procStat(pid)
		if !ok || len(fields) < 2 || fields[0] == "Z" {
			continue
		}
		if parent, _ := strconv.Atoi(fields[1]); parent == ppid {
			out = append(out, pid)
		}
	}
	return out
}

// freeAddr returns a 127.0.0.1 address that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// stripeAPI is what the plugin's base_url points at: a tiny fake that
// counts calls (ingress makes none), or stripe-mock when STRIPE_MOCK names
// its binary (as make test sets it) or its URL.
type stripeAPI struct {
	url   string
	calls atomic.Int64
	srv   *http.Server
	mock  *exec.Cmd
}

func startStripeAPI() (*stripeAPI, error) {
	s := &stripeAPI{}
	if mock := os.Getenv("STRIPE_MOCK"); mock != "" {
		if strings.HasPrefix(mock, "http://") || strings.HasPrefix(mock, "https://") {
			s.url = mock
			return s, nil
		}
		httpAddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		httpsAddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		s.mock = exec.Command(mock, "-http-addr", httpAddr, "-https-addr", httpsAddr)
		s.mock.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := s.mock.Start(); err != nil {
			return nil, fmt.Errorf("start stripe-mock: %w", err)
		}
		s.url = "http://" + httpAddr
		for deadline := time.Now().Add(15 * time.Second); ; {
			c, err := net.DialTimeout("tcp", httpAddr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				return s, nil
			}
			if time.Now().After(deadline) {
				s.close()
				return nil, errors.New("stripe-mock did not start in 15s")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.calls.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"ingressbench fake: no API here"}}`))
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *stripeAPI) close() {
	if s.srv != nil {
		_ = s.srv.Close()
	}
	if s.mock != nil && s.mock.Process != nil {
		_ = s.mock.Process.Kill()
		_ = s.mock.Wait()
	}
}

// describe says what the plugin's base_url points at.
func (s *stripeAPI) describe() string {
	switch {
	case s.srv != nil:
		return fmt.Sprintf("local fake, called %d times", s.calls.Load())
	case s.mock != nil:
		return "stripe-mock " + s.url
	default:
		return s.url
	}
}

// fetchProfile saves the CPU profile at url, which takes d to record.
func fetchProfile(url, path string, d time.Duration) error {
	client := &http.Client{Timeout: d + 30*time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
