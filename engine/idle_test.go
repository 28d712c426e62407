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
	eng, err := Open(context.Background(), Options{Store: store, Risk: h, Now: clock.Now, SweepInterval: -1})
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

// TestAccountsAndAnswersPrunedWhenIdle: a crowd's cached first-seen times
// and kept idempotency answers leave memory once unused for their idle
// time (the records still answer for them), a user seen meanwhile keeps
// its entry, and the drop hands memory back to the OS once (rate
// limited), from the sweep.
func TestAccountsAndAnswersPrunedWhenIdle(t *testing.T) {
	const crowd = 6000
	clock := newAnswerClock()
	store := inventory.NewMemory(inventory.Options{Now: clock.Now})
	defer store.Close()
	eng, err := Open(context.Background(), Options{Store: store, Now: clock.Now, SweepInterval: -1,
		Idempotency: IdempotencyOptions{NewKeysPerSecond: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	first := map[string]time.Time{}
	for i := 0; i < crowd; i++ {
		u := fmt.Sprint("crowd-", i)
		at, err := eng.AccountSeen(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		first[u] = at
		if _, _, err := eng.idem.Do(ctx, u, "k", testDigest("b"), func() (int, []byte) { return 200, []byte("ok") }); err != nil {
			t.Fatal(err)
		}
	}
	if n := eng.accounts.Len(); n != crowd {
		t.Fatalf("accounts cached %d; want %d", n, crowd)
	}
	sweep := func() {
		t.Helper()
		if err := eng.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sweep()
	if n := eng.accounts.Len(); n != crowd {
		t.Fatalf("accounts cached right after the crowd %d; want %d (nothing idle yet)", n, crowd)
	}
	freed := eng.freedOS.Load()
	clock.Advance(accountsIdleFor - time.Second)
	if _, err := eng.accountFirstSeen(ctx, "crowd-7"); err != nil { // crowd-7 is back
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	for range crowd/pruneRoundMax + 2 {
		sweep()
	}
	if n := eng.accounts.Len(); n != 1 {
		t.Fatalf("accounts cached after the crowd idled %d; want 1 (crowd-7)", n)
	}
	if n := eng.idem.cache.Len(); n != crowd {
		t.Fatalf("answers cached after a minute %d; want %d (idle for %v only)", n, crowd, answersIdleFor)
	}
	if eng.freedOS.Load() != freed+1 {
		t.Fatalf("memory returned %d times after the drop; want once", eng.freedOS.Load()-freed)
	}
	clock.Advance(answersIdleFor)
	for range crowd/pruneRoundMax + 2 {
		sweep()
	}
	if n := eng.idem.cache.Len(); n != 0 {
		t.Fatalf("answers cached after %v idle %d; want 0", answersIdleFor, n)
	}
	// Nothing changes for the users: the records answer.
	for _, u := range []string{"crowd-0", "crowd-7", "crowd-5999"} {
		ms, err := eng.accountFirstSeen(ctx, u)
		if err != nil || !time.UnixMilli(ms).Equal(first[u]) {
			t.Fatalf("first seen of %s after the prune = %v, %v; want %v", u, time.UnixMilli(ms), err, first[u])
		}
		st, body, err := eng.idem.Do(ctx, u, "k", testDigest("b"), func() (int, []byte) { return 500, nil })
		if err != nil || st != 200 || string(body) != "ok" {
			t.Fatalf("answer of %s after the prune = %d %q %v; want the first one", u, st, body, err)
		}
	}
}
