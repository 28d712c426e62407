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
	timelineBucketsMax   = 400 // a longer run merges neighbours: the timeline stays this short
	timelineBucketsAim   = 240
	phasesMax            = 32  // phase marks kept; later ones are merged into the last
	violationsRecordMax  = 200 // violations kept verbatim; more are counted
	progressIntervalTick = time.Second
)

// recorder collects every measured answer. One mutex guards it all: a
// record is a few hundred nanoseconds, far below the cost of the request.
type recorder struct {
	start time.Time

	mu          sync.Mutex
	bucketWidth time.Duration // doubles when the run outlives timelineBucketsMax buckets
	routes      map[string]*routeRec
	outcomes    map[string]int64
	timeline    []*bucket
	window      *hdrhistogram.Histogram // since the last progress line
	phases      []*phaseRec             // in order; the last one is open

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

// phaseRec is one phase of the run (logins, main, drain, ...) and the
// answers that came back during it, by class.
type phaseRec struct {
	name       string
	start, end time.Time // end is zero while the phase runs
	classes    [classN]int64
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
	cls := outcomeClass(outcome)

	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.phases); n > 0 {
		r.phases[n-1].classes[cls]++
	}
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
	idx := max(int(done.Sub(r.start)/r.bucketWidth), 0)
	for idx >= timelineBucketsMax {
		r.compact()
		idx = max(int(done.Sub(r.start)/r.bucketWidth), 0)
	}
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

// compact doubles the bucket width, merging neighbouring buckets, so that
// the timeline of a run longer than planned stays timelineBucketsMax long
// (exact: the histograms are merged). Called with r.mu held.
func (r *recorder) compact() {
	r.bucketWidth *= 2
	merged := make([]*bucket, (len(r.timeline)+1)/2)
	for i, b := range r.timeline {
		if b == nil {
			continue
		}
		m := merged[i/2]
		if m == nil {
			merged[i/2] = b
			continue
		}
		m.count += b.count
		m.errors += b.errors
		m.hist.Merge(b.hist)
	}
	r.timeline = merged
}

// mark starts phase name at t, ending the one before. Phases are the run's
// steps in order (setup, logins, waiting for the start, main, drain, order
// check, settle); answers are counted in the phase they came back in.
func (r *recorder) mark(name string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.phases); n > 0 {
		last := r.phases[n-1]
		if last.name == name {
			return
		}
		if n >= phasesMax {
			return // bounded: the last phase absorbs the rest
		}
		last.end = t
	}
	r.phases = append(r.phases, &phaseRec{name: name, start: t})
}

// finish ends the last phase at t.
func (r *recorder) finish(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.phases); n > 0 && r.phases[n-1].end.IsZero() {
		r.phases[n-1].end = t
	}
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
	P95Ms    float64          `json:"p95_ms"`
	P99Ms    float64          `json:"p99_ms"`
	P999Ms   float64          `json:"p999_ms"`
	MaxMs    float64          `json:"max_ms"`
	Outcomes map[string]int64 `json:"outcomes"`
	// Classes counts the outcomes by class: success, refused (4xx),
	// error (5xx, timeouts, connection errors) and other (canceled at the
	// end of the run, a payment protocol fault, an unexpected status).
	Classes ClassCounts `json:"classes"`
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
		P95Ms:  usToMs(h.ValueAtQuantile(95)),
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
		s.Classes = classesOf(rr.outcomes)
		routes[name] = s
		merged.Merge(rr.hist)
	}
	all = summarize(merged)
	all.Count = 0
	for _, s := range routes {
		all.Count += s.Count
		all.Classes = all.Classes.add(s.Classes)
	}
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

// Phase names, in the order a run goes through them.
const (
	phaseSetup  = "setup"
	phaseLogins = "logins"
	phaseWait   = "waiting for the start"
	phaseMain   = "main"
	phaseDrain  = "drain"
	phaseOrders = "order check"
	phaseSettle = "settle"
	phaseTeams  = "team check"
)

// Phase is one step of the run: when it ran (seconds from the run's start)
// and the answers that came back during it, by class.
type Phase struct {
	Name    string      `json:"name"`
	StartS  float64     `json:"start_s"`
	EndS    float64     `json:"end_s"`
	Answers ClassCounts `json:"answers"`
}

// phaseSnapshot copies the phases; one still running ends at now.
func (r *recorder) phaseSnapshot(now time.Time) []Phase {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Phase, 0, len(r.phases))
	for _, p := range r.phases {
		end := p.end
		if end.IsZero() {
			end = now
		}
		ph := Phase{Name: p.name, StartS: p.start.Sub(r.start).Seconds(), EndS: end.Sub(r.start).Seconds()}
		for c, n := range p.classes {
			ph.Answers.inc(c, n)
		}
		out = append(out, ph)
	}
	return out
}
