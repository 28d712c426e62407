package engine

import (
	"errors"
	"time"

	"github.com/surge-retail/surge/engine/orders"
)

// This file is the contract between the engine and the gateway: the
// request and result types (their JSON names are API.md's) and the sentinel
// errors, one per API.md error code. Add fields freely; do not rename.

// Sentinel errors, mapped one-to-one onto API.md codes by the gateway.
var (
	// ErrInvalid: 40000 bad_request.
	ErrInvalid = errors.New("engine: invalid request")
	// ErrRiskDenied: 40300 risk_denied. Returned wrapped in *RiskError.
	ErrRiskDenied = errors.New("engine: denied by risk control")
	// ErrNotRegistered: 40302 not_registered (a sale with registration, 预约,
	// and a caller who did not register or did not win its draw).
	ErrNotRegistered = errors.New("engine: not registered")
	// ErrForbidden: 40301 forbidden (not the caller's reservation or order).
	ErrForbidden = errors.New("engine: forbidden")
	// ErrNotFound: 40400 not_found.
	ErrNotFound = errors.New("engine: not found")
	// ErrSoldOut: 40900 sold_out.
	ErrSoldOut = errors.New("engine: sold out")
	// ErrLimitExceeded: 40901 limit_exceeded.
	ErrLimitExceeded = errors.New("engine: per-user limit exceeded")
	// ErrNotActive: 40902 not_active (sale not started, or ended).
	ErrNotActive = errors.New("engine: not active")
	// ErrBadState: 40903 bad_state.
	ErrBadState = errors.New("engine: bad state")
	// ErrIdempotencyConflict: 40904 idempotency_conflict.
	ErrIdempotencyConflict = errors.New("engine: idempotency key reused with a different request")
	// ErrThrottled: 42900 throttled.
	ErrThrottled = errors.New("engine: throttled")
	// ErrUnavailable: 50300 unavailable (backend down or overloaded).
	ErrUnavailable = errors.New("engine: unavailable")
	// ErrShed marks a refusal decided from memory, before any backend or
	// risk call: a sold-out or inactive sale answered without a key, or a
	// sale's admission gate that is full (with ErrThrottled). It comes
	// with the refusal's own sentinel; the gateway counts these as sheds.
	ErrShed = errors.New("engine: shed")
)

// RiskError is a risk-hook denial; errors.Is(err, ErrRiskDenied) is true.
type RiskError struct {
	Reason string
}

func (e *RiskError) Error() string { return "engine: denied by risk control: " + e.Reason }

// Is reports whether target is ErrRiskDenied.
func (e *RiskError) Is(target error) bool { return target == ErrRiskDenied }

// Attempt is what is known about the caller of a reserving call; the risk
// hook sees it.
type Attempt struct {
	UserID   string
	IP       string
	DeviceID string // X-Device-Id, "" when absent
	Route    string // "flash_reserve", "group_open", "group_join", "checkout"
	// Once is the call's Idempotency-Key and request digest (law 5); the
	// zero value means no key.
	Once Once
	// Page is the X-Surge-Page-Token the call carried (riskpage.go); the
	// zero value means none.
	Page PageView
}

// Catalog is API.md's catalog document (PUT /admin/v1/catalog and the demo
// catalog file).
type Catalog struct {
	Stores   []Store   `json:"stores"`
	Guides   []Guide   `json:"guides"`
	Products []Product `json:"products"`
	Listings []Listing `json:"listings"`
}

// Store is one shop.
type Store struct {
	StoreID string   `json:"store_id"`
	Name    string   `json:"name"`
	City    string   `json:"city"`
	Address string   `json:"address,omitempty"`
	Hours   string   `json:"hours,omitempty"`
	Banners []string `json:"banners,omitempty"`
}

// Guide is a shop assistant (导购) of one store.
type Guide struct {
	GuideID string   `json:"guide_id"`
	StoreID string   `json:"store_id"`
	Name    string   `json:"name"`
	Avatar  string   `json:"avatar,omitempty"`
	Title   string   `json:"title,omitempty"`
	Picks   []string `json:"picks"`
}

