package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

// TestNewKeysBoundOverHTTP: with a bound of two new Idempotency-Keys per
// user and second (the idempotency clock stands still here), a user
// opening teams under new keys gets exactly two through and 429 / 42900
// with Retry-After for the others, which write nothing; a retry of a kept
// key replays its answer.
func TestNewKeysBoundOverHTTP(t *testing.T) {
	still := time.Now()
	h := newHarness(t, "memory", engineOpts(func(o *engine.Options) {
		o.Idempotency.NewKeysPerSecond = 2
		o.Idempotency.Now = func() time.Time { return still }
	}))
	h.loadCatalog()
	now := time.Now()
	h.wantCode(CodeOK, "POST", "/admin/v1/group-buys", engine.GroupDealSpec{
		DealID: "d1", StoreID: "s1", SKUID: "k1", Price: 5000, TeamSize: 2, Quantity: 40,
		TeamWindowSeconds: 600, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	}, adminAuth)
	a := h.login("u1")
	first := h.wantCode(CodeOK, "POST", "/api/v1/group-buys/d1/teams", "{}", a, "Idempotency-Key: team-0")
	held := func() int64 { return h.stats().Deals["d1"].Held }
	heldBefore := held()
	throttled := 0
	for i := 1; i <= 5; i++ {
		r := h.do("POST", "/api/v1/group-buys/d1/teams", "{}", a, fmt.Sprint("Idempotency-Key: team-", i))
		switch r.Code {
		case CodeThrottled:
			throttled++
			if r.Header.Get("Retry-After") == "" {
				t.Errorf("key %d: 429 without Retry-After", i)
			}
		case CodeOK:
		default:
			t.Errorf("key %d: code %d (%s); want 0 or 42900", i, r.Code, r.Msg)
		}
	}
	if throttled != 4 || held() != heldBefore+1 {
		t.Fatalf("6 new keys in one second with a bound of 2: %d refused, %d more held; want 4 refused, 1 more held", throttled, held()-heldBefore)
	}
	again := h.wantCode(CodeOK, "POST", "/api/v1/group-buys/d1/teams", "{}", a, "Idempotency-Key: team-0")
	if string(again.Data) != string(first.Data) {
		t.Fatalf("retry of a kept key = %s; want the first answer %s", again.Data, first.Data)
	}
}
