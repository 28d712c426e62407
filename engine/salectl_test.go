package engine_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

func (env *testEnv) control(kind, id, action string) engine.SaleAdmin {
	env.t.Helper()
	v, err := env.e.ControlSale(env.ctx, kind, id, action)
	if err != nil {
		env.t.Fatalf("ControlSale(%s %s %s): %v", kind, id, action, err)
	}
	return v
}

func (env *testEnv) reserve(user, sale string) engine.Reservation {
	env.t.Helper()
	r, err := env.e.ReserveFlash(env.ctx, attempt(user), sale, 1, "")
	if err != nil {
		env.t.Fatalf("ReserveFlash(%s, %s): %v", user, sale, err)
	}
	return r
}

// TestSaleControlFlash: a paused sale refuses new reservations from memory
// (40902) while its holds may still be paid; a resume sells again; an end
// refuses pause and resume (40903), repeats answer the sale as is, and once
// the last hold resolves every unsold unit is back on the listing (law 2),
// with law 1 and exact totals all along.
func TestSaleControlFlash(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			env.sale("fs1", 10, 0)
			r1, r2, r3 := env.reserve("u1", "fs1"), env.reserve("u2", "fs1"), env.reserve("u3", "fs1")

			v := env.control(engine.SaleKindFlash, "fs1", engine.SaleActionPause)
			if v.Status != "paused" || v.SaleID != "fs1" || v.Supplied != 10 || v.Held != 3 || v.Remaining != 7 {
				t.Fatalf("paused sale = %+v", v)
			}
			_, err := env.e.ReserveFlash(env.ctx, attempt("u9"), "fs1", 1, "")
			wantErr(t, "reserve while paused", err, engine.ErrNotActive)
			wantErr(t, "reserve while paused", err, engine.ErrShed) // from memory
			if v := env.control(engine.SaleKindFlash, "fs1", engine.SaleActionPause); v.Status != "paused" {
				t.Fatalf("pause again: %+v", v)
			}
			if fs, _ := env.e.FlashSale(env.ctx, "fs1"); fs.Status != "paused" {
				t.Fatalf("FlashSale status = %q; want paused", fs.Status)
			}
			// A hold made before the pause is paid.
			if _, err := env.e.Pay(env.ctx, "u1", r1.ReservationID, "p1"); err != nil {
				t.Fatalf("Pay while paused: %v", err)
			}
			env.sweep() // a paused sale keeps its units
			if p := env.pool("s1:fs:fs1"); p.Available != 7 {
				t.Fatalf("paused sale pool = %+v; want 7 available", p)
			}

			if v := env.control(engine.SaleKindFlash, "fs1", engine.SaleActionResume); v.Status != "active" {
				t.Fatalf("resumed sale = %+v", v)
			}
			r4 := env.reserve("u4", "fs1")

			v = env.control(engine.SaleKindFlash, "fs1", engine.SaleActionEnd)
			if v.Status != "ended" || v.EndedAt == nil || v.Remaining != 0 || v.Held != 3 || v.Sold != 1 {
				t.Fatalf("ended sale = %+v", v)
			}
			// The unreserved units went back at once.
			if p := env.pool("s1:l:k1"); p.Available != 1000-4 {
				t.Fatalf("listing after end = %+v; want %d available", p, 1000-4)
			}
			_, err = env.e.ReserveFlash(env.ctx, attempt("u9"), "fs1", 1, "")
			wantErr(t, "reserve after end", err, engine.ErrNotActive)
			for _, a := range []string{engine.SaleActionPause, engine.SaleActionResume} {
				_, err := env.e.ControlSale(env.ctx, engine.SaleKindFlash, "fs1", a)
				wantErr(t, a+" after end", err, engine.ErrBadState)
			}
			if v := env.control(engine.SaleKindFlash, "fs1", engine.SaleActionEnd); v.Status != "ended" {
				t.Fatalf("end again: %+v", v)
			}
			// The holds resolve: one paid, one cancelled, one expires.
			if _, err := env.e.Pay(env.ctx, "u2", r2.ReservationID, "p2"); err != nil {
				t.Fatalf("Pay after end: %v", err)
			}
			if _, err := env.e.Cancel(env.ctx, "u3", r3.ReservationID); err != nil {
				t.Fatal(err)
			}
			env.clock.Advance(61 * time.Second)
			env.sweep()
			if _, err := env.e.Pay(env.ctx, "u4", r4.ReservationID, "p4"); !isErr(err, engine.ErrBadState) {
				t.Fatalf("Pay after the hold expired: %v; want bad state", err)
			}
			env.sweep()
			if p := env.pool("s1:fs:fs1"); p.Held != 0 || p.Available != 0 || p.Sold != 2 {
				t.Fatalf("sale pool at the end = %+v; want 2 sold, nothing else", p)
			}
			if p := env.pool("s1:l:k1"); p.Available != 1000-2 {
				t.Fatalf("listing at the end = %+v; want %d available", p, 1000-2)
			}
			if err := env.e.FlushOrders(env.ctx); err != nil {
				t.Fatal(err)
			}
			rep, err := env.e.Reconcile(env.ctx)
			if err != nil || !rep.OK {
				t.Fatalf("Reconcile = %+v, %v", rep, err)
			}
			list, more, err := env.e.AdminSales(env.ctx, engine.SaleKindFlash)
			if err != nil || more || len(list) != 1 || list[0].Status != "ended" || list[0].Sold != 2 {
				t.Fatalf("AdminSales = %+v, %v, %v", list, more, err)
			}
			_, err = env.e.AdminSale(env.ctx, engine.SaleKindFlash, "nope")
			wantErr(t, "AdminSale(nope)", err, engine.ErrNotFound)
			_, err = env.e.ControlSale(env.ctx, engine.SaleKindFlash, "nope", engine.SaleActionPause)
			wantErr(t, "pause nope", err, engine.ErrNotFound)
		})
	}
}

