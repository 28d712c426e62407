package engine_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/inventory"
)

// TestSweeperClosesFinishedSale: a crowd hammers a sale with a per-user
// limit from many goroutines, some pay, the rest let their holds run out;
// the sale ends. Once every hold is over the sweeper closes the sale's
// pool (its per-user counts forgotten, on every backend), and the limit
// still holds: no reserve of the sale succeeds after that, through the
// engine (not active) nor at the store (sold out), and every user's paid
// units are within the limit, exactly as counted.
func TestSweeperClosesFinishedSale(t *testing.T) {
	const users, limit, workers, tries = 150, 2, 12, 4
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			env.sale("fs1", users*limit, limit)
			pool := "s1:fs:fs1"
			var mu sync.Mutex
			paid := map[string]int64{}
			var wg sync.WaitGroup
			work := make(chan int, users*tries)
			for i := 0; i < users*tries; i++ {
				work <- i
			}
			close(work)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range work {
						u := fmt.Sprintf("u%d", i%users)
						r, err := env.e.ReserveFlash(env.ctx, attempt(u), "fs1", 1, "")
						if isErr(err, engine.ErrLimitExceeded) || isErr(err, engine.ErrSoldOut) {
							continue
						}
						if err != nil {
							t.Errorf("ReserveFlash(%s) = %v", u, err)
							return
						}
						if i%2 == 1 {
							continue // left to expire
						}
						if _, err := env.e.Pay(env.ctx, u, r.ReservationID, "pay-"+r.ReservationID); err != nil {
							t.Errorf("Pay(%s) = %v", r.ReservationID, err)
							continue
						}
						mu.Lock()
						paid[u]++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if _, err := env.e.ControlSale(env.ctx, engine.SaleKindFlash, "fs1", "end"); err != nil {
				t.Fatalf("end: %v", err)
			}
			env.sweep()
			if p := env.pool(pool); p.Closed || p.Held == 0 {
				t.Fatalf("pool with holds left = %+v; want open with holds", p)
			}
			env.clock.Advance(61 * time.Second) // the holds run out
			env.sweep()
			env.sweep()
			p := env.pool(pool)
			var sold int64
			for u, n := range paid {
				if n > limit {
					t.Errorf("user %s paid %d units; limit %d", u, n, limit)
				}
				sold += n
			}
			if !p.Closed || p.Held != 0 || p.Sold != sold || p.Available != 0 {
				t.Fatalf("pool after the sale = %+v; want closed, %d sold, nothing held or left", p, sold)
			}
			// Nobody reserves any more: not through the engine...
			for i := 0; i < users; i++ {
				_, err := env.e.ReserveFlash(env.ctx, attempt(fmt.Sprintf("u%d", i)), "fs1", 1, "")
				if !isErr(err, engine.ErrNotActive) {
					t.Fatalf("ReserveFlash after the sale = %v; want ErrNotActive", err)
				}
			}
			// ...nor at the store, where the counts are gone.
			for u := range paid {
				_, err := env.store.Reserve(env.ctx, inventory.ReserveRequest{ID: "s1:late-" + u, User: u,
					Lines: []inventory.Line{{Pool: pool, Quantity: 1, Limit: limit}}, TTL: time.Minute})
				if !errors.Is(err, inventory.ErrSoldOut) {
					t.Fatalf("store Reserve on the closed pool = %v; want ErrSoldOut", err)
				}
			}
			if p2 := env.pool(pool); p2 != p {
				t.Fatalf("pool after refused reserves = %+v; want %+v", p2, p)
			}
		})
	}
}
