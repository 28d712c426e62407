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

// diskBoundStore returns a clock and options for a Pebble store of these
// tests, on an in-memory file system (kept across reopens), whose disk
// entries are bounded to perShard a record shard.
func diskBoundStore(t *testing.T, perShard int) (*fakeClock, inventory.PebbleOptions) {
	clk := newFakeClock()
	o := inventory.PebbleOptions{Options: inventory.Options{Now: clk.Now}, FS: vfs.NewMem(), NoWALWarmup: true}
	shards, _ := inventory.Shards(inventory.NewMemory(inventory.Options{}))
	o.DiskEntriesMax = perShard * shards
	return clk, o
}

// checkDiskEntries fails t if s holds more disk entries than max, or if
// its shards' counts of them are not what their indexes hold. It returns
// the entries and how many shards hold none any more (overflowed).
func checkDiskEntries(t *testing.T, s inventory.Store, max int, when string) (entries, overflowed int) {
	t.Helper()
	entries, counted, overflowed := inventory.DiskEntries(s)
	if entries != counted || entries > max {
		t.Fatalf("%s: %d disk entries in the indexes, %d counted; want them equal and at most %d", when, entries, counted, max)
	}
	return entries, overflowed
}

// diskReq is the request of reservation i of these tests.
func diskReq(i int) inventory.ReserveRequest {
	return inventory.ReserveRequest{ID: fmt.Sprintf("d:r%05d", i), User: fmt.Sprintf("u%d", i%37), TTL: time.Hour,
		Meta: []byte(fmt.Sprintf("m%d", i)), Lines: []inventory.Line{{Pool: "d:p", Quantity: 1, Limit: 1000}}}
}

