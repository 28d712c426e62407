package redisinv_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// floorScript is the cheapest script Redis can run: the floor for any one
// script call through rueidis.
var floorScript = rueidis.NewLuaScript("return 1")

// writeFloorScript is the cheapest script that writes: with appendfsync
// always its reply waits for the append-only file's fsync, as a reserve's
// does, so reserve/write-floor isolates the cost of Surge's own logic.
var writeFloorScript = rueidis.NewLuaScript("return redis.call('INCR', KEYS[1])")

// benchSink keeps results alive so the compiler cannot drop the work.
var benchSink atomic.Int64

// runConcurrent runs op n times from conc goroutines and returns the
// elapsed time. Ops are handed out by an atomic counter, so the total is
// exactly n whatever the scheduling.
func runConcurrent(b *testing.B, n, conc int, op func(i int) error) time.Duration {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkReserve measures Surge's Redis reserve (one Lua script: check,
// decrement, per-user count, record, expiry index) on a big pool at 1, 16
// and 256 concurrent callers, next to a floor measured in the same run on
// the same server and client at the same concurrency: EVALSHA of
// "return 1". ns/op is the reserve; floor-ns/op the floor; x-floor their
// ratio. wfloor-ns/op and x-wfloor do the same for a script that writes
// one key (INCR), which pays the same fsync as a reserve (appendfsync
// always).
func BenchmarkReserve(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	var runs atomic.Int64
	for _, conc := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("callers=%d", conc), func(b *testing.B) {
			b.ReportAllocs()
			prefix := fmt.Sprintf("bench%d", runs.Add(1))
			s, err := redisinv.Open(ctx, redisinv.Options{Addr: srv.Addr, Prefix: prefix})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.CreatePool(ctx, "shop:sku", inventory.UnitsMax); err != nil {
				b.Fatal(err)
			}
			client := s.Client()
			// Warm both paths (script load, connection) outside the timing.
			if err := floorScript.Exec(ctx, client, []string{"{shop}"}, nil).Error(); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Reserve(ctx, inventory.ReserveRequest{ID: "shop:warm", User: "u", TTL: time.Hour,
				Lines: []inventory.Line{{Pool: "shop:sku", Quantity: 1}}}); err != nil {
				b.Fatal(err)
			}

			b.StopTimer()
			floor := runConcurrent(b, b.N, conc, func(i int) error {
				n, err := floorScript.Exec(ctx, client, []string{"{shop}"}, nil).AsInt64()
				benchSink.Add(n)
				return err
			})
			wfloor := runConcurrent(b, b.N, conc, func(i int) error {
				n, err := writeFloorScript.Exec(ctx, client, []string{prefix + ":{shop}:floor"}, nil).AsInt64()
				benchSink.Add(n)
				return err
			})
			b.StartTimer()
			surge := runConcurrent(b, b.N, conc, func(i int) error {
				r, err := s.Reserve(ctx, inventory.ReserveRequest{
					ID:    "shop:" + strconv.Itoa(i),
					User:  "u" + strconv.Itoa(i%1000),
					TTL:   time.Hour,
					Lines: []inventory.Line{{Pool: "shop:sku", Quantity: 1, Limit: 1 << 30}},
				})
				benchSink.Add(int64(len(r.Lines)))
				return err
			})
			b.StopTimer()
			p, err := s.Pool(ctx, "shop:sku")
			if err != nil || p.Held != int64(b.N)+1 {
				b.Fatalf("Pool = %+v, %v; want held %d", p, err, b.N+1)
			}
			floorNs := float64(floor.Nanoseconds()) / float64(b.N)
			surgeNs := float64(surge.Nanoseconds()) / float64(b.N)
			b.ReportMetric(floorNs, "floor-ns/op")
			b.ReportMetric(surgeNs/floorNs, "x-floor")
			wfloorNs := float64(wfloor.Nanoseconds()) / float64(b.N)
			b.ReportMetric(wfloorNs, "wfloor-ns/op")
			b.ReportMetric(surgeNs/wfloorNs, "x-wfloor")
			b.ReportMetric(float64(b.N)/surge.Seconds(), "reserves/s")
		})
	}
}
