package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/surge-retail/surge/internal/pebblefail"
	"github.com/surge-retail/surge/inventory"
)

type fakeClock struct{ ms atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ms.Store(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC).UnixMilli())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// state is everything a store shows: every pool and every reservation.
func state(t *testing.T, s inventory.Store, pools ...string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, id := range pools {
		p, err := s.Pool(ctx, id)
		if err != nil {
			t.Fatalf("Pool(%q) = %v", id, err)
		}
		fmt.Fprintf(&b, "%+v\n", p)
	}
	for _, st := range []inventory.State{inventory.StateHeld, inventory.StatePaid, inventory.StateReleased} {
		cursor := ""
		for {
			rs, next, err := s.Scan(ctx, st, cursor, 7)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				fmt.Fprintf(&b, "%s %s %v %s refunded=%v %d..%d %q\n", r.ID, r.User, r.Lines, r.State, r.Refunded,
					r.CreatedAt.UnixMilli(), r.ExpiresAt.UnixMilli(), r.Meta)
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	return b.String()
}

func mustOpen(t *testing.T, dir string, o inventory.PebbleOptions) *inventory.Pebble {
	t.Helper()
	s, err := inventory.OpenPebble(dir, o)
	if err != nil {
		t.Fatalf("OpenPebble = %v", err)
	}
	return s
}

func TestPebbleReopenRebuildsState(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	o := inventory.PebbleOptions{Options: inventory.Options{Now: clk.Now}}
	s := mustOpen(t, dir, o)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	reserve := func(id, user string, ttl time.Duration, lines ...inventory.Line) {
		t.Helper()
		_, err := s.Reserve(ctx, inventory.ReserveRequest{ID: id, User: user, Lines: lines, TTL: ttl, Meta: []byte("m-" + id)})
		must(err)
	}
	must(s.CreatePool(ctx, "s1:a", 20))
	must(s.CreatePool(ctx, "s1:b", 0))
	must(s.CreatePool(ctx, "s1:c", 5))
	_, err := s.SetOnHand(ctx, "s1:b", 9, 4)
	must(err)
	must(s.Move(ctx, "s1:a", "s1:c", 3))
	reserve("s1:held", "u1", time.Minute, inventory.Line{Pool: "s1:a", Quantity: 2, Limit: 3}, inventory.Line{Pool: "s1:b", Quantity: 1})
	reserve("s1:short", "u2", time.Hour, inventory.Line{Pool: "s1:b", Quantity: 4})
	reserve("s1:paid", "u1", time.Minute, inventory.Line{Pool: "s1:a", Quantity: 1, Limit: 3})
	reserve("s1:rel", "u3", time.Minute, inventory.Line{Pool: "s1:c", Quantity: 2})
	reserve("s1:refund", "u3", time.Minute, inventory.Line{Pool: "s1:c", Quantity: 1})
	_, err = s.Confirm(ctx, "s1:paid")
	must(err)
	_, err = s.Release(ctx, "s1:rel")
	must(err)
	_, err = s.Confirm(ctx, "s1:refund")
	must(err)
	_, err = s.Refund(ctx, "s1:refund")
	must(err)
	_, err = s.SetOnHand(ctx, "s1:b", 2, 5) // b becomes short
	must(err)
	n, err := s.Drain(ctx, "s1:c", "s1:a")
	must(err)
	if n != 8 {
		t.Fatalf("Drain = %d; want 8", n)
	}
	pools := []string{"s1:a", "s1:b", "s1:c"}
	before := state(t, s, pools...)
	must(s.Close())

	s = mustOpen(t, dir, o)
	defer s.Close()
	if after := state(t, s, pools...); after != before {
		t.Fatalf("state after reopen:\n%s\nwant:\n%s", after, before)
	}
	// Per-user counts came back: u1 has 3 live units of a (limit 3).
	_, err = s.Reserve(ctx, inventory.ReserveRequest{ID: "s1:more", User: "u1", TTL: time.Minute,
		Lines: []inventory.Line{{Pool: "s1:a", Quantity: 1, Limit: 3}}})
	if !errors.Is(err, inventory.ErrLimitExceeded) {
		t.Fatalf("Reserve over the limit after reopen = %v; want ErrLimitExceeded", err)
	}
	// Idempotency came back.
	r, err := s.Reserve(ctx, inventory.ReserveRequest{ID: "s1:paid", User: "u1", TTL: time.Minute,
		Lines: []inventory.Line{{Pool: "s1:a", Quantity: 1, Limit: 3}}})
	if err != nil || r.State != inventory.StatePaid {
		t.Fatalf("Reserve(existing) after reopen = %+v, %v; want the paid reservation", r, err)
	}
	// Feed seqs came back.
	fr, err := s.SetOnHand(ctx, "s1:b", 50, 5)
	if err != nil || fr.Applied {
		t.Fatalf("SetOnHand(repeated seq) after reopen = %+v, %v; want not applied", fr, err)
	}
	// The expiry index came back: the minute-long hold expires, not the hour.
	clk.Advance(2 * time.Minute)
	rs, err := s.Expire(ctx, clk.Now(), 100)
	if err != nil || len(rs) != 1 || rs[0].ID != "s1:held" {
		t.Fatalf("Expire after reopen = %v, %v; want s1:held", rs, err)
	}
	// Forget is durable: the released reservation is gone after reopen.
	if err := s.Forget(ctx, "s1:rel"); err != nil {
		t.Fatalf("Forget(released) = %v", err)
	}
	if err := s.Forget(ctx, "s1:paid"); !errors.Is(err, inventory.ErrBadState) {
		t.Fatalf("Forget(paid) = %v; want ErrBadState", err)
	}
	// And that expiry is durable too.
	before = state(t, s, pools...)
	must(s.Close())
	s2 := mustOpen(t, dir, o)
	defer s2.Close()
	if after := state(t, s2, pools...); after != before {
		t.Fatalf("state after second reopen:\n%s\nwant:\n%s", after, before)
	}
	if _, err := s2.Reservation(ctx, "s1:rel"); !errors.Is(err, inventory.ErrReservationNotFound) {
		t.Fatalf("Reservation(forgotten) after reopen = %v; want ErrReservationNotFound", err)
	}
}

// TestPebbleCrash reserves from many goroutines, takes a crash image of the
// file system at a random moment (unsynced data partly lost), and reopens
// from it: every reserve acknowledged before the image is there, and the
// totals match the reservations.
func TestPebbleCrash(t *testing.T) {
	for round := range 4 {
		t.Run(fmt.Sprint(round), func(t *testing.T) { crashRound(t, uint64(round), inventory.PebbleOptions{}) })
	}
	// The same with the sync gap taken whenever a commit waits (the default
	// needs 32 waiting, more than these goroutines): batching syncs must
	// not acknowledge anything a crash can lose.
	for round := 4; round < 6; round++ {
		t.Run(fmt.Sprintf("%d-syncgap", round), func(t *testing.T) {
			crashRound(t, uint64(round), inventory.PebbleOptions{WALSyncGap: 250 * time.Microsecond, WALSyncGapCommits: 1})
		})
	}
}

func crashRound(t *testing.T, seed uint64, opts inventory.PebbleOptions) {
	const (
		supply     = 400
		goroutines = 16
		perG       = 40
	)
	rng := rand.New(rand.NewPCG(seed, 1))
	fs := vfs.NewCrashableMem()
	opts.FS = fs
	s := mustOpen(t, "db", opts)
	ctx := context.Background()
	if err := s.CreatePool(ctx, "c:p", supply); err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		acked     = map[string]inventory.State{}
		attempted = map[string]bool{}
		ackCount  atomic.Int64
	)
	cloneAt := int64(50 + rng.IntN(goroutines*perG/2))
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				id := fmt.Sprintf("c:g%02d-%03d", g, i)
				mu.Lock()
				attempted[id] = true
				mu.Unlock()
				_, err := s.Reserve(ctx, inventory.ReserveRequest{ID: id, User: "u" + id, TTL: time.Hour,
					Lines: []inventory.Line{{Pool: "c:p", Quantity: 1}}})
				if errors.Is(err, inventory.ErrSoldOut) {
					continue
				}
				if err != nil {
					t.Errorf("Reserve = %v", err)
					return
				}
				st := inventory.StateHeld
				if i%3 == 0 {
					if _, err := s.Confirm(ctx, id); err != nil {
						t.Errorf("Confirm = %v", err)
						return
					}
					st = inventory.StatePaid
				}
				mu.Lock()
				acked[id] = st
				mu.Unlock()
				ackCount.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
wait:
	for ackCount.Load() < cloneAt {
		select {
		case <-done:
			break wait
		case <-time.After(100 * time.Microsecond):
		}
	}
	// Everything acknowledged before the clone must survive it.
	mu.Lock()
	before := make(map[string]inventory.State, len(acked))
	for id, st := range acked {
		before[id] = st
	}
	mu.Unlock()
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(100), RNG: rand.New(rand.NewPCG(seed, 2))})
	if opts.WALSyncGapCommits == 1 && inventory.SyncGaps(s) == 0 {
		t.Errorf("no WAL sync waited for the gap before the crash: the test did not exercise it")
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	r := mustOpen(t, "db", inventory.PebbleOptions{FS: crashed})
	defer r.Close()
	held, sold := int64(0), int64(0)
	found := 0
	for _, st := range []inventory.State{inventory.StateHeld, inventory.StatePaid, inventory.StateReleased} {
		cursor := ""
		for {
			rs, next, err := r.Scan(ctx, st, cursor, inventory.ScanLimitMax)
			if err != nil {
				t.Fatal(err)
			}
			for _, res := range rs {
				if !attempted[res.ID] {
					t.Fatalf("recovered %q, which was never reserved", res.ID)
				}
				found++
				switch st {
				case inventory.StateHeld:
					held++
				case inventory.StatePaid:
					sold++
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	for id, st := range before {
		res, err := r.Reservation(ctx, id)
		if err != nil {
			t.Fatalf("acknowledged %q lost in the crash: %v", id, err)
		}
		if st == inventory.StatePaid && res.State != inventory.StatePaid {
			t.Fatalf("acknowledged payment of %q lost in the crash: %v", id, res.State)
		}
	}
	p, err := r.Pool(ctx, "c:p")
	if err != nil {
		t.Fatal(err)
	}
	if p.Held != held || p.Sold != sold || p.Available != supply-held-sold || p.Supplied != supply {
		t.Fatalf("Pool after crash = %+v; reservations hold %d and sold %d of %d", p, held, sold, supply)
	}
	t.Logf("acked before clone %d, recovered %d (held %d, paid %d)", len(before), found, held, sold)
}

// TestPebbleSyncErrorIsNotAcknowledged injects a WAL sync error: the reserve
// is refused with ErrUnavailable, nothing changes in memory, later writes
// are refused too, and after a crash the refused reserve is absent while
// everything acknowledged before is intact.
func TestPebbleSyncErrorIsNotAcknowledged(t *testing.T) {
	mem := vfs.NewCrashableMem()
	faults := &pebblefail.WALFaults{}
	s := mustOpen(t, "db", inventory.PebbleOptions{FS: reuseThroughErrorfs{errorfs.Wrap(mem, faults)}})
	ctx := context.Background()
	if err := s.CreatePool(ctx, "e:p", 10); err != nil {
		t.Fatal(err)
	}
	req := func(id string) inventory.ReserveRequest {
		return inventory.ReserveRequest{ID: id, User: "u1", TTL: time.Hour, Lines: []inventory.Line{{Pool: "e:p", Quantity: 2, Limit: 4}}}
	}
	if _, err := s.Reserve(ctx, req("e:ok")); err != nil {
		t.Fatal(err)
	}
	before := state(t, s, "e:p")

	faults.On.Store(true)
	_, err := s.Reserve(ctx, req("e:fail"))
	if !errors.Is(err, inventory.ErrUnavailable) {
		t.Fatalf("Reserve with a failing WAL = %v; want ErrUnavailable", err)
	}
	faults.On.Store(false)
	if after := state(t, s, "e:p"); after != before {
		t.Fatalf("state after the refused reserve:\n%s\nwant:\n%s", after, before)
	}
	if _, err := s.Reservation(ctx, "e:fail"); !errors.Is(err, inventory.ErrReservationNotFound) {
		t.Fatalf("Reservation(refused) = %v; want ErrReservationNotFound", err)
	}
	// The store is failed: writes are refused, memory stays as it was.
	if _, err := s.Reserve(ctx, req("e:later")); !errors.Is(err, inventory.ErrUnavailable) {
		t.Fatalf("Reserve after a WAL failure = %v; want ErrUnavailable", err)
	}
	if _, err := s.Release(ctx, "e:ok"); !errors.Is(err, inventory.ErrUnavailable) {
		t.Fatalf("Release after a WAL failure = %v; want ErrUnavailable", err)
	}
	if _, err := s.SetOnHand(ctx, "e:p", 3, 1); !errors.Is(err, inventory.ErrUnavailable) {
		t.Fatalf("SetOnHand after a WAL failure = %v; want ErrUnavailable", err)
	}
	if _, err := s.Expire(ctx, time.Now().Add(2*time.Hour), 10); !errors.Is(err, inventory.ErrUnavailable) {
		t.Fatalf("Expire after a WAL failure = %v; want ErrUnavailable", err)
	}
	if after := state(t, s, "e:p"); after != before {
		t.Fatalf("state after refused writes:\n%s\nwant:\n%s", after, before)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close after a WAL failure = nil; want the failure reported")
	}
	// What was synced survives; the refused reserve does not.
	r := mustOpen(t, "db", inventory.PebbleOptions{FS: mem.CrashClone(vfs.CrashCloneCfg{})})
	defer r.Close()
	if after := state(t, r, "e:p"); after != before {
		t.Fatalf("state after crash and reopen:\n%s\nwant:\n%s", after, before)
	}
}

// TestPebbleReopenMatchesMemory runs random operations on a pebble store
// and a memory store side by side, reopening pebble every few steps: the
// answers and the whole state must stay equal, so everything memory knows
// survives a restart.
func TestPebbleReopenMatchesMemory(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { reopenMatches(t, seed) })
	}
}

func reopenMatches(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 5))
	clk := newFakeClock()
	o := inventory.Options{Now: clk.Now}
	// Seed 0 reopens as production does, warming the WAL recycler each
	// time; the others skip the warm-up, which is most of a reopen's cost
	// (seconds under -race on a slow machine) and is covered by seed 0
	// and TestPebbleWALWarmup.
	po := inventory.PebbleOptions{Options: o, NoWALWarmup: seed > 0}
	dir := t.TempDir()
	p := mustOpen(t, dir, po)
	defer func() { p.Close() }()
	m := inventory.NewMemory(o)
	ctx := context.Background()
	pools := []string{"r:a", "r:b", "r:c"}
	for _, id := range pools {
		n := rng.Int64N(20)
		if err := p.CreatePool(ctx, id, n); err != nil {
			t.Fatal(err)
		}
		if err := m.CreatePool(ctx, id, n); err != nil {
			t.Fatal(err)
		}
	}
	class := func(err error) string {
		for _, s := range []error{inventory.ErrSoldOut, inventory.ErrLimitExceeded, inventory.ErrBadState,
			inventory.ErrIDConflict, inventory.ErrReservationNotFound, inventory.ErrInvalid} {
			if errors.Is(err, s) {
				return s.Error()
			}
		}
		if err != nil {
			return "other: " + err.Error()
		}
		return "ok"
	}
	nres := 0
	for step := range 300 {
		var op string
		var ep, em error
		id := fmt.Sprintf("r:x%d", rng.IntN(nres+1))
		switch k := rng.IntN(10); k {
		case 0, 1, 2:
			var lines []inventory.Line
			for _, j := range rng.Perm(3)[:1+rng.IntN(2)] {
				lines = append(lines, inventory.Line{Pool: pools[j], Quantity: 1 + rng.Int64N(3), Limit: rng.Int64N(4)})
			}
			req := inventory.ReserveRequest{ID: fmt.Sprintf("r:x%d", nres), User: fmt.Sprintf("u%d", rng.IntN(3)), Lines: lines,
				TTL: time.Duration(1+rng.IntN(3000)) * time.Millisecond, Meta: []byte{byte(step)}}
			op = fmt.Sprintf("Reserve(%v)", req)
			_, ep = p.Reserve(ctx, req)
			_, em = m.Reserve(ctx, req)
			if em == nil {
				nres++
			}
		case 3:
			op = "Confirm " + id
			_, ep = p.Confirm(ctx, id)
			_, em = m.Confirm(ctx, id)
		case 4:
			op = "Release " + id
			_, ep = p.Release(ctx, id)
			_, em = m.Release(ctx, id)
		case 5:
			op = "Refund " + id
			_, ep = p.Refund(ctx, id)
			_, em = m.Refund(ctx, id)
		case 6:
			clk.Advance(time.Duration(rng.IntN(1000)) * time.Millisecond)
			op = "Expire"
			var rp, rm []inventory.Reservation
			rp, ep = p.Expire(ctx, clk.Now(), inventory.ExpireMax)
			rm, em = m.Expire(ctx, clk.Now(), inventory.ExpireMax)
			if len(rp) != len(rm) {
				t.Fatalf("step %d: Expire released %d on pebble, %d on memory", step, len(rp), len(rm))
			}
		case 7:
			from, to, q := pools[rng.IntN(3)], pools[rng.IntN(3)], 1+rng.Int64N(4)
			op = fmt.Sprintf("Move(%s,%s,%d)", from, to, q)
			ep = p.Move(ctx, from, to, q)
			em = m.Move(ctx, from, to, q)
		case 8:
			pool, onHand, seq := pools[rng.IntN(3)], rng.Int64N(25), uint64(rng.IntN(step+2))
			op = fmt.Sprintf("SetOnHand(%s,%d,%d)", pool, onHand, seq)
			_, ep = p.SetOnHand(ctx, pool, onHand, seq)
			_, em = m.SetOnHand(ctx, pool, onHand, seq)
		case 9:
			op = "reopen"
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			p = mustOpen(t, dir, po)
		}
		if class(ep) != class(em) {
			t.Fatalf("step %d %s: pebble %v; memory %v", step, op, ep, em)
		}
		if sp, sm := state(t, p, pools...), state(t, m, pools...); sp != sm {
			t.Fatalf("step %d %s: pebble state\n%s\nmemory state\n%s", step, op, sp, sm)
		}
	}
}

