package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// bucketBackends: memory, Pebble and a real 3-master Redis Cluster.
func bucketBackends() []testBackend {
	bs := testBackends()
	var out []testBackend
	for _, b := range bs {
		if b.name != "redis" {
			out = append(out, b)
		}
	}
	return append(out, testBackend{"redis-cluster", func(t testing.TB, clock *testClock) (inventory.Store, string, func() inventory.Store) {
		srvs := redistest.StartCluster(t, 3)
		var seeds []string
		for _, s := range srvs {
			seeds = append(seeds, s.Addr)
		}
		open := func() inventory.Store {
			st, err := redisinv.Open(context.Background(), redisinv.Options{Options: inventory.Options{Now: clock.Now}, InitAddress: seeds})
			if err != nil {
				t.Fatalf("redisinv.Open: %v", err)
			}
			return st
		}
		return open(), "redis:" + strings.Join(seeds, ","), open
	}})
}

func (env *testEnv) bucketSale(id string, qty, limit int64, buckets int) engine.FlashSale {
	env.t.Helper()
	now := env.clock.Now()
	fs, err := env.e.CreateFlashSale(env.ctx, engine.FlashSaleSpec{
		SaleID: id, StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: qty, PerUserLimit: limit,
		StartsAt: now, EndsAt: now.Add(time.Hour), HoldSeconds: 60, Buckets: buckets,
	})
	if err != nil {
		env.t.Fatalf("CreateFlashSale(%s, buckets %d): %v", id, buckets, err)
	}
	return fs
}

// ledgers reads every bucket of a sale and checks each one's identity;
// it returns the sum of available, held and sold and the units in flight.
func (env *testEnv) bucketSums(pools []string) (avail, held, sold, inFlight int64) {
	env.t.Helper()
	ls := make([]inventory.Ledger, len(pools))
	for i, p := range pools {
		l, err := env.store.Ledger(env.ctx, p)
		if err != nil {
			env.t.Fatalf("Ledger(%s): %v", p, err)
		}
		if l.Supplied != l.Available+l.Held+l.Sold || l.Short != 0 {
			env.t.Fatalf("bucket %s = %+v: supplied != available+held+sold", p, l.Pool)
		}
		ls[i] = l
		avail += l.Available
		held += l.Held
		sold += l.Sold
	}
	for i, from := range pools {
		for j, to := range pools {
			if i != j {
				inFlight += ls[i].Sent[to] - ls[j].Received[from]
			}
		}
	}
	return avail, held, sold, inFlight
}

