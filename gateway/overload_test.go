package gateway

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

// TestOverloadShedsWrites fills the writes class with requests held inside
// the engine (by the risk hook) and sends a crowd more: every one of them
// is answered 503/50300 with Retry-After while the held ones wait, nothing
// queues, the server's goroutines stay bounded, and the held ones then
// succeed. Law 9.
func TestOverloadShedsWrites(t *testing.T) {
	const writesMax, crowd = 4, 200
	h := newHarness(t, "memory", func(o *Options) { o.WritesInflightMax = writesMax })
	h.loadCatalog()
	h.createSale("f1", 100, 100)
	a := h.login("alice")

	held := make(chan resp, writesMax)
	for i := 0; i < writesMax; i++ {
		go func() {
			held <- h.do("POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a, "X-Device-Id: block")
		}()
	}
	for i := 0; i < writesMax; i++ {
		<-h.risk.entered
	}
	base := runtime.NumGoroutine()
	var wg sync.WaitGroup
	codes := make(chan resp, crowd)
	for i := 0; i < crowd; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- h.do("POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a)
		}()
	}
	wg.Wait()
	close(codes)
	shed := 0
	for r := range codes {
		if r.Code != CodeUnavailable || r.Header.Get("Retry-After") != "1" {
			t.Errorf("crowd answer: code %d Retry-After %q; want 50300 and 1", r.Code, r.Header.Get("Retry-After"))
			continue
		}
		shed++
	}
	if shed != crowd {
		t.Errorf("shed %d of %d", shed, crowd)
	}
	// Reads are another class: still served.
	h.wantCode(CodeOK, "GET", "/api/v1/flash-sales/f1", nil)
	st := h.stats()
	if st.Sheds["inflight_writes"] != crowd {
		t.Errorf("sheds = %v; want inflight_writes %d", st.Sheds, crowd)
	}
	if st.Inflight["writes"] != writesMax {
		t.Errorf("writes in flight = %d; want %d", st.Inflight["writes"], writesMax)
	}
	if f := st.Sales["f1"]; f.Held != 0 {
		t.Errorf("held while all reserves are blocked or shed = %d; want 0", f.Held)
	}
	// Goroutines stay bounded: one per connection on each side at most
	// (fasthttp keeps idle workers for a while; they are bounded by
	// ConnsMax), nothing per queued request since nothing is queued.
	if g := runtime.NumGoroutine(); g > base+3*crowd {
		t.Errorf("goroutines %d after the crowd; base %d", g, base)
	}
	h.risk.unblock()
	for i := 0; i < writesMax; i++ {
		if r := <-held; r.Code != CodeOK {
			t.Errorf("held request: code %d %q; want 0", r.Code, r.Msg)
		}
	}
	if f := h.stats().Sales["f1"]; f.Held != writesMax || f.Supplied != f.Held+f.Sold+f.Remaining {
		t.Errorf("sale after overload = %+v; want held %d", f, writesMax)
	}
}

// TestSaleGateSheds: with factor 1 and 2 units left, at most 2 reserve
// calls of the sale run at once; the third gets 429/42900 with
// Retry-After; once the sale is sold out, 40900 comes from memory.
func TestSaleGateSheds(t *testing.T) {
	h := newHarness(t, "memory", engineOpts(func(o *engine.Options) { o.SaleAdmitFactor = 1 }))
	h.loadCatalog()
	h.createSale("f1", 2, 1)
	users := []string{h.login("u1"), h.login("u2"), h.login("u3"), h.login("u4")}
	held := make(chan resp, 2)
	for i := 0; i < 2; i++ {
		go func() {
			held <- h.do("POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), users[i], "X-Device-Id: block")
		}()
	}
	<-h.risk.entered
	<-h.risk.entered
	r := h.wantCode(CodeThrottled, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), users[2])
	if r.Header.Get("Retry-After") == "" {
		t.Error("42900 without Retry-After")
	}
	// Another sale is not affected by f1's gate.
	h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{
		SaleID: "f2", StoreID: "s1", SKUID: "k2", Price: 1, Quantity: 1, PerUserLimit: 1,
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour),
	}, adminAuth)
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f2/reservations", reserveBody(1), users[2])
	h.risk.unblock()
	for i := 0; i < 2; i++ {
		if r := <-held; r.Code != CodeOK {
			t.Errorf("admitted reserve: code %d %q", r.Code, r.Msg)
		}
	}
	h.wantCode(CodeSoldOut, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), users[3])
	st := h.stats()
	if st.Sheds["sale_gate"] != 1 || st.Sheds["sold_out_gate"] != 1 {
		t.Errorf("sheds = %v; want sale_gate 1, sold_out_gate 1", st.Sheds)
	}
	if f := st.Sales["f1"]; f.Held != 2 || f.Remaining != 0 {
		t.Errorf("f1 = %+v", f)
	}
}

