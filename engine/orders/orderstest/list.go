package orderstest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/orders"
)

// listT0 is the first order's time of the list tests; times are whole
// milliseconds, which every store keeps exactly (MySQL keeps µs).
var listT0 = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

// listData is a set of orders over two stores, three guides (and none),
// two sales (and none), every state, at times with ties.
func listData() []orders.Order {
	stores := []string{"s1", "s2"}
	guides := []string{"", "g1", "g2", "g3"}
	sales := []string{"", "sale1", "sale2"}
	states := []string{orders.StateCreated, orders.StateCreated, orders.StateRefundPending, orders.StateRefunded}
	var list []orders.Order
	for i := 0; i < 120; i++ {
		o := testOrder(fmt.Sprintf("L%03d", i), fmt.Sprintf("u%d", i%5), listT0.Add(time.Duration(i/3)*time.Millisecond*250))
		o.StoreID = stores[i%2]
		o.GuideID = guides[i%4]
		o.SaleID = sales[i%3]
		o.State = states[(i/5)%4]
		o.Items = []orders.Item{{SKUID: "k1", Title: "羊毛大衣", Quantity: int64(1 + i%3), UnitPrice: 100}}
		if i%7 == 0 {
			o.Items = append(o.Items, orders.Item{SKUID: "k2", Title: "围巾 \"红\", 大", Quantity: 2, UnitPrice: 50})
		}
		o.Amount = 0
		for _, it := range o.Items {
			o.Amount += it.Quantity * it.UnitPrice
		}
		list = append(list, o)
	}
	return list
}

// modelList is what List must return over all pages: the orders f
// selects, newest first, then order id descending.
func modelList(all []orders.Order, f orders.Filter) []string {
	var sel []orders.Order
	for _, o := range all {
		if (f.StoreID == "" || o.StoreID == f.StoreID) && (f.GuideID == "" || o.GuideID == f.GuideID) &&
			(f.SaleID == "" || o.SaleID == f.SaleID) && (f.Since.IsZero() || !o.CreatedAt.Before(f.Since)) &&
			(f.Until.IsZero() || o.CreatedAt.Before(f.Until)) {
			sel = append(sel, o)
		}
	}
	slices.SortFunc(sel, func(a, b orders.Order) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.OrderID, a.OrderID))
	})
	ids := make([]string, len(sel))
	for i, o := range sel {
		ids[i] = o.OrderID
	}
	return ids
}

// listAll reads every page of f with limit, checking each page's bounds.
func listAll(t *testing.T, s orders.Store, f orders.Filter, limit int) []orders.Order {
	t.Helper()
	var out []orders.Order
	var at orders.Position
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			t.Fatalf("List(%+v, %d): no end after %d pages", f, limit, pages)
		}
		page, next, err := s.List(context.Background(), f, at, limit)
		if err != nil {
			t.Fatalf("List(%+v, %v, %d): %v", f, at, limit, err)
		}
		if len(page) > limit {
			t.Fatalf("List(%+v, %d) = %d orders; want at most %d", f, limit, len(page), limit)
		}
		out = append(out, page...)
		if next.IsZero() {
			return out
		}
		if len(page) == 0 {
			t.Fatalf("List(%+v, %d): an empty page with a next position", f, limit)
		}
		if last := page[len(page)-1]; next.OrderID != last.OrderID || !next.CreatedAt.Equal(last.CreatedAt) {
			t.Fatalf("List: next = %+v; want the last order's position (%s)", next, last.OrderID)
		}
		at = next
	}
}

func ids(list []orders.Order) []string {
	out := make([]string, len(list))
	for i, o := range list {
		out[i] = o.OrderID
	}
	return out
}

