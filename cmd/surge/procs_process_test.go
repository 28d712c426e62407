//go:build linux

package main

import (
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestServeProcsOnOneCore: on one core (taskset, as on a one-CPU machine
// or container) Go chooses one P. A Pebble server takes two, so that the
// goroutine waiting in the WAL's fsync does not stop every other one
// (procsForSync); the memory backend keeps Go's choice, and an explicit
// GOMAXPROCS is the operator's and is kept.
func TestServeProcsOnOneCore(t *testing.T) {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Fatalf("taskset (util-linux) is needed to run a server on one core: %v", err)
	}
	cases := []struct {
		name    string
		env     []string // after GOMAXPROCS is taken out of the environment
		backend string
		want    int
	}{
		{"pebble", nil, "pebble", 2},
		{"memory", nil, "memory", 1},
		{"pebble, GOMAXPROCS=1 set", []string{"GOMAXPROCS=1"}, "pebble", 1},
	}
	// The first CPU this process may run on: CPU 0 need not be in its
	// cpuset (a container allowed CPUs 4-5).
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatalf("cannot read the CPU affinity: %v", err)
	}
	cpu := -1
	for c := 0; c < 1024 && cpu < 0; c++ {
		if set.IsSet(c) {
			cpu = c
		}
	}
	if cpu < 0 {
		t.Fatal("the CPU affinity holds no CPU below 1024")
	}
	procs := regexp.MustCompile(`(?m)^go_sched_gomaxprocs_threads (\d+)$`)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wrapper := append([]string{"env", "-u", "GOMAXPROCS"}, c.env...)
			wrapper = append(wrapper, taskset, "-c", strconv.Itoa(cpu))
			p := launchSurgeVia(t, wrapper, freeAddr(t), true, nil, "--backend", c.backend, "--data", t.TempDir())
			m := procs.FindStringSubmatch(metricsText(t, p.base))
			if m == nil {
				t.Fatal("/metrics has no go_sched_gomaxprocs_threads")
			}
			if got, _ := strconv.Atoi(m[1]); got != c.want {
				t.Fatalf("GOMAXPROCS %d on one core, want %d", got, c.want)
			}
		})
	}
}
