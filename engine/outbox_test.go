package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/internal/sqltest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// TestOutboxOrdersWithoutRestart: on Redis, node B takes payments and
// writes no orders itself (its writer is off, as with `surge serve
// --order-writer=false`); a dead writer ("ghost") has read the first
// orders and will never acknowledge them. Node A's writer takes those over
// and writes every order, also the later ones, with nothing restarted:
// one order per paid reservation, exactly (law 4), and the lag back to 0.
func TestOutboxOrdersWithoutRestart(t *testing.T) {
	clock := newTestClock()
	be := durableBackends()[1]
	st0, dir, reopen := be.open(t, clock)
	st1 := reopen()
	t.Cleanup(func() { _ = st0.Close(); _ = st1.Close() })
	addr := strings.TrimPrefix(dir, "redis:")
	ctx := context.Background()
	open := func(o engine.Options) *engine.Engine {
		o.Now, o.SweepInterval, o.RedisAddr = clock.Now, -1, addr
		e, err := engine.Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		return e
	}
	b := open(engine.Options{Store: st1, OutboxWriterOff: true})
	if _, err := b.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if _, err := b.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: "ob", StoreID: "s1", SKUID: "k1", Price: 100,
		Quantity: 100, PerUserLimit: 1, StartsAt: now, EndsAt: now.Add(time.Hour), HoldSeconds: 600}); err != nil {
		t.Fatal(err)
	}
	paid := map[string]string{} // reservation id -> user
	pay := func(from, to int) {
		for i := from; i < to; i++ {
			user := fmt.Sprintf("ob-u%d", i)
			r, err := b.ReserveFlash(ctx, engine.Attempt{UserID: user}, "ob", 1, "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Pay(ctx, user, r.ReservationID, "pay-"+user); err != nil {
				t.Fatal(err)
			}
			paid[r.ReservationID] = user
		}
	}
	pay(0, 30)
	ghost, err := st1.(inventory.Outbox).ReadOutbox(ctx, "ghost", 1000, time.Hour)
	if err != nil || len(ghost) != 30 {
		t.Fatalf("the ghost read %d entries, %v; want 30", len(ghost), err)
	}
	st, err := b.Stats(ctx)
	if err != nil || st.Orders.Lag != 30 || st.Orders.Written != 0 {
		t.Fatalf("stats before any writer = %+v, %v; want lag 30, written 0", st.Orders, err)
	}

	a := open(engine.Options{Store: st0, OutboxWriter: engine.OutboxWriterOptions{ClaimIdle: time.Millisecond, Poll: 5 * time.Millisecond}})
	pay(30, 50)
	// A bounded wait for A's writer, not a timing assertion.
	for i := 0; ; i++ {
		st, err = b.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Orders.Written == 50 && st.Orders.Lag == 0 {
			break
		}
		if i == 3000 {
			t.Fatalf("after 30s the orders are %+v; want 50 written, lag 0", st.Orders)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.FlushOrders(ctx); err != nil {
		t.Fatal(err)
	}
	for resID, user := range paid {
		o, err := b.Order(ctx, user, engine.OrderID(resID))
		if err != nil || o.ReservationID != resID || o.PaymentID != "pay-"+user || o.State != "created" {
			t.Fatalf("order of %s = %+v, %v", resID, o, err)
		}
	}
	if sale := st.Sales["ob"]; sale.Sold != 50 || sale.Supplied != sale.Held+sale.Sold+sale.Remaining {
		t.Fatalf("sale = %+v; want 50 sold", sale)
	}
}

// TestOutboxDatabaseDown: while MariaDB refuses the order table (locked by
// another session), payments still succeed, their orders wait in the
// outbox and the lag grows and is reported; once the table is free every
// order is written, once.
func TestOutboxDatabaseDown(t *testing.T) {
	clock := newTestClock()
	st, dir, _ := durableBackends()[1].open(t, clock)
	t.Cleanup(func() { _ = st.Close() })
	db := sqltest.New(t)
	ctx := context.Background()
	sqlOrders, err := orders.OpenMySQL(ctx, db.URL, orders.SQLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqlOrders.Close() })
	e, err := engine.Open(ctx, engine.Options{Store: st, RedisAddr: strings.TrimPrefix(dir, "redis:"), Orders: sqlOrders,
		Now: clock.Now, SweepInterval: -1, OutboxWriter: engine.OutboxWriterOptions{Poll: 5 * time.Millisecond, RetryBackoffMax: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if _, err := e.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if _, err := e.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: "dd", StoreID: "s1", SKUID: "k1", Price: 100,
		Quantity: 100, PerUserLimit: 1, StartsAt: now, EndsAt: now.Add(time.Hour), HoldSeconds: 600}); err != nil {
		t.Fatal(err)
	}
	// Another session holds the order table: every write waits behind it.
	lock, err := db.Admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "LOCK TABLES surge_orders WRITE"); err != nil {
		t.Fatal(err)
	}
	const n = 30
	for i := range n {
		user := fmt.Sprintf("dd-u%d", i)
		r, err := e.ReserveFlash(ctx, engine.Attempt{UserID: user}, "dd", 1, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Pay(ctx, user, r.ReservationID, "pay-"+user); err != nil {
			t.Fatalf("Pay while the database is locked: %v; want it to succeed", err)
		}
	}
	s, err := e.Stats(ctx)
	if err != nil || s.Orders.Lag != n || s.Sales["dd"].Sold != n {
		t.Fatalf("stats while locked = %+v, %v; want lag %d", s.Orders, err, n)
	}
	var rows int
	if err := lock.QueryRowContext(ctx, "SELECT COUNT(*) FROM surge_orders").Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("rows while locked = %d, %v; want 0", rows, err)
	}
	if _, err := lock.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.FlushOrders(fctx); err != nil {
		t.Fatalf("FlushOrders after the unlock: %v", err)
	}
	if err := db.Admin.QueryRow("SELECT COUNT(DISTINCT order_id) FROM surge_orders").Scan(&rows); err != nil || rows != n {
		t.Fatalf("rows after the unlock = %d, %v; want %d", rows, err, n)
	}
	if s, err := e.Stats(ctx); err != nil || s.Orders.Lag != 0 || s.Orders.Written != n {
		t.Fatalf("stats after the unlock = %+v, %v; want written %d, lag 0", s.Orders, err, n)
	}
}

