package cputime

import (
	"runtime"
	"testing"
	"time"
)

// TestProcessAdvances: CPU time, where it can be read, grows when the
// process spins.
func TestProcessAdvances(t *testing.T) {
	c0, ok := Process()
	if !ok {
		t.Skipf("no process CPU time on %s", runtime.GOOS)
	}
	// Spin until the clock has moved by more than getrusage's tick (the
	// kernel accounts CPU time in scheduler ticks, up to 10 ms).
	deadline := time.Now().Add(5 * time.Second)
	c1 := c0
	for c1 <= c0 && time.Now().Before(deadline) {
		spin()
		var ok bool
		if c1, ok = Process(); !ok {
			t.Fatal("Process() ok = false after a first true")
		}
	}
	if c1 <= c0 {
		t.Fatalf("Process() = %v after spinning, %v before; want it to grow", c1, c0)
	}
}

var sink uint64

func spin() {
	x := sink
	for i := range 1 << 20 {
		x = x*6364136223846793005 + uint64(i)
	}
	sink = x
}
