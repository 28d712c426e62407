package redisinv_test

import (
	"context"
	"slices"
	"testing"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
)

// clusterSpreadTags: on the test cluster (node i owns the i-th third of
// the slots), the tags SpreadTags picks for 3 buckets of "s1" put the
// three buckets on three masters, and for 6 buckets two on each.
func clusterSpreadTags(t *testing.T, srv *redistest.Server) {
	s := open(t, srv, "", inventory.Options{})
	ctx := context.Background()
	node := func(tag string) int {
		t.Helper()
		slot, err := s.Client().Do(ctx, s.Client().B().ClusterKeyslot().Key(tag).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		for i := range clusterNodes {
			if slot < int64((i+1)*16384/clusterNodes) {
				return i
			}
		}
		return -1
	}
	for _, n := range []int{3, 6} {
		tags, err := s.SpreadTags(ctx, "s1", n, 256)
		if err != nil || len(tags) != n-1 {
			t.Fatalf("SpreadTags(s1, %d) = %v, %v", n, tags, err)
		}
		count := make([]int, clusterNodes)
		count[node("s1")]++
		for _, tag := range tags {
			if len(tag) < 4 || tag[:3] != "s1~" {
				t.Fatalf("tag %q does not start with s1~", tag)
			}
			count[node(tag)]++
		}
		for i, c := range count {
			if c != n/clusterNodes {
				t.Fatalf("SpreadTags(s1, %d) = %v: node %d has %d buckets (%v); want %d each", n, tags, i, c, count, n/clusterNodes)
			}
		}
		if len(slices.Compact(slices.Clone(tags))) != len(tags) {
			t.Fatalf("SpreadTags repeated a tag: %v", tags)
		}
	}
}

// TestSpreadTagsSingleServer: without a cluster the tags are simply
// numbered.
func TestSpreadTagsSingleServer(t *testing.T) {
	s := open(t, redistest.Start(t), "", inventory.Options{})
	tags, err := s.SpreadTags(context.Background(), "s1", 3, 256)
	if err != nil || !slices.Equal(tags, []string{"s1~1", "s1~2"}) {
		t.Fatalf("SpreadTags = %v, %v; want s1~1, s1~2", tags, err)
	}
}
