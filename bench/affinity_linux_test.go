package bench

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestAllowedCPUsMatchesProc: the affinity read with sched_getaffinity is
// the one the kernel shows in /proc/self/status (Cpus_allowed_list, of the
// process's main thread).
func TestAllowedCPUsMatchesProc(t *testing.T) {
	allowed, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var list string
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			list = strings.TrimSpace(v)
		}
	}
	if list == "" {
		t.Skip("/proc/self/status has no Cpus_allowed_list")
	}
	var want []int
	for r := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			t.Fatalf("Cpus_allowed_list %q: %v", list, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				t.Fatalf("Cpus_allowed_list %q: %v", list, err)
			}
		}
		for c := a; c <= b; c++ {
			want = append(want, c)
		}
	}
	if !slices.Equal(allowed, want) {
		t.Errorf("allowedCPUs() = %v; /proc/self/status says %q", allowed, list)
	}
}
