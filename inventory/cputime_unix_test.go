//go:build unix

package inventory_test

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time the process used so far. Benchmarks report
// it per op next to wall time: on a shared machine wall time also counts
// time spent waiting for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
