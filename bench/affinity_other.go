//go:build !linux

package bench

import "runtime"

// allowedCPUs is 0 to runtime.NumCPU()-1 where the affinity is not read
// (taskset, which pins the overload bench's server, is Linux's anyway).
func allowedCPUs() ([]int, error) {
	cpus := make([]int, runtime.NumCPU())
	for i := range cpus {
		cpus[i] = i
	}
	return cpus, nil
}
