package inventory

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/surge-retail/surge/internal/coarseclock"
)

// Sentinel errors. Every backend returns exactly these (wrapped with context
// where useful) so callers can classify with errors.Is.
var (
	// ErrSoldOut means a pool has fewer available units than a line asked for.
	ErrSoldOut = errors.New("inventory: sold out")
	// ErrLimitExceeded means the user's held+paid units in a pool would pass
	// the line's per-user limit.
	ErrLimitExceeded = errors.New("inventory: per-user limit exceeded")
	// ErrPoolNotFound means the pool id is unknown.
	ErrPoolNotFound = errors.New("inventory: pool not found")
	// ErrPoolExists means CreatePool was called for an id that exists.
	ErrPoolExists = errors.New("inventory: pool exists")
	// ErrReservationNotFound means the reservation id is unknown.
	ErrReservationNotFound = errors.New("inventory: reservation not found")
	// ErrInvalid means the request is malformed: a quantity that is zero,
	// negative or above Options.MaxQuantity, too many lines, an empty or
	// oversized id, lines of different tags, a duplicate pool in one request.
	ErrInvalid = errors.New("inventory: invalid request")
	// ErrBadState means the reservation is not in a state that allows the
	// operation: confirming a released (or expired) reservation, releasing a
	// paid one, refunding one that is not paid.
	ErrBadState = errors.New("inventory: bad reservation state")
	// ErrIDConflict means a reservation id was reused for a different user or
	// different lines.
	ErrIDConflict = errors.New("inventory: reservation id reused with a different request")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("inventory: closed")
	// ErrUnavailable means the backend could not be reached or could not
	// persist; nothing was acknowledged.
	ErrUnavailable = errors.New("inventory: backend unavailable")
)

// Limits on inputs, shared by every backend.
const (
	// IDLenMax bounds pool and reservation ids, in bytes.
	IDLenMax = 128
	// LinesMax bounds the lines of one reservation.
	LinesMax = 32
	// MetaLenMax bounds Reservation.Meta, in bytes: room for the engine's
	// record of a full cart (LinesMax items) with the longest ids.
	MetaLenMax = 4096
	// QuantityMaxDefault is the default of Options.MaxQuantity.
	QuantityMaxDefault = 10_000
)

// State is the state of a reservation.
type State uint8

const (
	// StateHeld means units are held until ExpiresAt.
	StateHeld State = iota + 1
	// StatePaid means the held units were confirmed: they are sold.
	StatePaid
	// StateReleased means the units went back to their pools (cancel,
	// expiry or refund).
	StateReleased
)

func (s State) String() string {
	switch s {
	case StateHeld:
		return "held"
	case StatePaid:
		return "paid"
	case StateReleased:
		return "released"
	}
	return "unknown"
}

// Line is one pool and quantity of a reservation.
type Line struct {
	Pool     string
	Quantity int64
	// Limit is the per-user limit for this pool: the user's units in held
	// and paid reservations of this pool may not exceed it. 0 means none.
	// Released reservations give their units back to the user's allowance.
	Limit int64
}

// ReserveRequest asks to hold units from one or more pools, all or nothing.
type ReserveRequest struct {
	// ID is chosen by the caller. It must be "<tag>:<rest>" where tag is the
	// Tag of every line's pool. Reserving again with the same ID, user and
	// lines returns the existing reservation (whatever its state) and no
	// error; with a different user or lines, ErrIDConflict.
	ID    string
	User  string
	Lines []Line
	// TTL is how long the units are held; must be > 0.
	TTL time.Duration
	// Meta is opaque caller data stored with the reservation (at most
	// MetaLenMax bytes): the engine keeps attribution and prices there.
	Meta []byte
}

// Reservation is a stored reservation.
type Reservation struct {
	ID        string
	User      string
	Lines     []Line
	State     State
	Meta      []byte
	CreatedAt time.Time // millisecond precision
	ExpiresAt time.Time // millisecond precision
	// Refunded is true when a paid reservation was released by Refund.
	Refunded bool
	// Existed is set by Reserve only: the id was already reserved, and
	// the reservation is returned as it is; this call took nothing.
	Existed bool
}

// Pool is a snapshot of one stock pool.
//
// Supplied == Available + Held + Sold always holds.
type Pool struct {
	ID        string
	Supplied  int64
	Available int64
	Held      int64
	Sold      int64
	// OnHand is the last on-hand level applied from the feed (0 if none).
	OnHand int64
	// Seq is the last feed sequence applied (0 if none).
	Seq uint64
	// Closed is set once ClosePool closed the pool.
	Closed bool
	// Short counts units the feed removed that were not available (they were
	// held or sold). It is paid back first by later increases. Non-zero
	// Short means the store has fewer units than we committed: reported,
	// never turned into oversell.
	Short int64
}

// FeedResult is the answer to SetOnHand.
type FeedResult struct {
	// Applied is false when seq was not greater than the pool's last seq:
	// nothing changed.
	Applied bool
	Pool    Pool
}

