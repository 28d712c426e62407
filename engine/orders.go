package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/inventory"
)

const (
	// reservationScanPage is the page size of the replay scan of paid
	// reservations.
	reservationScanPage = 512
	// userOrdersDefault is UserOrders' limit when none is given.
	userOrdersDefault = 20
	// userOrdersMax bounds UserOrders' answer.
	userOrdersMax = 100
)

// OrderID is the order id of a paid reservation. It is derived from the
// reservation id, so that writing a paid reservation's order again (after a
// crash, a retry, a replay) writes the same order (law 4).
func OrderID(reservationID string) string { return "o-" + reservationID }

func (e *Engine) orderFromView(v Reservation, paymentID string) Order {
	return Order{
		OrderID:       OrderID(v.ReservationID),
		ReservationID: v.ReservationID,
		UserID:        v.UserID,
		StoreID:       v.StoreID,
		GuideID:       v.GuideID,
		Kind:          v.Kind,
		SaleID:        v.SaleID,
		DealID:        v.DealID,
		TeamID:        v.TeamID,
		Items:         v.Items,
		Amount:        v.Amount,
		PaymentID:     paymentID,
		State:         orders.StateCreated,
		CreatedAt:     v.CreatedAt,
	}
}

// orderOf builds the order of a paid (or refunded) reservation, with its
// recorded payment id.
func (e *Engine) orderOf(ctx context.Context, r inventory.Reservation) (Order, error) {
	v, _, err := e.view(r)
	if err != nil {
		return Order{}, err
	}
	pid, _, err := e.paymentOf(ctx, r.ID)
	if err != nil {
		return Order{}, err
	}
	return e.orderFromView(v, pid), nil
}

// Order returns the caller's order.
func (e *Engine) Order(ctx context.Context, userID, orderID string) (Order, error) {
	if orderID == "" || len(orderID) > inventory.IDLenMax+8 {
		return Order{}, fmt.Errorf("%w: order %q", ErrNotFound, orderID)
	}
	o, ok, err := e.orders.Get(ctx, orderID)
	if err != nil {
		return Order{}, fmt.Errorf("%w: cannot read order: %w", ErrUnavailable, err)
	}
	if !ok {
		return Order{}, fmt.Errorf("%w: order %q", ErrNotFound, orderID)
	}
	if o.UserID != userID {
		return Order{}, fmt.Errorf("%w: order %q", ErrForbidden, orderID)
	}
	return o, nil
}

// UserOrders returns the caller's orders, newest first.
func (e *Engine) UserOrders(ctx context.Context, userID string, limit int) ([]Order, error) {
	if limit <= 0 {
		limit = userOrdersDefault
	}
	limit = min(limit, userOrdersMax)
	os, err := e.orders.ByUser(ctx, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read orders: %w", ErrUnavailable, err)
	}
	return os, nil
}

