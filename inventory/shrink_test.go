package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/surge-retail/surge/inventory"
)

// TestRecordsShrinkAfterCrowd checks that the memory a crowd's records
// took goes back when they are gone: a crowd of holds of which 1 in 100 is
// paid and 1 in 100 still held, the rest released and purged, leaves
// about as many record slots as reservations left, not the crowd's (shards
// rebuilt, recShard.rebuild), while other goroutines read, confirm and
// release the survivors; the survivors keep their states and the pool its
// exact totals, and the holds left still expire after the move.
func TestRecordsShrinkAfterCrowd(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s := inventory.NewMemory(inventory.Options{Now: clk.Now})
	defer s.Close()
	shards, rebuildSlots := inventory.Shards(s)
	n := shards * rebuildSlots * 3
	if err := s.CreatePool(ctx, "k:p", int64(n)); err != nil {
		t.Fatal(err)
	}
	id := func(i int) string { return fmt.Sprintf("k:r%07d", i) }
	const (
		kindPaid = 0  // i%100: confirmed
		kindLong = 1  // held for 10 minutes; half released while the crowd goes
		kindRest = 99 // (any other): released by Expire, then purged
	)
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				ttl := time.Minute
				if i%100 == kindLong {
					ttl = 10 * time.Minute
				}
				_, err := s.Reserve(ctx, inventory.ReserveRequest{ID: id(i), User: fmt.Sprintf("u%d", i), TTL: ttl,
					Lines: []inventory.Line{{Pool: "k:p", Quantity: 1, Limit: 1}}})
				if err == nil && i%100 == kindPaid {
					_, err = s.Confirm(ctx, id(i))
				}
				if err != nil {
					t.Errorf("reserve %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	peakSlots, peakIndex := inventory.MemSlots(s)
	clk.Advance(2 * time.Minute)
	var stop atomic.Bool
	var released atomic.Int64
	errs := make(chan error, workers)
	// Readers and writers of the survivors while the crowd is expired and
	// purged (and the shards rebuilt under them).
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; !stop.Load(); round++ {
				for i := w*100 + round%100*0; i < n; i += 400 {
					if r, err := s.Reservation(ctx, id(i)); err != nil || r.State != inventory.StatePaid {
						errs <- fmt.Errorf("Reservation(%s) = %+v, %v; want paid", id(i), r, err)
						return
					}
					if r, err := s.Confirm(ctx, id(i)); err != nil || r.State != inventory.StatePaid {
						errs <- fmt.Errorf("Confirm(%s) = %+v, %v; want paid", id(i), r, err)
						return
					}
					j := i + kindLong
					if j%200 == kindLong && round == 0 {
						if _, err := s.Release(ctx, id(j)); err != nil {
							errs <- fmt.Errorf("Release(%s) = %v", id(j), err)
							return
						}
						released.Add(1)
					} else if r, err := s.Reservation(ctx, id(j)); err != nil || r.State == inventory.StatePaid {
						errs <- fmt.Errorf("Reservation(%s) = %+v, %v; want held or released", id(j), r, err)
						return
					}
				}
				if _, _, err := s.Scan(ctx, inventory.StatePaid, "", 50); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	expired, purged := 0, 0
	for {
		rs, err := s.Expire(ctx, clk.Now(), inventory.ExpireMax)
		if err != nil {
			t.Fatal(err)
		}
		k, err := s.Purge(ctx, clk.Now(), inventory.ExpireMax)
		if err != nil {
			t.Fatal(err)
		}
		expired += len(rs)
		purged += k
		if len(rs) == 0 && k == 0 {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	paid, long := (n+99)/100, (n+98)/100 // i%100 == 0, == 1
	if want := n - paid - long; expired != want {
		t.Fatalf("expired %d; want %d", expired, want)
	}
	rel := int(released.Load())
	if want := n - paid - long; purged != want { // those released by hand are not due yet
		t.Fatalf("purged %d; want %d", purged, want)
	}
	if p, _ := s.Pool(ctx, "k:p"); p.Sold != int64(paid) || p.Held != int64(long-rel) || p.Available != int64(n-paid-long+rel) {
		t.Fatalf("pool = %+v; want %d sold, %d held", p, paid, long-rel)
	}
	// One more round rebuilds what the busy readers kept from it.
	if _, err := s.Expire(ctx, clk.Now(), 1); err != nil {
		t.Fatal(err)
	}
	live := paid + long
	slots, index := inventory.MemSlots(s)
	if recs, _ := inventory.MemRecords(s); recs != live {
		t.Fatalf("records in memory = %d; want %d", recs, live)
	}
	if slots > 2*live || index >= peakIndex {
		t.Fatalf("after the crowd: %d slots, index %d (peak %d slots, index %d) for %d records; want the slots near the records and the index smaller",
			slots, index, peakSlots, peakIndex, live)
	}
	// Survivors answer as they are; Scan finds every paid one.
	for i := range n {
		r, err := s.Reservation(ctx, id(i))
		switch {
		case i%100 == kindPaid:
			if err != nil || r.State != inventory.StatePaid {
				t.Fatalf("Reservation(%s) = %+v, %v; want paid", id(i), r, err)
			}
		case i%100 == kindLong:
			if err != nil || r.State != inventory.StateHeld && r.State != inventory.StateReleased {
				t.Fatalf("Reservation(%s) = %+v, %v; want held or released", id(i), r, err)
			}
		default:
			if !errors.Is(err, inventory.ErrReservationNotFound) {
				t.Fatalf("Reservation(%s) = %v; want purged", id(i), err)
			}
		}
	}
	if got := len(scanPages(t, s, inventory.StatePaid, inventory.ScanLimitMax)); got != paid {
		t.Fatalf("Scan(paid) = %d; want %d", got, paid)
	}
	// The holds left, moved by the rebuild, still expire.
	clk.Advance(10 * time.Minute)
	left := 0
	for {
		rs, err := s.Expire(ctx, clk.Now(), inventory.ExpireMax)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
		left += len(rs)
	}
	if left != long-rel {
		t.Fatalf("expired %d holds after the rebuild; want %d", left, long-rel)
	}
	if p, _ := s.Pool(ctx, "k:p"); p.Held != 0 || p.Sold != int64(paid) {
		t.Fatalf("pool at the end = %+v", p)
	}
}

// scanPages scans every reservation in state st, limit a page.
func scanPages(t *testing.T, s inventory.Store, st inventory.State, limit int) []inventory.Reservation {
	t.Helper()
	var all []inventory.Reservation
	cursor := ""
	for {
		rs, next, err := s.Scan(context.Background(), st, cursor, limit)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, rs...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

// syncGate is a file system whose WAL syncs wait while it is held: a
// commit then stays in flight, its records locked, as long as a test
// wants.
type syncGate struct {
	vfs.FS
	mu      sync.Mutex
	held    chan struct{} // nil: open; closed when opened
	waiting atomic.Int32
}

func (g *syncGate) hold() {
	g.mu.Lock()
	g.held = make(chan struct{})
	g.mu.Unlock()
}

func (g *syncGate) open() {
	g.mu.Lock()
	close(g.held)
	g.held = nil
	g.mu.Unlock()
}

func (g *syncGate) wait() {
	g.mu.Lock()
	ch := g.held
	g.mu.Unlock()
	if ch != nil {
		g.waiting.Add(1)
		<-ch
		g.waiting.Add(-1)
	}
}

func (g *syncGate) gate(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return gatedFile{File: f, g: g}, nil
}

func (g *syncGate) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.Create(name, c)
	return g.gate(name, f, err)
}

func (g *syncGate) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := g.FS.OpenReadWrite(name, c, opts...)
	return g.gate(name, f, err)
}

func (g *syncGate) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.ReuseForWrite(oldname, newname, c)
	return g.gate(newname, f, err)
}

type gatedFile struct {
	vfs.File
	g *syncGate
}

func (f gatedFile) Sync() error {
	f.g.wait()
	return f.File.Sync()
}

func (f gatedFile) SyncData() error {
	f.g.wait()
	return f.File.SyncData()
}

// TestRebuildWaitsForCommits: on Pebble a record stays locked across the
// WAL sync of its change; a shard that wants a rebuild does not try it
// (each try a walk of its whole index under its lock, to fail on that
// record) while one of its records is in a commit, and is rebuilt at the
// first call after the commit.
func TestRebuildWaitsForCommits(t *testing.T) {
	ctx := context.Background()
	clk, dir, o := memEvictStore(t)
	gate := &syncGate{FS: o.FS}
	o.FS = gate
	s := mustOpen(t, dir, o)
	defer func() { s.Close() }()
	shards, rebuildSlots := inventory.Shards(s)
	n := shards * rebuildSlots * 5 / 4
	if err := s.CreatePool(ctx, "b:p", int64(n)); err != nil {
		t.Fatal(err)
	}
	id := func(i int) string { return fmt.Sprintf("b:r%06d", i) }
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				ttl := time.Minute
				if i == 0 {
					ttl = 10 * time.Minute // the survivor
				}
				_, err := s.Reserve(ctx, inventory.ReserveRequest{ID: id(i), User: fmt.Sprintf("u%d", i), TTL: ttl,
					Lines: []inventory.Line{{Pool: "b:p", Quantity: 1}}})
				if err != nil {
					t.Errorf("Reserve(%s) = %v", id(i), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	peak, _ := inventory.ShardOf(s, id(0))
	if peak < rebuildSlots {
		t.Fatalf("the survivor's shard has %d slots; want at least %d", peak, rebuildSlots)
	}
	// The crowd expires; the survivor, locked, keeps its shard from
	// being rebuilt meanwhile.
	unlock := inventory.LockRecord(s, id(0))
	clk.Advance(2 * time.Minute)
	for {
		rs, err := s.Expire(ctx, clk.Now(), inventory.ExpireMax)
		if err != nil {
			unlock()
			t.Fatal(err)
		}
		k, err := s.Purge(ctx, clk.Now(), inventory.ExpireMax)
		if err != nil {
			unlock()
			t.Fatal(err)
		}
		if len(rs) == 0 && k == 0 {
			break
		}
	}
	unlock()
	// Its payment is committing, held at the WAL sync.
	gate.hold()
	confirmed := make(chan error, 1)
	go func() {
		_, err := s.Confirm(ctx, id(0))
		confirmed <- err
	}()
	for gate.waiting.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	_, tries0 := inventory.ShardOf(s, id(0))
	const calls = 50
	for range calls {
		if _, err := s.Expire(ctx, clk.Now(), 1); err != nil {
			gate.open()
			t.Fatal(err)
		}
	}
	slots, tries := inventory.ShardOf(s, id(0))
	gate.open()
	if err := <-confirmed; err != nil {
		t.Fatalf("Confirm(%s) = %v", id(0), err)
	}
	if slots != peak || tries != tries0 {
		t.Fatalf("%d Expire calls with a record in a commit: %d rebuilds tried, slots %d -> %d; want none tried",
			calls, tries-tries0, peak, slots)
	}
	if _, err := s.Expire(ctx, clk.Now(), 1); err != nil {
		t.Fatal(err)
	}
	if slots, tries = inventory.ShardOf(s, id(0)); slots >= rebuildSlots || tries != tries0+1 {
		t.Fatalf("after the commit: %d slots, %d rebuilds tried; want the shard rebuilt at the first try", slots, tries-tries0)
	}
	if r, err := s.Reservation(ctx, id(0)); err != nil || r.State != inventory.StatePaid {
		t.Fatalf("Reservation(%s) after the rebuild = %+v, %v; want paid", id(0), r, err)
	}
	if p, _ := s.Pool(ctx, "b:p"); p.Sold != 1 || p.Held != 0 || p.Available != int64(n-1) {
		t.Fatalf("pool = %+v; want 1 sold", p)
	}
}

// TestPebbleRebuildWhileReserving rebuilds the shards of a Pebble store
// (a crowd's holds expired, a few paid and held left, released ones
// evicted and purged) while other goroutines create holds, release some,
// retry the reserves of theirs and read the paid ones: no id is lost (a
// retry says Existed, in the state it has) or created twice, and the
// pool's totals are exactly what the reservations hold, also after a
// reopen. The crowd's long holds stay locked while it is expired, so that
// no shard is rebuilt before the creators run.
func TestPebbleRebuildWhileReserving(t *testing.T) {
	ctx := context.Background()
	clk, dir, o := memEvictStore(t)
	s := mustOpen(t, dir, o)
	defer func() { s.Close() }()
	shards, rebuildSlots := inventory.Shards(s)
	n := shards * rebuildSlots * 3 / 2
	supply := int64(2 * n)
	if err := s.CreatePool(ctx, "rb:p", supply); err != nil {
		t.Fatal(err)
	}
	const (
		kindPaid = 0 // i%50: confirmed
		kindLong = 1 // held for 10 minutes
	)
	crowdID := func(i int) string { return fmt.Sprintf("rb:c%06d", i) }
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				ttl := time.Minute
				if i%50 == kindLong {
					ttl = 10 * time.Minute
				}
				_, err := s.Reserve(ctx, inventory.ReserveRequest{ID: crowdID(i), User: fmt.Sprintf("u%d", i), TTL: ttl,
					Lines: []inventory.Line{{Pool: "rb:p", Quantity: 1}}})
				if err == nil && i%50 == kindPaid {
					_, err = s.Confirm(ctx, crowdID(i))
				}
				if err != nil {
					t.Errorf("crowd %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	paid := (n + 49) / 50
	if most := inventory.ShardSlotsMax(s); most < rebuildSlots {
		t.Fatalf("most slots in a shard after the crowd = %d; want at least %d", most, rebuildSlots)
	}
	var unlocks []func()
	for i := kindLong; i < n; i += 50 {
		unlocks = append(unlocks, inventory.LockRecord(s, crowdID(i)))
	}
	unlock := func() {
		for _, u := range unlocks {
			u()
		}
		unlocks = nil
	}
	defer unlock()
	clk.Advance(2 * time.Minute)
	for {
		rs, err := s.Expire(ctx, clk.Now(), inventory.ExpireMax)
		if err != nil {
			t.Fatal(err)
		}
		k, err := s.Purge(ctx, clk.Now(), inventory.ExpireMax)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 && k == 0 {
			break
		}
	}
	if most := inventory.ShardSlotsMax(s); most < rebuildSlots {
		t.Fatalf("most slots in a shard with its long holds locked = %d; want at least %d (not rebuilt)", most, rebuildSlots)
	}

	// Creators: each creates up to createMax holds (ids of its own),
	// releases every third, retries the reserve of an earlier one and
	// reads a paid one of the crowd.
	const creators, createMax = 4, 2000
	type made struct {
		id       string
		released bool
	}
	mades := make([][]made, creators)
	var stop atomic.Bool
	var created atomic.Int64
	req := func(g, j int) inventory.ReserveRequest {
		return inventory.ReserveRequest{ID: fmt.Sprintf("rb:g%d-%05d", g, j), User: fmt.Sprintf("g%d", g), TTL: 10 * time.Minute,
			Lines: []inventory.Line{{Pool: "rb:p", Quantity: 1}}}
	}
	for g := range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 11))
			for !stop.Load() {
				if k := len(mades[g]); k < createMax {
					res, err := s.Reserve(ctx, req(g, k))
					if err != nil || res.Existed {
						t.Errorf("Reserve(%s) = %+v, %v; want a new hold", req(g, k).ID, res, err)
						return
					}
					m := made{id: res.ID}
					if k%3 == 0 {
						if _, err := s.Release(ctx, m.id); err != nil {
							t.Errorf("Release(%s) = %v", m.id, err)
							return
						}
						m.released = true
					}
					mades[g] = append(mades[g], m)
					created.Add(1)
				}
				i := rng.IntN(len(mades[g]))
				m := mades[g][i]
				want := inventory.StateHeld
				if m.released {
					want = inventory.StateReleased
				}
				if res, err := s.Reserve(ctx, req(g, i)); err != nil || !res.Existed || res.State != want {
					t.Errorf("Reserve(%s) again = %+v, %v; want it %s", m.id, res, err, want)
					return
				}
				c := crowdID(rng.IntN(paid)*50 + kindPaid)
				if r, err := s.Reservation(ctx, c); err != nil || r.State != inventory.StatePaid {
					t.Errorf("Reservation(%s) = %+v, %v; want paid", c, r, err)
					return
				}
			}
		}()
	}
	for created.Load() < creators && !t.Failed() {
		time.Sleep(time.Millisecond)
	}
	// Unlocked, the shards are rebuilt (within the longest wait of a
	// failed rebuild) while the creators run.
	unlock()
	rebuilt, calls := false, 0
	for ; calls < 100_000 && !rebuilt && !t.Failed(); calls++ {
		if _, err := s.Expire(ctx, clk.Now(), 1); err != nil {
			t.Error(err)
			break
		}
		rebuilt = inventory.ShardSlotsMax(s) < rebuildSlots
	}
	during := created.Load()
	stop.Store(true)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if !rebuilt {
		t.Fatalf("a shard still has %d slots after %d Expire calls; want every one rebuilt", inventory.ShardSlotsMax(s), calls)
	}
	t.Logf("rebuilt in %d Expire calls; %d holds created before, %d in all", calls, during, created.Load())
	var wantHeld []string
	for i := kindLong; i < n; i += 50 {
		wantHeld = append(wantHeld, crowdID(i))
	}
	for g := range mades {
		for _, m := range mades[g] {
			if !m.released {
				wantHeld = append(wantHeld, m.id)
			}
		}
	}
	slices.Sort(wantHeld)
	check := func(when string) {
		t.Helper()
		var held []string
		for _, r := range scanPages(t, s, inventory.StateHeld, inventory.ScanLimitMax) {
			held = append(held, r.ID)
		}
		if !slices.Equal(held, wantHeld) {
			t.Fatalf("%s: Scan(held) = %d ids; want the %d long holds and holds created and not released", when, len(held), len(wantHeld))
		}
		if got := len(scanPages(t, s, inventory.StatePaid, inventory.ScanLimitMax)); got != paid {
			t.Fatalf("%s: Scan(paid) = %d; want %d", when, got, paid)
		}
		p, err := s.Pool(ctx, "rb:p")
		if err != nil {
			t.Fatal(err)
		}
		if p.Held != int64(len(wantHeld)) || p.Sold != int64(paid) || p.Available+p.Held+p.Sold != supply {
			t.Fatalf("%s: pool = %+v; want %d held, %d sold, of %d", when, p, len(wantHeld), paid, supply)
		}
	}
	check("after the rebuild")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, o)
	check("after reopen")
}
