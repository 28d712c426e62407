package orders_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/internal/sqltest"
)

// TestScanOrders: both stores walk every order once, in order id order,
// across MySQL's pages (more orders than one page).
func TestScanOrders(t *testing.T) {
	for _, b := range []struct {
		name string
		open func(t *testing.T) orders.Store
	}{
		{"records", func(*testing.T) orders.Store { return orders.NewRecordsStore(records.NewMemory()) }},
		{"mysql", func(t *testing.T) orders.Store { return openMySQL(t, sqltest.New(t).URL) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st := b.open(t)
			const n = 2500
			list := make([]orders.Order, 0, n)
			for i := range n {
				list = append(list, orders.Order{OrderID: fmt.Sprintf("o-%05d", i), ReservationID: fmt.Sprintf("r-%05d", i),
					UserID: "u", StoreID: "s1", Kind: "flash", Amount: int64(i), State: orders.StateCreated, CreatedAt: time.Unix(int64(i), 0).UTC()})
			}
			if err := st.Upsert(ctx, list); err != nil {
				t.Fatal(err)
			}
			var got []string
			err := st.(orders.Scanner).ScanOrders(ctx, func(o orders.Order) error {
				got = append(got, o.OrderID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n {
				t.Fatalf("ScanOrders walked %d orders; want %d", len(got), n)
			}
			for i, id := range got {
				if id != list[i].OrderID {
					t.Fatalf("order %d = %s; want %s", i, id, list[i].OrderID)
				}
			}
		})
	}
}