func testList(t *testing.T, s orders.Store, reopen func() orders.Store) {
	ctx := context.Background()
	all := listData()
	if err := s.Upsert(ctx, all); err != nil {
		t.Fatal(err)
	}
	at := func(ms int) time.Time { return listT0.Add(time.Duration(ms) * time.Millisecond) }
	filters := []orders.Filter{
		{},
		{StoreID: "s1"},
		{GuideID: "g2"},
		{SaleID: "sale1"},
		{StoreID: "s2", GuideID: "g1"},
		{StoreID: "s1", GuideID: "g2", SaleID: "sale2"},
		{StoreID: "s1", SaleID: "sale1"},
		{Since: at(2500)},
		{Until: at(2500)},
		{Since: at(1000), Until: at(5000)}, // both bounds fall on orders
		{StoreID: "s2", Since: at(1250), Until: at(1251)},
		{GuideID: "g3", Since: at(9000)},
		{StoreID: "nope"},
	}
	check := func(s orders.Store) {
		t.Helper()
		for _, f := range filters {
			want := modelList(all, f)
			for _, limit := range []int{1, 4, 7, orders.ListMax} {
				got := listAll(t, s, f, limit)
				if g := fmt.Sprint(ids(got)); g != fmt.Sprint(want) {
					t.Fatalf("List(%+v) pages of %d = %v;\nwant %v", f, limit, g, want)
				}
			}
		}
		// Orders come back whole: Chinese text, items, amounts, states.
		got := listAll(t, s, orders.Filter{SaleID: "sale1"}, 5)
		for _, o := range got {
			want, _, _ := s.Get(ctx, o.OrderID)
			if fmt.Sprint(o) != fmt.Sprint(want) || o.Items[0].Title != "羊毛大衣" {
				t.Fatalf("List gave %+v; Get gives %+v", o, want)
			}
		}
	}
	check(s)

	// Written again (the order writer's retries, a refund's state): no
	// order shows twice.
	if err := s.Upsert(ctx, all[:50]); err != nil {
		t.Fatal(err)
	}
	check(s)

	// An order written again with another guide and time shows once, with
	// what was written last.
	moved := all[4]
	moved.GuideID, moved.CreatedAt = "g9", at(60_000)
	if err := s.Upsert(ctx, []orders.Order{moved}); err != nil {
		t.Fatal(err)
	}
	all[4] = moved
	check(s)
	filters = append(filters, orders.Filter{GuideID: "g9"}, orders.Filter{GuideID: "g1"})
	check(s)

	if reopen != nil {
		check(reopen())
	}
}