// Product is a SKU with its list price (fen).
type Product struct {
	SKUID    string   `json:"sku_id"`
	Title    string   `json:"title"`
	Price    int64    `json:"price"`
	Images   []string `json:"images"`
	Category string   `json:"category,omitempty"`
}

// Listing is a store's offer of a SKU: its price and (when new) its stock.
type Listing struct {
	StoreID string `json:"store_id"`
	SKUID   string `json:"sku_id"`
	Price   int64  `json:"price"`
	OnHand  int64  `json:"on_hand"`
}

// CatalogResult counts what a catalog load touched.
type CatalogResult struct {
	Stores   int `json:"stores"`
	Guides   int `json:"guides"`
	Products int `json:"products"`
	Listings int `json:"listings"`
	// NewListings counts listings seen for the first time (stock seeded).
	NewListings int `json:"new_listings"`
}

// Page is a precomputed view: Body is the JSON of the envelope's "data"
// object, ETag its version (a quoted strong ETag, e.g. "\"s1-42\"").
// Body is shared and must not be modified.
type Page struct {
	Body []byte
	ETag string
}

// FlashSaleSpec creates a flash sale (POST /admin/v1/flash-sales).
type FlashSaleSpec struct {
	SaleID       string    `json:"sale_id"`
	StoreID      string    `json:"store_id"`
	SKUID        string    `json:"sku_id"`
	Price        int64     `json:"price"`
	Quantity     int64     `json:"quantity"`
	PerUserLimit int64     `json:"per_user_limit"`
	StartsAt     time.Time `json:"starts_at"`
	EndsAt       time.Time `json:"ends_at"`
	HoldSeconds  int64     `json:"hold_seconds"`
	// Registration (预约, registration.go): when RegistrationStartsAt is
	// set, users register from then until StartsAt and only registrants
	// (DrawQuantity > 0: only the winners of a draw among them) may
	// reserve. DrawSeed keys the draw; empty: a random one made at
	// creation, kept secret until the draw.
	RegistrationStartsAt time.Time `json:"registration_starts_at,omitzero"`
	DrawQuantity         int64     `json:"draw_quantity,omitempty"`
	DrawSeed             string    `json:"draw_seed,omitempty"`
	// Buckets splits the sale's stock over that many pools on different
	// hash tags (buckets.go): 1 to BucketsMax; 0 means 1.
	Buckets int `json:"buckets,omitempty"`
	// LotteryWindowMs opens the sale with a lottery window (lottery.go):
	// absent means the server's default (Options.LotteryWindow), 0 none.
	// In the sale's record it is the window decided at creation (nil:
	// none). LotterySeed orders the draw; random when not given.
	LotteryWindowMs *int64 `json:"lottery_window_ms,omitempty"`
	LotterySeed     string `json:"lottery_seed,omitempty"`
	// MinAccountAgeSeconds, when > 0, is the minimum age of a reserving
	// account (since its first session) for this sale; 0: the risk
	// hook's default (risk.min_account_age).
	MinAccountAgeSeconds int64 `json:"min_account_age_seconds,omitempty"`
}

// FlashSale is a sale as GET /api/v1/flash-sales/{id} shows it.
type FlashSale struct {
	SaleID       string    `json:"sale_id"`
	StoreID      string    `json:"store_id"`
	SKUID        string    `json:"sku_id"`
	Title        string    `json:"title"`
	Price        int64     `json:"price"`
	ListPrice    int64     `json:"list_price"`
	Quantity     int64     `json:"quantity"`
	PerUserLimit int64     `json:"per_user_limit"`
	HoldSeconds  int64     `json:"hold_seconds"`
	Remaining    int64     `json:"remaining"`
	Status       string    `json:"status"` // "upcoming", "active", "ended"
	StartsAt     time.Time `json:"starts_at"`
	StartsAtMs   int64     `json:"starts_at_ms"`
	EndsAt       time.Time `json:"ends_at"`
	EndsAtMs     int64     `json:"ends_at_ms"`
	ServerTimeMs int64     `json:"server_time_ms"`
	// Registration, on sales that ask for it (registration.go).
	*SaleRegistration
	// The lottery window (lottery.go), when the sale has one: its length,
	// when it closes (the draw), and the seed once it has closed.
	LotteryWindowMs   int64  `json:"lottery_window_ms,omitempty"`
	LotteryClosesAtMs int64  `json:"lottery_closes_at_ms,omitempty"`
	LotterySeed       string `json:"lottery_seed,omitempty"`
	// MinAccountAgeSeconds is the sale's own minimum account age (0: the
	// risk hook's default).
	MinAccountAgeSeconds int64 `json:"min_account_age_seconds,omitempty"`
}

