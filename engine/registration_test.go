package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// TestDrawReproducible pins the draw's formula: for a fixed seed and list
// the winners are exactly these (computed apart from Go, with Python's
// hmac), whatever the order of the list or repeated names; and they are
// the smallest HMAC-SHA256 digests of an independent sort.
func TestDrawReproducible(t *testing.T) {
	const seed = "surge-draw-2026"
	var users []string
	for i := range 20 {
		users = append(users, fmt.Sprintf("u%02d", i))
	}
	if got, want := engine.DrawDigest(seed, "u14"), "0ae7246f923e5bb1748b7159bdf53311d368bd679c4e428bb38b04a0766e867d"; got != want {
		t.Fatalf("DrawDigest(%q, u14) = %s; want %s", seed, got, want)
	}
	want := []string{"u14", "u02", "u01", "u03", "u18"}
	if got := engine.Draw(seed, users, 5); !slices.Equal(got, want) {
		t.Fatalf("Draw = %v; want %v", got, want)
	}
	shuffled := append(slices.Clone(users), users[:7]...)
	slices.Reverse(shuffled)
	if got := engine.Draw(seed, shuffled, 5); !slices.Equal(got, want) {
		t.Fatalf("Draw(reversed, repeated) = %v; want %v", got, want)
	}
	// An independent sort of every digest agrees for every quantity.
	all := slices.Clone(users)
	sort.Slice(all, func(i, j int) bool { return engine.DrawDigest(seed, all[i]) < engine.DrawDigest(seed, all[j]) })
	for q := int64(1); q <= 25; q++ {
		got := engine.Draw(seed, users, q)
		if n := min(int(q), len(all)); !slices.Equal(got, all[:n]) {
			t.Fatalf("Draw(q=%d) = %v; want %v", q, got, all[:n])
		}
	}
	if got := engine.Draw(seed, users, 0); len(got) != len(users) {
		t.Fatalf("Draw(q=0) has %d winners; want every one of %d", len(got), len(users))
	}
	if got := engine.Draw("another seed", users, 5); slices.Equal(got, want) {
		t.Fatalf("another seed draws the same winners %v", got)
	}
}

// regSale creates sale id with registration open from now, starting in an
// hour.
func (env *testEnv) regSale(id string, qty, limit, drawQty int64, seed string) engine.FlashSale {
	env.t.Helper()
	now := env.clock.Now()
	fs, err := env.e.CreateFlashSale(env.ctx, engine.FlashSaleSpec{
		SaleID: id, StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: qty, PerUserLimit: limit,
		StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour), HoldSeconds: 60,
		RegistrationStartsAt: now, DrawQuantity: drawQty, DrawSeed: seed,
	})
	if err != nil {
		env.t.Fatalf("CreateFlashSale(%s): %v", id, err)
	}
	return fs
}

