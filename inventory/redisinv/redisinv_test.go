package redisinv_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// clock is a fake clock in milliseconds, safe for concurrent use.
type clock struct{ ms atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ms.Store(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC).UnixMilli())
	return c
}

func (c *clock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *clock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

var prefixSeq atomic.Int64

// open opens a Store on srv under a fresh key prefix, so stores of one
// test never see each other's keys unless they share the prefix.
func open(tb testing.TB, srv *redistest.Server, prefix string, o inventory.Options) *redisinv.Store {
	tb.Helper()
	if prefix == "" {
		prefix = fmt.Sprintf("t%d", prefixSeq.Add(1))
	}
	s, err := redisinv.Open(context.Background(), redisinv.Options{Options: o, Addr: srv.Addr, Prefix: prefix})
	if err != nil {
		tb.Fatalf("Open(%s) = %v", srv.Addr, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func mustPool(t *testing.T, s inventory.Store, id string) inventory.Pool {
	t.Helper()
	p, err := s.Pool(context.Background(), id)
	if err != nil {
		t.Fatalf("Pool(%q) = %v", id, err)
	}
	if p.Supplied != p.Available+p.Held+p.Sold {
		t.Fatalf("Pool(%q) = %+v; Supplied != Available+Held+Sold", id, p)
	}
	return p
}

func wantPool(t *testing.T, s inventory.Store, id string, avail, held, sold int64) {
	t.Helper()
	p := mustPool(t, s, id)
	if p.Available != avail || p.Held != held || p.Sold != sold {
		t.Fatalf("Pool(%q) = avail %d held %d sold %d; want %d %d %d", id, p.Available, p.Held, p.Sold, avail, held, sold)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v; want %v", what, err, want)
	}
}

func req(id, user string, ttl time.Duration, lines ...inventory.Line) inventory.ReserveRequest {
	return inventory.ReserveRequest{ID: id, User: user, Lines: lines, TTL: ttl}
}

func line(pool string, q, limit int64) inventory.Line {
	return inventory.Line{Pool: pool, Quantity: q, Limit: limit}
}

func TestLifecycle(t *testing.T) {
	srv := redistest.Start(t)
	ck := newClock()
	s := open(t, srv, "", inventory.Options{Now: ck.Now})
	ctx := context.Background()
	if err := s.CreatePool(ctx, "s1:a", 10); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePool(ctx, "s1:b", 5); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "CreatePool again", s.CreatePool(ctx, "s1:a", 3), inventory.ErrPoolExists)
	wantPool(t, s, "s1:a", 10, 0, 0)

	r1 := req("s1:r1", "u1", time.Minute, line("s1:a", 3, 0), line("s1:b", 2, 0))
	r1.Meta = []byte("guide=7")
	got, err := s.Reserve(ctx, r1)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != inventory.StateHeld || got.User != "u1" || len(got.Lines) != 2 || string(got.Meta) != "guide=7" {
		t.Fatalf("Reserve = %+v", got)
	}
	if !got.ExpiresAt.Equal(ck.Now().Add(time.Minute)) || !got.CreatedAt.Equal(ck.Now()) {
		t.Fatalf("Reserve times = %v %v; want %v + 1m", got.CreatedAt, got.ExpiresAt, ck.Now())
	}
	wantPool(t, s, "s1:a", 7, 3, 0)
	wantPool(t, s, "s1:b", 3, 2, 0)

	// Same id, same request: the stored one, nothing taken twice, even
	// later and with another TTL.
	ck.Advance(time.Second)
	r1b := r1
	r1b.TTL = time.Hour
	again, err := s.Reserve(ctx, r1b)
	if err != nil || !again.ExpiresAt.Equal(got.ExpiresAt) || again.State != inventory.StateHeld {
		t.Fatalf("Reserve again = %+v, %v; want the first", again, err)
	}
	wantPool(t, s, "s1:a", 7, 3, 0)
	// Same id, different user or lines: conflict.
	_, err = s.Reserve(ctx, req("s1:r1", "u2", time.Minute, line("s1:a", 3, 0), line("s1:b", 2, 0)))
	wantErr(t, "Reserve other user", err, inventory.ErrIDConflict)
	_, err = s.Reserve(ctx, req("s1:r1", "u1", time.Minute, line("s1:a", 4, 0), line("s1:b", 2, 0)))
	wantErr(t, "Reserve other qty", err, inventory.ErrIDConflict)
	_, err = s.Reserve(ctx, req("s1:r1", "u1", time.Minute, line("s1:a", 3, 0)))
	wantErr(t, "Reserve fewer lines", err, inventory.ErrIDConflict)

	// Refund of a held one, release of a paid one: bad state.
	_, err = s.Refund(ctx, "s1:r1")
	wantErr(t, "Refund held", err, inventory.ErrBadState)
	c, err := s.Confirm(ctx, "s1:r1")
	if err != nil || c.State != inventory.StatePaid {
		t.Fatalf("Confirm = %+v, %v", c, err)
	}
	wantPool(t, s, "s1:a", 7, 0, 3)
	if c2, err := s.Confirm(ctx, "s1:r1"); err != nil || c2.State != inventory.StatePaid {
		t.Fatalf("Confirm again = %+v, %v", c2, err)
	}
	wantPool(t, s, "s1:a", 7, 0, 3)
	_, err = s.Release(ctx, "s1:r1")
	wantErr(t, "Release paid", err, inventory.ErrBadState)
	rf, err := s.Refund(ctx, "s1:r1")
	if err != nil || rf.State != inventory.StateReleased || !rf.Refunded {
		t.Fatalf("Refund = %+v, %v", rf, err)
	}
	wantPool(t, s, "s1:a", 10, 0, 0)
	wantPool(t, s, "s1:b", 5, 0, 0)
	if rf2, err := s.Refund(ctx, "s1:r1"); err != nil || !rf2.Refunded {
		t.Fatalf("Refund again = %+v, %v", rf2, err)
	}
	wantPool(t, s, "s1:a", 10, 0, 0)
	_, err = s.Confirm(ctx, "s1:r1")
	wantErr(t, "Confirm refunded", err, inventory.ErrBadState)
	// A reserve replay of a released id returns it, released.
	if rr, err := s.Reserve(ctx, r1); err != nil || rr.State != inventory.StateReleased {
		t.Fatalf("Reserve replay of released = %+v, %v", rr, err)
	}
	wantPool(t, s, "s1:a", 10, 0, 0)

	// Release of a held one, twice.
	if _, err := s.Reserve(ctx, req("s1:r2", "u1", time.Minute, line("s1:a", 10, 0))); err != nil {
		t.Fatal(err)
	}
	_, err = s.Reserve(ctx, req("s1:r3", "u1", time.Minute, line("s1:b", 1, 0), line("s1:a", 1, 0)))
	wantErr(t, "Reserve sold out", err, inventory.ErrSoldOut)
	wantPool(t, s, "s1:b", 5, 0, 0) // all or nothing
	for i := 0; i < 2; i++ {
		rl, err := s.Release(ctx, "s1:r2")
		if err != nil || rl.State != inventory.StateReleased || rl.Refunded {
			t.Fatalf("Release #%d = %+v, %v", i, rl, err)
		}
	}
	_, err = s.Refund(ctx, "s1:r2")
	wantErr(t, "Refund released", err, inventory.ErrBadState)
	wantPool(t, s, "s1:a", 10, 0, 0)

	// Meta is opaque bytes, kept as they are.
	bin := inventory.ReserveRequest{ID: "s1:bin", User: "u9", TTL: time.Minute, Lines: []inventory.Line{line("s1:b", 1, 0)},
		Meta: []byte{0, 0xff, '\n', ' ', 'x', 0}}
	if _, err := s.Reserve(ctx, bin); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Reservation(ctx, "s1:bin"); err != nil || string(r.Meta) != string(bin.Meta) || r.User != "u9" {
		t.Fatalf("Reservation(s1:bin) = %+v, %v; want meta %q", r, err, bin.Meta)
	}
	if _, err := s.Release(ctx, "s1:bin"); err != nil {
		t.Fatal(err)
	}

	_, err = s.Reserve(ctx, req("s1:r4", "u1", time.Minute, line("s1:zz", 1, 0)))
	wantErr(t, "Reserve unknown pool", err, inventory.ErrPoolNotFound)
	_, err = s.Confirm(ctx, "s1:nope")
	wantErr(t, "Confirm unknown", err, inventory.ErrReservationNotFound)
	_, err = s.Reservation(ctx, "s1:nope")
	wantErr(t, "Reservation unknown", err, inventory.ErrReservationNotFound)
	_, err = s.Pool(ctx, "s1:nope")
	wantErr(t, "Pool unknown", err, inventory.ErrPoolNotFound)
}

func TestLimits(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, "", inventory.Options{})
	ctx := context.Background()
	if err := s.CreatePool(ctx, "s:a", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, req("s:1", "u", time.Minute, line("s:a", 2, 3))); err != nil {
		t.Fatal(err)
	}
	_, err := s.Reserve(ctx, req("s:2", "u", time.Minute, line("s:a", 2, 3)))
	wantErr(t, "Reserve over limit", err, inventory.ErrLimitExceeded)
	// Units reserved without a limit count against a later limit.
	if _, err := s.Reserve(ctx, req("s:3", "v", time.Minute, line("s:a", 5, 0))); err != nil {
		t.Fatal(err)
	}
	_, err = s.Reserve(ctx, req("s:4", "v", time.Minute, line("s:a", 1, 5)))
	wantErr(t, "Reserve over limit after unlimited", err, inventory.ErrLimitExceeded)
	// Paid units count; released and refunded ones come back.
	if _, err := s.Confirm(ctx, "s:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, req("s:5", "u", time.Minute, line("s:a", 1, 3))); err != nil {
		t.Fatal(err)
	}
	_, err = s.Reserve(ctx, req("s:6", "u", time.Minute, line("s:a", 1, 3)))
	wantErr(t, "Reserve over limit with paid", err, inventory.ErrLimitExceeded)
	if _, err := s.Release(ctx, "s:5"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refund(ctx, "s:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, req("s:7", "u", time.Minute, line("s:a", 3, 3))); err != nil {
		t.Fatalf("Reserve after release and refund = %v", err)
	}
	wantPool(t, s, "s:a", 92, 8, 0)
}

func TestConfirmAfterDeadline(t *testing.T) {
	srv := redistest.Start(t)
	ck := newClock()
	s := open(t, srv, "", inventory.Options{Now: ck.Now})
	ctx := context.Background()
	if err := s.CreatePool(ctx, "s:a", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, req("s:1", "u", time.Second, line("s:a", 2, 2))); err != nil {
		t.Fatal(err)
	}
	ck.Advance(999 * time.Millisecond)
	if _, err := s.Reserve(ctx, req("s:2", "u", time.Second, line("s:a", 1, 0))); err != nil {
		t.Fatal(err)
	}
	ck.Advance(time.Millisecond) // s:1 is at its deadline
	_, err := s.Confirm(ctx, "s:1")
	wantErr(t, "Confirm at deadline", err, inventory.ErrBadState)
	r, err := s.Reservation(ctx, "s:1")
	if err != nil || r.State != inventory.StateReleased || r.Refunded {
		t.Fatalf("Reservation after late confirm = %+v, %v", r, err)
	}
	wantPool(t, s, "s:a", 4, 1, 0)
	// Expire does not see it again.
	out, err := s.Expire(ctx, ck.Now().Add(time.Hour), 10)
	if err != nil || len(out) != 1 || out[0].ID != "s:2" || out[0].State != inventory.StateReleased {
		t.Fatalf("Expire = %+v, %v; want only s:2", out, err)
	}
	wantPool(t, s, "s:a", 5, 0, 0)
	// The limit came back.
	if _, err := s.Reserve(ctx, req("s:3", "u", time.Second, line("s:a", 2, 2))); err != nil {
		t.Fatal(err)
	}
}

func TestMoveDrainFeed(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, "", inventory.Options{})
	ctx := context.Background()
	for _, p := range []string{"s:a", "s:b"} {
		if err := s.CreatePool(ctx, p, 10); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreatePool(ctx, "o:c", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, req("s:1", "u", time.Minute, line("s:a", 4, 0))); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Move too many", s.Move(ctx, "s:a", "s:b", 7), inventory.ErrSoldOut)
	wantErr(t, "Move other tag", s.Move(ctx, "s:a", "o:c", 1), inventory.ErrInvalid)
	wantErr(t, "Move zero", s.Move(ctx, "s:a", "s:b", 0), inventory.ErrInvalid)
	wantErr(t, "Move unknown", s.Move(ctx, "s:a", "s:zz", 1), inventory.ErrPoolNotFound)
	if err := s.Move(ctx, "s:a", "s:b", 2); err != nil {
		t.Fatal(err)
	}
	wantPool(t, s, "s:a", 4, 4, 0)
	wantPool(t, s, "s:b", 12, 0, 0)
	n, err := s.Drain(ctx, "s:a", "s:b")
	if err != nil || n != 4 {
		t.Fatalf("Drain = %d, %v; want 4", n, err)
	}
	wantPool(t, s, "s:a", 0, 4, 0)
	if p := mustPool(t, s, "s:a"); p.Supplied != 4 {
		t.Fatalf("supplied after drain = %d; want 4", p.Supplied)
	}
	if n, err := s.Drain(ctx, "s:a", "s:b"); err != nil || n != 0 {
		t.Fatalf("Drain empty = %d, %v", n, err)
	}

	// Feed on s:a: held 4, available 0, supplied 4.
	feed := func(onHand int64, seq uint64, applied bool, supplied, avail, short int64) {
		t.Helper()
		fr, err := s.SetOnHand(ctx, "s:a", onHand, seq)
		if err != nil {
			t.Fatalf("SetOnHand(%d, %d) = %v", onHand, seq, err)
		}
		p := fr.Pool
		if fr.Applied != applied || p.Supplied != supplied || p.Available != avail || p.Short != short {
			t.Fatalf("SetOnHand(%d, %d) = %+v; want applied %v supplied %d avail %d short %d", onHand, seq, fr, applied, supplied, avail, short)
		}
		if p.Supplied != p.Available+p.Held+p.Sold {
			t.Fatalf("SetOnHand(%d, %d) = %+v breaks Supplied == A+H+S", onHand, seq, p)
		}
		if got := mustPool(t, s, "s:a"); got != p {
			t.Fatalf("Pool after SetOnHand = %+v; want %+v", got, p)
		}
	}
	feed(10, 1, true, 14, 10, 0)  // +10
	feed(99, 1, false, 14, 10, 0) // same seq: nothing
	feed(12, 3, true, 16, 12, 0)  // +2
	feed(1, 2, false, 16, 12, 0)  // stale
	feed(0, 4, true, 4, 0, 0)     // -12: all available
	feed(0, 5, true, 4, 0, 0)     // 0
	// A new level below what is committed: short, never oversell.
	if _, err := s.Confirm(ctx, "s:1"); err != nil {
		t.Fatal(err)
	}
	feed(5, 6, true, 9, 5, 0) // +5; sold 4
	feed(2, 7, true, 6, 2, 0) // -3 from available
	if _, err := s.Reserve(ctx, req("s:9", "u", time.Minute, line("s:a", 2, 0))); err != nil {
		t.Fatal(err)
	}
	feed(1, 8, true, 6, 0, 1)                      // -1, nothing available: short
	feed(0, 9, true, 6, 0, 2)                      // -1 more
	feed(0, 10, true, 6, 0, 2)                     // no change
	feed(3, 18446744073709551614, true, 7, 1, 0)   // +3: pays short 2, then +1
	feed(3, 18446744073709551615, true, 7, 1, 0)   // max seq, no change
	feed(30, 18446744073709551615, false, 7, 1, 0) // nothing above max
	wantPool(t, s, "s:a", 1, 2, 4)

	// Any unit that comes back pays the short first, a release too.
	if err := s.CreatePool(ctx, "s:d", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetOnHand(ctx, "s:d", 3, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, req("s:10", "u", time.Minute, line("s:d", 3, 0))); err != nil {
		t.Fatal(err)
	}
	if fr, err := s.SetOnHand(ctx, "s:d", 1, 2); err != nil || fr.Pool.Short != 2 || fr.Pool.Supplied != 3 {
		t.Fatalf("SetOnHand below held = %+v, %v; want short 2", fr, err)
	}
	_, err = s.Reserve(ctx, req("s:11", "u", time.Minute, line("s:d", 1, 0)))
	wantErr(t, "Reserve while short", err, inventory.ErrSoldOut)
	wantErr(t, "Move while short", s.Move(ctx, "s:d", "s:b", 1), inventory.ErrSoldOut)
	if n, err := s.Drain(ctx, "s:d", "s:b"); err != nil || n != 0 {
		t.Fatalf("Drain while short = %d, %v; want 0", n, err)
	}
	if _, err := s.Release(ctx, "s:10"); err != nil {
		t.Fatal(err)
	}
	if p := mustPool(t, s, "s:d"); p.Available != 1 || p.Short != 0 || p.Supplied != 1 {
		t.Fatalf("Pool after release while short = %+v; want available 1, short 0", p)
	}
	_, err = s.SetOnHand(ctx, "s:a", -1, 20)
	wantErr(t, "SetOnHand negative", err, inventory.ErrInvalid)
	_, err = s.SetOnHand(ctx, "s:zz", 1, 20)
	wantErr(t, "SetOnHand unknown", err, inventory.ErrPoolNotFound)
}

// TestInvalid: every bad input is refused with ErrInvalid before Redis sees
// it, and nothing changes.
func TestInvalid(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, "", inventory.Options{MaxQuantity: 10})
	ctx := context.Background()
	if err := s.CreatePool(ctx, "s:a", 10); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePool(ctx, "s:b", 10); err != nil {
		t.Fatal(err)
	}
	long := "s:" + strings.Repeat("x", inventory.IDLenMax)
	ok := func() inventory.ReserveRequest { return req("s:1", "u", time.Minute, line("s:a", 1, 0)) }
	bad := map[string]func(r *inventory.ReserveRequest){
		"empty id":       func(r *inventory.ReserveRequest) { r.ID = "" },
		"id without tag": func(r *inventory.ReserveRequest) { r.ID = "s1" },
		"long id":        func(r *inventory.ReserveRequest) { r.ID = long },
		"brace id":       func(r *inventory.ReserveRequest) { r.ID = "s:{1}" },
		"empty user":     func(r *inventory.ReserveRequest) { r.User = "" },
		"no lines":       func(r *inventory.ReserveRequest) { r.Lines = nil },
		"too many lines": func(r *inventory.ReserveRequest) {
			r.Lines = nil
			for i := 0; i <= inventory.LinesMax; i++ {
				r.Lines = append(r.Lines, line(fmt.Sprintf("s:p%d", i), 1, 0))
			}
		},
		"zero ttl":       func(r *inventory.ReserveRequest) { r.TTL = 0 },
		"negative ttl":   func(r *inventory.ReserveRequest) { r.TTL = -time.Second },
		"long meta":      func(r *inventory.ReserveRequest) { r.Meta = make([]byte, inventory.MetaLenMax+1) },
		"zero qty":       func(r *inventory.ReserveRequest) { r.Lines[0].Quantity = 0 },
		"negative qty":   func(r *inventory.ReserveRequest) { r.Lines[0].Quantity = -1 },
		"qty over max":   func(r *inventory.ReserveRequest) { r.Lines[0].Quantity = 11 },
		"negative limit": func(r *inventory.ReserveRequest) { r.Lines[0].Limit = -1 },
		"other tag":      func(r *inventory.ReserveRequest) { r.Lines[0].Pool = "o:a" },
		"duplicate pool": func(r *inventory.ReserveRequest) { r.Lines = append(r.Lines, line("s:a", 1, 0)) },
	}
	for name, f := range bad {
		r := ok()
		f(&r)
		_, err := s.Reserve(ctx, r)
		wantErr(t, "Reserve "+name, err, inventory.ErrInvalid)
	}
	wantErr(t, "CreatePool empty", s.CreatePool(ctx, "", 1), inventory.ErrInvalid)
	wantErr(t, "CreatePool negative", s.CreatePool(ctx, "s:c", -1), inventory.ErrInvalid)
	wantErr(t, "CreatePool huge", s.CreatePool(ctx, "s:c", inventory.UnitsMax+1), inventory.ErrInvalid)
	wantErr(t, "CreatePool space", s.CreatePool(ctx, "s:c d", 1), inventory.ErrInvalid)
	wantErr(t, "Move same", s.Move(ctx, "s:a", "s:a", 1), inventory.ErrInvalid)
	wantErr(t, "Move negative", s.Move(ctx, "s:a", "s:b", -1), inventory.ErrInvalid)
	_, err := s.Drain(ctx, "s:a", "")
	wantErr(t, "Drain empty", err, inventory.ErrInvalid)
	_, err = s.SetOnHand(ctx, "s:a", inventory.UnitsMax+1, 1)
	wantErr(t, "SetOnHand huge", err, inventory.ErrInvalid)
	_, _, err = s.Scan(ctx, 0, "", 10)
	wantErr(t, "Scan state 0", err, inventory.ErrInvalid)
	_, _, err = s.Scan(ctx, inventory.StateHeld, "", 0)
	wantErr(t, "Scan limit 0", err, inventory.ErrInvalid)
	for _, id := range []string{"", long, "s:{x}"} {
		_, err = s.Confirm(ctx, id)
		wantErr(t, "Confirm "+id, err, inventory.ErrInvalid)
	}
	wantPool(t, s, "s:a", 10, 0, 0)
	wantPool(t, s, "s:b", 10, 0, 0)
	_, err = s.Pool(ctx, "s:c")
	wantErr(t, "Pool s:c", err, inventory.ErrPoolNotFound)
	rs, _, err := s.Scan(ctx, inventory.StateHeld, "", 10)
	if err != nil || len(rs) != 0 {
		t.Fatalf("Scan after bad input = %v, %v; want nothing", rs, err)
	}
}
