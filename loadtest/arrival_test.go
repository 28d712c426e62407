package loadtest

import (
	"math"
	"testing"
	"time"
)

// countIn counts offsets in [from, to).
func countIn(offs []time.Duration, from, to time.Duration) int {
	n := 0
	for _, o := range offs {
		if o >= from && o < to {
			n++
		}
	}
	return n
}

func TestArrivalFixedRate(t *testing.T) {
	offs := Arrival{Rate: 10, Duration: time.Second}.Offsets(1000)
	if len(offs) != 10 {
		t.Fatalf("fixed 10/s for 1s: %d arrivals; want 10", len(offs))
	}
	for k, o := range offs {
		want := time.Duration(k) * 100 * time.Millisecond
		if d := o - want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("arrival %d at %v; want %v", k, o, want)
		}
	}
	if got := len(Arrival{Rate: 1000, Duration: time.Second}.Offsets(37)); got != 37 {
		t.Errorf("cap 37: %d arrivals", got)
	}
}

func TestArrivalRamp(t *testing.T) {
	// 0 -> 100/s over 1s, then 100/s for 1s: 50 + 100 arrivals, denser
	// towards the end of the ramp.
	a := Arrival{Rate: 100, RampFrom: 0, Ramp: time.Second, Duration: 2 * time.Second}
	offs := a.Offsets(10_000)
	if len(offs) != 150 {
		t.Fatalf("ramp: %d arrivals; want 150", len(offs))
	}
	if n := countIn(offs, 0, time.Second); n != 50 {
		t.Errorf("ramp second: %d arrivals; want 50", n)
	}
	// rate(t)=100t: the k-th arrival at sqrt(2k/100) s.
	for _, k := range []int{1, 8, 32, 49} {
		want := math.Sqrt(2 * float64(k) / 100)
		if got := offs[k].Seconds(); math.Abs(got-want) > 1e-6 {
			t.Errorf("ramp arrival %d at %.6fs; want %.6fs", k, got, want)
		}
	}
	if n1, n2 := countIn(offs, 0, 500*time.Millisecond), countIn(offs, 500*time.Millisecond, time.Second); n1 >= n2 {
		t.Errorf("ramp: %d arrivals in the first half, %d in the second; want fewer first", n1, n2)
	}
	for i := 1; i < len(offs); i++ {
		if offs[i] < offs[i-1] {
			t.Fatalf("offsets not monotonic at %d", i)
		}
	}
	if e := a.Expected(); math.Abs(e-150) > 1e-9 {
		t.Errorf("Expected() = %v; want 150", e)
	}
}

func TestArrivalSpike(t *testing.T) {
	a := Arrival{Rate: 10, SpikeAt: time.Second, SpikeFor: time.Second, SpikeFactor: 5, Duration: 3 * time.Second}
	offs := a.Offsets(10_000)
	got := []int{countIn(offs, 0, time.Second), countIn(offs, time.Second, 2*time.Second), countIn(offs, 2*time.Second, 3*time.Second)}
	if got[0] != 10 || got[1] != 50 || got[2] != 10 {
		t.Fatalf("spike: arrivals per second %v; want [10 50 10]", got)
	}
	// Inside the spike arrivals are 20ms apart.
	for _, o := range offs {
		if o >= time.Second && o < 2*time.Second {
			rem := (o - time.Second) % (20 * time.Millisecond)
			if rem > time.Microsecond && rem < 20*time.Millisecond-time.Microsecond {
				t.Errorf("spike arrival at %v off the 20ms grid", o)
			}
		}
	}
}

func TestArrivalRampAndSpike(t *testing.T) {
	// The spike doubles the ramp while it lasts: rate(t) = 2*100t on
	// [0.5s, 1s); arrivals there = 2*(50 - 12.5) = 75.
	a := Arrival{Rate: 100, Ramp: time.Second, SpikeAt: 500 * time.Millisecond, SpikeFor: 500 * time.Millisecond, SpikeFactor: 2, Duration: time.Second}
	if e := a.Expected(); math.Abs(e-(12.5+75)) > 1e-9 {
		t.Fatalf("Expected() = %v; want 87.5", e)
	}
	offs := a.Offsets(10_000)
	if n := countIn(offs, 0, 500*time.Millisecond); n != 13 { // arrivals 0..12 at N(t)<=12.5
		t.Errorf("before the spike: %d; want 13", n)
	}
	if len(offs) != 88 {
		t.Errorf("total %d; want 88", len(offs))
	}
}
