package gateway

import (
	"io"
	"strings"
	"testing"
	"time"
)

// feed runs windows of the limit on a synthetic clock: each window is
// adaptiveWindowMin long and has adaptiveWindowSamplesMin samples of
// latency d, taken with inflight(limit) writes in flight.
type limitFeed struct {
	l   *adaptiveLimit
	now time.Time
}

func (f *limitFeed) windows(n int, d time.Duration, inflight func(limit int64) int64) {
	for i := 0; i < n; i++ {
		step := adaptiveWindowMin / adaptiveWindowSamplesMin
		for j := 0; j < adaptiveWindowSamplesMin; j++ {
			f.now = f.now.Add(step)
			f.l.observe(d, inflight(f.l.current()), f.now)
		}
	}
}

func full(limit int64) int64 { return limit }
func idle(int64) int64       { return 1 }

func newTestLimit(floor, max int) (*limitFeed, *semaphore) {
	sem := newSemaphore(max)
	t0 := time.Unix(1_800_000_000, 0)
	return &limitFeed{l: newAdaptiveLimit(sem, floor, t0), now: t0}, sem
}

// TestAdaptiveLimitFollowsLatency walks the limit through a sale on a
// synthetic clock: at its no-load latency and fully used it stays at the
// maximum; when admitted writes take 10 times as long it falls, window
// after window, to the floor; when they are fast again and the limit is
// used, it climbs back to the maximum. It never leaves [floor, max].
func TestAdaptiveLimitFollowsLatency(t *testing.T) {
	const floor, max = 16, 1024
	f, sem := newTestLimit(floor, max)
	if got := f.l.current(); got != max {
		t.Fatalf("initial limit %d; want %d (what a fixed limit admits)", got, max)
	}
	f.windows(20, time.Millisecond, full)
	if got := f.l.current(); got != max {
		t.Errorf("limit at no-load latency %d; want %d", got, max)
	}
	if b := f.l.baseline(); b != time.Millisecond {
		t.Errorf("baseline %v; want 1ms", b)
	}
	prev := f.l.current()
	for i := 0; i < 60; i++ {
		f.windows(1, 10*time.Millisecond, full)
		got := f.l.current()
		if got > prev || got < floor {
			t.Fatalf("slow window %d: limit %d after %d; want falling, >= %d", i, got, prev, floor)
		}
		prev = got
	}
	if got := f.l.current(); got != floor {
		t.Errorf("limit after 60 slow windows %d; want the floor %d", got, floor)
	}
	if got := sem.limit(); got != floor {
		t.Errorf("semaphore bound %d; want %d", got, floor)
	}
	// Within the tolerance (2x): no shrinking.
	f, _ = newTestLimit(floor, max)
	f.windows(5, time.Millisecond, full)
	f.windows(50, 1900*time.Microsecond, full)
	if got := f.l.current(); got != max {
		t.Errorf("limit at 1.9x the no-load latency %d; want %d", got, max)
	}
	// Recovery: fast again and used, the limit climbs back.
	f, _ = newTestLimit(floor, max)
	f.windows(5, time.Millisecond, full)
	f.windows(60, 10*time.Millisecond, full)
	prev = f.l.current()
	for i := 0; i < 400; i++ {
		f.windows(1, time.Millisecond, full)
		if got := f.l.current(); got < prev || got > max {
			t.Fatalf("fast window %d: limit %d after %d; want rising, <= %d", i, got, prev, max)
		}
		prev = f.l.current()
	}
	if prev != max {
		t.Errorf("limit after 400 fast windows %d; want %d", prev, max)
	}
}

// TestAdaptiveLimitQueueAllowance: a standing queue within
// adaptiveQueueAllowance of a small no-load latency does not shrink the
// limit, however large the ratio (a Redis reserve of 0.5 ms without load
// waits 4 ms with a few hundred in flight: eight times, and still fast);
// past noLoad + allowance the limit falls to its floor as before.
func TestAdaptiveLimitQueueAllowance(t *testing.T) {
	const floor, max = 128, 1024
	noLoad := 500 * time.Microsecond
	f, _ := newTestLimit(floor, max)
	f.windows(5, noLoad, full)
	f.windows(100, 8*noLoad, full)
	if got := f.l.current(); got != max {
		t.Errorf("limit at 8x a no-load latency of %v (within %v of it) %d; want %d", noLoad, adaptiveQueueAllowance, got, max)
	}
	f.windows(100, noLoad+adaptiveQueueAllowance-100*time.Microsecond, full)
	if got := f.l.current(); got != max {
		t.Errorf("limit just under no-load + allowance %d; want %d", got, max)
	}
	f.windows(60, 4*(noLoad+adaptiveQueueAllowance), full)
	if got := f.l.current(); got != floor {
		t.Errorf("limit at 4x (no-load + allowance) %d; want the floor %d", got, floor)
	}
}

