package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/surge-retail/surge/config"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/inventory/redisinv"
)

var (
	ordersConfigFile string
	ordersClaimIdle  time.Duration
)

var ordersCmd = &cobra.Command{
	Use:   "orders",
	Short: "Write the orders of the Redis outbox into the order store (the order writer as its own process)",
	Long: `Run an order writer on its own: it reads the orders that payments hand to
the Redis inventory's outbox (one stream per store, in the same atomic step
as the payment), upserts them into the order store (--orders: the records
in Redis by default, or mysql://USER:PASS@HOST:PORT/DB), and acknowledges
them. Run as many as you like, next to "surge serve --order-writer=false"
nodes or not: they share one consumer group, and the orders a dead writer
held are taken over by a live one. SIGTERM or SIGINT stops it after the
batch in hand.`,
	Args: cobra.NoArgs,
	RunE: runOrders,
}

func init() {
	f := ordersCmd.Flags()
	f.String("redis", "", "Redis address, or a comma-separated list of a cluster's nodes (default: the redis inventory's); "+
		"credentials from SURGE_REDIS_USERNAME and SURGE_REDIS_PASSWORD")
	f.String("orders", "", "where orders are kept: pebble (default: the records in Redis) or mysql://USER:PASS@HOST:PORT/DB")
	f.String("log-level", "", "debug, info (default), warn or error")
	f.StringVar(&ordersConfigFile, "config", "", "JSON config file (keys as in config.Config)")
	f.DurationVar(&ordersClaimIdle, "claim-idle", 0, "take over the orders another writer has held unacknowledged this long (default: the writer's, 10s)")
	rootCmd.AddCommand(ordersCmd)
}

func runOrders(cmd *cobra.Command, _ []string) error {
	// The outbox lives in the Redis inventory.
	cfg, err := loadConfig(cmd, ordersConfigFile, map[string]string{"backend": "redis"}, "claim-idle")
	if err != nil {
		return err
	}
	return untilSignal(func(ctx context.Context) error { return writeOrders(ctx, cfg, os.Stdout) })
}

// writeOrders runs an outbox writer until ctx is done.
func writeOrders(ctx context.Context, cfg config.Config, out io.Writer) error {
	logger := newLogger(cfg)
	o := componentOptionsOf(cfg)
	redisOpts := o.Redis.WithDefaults()
	seeds := strings.Join(redisOpts.InitAddress, ",")
	store, err := redisinv.Open(ctx, o.Redis)
	if err != nil {
		return fmt.Errorf("cannot open the redis inventory at %s: %w", seeds, err)
	}
	defer store.Close()

	var st orders.Store
	where := ""
	if strings.HasPrefix(cfg.Orders, "mysql://") {
		sqlOrders, err := orders.OpenMySQL(ctx, cfg.Orders, orders.SQLOptions{})
		if err != nil {
			return fmt.Errorf("cannot open the order store: %w", err)
		}
		defer sqlOrders.Close()
		st, where = sqlOrders, redactURL(cfg.Orders)
	} else {
		rec, err := records.OpenRedis(ctx, records.Options{RedisAddrs: redisOpts.InitAddress,
			RedisUsername: cfg.RedisUsername, RedisPassword: cfg.RedisPassword, Logger: logger})
		if err != nil {
			return fmt.Errorf("cannot open the records at %s: %w", seeds, err)
		}
		defer rec.Close()
		st, where = orders.NewRecordsStore(rec), "the records in Redis at "+seeds
	}

	w := engine.NewOutboxWriter(store, st, engine.OutboxWriterOptions{Logger: logger, ClaimIdle: ordersClaimIdle})
	fmt.Fprintf(out, "surge orders: writing the outbox of %s into %s\n", seeds, where)
	<-ctx.Done()
	w.Close()
	lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lag, err := store.OutboxLag(lctx)
	if err != nil {
		fmt.Fprintf(out, "surge orders: stopped after writing %d orders\n", w.Written())
		return nil
	}
	fmt.Fprintf(out, "surge orders: stopped after writing %d orders; %d left in the outbox\n", w.Written(), lag.Entries)
	return nil
}