// GroupDealSpec creates a group deal (POST /admin/v1/group-buys).
type GroupDealSpec struct {
	DealID            string    `json:"deal_id"`
	StoreID           string    `json:"store_id"`
	SKUID             string    `json:"sku_id"`
	Price             int64     `json:"price"`
	TeamSize          int64     `json:"team_size"`
	Quantity          int64     `json:"quantity"`
	TeamWindowSeconds int64     `json:"team_window_seconds"`
	StartsAt          time.Time `json:"starts_at"`
	EndsAt            time.Time `json:"ends_at"`
	// VirtualMinPaid, when > 0, allows virtual completion (模拟成团): at the
	// deadline a team with at least this many paid members is formed anyway.
	VirtualMinPaid int64 `json:"virtual_min_paid,omitempty"`
}

// GroupDeal is a deal as the API shows it.
type GroupDeal struct {
	DealID            string    `json:"deal_id"`
	StoreID           string    `json:"store_id"`
	SKUID             string    `json:"sku_id"`
	Title             string    `json:"title"`
	Price             int64     `json:"price"`
	TeamSize          int64     `json:"team_size"`
	Quantity          int64     `json:"quantity"`
	TeamWindowSeconds int64     `json:"team_window_seconds"`
	VirtualMinPaid    int64     `json:"virtual_min_paid,omitempty"`
	Remaining         int64     `json:"remaining"`
	Status            string    `json:"status"`
	StartsAt          time.Time `json:"starts_at"`
	StartsAtMs        int64     `json:"starts_at_ms"`
	EndsAt            time.Time `json:"ends_at"`
	EndsAtMs          int64     `json:"ends_at_ms"`
}

// TeamMember is one member of a group-buy team.
type TeamMember struct {
	UserID        string `json:"user_id"`
	ReservationID string `json:"reservation_id"`
	Leader        bool   `json:"leader"`
	Paid          bool   `json:"paid"`
}

// Team is a group-buy team. State is "forming", "formed" or "failed".
type Team struct {
	TeamID        string       `json:"team_id"`
	DealID        string       `json:"deal_id"`
	ReservationID string       `json:"reservation_id,omitempty"` // the caller's, on open and join
	Size          int64        `json:"size"`
	Members       []TeamMember `json:"members"`
	State         string       `json:"state"`
	Virtual       bool         `json:"virtual,omitempty"` // formed by virtual completion
	ExpiresAt     time.Time    `json:"expires_at"`
	ExpiresAtMs   int64        `json:"expires_at_ms"`
}

// CheckoutItem is one cart line.
type CheckoutItem struct {
	SKUID    string `json:"sku_id"`
	Quantity int64  `json:"quantity"`
}

// CheckoutRequest is POST /api/v1/checkout.
type CheckoutRequest struct {
	StoreID string         `json:"store_id"`
	GuideID string         `json:"guide_id,omitempty"`
	Items   []CheckoutItem `json:"items"`
}

// Item is a line of a reservation or order with its unit price (fen).
type Item = orders.Item

