package invtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// Run checks every Store method and every error on stores from f.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"CreatePool", testCreatePool},
		{"Reserve", testReserve},
		{"SoldOut", testSoldOut},
		{"Limit", testLimit},
		{"ErrorOrder", testErrorOrder},
		{"Invalid", testInvalid},
		{"MaxQuantity", testMaxQuantity},
		{"UnknownPool", testUnknownPool},
		{"Idempotent", testIdempotent},
		{"IdempotentConcurrent", testIdempotentConcurrent},
		{"MultiLine", testMultiLine},
		{"ConfirmReleaseRefund", testStateMachine},
		{"UnknownReservation", testUnknownReservation},
		{"ConfirmAfterDeadline", testConfirmAfterDeadline},
		{"Expire", testExpire},
		{"ExpireMax", testExpireMax},
		{"MoveDrain", testMoveDrain},
		{"Transfer", testTransfer},
		{"TransferConcurrent", testTransferConcurrent},
		{"SetOnHand", testSetOnHand},
		{"Short", testShort},
		{"Scan", testScan},
		{"Forget", testForget},
		{"Purge", testPurge},
		{"PurgeConcurrent", testPurgeConcurrent},
		{"ClosePool", testClosePool},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
	}
}

func testCreatePool(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 10)
	h.create("s1:zero", 0)
	h.want("s1:a", 10, 0, 0)
	h.want("s1:zero", 0, 0, 0)
	p := h.pool("s1:a")
	if p.Supplied != 10 || p.OnHand != 0 || p.Seq != 0 || p.Short != 0 {
		t.Fatalf("Pool = %+v; want supplied 10, no feed", p)
	}
	wantErr(t, "CreatePool(existing)", h.s.CreatePool(h.ctx, "s1:a", 5), inventory.ErrPoolExists)
	h.want("s1:a", 10, 0, 0)
	for _, id := range []string{"", "a b", "a{b}", strings.Repeat("x", inventory.IDLenMax+1), "tab\t", "é"} {
		wantErr(t, fmt.Sprintf("CreatePool(%q)", id), h.s.CreatePool(h.ctx, id, 1), inventory.ErrInvalid)
	}
	h.create(strings.Repeat("x", inventory.IDLenMax), 1)
	wantErr(t, "CreatePool(negative)", h.s.CreatePool(h.ctx, "s1:n", -1), inventory.ErrInvalid)
	wantErr(t, "CreatePool(>UnitsMax)", h.s.CreatePool(h.ctx, "s1:n", inventory.UnitsMax+1), inventory.ErrInvalid)
	_, err := h.s.Pool(h.ctx, "s1:n")
	wantErr(t, "Pool(refused)", err, inventory.ErrPoolNotFound)
	_, err = h.s.Pool(h.ctx, "s1:nope")
	wantErr(t, "Pool(unknown)", err, inventory.ErrPoolNotFound)
	_, err = h.s.Pool(h.ctx, "")
	wantErr(t, "Pool(\"\")", err, inventory.ErrInvalid)
}

func testReserve(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 10)
	r := req("s1:r1", "u1", line("s1:a", 2, 0))
	r.TTL = 90 * time.Second
	r.Meta = []byte(`{"guide":"g7"}`)
	now := h.clock.Now()
	res := h.mustReserve(r)
	want := inventory.Reservation{
		ID: "s1:r1", User: "u1", Lines: []inventory.Line{line("s1:a", 2, 0)}, State: inventory.StateHeld,
		Meta: []byte(`{"guide":"g7"}`), CreatedAt: now, ExpiresAt: now.Add(90 * time.Second),
	}
	if !sameReservation(res, want) {
		t.Fatalf("Reserve = %+v; want %+v", res, want)
	}
	got, err := h.s.Reservation(h.ctx, "s1:r1")
	if err != nil || !sameReservation(got, want) {
		t.Fatalf("Reservation = %+v, %v; want %+v", got, err, want)
	}
	h.want("s1:a", 8, 2, 0)
	// The caller may reuse its buffers: the store keeps its own copy.
	r.Lines[0].Quantity = 5
	r.Meta[0] = 'X'
	got, _ = h.s.Reservation(h.ctx, "s1:r1")
	if !sameReservation(got, want) {
		t.Fatalf("Reservation after caller changed its request = %+v; want %+v", got, want)
	}
	// A sub-millisecond TTL still holds for a millisecond.
	r2 := req("s1:r2", "u1", line("s1:a", 1, 0))
	r2.TTL = time.Microsecond
	res = h.mustReserve(r2)
	if !res.ExpiresAt.Equal(now.Add(time.Millisecond)) {
		t.Fatalf("ExpiresAt with 1us TTL = %v; want %v", res.ExpiresAt, now.Add(time.Millisecond))
	}
	h.want("s1:a", 7, 3, 0)
}

func testSoldOut(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 3)
	_, err := h.reserve(req("s1:r1", "u1", line("s1:a", 4, 0)))
	wantErr(t, "Reserve(4 of 3)", err, inventory.ErrSoldOut)
	h.want("s1:a", 3, 0, 0)
	_, err = h.s.Reservation(h.ctx, "s1:r1")
	wantErr(t, "Reservation(refused)", err, inventory.ErrReservationNotFound)
	h.mustReserve(req("s1:r2", "u1", line("s1:a", 3, 0)))
	h.want("s1:a", 0, 3, 0)
	_, err = h.reserve(req("s1:r3", "u2", line("s1:a", 1, 0)))
	wantErr(t, "Reserve(1 of 0)", err, inventory.ErrSoldOut)
	h.want("s1:a", 0, 3, 0)
	// A refused id may be used again once units are back.
	if _, err := h.s.Release(h.ctx, "s1:r2"); err != nil {
		t.Fatal(err)
	}
	h.mustReserve(req("s1:r1", "u1", line("s1:a", 3, 0)))
	h.want("s1:a", 0, 3, 0)
}

