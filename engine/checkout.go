package engine

import (
	"context"
	"fmt"

	"github.com/surge-retail/surge/inventory"
)

// Checkout reserves every item of one store's cart at the store's prices,
// all or nothing, in one inventory reservation. With a key (a.Once) it
// runs at most once and its answer is replayed (law 5).
func (e *Engine) Checkout(ctx context.Context, a Attempt, req CheckoutRequest) (Reservation, error) {
	return once(ctx, e, a.UserID, a.Once, func() (Reservation, error) { return e.checkout(ctx, a, req) })
}

func (e *Engine) checkout(ctx context.Context, a Attempt, req CheckoutRequest) (Reservation, error) {
	if e.closed.Load() {
		return Reservation{}, errEngineClosed
	}
	cat := e.catalog.Load()
	if _, ok := cat.stores[req.StoreID]; !ok {
		return Reservation{}, fmt.Errorf("%w: unknown store %q", ErrNotFound, req.StoreID)
	}
	if len(req.Items) == 0 || len(req.Items) > inventory.LinesMax {
		return Reservation{}, fmt.Errorf("%w: a cart holds 1 to %d items", ErrInvalid, inventory.LinesMax)
	}
	if err := e.checkUserGuide(a.UserID, req.GuideID, req.StoreID); err != nil {
		return Reservation{}, err
	}
	m := resRecord{Kind: kindCheckout, StoreID: req.StoreID, GuideID: req.GuideID,
		Items: make([]recordItem, len(req.Items))}
	lines := make([]inventory.Line, len(req.Items))
	seen := make(map[string]struct{}, len(req.Items))
	for i, it := range req.Items {
		if it.Quantity <= 0 || it.Quantity > inventory.QuantityMaxDefault {
			return Reservation{}, fmt.Errorf("%w: item %d: quantity %d", ErrInvalid, i, it.Quantity)
		}
		if _, dup := seen[it.SKUID]; dup {
			return Reservation{}, fmt.Errorf("%w: item %d: sku %q twice", ErrInvalid, i, it.SKUID)
		}
		seen[it.SKUID] = struct{}{}
		price, ok := cat.listingPrice(req.StoreID, it.SKUID)
		if !ok {
			return Reservation{}, fmt.Errorf("%w: store %q does not list sku %q", ErrNotFound, req.StoreID, it.SKUID)
		}
		m.Items[i] = recordItem{SKUID: it.SKUID, Quantity: it.Quantity, UnitPrice: price}
		m.Amount += it.Quantity * price
		lines[i] = inventory.Line{Pool: listingPool(req.StoreID, it.SKUID), Quantity: it.Quantity}
	}
	a.Route = "checkout"
	if err := e.checkRisk(ctx, RiskInput{Attempt: a, StoreID: req.StoreID}); err != nil {
		return Reservation{}, err
	}
	r, err := e.store.Reserve(ctx, inventory.ReserveRequest{
		ID:    e.newReservationID(req.StoreID),
		User:  a.UserID,
		Lines: lines,
		TTL:   e.opts.CheckoutHold,
		Meta:  m.encode(),
	})
	if err != nil {
		return Reservation{}, storeErr(err)
	}
	e.pages.markDirty(req.StoreID)
	return e.viewRecord(r, &m), nil
}