// TestRegistrationAndDraw, on every backend: concurrent registrations
// (each user twice) count exactly; the seed stays hidden until the draw;
// at the start the draw admits exactly the registrants engine.Draw picks
// from the seed and the list; unregistered and undrawn users are refused
// with ErrNotRegistered while winners reserve, within the quantity and
// the per-user limit; the admin's export lists them all with decisions.
func TestRegistrationAndDraw(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			const users, drawQty, qty, limit = 60, 20, 25, 1
			fs := env.regSale("fr1", qty, limit, drawQty, "seed-fr1")
			if fs.SaleRegistration == nil || fs.DrawSeed != "" || fs.DrawMade || fs.DrawQuantity != drawQty || fs.RegistrationStatus != "open" {
				t.Fatalf("new sale's registration = %+v; want open, seed hidden", fs.SaleRegistration)
			}
			// Registering for a sale without registration, or reserving
			// before the start, is refused.
			env.sale("plain", 5, 1)
			if _, err := env.e.RegisterFlash(env.ctx, attempt("u0"), "plain"); !isErr(err, engine.ErrBadState) {
				t.Fatalf("RegisterFlash(plain sale) = %v; want ErrBadState", err)
			}
			if _, err := env.e.RegisterFlash(env.ctx, attempt("u0"), "nope"); !isErr(err, engine.ErrNotFound) {
				t.Fatalf("RegisterFlash(unknown) = %v; want ErrNotFound", err)
			}
			var wg sync.WaitGroup
			var added atomic.Int64
			for g := range 2 * users {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := env.e.RegisterFlash(env.ctx, attempt(fmt.Sprint("u", g%users)), "fr1")
					if err != nil || !r.Registered || r.Drawn != nil {
						t.Errorf("RegisterFlash(u%d) = %+v, %v; want registered, drawn null", g%users, r, err)
						return
					}
					added.Add(1)
				}()
			}
			wg.Wait()
			if added.Load() != 2*users {
				t.FailNow()
			}
			if _, err := env.e.ReserveFlash(env.ctx, attempt("u1"), "fr1", 1, ""); !isErr(err, engine.ErrNotActive) {
				t.Fatalf("ReserveFlash before the start = %v; want ErrNotActive", err)
			}
			list, err := env.e.FlashRegistrations(env.ctx, "fr1")
			if err != nil || len(list.Registrations) != users || list.Registrants != users || list.DrawMade || list.DrawSeed != "" {
				t.Fatalf("FlashRegistrations before the draw: %d listed, %d counted, made %v, seed %q, %v", len(list.Registrations), list.Registrants, list.DrawMade, list.DrawSeed, err)
			}
			var names []string
			for _, r := range list.Registrations {
				names = append(names, r.UserID)
				if r.Drawn != nil {
					t.Fatalf("registration %+v has a decision before the draw", r)
				}
			}

			env.clock.Advance(time.Hour)
			env.sweep() // makes the draw
			winners := engine.Draw("seed-fr1", names, drawQty)
			won := map[string]bool{}
			for _, w := range winners {
				won[w] = true
			}
			fs, err = env.e.FlashSale(env.ctx, "fr1")
			if err != nil || !fs.DrawMade || fs.DrawSeed != "seed-fr1" || fs.Winners == nil || *fs.Winners != drawQty || fs.Registrants != users || fs.RegistrationStatus != "closed" {
				t.Fatalf("sale after the draw = %+v, %v; want the seed, %d winners of %d", fs.SaleRegistration, err, drawQty, users)
			}
			if _, err := env.e.RegisterFlash(env.ctx, attempt("late"), "fr1"); !isErr(err, engine.ErrNotActive) {
				t.Fatalf("RegisterFlash after the start = %v; want ErrNotActive", err)
			}
			for u := range users {
				name := fmt.Sprint("u", u)
				r, err := env.e.RegisterFlash(env.ctx, attempt(name), "fr1")
				if err != nil || !r.Registered || r.Drawn == nil || *r.Drawn != won[name] {
					t.Fatalf("RegisterFlash(%s) after the draw = %+v, %v; want drawn %v", name, r, err, won[name])
				}
			}

			// Everyone tries twice at once: strangers and losers are not
			// registered, each winner reserves once (the limit).
			var ok, notReg, limited atomic.Int64
			perUser := sync.Map{}
			for g := range 2 * (users + 20) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprint("u", g%(users+20)) // u60..u79 never registered
					_, err := env.e.ReserveFlash(env.ctx, attempt(name), "fr1", 1, "")
					switch {
					case err == nil:
						ok.Add(1)
						if !won[name] {
							t.Errorf("%s reserved without winning the draw", name)
						}
						if n, _ := perUser.LoadOrStore(name, new(atomic.Int64)); n.(*atomic.Int64).Add(1) > limit {
							t.Errorf("%s reserved more than the limit", name)
						}
					case isErr(err, engine.ErrNotRegistered):
						notReg.Add(1)
						if won[name] {
							t.Errorf("winner %s refused: %v", name, err)
						}
					case isErr(err, engine.ErrLimitExceeded):
						limited.Add(1)
					default:
						t.Errorf("ReserveFlash(%s): %v", name, err)
					}
				}()
			}
			wg.Wait()
			if ok.Load() != drawQty || notReg.Load() != 2*(users+20-drawQty) || limited.Load() != drawQty {
				t.Fatalf("reserved %d (want %d), not registered %d (want %d), limited %d (want %d)",
					ok.Load(), drawQty, notReg.Load(), 2*(users+20-drawQty), limited.Load(), drawQty)
			}
			if p := env.pool("s1:fs:fr1"); p.Held != drawQty || p.Available != qty-drawQty {
				t.Fatalf("sale pool = %+v; want %d held, %d left", p, drawQty, qty-drawQty)
			}

			list, err = env.e.FlashRegistrations(env.ctx, "fr1")
			if err != nil || !list.DrawMade || list.DrawSeed != "seed-fr1" || len(list.Registrations) != users {
				t.Fatalf("FlashRegistrations after the draw: %+v, %v", list.SaleRegistration, err)
			}
			nWon := 0
			for _, r := range list.Registrations {
				if r.Drawn == nil || *r.Drawn != won[r.UserID] {
					t.Fatalf("export: %+v; want drawn %v", r, won[r.UserID])
				}
				if *r.Drawn {
					nWon++
				}
			}
			if nWon != drawQty {
				t.Fatalf("export lists %d winners; want %d", nWon, drawQty)
			}
		})
	}
}

