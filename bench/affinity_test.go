package bench

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestServerCPUs: the server gets the last n CPUs of the allowed set, by
// their numbers, wherever the set starts.
func TestServerCPUs(t *testing.T) {
	f := func(allowed []int, n int, want string) {
		t.Helper()
		got, err := serverCPUs(allowed, n)
		if err != nil {
			t.Fatalf("serverCPUs(%v, %d): %v", allowed, n, err)
		}
		if got != want {
			t.Errorf("serverCPUs(%v, %d) = %q; want %q", allowed, n, got, want)
		}
	}
	f([]int{4, 5}, 1, "5")
	f([]int{4, 5}, 2, "4,5")
	f([]int{0, 1, 2, 3}, 2, "2,3")
	f([]int{0}, 1, "0")
	f([]int{3, 0, 7, 5}, 2, "5,7") // unsorted in
	f([]int{1, 3, 8, 9, 12}, 3, "8,9,12")

	for _, n := range []int{0, -1, 3} {
		if got, err := serverCPUs([]int{4, 5}, n); err == nil {
			t.Errorf("serverCPUs([4 5], %d) = %q; want an error", n, got)
		}
	}
}

// TestServerCPUsWithinAffinity: what the overload bench hands taskset is
// within this process's CPU affinity, and as many CPUs as were asked.
func TestServerCPUsWithinAffinity(t *testing.T) {
	allowed, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(allowed) == 0 || !slices.IsSorted(allowed) {
		t.Fatalf("allowedCPUs() = %v; want a non-empty increasing list", allowed)
	}
	for n := 1; n <= len(allowed); n++ {
		list, err := serverCPUs(allowed, n)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(list, ",")
		if len(parts) != n {
			t.Errorf("serverCPUs(%v, %d) = %q; want %d CPUs", allowed, n, list, n)
		}
		for _, p := range parts {
			c, err := strconv.Atoi(p)
			if err != nil || !slices.Contains(allowed, c) {
				t.Errorf("serverCPUs(%v, %d) = %q: CPU %q not in the affinity", allowed, n, list, p)
			}
		}
	}
}