// TestSaleControlGroup: a paused deal refuses new teams and joins; an
// ended deal's forming team fails at its deadline and every unit is back
// on the listing.
func TestSaleControlGroup(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			env.deal("gb1", 2, 4, 0)
			tm, err := env.e.OpenTeam(env.ctx, attempt("u1"), "gb1", "")
			if err != nil {
				t.Fatal(err)
			}
			if v := env.control(engine.SaleKindGroup, "gb1", engine.SaleActionPause); v.Status != "paused" || v.DealID != "gb1" || v.Held != 1 {
				t.Fatalf("paused deal = %+v", v)
			}
			_, err = env.e.OpenTeam(env.ctx, attempt("u2"), "gb1", "")
			wantErr(t, "open while paused", err, engine.ErrNotActive)
			_, err = env.e.JoinTeam(env.ctx, attempt("u2"), "gb1", tm.TeamID)
			wantErr(t, "join while paused", err, engine.ErrNotActive)
			env.control(engine.SaleKindGroup, "gb1", engine.SaleActionResume)
			if _, err := env.e.OpenTeam(env.ctx, attempt("u3"), "gb1", ""); err != nil {
				t.Fatal(err)
			}
			if v := env.control(engine.SaleKindGroup, "gb1", engine.SaleActionEnd); v.Status != "ended" || v.Held != 2 {
				t.Fatalf("ended deal = %+v", v)
			}
			_, err = env.e.JoinTeam(env.ctx, attempt("u2"), "gb1", tm.TeamID)
			wantErr(t, "join after end", err, engine.ErrNotActive)
			env.clock.Advance(11 * time.Minute)
			env.sweep()
			env.sweep()
			if p := env.pool("s1:gb:gb1"); p.Held != 0 || p.Available != 0 || p.Sold != 0 {
				t.Fatalf("deal pool at the end = %+v", p)
			}
			if p := env.pool("s1:l:k1"); p.Available != 1000 {
				t.Fatalf("listing at the end = %+v; want 1000 available", p)
			}
		})
	}
}