// TestBucketsStress: many goroutines reserve (some pay, some cancel) from
// a sale of 3 buckets with a per-user limit, on memory, Pebble and a
// 3-master Redis Cluster. No unit is oversold (law 1), no user ever holds
// more than the limit across buckets (law 6), the units reachable from
// any home bucket are every unit left, and when the sale ends every
// bucket drains back to the listing: nothing stranded, nothing in flight,
// reconciliation clean.
func TestBucketsStress(t *testing.T) {
	for _, b := range bucketBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			const (
				qty     = 240
				limit   = 2
				users   = 300
				workers = 24
				buckets = 3
			)
			env.bucketSale("hot", qty, limit, buckets)
			pools, _ := engine.SaleBuckets(env.e, "hot", "u")
			if len(pools) != buckets {
				t.Fatalf("buckets = %v; want %d", pools, buckets)
			}
			if a, _, _, fl := env.bucketSums(pools); a != qty || fl != 0 {
				t.Fatalf("after create: available %d in flight %d; want %d, 0", a, fl, qty)
			}
			// Every bucket got a share at creation.
			for _, p := range pools {
				if env.pool(p).Available != qty/buckets {
					t.Fatalf("bucket %s = %+v; want %d available", p, env.pool(p), qty/buckets)
				}
			}
			var (
				mu      sync.Mutex
				live    = map[string]int64{} // user -> units held or paid
				maxLive = map[string]int64{}
				paid    int64
			)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 13))
					for i := 0; i < 40; i++ {
						user := fmt.Sprintf("u%d", rng.IntN(users))
						q := int64(1 + rng.IntN(2))
						r, err := env.e.ReserveFlash(env.ctx, attempt(user), "hot", q, "")
						switch {
						case isErr(err, engine.ErrSoldOut), isErr(err, engine.ErrLimitExceeded):
							continue
						case err != nil:
							t.Errorf("ReserveFlash(%s) = %v", user, err)
							return
						}
						mu.Lock()
						live[user] += q
						maxLive[user] = max(maxLive[user], live[user])
						mu.Unlock()
						switch rng.IntN(3) {
						case 0:
							// Counted off before the cancel, so that live
							// never overstates what the inventory holds
							// for the user (reserves count after they
							// return, cancels before they start): a live
							// count over the limit is a real breach.
							mu.Lock()
							live[user] -= q
							mu.Unlock()
							if _, err := env.e.Cancel(env.ctx, user, r.ReservationID); err != nil {
								t.Errorf("Cancel = %v", err)
								return
							}
						case 1:
							if _, err := env.e.Pay(env.ctx, user, r.ReservationID, "pay-"+r.ReservationID); err != nil {
								t.Errorf("Pay = %v", err)
								return
							}
							mu.Lock()
							paid += q
							mu.Unlock()
						}
					}
				}()
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			var heldOrPaid int64
			for u, n := range maxLive {
				// maxLive can only understate what the inventory held for
				// the user at any moment, so over the limit is a breach.
				if n > limit {
					t.Fatalf("user %s held %d units at once; limit %d", u, n, limit)
				}
				heldOrPaid += live[u]
			}
			avail, held, sold, fl := env.bucketSums(pools)
			if fl != 0 || sold != paid || held+sold != heldOrPaid || avail+held+sold != qty {
				t.Fatalf("after the crowd: available %d held %d sold %d in flight %d; want sold %d, held+sold %d, total %d",
					avail, held, sold, fl, paid, heldOrPaid, qty)
			}
			st, err := env.e.Stats(env.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s := st.Sales["hot"]; s.Supplied != qty || s.Remaining != avail || s.Held != held || s.Sold != sold {
				t.Fatalf("Stats = %+v; want supplied %d remaining %d held %d sold %d", s, qty, avail, held, sold)
			}
			// What is left is reachable from any home bucket: fresh users
			// (one unit each) take every last unit, whichever bucket it is in.
			// First a sweep, as the background sweeper does every second: the
			// sale's remaining count in memory is approximate (a sold-out
			// read racing with a cancel may leave it at 0 until then).
			env.sweep()
			for i := 0; avail > 0; i++ {
				if i > 4*qty {
					t.Fatalf("units left but not reserved: %d", avail)
				}
				_, err := env.e.ReserveFlash(env.ctx, attempt(fmt.Sprintf("late%d", i)), "hot", 1, "")
				if err != nil {
					t.Fatalf("late reserve with %d available: %v", avail, err)
				}
				avail--
			}
			if _, err := env.e.ReserveFlash(env.ctx, attempt("last"), "hot", 1, ""); !isErr(err, engine.ErrSoldOut) {
				t.Fatalf("reserve of a sold-out bucketed sale = %v; want sold out", err)
			}
			// End the sale; the holds expire; every unit not sold goes back.
			env.control(engine.SaleKindFlash, "hot", "end")
			env.clock.Advance(2 * time.Minute)
			env.sweep()
			env.sweep()
			a, h, s, fl := env.bucketSums(pools)
			if a != 0 || h != 0 || fl != 0 || s != sold {
				t.Fatalf("after the end: buckets available %d held %d sold %d in flight %d; want 0 0 %d 0", a, h, s, fl, sold)
			}
			if l := env.pool("s1:l:k1"); l.Available != 1000-sold {
				t.Fatalf("listing after the end = %+v; want %d available", l, 1000-sold)
			}
			rc, err := env.e.Reconcile(env.ctx)
			if err != nil || !rc.OK {
				t.Fatalf("Reconcile = %+v, %v", rc, err)
			}
		})
	}
}