func testLimit(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 100)
	h.mustReserve(req("s1:a1", "u1", line("s1:a", 1, 2)))
	h.mustReserve(req("s1:a2", "u1", line("s1:a", 1, 2)))
	_, err := h.reserve(req("s1:a3", "u1", line("s1:a", 1, 2)))
	wantErr(t, "Reserve(3rd unit, limit 2)", err, inventory.ErrLimitExceeded)
	h.want("s1:a", 98, 2, 0)
	h.mustReserve(req("s1:b1", "u2", line("s1:a", 2, 2)))
	_, err = h.reserve(req("s1:c1", "u3", line("s1:a", 3, 2)))
	wantErr(t, "Reserve(3 with limit 2)", err, inventory.ErrLimitExceeded)
	// Released units give the allowance back.
	if _, err := h.s.Release(h.ctx, "s1:a1"); err != nil {
		t.Fatal(err)
	}
	h.mustReserve(req("s1:a3", "u1", line("s1:a", 1, 2)))
	// Paid units still count; refunded ones do not.
	if _, err := h.s.Confirm(h.ctx, "s1:a2"); err != nil {
		t.Fatal(err)
	}
	_, err = h.reserve(req("s1:a4", "u1", line("s1:a", 1, 2)))
	wantErr(t, "Reserve(after paid)", err, inventory.ErrLimitExceeded)
	if _, err := h.s.Refund(h.ctx, "s1:a2"); err != nil {
		t.Fatal(err)
	}
	h.mustReserve(req("s1:a4", "u1", line("s1:a", 1, 2)))
	// Expired units give the allowance back.
	h.clock.Advance(2 * time.Minute)
	if _, err := h.s.Expire(h.ctx, h.clock.Now(), 100); err != nil {
		t.Fatal(err)
	}
	h.mustReserve(req("s1:a5", "u1", line("s1:a", 2, 2)))
	// Units reserved without a limit count against a later limit.
	h.mustReserve(req("s1:d1", "u4", line("s1:a", 2, 0)))
	_, err = h.reserve(req("s1:d2", "u4", line("s1:a", 1, 2)))
	wantErr(t, "Reserve(limit after unlimited units)", err, inventory.ErrLimitExceeded)
	h.mustReserve(req("s1:d3", "u4", line("s1:a", 1, 3)))
	// Limits are per pool.
	h.create("s1:b", 10)
	h.mustReserve(req("s1:e1", "u1", line("s1:b", 2, 2)))
	h.want("s1:a", 95, 5, 0)
}

func testErrorOrder(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 1)
	h.create("s1:b", 10)
	// Sold out is reported before the limit.
	_, err := h.reserve(req("s1:r1", "u1", line("s1:a", 2, 1)))
	wantErr(t, "Reserve(sold out and over limit)", err, inventory.ErrSoldOut)
	// Unknown pool before sold out.
	_, err = h.reserve(req("s1:r1", "u1", line("s1:a", 2, 0), line("s1:nope", 1, 0)))
	wantErr(t, "Reserve(sold out and unknown pool)", err, inventory.ErrPoolNotFound)
	// Limit on one line, stock on another: sold out first.
	_, err = h.reserve(req("s1:r1", "u1", line("s1:b", 3, 2), line("s1:a", 2, 0)))
	wantErr(t, "Reserve(limit on b, sold out on a)", err, inventory.ErrSoldOut)
	// Invalid before anything else, including an id conflict.
	h.mustReserve(req("s1:r2", "u1", line("s1:b", 1, 0)))
	_, err = h.reserve(req("s1:r2", "u1", line("s1:b", 0, 0)))
	wantErr(t, "Reserve(existing id, invalid)", err, inventory.ErrInvalid)
	// An id conflict before an unknown pool.
	_, err = h.reserve(req("s1:r2", "u1", line("s1:nope", 1, 0)))
	wantErr(t, "Reserve(existing id, unknown pool)", err, inventory.ErrIDConflict)
	h.want("s1:a", 1, 0, 0)
	h.want("s1:b", 9, 1, 0)
}

