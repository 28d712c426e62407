package gateway

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
	"sync/atomic"
	"time"
)

// The adaptive in-flight limit of the reserving writes (flash reserve,
// team open and join, checkout), in the style of Netflix's
// concurrency-limits Gradient2 with TCP Vegas' no-load latency: the limit
// of the writes class moves between a floor and Options.WritesInflightMax
// so that admitted writes stay near the latency they have without load.
// Past the limit a write is shed at once (503/50300, Retry-After), like
// any class over its bound; nothing queues. Pays, cancels, prepays and
// logins have their own classes and are never limited by it.
//
// Written here: the module proxy serves no concurrency-limits library, and
// the ones that exist take a lock and allocate a listener per request.
// The served path costs two atomic adds and one atomic load per admitted
// write (observe); the arithmetic runs once per window, in whichever
// request closes it.
//
// Each window (at least adaptiveWindowMin and adaptiveWindowSamplesMin
// samples, or adaptiveWindowMax with one) gives the average latency of
// the writes that finished in it. The no-load latency is the lowest
// window average of the last one to two adaptiveBaselinePeriod (a min
// filter that forgets, so a machine that got slower for good is followed).
// The latency allowed is adaptiveTolerance × noLoad, but never less
// than noLoad + adaptiveQueueAllowance: a write whose backend answers in
// half a millisecond without load (one Redis round trip and fsync) waits
// a few milliseconds as soon as a few hundred share the same group
// commits, and shedding such a write to keep it under a millisecond
// helps no shopper. Below that allowance the queue is left alone, as
// CoDel leaves a standing queue below its 5 ms target; above it the
// limit cuts the queue. Then, as Gradient2:
//
//	allowed  = max(adaptiveTolerance × noLoad, noLoad + adaptiveQueueAllowance)
//	gradient = clamp(allowed / average, 0.5, 1)
//	target   = limit × gradient + √limit
//	limit    = target                                        if target < limit
//	limit    = limit × (1 − adaptiveSmoothing) + target × adaptiveSmoothing  otherwise
//
// clamped to [floor, max]: it falls at once (at most by half a window, as
// Vegas backs off) and climbs slowly (Gradient2's smoothing). The limit
// grows only while it is used (in flight reached half of it in the
// window), so an idle server does not inflate it.
//
// A cut must not cost throughput. Shedding helps when the writes shed
// leave (an open crowd, or clients that honour Retry-After): the admitted
// writes per second stay what the backend gives, and only the queue
// shrinks. When the shed writes come straight back instead (a client in a
// closed loop), every shed is one more request to parse and answer on
// the same cores; admitted throughput falls, the admitted writes wait
// for the CPU instead, their latency stays high, and the limit stays
// pinned at its floor while most of the work is shedding. So the limit
// also follows the admitted writes per second (each window's averaged
// with the window before, so that one burst is not taken for the best),
// with a max filter of the same periods as the no-load latency, and the
// in flight of the best window. When the limit is below that in flight
// and used (as above), and adaptiveGoodputWindows windows in a row
// deliver less than adaptiveGoodputLoss of the best (a quiet spell after
// a sale does not count: the limit is not used then), the cuts cost more
// than they saved: the limit goes back up to that in flight (at most
// twice the limit in force) and is not cut below it for one
// adaptiveBaselinePeriod. An open overload keeps its throughput when the
// limit falls, so it is cut as before.
//
// An undo is a bet that the cuts cost the throughput, and a backend that
// itself got slower looks the same (fewer writes per second, the limit
// used and under the in flight of the best); going back up then buys
// nothing and only lengthens the queue. So an undo must win the goodput
// back: if none of the adaptiveGoodputWindows used windows after it
// delivers adaptiveGoodputLoss of the best again, it was wrong. The kept
// floor goes, so the limit is cut as in any open overload, and the best
// is forgotten (the backend no longer gives it; the max filter starts
// again from that window), so the same undo is not tried again and again.
const (
	// adaptiveWindowMin is the shortest window.
	adaptiveWindowMin = 100 * time.Millisecond
	// adaptiveWindowSamplesMin is the fewest samples a window closes with
	// before adaptiveWindowMax.
	adaptiveWindowSamplesMin = 32
	// adaptiveWindowMax closes a window with any samples.
	adaptiveWindowMax = time.Second
	// adaptiveTolerance is how far above the no-load latency the average
	// may go before the limit shrinks.
	adaptiveTolerance = 2.0
	// adaptiveQueueAllowance is the waiting above the no-load latency
	// that never shrinks the limit, whatever the ratio (CoDel's target).
	// It stays far under issue 15's 50 ms p99, and a backend ten times
	// slower than its no-load latency of 1 ms still exceeds it.
	adaptiveQueueAllowance = 5 * time.Millisecond
	// adaptiveSmoothing is the weight of a window's target in the limit.
	adaptiveSmoothing = 0.2
	// adaptiveBaselinePeriod is the period of the no-load latency's min
	// filter, of the best throughput's max filter and of a kept floor.
	adaptiveBaselinePeriod = 10 * time.Second
	// adaptiveGoodputLoss is the share of the best throughput under which
	// a window counts as one that lost throughput to the cuts.
	adaptiveGoodputLoss = 0.6
	// adaptiveGoodputWindows is how many such windows in a row undo the
	// cuts, and how many used windows after an undo may pass without the
	// throughput coming back before the undo counts as wrong.
	adaptiveGoodputWindows = 5
)

