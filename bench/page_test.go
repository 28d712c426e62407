package bench

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// summaryLine returns the summary table's line for a target's label.
func summaryLine(t *testing.T, md, key string) string {
	t.Helper()
	target, ok := targetOf(key)
	if !ok {
		t.Fatalf("no summary target %q", key)
	}
	summary, _, _ := strings.Cut(md[strings.Index(md, summaryTargetsTitle):], "\n## ")
	for _, line := range strings.Split(summary, "\n") {
		if strings.HasPrefix(line, "| "+target.Label+" |") {
			return line
		}
	}
	t.Fatalf("summary has no line for %q:\n%s", key, summary)
	return ""
}

// TestPageSummary: fixed measurements give the summary's ratio and met
// columns; a measurement that did not run says so and shows no number.
func TestPageSummary(t *testing.T) {
	res := &Results{
		Started: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		Command: "surge bench --packages",
		Commit:  "abc1234",
		Machine: MachineInfo{CPU: "Test CPU", Cores: 2, RAMGiB: 24, Go: "go1.26.8", OSArch: "linux/amd64", Redis: "7.0.15"},
		Tables: []Table{{Title: "HTTP", Rows: []Row{
			{Key: "http/store-page", Scenario: "store page", Surge: 9500, Floor: 10000, Unit: "req/s"},
			{Key: "http/guide-page", Scenario: "guide page", Surge: 8000, Floor: 10000, Unit: "req/s"},
			{Key: "http/reserve-pebble", Scenario: "reserve", Surge: 5000, Floor: 10000, Unit: "req/s"},
		}}},
		Packages: []PackageRun{{
			Bench: PackageBench{Pkg: "./inventory/", Benchtime: "2s"},
			Results: ParseBench(strings.NewReader(`goos: linux
BenchmarkMemoryReserve/uncontended-reused-2  	 4057165	       510.0 ns/op	       4 B/op	       0 allocs/op
BenchmarkMemoryReserve/floor-essential-reused-2 	10000000	       170.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkPebbleReserve/conc=256-2            	  266696	      7789 ns/op	     10440 cpu-ns/op	      7783 floor-ns/op	    136780 reserves/s	         0.9394 x-floor	     576 B/op	      11 allocs/op
PASS
`)),
		}},
	}
	md := res.Markdown()

	f := func(key, want string) {
		t.Helper()
		if got := summaryLine(t, md, key); !strings.HasSuffix(got, want) {
			t.Errorf("summary line of %s = %q; want it to end with %q", key, got, want)
		}
	}
	f("http/store-page", "| 9500 req/s | 10000 req/s | 0.95 | ≥ 0.90 | yes |")
	f("http/guide-page", "| 8000 req/s | 10000 req/s | 0.80 | ≥ 0.90 | **no** |")
	f("http/reserve-pebble", "| 5000 req/s | 10000 req/s | 0.50 | ≥ 0.50 | yes |")
	// 510 / 170 = 3.00 ≤ 3.5 with 0 allocs.
	f(keyMemoryReserve, "| 510 ns/op, 0 allocs/op | 170 ns/op | 3.00 | ≤ 3.50, 0 allocs/op | yes |")
	for _, missing := range []string{"http/reserve-redis", "pebble/reserve-256", "redis/reserve-256", "wrk/guide-page"} {
		f(missing, "| not run | not run | — | "+mustTarget(t, missing)+" | not run |")
	}

	for _, want := range []string{
		"- Command: `surge bench --packages`", "- Commit: abc1234", "- Run at: 2026-12-01T10:00:00Z",
		"2 cores (Test CPU), 24 GiB RAM, go1.26.8, linux/amd64, redis-server 7.0.15",
		"| MemoryReserve/uncontended-reused | 510 | 4 | 0 |",
		"| PebbleReserve/conc=256 | 7789 | 576 | 11 | 10440 cpu-ns/op, 7783 floor-ns/op, 136780 reserves/s, 0.939 x-floor |",
		"## Latency under open-model load\n\nnot run",
		"## How each figure is measured, and what limits it",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("page lacks %q:\n%s", want, md)
		}
	}
	if n := strings.Count(md, "| scenario | Surge | floor | ratio | target | met |"); n != 1 {
		t.Errorf("page has %d summary tables; want 1", n)
	}
}