func testInvalid(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 10)
	h.create("s1:b", 10)
	h.create("s2:c", 10)
	ok := func() inventory.ReserveRequest { return req("s1:r", "u1", line("s1:a", 1, 0)) }
	many := make([]inventory.Line, inventory.LinesMax+1)
	for i := range many {
		many[i] = line(fmt.Sprintf("s1:p%d", i), 1, 0)
	}
	cases := []struct {
		name string
		mod  func(*inventory.ReserveRequest)
	}{
		{"zero quantity", func(r *inventory.ReserveRequest) { r.Lines[0].Quantity = 0 }},
		{"negative quantity", func(r *inventory.ReserveRequest) { r.Lines[0].Quantity = -1 }},
		{"quantity above MaxQuantity", func(r *inventory.ReserveRequest) { r.Lines[0].Quantity = inventory.QuantityMaxDefault + 1 }},
		{"absurd quantity", func(r *inventory.ReserveRequest) { r.Lines[0].Quantity = 1 << 62 }},
		{"negative limit", func(r *inventory.ReserveRequest) { r.Lines[0].Limit = -1 }},
		{"no lines", func(r *inventory.ReserveRequest) { r.Lines = nil }},
		{"too many lines", func(r *inventory.ReserveRequest) { r.Lines = many }},
		{"empty id", func(r *inventory.ReserveRequest) { r.ID = "" }},
		{"id without tag", func(r *inventory.ReserveRequest) { r.ID = "r1" }},
		{"id with empty tag", func(r *inventory.ReserveRequest) { r.ID = ":r1" }},
		{"id with empty rest", func(r *inventory.ReserveRequest) { r.ID = "s1:" }},
		{"oversized id", func(r *inventory.ReserveRequest) { r.ID = "s1:" + strings.Repeat("x", inventory.IDLenMax) }},
		{"id with space", func(r *inventory.ReserveRequest) { r.ID = "s1:a b" }},
		{"id of other tag", func(r *inventory.ReserveRequest) { r.ID = "s2:r" }},
		{"empty user", func(r *inventory.ReserveRequest) { r.User = "" }},
		{"oversized user", func(r *inventory.ReserveRequest) { r.User = strings.Repeat("u", inventory.IDLenMax+1) }},
		{"empty pool", func(r *inventory.ReserveRequest) { r.Lines[0].Pool = "" }},
		{"mixed tags", func(r *inventory.ReserveRequest) { r.Lines = append(r.Lines, line("s2:c", 1, 0)) }},
		{"duplicate pool", func(r *inventory.ReserveRequest) { r.Lines = append(r.Lines, line("s1:a", 1, 0)) }},
		{"zero ttl", func(r *inventory.ReserveRequest) { r.TTL = 0 }},
		{"negative ttl", func(r *inventory.ReserveRequest) { r.TTL = -time.Second }},
		{"oversized meta", func(r *inventory.ReserveRequest) { r.Meta = make([]byte, inventory.MetaLenMax+1) }},
	}
	for _, c := range cases {
		r := ok()
		c.mod(&r)
		_, err := h.reserve(r)
		wantErr(t, "Reserve("+c.name+")", err, inventory.ErrInvalid)
		h.want("s1:a", 10, 0, 0)
		h.want("s1:b", 10, 0, 0)
		h.want("s2:c", 10, 0, 0)
	}
	_, err := h.s.Reservation(h.ctx, "s1:r")
	wantErr(t, "Reservation(after refusals)", err, inventory.ErrReservationNotFound)
	// The bounds themselves are accepted.
	r := ok()
	r.Meta = make([]byte, inventory.MetaLenMax)
	r.ID = "s1:" + strings.Repeat("x", inventory.IDLenMax-3)
	h.mustReserve(r)
	lines := make([]inventory.Line, inventory.LinesMax)
	for i := range lines {
		id := fmt.Sprintf("s1:m%d", i)
		h.create(id, 1)
		lines[i] = line(id, 1, 0)
	}
	h.mustReserve(req("s1:max", "u1", lines...))
	h.want("s1:m0", 0, 1, 0)
}

func testMaxQuantity(t *testing.T, f Factory) {
	h := newHOpts(t, f, inventory.Options{MaxQuantity: 5})
	h.create("s1:a", 100)
	_, err := h.reserve(req("s1:r1", "u1", line("s1:a", 6, 0)))
	wantErr(t, "Reserve(6, MaxQuantity 5)", err, inventory.ErrInvalid)
	h.mustReserve(req("s1:r1", "u1", line("s1:a", 5, 0)))
	h.want("s1:a", 95, 5, 0)
}

func testUnknownPool(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 10)
	_, err := h.reserve(req("s1:r1", "u1", line("s1:nope", 1, 0)))
	wantErr(t, "Reserve(unknown pool)", err, inventory.ErrPoolNotFound)
	_, err = h.reserve(req("s1:r1", "u1", line("s1:a", 1, 0), line("s1:nope", 1, 0)))
	wantErr(t, "Reserve(one unknown pool of two)", err, inventory.ErrPoolNotFound)
	h.want("s1:a", 10, 0, 0)
	_, err = h.s.Reservation(h.ctx, "s1:r1")
	wantErr(t, "Reservation(refused)", err, inventory.ErrReservationNotFound)
	// The id is looked up before the pools: an existing id asked again
	// with an unknown pool is another request (a conflict), and the same
	// request is a replay.
	h.mustReserve(req("s1:r2", "u1", line("s1:a", 1, 0)))
	_, err = h.reserve(req("s1:r2", "u1", line("s1:nope", 1, 0)))
	wantErr(t, "Reserve(existing id, unknown pool)", err, inventory.ErrIDConflict)
	if r, err := h.reserve(req("s1:r2", "u1", line("s1:a", 1, 0))); err != nil || !r.Existed {
		t.Fatalf("Reserve(replay) = %+v, %v; want the reservation, Existed", r, err)
	}
	h.want("s1:a", 9, 1, 0)
}