// TestRecordsDownIsNotNotFound: with Redis gone, a sale or deal that this
// node does not hold in memory is "unavailable" (503), never "not found";
// a sale it holds is still served from memory (API.md).
func TestRecordsDownIsNotNotFound(t *testing.T) {
	srv, _, e := redisEngineWithSale(t, "known")
	ctx := context.Background()
	_, err := e.FlashSale(ctx, "unknown")
	wantErr(t, "unknown sale, Redis up", err, engine.ErrNotFound)

	srv.Stop()
	_, err = e.FlashSale(ctx, "unknown")
	wantErr(t, "unknown sale, Redis down", err, engine.ErrUnavailable)
	_, err = e.ReserveFlash(ctx, engine.Attempt{UserID: "u1"}, "unknown", 1, "")
	wantErr(t, "reserve of an unknown sale, Redis down", err, engine.ErrUnavailable)
	_, err = e.GroupDeal(ctx, "unknown")
	wantErr(t, "unknown deal, Redis down", err, engine.ErrUnavailable)
	if s, err := e.FlashSale(ctx, "known"); err != nil || s.SaleID != "known" {
		t.Fatalf("a sale held in memory, Redis down: %+v, %v; want it served", s, err)
	}
}

// TestRedisDataLossIsReported: when Redis loses its data under a running
// node (restarted without persistence; FLUSHALL here), /readyz's Ready
// says so, reservations stop, and the stats name what is gone (never "not
// found").
func TestRedisDataLossIsReported(t *testing.T) {
	_, st, e := redisEngineWithSale(t, "lost")
	ctx := context.Background()
	if err := e.Ready(ctx); err != nil {
		t.Fatalf("Ready before the loss: %v", err)
	}
	c := st.Client()
	if err := c.Do(ctx, c.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	err := e.Ready(ctx)
	wantErr(t, "Ready after the loss", err, engine.ErrUnavailable)
	if !strings.Contains(err.Error(), "lost their data") {
		t.Fatalf("Ready after the loss = %v; want it to say the data was lost", err)
	}
	// The stats answer what they can, name the pools that are gone, and
	// say when the loss was seen.
	stats, err := e.Stats(ctx)
	if err != nil || stats.DataLost == nil || len(stats.Missing) == 0 {
		t.Fatalf("Stats after the loss = data_lost %+v, missing %+v, %v; want the loss and the missing pools", stats.DataLost, stats.Missing, err)
	}
	for _, m := range stats.Missing {
		if m.Why == "" || m.Kind == "" {
			t.Fatalf("Stats after the loss: missing %+v without a kind or a why", m)
		}
	}
	_, err = e.ReserveFlash(ctx, engine.Attempt{UserID: "u1"}, "lost", 1, "")
	wantErr(t, "reserve after the loss", err, engine.ErrDataLost)
}

// redisEngineWithSale opens an engine on its own redis-server (inventory
// and records; its outbox writer off) with the test catalog and a running
// sale of 5 units.
func redisEngineWithSale(t *testing.T, saleID string) (*redistest.Server, *redisinv.Store, *engine.Engine) {
	t.Helper()
	clock := newTestClock()
	srv := redistest.Start(t)
	st, err := redisinv.Open(context.Background(), redisinv.Options{Options: inventory.Options{Now: clock.Now}, Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	e, err := engine.Open(ctx, engine.Options{Store: st, RedisAddr: srv.Addr, Now: clock.Now, SweepInterval: -1, OutboxWriterOff: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if _, err := e.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if _, err := e.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: saleID, StoreID: "s1", SKUID: "k1", Price: 100,
		Quantity: 5, StartsAt: now, EndsAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return srv, st, e
}