// testListConcurrent pages through a store while others write new orders
// (newer than every order there) and write old ones again: every order
// there before the first page shows exactly once, in order, and nothing
// shows twice.
func testListConcurrent(t *testing.T, s orders.Store) {
	ctx := context.Background()
	all := listData()
	if err := s.Upsert(ctx, all); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(done); wg.Wait() }()
	const writesMax = 2000 // each writer's bound
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < writesMax; i++ {
				select {
				case <-done:
					return
				default:
				}
				o := testOrder(fmt.Sprintf("N%d-%04d", g, i), "new", listT0.Add(time.Hour+time.Duration(i)*time.Millisecond))
				o.StoreID = "s1"
				again := all[(i*7+g)%len(all)]
				if err := s.Upsert(ctx, []orders.Order{o, again}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for _, f := range []orders.Filter{{}, {StoreID: "s1"}} {
		got := ids(listAll(t, s, f, 3))
		seen := map[string]bool{}
		var old []string
		for _, id := range got {
			if seen[id] {
				t.Errorf("List(%+v): %s shows twice", f, id)
			}
			seen[id] = true
			if strings.HasPrefix(id, "o-L") {
				old = append(old, id)
			}
		}
		if want := modelList(all, f); fmt.Sprint(old) != fmt.Sprint(want) {
			t.Errorf("List(%+v) under writes = %v;\nwant %v", f, old, want)
		}
	}
}

func testAttribution(t *testing.T, s orders.Store) {
	ctx := context.Background()
	all := listData()
	if err := s.Upsert(ctx, all); err != nil {
		t.Fatal(err)
	}
	model := func(f orders.Filter) string {
		sel := map[string]bool{}
		for _, id := range modelList(all, f) {
			sel[id] = true
		}
		sums := map[[2]string]*orders.GuideTotals{}
		for _, o := range all {
			if !sel[o.OrderID] {
				continue
			}
			k := [2]string{o.StoreID, o.GuideID}
			g := sums[k]
			if g == nil {
				g = &orders.GuideTotals{StoreID: o.StoreID, GuideID: o.GuideID}
				sums[k] = g
			}
			units := int64(0)
			for _, it := range o.Items {
				units += it.Quantity
			}
			if o.State == orders.StateCreated {
				g.Orders, g.Units, g.Amount = g.Orders+1, g.Units+units, g.Amount+o.Amount
			} else {
				g.RefundedOrders, g.RefundedUnits, g.RefundedAmount = g.RefundedOrders+1, g.RefundedUnits+units, g.RefundedAmount+o.Amount
			}
		}
		var rows []orders.GuideTotals
		for _, g := range sums {
			rows = append(rows, *g)
		}
		slices.SortFunc(rows, func(a, b orders.GuideTotals) int {
			return cmp.Or(strings.Compare(a.StoreID, b.StoreID), strings.Compare(a.GuideID, b.GuideID))
		})
		return fmt.Sprintf("%+v", rows)
	}
	f := func(f orders.Filter) {
		t.Helper()
		rows, err := s.Attribution(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fmt.Sprintf("%+v", rows), model(f); got != want {
			t.Errorf("Attribution(%+v) =\n%s;\nwant\n%s", f, got, want)
		}
	}
	f(orders.Filter{})
	f(orders.Filter{StoreID: "s1"})
	f(orders.Filter{StoreID: "s2", Since: listT0.Add(2 * time.Second), Until: listT0.Add(7 * time.Second)})
	f(orders.Filter{StoreID: "none"})

	// A refund moves an order from the net to the refunds, once.
	rows, _ := s.Attribution(ctx, orders.Filter{StoreID: "s1"})
	o := all[0] // s1, no guide, created
	o.State = orders.StateRefunded
	if err := s.Upsert(ctx, []orders.Order{o, o}); err != nil {
		t.Fatal(err)
	}
	all[0] = o
	f(orders.Filter{StoreID: "s1"})
	after, _ := s.Attribution(ctx, orders.Filter{StoreID: "s1"})
	if rows[0].GuideID != "" || after[0].Orders != rows[0].Orders-1 || after[0].RefundedOrders != rows[0].RefundedOrders+1 {
		t.Errorf("no-guide row before and after a refund: %+v, %+v", rows[0], after[0])
	}
}

func testListBadInput(t *testing.T, s orders.Store) {
	ctx := context.Background()
	if err := s.Upsert(ctx, listData()[:10]); err != nil {
		t.Fatal(err)
	}
	for _, f := range []orders.Filter{
		{StoreID: "s 1"},
		{GuideID: "g/1"},
		{SaleID: "销售"},
		{StoreID: strings.Repeat("s", orders.FilterIDLenMax+1)},
		{Since: listT0, Until: listT0},
		{Since: listT0.Add(time.Second), Until: listT0},
	} {
		if _, _, err := s.List(ctx, f, orders.Position{}, 10); !errors.Is(err, orders.ErrInvalid) {
			t.Errorf("List(%+v) = %v; want ErrInvalid", f, err)
		}
		if _, err := s.Attribution(ctx, f); !errors.Is(err, orders.ErrInvalid) {
			t.Errorf("Attribution(%+v) = %v; want ErrInvalid", f, err)
		}
	}
	// Limits out of range mean ListMax.
	for _, limit := range []int{0, -1, orders.ListMax + 1} {
		page, next, err := s.List(ctx, orders.Filter{}, orders.Position{}, limit)
		if err != nil || len(page) != 10 || !next.IsZero() {
			t.Errorf("List(limit %d) = %d orders, %+v, %v; want 10, the end", limit, len(page), next, err)
		}
	}
	mustCount(t, s, 10)
}