// TestRegistrationAllAdmitted: without draw_quantity every registrant may
// reserve, within the stock (2 units for 3 registrants), and nobody else;
// the random seed is kept across a repeated create and shown after the
// draw.
func TestRegistrationAllAdmitted(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	fs := env.regSale("fr2", 2, 1, 0, "")
	again := env.regSale("fr2", 2, 1, 0, "") // the same create again: the same sale
	if fs.DrawSeedSHA256 == "" || again.DrawSeedSHA256 != fs.DrawSeedSHA256 {
		t.Fatalf("seed commitment %q, after the same create %q; want one random seed", fs.DrawSeedSHA256, again.DrawSeedSHA256)
	}
	for _, u := range []string{"a", "b", "c"} {
		if _, err := env.e.RegisterFlash(env.ctx, attempt(u), "fr2"); err != nil {
			t.Fatal(err)
		}
	}
	env.clock.Advance(time.Hour)
	if _, err := env.e.ReserveFlash(env.ctx, attempt("d"), "fr2", 1, ""); !isErr(err, engine.ErrNotRegistered) {
		t.Fatalf("ReserveFlash(unregistered) = %v; want ErrNotRegistered", err)
	}
	for _, u := range []string{"a", "b"} {
		if _, err := env.e.ReserveFlash(env.ctx, attempt(u), "fr2", 1, ""); err != nil {
			t.Fatalf("ReserveFlash(%s): %v", u, err)
		}
	}
	if _, err := env.e.ReserveFlash(env.ctx, attempt("c"), "fr2", 1, ""); !isErr(err, engine.ErrSoldOut) {
		t.Fatalf("ReserveFlash(c) with the stock gone = %v; want ErrSoldOut", err)
	}
	if p := env.pool("s1:fs:fr2"); p.Held != 2 || p.Available != 0 {
		t.Fatalf("sale pool = %+v; want 2 held", p)
	}
	fs, _ = env.e.FlashSale(env.ctx, "fr2")
	if len(fs.DrawSeed) != 64 || fs.Winners == nil || *fs.Winners != 3 {
		t.Fatalf("after the draw: seed %q, winners %v; want a 64-hex seed, 3 winners", fs.DrawSeed, fs.Winners)
	}
}

// TestRegistrationBounded: past RegistrantsPerSaleMax registering is
// ErrBadState, exactly at the bound under concurrency; before
// registration_starts_at it is ErrNotActive.
func TestRegistrationBounded(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, func(o *engine.Options) { o.RegistrantsPerSaleMax = 50 })
			now := env.clock.Now()
			_, err := env.e.CreateFlashSale(env.ctx, engine.FlashSaleSpec{
				SaleID: "fr3", StoreID: "s1", SKUID: "k1", Price: 1, Quantity: 5, PerUserLimit: 1,
				StartsAt: now.Add(2 * time.Hour), EndsAt: now.Add(3 * time.Hour), RegistrationStartsAt: now.Add(time.Hour),
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.e.RegisterFlash(env.ctx, attempt("early"), "fr3"); !isErr(err, engine.ErrNotActive) {
				t.Fatalf("RegisterFlash before registration opens = %v; want ErrNotActive", err)
			}
			env.clock.Advance(time.Hour)
			var ok, full atomic.Int64
			var wg sync.WaitGroup
			for g := range 160 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := env.e.RegisterFlash(env.ctx, attempt(fmt.Sprint("u", g%80)), "fr3")
					switch {
					case err == nil:
						ok.Add(1)
					case isErr(err, engine.ErrBadState):
						full.Add(1)
					default:
						t.Errorf("RegisterFlash: %v", err)
					}
				}()
			}
			wg.Wait()
			list, err := env.e.FlashRegistrations(env.ctx, "fr3")
			if err != nil || len(list.Registrations) != 50 {
				t.Fatalf("%d registered (%v); want exactly 50", len(list.Registrations), err)
			}
			if ok.Load() < 50 || ok.Load()+full.Load() != 160 {
				t.Fatalf("answers: %d ok, %d full", ok.Load(), full.Load())
			}
		})
	}
}

