package redisinv_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

func TestForget(t *testing.T) {
	srv := redistest.Start(t)
	ck := newClock()
	s := open(t, srv, "", inventory.Options{Now: ck.Now})
	ctx := context.Background()
	if err := s.CreatePool(ctx, "s:a", 10); err != nil {
		t.Fatal(err)
	}
	r1 := req("s:1", "u", time.Minute, line("s:a", 2, 3))
	if _, err := s.Reserve(ctx, r1); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Forget held", s.Forget(ctx, "s:1"), inventory.ErrBadState)
	if _, err := s.Confirm(ctx, "s:1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Forget paid", s.Forget(ctx, "s:1"), inventory.ErrBadState)
	if _, err := s.Refund(ctx, "s:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, req("s:2", "u", time.Minute, line("s:a", 3, 3))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(ctx, "s:2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, req("s:3", "u", time.Minute, line("s:a", 1, 3))); err != nil {
		t.Fatal(err)
	}
	wantPool(t, s, "s:a", 9, 1, 0)
	for _, id := range []string{"s:1", "s:2"} {
		if err := s.Forget(ctx, id); err != nil {
			t.Fatalf("Forget(%s) = %v", id, err)
		}
		_, err := s.Reservation(ctx, id)
		wantErr(t, "Reservation after Forget", err, inventory.ErrReservationNotFound)
		wantErr(t, "Forget again", s.Forget(ctx, id), inventory.ErrReservationNotFound)
		_, err = s.Release(ctx, id)
		wantErr(t, "Release after Forget", err, inventory.ErrReservationNotFound)
	}
	wantPool(t, s, "s:a", 9, 1, 0)
	rs, _, err := s.Scan(ctx, inventory.StateReleased, "", 10)
	if err != nil || len(rs) != 0 {
		t.Fatalf("Scan released after Forget = %v, %v; want none", rs, err)
	}
	// The user's count did not change: s:3 holds 1 of the limit 3.
	_, err = s.Reserve(ctx, req("s:4", "u", time.Minute, line("s:a", 3, 3)))
	wantErr(t, "Reserve over limit after Forget", err, inventory.ErrLimitExceeded)
	// The id can be used again, for anything.
	got, err := s.Reserve(ctx, req("s:1", "v", time.Minute, line("s:a", 2, 0)))
	if err != nil || got.State != inventory.StateHeld || got.User != "v" {
		t.Fatalf("Reserve of a forgotten id = %+v, %v", got, err)
	}
	wantPool(t, s, "s:a", 7, 3, 0)
	if rs, _, err := s.Scan(ctx, inventory.StateHeld, "", 10); err != nil || len(rs) != 2 || rs[0].ID != "s:1" || rs[1].ID != "s:3" {
		t.Fatalf("Scan held = %+v, %v; want s:1 s:3", rs, err)
	}
	wantErr(t, "Forget unknown", s.Forget(ctx, "s:nope"), inventory.ErrReservationNotFound)
	for _, id := range []string{"", "s", "s:{x}", "s: x"} {
		wantErr(t, "Forget "+id, s.Forget(ctx, id), inventory.ErrInvalid)
	}
	s.Close()
	wantErr(t, "Forget after Close", s.Forget(ctx, "s:1"), inventory.ErrClosed)
	_, err = s.Purge(ctx, ck.Now(), 1)
	wantErr(t, "Purge after Close", err, inventory.ErrClosed)
}

