package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/inventory"
)

// TestFlashNoOversellLimits hammers one sale from many goroutines: units
// reserved never pass the quantity (law 1), no user passes the limit
// (law 6), and the totals are exact.
func TestFlashNoOversellLimits(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			const qty, limit, users, tries = 200, 2, 150, 4
			env.sale("fs1", qty, limit)
			if got := env.pool("s1:l:k1"); got.Available != 1000-qty {
				t.Fatalf("listing after carving: %+v; want %d available", got, 1000-qty)
			}
			var ok, soldOut, limited atomic.Int64
			perUser := make([]atomic.Int64, users)
			var wg sync.WaitGroup
			for u := range users {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range tries {
						r, err := env.e.ReserveFlash(env.ctx, attempt(fmt.Sprint("u", u)), "fs1", 1, "")
						switch {
						case err == nil:
							ok.Add(1)
							perUser[u].Add(1)
							if r.Quantity != 1 || r.UnitPrice != 9900 || r.SaleID != "fs1" || r.StoreID != "s1" {
								t.Errorf("reservation = %+v", r)
							}
						case isErr(err, engine.ErrSoldOut):
							soldOut.Add(1)
						case isErr(err, engine.ErrLimitExceeded):
							limited.Add(1)
						default:
							t.Errorf("ReserveFlash: %v", err)
						}
					}
				}()
			}
			wg.Wait()
			if ok.Load() != qty {
				t.Fatalf("reserved %d; want exactly %d (sold out %d, limited %d)", ok.Load(), qty, soldOut.Load(), limited.Load())
			}
			for u := range users {
				if perUser[u].Load() > limit {
					t.Fatalf("user %d got %d > limit %d", u, perUser[u].Load(), limit)
				}
			}
			st, err := env.e.Stats(env.ctx)
			if err != nil {
				t.Fatal(err)
			}
			ps := st.Sales["fs1"]
			if ps.Supplied != qty || ps.Held != qty || ps.Remaining != 0 || ps.Sold != 0 {
				t.Fatalf("stats = %+v", ps)
			}
			if rem, ok := env.e.SaleRemaining("fs1"); !ok || rem != 0 {
				t.Fatalf("SaleRemaining = %d, %v; want 0, true", rem, ok)
			}
		})
	}
}

// countingStore counts Reserve calls reaching a real store.
type countingStore struct {
	inventory.Store
	reserves atomic.Int64
}

func (s *countingStore) Reserve(ctx context.Context, req inventory.ReserveRequest) (inventory.Reservation, error) {
	s.reserves.Add(1)
	return s.Store.Reserve(ctx, req)
}

