// Package orderstest is the conformance suite every orders.Store passes:
// upserts that replace and never count twice, reads by id and by user in
// order, refusals of bad orders that write nothing, durability across a
// reopen, an exact count under concurrent overlapping upserts, and the
// admin reads (list.go): filtered pages that concatenate to the filtered
// set, also under concurrent upserts, and attribution sums.
package orderstest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/orders"
)

// Backend opens a fresh, empty Store; reopen (nil when the backend keeps
// nothing) closes it and opens the same data again.
type Backend struct {
	Name string
	Open func(t *testing.T) (s orders.Store, reopen func() orders.Store)
}

// Run runs the suite on every backend, each test on a fresh store.
func Run(t *testing.T, backends []Backend) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Run("basic", func(t *testing.T) {
				s, reopen := b.Open(t)
				testBasic(t, s, reopen)
			})
			t.Run("concurrent-count", func(t *testing.T) {
				s, _ := b.Open(t)
				testConcurrentCount(t, s)
			})
			t.Run("states-forward", func(t *testing.T) {
				s, _ := b.Open(t)
				testStatesForward(t, s)
			})
			t.Run("list", func(t *testing.T) {
				s, reopen := b.Open(t)
				testList(t, s, reopen)
			})
			t.Run("list-concurrent", func(t *testing.T) {
				s, _ := b.Open(t)
				testListConcurrent(t, s)
			})
			t.Run("attribution", func(t *testing.T) {
				s, _ := b.Open(t)
				testAttribution(t, s)
			})
			t.Run("list-bad-input", func(t *testing.T) {
				s, _ := b.Open(t)
				testListBadInput(t, s)
			})
		})
	}
}

// orderID is the engine's order id of a reservation (engine.OrderID).
func orderID(resID string) string { return "o-" + resID }

func testOrder(resID, user string, at time.Time) orders.Order {
	return orders.Order{
		OrderID:       orderID(resID),
		ReservationID: resID,
		UserID:        user,
		StoreID:       "s1",
		GuideID:       "g1",
		Kind:          "flash",
		SaleID:        "sale1",
		Items:         []orders.Item{{SKUID: "k1", Title: "羊毛大衣", Quantity: 1, UnitPrice: 100}},
		Amount:        100,
		PaymentID:     "pay-" + resID,
		State:         "created",
		CreatedAt:     at.UTC(),
	}
}

func mustCount(t *testing.T, s orders.Store, want int64) {
	t.Helper()
	n, err := s.Count(context.Background())
	if err != nil || n != want {
		t.Fatalf("Count() = %d, %v; want %d", n, err, want)
	}
}

