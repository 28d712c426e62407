package engine_test

import (
	"errors"
	"testing"

	"github.com/surge-retail/surge/engine"
)

// TestRiskAndReady: a denied attempt takes nothing and is counted by
// reason; Ready follows the inventory backend.
func TestRiskAndReady(t *testing.T) {
	hook, err := engine.NewRiskHook(engine.RiskConfig{PageTokenOff: true, Blocklist: []string{"bot"}})
	if err != nil {
		t.Fatal(err)
	}
	env := openEnv(t, testBackends()[0], func(o *engine.Options) { o.Risk = hook })
	env.sale("fs1", 5, 0)
	env.deal("gb1", 2, 5, 0)
	_, err = env.e.ReserveFlash(env.ctx, attempt("bot"), "fs1", 1, "")
	var re *engine.RiskError
	if !errors.As(err, &re) || !isErr(err, engine.ErrRiskDenied) || re.Reason != engine.RiskReasonBlocklist {
		t.Fatalf("ReserveFlash by a bot: %v", err)
	}
	_, err = env.e.OpenTeam(env.ctx, attempt("bot"), "gb1", "")
	wantErr(t, "OpenTeam by a bot", err, engine.ErrRiskDenied)
	_, err = env.e.Checkout(env.ctx, attempt("bot"), engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k1", Quantity: 1}}})
	wantErr(t, "Checkout by a bot", err, engine.ErrRiskDenied)
	st, err := env.e.Stats(env.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.RiskDenials[engine.RiskReasonBlocklist] != 3 || st.Sales["fs1"].Held != 0 || st.Deals["gb1"].Held != 0 || st.Listings["s1/k1"].Held != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if err := env.e.Ready(env.ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	_ = env.store.Close()
	wantErr(t, "Ready on a closed store", env.e.Ready(env.ctx), engine.ErrUnavailable)
}

// TestClosedEngineRefusesWrites: after Close nothing changes state; the
// caller gets ErrUnavailable (503), never a yes that no writer will keep.
func TestClosedEngineRefusesWrites(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	fs := env.sale("closed-sale", 10, 0)
	before := env.pool("s1:fs:" + fs.SaleID)
	if err := env.e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := env.e.ReserveFlash(env.ctx, attempt("u1"), fs.SaleID, 1, "")
	wantErr(t, "ReserveFlash after Close", err, engine.ErrUnavailable)
	_, err = env.e.Checkout(env.ctx, attempt("u1"), engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k2", Quantity: 1}}})
	wantErr(t, "Checkout after Close", err, engine.ErrUnavailable)
	_, err = env.e.LoadCatalog(env.ctx, testCatalog())
	wantErr(t, "LoadCatalog after Close", err, engine.ErrUnavailable)
	if after := env.pool("s1:fs:" + fs.SaleID); after != before {
		t.Fatalf("pool changed after Close: %+v -> %+v", before, after)
	}
}
