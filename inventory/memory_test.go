package inventory

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMemoryUserStateDropped checks the per-user budget: a user's count
// exists only while the user has live units.
func TestMemoryUserStateDropped(t *testing.T) {
	m := NewMemory(Options{})
	ctx := context.Background()
	if err := m.CreatePool(ctx, "s:p", 10_000); err != nil {
		t.Fatal(err)
	}
	const users = 1000
	for i := range users {
		_, err := m.Reserve(ctx, ReserveRequest{ID: fmt.Sprintf("s:r%d", i), User: fmt.Sprintf("u%d", i), TTL: time.Minute,
			Lines: []Line{{Pool: "s:p", Quantity: 1, Limit: 2}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := m.users.len(); n != users {
		t.Fatalf("user entries with %d holding users = %d", users, n)
	}
	for i := range users {
		id := fmt.Sprintf("s:r%d", i)
		var err error
		switch i % 3 {
		case 0:
			_, err = m.Release(ctx, id)
		case 1:
			if _, err = m.Confirm(ctx, id); err == nil {
				_, err = m.Refund(ctx, id)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Expire(ctx, time.Now().Add(time.Hour), ExpireMax); err != nil {
		t.Fatal(err)
	}
	if n := m.users.len(); n != 0 {
		t.Fatalf("user entries after every hold ended = %d; want 0", n)
	}
}

func TestMemoryForget(t *testing.T) {
	m := NewMemory(Options{})
	ctx := context.Background()
	if err := m.CreatePool(ctx, "s:p", 10); err != nil {
		t.Fatal(err)
	}
	r := ReserveRequest{ID: "s:r1", User: "u1", TTL: time.Minute, Lines: []Line{{Pool: "s:p", Quantity: 2}}}
	if _, err := m.Reserve(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := m.Forget(ctx, "s:r1"); !errors.Is(err, ErrBadState) {
		t.Fatalf("Forget(held) = %v; want ErrBadState", err)
	}
	if _, err := m.Release(ctx, "s:r1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Forget(ctx, "s:r1"); err != nil {
		t.Fatalf("Forget(released) = %v", err)
	}
	if _, err := m.Reservation(ctx, "s:r1"); !errors.Is(err, ErrReservationNotFound) {
		t.Fatalf("Reservation(forgotten) = %v; want ErrReservationNotFound", err)
	}
	if res, err := m.Reserve(ctx, r); err != nil || res.State != StateHeld {
		t.Fatalf("Reserve(forgotten id) = %+v, %v; want a new hold", res, err)
	}
	if p, _ := m.Pool(ctx, "s:p"); p.Held != 2 || p.Available != 8 {
		t.Fatalf("Pool = %+v", p)
	}
}

func TestPoolTableGrows(t *testing.T) {
	m := NewMemory(Options{})
	ctx := context.Background()
	const n = 5000
	for i := range n {
		if err := m.CreatePool(ctx, fmt.Sprintf("s:p%d", i), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		p, err := m.Pool(ctx, fmt.Sprintf("s:p%d", i))
		if err != nil || p.Available != int64(i) {
			t.Fatalf("Pool(s:p%d) = %+v, %v", i, p, err)
		}
	}
	if len(m.pools.all()) != n {
		t.Fatalf("pool table holds %d; want %d", len(m.pools.all()), n)
	}
}

// TestMemoryUserBytes measures the per-user limit state: about 100 bytes a
// user (DESIGN.md's budget), not counting the user id string itself, which
// the reservation holds anyway.
func TestMemoryUserBytes(t *testing.T) {
	const users = 100_000
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("u%07d", i)
	}
	var tab userTable
	tab.init()
	p := &pool{id: "s:p", idx: 3}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, u := range names {
		tab.acquire(p, u, 1, 2)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perUser := float64(after.HeapAlloc-before.HeapAlloc) / users
	t.Logf("per-user limit state: %.0f bytes", perUser)
	if perUser > 128 {
		t.Fatalf("per-user limit state = %.0f bytes; budget about 100", perUser)
	}
	runtime.KeepAlive(names)
	for _, u := range names {
		tab.release(p, u, 1)
	}
	if tab.len() != 0 {
		t.Fatalf("entries after release = %d", tab.len())
	}
}

// TestRecShardIndexCollisions forces records onto one fingerprint, and so
// one probe run: find, publish and forget must still tell them apart by id
// (equal 32-bit fingerprints are rare, not impossible), and forgetting from
// the middle of a run must keep the rest findable.
func TestRecShardIndexCollisions(t *testing.T) {
	var sh recShard
	sh.init()
	pools := []uint32{0}
	lines := []Line{{Pool: "s:p", Quantity: 1}}
	const n = 200 // grows the index twice
	recs := make([]*record, n)
	id := func(i int) string { return fmt.Sprintf("s:r%d", i) }
	for i := range recs {
		h := uint64(7)<<32 | uint64(i%3) // fingerprint 7 for all
		var ref newRef
		recs[i], ref = sh.newRecord(h, id(i), "u1", lines, pools, nil, 1, 2)
		recs[i].state = StateReleased
		sh.publish(ref.entry, -1)
	}
	check := func(gone map[int]bool) {
		t.Helper()
		for i, r := range recs {
			got, _, _ := sh.find(r.hash(), id(i))
			if gone[i] {
				if got != nil {
					t.Fatalf("find(%q) after forget = %p; want nil", id(i), got)
				}
			} else if got != r {
				t.Fatalf("find(%q) = %p; want %p", id(i), got, r)
			}
		}
	}
	check(nil)
	gone := map[int]bool{}
	for _, i := range []int{100, 0, 199, 57, 58, 150} {
		r := recs[i]
		fp := r.fp
		r.mu.Lock()
		sh.forget(r)
		r.mu.Unlock()
		r.fp = fp // the slot keeps its fields; find must not match it
		gone[i] = true
		check(gone)
	}
	if sh.n != n-len(gone) || len(sh.free) != len(gone) {
		t.Fatalf("index holds %d, free slots %d; want %d, %d", sh.n, len(sh.free), n-len(gone), len(gone))
	}
}

// TestRecShardIndexWraps fills a small index so that probe runs wrap
// around its end, then forgets records in random order.
func TestRecShardIndexWraps(t *testing.T) {
	var sh recShard
	sh.init()
	pools := []uint32{0}
	lines := []Line{{Pool: "s:p", Quantity: 1}}
	size := uint64(len(sh.index))
	var recs []*record
	for i := range int(size/2) - 1 {
		// Fingerprints at the last two positions: runs wrap to 0.
		h := (size-1-uint64(i%2))<<32 | uint64(i)
		r, ref := sh.newRecord(h, fmt.Sprintf("s:w%d", i), "u1", lines, pools, nil, 1, 2)
		sh.publish(ref.entry, -1)
		recs = append(recs, r)
	}
	if uint64(len(sh.index)) != size {
		t.Fatalf("index grew to %d; the test needs %d", len(sh.index), size)
	}
	for k, j := range rand.Perm(len(recs)) {
		r := recs[j]
		r.mu.Lock()
		sh.forget(r)
		r.mu.Unlock()
		for i, o := range recs {
			if o.state == stateFree {
				continue
			}
			if got, _, _ := sh.find(o.hash(), fmt.Sprintf("s:w%d", i)); got != o {
				t.Fatalf("after %d forgets, find(s:w%d) = %p; want %p", k+1, i, got, o)
			}
		}
	}
	for _, e := range sh.index {
		if e != 0 {
			t.Fatalf("index not empty after forgetting all: %x", e)
		}
	}
}

// TestMemoryCycleStaysBounded reserves, releases and forgets ids over and
// over, as a long sale does with retention: the record slots, the index and
// the heaps (whose entries of forgotten records go stale) stay bounded by
// what is live, not by how many reservations were ever made.
func TestMemoryCycleStaysBounded(t *testing.T) {
	m := NewMemory(Options{})
	ctx := context.Background()
	if err := m.CreatePool(ctx, "s:p", 1000); err != nil {
		t.Fatal(err)
	}
	const live, rounds = 300, 60
	for round := range rounds {
		for i := range live {
			id := fmt.Sprintf("s:r%d-%d", round, i)
			_, err := m.Reserve(ctx, ReserveRequest{ID: id, User: "u1", TTL: time.Hour, Meta: []byte("meta"),
				Lines: []Line{{Pool: "s:p", Quantity: 1}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Release(ctx, id); err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				if err := m.Forget(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
		}
		// The other half goes through Purge (all are due an hour on).
		if _, err := m.Purge(ctx, time.Now().Add(2*time.Hour), ExpireMax); err != nil {
			t.Fatal(err)
		}
	}
	// A shard never holds more live records than the ids of one round that
	// hash to it (each round's are all forgotten by its end), so with reuse
	// its slots stay at most that many.
	shards := len(m.recs)
	slotsMax := make([]int, shards)
	for round := range rounds {
		n := make([]int, shards)
		for i := range live {
			h := maphash.String(m.recSeed, fmt.Sprintf("s:r%d-%d", round, i))
			n[h&m.shardMask]++
		}
		for i := range n {
			slotsMax[i] = max(slotsMax[i], n[i])
		}
	}
	slots, entries, chunks := 0, 0, 0
	for i := range m.recs {
		sh := &m.recs[i]
		if sh.n != 0 {
			t.Fatalf("shard %d indexes %d records after all were forgotten", i, sh.n)
		}
		if int(sh.slots) > slotsMax[i] {
			t.Errorf("shard %d: record slots = %d; want at most %d (slots are reused)", i, sh.slots, slotsMax[i])
		}
		slots += int(sh.slots)
		entries += len(sh.exp) + len(sh.purge)
		for _, c := range *sh.arena.tab.Load() {
			if c != nil {
				chunks++
			}
		}
	}
	// Without reuse there would be live*rounds = 18000 slots and 36000
	// heap entries; stale entries are compacted past staleMin a shard.
	t.Logf("record slots: %d for %d reservations in all", slots, live*rounds)
	if entries > shards*2*(staleMin*2+2) {
		t.Errorf("heap entries = %d; want them compacted", entries)
	}
	if chunks > shards*(arenaSpareMax+1) {
		t.Errorf("arena chunks = %d; want at most %d", chunks, shards*(arenaSpareMax+1))
	}
	if p, _ := m.Pool(ctx, "s:p"); p.Available != 1000 || p.Held != 0 {
		t.Fatalf("Pool = %+v", p)
	}
}

// TestReservationTagLen checks the one-pass id checks against their
// definitions (ValidID, Tag).
func TestReservationTagLen(t *testing.T) {
	ids := []string{"", ":", "a:", ":a", "a:b", "ab:cd:ef", "a b:c", "a{b:c", "abc", "a:b}", "x\x7f:y", "s1:r1",
		strings.Repeat("a", IDLenMax-2) + ":b", strings.Repeat("a", IDLenMax) + ":b", "é:x"}
	for _, id := range ids {
		want := 0
		if ValidID(id) {
			if tag := Tag(id); len(tag) > 0 && len(tag) < len(id)-1 {
				want = len(tag)
			}
		}
		if got := reservationTagLen(id); got != want {
			t.Errorf("reservationTagLen(%q) = %d; want %d", id, got, want)
		}
		for _, tag := range []string{"a", "ab", "s1", "x"} {
			if got, want := hasTag(id, tag), Tag(id) == tag; got != want {
				t.Errorf("hasTag(%q, %q) = %v; want %v", id, tag, got, want)
			}
		}
	}
}

// TestDefaultClockStampsNoFuture: with the default clock (coarseclock), a
// reservation is never stamped after the moment Reserve returned by
// time.Now, its deadline is its TTL rounded up to a millisecond after that
// stamp, and Confirm, which checks the deadline against the same clock,
// accepts it. Across many reserves on two goroutines, racing the ticker.
func TestDefaultClockStampsNoFuture(t *testing.T) {
	m := NewMemory(Options{})
	ctx := context.Background()
	if err := m.CreatePool(ctx, "s:p", 1_000_000); err != nil {
		t.Fatal(err)
	}
	ttl := 1500*time.Microsecond + time.Minute // rounds up to 60002 ms
	errc := make(chan error, 2)
	for g := range 2 {
		go func() {
			for i := range 5000 {
				id := fmt.Sprintf("s:g%d-%d", g, i)
				r, err := m.Reserve(ctx, ReserveRequest{ID: id, User: "u1", TTL: ttl, Lines: []Line{{Pool: "s:p", Quantity: 1}}})
				now := time.Now()
				if err != nil {
					errc <- err
					return
				}
				if r.CreatedAt.After(now) {
					errc <- fmt.Errorf("%s stamped %v, after time.Now %v at return", id, r.CreatedAt, now)
					return
				}
				if d := r.ExpiresAt.Sub(r.CreatedAt); d != 60002*time.Millisecond {
					errc <- fmt.Errorf("%s holds for %v; want 60.002s", id, d)
					return
				}
				if i%100 == 0 {
					if _, err := m.Confirm(ctx, id); err != nil {
						errc <- fmt.Errorf("confirm %s: %w", id, err)
						return
					}
				}
			}
			errc <- nil
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// TestShardsFor checks the record shard count: 8 a processor, a power of
// two within [recShardsMin, recShardsMax].
func TestShardsFor(t *testing.T) {
	for _, c := range []struct{ procs, want int }{{1, 16}, {2, 16}, {3, 32}, {4, 32}, {8, 64}, {16, 128}, {64, 128}, {0, 16}} {
		if got := shardsFor(c.procs); got != c.want {
			t.Errorf("shardsFor(%d) = %d; want %d", c.procs, got, c.want)
		}
	}
	m := NewMemory(Options{})
	if n := len(m.recs); n&(n-1) != 0 || uint64(n-1) != m.shardMask {
		t.Fatalf("shards %d, mask %#x", n, m.shardMask)
	}
}

// TestMemoryCompactKeepsLiveExpiries: forgotten reservations leave stale
// expiry entries that the shards compact (emptying a heap whose entries
// are all stale without reading records), but every held reservation
// among them keeps its entry: Expire later releases exactly those, and
// the pool gets every unit back.
func TestMemoryCompactKeepsLiveExpiries(t *testing.T) {
	m := NewMemory(Options{})
	ctx := context.Background()
	const supply = 100_000
	if err := m.CreatePool(ctx, "s:p", supply); err != nil {
		t.Fatal(err)
	}
	reserve := func(id string) {
		t.Helper()
		_, err := m.Reserve(ctx, ReserveRequest{ID: id, User: "u1", TTL: time.Hour, Lines: []Line{{Pool: "s:p", Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	held := 0
	for round := range 20 {
		// A burst released and forgotten: all its entries go stale.
		for i := range 2000 {
			id := fmt.Sprintf("s:f%d-%d", round, i)
			reserve(id)
			if _, err := m.Release(ctx, id); err != nil {
				t.Fatal(err)
			}
			if err := m.Forget(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		// A few held ones that stay, among the stale entries.
		for i := range round % 3 * 7 {
			reserve(fmt.Sprintf("s:h%d-%d", round, i))
			held++
		}
	}
	if p, _ := m.Pool(ctx, "s:p"); p.Held != int64(held) {
		t.Fatalf("Held = %d; want %d", p.Held, held)
	}
	entries := 0
	for i := range m.recs {
		entries += len(m.recs[i].exp)
	}
	if entries > len(m.recs)*(staleMin*2+2)+held {
		t.Errorf("expiry entries = %d; want stale ones compacted", entries)
	}
	var expired []Reservation
	for {
		rs, err := m.Expire(ctx, time.Now().Add(2*time.Hour), ExpireMax)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
		expired = append(expired, rs...)
	}
	if len(expired) != held {
		t.Fatalf("Expire released %d; want the %d held", len(expired), held)
	}
	if p, _ := m.Pool(ctx, "s:p"); p.Available != supply || p.Held != 0 {
		t.Fatalf("Pool after expiry = %+v; want all %d available", p, supply)
	}
}