func TestPurge(t *testing.T) {
	srv := redistest.Start(t)
	ck := newClock()
	s := open(t, srv, "", inventory.Options{Now: ck.Now})
	ctx := context.Background()
	start := ck.Now()
	for _, p := range []string{"a:p", "b:p", "c:p"} {
		if err := s.CreatePool(ctx, p, 100); err != nil {
			t.Fatal(err)
		}
	}
	// In each tag: r1 released (deadline start+1m), r2 expired (start+2s),
	// r3 refunded (start+3m), r4 paid, r5 held, r6 released late by
	// Confirm (start+1s).
	for _, tag := range []string{"a", "b", "c"} {
		id := func(n int) string { return fmt.Sprintf("%s:r%d", tag, n) }
		for n, ttl := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Second, 3: 3 * time.Minute,
			4: time.Hour, 5: time.Hour, 6: time.Second} {
			if _, err := s.Reserve(ctx, req(id(n), "u"+tag, ttl, line(tag+":p", int64(n), 0))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Release(ctx, id(1)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Confirm(ctx, id(3)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Refund(ctx, id(3)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Confirm(ctx, id(4)); err != nil {
			t.Fatal(err)
		}
	}
	ck.Advance(2 * time.Second)
	for _, tag := range []string{"a", "b", "c"} {
		_, err := s.Confirm(ctx, tag+":r6")
		wantErr(t, "late Confirm", err, inventory.ErrBadState)
	}
	if out, err := s.Expire(ctx, ck.Now(), 100); err != nil || len(out) != 3 {
		t.Fatalf("Expire = %d, %v; want 3", len(out), err)
	}
	pools := map[string]inventory.Pool{}
	for _, p := range []string{"a:p", "b:p", "c:p"} {
		pools[p] = mustPool(t, s, p)
	}
	for _, bad := range []int{0, -1, inventory.ExpireMax + 1} {
		_, err := s.Purge(ctx, ck.Now(), bad)
		wantErr(t, fmt.Sprintf("Purge max %d", bad), err, inventory.ErrInvalid)
	}
	// Nothing is due before the first deadline.
	if n, err := s.Purge(ctx, start.Add(999*time.Millisecond), 100); err != nil || n != 0 {
		t.Fatalf("Purge before any deadline = %d, %v", n, err)
	}
	// At or before start+1s: the three r6 (deadline exactly then).
	if n, err := s.Purge(ctx, start.Add(time.Second), 100); err != nil || n != 3 {
		t.Fatalf("Purge at the first deadline = %d, %v; want 3", n, err)
	}
	// Up to start+2m: r2 and r1 of each tag, two at a time.
	total := 0
	for i := 0; i < 10; i++ {
		n, err := s.Purge(ctx, start.Add(2*time.Minute), 2)
		if err != nil || n > 2 {
			t.Fatalf("Purge max 2 = %d, %v", n, err)
		}
		total += n
		if n == 0 {
			break
		}
	}
	if total != 6 {
		t.Fatalf("Purge up to 2m forgot %d; want 6", total)
	}
	// Far in the future: only the refunded r3 are left to purge; held and
	// paid ones are never purged.
	if n, err := s.Purge(ctx, start.Add(24*time.Hour), inventory.ExpireMax); err != nil || n != 3 {
		t.Fatalf("Purge of the rest = %d, %v; want 3", n, err)
	}
	if n, err := s.Purge(ctx, start.Add(24*time.Hour), inventory.ExpireMax); err != nil || n != 0 {
		t.Fatalf("Purge again = %d, %v; want 0", n, err)
	}
	for _, tag := range []string{"a", "b", "c"} {
		for _, n := range []int{1, 2, 3, 6} {
			_, err := s.Reservation(ctx, fmt.Sprintf("%s:r%d", tag, n))
			wantErr(t, "Reservation after Purge", err, inventory.ErrReservationNotFound)
		}
		if r, err := s.Reservation(ctx, tag+":r4"); err != nil || r.State != inventory.StatePaid {
			t.Fatalf("paid after Purge = %+v, %v", r, err)
		}
		if r, err := s.Reservation(ctx, tag+":r5"); err != nil || r.State != inventory.StateHeld {
			t.Fatalf("held after Purge = %+v, %v", r, err)
		}
	}
	for p, want := range pools {
		if got := mustPool(t, s, p); got != want {
			t.Fatalf("Pool(%s) after Purge = %+v; want %+v", p, got, want)
		}
	}
	if rs, _, err := s.Scan(ctx, inventory.StateReleased, "", 100); err != nil || len(rs) != 0 {
		t.Fatalf("Scan released after Purge = %+v, %v", rs, err)
	}
	if rs, _, err := s.Scan(ctx, inventory.StatePaid, "", 100); err != nil || len(rs) != 3 {
		t.Fatalf("Scan paid after Purge = %+v, %v", rs, err)
	}
	if rs, _, err := s.Scan(ctx, inventory.StateHeld, "", 100); err != nil || len(rs) != 3 {
		t.Fatalf("Scan held after Purge = %+v, %v", rs, err)
	}
	// A purged id is free again, and once released it is purged again.
	if _, err := s.Reserve(ctx, req("a:r1", "x", time.Second, line("a:p", 1, 0))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(ctx, "a:r1"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Purge(ctx, ck.Now().Add(time.Second), 10); err != nil || n != 1 {
		t.Fatalf("Purge of a reused id = %d, %v; want 1", n, err)
	}
}

// TestPurgeConcurrent: several goroutines on two nodes purge at once;
// every released reservation is forgotten exactly once (the counts add up
// to exactly the number released), held and paid ones stay.
func TestPurgeConcurrent(t *testing.T) {
	const (
		tags     = 4
		perTag   = 300
		purgers  = 8
		purgeMax = 7
	)
	srv := redistest.Start(t)
	ck := newClock()
	nodes := []*redisinv.Store{
		open(t, srv, "purge", inventory.Options{Now: ck.Now}),
		open(t, srv, "purge", inventory.Options{Now: ck.Now}),
	}
	s := nodes[0]
	ctx := context.Background()
	released, kept := 0, 0
	for g := 0; g < tags; g++ {
		pool := fmt.Sprintf("g%d:p", g)
		if err := s.CreatePool(ctx, pool, perTag); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < perTag; i++ {
			id := fmt.Sprintf("g%d:r%d", g, i)
			if _, err := s.Reserve(ctx, req(id, fmt.Sprintf("u%d", i%10), time.Minute, line(pool, 1, 0))); err != nil {
				t.Fatal(err)
			}
			switch i % 3 {
			case 0:
				if _, err := s.Release(ctx, id); err != nil {
					t.Fatal(err)
				}
				released++
			case 1:
				if _, err := s.Confirm(ctx, id); err != nil {
					t.Fatal(err)
				}
				kept++
			default:
				kept++
			}
		}
	}
	before := ck.Now().Add(time.Minute)
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, purgers)
	for w := 0; w < purgers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				n, err := nodes[w%2].Purge(ctx, before, purgeMax)
				if err != nil {
					errs <- err
					return
				}
				if n < 0 || n > purgeMax {
					errs <- fmt.Errorf("Purge = %d; max %d", n, purgeMax)
					return
				}
				total.Add(int64(n))
				if n == 0 {
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := total.Load(); got != int64(released) {
		t.Fatalf("purged %d in all; want exactly %d", got, released)
	}
	left := 0
	for _, st := range []inventory.State{inventory.StateHeld, inventory.StatePaid, inventory.StateReleased} {
		cursor := ""
		for {
			rs, next, err := s.Scan(ctx, st, cursor, 100)
			if err != nil {
				t.Fatal(err)
			}
			if st == inventory.StateReleased && len(rs) > 0 {
				t.Fatalf("released left after Purge: %v", rs[0].ID)
			}
			left += len(rs)
			if next == "" {
				break
			}
			cursor = next
		}
	}
	if left != kept {
		t.Fatalf("%d reservations left; want %d", left, kept)
	}
	for g := 0; g < tags; g++ {
		p := mustPool(t, s, fmt.Sprintf("g%d:p", g))
		if p.Held+p.Sold != int64(perTag-perTag/3) || p.Supplied != perTag {
			t.Fatalf("Pool after Purge = %+v", p)
		}
	}
}

// TestReserveCancelled: callers whose context ends at any moment get a
// definite answer or ErrUnavailable, never a yes that was not written;
// afterwards the pool holds exactly what the stored reservations hold.
func TestReserveCancelled(t *testing.T) {
	const (
		callers = 64
		each    = 30
		supply  = 1000
	)
	srv := redistest.Start(t)
	s := open(t, srv, "", inventory.Options{})
	ctx := context.Background()
	if err := s.CreatePool(ctx, "c:p", supply); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	yes := map[string]bool{}
	unsure := map[string]bool{}
	var wg sync.WaitGroup
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				id := fmt.Sprintf("c:%d-%d", g, i)
				cctx, cancel := context.WithCancel(ctx)
				switch i % 3 {
				case 0:
					cancel() // before the call
				case 1:
					go cancel() // somewhere during the call
				}
				_, err := s.Reserve(cctx, req(id, fmt.Sprintf("u%d", g), time.Hour, line("c:p", 1, 0)))
				cancel()
				mu.Lock()
				switch {
				case err == nil:
					yes[id] = true
				case errors.Is(err, inventory.ErrUnavailable):
					unsure[id] = true
				default:
					t.Errorf("Reserve(%s) = %v", id, err)
				}
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	held := int64(0)
	for g := 0; g < callers; g++ {
		for i := 0; i < each; i++ {
			id := fmt.Sprintf("c:%d-%d", g, i)
			r, err := s.Reservation(ctx, id)
			switch {
			case err == nil:
				if !yes[id] && !unsure[id] {
					t.Fatalf("%s stored but never answered", id)
				}
				held += r.Lines[0].Quantity
			case errors.Is(err, inventory.ErrReservationNotFound):
				if yes[id] {
					t.Fatalf("%s was answered yes but is not stored", id)
				}
			default:
				t.Fatal(err)
			}
		}
	}
	if p := mustPool(t, s, "c:p"); p.Held != held || p.Available != supply-held {
		t.Fatalf("Pool = %+v; want held %d", p, held)
	}
	if len(yes) == 0 {
		t.Fatalf("no reservation succeeded")
	}
}

// TestReserveSameIDs: many callers race with the same ids; each id is
// reserved once, every other caller gets the stored reservation or
// ErrIDConflict, and the totals are exact.
func TestReserveSameIDs(t *testing.T) {
	const (
		callers = 48
		ids     = 40
	)
	srv := redistest.Start(t)
	s := open(t, srv, "", inventory.Options{})
	ctx := context.Background()
	if err := s.CreatePool(ctx, "d:p", 1000); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok, conflict atomic.Int64
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < ids; i++ {
				id := fmt.Sprintf("d:%d", (i+g)%ids)
				user := "u"
				if g%4 == 0 {
					user = "other" // conflicts with "u" whichever comes first
				}
				r, err := s.Reserve(ctx, req(id, user, time.Hour, line("d:p", 2, 0)))
				switch {
				case err == nil && r.User == user && r.State == inventory.StateHeld:
					ok.Add(1)
				case errors.Is(err, inventory.ErrIDConflict):
					conflict.Add(1)
				default:
					t.Errorf("Reserve(%s, %s) = %+v, %v", id, user, r, err)
				}
			}
		}(g)
	}
	wg.Wait()
	if ok.Load()+conflict.Load() != callers*ids {
		t.Fatalf("ok %d + conflict %d != %d", ok.Load(), conflict.Load(), callers*ids)
	}
	wantPool(t, s, "d:p", 1000-2*ids, 2*ids, 0)
}
