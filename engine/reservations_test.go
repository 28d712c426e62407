package engine_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

// TestLifecycleHammer: many buyers reserve, then pay, cancel or walk away.
// Every paid reservation has exactly one order (law 4), every abandoned
// hold is released by the sweeper (law 2) and units left at the end of the
// sale go back to the listing.
func TestLifecycleHammer(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			const qty, users = 120, 96
			env.sale("fs1", qty, 3)
			var paid, cancelled, abandoned atomic.Int64
			var wg sync.WaitGroup
			for u := range users {
				wg.Add(1)
				go func() {
					defer wg.Done()
					user := fmt.Sprint("u", u)
					for i := range 3 {
						r, err := env.e.ReserveFlash(env.ctx, attempt(user), "fs1", 1, "g1")
						if err != nil {
							if !isErr(err, engine.ErrSoldOut) && !isErr(err, engine.ErrLimitExceeded) {
								t.Errorf("ReserveFlash: %v", err)
							}
							return
						}
						switch (u + i) % 3 {
						case 0:
							pid := "pay-" + r.ReservationID
							if _, err := env.e.Pay(env.ctx, user, r.ReservationID, pid); err != nil {
								t.Errorf("Pay: %v", err)
								return
							}
							// A retried notification is fine.
							if _, err := env.e.Pay(env.ctx, user, r.ReservationID, pid); err != nil {
								t.Errorf("Pay again: %v", err)
								return
							}
							paid.Add(1)
						case 1:
							if _, err := env.e.Cancel(env.ctx, user, r.ReservationID); err != nil {
								t.Errorf("Cancel: %v", err)
								return
							}
							cancelled.Add(1)
						default:
							abandoned.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			p := env.pool("s1:fs:fs1")
			if p.Sold != paid.Load() || p.Held != abandoned.Load() {
				t.Fatalf("sale pool %+v; want sold %d held %d", p, paid.Load(), abandoned.Load())
			}
			env.clock.Advance(61 * time.Second)
			env.sweep()
			p = env.pool("s1:fs:fs1")
			if p.Held != 0 || p.Sold != paid.Load() || p.Available != qty-paid.Load() {
				t.Fatalf("after expiry: %+v; want held 0 sold %d", p, paid.Load())
			}
			if rem, _ := env.e.SaleRemaining("fs1"); rem != qty-paid.Load() {
				t.Fatalf("SaleRemaining = %d; want %d", rem, qty-paid.Load())
			}
			if err := env.e.FlushOrders(env.ctx); err != nil {
				t.Fatal(err)
			}
			st, err := env.e.Stats(env.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Orders.Written != paid.Load() {
				t.Fatalf("orders written %d; want %d", st.Orders.Written, paid.Load())
			}
			// The sale ends: unsold units go back to the listing.
			env.clock.Advance(time.Hour)
			env.sweep()
			p = env.pool("s1:fs:fs1")
			if p.Available != 0 || p.Held != 0 {
				t.Fatalf("after the sale: %+v; want empty", p)
			}
			l := env.pool("s1:l:k1")
			if l.Available != 1000-paid.Load() {
				t.Fatalf("listing after the sale: %+v; want %d available", l, 1000-paid.Load())
			}
			fs, err := env.e.FlashSale(env.ctx, "fs1")
			if err != nil || fs.Status != "ended" {
				t.Fatalf("FlashSale = %+v, %v; want ended", fs, err)
			}
		})
	}
}

// TestPayStates checks the reservation state machine as the API shows it.
func TestPayStates(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	env.sale("fs1", 10, 0)
	r, err := env.e.ReserveFlash(env.ctx, attempt("u1"), "fs1", 2, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Amount != 19800 || r.GuideID != "g1" || r.State != "held" || r.Kind != "flash" {
		t.Fatalf("reservation = %+v", r)
	}
	_, err = env.e.Reservation(env.ctx, "u2", r.ReservationID)
	wantErr(t, "Reservation by another user", err, engine.ErrForbidden)
	_, err = env.e.Pay(env.ctx, "u2", r.ReservationID, "p1")
	wantErr(t, "Pay by another user", err, engine.ErrForbidden)
	_, err = env.e.Pay(env.ctx, "u1", r.ReservationID, "")
	wantErr(t, "Pay without payment id", err, engine.ErrInvalid)
	_, err = env.e.Reservation(env.ctx, "u1", "s1:nope")
	wantErr(t, "unknown reservation", err, engine.ErrNotFound)

	pr, err := env.e.Pay(env.ctx, "u1", r.ReservationID, "p1")
	if err != nil || pr.State != "paid" || pr.PaymentID != "p1" || pr.OrderID != engine.OrderID(r.ReservationID) {
		t.Fatalf("Pay = %+v, %v", pr, err)
	}
	if _, err := env.e.Pay(env.ctx, "u1", r.ReservationID, "p1"); err != nil {
		t.Fatalf("Pay again with the same payment: %v", err)
	}
	_, err = env.e.Pay(env.ctx, "u1", r.ReservationID, "p2")
	wantErr(t, "Pay with another payment", err, engine.ErrBadState)
	_, err = env.e.Cancel(env.ctx, "u1", r.ReservationID)
	wantErr(t, "Cancel a paid one", err, engine.ErrBadState)
	if err := env.e.FlushOrders(env.ctx); err != nil {
		t.Fatal(err)
	}
	got, err := env.e.Reservation(env.ctx, "u1", r.ReservationID)
	if err != nil || got.OrderID != pr.OrderID || got.PaymentID != "p1" {
		t.Fatalf("Reservation = %+v, %v", got, err)
	}
	o, err := env.e.Order(env.ctx, "u1", pr.OrderID)
	if err != nil || o.Amount != 19800 || o.GuideID != "g1" || o.StoreID != "s1" || o.State != "created" || o.PaymentID != "p1" {
		t.Fatalf("Order = %+v, %v", o, err)
	}
	_, err = env.e.Order(env.ctx, "u2", pr.OrderID)
	wantErr(t, "Order of another user", err, engine.ErrForbidden)
	os, err := env.e.UserOrders(env.ctx, "u1", 10)
	if err != nil || len(os) != 1 {
		t.Fatalf("UserOrders = %+v, %v", os, err)
	}

	// Cancel, then pay: bad state.
	r2, err := env.e.ReserveFlash(env.ctx, attempt("u1"), "fs1", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := env.e.Cancel(env.ctx, "u1", r2.ReservationID)
	if err != nil || c.State != "released" {
		t.Fatalf("Cancel = %+v, %v", c, err)
	}
	_, err = env.e.Pay(env.ctx, "u1", r2.ReservationID, "p3")
	wantErr(t, "Pay after cancel", err, engine.ErrBadState)

	// Expire, then pay: bad state, and the unit is back.
	r3, err := env.e.ReserveFlash(env.ctx, attempt("u1"), "fs1", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(61 * time.Second)
	_, err = env.e.Pay(env.ctx, "u1", r3.ReservationID, "p4")
	wantErr(t, "Pay after expiry", err, engine.ErrBadState)
	if p := env.pool("s1:fs:fs1"); p.Held != 0 || p.Sold != 2 || p.Available != 8 {
		t.Fatalf("pool = %+v", p)
	}

	// Not active, bad input.
	_, err = env.e.ReserveFlash(env.ctx, attempt("u1"), "nope", 1, "")
	wantErr(t, "unknown sale", err, engine.ErrNotFound)
	_, err = env.e.ReserveFlash(env.ctx, attempt("u1"), "fs1", 0, "")
	wantErr(t, "zero quantity", err, engine.ErrInvalid)
	_, err = env.e.ReserveFlash(env.ctx, attempt("u1"), "fs1", 1, "nobody")
	wantErr(t, "unknown guide", err, engine.ErrInvalid)
	env.clock.Advance(time.Hour)
	_, err = env.e.ReserveFlash(env.ctx, attempt("u1"), "fs1", 1, "")
	wantErr(t, "ended sale", err, engine.ErrNotActive)
}

// TestPayRace: concurrent payments of one reservation: with one payment id
// all succeed, with different ids exactly one does; one order either way.
func TestPayRace(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			env.sale("fs1", 10, 0)
			for round, samePayment := range []bool{true, false} {
				r, err := env.e.ReserveFlash(env.ctx, attempt("u1"), "fs1", 1, "")
				if err != nil {
					t.Fatal(err)
				}
				var ok, bad atomic.Int64
				var wg sync.WaitGroup
				for i := range 16 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						pid := "p"
						if !samePayment {
							pid = fmt.Sprint("p", i)
						}
						_, err := env.e.Pay(env.ctx, "u1", r.ReservationID, pid)
						switch {
						case err == nil:
							ok.Add(1)
						case isErr(err, engine.ErrBadState):
							bad.Add(1)
						default:
							t.Errorf("Pay: %v", err)
						}
					}()
				}
				wg.Wait()
				if samePayment && ok.Load() != 16 || !samePayment && ok.Load() != 1 {
					t.Fatalf("same payment %v: %d paid, %d refused", samePayment, ok.Load(), bad.Load())
				}
				if err := env.e.FlushOrders(env.ctx); err != nil {
					t.Fatal(err)
				}
				st, _ := env.e.Stats(env.ctx)
				if st.Orders.Written != int64(round+1) || st.Sales["fs1"].Sold != int64(round+1) {
					t.Fatalf("written %d, sale %+v; want %d", st.Orders.Written, st.Sales["fs1"], round+1)
				}
			}
		})
	}
}