// TestPebbleCloseWhileBusy closes the store under concurrent reserves: each
// reserve either succeeds (and survives reopen) or returns ErrClosed (or
// ErrSoldOut, which bounds the run if Close comes late).
func TestPebbleCloseWhileBusy(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, inventory.PebbleOptions{})
	ctx := context.Background()
	if err := s.CreatePool(ctx, "w:p", 1000); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	var started atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w:g%d-%d", g, i)
				started.Add(1)
				_, err := s.Reserve(ctx, inventory.ReserveRequest{ID: id, User: "u1", TTL: time.Hour,
					Lines: []inventory.Line{{Pool: "w:p", Quantity: 1}}})
				switch {
				case err == nil:
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				case errors.Is(err, inventory.ErrClosed), errors.Is(err, inventory.ErrSoldOut):
					return
				default:
					t.Errorf("Reserve = %v; want nil or ErrClosed", err)
					return
				}
			}
		}()
	}
	for started.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	r := mustOpen(t, dir, inventory.PebbleOptions{})
	defer r.Close()
	for _, id := range acked {
		if _, err := r.Reservation(ctx, id); err != nil {
			t.Fatalf("acknowledged %q lost: %v", id, err)
		}
	}
	if p, _ := r.Pool(ctx, "w:p"); p.Held != int64(len(acked)) {
		t.Fatalf("Pool = %+v; %d acknowledged", p, len(acked))
	}
}