// adaptiveLimit moves the bound of a semaphore.
type adaptiveLimit struct {
	sem      *semaphore
	min, max int64
	epoch    time.Time // origin of the nanosecond times below (monotonic)

	// The window being filled: touched by every admitted write.
	sumNs         atomic.Int64
	samples       atomic.Int64
	peak          atomic.Int64 // highest in flight seen by a sample
	windowStartNs atomic.Int64
	closing       atomic.Bool // held by the request closing a window

	// Read by stats and metrics.
	baselineNs atomic.Int64 // the no-load latency, ns (0: none yet)
	windows    atomic.Int64 // windows closed

	// Owned by the holder of closing.
	limit                 float64
	baseCur, basePrev     float64 // min window average of this and the last period, ns
	basePeriodStartNs     int64
	baseCurOK, basePrevOK bool
	// Throughput: admitted writes per second of the last window, the
	// average of the last two, the highest average of this and the last
	// period with the in flight seen in that window, the windows in a
	// row that lost throughput under a cut, a floor kept until
	// keepUntilNs, and the used windows left for the undo that set it to
	// win the throughput back (0: no undo on trial).
	lastPerSec        float64
	goodput           float64
	bestCur, bestPrev float64
	inflightCur       int64
	inflightPrev      int64
	lossRun           int
	keepFloor         float64
	keepUntilNs       int64
	undoTrial         int
}

// newAdaptiveLimit makes sem's bound adaptive between floor and its
// current bound, starting at the bound (what a fixed limit would admit).
func newAdaptiveLimit(sem *semaphore, floor int, now time.Time) *adaptiveLimit {
	max := sem.limit()
	if int64(floor) > max {
		floor = int(max)
	}
	if floor < 1 {
		panic("BUG: adaptive limit floor below 1")
	}
	return &adaptiveLimit{sem: sem, min: int64(floor), max: max, epoch: now, limit: float64(max)}
}

// observe records that an admitted write took d, with inflight writes in
// flight when it finished, at now.
func (l *adaptiveLimit) observe(d time.Duration, inflight int64, now time.Time) {
	if d < 0 {
		d = 0
	}
	l.sumNs.Add(int64(d))
	n := l.samples.Add(1)
	if inflight > l.peak.Load() {
		l.peak.Store(inflight) // racy maximum: a hint of use, not a count
	}
	nowNs := int64(now.Sub(l.epoch))
	elapsed := time.Duration(nowNs - l.windowStartNs.Load())
	if elapsed < adaptiveWindowMin || (n < adaptiveWindowSamplesMin && elapsed < adaptiveWindowMax) {
		return
	}
	if !l.closing.CompareAndSwap(false, true) {
		return
	}
	l.closeWindow(nowNs)
	l.closing.Store(false)
}

