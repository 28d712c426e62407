package engine_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

func (env *testEnv) deal(id string, size, qty, virtualMin int64) engine.GroupDeal {
	env.t.Helper()
	now := env.clock.Now()
	d, err := env.e.CreateGroupDeal(env.ctx, engine.GroupDealSpec{
		DealID: id, StoreID: "s1", SKUID: "k1", Price: 29900, TeamSize: size, Quantity: qty,
		TeamWindowSeconds: 600, StartsAt: now, EndsAt: now.Add(2 * time.Hour), VirtualMinPaid: virtualMin,
	})
	if err != nil {
		env.t.Fatalf("CreateGroupDeal(%s): %v", id, err)
	}
	return d
}

// TestGroupFormedAndFailed: a team whose members all pay forms; a team
// short of members fails at its deadline, its held units go back and its
// paid members are refunded with their orders marked refunded.
func TestGroupFormedAndFailed(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			env.deal("gb1", 3, 30, 0)
			pay := func(user, resID string) {
				t.Helper()
				if _, err := env.e.Pay(env.ctx, user, resID, "pay-"+resID); err != nil {
					t.Fatalf("Pay(%s): %v", user, err)
				}
			}
			// Team A forms.
			a, err := env.e.OpenTeam(env.ctx, attempt("a1"), "gb1", "g1")
			if err != nil || a.State != "forming" || len(a.Members) != 1 || a.ReservationID == "" {
				t.Fatalf("OpenTeam = %+v, %v", a, err)
			}
			pay("a1", a.ReservationID)
			for _, u := range []string{"a2", "a3"} {
				j, err := env.e.JoinTeam(env.ctx, attempt(u), "gb1", a.TeamID)
				if err != nil {
					t.Fatalf("JoinTeam(%s): %v", u, err)
				}
				pay(u, j.ReservationID)
			}
			_, err = env.e.JoinTeam(env.ctx, attempt("a4"), "gb1", a.TeamID)
			wantErr(t, "join a full team", err, engine.ErrBadState)
			ta, err := env.e.Team(env.ctx, "gb1", a.TeamID)
			if err != nil || ta.State != "formed" {
				t.Fatalf("Team A = %+v, %v; want formed", ta, err)
			}
			// Team B: the leader and one member pay, one member holds.
			bt, err := env.e.OpenTeam(env.ctx, attempt("b1"), "gb1", "")
			if err != nil {
				t.Fatal(err)
			}
			pay("b1", bt.ReservationID)
			jb, err := env.e.JoinTeam(env.ctx, attempt("b2"), "gb1", bt.TeamID)
			if err != nil {
				t.Fatal(err)
			}
			_ = jb
			if p := env.pool("s1:gb:gb1"); p.Sold != 4 || p.Held != 1 {
				t.Fatalf("deal pool %+v; want sold 4 held 1", p)
			}
			env.clock.Advance(601 * time.Second)
			env.sweep()
			tb, err := env.e.Team(env.ctx, "gb1", bt.TeamID)
			if err != nil || tb.State != "failed" {
				t.Fatalf("Team B = %+v, %v; want failed", tb, err)
			}
			if p := env.pool("s1:gb:gb1"); p.Sold != 3 || p.Held != 0 || p.Available != 27 {
				t.Fatalf("deal pool after the deadline %+v; want sold 3 held 0 available 27", p)
			}
			if err := env.e.FlushOrders(env.ctx); err != nil {
				t.Fatal(err)
			}
			o, err := env.e.Order(env.ctx, "b1", engine.OrderID(bt.ReservationID))
			if err != nil || o.State != "refunded" || o.Kind != "group" || o.TeamID != bt.TeamID {
				t.Fatalf("order of b1 = %+v, %v; want refunded", o, err)
			}
			oa, err := env.e.Order(env.ctx, "a1", engine.OrderID(a.ReservationID))
			if err != nil || oa.State != "created" || oa.GuideID != "g1" {
				t.Fatalf("order of a1 = %+v, %v; want created, guide g1", oa, err)
			}
			// A second sweep changes nothing.
			env.sweep()
			if p := env.pool("s1:gb:gb1"); p.Sold != 3 || p.Available != 27 {
				t.Fatalf("deal pool after a second sweep %+v", p)
			}
			_, err = env.e.JoinTeam(env.ctx, attempt("b9"), "gb1", bt.TeamID)
			wantErr(t, "join a failed team", err, engine.ErrBadState)
		})
	}
}