func testIdempotent(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 10)
	h.create("s1:b", 10)
	r := req("s1:r1", "u1", line("s1:a", 2, 3), line("s1:b", 1, 0))
	first := h.mustReserve(r)
	if first.Existed {
		t.Fatalf("Reserve(new id).Existed = true")
	}
	h.clock.Advance(time.Second)
	again := h.mustReserve(r)
	if !again.Existed {
		t.Fatalf("Reserve again: Existed = false; want true (nothing taken)")
	}
	first.Existed = true // the only difference
	if !sameReservation(first, again) {
		t.Fatalf("Reserve again = %+v; want the first %+v", again, first)
	}
	// TTL and Meta are not part of the comparison.
	r2 := r
	r2.TTL = time.Hour
	r2.Meta = []byte("other")
	again = h.mustReserve(r2)
	if !sameReservation(first, again) {
		t.Fatalf("Reserve with other TTL/meta = %+v; want the first %+v", again, first)
	}
	h.want("s1:a", 8, 2, 0)
	h.want("s1:b", 9, 1, 0)
	conflicts := []inventory.ReserveRequest{
		req("s1:r1", "u2", line("s1:a", 2, 3), line("s1:b", 1, 0)),
		req("s1:r1", "u1", line("s1:a", 3, 3), line("s1:b", 1, 0)),
		req("s1:r1", "u1", line("s1:a", 2, 2), line("s1:b", 1, 0)),
		req("s1:r1", "u1", line("s1:a", 2, 3)),
		req("s1:r1", "u1", line("s1:b", 1, 0), line("s1:a", 2, 3)),
	}
	for i, c := range conflicts {
		_, err := h.reserve(c)
		wantErr(t, fmt.Sprintf("Reserve(conflict %d)", i), err, inventory.ErrIDConflict)
	}
	h.want("s1:a", 8, 2, 0)
	// Whatever the state: a released reservation is returned, not redone.
	if _, err := h.s.Release(h.ctx, "s1:r1"); err != nil {
		t.Fatal(err)
	}
	again = h.mustReserve(r)
	if again.State != inventory.StateReleased {
		t.Fatalf("Reserve(released id).State = %v; want released", again.State)
	}
	h.want("s1:a", 10, 0, 0)
}

func testIdempotentConcurrent(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 100)
	const goroutines = 16
	var wg sync.WaitGroup
	results := make([]inventory.Reservation, goroutines)
	errs := make([]error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[g], errs[g] = h.s.Reserve(h.ctx, req("s1:same", "u1", line("s1:a", 3, 0)))
		}()
	}
	wg.Wait()
	created := 0
	for g := range goroutines {
		if !results[g].Existed {
			created++
		}
		a, b := results[g], results[0]
		a.Existed, b.Existed = false, false
		if errs[g] != nil || !sameReservation(a, b) {
			t.Fatalf("goroutine %d: Reserve = %+v, %v; want %+v", g, results[g], errs[g], results[0])
		}
	}
	if created != 1 {
		t.Fatalf("%d of %d concurrent Reserve calls of one id say they created it; want 1", created, goroutines)
	}
	h.want("s1:a", 97, 3, 0)
}

func testMultiLine(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 5)
	h.create("s1:b", 1)
	h.create("s1:c", 5)
	// All or nothing: b lacks units, so a and c keep theirs.
	_, err := h.reserve(req("s1:r1", "u1", line("s1:a", 2, 0), line("s1:b", 2, 0), line("s1:c", 2, 0)))
	wantErr(t, "Reserve(b short)", err, inventory.ErrSoldOut)
	h.want("s1:a", 5, 0, 0)
	h.want("s1:b", 1, 0, 0)
	h.want("s1:c", 5, 0, 0)
	_, err = h.reserve(req("s1:r1", "u1", line("s1:a", 2, 0), line("s1:c", 2, 1)))
	wantErr(t, "Reserve(c over limit)", err, inventory.ErrLimitExceeded)
	h.want("s1:a", 5, 0, 0)
	h.want("s1:c", 5, 0, 0)
	// The refusal gave back u1's count on a too: a's whole limit is free.
	h.mustReserve(req("s1:r0", "u1", line("s1:a", 2, 2)))
	if _, err := h.s.Release(h.ctx, "s1:r0"); err != nil {
		t.Fatal(err)
	}
	h.want("s1:a", 5, 0, 0)
	h.mustReserve(req("s1:r1", "u1", line("s1:c", 2, 0), line("s1:a", 2, 0), line("s1:b", 1, 0)))
	h.want("s1:a", 3, 2, 0)
	h.want("s1:b", 0, 1, 0)
	h.want("s1:c", 3, 2, 0)
	if _, err := h.s.Confirm(h.ctx, "s1:r1"); err != nil {
		t.Fatal(err)
	}
	h.want("s1:a", 3, 0, 2)
	h.want("s1:b", 0, 0, 1)
	if _, err := h.s.Refund(h.ctx, "s1:r1"); err != nil {
		t.Fatal(err)
	}
	h.want("s1:a", 5, 0, 0)
	h.want("s1:b", 1, 0, 0)
	h.want("s1:c", 5, 0, 0)
}

