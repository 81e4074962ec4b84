//go:build unix

package store

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// cpuNow is the CPU time this process has used.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAcceptCommit is BenchmarkAcceptWebhook seen from the file: the
// pages each accepted webhook writes, how many share a commit, and the
// process's CPU time per webhook, which with the two fdatasyncs of each
// commit decide how many a gateway takes per second.
func BenchmarkAcceptCommit(b *testing.B) {
	st, err := OpenBolt(filepath.Join(b.TempDir(), "pipecore.db"), BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	body := bytes.Repeat([]byte{'x'}, 1500)
	header := map[string][]string{"Content-Length": {"1500"}, "Host": {"127.0.0.1:44321"}, "Content-Type": {"application/json"}, "Stripe-Signature": {"t=1732700000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"}}
	ctx := context.Background()
	var next atomic.Int64
	txid := func() int {
		var id int
		_ = st.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	s0, id0, c0 := st.db.Stats(), txid(), cpuNow()
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			_, _, err := st.AcceptWebhook(ctx, InboxRecord{TenantID: "t_bench", Provider: "stripe", DedupKey: "evt_" + strconv.FormatInt(n, 10), CorrelationID: "req_0123456789abcdef01234567",
				Method: "POST", RequestURI: "/webhooks/stripe/t_bench", Header: header, Body: body})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	s1 := st.db.Stats()
	d := s1.Sub(&s0)
	commits := txid() - id0
	b.ReportMetric(float64(d.TxStats.GetPageCount())/float64(b.N), "pages/rec")
	b.ReportMetric(float64(b.N)/float64(commits), "rec/commit")
	b.ReportMetric(float64(d.TxStats.GetWriteTime().Microseconds())/float64(commits), "write-µs/commit")
	b.ReportMetric(float64((cpuNow()-c0).Microseconds())/float64(b.N), "cpu-µs/rec")
}