// TestBucketsLimitAcrossBuckets: a user whose home bucket is empty still
// gets units from the others, but never more than the limit in all.
func TestBucketsLimitAcrossBuckets(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	env.bucketSale("fs", 6, 3, 3)
	pools, h := engine.SaleBuckets(env.e, "fs", "alice")
	// Empty alice's home bucket through the inventory (as other users would).
	if n, err := env.store.Drain(env.ctx, pools[h], "s1:l:k1"); h == 0 && (err != nil || n != 2) {
		t.Fatalf("Drain = %d, %v", n, err)
	} else if h != 0 {
		if _, _, err := env.store.Send(env.ctx, pools[h], pools[0], 2); err != nil {
			t.Fatal(err)
		}
		if _, err := env.store.Receive(env.ctx, pools[0], pools[h], 2); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if _, err := env.e.ReserveFlash(env.ctx, attempt("alice"), "fs", 1, ""); err != nil {
			t.Fatalf("reserve %d with an empty home bucket: %v", i, err)
		}
	}
	if _, err := env.e.ReserveFlash(env.ctx, attempt("alice"), "fs", 1, ""); !isErr(err, engine.ErrLimitExceeded) {
		t.Fatalf("4th reserve = %v; want limit exceeded", err)
	}
	if env.pool(pools[h]).Held != 3 {
		t.Fatalf("home bucket = %+v; want alice's 3 units held there", env.pool(pools[h]))
	}
}

// TestBucketsTransferCrash: a node dies between the two steps of a
// transfer (injected fault: Send done, Receive never made). The units are
// in flight: in no bucket, never sold twice, counted in the sale's totals;
// another engine's sweep completes the transfer, and the units sell.
func TestBucketsTransferCrash(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	clock := newTestClock()
	open := func() (*engine.Engine, inventory.Store) {
		st, err := redisinv.Open(ctx, redisinv.Options{Options: inventory.Options{Now: clock.Now}, Addr: srv.Addr})
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.Open(ctx, engine.Options{Store: st, RedisAddr: srv.Addr, Now: clock.Now, SweepInterval: -1, SaleAdmitFactor: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close(); _ = st.Close() })
		return e, st
	}
	a, st := open()
	if _, err := a.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	envA := &testEnv{t: t, clock: clock, store: st, e: a, ctx: ctx}
	envA.bucketSale("fs", 30, 0, 3)
	pools, _ := engine.SaleBuckets(a, "fs", "x")
	// Users of one home bucket empty it.
	user := func(home, i int) string {
		for k := 0; ; k++ {
			u := fmt.Sprintf("h%d-%d-%d", home, i, k)
			if _, h := engine.SaleBuckets(a, "fs", u); h == home {
				return u
			}
		}
	}
	for i := range 10 {
		if _, err := a.ReserveFlash(ctx, attempt(user(1, i)), "fs", 1, ""); err != nil {
			t.Fatal(err)
		}
	}
	if p := envA.pool(pools[1]); p.Available != 0 || p.Held != 10 {
		t.Fatalf("bucket 1 = %+v; want emptied by its users", p)
	}
	crash := errors.New("node died")
	engine.SetBucketFault(a, func(from, to string) error { return crash })
	_, err := a.ReserveFlash(ctx, attempt(user(1, 10)), "fs", 3, "")
	if !isErr(err, engine.ErrUnavailable) {
		t.Fatalf("reserve with a transfer cut in the middle = %v; want unavailable", err)
	}
	avail, held, _, inFlight := envA.bucketSums(pools)
	if inFlight != 3 || avail != 17 || held != 10 {
		t.Fatalf("after the cut: available %d held %d in flight %d; want 17, 10, 3", avail, held, inFlight)
	}
	if p := envA.pool(pools[1]); p.Available != 0 {
		t.Fatalf("home bucket = %+v; want nothing arrived", p)
	}
	st2, _ := a.Stats(ctx)
	if s := st2.Sales["fs"]; s.Supplied != 30 || s.Remaining != 20 {
		t.Fatalf("Stats while in flight = %+v; want supplied 30, remaining 20 (in flight counted)", s)
	}
	// Another node completes it, once, however often it sweeps.
	b, stB := open()
	envB := &testEnv{t: t, clock: clock, store: stB, e: b, ctx: ctx}
	envB.sweep()
	envB.sweep()
	avail, held, _, inFlight = envB.bucketSums(pools)
	if inFlight != 0 || avail+held != 30 || held != 10 {
		t.Fatalf("after the other node's sweep: available %d held %d in flight %d; want 20, 10, 0", avail, held, inFlight)
	}
	if _, err := b.ReserveFlash(ctx, attempt(user(1, 10)), "fs", 3, ""); err != nil {
		t.Fatalf("reserve after the transfer completed: %v", err)
	}
	// A retry of the dead node's Receive now adds nothing.
	l, err := stB.Ledger(ctx, pools[2])
	if err != nil {
		t.Fatal(err)
	}
	for to, sent := range l.Sent {
		if n, err := stB.Receive(ctx, to, pools[2], sent); err != nil || n != 0 {
			t.Fatalf("replayed Receive = %d, %v; want 0", n, err)
		}
	}
	_, held, _, _ = envB.bucketSums(pools)
	if held != 13 {
		t.Fatalf("held = %d; want 13", held)
	}
}