// run feeds the limit for dur on the synthetic clock from a model of the
// server: at the limit in force, admitted writes complete at perSec, each
// taking d, with inflight in flight. It returns the share of the writes
// of the run's second half admitted while the limit was under below.
func (f *limitFeed) run(dur time.Duration, below int64, model func(limit int64) (perSec float64, d time.Duration, inflight int64)) float64 {
	end := f.now.Add(dur)
	var n, under int
	for f.now.Before(end) {
		perSec, d, inflight := model(f.l.current())
		f.now = f.now.Add(time.Duration(float64(time.Second) / perSec))
		f.l.observe(d, inflight, f.now)
		if end.Sub(f.now) < dur/2 {
			n++
			if f.l.current() < below {
				under++
			}
		}
	}
	return float64(under) / float64(max(n, 1))
}

// TestAdaptiveLimitCutsThatCostThroughput: a closed loop of 256 clients
// that resend a shed write at once. Unshed, the server completes 3200
// writes/s in 80 ms each (far above its no-load latency); once the limit
// is under 256, the sheds come straight back and eat the cores, so only
// 1280 complete. The limit then goes back to the 256 in flight of its
// best throughput and keeps it (trying a cut again once a period), rather
// than shedding most of the loop from its floor. An open crowd whose
// throughput does not fall when it is cut (sheds leave) is still cut to
// the floor and kept there.
func TestAdaptiveLimitCutsThatCostThroughput(t *testing.T) {
	const floor, max, conns = 128, 1024, 256
	f, _ := newTestLimit(floor, max)
	f.windows(5, 500*time.Microsecond, full) // no load
	share := f.run(18*time.Second, conns, func(limit int64) (float64, time.Duration, int64) {
		if limit >= conns {
			return 3200, 80 * time.Millisecond, conns
		}
		return 1280, time.Duration(float64(limit) / 1280 * float64(time.Second)), limit
	})
	if share > 0.1 || f.l.current() < conns {
		t.Errorf("closed loop: limit %d, under %d for %.0f%% of the last 9 s; want >= %d (the in flight of the best throughput) for 90%%",
			f.l.current(), conns, 100*share, conns)
	}
	f, _ = newTestLimit(floor, max)
	f.windows(5, 500*time.Microsecond, full)
	share = f.run(18*time.Second, floor+1, func(limit int64) (float64, time.Duration, int64) {
		return 3200, time.Duration(float64(limit) / 3200 * float64(time.Second)), limit
	})
	if got := f.l.current(); share != 1 || got != floor {
		t.Errorf("open overload: limit %d, at the floor for %.0f%% of the last 9 s; want the floor %d all the time", got, 100*share, floor)
	}
	// A crowd that leaves after a short storm: fewer writes per second,
	// but the limit is not used, so that is no loss to undo.
	f, _ = newTestLimit(floor, max)
	f.windows(5, 500*time.Microsecond, full)
	f.run(3*time.Second, floor+1, func(limit int64) (float64, time.Duration, int64) {
		return 3200, time.Duration(float64(limit) / 3200 * float64(time.Second)), limit
	})
	f.run(5*time.Second, floor+1, func(int64) (float64, time.Duration, int64) { return 100, time.Millisecond, 1 })
	if got := f.l.current(); got != floor {
		t.Errorf("after the crowd left: limit %d; want the floor %d", got, floor)
	}
}

