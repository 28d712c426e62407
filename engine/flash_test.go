package engine_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/surge-retail/surge/engine"
)

// TestFlashNoOversellLimits hammers one sale from many goroutines: units
// reserved never pass the quantity (law 1), no user passes the limit
// (law 6), and the totals are exact.
func TestFlashNoOversellLimits(t *testing.T) {
	for _, b := range engBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := engOpen(t, b, nil)
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
