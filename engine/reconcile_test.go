package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/inventory"
)

// damagedStore misreports some pools' counters: a store whose counters
// disagree with its reservation records; it can also lose pools and cut
// reservations' records.
type damagedStore struct {
	inventory.Store
	held, sold, supplied map[string]int64 // added to Held (and Supplied), to Sold (and Supplied), to Supplied
	missing              map[string]bool  // pools answered as not found
	badMeta              map[string]bool  // reservations whose record Scan cuts to its version byte
}

func (s *damagedStore) Pool(ctx context.Context, id string) (inventory.Pool, error) {
	if s.missing[id] {
		return inventory.Pool{}, inventory.ErrPoolNotFound
	}
	p, err := s.Store.Pool(ctx, id)
	if err == nil {
		p.Held += s.held[id]
		p.Sold += s.sold[id]
		p.Supplied += s.held[id] + s.sold[id] + s.supplied[id]
	}
	return p, err
}

func (s *damagedStore) Scan(ctx context.Context, state inventory.State, cursor string, limit int) ([]inventory.Reservation, string, error) {
	rs, next, err := s.Store.Scan(ctx, state, cursor, limit)
	for i := range rs {
		if s.badMeta[rs[i].ID] && len(rs[i].Meta) > 0 {
			rs[i].Meta = rs[i].Meta[:1:1]
		}
	}
	return rs, next, err
}

