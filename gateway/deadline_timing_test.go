package gateway

import (
	"context"
	"testing"
	"time"
)

// BenchmarkEngineCtxDone is what a request whose engine call waits on Done
// (a Redis reserve) pays for its context: made, Done asked for, cancelled
// before the deadline. "lazy" is the gateway's context (its own
// allocation included), on one list per server; "with-deadline" is the
// context.WithDeadline per request that Done made before, measured in the
// same run.
func BenchmarkEngineCtxDone(b *testing.B) {
	b.Run("lazy", func(b *testing.B) {
		var l deadlineList
		b.ReportAllocs()
		for b.Loop() {
			c := &lazyDeadline{deadline: time.Now().Add(5 * time.Second), list: &l}
			_ = c.Done()
			c.cancel()
		}
	})
	b.Run("with-deadline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, cancel := context.WithDeadline(context.Background(), time.Now().Add(5*time.Second))
			_ = c.Done()
			cancel()
		}
	})
}
