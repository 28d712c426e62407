package engine

import (
	"log/slog"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/inventory"
)

// Input limits. The inventory defines each of them once; the engine checks
// against them and re-exports them for the gateway, which does not import
// the inventory (DESIGN.md).
const (
	// IDLenMax bounds a user, reservation or payment id, in bytes
	// (ValidUserID).
	IDLenMax = inventory.IDLenMax
	// KeyLenMax bounds a store, guide, sku, sale, deal or team id, in
	// bytes (ValidKey).
	KeyLenMax = inventory.KeyLenMax
	// QuantityMax bounds the quantity of one line of a reservation, and a
	// sale's per-user limit.
	QuantityMax = inventory.QuantityMaxDefault
	// LinesMax bounds the lines (items) of one checkout.
	LinesMax = inventory.LinesMax
	// HoldMax is the longest hold of a reservation: a sale's
	// hold_seconds, CheckoutHold, GroupHold and FlashHoldDefault.
	HoldMax = inventory.HoldMax
	// TeamWindowMax is the longest team window of a group deal.
	TeamWindowMax = 7 * 24 * time.Hour
)

// ValidKey reports whether s can be a store, guide, sku, sale, deal or team
// id: 1 to KeyLenMax bytes of [A-Za-z0-9_.-] (inventory.ValidKey).
func ValidKey(s string) bool { return inventory.ValidKey(s) }

// ValidUserID reports whether s can be a user id: 1 to IDLenMax bytes of
// printable ASCII without spaces, '{' or '}' (inventory.ValidID).
func ValidUserID(s string) bool { return inventory.ValidID(s) }