// purger is a store with retention: Memory and Pebble.
type purger interface {
	inventory.Store
	Forget(ctx context.Context, id string) error
	Purge(ctx context.Context, before time.Time, max int) (int, error)
}

// retentionBackends opens each backend with retention on the clock;
// reopen returns the store to use after a restart (the same one for memory).
var retentionBackends = []struct {
	name string
	open func(t *testing.T, dir string, clk *fakeClock) purger
}{
	{"memory", func(t *testing.T, dir string, clk *fakeClock) purger {
		return inventory.NewMemory(inventory.Options{Now: clk.Now})
	}},
	{"pebble", func(t *testing.T, dir string, clk *fakeClock) purger {
		return mustOpen(t, dir, inventory.PebbleOptions{Options: inventory.Options{Now: clk.Now}})
	}},
}

// TestPurge checks what Purge forgets: released reservations whose
// ExpiresAt is at or before the bound, never held or paid ones, at most max,
// each once; the pools do not change; on pebble, the purge survives a
// reopen and the candidates not yet due are found again after it.
func TestPurge(t *testing.T) {
	for _, b := range retentionBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			clk := newFakeClock()
			dir := t.TempDir()
			s := b.open(t, dir, clk)
			defer func() { s.Close() }()
			if err := s.CreatePool(ctx, "t:p", 100); err != nil {
				t.Fatal(err)
			}
			t0 := clk.Now()
			reserve := func(id string, ttl time.Duration) {
				t.Helper()
				_, err := s.Reserve(ctx, inventory.ReserveRequest{ID: id, User: "u-" + id, TTL: ttl, Meta: []byte("m"),
					Lines: []inventory.Line{{Pool: "t:p", Quantity: 1, Limit: 3}}})
				if err != nil {
					t.Fatalf("Reserve(%q) = %v", id, err)
				}
			}
			// Released at once, due at t0+1m: rel0..rel4.
			for i := range 5 {
				id := fmt.Sprintf("t:rel%d", i)
				reserve(id, time.Minute)
				if _, err := s.Release(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			reserve("t:late", time.Hour) // released, due at t0+1h
			if _, err := s.Release(ctx, "t:late"); err != nil {
				t.Fatal(err)
			}
			reserve("t:held", time.Minute)   // stays held, past its time
			reserve("t:paid", time.Minute)   // paid
			reserve("t:refund", time.Minute) // paid, then refunded
			reserve("t:exp", time.Second)    // released by Expire
			for _, id := range []string{"t:paid", "t:refund"} {
				if _, err := s.Confirm(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Refund(ctx, "t:refund"); err != nil {
				t.Fatal(err)
			}
			clk.Advance(2 * time.Second)
			if rs, err := s.Expire(ctx, t0.Add(2*time.Second), 10); err != nil || len(rs) != 1 {
				t.Fatalf("Expire = %v, %v; want t:exp", rs, err)
			}
			for _, max := range []int{0, -1, inventory.ExpireMax + 1} {
				if _, err := s.Purge(ctx, t0.Add(time.Hour), max); !errors.Is(err, inventory.ErrInvalid) {
					t.Fatalf("Purge(max %d) = %v; want ErrInvalid", max, err)
				}
			}
			poolBefore, _ := s.Pool(ctx, "t:p")

			// Nothing released is due before t0+1s (t:exp is due at t0+1s).
			if n, err := s.Purge(ctx, t0.Add(time.Second-time.Millisecond), 100); err != nil || n != 0 {
				t.Fatalf("Purge(before anything is due) = %d, %v; want 0", n, err)
			}
			// At t0+1m: rel0..4, t:refund and t:exp are due; take 3, then the rest.
			n1, err := s.Purge(ctx, t0.Add(time.Minute), 3)
			if err != nil || n1 != 3 {
				t.Fatalf("Purge(max 3) = %d, %v; want 3", n1, err)
			}
			if err := s.Forget(ctx, "t:rel4"); err != nil && !errors.Is(err, inventory.ErrReservationNotFound) {
				t.Fatalf("Forget(t:rel4) = %v", err)
			} else if err == nil {
				n1++ // forgotten here instead of by Purge
			}
			n2, err := s.Purge(ctx, t0.Add(time.Minute), 100)
			if err != nil || n1+n2 != 7 {
				t.Fatalf("Purge(rest) = %d, %v; want %d", n2, err, 7-n1)
			}
			if n, err := s.Purge(ctx, t0.Add(time.Minute), 100); err != nil || n != 0 {
				t.Fatalf("Purge(again) = %d, %v; want 0", n, err)
			}
			gone := []string{"t:rel0", "t:rel1", "t:rel2", "t:rel3", "t:rel4", "t:refund", "t:exp"}
			kept := map[string]inventory.State{"t:late": inventory.StateReleased, "t:held": inventory.StateHeld, "t:paid": inventory.StatePaid}
			check := func(s purger, when string) {
				t.Helper()
				for _, id := range gone {
					if _, err := s.Reservation(ctx, id); !errors.Is(err, inventory.ErrReservationNotFound) {
						t.Fatalf("%s: Reservation(%q) = %v; want ErrReservationNotFound", when, id, err)
					}
				}
				for id, st := range kept {
					if r, err := s.Reservation(ctx, id); err != nil || r.State != st {
						t.Fatalf("%s: Reservation(%q) = %+v, %v; want %s", when, id, r, err, st)
					}
				}
				rs, _, err := s.Scan(ctx, inventory.StateReleased, "", 100)
				if err != nil || len(rs) != 1 || rs[0].ID != "t:late" {
					t.Fatalf("%s: Scan(released) = %v, %v; want t:late only", when, rs, err)
				}
				if p, _ := s.Pool(ctx, "t:p"); p != poolBefore {
					t.Fatalf("%s: Pool = %+v; want %+v", when, p, poolBefore)
				}
			}
			check(s, "after purge")
			if b.name == "pebble" {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = b.open(t, dir, clk)
				check(s, "after reopen")
			}
			// t:late is still a candidate (rebuilt on reopen): due at t0+1h.
			if n, err := s.Purge(ctx, t0.Add(time.Hour-time.Millisecond), 100); err != nil || n != 0 {
				t.Fatalf("Purge(before t:late is due) = %d, %v; want 0", n, err)
			}
			if n, err := s.Purge(ctx, t0.Add(time.Hour), 100); err != nil || n != 1 {
				t.Fatalf("Purge(t:late) = %d, %v; want 1", n, err)
			}
			if _, err := s.Reservation(ctx, "t:late"); !errors.Is(err, inventory.ErrReservationNotFound) {
				t.Fatalf("Reservation(t:late) = %v; want ErrReservationNotFound", err)
			}
			// A purged id may be reserved again, as a new hold.
			reserve("t:rel0", time.Minute)
			if p, _ := s.Pool(ctx, "t:p"); p.Held != poolBefore.Held+1 {
				t.Fatalf("Pool after reusing a purged id = %+v", p)
			}
			if b.name == "pebble" {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = b.open(t, dir, clk)
				if _, err := s.Reservation(ctx, "t:late"); !errors.Is(err, inventory.ErrReservationNotFound) {
					t.Fatalf("Reservation(t:late) after reopen = %v; want ErrReservationNotFound", err)
				}
				if r, err := s.Reservation(ctx, "t:rel0"); err != nil || r.State != inventory.StateHeld {
					t.Fatalf("Reservation(t:rel0) after reopen = %+v, %v; want held", r, err)
				}
			}
		})
	}
}

// TestPurgeConcurrent purges from many goroutines while others forget,
// release and reserve: every released reservation is forgotten exactly
// once (the counts add up), held ones stay, and the pool is untouched by
// the purging.
func TestPurgeConcurrent(t *testing.T) {
	for _, b := range retentionBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			clk := newFakeClock()
			dir := t.TempDir()
			s := b.open(t, dir, clk)
			defer func() { s.Close() }()
			const n = 600
			if err := s.CreatePool(ctx, "c:p", n); err != nil {
				t.Fatal(err)
			}
			id := func(i int) string { return fmt.Sprintf("c:r%04d", i) }
			for i := range n {
				_, err := s.Reserve(ctx, inventory.ReserveRequest{ID: id(i), User: fmt.Sprintf("u%d", i%7), TTL: time.Duration(1+i%5) * time.Second,
					Lines: []inventory.Line{{Pool: "c:p", Quantity: 1}}})
				if err != nil {
					t.Fatal(err)
				}
			}
			// Release every other one now; the rest stay held.
			for i := 0; i < n; i += 2 {
				if _, err := s.Release(ctx, id(i)); err != nil {
					t.Fatal(err)
				}
			}
			clk.Advance(time.Minute)
			var purged, forgotten atomic.Int64
			var wg sync.WaitGroup
			for g := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if g < 2 {
						// Forget some released ones directly.
						for i := g * 2; i < n; i += 8 {
							err := s.Forget(ctx, id(i))
							switch {
							case err == nil:
								forgotten.Add(1)
							case errors.Is(err, inventory.ErrReservationNotFound):
							default:
								t.Errorf("Forget(%q) = %v", id(i), err)
								return
							}
						}
						return
					}
					purgeAll(t, s, clk.Now(), 1+g*3, &purged)
				}()
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			// A last purge takes what the forgetters' races left.
			k, err := s.Purge(ctx, clk.Now(), inventory.ExpireMax)
			if err != nil {
				t.Fatal(err)
			}
			purged.Add(int64(k))
			if got := purged.Load() + forgotten.Load(); got != n/2 {
				t.Fatalf("purged %d + forgotten %d = %d; want %d", purged.Load(), forgotten.Load(), got, n/2)
			}
			for i := range n {
				r, err := s.Reservation(ctx, id(i))
				if i%2 == 0 {
					if !errors.Is(err, inventory.ErrReservationNotFound) {
						t.Fatalf("Reservation(%q) = %v; want ErrReservationNotFound", id(i), err)
					}
				} else if err != nil || r.State != inventory.StateHeld {
					t.Fatalf("Reservation(%q) = %+v, %v; want held", id(i), r, err)
				}
			}
			if p, _ := s.Pool(ctx, "c:p"); p.Held != n/2 || p.Available != n/2 {
				t.Fatalf("Pool = %+v; want %d held, %d available", p, n/2, n/2)
			}
			if b.name == "pebble" {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = b.open(t, dir, clk)
				rs, _, err := s.Scan(ctx, inventory.StateReleased, "", 10)
				if err != nil || len(rs) != 0 {
					t.Fatalf("Scan(released) after reopen = %v, %v; want none", rs, err)
				}
				if p, _ := s.Pool(ctx, "c:p"); p.Held != n/2 || p.Available != n/2 {
					t.Fatalf("Pool after reopen = %+v; want %d held, %d available", p, n/2, n/2)
				}
			}
		})
	}
}

