package invtest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/surge-retail/surge/inventory"
)

// testClosePool: a pool is closed only when nothing in it is held; once
// closed it refuses every reserve (sold out, whatever is available), so a
// user whose paid units were counted cannot pass the limit after the
// counts are forgotten (law 6); paid reservations stay, and refund, moves
// and the feed still work.
func testClosePool(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 10)
	h.create("s1:b", 0)
	h.mustReserve(req("s1:r1", "u1", line("s1:a", 2, 2)))
	if _, err := h.s.Confirm(h.ctx, "s1:r1"); err != nil {
		t.Fatal(err)
	}
	h.mustReserve(req("s1:r2", "u2", line("s1:a", 1, 2)))
	wantErr(t, "ClosePool(a unit held)", h.s.ClosePool(h.ctx, "s1:a"), inventory.ErrBadState)
	if p := h.pool("s1:a"); p.Closed {
		t.Fatalf("Pool after a refused ClosePool = %+v; want open", p)
	}
	_, err := h.reserve(req("s1:r3", "u1", line("s1:a", 1, 2)))
	wantErr(t, "Reserve(over the limit, open)", err, inventory.ErrLimitExceeded)
	if _, err := h.s.Release(h.ctx, "s1:r2"); err != nil {
		t.Fatal(err)
	}
	if err := h.s.ClosePool(h.ctx, "s1:a"); err != nil {
		t.Fatalf("ClosePool = %v", err)
	}
	if err := h.s.ClosePool(h.ctx, "s1:a"); err != nil {
		t.Fatalf("ClosePool(again) = %v; want nil", err)
	}
	if p := h.pool("s1:a"); !p.Closed || p.Available != 8 || p.Sold != 2 || p.Held != 0 {
		t.Fatalf("Pool after ClosePool = %+v; want closed, 8 available, 2 sold", p)
	}
	// Units are available, but a closed pool reserves nothing: not the
	// user whose count was forgotten, not anyone else.
	for i, r := range []inventory.ReserveRequest{
		req("s1:r4", "u1", line("s1:a", 1, 2)),
		req("s1:r5", "u9", line("s1:a", 1, 0)),
		req("s1:r6", "u9", line("s1:b", 1, 0), line("s1:a", 1, 0)),
	} {
		_, err := h.reserve(r)
		wantErr(t, fmt.Sprintf("Reserve #%d from a closed pool", i), err, inventory.ErrSoldOut)
	}
	// A reserve already made is still answered as it was.
	if res, err := h.reserve(req("s1:r1", "u1", line("s1:a", 2, 2))); err != nil || !res.Existed || res.State != inventory.StatePaid {
		t.Fatalf("Reserve(existing id) = %+v, %v; want the paid reservation", res, err)
	}
	// Refund, moves and the feed work on a closed pool.
	if _, err := h.s.Refund(h.ctx, "s1:r1"); err != nil {
		t.Fatalf("Refund in a closed pool = %v", err)
	}
	h.want("s1:a", 10, 0, 0)
	if n, err := h.s.Drain(h.ctx, "s1:a", "s1:b"); err != nil || n != 10 {
		t.Fatalf("Drain(closed pool) = %d, %v; want 10", n, err)
	}
	if err := h.s.Move(h.ctx, "s1:b", "s1:a", 3); err != nil {
		t.Fatal(err)
	}
	_, err = h.reserve(req("s1:r7", "u3", line("s1:a", 1, 0)))
	wantErr(t, "Reserve(closed pool after units moved in)", err, inventory.ErrSoldOut)
	if p := h.pool("s1:a"); !p.Closed {
		t.Fatalf("Pool after a move = %+v; want still closed", p)
	}
	wantErr(t, "ClosePool(unknown)", h.s.ClosePool(h.ctx, "s1:nope"), inventory.ErrPoolNotFound)
	wantErr(t, "ClosePool(\"\")", h.s.ClosePool(h.ctx, ""), inventory.ErrInvalid)
	if p := h.pool("s1:b"); p.Closed {
		t.Fatalf("Pool(s1:b) = %+v; want open", p)
	}
	h.mustReserve(req("s1:r8", "u3", line("s1:b", 1, 0)))
	h.identity()
}

// ClosePoolStress hammers a pool with reserves under a per-user limit
// from many goroutines, pays some, lets the rest go, closes the pool and
// hammers it again: after the close nothing is reserved, and every user's
// paid units stay within the limit (law 6), exactly.
func ClosePoolStress(t *testing.T, f Factory) {
	const users, workers, limit, rounds = 200, 16, 2, 4
	h := newH(t, f)
	h.create("s1:p", users*limit)
	var next atomic.Int64
	var mu sync.Mutex
	paid := map[string]int64{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= users*rounds {
					return
				}
				u := fmt.Sprintf("u%d", i%users)
				id := fmt.Sprintf("s1:c%d", i)
				_, err := h.s.Reserve(h.ctx, req(id, u, line("s1:p", 1, limit)))
				switch {
				case errors.Is(err, inventory.ErrLimitExceeded), errors.Is(err, inventory.ErrSoldOut):
					continue
				case err != nil:
					t.Errorf("Reserve(%s) = %v", id, err)
					return
				}
				if i%3 == 0 {
					if _, err := h.s.Release(h.ctx, id); err != nil {
						t.Errorf("Release(%s) = %v", id, err)
					}
					continue
				}
				if _, err := h.s.Confirm(h.ctx, id); err != nil {
					t.Errorf("Confirm(%s) = %v", id, err)
					continue
				}
				mu.Lock()
				paid[u]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := h.s.ClosePool(h.ctx, "s1:p"); err != nil {
		t.Fatalf("ClosePool = %v", err)
	}
	before := h.pool("s1:p")
	var after atomic.Int64
	next.Store(0)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= users*rounds {
					return
				}
				_, err := h.s.Reserve(h.ctx, req(fmt.Sprintf("s1:d%d", i), fmt.Sprintf("u%d", i%users), line("s1:p", 1, limit)))
				if err == nil {
					after.Add(1)
				} else if !errors.Is(err, inventory.ErrSoldOut) {
					t.Errorf("Reserve after ClosePool = %v; want ErrSoldOut", err)
				}
			}
		}()
	}
	wg.Wait()
	if n := after.Load(); n != 0 {
		t.Fatalf("%d reserves succeeded on a closed pool", n)
	}
	var sold int64
	for u, n := range paid {
		if n > limit {
			t.Errorf("user %s paid %d units; limit %d", u, n, limit)
		}
		sold += n
	}
	p := h.pool("s1:p")
	if p != before || p.Sold != sold || p.Held != 0 {
		t.Fatalf("Pool after reserves on a closed pool = %+v; before them %+v; want unchanged, %d sold", p, before, sold)
	}
}
