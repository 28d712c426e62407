package engine

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// TestRiskPruneAfterCrowd: a crowd of users leaves a token bucket each;
// once their buckets are full again, the sweep drops them all and the
// maps that held them are rebuilt small. A bucket that is not full yet is
// kept, so no verdict changes: its user is still limited.
func TestRiskPruneAfterCrowd(t *testing.T) {
	const crowd = 20_000
	clock := newAnswerClock()
	h, err := NewRiskHook(RiskConfig{PageTokenOff: true, UserRate: 1, UserBurst: 2, IPRate: 1000, IPBurst: 100_000, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := h.(*riskChain)
	for i := 0; i < crowd; i++ {
		riskWant(t, h, riskIn(fmt.Sprint("crowd-", i), "10.0.0.1", ""), true, "")
	}
	// Nothing is full yet: nothing goes.
	if n := c.Prune(clock.Now()); n != 0 {
		t.Fatalf("pruned %d buckets that are not full; want 0", n)
	}
	if n := c.users.Len(); n != crowd {
		t.Fatalf("users tracked %d; want %d", n, crowd)
	}
	clock.Advance(2 * time.Minute) // every bucket refills (2 tokens at 1/s; the IP's 100,000 at 1000/s)
	// One user comes back and empties its bucket: it must be kept.
	riskWant(t, h, riskIn("crowd-7", "10.0.0.1", ""), true, "")
	riskWant(t, h, riskIn("crowd-7", "10.0.0.1", ""), true, "")

	// Through the engine's sweep, as in production.
	store := inventory.NewMemory(inventory.Options{Now: clock.Now})
	defer store.Close()
	eng, err := Open(context.Background(), Options{Store: store, Risk: h, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for range crowd/pruneRoundMax + 2 {
		if err := eng.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.users.Len(); n != 1 {
		t.Fatalf("users tracked after the sweeps %d; want 1 (the one whose bucket is not full)", n)
	}
	if n := c.ips.Len(); n != 1 {
		t.Fatalf("IPs tracked after the sweeps %d; want 1 (crowd-7's address just took two tokens)", n)
	}
	for i := range c.users.shards {
		s := &c.users.shards[i]
		if s.peak > shrinkPeakMin && len(s.items) < s.peak/8 {
			t.Errorf("user shard %d: %d items, peak %d: the map was not rebuilt", i, len(s.items), s.peak)
		}
	}
	riskWant(t, h, riskIn("crowd-7", "10.0.0.1", ""), false, RiskReasonRateUser)
	riskWant(t, h, riskIn("crowd-8", "10.0.0.1", ""), true, "")
}

// TestRiskPruneReturnsHeap: the heap the crowd's buckets took comes back
// after the prune (bytes, measured after a collection).
func TestRiskPruneReturnsHeap(t *testing.T) {
	const crowd = 100_000
	clock := newAnswerClock()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	h, err := NewRiskHook(RiskConfig{PageTokenOff: true, UserRate: 1, UserBurst: 2, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := h.(*riskChain)
	before := heap()
	for i := 0; i < crowd; i++ {
		h.Check(context.Background(), riskIn(fmt.Sprint("crowd-", i), "", ""))
	}
	peak := heap()
	clock.Advance(time.Minute)
	for range crowd/pruneRoundMax + 2 {
		c.Prune(clock.Now())
	}
	after := heap()
	t.Logf("heap: before %d KiB, with %d buckets %d KiB, after the prune %d KiB", before>>10, crowd, peak>>10, after>>10)
	if peak < before+crowd*100 {
		t.Fatalf("the crowd took %d bytes; want at least 100 a user (is the measure right?)", peak-before)
	}
	if after > before+(peak-before)/10 {
		t.Errorf("heap after the prune %d KiB; want within a tenth of the crowd's %d KiB over %d KiB", after>>10, (peak-before)>>10, before>>10)
	}
}
