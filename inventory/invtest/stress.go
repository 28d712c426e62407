package invtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// Stress races many goroutines against one store and checks exact totals
// afterwards: no oversell (law 1), no stuck stock (law 2), limits hold
// (law 6), each expiry released once, multi-line reserves all or nothing.
func Stress(t *testing.T, f Factory) {
	t.Run("FlashSale", func(t *testing.T) { stressFlashSale(t, f) })
	t.Run("MultiLine", func(t *testing.T) { stressMultiLine(t, f) })
}

const (
	stressGoroutines = 64
	stressUsers      = 1000
	stressSupply     = 500
	stressLimit      = 2
	stressExpirers   = 4
)

// outcome is what one goroutine saw.
type outcome struct {
	reserved  map[string]inventory.ReserveRequest // successful reserves
	confirmed map[string]bool                     // Confirm returned nil
	lateConf  map[string]bool                     // Confirm returned ErrBadState
	soldOut   int
	limited   int
	bad       []error // errors that should not happen
}

func newOutcome() *outcome {
	return &outcome{
		reserved:  map[string]inventory.ReserveRequest{},
		confirmed: map[string]bool{},
		lateConf:  map[string]bool{},
	}
}

func stressFlashSale(t *testing.T, f Factory) {
	clk := newClock()
	s := f(t, inventory.Options{Now: clk.Now})
	ctx := context.Background()
	const pool = "st:sale"
	if err := s.CreatePool(ctx, pool, stressSupply); err != nil {
		t.Fatal(err)
	}
	attempts := 100
	if testing.Short() {
		attempts = 40
	}
	outs := make([]*outcome, stressGoroutines)
	var wg sync.WaitGroup
	for g := range stressGoroutines {
		outs[g] = newOutcome()
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := outs[g]
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range attempts {
				r := inventory.ReserveRequest{
					ID:    fmt.Sprintf("st:g%02d-%03d", g, i),
					User:  fmt.Sprintf("u%04d", rng.IntN(stressUsers)),
					Lines: []inventory.Line{{Pool: pool, Quantity: 1 + rng.Int64N(2), Limit: stressLimit}},
					TTL:   time.Duration(1+rng.IntN(5)) * time.Second,
				}
				_, err := s.Reserve(ctx, r)
				switch {
				case err == nil:
					o.reserved[r.ID] = r
				case errors.Is(err, inventory.ErrSoldOut):
					o.soldOut++
					continue
				case errors.Is(err, inventory.ErrLimitExceeded):
					o.limited++
					continue
				default:
					o.bad = append(o.bad, fmt.Errorf("Reserve(%s): %w", r.ID, err))
					continue
				}
				switch rng.IntN(4) {
				case 0:
					_, err := s.Confirm(ctx, r.ID)
					switch {
					case err == nil:
						o.confirmed[r.ID] = true
					case errors.Is(err, inventory.ErrBadState):
						o.lateConf[r.ID] = true // expired meanwhile
					default:
						o.bad = append(o.bad, fmt.Errorf("Confirm(%s): %w", r.ID, err))
					}
				case 1:
					if _, err := s.Release(ctx, r.ID); err != nil {
						o.bad = append(o.bad, fmt.Errorf("Release(%s): %w", r.ID, err))
					}
				}
			}
		}()
	}
	var stop atomic.Bool
	expired := make([][]string, stressExpirers)
	expErrs := make([]error, stressExpirers)
	var ewg sync.WaitGroup
	for e := range stressExpirers {
		ewg.Add(1)
		go func() {
			defer ewg.Done()
			for !stop.Load() {
				if e == 0 {
					clk.Advance(50 * time.Millisecond)
				}
				rs, err := s.Expire(ctx, clk.Now(), 20)
				if err != nil {
					expErrs[e] = err
					return
				}
				for _, r := range rs {
					expired[e] = append(expired[e], r.ID)
				}
			}
		}()
	}
	// Law 1 at every instant, not only at the end: with no feed a pool is
	// never short, and held plus sold never pass the supply.
	var oversell atomic.Pointer[inventory.Pool]
	ewg.Add(1)
	go func() {
		defer ewg.Done()
		for !stop.Load() {
			p, err := s.Pool(ctx, pool)
			if err != nil || p.Short != 0 || p.Held+p.Sold > stressSupply || p.Available > stressSupply {
				oversell.CompareAndSwap(nil, &p)
				return
			}
		}
	}()
	wg.Wait()
	stop.Store(true)
	ewg.Wait()
	if p := oversell.Load(); p != nil {
		t.Fatalf("Pool during the sale = %+v: oversold (supply %d)", *p, stressSupply)
	}
	for _, err := range expErrs {
		if err != nil {
			t.Fatalf("Expire = %v", err)
		}
	}

	reserved := map[string]inventory.ReserveRequest{}
	confirmed := map[string]bool{}
	lateConf := map[string]bool{}
	soldOut := 0
	for _, o := range outs {
		for _, err := range o.bad {
			t.Errorf("unexpected error: %v", err)
		}
		for id, r := range o.reserved {
			reserved[id] = r
		}
		for id := range o.confirmed {
			confirmed[id] = true
		}
		for id := range o.lateConf {
			lateConf[id] = true
		}
		soldOut += o.soldOut
	}
	if t.Failed() {
		t.FailNow()
	}
	if soldOut == 0 {
		t.Fatalf("no reserve was refused as sold out: demand never exceeded supply, the test proves nothing")
	}
	// Each expiry was released exactly once, and never a paid one.
	expiredOnce := map[string]bool{}
	for _, ids := range expired {
		for _, id := range ids {
			if expiredOnce[id] {
				t.Fatalf("Expire released %q twice", id)
			}
			if confirmed[id] {
				t.Fatalf("Expire released %q, which was confirmed", id)
			}
			if _, ok := reserved[id]; !ok {
				t.Fatalf("Expire released %q, which was never reserved", id)
			}
			expiredOnce[id] = true
		}
	}
	checkTotals(t, s, reserved, map[string]int64{pool: stressSupply})
	for id := range confirmed {
		if r, err := s.Reservation(ctx, id); err != nil || r.State != inventory.StatePaid {
			t.Fatalf("confirmed %q is %v, %v; want paid", id, r.State, err)
		}
	}
	for id := range lateConf {
		if r, err := s.Reservation(ctx, id); err != nil || r.State != inventory.StateReleased {
			t.Fatalf("late-confirmed %q is %v, %v; want released", id, r.State, err)
		}
	}
	// The sale ends: every hold expires, every unit is sold or back.
	clk.Advance(time.Hour)
	for i := 0; ; i++ {
		if i > stressGoroutines*attempts {
			t.Fatal("Expire does not run dry")
		}
		rs, err := s.Expire(ctx, clk.Now(), 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
	}
	p := checkTotals(t, s, reserved, map[string]int64{pool: stressSupply})[pool]
	if p.Held != 0 || p.Available+p.Sold != stressSupply {
		t.Fatalf("after the sale: %+v; want no holds and every unit sold or available", p)
	}
	if p.Sold == 0 {
		t.Fatalf("after the sale: nothing sold: %+v", p)
	}
}

