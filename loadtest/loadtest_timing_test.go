package loadtest

import (
	"testing"
	"time"
)

var sinkDuration time.Duration

// BenchmarkRecord: the cost of recording one answer (histograms, timeline,
// outcome counts), paid once per request.
func BenchmarkRecord(b *testing.B) {
	start := time.Now()
	rec := newRecorder(start, time.Minute)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			at := start.Add(time.Duration(i) * time.Microsecond)
			rec.record("flash_reserve", at, at.Add(time.Duration(i%5000)*time.Microsecond), "0")
		}
	})
}

// BenchmarkScheduleNext: the dispatcher's cost per arrival.
func BenchmarkScheduleNext(b *testing.B) {
	a := Arrival{Rate: 1e6, RampFrom: 1000, Ramp: time.Second, SpikeAt: 2 * time.Second, SpikeFor: time.Second, SpikeFactor: 3, Duration: time.Hour}
	s := a.Schedule(1 << 62)
	b.ReportAllocs()
	for b.Loop() {
		d, ok := s.Next()
		if !ok {
			b.Fatal("schedule exhausted")
		}
		sinkDuration = d
	}
}