// Reservation is a reservation as the API shows it. For single-SKU
// reservations (flash sale, group buy) SKUID, Quantity and UnitPrice repeat
// the one item.
type Reservation struct {
	ReservationID string    `json:"reservation_id"`
	Kind          string    `json:"kind"` // "flash", "group", "checkout"
	SaleID        string    `json:"sale_id,omitempty"`
	DealID        string    `json:"deal_id,omitempty"`
	TeamID        string    `json:"team_id,omitempty"`
	UserID        string    `json:"user_id"`
	StoreID       string    `json:"store_id"`
	GuideID       string    `json:"guide_id,omitempty"`
	SKUID         string    `json:"sku_id,omitempty"`
	Quantity      int64     `json:"quantity"`
	UnitPrice     int64     `json:"unit_price"`
	Amount        int64     `json:"amount"`
	Items         []Item    `json:"items"`
	State         string    `json:"state"` // "held", "paid", "released"
	PaymentID     string    `json:"payment_id,omitempty"`
	OrderID       string    `json:"order_id,omitempty"` // once the order is written
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	ExpiresAtMs   int64     `json:"expires_at_ms"`
}

// Order is a written order (orders.Order). State is "created",
// "refund_pending" or "refunded", and only moves forward.
type Order = orders.Order

// FeedUpdate is one line of the POS / ERP inventory feed.
type FeedUpdate struct {
	StoreID string `json:"store_id"`
	SKUID   string `json:"sku_id"`
	OnHand  int64  `json:"on_hand"`
	Seq     uint64 `json:"seq"`
}

// FeedResult answers one feed line, in order. Status is "applied", "stale"
// or "error"; Code and Msg are set for "error" (an API.md code).
type FeedResult struct {
	StoreID   string `json:"store_id"`
	SKUID     string `json:"sku_id"`
	Seq       uint64 `json:"seq"`
	Status    string `json:"status"`
	Code      int    `json:"code,omitempty"`
	Msg       string `json:"msg,omitempty"`
	OnHand    int64  `json:"on_hand"`
	Available int64  `json:"available"`
	// Short > 0 reports units the store no longer has but we had already
	// committed (held or sold).
	Short int64 `json:"short,omitempty"`
}

// PoolStats is one pool's counts. Supplied == Held + Sold + Remaining.
type PoolStats struct {
	Supplied  int64 `json:"supplied"`
	Held      int64 `json:"held"`
	Sold      int64 `json:"sold"`
	Remaining int64 `json:"remaining"`
	Short     int64 `json:"short,omitempty"`
}

// OrderStats describes the order writer.
type OrderStats struct {
	// Written counts the orders in the order store, all time.
	Written int64 `json:"written"`
	// Lag is the number of paid reservations whose order is not written yet.
	Lag int64 `json:"lag"`
	// Failures counts failed order-store writes (retried).
	Failures int64 `json:"failures"`
	// LagOldestMs is the age of the oldest order not written yet, in
	// milliseconds, when orders travel through the store's outbox (the
	// same from whichever process asks); 0 otherwise or when none waits.
	LagOldestMs int64 `json:"lag_oldest_ms,omitempty"`
}

// Stats is the engine's part of GET /admin/v1/stats. The gateway adds its
// own counters (sheds) to the answer.
type Stats struct {
	Sales    map[string]PoolStats `json:"sales"`
	Deals    map[string]PoolStats `json:"deals"`
	Listings map[string]PoolStats `json:"listings"` // key "store_id/sku_id"
	Orders   OrderStats           `json:"orders"`
	// RiskDenials counts risk-hook denials by reason.
	RiskDenials map[string]int64 `json:"risk_denials"`
	// Payments: who says a reservation is paid, and the refunds that are
	// not finished yet (WeChat Pay).
	Payments PaymentStats `json:"payments"`
	// Lotteries: the sales with a lottery window known to this node, and
	// their entrants here (each node draws its own).
	Lotteries map[string]LotteryStats `json:"lotteries"`
	// Missing names what could not be read (a pool gone or its backend
	// down, the order count, the refunds), each with why: the rest is
	// still answered.
	Missing []Missing `json:"missing"`
	// DataLost is set while the records' data loss is not recovered
	// (dataloss.go).
	DataLost *DataLoss `json:"data_lost"`
	// Circuits is the state of each backend's circuit breaker.
	Circuits []CircuitState `json:"circuits"`
}

// PaymentStats is the payments part of Stats.
type PaymentStats struct {
	Provider    string `json:"provider"` // "dev" or "wechat"
	RefundsOpen int    `json:"refunds_open"`
}
