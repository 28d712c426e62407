package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// PackageBench is one `go test -bench` command of the page: the testing.B
// benchmarks of a package, with the -benchtime its benchmarks were written
// for (the Redis ones start a server per run and take a fixed count).
type PackageBench struct {
	Pkg       string // "./inventory/"
	Benchtime string // "2s", "10000x"
	// Bench and Skip select the benchmarks (go test -bench, -skip);
	// Bench "" means all.
	Bench, Skip string
	// Runs is how many times the command runs, one after another (0
	// means once); the results of every run are kept, in order.
	Runs int
}

// times is how many times b's command runs.
func (b PackageBench) times() int { return max(1, b.Runs) }

// PackageBenches are the commands the page runs, in order: the memory,
// Pebble and Redis reserves and their floors, the engine, the gateway's
// routes over loopback.
var PackageBenches = []PackageBench{
	{Pkg: "./inventory/", Benchtime: "2s", Skip: memoryPairBench},
	// The memory reserve and its floor, whose ratio is a target: a run of
	// the pair, five times, so that the page can take the median run (see
	// memoryReservePairs).
	{Pkg: "./inventory/", Benchtime: "1s", Bench: memoryPairBench, Runs: memoryPairRuns},
	{Pkg: "./inventory/redisinv/", Benchtime: "10000x"},
	{Pkg: "./engine/", Benchtime: "1s"},
	{Pkg: "./gateway/", Benchtime: "20000x", Skip: "NotifyPay"},
	// One prepay at the fake WeChat Pay per op, made ahead: fewer ops.
	// Three runs: the page takes the one of median ratio to its floor.
	{Pkg: "./gateway/", Benchtime: "1000x", Bench: "NotifyPay", Runs: 3},
}

// Args is the `go` command line of b.
func (b PackageBench) Args() []string {
	args := []string{"test", "-run", "^$", "-bench", b.bench(), "-benchmem", "-benchtime", b.Benchtime}
	if b.Skip != "" {
		args = append(args, "-skip", b.Skip)
	}
	return append(args, b.Pkg)
}

func (b PackageBench) bench() string {
	if b.Bench == "" {
		return "."
	}
	return b.Bench
}

// Command is b as a shell command (run b.Runs times when it is more
// than one).
func (b PackageBench) Command() string {
	cmd := "go test -run '^$' -bench " + ShellWord(b.bench()) + " -benchmem -benchtime " + b.Benchtime
	if b.Skip != "" {
		cmd += " -skip " + ShellWord(b.Skip)
	}
	return cmd + " " + b.Pkg
}

// ShellWord quotes s for a POSIX shell when it holds anything but
// letters, digits and -_./=:, (a benchmark pattern holds | and $).
func ShellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// PackageRun is what one PackageBench measured.
type PackageRun struct {
	Bench   PackageBench
	Results []BenchResult
	// Err is why the command failed ("" if it did not); the results
	// before the failure are kept.
	Err string
}

// BenchResult is one line of `go test -bench` output.
type BenchResult struct {
	Name  string // without the "Benchmark" prefix and the -GOMAXPROCS suffix
	N     int64
	NsOp  float64
	BOp   float64 // -1 if not reported
	Alloc float64 // allocs/op, -1 if not reported
	// Extra are the other metrics (b.ReportMetric), in output order.
	Extra []Metric
}

// metric returns the extra metric of unit.
func (b BenchResult) metric(unit string) (float64, bool) {
	for _, m := range b.Extra {
		if m.Unit == unit {
			return m.Value, true
		}
	}
	return 0, false
}

// Metric is one value with its unit.
type Metric struct {
	Value float64
	Unit  string
}

// RunPackages runs PackageBenches one after another in the module at dir
// with the go command goBin ("" means "go" on PATH). A failing command is
// recorded in its PackageRun and the others still run.
func RunPackages(ctx context.Context, dir, goBin string, log io.Writer) []PackageRun {
	if goBin == "" {
		goBin = "go"
	}
	if log == nil {
		log = io.Discard
	}
	var runs []PackageRun
	for _, b := range PackageBenches {
		start := time.Now()
		run := PackageRun{Bench: b}
		for i := range b.times() {
			fmt.Fprintf(log, "bench: %s (run %d of %d)\n", b.Command(), i+1, b.times())
			cmd := exec.CommandContext(ctx, goBin, b.Args()...)
			cmd.Dir = dir
			var out strings.Builder
			cmd.Stdout = io.MultiWriter(&out, log)
			cmd.Stderr = log
			err := cmd.Run()
			run.Results = append(run.Results, ParseBench(strings.NewReader(out.String()))...)
			if err != nil {
				run.Err = err.Error()
				break
			}
		}
		fmt.Fprintf(log, "bench: %s: %d results in %v\n", b.Pkg, len(run.Results), time.Since(start).Round(time.Second))
		runs = append(runs, run)
	}
	return runs
}

// ParseBench reads the result lines of `go test -bench` output and skips
// everything else.
func ParseBench(r io.Reader) []BenchResult {
	var out []BenchResult
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if res, ok := parseBenchLine(sc.Text()); ok {
			out = append(out, res)
		}
	}
	return out
}

func parseBenchLine(line string) (BenchResult, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return BenchResult{}, false
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return BenchResult{}, false
	}
	name := strings.TrimPrefix(f[0], "Benchmark")
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	res := BenchResult{Name: name, N: n, NsOp: -1, BOp: -1, Alloc: -1}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return BenchResult{}, false
		}
		switch unit := f[i+1]; unit {
		case "ns/op":
			res.NsOp = v
		case "B/op":
			res.BOp = v
		case "allocs/op":
			res.Alloc = v
		default:
			res.Extra = append(res.Extra, Metric{Value: v, Unit: unit})
		}
	}
	return res, res.NsOp >= 0
}

// findBenches returns every result named name in the runs of pkg, in
// order.
func findBenches(runs []PackageRun, pkg, name string) []BenchResult {
	var out []BenchResult
	for _, r := range runs {
		if r.Bench.Pkg != pkg {
			continue
		}
		for _, b := range r.Results {
			if b.Name == name {
				out = append(out, b)
			}
		}
	}
	return out
}

// findBench returns the first result named name in the runs of pkg.
func findBench(runs []PackageRun, pkg, name string) (BenchResult, bool) {
	if bs := findBenches(runs, pkg, name); len(bs) > 0 {
		return bs[0], true
	}
	return BenchResult{}, false
}