// TestBucketsBadInput: a bad number of buckets is refused and creates
// nothing; 1 is the default (one pool, as before).
func TestBucketsBadInput(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	now := env.clock.Now()
	for _, n := range []int{-1, 17, 1000} {
		_, err := env.e.CreateFlashSale(env.ctx, engine.FlashSaleSpec{
			SaleID: "bad", StoreID: "s1", SKUID: "k1", Price: 1, Quantity: 10,
			StartsAt: now, EndsAt: now.Add(time.Hour), Buckets: n,
		})
		wantErr(t, fmt.Sprintf("CreateFlashSale(buckets %d)", n), err, engine.ErrInvalid)
		if _, err := env.e.FlashSale(env.ctx, "bad"); !isErr(err, engine.ErrNotFound) {
			t.Fatalf("sale after a refused create: %v; want not found", err)
		}
		if l := env.pool("s1:l:k1"); l.Available != 1000 {
			t.Fatalf("listing after a refused create = %+v", l)
		}
	}
	env.bucketSale("one", 10, 0, 1)
	if pools, _ := engine.SaleBuckets(env.e, "one", "u"); pools != nil {
		t.Fatalf("buckets 1: pools %v; want the one sale pool", pools)
	}
	if env.pool("s1:fs:one").Available != 10 {
		t.Fatal("buckets 1: the sale's pool is not the usual one")
	}
	// The same sale again (1 or 0 buckets) is the same sale.
	if _, err := env.e.CreateFlashSale(env.ctx, engine.FlashSaleSpec{
		SaleID: "one", StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: 10,
		StartsAt: now, EndsAt: now.Add(time.Hour), HoldSeconds: 60,
	}); err != nil {
		t.Fatalf("re-create with buckets 0 = %v", err)
	}
}

// TestBucketsRebalance: the sweeper moves half the difference from the
// fullest bucket to the emptiest when the emptiest has less than half,
// one transfer a sweep, until they are even; nothing is lost on the way.
func TestBucketsRebalance(t *testing.T) {
	for _, b := range testBackends()[:2] { // memory, pebble
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			env.bucketSale("fs", 30, 0, 3)
			pools, _ := engine.SaleBuckets(env.e, "fs", "u")
			// Unbalance them: 9 units of bucket 2 into bucket 0.
			if _, sent, err := env.store.Send(env.ctx, pools[2], pools[0], 9); err != nil {
				t.Fatal(err)
			} else if _, err := env.store.Receive(env.ctx, pools[0], pools[2], sent); err != nil {
				t.Fatal(err)
			}
			want := func(a0, a1, a2 int64) {
				t.Helper()
				for i, w := range []int64{a0, a1, a2} {
					if p := env.pool(pools[i]); p.Available != w {
						t.Fatalf("bucket %d = %+v; want %d available", i, p, w)
					}
				}
			}
			want(19, 10, 1)
			env.sweep()
			want(10, 10, 10)
			env.sweep()
			want(10, 10, 10) // even: nothing moves
			if _, _, _, fl := env.bucketSums(pools); fl != 0 {
				t.Fatalf("in flight after rebalancing: %d", fl)
			}
		})
	}
}