// TestSalePauseConcurrent: what a pause guarantees on its node. Many
// buyers reserve while the sale is paused: once ControlSale returns, the
// sale's held units never change again (the reserves already past their
// checks finished before it returned), every reserve that starts after
// it is refused, and every success is a held unit (law 1).
func TestSalePauseConcurrent(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			env.sale("fs1", 500, 0)
			var ok atomic.Int64
			var paused atomic.Bool
			var wg sync.WaitGroup
			for g := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						after := paused.Load()
						_, err := env.e.ReserveFlash(env.ctx, attempt(fmt.Sprintf("u%d-%d", g, i)), "fs1", 1, "")
						switch {
						case err == nil:
							ok.Add(1)
							if after {
								t.Errorf("a reserve that started after the pause returned succeeded")
							}
						case isErr(err, engine.ErrNotActive):
							if after {
								return
							}
						case isErr(err, engine.ErrSoldOut):
							return
						default:
							t.Errorf("ReserveFlash: %v", err)
							return
						}
					}
				}()
			}
			for ok.Load() < 50 {
				time.Sleep(time.Millisecond)
			}
			env.control(engine.SaleKindFlash, "fs1", engine.SaleActionPause)
			heldAtPause := env.pool("s1:fs:fs1").Held
			paused.Store(true)
			wg.Wait()
			p := env.pool("s1:fs:fs1")
			if p.Held != heldAtPause || p.Held != ok.Load() || p.Held+p.Sold > p.Supplied {
				t.Fatalf("pool %+v after the pause; held %d when it returned, %d reserves succeeded", p, heldAtPause, ok.Load())
			}
		})
	}
}

// TestNodesSeePause: a pause, resume or end on one node is applied by the
// other at its next sweep, and refused there from memory.
func TestNodesSeePause(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			a, b, _, clock := twoNodes(t, backend)
			env := &testEnv{t: t, clock: clock, e: a, ctx: t.Context()}
			if _, err := a.LoadCatalog(env.ctx, testCatalog()); err != nil {
				t.Fatal(err)
			}
			env.sale("fs1", 5, 0)
			if _, err := b.ReserveFlash(env.ctx, attempt("u1"), "fs1", 1, ""); err != nil {
				t.Fatalf("node b: %v", err)
			}
			env.control(engine.SaleKindFlash, "fs1", engine.SaleActionPause)
			if err := b.Sweep(env.ctx); err != nil {
				t.Fatal(err)
			}
			_, err := b.ReserveFlash(env.ctx, attempt("u2"), "fs1", 1, "")
			wantErr(t, "node b after the pause", err, engine.ErrNotActive)
			wantErr(t, "node b after the pause", err, engine.ErrShed)
			if fs, _ := b.FlashSale(env.ctx, "fs1"); fs.Status != "paused" {
				t.Fatalf("node b status = %q", fs.Status)
			}
			env.control(engine.SaleKindFlash, "fs1", engine.SaleActionResume)
			if err := b.Sweep(env.ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := b.ReserveFlash(env.ctx, attempt("u3"), "fs1", 1, ""); err != nil {
				t.Fatalf("node b after the resume: %v", err)
			}
			// The other way round: b ends, a follows.
			if _, err := b.ControlSale(env.ctx, engine.SaleKindFlash, "fs1", engine.SaleActionEnd); err != nil {
				t.Fatal(err)
			}
			if err := a.Sweep(env.ctx); err != nil {
				t.Fatal(err)
			}
			_, err = a.ReserveFlash(env.ctx, attempt("u4"), "fs1", 1, "")
			wantErr(t, "node a after the end", err, engine.ErrNotActive)
			_, err = a.ControlSale(env.ctx, engine.SaleKindFlash, "fs1", engine.SaleActionResume)
			wantErr(t, "node a resume after the end", err, engine.ErrBadState)
		})
	}
}
