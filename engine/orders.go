package engine

import "context"

// OrderID is the order id of a paid reservation; it is derived from the
// reservation id so that replays write the same order (law 4).
func OrderID(reservationID string) string { return "o-" + reservationID }

// OrderStore keeps orders.
type OrderStore interface {
	// Upsert writes orders durably; writing an order id again replaces it
	// and does not count it twice.
	Upsert(ctx context.Context, orders []Order) error
	// Get returns one order.
	Get(ctx context.Context, orderID string) (Order, bool, error)
	// ByUser returns a user's orders, newest first, at most limit.
	ByUser(ctx context.Context, userID string, limit int) ([]Order, error)
	// Count returns the number of distinct orders ever written.
	Count(ctx context.Context) (int64, error)
}

// NewRecordsOrderStore returns an OrderStore kept in rec.
func NewRecordsOrderStore(rec Records) OrderStore { return nil }
