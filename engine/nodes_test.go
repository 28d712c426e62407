package engine_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/inventory"
)

// twoNodes opens two engines as two gateway nodes: over one memory
// store and one set of records, or over one real redis-server (inventory
// and records) with a store client each.
func twoNodes(t *testing.T, backend string) (a, b *engine.Engine, st inventory.Store, clock *testClock) {
	t.Helper()
	clock = newTestClock()
	var opts [2]engine.Options
	switch backend {
	case "memory":
		st = inventory.NewMemory(inventory.Options{Now: clock.Now})
		rec := engine.NewMemRecords()
		opts[0] = engine.Options{Store: st, Records: rec}
		opts[1] = opts[0]
	case "redis":
		be := durableBackends()[1]
		st0, dir, reopen := be.open(t, clock)
		st1 := reopen()
		t.Cleanup(func() { _ = st0.Close(); _ = st1.Close() })
		addr := strings.TrimPrefix(dir, "redis:")
		opts[0] = engine.Options{Store: st0, RedisAddr: addr}
		opts[1] = engine.Options{Store: st1, RedisAddr: addr}
		st = st0
	}
	open := func(o engine.Options) *engine.Engine {
		o.Now, o.SweepInterval = clock.Now, -1
		e, err := engine.Open(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		return e
	}
	return open(opts[0]), open(opts[1]), st, clock
}

// TestNodesShareState: what one node creates, the other sees after its
// next sweep (or at once, for a sale looked up by id).
func TestNodesShareState(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) { testNodesShareState(t, backend) })
	}
}

func testNodesShareState(t *testing.T, backend string) {
	a, b, _, clock := twoNodes(t, backend)
	ctx := context.Background()
	if _, err := a.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if _, err := a.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: "fs1", StoreID: "s1", SKUID: "k1", Price: 1,
		Quantity: 5, StartsAt: now, EndsAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// A sale looked up by id is found at once.
	if _, err := b.ReserveFlash(ctx, attempt("u1"), "fs1", 1, ""); err != nil {
		t.Fatalf("node b ReserveFlash: %v", err)
	}
	if err := b.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// Both nodes show the sale on the page (counts may differ: a page
	// follows stock states, not every unit).
	for name, e := range map[string]*engine.Engine{"a": a, "b": b} {
		if err := e.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		p, err := e.StorePage("s1", "g1")
		if err != nil {
			t.Fatalf("node %s StorePage: %v", name, err)
		}
		if !strings.Contains(string(p.Body), `"sale_id":"fs1"`) {
			t.Fatalf("node %s page lacks the sale: %s", name, p.Body)
		}
	}
	// A catalog change on b reaches a.
	c := testCatalog()
	c.Stores[0].Name = "静安旗舰店"
	if _, err := b.LoadCatalog(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := a.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	pa2, _ := a.StorePage("s1", "")
	pg, _ := decodePage(t, pa2)
	if pg.Store.Name != "静安旗舰店" {
		t.Fatalf("node a page store name = %q", pg.Store.Name)
	}
}

// TestNodesTeamDeadlineOnce: both nodes sweep a failed team's deadline at
// once; units are released and refunded exactly once.
func TestNodesTeamDeadlineOnce(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) { testNodesTeamDeadlineOnce(t, backend) })
	}
}