// releaseOne reserves diskReq(i) and releases it (cancelled; every third
// one paid and refunded), and returns the released reservation.
func releaseOne(t *testing.T, s inventory.Store, i int) inventory.Reservation {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Reserve(ctx, diskReq(i)); err != nil {
		t.Fatal(err)
	}
	id := diskReq(i).ID
	var res inventory.Reservation
	var err error
	if i%3 == 0 {
		if _, err = s.Confirm(ctx, id); err == nil {
			res, err = s.Refund(ctx, id)
		}
	} else {
		res, err = s.Release(ctx, id)
	}
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkReplays checks that every reservation of want (diskReq(i) for
// want's key i) answers as stored: Reservation, a replayed Reserve (the
// same id never creates a second reservation), a Reserve of its id by
// another user (ErrIDConflict) and a late Confirm (ErrBadState).
func checkReplays(t *testing.T, s inventory.Store, want map[int]inventory.Reservation, when string) {
	t.Helper()
	ctx := context.Background()
	for i, w := range want {
		checkStored(t, s, w, diskReq(i), when)
		if _, err := s.Confirm(ctx, w.ID); !errors.Is(err, inventory.ErrBadState) {
			t.Fatalf("%s: Confirm(%s) = %v; want ErrBadState", when, w.ID, err)
		}
	}
}

// TestPebbleDiskEntriesBounded: the disk entries of released reservations
// never pass PebbleOptions.DiskEntriesMax; a shard at its bound drops them,
// and every answer about a released reservation stays what it was, for
// those evicted while their shard kept entries and those evicted after it
// dropped them; a new id is still created once; Forget and Purge of
// reservations whose entries were dropped work, and their ids are free
// again.
func TestPebbleDiskEntriesBounded(t *testing.T) {
	ctx := context.Background()
	const perShard = 4
	clk, o := diskBoundStore(t, perShard)
	s := mustOpen(t, "db", o)
	defer func() { s.Close() }()
	shards, _ := inventory.Shards(s)
	const supply = 100_000
	if err := s.CreatePool(ctx, "d:p", supply); err != nil {
		t.Fatal(err)
	}
	want := map[int]inventory.Reservation{}
	// Before: released while some shards still kept entries; after:
	// released once every shard had dropped them.
	before, after := map[int]inventory.Reservation{}, map[int]inventory.Reservation{}
	peak, i := 0, 0
	for ; ; i++ {
		res := releaseOne(t, s, i)
		want[i] = res
		entries, overflowed := checkDiskEntries(t, s, o.DiskEntriesMax, fmt.Sprintf("after %d released", i+1))
		peak = max(peak, entries)
		if overflowed == shards {
			break
		}
		before[i] = res
		if i > 1000*shards {
			t.Fatalf("after %d released, %d of %d shards dropped their disk entries; want all", i+1, overflowed, shards)
		}
	}
	if peak == 0 {
		t.Fatalf("no disk entry was ever kept; want up to %d", o.DiskEntriesMax)
	}
	t.Logf("every shard dropped its disk entries after %d released (peak %d entries)", i+1, peak)
	for range 10 * shards {
		i++
		want[i] = releaseOne(t, s, i)
		after[i] = want[i]
		checkDiskEntries(t, s, o.DiskEntriesMax, "after the switch")
	}
	checkReplays(t, s, before, "evicted before the switch")
	checkReplays(t, s, after, "evicted after the switch")
	// New ids are created once, and held.
	for k := i + 1; k <= i+shards; k++ {
		res, err := s.Reserve(ctx, diskReq(k))
		if err != nil || res.Existed || res.State != inventory.StateHeld {
			t.Fatalf("Reserve(%s), new = %+v, %v; want held, not Existed", diskReq(k).ID, res, err)
		}
		if res, err = s.Reserve(ctx, diskReq(k)); err != nil || !res.Existed || res.State != inventory.StateHeld {
			t.Fatalf("Reserve(%s) again = %+v, %v; want it held, Existed", diskReq(k).ID, res, err)
		}
	}
	if p, _ := s.Pool(ctx, "d:p"); p.Held != int64(shards) || p.Sold != 0 || p.Available != supply-int64(shards) {
		t.Fatalf("pool = %+v; want %d held, 0 sold, %d available", p, shards, supply-shards)
	}
	// Forget of one evicted before, one after: gone, then new again.
	for _, k := range []int{0, i} {
		id := diskReq(k).ID
		if err := s.Forget(ctx, id); err != nil {
			t.Fatalf("Forget(%s) = %v", id, err)
		}
		if _, err := s.Reservation(ctx, id); !errors.Is(err, inventory.ErrReservationNotFound) {
			t.Fatalf("Reservation(%s) after Forget = %v; want ErrReservationNotFound", id, err)
		}
		if err := s.Forget(ctx, id); !errors.Is(err, inventory.ErrReservationNotFound) {
			t.Fatalf("Forget(%s) again = %v; want ErrReservationNotFound", id, err)
		}
		delete(want, k)
	}
	checkDiskEntries(t, s, o.DiskEntriesMax, "after Forget")
	// Purge deletes every released one left.
	clk.Advance(2 * time.Hour)
	purged := 0
	for {
		n, err := s.Purge(ctx, clk.Now(), 64)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		purged += n
	}
	if purged != len(want) {
		t.Fatalf("Purge forgot %d; want %d", purged, len(want))
	}
	if entries, _ := checkDiskEntries(t, s, o.DiskEntriesMax, "after Purge"); entries != 0 {
		t.Fatalf("after Purge: %d disk entries; want 0", entries)
	}
	for k := range want {
		if _, err := s.Reservation(ctx, diskReq(k).ID); !errors.Is(err, inventory.ErrReservationNotFound) {
			t.Fatalf("Reservation(%s) after Purge = %v; want ErrReservationNotFound", diskReq(k).ID, err)
		}
	}
	if res, err := s.Reserve(ctx, diskReq(1)); err != nil || res.Existed {
		t.Fatalf("Reserve(%s) after Purge = %+v, %v; want a new one", diskReq(1).ID, res, err)
	}
}

// TestPebbleDiskEntriesReopen: a store reopened with more released
// reservations on disk than its bound of disk entries keeps at most the
// bound (the shards past theirs keep none) and answers for every one of
// them as stored; reopened with a larger bound it keeps an entry for each
// again; with a negative one, none.
func TestPebbleDiskEntriesReopen(t *testing.T) {
	ctx := context.Background()
	_, o := diskBoundStore(t, 1000)
	s := mustOpen(t, "db", o)
	shards, _ := inventory.Shards(s)
	if err := s.CreatePool(ctx, "d:p", 100_000); err != nil {
		t.Fatal(err)
	}
	n := 20 * shards
	want := map[int]inventory.Reservation{}
	for i := range n {
		want[i] = releaseOne(t, s, i)
	}
	if entries, _ := checkDiskEntries(t, s, o.DiskEntriesMax, "before reopening"); entries != n {
		t.Fatalf("before reopening: %d disk entries; want %d", entries, n)
	}
	reopen := func(entriesMax int) {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		o.DiskEntriesMax = entriesMax
		s = mustOpen(t, "db", o)
	}
	defer func() { s.Close() }()

	const perShard = 4
	reopen(perShard * shards)
	entries, overflowed := checkDiskEntries(t, s, perShard*shards, "reopened with a small bound")
	if overflowed == 0 {
		t.Fatalf("reopened with %d released on disk, bound %d: no shard dropped its disk entries", n, perShard*shards)
	}
	t.Logf("reopened with bound %d: %d disk entries, %d of %d shards hold none", perShard*shards, entries, overflowed, shards)
	checkReplays(t, s, want, "reopened with a small bound")

	reopen(0) // the default
	if entries, overflowed := checkDiskEntries(t, s, inventory.DiskEntriesMaxDefault, "reopened with the default"); entries != n || overflowed != 0 {
		t.Fatalf("reopened with the default bound: %d disk entries, %d shards without; want %d, 0", entries, overflowed, n)
	}
	checkReplays(t, s, want, "reopened with the default bound")

	reopen(-1)
	if entries, overflowed := checkDiskEntries(t, s, 0, "reopened with none"); entries != 0 || overflowed != shards {
		t.Fatalf("reopened with a negative bound: %d disk entries, %d shards without; want 0, %d", entries, overflowed, shards)
	}
	checkReplays(t, s, want, "reopened with no disk entries")
	if res, err := s.Reserve(ctx, diskReq(n)); err != nil || res.Existed {
		t.Fatalf("Reserve(%s), new = %+v, %v; want a new one", diskReq(n).ID, res, err)
	}
}

// TestPebbleDiskEntriesHammer: goroutines reserve new ids in pairs (two
// goroutines race for each id), pay, hold or release them, and replay the
// released ones, while other goroutines reserve, release, Forget and Purge
// short-lived ids, on a store whose shards reach their bound of disk
// entries during the run (a claim made before its shard's switch may end
// after it). Every id is created once, every replay answers as stored, the
// entries never pass the bound, and the pool's totals are exact.
func TestPebbleDiskEntriesHammer(t *testing.T) {
	ctx := context.Background()
	const perShard = 2
	clk, o := diskBoundStore(t, perShard)
	s := mustOpen(t, "db", o)
	defer func() { s.Close() }()
	shards, _ := inventory.Shards(s)
	const supply = 1_000_000
	if err := s.CreatePool(ctx, "d:p", supply); err != nil {
		t.Fatal(err)
	}
	const pairs, perPair = 4, 150
	const n = pairs * perPair
	var created [n]atomic.Int32
	var relMu sync.Mutex
	var released []int // ids of diskReq released, for replays
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	// Id k belongs to pair k%pairs; both goroutines of the pair reserve
	// the pair's ids in the same order, so they race for each.
	for g := range 2 * pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for k := g / 2; k < n; k += pairs {
				req := diskReq(k)
				res, err := s.Reserve(ctx, req)
				if err != nil {
					fail(fmt.Errorf("Reserve(%s) = %v", req.ID, err))
					return
				}
				if res.Existed {
					if res.User != req.User {
						fail(fmt.Errorf("Reserve(%s) = %+v; want user %s", req.ID, res, req.User))
						return
					}
				} else {
					created[k].Add(1)
					var err error
					switch k % 4 {
					case 0:
						_, err = s.Confirm(ctx, req.ID)
					case 1: // stays held
					default:
						if _, err = s.Release(ctx, req.ID); err == nil {
							relMu.Lock()
							released = append(released, k)
							relMu.Unlock()
						}
					}
					if err != nil {
						fail(fmt.Errorf("%s: %v", req.ID, err))
						return
					}
				}
				// Replay a released id.
				relMu.Lock()
				r := -1
				if len(released) > 0 {
					r = released[rng.IntN(len(released))]
				}
				relMu.Unlock()
				if r < 0 {
					continue
				}
				res, err = s.Reserve(ctx, diskReq(r))
				if err != nil || !res.Existed || res.State != inventory.StateReleased || res.User != diskReq(r).User {
					fail(fmt.Errorf("Reserve(%s) replayed = %+v, %v; want it released, Existed", diskReq(r).ID, res, err))
					return
				}
			}
		}()
	}
	// Short-lived ids (expiring before purgeBefore, the others after):
	// released, then forgotten by Forget or Purge, whichever comes first.
	purgeBefore := clk.Now().Add(time.Minute)
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 200 {
				req := diskReq(0)
				req.ID, req.TTL = fmt.Sprintf("d:q%d-%03d", g, k), time.Second
				if _, err := s.Reserve(ctx, req); err != nil {
					fail(fmt.Errorf("Reserve(%s) = %v", req.ID, err))
					return
				}
				if _, err := s.Release(ctx, req.ID); err != nil {
					fail(fmt.Errorf("Release(%s) = %v", req.ID, err))
					return
				}
				if k%2 == 0 {
					if err := s.Forget(ctx, req.ID); err != nil && !errors.Is(err, inventory.ErrReservationNotFound) {
						fail(fmt.Errorf("Forget(%s) = %v", req.ID, err))
						return
					}
				}
			}
		}()
	}
	// Purge and check the entries until the others are done.
	stop, purged := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(purged)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Purge(ctx, purgeBefore, 8); err != nil {
				fail(fmt.Errorf("Purge = %v", err))
				return
			}
			checkDiskEntriesErr(s, o.DiskEntriesMax, fail)
		}
	}()
	wg.Wait()
	close(stop)
	<-purged
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for {
		k, err := s.Purge(ctx, purgeBefore, 64)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			break
		}
	}
	var held, sold int64
	for k := range n {
		if c := created[k].Load(); c != 1 {
			t.Fatalf("%s created %d times; want 1", diskReq(k).ID, c)
		}
		switch k % 4 {
		case 0:
			sold++
		case 1:
			held++
		}
	}
	p, err := s.Pool(ctx, "d:p")
	if err != nil {
		t.Fatal(err)
	}
	if p.Held != held || p.Sold != sold || p.Available != supply-held-sold || p.Held+p.Sold+p.Available != p.Supplied || p.Supplied != supply {
		t.Fatalf("pool = %+v; want %d held, %d sold, %d available of %d", p, held, sold, supply-held-sold, supply)
	}
	entries, overflowed := checkDiskEntries(t, s, o.DiskEntriesMax, "after the run")
	if overflowed == 0 {
		t.Fatalf("no shard reached its bound of %d disk entries", perShard)
	}
	t.Logf("after the run: %d disk entries, %d of %d shards hold none", entries, overflowed, shards)
	want := map[int]inventory.Reservation{}
	for k := range n {
		res, err := s.Reservation(ctx, diskReq(k).ID)
		if err != nil {
			t.Fatal(err)
		}
		want[k] = res
	}
	for k, w := range want {
		res, err := s.Reserve(ctx, diskReq(k))
		if err != nil || !res.Existed || !sameRes(res, w) {
			t.Fatalf("Reserve(%s) after the run = %+v, %v; want %+v, Existed", w.ID, res, err, w)
		}
	}
}

// checkDiskEntriesErr is checkDiskEntries for a goroutine: it reports to
// fail.
func checkDiskEntriesErr(s inventory.Store, max int, fail func(error)) {
	entries, counted, _ := inventory.DiskEntries(s)
	if entries != counted || entries > max {
		fail(fmt.Errorf("%d disk entries in the indexes, %d counted; want them equal and at most %d", entries, counted, max))
	}
}
