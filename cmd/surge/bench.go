package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/surge-retail/surge/bench"
)

var benchOpts struct {
	duration time.Duration
	conns    int
	callers  []int
	only     []string
	out      string
	packages bool
	wrk      bool
	wrkSlice time.Duration
	// wrkBefore and wrkBeforeLabel: an earlier build measured with wrk in
	// the same run, for the page's before-and-after table.
	wrkBefore      string
	wrkBeforeLabel string
	srcDir         string
	// overloadEnv is more environment of the overload scenario's server.
	overloadEnv []string
}

var benchCmd = &cobra.Command{
	Use:   "bench",
	Short: "Measure Surge next to floors taken in the same run; write BENCHMARKS.md",
	Long: `Run the standard benchmark scenarios, each next to a floor measured in the
same run on the same machine: a bare fasthttp handler for HTTP routes, raw synced
Pebble batches for durable reservations, raw EVALSHA through rueidis for Redis.
It starts what it needs (in-process Surge servers, a redis-server on a free
loopback port) and cleans up.

The output is the whole BENCHMARKS.md page (machine, command, commit, one
summary table against the targets, latency, memory per operation, every
scenario, what limits each figure) on stdout or in --out. What did not run
shows as "not run".

It also runs the overload scenario ("overload"): this binary's "surge serve"
in its own process takes reserves at five times its measured capacity with
pays beside them; it reports the pays shed, the admitted p99 next to the
unloaded p99, and the server's resident memory before, at peak and after the
sales ended (--only overload runs it alone).

And it runs the fairness scenario ("fairness", issue 18): this binary's
"surge serve --demo" with its defaults (risk on) in its own process meets
the load test's flash scenario (2,000 accounts, a fifth of them bots of
every kind, 400 arrivals/s for 10 s); the page gives each bot kind's
per-account win rate against the humans', the bots' share of the units and
the humans refused by risk (--only fairness runs it alone, about a minute).

--packages also runs the packages' testing.B benchmarks (go test, from the
source tree in --src); --wrk also runs the external measurement (wrk against
this binary's "surge serve" in its own process, next to a floor server in its
own process; see "surge bench wrk"). The page of record:

  surge bench --packages --wrk --out BENCHMARKS.md`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		groups := benchOpts.only
		if len(groups) == 0 {
			groups = append(slices.Clone(bench.GroupsInProcess), "overload", "fairness")
		}
		if err := bench.CheckGroups(groups); err != nil {
			return fmt.Errorf("--only: %w", err)
		}
		if benchOpts.packages {
			groups = append(slices.Clone(groups), "packages")
		}
		if benchOpts.wrk {
			groups = append(slices.Clone(groups), "wrk")
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		res, err := bench.Run(ctx, bench.Options{
			Duration: benchOpts.duration,
			Conns:    benchOpts.conns,
			Callers:  benchOpts.callers,
			Only:     groups,
			Log:      os.Stderr,
		})
		if err != nil {
			return err
		}
		res.Command = commandLine(os.Args[1:])
		res.Commit = bench.Commit(benchOpts.srcDir)
		if slices.Contains(groups, "packages") {
			res.Packages = bench.RunPackages(ctx, benchOpts.srcDir, "", os.Stderr)
		}
		if slices.Contains(groups, "overload") {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("cannot find this binary: %w", err)
			}
			if res.Overload, err = bench.RunOverload(ctx, bench.OverloadOptions{Surge: self, ServerEnv: benchOpts.overloadEnv, Log: os.Stderr}); err != nil {
				return fmt.Errorf("overload: %w", err)
			}
		}
		if slices.Contains(groups, "fairness") {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("cannot find this binary: %w", err)
			}
			if res.Fairness, err = bench.RunFairness(ctx, bench.FairnessOptions{Surge: self, Log: os.Stderr}); err != nil {
				return fmt.Errorf("fairness: %w", err)
			}
		}
		if slices.Contains(groups, "wrk") && benchOpts.wrkBefore != "" {
			before, err := runWrk(ctx, benchOpts.wrkBefore, cmp.Or(benchOpts.wrkBeforeLabel, benchOpts.wrkBefore), benchOpts.wrkSlice)
			if err != nil {
				return err
			}
			res.ExternalBefore = before
		}
		if slices.Contains(groups, "wrk") {
			ext, err := runWrk(ctx, "", "", benchOpts.wrkSlice)
			if err != nil {
				return err
			}
			res.External = ext
			res.Machine.Wrk = ext.Wrk
		}
		return writeOut(benchOpts.out, res.Markdown())
	},
}

var wrkOpts struct {
	surge    string
	label    string
	slice    time.Duration
	out      string
	backends []string
}

