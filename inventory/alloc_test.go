//go:build !race

package inventory

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestReserveDoesNotAllocate checks the hot path: a single-line reserve
// with a caller-owned request allocates nothing per call (records come
// from per-shard slabs; amortized below one allocation), and so does a
// sold-out refusal. Built without -race, which allocates.
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
