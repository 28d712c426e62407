package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/inventory"
)

// TestRestartCrash: buyers reserve and pay while the process "dies" (the
// inventory store and the records are closed under a running engine, so
// orders in the writer's queue are lost). After each reopen every paid
// reservation has exactly one order (law 4), every held one expires
// (law 2) and the sale's totals hold (law 1).
func TestRestartCrash(t *testing.T) {
	type crashBackend struct {
		testBackend
		// image, when set, takes a crash image of the store now (what was
		// not synced is lost) and returns how to open it.
		image func() func() inventory.Store
	}
	var crashFS *crashingFS
	backends := []crashBackend{{testBackend: durableBackends()[0]}, {testBackend: durableBackends()[1]}}
	backends = append(backends, crashBackend{
		testBackend: testBackend{"pebble-crashfs", func(t testing.TB, clock *testClock) (inventory.Store, string, func() inventory.Store) {
			crashFS = newCrashingFS(t, clock)
			return crashFS.open(crashFS.fs), t.TempDir(), nil
		}},
		image: func() func() inventory.Store { return crashFS.image() },
	})
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			clock := newTestClock()
			st, dir, reopen := b.open(t, clock)
			openRec := func() records.Records {
				var rec records.Records
				var err error
				if addr, ok := strings.CutPrefix(dir, "redis:"); ok {
					rec, err = records.OpenRedis(context.Background(), records.Options{RedisAddrs: []string{addr}})
				} else {
					rec, err = records.OpenPebble(filepath.Join(dir, "rec"), records.Options{})
				}
				if err != nil {
					t.Fatalf("open records: %v", err)
				}
				return rec
			}
			ctx := context.Background()
			const qty = 150
			var totalPaid atomic.Int64
			for round := range 3 {
				rec := openRec()
				e, err := engine.Open(ctx, engine.Options{Store: st, Records: rec, Now: clock.Now, SweepInterval: -1,
					StopTimeout: 100 * time.Millisecond, OrderWriter: engine.OrderWriterOptions{FlushInterval: 20 * time.Millisecond},
					OutboxWriter: restartOutbox})
				if err != nil {
					t.Fatalf("round %d: Open: %v", round, err)
				}
				if round == 0 {
					if _, err := e.LoadCatalog(ctx, testCatalog()); err != nil {
						t.Fatal(err)
					}
					now := clock.Now()
					if _, err := e.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: "fs1", StoreID: "s1", SKUID: "k1",
						Price: 9900, Quantity: qty, StartsAt: now, EndsAt: now.Add(24 * time.Hour), HoldSeconds: 60}); err != nil {
						t.Fatal(err)
					}
				}
				checkRecovered(t, e, st, totalPaid.Load())

				// Buyers, and a crash in the middle of them.
				var wg sync.WaitGroup
				var ok atomic.Int64
				crash := make(chan struct{})
				var crashOnce sync.Once
				for u := range 24 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						user := fmt.Sprintf("r%d-u%d", round, u)
						for i := range 4 {
							select {
							case <-crash:
								return
							default:
							}
							r, err := e.ReserveFlash(ctx, attempt(user), "fs1", 1, "")
							if err != nil {
								continue
							}
							if (u+i)%3 == 0 {
								continue // walks away: held until expiry
							}
							if _, err := e.Pay(ctx, user, r.ReservationID, "p-"+r.ReservationID); err == nil {
								if ok.Add(1) == 12 {
									crashOnce.Do(func() { close(crash) })
								}
							}
						}
					}()
				}
				<-crash
				// Die: the records go away under the engine (no order is
				// written after this), then the store, while buyers are
				// still paying.
				_ = rec.Close()
				if b.image != nil {
					reopen = b.image()
				}
				_ = st.Close()
				wg.Wait()
				_ = e.Close()
				st = reopen()
				t.Cleanup(func() { _ = st.Close() })
				// Count what is paid now, from the durable store.
				totalPaid.Store(countPaid(t, st))
				clock.Advance(2 * time.Minute)
			}
			rec := openRec()
			defer rec.Close()
			e, err := engine.Open(ctx, engine.Options{Store: st, Records: rec, Now: clock.Now, SweepInterval: -1, OutboxWriter: restartOutbox})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			checkRecovered(t, e, st, totalPaid.Load())
		})
	}
}

func countPaid(t *testing.T, st inventory.Store) int64 {
	t.Helper()
	var n int64
	cursor := ""
	for {
		rs, next, err := st.Scan(context.Background(), inventory.StatePaid, cursor, 100)
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		n += int64(len(rs))
		if next == "" {
			return n
		}
		cursor = next
	}
}

// restartOutbox: the orders a crashed engine's outbox writer held are
// taken over by the next one at once (the crashed one is gone for good).
var restartOutbox = engine.OutboxWriterOptions{ClaimIdle: time.Millisecond, Poll: 5 * time.Millisecond}

// checkRecovered checks a freshly opened engine: every paid reservation
// has its order, exactly once (written by the replay at open, or with
// Redis by the outbox writer, within a bounded time); after a sweep past
// every hold nothing is held; the sale pool's totals add up.
func checkRecovered(t *testing.T, e *engine.Engine, st inventory.Store, paid int64) {
	t.Helper()
	ctx := context.Background()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.FlushOrders(fctx); err != nil {
		t.Fatalf("FlushOrders: %v", err)
	}
	if err := e.Sweep(ctx); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	cursor := ""
	for {
		rs, next, err := st.Scan(ctx, inventory.StatePaid, cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			o, err := e.Order(ctx, r.User, engine.OrderID(r.ID))
			if err != nil || o.ReservationID != r.ID || o.PaymentID != "p-"+r.ID || o.State != "created" {
				t.Fatalf("order of paid %s = %+v, %v", r.ID, o, err)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	stats, err := e.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Orders.Written != paid {
		t.Fatalf("orders written %d; want exactly %d paid", stats.Orders.Written, paid)
	}
	ps, ok := stats.Sales["fs1"]
	if !ok && paid > 0 {
		t.Fatal("sale fs1 lost")
	}
	if ok && (ps.Held != 0 || ps.Sold != paid || ps.Supplied != 150 || ps.Supplied != ps.Held+ps.Sold+ps.Remaining) {
		t.Fatalf("sale after recovery = %+v; want held 0, sold %d", ps, paid)
	}
}

// crashingFS keeps an inventory Pebble store on vfs.NewCrashableMem so that
// a crash image drops whatever was not synced.
type crashingFS struct {
	t     testing.TB
	clock *testClock
	fs    *vfs.MemFS
	seed  uint64
}

func newCrashingFS(t testing.TB, clock *testClock) *crashingFS {
	return &crashingFS{t: t, clock: clock, fs: vfs.NewCrashableMem(), seed: uint64(time.Now().UnixNano())}
}

func (c *crashingFS) open(fs *vfs.MemFS) inventory.Store {
	st, err := inventory.OpenPebble("inv", inventory.PebbleOptions{Options: inventory.Options{Now: c.clock.Now}, FS: fs})
	if err != nil {
		c.t.Fatalf("OpenPebble on the crash image: %v", err)
	}
	return st
}

// image takes the crash image now and returns its opener.
func (c *crashingFS) image() func() inventory.Store {
	c.seed++
	c.t.Logf("crash image seed %d", c.seed)
	img := c.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(c.seed, 7))})
	return func() inventory.Store {
		c.fs = img
		return c.open(img)
	}
}