// TestCrowdExactTotals hammers one sale with many concurrent buyers
// through the whole gateway (with the admission gate on) and checks the
// exact totals: successes == supplied, the rest sold_out or throttled, and
// supplied == held + sold + remaining (laws 1 and 9).
func TestCrowdExactTotals(t *testing.T) {
	const supply, buyers = 20, 100
	h := newHarness(t, "memory", engineOpts(func(o *engine.Options) { o.SaleAdmitFactor = 2 }))
	h.loadCatalog()
	h.createSale("f1", supply, 1)
	tokens := make([]string, buyers)
	for i := range tokens {
		tokens[i] = h.login("crowd-" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
	}
	var mu sync.Mutex
	count := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < buyers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Retry throttled answers (bounded) like a client would.
			for try := 0; try < 50; try++ {
				r := h.do("POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), tokens[i])
				if r.Code == CodeThrottled {
					continue
				}
				mu.Lock()
				count[r.Code]++
				mu.Unlock()
				return
			}
			mu.Lock()
			count[CodeThrottled]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if count[CodeOK] != supply || count[CodeOK]+count[CodeSoldOut]+count[CodeThrottled] != buyers {
		t.Errorf("answers = %v; want %d ok and the rest sold out or throttled", count, supply)
	}
	f := h.stats().Sales["f1"]
	if f.Held != supply || f.Remaining != 0 || f.Supplied != f.Held+f.Sold+f.Remaining {
		t.Errorf("sale = %+v", f)
	}
}

// TestPaysAndLoginsHaveTheirOwnCapacity: with the reserving writes class
// full (reserves held inside the engine) and more reserves being shed, a
// payment of a held reservation and a new login still go through: each has
// its own class, so a crowd of reserves never sheds them.
func TestPaysAndLoginsHaveTheirOwnCapacity(t *testing.T) {
	const writesMax = 2
	h := newHarness(t, "memory", func(o *Options) { o.WritesInflightMax = writesMax })
	h.loadCatalog()
	h.createSale("f1", 100, 100)
	bob, carol := h.login("bob"), h.login("carol")
	res := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), bob))

	held := make(chan resp, writesMax)
	for range writesMax {
		go func() {
			held <- h.do("POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), carol, "X-Device-Id: block")
		}()
	}
	for range writesMax {
		<-h.risk.entered
	}
	h.wantCode(CodeUnavailable, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), bob)
	paid := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/reservations/"+res.ReservationID+"/pay", `{"payment_id":"pay-bob"}`, bob))
	if paid.State != "paid" {
		t.Fatalf("pay while reserves are shed: state %q", paid.State)
	}
	h.login("dave") // a login is not a reserving write either
	st := h.stats()
	if st.Sheds["inflight_writes"] != 1 || st.Sheds["inflight_pays"] != 0 || st.Sheds["inflight_sessions"] != 0 {
		t.Errorf("sheds = %v; want one inflight_writes and nothing else", st.Sheds)
	}
	h.risk.unblock()
	for range writesMax {
		if r := <-held; r.Code != CodeOK {
			t.Errorf("held reserve: code %d %q", r.Code, r.Msg)
		}
	}
}