func testBasic(t *testing.T, s orders.Store, reopen func() orders.Store) {
	{
		ctx := context.Background()
		t0 := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
		list := []orders.Order{
			testOrder("r1", "alice", t0),
			testOrder("r2", "alice", t0.Add(time.Second)),
			testOrder("r3", "alice/b", t0.Add(2*time.Second)), // not alice's
			testOrder("r4", "bob", t0),
		}
		if err := s.Upsert(ctx, list); err != nil {
			t.Fatal(err)
		}
		mustCount(t, s, 4)
		got, ok, err := s.Get(ctx, orderID("r2"))
		if err != nil || !ok || got.UserID != "alice" || !got.CreatedAt.Equal(t0.Add(time.Second)) || len(got.Items) != 1 {
			t.Fatalf("Get(o-r2) = %+v, %v, %v", got, ok, err)
		}
		if _, ok, err := s.Get(ctx, "o-none"); ok || err != nil {
			t.Fatalf("Get(unknown) = %v, %v; want false, nil", ok, err)
		}

		f := func(user string, limit int, want string) {
			t.Helper()
			list, err := s.ByUser(ctx, user, limit)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]string, len(list))
			for i, o := range list {
				ids[i] = o.OrderID
			}
			if fmt.Sprint(ids) != want {
				t.Errorf("ByUser(%q, %d) = %v; want %s", user, limit, ids, want)
			}
		}
		f("alice", 10, "[o-r2 o-r1]")
		f("alice", 1, "[o-r2]")
		f("alice/b", 0, "[o-r3]")
		f("nobody", 10, "[]")

		// Re-upserts replace, and do not count again; duplicates within
		// one call count once.
		refunded := testOrder("r1", "alice", t0)
		refunded.State = "refunded"
		if err := s.Upsert(ctx, []orders.Order{refunded, refunded, testOrder("r5", "bob", t0), testOrder("r5", "bob", t0)}); err != nil {
			t.Fatal(err)
		}
		mustCount(t, s, 5)
		if got, _, _ := s.Get(ctx, orderID("r1")); got.State != "refunded" {
			t.Fatalf("after re-upsert state = %q; want refunded", got.State)
		}
		if list, _ := s.ByUser(ctx, "alice", 10); len(list) != 2 || list[1].State != "refunded" {
			t.Fatalf("ByUser after re-upsert = %+v", list)
		}

		// Bad input: refused, nothing written.
		for _, bad := range []orders.Order{{OrderID: "", UserID: "u"}, {OrderID: "o-x", UserID: ""}} {
			err := s.Upsert(ctx, []orders.Order{testOrder("r6", "carol", t0), bad})
			if !errors.Is(err, orders.ErrInvalid) {
				t.Fatalf("Upsert(%+v) = %v; want orders.ErrInvalid", bad, err)
			}
		}
		mustCount(t, s, 5)
		if _, ok, _ := s.Get(ctx, orderID("r6")); ok {
			t.Fatal("a refused Upsert wrote an order")
		}

		if reopen != nil {
			s = reopen()
			mustCount(t, s, 5)
			f("alice", 10, "[o-r2 o-r1]")
		}
	}
}

// TestOrderStoreConcurrentCount hammers overlapping upserts and checks the
// count is exactly the number of distinct ids.
func testConcurrentCount(t *testing.T, s orders.Store) {
	{
		ctx := context.Background()
		const goroutines, ids, batch = 8, 400, 16
		t0 := time.Now()
		var wg sync.WaitGroup
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for start := 0; start < ids; start += batch {
					var list []orders.Order
					for i := 0; i < batch; i++ {
						id := (start + i + g*batch) % ids
						list = append(list, testOrder(fmt.Sprintf("r%d", id), fmt.Sprintf("u%d", id%7), t0))
					}
					if err := s.Upsert(ctx, list); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		mustCount(t, s, ids)
		n := 0
		for u := 0; u < 7; u++ {
			list, err := s.ByUser(ctx, fmt.Sprintf("u%d", u), orders.ByUserMax)
			if err != nil {
				t.Fatal(err)
			}
			n += len(list)
		}
		if n != ids {
			t.Fatalf("orders over all users = %d; want %d", n, ids)
		}
	}
}

// testStatesForward: an order's state only moves forward (created,
// refund_pending, refunded); writing an earlier state again changes
// nothing of it, and does not count the order twice.
func testStatesForward(t *testing.T, s orders.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	write := func(state string) {
		t.Helper()
		o := testOrder("late", "alice", t0)
		o.State = state
		if err := s.Upsert(ctx, []orders.Order{o}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(state string) {
		t.Helper()
		o, ok, err := s.Get(ctx, orderID("late"))
		if err != nil || !ok || o.State != state {
			t.Fatalf("Get = %+v, %v, %v; want state %s", o, ok, err, state)
		}
	}
	write(orders.StateCreated)
	want(orders.StateCreated)
	write(orders.StateRefundPending)
	want(orders.StateRefundPending)
	write(orders.StateCreated) // a late replay of the first write
	want(orders.StateRefundPending)
	write(orders.StateRefunded)
	want(orders.StateRefunded)
	write(orders.StateRefundPending)
	write(orders.StateCreated)
	want(orders.StateRefunded)
	mustCount(t, s, 1)
}
