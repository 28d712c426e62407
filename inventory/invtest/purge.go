package invtest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// testForget checks Forget: only released reservations can be forgotten,
// and a forgotten one is gone without touching any counter.
func testForget(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 10)
	h.mustReserve(req("s1:held", "u1", line("s1:a", 1, 2)))
	h.mustReserve(req("s1:paid", "u1", line("s1:a", 1, 2)))
	h.mustReserve(req("s1:rel", "u2", line("s1:a", 2, 2)))
	if _, err := h.s.Confirm(h.ctx, "s1:paid"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Release(h.ctx, "s1:rel"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Forget(held)", h.s.Forget(h.ctx, "s1:held"), inventory.ErrBadState)
	wantErr(t, "Forget(paid)", h.s.Forget(h.ctx, "s1:paid"), inventory.ErrBadState)
	wantErr(t, "Forget(unknown)", h.s.Forget(h.ctx, "s1:nope"), inventory.ErrReservationNotFound)
	wantErr(t, "Forget(bad id)", h.s.Forget(h.ctx, "no tag{}"), inventory.ErrInvalid)
	h.want("s1:a", 8, 1, 1)
	wantErr(t, "Forget(released)", h.s.Forget(h.ctx, "s1:rel"), nil)
	_, err := h.s.Reservation(h.ctx, "s1:rel")
	wantErr(t, "Reservation(forgotten)", err, inventory.ErrReservationNotFound)
	wantErr(t, "Forget(forgotten)", h.s.Forget(h.ctx, "s1:rel"), inventory.ErrReservationNotFound)
	h.want("s1:a", 8, 1, 1)
	h.wantRes("s1:held", inventory.StateHeld, false)
	h.wantRes("s1:paid", inventory.StatePaid, false)
	// The id is free again, and the user's allowance was not touched.
	again := req("s1:rel", "u2", line("s1:a", 2, 2))
	res := h.mustReserve(again)
	if res.State != inventory.StateHeld {
		t.Fatalf("Reserve(forgotten id) = %+v; want a new held reservation", res)
	}
	h.want("s1:a", 6, 3, 1)
}

// testPurge checks that Purge forgets exactly the released reservations
// whose deadline is at or before the time given.
func testPurge(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 100)
	h.create("s1:b", 100)
	mk := func(id string, ttl time.Duration, lines ...inventory.Line) {
		r := req(id, "u-"+id[3:], lines...)
		r.TTL = ttl
		h.mustReserve(r)
	}
	mk("s1:cancel", time.Second, line("s1:a", 1, 1))
	mk("s1:multi", time.Second, line("s1:a", 2, 0), line("s1:b", 3, 0))
	mk("s1:refund", time.Second, line("s1:a", 1, 1))
	mk("s1:expired", time.Second, line("s1:a", 1, 1))
	mk("s1:paid", time.Second, line("s1:a", 1, 1))
	mk("s1:late", time.Hour, line("s1:a", 1, 1))
	mk("s1:held", 2*time.Hour, line("s1:a", 1, 1))
	for _, id := range []string{"s1:cancel", "s1:multi", "s1:late"} {
		if _, err := h.s.Release(h.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"s1:refund", "s1:paid"} {
		if _, err := h.s.Confirm(h.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.s.Refund(h.ctx, "s1:refund"); err != nil {
		t.Fatal(err)
	}
	// Nothing is due before the first deadline.
	n, err := h.s.Purge(h.ctx, h.clock.Now().Add(999*time.Millisecond), 100)
	if err != nil || n != 0 {
		t.Fatalf("Purge(before any deadline) = %d, %v; want 0", n, err)
	}
	h.clock.Advance(10 * time.Second)
	rs, err := h.s.Expire(h.ctx, h.clock.Now(), 100)
	if err != nil || len(rs) != 1 || rs[0].ID != "s1:expired" {
		t.Fatalf("Expire = %v, %v; want s1:expired", rs, err)
	}
	h.want("s1:a", 98, 1, 1)
	h.want("s1:b", 100, 0, 0)
	n, err = h.s.Purge(h.ctx, h.clock.Now(), 100)
	if err != nil || n != 4 {
		t.Fatalf("Purge = %d, %v; want 4 (cancel, multi, refund, expired)", n, err)
	}
	for _, id := range []string{"s1:cancel", "s1:multi", "s1:refund", "s1:expired"} {
		_, err := h.s.Reservation(h.ctx, id)
		wantErr(t, fmt.Sprintf("Reservation(%s) after Purge", id), err, inventory.ErrReservationNotFound)
	}
	h.wantRes("s1:paid", inventory.StatePaid, false)
	h.wantRes("s1:late", inventory.StateReleased, false)
	h.wantRes("s1:held", inventory.StateHeld, false)
	h.want("s1:a", 98, 1, 1)
	h.want("s1:b", 100, 0, 0)
	if rel := scanAll(t, h.s, inventory.StateReleased); len(rel) != 1 || rel[0].ID != "s1:late" {
		t.Fatalf("Scan(released) after Purge = %v; want only s1:late", rel)
	}
	n, err = h.s.Purge(h.ctx, h.clock.Now(), 100)
	if err != nil || n != 0 {
		t.Fatalf("Purge again = %d, %v; want 0", n, err)
	}
	// The purge time is the one given, not the store's clock; a held
	// reservation past its deadline is never purged (Expire releases it).
	n, err = h.s.Purge(h.ctx, h.clock.Now().Add(3*time.Hour), 100)
	if err != nil || n != 1 {
		t.Fatalf("Purge(later) = %d, %v; want 1 (s1:late)", n, err)
	}
	h.wantRes("s1:held", inventory.StateHeld, false)
	h.wantRes("s1:paid", inventory.StatePaid, false)
	// A purged user may reserve again under the limit: released units
	// stopped counting when they were released.
	h.mustReserve(req("s1:cancel2", "u-cancel", line("s1:a", 1, 1)))
	h.want("s1:a", 97, 2, 1)
	for _, max := range []int{0, -1, inventory.ExpireMax + 1} {
		_, err := h.s.Purge(h.ctx, h.clock.Now(), max)
		wantErr(t, fmt.Sprintf("Purge(max %d)", max), err, inventory.ErrInvalid)
	}
}

// testPurgeConcurrent purges many released reservations from several
// goroutines at once: each is forgotten exactly once.
func testPurgeConcurrent(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("s1:a", 1000)
	const n = 300
	for i := range n {
		id := fmt.Sprintf("s1:r%03d", i)
		h.mustReserve(req(id, fmt.Sprintf("u%d", i%7), line("s1:a", 1, 0)))
		if i%3 == 0 {
			if _, err := h.s.Release(h.ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.clock.Advance(time.Hour)
	// Expire releases the other two thirds while purgers run. A purger
	// stops at its first empty round after the expirer finished.
	var total atomic.Int64
	var expDone atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				done := expDone.Load()
				k, err := h.s.Purge(context.Background(), h.clock.Now(), 7)
				if err != nil {
					errs <- err
					return
				}
				if k > 7 {
					errs <- fmt.Errorf("Purge(max 7) = %d", k)
					return
				}
				total.Add(int64(k))
				if k == 0 {
					if done {
						return
					}
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer expDone.Store(true)
		for {
			rs, err := h.s.Expire(context.Background(), h.clock.Now(), 11)
			if err != nil {
				errs <- err
				return
			}
			if len(rs) == 0 {
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if total.Load() != n {
		t.Fatalf("purged %d in all; want %d", total.Load(), n)
	}
	h.want("s1:a", 1000, 0, 0)
	for _, st := range []inventory.State{inventory.StateHeld, inventory.StatePaid, inventory.StateReleased} {
		if rs := scanAll(t, h.s, st); len(rs) != 0 {
			t.Fatalf("Scan(%v) after purging all = %d reservations", st, len(rs))
		}
	}
}