func testStateMachine(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 10)
	ctx := h.ctx
	type step struct {
		op    string
		err   error
		state inventory.State
	}
	do := func(id, op string) (inventory.Reservation, error) {
		var (
			r   inventory.Reservation
			err error
		)
		switch op {
		case "confirm":
			r, err = h.s.Confirm(ctx, id)
		case "release":
			r, err = h.s.Release(ctx, id)
		case "refund":
			r, err = h.s.Refund(ctx, id)
		}
		h.identity()
		return r, err
	}
	run := func(id string, steps []step) {
		t.Helper()
		h.mustReserve(req(id, "u1", line("s1:a", 2, 0)))
		for _, s := range steps {
			r, err := do(id, s.op)
			wantErr(t, fmt.Sprintf("%s(%q)", s.op, id), err, s.err)
			if err == nil && r.State != s.state {
				t.Fatalf("%s(%q).State = %v; want %v", s.op, id, r.State, s.state)
			}
			got := h.wantRes(id, s.state, s.state == inventory.StateReleased && strings.HasPrefix(id, "s1:refund"))
			if err == nil && !sameReservation(r, got) {
				t.Fatalf("%s(%q) = %+v; Reservation = %+v", s.op, id, r, got)
			}
		}
	}
	held, paid, rel := inventory.StateHeld, inventory.StatePaid, inventory.StateReleased
	run("s1:refund1", []step{
		{"refund", inventory.ErrBadState, held},
		{"confirm", nil, paid},
		{"confirm", nil, paid},
		{"release", inventory.ErrBadState, paid},
		{"refund", nil, rel},
		{"refund", nil, rel},
		{"release", nil, rel},
		{"confirm", inventory.ErrBadState, rel},
	})
	h.want("s1:a", 10, 0, 0)
	run("s1:release1", []step{
		{"release", nil, rel},
		{"release", nil, rel},
		{"confirm", inventory.ErrBadState, rel},
		{"refund", inventory.ErrBadState, rel},
	})
	h.want("s1:a", 10, 0, 0)
	run("s1:paid1", []step{{"confirm", nil, paid}})
	h.want("s1:a", 8, 0, 2)
	run("s1:held1", nil)
	h.want("s1:a", 6, 2, 2)
}

func testUnknownReservation(t *testing.T, f Factory) {
	h := newH(t, f)
	ctx := h.ctx
	for _, id := range []string{"s1:nope"} {
		_, err := h.s.Confirm(ctx, id)
		wantErr(t, "Confirm(unknown)", err, inventory.ErrReservationNotFound)
		_, err = h.s.Release(ctx, id)
		wantErr(t, "Release(unknown)", err, inventory.ErrReservationNotFound)
		_, err = h.s.Refund(ctx, id)
		wantErr(t, "Refund(unknown)", err, inventory.ErrReservationNotFound)
		_, err = h.s.Reservation(ctx, id)
		wantErr(t, "Reservation(unknown)", err, inventory.ErrReservationNotFound)
	}
	for _, id := range []string{"", "nocolon", "s1:" + strings.Repeat("x", inventory.IDLenMax), "s1:a b"} {
		_, err := h.s.Confirm(ctx, id)
		wantErr(t, fmt.Sprintf("Confirm(%q)", id), err, inventory.ErrInvalid)
		_, err = h.s.Release(ctx, id)
		wantErr(t, fmt.Sprintf("Release(%q)", id), err, inventory.ErrInvalid)
		_, err = h.s.Refund(ctx, id)
		wantErr(t, fmt.Sprintf("Refund(%q)", id), err, inventory.ErrInvalid)
		_, err = h.s.Reservation(ctx, id)
		wantErr(t, fmt.Sprintf("Reservation(%q)", id), err, inventory.ErrInvalid)
	}
}

func testConfirmAfterDeadline(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 10)
	r := req("s1:late", "u1", line("s1:a", 2, 2))
	r.TTL = 10 * time.Second
	h.mustReserve(r)
	r.ID = "s1:intime"
	r.User = "u2"
	h.mustReserve(r)
	h.clock.Advance(10*time.Second - time.Millisecond)
	if _, err := h.s.Confirm(h.ctx, "s1:intime"); err != nil {
		t.Fatalf("Confirm 1ms before the deadline = %v", err)
	}
	h.clock.Advance(time.Millisecond)
	_, err := h.s.Confirm(h.ctx, "s1:late")
	wantErr(t, "Confirm(at the deadline)", err, inventory.ErrBadState)
	h.wantRes("s1:late", inventory.StateReleased, false)
	h.want("s1:a", 8, 0, 2)
	// Released, so the user's allowance is back and Expire has nothing.
	h.mustReserve(req("s1:again", "u1", line("s1:a", 2, 2)))
	rs, err := h.s.Expire(h.ctx, h.clock.Now(), 100)
	if err != nil || len(rs) != 0 {
		t.Fatalf("Expire = %v, %v; want nothing", rs, err)
	}
	h.want("s1:a", 6, 2, 2)
}

