package engine

import (
	"context"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/orders"
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

func orderMustCount(t *testing.T, s orders.Store, want int64) {
	t.Helper()
	n, err := s.Count(context.Background())
	if err != nil || n != want {
		t.Fatalf("Count() = %d, %v; want %d", n, err, want)
	}
}
