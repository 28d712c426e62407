package loadtest

import (
	"math"
	"sort"
	"time"
)

// Arrival is an open-model arrival profile: the intended send times of user
// flows follow the rate, whatever the server does. The rate is Rate, growing
// linearly from RampFrom over the first Ramp, multiplied by SpikeFactor
// from SpikeAt for SpikeFor. Arrival k (from 0) is intended at the instant
// the integral of the rate reaches k, so arrival 0 is at offset 0.
type Arrival struct {
	Rate        float64 // arrivals per second after the ramp
	RampFrom    float64 // rate at offset 0 when Ramp > 0
	Ramp        time.Duration
	SpikeAt     time.Duration
	SpikeFor    time.Duration
	SpikeFactor float64 // 0 or 1: no spike
	Duration    time.Duration
}

// segment is a piece of the profile where the rate is linear:
// rate(t) = r0 + slope*(t-start), t in seconds.
type segment struct {
	start, end float64 // seconds
	r0, slope  float64
}

// segments cuts the profile at every breakpoint.
func (a Arrival) segments() []segment {
	end := a.Duration.Seconds()
	cuts := []float64{0, end}
	for _, c := range []float64{a.Ramp.Seconds(), a.SpikeAt.Seconds(), (a.SpikeAt + a.SpikeFor).Seconds()} {
		if c > 0 && c < end {
			cuts = append(cuts, c)
		}
	}
	sort.Float64s(cuts)
	segs := make([]segment, 0, len(cuts))
	for i := 0; i+1 < len(cuts); i++ {
		s, e := cuts[i], cuts[i+1]
		if e <= s {
			continue
		}
		// Cuts include the ramp's end and the spike's edges, so inside
		// [s, e) the spike factor is constant and the ramp is one line.
		slope := 0.0
		if a.Ramp > 0 && s < a.Ramp.Seconds() {
			slope = (a.Rate - a.RampFrom) / a.Ramp.Seconds() * a.spikeMul(s)
		}
		r0 := a.rateAt(s)
		segs = append(segs, segment{start: s, end: e, r0: r0, slope: slope})
	}
	return segs
}

func (a Arrival) spikeMul(t float64) float64 {
	if a.SpikeFor > 0 && a.SpikeFactor > 0 && t >= a.SpikeAt.Seconds() && t < (a.SpikeAt+a.SpikeFor).Seconds() {
		return a.SpikeFactor
	}
	return 1
}

// rateAt is the intended arrival rate at offset t seconds.
func (a Arrival) rateAt(t float64) float64 {
	r := a.Rate
	if a.Ramp > 0 && t < a.Ramp.Seconds() {
		r = a.RampFrom + (a.Rate-a.RampFrom)*t/a.Ramp.Seconds()
	}
	return r * a.spikeMul(t)
}

// Schedule iterates over the intended offsets of an Arrival.
type Schedule struct {
	segs []segment
	seg  int
	base float64 // arrivals accumulated before segs[seg]
	k    int     // next arrival number
	max  int
}

// Schedule returns an iterator over at most max intended offsets.
func (a Arrival) Schedule(max int) *Schedule {
	return &Schedule{segs: a.segments(), max: max}
}

// Next returns the next intended offset from the start of the run, or false
// when the profile or the cap is exhausted.
func (s *Schedule) Next() (time.Duration, bool) {
	if s.k >= s.max {
		return 0, false
	}
	target := float64(s.k)
	for s.seg < len(s.segs) {
		g := s.segs[s.seg]
		w := g.end - g.start
		total := g.r0*w + g.slope*w*w/2 // arrivals inside this segment
		need := target - s.base
		if need < total {
			u := solveLinear(g.r0, g.slope, need)
			if u < w {
				s.k++
				return time.Duration((g.start + u) * float64(time.Second)), true
			}
		}
		s.base += total
		s.seg++
	}
	return 0, false
}

// solveLinear returns u >= 0 with r0*u + slope*u*u/2 = need.
func solveLinear(r0, slope, need float64) float64 {
	if need <= 0 {
		return 0
	}
	if slope == 0 {
		if r0 <= 0 {
			return math.Inf(1)
		}
		return need / r0
	}
	disc := r0*r0 + 2*slope*need
	if disc < 0 {
		return math.Inf(1)
	}
	// 2n/(r0+sqrt(disc)) is the stable form of (-r0+sqrt(disc))/slope.
	den := r0 + math.Sqrt(disc)
	if den <= 0 {
		return math.Inf(1)
	}
	return 2 * need / den
}

// Offsets collects every intended offset, at most max.
func (a Arrival) Offsets(max int) []time.Duration {
	s := a.Schedule(max)
	var out []time.Duration
	for {
		d, ok := s.Next()
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// Expected is the integral of the rate over the run: how many arrivals the
// profile intends (before any cap).
func (a Arrival) Expected() float64 {
	n := 0.0
	for _, g := range a.segments() {
		w := g.end - g.start
		n += g.r0*w + g.slope*w*w/2
	}
	return n
}
