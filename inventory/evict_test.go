package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/surge-retail/surge/inventory"
)

// evictStore returns a clock, a directory and options for a Pebble store
// of these tests.
func evictStore(t *testing.T) (*fakeClock, string, inventory.PebbleOptions) {
	clk := newFakeClock()
	return clk, t.TempDir(), inventory.PebbleOptions{Options: inventory.Options{Now: clk.Now}, NoWALWarmup: true}
}

// evictReq is the request of reservation i of TestPebbleReleasedLeaveMemory.
func evictReq(i int) inventory.ReserveRequest {
	return inventory.ReserveRequest{ID: fmt.Sprintf("e:r%04d", i), User: fmt.Sprintf("u%d", i%50), TTL: time.Minute,
		Meta: []byte(fmt.Sprintf("meta%d", i)), Lines: []inventory.Line{{Pool: "e:p", Quantity: 1, Limit: 100}}}
}

// reserveReleased reserves and releases evictReq(0) to evictReq(n-1).
func reserveReleased(t *testing.T, s *inventory.Pebble, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if _, err := s.Reserve(ctx, evictReq(i)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Release(ctx, evictReq(i).ID); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPebbleReleasedLeaveMemory checks that Pebble keeps released
// reservations on disk only (memory holds the paid ones; a crowd's holds
// that end cost no memory), and that every answer about a released one is
// what it was while it was in memory: Reservation, a repeated Reserve
// (law 5), a late Confirm, Release, Refund and Scan, before and after a
// reopen (which does not load them back); and that Purge deletes them from
// disk, purge index included.
func TestPebbleReleasedLeaveMemory(t *testing.T) {
	ctx := context.Background()
	clk, dir, o := evictStore(t)
	s := mustOpen(t, dir, o)
	defer func() { s.Close() }()
	const n, supply = 1000, 10_000
	if err := s.CreatePool(ctx, "e:p", supply); err != nil {
		t.Fatal(err)
	}
	want := make([]inventory.Reservation, n)
	for i := range n {
		res, err := s.Reserve(ctx, evictReq(i))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = res
	}
	if recs, disk := inventory.MemRecords(s); recs != n || disk != 0 {
		t.Fatalf("in memory after %d reserves: %d records, %d disk entries; want %d, 0", n, recs, disk, n)
	}
	// i%10 == 0: paid, every other one then refunded; 1..4: released; the
	// rest expire.
	paid := 0
	for i := range n {
		id := want[i].ID
		var err error
		switch d := i % 10; {
		case d == 0 && i%20 == 0:
			if _, err = s.Confirm(ctx, id); err == nil {
				_, err = s.Refund(ctx, id)
			}
			want[i].State, want[i].Refunded = inventory.StateReleased, true
		case d == 0:
			_, err = s.Confirm(ctx, id)
			want[i].State = inventory.StatePaid
			paid++
		case d <= 4:
			_, err = s.Release(ctx, id)
			want[i].State = inventory.StateReleased
		default:
			want[i].State = inventory.StateReleased
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Minute)
	for {
		rs, err := s.Expire(ctx, clk.Now(), 64)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
	}
	check := func(when string) {
		t.Helper()
		if recs, disk := inventory.MemRecords(s); recs != paid || disk != n-paid {
			t.Fatalf("%s: in memory %d records, %d disk entries; want %d (the paid ones), %d", when, recs, disk, paid, n-paid)
		}
		if p, _ := s.Pool(ctx, "e:p"); p.Available != supply-int64(paid) || p.Held != 0 || p.Sold != int64(paid) {
			t.Fatalf("%s: pool = %+v", when, p)
		}
		released := 0
		for i, w := range want {
			checkStored(t, s, w, evictReq(i), when)
			if w.State != inventory.StateReleased {
				continue
			}
			released++
			got, err := s.Confirm(ctx, w.ID) // a late payment notification
			if !errors.Is(err, inventory.ErrBadState) || !sameRes(got, w) {
				t.Fatalf("%s: Confirm(%s) = %+v, %v; want it released and ErrBadState", when, w.ID, got, err)
			}
			if got, err = s.Release(ctx, w.ID); err != nil || !sameRes(got, w) {
				t.Fatalf("%s: Release(%s) = %+v, %v; want it released", when, w.ID, got, err)
			}
			got, err = s.Refund(ctx, w.ID)
			if w.Refunded && (err != nil || !sameRes(got, w)) || !w.Refunded && !errors.Is(err, inventory.ErrBadState) {
				t.Fatalf("%s: Refund(%s) = %+v, %v", when, w.ID, got, err)
			}
		}
		for _, st := range []inventory.State{inventory.StateReleased, inventory.StatePaid} {
			var ids []string
			for _, r := range scanPages(t, s, st, 97) {
				ids = append(ids, r.ID)
			}
			var wantIDs []string
			for _, w := range want {
				if w.State == st {
					wantIDs = append(wantIDs, w.ID)
				}
			}
			if fmt.Sprint(ids) != fmt.Sprint(wantIDs) {
				t.Fatalf("%s: Scan(%s) = %d ids; want %d", when, st, len(ids), len(wantIDs))
			}
		}
		if released != n-paid {
			t.Fatalf("%s: %d released; want %d", when, released, n-paid)
		}
	}
	check("after the releases")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, o)
	check("after reopen")

	purged := 0
	for {
		k, err := s.Purge(ctx, clk.Now(), 128)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			break
		}
		purged += k
	}
	if purged != n-paid {
		t.Fatalf("purged %d; want %d", purged, n-paid)
	}
	if r, x := inventory.DiskKeys(s, 'r'), inventory.DiskKeys(s, 'x'); r != paid || x != 0 {
		t.Fatalf("on disk after purging: %d records, %d purge keys; want %d, 0", r, x, paid)
	}
	if recs, disk := inventory.MemRecords(s); recs != paid || disk != 0 {
		t.Fatalf("in memory after purging: %d records, %d disk entries; want %d, 0", recs, disk, paid)
	}
	for i, w := range want {
		if w.State != inventory.StateReleased {
			continue
		}
		if _, err := s.Reservation(ctx, w.ID); !errors.Is(err, inventory.ErrReservationNotFound) {
			t.Fatalf("Reservation(%s) after purge = %v; want ErrReservationNotFound", w.ID, err)
		}
		if i%7 == 0 { // a purged id is new again
			if res, err := s.Reserve(ctx, evictReq(i)); err != nil || res.Existed || res.State != inventory.StateHeld {
				t.Fatalf("Reserve(%s) after purge = %+v, %v; want a new hold", w.ID, res, err)
			}
		}
	}
}

// purgeAll purges until nothing is left before before, max at a time,
// adding what it purged to purged. It reports an error with t.Errorf (it
// runs in goroutines).
func purgeAll(t *testing.T, s interface {
	Purge(context.Context, time.Time, int) (int, error)
}, before time.Time, max int, purged *atomic.Int64) {
	for {
		k, err := s.Purge(context.Background(), before, max)
		if err != nil {
			t.Errorf("Purge = %v", err)
			return
		}
		if k == 0 {
			return
		}
		purged.Add(int64(k))
	}
}

// checkStored checks that reservation w, made by req, answers as stored:
// Reservation, a replayed Reserve (the same id never creates a second
// reservation) and a Reserve of its id by another user (ErrIDConflict).
func checkStored(t *testing.T, s inventory.Store, w inventory.Reservation, req inventory.ReserveRequest, when string) {
	t.Helper()
	ctx := context.Background()
	got, err := s.Reservation(ctx, w.ID)
	if err != nil || !sameRes(got, w) {
		t.Fatalf("%s: Reservation(%s) = %+v, %v; want %+v", when, w.ID, got, err, w)
	}
	again, err := s.Reserve(ctx, req)
	if err != nil || !again.Existed || !sameRes(again, w) {
		t.Fatalf("%s: Reserve(%s) again = %+v, %v; want it as stored, Existed", when, w.ID, again, err)
	}
	other := req
	other.User = "someone-else"
	if _, err := s.Reserve(ctx, other); !errors.Is(err, inventory.ErrIDConflict) {
		t.Fatalf("%s: Reserve(%s) by another user = %v; want ErrIDConflict", when, w.ID, err)
	}
}

// sameRes compares the reservations' contents (not Existed).
func sameRes(a, b inventory.Reservation) bool {
	return a.ID == b.ID && a.User == b.User && fmt.Sprint(a.Lines) == fmt.Sprint(b.Lines) && a.State == b.State &&
		a.Refunded == b.Refunded && string(a.Meta) == string(b.Meta) && a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// TestPebblePurgeIndexBuiltOnOpen: a store written before the purge index
// (released records without their "x" keys) gets it on open, so Purge
// still finds every released reservation.
func TestPebblePurgeIndexBuiltOnOpen(t *testing.T) {
	ctx := context.Background()
	clk, dir, o := evictStore(t)
	s := mustOpen(t, dir, o)
	if err := s.CreatePool(ctx, "e:p", 100); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := s.Reserve(ctx, evictReq(i)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := s.Release(ctx, evictReq(i).ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	inventory.DropPurgeIndex(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, o)
	defer s.Close()
	if x := inventory.DiskKeys(s, 'x'); x != 10 {
		t.Fatalf("purge keys after reopen = %d; want 10", x)
	}
	if k, err := s.Purge(ctx, clk.Now().Add(time.Hour), 100); err != nil || k != 10 {
		t.Fatalf("Purge = %d, %v; want 10", k, err)
	}
}

// TestPebbleReserveWhilePurging hammers law 5 where a released
// reservation leaves the disk: goroutines repeat the reserves of released
// ids while others purge them. Each answer is the released reservation
// (Existed) until its purge, then one new hold; never two new holds of an
// id, and the pool holds exactly the new ones.
func TestPebbleReserveWhilePurging(t *testing.T) {
	ctx := context.Background()
	clk, dir, o := evictStore(t)
	s := mustOpen(t, dir, o)
	defer s.Close()
	const n, supply = 300, 1000
	if err := s.CreatePool(ctx, "e:p", supply); err != nil {
		t.Fatal(err)
	}
	reserveReleased(t, s, n)
	clk.Advance(2 * time.Minute)
	var created [n]atomic.Int32
	var purged atomic.Int64
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g < 3 {
				purgeAll(t, s, clk.Now(), 1+g*5, &purged)
				return
			}
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for _, i := range rng.Perm(n) {
				res, err := s.Reserve(ctx, evictReq(i))
				switch {
				case err != nil:
					t.Errorf("Reserve(%d) = %v", i, err)
					return
				case !res.Existed:
					created[i].Add(1)
				case res.State != inventory.StateReleased && res.State != inventory.StateHeld:
					t.Errorf("Reserve(%d) = %+v", i, res)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	news := 0
	for i := range n {
		c := created[i].Load()
		if c > 1 {
			t.Fatalf("reservation %d created %d times", i, c)
		}
		// Created again: held. Not: still released, or purged after
		// the last reserve of it.
		res, err := s.Reservation(ctx, evictReq(i).ID)
		switch {
		case c == 1 && (err != nil || res.State != inventory.StateHeld):
			t.Fatalf("reservation %d, created again, is %+v, %v; want held", i, res, err)
		case c == 0 && err == nil && res.State != inventory.StateReleased:
			t.Fatalf("reservation %d, not created again, is %+v; want released", i, res)
		case c == 0 && err != nil && !errors.Is(err, inventory.ErrReservationNotFound):
			t.Fatalf("reservation %d: %v", i, err)
		}
		news += int(c)
	}
	if p, _ := s.Pool(ctx, "e:p"); p.Held != int64(news) || p.Available != supply-int64(news) {
		t.Fatalf("pool = %+v; want %d held", p, news)
	}
	// What the purgers left released is still purgeable, once.
	k, err := s.Purge(ctx, clk.Now(), inventory.ExpireMax)
	if err != nil {
		t.Fatal(err)
	}
	if got := purged.Load() + int64(k); got < int64(news) || got > n {
		t.Fatalf("purged %d; want between %d and %d", got, news, n)
	}
	if recs, disk := inventory.MemRecords(s); recs != news || disk != 0 {
		t.Fatalf("in memory: %d records, %d disk entries; want %d, 0", recs, disk, news)
	}
	t.Logf("%d purged, %d created again", purged.Load()+int64(k), news)
}

// memEvictStore is evictStore on an in-memory file system: the tests of
// many synced commits do not wait for a disk, and every key stays in the
// memtable, where a deleted key's tombstone is read again by an iterator
// over it.
func memEvictStore(t *testing.T) (*fakeClock, string, inventory.PebbleOptions) {
	clk, _, o := evictStore(t)
	o.FS = vfs.NewMem()
	return clk, "db", o
}

// TestPebblePurgeReadsEachKeyOnce drains many released reservations in
// rounds: each round reads about the keys it deletes, not again the
// tombstones of those the rounds before it deleted (which made a drain
// quadratic).
func TestPebblePurgeReadsEachKeyOnce(t *testing.T) {
	ctx := context.Background()
	clk, dir, o := memEvictStore(t)
	s := mustOpen(t, dir, o)
	defer s.Close()
	const n, max = 2000, 100
	if err := s.CreatePool(ctx, "e:p", n); err != nil {
		t.Fatal(err)
	}
	reserveReleased(t, s, n)
	clk.Advance(2 * time.Minute)
	purged := 0
	for round := 0; ; round++ {
		before := inventory.PurgePoints(s)
		k, err := s.Purge(ctx, clk.Now(), max)
		if err != nil {
			t.Fatal(err)
		}
		// The keys it deletes, and the one it stops at.
		if read := inventory.PurgePoints(s) - before; read > max+1 {
			t.Fatalf("round %d (%d purged before it) read %d index keys; want at most %d", round, purged, read, max+1)
		}
		if k == 0 {
			break
		}
		purged += k
	}
	if purged != n || inventory.DiskKeys(s, 'x') != 0 || inventory.DiskKeys(s, 'r') != 0 {
		t.Fatalf("purged %d; want %d, and no records or purge keys left (%d, %d)", purged, n,
			inventory.DiskKeys(s, 'r'), inventory.DiskKeys(s, 'x'))
	}
}

// TestPebblePurgeFindsKeysWrittenBelow: a reservation released after a
// Purge round went past its expiry (a refund of one paid long ago, a hold
// the sweeper expires late) is still purged by the next round.
func TestPebblePurgeFindsKeysWrittenBelow(t *testing.T) {
	ctx := context.Background()
	clk, dir, o := memEvictStore(t)
	s := mustOpen(t, dir, o)
	defer s.Close()
	if err := s.CreatePool(ctx, "e:p", 100); err != nil {
		t.Fatal(err)
	}
	reserve := func(i int, ttl time.Duration) string {
		t.Helper()
		req := evictReq(i)
		req.TTL = ttl
		if _, err := s.Reserve(ctx, req); err != nil {
			t.Fatal(err)
		}
		return req.ID
	}
	paid, held := reserve(0, time.Minute), reserve(1, time.Minute)
	if _, err := s.Confirm(ctx, paid); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 12; i++ {
		if _, err := s.Release(ctx, reserve(i, 2*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(3 * time.Minute)
	if k, err := s.Purge(ctx, clk.Now(), 100); err != nil || k != 10 {
		t.Fatalf("Purge = %d, %v; want 10", k, err)
	}
	// Both expired a minute before the keys just purged.
	if _, err := s.Refund(ctx, paid); err != nil {
		t.Fatal(err)
	}
	if rs, err := s.Expire(ctx, clk.Now(), 10); err != nil || len(rs) != 1 || rs[0].ID != held {
		t.Fatalf("Expire = %v, %v; want %s", rs, err, held)
	}
	if k, err := s.Purge(ctx, clk.Now(), 100); err != nil || k != 2 {
		t.Fatalf("Purge after the late releases = %d, %v; want 2", k, err)
	}
	if x := inventory.DiskKeys(s, 'x'); x != 0 {
		t.Fatalf("purge keys left = %d; want 0", x)
	}
}

// TestPebblePurgeWhileRefunding refunds reservations paid long ago (their
// purge keys go below where the rounds have reached) while rounds run:
// a key written while a round runs, after its iterator was made, is not
// skipped by the rounds after it. Every refunded reservation is purged.
func TestPebblePurgeWhileRefunding(t *testing.T) {
	ctx := context.Background()
	clk, dir, o := memEvictStore(t)
	s := mustOpen(t, dir, o)
	defer s.Close()
	const n = 400
	if err := s.CreatePool(ctx, "e:p", n); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		req := evictReq(i)
		req.TTL = time.Duration(1+i%7) * time.Second
		if _, err := s.Reserve(ctx, req); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Confirm(ctx, req.ID); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Minute)
	var purged atomic.Int64
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer done.Store(true)
		for _, i := range rand.New(rand.NewPCG(3, 5)).Perm(n) {
			if _, err := s.Refund(ctx, evictReq(i).ID); err != nil {
				t.Errorf("Refund(%d) = %v", i, err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for !done.Load() {
			purgeAll(t, s, clk.Now(), 3, &purged)
		}
	}()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	purgeAll(t, s, clk.Now(), 3, &purged)
	if got, x := purged.Load(), inventory.DiskKeys(s, 'x'); got != n || x != 0 {
		t.Fatalf("purged %d, %d purge keys left; want %d, 0", got, x, n)
	}
}
