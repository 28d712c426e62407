package gateway

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLazyDeadline: the request context ends at its deadline or when
// cancelled, whether or not somebody asked for Done first; no test here
// waits on a clock, the deadlines are in the past or far away.
func TestLazyDeadline(t *testing.T) {
	far := time.Now().Add(time.Hour)
	c := &lazyDeadline{deadline: far}
	if d, ok := c.Deadline(); !ok || !d.Equal(far) {
		t.Fatalf("Deadline = %v %v", d, ok)
	}
	if c.Err() != nil || c.Value("k") != nil {
		t.Fatal("fresh context ended or has values")
	}
	c.cancel()
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err after cancel = %v", c.Err())
	}
	<-c.Done() // made after the cancel: already closed

	c = &lazyDeadline{deadline: far}
	done := c.Done()
	select {
	case <-done:
		t.Fatal("Done closed early")
	default:
	}
	c.cancel()
	<-done
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err after cancel = %v", c.Err())
	}

	past := &lazyDeadline{deadline: time.Now().Add(-time.Second)}
	if !errors.Is(past.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err past the deadline = %v", past.Err())
	}
	<-past.Done()
	if !errors.Is(past.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err past the deadline after Done = %v", past.Err())
	}
	child, cancel := context.WithCancel(past)
	defer cancel()
	<-child.Done()
	past.cancel()

	// Contexts derived from a live one end with it, and hang on its timer
	// context rather than each starting a goroutine to watch it.
	parent := &lazyDeadline{deadline: far}
	before := runtime.NumGoroutine()
	var children []context.Context
	for i := 0; i < 100; i++ {
		c, cancel := context.WithTimeout(parent, time.Hour)
		defer cancel()
		children = append(children, c)
	}
	if n := runtime.NumGoroutine() - before; n > 10 {
		t.Errorf("100 derived contexts started %d goroutines", n)
	}
	parent.cancel()
	for _, c := range children {
		<-c.Done()
	}
}

// checkList fails unless l's links agree both ways and its deadlines do
// not decrease, and returns its length.
func checkList(t *testing.T, l *deadlineList) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	var prev *lazyDeadline
	for c := l.head; c != nil; c = c.next {
		if c.prev != prev || !c.linked {
			t.Fatalf("node %d: prev %p linked %v; want prev %p, linked", n, c.prev, c.linked, prev)
		}
		if prev != nil && c.deadline.Before(prev.deadline) {
			t.Fatalf("node %d: deadline %v before the one before it (%v)", n, c.deadline, prev.deadline)
		}
		prev = c
		n++
	}
	if l.tail != prev {
		t.Fatalf("tail %p; want the last node %p", l.tail, prev)
	}
	return n
}

// TestDeadlineListEndsEachAtItsDeadline: contexts that wait on Done, made
// in any order of deadline, each end with DeadlineExceeded and never
// before their deadline; the list is kept in order and is empty after.
func TestDeadlineListEndsEachAtItsDeadline(t *testing.T) {
	var l deadlineList
	now := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	cs := make([]*lazyDeadline, 200)
	for i := range cs {
		cs[i] = &lazyDeadline{deadline: now.Add(20*time.Millisecond + time.Duration(rng.IntN(40_000))*time.Microsecond), list: &l}
		cs[i].Done()
	}
	// Some far away, made last: the timer stays armed for the earliest.
	far := &lazyDeadline{deadline: now.Add(time.Hour), list: &l}
	far.Done()
	if n := checkList(t, &l); n != len(cs)+1 {
		t.Fatalf("list holds %d; want %d", n, len(cs)+1)
	}
	for i, c := range cs {
		<-c.Done()
		if at := time.Now(); at.Before(c.deadline) {
			t.Fatalf("context %d ended at %v, before its deadline %v", i, at, c.deadline)
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("context %d: Err = %v", i, c.Err())
		}
	}
	if n := checkList(t, &l); n != 1 {
		t.Fatalf("list holds %d after the deadlines; want the far one", n)
	}
	far.cancel()
	if n := checkList(t, &l); n != 0 || far.Err() != context.Canceled {
		t.Fatalf("list holds %d after cancel, far.Err = %v", n, far.Err())
	}
}

// TestDeadlineListHammer: many goroutines make contexts on one list and
// cancel them while the timer ends others, some derived contexts hang on
// them; every context ends exactly once, with the reason that came first,
// and the list is empty at the end (run with -race).
func TestDeadlineListHammer(t *testing.T) {
	var l deadlineList
	const workers, each = 16, 2000
	var expired, canceled, afters atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; i < each; i++ {
				// A few microseconds to a few milliseconds: some end by
				// the timer, most by cancel.
				c := &lazyDeadline{deadline: time.Now().Add(time.Duration(rng.IntN(3000)) * time.Microsecond), list: &l}
				done := c.Done()
				var child context.Context
				stop := context.CancelFunc(func() {})
				if i%50 == 0 {
					child, stop = context.WithCancel(c)
				}
				if rng.IntN(4) == 0 {
					runtime.Gosched()
				}
				c.cancel()
				<-done
				switch c.Err() {
				case context.DeadlineExceeded:
					expired.Add(1)
				case context.Canceled:
					canceled.Add(1)
				default:
					t.Errorf("Err after the end = %v", c.Err())
				}
				if child != nil {
					<-child.Done()
					if !errors.Is(child.Err(), c.Err()) {
						t.Errorf("derived Err = %v; parent's %v", child.Err(), c.Err())
					}
					afters.Add(1)
				}
				stop()
			}
		}(w)
	}
	wg.Wait()
	if got := expired.Load() + canceled.Load(); got != workers*each {
		t.Fatalf("%d contexts ended; want %d", got, workers*each)
	}
	if afters.Load() != workers*each/50 {
		t.Fatalf("%d derived contexts ended; want %d", afters.Load(), workers*each/50)
	}
	if n := checkList(t, &l); n != 0 {
		t.Fatalf("list holds %d at the end; want 0", n)
	}
	t.Logf("%d ended by the timer, %d by cancel", expired.Load(), canceled.Load())
}

// TestLazyDeadlineAfterFunc: a function registered with AfterFunc runs
// once when the context ends, or never when stopped first; one registered
// on an ended context runs at once.
func TestLazyDeadlineAfterFunc(t *testing.T) {
	c := &lazyDeadline{deadline: time.Now().Add(time.Hour)}
	ran := make(chan int, 3)
	stop1 := c.AfterFunc(func() { ran <- 1 })
	stop2 := c.AfterFunc(func() { ran <- 2 })
	if !stop2() || stop2() {
		t.Fatal("stop of a waiting function: want true once, then false")
	}
	c.cancel()
	if got := <-ran; got != 1 {
		t.Fatalf("ran %d; want 1", got)
	}
	if stop1() {
		t.Fatal("stop after the function started reported true")
	}
	c.AfterFunc(func() { ran <- 3 })
	if got := <-ran; got != 3 {
		t.Fatalf("ran %d; want 3", got)
	}
	select {
	case got := <-ran:
		t.Fatalf("function %d ran although stopped", got)
	case <-time.After(50 * time.Millisecond):
	}
}