// TestRegistrationBadSpec: bad registration fields are ErrInvalid and
// create nothing (no sale, the listing's stock untouched).
func TestRegistrationBadSpec(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	now := env.clock.Now()
	base := engine.FlashSaleSpec{SaleID: "bad", StoreID: "s1", SKUID: "k1", Price: 1, Quantity: 5, PerUserLimit: 1,
		StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour), RegistrationStartsAt: now}
	long := make([]byte, engine.DrawSeedLenMax+1)
	for i := range long {
		long[i] = 'a'
	}
	f := func(what string, mut func(*engine.FlashSaleSpec)) {
		t.Helper()
		sp := base
		mut(&sp)
		if _, err := env.e.CreateFlashSale(env.ctx, sp); !isErr(err, engine.ErrInvalid) {
			t.Fatalf("%s: CreateFlashSale = %v; want ErrInvalid", what, err)
		}
		if _, err := env.e.FlashSale(env.ctx, "bad"); !isErr(err, engine.ErrNotFound) {
			t.Fatalf("%s: the sale exists after a refusal (%v)", what, err)
		}
		if p := env.pool("s1:l:k1"); p.Available != 1000 {
			t.Fatalf("%s: listing %+v; want its 1000 units untouched", what, p)
		}
	}
	f("registration at the start", func(s *engine.FlashSaleSpec) { s.RegistrationStartsAt = s.StartsAt })
	f("registration after the start", func(s *engine.FlashSaleSpec) { s.RegistrationStartsAt = s.StartsAt.Add(time.Minute) })
	f("started sale", func(s *engine.FlashSaleSpec) {
		s.StartsAt, s.RegistrationStartsAt = now.Add(-time.Minute), now.Add(-time.Hour)
	})
	f("negative draw_quantity", func(s *engine.FlashSaleSpec) { s.DrawQuantity = -1 })
	f("draw_quantity over the bound", func(s *engine.FlashSaleSpec) { s.DrawQuantity = engine.RegistrantsPerSaleMaxDefault + 1 })
	f("draw_seed too long", func(s *engine.FlashSaleSpec) { s.DrawSeed = string(long) })
	f("draw_seed with a space", func(s *engine.FlashSaleSpec) { s.DrawSeed = "a b" })
	f("draw_quantity without registration", func(s *engine.FlashSaleSpec) { s.RegistrationStartsAt = time.Time{}; s.DrawQuantity = 3 })
	f("draw_seed without registration", func(s *engine.FlashSaleSpec) { s.RegistrationStartsAt = time.Time{}; s.DrawSeed = "x" })
}