// TestBucketsIdempotencyKey: a keyed reserve of a bucketed sale lives in
// the user's home bucket, so a retry gets the first answer again, also
// once the sale sold out; another body is a conflict.
func TestBucketsIdempotencyKey(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	env.bucketSale("fs", 3, 0, 3)
	a := attempt("alice")
	a.Once = engine.Once{Key: "k1", Digest: [32]byte{1}}
	first, err := env.e.ReserveFlash(env.ctx, a, "fs", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	pools, h := engine.SaleBuckets(env.e, "fs", "alice")
	if tag := inventory.Tag(pools[h]); !strings.HasPrefix(first.ReservationID, tag+":") {
		t.Fatalf("keyed reservation %s is not in the home bucket's tag %s", first.ReservationID, tag)
	}
	for i := range 2 {
		if _, err := env.e.ReserveFlash(env.ctx, attempt(fmt.Sprintf("b%d", i)), "fs", 1, ""); err != nil {
			t.Fatal(err)
		}
	}
	again, err := env.e.ReserveFlash(env.ctx, a, "fs", 1, "")
	if err != nil || again.ReservationID != first.ReservationID {
		t.Fatalf("retry after sold out = %+v, %v; want %s", again, err, first.ReservationID)
	}
	other := a
	other.Once.Digest = [32]byte{2}
	if _, err := env.e.ReserveFlash(env.ctx, other, "fs", 1, ""); !isErr(err, engine.ErrIdempotencyConflict) {
		t.Fatalf("same key, other body = %v; want conflict", err)
	}
}

// TestBucketsTransferCrashPebble: on Pebble, a transfer cut between its
// steps is on disk as sent and not received; after the process restarts
// (the store reopened from disk), the first sweep delivers it, once.
func TestBucketsTransferCrashPebble(t *testing.T) {
	clock := newTestClock()
	st, dir, reopen := durableBackends()[0].open(t, clock)
	ctx := context.Background()
	open := func(st inventory.Store) *engine.Engine {
		e, err := engine.Open(ctx, engine.Options{Store: st, Dir: dir, Now: clock.Now, SweepInterval: -1, SaleAdmitFactor: -1})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a := open(st)
	if _, err := a.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	env := &testEnv{t: t, clock: clock, store: st, e: a, ctx: ctx}
	env.bucketSale("fs", 3, 0, 3) // one unit a bucket
	pools, h := engine.SaleBuckets(a, "fs", "alice")
	if _, err := a.ReserveFlash(ctx, attempt("alice"), "fs", 1, ""); err != nil {
		t.Fatal(err)
	}
	engine.SetBucketFault(a, func(from, to string) error { return errors.New("power cut") })
	if _, err := a.ReserveFlash(ctx, attempt("alice"), "fs", 1, ""); !isErr(err, engine.ErrUnavailable) {
		t.Fatalf("reserve cut in its transfer = %v", err)
	}
	if _, _, _, fl := env.bucketSums(pools); fl != 1 {
		t.Fatalf("in flight = %d; want 1", fl)
	}
	_ = a.Close()
	_ = st.Close()
	st = reopen()
	t.Cleanup(func() { _ = st.Close() })
	b := open(st)
	t.Cleanup(func() { _ = b.Close() })
	env = &testEnv{t: t, clock: clock, store: st, e: b, ctx: ctx}
	if _, _, _, fl := env.bucketSums(pools); fl != 1 {
		t.Fatalf("in flight after the restart = %d; want 1 (durable)", fl)
	}
	env.sweep()
	env.sweep()
	avail, held, _, fl := env.bucketSums(pools)
	if fl != 0 || avail != 2 || held != 1 || env.pool(pools[h]).Available != 1 {
		t.Fatalf("after the sweep: available %d held %d in flight %d, home %+v; want 2, 1, 0 and the unit at home", avail, held, fl, env.pool(pools[h]))
	}
	if _, err := b.ReserveFlash(ctx, attempt("alice"), "fs", 1, ""); err != nil {
		t.Fatalf("reserve after the restart: %v", err)
	}
}