func mustTarget(t *testing.T, key string) string {
	t.Helper()
	target, ok := targetOf(key)
	if !ok {
		t.Fatalf("no target %q", key)
	}
	return target.String()
}

// TestPageMemoryReserveAllocs: the memory reserve meets its target only
// with 0 allocs/op, whatever its ratio.
func TestPageMemoryReserveAllocs(t *testing.T) {
	res := &Results{Packages: []PackageRun{{
		Bench: PackageBench{Pkg: "./inventory/", Benchtime: "2s"},
		Results: []BenchResult{
			{Name: memoryReserveBench, NsOp: 300, BOp: 16, Alloc: 1},
			{Name: memoryFloorBench, NsOp: 150, BOp: 0, Alloc: 0},
		},
	}}}
	got := summaryLine(t, res.Markdown(), keyMemoryReserve)
	if want := "| 300 ns/op, 1 allocs/op | 150 ns/op | 2.00 | ≤ 3.50, 0 allocs/op | **no** |"; !strings.HasSuffix(got, want) {
		t.Errorf("memory reserve line = %q; want it to end with %q", got, want)
	}
}

func TestParseBench(t *testing.T) {
	got := ParseBench(strings.NewReader("BenchmarkStorePage-2   \t 20000\t 22503 ns/op\t 3432 body_bytes\t 1.116 x_floor\t 266 B/op\t 0 allocs/op\nok  \tpkg\t1.2s\nBenchmarkBroken-2 notanumber\n"))
	if len(got) != 1 {
		t.Fatalf("ParseBench = %d results; want 1: %+v", len(got), got)
	}
	r := got[0]
	if r.Name != "StorePage" || r.N != 20000 || r.NsOp != 22503 || r.BOp != 266 || r.Alloc != 0 || len(r.Extra) != 2 || r.Extra[1] != (Metric{1.116, "x_floor"}) {
		t.Errorf("ParseBench = %+v", r)
	}
}

func TestParseWrk(t *testing.T) {
	st, err := ParseWrk("Running 3s test @ http://127.0.0.1:1/\n  1 threads and 128 connections\nWRK-RESULT requests=3000 duration_us=3000000 connect=0 read=1 write=0 status=100 timeout=2\n")
	if err != nil {
		t.Fatalf("ParseWrk = %v", err)
	}
	if st.Requests != 3000 || st.Non2xx != 100 || st.SocketErrors != 3 || st.Elapsed != 3*time.Second || st.PerSecond() != 2900/3.0 {
		t.Errorf("ParseWrk = %+v (%.1f/s)", st, st.PerSecond())
	}
	if _, err := ParseWrk("Running 3s test\n"); err == nil {
		t.Error("ParseWrk without a result line = nil error; want an error")
	}
}

// TestPageBeforeAfter: an earlier build's wrk run gives a before-and-after
// table, row by row; a scenario the earlier run lacks says "not run".
func TestPageBeforeAfter(t *testing.T) {
	row := func(key, scenario string, surge, floor float64) ExternalRow {
		return ExternalRow{Row: Row{Key: key, Scenario: scenario, Surge: surge, Floor: floor, Unit: "req/s"}}
	}
	res := &Results{
		External: &External{Label: "after", Rows: []ExternalRow{
			row("wrk/reserve-memory", "flash reserve, memory backend", 70, 100),
			row("wrk/reserve-redis", "flash reserve, redis backend", 40, 100),
		}},
		ExternalBefore: &External{Label: "2f267fc", Rows: []ExternalRow{
			row("wrk/reserve-memory", "flash reserve, memory backend", 60, 100),
		}},
	}
	md := res.Markdown()
	for _, want := range []string{
		"### Before and after (wrk)\n\nThe same wrk measurement of 2f267fc,",
		"| flash reserve, memory backend | 60.0 req/s | 0.60 | 70.0 req/s | 0.70 |",
		"| flash reserve, redis backend | not run | not run | 40.0 req/s | 0.40 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("page lacks %q:\n%s", want, md)
		}
	}
	res.ExternalBefore = nil
	if md := res.Markdown(); strings.Contains(md, "Before and after") {
		t.Error("a page without an earlier run has a before-and-after table")
	}
}

