package engine_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/surge-retail/surge/engine"
)

// TestCheckoutAllOrNothing: carts racing for scarce items either get every
// item or nothing; stock is never oversold and prices are the store's.
func TestCheckoutAllOrNothing(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			// k3 has 3 units, k2 10: carts of {k2:2, k3:1} — at most 3 win.
			var won atomic.Int64
			var wg sync.WaitGroup
			for u := range 24 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := env.e.Checkout(env.ctx, attempt(fmt.Sprint("u", u)), engine.CheckoutRequest{
						StoreID: "s1", GuideID: "g1",
						Items: []engine.CheckoutItem{{SKUID: "k2", Quantity: 2}, {SKUID: "k3", Quantity: 1}},
					})
					switch {
					case err == nil:
						won.Add(1)
						if r.Amount != 2*29900+35900 || len(r.Items) != 2 || r.Kind != "checkout" || r.GuideID != "g1" {
							t.Errorf("reservation = %+v", r)
						}
					case isErr(err, engine.ErrSoldOut):
					default:
						t.Errorf("Checkout: %v", err)
					}
				}()
			}
			wg.Wait()
			k2, k3 := env.pool("s1:l:k2"), env.pool("s1:l:k3")
			if won.Load() != 3 || k3.Held != 3 || k2.Held != 6 || k2.Available != 4 {
				t.Fatalf("won %d, k2 %+v, k3 %+v", won.Load(), k2, k3)
			}
			f := func(req engine.CheckoutRequest, want error) {
				t.Helper()
				_, err := env.e.Checkout(env.ctx, attempt("x"), req)
				wantErr(t, fmt.Sprintf("Checkout(%+v)", req), err, want)
			}
			f(engine.CheckoutRequest{StoreID: "s1"}, engine.ErrInvalid)
			f(engine.CheckoutRequest{StoreID: "s9", Items: []engine.CheckoutItem{{SKUID: "k1", Quantity: 1}}}, engine.ErrNotFound)
			f(engine.CheckoutRequest{StoreID: "s2", Items: []engine.CheckoutItem{{SKUID: "k2", Quantity: 1}}}, engine.ErrNotFound)
			f(engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k1", Quantity: 0}}}, engine.ErrInvalid)
			f(engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k1", Quantity: 1}, {SKUID: "k1", Quantity: 1}}}, engine.ErrInvalid)
			f(engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k1", Quantity: 1}, {SKUID: "k3", Quantity: 1}}}, engine.ErrSoldOut)
			if k1 := env.pool("s1:l:k1"); k1.Held != 0 {
				t.Fatalf("a failed cart left k1 held: %+v", k1)
			}
		})
	}
}
