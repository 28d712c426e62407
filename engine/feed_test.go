package engine_test

import (
	"testing"

	"github.com/surge-retail/surge/engine"
)

// TestFeed: per-line answers in order; stale and bad lines change nothing.
func TestFeed(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	res, err := env.e.ApplyFeed(env.ctx, []engine.FeedUpdate{
		{StoreID: "s1", SKUID: "k2", OnHand: 20, Seq: 5},
		{StoreID: "s1", SKUID: "k2", OnHand: 1, Seq: 4},
		{StoreID: "s1", SKUID: "k2", OnHand: 1, Seq: 5},
		{StoreID: "s9", SKUID: "k2", OnHand: 1, Seq: 1},
		{StoreID: "s2", SKUID: "k2", OnHand: 1, Seq: 1},
		{StoreID: "s1", SKUID: "k1", OnHand: -1, Seq: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status string
		code   int
	}{{"applied", 0}, {"stale", 0}, {"stale", 0}, {"error", 40400}, {"error", 40400}, {"error", 40000}}
	for i, w := range want {
		if res[i].Status != w.status || res[i].Code != w.code {
			t.Fatalf("line %d = %+v; want %s %d", i, res[i], w.status, w.code)
		}
	}
	if p := env.pool("s1:l:k2"); p.Available != 20 {
		t.Fatalf("k2 = %+v; want 20 available", p)
	}
	if p := env.pool("s1:l:k1"); p.Available != 1000 {
		t.Fatalf("k1 changed: %+v", p)
	}
}

// TestFeedSeqBound: a line whose seq is past 2^63-1 (say 2^64-2) is
// refused and changes nothing, so that it cannot freeze a SKU's feed; the
// next ordinary line still applies.
func TestFeedSeqBound(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	res, err := env.e.ApplyFeed(env.ctx, []engine.FeedUpdate{
		{StoreID: "s1", SKUID: "k2", OnHand: 7, Seq: 1<<64 - 2},
		{StoreID: "s1", SKUID: "k2", OnHand: 7, Seq: 1 << 63},
		{StoreID: "s1", SKUID: "k2", OnHand: 20, Seq: 100},
		{StoreID: "s1", SKUID: "k2", OnHand: 30, Seq: 1<<63 - 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"error", "error", "applied", "applied"} {
		if res[i].Status != want || want == "error" && res[i].Code != 40000 {
			t.Fatalf("line %d = %+v; want %s", i, res[i], want)
		}
	}
	if p := env.pool("s1:l:k2"); p.Available != 30 {
		t.Fatalf("k2 = %+v; want 30 available", p)
	}
}