// TestPageOrdersMySQL: the order writer's row comes from its package
// benchmark's own metrics (Surge's orders/s next to the floor's).
func TestPageOrdersMySQL(t *testing.T) {
	res := &Results{Packages: []PackageRun{{
		Bench: PackageBench{Pkg: "./engine/", Benchtime: "1s"},
		Results: ParseBench(strings.NewReader(`BenchmarkOrderWriterMySQL-2   	   20000	     17483 ns/op	     65000 floor-orders/s	         0.8 of-floor	     52000 orders/s	    4115 B/op	      15 allocs/op
`)),
	}}}
	if got, want := summaryLine(t, res.Markdown(), keyOrdersMySQL), "| 52000 orders/s | 65000 orders/s | 0.80 | ≥ 0.70 | yes |"; !strings.HasSuffix(got, want) {
		t.Fatalf("summary line = %q; want it to end with %q", got, want)
	}
}

// TestPageRefused: the summary says which HTTP rows had requests refused
// on Surge's side (in process and through wrk), or that none had.
func TestPageRefused(t *testing.T) {
	res := &Results{Tables: []Table{
		{Title: "HTTP", Rows: []Row{
			{Key: "http/reserve-pebble", Scenario: "flash reserve, pebble", Surge: 500, Floor: 1000, Unit: "req/s", Sent: 20, Refused: 5},
			{Key: "http/store-page", Scenario: "store page", Surge: 900, Floor: 1000, Unit: "req/s", Sent: 20},
			{Key: "http/reserve-redis-keyed", Scenario: "keyed", Surge: 900, Floor: 1000, Unit: "req/s"},
		}},
		{Title: "Pebble", Rows: []Row{{Key: "pebble/reserve-1", Scenario: "reserve, 1 callers", Surge: 1, Floor: 2, Unit: "ops/s"}}},
	}, External: &External{Rows: []ExternalRow{
		{Row: Row{Key: "wrk/reserve-redis", Scenario: "flash reserve, redis", Surge: 4, Floor: 10, Unit: "req/s"}, SurgeStats: WrkStats{Non2xx: 3, SocketErrors: 1}},
		{Row: Row{Key: "wrk/reserve-memory", Scenario: "flash reserve, memory", Surge: 7, Floor: 10, Unit: "req/s"}},
	}}}
	md := res.Markdown()
	for _, want := range []string{
		"Refused in process (shed or non-2xx): flash reserve, pebble: 5 of 20 (25%). Through wrk: flash reserve, redis: 3 non-2xx, 1 socket errors.",
		"| HTTP flash reserve, redis (wrk) | 4.00 req/s | 10.0 req/s | 0.40 | ≥ 0.50 | **no** |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("page lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "store page: ") || strings.Contains(md, "flash reserve, memory: ") {
		t.Errorf("page names a row that refused nothing:\n%s", md)
	}
	res.Tables[0].Rows[0].Refused = 0
	res.External.Rows[0].SurgeStats = WrkStats{}
	if md := res.Markdown(); !strings.Contains(md, "In process, Surge refused none of the HTTP requests (no shed, no non-2xx). Through wrk, no non-2xx answer and no socket error.") {
		t.Errorf("page without refusals does not say so:\n%s", md)
	}
}

// TestPageMethods: the last section names each closed-loop table's floor
// and the external run's settings, and the Redis line carries the
// INCR-floor ratio when it was measured.
func TestPageMethods(t *testing.T) {
	res := &Results{Tables: []Table{
		{Title: "Redis: reservations", Floor: "raw EVALSHA", Rows: []Row{
			{Key: "redis/reserve-256", Scenario: "reserve, 256 callers, vs `return 1`", Surge: 80, Floor: 100, Unit: "ops/s"},
			{Key: "redis/reserve-256-incr", Scenario: "reserve, 256 callers, vs one-key INCR script", Surge: 150, Floor: 100, Unit: "ops/s"},
		}},
	}, External: &External{Wrk: "wrk 4.1", Conns: 128, Label: "abc1234", Slice: 3 * time.Second, Users: 1000}}
	md := res.Markdown()
	for _, want := range []string{
		"- **Redis: reservations.** Floor: raw EVALSHA; floor and Surge alternate in 4 slices each. The gap to `return 1` is mostly durability",
		"the reserve at 256 callers does 1.50x its floor (150 ops/s against 100 ops/s).",
		"- **External (wrk).** wrk 4.1, 1 thread, 128 connections, keep-alive over loopback, against `surge serve` from abc1234",
		"4 slices of 3s per side",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("page lacks %q:\n%s", want, md)
		}
	}
}

