package redisinv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/invtest"
)

// clusterNodes is the size of the test cluster: enough that most slots
// live on another node than any given key's.
const clusterNodes = 3

// startCluster starts a Redis Cluster of clusterNodes masters and returns
// its first node.
func startCluster(t *testing.T) *redistest.Server {
	t.Helper()
	return redistest.StartCluster(t, clusterNodes)[0]
}

// TestCluster runs the backend on a Redis Cluster of clusterNodes nodes:
// its own flows across many tags, then the conformance suite (the same
// answers as a single server).
func TestCluster(t *testing.T) {
	srv := startCluster(t)
	t.Run("Flows", func(t *testing.T) { clusterFlows(t, srv) })
	t.Run("SpreadTags", func(t *testing.T) { clusterSpreadTags(t, srv) })
	t.Run("Conformance", func(t *testing.T) {
		invtest.Run(t, func(tb testing.TB, o inventory.Options) inventory.Store {
			return open(tb, srv, "", o)
		})
	})
}

func clusterFlows(t *testing.T, srv *redistest.Server) {
	ck := newClock()
	s := open(t, srv, "", inventory.Options{Now: ck.Now})
	ctx := context.Background()
	tags := []string{"s1", "s2", "s3", "s4", "s5", "s6"}
	for _, tag := range tags {
		for _, p := range []string{"a", "b"} {
			if err := s.CreatePool(ctx, tag+":"+p, 10); err != nil {
				t.Fatalf("CreatePool on a cluster = %v", err)
			}
		}
		id := func(n int) string { return fmt.Sprintf("%s:r%d", tag, n) }
		if _, err := s.Reserve(ctx, req(id(1), "u", time.Minute, line(tag+":a", 2, 3), line(tag+":b", 1, 0))); err != nil {
			t.Fatalf("Reserve on a cluster = %v", err)
		}
		if _, err := s.Reserve(ctx, req(id(1), "u", time.Minute, line(tag+":a", 2, 3), line(tag+":b", 1, 0))); err != nil {
			t.Fatalf("Reserve again on a cluster = %v", err)
		}
		if _, err := s.Reserve(ctx, req(id(2), "u", time.Minute, line(tag+":a", 2, 3))); err == nil {
			t.Fatalf("Reserve over the limit on a cluster succeeded")
		}
		for _, n := range []int{3, 4, 5} {
			if _, err := s.Reserve(ctx, req(id(n), "v", time.Second, line(tag+":b", 1, 0))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Confirm(ctx, id(1)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Refund(ctx, id(1)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Confirm(ctx, id(3)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Release(ctx, id(4)); err != nil {
			t.Fatal(err)
		}
		if err := s.Move(ctx, tag+":a", tag+":b", 2); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Drain(ctx, tag+":a", tag+":b"); err != nil || n != 8 {
			t.Fatalf("Drain on a cluster = %d, %v", n, err)
		}
		if _, err := s.SetOnHand(ctx, tag+":b", 5, 1); err != nil {
			t.Fatal(err)
		}
	}
	ck.Advance(time.Second)
	out, err := s.Expire(ctx, ck.Now(), 100)
	if err != nil || len(out) != len(tags) {
		t.Fatalf("Expire on a cluster = %d, %v; want %d", len(out), err, len(tags))
	}
	for _, tag := range tags {
		// b: 10 + 2 moved + 8 drained + 5 from the feed, 1 sold (r3).
		wantPool(t, s, tag+":b", 24, 0, 1)
	}
	rs, next, err := s.Scan(ctx, inventory.StateReleased, "", 2)
	if err != nil || len(rs) != 2 || next != "s1:r4" {
		t.Fatalf("Scan on a cluster = %v, %q, %v", rs, next, err)
	}
}
