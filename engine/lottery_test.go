package engine_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

// lotterySeed is the seed of the tests that check exact orders.
const lotterySeed = "surge-fixed-seed-2026"

func ms(n int64) *int64 { return &n }

// lotterySale creates a sale starting now with a lottery window.
func (env *testEnv) lotterySale(id string, qty, limit, windowMs int64, seed string) engine.FlashSale {
	env.t.Helper()
	now := env.clock.Now()
	fs, err := env.e.CreateFlashSale(env.ctx, engine.FlashSaleSpec{
		SaleID: id, StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: qty, PerUserLimit: limit,
		StartsAt: now, EndsAt: now.Add(time.Hour), HoldSeconds: 60,
		LotteryWindowMs: ms(windowMs), LotterySeed: seed,
	})
	if err != nil {
		env.t.Fatalf("CreateFlashSale(%s): %v", id, err)
	}
	return fs
}

// waitEntered waits until a sale's lottery holds n requests (entrants and
// duplicates): the requests are goroutines blocked in ReserveFlash.
func waitEntered(t testing.TB, e *engine.Engine, saleID string, n int64) engine.LotteryStats {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		// A node that has not seen the sale yet has no lottery for it.
		st, _ := e.Lottery(saleID)
		if st.Entered+st.Joined == n {
			return st
		}
		if st.Entered+st.Joined > n || time.Now().After(deadline) {
			t.Fatalf("Lottery(%s) = %+v; want %d requests in it", saleID, st, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLotteryOrderFixedSeed pins the draw: HMAC-SHA256(seed, user), lowest
// first, each user once. The expected order was computed outside Go
// (`printf %s USER | openssl dgst -sha256 -hmac SEED`, sorted).
func TestLotteryOrderFixedSeed(t *testing.T) {
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "alice", "carol"}
	got := engine.LotteryOrder(lotterySeed, users)
	want := []string{"carol", "bob", "erin", "grace", "dave", "alice", "heidi", "frank"}
	if !slices.Equal(got, want) {
		t.Fatalf("LotteryOrder(%q) = %v; want %v", lotterySeed, got, want)
	}
	// The order does not depend on the order of arrival.
	rev := slices.Clone(users)
	slices.Reverse(rev)
	if got := engine.LotteryOrder(lotterySeed, rev); !slices.Equal(got, want) {
		t.Fatalf("LotteryOrder of the reversed arrivals = %v; want %v", got, want)
	}
	// Another seed, another order.
	if got := engine.LotteryOrder(lotterySeed+"x", users); slices.Equal(got, want) {
		t.Fatalf("LotteryOrder with another seed = %v; the same order", got)
	}
}

// TestLotteryStrictOrder: with one entrant served at a time, the winners
// are exactly the first entrants of the draw, whatever the order in which
// they arrived; the window's requests are served after it closes.
func TestLotteryStrictOrder(t *testing.T) {
	env := openEnv(t, testBackends()[0], func(o *engine.Options) { o.LotteryServeMax = 1 })
	const qty = 5
	env.lotterySale("fl1", qty, 1, 2000, lotterySeed)
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
	won := make([]bool, len(users))
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := env.e.ReserveFlash(env.ctx, attempt(u), "fl1", 1, "")
			switch {
			case err == nil:
				won[i] = true
			case isErr(err, engine.ErrSoldOut):
			default:
				t.Errorf("ReserveFlash(%s): %v", u, err)
			}
		}()
		waitEntered(t, env.e, "fl1", int64(i+1)) // arrivals in slice order
	}
	if st, _ := env.e.Lottery("fl1"); st.Drawn || st.Waiting != len(users) {
		t.Fatalf("before the window closes: %+v; want not drawn, %d waiting", st, len(users))
	}
	env.clock.Advance(2 * time.Second)
	env.sweep() // draws (the waiters' own timers would too, on a real clock)
	wg.Wait()
	var got []string
	for i, u := range users {
		if won[i] {
			got = append(got, u)
		}
	}
	want := engine.LotteryOrder(lotterySeed, users)[:qty]
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("winners = %v; want the first %d of the draw %v", got, qty, want)
	}
	if st, _ := env.e.Lottery("fl1"); !st.Drawn || st.Waiting != 0 || st.Entered != int64(len(users)) {
		t.Fatalf("after the draw: %+v", st)
	}
	// After the window: first come, first served (and the limit holds).
	if _, err := env.e.ReserveFlash(env.ctx, attempt(want[0]), "fl1", 1, ""); !isErr(err, engine.ErrSoldOut) {
		t.Fatalf("reserve after the lottery: %v; want sold out", err)
	}
}

