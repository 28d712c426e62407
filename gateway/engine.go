package gateway

import (
	"context"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/wechatpay"
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

	// Flash sales. ReserveFlash is the whole reservation in one call: it
	// answers unknown, not active, sold out and a full admission gate
	// itself (the last three from memory, marked engine.ErrShed when no
	// backend was asked), and replays a.Once's first answer (law 5).
	FlashSale(ctx context.Context, saleID string) (engine.FlashSale, error)
	ReserveFlash(ctx context.Context, a engine.Attempt, saleID string, quantity int64, guideID string) (engine.Reservation, error)
	// Registration (预约) for a sale that asks for it, and the admin's
	// export of its registrants with the draw.
	RegisterFlash(ctx context.Context, a engine.Attempt, saleID string) (engine.Registration, error)
	FlashRegistrations(ctx context.Context, saleID string) (engine.RegistrationList, error)
	// ReserveFlashOrEnter is ReserveFlash, except that in a sale's
	// lottery window it returns a ticket to wait on instead of waiting
	// (lottery.go).
	ReserveFlashOrEnter(ctx context.Context, a engine.Attempt, saleID string, quantity int64, guideID string) (engine.Reservation, *engine.LotteryTicket, error)

	// Group buying. OpenTeam, JoinTeam and Checkout replay a.Once's first
	// answer (law 5); a different digest is ErrIdempotencyConflict.
	GroupDeal(ctx context.Context, dealID string) (engine.GroupDeal, error)
	OpenTeam(ctx context.Context, a engine.Attempt, dealID, guideID string) (engine.Team, error)
	JoinTeam(ctx context.Context, a engine.Attempt, dealID, teamID string) (engine.Team, error)
	Team(ctx context.Context, dealID, teamID string) (engine.Team, error)

	// Checkout.
	Checkout(ctx context.Context, a engine.Attempt, req engine.CheckoutRequest) (engine.Reservation, error)

	// AccountSeen records the first session of an account (the first
	// call wins) and returns when it was, for the risk hook's minimum
	// account age.
	AccountSeen(ctx context.Context, userID string) (time.Time, error)
	// LoginSeen tells the risk hook of a session issued on a device from
	// an address (it counts the links; it never refuses).
	LoginSeen(a engine.Attempt)

	// Reservations and orders; userID is the caller (ErrForbidden when the
	// reservation or order is someone else's).
	Reservation(ctx context.Context, userID, reservationID string) (engine.Reservation, error)
	Pay(ctx context.Context, userID, reservationID, paymentID string) (engine.Reservation, error)
	Cancel(ctx context.Context, userID, reservationID string) (engine.Reservation, error)

	// WeChat Pay (API.md, "Payments"): the buyer's prepay, and the
	// verified notifications (an *engine.PayRefusal changes nothing).
	Prepay(ctx context.Context, userID, reservationID string) (wechatpay.PayParams, error)
	PaymentNotified(ctx context.Context, tx *wechatpay.Transaction) error
	RefundNotified(ctx context.Context, r *wechatpay.RefundResource) error
	Order(ctx context.Context, userID, orderID string) (engine.Order, error)
	UserOrders(ctx context.Context, userID string, limit int) ([]engine.Order, error)
	// Orders for the admin: a page (newest first, cursor from the page
	// before) and the per-guide sums (导购业绩); a bad filter, cursor or
	// limit is engine.ErrInvalid.
	ListOrders(ctx context.Context, f engine.OrderFilter, cursor string, limit int) (engine.OrdersPage, error)
	Attribution(ctx context.Context, f engine.OrderFilter) (engine.AttributionReport, error)

	// Store feed (law 7), one result per update, in order.
	ApplyFeed(ctx context.Context, updates []engine.FeedUpdate) ([]engine.FeedResult, error)

	// Admin.
	LoadCatalog(ctx context.Context, c engine.Catalog) (engine.CatalogResult, error)
	CreateFlashSale(ctx context.Context, spec engine.FlashSaleSpec) (engine.FlashSale, error)
	CreateGroupDeal(ctx context.Context, spec engine.GroupDealSpec) (engine.GroupDeal, error)
	Stats(ctx context.Context) (engine.Stats, error)
	// Sale controls and reconciliation (kind engine.SaleKindFlash or
	// engine.SaleKindGroup; action engine.SaleActionPause, ...).
	AdminSales(ctx context.Context, kind string) ([]engine.SaleAdmin, bool, error)
	AdminSale(ctx context.Context, kind, id string) (engine.SaleAdmin, error)
	ControlSale(ctx context.Context, kind, id, action string) (engine.SaleAdmin, error)
	Reconcile(ctx context.Context) (engine.Reconciliation, error)
	// Recover resumes reservations after the records lost their data
	// (POST /admin/v1/recover).
	Recover(ctx context.Context) (engine.Recovery, error)

	// Ready reports whether the backends are reachable.
	Ready(ctx context.Context) error
}