func testExpire(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 100)
	ttl := func(id string, d time.Duration) {
		r := req(id, "u-"+id[3:], line("s1:a", 1, 1))
		r.TTL = d
		h.mustReserve(r)
	}
	ttl("s1:e1", 1*time.Second)
	ttl("s1:e2", 2*time.Second)
	ttl("s1:e3", 3*time.Second)
	ttl("s1:paid", 1*time.Second)
	ttl("s1:rel", 1*time.Second)
	if _, err := h.s.Confirm(h.ctx, "s1:paid"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Release(h.ctx, "s1:rel"); err != nil {
		t.Fatal(err)
	}
	rs, err := h.s.Expire(h.ctx, h.clock.Now().Add(999*time.Millisecond), 100)
	if err != nil || len(rs) != 0 {
		t.Fatalf("Expire(before any deadline) = %v, %v", rs, err)
	}
	h.clock.Advance(2 * time.Second)
	rs, err = h.s.Expire(h.ctx, h.clock.Now(), 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range rs {
		if r.State != inventory.StateReleased || r.Refunded {
			t.Fatalf("Expire returned %+v; want released", r)
		}
		got[r.ID] = true
	}
	if len(rs) != 2 || !got["s1:e1"] || !got["s1:e2"] {
		t.Fatalf("Expire = %v; want s1:e1 and s1:e2", got)
	}
	h.want("s1:a", 98, 1, 1)
	rs, err = h.s.Expire(h.ctx, h.clock.Now(), 100)
	if err != nil || len(rs) != 0 {
		t.Fatalf("Expire again = %v, %v; want nothing", rs, err)
	}
	h.wantRes("s1:e1", inventory.StateReleased, false)
	h.wantRes("s1:e3", inventory.StateHeld, false)
	h.wantRes("s1:paid", inventory.StatePaid, false)
	// Expire uses the time it is given, not the store's clock.
	rs, err = h.s.Expire(h.ctx, h.clock.Now().Add(time.Hour), 100)
	if err != nil || len(rs) != 1 || rs[0].ID != "s1:e3" {
		t.Fatalf("Expire(later) = %v, %v; want s1:e3", rs, err)
	}
	h.want("s1:a", 99, 0, 1)
	for _, max := range []int{0, -1, inventory.ExpireMax + 1} {
		_, err = h.s.Expire(h.ctx, h.clock.Now(), max)
		wantErr(t, fmt.Sprintf("Expire(max %d)", max), err, inventory.ErrInvalid)
	}
}

func testExpireMax(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 100)
	const n = 25
	for i := range n {
		h.mustReserve(req(fmt.Sprintf("s1:r%02d", i), "u1", line("s1:a", 1, 0)))
	}
	h.clock.Advance(time.Hour)
	seen := map[string]bool{}
	for round := 0; ; round++ {
		rs, err := h.s.Expire(h.ctx, h.clock.Now(), 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) > 7 {
			t.Fatalf("Expire(max 7) returned %d", len(rs))
		}
		if len(rs) == 0 {
			break
		}
		if round > n {
			t.Fatal("Expire does not run dry")
		}
		for _, r := range rs {
			if seen[r.ID] {
				t.Fatalf("Expire returned %q twice", r.ID)
			}
			seen[r.ID] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("Expire released %d; want %d", len(seen), n)
	}
	h.want("s1:a", 100, 0, 0)
}

func testMoveDrain(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 10)
	h.create("s1:b", 0)
	h.create("s2:c", 5)
	ctx := h.ctx
	h.mustReserve(req("s1:r1", "u1", line("s1:a", 2, 0)))
	wantErr(t, "Move(3)", h.s.Move(ctx, "s1:a", "s1:b", 3), nil)
	h.want("s1:a", 5, 2, 0)
	h.want("s1:b", 3, 0, 0)
	wantErr(t, "Move(more than available)", h.s.Move(ctx, "s1:a", "s1:b", 6), inventory.ErrSoldOut)
	wantErr(t, "Move(0)", h.s.Move(ctx, "s1:a", "s1:b", 0), inventory.ErrInvalid)
	wantErr(t, "Move(-1)", h.s.Move(ctx, "s1:a", "s1:b", -1), inventory.ErrInvalid)
	wantErr(t, "Move(to itself)", h.s.Move(ctx, "s1:a", "s1:a", 1), inventory.ErrInvalid)
	wantErr(t, "Move(across tags)", h.s.Move(ctx, "s1:a", "s2:c", 1), inventory.ErrInvalid)
	wantErr(t, "Move(bad id)", h.s.Move(ctx, "s1:a", "", 1), inventory.ErrInvalid)
	wantErr(t, "Move(unknown from)", h.s.Move(ctx, "s1:nope", "s1:a", 1), inventory.ErrPoolNotFound)
	wantErr(t, "Move(unknown to)", h.s.Move(ctx, "s1:a", "s1:nope", 1), inventory.ErrPoolNotFound)
	h.want("s1:a", 5, 2, 0)
	h.want("s1:b", 3, 0, 0)
	n, err := h.s.Drain(ctx, "s1:a", "s1:b")
	if err != nil || n != 5 {
		t.Fatalf("Drain = %d, %v; want 5", n, err)
	}
	h.want("s1:a", 0, 2, 0)
	h.want("s1:b", 8, 0, 0)
	n, err = h.s.Drain(ctx, "s1:a", "s1:b")
	if err != nil || n != 0 {
		t.Fatalf("Drain(empty) = %d, %v; want 0", n, err)
	}
	// Held units stay; when released they come back to a.
	if _, err := h.s.Release(ctx, "s1:r1"); err != nil {
		t.Fatal(err)
	}
	h.want("s1:a", 2, 0, 0)
	_, err = h.s.Drain(ctx, "s1:a", "s2:c")
	wantErr(t, "Drain(across tags)", err, inventory.ErrInvalid)
	_, err = h.s.Drain(ctx, "s1:a", "s1:a")
	wantErr(t, "Drain(to itself)", err, inventory.ErrInvalid)
	_, err = h.s.Drain(ctx, "s1:nope", "s1:a")
	wantErr(t, "Drain(unknown)", err, inventory.ErrPoolNotFound)
	if p := h.pool("s1:b"); p.Supplied != 8 {
		t.Fatalf("Pool(b).Supplied = %d; want 8", p.Supplied)
	}
}