func testNodesTeamDeadlineOnce(t *testing.T, backend string) {
	a, b, st, clock := twoNodes(t, backend)
	ctx := context.Background()
	if _, err := a.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if _, err := a.CreateGroupDeal(ctx, engine.GroupDealSpec{DealID: "gb1", StoreID: "s1", SKUID: "k1", Price: 100,
		TeamSize: 3, Quantity: 20, TeamWindowSeconds: 60, StartsAt: now, EndsAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var teams []engine.Team
	for i := range 4 {
		tm, err := a.OpenTeam(ctx, attempt(fmt.Sprint("l", i)), "gb1", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Pay(ctx, tm.Members[0].UserID, tm.ReservationID, "p"); err != nil {
			t.Fatal(err)
		}
		j, err := b.JoinTeam(ctx, attempt(fmt.Sprint("m", i)), "gb1", tm.TeamID)
		if err != nil {
			t.Fatal(err)
		}
		_ = j
		teams = append(teams, tm)
	}
	clock.Advance(61 * time.Second)
	var wg sync.WaitGroup
	var errs atomic.Int64
	for _, e := range []*engine.Engine{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.Sweep(ctx); err != nil {
				errs.Add(1)
				t.Errorf("Sweep: %v", err)
			}
		}()
	}
	wg.Wait()
	p, _ := st.Pool(ctx, "s1:gb:gb1")
	if p.Held != 0 || p.Sold != 0 || p.Available != 20 {
		t.Fatalf("deal pool %+v; want everything back", p)
	}
	for _, tm := range teams {
		got, err := b.Team(ctx, "gb1", tm.TeamID)
		if err != nil || got.State != "failed" {
			t.Fatalf("team = %+v, %v", got, err)
		}
		o, err := a.Order(ctx, tm.Members[0].UserID, engine.OrderID(tm.ReservationID))
		if err != nil || o.State != "refunded" {
			t.Fatalf("leader order = %+v, %v", o, err)
		}
	}
}

// TestIdempotent: the same key and body give the first answer; another
// body, a conflict (law 5), also under concurrency.
func TestIdempotent(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	rec := engine.NewMemRecords()
	t.Cleanup(func() { _ = rec.Close() })
	idem := engine.NewIdempotency(rec, engine.IdempotencyOptions{})
	d1 := sha256.Sum256([]byte(`{"quantity":1}`))
	d2 := sha256.Sum256([]byte(`{"quantity":2}`))
	var runs atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body, err := idem.Do(env.ctx, "u1", "k-1", d1, func() (int, []byte) {
				return 200, []byte(fmt.Sprintf(`{"run":%d}`, runs.Add(1)))
			})
			// A duplicate racing the first call may be refused while the
			// first runs; it never runs fn again nor gets another answer.
			if err == nil && (status != 200 || string(body) != `{"run":1}`) {
				t.Errorf("Idempotent = %d %s %v", status, body, err)
			}
		}()
	}
	wg.Wait()
	if runs.Load() != 1 {
		t.Fatalf("fn ran %d times", runs.Load())
	}
	status, body, err := idem.Do(env.ctx, "u1", "k-1", d1, func() (int, []byte) { return 500, nil })
	if err != nil || status != 200 || string(body) != `{"run":1}` {
		t.Fatalf("repeat = %d %s %v; want the first answer", status, body, err)
	}
	_, _, err = idem.Do(env.ctx, "u1", "k-1", d2, func() (int, []byte) { return 200, nil })
	wantErr(t, "other body", err, engine.ErrIdempotencyConflict)
	status, _, err = idem.Do(env.ctx, "u2", "k-1", d2, func() (int, []byte) { return 201, nil })
	if err != nil || status != 201 {
		t.Fatalf("other user: %d %v", status, err)
	}
}

