package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/invtest"
)

func TestClosePoolStress(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { invtest.ClosePoolStress(t, b.f) })
	}
}

// closeCrowd makes users paid reservations of one unit each in pool "s1:sale"
// (limit 1) and in "s1:other", then closes "s1:sale".
func closeCrowd(t *testing.T, s inventory.Store, users int) {
	t.Helper()
	ctx := context.Background()
	for _, p := range []string{"s1:sale", "s1:other"} {
		if err := s.CreatePool(ctx, p, int64(users)+10); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < users; i++ {
		for _, p := range []string{"s1:sale", "s1:other"} {
			id := fmt.Sprintf("s1:%s-%d", p[3:], i)
			_, err := s.Reserve(ctx, inventory.ReserveRequest{ID: id, User: fmt.Sprintf("user-%d", i),
				Lines: []inventory.Line{{Pool: p, Quantity: 1, Limit: 1}}, TTL: time.Hour})
			if err != nil {
				t.Fatalf("Reserve(%s) = %v", id, err)
			}
			if _, err := s.Confirm(ctx, id); err != nil {
				t.Fatalf("Confirm(%s) = %v", id, err)
			}
		}
	}
	if n := inventory.UserCounts(s, "s1:sale"); n != users {
		t.Fatalf("counts of the open sale %d; want %d", n, users)
	}
	if err := s.ClosePool(ctx, "s1:sale"); err != nil {
		t.Fatalf("ClosePool = %v", err)
	}
}

// checkClosed: the closed pool keeps no count and reserves nothing (not
// even for a user with no paid unit); the open pool keeps its counts and
// its limit.
func checkClosed(t *testing.T, s inventory.Store, users int) {
	t.Helper()
	ctx := context.Background()
	if n := inventory.UserCounts(s, "s1:sale"); n != 0 {
		t.Fatalf("counts of the closed pool %d; want 0", n)
	}
	if n := inventory.UserCounts(s, "s1:other"); n != users {
		t.Fatalf("counts of the open pool %d; want %d", n, users)
	}
	p, err := s.Pool(ctx, "s1:sale")
	if err != nil || !p.Closed || p.Sold != int64(users) {
		t.Fatalf("Pool(closed) = %+v, %v; want closed with %d sold", p, err, users)
	}
	for _, u := range []string{"user-0", "newcomer"} {
		_, err := s.Reserve(ctx, inventory.ReserveRequest{ID: "s1:again-" + u, User: u,
			Lines: []inventory.Line{{Pool: "s1:sale", Quantity: 1, Limit: 1}}, TTL: time.Hour})
		if !errors.Is(err, inventory.ErrSoldOut) {
			t.Fatalf("Reserve(%s, closed pool) = %v; want ErrSoldOut", u, err)
		}
	}
	_, err = s.Reserve(ctx, inventory.ReserveRequest{ID: "s1:again-other", User: "user-0",
		Lines: []inventory.Line{{Pool: "s1:other", Quantity: 1, Limit: 1}}, TTL: time.Hour})
	if !errors.Is(err, inventory.ErrLimitExceeded) {
		t.Fatalf("Reserve(open pool, over the limit) = %v; want ErrLimitExceeded", err)
	}
}

// TestClosePoolForgetsCounts: memory drops the closed pool's counts from
// its user table.
func TestClosePoolForgetsCounts(t *testing.T) {
	const users = 3000
	s := inventory.NewMemory(inventory.Options{})
	defer s.Close()
	closeCrowd(t, s, users)
	checkClosed(t, s, users)
}

// TestPebbleClosePoolAfterReopen: Pebble stores no per-user counts (they
// are rebuilt from the reservations on open); the pool is written closed,
// so a reopened store rebuilds no counts for it and still refuses its
// reserves, while the paid reservations stay.
func TestPebbleClosePoolAfterReopen(t *testing.T) {
	const users = 3000
	dir := t.TempDir()
	open := func() *inventory.Pebble {
		s, err := inventory.OpenPebble(dir, inventory.PebbleOptions{NoWALWarmup: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	closeCrowd(t, s, users)
	checkClosed(t, s, users)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer s.Close()
	checkClosed(t, s, users)
	if r, err := s.Reservation(context.Background(), "s1:sale-7"); err != nil || r.State != inventory.StatePaid {
		t.Fatalf("Reservation(paid, closed pool) after reopen = %+v, %v; want paid", r, err)
	}
}
