package gateway

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The "latency" object of GET /admin/v1/stats: p50 and p99 of the reserve
// route, estimated from the gateway's own request_duration histogram (the
// one /metrics exports), so that the operator's page needs no Prometheus.
// Answered from the histogram's counters: a stats call reads one
// histogram (16 buckets) and compares it with a snapshot it keeps.

// latencyWindowMin is the shortest window of the "recent" figures: a
// snapshot of the histogram is replaced when it is this old, and "recent"
// is measured from the snapshot before it, so it covers between one and
// two of these (its own length is in the answer).
const latencyWindowMin = 10 * time.Second

// latencyAnswer is the "latency" object of GET /admin/v1/stats.
type latencyAnswer struct {
	// Route is the route measured: "sale_reserve" (POST
	// /api/v1/flash-sales/{id}/reservations), from routing to the answer
	// written, every answer (sheds and refusals too).
	Route string `json:"route"`
	// Recent covers the last 10 to 20 seconds (Seconds says which);
	// SinceStart everything since the server started.
	Recent     latencyWindow `json:"recent"`
	SinceStart latencyWindow `json:"since_start"`
}

// latencyWindow is p50 and p99 over a window, in milliseconds, estimated
// by linear interpolation inside the histogram's buckets (as Prometheus'
// histogram_quantile); both 0 when Count is 0. A quantile past the last
// bucket (5 s) reads as that bucket's bound.
type latencyWindow struct {
	Seconds float64 `json:"seconds"`
	Count   uint64  `json:"count"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
}

// histSnap is a histogram's cumulative counts at a time.
type histSnap struct {
	at     time.Time
	bounds []float64 // upper bounds, seconds, ascending; +Inf not included
	cum    []uint64  // cumulative count per bound
	count  uint64    // all observations (the +Inf bucket)
}

// latencyWindows keeps the two snapshots "recent" is measured against.
// The zero value is ready: its snapshots are empty, at the zero time.
type latencyWindows struct {
	mu        sync.Mutex
	prev, cur histSnap
}

// readHist reads an observer made by a HistogramVec (nil: none yet).
func readHist(o prometheus.Observer, at time.Time) histSnap {
	s := histSnap{at: at}
	m, ok := o.(prometheus.Metric)
	if !ok {
		return s
	}
	var d dto.Metric
	if err := m.Write(&d); err != nil || d.Histogram == nil {
		return s
	}
	h := d.Histogram
	s.count = h.GetSampleCount()
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), +1) {
			continue
		}
		s.bounds = append(s.bounds, b.GetUpperBound())
		s.cum = append(s.cum, b.GetCumulativeCount())
	}
	return s
}

// reserveLatency answers the "latency" object.
func (s *Server) reserveLatency() latencyAnswer {
	started := s.started
	now := time.Now()
	var o prometheus.Observer
	if p := s.m.latency[rSaleReserve].Load(); p != nil {
		o = *p
	}
	snap := readHist(o, now)
	w := &s.reserveLat
	w.mu.Lock()
	if w.cur.at.IsZero() {
		w.prev = histSnap{at: started}
		w.cur = histSnap{at: started}
	}
	if now.Sub(w.cur.at) >= latencyWindowMin {
		w.prev, w.cur = w.cur, snap
	}
	prev := w.prev
	w.mu.Unlock()
	return latencyAnswer{
		Route:      routes[rSaleReserve].name,
		Recent:     windowOf(snap, prev),
		SinceStart: windowOf(snap, histSnap{at: started}),
	}
}

// windowOf is the quantiles of what now saw and since did not.
func windowOf(now, since histSnap) latencyWindow {
	w := latencyWindow{Seconds: math.Round(now.at.Sub(since.at).Seconds()*10) / 10}
	if now.count < since.count {
		panic("BUG: a histogram's count went down")
	}
	w.Count = now.count - since.count
	if w.Count == 0 {
		return w
	}
	delta := make([]uint64, len(now.cum))
	for i, c := range now.cum {
		delta[i] = c
		if i < len(since.cum) {
			delta[i] -= since.cum[i]
		}
	}
	w.P50Ms = quantileMs(0.5, now.bounds, delta, w.Count)
	w.P99Ms = quantileMs(0.99, now.bounds, delta, w.Count)
	return w
}

// quantileMs estimates quantile q (0 < q < 1), in milliseconds rounded to
// a microsecond, from cumulative bucket counts cum of upper bounds
// (seconds) and the total count; 0 when count is 0.
func quantileMs(q float64, bounds []float64, cum []uint64, count uint64) float64 {
	if count == 0 {
		return 0
	}
	rank := q * float64(count)
	lower, below := 0.0, uint64(0)
	v := 0.0
	if len(bounds) > 0 {
		v = bounds[len(bounds)-1] // past the last bucket
	}
	for i, ub := range bounds {
		if float64(cum[i]) >= rank {
			in := cum[i] - below
			v = ub
			if in > 0 {
				v = lower + (ub-lower)*(rank-float64(below))/float64(in)
			}
			break
		}
		lower, below = ub, cum[i]
	}
	return math.Round(v*1e6) / 1e3
}