// checkTotals compares the pools with the reservations: each pool's held
// and sold units equal the sum over held and paid reservations, available
// is the rest of supplied, every reserve that succeeded is stored and
// nothing else, and no user is over a limit.
func checkTotals(t *testing.T, s inventory.Store, reserved map[string]inventory.ReserveRequest, supplied map[string]int64) map[string]inventory.Pool {
	t.Helper()
	ctx := context.Background()
	held := map[string]int64{}
	sold := map[string]int64{}
	perUser := map[[2]string]int64{}
	limits := map[[2]string]int64{}
	seen := map[string]bool{}
	for _, st := range []inventory.State{inventory.StateHeld, inventory.StatePaid, inventory.StateReleased} {
		for _, r := range scanAll(t, s, st) {
			want, ok := reserved[r.ID]
			if !ok {
				t.Fatalf("store has reservation %q that no Reserve acknowledged", r.ID)
			}
			if seen[r.ID] {
				t.Fatalf("Scan returned %q twice", r.ID)
			}
			seen[r.ID] = true
			if !inventory.SameRequest(&r, &want) {
				t.Fatalf("stored %+v differs from request %+v", r, want)
			}
			for _, l := range r.Lines {
				k := [2]string{l.Pool, r.User}
				switch st {
				case inventory.StateHeld:
					held[l.Pool] += l.Quantity
					perUser[k] += l.Quantity
				case inventory.StatePaid:
					sold[l.Pool] += l.Quantity
					perUser[k] += l.Quantity
				}
				if l.Limit > 0 && (limits[k] == 0 || l.Limit < limits[k]) {
					limits[k] = l.Limit
				}
			}
		}
	}
	if len(seen) != len(reserved) {
		t.Fatalf("store has %d reservations; %d reserves succeeded", len(seen), len(reserved))
	}
	for k, n := range perUser {
		if lim := limits[k]; lim > 0 && n > lim {
			t.Fatalf("user %q has %d live units in %q; limit %d", k[1], n, k[0], lim)
		}
	}
	pools := map[string]inventory.Pool{}
	for id, sup := range supplied {
		p, err := s.Pool(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if p.Held != held[id] || p.Sold != sold[id] || p.Supplied != sup ||
			p.Available != sup-held[id]-sold[id] || p.Short != 0 {
			t.Fatalf("Pool(%q) = %+v; reservations hold %d and sold %d of %d", id, p, held[id], sold[id], sup)
		}
		pools[id] = p
	}
	return pools
}

func stressMultiLine(t *testing.T, f Factory) {
	clk := newClock()
	s := f(t, inventory.Options{Now: clk.Now})
	ctx := context.Background()
	supplied := map[string]int64{"ml:a": 100, "ml:b": 60, "ml:c": 80}
	names := []string{"ml:a", "ml:b", "ml:c"}
	for id, n := range supplied {
		if err := s.CreatePool(ctx, id, n); err != nil {
			t.Fatal(err)
		}
	}
	const goroutines = 32
	attempts := 100
	if testing.Short() {
		attempts = 40
	}
	outs := make([]*outcome, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		outs[g] = newOutcome()
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := outs[g]
			rng := rand.New(rand.NewPCG(uint64(g), 11))
			for i := range attempts {
				var lines []inventory.Line
				for _, j := range rng.Perm(3)[:1+rng.IntN(3)] {
					lines = append(lines, inventory.Line{Pool: names[j], Quantity: 1 + rng.Int64N(3)})
				}
				r := inventory.ReserveRequest{ID: fmt.Sprintf("ml:g%02d-%03d", g, i), User: fmt.Sprintf("u%d", g), Lines: lines, TTL: time.Minute}
				_, err := s.Reserve(ctx, r)
				switch {
				case err == nil:
					o.reserved[r.ID] = r
				case errors.Is(err, inventory.ErrSoldOut):
					o.soldOut++
					continue
				default:
					o.bad = append(o.bad, fmt.Errorf("Reserve(%s): %w", r.ID, err))
					continue
				}
				switch rng.IntN(3) {
				case 0:
					if _, err := s.Confirm(ctx, r.ID); err != nil {
						o.bad = append(o.bad, fmt.Errorf("Confirm(%s): %w", r.ID, err))
					}
				case 1:
					if _, err := s.Release(ctx, r.ID); err != nil {
						o.bad = append(o.bad, fmt.Errorf("Release(%s): %w", r.ID, err))
					}
				}
			}
		}()
	}
	wg.Wait()
	reserved := map[string]inventory.ReserveRequest{}
	soldOut := 0
	for _, o := range outs {
		for _, err := range o.bad {
			t.Errorf("unexpected error: %v", err)
		}
		for id, r := range o.reserved {
			reserved[id] = r
		}
		soldOut += o.soldOut
	}
	if t.Failed() {
		t.FailNow()
	}
	if soldOut == 0 {
		t.Fatal("no multi-line reserve was refused: the test proves nothing")
	}
	checkTotals(t, s, reserved, supplied)
}
