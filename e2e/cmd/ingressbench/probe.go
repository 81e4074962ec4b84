package main

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// fsyncProbe appends n records of 1.5 KB to a file in dir, each followed by
// fdatasync (row 3a of perf-limits.md), and returns the median and the
// 99th percentile time of one. It tells how the disk behaves right now,
// which bounds every durable figure of the run: a commit waits for two.
func fsyncProbe(dir string, n int) (fsyncTimes, error) {
	path := filepath.Join(dir, "fsync.probe")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return fsyncTimes{}, err
	}
	defer os.Remove(path)
	defer f.Close()
	rec := make([]byte, 1536)
	took := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if _, err := f.WriteAt(rec, int64(i*len(rec))); err != nil {
			return fsyncTimes{}, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return fsyncTimes{}, err
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	return fsyncTimes{p50: took[len(took)/2], p99: took[len(took)*99/100]}, nil
}

// fsyncTimes are fsyncProbe's figures.
type fsyncTimes struct{ p50, p99 time.Duration }

func (f fsyncTimes) String() string { return "median " + ms(f.p50) + ", p99 " + ms(f.p99) }
