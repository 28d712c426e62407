package inventory

import (
	"context"
	"errors"
	"fmt"
	"runtime"
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
	if err := m.Forget("s:r1"); !errors.Is(err, ErrBadState) {
		t.Fatalf("Forget(held) = %v; want ErrBadState", err)
	}
	if _, err := m.Release(ctx, "s:r1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Forget("s:r1"); err != nil {
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
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, u := range names {
		tab.acquire("s:p", u, 1, 2)
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
		tab.release("s:p", u, 1)
	}
	if tab.len() != 0 {
		t.Fatalf("entries after release = %d", tab.len())
	}
}

// TestRecShardHashChains forces records onto one hash: get, put and del
// must still tell them apart by id (64-bit collisions are rare, not
// impossible).
func TestRecShardHashChains(t *testing.T) {
	sh := &recShard{m: map[uint64]*record{}}
	recs := make([]*record, 4)
	for i := range recs {
		recs[i] = &record{id: fmt.Sprintf("s:r%d", i), hash: 7}
		sh.put(recs[i])
	}
	for _, r := range recs {
		if got := sh.get(7, r.id); got != r {
			t.Fatalf("get(%q) = %p; want %p", r.id, got, r)
		}
	}
	sh.del(recs[2]) // middle of the chain
	sh.del(recs[3]) // head of the chain
	if sh.get(7, "s:r2") != nil || sh.get(7, "s:r3") != nil {
		t.Fatal("deleted records still found")
	}
	if sh.get(7, "s:r0") != recs[0] || sh.get(7, "s:r1") != recs[1] {
		t.Fatal("remaining records lost")
	}
	sh.del(recs[1])
	sh.del(recs[0])
	if len(sh.m) != 0 {
		t.Fatalf("map holds %d heads after deleting all", len(sh.m))
	}
}
