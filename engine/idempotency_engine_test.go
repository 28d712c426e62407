package engine_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/inventory"
)

// TestIdempotent: the same key and body give the first answer; another
// body, a conflict (law 5), also under concurrency.
func TestIdempotent(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	rec := records.NewMemory()
	t.Cleanup(func() { _ = rec.Close() })
	idem := engine.NewIdempotency(rec, engine.IdempotencyOptions{})
	d1 := sha256.Sum256([]byte(`{"quantity":1}`))
	d2 := sha256.Sum256([]byte(`{"quantity":2}`))
	var runs atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body, err := idem.Do(env.ctx, "u1", "k-1", d1, func() (int, []byte) {
				return 200, []byte(fmt.Sprintf(`{"run":%d}`, runs.Add(1)))
			})
			// A duplicate racing the first call may be refused while the
			// first runs; it never runs fn again nor gets another answer.
			if err == nil && (status != 200 || string(body) != `{"run":1}`) {
				t.Errorf("Idempotent = %d %s %v", status, body, err)
			}
		}()
	}
	wg.Wait()
	if runs.Load() != 1 {
		t.Fatalf("fn ran %d times", runs.Load())
	}
	status, body, err := idem.Do(env.ctx, "u1", "k-1", d1, func() (int, []byte) { return 500, nil })
	if err != nil || status != 200 || string(body) != `{"run":1}` {
		t.Fatalf("repeat = %d %s %v; want the first answer", status, body, err)
	}
	_, _, err = idem.Do(env.ctx, "u1", "k-1", d2, func() (int, []byte) { return 200, nil })
	wantErr(t, "other body", err, engine.ErrIdempotencyConflict)
	status, _, err = idem.Do(env.ctx, "u2", "k-1", d2, func() (int, []byte) { return 201, nil })
	if err != nil || status != 201 {
		t.Fatalf("other user: %d %v", status, err)
	}
}

