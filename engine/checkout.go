package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/surge-retail/surge/inventory"
)

// Checkout reserves every item of one store's cart at the store's prices,
// all or nothing, in one inventory reservation. Under a key (a.Once) the
// reservation's id is derived from it, so the cart is reserved at most once
// and its first answer is replayed (law 5; once.go).
func (e *Engine) Checkout(ctx context.Context, a Attempt, req CheckoutRequest) (Reservation, error) {
	if err := e.reservingAllowed(); err != nil {
		return Reservation{}, err
	}
	r, err := e.checkout(ctx, a, req)
	if err != nil && a.Once.Key != "" && !errors.Is(err, ErrIdempotencyConflict) {
		if _, known := e.catalog.Load().stores[req.StoreID]; known {
			return e.keyedRefusal(ctx, a, req.StoreID, err)
		}
	}
	return r, err
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
	id, err := e.reserveID(a, &m)
	if err != nil {
		return Reservation{}, err
	}
	r, err := e.store.Reserve(ctx, inventory.ReserveRequest{
		ID:    id,
		User:  a.UserID,
		Lines: lines,
		TTL:   e.opts.CheckoutHold,
		Meta:  m.encode(),
	})
	if err != nil {
		return Reservation{}, e.reserveErr(err, m.Keyed)
	}
	if r.Existed {
		return e.keyedAnswer(r, a.Once)
	}
	e.pages.markDirty(req.StoreID)
	return e.viewRecord(r, &m), nil
}
