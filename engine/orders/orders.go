package orders

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Item is a line of a reservation or order with its unit price (fen).
type Item struct {
	SKUID     string `json:"sku_id"`
	Title     string `json:"title,omitempty"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unit_price"`
}

// Order states, in the only order an order moves through them: paid and
// kept (created); its payment being refunded (a payment that came after its
// hold was released, or a member of a failed team); refunded.
const (
	StateCreated       = "created"
	StateRefundPending = "refund_pending"
	StateRefunded      = "refunded"
)

// StateRank orders the states: an order's state only moves to a higher
// rank (Upsert keeps the higher of the stored and the written). An
// unknown state ranks 0, as created.
func StateRank(state string) int {
	switch state {
	case StateRefundPending:
		return 1
	case StateRefunded:
		return 2
	}
	return 0
}

// Order is a written order; State is one of the states above.
type Order struct {
	OrderID       string    `json:"order_id"`
	ReservationID string    `json:"reservation_id"`
	UserID        string    `json:"user_id"`
	StoreID       string    `json:"store_id"`
	GuideID       string    `json:"guide_id,omitempty"`
	Kind          string    `json:"kind"`
	SaleID        string    `json:"sale_id,omitempty"`
	DealID        string    `json:"deal_id,omitempty"`
	TeamID        string    `json:"team_id,omitempty"`
	Items         []Item    `json:"items"`
	Amount        int64     `json:"amount"`
	PaymentID     string    `json:"payment_id"`
	State         string    `json:"state"`
	CreatedAt     time.Time `json:"created_at"`
}

// Store keeps orders. Every implementation passes orderstest.
type Store interface {
	// Upsert writes orders durably. Writing an order id again replaces the
	// order and does not count it again, except that its state never moves
	// back (StateRank): a refunded order written again as created stays
	// refunded.
	Upsert(ctx context.Context, orders []Order) error
	// Get returns one order; ok is false when there is none.
	Get(ctx context.Context, orderID string) (Order, bool, error)
	// ByUser returns a user's orders, newest first (CreatedAt, then
	// OrderID), at most limit (1..ByUserMax; other values mean
	// ByUserMax).
	ByUser(ctx context.Context, userID string, limit int) ([]Order, error)
	// Count returns the number of distinct orders ever written, all time.
	Count(ctx context.Context) (int64, error)
	// List returns the orders f selects (f.Check first: ErrInvalid) that
	// come after the Position after, in List's order (newest first:
	// CreatedAt, then OrderID, both descending), at most limit
	// (1..ListMax; other values mean ListMax). next is the Position of the
	// last order returned when more follow, zero at the end. Pages read
	// with the next of the one before concatenate to the selected orders,
	// each once, also while orders are written (an order written after a
	// page may or may not show on a later page, once at most).
	List(ctx context.Context, f Filter, after Position, limit int) (page []Order, next Position, err error)
	// Attribution sums the orders f selects per store and guide (a row
	// with GuideID "" for orders without a guide), sorted by store id then
	// guide id; only groups with orders have a row.
	Attribution(ctx context.Context, f Filter) ([]GuideTotals, error)
}

// ByUserMax bounds one ByUser answer.
const ByUserMax = 100

// IDLenMax bounds an order id and a user id (bytes).
const IDLenMax = 256

// ErrInvalid is returned for an order that cannot be stored (a missing or
// oversized id); nothing of the call is written.
var ErrInvalid = errors.New("orders: invalid order")

// Check validates an order before it is stored.
func Check(o *Order) error {
	if o.OrderID == "" || len(o.OrderID) > IDLenMax {
		return fmt.Errorf("%w: order id %q", ErrInvalid, o.OrderID)
	}
	if o.UserID == "" || len(o.UserID) > IDLenMax {
		return fmt.Errorf("%w: order %q: user id %q", ErrInvalid, o.OrderID, o.UserID)
	}
	return nil
}