// TestReconcileClean: after a crowd of reservations, payments, cancels,
// expiries, a checkout and a group team, every backend reconciles.
func TestReconcileClean(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			env.sale("fs1", 50, 0)
			env.deal("gb1", 2, 4, 0)
			for i := range 40 {
				u := fmt.Sprint("u", i)
				r := env.reserve(u, "fs1")
				switch i % 4 {
				case 0, 1:
					if _, err := env.e.Pay(env.ctx, u, r.ReservationID, "p-"+u); err != nil {
						t.Fatal(err)
					}
				case 2:
					if _, err := env.e.Cancel(env.ctx, u, r.ReservationID); err != nil {
						t.Fatal(err)
					}
				}
			}
			c, err := env.e.Checkout(env.ctx, attempt("c1"), engine.CheckoutRequest{StoreID: "s1",
				Items: []engine.CheckoutItem{{SKUID: "k2", Quantity: 2}, {SKUID: "k3", Quantity: 1}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.e.Pay(env.ctx, "c1", c.ReservationID, "pc1"); err != nil {
				t.Fatal(err)
			}
			tm, err := env.e.OpenTeam(env.ctx, attempt("g1"), "gb1", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.e.Pay(env.ctx, "g1", tm.ReservationID, "pg1"); err != nil {
				t.Fatal(err)
			}
			env.clock.Advance(61 * time.Second) // the unpaid flash holds expire
			env.sweep()
			if err := env.e.FlushOrders(env.ctx); err != nil {
				t.Fatal(err)
			}
			rep, err := env.e.Reconcile(env.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK || rep.DiscrepanciesTotal != 0 || rep.Paid != 22 || rep.PoolsMoving != 0 {
				t.Fatalf("Reconcile = %+v", rep)
			}
			kinds := map[string]bool{}
			for _, p := range rep.Pools {
				kinds[p.Kind] = true
				if p.Pool == "s1:fs:fs1" && (p.Sold != 20 || p.RecordsSold != 20 || p.Held != 0) {
					t.Fatalf("sale pool check = %+v", p)
				}
			}
			if !kinds["sale"] || !kinds["deal"] || !kinds["listing"] {
				t.Fatalf("pools checked: %+v", rep.Pools)
			}
		})
	}
}

// TestReconcilePlanted plants each kind of discrepancy and sees each
// named.
func TestReconcilePlanted(t *testing.T) {
	clock := newTestClock()
	ds := &damagedStore{Store: inventory.NewMemory(inventory.Options{Now: clock.Now}),
		held: map[string]int64{}, sold: map[string]int64{}, supplied: map[string]int64{},
		missing: map[string]bool{}, badMeta: map[string]bool{}}
	rec := records.NewMemory()
	ost := orders.NewRecordsStore(rec)
	b := testBackend{"damaged", func(testing.TB, *testClock) (inventory.Store, string, func() inventory.Store) { return ds, "", nil }}
	env := openEnv(t, b, func(o *engine.Options) { o.Now, o.Records, o.Orders = clock.Now, rec, ost })
	env.clock = clock
	env.sale("fs1", 20, 0)
	paid := func(u string) engine.Reservation {
		r := env.reserve(u, "fs1")
		if _, err := env.e.Pay(env.ctx, u, r.ReservationID, "p-"+u); err != nil {
			t.Fatal(err)
		}
		return r
	}
	paid("ok1")
	noOrder := env.reserve("u1", "fs1")
	if _, err := ds.Confirm(env.ctx, noOrder.ReservationID); err != nil { // paid behind the engine's back
		t.Fatal(err)
	}
	wrongAmount, refunded, otherUser, cutRecord := paid("u2"), paid("u3"), paid("u5"), paid("u6")
	orphan := env.reserve("u4", "fs1") // held, yet an order is written for it
	if err := env.e.FlushOrders(env.ctx); err != nil {
		t.Fatal(err)
	}
	upd := func(resID string, f func(o *engine.Order)) {
		o, ok, err := ost.Get(env.ctx, engine.OrderID(resID))
		if err != nil || !ok {
			o = engine.Order{OrderID: engine.OrderID(resID), ReservationID: resID, UserID: "u4", StoreID: "s1", Kind: "flash", Amount: 9900, State: orders.StateCreated}
		}
		f(&o)
		if err := ost.Upsert(env.ctx, []engine.Order{o}); err != nil {
			t.Fatal(err)
		}
	}
	upd(wrongAmount.ReservationID, func(o *engine.Order) { o.Amount = 1 })
	upd(refunded.ReservationID, func(o *engine.Order) { o.State = orders.StateRefunded })
	upd(orphan.ReservationID, func(*engine.Order) {})
	upd(otherUser.ReservationID, func(o *engine.Order) { o.UserID = "u9" })
	ds.badMeta[cutRecord.ReservationID] = true
	ds.sold["s1:l:k1"] = 2       // a sold counter above its records (none)
	ds.missing["s2:l:k1"] = true // a listing's pool gone
	ds.held["s1:fs:fs1"] = 1     // a held counter above its records
	ds.supplied["s1:l:k2"] = 5   // supplied != available + held + sold
	ds.held["s1:l:k3"] = -1      // a held counter below its records (none)

	rep, err := env.e.Reconcile(env.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK {
		t.Fatalf("Reconcile found nothing: %+v", rep)
	}
	found := map[string][]engine.Discrepancy{}
	for _, d := range rep.Discrepancies {
		found[d.Kind] = append(found[d.Kind], d)
	}
	want := func(kind, id string) {
		t.Helper()
		for _, d := range found[kind] {
			if d.ReservationID == id || d.Pool == id {
				return
			}
		}
		t.Errorf("no %s discrepancy for %s; found %+v", kind, id, rep.Discrepancies)
	}
	want(engine.DiscOrderMissing, noOrder.ReservationID)
	want(engine.DiscOrderAmount, wrongAmount.ReservationID)
	want(engine.DiscOrderNotSold, refunded.ReservationID)
	want(engine.DiscOrderOrphan, orphan.ReservationID)
	want(engine.DiscPoolHeld, "s1:fs:fs1")
	want(engine.DiscPoolCounters, "s1:l:k2")
	want(engine.DiscPoolHeld, "s1:l:k3")
	want(engine.DiscOrderMismatch, otherUser.ReservationID)
	want(engine.DiscReservationRecord, cutRecord.ReservationID)
	want(engine.DiscPoolSold, "s1:l:k1")
	want(engine.DiscPoolMissing, "s2:l:k1")
	if rep.DiscrepanciesTotal != len(rep.Discrepancies) || rep.DiscrepanciesTotal != 12 {
		t.Errorf("%d discrepancies (%d listed); want 12 (k3: a negative held is also a counters one): %+v", rep.DiscrepanciesTotal, len(rep.Discrepancies), rep.Discrepancies)
	}
	// Every kind there is was planted and found.
	for _, kind := range []string{engine.DiscPoolCounters, engine.DiscPoolHeld, engine.DiscPoolSold, engine.DiscPoolMissing,
		engine.DiscReservationRecord, engine.DiscOrderMissing, engine.DiscOrderAmount, engine.DiscOrderMismatch,
		engine.DiscOrderNotSold, engine.DiscOrderOrphan} {
		if len(found[kind]) == 0 {
			t.Errorf("no %s discrepancy found", kind)
		}
	}
	// Bounded: the list is capped, the count is not.
	capped, err := engine.Reconcile(env.ctx, engine.ReconcileSources{Store: ds, Records: rec, Orders: ost},
		engine.ReconcileOptions{DiscrepanciesMax: 2, PageMax: 2, PoolsListedMax: 1})
	if err != nil || len(capped.Discrepancies) != 2 || capped.DiscrepanciesTotal != 12 || len(capped.Pools) != 1 || capped.PoolsTotal < 5 {
		t.Fatalf("capped Reconcile = %+v, %v", capped, err)
	}
}