// TestPageWrkCPU: the external run's CPU times give a table of CPU per
// request for each side and split each ratio into CPU per request and the
// machine's busy share; a run without CPU times says it cannot.
func TestPageWrkCPU(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	// 10 s each side, 2 CPUs: 20 s of machine. Surge: 400k requests (10k
	// non-2xx), server 9.75 s, redis 3.9 s, wrk 4.29 s, machine busy 17 s.
	// Floor: 800k requests, server 11.2 s, wrk 8 s, busy 19.6 s.
	surge := WrkStats{Requests: 400_000, Non2xx: 10_000, Elapsed: 10 * time.Second, ServerCPU: ms(9750), RedisCPU: ms(3900), WrkCPU: ms(4290), MachineBusy: ms(17000), MachineAll: ms(20000)}
	floor := WrkStats{Requests: 800_000, Elapsed: 10 * time.Second, ServerCPU: ms(11200), WrkCPU: ms(8000), MachineBusy: ms(19600), MachineAll: ms(20000)}
	res := &Results{External: &External{Wrk: "wrk 4.1", Conns: 128, Slice: 3 * time.Second, Users: 1000, Rows: []ExternalRow{
		{Row: Row{Key: "wrk/reserve-redis", Scenario: "flash reserve, redis backend", Surge: surge.PerSecond(), Floor: floor.PerSecond(), Unit: "req/s"}, Backend: "redis", SurgeStats: surge, FloorStats: floor},
	}}}
	for name, md := range map[string]string{"page": res.Markdown(), "fragment": res.External.Markdown()} {
		for _, want := range []string{
			"### CPU per request (wrk)",
			"| flash reserve, redis backend | Surge | 25.0 | 10.0 | 11.0 | 46.0 | 85% |",
			"| flash reserve, redis backend | floor | 14.0 | — | 10.0 | 24.0 | 98% |",
			"flash reserve, redis backend: 0.52 for CPU per request (46.0 µs against 24.0) times 0.87 for the machine's busy share (85% against 98%)",
		} {
			if !strings.Contains(md, want) {
				t.Errorf("%s lacks %q:\n%s", name, want, md)
			}
		}
	}
	res.External.Rows[0].SurgeStats.MachineAll = 0
	md := res.Markdown()
	if strings.Contains(md, "CPU per request (wrk)") || !strings.Contains(md, "The run could not read CPU times") {
		t.Errorf("a run without CPU times has a CPU table or does not say it has none:\n%s", md)
	}
}

