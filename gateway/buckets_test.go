package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

// TestBucketedSaleOverHTTP: a sale created with "buckets": 3 sells every
// unit through the public API, whatever bucket the buyers' homes are, each
// buyer within the limit, and the stats and the sale's page show the
// totals over all buckets.
func TestBucketedSaleOverHTTP(t *testing.T) {
	h := newHarness(t, "pebble")
	h.loadCatalog()
	now := time.Now()
	h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{
		SaleID: "hot", StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: 9, PerUserLimit: 2,
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour), HoldSeconds: 300, Buckets: 3,
	}, adminAuth)
	sold := 0
	for i := 0; sold < 9; i++ {
		if i == 20 {
			t.Fatalf("sold %d of 9 after 20 buyers", sold)
		}
		a := h.login(fmt.Sprintf("buyer%d", i))
		for range 2 {
			h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/hot/reservations", reserveBody(1), a)
			sold++
			if sold == 9 {
				break
			}
		}
		if sold < 9 {
			h.wantCode(CodeLimitExceeded, "POST", "/api/v1/flash-sales/hot/reservations", reserveBody(1), a)
		}
	}
	h.wantCode(CodeSoldOut, "POST", "/api/v1/flash-sales/hot/reservations", reserveBody(1), h.login("late"))
	st := h.stats().Sales["hot"]
	if st.Supplied != 9 || st.Held != 9 || st.Remaining != 0 {
		t.Fatalf("stats of a bucketed sale = %+v; want 9 supplied, 9 held", st)
	}
	fs := into[engine.FlashSale](t, h.wantCode(CodeOK, "GET", "/api/v1/flash-sales/hot", nil))
	if fs.Remaining != 0 || fs.Quantity != 9 {
		t.Fatalf("GET sale = %+v", fs)
	}
}
