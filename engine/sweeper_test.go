package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/inventory"
)

// TestBackgroundSweeper: with the real clock and the background sweeper,
// an abandoned checkout hold is released without anyone calling Sweep.
func TestBackgroundSweeper(t *testing.T) {
	realClock := testBackend{"memory", func(t testing.TB, _ *testClock) (inventory.Store, string, func() inventory.Store) {
		return inventory.NewMemory(inventory.Options{}), "", nil
	}}
	env := openEnv(t, realClock, func(o *engine.Options) {
		o.Now = nil
		o.SweepInterval = 10 * time.Millisecond
		o.CheckoutHold = 50 * time.Millisecond
	})
	r, err := env.e.Checkout(env.ctx, attempt("u1"), engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k2", Quantity: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the sweeper; the bound only keeps a broken sweeper from
	// hanging the test.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got, err := env.e.Reservation(env.ctx, "u1", r.ReservationID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == "released" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hold not released by the sweeper: %+v", got)
		}
	}
	if p := env.pool("s1:l:k2"); p.Held != 0 || p.Available != 10 {
		t.Fatalf("k2 = %+v", p)
	}
}

// TestSaleEndedWhileDownDrains: a sale that ended while the process was
// down (for more than an hour) still moves its unsold units back to the
// listing after the restart (law 2: the sale ends with every unit sold or
// back on the shelf, also after a restart).
func TestSaleEndedWhileDownDrains(t *testing.T) {
	clock := newTestClock()
	st := inventory.NewMemory(inventory.Options{Now: clock.Now})
	rec := records.NewMemory()
	ctx := context.Background()
	open := func() *engine.Engine {
		e, err := engine.Open(ctx, engine.Options{Store: st, Records: rec, Now: clock.Now, SweepInterval: -1})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return e
	}
	e := open()
	if _, err := e.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if _, err := e.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: "fsd", StoreID: "s1", SKUID: "k1",
		Price: 9900, Quantity: 10, StartsAt: now, EndsAt: now.Add(time.Hour), HoldSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	r, err := e.ReserveFlash(ctx, attempt("u1"), "fsd", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pay(ctx, "u1", r.ReservationID, "p1"); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Hour) // the sale ends while the process is down
	e = open()
	defer e.Close()
	for range 2 {
		if err := e.Sweep(ctx); err != nil {
			t.Fatalf("Sweep: %v", err)
		}
	}
	sp, err := st.Pool(ctx, "s1:fs:fsd")
	if err != nil {
		t.Fatal(err)
	}
	lp, err := st.Pool(ctx, "s1:l:k1")
	if err != nil {
		t.Fatal(err)
	}
	if sp.Available != 0 || lp.Available != 999 {
		t.Fatalf("after restart: sale pool %+v, listing %+v; want the 9 unsold units back on the listing", sp, lp)
	}
}

// TestSaleEndReleaseDuringFinishCheck: a hold released after its sale
// ended, while the sweeper decides the sale is finished, still goes back
// to the listing (law 2): the sweeper must not mark the sale finished
// (and stop draining it) over the release.
func TestSaleEndReleaseDuringFinishCheck(t *testing.T) {
	clock := newTestClock()
	st := &tornPoolStore{Store: inventory.NewMemory(inventory.Options{Now: clock.Now})}
	ctx := context.Background()
	e, err := engine.Open(ctx, engine.Options{Store: st, Now: clock.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if _, err := e.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: "fsr", StoreID: "s1", SKUID: "k1",
		Price: 9900, Quantity: 1, StartsAt: now, EndsAt: now.Add(time.Minute), HoldSeconds: 3600}); err != nil {
		t.Fatal(err)
	}
	r, err := e.ReserveFlash(ctx, attempt("u1"), "fsr", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute) // the sale ended; the hold runs on
	st.arm("s1:fs:fsr", func() {
		if _, err := e.Cancel(ctx, "u1", r.ReservationID); err != nil {
			t.Errorf("Cancel: %v", err)
		}
	})
	for range 3 {
		if err := e.Sweep(ctx); err != nil {
			t.Fatalf("Sweep: %v", err)
		}
	}
	lp, err := st.Pool(ctx, "s1:l:k1")
	if err != nil {
		t.Fatal(err)
	}
	if lp.Available != 1000 {
		sp, _ := st.Pool(ctx, "s1:fs:fsr")
		t.Fatalf("listing %+v, sale pool %+v: the cancelled unit did not go back to the listing", lp, sp)
	}
}

// TestSweepDropsExpiredIdempotencyRecords: the sweeper bounds the
// idempotency records in storage, not just in the cache.
func TestSweepDropsExpiredIdempotencyRecords(t *testing.T) {
	rec := records.NewMemory()
	t.Cleanup(func() { _ = rec.Close() })
	env := openEnv(t, testBackends()[0], func(o *engine.Options) {
		o.Records = rec
		o.Idempotency.TTL = time.Minute
	})
	count := func() int {
		n := 0
		if err := rec.Scan(env.ctx, "idem/", func(string, []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	env.sweep() // the first sweep also removes (nothing yet)
	before := count()
	var d [32]byte
	d[0] = 1
	// A team opened under a key keeps its answer in the records (a keyed
	// flash reserve or checkout keeps its reservation instead: once.go).
	env.deal("gb1", 2, 10, 0)
	a := engine.Attempt{UserID: "u1", Once: engine.Once{Key: "key-1", Digest: d}}
	if _, err := env.e.OpenTeam(env.ctx, a, "gb1", ""); err != nil {
		t.Fatalf("OpenTeam with a key: %v", err)
	}
	if got := count(); got != before+1 {
		t.Fatalf("records after one Idempotent = %d; want %d", got, before+1)
	}
	env.clock.Advance(time.Minute) // not yet past TTL + a minute of sweeping
	env.sweep()
	if got := count(); got != before+1 {
		t.Fatalf("records after an early sweep = %d; want %d (kept)", got, before+1)
	}
	env.clock.Advance(time.Hour)
	env.sweep()
	if got := count(); got != before {
		t.Fatalf("records after TTL and a sweep = %d; want %d (expired record removed)", got, before)
	}
}

// tornPoolStore is an inventory store whose next Pool read of one pool runs
// hook first and returns what the pool looked like before it, with held
// units moved by hook counted nowhere: the read a snapshot may give in the
// middle of a release (held already lowered, available not yet raised).
type tornPoolStore struct {
	inventory.Store
	mu   sync.Mutex
	pool string
	hook func()
}

func (s *tornPoolStore) arm(pool string, hook func()) {
	s.mu.Lock()
	s.pool, s.hook = pool, hook
	s.mu.Unlock()
}

func (s *tornPoolStore) Pool(ctx context.Context, id string) (inventory.Pool, error) {
	s.mu.Lock()
	var hook func()
	if id == s.pool {
		hook, s.hook, s.pool = s.hook, nil, ""
	}
	s.mu.Unlock()
	if hook == nil {
		return s.Store.Pool(ctx, id)
	}
	before, err := s.Store.Pool(ctx, id)
	if err != nil {
		return before, err
	}
	hook()
	after, err := s.Store.Pool(ctx, id)
	if err != nil {
		return after, err
	}
	before.Held = after.Held
	before.Supplied = before.Available + before.Held + before.Sold
	return before, nil
}