// TestPageMemoryReserveMedian: the summary takes the run of median ratio
// among the runs of the pair (run k of the reserve with run k of its
// floor), and 0 allocs/op from every run.
func TestPageMemoryReserveMedian(t *testing.T) {
	run := func(nsReserve, nsFloor, allocs float64) []BenchResult {
		return []BenchResult{{Name: memoryReserveBench, NsOp: nsReserve, Alloc: allocs}, {Name: memoryFloorBench, NsOp: nsFloor, Alloc: 0}}
	}
	var results []BenchResult
	// Ratios 3.0, 5.0, 3.4, 4.0, 2.9: the median is 3.4.
	for _, r := range [][2]float64{{300, 100}, {250, 50}, {170, 50}, {200, 50}, {290, 100}} {
		results = append(results, run(r[0], r[1], 0)...)
	}
	pair := PackageBench{Pkg: "./inventory/", Benchtime: "1s", Bench: memoryPairBench, Runs: 5}
	res := &Results{Packages: []PackageRun{{Bench: pair, Results: results}}}
	md := res.Markdown()
	if got, want := summaryLine(t, md, keyMemoryReserve), "| 170 ns/op, 0 allocs/op | 50.0 ns/op | 3.40 | ≤ 3.50, 0 allocs/op | yes |"; !strings.HasSuffix(got, want) {
		t.Errorf("memory reserve line = %q; want it to end with %q", got, want)
	}
	for _, want := range []string{"`, 5 runs one after another", "the run of median ratio out of 5 runs of the pair"} {
		if !strings.Contains(md, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// One run that allocated fails the target, whichever run is the median.
	results[6].Alloc = 1
	if got, want := summaryLine(t, res.Markdown(), keyMemoryReserve), "| 170 ns/op, 1 allocs/op | 50.0 ns/op | 3.40 | ≤ 3.50, 0 allocs/op | **no** |"; !strings.HasSuffix(got, want) {
		t.Errorf("memory reserve line with an allocating run = %q; want it to end with %q", got, want)
	}
}

// TestPackageCommandQuoting: the page's commands can be pasted into a
// shell: a pattern with |, $ or a quote comes out of sh as it went in.
func TestPackageCommandQuoting(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, w := range []string{memoryPairBench, "NotifyPay", "a'b", "x y", "^$"} {
		out, err := exec.Command(sh, "-c", "printf '%s' "+ShellWord(w)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != w {
			t.Errorf("sh read %q as %q", ShellWord(w), out)
		}
	}
	if got := ShellWord("NotifyPay"); got != "NotifyPay" {
		t.Errorf("ShellWord(NotifyPay) = %q; want it bare", got)
	}
	b := PackageBench{Pkg: "./inventory/", Benchtime: "1s", Bench: memoryPairBench}
	if want := "go test -run '^$' -bench '" + memoryPairBench + "' -benchmem -benchtime 1s ./inventory/"; b.Command() != want {
		t.Errorf("Command = %q; want %q", b.Command(), want)
	}
}

// TestPageNotifyPayMedian: the summary gives the NotifyPay run of median
// ratio to its own floor.
func TestPageNotifyPayMedian(t *testing.T) {
	run := func(ns, floor float64) BenchResult {
		return BenchResult{Name: "NotifyPay", NsOp: ns, Alloc: 40, Extra: []Metric{{floor, "floor-ns/op"}}}
	}
	res := &Results{Packages: []PackageRun{{
		Bench:   PackageBench{Pkg: "./gateway/", Benchtime: "1000x", Bench: "NotifyPay", Runs: 3},
		Results: []BenchResult{run(90000, 40000), run(70000, 40000), run(80000, 50000)}, // 2.25, 1.75, 1.60
	}}}
	if got, want := summaryLine(t, res.Markdown(), keyNotifyPay), "| 70000 ns/op | 40000 ns/op | 1.75 | ≤ 2.00 | yes |"; !strings.HasSuffix(got, want) {
		t.Errorf("NotifyPay line = %q; want it to end with %q", got, want)
	}
}

// TestRatioText: a ratio that misses its target but would round onto its
// right side gets the decimals that show it missed (rounded away from the
// bound at the fourth), so that the table never shows a figure within a
// bound next to "no"; every other ratio has two.
func TestRatioText(t *testing.T) {
	min70 := summaryTarget{Min: 0.70}
	max35 := summaryTarget{Max: 3.5, ZeroAllocs: true}
	band := summaryTarget{Min: 0.25, Max: 0.42}
	for _, c := range []struct {
		t     summaryTarget
		ratio float64
		want  string
	}{
		{min70, 0.6997, "0.6997"},
		{min70, 0.70, "0.70"},
		{min70, 0.7049, "0.70"},
		{min70, 0.7051, "0.71"},
		{max35, 3.503, "3.503"},
		{max35, 3.4996, "3.50"},
		{max35, 2.961, "2.96"},
		{band, 0.4201, "0.4201"},
		{band, 0.2496, "0.2496"},
		{band, 0.3349, "0.33"},
		{summaryTarget{Min: 0.5}, 0.3977, "0.40"}, // missed, and shown missed
		{summaryTarget{}, 0.6997, "0.70"},         // no target
		{min70, 0.699999, "0.6999"},               // four decimals at most, then away
		{max35, 3.500001, "3.5001"},
	} {
		met := c.t.met(Row{Surge: c.ratio, Floor: 1}, 0)
		if got := c.t.ratioText(c.ratio, met); got != c.want {
			t.Errorf("%v: ratio %v (met %v) shows %q; want %q", c.t, c.ratio, met, got, c.want)
		}
	}
	// Missed for its allocations only: the ratio is shown as it is.
	if met := max35.met(Row{Surge: 3.4996, Floor: 1}, 2); met || max35.ratioText(3.4996, met) != "3.50" {
		t.Errorf("3.4996 with 2 allocs: met %v, shows %q; want no, 3.50", met, max35.ratioText(3.4996, met))
	}
}
