package gateway

import (
	"context"

	"github.com/surge-retail/surge/engine"
)

// Engine is what the gateway needs from the business layer. *engine.Engine
// implements it (checked in cmd/surge). Methods return engine's sentinel
// errors (engine.ErrSoldOut, ...), which the gateway maps onto API.md codes
// in one place.
type Engine interface {
	// Storefronts: precomputed bytes, served as they are. guideID "" means
	// the plain store page.
	StorePage(storeID, guideID string) (engine.Page, error)
	ProductPage(storeID, skuID, guideID string) (engine.Page, error)

	// Flash sales.
	FlashSale(ctx context.Context, saleID string) (engine.FlashSale, error)
	// SaleRemaining is a cheap in-memory read for the admission gate:
	// remaining units (approximate) and whether the sale exists.
	SaleRemaining(saleID string) (remaining int64, ok bool)
	ReserveFlash(ctx context.Context, a engine.Attempt, saleID string, quantity int64, guideID string) (engine.Reservation, error)

	// Group buying.
	GroupDeal(ctx context.Context, dealID string) (engine.GroupDeal, error)
	OpenTeam(ctx context.Context, a engine.Attempt, dealID, guideID string) (engine.Team, error)
	JoinTeam(ctx context.Context, a engine.Attempt, dealID, teamID string) (engine.Team, error)
	Team(ctx context.Context, dealID, teamID string) (engine.Team, error)

	// Checkout.
	Checkout(ctx context.Context, a engine.Attempt, req engine.CheckoutRequest) (engine.Reservation, error)

	// Reservations and orders; userID is the caller (ErrForbidden when the
	// reservation or order is someone else's).
	Reservation(ctx context.Context, userID, reservationID string) (engine.Reservation, error)
	Pay(ctx context.Context, userID, reservationID, paymentID string) (engine.Reservation, error)
	Cancel(ctx context.Context, userID, reservationID string) (engine.Reservation, error)
	Order(ctx context.Context, userID, orderID string) (engine.Order, error)
	UserOrders(ctx context.Context, userID string, limit int) ([]engine.Order, error)

	// Idempotency (law 5): fn runs at most once per (userID, key) with the
	// same digest; later calls get the stored status and body. A different
	// digest gives ErrIdempotencyConflict. The gateway sheds overload
	// (429/503) before calling Idempotent; an answer fn returns with status
	// 429 or >= 500 is transient and should not be kept, so that a retry
	// with the same key runs fn again.
	Idempotent(ctx context.Context, userID, key string, digest [32]byte, fn func() (status int, body []byte)) (status int, body []byte, err error)

	// Store feed (law 7), one result per update, in order.
	ApplyFeed(ctx context.Context, updates []engine.FeedUpdate) ([]engine.FeedResult, error)

	// Admin.
	LoadCatalog(ctx context.Context, c engine.Catalog) (engine.CatalogResult, error)
	CreateFlashSale(ctx context.Context, spec engine.FlashSaleSpec) (engine.FlashSale, error)
	CreateGroupDeal(ctx context.Context, spec engine.GroupDealSpec) (engine.GroupDeal, error)
	Stats(ctx context.Context) (engine.Stats, error)

	// Ready reports whether the backends are reachable.
	Ready(ctx context.Context) error
}