// TestFlashSoldOutFromMemory: once a sale is sold out, attempts are
// answered without reaching the store; a release makes units available
// again; the page shows the sale's state after a sweep.
func TestFlashSoldOutFromMemory(t *testing.T) {
	var cs *countingStore
	mem := testBackend{"memory", func(t testing.TB, clock *testClock) (inventory.Store, string, func() inventory.Store) {
		cs = &countingStore{Store: inventory.NewMemory(inventory.Options{Now: clock.Now})}
		return cs, "", nil
	}}
	env := openEnv(t, mem, nil)
	now := env.clock.Now()
	if _, err := env.e.CreateFlashSale(env.ctx, engine.FlashSaleSpec{SaleID: "fs1", StoreID: "s1", SKUID: "k1", Price: 1,
		Quantity: 2, StartsAt: now.Add(time.Minute), EndsAt: now.Add(time.Hour), HoldSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	flashState := func() string {
		var pg struct {
			Sections []struct {
				Type  string            `json:"type"`
				Items []json.RawMessage `json:"items"`
			} `json:"sections"`
		}
		p, _ := env.e.StorePage("s1", "")
		if err := json.Unmarshal(p.Body, &pg); err != nil {
			t.Fatal(err)
		}
		for _, s := range pg.Sections {
			if s.Type == "flash_sales" && len(s.Items) == 1 {
				var it struct {
					Status     string `json:"status"`
					StockState string `json:"stock_state"`
				}
				if err := json.Unmarshal(s.Items[0], &it); err != nil {
					t.Fatal(err)
				}
				return it.Status + "/" + it.StockState
			}
		}
		return "none"
	}
	if got := flashState(); got != "upcoming/low" {
		t.Fatalf("page shows %s; want upcoming/low", got)
	}
	env.clock.Advance(time.Minute)
	env.sweep()
	if got := flashState(); got != "active/low" {
		t.Fatalf("page shows %s; want active/low", got)
	}
	var held []string
	for _, u := range []string{"a", "b"} {
		r, err := env.e.ReserveFlash(env.ctx, attempt(u), "fs1", 1, "")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r.ReservationID)
	}
	before := cs.reserves.Load()
	for i := range 100 {
		_, err := env.e.ReserveFlash(env.ctx, attempt(fmt.Sprint("x", i)), "fs1", 1, "")
		wantErr(t, "ReserveFlash on a sold-out sale", err, engine.ErrSoldOut)
	}
	if n := cs.reserves.Load() - before; n != 0 {
		t.Fatalf("%d reserves reached the store after sold out", n)
	}
	env.sweep()
	if got := flashState(); got != "active/sold_out" {
		t.Fatalf("page shows %s; want active/sold_out", got)
	}
	if _, err := env.e.Cancel(env.ctx, "a", held[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := env.e.ReserveFlash(env.ctx, attempt("c"), "fs1", 1, ""); err != nil {
		t.Fatalf("after a cancel: %v", err)
	}
}

// TestFlashCreateValidation: bad specs change nothing.
func TestFlashCreateValidation(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	now := env.clock.Now()
	good := engine.FlashSaleSpec{SaleID: "fs1", StoreID: "s1", SKUID: "k2", Price: 100, Quantity: 5,
		StartsAt: now.Add(time.Minute), EndsAt: now.Add(time.Hour)}
	f := func(mut func(*engine.FlashSaleSpec), want error) {
		t.Helper()
		s := good
		mut(&s)
		_, err := env.e.CreateFlashSale(env.ctx, s)
		wantErr(t, fmt.Sprintf("CreateFlashSale(%+v)", s), err, want)
		if p := env.pool("s1:l:k2"); p.Available != 10 {
			t.Fatalf("listing changed: %+v", p)
		}
	}
	f(func(s *engine.FlashSaleSpec) { s.SaleID = "a:b" }, engine.ErrInvalid)
	f(func(s *engine.FlashSaleSpec) { s.StoreID = "zz" }, engine.ErrNotFound)
	f(func(s *engine.FlashSaleSpec) { s.SKUID = "zz" }, engine.ErrNotFound)
	f(func(s *engine.FlashSaleSpec) { s.Price = -1 }, engine.ErrInvalid)
	f(func(s *engine.FlashSaleSpec) { s.Quantity = 0 }, engine.ErrInvalid)
	f(func(s *engine.FlashSaleSpec) { s.Quantity = 11 }, engine.ErrSoldOut)
	f(func(s *engine.FlashSaleSpec) { s.EndsAt = s.StartsAt }, engine.ErrInvalid)
	f(func(s *engine.FlashSaleSpec) { s.PerUserLimit = -1 }, engine.ErrInvalid)
	if _, err := env.e.CreateFlashSale(env.ctx, good); err != nil {
		t.Fatal(err)
	}
	if _, err := env.e.CreateFlashSale(env.ctx, good); err != nil {
		t.Fatalf("same spec again: %v", err)
	}
	other := good
	other.Quantity = 1
	_, err := env.e.CreateFlashSale(env.ctx, other)
	wantErr(t, "other spec, same id", err, engine.ErrBadState)
	if p := env.pool("s1:l:k2"); p.Available != 5 {
		t.Fatalf("listing = %+v; want 5 available", p)
	}
	fs, err := env.e.FlashSale(env.ctx, "fs1")
	if err != nil || fs.Status != "upcoming" || fs.Remaining != 5 || fs.Title != "真丝衬衫" || fs.ListPrice != 29900 {
		t.Fatalf("FlashSale = %+v, %v", fs, err)
	}
	_, err = env.e.ReserveFlash(env.ctx, attempt("u1"), "fs1", 1, "")
	wantErr(t, "upcoming sale", err, engine.ErrNotActive)
}