// TestRegistrationSharedRedis: two engines sharing one Redis take
// registrations through both, race to make the draw, and agree on it;
// the winners are engine.Draw's over the whole list. With Redis down, a
// user the node has not decided yet is refused 503 (ErrUnavailable),
// never "not registered".
func TestRegistrationSharedRedis(t *testing.T) {
	srv := redistest.Start(t)
	clock := newTestClock()
	open := func() *engine.Engine {
		st, err := redisinv.Open(context.Background(), redisinv.Options{Options: inventory.Options{Now: clock.Now}, Addr: srv.Addr})
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.Open(context.Background(), engine.Options{Store: st, Now: clock.Now, SweepInterval: -1, SaleAdmitFactor: -1, RedisAddr: srv.Addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close(); _ = st.Close() })
		return e
	}
	ctx := context.Background()
	e1, e2 := open(), open()
	if _, err := e1.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if _, err := e1.CreateFlashSale(ctx, engine.FlashSaleSpec{
		SaleID: "fr4", StoreID: "s1", SKUID: "k1", Price: 1, Quantity: 100, PerUserLimit: 1,
		StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour), RegistrationStartsAt: now, DrawQuantity: 7,
	}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 40 {
		e := []*engine.Engine{e1, e2}[i%2]
		name := fmt.Sprint("u", i)
		names = append(names, name)
		if _, err := e.RegisterFlash(ctx, attempt(name), "fr4"); err != nil {
			t.Fatalf("RegisterFlash(%s) on node %d: %v", name, i%2+1, err)
		}
	}
	// A node's sweep counts the registrations made on the other node too.
	if err := e1.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if fs, err := e1.FlashSale(ctx, "fr4"); err != nil || fs.Registrants != 40 || fs.DrawMade {
		t.Fatalf("node 1 after a sweep: %+v, %v; want 40 registrants, no draw yet", fs.SaleRegistration, err)
	}
	clock.Advance(time.Hour)
	var wg sync.WaitGroup
	views := make([]engine.FlashSale, 2)
	for i, e := range []*engine.Engine{e1, e2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Whoever comes first makes the draw; both end with one.
			_, _ = e.ReserveFlash(ctx, attempt("nobody"), "fr4", 1, "")
			views[i], _ = e.FlashSale(ctx, "fr4")
		}()
	}
	wg.Wait()
	if !views[0].DrawMade || !views[1].DrawMade || views[0].DrawSeed != views[1].DrawSeed || len(views[0].DrawSeed) != 64 {
		t.Fatalf("nodes' draws: %+v / %+v; want one, made, with its seed", views[0].SaleRegistration, views[1].SaleRegistration)
	}
	winners := engine.Draw(views[0].DrawSeed, names, 7)
	won := map[string]bool{}
	for _, w := range winners {
		won[w] = true
	}
	for i, name := range names {
		e := []*engine.Engine{e1, e2}[(i+1)%2] // the other node than the one registered on
		_, err := e.ReserveFlash(ctx, attempt(name), "fr4", 1, "")
		if won[name] != (err == nil) || !won[name] && !isErr(err, engine.ErrNotRegistered) {
			t.Fatalf("ReserveFlash(%s): %v; winner %v", name, err, won[name])
		}
	}
	srv.Stop()
	if _, err := e1.ReserveFlash(ctx, attempt("stranger"), "fr4", 1, ""); !isErr(err, engine.ErrUnavailable) {
		t.Fatalf("ReserveFlash with Redis down = %v; want ErrUnavailable", err)
	}
}

// TestRegistrationSurvivesRestart: on Pebble, registrations made before a
// restart are there after it (counted, bounded, drawn over).
func TestRegistrationSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock()
	ctx := context.Background()
	var closeAll func()
	open := func() *engine.Engine {
		st, err := inventory.OpenPebble(dir+"/inv", inventory.PebbleOptions{Options: inventory.Options{Now: clock.Now}})
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.Open(ctx, engine.Options{Store: st, Now: clock.Now, SweepInterval: -1, SaleAdmitFactor: -1, Dir: dir + "/rec", RegistrantsPerSaleMax: 3})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close(); _ = st.Close() })
		closeAll = func() {
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return e
	}
	e := open()
	if _, err := e.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if _, err := e.CreateFlashSale(ctx, engine.FlashSaleSpec{
		SaleID: "fr5", StoreID: "s1", SKUID: "k1", Price: 1, Quantity: 10, PerUserLimit: 1,
		StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour), RegistrationStartsAt: now, DrawQuantity: 2, DrawSeed: "restart",
	}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"a", "b", "c"} {
		if _, err := e.RegisterFlash(ctx, attempt(u), "fr5"); err != nil {
			t.Fatal(err)
		}
	}
	closeAll()
	e = open()
	if _, err := e.RegisterFlash(ctx, attempt("d"), "fr5"); !isErr(err, engine.ErrBadState) {
		t.Fatalf("RegisterFlash past the bound after a restart = %v; want ErrBadState (3 registrants kept)", err)
	}
	clock.Advance(time.Hour)
	won := map[string]bool{}
	for _, w := range engine.Draw("restart", []string{"a", "b", "c"}, 2) {
		won[w] = true
	}
	for _, u := range []string{"a", "b", "c", "d"} {
		_, err := e.ReserveFlash(ctx, attempt(u), "fr5", 1, "")
		if won[u] != (err == nil) {
			t.Fatalf("ReserveFlash(%s) after a restart: %v; winner %v", u, err, won[u])
		}
	}
}