// closeWindow moves the limit by the window just ended; the caller holds
// closing.
func (l *adaptiveLimit) closeWindow(nowNs int64) {
	// Samples that land between these swaps count in the next window.
	n := l.samples.Swap(0)
	sum := l.sumNs.Swap(0)
	peak := l.peak.Swap(0)
	startNs := l.windowStartNs.Swap(nowNs)
	if n <= 0 {
		return
	}
	windows := l.windows.Add(1)
	avg := math.Max(float64(sum)/float64(n), 1)
	perSec := float64(n) / math.Max(float64(nowNs-startNs)/1e9, 1e-3)
	if windows == 1 {
		l.lastPerSec = perSec
	}
	l.goodput, l.lastPerSec = (perSec+l.lastPerSec)/2, perSec
	if !l.baseCurOK || nowNs-l.basePeriodStartNs >= int64(adaptiveBaselinePeriod) {
		l.basePrev, l.basePrevOK = l.baseCur, l.baseCurOK
		l.baseCur, l.baseCurOK = avg, true
		l.bestPrev, l.inflightPrev = l.bestCur, l.inflightCur
		l.bestCur, l.inflightCur = l.goodput, peak
		l.basePeriodStartNs = nowNs
	} else {
		l.baseCur = math.Min(l.baseCur, avg)
		if l.goodput > l.bestCur {
			l.bestCur, l.inflightCur = l.goodput, peak
		}
	}
	l.judgeUndo(peak, nowNs)
	best, bestInflight := l.best()
	// An undo on trial is not undone again: its verdict comes first.
	if l.undoTrial == 0 && l.limit < float64(bestInflight) && float64(peak) >= l.limit/2 && l.goodput < adaptiveGoodputLoss*best {
		l.lossRun++
	} else {
		l.lossRun = 0
	}
	if l.lossRun >= adaptiveGoodputWindows {
		l.undo(bestInflight, nowNs)
	}
	floor := float64(l.min)
	if nowNs < l.keepUntilNs {
		floor = math.Max(floor, l.keepFloor)
	}
	base := l.baseCur
	if l.basePrevOK && l.basePrev < base {
		base = l.basePrev
	}
	l.baselineNs.Store(int64(base))
	allowed := math.Max(adaptiveTolerance*base, base+float64(adaptiveQueueAllowance))
	gradient := math.Max(0.5, math.Min(1, allowed/avg))
	if gradient >= 1 && float64(peak) < l.limit/2 {
		l.limit = math.Max(floor, math.Min(float64(l.max), l.limit))
		l.sem.setLimit(int64(l.limit))
		return // not used enough to tell whether more would do
	}
	target := l.limit*gradient + math.Sqrt(l.limit)
	if target < l.limit {
		// Too slow: follow at once (as Vegas does), so a spike is cut
		// within a few windows rather than tens of them.
		l.limit = target
	} else {
		l.limit = l.limit*(1-adaptiveSmoothing) + target*adaptiveSmoothing
	}
	l.limit = math.Max(floor, math.Min(float64(l.max), l.limit))
	l.sem.setLimit(int64(l.limit))
}

// best is the highest throughput of this and the last period, with the
// in flight of its window.
func (l *adaptiveLimit) best() (perSec float64, inflight int64) {
	if l.bestPrev > l.bestCur {
		return l.bestPrev, l.inflightPrev
	}
	return l.bestCur, l.inflightCur
}

// undo takes the cuts back: they cost throughput, so the limit goes back
// up to the in flight of the best (at most twice the limit in force, at
// most the maximum) and keeps that floor, on trial until judgeUndo has
// seen the throughput come back.
func (l *adaptiveLimit) undo(bestInflight, nowNs int64) {
	l.lossRun = 0
	// The in-flight count can exceed the maximum (a rejected tryAcquire
	// counts itself before it backs out; the lottery reclaims slots): the
	// floor kept never does.
	l.keepFloor = math.Min(math.Min(float64(bestInflight), 2*l.limit), float64(l.max))
	l.keepUntilNs = nowNs + int64(adaptiveBaselinePeriod)
	l.limit = math.Max(l.limit, l.keepFloor)
	l.undoTrial = adaptiveGoodputWindows
}