func testSetOnHand(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 0)
	ctx := h.ctx
	set := func(onHand int64, seq uint64, applied bool) inventory.Pool {
		t.Helper()
		r, err := h.s.SetOnHand(ctx, "s1:a", onHand, seq)
		if err != nil {
			t.Fatalf("SetOnHand(%d, %d) = %v", onHand, seq, err)
		}
		if r.Applied != applied {
			t.Fatalf("SetOnHand(%d, %d).Applied = %v; want %v", onHand, seq, r.Applied, applied)
		}
		if p := h.pool("s1:a"); p != r.Pool {
			t.Fatalf("SetOnHand(%d, %d).Pool = %+v; Pool = %+v", onHand, seq, r.Pool, p)
		}
		return r.Pool
	}
	p := set(10, 5, true)
	if p.OnHand != 10 || p.Seq != 5 || p.Available != 10 || p.Supplied != 10 {
		t.Fatalf("after on-hand 10: %+v", p)
	}
	h.mustReserve(req("s1:r1", "u1", line("s1:a", 4, 0)))
	// Delta semantics: outstanding holds stay counted.
	set(7, 6, true)
	h.want("s1:a", 3, 4, 0)
	// Stale and repeated sequence numbers change nothing.
	before := h.pool("s1:a")
	if p := set(100, 6, false); p != before {
		t.Fatalf("repeated seq changed the pool: %+v -> %+v", before, p)
	}
	if p := set(100, 2, false); p != before {
		t.Fatalf("stale seq changed the pool: %+v -> %+v", before, p)
	}
	set(12, 9, true)
	h.want("s1:a", 8, 4, 0)
	if p := h.pool("s1:a"); p.Seq != 9 || p.OnHand != 12 {
		t.Fatalf("Pool = %+v; want seq 9 on-hand 12", p)
	}
	_, err := h.s.SetOnHand(ctx, "s1:a", -1, 10)
	wantErr(t, "SetOnHand(-1)", err, inventory.ErrInvalid)
	_, err = h.s.SetOnHand(ctx, "s1:a", inventory.UnitsMax+1, 10)
	wantErr(t, "SetOnHand(>UnitsMax)", err, inventory.ErrInvalid)
	_, err = h.s.SetOnHand(ctx, "s1:nope", 1, 10)
	wantErr(t, "SetOnHand(unknown)", err, inventory.ErrPoolNotFound)
	_, err = h.s.SetOnHand(ctx, "", 1, 10)
	wantErr(t, "SetOnHand(bad id)", err, inventory.ErrInvalid)
	if p := h.pool("s1:a"); p.Seq != 9 || p.OnHand != 12 || p.Available != 8 {
		t.Fatalf("refused feed changed the pool: %+v", p)
	}
	// The feed and CreatePool's units add up: on-hand moves by differences.
	h.create("s1:b", 5)
	if r, err := h.s.SetOnHand(ctx, "s1:b", 3, 1); err != nil || r.Pool.Available != 8 {
		t.Fatalf("SetOnHand(b, 3) = %+v, %v; want available 8", r, err)
	}
}

func testShort(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 0)
	ctx := h.ctx
	set := func(onHand int64, seq uint64) {
		t.Helper()
		if _, err := h.s.SetOnHand(ctx, "s1:a", onHand, seq); err != nil {
			t.Fatal(err)
		}
	}
	wantShort := func(available, held, sold, short, supplied int64) {
		t.Helper()
		p := h.pool("s1:a")
		if p.Available != available || p.Held != held || p.Sold != sold || p.Short != short || p.Supplied != supplied {
			t.Fatalf("Pool = %+v; want available %d held %d sold %d short %d supplied %d",
				p, available, held, sold, short, supplied)
		}
	}
	set(10, 1)
	h.mustReserve(req("s1:r1", "u1", line("s1:a", 4, 0)))
	h.mustReserve(req("s1:r2", "u2", line("s1:a", 4, 0)))
	if _, err := h.s.Confirm(ctx, "s1:r2"); err != nil {
		t.Fatal(err)
	}
	wantShort(2, 4, 4, 0, 10)
	// The store lost 7 units: 2 were available, 5 are committed.
	set(3, 2)
	wantShort(0, 4, 4, 5, 8)
	_, err := h.reserve(req("s1:r3", "u3", line("s1:a", 1, 0)))
	wantErr(t, "Reserve(while short)", err, inventory.ErrSoldOut)
	// An increase pays Short back first.
	set(5, 3)
	wantShort(0, 4, 4, 3, 8)
	// Released units pay Short back too: they are not on the shelf.
	if _, err := h.s.Release(ctx, "s1:r1"); err != nil {
		t.Fatal(err)
	}
	wantShort(1, 0, 4, 0, 5)
	set(9, 4)
	wantShort(5, 0, 4, 0, 9)
	// A refund returns sold units.
	if _, err := h.s.Refund(ctx, "s1:r2"); err != nil {
		t.Fatal(err)
	}
	wantShort(9, 0, 0, 0, 9)
	// Moving units into a short pool pays its Short first.
	h.create("s1:b", 0)
	if _, err := h.s.SetOnHand(ctx, "s1:b", 2, 1); err != nil {
		t.Fatal(err)
	}
	h.mustReserve(req("s1:rb", "u1", line("s1:b", 2, 0)))
	if _, err := h.s.SetOnHand(ctx, "s1:b", 0, 2); err != nil {
		t.Fatal(err)
	}
	if p := h.pool("s1:b"); p.Short != 2 || p.Available != 0 {
		t.Fatalf("Pool(b) = %+v; want short 2", p)
	}
	if err := h.s.Move(ctx, "s1:a", "s1:b", 3); err != nil {
		t.Fatal(err)
	}
	if p := h.pool("s1:b"); p.Short != 0 || p.Available != 1 || p.Held != 2 {
		t.Fatalf("Pool(b) after move = %+v; want short 0 available 1 held 2", p)
	}
}

