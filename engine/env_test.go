package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/inventory"
)

// testClock is a fake clock shared by the engine and its inventory store.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testBackend opens an inventory store of one kind; reopen (when not nil)
// simulates a crash: it drops the store without any engine shutdown and
// opens the same data again.
type testBackend struct {
	name string
	open func(t testing.TB, clock *testClock) (st inventory.Store, dir string, reopen func() inventory.Store)
}

func testBackends() []testBackend {
	return append([]testBackend{
		{"memory", func(t testing.TB, clock *testClock) (inventory.Store, string, func() inventory.Store) {
			return inventory.NewMemory(inventory.Options{Now: clock.Now}), "", nil
		}},
	}, durableBackends()...)
}

// testEnv is one engine under test.
type testEnv struct {
	t     testing.TB
	clock *testClock
	store inventory.Store
	e     *engine.Engine
	ctx   context.Context
}

func openEnv(t testing.TB, b testBackend, mutate func(*engine.Options)) *testEnv {
	t.Helper()
	clock := newTestClock()
	st, dir, _ := b.open(t, clock)
	// The sale's admission gate is off: these tests hammer the engine's
	// laws directly (the gateway's tests hammer the gate).
	opts := engine.Options{Store: st, Now: clock.Now, SweepInterval: -1, SaleAdmitFactor: -1}
	if addr, ok := strings.CutPrefix(dir, "redis:"); ok {
		opts.RedisAddr = addr
	} else {
		opts.Dir = dir
	}
	if mutate != nil {
		mutate(&opts)
	}
	e, err := engine.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = e.Close(); _ = st.Close() })
	env := &testEnv{t: t, clock: clock, store: st, e: e, ctx: context.Background()}
	if _, err := e.LoadCatalog(env.ctx, testCatalog()); err != nil {
		t.Fatalf("LoadCatalog: %v", err)
	}
	return env
}

// testCatalog: two stores, three products; s1 lists k1 (1000), k2 (10),
// k3 (3); s2 lists k1 (50).
func testCatalog() engine.Catalog {
	return engine.Catalog{
		Stores: []engine.Store{
			{StoreID: "s1", Name: "静安店", City: "上海", Banners: []string{"b1.jpg"}},
			{StoreID: "s2", Name: "三里屯店", City: "北京"},
		},
		Guides: []engine.Guide{
			{GuideID: "g1", StoreID: "s1", Name: "小王", Picks: []string{"k1", "k2"}},
			{GuideID: "g2", StoreID: "s2", Name: "小李", Picks: []string{"k1"}},
		},
		Products: []engine.Product{
			{SKUID: "k1", Title: "羊毛大衣", Price: 59900, Images: []string{"k1.jpg"}},
			{SKUID: "k2", Title: "真丝衬衫", Price: 29900},
			{SKUID: "k3", Title: "小白鞋", Price: 39900},
		},
		Listings: []engine.Listing{
			{StoreID: "s1", SKUID: "k1", Price: 49900, OnHand: 1000},
			{StoreID: "s1", SKUID: "k2", Price: 0, OnHand: 10},
			{StoreID: "s1", SKUID: "k3", Price: 35900, OnHand: 3},
			{StoreID: "s2", SKUID: "k1", Price: 52900, OnHand: 50},
		},
	}
}

func (env *testEnv) sale(id string, qty, limit int64) engine.FlashSale {
	env.t.Helper()
	now := env.clock.Now()
	fs, err := env.e.CreateFlashSale(env.ctx, engine.FlashSaleSpec{
		SaleID: id, StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: qty, PerUserLimit: limit,
		StartsAt: now, EndsAt: now.Add(time.Hour), HoldSeconds: 60,
	})
	if err != nil {
		env.t.Fatalf("CreateFlashSale(%s): %v", id, err)
	}
	return fs
}

func (env *testEnv) pool(id string) inventory.Pool {
	env.t.Helper()
	p, err := env.store.Pool(env.ctx, id)
	if err != nil {
		env.t.Fatalf("Pool(%s): %v", id, err)
	}
	if p.Supplied != p.Available+p.Held+p.Sold {
		env.t.Fatalf("Pool(%s) = %+v: supplied != available+held+sold", id, p)
	}
	return p
}

func (env *testEnv) sweep() {
	env.t.Helper()
	if err := env.e.Sweep(env.ctx); err != nil {
		env.t.Fatalf("Sweep: %v", err)
	}
}

func attempt(user string) engine.Attempt {
	return engine.Attempt{UserID: user, IP: "127.0.0.1", DeviceID: "d-" + user}
}

func isErr(err, target error) bool { return errors.Is(err, target) }

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v; want %v", what, err, want)
	}
}
