package engine_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/records"
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
		rec := records.NewMemory()
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
