package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// Stock buckets on a Redis Cluster: one hot sale, reserved by many users
// at once through the engine (the gateway adds nothing per master), with
// 1 bucket and with 3, on a 3-master cluster of redis-servers on loopback.
// The figure is each master's share of the Redis CPU Surge's commands
// cost during the run: the usec totals of INFO commandstats (every command
// but INFO, PING and CLUSTER, which are the client's and this
// measurement's), differences over the run. Surge is each master's usec,
// the floor all masters' usec, so the ratio is the share.
const (
	bucketsMasters = 3
	bucketsCallers = 256
	bucketsUsers   = 1_000_000
)

func runBuckets(ctx context.Context, dir string, opts Options, logf func(string, ...any)) (Table, error) {
	t := Table{
		Title: fmt.Sprintf("Stock buckets: one hot flash sale on a %d-master Redis Cluster (%d callers, %s each)", bucketsMasters, bucketsCallers, opts.Duration),
		Floor: "the Redis CPU of all masters (INFO commandstats usec, over the run): the ratio is the master's share",
	}
	srvs, err := redistest.LaunchCluster(filepath.Join(dir, "cluster"), bucketsMasters)
	if err != nil {
		return t, fmt.Errorf("bench: cannot start a Redis Cluster: %w", err)
	}
	defer func() {
		for _, s := range srvs {
			s.Stop()
		}
	}()
	var seeds []string
	var nodes []rueidis.Client
	defer func() {
		for _, c := range nodes {
			c.Close()
		}
	}()
	for _, s := range srvs {
		seeds = append(seeds, s.Addr)
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr}, ForceSingleClient: true, DisableCache: true})
		if err != nil {
			return t, err
		}
		nodes = append(nodes, c)
	}
	st, err := redisinv.Open(ctx, redisinv.Options{InitAddress: seeds})
	if err != nil {
		return t, err
	}
	defer st.Close()
	eng, err := engine.Open(ctx, engine.Options{Store: st, RedisAddr: strings.Join(seeds, ","), Risk: engine.AllowAll(), SaleAdmitFactor: -1})
	if err != nil {
		return t, err
	}
	defer eng.Close()
	if _, err := eng.LoadCatalog(ctx, benchCatalog()); err != nil {
		return t, fmt.Errorf("cannot load the bench catalog: %w", err)
	}
	for _, n := range []int{1, 3} {
		saleID := "hot-" + strconv.Itoa(n)
		now := time.Now()
		if _, err := eng.CreateFlashSale(ctx, engine.FlashSaleSpec{
			SaleID: saleID, StoreID: "b1", SKUID: "bk0", Price: 9900, Quantity: 100_000_000,
			StartsAt: now.Add(-time.Second), EndsAt: now.Add(time.Hour), HoldSeconds: 3600, Buckets: n,
		}); err != nil {
			return t, fmt.Errorf("cannot create the bench sale: %w", err)
		}
		before, err := commandUsec(ctx, nodes)
		if err != nil {
			return t, err
		}
		done, err := hammerSale(ctx, eng, saleID, opts.Duration)
		if err != nil {
			return t, err
		}
		after, err := commandUsec(ctx, nodes)
		if err != nil {
			return t, err
		}
		var total float64
		usec := make([]float64, len(nodes))
		for i := range nodes {
			usec[i] = float64(after[i] - before[i])
			total += usec[i]
		}
		order := []int{0, 1, 2}
		slices.SortFunc(order, func(a, b int) int {
			switch {
			case usec[a] > usec[b]:
				return -1
			case usec[a] < usec[b]:
				return 1
			}
			return 0
		})
		rank := []string{"max", "mid", "min"}
		for r, i := range order {
			row := Row{
				Key:      fmt.Sprintf("buckets/%d-share-%s", n, rank[r]),
				Scenario: fmt.Sprintf("%d bucket(s), %.0f reserves/s: master %s (%s share)", n, float64(done)/opts.Duration.Seconds(), srvs[i].Addr, rank[r]),
				Surge:    usec[i],
				Floor:    total,
				Unit:     "µs",
			}
			logf("%-60s %10.0f µs of %10.0f µs   share %.2f", row.Scenario, row.Surge, row.Floor, row.Ratio())
			t.Rows = append(t.Rows, row)
		}
	}
	return t, nil
}

// hammerSale reserves one unit of a sale as bucketsCallers callers, each
// reserve a random user, for d; it returns the reserves made.
func hammerSale(ctx context.Context, eng *engine.Engine, saleID string, d time.Duration) (int64, error) {
	var done atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for c := range bucketsCallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			for time.Now().Before(deadline) && ctx.Err() == nil {
				a := engine.Attempt{UserID: "bu" + strconv.Itoa(rng.IntN(bucketsUsers)), IP: "127.0.0.1"}
				if _, err := eng.ReserveFlash(ctx, a, saleID, 1, ""); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, fmt.Errorf("bench: reserve of the bucketed sale: %w", err)
	}
	return done.Load(), ctx.Err()
}

// commandUsec reads each node's usec total over Surge's commands.
func commandUsec(ctx context.Context, nodes []rueidis.Client) ([]int64, error) {
	out := make([]int64, len(nodes))
	for i, c := range nodes {
		info, err := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
		if err != nil {
			return nil, fmt.Errorf("%w: INFO commandstats: %w", inventory.ErrUnavailable, err)
		}
		out[i] = parseCommandUsec(info)
	}
	return out, nil
}

// parseCommandUsec sums usec= of the cmdstat_ lines of INFO commandstats,
// leaving out the commands that are not Surge's work.
func parseCommandUsec(info string) int64 {
	var sum int64
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		switch cmd := strings.TrimPrefix(name, "cmdstat_"); {
		case cmd == "info", cmd == "ping", cmd == "hello", cmd == "client", strings.HasPrefix(cmd, "cluster"), strings.HasPrefix(cmd, "client|"):
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				sum += n
			}
		}
	}
	return sum
}