func testScan(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 100)
	ctx := h.ctx
	want := map[inventory.State][]string{}
	for i := range 25 {
		id := fmt.Sprintf("s1:r%02d", i)
		h.mustReserve(req(id, "u1", line("s1:a", 1, 0)))
		switch i % 3 {
		case 0:
			want[inventory.StateHeld] = append(want[inventory.StateHeld], id)
		case 1:
			if _, err := h.s.Confirm(ctx, id); err != nil {
				t.Fatal(err)
			}
			want[inventory.StatePaid] = append(want[inventory.StatePaid], id)
		case 2:
			if _, err := h.s.Release(ctx, id); err != nil {
				t.Fatal(err)
			}
			want[inventory.StateReleased] = append(want[inventory.StateReleased], id)
		}
	}
	for _, st := range []inventory.State{inventory.StateHeld, inventory.StatePaid, inventory.StateReleased} {
		var got []string
		cursor := ""
		for page := 0; ; page++ {
			if page > 10 {
				t.Fatalf("Scan(%v) does not end", st)
			}
			rs, next, err := h.s.Scan(ctx, st, cursor, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) > 3 {
				t.Fatalf("Scan(limit 3) returned %d", len(rs))
			}
			for _, r := range rs {
				if r.State != st {
					t.Fatalf("Scan(%v) returned %+v", st, r)
				}
				got = append(got, r.ID)
			}
			if next == "" {
				break
			}
			if len(rs) != 3 || next != rs[len(rs)-1].ID {
				t.Fatalf("Scan page of %d with next %q", len(rs), next)
			}
			cursor = next
		}
		if fmt.Sprint(got) != fmt.Sprint(want[st]) {
			t.Fatalf("Scan(%v) = %v; want %v", st, got, want[st])
		}
	}
	// A cursor between ids, and a page that ends exactly at the end.
	rs, next, err := h.s.Scan(ctx, inventory.StateHeld, "s1:r10", 100)
	if err != nil || next != "" || len(rs) != 5 || rs[0].ID != "s1:r12" {
		t.Fatalf("Scan(after s1:r10) = %d, %q, %v; want 5 from s1:r12", len(rs), next, err)
	}
	rs, next, err = h.s.Scan(ctx, inventory.StateHeld, "", 9)
	if err != nil || len(rs) != 9 || next != "" {
		t.Fatalf("Scan(limit = count) = %d, %q, %v; want 9 and no next", len(rs), next, err)
	}
	for _, bad := range []struct {
		st    inventory.State
		limit int
	}{{0, 10}, {9, 10}, {inventory.StateHeld, 0}, {inventory.StateHeld, -1}, {inventory.StateHeld, inventory.ScanLimitMax + 1}} {
		_, _, err := h.s.Scan(ctx, bad.st, "", bad.limit)
		wantErr(t, fmt.Sprintf("Scan(%d, limit %d)", bad.st, bad.limit), err, inventory.ErrInvalid)
	}
}

func testClosed(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 10)
	h.mustReserve(req("s1:r1", "u1", line("s1:a", 1, 0)))
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	ctx := context.Background()
	_, err := h.s.Reserve(ctx, req("s1:r2", "u1", line("s1:a", 1, 0)))
	wantErr(t, "Reserve after Close", err, inventory.ErrClosed)
	wantErr(t, "CreatePool after Close", h.s.CreatePool(ctx, "s1:b", 1), inventory.ErrClosed)
	_, err = h.s.Confirm(ctx, "s1:r1")
	wantErr(t, "Confirm after Close", err, inventory.ErrClosed)
	_, err = h.s.Release(ctx, "s1:r1")
	wantErr(t, "Release after Close", err, inventory.ErrClosed)
	_, err = h.s.Refund(ctx, "s1:r1")
	wantErr(t, "Refund after Close", err, inventory.ErrClosed)
	_, err = h.s.Expire(ctx, time.Now(), 1)
	wantErr(t, "Expire after Close", err, inventory.ErrClosed)
	wantErr(t, "Move after Close", h.s.Move(ctx, "s1:a", "s1:b", 1), inventory.ErrClosed)
	_, err = h.s.Drain(ctx, "s1:a", "s1:b")
	wantErr(t, "Drain after Close", err, inventory.ErrClosed)
	_, err = h.s.SetOnHand(ctx, "s1:a", 1, 1)
	wantErr(t, "SetOnHand after Close", err, inventory.ErrClosed)
	_, err = h.s.Pool(ctx, "s1:a")
	wantErr(t, "Pool after Close", err, inventory.ErrClosed)
	_, err = h.s.Reservation(ctx, "s1:r1")
	wantErr(t, "Reservation after Close", err, inventory.ErrClosed)
	_, _, err = h.s.Scan(ctx, inventory.StateHeld, "", 1)
	wantErr(t, "Scan after Close", err, inventory.ErrClosed)
	wantErr(t, "Forget after Close", h.s.Forget(ctx, "s1:r1"), inventory.ErrClosed)
	_, err = h.s.Purge(ctx, time.Now(), 1)
	wantErr(t, "Purge after Close", err, inventory.ErrClosed)
	wantErr(t, "ClosePool after Close", h.s.ClosePool(ctx, "s1:a"), inventory.ErrClosed)
}
