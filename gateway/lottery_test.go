package gateway

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

// TestLotteryOverHTTP: a sale created over HTTP with a lottery window
// holds the reserves that arrive in it without holding write slots; past
// the lottery's queue bound a reserve is answered 429 with Retry-After at
// once; a user's second request shares the first one's outcome; when the
// window closes the entrants are served in the order of the published
// seed, exactly the sale's quantity wins, and the seed shows on the sale.
func TestLotteryOverHTTP(t *testing.T) {
	const (
		writesMax = 4
		queueMax  = 40
		users     = 50
		qty       = 15
		seed      = "http-lottery-seed-0001"
	)
	h := newHarness(t, "memory",
		func(o *Options) { o.WritesInflightMax = writesMax },
		engineOpts(func(o *engine.Options) { o.LotteryQueueMax, o.LotteryServeMax = queueMax, 1 }))
	h.loadCatalog()
	names := make([]string, users)
	auths := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("lu%02d", i)
		auths[i] = h.login(names[i])
	}
	shopper := h.login("shopper")
	start := h.clock.now()
	h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", map[string]any{
		"sale_id": "lot1", "store_id": "s1", "sku_id": "k1", "price": 9900, "quantity": qty, "per_user_limit": 1,
		"starts_at": start.Add(-time.Millisecond), "ends_at": start.Add(time.Hour),
		"lottery_window_ms": engine.LotteryWindowMax.Milliseconds(), "lottery_seed": seed,
	}, adminAuth)
	sale := into[engine.FlashSale](t, h.wantCode(CodeOK, "GET", "/api/v1/flash-sales/lot1", nil))
	if sale.LotteryWindowMs != engine.LotteryWindowMax.Milliseconds() || sale.LotterySeed != "" || sale.LotteryClosesAtMs == 0 {
		t.Fatalf("sale in its window = %+v; want the window and no seed yet", sale)
	}

	answers := make([]resp, users)
	var wg sync.WaitGroup
	reserve := func(i int, into *resp) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			*into = h.do("POST", "/api/v1/flash-sales/lot1/reservations", reserveBody(1), auths[i], "X-Device-Id: dev-"+names[i])
		}()
	}
	// One after the other: each enters (its checks hold a write slot),
	// then waits without one; ten times more wait than there are slots.
	for i := range queueMax {
		reserve(i, &answers[i])
		waitLottery(t, h.eng, "lot1", int64(i+1))
	}
	// The waiting requests hold no write slot: writes go on.
	if n := h.stats().Inflight["writes"]; n != 0 {
		t.Fatalf("writes in flight while %d requests wait for the draw: %d; want 0", queueMax, n)
	}
	h.wantCode(CodeOK, "POST", "/api/v1/checkout", map[string]any{"store_id": "s1",
		"items": []map[string]any{{"sku_id": "k2", "quantity": 1}}}, shopper)
	// Past the bound: 429 at once, nothing entered.
	for i := queueMax; i < users; i++ {
		r := h.do("POST", "/api/v1/flash-sales/lot1/reservations", reserveBody(1), auths[i], "X-Device-Id: dev-"+names[i])
		if r.Code != CodeThrottled || r.Header.Get("Retry-After") == "" {
			t.Fatalf("reserve of %s over the queue bound: %d %s (Retry-After %q); want 42900 with Retry-After", names[i], r.Code, r.Msg, r.Header.Get("Retry-After"))
		}
	}
	// A second request of a waiting user joins its entry.
	var dup resp
	reserve(0, &dup)
	waitLottery(t, h.eng, "lot1", queueMax+1)
	if st, _ := h.eng.Lottery("lot1"); st.Entered != queueMax || st.Joined != 1 || st.Refused != users-queueMax || st.Drawn {
		t.Fatalf("lottery = %+v; want %d entered, 1 joined, %d refused, not drawn", st, queueMax, users-queueMax)
	}
	if st := h.stats(); st.Sheds["lottery_queue"] != users-queueMax || st.Sales["lot1"].Held != 0 {
		t.Fatalf("stats: sheds %v, sale %+v; want %d lottery_queue sheds and nothing held", st.Sheds, st.Sales["lot1"], users-queueMax)
	}
	// The window closes (the clock moves on; the sweeper draws).
	h.clock.advance(engine.LotteryWindowMax)
	wg.Wait()

	want := engine.LotteryOrder(seed, names[:queueMax])[:qty]
	var won []string
	for i := range queueMax {
		switch r := answers[i]; r.Code {
		case CodeOK:
			won = append(won, names[i])
		case CodeSoldOut:
		default:
			t.Fatalf("%s: %d %s; want a reservation or sold out", names[i], r.Code, r.Msg)
		}
	}
	slices.Sort(won)
	slices.Sort(want)
	if !slices.Equal(won, want) {
		t.Fatalf("winners = %v; want the first %d of the draw: %v", won, qty, want)
	}
	if dup.Code != answers[0].Code || string(dup.Data) != string(answers[0].Data) {
		t.Fatalf("the duplicate got %d %s; the first request %d %s", dup.Code, dup.Data, answers[0].Code, answers[0].Data)
	}
	st := h.stats()
	if s := st.Sales["lot1"]; s.Held != qty || s.Remaining != 0 {
		t.Fatalf("sale after the draw = %+v; want %d held", s, qty)
	}
	sale = into[engine.FlashSale](t, h.wantCode(CodeOK, "GET", "/api/v1/flash-sales/lot1", nil))
	if sale.LotterySeed != seed {
		t.Fatalf("sale after its window: lottery_seed %q; want %q", sale.LotterySeed, seed)
	}
	adm := into[engine.SaleAdmin](t, h.wantCode(CodeOK, "GET", "/admin/v1/flash-sales/lot1", nil, adminAuth))
	if adm.LotterySeed != seed || adm.LotteryWindowMs != engine.LotteryWindowMax.Milliseconds() {
		t.Fatalf("admin view = %+v; want the window and the seed", adm)
	}
	// After the lottery: first come, first served, limits as ever.
	h.wantCode(CodeSoldOut, "POST", "/api/v1/flash-sales/lot1/reservations", reserveBody(1), auths[users-1])
}

