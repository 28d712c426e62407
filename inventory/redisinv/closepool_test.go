package redisinv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/invtest"
)

func TestClosePoolStress(t *testing.T) {
	invtest.ClosePoolStress(t, factory(t))
}

// TestClosePoolDeletesCounts: closing a pool deletes its per-user counts
// hash on the server (the closed pool's key P:{tag}:u:<pool> is gone; an
// open pool's stays), and reserves of it answer sold out.
func TestClosePoolDeletesCounts(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, "closing", inventory.Options{})
	ctx := context.Background()
	const users = 500
	for _, p := range []string{"s1:sale", "s1:other"} {
		if err := s.CreatePool(ctx, p, users+10); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < users; i++ {
			id := fmt.Sprintf("s1:%s-%d", p[3:], i)
			if _, err := s.Reserve(ctx, req(id, fmt.Sprintf("user-%d", i), time.Hour, line(p, 1, 1))); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Confirm(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hlen := func(pool string) int64 {
		t.Helper()
		n, err := c.Do(ctx, c.B().Hlen().Key("closing:{s1}:u:"+pool).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := hlen("s1:sale"); n != users {
		t.Fatalf("counts of the open sale %d; want %d (is the key layout still P:{tag}:u:<pool>?)", n, users)
	}
	if err := s.ClosePool(ctx, "s1:sale"); err != nil {
		t.Fatalf("ClosePool = %v", err)
	}
	exists, err := c.Do(ctx, c.B().Exists().Key("closing:{s1}:u:s1:sale").Build()).AsInt64()
	if err != nil || exists != 0 {
		t.Fatalf("EXISTS counts of the closed pool = %d, %v; want 0", exists, err)
	}
	if n := hlen("s1:other"); n != users {
		t.Fatalf("counts of the open pool %d; want %d", n, users)
	}
	_, err = s.Reserve(ctx, req("s1:again", "user-0", time.Hour, line("s1:sale", 1, 1)))
	wantErr(t, "Reserve(closed pool)", err, inventory.ErrSoldOut)
	if n := hlen("s1:sale"); n != 0 {
		t.Fatalf("counts of the closed pool after a refused reserve %d; want 0", n)
	}
	// A refund in the closed pool leaves no count behind.
	if _, err := s.Refund(ctx, "s1:sale-3"); err != nil {
		t.Fatal(err)
	}
	if n := hlen("s1:sale"); n != 0 {
		t.Fatalf("counts of the closed pool after a refund %d; want 0", n)
	}
	if p := mustPool(t, s, "s1:sale"); !p.Closed || p.Sold != users-1 {
		t.Fatalf("Pool(closed) = %+v; want closed, %d sold", p, users-1)
	}
}