// TestRefusalsAreNotKept: a keyed reserve that is refused (sold out, over
// the limit, throttled, denied) stores nothing: a flood of keyed refusals
// writes no record, and the same key sent again is decided afresh (API.md)
// while a keyed success is still replayed after the sale sold out.
func TestRefusalsAreNotKept(t *testing.T) {
	rec := records.NewMemory()
	t.Cleanup(func() { _ = rec.Close() })
	var deny atomic.Bool
	env := openEnv(t, testBackends()[0], func(o *engine.Options) {
		o.Records = rec
		o.Risk = riskFunc(func(engine.RiskInput) engine.Verdict {
			if deny.Load() {
				return engine.Verdict{Reason: "blocklist"}
			}
			return engine.Verdict{Allow: true}
		})
	})
	env.sale("fs1", 2, 1)
	// What a keyed reserve keeps is its reservation (once.go), and no
	// separate answer: count both.
	answers := func() int {
		n := 0
		if err := rec.Scan(env.ctx, "idem/", func(string, []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		for _, st := range []inventory.State{inventory.StateHeld, inventory.StatePaid, inventory.StateReleased} {
			rs, _, err := env.store.Scan(env.ctx, st, "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			n += len(rs)
		}
		return n
	}
	keyed := func(user, key string) engine.Attempt {
		return engine.Attempt{UserID: user, Once: engine.Once{Key: key, Digest: sha256.Sum256([]byte(key))}}
	}
	// A success is kept.
	first, err := env.e.ReserveFlash(env.ctx, keyed("alice", "a-1"), "fs1", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := answers(); got != 1 {
		t.Fatalf("kept answers after one keyed success = %d; want 1", got)
	}
	// Over the limit, then denied by risk: refused, nothing kept.
	_, err = env.e.ReserveFlash(env.ctx, keyed("alice", "a-2"), "fs1", 1, "")
	wantErr(t, "second unit over the limit", err, engine.ErrLimitExceeded)
	deny.Store(true)
	_, err = env.e.ReserveFlash(env.ctx, keyed("bob", "b-1"), "fs1", 1, "")
	wantErr(t, "denied", err, engine.ErrRiskDenied)
	deny.Store(false)
	// The same keys again are decided afresh: bob is no longer denied,
	// and alice, her first unit cancelled, is under her limit again.
	if _, err := env.e.ReserveFlash(env.ctx, keyed("bob", "b-1"), "fs1", 1, ""); err != nil {
		t.Fatalf("the denied key sent again: %v; want it decided afresh", err)
	}
	if _, err := env.e.Cancel(env.ctx, "alice", first.ReservationID); err != nil {
		t.Fatal(err)
	}
	if _, err := env.e.ReserveFlash(env.ctx, keyed("alice", "a-2"), "fs1", 1, ""); err != nil {
		t.Fatalf("the over-the-limit key sent again under the limit: %v; want it decided afresh", err)
	}
	// Sold out: a flood of new keys is answered from memory, kept nowhere.
	before := answers()
	for i := range 1000 {
		_, err := env.e.ReserveFlash(env.ctx, keyed("carol", fmt.Sprintf("c-%d", i)), "fs1", 1, "")
		wantErr(t, "sold out", err, engine.ErrSoldOut)
		if !errors.Is(err, engine.ErrShed) {
			t.Fatalf("keyed sold out = %v; want it answered from memory (ErrShed)", err)
		}
	}
	if got := answers(); got != before {
		t.Fatalf("kept answers after 1000 keyed sold-out refusals = %d; want %d", got, before)
	}
	// Alice's success is replayed, though the sale is now sold out.
	again, err := env.e.ReserveFlash(env.ctx, keyed("alice", "a-1"), "fs1", 1, "")
	if err != nil || again.ReservationID != first.ReservationID {
		t.Fatalf("replay after sell-out = %+v, %v; want reservation %s", again, err, first.ReservationID)
	}
	// Another body under a kept key: a conflict.
	other := keyed("alice", "a-1")
	other.Once.Digest[0] ^= 1
	_, err = env.e.ReserveFlash(env.ctx, other, "fs1", 1, "")
	wantErr(t, "kept key, other body", err, engine.ErrIdempotencyConflict)
}

// riskFunc is a RiskHook made of a function.
type riskFunc func(engine.RiskInput) engine.Verdict

func (f riskFunc) Check(_ context.Context, in engine.RiskInput) engine.Verdict { return f(in) }

// TestKeptSuccessReplayedBeforeChecks: a keyed reserve that succeeded is
// answered again, the same, when its key comes back after the sale ended
// (units still in the pool) or after the risk hook turned against the
// caller: the checks decide new requests, never a kept answer (law 5).
func TestKeptSuccessReplayedBeforeChecks(t *testing.T) {
	var deny atomic.Bool
	env := openEnv(t, testBackends()[0], func(o *engine.Options) {
		o.Risk = riskFunc(func(engine.RiskInput) engine.Verdict {
			if deny.Load() {
				return engine.Verdict{Reason: "blocklist"}
			}
			return engine.Verdict{Allow: true}
		})
	})
	env.sale("fs1", 10, 1)
	a := engine.Attempt{UserID: "alice", Once: engine.Once{Key: "k-1", Digest: sha256.Sum256([]byte("k-1"))}}
	first, err := env.e.ReserveFlash(env.ctx, a, "fs1", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	deny.Store(true)
	if again, err := env.e.ReserveFlash(env.ctx, a, "fs1", 1, ""); err != nil || again.ReservationID != first.ReservationID {
		t.Fatalf("replay while denied = %+v, %v; want reservation %s", again, err, first.ReservationID)
	}
	deny.Store(false)
	env.clock.Advance(2 * time.Hour) // the sale ended with units left
	if again, err := env.e.ReserveFlash(env.ctx, a, "fs1", 1, ""); err != nil || again.ReservationID != first.ReservationID {
		t.Fatalf("replay after the sale ended = %+v, %v; want reservation %s", again, err, first.ReservationID)
	}
}

// TestKeyedReserveIsOneReserve, on every backend: a keyed flash reserve
// and a keyed checkout keep their reservation as their answer and nothing
// in the records (one reserve call, in the store's slot); a crowd of
// retries of the same keys, racing, takes each key's units exactly once;
// a retry after a cancel, after the sale sold out, still gets the first
// answer; the same key with another body is a conflict and changes
// nothing (law 5).
func TestKeyedReserveIsOneReserve(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			rec := records.NewMemory()
			t.Cleanup(func() { _ = rec.Close() })
			env := openEnv(t, b, func(o *engine.Options) { o.Records = rec })
			const users, retries, supply = 40, 8, 30
			env.sale("fs1", supply, 1)
			keyed := func(user, key, body string) engine.Attempt {
				return engine.Attempt{UserID: user, Once: engine.Once{Key: key, Digest: sha256.Sum256([]byte(body))}}
			}
			var (
				wg  sync.WaitGroup
				mu  sync.Mutex
				ids = map[string]map[string]bool{} // user -> reservation ids answered
			)
			for u := range users {
				for range retries {
					wg.Add(1)
					go func() {
						defer wg.Done()
						user := fmt.Sprintf("u%02d", u)
						r, err := env.e.ReserveFlash(env.ctx, keyed(user, "k-"+user, "fs1/1"), "fs1", 1, "")
						if err != nil {
							if !errors.Is(err, engine.ErrSoldOut) {
								t.Errorf("%s: %v", user, err)
							}
							return
						}
						if r.State != "held" || r.Quantity != 1 {
							t.Errorf("%s: answer %+v", user, r)
						}
						mu.Lock()
						if ids[user] == nil {
							ids[user] = map[string]bool{}
						}
						ids[user][r.ReservationID] = true
						mu.Unlock()
					}()
				}
			}
			wg.Wait()
			if len(ids) != supply {
				t.Fatalf("%d users got a unit; want %d (the supply)", len(ids), supply)
			}
			var someUser, someID string
			for user, set := range ids {
				if len(set) != 1 {
					t.Fatalf("%s's retries got %d reservations; want 1", user, len(set))
				}
				for id := range set {
					someUser, someID = user, id
				}
			}
			if p := env.pool("s1:fs:fs1"); p.Held != supply || p.Available != 0 {
				t.Fatalf("pool after the crowd = %+v; want %d held, none left", p, supply)
			}
			n := 0
			if err := rec.Scan(env.ctx, "idem/", func(string, []byte) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("%d answers kept in the records; want none (the reservation is the answer)", n)
			}

			// Cancelled, the sale sold out: the retry is still the first answer.
			first, err := env.e.Reservation(env.ctx, someUser, someID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.e.Cancel(env.ctx, someUser, someID); err != nil {
				t.Fatal(err)
			}
			again, err := env.e.ReserveFlash(env.ctx, keyed(someUser, "k-"+someUser, "fs1/1"), "fs1", 1, "")
			if err != nil || again.ReservationID != someID || again.State != "held" || !again.ExpiresAt.Equal(first.ExpiresAt) {
				t.Fatalf("retry after cancel = %+v, %v; want the first answer %+v", again, err, first)
			}
			if p := env.pool("s1:fs:fs1"); p.Held != supply-1 || p.Available != 1 {
				t.Fatalf("pool after the cancelled key's retry = %+v; want the unit back, not retaken", p)
			}
			// Another body under the key: a conflict, nothing taken.
			_, err = env.e.ReserveFlash(env.ctx, keyed(someUser, "k-"+someUser, "fs1/2"), "fs1", 2, "")
			wantErr(t, "same key, other quantity", err, engine.ErrIdempotencyConflict)
			_, err = env.e.ReserveFlash(env.ctx, keyed(someUser, "k-"+someUser, "fs1/1/g"), "fs1", 1, "")
			wantErr(t, "same key, other body", err, engine.ErrIdempotencyConflict)
			if p := env.pool("s1:fs:fs1"); p.Held != supply-1 || p.Available != 1 {
				t.Fatalf("pool after conflicts = %+v; want unchanged", p)
			}

			// A keyed checkout: retried, it holds its cart once; another
			// cart under the key is a conflict.
			cart := engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k2", Quantity: 2}, {SKUID: "k3", Quantity: 1}}}
			c1, err := env.e.Checkout(env.ctx, keyed("buyer", "cart-1", "c1"), cart)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := env.e.Checkout(env.ctx, keyed("buyer", "cart-1", "c1"), cart)
			if err != nil || c2.ReservationID != c1.ReservationID || c2.Amount != c1.Amount {
				t.Fatalf("checkout retry = %+v, %v; want %+v", c2, err, c1)
			}
			if p := env.pool("s1:l:k2"); p.Held != 2 {
				t.Fatalf("k2 after a retried checkout = %+v; want 2 held", p)
			}
			_, err = env.e.Checkout(env.ctx, keyed("buyer", "cart-1", "c2"), engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k2", Quantity: 1}}})
			wantErr(t, "checkout, same key, other cart", err, engine.ErrIdempotencyConflict)
		})
	}
}