// TestGroupVirtual: with virtual_min_paid, a team short of members but
// with enough paid ones forms at the deadline.
func TestGroupVirtual(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	env.deal("gb1", 3, 10, 1)
	tm, err := env.e.OpenTeam(env.ctx, attempt("v1"), "gb1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.e.Pay(env.ctx, "v1", tm.ReservationID, "p1"); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(601 * time.Second)
	env.sweep()
	got, err := env.e.Team(env.ctx, "gb1", tm.TeamID)
	if err != nil || got.State != "formed" || !got.Virtual {
		t.Fatalf("Team = %+v, %v; want formed virtually", got, err)
	}
}

// TestGroupRaceLastSeat: many joiners race for the last seats of many
// teams, and for the deal's last units: every team ends with exactly Size
// members, every loser has their unit back, no unit is oversold.
func TestGroupRaceLastSeat(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			env := openEnv(t, b, nil)
			const size, teams, joiners = 3, 8, 12
			// The deal holds fewer units than seats: the last units race too.
			const qty = teams*size - 2
			env.deal("gb1", size, qty, 0)
			ids := make([]string, teams)
			for i := range ids {
				tm, err := env.e.OpenTeam(env.ctx, attempt(fmt.Sprint("lead", i)), "gb1", "")
				if err != nil {
					t.Fatal(err)
				}
				ids[i] = tm.TeamID
			}
			var won atomic.Int64
			var wg sync.WaitGroup
			for i := range teams {
				for j := range joiners {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, err := env.e.JoinTeam(env.ctx, attempt(fmt.Sprint("j", i, "-", j)), "gb1", ids[i])
						switch {
						case err == nil:
							won.Add(1)
						case isErr(err, engine.ErrBadState), isErr(err, engine.ErrSoldOut):
						default:
							t.Errorf("JoinTeam: %v", err)
						}
					}()
				}
			}
			wg.Wait()
			if won.Load() != qty-teams {
				t.Fatalf("%d joined; want %d", won.Load(), qty-teams)
			}
			members := int64(0)
			for _, id := range ids {
				tm, err := env.e.Team(env.ctx, "gb1", id)
				if err != nil {
					t.Fatal(err)
				}
				if len(tm.Members) > size {
					t.Fatalf("team %s has %d members", id, len(tm.Members))
				}
				members += int64(len(tm.Members))
			}
			p := env.pool("s1:gb:gb1")
			if members != qty || p.Held != qty || p.Available != 0 {
				t.Fatalf("members %d, pool %+v; want %d held", members, p, qty)
			}
		})
	}
}