// waitLottery waits until a sale's lottery holds n requests.
func waitLottery(t *testing.T, e *engine.Engine, saleID string, n int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, _ := e.Lottery(saleID)
		if st.Entered+st.Joined == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lottery %s = %+v; want %d requests in it", saleID, st, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLotteryBadInput: a sale with a bad lottery field is refused 40000
// and nothing is created or moved.
func TestLotteryBadInput(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	before := h.stockState()
	now := time.Now()
	base := func(id string) map[string]any {
		return map[string]any{"sale_id": id, "store_id": "s1", "sku_id": "k1", "price": 9900, "quantity": 5,
			"starts_at": now, "ends_at": now.Add(2 * time.Second)}
	}
	for _, c := range []struct {
		name string
		set  map[string]any
	}{
		{"negative window", map[string]any{"lottery_window_ms": -1}},
		{"window over 10s", map[string]any{"lottery_window_ms": 10_001}},
		{"window as long as the sale", map[string]any{"lottery_window_ms": 2000}},
		{"window not a number", map[string]any{"lottery_window_ms": "1000"}},
		{"fractional window", map[string]any{"lottery_window_ms": 1.5}},
		{"short seed", map[string]any{"lottery_window_ms": 1000, "lottery_seed": "abc"}},
		{"seed with a slash", map[string]any{"lottery_window_ms": 1000, "lottery_seed": "0123456789abcdef/"}},
		{"seed without a window", map[string]any{"lottery_seed": "0123456789abcdef0123"}},
	} {
		id := "bad-lot"
		body := base(id)
		for k, v := range c.set {
			body[k] = v
		}
		r := h.do("POST", "/admin/v1/flash-sales", body, adminAuth)
		if r.Code != CodeBadRequest {
			t.Fatalf("%s: %d %s; want 40000", c.name, r.Code, r.Msg)
		}
		h.wantCode(CodeNotFound, "GET", "/api/v1/flash-sales/"+id, nil)
		if got := h.stockState(); got != before {
			t.Fatalf("%s changed the stock:\n%s\nwant\n%s", c.name, got, before)
		}
	}
}

// TestLotteryClientsGone: clients that hang up while they wait for the
// draw leak nothing. fasthttp does not tell a handler that its client
// left, so their entries keep their places and are served at the draw
// (their holds expire unpaid, law 2); then every waiting handler returns
// and the lottery holds nobody.
func TestLotteryClientsGone(t *testing.T) {
	const users, qty = 12, 5
	h := newHarness(t, "memory")
	h.loadCatalog()
	auths := make([]string, users)
	for i := range auths {
		auths[i] = h.login(fmt.Sprintf("gone%02d", i))
	}
	goroutines := runtime.NumGoroutine()
	start := h.clock.now()
	h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", map[string]any{
		"sale_id": "lot2", "store_id": "s1", "sku_id": "k1", "price": 9900, "quantity": qty, "per_user_limit": 1,
		"starts_at": start.Add(-time.Millisecond), "ends_at": start.Add(time.Hour),
		"lottery_window_ms": engine.LotteryWindowMax.Milliseconds(),
	}, adminAuth)
	impatient := &http.Client{Timeout: 200 * time.Millisecond}
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", h.base+"/api/v1/flash-sales/lot2/reservations", strings.NewReader(reserveBody(1)))
			req.Header.Set("Authorization", strings.TrimPrefix(auths[i], "Authorization: "))
			if res, err := impatient.Do(req); err == nil {
				res.Body.Close()
				t.Errorf("an answer before the draw: HTTP %d", res.StatusCode)
			}
		}()
	}
	wg.Wait() // every client gave up
	impatient.CloseIdleConnections()
	if st, _ := h.eng.Lottery("lot2"); st.Waiting != users {
		t.Fatalf("lottery after the clients left = %+v; want %d still waiting", st, users)
	}
	h.clock.advance(engine.LotteryWindowMax)
	deadline := time.Now().Add(time.Minute)
	for {
		st, _ := h.eng.Lottery("lot2")
		if st.Drawn && st.Waiting == 0 && runtime.NumGoroutine() <= goroutines+5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lottery %+v, %d goroutines (%d before); want drawn, nobody waiting, no goroutine left", st, runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := h.stats().Sales["lot2"]; s.Held != qty {
		t.Fatalf("sale = %+v; want its %d units held by the entrants first in the draw", s, qty)
	}
}