// Options configures an Engine. The zero value of each field means its
// documented default; Store is required.
type Options struct {
	// Store holds stock pools and reservations. Required.
	Store inventory.Store
	// Dir is where the engine keeps its own durable records (catalog,
	// sales, deals, teams, idempotency records, orders) in Pebble. "" keeps
	// them in memory (tests, the memory backend).
	Dir string
	// RedisAddr, when set, keeps the shared records (catalog, sales, deals,
	// teams) in Redis so that several nodes see the same state: one
	// server's host:port, or a comma-separated list of seeds (any nodes of
	// a Redis Cluster).
	RedisAddr string
	// RedisUsername and RedisPassword authenticate to the Redis of
	// RedisAddr. Default none.
	RedisUsername string
	RedisPassword string
	// Risk is called before every reserve, join and checkout. Default: allow.
	Risk RiskHook
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger is where the engine logs (with the request id of the call's
	// context, see RequestIDKey). Default slog.Default().
	Logger *slog.Logger
	// SweepInterval is how often held reservations past their deadline are
	// released, team deadlines decided, other nodes' records picked up and
	// store pages refreshed. Default 1s; negative disables the background
	// sweeper (tests call Engine.Sweep).
	SweepInterval time.Duration
	// ReservationRetention is how long a released reservation (cancelled,
	// expired or refunded) is kept after its hold deadline; then the
	// sweeper forgets it, so memory and disk do not grow with every
	// reservation ever made. Paid reservations are kept. Default
	// ReservationRetentionDefault (24h); negative (RetentionForever) keeps
	// every reservation.
	ReservationRetention time.Duration

	// Records, when set, is used instead of opening records from Dir or
	// RedisAddr; the caller closes it. Default: Pebble records in Dir,
	// Redis records at RedisAddr, else in memory.
	Records records.Records
	// Orders, when set, is the order store. Default NewRecordsOrderStore
	// over the records.
	Orders orders.Store
	// OutboxWriterOff, with a store that has an outbox (the Redis
	// backend), leaves the writing of the outbox's orders to other
	// processes (`surge orders`, or other nodes): this engine still hands
	// every order to the outbox when it confirms a payment.
	OutboxWriterOff bool
	// OutboxWriter configures the engine's outbox writer.
	OutboxWriter OutboxWriterOptions
	// OrderWriter configures the asynchronous order writer.
	OrderWriter OrderWriterOptions
	// Idempotency configures the idempotency records (its Now defaults to
	// Options.Now).
	Idempotency IdempotencyOptions
	// Circuit configures the circuit breakers in front of the inventory
	// store and the records (circuit.go).
	Circuit CircuitOptions
	// CheckoutHold is how long a checkout reservation is held. Default
	// 15m; at most HoldMax.
	CheckoutHold time.Duration
	// GroupHold is how long a group-buy member's unit is held unpaid
	// (never past the team's deadline). Default 15m; at most HoldMax.
	GroupHold time.Duration
	// FlashHoldDefault is the hold of a sale whose hold_seconds is 0.
	// Default 5m; at most HoldMax.
	FlashHoldDefault time.Duration
	// PageGuidesMax bounds the guide pages cached per store page version
	// (only the store's own guides get one). Default 256.
	PageGuidesMax int
	// StopTimeout bounds how long Close waits for the order writer to
	// flush. Default 10s.
	StopTimeout time.Duration
	// StockLowMax is the available count at or under which a listing shows
	// "low". Default 5.
	StockLowMax int64
	// WeChatPay, when set, makes WeChat Pay the payment provider
	// (payments.go): Prepay places its orders, only its verified
	// notifications pay, late payments are refunded through it, and Pay is
	// refused. Default nil: the dev provider, where the buyer's session
	// pays (Pay).
	WeChatPay *wechatpay.Client
	// PayNotifyURL is the notify_url given to WeChat Pay for payments and
	// refunds: this service's /api/v1/payments/wechat/notify as WeChat Pay
	// reaches it.
	PayNotifyURL string
	// SaleAdmitFactor bounds the reserve calls of one flash sale in flight
	// at once to SaleAdmitFactor × its remaining units; the others are
	// refused at once with ErrThrottled (marked ErrShed), so that a crowd
	// far larger than the stock waits nowhere. Default 4; negative turns
	// the gate off.
	SaleAdmitFactor int
	// RegistrantsPerSaleMax bounds the registrants of one sale with
	// registration (预约); past it, registering is ErrBadState. It also
	// bounds a sale's draw_quantity. Default RegistrantsPerSaleMaxDefault.
	RegistrantsPerSaleMax int64
	// LotteryWindow is the lottery window (lottery.go) of the sales
	// created without lottery_window_ms (and long enough for it). Zero:
	// LotteryWindowDefault; negative: none. At most LotteryWindowMax.
	LotteryWindow time.Duration
	// LotteryQueueMax bounds the entrants waiting in one sale's lottery
	// on this node; past it a reserve is refused at once (ErrLotteryFull).
	// Default LotteryQueueMaxDefault (20,000).
	LotteryQueueMax int
	// LotteryServeMax is how many of a lottery's drawn entrants reserve at
	// once, in draw order. Default LotteryServeMaxDefault (64); 1 serves
	// them strictly one after the other.
	LotteryServeMax int
}

// RegistrantsPerSaleMaxDefault is the default Options.RegistrantsPerSaleMax.
const RegistrantsPerSaleMaxDefault = 100_000

// ReservationRetentionDefault is the default of Options.ReservationRetention.
const ReservationRetentionDefault = 24 * time.Hour

// RetentionForever, as Options.ReservationRetention, keeps every
// reservation (any negative value does).
const RetentionForever time.Duration = -1

// WithDefaults returns o with zero fields set to their defaults. The
// options of the order writer and of idempotency are filled by their own
// WithDefaults when the engine opens them.
func (o Options) WithDefaults() Options {
	o.Circuit = o.Circuit.withDefaults()
	if o.Risk == nil {
		o.Risk = AllowAll()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = time.Second
	}
	if o.ReservationRetention == 0 {
		o.ReservationRetention = ReservationRetentionDefault
	}
	if o.CheckoutHold <= 0 {
		o.CheckoutHold = 15 * time.Minute
	}
	if o.GroupHold <= 0 {
		o.GroupHold = 15 * time.Minute
	}
	if o.FlashHoldDefault <= 0 {
		o.FlashHoldDefault = 5 * time.Minute
	}
	o.CheckoutHold = min(o.CheckoutHold, HoldMax)
	o.GroupHold = min(o.GroupHold, HoldMax)
	o.FlashHoldDefault = min(o.FlashHoldDefault, HoldMax)
	if o.PageGuidesMax <= 0 {
		o.PageGuidesMax = 256
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.StockLowMax <= 0 {
		o.StockLowMax = 5
	}
	if o.SaleAdmitFactor == 0 {
		o.SaleAdmitFactor = 4
	}
	if o.RegistrantsPerSaleMax <= 0 {
		o.RegistrantsPerSaleMax = RegistrantsPerSaleMaxDefault
	}
	if o.LotteryWindow == 0 {
		o.LotteryWindow = LotteryWindowDefault
	}
	o.LotteryWindow = min(o.LotteryWindow, LotteryWindowMax)
	if o.LotteryQueueMax <= 0 {
		o.LotteryQueueMax = LotteryQueueMaxDefault
	}
	if o.LotteryServeMax <= 0 {
		o.LotteryServeMax = LotteryServeMaxDefault
	}
	return o
}
