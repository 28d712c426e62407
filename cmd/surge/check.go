package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/surge-retail/surge/config"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
)

var (
	checkConfigFile string
	checkJSON       bool
)

var checkCmd = &cobra.Command{
	Use:   "check",
	Short: "Reconcile the stores offline: pool counters vs reservations vs orders (exit 1 when anything is wrong)",
	Long: `Check reads the stores "surge serve" writes — the inventory (--data DIR
for Pebble, or --backend redis --redis ADDR), the engine's records and the
order store (--orders mysql://... or the records) — and reconciles them as
GET /admin/v1/reconcile does: for every sale, deal and listing pool, its
counters against the sum of its held and paid reservations; every paid
reservation against its one order (same amount, not refunded); every order
against its reservation. It writes nothing. With Pebble, stop "surge serve"
first (the stores are one process's). Exit status: 0 when all is well, 1
when a discrepancy was found, 2 when the stores could not be read.`,
	Args: cobra.NoArgs,
	RunE: runCheck,
}

func init() {
	f := checkCmd.Flags()
	f.String("data", "", "data directory of the Pebble stores (default: config's)")
	f.String("backend", "", "inventory backend: pebble (default) or redis")
	f.String("redis", "", "Redis address, or a comma-separated list of a cluster's nodes; "+
		"credentials from SURGE_REDIS_USERNAME and SURGE_REDIS_PASSWORD")
	f.String("orders", "", "where orders are kept: pebble (default: with the engine's records) or mysql://USER:PASS@HOST:PORT/DB")
	f.StringVar(&checkConfigFile, "config", "", "JSON config file (keys as in config.Config)")
	f.BoolVar(&checkJSON, "json", false, "print the report as JSON")
	rootCmd.AddCommand(checkCmd)
}

func runCheck(cmd *cobra.Command, _ []string) error {
	cfg, err := loadConfig(cmd, checkConfigFile, map[string]string{}, "json")
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	rep, err := check(cmd.Context(), cfg)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	printCheck(os.Stdout, rep, checkJSON)
	if !rep.OK {
		return &exitError{code: 1, err: fmt.Errorf("surge check: %d discrepancies", rep.DiscrepanciesTotal)}
	}
	return nil
}

// check opens the stores of cfg without an engine (nothing is replayed,
// swept or written) and reconciles them.
func check(ctx context.Context, cfg config.Config) (engine.Reconciliation, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if cfg.Backend == "memory" {
		return engine.Reconciliation{}, errors.New("surge check: the memory backend keeps nothing to check; use --data DIR or --backend redis")
	}
	o := componentOptionsOf(cfg)
	store, err := openStore(ctx, cfg.Backend, cfg.Data, o)
	if err != nil {
		return engine.Reconciliation{}, err
	}
	defer store.Close()
	var rec records.Records
	if o.Engine.RedisAddr != "" {
		rec, err = records.OpenRedis(ctx, records.Options{RedisAddrs: strings.Split(o.Engine.RedisAddr, ","),
			RedisUsername: o.Engine.RedisUsername, RedisPassword: o.Engine.RedisPassword})
	} else {
		rec, err = records.OpenPebble(o.Engine.Dir, records.Options{})
	}
	if err != nil {
		return engine.Reconciliation{}, fmt.Errorf("cannot open the engine's records: %w", err)
	}
	defer rec.Close()
	var st orders.Store = orders.NewRecordsStore(rec)
	if strings.HasPrefix(cfg.Orders, "mysql://") {
		sqlOrders, err := orders.OpenMySQL(ctx, cfg.Orders, orders.SQLOptions{})
		if err != nil {
			return engine.Reconciliation{}, fmt.Errorf("cannot open the order store: %w", err)
		}
		defer sqlOrders.Close()
		st = sqlOrders
	}
	return engine.Reconcile(ctx, engine.ReconcileSources{Store: store, Records: rec, Orders: st}, engine.ReconcileOptions{})
}

// printCheck writes the report: a summary, the pools that are not ok and
// every discrepancy listed (or the whole report as JSON).
func printCheck(out io.Writer, rep engine.Reconciliation, asJSON bool) {
	if asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintf(out, "%s\n", b)
		return
	}
	fmt.Fprintf(out, "surge check: %d pools (%d moving), %d held and %d paid reservations, %d orders\n",
		rep.PoolsTotal, rep.PoolsMoving, rep.Held, rep.Paid, rep.Orders)
	if !rep.OrdersScanned {
		fmt.Fprintln(out, "  the order store cannot be walked: orders without a paid reservation were not looked for")
	}
	for _, p := range rep.Pools {
		if !p.OK {
			fmt.Fprintf(out, "  pool %s (%s %s): supplied %d, available %d, held %d (records %d), sold %d (records %d)\n",
				p.Pool, p.Kind, p.ID, p.Supplied, p.Available, p.Held, p.RecordsHeld, p.Sold, p.RecordsSold)
		}
	}
	for _, d := range rep.Discrepancies {
		fmt.Fprintf(out, "  %s", d.Kind)
		for _, kv := range [][2]string{{"pool", d.Pool}, {"reservation", d.ReservationID}, {"order", d.OrderID}} {
			if kv[1] != "" {
				fmt.Fprintf(out, " %s=%s", kv[0], kv[1])
			}
		}
		if d.Expected != nil || d.Found != nil {
			fmt.Fprintf(out, " expected=%v found=%v", d.Expected, d.Found)
		}
		fmt.Fprintf(out, ": %s\n", d.Msg)
	}
	if n := rep.DiscrepanciesTotal - len(rep.Discrepancies); n > 0 {
		fmt.Fprintf(out, "  ... and %d more\n", n)
	}
	if rep.OK {
		fmt.Fprintln(out, "surge check: ok")
	} else {
		fmt.Fprintf(out, "surge check: %d discrepancies\n", rep.DiscrepanciesTotal)
	}
}
