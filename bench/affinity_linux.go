package bench

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// maxCPUs is the largest CPU number unix.CPUSet can hold, plus one.
const maxCPUs = 1024

// allowedCPUs is the CPUs this process may run on (its affinity, as a
// cpuset or taskset left it), in increasing order. It reads the calling
// thread's mask: Go's threads inherit the process's, and nothing in Surge
// changes one thread's.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("bench: cannot read the CPU affinity: %w", err)
	}
	cpus := make([]int, 0, set.Count())
	for c := 0; c < maxCPUs; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("bench: the CPU affinity is empty")
	}
	return cpus, nil
}
