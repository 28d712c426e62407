package engine_test

import (
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/inventory"
)

// TestRetention: the sweeper forgets released reservations once their hold
// deadline is ReservationRetention old. Paid ones, their orders and the
// stock counts stay as they were.
func TestRetention(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, func(o *engine.Options) { o.ReservationRetention = 2 * time.Hour })
			env.sale("fs1", 10, 0)
			reserve := func(user string) engine.Reservation {
				t.Helper()
				r, err := env.e.ReserveFlash(env.ctx, attempt(user), "fs1", 1, "g1")
				if err != nil {
					t.Fatalf("ReserveFlash(%s): %v", user, err)
				}
				return r
			}
			paid, cancelled, abandoned := reserve("u1"), reserve("u2"), reserve("u3")
			if _, err := env.e.Pay(env.ctx, "u1", paid.ReservationID, "p1"); err != nil {
				t.Fatal(err)
			}
			if _, err := env.e.Cancel(env.ctx, "u2", cancelled.ReservationID); err != nil {
				t.Fatal(err)
			}
			env.clock.Advance(61 * time.Second)
			env.sweep() // releases the abandoned hold
			state := func(user, id string) string {
				t.Helper()
				r, err := env.e.Reservation(env.ctx, user, id)
				if isErr(err, engine.ErrNotFound) {
					return "gone"
				}
				if err != nil {
					t.Fatalf("Reservation(%s): %v", id, err)
				}
				return r.State
			}
			if s := state("u3", abandoned.ReservationID); s != "released" {
				t.Fatalf("abandoned hold after its deadline = %s; want released", s)
			}
			// Inside the retention window nothing is forgotten.
			env.clock.Advance(2*time.Hour - 2*time.Second)
			env.sweep()
			if s := state("u2", cancelled.ReservationID); s != "released" {
				t.Fatalf("cancelled inside the retention window = %s; want released", s)
			}
			env.clock.Advance(time.Minute)
			env.sweep()
			for user, id := range map[string]string{"u2": cancelled.ReservationID, "u3": abandoned.ReservationID} {
				if s := state(user, id); s != "gone" {
					t.Fatalf("released reservation %s past retention = %s; want gone", id, s)
				}
			}
			if s := state("u1", paid.ReservationID); s != "paid" {
				t.Fatalf("paid reservation past retention = %s; want paid", s)
			}
			if err := env.e.FlushOrders(env.ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := env.e.Order(env.ctx, "u1", engine.OrderID(paid.ReservationID)); err != nil {
				t.Fatalf("order of the paid reservation: %v", err)
			}
			// The sale ended an hour ago and was drained; one unit is sold.
			p := env.pool("s1:fs:fs1")
			if p.Sold != 1 || p.Held != 0 || p.Available != 0 {
				t.Fatalf("sale pool = %+v; want 1 sold, nothing held or left", p)
			}
			rel, _, err := env.store.Scan(env.ctx, inventory.StateReleased, "", 10)
			if err != nil || len(rel) != 0 {
				t.Fatalf("released reservations left = %v, %v; want none", rel, err)
			}
		})
	}
}

// TestRetentionKeepAll: a negative retention keeps every reservation.
func TestRetentionKeepAll(t *testing.T) {
	env := openEnv(t, testBackends()[0], func(o *engine.Options) { o.ReservationRetention = -1 })
	env.sale("fs1", 10, 0)
	r, err := env.e.ReserveFlash(env.ctx, attempt("u1"), "fs1", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.e.Cancel(env.ctx, "u1", r.ReservationID); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(1000 * time.Hour)
	env.sweep()
	if got, err := env.e.Reservation(env.ctx, "u1", r.ReservationID); err != nil || got.State != "released" {
		t.Fatalf("Reservation after 1000h with retention off = %+v, %v; want released", got, err)
	}
}
