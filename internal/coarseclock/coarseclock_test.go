package coarseclock

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fine is a fine clock the test steps by hand.
type fine struct{ ms atomic.Int64 }

func (f *fine) now() time.Time { return time.UnixMilli(f.ms.Load()) }

// waitFor polls cond until it holds; the deadline only stops a broken
// clock from hanging the test, it measures nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNeverAheadOfTimeNow(t *testing.T) {
	c := New(0, 0, nil)
	for i := 0; i < 100_000; i++ {
		got := c.UnixMilli()
		if now := time.Now().UnixMilli(); got > now {
			t.Fatalf("read %d: coarse %d ms is ahead of time.Now %d ms", i, got, now)
		}
	}
	if got, now := Now(), time.Now(); got.After(now) {
		t.Fatalf("package clock %v is ahead of time.Now %v", got, now)
	}
}

func TestFollowsTheFineClock(t *testing.T) {
	var f fine
	f.ms.Store(1_000)
	c := New(time.Millisecond, 1_000_000, f.now)
	if got := c.UnixMilli(); got != 1_000 {
		t.Fatalf("first read = %d, want 1000 (read through)", got)
	}
	f.ms.Store(5_000)
	waitFor(t, "the clock to reach 5000", func() bool { return c.UnixMilli() == 5_000 })
	f.ms.Store(7_123)
	waitFor(t, "the clock to reach 7123", func() bool { return c.UnixMilli() == 7_123 })
	if got := c.Now(); !got.Equal(time.UnixMilli(7_123)) {
		t.Fatalf("Now = %v, want %v", got, time.UnixMilli(7_123))
	}
}

func TestStopsWhenIdleAndRestarts(t *testing.T) {
	var f fine
	f.ms.Store(42)
	c := New(time.Millisecond, 3, f.now)
	if c.isRunning() {
		t.Fatal("running before the first read")
	}
	c.UnixMilli()
	if !c.isRunning() {
		t.Fatal("not running after a read")
	}
	waitFor(t, "the idle ticker to stop", func() bool { return !c.isRunning() && c.tickers.Load() == 0 })
	// Stopped: a read goes to the fine clock, so it is exact, and starts
	// the ticker again.
	f.ms.Store(99)
	if got := c.UnixMilli(); got != 99 {
		t.Fatalf("read after stop = %d, want 99", got)
	}
	if !c.isRunning() {
		t.Fatal("a read after the stop did not start the ticker")
	}
}

// TestOneTickerUnderConcurrentReads races many readers against the ticker's
// idle stop and restart: at most one ticker goroutine is ever alive, and no
// read is ahead of the fine clock.
func TestOneTickerUnderConcurrentReads(t *testing.T) {
	var f fine
	f.ms.Store(1)
	c := New(time.Millisecond, 1, f.now)
	var maxTickers atomic.Int32
	stop := make(chan struct{})
	var bad atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if got, now := c.UnixMilli(), f.ms.Load(); got > now {
					bad.Store(got)
				}
				if n := c.tickers.Load(); n > maxTickers.Load() {
					maxTickers.Store(n)
				}
				if i%64 == 0 {
					time.Sleep(2 * time.Millisecond) // let the ticker go idle
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		f.ms.Add(1)
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if b := bad.Load(); b != 0 {
		t.Fatalf("a read returned %d, ahead of the fine clock", b)
	}
	if n := maxTickers.Load(); n > 1 {
		t.Fatalf("%d ticker goroutines were alive at once", n)
	}
	waitFor(t, "the ticker to stop", func() bool { return c.tickers.Load() == 0 })
}

func BenchmarkNow(b *testing.B) {
	b.Run("coarse", func(b *testing.B) {
		var s int64
		for i := 0; i < b.N; i++ {
			s += UnixMilli()
		}
		sink = s
	})
	b.Run("time.Now", func(b *testing.B) {
		var s int64
		for i := 0; i < b.N; i++ {
			s += time.Now().UnixMilli()
		}
		sink = s
	})
}

var sink int64