// TestAdaptiveLimitBackendSlowedDown: an open crowd is cut to the floor
// while the backend completes 3200 writes/s, then the backend's capacity
// drops to 1000/s. Goodput falls under adaptiveGoodputLoss of the best
// with the limit used and under the in flight of the best, which is what
// a cut that cost throughput looks like, so the cut is undone; but going
// back up buys nothing (the backend gives 1000/s at any limit) and only
// lengthens the queue. The undo is then found wrong and the limit is cut
// to the floor again, rather than held high for a period with the
// admitted writes waiting four times as long.
func TestAdaptiveLimitBackendSlowedDown(t *testing.T) {
	const floor, max = 128, 1024
	f, _ := newTestLimit(floor, max)
	f.windows(5, 500*time.Microsecond, full)
	open := func(perSec float64) func(limit int64) (float64, time.Duration, int64) {
		return func(limit int64) (float64, time.Duration, int64) {
			return perSec, time.Duration(float64(limit) / perSec * float64(time.Second)), limit
		}
	}
	f.run(6*time.Second, floor+1, open(3200))
	if got := f.l.current(); got != floor {
		t.Fatalf("open overload at 3200/s: limit %d; want the floor %d", got, floor)
	}
	// The undo may be tried once; within a few windows it is found wrong,
	// so the last 6 s of 12 are all at the floor.
	settled := f.now.Add(6 * time.Second)
	highest := int64(0)
	share := f.run(12*time.Second, floor+1, func(limit int64) (float64, time.Duration, int64) {
		if !f.now.Before(settled) {
			highest = maxInt64(highest, limit)
		}
		return open(1000)(limit)
	})
	if share != 1 || highest != floor {
		t.Errorf("backend slowed to 1000/s: limit up to %d, at the floor for %.0f%% of the last 6 s; want the floor %d all the time", highest, 100*share, floor)
	}
}

// TestAdaptiveLimitUndoStaysUnderMax: the in-flight count the undo
// remembers can exceed the maximum (a rejected tryAcquire counts itself
// before it backs out; the lottery reclaims), yet the limit never does.
// Here a closed loop reports 600 in flight against a maximum of 512, and
// a cut under 500 costs throughput, so the cut is undone.
func TestAdaptiveLimitUndoStaysUnderMax(t *testing.T) {
	const floor, max = 128, 512
	f, sem := newTestLimit(floor, max)
	f.windows(5, 500*time.Microsecond, full)
	highest := int64(0)
	f.run(18*time.Second, 0, func(limit int64) (float64, time.Duration, int64) {
		highest = maxInt64(highest, limit)
		if limit >= 500 {
			return 3200, 9 * time.Millisecond, 600
		}
		return 1280, time.Millisecond, 600
	})
	if highest > max || sem.limit() > max {
		t.Fatalf("limit reached %d (now %d); want at most the maximum %d", highest, sem.limit(), max)
	}
}

func maxInt64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// TestAdaptiveLimitIdleDoesNotGrow: a limit that is not used (in flight
// under half of it) does not grow, however fast the writes.
func TestAdaptiveLimitIdleDoesNotGrow(t *testing.T) {
	f, _ := newTestLimit(16, 1024)
	f.windows(5, time.Millisecond, full)
	f.windows(60, 10*time.Millisecond, full)
	low := f.l.current()
	f.windows(200, time.Millisecond, idle)
	if got := f.l.current(); got != low {
		t.Errorf("limit after idle fast windows %d; want it kept at %d", got, low)
	}
}

// TestAdaptiveLimitBaselineForgets: the no-load latency is a min filter
// over one to two periods: a machine that got slower for good is
// followed, and the limit then goes back up.
func TestAdaptiveLimitBaselineForgets(t *testing.T) {
	f, _ := newTestLimit(16, 1024)
	f.windows(5, time.Millisecond, full)
	periodWindows := int(adaptiveBaselinePeriod / adaptiveWindowMin)
	f.windows(periodWindows/2, 5*time.Millisecond, full)
	if b := f.l.baseline(); b != time.Millisecond {
		t.Errorf("baseline within the period %v; want 1ms", b)
	}
	f.windows(6*periodWindows, 5*time.Millisecond, full)
	if b := f.l.baseline(); b != 5*time.Millisecond {
		t.Errorf("baseline two periods later %v; want 5ms", b)
	}
	if got := f.l.current(); got != 1024 {
		t.Errorf("limit once the baseline followed %d; want 1024", got)
	}
}

