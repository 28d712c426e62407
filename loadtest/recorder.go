package loadtest

import (
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Outcome names that are not API.md codes.
const (
	outcomeDrop      = "client_drop" // arrival refused: InFlightMax reached
	outcomeTimeout   = "timeout"     // no answer within Config.Timeout
	outcomeConnError = "conn_error"  // transport error (refused, reset, ...)
	outcomeCanceled  = "canceled"    // the run ended while the request was in flight
	outcomeNotMod    = "304"         // storefront revalidation: not modified
)

// Latency histograms hold microseconds.
const (
	latencyUsMin         = 1
	latencyUsMax         = int64(time.Hour / time.Microsecond)
	latencySigFigs       = 3
	timelineUsMax        = int64(2 * time.Minute / time.Microsecond)
	timelineSigFigs      = 2
	timelineBucketsMax   = 400
	timelineBucketsAim   = 240
	violationsRecordMax  = 200 // violations kept verbatim; more are counted
	progressIntervalTick = time.Second
)

// recorder collects every measured answer. One mutex guards it all: a
// record is a few hundred nanoseconds, far below the cost of the request.
type recorder struct {
	start       time.Time
	bucketWidth time.Duration

	mu       sync.Mutex
	routes   map[string]*routeRec
	outcomes map[string]int64
	timeline []*bucket
	window   *hdrhistogram.Histogram // since the last progress line

	requests atomic.Int64
	ok       atomic.Int64
	rejected atomic.Int64 // 4xx other than 429
	shed     atomic.Int64 // 429, 503
	failed   atomic.Int64 // 5xx other than 503, timeouts, transport errors
	drops    atomic.Int64
}

type routeRec struct {
	hist     *hdrhistogram.Histogram
	outcomes map[string]int64
}

type bucket struct {
	hist   *hdrhistogram.Histogram
	count  int64
	errors int64 // not 0, not 304, not a 4xx business answer
}

func newRecorder(start time.Time, span time.Duration) *recorder {
	w := time.Second
	if aim := span / timelineBucketsAim; aim > w {
		w = aim.Round(time.Second)
	}
	return &recorder{
		start:       start,
		bucketWidth: w,
		routes:      make(map[string]*routeRec),
		outcomes:    make(map[string]int64),
		window:      hdrhistogram.New(latencyUsMin, timelineUsMax, timelineSigFigs),
	}
}

// classify sorts an outcome into the progress counters.
func classify(outcome string) (ok, rejected, shed, failed bool) {
	switch outcome {
	case "0", outcomeNotMod, outcomeNotified:
		return true, false, false, false
	case outcomeOrderClosed:
		return false, true, false, false
	case "42900", "50300", "http_429", "http_503":
		return false, false, true, false
	case outcomeTimeout, outcomeConnError, outcomeCanceled:
		return false, false, false, true
	}
	if code, err := strconv.Atoi(outcome); err == nil && code >= 40000 && code < 50000 {
		return false, true, false, false
	}
	return false, false, false, true
}

// record notes one answer on route, its latency measured from the intended
// send time (coordinated-omission corrected).
func (r *recorder) record(route string, intended, done time.Time, outcome string) {
	lat := done.Sub(intended)
	us := min(max(lat.Microseconds(), latencyUsMin), latencyUsMax)
	ok, rejected, shed, failed := classify(outcome)
	r.requests.Add(1)
	switch {
	case ok:
		r.ok.Add(1)
	case rejected:
		r.rejected.Add(1)
	case shed:
		r.shed.Add(1)
	case failed:
		r.failed.Add(1)
	}
	idx := int(done.Sub(r.start) / r.bucketWidth)
	idx = min(max(idx, 0), timelineBucketsMax-1)

	r.mu.Lock()
	defer r.mu.Unlock()
	rr := r.routes[route]
	if rr == nil {
		rr = &routeRec{
			hist:     hdrhistogram.New(latencyUsMin, latencyUsMax, latencySigFigs),
			outcomes: make(map[string]int64),
		}
		r.routes[route] = rr
	}
	r.outcomes[outcome]++
	rr.outcomes[outcome]++
	if outcome == outcomeCanceled {
		return // cut short by the end of the run: not a latency
	}
	_ = rr.hist.RecordValue(us) // clamped above: cannot be out of range
	_ = r.window.RecordValue(min(us, timelineUsMax))
	for len(r.timeline) <= idx {
		r.timeline = append(r.timeline, nil)
	}
	b := r.timeline[idx]
	if b == nil {
		b = &bucket{hist: hdrhistogram.New(latencyUsMin, timelineUsMax, timelineSigFigs)}
		r.timeline[idx] = b
	}
	b.count++
	if failed || shed {
		b.errors++
	}
	_ = b.hist.RecordValue(min(us, timelineUsMax))
}

// drop counts an arrival refused because InFlightMax was reached.
func (r *recorder) drop() {
	r.drops.Add(1)
	r.mu.Lock()
	r.outcomes[outcomeDrop]++
	r.mu.Unlock()
}

// windowP99 returns the p99 since the last call and resets the window.
func (r *recorder) windowP99() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.window.ValueAtQuantile(99)
	r.window.Reset()
	return time.Duration(p) * time.Microsecond
}