// TestLotteryWindowConcurrent: 10,000 requests from 2,500 users arrive in
// the window for 100 units. Exactly 100 units are won, one per winner
// (limit 1), every request of a user gets that user's one outcome, the
// winners come from the head of the draw, and the pool's totals are
// exact.
func TestLotteryWindowConcurrent(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) { testLotteryWindowConcurrent(t, b) })
	}
}

func testLotteryWindowConcurrent(t *testing.T, b testBackend) {
	env := openEnv(t, b, nil)
	const qty, users, perUser = 100, 2500, 4
	env.lotterySale("fl1", qty, 1, 3000, lotterySeed)
	goroutines := runtime.NumGoroutine()
	type outcome struct {
		id  string
		err error
	}
	out := make([][perUser]outcome, users)
	names := make([]string, users)
	for u := range users {
		names[u] = fmt.Sprintf("u%04d", u)
	}
	var wg sync.WaitGroup
	for r := range perUser {
		for u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := env.e.ReserveFlash(env.ctx, attempt(names[u]), "fl1", 1, "")
				out[u][r] = outcome{res.ReservationID, err}
			}()
		}
	}
	st := waitEntered(t, env.e, "fl1", users*perUser)
	if st.Entered != users || st.Joined != users*(perUser-1) || st.Drawn {
		t.Fatalf("lottery in the window = %+v; want %d entrants, %d duplicates, not drawn", st, users, users*(perUser-1))
	}
	if p := env.pool("s1:fs:fl1"); p.Held != 0 || p.Available != qty {
		t.Fatalf("pool before the draw = %+v; want nothing held", p)
	}
	env.clock.Advance(3 * time.Second)
	drawn := time.Now()
	env.sweep()
	wg.Wait()
	t.Logf("%d requests of %d entrants answered %s after the draw", users*perUser, users, time.Since(drawn).Round(time.Millisecond))

	order := engine.LotteryOrder(lotterySeed, names)
	head := map[string]bool{}
	for _, u := range order[:qty+engine.LotteryServeMaxDefault-1] {
		head[u] = true
	}
	ids := map[string]bool{}
	for u := range users {
		first := out[u][0]
		for r := 1; r < perUser; r++ {
			if o := out[u][r]; o.id != first.id || (o.err == nil) != (first.err == nil) {
				t.Fatalf("user %s: outcomes %+v and %+v differ", names[u], first, o)
			}
		}
		switch {
		case first.err == nil:
			ids[first.id] = true
			if !head[names[u]] {
				t.Errorf("user %s won from place %d of the draw; want one of the first %d", names[u], slices.Index(order, names[u]), len(head))
			}
		case !isErr(first.err, engine.ErrSoldOut):
			t.Fatalf("user %s: %v; want a unit or sold out", names[u], first.err)
		}
	}
	if len(ids) != qty {
		t.Fatalf("%d users won; want exactly %d", len(ids), qty)
	}
	if p := env.pool("s1:fs:fl1"); p.Supplied != qty || p.Held != qty || p.Available != 0 {
		t.Fatalf("pool after the draw = %+v; want %d held, none left", p, qty)
	}
	if st, _ := env.e.Lottery("fl1"); st.Waiting != 0 || !st.Drawn {
		t.Fatalf("lottery after the draw = %+v; want drawn, nobody waiting", st)
	}
	// Every waiting goroutine is gone (they were the requests').
	deadline := time.Now().Add(time.Minute)
	for runtime.NumGoroutine() > goroutines+10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the lottery; %d before it", runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLotteryUniform: over 200 draws with fixed, different seeds, 40