// judgeUndo tells an undo on trial whether it won the throughput back, by
// the window just ended (goodput and peak already count it). A window
// that delivers adaptiveGoodputLoss of the best again acquits it: the cuts
// did cost throughput. A used window that does not counts against it; an
// unused one says nothing (the crowd may have left). After
// adaptiveGoodputWindows used windows against it, the backend got slower
// rather than the cuts costing throughput: the kept floor goes, and the
// best is forgotten, since the backend no longer gives it and a best kept
// would undo the next cuts again within a few windows.
func (l *adaptiveLimit) judgeUndo(peak, nowNs int64) {
	if l.undoTrial == 0 {
		return
	}
	best, _ := l.best()
	switch {
	case nowNs >= l.keepUntilNs || l.goodput >= adaptiveGoodputLoss*best:
		l.undoTrial = 0 // the floor ran its period, or the throughput came back
		return
	case float64(peak) < l.limit/2:
		return
	}
	if l.undoTrial--; l.undoTrial > 0 {
		return
	}
	l.keepUntilNs = 0
	l.bestCur, l.inflightCur = l.goodput, peak
	l.bestPrev, l.inflightPrev = 0, 0
}

// current is the limit in force.
func (l *adaptiveLimit) current() int64 { return l.sem.limit() }

// baseline is the no-load latency estimate (0 before the first window).
func (l *adaptiveLimit) baseline() time.Duration { return time.Duration(l.baselineNs.Load()) }

// writeDone feeds the adaptive limit with an admitted write that started
// at start and answered *code. Only writes that did the work count: a
// success, or a failure of the backend (a slow or failing backend is what
// the limit is for); refusals answered without it (sold out from memory,
// a limit, a risk denial) would make the no-load latency look lower than
// a write's.
func (s *Server) writeDone(start time.Time, code *int) {
	if c := *code; c != CodeOK && c < 50000 {
		return
	}
	now := time.Now()
	s.writesLimit.observe(now.Sub(start), s.sems[classWrites].inflight(), now)
}

// classNames names the route classes in /admin/v1/stats ("inflight",
// "limits") and in the class label of /metrics.
var classNames = [classesLen]string{classReads: "reads", classWrites: "writes", classAdmin: "admin",
	classSessions: "sessions", classPays: "pays"}

// writesLimitAnswer is the "writes_limit" object of GET /admin/v1/stats.
type writesLimitAnswer struct {
	// Adaptive is false with Options.WritesLimitFixed (Limit is Max).
	Adaptive bool  `json:"adaptive"`
	Limit    int64 `json:"limit"`
	Min      int64 `json:"min"`
	Max      int64 `json:"max"`
	// BaselineMs is the no-load latency of an admitted write the limit
	// measures against (0 until the first window).
	BaselineMs float64 `json:"baseline_ms"`
}

func (s *Server) writesLimitAnswer() writesLimitAnswer {
	l := s.writesLimit
	if l == nil {
		max := s.sems[classWrites].limit()
		return writesLimitAnswer{Limit: max, Min: max, Max: max}
	}
	return writesLimitAnswer{Adaptive: true, Limit: l.current(), Min: l.min, Max: l.max,
		BaselineMs: math.Round(float64(l.baseline())/1e3) / 1e3}
}

// limits is the "limits" object of GET /admin/v1/stats.
func (s *Server) limits() map[string]int64 {
	out := make(map[string]int64, classesLen)
	for cl, sem := range s.sems {
		if sem != nil {
			out[classNames[cl]] = sem.limit()
		}
	}
	return out
}

// registerLimitMetrics exports each class's bound and in-flight count and
// the writes' no-load latency, read at scrape time.
func (s *Server) registerLimitMetrics(reg *prometheus.Registry) error {
	for cl, sem := range s.sems {
		if sem == nil {
			continue
		}
		lim := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "surge", Subsystem: "gateway", Name: "inflight_limit",
			Help:        "In-flight bound in force per route class; writes moves with the adaptive limit.",
			ConstLabels: prometheus.Labels{"class": classNames[cl]},
		}, func() float64 { return float64(sem.limit()) })
		in := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "surge", Subsystem: "gateway", Name: "inflight",
			Help:        "Requests in flight per route class.",
			ConstLabels: prometheus.Labels{"class": classNames[cl]},
		}, func() float64 { return float64(sem.inflight()) })
		if err := reg.Register(lim); err != nil {
			return err
		}
		if err := reg.Register(in); err != nil {
			return err
		}
	}
	if l := s.writesLimit; l != nil {
		return reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "surge", Subsystem: "gateway", Name: "writes_latency_baseline_seconds",
			Help: "No-load latency of an admitted reserving write, as the adaptive limit measures it.",
		}, func() float64 { return l.baseline().Seconds() }))
	}
	return nil
}
