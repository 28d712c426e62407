package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/records"
)

func testOrder(resID, user string, at time.Time) Order {
	return Order{
		OrderID:       OrderID(resID),
		ReservationID: resID,
		UserID:        user,
		StoreID:       "s1",
		GuideID:       "g1",
		Kind:          "flash",
		SaleID:        "sale1",
		Items:         []Item{{SKUID: "k1", Quantity: 1, UnitPrice: 100}},
		Amount:        100,
		PaymentID:     "pay-" + resID,
		State:         "created",
		CreatedAt:     at.UTC(),
	}
}

func TestOrderID(t *testing.T) {
	if a, b := OrderID("r1"), OrderID("r1"); a != b || a == "" {
		t.Fatalf("OrderID(r1) = %q then %q; want one stable id", a, b)
	}
	if OrderID("r1") == OrderID("r2") {
		t.Fatal("OrderID(r1) == OrderID(r2)")
	}
}

func orderMustCount(t *testing.T, s OrderStore, want int64) {
	t.Helper()
	n, err := s.Count(context.Background())
	if err != nil || n != want {
		t.Fatalf("Count() = %d, %v; want %d", n, err, want)
	}
}

// foreignRecords hides this package's counted batch, so that the order store
// takes its generic path.
type foreignRecords struct{ records.Records }

func TestOrderStore(t *testing.T) {
	run := func(t *testing.T, rec records.Records, reopen func() records.Records) {
		ctx := context.Background()
		s := NewRecordsOrderStore(rec)
		t0 := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
		orders := []Order{
			testOrder("r1", "alice", t0),
			testOrder("r2", "alice", t0.Add(time.Second)),
			testOrder("r3", "alice/b", t0.Add(2*time.Second)), // not alice's
			testOrder("r4", "bob", t0),
		}
		if err := s.Upsert(ctx, orders); err != nil {
			t.Fatal(err)
		}
		orderMustCount(t, s, 4)
		got, ok, err := s.Get(ctx, OrderID("r2"))
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
		if err := s.Upsert(ctx, []Order{refunded, refunded, testOrder("r5", "bob", t0), testOrder("r5", "bob", t0)}); err != nil {
			t.Fatal(err)
		}
		orderMustCount(t, s, 5)
		if got, _, _ := s.Get(ctx, OrderID("r1")); got.State != "refunded" {
			t.Fatalf("after re-upsert state = %q; want refunded", got.State)
		}
		if list, _ := s.ByUser(ctx, "alice", 10); len(list) != 2 || list[1].State != "refunded" {
			t.Fatalf("ByUser after re-upsert = %+v", list)
		}

		// Bad input: refused, nothing written.
		for _, bad := range []Order{{OrderID: "", UserID: "u"}, {OrderID: "o-x", UserID: ""}} {
			err := s.Upsert(ctx, []Order{testOrder("r6", "carol", t0), bad})
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Upsert(%+v) = %v; want ErrInvalid", bad, err)
			}
		}
		orderMustCount(t, s, 5)
		if _, ok, _ := s.Get(ctx, OrderID("r6")); ok {
			t.Fatal("a refused Upsert wrote an order")
		}

		if reopen != nil {
			s = NewRecordsOrderStore(reopen())
			orderMustCount(t, s, 5)
			f("alice", 10, "[o-r2 o-r1]")
		}
	}
	forEachRecords(t, run)
	t.Run("generic", func(t *testing.T) {
		run(t, foreignRecords{records.NewMemory()}, nil)
	})
}

// TestOrderStoreConcurrentCount hammers overlapping upserts and checks the
// count is exactly the number of distinct ids.
func TestOrderStoreConcurrentCount(t *testing.T) {
	run := func(t *testing.T, rec records.Records) {
		ctx := context.Background()
		s := NewRecordsOrderStore(rec)
		const goroutines, ids, batch = 8, 400, 16
		t0 := time.Now()
		var wg sync.WaitGroup
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for start := 0; start < ids; start += batch {
					var orders []Order
					for i := 0; i < batch; i++ {
						id := (start + i + g*batch) % ids
						orders = append(orders, testOrder(fmt.Sprintf("r%d", id), fmt.Sprintf("u%d", id%7), t0))
					}
					if err := s.Upsert(ctx, orders); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		orderMustCount(t, s, ids)
		n := 0
		for u := 0; u < 7; u++ {
			list, err := s.ByUser(ctx, fmt.Sprintf("u%d", u), ordersByUserMax)
			if err != nil {
				t.Fatal(err)
			}
			n += len(list)
		}
		if n != ids {
			t.Fatalf("orders over all users = %d; want %d", n, ids)
		}
	}
	forEachRecords(t, func(t *testing.T, rec records.Records, _ func() records.Records) { run(t, rec) })
	t.Run("generic", func(t *testing.T) { run(t, foreignRecords{records.NewMemory()}) })
}
