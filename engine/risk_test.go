package engine_test

import (
	"testing"

	"github.com/surge-retail/surge/engine"
)

// TestGuideOfAnotherStoreIsRefused: a sale is credited only to a guide of
// its own store; a guide of another store is bad input and reserves
// nothing.
func TestGuideOfAnotherStoreIsRefused(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	fs := env.sale("guided", 10, 0)
	pool := "s1:fs:" + fs.SaleID
	before := env.pool(pool)
	_, err := env.e.ReserveFlash(env.ctx, attempt("u1"), fs.SaleID, 1, "g2") // g2 works in s2
	wantErr(t, "ReserveFlash with another store's guide", err, engine.ErrInvalid)
	_, err = env.e.Checkout(env.ctx, attempt("u1"), engine.CheckoutRequest{StoreID: "s1", GuideID: "g2", Items: []engine.CheckoutItem{{SKUID: "k2", Quantity: 1}}})
	wantErr(t, "Checkout with another store's guide", err, engine.ErrInvalid)
	if after := env.pool(pool); after != before {
		t.Fatalf("refused reserves changed the pool: %+v -> %+v", before, after)
	}
	r, err := env.e.ReserveFlash(env.ctx, attempt("u1"), fs.SaleID, 1, "g1")
	if err != nil || r.GuideID != "g1" {
		t.Fatalf("ReserveFlash with the store's own guide = %+v, %v", r, err)
	}
}
