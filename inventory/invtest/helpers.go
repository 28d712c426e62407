package invtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// Factory returns a fresh, empty store using opts, closed via t.Cleanup.
type Factory func(t testing.TB, opts inventory.Options) inventory.Store

// clock is a fake clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

// clockStart is a fixed whole-millisecond instant so that results are the
// same on every run.
var clockStart = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

func newClock() *clock { return &clock{t: clockStart} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// h bundles a store under test with its clock and the pools it created, so
// that every check can also verify each pool's identity.
type h struct {
	t     testing.TB
	s     inventory.Store
	clock *clock
	ctx   context.Context
	pools []string
}

func newH(t testing.TB, f Factory) *h {
	return newHOpts(t, f, inventory.Options{})
}

func newHOpts(t testing.TB, f Factory, o inventory.Options) *h {
	c := newClock()
	o.Now = c.Now
	return &h{t: t, s: f(t, o), clock: c, ctx: context.Background()}
}

func (h *h) create(id string, supplied int64) {
	h.t.Helper()
	if err := h.s.CreatePool(h.ctx, id, supplied); err != nil {
		h.t.Fatalf("CreatePool(%q, %d) = %v", id, supplied, err)
	}
	h.pools = append(h.pools, id)
	h.identity()
}

func (h *h) pool(id string) inventory.Pool {
	h.t.Helper()
	p, err := h.s.Pool(h.ctx, id)
	if err != nil {
		h.t.Fatalf("Pool(%q) = %v", id, err)
	}
	if p.ID != id {
		h.t.Fatalf("Pool(%q).ID = %q", id, p.ID)
	}
	if p.Supplied != p.Available+p.Held+p.Sold {
		h.t.Fatalf("Pool(%q) = %+v: Supplied != Available+Held+Sold", id, p)
	}
	if p.Available < 0 || p.Held < 0 || p.Sold < 0 || p.Short < 0 {
		h.t.Fatalf("Pool(%q) = %+v: negative counter", id, p)
	}
	return p
}

// identity checks every pool created through h.
func (h *h) identity() {
	h.t.Helper()
	for _, id := range h.pools {
		h.pool(id)
	}
}

// want checks a pool's available, held and sold units.
func (h *h) want(id string, available, held, sold int64) {
	h.t.Helper()
	p := h.pool(id)
	if p.Available != available || p.Held != held || p.Sold != sold {
		h.t.Fatalf("Pool(%q) = available %d held %d sold %d; want %d %d %d (%+v)",
			id, p.Available, p.Held, p.Sold, available, held, sold, p)
	}
}

func req(id, user string, lines ...inventory.Line) inventory.ReserveRequest {
	return inventory.ReserveRequest{ID: id, User: user, Lines: lines, TTL: time.Minute}
}

func line(pool string, qty, limit int64) inventory.Line {
	return inventory.Line{Pool: pool, Quantity: qty, Limit: limit}
}

func (h *h) reserve(r inventory.ReserveRequest) (inventory.Reservation, error) {
	h.t.Helper()
	res, err := h.s.Reserve(h.ctx, r)
	h.identity()
	return res, err
}

func (h *h) mustReserve(r inventory.ReserveRequest) inventory.Reservation {
	h.t.Helper()
	res, err := h.reserve(r)
	if err != nil {
		h.t.Fatalf("Reserve(%q) = %v", r.ID, err)
	}
	return res
}

// wantErr fails unless errors.Is(err, want) (want nil means no error).
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s = %v; want no error", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v; want %v", what, err, want)
	}
}

// classify names an error by the sentinel it matches.
func classify(err error) string {
	if err == nil {
		return "ok"
	}
	for _, s := range []error{
		inventory.ErrSoldOut, inventory.ErrLimitExceeded, inventory.ErrPoolNotFound,
		inventory.ErrPoolExists, inventory.ErrReservationNotFound, inventory.ErrInvalid,
		inventory.ErrBadState, inventory.ErrIDConflict, inventory.ErrClosed, inventory.ErrUnavailable,
	} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return fmt.Sprintf("unclassified error %v", err)
}

// sameReservation compares all fields of two reservations.
func sameReservation(a, b inventory.Reservation) bool {
	if a.ID != b.ID || a.User != b.User || a.State != b.State || a.Refunded != b.Refunded || a.Existed != b.Existed ||
		!a.CreatedAt.Equal(b.CreatedAt) || !a.ExpiresAt.Equal(b.ExpiresAt) ||
		string(a.Meta) != string(b.Meta) || len(a.Lines) != len(b.Lines) {
		return false
	}
	for i := range a.Lines {
		if a.Lines[i] != b.Lines[i] {
			return false
		}
	}
	return true
}

func (h *h) wantRes(id string, state inventory.State, refunded bool) inventory.Reservation {
	h.t.Helper()
	r, err := h.s.Reservation(h.ctx, id)
	if err != nil {
		h.t.Fatalf("Reservation(%q) = %v", id, err)
	}
	if r.State != state || r.Refunded != refunded {
		h.t.Fatalf("Reservation(%q) = %v refunded=%v; want %v refunded=%v", id, r.State, r.Refunded, state, refunded)
	}
	return r
}

// scanAll lists every reservation in state, page by page.
func scanAll(t testing.TB, s inventory.Store, state inventory.State) []inventory.Reservation {
	t.Helper()
	var all []inventory.Reservation
	cursor := ""
	for page := 0; ; page++ {
		if page > 1_000_000 {
			t.Fatalf("Scan(%v) does not end", state)
		}
		rs, next, err := s.Scan(context.Background(), state, cursor, inventory.ScanLimitMax)
		if err != nil {
			t.Fatalf("Scan(%v, %q) = %v", state, cursor, err)
		}
		all = append(all, rs...)
		if next == "" {
			return all
		}
		cursor = next
	}
}
