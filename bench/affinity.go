package bench

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// serverCPUs is taskset's -c list of the last n CPUs of allowed (the
// CPUs this process may run on, in any order): "4,5". It is taken from
// the set itself, not from the CPU count: on a cpuset that does not start
// at 0 (a container allowed CPUs 4-5) the count names CPUs outside it.
// n is at least 1 and at most len(allowed).
func serverCPUs(allowed []int, n int) (string, error) {
	if n < 1 || n > len(allowed) {
		return "", fmt.Errorf("bench: cannot pin the server to %d of %d allowed CPUs", n, len(allowed))
	}
	cpus := slices.Sorted(slices.Values(allowed))
	var b strings.Builder
	for i, c := range cpus[len(cpus)-n:] {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(c))
	}
	return b.String(), nil
}
