package main

import (
	"fmt"
	"os"
	"strings"
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
}

var benchCmd = &cobra.Command{
	Use:   "bench",
	Short: "Measure Surge next to floors taken in the same run",
	Long: `Run the standard benchmark scenarios, each next to a floor measured in the
same run on the same machine: a bare fasthttp handler for HTTP routes, raw synced
Pebble batches for durable reservations, raw EVALSHA through rueidis for Redis.
It starts what it needs (in-process Surge servers, a redis-server on a free port)
and cleans up. The markdown tables go to stdout, or to --out.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		res, err := bench.Run(cmd.Context(), bench.Options{
			Duration: benchOpts.duration,
			Conns:    benchOpts.conns,
			Callers:  benchOpts.callers,
			Only:     benchOpts.only,
			Log:      os.Stderr,
		})
		if err != nil {
			return err
		}
		md := fmt.Sprintf("Command: `surge bench %s`\n\n%s", strings.Join(os.Args[2:], " "), res.Markdown())
		if benchOpts.out == "" {
			_, err = fmt.Print(md)
			return err
		}
		return os.WriteFile(benchOpts.out, []byte(md), 0o644)
	},
}

func init() {
	f := benchCmd.Flags()
	f.DurationVar(&benchOpts.duration, "duration", 5*time.Second, "length of each measurement")
	f.IntVar(&benchOpts.conns, "conns", bench.ConnsDefault, "closed-loop HTTP connections (every HTTP scenario and its floor)")
	f.IntSliceVar(&benchOpts.callers, "callers", []int{1, 16, 256}, "concurrencies of the backend scenarios")
	f.StringSliceVar(&benchOpts.only, "only", nil, "run only these groups: http, pebble, redis, latency")
	f.StringVar(&benchOpts.out, "out", "", "write the markdown tables to this file")
	rootCmd.AddCommand(benchCmd)
}