// TestGroupValidation: bad specs and calls are refused and change nothing.
func TestGroupValidation(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	now := env.clock.Now()
	good := engine.GroupDealSpec{DealID: "gb1", StoreID: "s1", SKUID: "k2", Price: 100, TeamSize: 2, Quantity: 4,
		TeamWindowSeconds: 60, StartsAt: now.Add(time.Minute), EndsAt: now.Add(time.Hour)}
	f := func(mut func(*engine.GroupDealSpec), want error) {
		t.Helper()
		s := good
		mut(&s)
		_, err := env.e.CreateGroupDeal(env.ctx, s)
		wantErr(t, fmt.Sprintf("CreateGroupDeal(%+v)", s), err, want)
		if p := env.pool("s1:l:k2"); p.Available != 10 {
			t.Fatalf("listing changed: %+v", p)
		}
	}
	f(func(s *engine.GroupDealSpec) { s.DealID = "" }, engine.ErrInvalid)
	f(func(s *engine.GroupDealSpec) { s.StoreID = "s9" }, engine.ErrNotFound)
	f(func(s *engine.GroupDealSpec) { s.TeamSize = 1 }, engine.ErrInvalid)
	f(func(s *engine.GroupDealSpec) { s.TeamWindowSeconds = 0 }, engine.ErrInvalid)
	f(func(s *engine.GroupDealSpec) { s.VirtualMinPaid = 3 }, engine.ErrInvalid)
	f(func(s *engine.GroupDealSpec) { s.Quantity = 11 }, engine.ErrSoldOut)
	f(func(s *engine.GroupDealSpec) { s.EndsAt = now.Add(-time.Second); s.StartsAt = now.Add(-time.Hour) }, engine.ErrInvalid)
	if _, err := env.e.CreateGroupDeal(env.ctx, good); err != nil {
		t.Fatal(err)
	}
	_, err := env.e.OpenTeam(env.ctx, attempt("u1"), "gb1", "")
	wantErr(t, "OpenTeam before the start", err, engine.ErrNotActive)
	env.clock.Advance(time.Minute)
	_, err = env.e.OpenTeam(env.ctx, attempt("u1"), "nope", "")
	wantErr(t, "OpenTeam of an unknown deal", err, engine.ErrNotFound)
	_, err = env.e.JoinTeam(env.ctx, attempt("u1"), "gb1", "tnope")
	wantErr(t, "JoinTeam of an unknown team", err, engine.ErrNotFound)
	tm, err := env.e.OpenTeam(env.ctx, attempt("u1"), "gb1", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.e.JoinTeam(env.ctx, attempt("u1"), "gb1", tm.TeamID)
	wantErr(t, "joining one's own team", err, engine.ErrBadState)
	// A member who cancels frees the seat.
	j, err := env.e.JoinTeam(env.ctx, attempt("u2"), "gb1", tm.TeamID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.e.Cancel(env.ctx, "u2", j.ReservationID); err != nil {
		t.Fatal(err)
	}
	if _, err := env.e.JoinTeam(env.ctx, attempt("u3"), "gb1", tm.TeamID); err != nil {
		t.Fatalf("join after a cancel: %v", err)
	}
	if p := env.pool("s1:gb:gb1"); p.Held != 2 || p.Available != 2 {
		t.Fatalf("deal pool = %+v", p)
	}
}

// TestGroupVirtualAfterDealDropped: a team whose deadline comes more than
// an hour after its deal ended (the deal is then dropped from memory) is
// still decided with the deal's virtual_min_paid: enough paid members form
// it virtually instead of failing it and refunding them.
func TestGroupVirtualAfterDealDropped(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	now := env.clock.Now()
	if _, err := env.e.CreateGroupDeal(env.ctx, engine.GroupDealSpec{
		DealID: "gbv", StoreID: "s1", SKUID: "k1", Price: 29900, TeamSize: 3, Quantity: 10,
		TeamWindowSeconds: 4 * 3600, StartsAt: now, EndsAt: now.Add(time.Hour), VirtualMinPaid: 1,
	}); err != nil {
		t.Fatal(err)
	}
	tm, err := env.e.OpenTeam(env.ctx, attempt("v1"), "gbv", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.e.Pay(env.ctx, "v1", tm.ReservationID, "p1"); err != nil {
		t.Fatal(err)
	}
	// The deal ends and drains; more than an hour later it leaves memory.
	for range 4 {
		env.clock.Advance(61 * time.Minute)
		env.sweep()
	}
	got, err := env.e.Team(env.ctx, "gbv", tm.TeamID)
	if err != nil || got.State != "formed" || !got.Virtual {
		t.Fatalf("Team = %+v, %v; want formed virtually", got, err)
	}
}