// TestRetentionStress reuses a small set of ids from many goroutines that
// reserve, confirm, release, expire, forget and purge at once, so record
// slots are freed and reused under every operation: at the end the pools
// match the reservations that are left, each reservation answers as what it
// is, and (pebble) a reopen shows the same.
func TestRetentionStress(t *testing.T) {
	for _, b := range retentionBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			clk := newFakeClock()
			dir := t.TempDir()
			s := b.open(t, dir, clk)
			defer func() { s.Close() }()
			const supply, ids, goroutines = 50, 40, 8
			opsPerG := 400
			if b.name == "pebble" {
				opsPerG = 60
			}
			pools := []string{"x:a", "x:b"}
			for _, p := range pools {
				if err := s.CreatePool(ctx, p, supply); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), 9))
					for range opsPerG {
						id := fmt.Sprintf("x:r%d", rng.IntN(ids))
						var err error
						switch k := rng.IntN(10); {
						case k < 4:
							lines := []inventory.Line{{Pool: pools[0], Quantity: 1, Limit: 3}}
							if k == 0 {
								lines = append(lines, inventory.Line{Pool: pools[1], Quantity: 2})
							}
							_, err = s.Reserve(ctx, inventory.ReserveRequest{ID: id, User: fmt.Sprintf("u%d", rng.IntN(3)),
								TTL: time.Duration(1+rng.IntN(50)) * time.Millisecond, Lines: lines, Meta: []byte(id)})
						case k == 4:
							_, err = s.Confirm(ctx, id)
						case k == 5:
							_, err = s.Release(ctx, id)
						case k == 6:
							err = s.Forget(ctx, id)
						case k == 7:
							_, err = s.Purge(ctx, clk.Now(), 1+rng.IntN(5))
						case k == 8:
							clk.Advance(time.Millisecond)
							_, err = s.Expire(ctx, clk.Now(), 1+rng.IntN(5))
						default:
							var r inventory.Reservation
							if r, err = s.Reservation(ctx, id); err == nil && r.ID != id {
								t.Errorf("Reservation(%q) = %+v", id, r)
								return
							}
						}
						for _, ok := range []error{inventory.ErrSoldOut, inventory.ErrLimitExceeded, inventory.ErrIDConflict,
							inventory.ErrBadState, inventory.ErrReservationNotFound} {
							if errors.Is(err, ok) {
								err = nil
							}
						}
						if err != nil {
							t.Errorf("%s: %v", id, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			check := func(s purger, when string) {
				t.Helper()
				held, sold := map[string]int64{}, map[string]int64{}
				seen := 0
				for _, st := range []inventory.State{inventory.StateHeld, inventory.StatePaid, inventory.StateReleased} {
					rs, next, err := s.Scan(ctx, st, "", inventory.ScanLimitMax)
					if err != nil || next != "" {
						t.Fatalf("%s: Scan = %v, %q", when, err, next)
					}
					for _, r := range rs {
						seen++
						got, err := s.Reservation(ctx, r.ID)
						if err != nil || got.State != st || string(got.Meta) != r.ID {
							t.Fatalf("%s: Reservation(%q) = %+v, %v; Scan said %s", when, r.ID, got, err, st)
						}
						for _, l := range r.Lines {
							switch st {
							case inventory.StateHeld:
								held[l.Pool] += l.Quantity
							case inventory.StatePaid:
								sold[l.Pool] += l.Quantity
							}
						}
					}
				}
				for _, id := range pools {
					p, err := s.Pool(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					if p.Held != held[id] || p.Sold != sold[id] || p.Supplied != supply {
						t.Fatalf("%s: Pool %+v; reservations hold %d, sold %d", when, p, held[id], sold[id])
					}
				}
				t.Logf("%s: %d reservations left", when, seen)
			}
			check(s, "after the run")
			if b.name == "pebble" {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = b.open(t, dir, clk)
				check(s, "after reopen")
			}
		})
	}
}
