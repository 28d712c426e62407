// Package coarseclock is a millisecond wall clock that costs one atomic load
// to read.
//
// Inventory backends stamp every reservation with its creation time in Unix
// milliseconds. On the virtual machines Surge runs on, time.Now costs 60 ns
// (AMD EPYC) to 500 ns (Intel Xeon without the vDSO fast path): most of a
// memory reserve's budget. A Clock instead keeps the current millisecond in
// an atomic that a ticker goroutine refreshes every millisecond.
//
// What a reader gets: the wall time truncated to the millisecond at the last
// tick. It is never ahead of time.Now. It is behind by at most one tick while
// the ticker runs on time; a CPU-starved process delays the ticker, so it
// can then be a few milliseconds behind. Inventory deadlines are whole
// milliseconds made from this clock and checked against it, so a hold lasts
// its TTL as the clock counts it; against time.Now it may end up to that lag
// early, never late.
//
// The ticker runs only while the clock is read: after IdleTicks ticks
// without a read it stops, and the next read takes time.Now and starts it
// again. An idle process does not wake every millisecond.
package coarseclock

import (
	"sync/atomic"
	"time"
)

// Defaults of the package clock.
const (
	Tick      = time.Millisecond
	IdleTicks = 1000
)

// Clock is a coarse wall clock. The zero value is not usable; see New.
type Clock struct {
	// ms is the wall time in Unix ms at the last tick; 0 while the
	// ticker is stopped.
	ms atomic.Int64
	// read is set by readers, cleared by the ticker at each tick.
	read atomic.Bool
	// running is held by the one ticker goroutine (at most one).
	running atomic.Bool
	// tickers counts ticker goroutines alive (tests check it is never
	// above one).
	tickers atomic.Int32
	tick    time.Duration
	idle    int
	// now is the fine clock (time.Now; tests may step it).
	now func() time.Time
}

// New returns a clock that ticks every tick and stops after idle ticks
// without a read. now is the fine clock it samples (nil: time.Now).
func New(tick time.Duration, idle int, now func() time.Time) *Clock {
	if tick <= 0 {
		tick = Tick
	}
	if idle <= 0 {
		idle = IdleTicks
	}
	if now == nil {
		now = time.Now
	}
	return &Clock{tick: tick, idle: idle, now: now}
}

var std = New(Tick, IdleTicks, nil)

// Now reads the package clock: the wall time at the last tick, truncated to
// the millisecond.
func Now() time.Time { return std.Now() }

// UnixMilli reads the package clock in Unix milliseconds.
func UnixMilli() int64 { return std.UnixMilli() }

// Now returns the wall time at the last tick, truncated to the millisecond.
func (c *Clock) Now() time.Time { return time.UnixMilli(c.UnixMilli()) }

// UnixMilli returns the wall time at the last tick in Unix milliseconds.
func (c *Clock) UnixMilli() int64 {
	if ms := c.ms.Load(); ms != 0 {
		if !c.read.Load() { // keep the line shared while it is set
			c.read.Store(true)
		}
		return ms
	}
	return c.start()
}

// start is the slow path of a read with the ticker stopped: read the fine
// clock, and start the ticker unless another reader just did.
func (c *Clock) start() int64 {
	ms := c.now().UnixMilli()
	if c.running.CompareAndSwap(false, true) {
		c.ms.Store(ms)
		go c.run()
	}
	return ms
}

// isRunning reports whether the ticker goroutine is running (for tests).
func (c *Clock) isRunning() bool { return c.running.Load() }

// run refreshes ms every tick until idle ticks pass without a read.
func (c *Clock) run() {
	c.tickers.Add(1)
	t := time.NewTicker(c.tick)
	quiet := 0
	for range t.C {
		if c.read.Swap(false) {
			quiet = 0
		} else if quiet++; quiet >= c.idle {
			break
		}
		c.ms.Store(c.now().UnixMilli())
	}
	t.Stop()
	// Readers that load ms from here on take the slow path; one of them
	// starts a new ticker once running is released, after this one has
	// counted itself out.
	c.ms.Store(0)
	c.tickers.Add(-1)
	c.running.Store(false)
}
