//go:build !race

package inventory

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestReserveDoesNotAllocate checks the hot path: a single-line reserve
// with a caller-owned request allocates nothing per call (record slots,
// arena, index and heaps grow in chunks or by doubling: amortized below one
// allocation), nor does one with meta and several lines, nor a sold-out or
// over-limit refusal. Built without -race, which allocates.
func TestReserveDoesNotAllocate(t *testing.T) {
	m := NewMemory(Options{})
	ctx := context.Background()
	if err := m.CreatePool(ctx, "s:big", UnitsMax); err != nil {
		t.Fatal(err)
	}
	if err := m.CreatePool(ctx, "s:none", 0); err != nil {
		t.Fatal(err)
	}
	const runs = 2000
	ids := make([]string, runs+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("s:r%06d", i)
	}
	req := ReserveRequest{User: "u1", TTL: time.Minute, Lines: []Line{{Pool: "s:big", Quantity: 1}}}
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		req.ID = ids[i]
		i++
		if _, err := m.Reserve(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Reserve allocates %.2f times per call; want 0", allocs)
	}
	// Meta and more lines go to the shard's arena: still no allocation.
	if err := m.CreatePool(ctx, "s:big2", UnitsMax); err != nil {
		t.Fatal(err)
	}
	metaIDs := make([]string, runs+1)
	for i := range metaIDs {
		metaIDs[i] = fmt.Sprintf("s:m%06d", i)
	}
	rich := ReserveRequest{User: "u2", TTL: time.Minute, Meta: make([]byte, 300),
		Lines: []Line{{Pool: "s:big", Quantity: 1, Limit: 1 << 30}, {Pool: "s:big2", Quantity: 2}}}
	i = 0
	allocs = testing.AllocsPerRun(runs, func() {
		rich.ID = metaIDs[i]
		i++
		if _, err := m.Reserve(ctx, rich); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Reserve with meta and two lines allocates %.2f times per call; want 0", allocs)
	}
	soldOut := ReserveRequest{ID: "s:x1", User: "u1", TTL: time.Minute, Lines: []Line{{Pool: "s:none", Quantity: 1}}}
	allocs = testing.AllocsPerRun(runs, func() {
		if _, err := m.Reserve(ctx, soldOut); err != ErrSoldOut {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("sold-out Reserve allocates %.2f times per call; want 0", allocs)
	}
	limited := ReserveRequest{ID: "s:l1", User: "u1", TTL: time.Minute, Lines: []Line{{Pool: "s:big", Quantity: 1, Limit: 1}}}
	allocs = testing.AllocsPerRun(runs, func() {
		if _, err := m.Reserve(ctx, limited); err != ErrLimitExceeded {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("over-limit Reserve allocates %.2f times per call; want 0", allocs)
	}
}
