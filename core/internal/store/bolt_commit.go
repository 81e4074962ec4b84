package store

import (
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// committer group commits the store's shared writes (Bolt.batch). One
// goroutine runs the commits, one after the other; every function queued
// while a commit runs goes into the next one, which starts as soon as the
// oldest queued function has waited BatchDelay (at once if it already has)
// or BatchSize functions are queued.
//
// bbolt's own db.Batch cuts a batch BatchDelay after its first call even
// when the previous commit still holds the write lock, so under load it
// queues many small batches behind each other, each paying two fdatasyncs
// (perf-limits.md, rows 3c and 3d). Here a slow commit makes the next one
// larger instead.
//
// As with db.Batch, a function may run more than once: when one fails, the
// transaction is rolled back, the others run again without it, and the
// failing one runs alone in a transaction of its own, so that its error is
// its own. Functions run in the order they were queued.
type committer struct {
	db    *bolt.DB
	delay time.Duration
	max   int

	mu      sync.Mutex
	queue   []commitCall
	stopped bool
	wake    chan struct{} // capacity 1: the queue went from empty to not, or filled up
	done    chan struct{} // closed when run returns
}

type commitCall struct {
	fn  func(*bolt.Tx) error
	at  time.Time  // when it was queued
	err chan error // capacity 1
}

// errSolo tells a caller to run its function in a transaction of its own.
var errSolo = errors.New("store: run the function alone")

func newCommitter(db *bolt.DB, delay time.Duration, max int) *committer {
	c := &committer{db: db, delay: delay, max: max, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.run()
	return c
}

// errChans recycles the reply channels: every write of the hot path
// would otherwise allocate one.
var errChans = sync.Pool{New: func() any { return make(chan error, 1) }}

// do queues fn for the next commit and waits for the commit's outcome. It
// returns bolterrors.ErrDatabaseNotOpen once the committer has stopped.
func (c *committer) do(fn func(*bolt.Tx) error) error {
	ch := errChans.Get().(chan error)
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		errChans.Put(ch)
		return bolterrors.ErrDatabaseNotOpen
	}
	c.queue = append(c.queue, commitCall{fn: fn, at: time.Now(), err: ch})
	if n := len(c.queue); n == 1 || n == c.max {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	err := <-ch
	errChans.Put(ch)
	if err == errSolo {
		err = c.db.Update(func(tx *bolt.Tx) error { return safely(fn, tx) })
	}
	return err
}

// stop runs what is queued and ends the committer; later calls fail.
func (c *committer) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
}

func (c *committer) run() {
	defer close(c.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var calls []commitCall
	for {
		c.mu.Lock()
		n, stopped := len(c.queue), c.stopped
		var wait time.Duration
		if n > 0 && n < c.max && !stopped {
			wait = c.delay - time.Since(c.queue[0].at)
		}
		if n == 0 || wait > 0 {
			c.mu.Unlock()
			if n == 0 && stopped {
				return
			}
			if n == 0 {
				<-c.wake
				continue
			}
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-c.wake:
				timer.Stop()
			}
			continue
		}
		take := min(n, c.max)
		calls = append(calls[:0], c.queue[:take]...)
		rest := copy(c.queue, c.queue[take:])
		clear(c.queue[rest:])
		c.queue = c.queue[:rest]
		c.mu.Unlock()
		c.commit(calls)
		clear(calls)
	}
}

// commit runs calls in one transaction, taking out and answering errSolo
// to each function that fails, and answers the commit's outcome to the
// others.
func (c *committer) commit(calls []commitCall) {
	for len(calls) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bolt.Tx) error {
			for i := range calls {
				if err := safely(calls[i].fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			calls[failed].err <- errSolo
			calls = append(calls[:failed], calls[failed+1:]...)
			continue
		}
		for i := range calls {
			calls[i].err <- err
		}
		return
	}
}

// safely runs fn, turning a panic into an error.
func safely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: write panicked: %v", p)
		}
	}()
	return fn(tx)
}