// Store is a set of stock pools and reservations. All implementations
// (memory, pebble, redis) have identical semantics, checked by the
// conformance suite in invtest. Every method is safe for concurrent use.
//
// Durability (law 3): when a mutating method returns nil, the change is
// persisted as far as the backend persists anything.
type Store interface {
	// CreatePool creates a pool with supplied available units (>= 0).
	CreatePool(ctx context.Context, pool string, supplied int64) error
	// Reserve holds all lines or none. Errors: ErrInvalid, ErrPoolNotFound,
	// ErrSoldOut, ErrLimitExceeded, ErrIDConflict.
	Reserve(ctx context.Context, req ReserveRequest) (Reservation, error)
	// Confirm moves a held reservation to paid (held -> sold). Confirming a
	// paid one returns it unchanged. A held reservation past its ExpiresAt
	// is released instead and ErrBadState returned; so is a released one.
	Confirm(ctx context.Context, id string) (Reservation, error)
	// Release moves a held reservation to released (held -> available).
	// Releasing a released one returns it unchanged; a paid one ErrBadState.
	Release(ctx context.Context, id string) (Reservation, error)
	// Refund moves a paid reservation to released (sold -> available) and
	// sets Refunded. Refunding a refunded one returns it; a held one
	// ErrBadState.
	Refund(ctx context.Context, id string) (Reservation, error)
	// Expire releases up to max held reservations whose ExpiresAt <= now and
	// returns them. Safe to call from many goroutines or nodes at once: each
	// reservation is released exactly once.
	Expire(ctx context.Context, now time.Time, max int) ([]Reservation, error)
	// Move moves qty (> 0) available units from one pool to another of the
	// same tag, atomically (ErrSoldOut if from has fewer available).
	Move(ctx context.Context, from, to string, qty int64) error
	// Drain moves every available unit of from into to, returning how many.
	Drain(ctx context.Context, from, to string) (int64, error)
	// Send takes up to qty (> 0) available units out of pool from for
	// pool to (any other pool, of any tag) and adds them to from's sent
	// total for to, atomically; it returns the units taken (0 when none
	// is available: no error) and the new total. Receive then credits to.
	// See transfer.go.
	Send(ctx context.Context, from, to string, qty int64) (taken, sent int64, err error)
	// Receive credits pool to with sent - received[from] units when sent
	// (a sent total of from for to, read from Send or from's Ledger) is
	// above what to received from from, and records sent as received,
	// atomically; it returns the units added (0 for a total already
	// received). Idempotent.
	Receive(ctx context.Context, to, from string, sent int64) (int64, error)
	// Ledger reads a pool with its transfer totals.
	Ledger(ctx context.Context, pool string) (Ledger, error)
	// SetOnHand applies an on-hand level from the store feed (law 7).
	SetOnHand(ctx context.Context, pool string, onHand int64, seq uint64) (FeedResult, error)
	// Pool reads a pool.
	Pool(ctx context.Context, pool string) (Pool, error)
	// Reservation reads a reservation.
	Reservation(ctx context.Context, id string) (Reservation, error)
	// Scan lists reservations in the given state in id order, starting
	// after the id cursor ("" for the start), at most limit of them; next is
	// "" at the end.
	Scan(ctx context.Context, state State, cursor string, limit int) (rs []Reservation, next string, err error)
	// Forget drops a released reservation: it then reads as
	// ErrReservationNotFound and its id may be reused. Pools and per-user
	// counts do not change (released units stopped counting when they were
	// released). A held or paid one: ErrBadState.
	Forget(ctx context.Context, id string) error
	// Purge forgets up to max released reservations whose ExpiresAt is at
	// or before `before` and returns how many it forgot, without scanning
	// every reservation. Held and paid reservations are never purged. Safe
	// to call from many goroutines or nodes at once: each reservation is
	// forgotten once. The engine's sweeper calls it with now minus the
	// retention window.
	Purge(ctx context.Context, before time.Time, max int) (int, error)
	// ClosePool closes a finished pool for good: from then on it refuses
	// every reserve with ErrSoldOut (whatever its available units), and
	// the per-user counts that guarded its limits are forgotten, so that
	// a sale's crowd costs nothing once the sale is over. No limit can
	// be passed after that, since nothing more is reserved from the pool
	// (law 6). Confirm, Release, Refund, moves, transfers and the feed
	// work as before. It needs nothing held in the pool (ErrBadState: a
	// hold's count still guards its user's limit); closing a closed pool
	// is a no-op; an unknown pool is ErrPoolNotFound. Durable like every
	// other change: a reopened store keeps the pool closed and rebuilds
	// no counts for it.
	ClosePool(ctx context.Context, pool string) error
	// Close releases resources; later calls return ErrClosed.
	Close() error
}

// Tag returns the hash tag of a pool or reservation id: the part before the
// first ':' (the whole id if there is none). Pools of one tag live together
// (one Redis Cluster slot), so a reservation, a move or a checkout may only
// span pools of one tag. The engine uses the store id as the tag.
func Tag(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		return id[:i]
	}
	return id
}

// Options configures every backend. The zero value means the defaults.
type Options struct {
	// MaxQuantity bounds one line's quantity. Default QuantityMaxDefault.
	MaxQuantity int64
	// Now is the clock reservations are stamped and checked with. Default
	// coarseclock.Now: wall time in whole milliseconds for one atomic load,
	// at most a tick (a few ms when the CPU is starved) behind time.Now,
	// never ahead. A hold therefore lasts its TTL by this clock and may
	// end that lag early by time.Now, never late.
	Now func() time.Time
}

// WithDefaults returns o with zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	if o.MaxQuantity <= 0 {
		o.MaxQuantity = QuantityMaxDefault
	}
	if o.Now == nil {
		o.Now = coarseclock.Now
	}
	return o
}