// replayOrders writes the order of every paid reservation that the order
// store lacks (law 4: the process may have died between confirm and the
// order write).
func (e *Engine) replayOrders(ctx context.Context) error {
	cursor := ""
	for {
		rs, next, err := e.store.Scan(ctx, inventory.StatePaid, cursor, reservationScanPage)
		if err != nil {
			return fmt.Errorf("cannot scan paid reservations: %w", storeErr(err))
		}
		var missing []Order
		for _, r := range rs {
			if _, ok, err := e.orders.Get(ctx, OrderID(r.ID)); err != nil {
				return fmt.Errorf("%w: cannot read order: %w", ErrUnavailable, err)
			} else if ok {
				continue
			}
			o, err := e.orderOf(ctx, r)
			if err != nil {
				e.logger(ctx).Error("engine: cannot replay an order", "reservation_id", r.ID, "err", err)
				continue
			}
			missing = append(missing, o)
		}
		if len(missing) > 0 {
			if err := e.orders.Upsert(ctx, missing); err != nil {
				return fmt.Errorf("%w: cannot write replayed orders: %w", ErrUnavailable, err)
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// FlushOrders waits until every order submitted so far is written.
//
// With an outbox it waits until no order waits in it (written by this
// engine's outbox writer, or by other processes), polling, until ctx ends.
func (e *Engine) FlushOrders(ctx context.Context) error {
	if err := e.writer.Flush(ctx); err != nil || e.outbox == nil {
		return err
	}
	for {
		lag, err := e.outbox.OutboxLag(ctx)
		if err != nil {
			return storeErr(err)
		}
		if lag.Entries == 0 {
			return nil
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %d orders still in the outbox: %w", ErrUnavailable, lag.Entries, ctx.Err())
		case <-t.C:
		}
	}
}

// orderStats is Stats' orders part: from the order writer, and with an
// outbox its lag (whichever process writes it).
func (e *Engine) orderStats(ctx context.Context) (OrderStats, error) {
	st := e.writer.Stats()
	if e.outbox == nil {
		return st, nil
	}
	// The outbox lives in the inventory's Redis: while its circuit is
	// open, do not wait for a timeout to learn that it is down.
	if err := e.invCircuit.refusing(); err != nil {
		return st, err
	}
	lag, err := e.outbox.OutboxLag(ctx)
	if err != nil {
		return st, fmt.Errorf("cannot measure the outbox: %w", storeErr(err))
	}
	st.Lag = lag.Entries
	if !lag.Oldest.IsZero() {
		st.LagOldestMs = max(e.now().Sub(lag.Oldest).Milliseconds(), 0)
	}
	if e.outboxWriter != nil {
		st.Failures += e.outboxWriter.Failures()
	}
	return st, nil
}

// OrderFilter selects orders for the admin reads (orders.Filter).
type OrderFilter = orders.Filter

// GuideTotals is one row of Attribution: the order store's sums
// (orders.GuideTotals) with the store's and the guide's names in the
// catalog now ("" when it does not have them).
type GuideTotals struct {
	orders.GuideTotals
	StoreName string `json:"store_name"`
	GuideName string `json:"guide_name"`
}

// OrdersPage is a page of ListOrders: newest first (created time, then
// order id, both descending); NextCursor continues after the last order,
// "" at the end.
type OrdersPage struct {
	Orders     []Order `json:"orders"`
	NextCursor string  `json:"next_cursor"`
}

// OrdersPageMax bounds one ListOrders page; OrdersPageDefault is its size
// when none is given.
const (
	OrdersPageMax     = orders.ListMax
	OrdersPageDefault = 100
)

// ListOrders returns a page of the orders f selects, after cursor ("" for
// the first page; a cursor is only valid with the filter it was given
// with). limit is 1..OrdersPageMax; 0 means OrdersPageDefault. A bad
// filter, cursor or limit is ErrInvalid.
func (e *Engine) ListOrders(ctx context.Context, f OrderFilter, cursor string, limit int) (OrdersPage, error) {
	if limit == 0 {
		limit = OrdersPageDefault
	}
	if limit < 0 || limit > OrdersPageMax {
		return OrdersPage{}, fmt.Errorf("%w: limit must be between 1 and %d", ErrInvalid, OrdersPageMax)
	}
	if err := f.Check(); err != nil {
		return OrdersPage{}, ordersErr(err)
	}
	at, err := orders.DecodeCursor(f, cursor)
	if err != nil {
		return OrdersPage{}, ordersErr(err)
	}
	page, next, err := e.orders.List(ctx, f, at, limit)
	if err != nil {
		return OrdersPage{}, ordersErr(err)
	}
	if page == nil {
		page = []Order{}
	}
	return OrdersPage{Orders: page, NextCursor: orders.EncodeCursor(f, next)}, nil
}

// AttributionReport is the admin's 导购业绩: a row per store and guide
// (guide_id "" for orders without a guide), sorted by store then guide,
// and the sum of the rows.
type AttributionReport struct {
	Guides []GuideTotals `json:"guides"`
	Totals orders.Totals `json:"totals"`
}

// Attribution sums the orders f selects per store and guide. A bad filter
// is ErrInvalid.
func (e *Engine) Attribution(ctx context.Context, f OrderFilter) (AttributionReport, error) {
	if err := f.Check(); err != nil {
		return AttributionReport{}, ordersErr(err)
	}
	rows, err := e.orders.Attribution(ctx, f)
	if err != nil {
		return AttributionReport{}, ordersErr(err)
	}
	r := AttributionReport{Guides: make([]GuideTotals, len(rows))}
	cat := e.catalog.Load()
	for i, g := range rows {
		r.Guides[i] = GuideTotals{GuideTotals: g}
		r.Guides[i].StoreName, _ = cat.names(g.StoreID, "")
		r.Guides[i].GuideName = cat.guideName(g.GuideID)
		r.Totals.Add(g.Totals)
	}
	return r, nil
}

// ordersErr maps an order store's error onto the engine's sentinels: bad
// input is ErrInvalid (with the store's words), anything else
// ErrUnavailable.
func ordersErr(err error) error {
	if errors.Is(err, orders.ErrInvalid) {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(strings.TrimPrefix(err.Error(), orders.ErrInvalid.Error()), ": "))
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: cannot read orders: %w", ErrUnavailable, err)
}
