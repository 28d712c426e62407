package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestOverloadSection: the page's overload section says "not run" when
// the scenario did not run, and otherwise shows each target with its
// figure, what it stands next to, and whether it is met.
func TestOverloadSection(t *testing.T) {
	md := (&Results{}).Markdown()
	if !strings.Contains(md, "## Overload: 5x capacity, pays beside, memory after\n\nnot run") {
		t.Errorf("page without the scenario lacks its \"not run\":\n%s", md)
	}
	f := func(o *Overload, wants ...string) {
		t.Helper()
		md := (&Results{Overload: o}).Markdown()
		for _, want := range wants {
			if !strings.Contains(md, want) {
				t.Errorf("page lacks %q:\n%s", want, o.markdown())
			}
		}
	}
	o := &Overload{ServerCores: 1, ServerProcs: 2, Sales: 4, Users: 100000, Capacity: 2000, Offered: 10000, Storm: 10 * time.Second,
		Sent: 100000, Admitted: 9000, Shed: 91000, Pays: 1000, PaysOK: 1000,
		UnloadedP50: time.Millisecond, UnloadedP99: 4 * time.Millisecond, AdmittedP99: 40 * time.Millisecond, AdmittedSentP99: 30 * time.Millisecond,
		LimitLowest: 16, LimitMax: 1024, RSSBeforeKiB: 100 << 10, RSSPeakKiB: 300 << 10, RSSAfterKiB: 140 << 10, AfterWait: 20 * time.Second,
		HeapInuseBeforeKiB: 20 << 10, HeapInuseAfterKiB: 30 << 10, HeapIdleBeforeKiB: 1 << 10, HeapIdleAfterKiB: 2 << 10}
	f(o, "| pays shed | 0 of 1000 (0.0%) | 1000 paid, 0 failed otherwise | 0 | yes |",
		"| admitted reserve p99, from the intended send time | 40.00 ms | unloaded p99 4.00 ms (p50 1.00 ms) | ≤ 50 ms | yes |",
		"| RSS after the sales (20s after the holds ended) | 140 MiB | before 100 MiB, peak 300 MiB | ≤ 1.5x before | yes |",
		"lowest 16 of 1024",
		"- Go heap in use: 20 MiB before, 30 MiB after; heap freed but not yet returned to the OS: 1 MiB before, 2 MiB after")
	o.PaysShed, o.PaysOK, o.AdmittedP99, o.RSSAfterKiB = 3, 997, 80*time.Millisecond, 160<<10
	f(o, "| pays shed | 3 of 1000 (0.3%) | 997 paid, 0 failed otherwise | 0 | **no** |",
		"| 80.00 ms | unloaded p99 4.00 ms (p50 1.00 ms) | ≤ 50 ms | **no** |",
		"| 160 MiB | before 100 MiB, peak 300 MiB | ≤ 1.5x before | **no** |")
	// A generator that fell behind its schedule: the p99 from the
	// intended time is its backlog and is not judged; the p99 from the
	// actual send still is.
	o.Late = o.Sent/10 + 1
	f(o, "| admitted reserve p99, from the intended send time | 80.00 ms | unloaded p99 4.00 ms (p50 1.00 ms) | — (the generator fell behind its schedule: below) | — |",
		"| admitted reserve p99, from the actual send | 30.00 ms | unloaded p99 4.00 ms | ≤ 50 ms | yes |",
		"- The generator fell behind")
	o.Late = o.Sent / 10
	f(o, "| 80.00 ms | unloaded p99 4.00 ms (p50 1.00 ms) | ≤ 50 ms | **no** |")
}

// TestHistogramQuantileSince: the server's own p99 is read from the
// difference of two scrapes of a cumulative histogram, interpolated
// inside the bucket that holds the rank; observations before the first
// scrape do not count, and a rank in the +Inf bucket reads as the last
// finite bound.
func TestHistogramQuantileSince(t *testing.T) {
	inf := math.Inf(1)
	bounds := []float64{0.001, 0.01, 0.1, inf}
	before := histogram{bounds: bounds, cum: []float64{1000, 1000, 1000, 1000}}
	// Since before: 50 under 1 ms, 40 in (1, 10] ms, 10 in (10, 100] ms.
	after := histogram{bounds: bounds, cum: []float64{1050, 1090, 1100, 1100}}
	if got := after.quantileSince(before, 0.5); got != time.Millisecond {
		t.Errorf("p50 = %v; want 1ms (the 50th of 100 is the first bucket's last)", got)
	}
	// The 99th of 100 is the 9th of the 10 in (10, 100] ms: 10 + 90*0.9.
	if got := after.quantileSince(before, 0.99); got != 91*time.Millisecond {
		t.Errorf("p99 = %v; want 91ms", got)
	}
	// Without the scrape before, the 1000 early fast ones dominate.
	if got := after.quantileSince(histogram{}, 0.5); got >= time.Millisecond {
		t.Errorf("p50 over everything = %v; want under 1ms", got)
	}
	late := histogram{bounds: bounds, cum: []float64{1000, 1000, 1000, 1010}}
	if got := late.quantileSince(before, 0.99); got != 100*time.Millisecond {
		t.Errorf("p99 in the +Inf bucket = %v; want the last finite bound, 100ms", got)
	}
	if got := before.quantileSince(before, 0.99); got != 0 {
		t.Errorf("p99 of nothing = %v; want 0", got)
	}
}