// RouteStats summarises one route's latencies (from the intended send time).
type RouteStats struct {
	Count    int64            `json:"count"`
	MeanMs   float64          `json:"mean_ms"`
	P50Ms    float64          `json:"p50_ms"`
	P90Ms    float64          `json:"p90_ms"`
	P99Ms    float64          `json:"p99_ms"`
	P999Ms   float64          `json:"p999_ms"`
	MaxMs    float64          `json:"max_ms"`
	Outcomes map[string]int64 `json:"outcomes"`
}

// Point is one slice of the latency timeline.
type Point struct {
	AtS    float64 `json:"at_s"` // slice start, seconds from the run's start
	Count  int64   `json:"count"`
	Errors int64   `json:"errors"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func usToMs(v int64) float64 { return float64(v) / 1000 }

func summarize(h *hdrhistogram.Histogram) RouteStats {
	return RouteStats{
		Count:  h.TotalCount(),
		MeanMs: h.Mean() / 1000,
		P50Ms:  usToMs(h.ValueAtQuantile(50)),
		P90Ms:  usToMs(h.ValueAtQuantile(90)),
		P99Ms:  usToMs(h.ValueAtQuantile(99)),
		P999Ms: usToMs(h.ValueAtQuantile(99.9)),
		MaxMs:  usToMs(h.Max()),
	}
}

// snapshot copies what the report needs.
func (r *recorder) snapshot() (routes map[string]RouteStats, outcomes map[string]int64, timeline []Point, all RouteStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	routes = make(map[string]RouteStats, len(r.routes))
	merged := hdrhistogram.New(latencyUsMin, latencyUsMax, latencySigFigs)
	for name, rr := range r.routes {
		s := summarize(rr.hist)
		s.Outcomes = make(map[string]int64, len(rr.outcomes))
		for k, v := range rr.outcomes {
			s.Outcomes[k] = v
		}
		// Count counts every answer, also those without a latency
		// (canceled at the end of the run).
		var n int64
		for _, v := range rr.outcomes {
			n += v
		}
		s.Count = n
		routes[name] = s
		merged.Merge(rr.hist)
	}
	all = summarize(merged)
	outcomes = make(map[string]int64, len(r.outcomes))
	for k, v := range r.outcomes {
		outcomes[k] = v
	}
	for i, b := range r.timeline {
		p := Point{AtS: (time.Duration(i) * r.bucketWidth).Seconds()}
		if b != nil {
			p.Count, p.Errors = b.count, b.errors
			p.P50Ms = usToMs(b.hist.ValueAtQuantile(50))
			p.P99Ms = usToMs(b.hist.ValueAtQuantile(99))
			p.MaxMs = usToMs(b.hist.Max())
		}
		timeline = append(timeline, p)
	}
	return routes, outcomes, timeline, all
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