// TestRiskAndReady: a denied attempt takes nothing and is counted by
// reason; Ready follows the inventory backend.
func TestRiskAndReady(t *testing.T) {
	hook, err := engine.NewRiskHook(engine.RiskConfig{Blocklist: []string{"bot"}})
	if err != nil {
		t.Fatal(err)
	}
	env := openEnv(t, testBackends()[0], func(o *engine.Options) { o.Risk = hook })
	env.sale("fs1", 5, 0)
	env.deal("gb1", 2, 5, 0)
	_, err = env.e.ReserveFlash(env.ctx, attempt("bot"), "fs1", 1, "")
	var re *engine.RiskError
	if !errors.As(err, &re) || !isErr(err, engine.ErrRiskDenied) || re.Reason != engine.RiskReasonBlocklist {
		t.Fatalf("ReserveFlash by a bot: %v", err)
	}
	_, err = env.e.OpenTeam(env.ctx, attempt("bot"), "gb1", "")
	wantErr(t, "OpenTeam by a bot", err, engine.ErrRiskDenied)
	_, err = env.e.Checkout(env.ctx, attempt("bot"), engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k1", Quantity: 1}}})
	wantErr(t, "Checkout by a bot", err, engine.ErrRiskDenied)
	st, err := env.e.Stats(env.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.RiskDenials[engine.RiskReasonBlocklist] != 3 || st.Sales["fs1"].Held != 0 || st.Deals["gb1"].Held != 0 || st.Listings["s1/k1"].Held != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if err := env.e.Ready(env.ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	_ = env.store.Close()
	wantErr(t, "Ready on a closed store", env.e.Ready(env.ctx), engine.ErrUnavailable)
}

// TestSweepDropsExpiredIdempotencyRecords: the sweeper bounds the
// idempotency records in storage, not just in the cache.
func TestSweepDropsExpiredIdempotencyRecords(t *testing.T) {
	rec := engine.NewMemRecords()
	t.Cleanup(func() { _ = rec.Close() })
	env := openEnv(t, testBackends()[0], func(o *engine.Options) {
		o.Records = rec
		o.Idempotency.TTL = time.Minute
	})
	count := func() int {
		n := 0
		if err := rec.Scan(env.ctx, "", func(string, []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	env.sweep() // the first sweep also removes (nothing yet)
	before := count()
	var d [32]byte
	d[0] = 1
	a := engine.Attempt{UserID: "u1", Once: engine.Once{Key: "key-1", Digest: d}}
	if _, err := env.e.Checkout(env.ctx, a, engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k1", Quantity: 1}}}); err != nil {
		t.Fatalf("Checkout with a key: %v", err)
	}
	if got := count(); got != before+1 {
		t.Fatalf("records after one Idempotent = %d; want %d", got, before+1)
	}
	env.clock.Advance(time.Minute) // not yet past TTL + a minute of sweeping
	env.sweep()
	if got := count(); got != before+1 {
		t.Fatalf("records after an early sweep = %d; want %d (kept)", got, before+1)
	}
	env.clock.Advance(time.Hour)
	env.sweep()
	if got := count(); got != before {
		t.Fatalf("records after TTL and a sweep = %d; want %d (expired record removed)", got, before)
	}
}

// TestClosedEngineRefusesWrites: after Close nothing changes state; the
// caller gets ErrUnavailable (503), never a yes that no writer will keep.
func TestClosedEngineRefusesWrites(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	fs := env.sale("closed-sale", 10, 0)
	before := env.pool("s1:fs:" + fs.SaleID)
	if err := env.e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := env.e.ReserveFlash(env.ctx, attempt("u1"), fs.SaleID, 1, "")
	wantErr(t, "ReserveFlash after Close", err, engine.ErrUnavailable)
	_, err = env.e.Checkout(env.ctx, attempt("u1"), engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k2", Quantity: 1}}})
	wantErr(t, "Checkout after Close", err, engine.ErrUnavailable)
	_, err = env.e.LoadCatalog(env.ctx, testCatalog())
	wantErr(t, "LoadCatalog after Close", err, engine.ErrUnavailable)
	if after := env.pool("s1:fs:" + fs.SaleID); after != before {
		t.Fatalf("pool changed after Close: %+v -> %+v", before, after)
	}
}

// TestGuideOfAnotherStoreIsRefused: a sale is credited only to a guide of
// its own store; a guide of another store is bad input and reserves
// nothing.
func TestGuideOfAnotherStoreIsRefused(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	fs := env.sale("guided", 10, 0)
	pool := "s1:fs:" + fs.SaleID
	before := env.pool(pool)
	_, err := env.e.ReserveFlash(env.ctx, attempt("u1"), fs.SaleID, 1, "g2") // g2 works in s2
	wantErr(t, "ReserveFlash with another store's guide", err, engine.ErrInvalid)
	_, err = env.e.Checkout(env.ctx, attempt("u1"), engine.CheckoutRequest{StoreID: "s1", GuideID: "g2", Items: []engine.CheckoutItem{{SKUID: "k2", Quantity: 1}}})
	wantErr(t, "Checkout with another store's guide", err, engine.ErrInvalid)
	if after := env.pool(pool); after != before {
		t.Fatalf("refused reserves changed the pool: %+v -> %+v", before, after)
	}
	r, err := env.e.ReserveFlash(env.ctx, attempt("u1"), fs.SaleID, 1, "g1")
	if err != nil || r.GuideID != "g1" {
		t.Fatalf("ReserveFlash with the store's own guide = %+v, %v", r, err)
	}
}