// TestAdaptiveLimitWindowNeedsSamples: a window closes after
// adaptiveWindowMin with enough samples, or after adaptiveWindowMax with
// any; never before adaptiveWindowMin.
func TestAdaptiveLimitWindowNeedsSamples(t *testing.T) {
	f, _ := newTestLimit(16, 1024)
	for i := 0; i < 1000; i++ { // many samples, all within the minimum window
		f.l.observe(time.Millisecond, 1, f.now.Add(adaptiveWindowMin/2))
	}
	if n := f.l.windows.Load(); n != 0 {
		t.Fatalf("windows closed before %v: %d", adaptiveWindowMin, n)
	}
	f.l.observe(time.Millisecond, 1, f.now.Add(adaptiveWindowMin))
	if n := f.l.windows.Load(); n != 1 {
		t.Fatalf("windows after %v and 1001 samples: %d; want 1", adaptiveWindowMin, n)
	}
	start := f.now.Add(adaptiveWindowMin)
	f.l.observe(time.Millisecond, 1, start.Add(adaptiveWindowMax/2))
	if n := f.l.windows.Load(); n != 1 {
		t.Fatalf("a window of one sample closed before %v", adaptiveWindowMax)
	}
	f.l.observe(time.Millisecond, 1, start.Add(adaptiveWindowMax))
	if n := f.l.windows.Load(); n != 2 {
		t.Fatalf("windows after %v: %d; want 2", adaptiveWindowMax, n)
	}
}

// TestAdaptiveLimitConcurrent hammers a semaphore whose bound the limit
// moves, from many goroutines on the real clock (with slow and fast
// phases): nobody is ever admitted past the maximum, every slot comes
// back, and the bound stays within [floor, max]. Run under -race.
func TestAdaptiveLimitConcurrent(t *testing.T) {
	const floor, max, workers, rounds = 4, 64, 32, 400
	sem := newSemaphore(max)
	l := newAdaptiveLimit(sem, floor, time.Now())
	hammerSemaphore(t, sem, max, workers, rounds, func(i int) {
		start := time.Now()
		if i%50 < 10 {
			time.Sleep(200 * time.Microsecond)
		}
		now := time.Now()
		l.observe(now.Sub(start), sem.inflight(), now)
		if lim := sem.limit(); lim < floor || lim > max {
			t.Errorf("limit %d outside [%d, %d]", lim, floor, max)
		}
	})
}

// TestAdaptiveLimitServed: the writes' bound and its no-load latency are
// in /admin/v1/stats and /metrics; admitted successful reserves feed the
// limit, refusals answered without the backend (sold out) do not; with
// WritesLimitFixed the bound is the maximum and nothing is measured.
func TestAdaptiveLimitServed(t *testing.T) {
	h := newHarness(t, "memory", func(o *Options) { o.WritesInflightMax = 300; o.WritesInflightMin = 20 })
	h.loadCatalog()
	h.createSale("f1", 5, 0)
	a := h.login("alice")
	for i := 0; i < 5; i++ {
		h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a)
	}
	if n := h.srv.writesLimit.samples.Load() + h.srv.writesLimit.windows.Load(); n == 0 {
		t.Error("successful reserves fed no sample to the limit")
	}
	h.srv.writesLimit.samples.Store(0)
	for i := 0; i < 20; i++ {
		h.wantCode(CodeSoldOut, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a)
	}
	if n := h.srv.writesLimit.samples.Load(); n != 0 {
		t.Errorf("sold-out answers fed %d samples; want 0", n)
	}
	st := h.stats()
	if st.Limits["writes"] != 300 || st.Limits["pays"] != PaysInflightMaxDefault || st.Limits["reads"] != ReadsInflightMaxDefault {
		t.Errorf("limits = %v", st.Limits)
	}
	if w := st.WritesLimit; !w.Adaptive || w.Limit != 300 || w.Min != 20 || w.Max != 300 {
		t.Errorf("writes_limit = %+v; want adaptive 20..300 at 300", w)
	}
	res, err := h.client.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`surge_gateway_inflight_limit{class="writes"} 300`,
		`surge_gateway_inflight_limit{class="pays"} 512`,
		`surge_gateway_inflight{class="writes"} 0`,
		`surge_gateway_writes_latency_baseline_seconds `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no %q", want)
		}
	}

	fixed := newHarness(t, "memory", func(o *Options) { o.WritesInflightMax = 300; o.WritesLimitFixed = true })
	fixed.loadCatalog()
	fixed.createSale("f1", 5, 0)
	b := fixed.login("bob")
	fixed.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), b)
	if w := fixed.stats().WritesLimit; w.Adaptive || w.Limit != 300 || w.Min != 300 || w.Max != 300 {
		t.Errorf("fixed writes_limit = %+v; want 300 fixed", w)
	}
}