var benchWrkCmd = &cobra.Command{
	Use:   "wrk",
	Short: "Measure `surge serve` with wrk next to a floor server, in separate processes",
	Long: `Start "surge serve" (from --surge, default this binary) on the memory, pebble
and redis backends in turn (redis-server on a free loopback port), load a
catalog and a large flash sale through the admin API, log in users, then run
wrk (1 thread, 128 connections) against the guide page and the flash reserve,
alternating with a bare fasthttp floor server (this binary's hidden
"bench floor-server") in the same run. Prints the measurement as markdown
(the whole page folds its rows into the summary). bench/wrk.sh wraps it.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		ext, err := runWrk(ctx, wrkOpts.surge, wrkOpts.label, wrkOpts.slice, wrkOpts.backends...)
		if err != nil {
			return err
		}
		return writeOut(wrkOpts.out, ext.Markdown())
	},
}

// runWrk runs the external measurement of surge (default: this binary),
// with this binary as the floor server.
// backends are the flash reserve's (default all three).
func runWrk(ctx context.Context, surge, label string, slice time.Duration, backends ...string) (*bench.External, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find this binary: %w", err)
	}
	if surge == "" {
		surge = self
		if label == "" {
			label = "this tree (" + orUnknown(bench.Commit(benchOpts.srcDir)) + ")"
		}
	}
	return bench.RunExternal(ctx, bench.ExternalOptions{
		Surge:        surge,
		Label:        label,
		FloorCommand: []string{self, "bench", "floor-server"},
		Slice:        slice,
		Backends:     backends,
		Log:          os.Stderr,
	})
}

func orUnknown(s string) string {
	if s == "" {
		return "commit unknown"
	}
	return s
}

var floorOpts struct {
	addr string
	body string
}

// benchFloorCmd is the floor of the external measurement: a bare fasthttp
// server in its own process, answering every request with one JSON body.
var benchFloorCmd = &cobra.Command{
	Use:    "floor-server",
	Short:  "Serve a fixed JSON body with bare fasthttp (the floor of `surge bench wrk`)",
	Hidden: true,
	Args:   cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		body, err := os.ReadFile(floorOpts.body)
		if err != nil {
			return err
		}
		srv, err := bench.StartFloorServer(floorOpts.addr, body)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		<-ctx.Done()
		return srv.Close()
	},
}

func writeOut(path, md string) error {
	if path == "" {
		_, err := fmt.Print(md)
		return err
	}
	return os.WriteFile(path, []byte(md), 0o644)
}

func init() {
	f := benchCmd.Flags()
	f.DurationVar(&benchOpts.duration, "duration", 5*time.Second, "length of each measurement")
	f.IntVar(&benchOpts.conns, "conns", bench.ConnsDefault, "closed-loop HTTP connections (every HTTP scenario and its floor)")
	f.IntSliceVar(&benchOpts.callers, "callers", []int{1, 16, 256}, "concurrencies of the backend scenarios")
	f.StringSliceVar(&benchOpts.only, "only", nil, "run only these groups: "+strings.Join(bench.Groups, ", ")+" (default: all but packages and wrk)")
	f.StringVar(&benchOpts.out, "out", "", "write the page to this file (BENCHMARKS.md)")
	f.StringSliceVar(&benchOpts.overloadEnv, "overload-env", nil, "more environment of the overload scenario's server, to compare settings (e.g. SURGE_ADMISSION_WRITES_MIN=64)")
	f.BoolVar(&benchOpts.packages, "packages", false, "also run the packages' testing.B benchmarks (needs the source tree and go)")
	f.BoolVar(&benchOpts.wrk, "wrk", false, "also run the external wrk measurement (needs wrk and redis-server)")
	f.DurationVar(&benchOpts.wrkSlice, "wrk-slice", 3*time.Second, "length of one wrk run (4 per side per scenario)")
	f.StringVar(&benchOpts.wrkBefore, "wrk-before", "", "with --wrk: also measure this earlier surge binary first, for a before-and-after table")
	f.StringVar(&benchOpts.wrkBeforeLabel, "wrk-before-label", "", "how the page names the --wrk-before binary (e.g. its commit)")
	benchCmd.PersistentFlags().StringVar(&benchOpts.srcDir, "src", ".", "source tree (module root) for --packages and the commit on the page")

	w := benchWrkCmd.Flags()
	w.StringVar(&wrkOpts.surge, "surge", "", "surge binary to measure (default: this binary)")
	w.StringVar(&wrkOpts.label, "label", "", "how the page names the measured binary, e.g. its commit")
	w.DurationVar(&wrkOpts.slice, "slice", 3*time.Second, "length of one wrk run (4 per side per scenario)")
	w.StringVar(&wrkOpts.out, "out", "", "write the section to this file")
	w.StringSliceVar(&wrkOpts.backends, "backend", nil, "measure the flash reserve on these backends only (memory, pebble, redis; the guide page on the first), e.g. to compare settings of one")

	fl := benchFloorCmd.Flags()
	fl.StringVar(&floorOpts.addr, "addr", "127.0.0.1:0", "listen address (loopback)")
	fl.StringVar(&floorOpts.body, "body", "", "file holding the JSON body to serve")

	benchCmd.AddCommand(benchWrkCmd, benchFloorCmd)
	rootCmd.AddCommand(benchCmd)
}

// commandLine is `surge ARGS` as a shell would take it back
// (bench.ShellWord quotes each argument that needs it).
func commandLine(args []string) string {
	words := []string{"surge"}
	for _, a := range args {
		words = append(words, bench.ShellWord(a))
	}
	return strings.Join(words, " ")
}