// entrants for 10 units, each place of arrival wins as often as any other
// (a chi-squared test at significance 0.001; the seeds are fixed, so the
// test is deterministic). Each draw runs through the engine: entrants wait
// in the window, the draw serves them one at a time.
func TestLotteryUniform(t *testing.T) {
	env := openEnv(t, testBackends()[0], func(o *engine.Options) { o.LotteryServeMax = 1 })
	c := testCatalog()
	c.Products = append(c.Products, engine.Product{SKUID: "k9", Title: "抽签款", Price: 100})
	c.Listings = append(c.Listings, engine.Listing{StoreID: "s1", SKUID: "k9", Price: 100, OnHand: 1_000_000})
	if _, err := env.e.LoadCatalog(env.ctx, c); err != nil {
		t.Fatal(err)
	}
	const runs, entrants, qty = 200, 40, 10
	wins := make([]int, entrants)
	for run := range runs {
		sale := fmt.Sprintf("fu%03d", run)
		now := env.clock.Now()
		if _, err := env.e.CreateFlashSale(env.ctx, engine.FlashSaleSpec{SaleID: sale, StoreID: "s1", SKUID: "k9",
			Price: 100, Quantity: qty, PerUserLimit: 1, StartsAt: now, EndsAt: now.Add(time.Hour),
			LotteryWindowMs: ms(1000), LotterySeed: fmt.Sprintf("uniformity-seed-%04d", run)}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		won := make([]bool, entrants)
		errs := make([]error, entrants)
		for i := range entrants {
			// Users are new in every run; i is the place of arrival: each
			// enters before the next.
			_, ticket, err := env.e.ReserveFlashOrEnter(env.ctx, attempt(fmt.Sprintf("r%d-u%d", run, i)), sale, 1, "")
			if err != nil || ticket == nil {
				t.Fatalf("run %d entrant %d: ticket %v, %v", run, i, ticket != nil, err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := ticket.Reserve(env.ctx)
				errs[i] = err
				if err == nil {
					won[i] = true
				} else if !isErr(err, engine.ErrSoldOut) {
					t.Errorf("run %d entrant %d: %v", run, i, err)
				}
			}()
		}
		env.clock.Advance(time.Second)
		env.sweep()
		wg.Wait()
		n := 0
		for i, w := range won {
			if w {
				wins[i]++
				n++
			}
		}
		if n != qty {
			st, _ := env.e.Lottery(sale)
			var us []string
			for i := range entrants {
				us = append(us, fmt.Sprintf("r%d-u%d", run, i))
			}
			for k, u := range engine.LotteryOrder(fmt.Sprintf("uniformity-seed-%04d", run), us)[:12] {
				var i int
				fmt.Sscanf(u, "r%d-u%d", new(int), &i)
				t.Logf("place %d: %s: %v", k, u, errs[i])
			}
			rem, _ := env.e.SaleRemaining(sale)
			t.Logf("remaining %d", rem)
			t.Fatalf("run %d: %d winners; want %d: %v %+v %+v", run, n, qty, errs, st, env.pool("s1:fs:"+sale))
		}
	}
	expected := float64(runs*qty) / entrants
	chi2 := 0.0
	for _, w := range wins {
		d := float64(w) - expected
		chi2 += d * d / expected
	}
	// The chi-squared distribution's 0.999 quantile for 39 degrees of
	// freedom.
	const critical = 72.055
	t.Logf("wins by place of arrival: %v; chi2 = %.2f (critical %.3f)", wins, chi2, critical)
	if chi2 > critical || math.IsNaN(chi2) {
		t.Fatalf("chi2 = %.2f > %.3f: the win rate depends on the place of arrival: %v", chi2, critical, wins)
	}
	// A control on the test itself: first come, first served would give
	// the first 10 places every unit.
	if wins[0] == runs {
		t.Fatalf("the first arrival won every run")
	}
}

// TestLotteryQueueBound: past LotteryQueueMax entrants, a reserve is
// refused at once (ErrLotteryFull, a throttle) and nothing changes; a
// user's duplicates past the per-entry bound likewise; the entrants in
// the queue are served.
func TestLotteryQueueBound(t *testing.T) {
	env := openEnv(t, testBackends()[0], func(o *engine.Options) { o.LotteryQueueMax = 50 })
	const qty, users, queueMax = 10, 80, 50
	env.lotterySale("fl1", qty, 1, 1000, lotterySeed)
	var wg sync.WaitGroup
	var won, soldOut atomic.Int64
	refused := 0
	for u := range users {
		r, t2, err := env.e.ReserveFlashOrEnter(env.ctx, attempt(fmt.Sprint("u", u)), "fl1", 1, "")
		if u >= queueMax {
			if t2 != nil || !isErr(err, engine.ErrLotteryFull) || !isErr(err, engine.ErrThrottled) || !isErr(err, engine.ErrShed) {
				t.Fatalf("entrant %d over the bound: ticket %v, err %v; want ErrLotteryFull", u, t2 != nil, err)
			}
			refused++
			continue
		}
		if err != nil || t2 == nil || r.ReservationID != "" {
			t.Fatalf("entrant %d: ticket %v, err %v; want a ticket", u, t2 != nil, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := t2.Reserve(env.ctx); err == nil {
				won.Add(1)
			} else if isErr(err, engine.ErrSoldOut) {
				soldOut.Add(1)
			} else {
				t.Errorf("Reserve: %v", err)
			}
		}()
	}
	// A user in the queue may wait with up to 8 requests in all; the 9th
	// is refused.
	for i := 1; i < 8; i++ {
		_, t2, err := env.e.ReserveFlashOrEnter(env.ctx, attempt("u0"), "fl1", 1, "")
		if err != nil || t2 == nil {
			t.Fatalf("duplicate %d of u0: %v", i, err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = t2.Reserve(env.ctx) }()
	}
	if _, _, err := env.e.ReserveFlashOrEnter(env.ctx, attempt("u0"), "fl1", 1, ""); !isErr(err, engine.ErrLotteryFull) {
		t.Fatalf("9th request of u0: %v; want ErrLotteryFull", err)
	}
	st, _ := env.e.Lottery("fl1")
	if st.Entered != queueMax || st.Refused != int64(refused+1) || st.Waiting != queueMax || st.Joined != 7 {
		t.Fatalf("lottery = %+v; want %d entered, %d refused, 7 joined", st, queueMax, refused+1)
	}
	if p := env.pool("s1:fs:fl1"); p.Held != 0 || p.Available != qty {
		t.Fatalf("pool = %+v; want untouched", p)
	}
	env.clock.Advance(time.Second)
	env.sweep()
	wg.Wait()
	if won.Load() != qty || soldOut.Load() != queueMax-qty {
		t.Fatalf("won %d, sold out %d; want %d and %d", won.Load(), soldOut.Load(), qty, queueMax-qty)
	}
}

// TestLotteryCreate: the window's bounds and the seed's form are checked
// (bad input changes nothing); a sale that does not say takes the
// server's default, explicit 0 none; the seed is random when not given,
// kept across a repeated creation, and shown only once the window closed.
func TestLotteryCreate(t *testing.T) {
	env := openEnv(t, testBackends()[0], func(o *engine.Options) { o.LotteryWindow = 2 * time.Second })
	now := env.clock.Now()
	spec := func(id string, w *int64, seed string) engine.FlashSaleSpec {
		return engine.FlashSaleSpec{SaleID: id, StoreID: "s1", SKUID: "k1", Price: 100, Quantity: 10,
			StartsAt: now, EndsAt: now.Add(5 * time.Second), LotteryWindowMs: w, LotterySeed: seed}
	}
	for _, c := range []struct {
		name string
		sp   engine.FlashSaleSpec
	}{
		{"negative window", spec("b1", ms(-1), "")},
		{"window over the bound", spec("b2", ms(10_001), "")},
		{"window as long as the sale", spec("b3", ms(5000), "")},
		{"short seed", spec("b4", ms(1000), "short")},
		{"seed with a space", spec("b5", ms(1000), "a seed with spaces in it")},
		{"seed without a window", spec("b6", ms(0), lotterySeed)},
	} {
		if _, err := env.e.CreateFlashSale(env.ctx, c.sp); !isErr(err, engine.ErrInvalid) {
			t.Fatalf("%s: %v; want ErrInvalid", c.name, err)
		}
		if _, err := env.e.FlashSale(env.ctx, c.sp.SaleID); !isErr(err, engine.ErrNotFound) {
			t.Fatalf("%s: the sale exists after a refusal: %v", c.name, err)
		}
	}
	if p := env.pool("s1:l:k1"); p.Available != 1000 {
		t.Fatalf("listing after refusals = %+v; want untouched", p)
	}

	def, err := env.e.CreateFlashSale(env.ctx, spec("d1", nil, ""))
	if err != nil {
		t.Fatal(err)
	}
	if def.LotteryWindowMs != 2000 || def.LotteryClosesAtMs != now.Add(2*time.Second).UnixMilli() || def.LotterySeed != "" {
		t.Fatalf("sale with the default window = %+v", def)
	}
	none, err := env.e.CreateFlashSale(env.ctx, spec("d2", ms(0), ""))
	if err != nil || none.LotteryWindowMs != 0 {
		t.Fatalf("sale with window 0 = %+v, %v; want no window", none, err)
	}
	if _, ok := env.e.Lottery("d2"); ok {
		t.Fatal("a sale without a window has a lottery")
	}
	// The default applies only to sales longer than it.
	short := spec("d3", nil, "")
	short.EndsAt = now.Add(time.Second)
	if v, err := env.e.CreateFlashSale(env.ctx, short); err != nil || v.LotteryWindowMs != 0 {
		t.Fatalf("short sale = %+v, %v; want no window", v, err)
	}
	// Creating again the same sale answers it; another window is a
	// conflict.
	if _, err := env.e.CreateFlashSale(env.ctx, spec("d1", nil, "")); err != nil {
		t.Fatalf("repeated creation: %v", err)
	}
	if _, err := env.e.CreateFlashSale(env.ctx, spec("d1", ms(1000), "")); !isErr(err, engine.ErrBadState) {
		t.Fatalf("creation with another window: %v; want ErrBadState", err)
	}
	// The seed is published once the window has closed: random, 32 hex
	// digits, the same in the admin view.
	env.clock.Advance(2 * time.Second)
	v, err := env.e.FlashSale(env.ctx, "d1")
	if err != nil || len(v.LotterySeed) != 32 || !engine.ValidLotterySeed(v.LotterySeed) {
		t.Fatalf("sale after its window = %+v, %v; want its seed", v, err)
	}
	adm, err := env.e.AdminSale(env.ctx, engine.SaleKindFlash, "d1")
	if err != nil || adm.LotterySeed != v.LotterySeed || adm.LotteryWindowMs != 2000 {
		t.Fatalf("admin view = %+v, %v; want seed %q", adm, err, v.LotterySeed)
	}
	late := spec("d4", ms(1000), lotterySeed)
	late.StartsAt, late.EndsAt = env.clock.Now(), env.clock.Now().Add(5*time.Second)
	given, err := env.e.CreateFlashSale(env.ctx, late)
	if err != nil || given.LotterySeed != "" {
		t.Fatalf("sale with a given seed, before its window closed = %+v, %v; want the seed hidden", given, err)
	}
}

// TestLotteryRiskAndGiveUp: an attempt the risk hook refuses does not
// enter; a request that stops waiting leaves the lottery, and its entry
// takes no unit.
func TestLotteryRiskAndGiveUp(t *testing.T) {
	hook, err := engine.NewRiskHook(engine.RiskConfig{PageTokenOff: true, Blocklist: []string{"bot"}})
	if err != nil {
		t.Fatal(err)
	}
	env := openEnv(t, testBackends()[0], func(o *engine.Options) { o.Risk = hook })
	env.lotterySale("fl1", 1, 1, 1000, lotterySeed)
	if _, err := env.e.ReserveFlash(env.ctx, attempt("bot"), "fl1", 1, ""); !isErr(err, engine.ErrRiskDenied) {
		t.Fatalf("bot: %v; want ErrRiskDenied", err)
	}
	if _, err := env.e.ReserveFlash(env.ctx, attempt("u1"), "fl1", 0, ""); !isErr(err, engine.ErrInvalid) {
		t.Fatalf("quantity 0: %v; want ErrInvalid", err)
	}
	if st, _ := env.e.Lottery("fl1"); st.Entered != 0 {
		t.Fatalf("lottery after refusals = %+v; want nobody in it", st)
	}
	// Everyone but the winner of a one-unit draw gives up before it.
	users := engine.LotteryOrder(lotterySeed, []string{"alice", "bob", "carol", "dave"})
	ctx, cancel := context.WithCancel(env.ctx)
	var wg sync.WaitGroup
	errs := make([]error, len(users))
	for i, u := range users {
		c := ctx
		if i == len(users)-1 {
			c = env.ctx // the last of the draw stays
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = env.e.ReserveFlash(c, attempt(u), "fl1", 1, "")
		}()
	}
	waitEntered(t, env.e, "fl1", int64(len(users)))
	cancel()
	deadline := time.Now().Add(time.Minute)
	for st, _ := env.e.Lottery("fl1"); st.Waiting != 1; st, _ = env.e.Lottery("fl1") {
		if time.Now().After(deadline) {
			t.Fatalf("lottery after give-ups = %+v; want 1 waiting", st)
		}
		time.Sleep(time.Millisecond)
	}
	env.clock.Advance(time.Second)
	env.sweep()
	wg.Wait()
	for i, err := range errs[:len(users)-1] {
		if !isErr(err, engine.ErrThrottled) {
			t.Fatalf("%s gave up: %v; want ErrThrottled", users[i], err)
		}
	}
	if errs[len(users)-1] != nil {
		t.Fatalf("the one who stayed: %v; want the unit", errs[len(users)-1])
	}
	if p := env.pool("s1:fs:fl1"); p.Held != 1 {
		t.Fatalf("pool = %+v; want 1 held", p)
	}
}

// TestLotteryNodes: over one Redis, a sale made on one node has the same
// seed on the other; each node draws its own entrants, and the units won
// on both never pass the quantity (law 1), one per user (law 6).
func TestLotteryNodes(t *testing.T) {
	a, b, st, clock := twoNodes(t, "redis")
	ctx := context.Background()
	if _, err := a.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if _, err := a.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: "fl1", StoreID: "s1", SKUID: "k1", Price: 1,
		Quantity: 20, PerUserLimit: 1, StartsAt: now, EndsAt: now.Add(time.Hour), LotteryWindowMs: ms(1000)}); err != nil {
		t.Fatal(err)
	}
	const users = 60
	var wg sync.WaitGroup
	var won atomic.Int64
	for u := range users {
		e := a
		if u%2 == 1 {
			e = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every user tries on both nodes: a user waiting on one node
			// and reserving on the other still gets one unit at most.
			for _, e := range []*engine.Engine{e, a} {
				_, err := e.ReserveFlash(ctx, attempt(fmt.Sprint("u", u)), "fl1", 1, "")
				switch {
				case err == nil:
					won.Add(1)
				case isErr(err, engine.ErrSoldOut), isErr(err, engine.ErrLimitExceeded):
				default:
					t.Errorf("u%d: %v", u, err)
				}
			}
		}()
	}
	waitEntered(t, a, "fl1", users/2)
	waitEntered(t, b, "fl1", users/2)
	clock.Advance(time.Second)
	for _, e := range []*engine.Engine{a, b} {
		if err := e.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	va, _ := a.FlashSale(ctx, "fl1")
	vb, _ := b.FlashSale(ctx, "fl1")
	if va.LotterySeed == "" || va.LotterySeed != vb.LotterySeed {
		t.Fatalf("seeds: node a %q, node b %q; want one seed", va.LotterySeed, vb.LotterySeed)
	}
	p, err := st.Pool(ctx, "s1:fs:fl1")
	if err != nil {
		t.Fatal(err)
	}
	if won.Load() != 20 || p.Held != 20 || p.Available != 0 {
		t.Fatalf("won %d, pool %+v; want 20 held", won.Load(), p)
	}
}

// TestLotteryPaused: a sale paused while its entrants wait answers them
// not active at the draw (nothing held), and refuses newcomers at once;
// resumed, the plain path sells again.
func TestLotteryPaused(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	env.lotterySale("fl1", 5, 1, 1000, lotterySeed)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = env.e.ReserveFlash(env.ctx, attempt(fmt.Sprint("u", i)), "fl1", 1, "")
		}()
	}
	waitEntered(t, env.e, "fl1", int64(len(errs)))
	env.control(engine.SaleKindFlash, "fl1", engine.SaleActionPause)
	if _, err := env.e.ReserveFlash(env.ctx, attempt("late"), "fl1", 1, ""); !isErr(err, engine.ErrNotActive) {
		t.Fatalf("reserve of a paused sale: %v; want ErrNotActive", err)
	}
	env.clock.Advance(time.Second)
	env.sweep()
	wg.Wait()
	for i, err := range errs {
		if !isErr(err, engine.ErrNotActive) {
			t.Fatalf("entrant %d of a paused sale: %v; want ErrNotActive", i, err)
		}
	}
	if p := env.pool("s1:fs:fl1"); p.Held != 0 || p.Available != 5 {
		t.Fatalf("pool = %+v; want nothing held", p)
	}
	env.control(engine.SaleKindFlash, "fl1", engine.SaleActionResume)
	env.reserve("u0", "fl1")
}

// TestLotteryWithRegistration: a sale with registration (预约) and a
// lottery window admits only the draw's winners into its lottery; the
// others are refused at once with ErrNotRegistered and never enter.
func TestLotteryWithRegistration(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	now := env.clock.Now()
	if _, err := env.e.CreateFlashSale(env.ctx, engine.FlashSaleSpec{
		SaleID: "rl1", StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: 2, PerUserLimit: 1,
		StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour), HoldSeconds: 60,
		RegistrationStartsAt: now, DrawQuantity: 2, DrawSeed: "seed-rl1",
		LotteryWindowMs: ms(1000), LotterySeed: lotterySeed,
	}); err != nil {
		t.Fatal(err)
	}
	names := []string{"u1", "u2", "u3", "u4"}
	for _, u := range names {
		if _, err := env.e.RegisterFlash(env.ctx, attempt(u), "rl1"); err != nil {
			t.Fatalf("RegisterFlash(%s): %v", u, err)
		}
	}
	env.clock.Advance(time.Hour)
	env.sweep() // the draw
	won := map[string]bool{}
	for _, w := range engine.Draw("seed-rl1", names, 2) {
		won[w] = true
	}
	// Losers and a stranger are refused in the window, without entering.
	for _, u := range append(slices.Clone(names), "stranger") {
		if won[u] {
			continue
		}
		if _, err := env.e.ReserveFlash(env.ctx, attempt(u), "rl1", 1, ""); !isErr(err, engine.ErrNotRegistered) {
			t.Fatalf("ReserveFlash(%s) in the window = %v; want ErrNotRegistered", u, err)
		}
	}
	if st, _ := env.e.Lottery("rl1"); st.Entered != 0 {
		t.Fatalf("lottery after the refusals = %+v; want nobody in it", st)
	}
	// The winners enter, and are served at the window's close.
	var wg sync.WaitGroup
	errs := map[string]error{}
	var mu sync.Mutex
	for u := range won {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := env.e.ReserveFlash(env.ctx, attempt(u), "rl1", 1, "")
			mu.Lock()
			errs[u] = err
			mu.Unlock()
		}()
	}
	waitEntered(t, env.e, "rl1", 2)
	env.clock.Advance(time.Second)
	env.sweep()
	wg.Wait()
	for u, err := range errs {
		if err != nil {
			t.Fatalf("winner %s: %v", u, err)
		}
	}
	if p := env.pool("s1:fs:rl1"); p.Held != 2 || p.Available != 0 {
		t.Fatalf("pool = %+v; want 2 held", p)
	}
}
