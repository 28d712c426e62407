package invtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// Model applies seeded random operation sequences to a store and to ref, a
// small reference model, and requires the same answers and the same state
// (every pool and every reservation) after every step. It then checks
// concurrent histories for linearizability.
func Model(t *testing.T, f Factory) {
	steps := 1000
	if testing.Short() {
		steps = 300
	}
	for _, seed := range []uint64{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) { runModel(t, f, seed, steps) })
	}
	t.Run("Linearizable", func(t *testing.T) { linearizable(t, f) })
}

// ref is the reference model: plain maps, one operation at a time, written
// from the Store contract (and validate.go's order of checks).
type ref struct {
	maxQty int64
	pools  map[string]*refPool
	res    map[string]*inventory.Reservation
	users  map[[2]string]int64
}

type refPool struct {
	free, held, sold, onHand int64
	seq                      uint64
}

func newRef(maxQty int64) *ref {
	return &ref{maxQty: maxQty, pools: map[string]*refPool{}, res: map[string]*inventory.Reservation{}, users: map[[2]string]int64{}}
}

func (m *ref) snapshot(id string) inventory.Pool {
	p := m.pools[id]
	s := inventory.Pool{ID: id, Held: p.held, Sold: p.sold, OnHand: p.onHand, Seq: p.seq}
	if p.free >= 0 {
		s.Available = p.free
	} else {
		s.Short = -p.free
	}
	s.Supplied = s.Available + s.Held + s.Sold
	return s
}

func (m *ref) createPool(id string, n int64) error {
	if !inventory.ValidID(id) || n < 0 || n > inventory.UnitsMax {
		return inventory.ErrInvalid
	}
	if m.pools[id] != nil {
		return inventory.ErrPoolExists
	}
	m.pools[id] = &refPool{free: n}
	return nil
}

func (m *ref) reserve(r inventory.ReserveRequest, now time.Time) (inventory.Reservation, error) {
	if err := r.Validate(m.maxQty); err != nil {
		return inventory.Reservation{}, inventory.ErrInvalid
	}
	if old := m.res[r.ID]; old != nil {
		if !inventory.SameRequest(old, &r) {
			return inventory.Reservation{}, inventory.ErrIDConflict
		}
		again := *old
		again.Existed = true
		return again, nil
	}
	for _, l := range r.Lines {
		if m.pools[l.Pool] == nil {
			return inventory.Reservation{}, inventory.ErrPoolNotFound
		}
	}
	for _, l := range r.Lines {
		if m.pools[l.Pool].free < l.Quantity {
			return inventory.Reservation{}, inventory.ErrSoldOut
		}
	}
	for _, l := range r.Lines {
		if l.Limit > 0 && m.users[[2]string{l.Pool, r.User}]+l.Quantity > l.Limit {
			return inventory.Reservation{}, inventory.ErrLimitExceeded
		}
	}
	for _, l := range r.Lines {
		p := m.pools[l.Pool]
		p.free -= l.Quantity
		p.held += l.Quantity
		m.users[[2]string{l.Pool, r.User}] += l.Quantity
	}
	c, e := inventory.ExpiryMs(now, r.TTL)
	res := &inventory.Reservation{
		ID: r.ID, User: r.User, Lines: slices.Clone(r.Lines), State: inventory.StateHeld,
		Meta: slices.Clone(r.Meta), CreatedAt: time.UnixMilli(c), ExpiresAt: time.UnixMilli(e),
	}
	m.res[r.ID] = res
	return *res, nil
}

func (m *ref) lookup(id string) (*inventory.Reservation, error) {
	if !inventory.ValidReservationID(id) {
		return nil, inventory.ErrInvalid
	}
	r := m.res[id]
	if r == nil {
		return nil, inventory.ErrReservationNotFound
	}
	return r, nil
}

func (m *ref) release(r *inventory.Reservation) {
	for _, l := range r.Lines {
		p := m.pools[l.Pool]
		if r.State == inventory.StatePaid {
			p.sold -= l.Quantity
			r.Refunded = true
		} else {
			p.held -= l.Quantity
		}
		p.free += l.Quantity
		m.users[[2]string{l.Pool, r.User}] -= l.Quantity
	}
	r.State = inventory.StateReleased
}

func (m *ref) confirm(id string, now time.Time) (inventory.Reservation, error) {
	r, err := m.lookup(id)
	if err != nil {
		return inventory.Reservation{}, err
	}
	switch r.State {
	case inventory.StatePaid:
		return *r, nil
	case inventory.StateReleased:
		return inventory.Reservation{}, inventory.ErrBadState
	}
	if !now.Before(r.ExpiresAt) {
		m.release(r)
		return inventory.Reservation{}, inventory.ErrBadState
	}
	for _, l := range r.Lines {
		p := m.pools[l.Pool]
		p.held -= l.Quantity
		p.sold += l.Quantity
	}
	r.State = inventory.StatePaid
	return *r, nil
}

func (m *ref) releaseOp(id string) (inventory.Reservation, error) {
	r, err := m.lookup(id)
	if err != nil {
		return inventory.Reservation{}, err
	}
	switch r.State {
	case inventory.StateReleased:
		return *r, nil
	case inventory.StatePaid:
		return inventory.Reservation{}, inventory.ErrBadState
	}
	m.release(r)
	return *r, nil
}

func (m *ref) refund(id string) (inventory.Reservation, error) {
	r, err := m.lookup(id)
	if err != nil {
		return inventory.Reservation{}, err
	}
	switch {
	case r.State == inventory.StateReleased && r.Refunded:
		return *r, nil
	case r.State != inventory.StatePaid:
		return inventory.Reservation{}, inventory.ErrBadState
	}
	m.release(r)
	return *r, nil
}

// due lists the held reservations whose deadline is at or before now.
func (m *ref) due(now time.Time) map[string]bool {
	d := map[string]bool{}
	for id, r := range m.res {
		if r.State == inventory.StateHeld && !r.ExpiresAt.After(now) {
			d[id] = true
		}
	}
	return d
}

func (m *ref) poolPair(from, to string, qty int64, checkQty bool) (*refPool, *refPool, error) {
	if !inventory.ValidID(from) || !inventory.ValidID(to) || from == to || inventory.Tag(from) != inventory.Tag(to) {
		return nil, nil, inventory.ErrInvalid
	}
	if checkQty && (qty <= 0 || qty > inventory.UnitsMax) {
		return nil, nil, inventory.ErrInvalid
	}
	pf, pt := m.pools[from], m.pools[to]
	if pf == nil || pt == nil {
		return nil, nil, inventory.ErrPoolNotFound
	}
	return pf, pt, nil
}

func (m *ref) move(from, to string, qty int64) error {
	pf, pt, err := m.poolPair(from, to, qty, true)
	if err != nil {
		return err
	}
	if pf.free < qty {
		return inventory.ErrSoldOut
	}
	pf.free -= qty
	pt.free += qty
	return nil
}

func (m *ref) drain(from, to string) (int64, error) {
	pf, pt, err := m.poolPair(from, to, 0, false)
	if err != nil {
		return 0, err
	}
	n := max(pf.free, 0)
	pf.free -= n
	pt.free += n
	return n, nil
}

func (m *ref) setOnHand(id string, onHand int64, seq uint64) (inventory.FeedResult, error) {
	if !inventory.ValidID(id) || onHand < 0 || onHand > inventory.UnitsMax {
		return inventory.FeedResult{}, inventory.ErrInvalid
	}
	p := m.pools[id]
	if p == nil {
		return inventory.FeedResult{}, inventory.ErrPoolNotFound
	}
	if seq <= p.seq {
		return inventory.FeedResult{Pool: m.snapshot(id)}, nil
	}
	p.free += onHand - p.onHand
	p.onHand = onHand
	p.seq = seq
	return inventory.FeedResult{Applied: true, Pool: m.snapshot(id)}, nil
}

func (m *ref) scan(state inventory.State, cursor string, limit int) ([]string, string, error) {
	if state < inventory.StateHeld || state > inventory.StateReleased || limit <= 0 || limit > inventory.ScanLimitMax || len(cursor) > inventory.IDLenMax {
		return nil, "", inventory.ErrInvalid
	}
	var ids []string
	for id, r := range m.res {
		if r.State == state && id > cursor {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) > limit {
		return ids[:limit], ids[limit-1], nil
	}
	return ids, "", nil
}

// Names the model draws from: three pools of tag "m", one unknown and one
// of another tag; a few users; a small set of reservation ids so that ids
// repeat (idempotency and conflicts).
var (
	modelPools = []string{"m:p0", "m:p1", "m:p2", "m:px", "n:q0", ""}
	modelUsers = []string{"u0", "u1", "u2", "u3"}
)

func runModel(t *testing.T, f Factory, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 99))
	clk := newClock()
	const maxQty = 6
	s := f(t, inventory.Options{Now: clk.Now, MaxQuantity: maxQty})
	m := newRef(maxQty)
	ctx := context.Background()
	var ids []string
	for i := range 60 {
		ids = append(ids, fmt.Sprintf("m:r%02d", i))
	}
	ids = append(ids, "bad", "n:r0")
	for _, id := range []string{"m:p0", "m:p1", "m:p2", "n:q0"} {
		n := 5 + rng.Int64N(16)
		if err := s.CreatePool(ctx, id, n); err != nil {
			t.Fatal(err)
		}
		_ = m.createPool(id, n)
	}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	// pickRes prefers ids of existing reservations.
	pickRes := func() string {
		if len(m.res) > 0 && rng.IntN(5) != 0 {
			return fmt.Sprintf("m:r%02d", rng.IntN(len(m.res)))
		}
		return pick(ids)
	}
	qty := func() int64 {
		switch rng.IntN(20) {
		case 0:
			return 0
		case 1:
			return -1
		case 2:
			return maxQty + 1
		}
		return 1 + rng.Int64N(3)
	}
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d step %d: %s\nhistory:\n%s", seed, len(log), fmt.Sprintf(format, args...), strings.Join(log, "\n"))
	}
	seen := map[string]int{}
	cmpErr := func(op string, got, want error) bool {
		t.Helper()
		seen[op[:strings.IndexByte(op, '(')]+" "+classify(got)]++
		if classify(got) != classify(want) {
			fail("%s: store says %v; model says %v", op, got, want)
		}
		return got == nil
	}
	cmpRes := func(op string, got, want inventory.Reservation) {
		t.Helper()
		if !sameReservation(got, want) {
			fail("%s: store returned %+v; model %+v", op, got, want)
		}
	}
	for step := 0; step < steps; step++ {
		var op string
		switch k := rng.IntN(100); {
		case k < 35:
			n := 1 + rng.IntN(3)
			if rng.IntN(30) == 0 {
				n = 0
			}
			lines := make([]inventory.Line, n)
			perm := rng.Perm(3)
			for i := range lines {
				pool := modelPools[perm[i]]
				if rng.IntN(25) == 0 {
					pool = pick(modelPools) // unknown, other tag, bad or duplicate
				}
				q := 1 + rng.Int64N(3)
				if rng.IntN(10) == 0 {
					q = qty()
				}
				lines[i] = inventory.Line{Pool: pool, Quantity: q, Limit: rng.Int64N(5)}
			}
			id := fmt.Sprintf("m:r%02d", len(m.res))
			if rng.IntN(8) == 0 {
				id = pick(ids)
			}
			r := inventory.ReserveRequest{ID: id, User: pick(modelUsers), Lines: lines,
				TTL: time.Duration(rng.IntN(4000)) * time.Millisecond, Meta: []byte(fmt.Sprint(step))}
			op = fmt.Sprintf("Reserve(%s %s %v ttl %v)", r.ID, r.User, r.Lines, r.TTL)
			got, gerr := s.Reserve(ctx, r)
			want, werr := m.reserve(r, clk.Now())
			if cmpErr(op, gerr, werr) {
				cmpRes(op, got, want)
			}
		case k < 45:
			id := pickRes()
			op = "Confirm(" + id + ")"
			got, gerr := s.Confirm(ctx, id)
			want, werr := m.confirm(id, clk.Now())
			if cmpErr(op, gerr, werr) {
				cmpRes(op, got, want)
			}
		case k < 55:
			id := pickRes()
			op = "Release(" + id + ")"
			got, gerr := s.Release(ctx, id)
			want, werr := m.releaseOp(id)
			if cmpErr(op, gerr, werr) {
				cmpRes(op, got, want)
			}
		case k < 60:
			id := pickRes()
			op = "Refund(" + id + ")"
			got, gerr := s.Refund(ctx, id)
			want, werr := m.refund(id)
			if cmpErr(op, gerr, werr) {
				cmpRes(op, got, want)
			}
		case k < 68:
			d := time.Duration(rng.IntN(1500)) * time.Millisecond
			clk.Advance(d)
			op = fmt.Sprintf("Advance(%v)", d)
		case k < 74:
			max := 1 + rng.IntN(3)
			now := clk.Now()
			op = fmt.Sprintf("Expire(max %d)", max)
			due := m.due(now)
			got, err := s.Expire(ctx, now, max)
			if err != nil {
				fail("%s = %v", op, err)
			}
			if len(got) != min(max, len(due)) {
				fail("%s released %d; %d were due", op, len(got), len(due))
			}
			for _, r := range got {
				if !due[r.ID] {
					fail("%s released %q, which was not due", op, r.ID)
				}
				delete(due, r.ID)
				mr := m.res[r.ID]
				m.release(mr)
				cmpRes(op, r, *mr)
			}
		case k < 80:
			from, to, q := pick(modelPools), pick(modelPools), qty()
			op = fmt.Sprintf("Move(%s, %s, %d)", from, to, q)
			cmpErr(op, s.Move(ctx, from, to, q), m.move(from, to, q))
		case k < 83:
			from, to := pick(modelPools), pick(modelPools)
			op = fmt.Sprintf("Drain(%s, %s)", from, to)
			got, gerr := s.Drain(ctx, from, to)
			want, werr := m.drain(from, to)
			if cmpErr(op, gerr, werr) && got != want {
				fail("%s = %d; model %d", op, got, want)
			}
		case k < 93:
			id := pick(modelPools)
			if rng.IntN(2) == 0 {
				id = modelPools[rng.IntN(3)]
			}
			onHand := rng.Int64N(30)
			if rng.IntN(20) == 0 {
				onHand = -1
			}
			seq := rng.Uint64N(uint64(step + 2))
			op = fmt.Sprintf("SetOnHand(%s, %d, %d)", id, onHand, seq)
			got, gerr := s.SetOnHand(ctx, id, onHand, seq)
			want, werr := m.setOnHand(id, onHand, seq)
			if cmpErr(op, gerr, werr) && got != want {
				fail("%s = %+v; model %+v", op, got, want)
			}
		case k < 97:
			st := inventory.State(rng.IntN(5))
			cursor := ""
			if rng.IntN(2) == 0 {
				cursor = pick(ids)
			}
			limit := rng.IntN(5)
			op = fmt.Sprintf("Scan(%v, %q, %d)", st, cursor, limit)
			got, gnext, gerr := s.Scan(ctx, st, cursor, limit)
			want, wnext, werr := m.scan(st, cursor, limit)
			if cmpErr(op, gerr, werr) {
				var gids []string
				for _, r := range got {
					gids = append(gids, r.ID)
					cmpRes(op, r, *m.res[r.ID])
				}
				if fmt.Sprint(gids) != fmt.Sprint(want) || gnext != wnext {
					fail("%s = %v next %q; model %v next %q", op, gids, gnext, want, wnext)
				}
			}
		default:
			id := pick(modelPools)
			n := rng.Int64N(5)
			op = fmt.Sprintf("CreatePool(%s, %d)", id, n)
			cmpErr(op, s.CreatePool(ctx, id, n), m.createPool(id, n))
		}
		log = append(log, op)
		if step == steps-1 {
			t.Logf("outcomes: %v", seen)
		}
		// The whole state must match after every step.
		for _, id := range modelPools {
			got, err := s.Pool(ctx, id)
			if m.pools[id] == nil {
				if !inventory.ValidID(id) {
					cmpErr("Pool("+id+")", err, inventory.ErrInvalid)
				} else {
					cmpErr("Pool("+id+")", err, inventory.ErrPoolNotFound)
				}
				continue
			}
			if err != nil {
				fail("Pool(%s) = %v", id, err)
			}
			if want := m.snapshot(id); got != want {
				fail("Pool(%s) = %+v; model %+v", id, got, want)
			}
		}
		check := []string{"bad", "n:r0", fmt.Sprintf("m:r%02d", len(m.res))}
		for id := range m.res {
			check = append(check, id)
		}
		for _, id := range check {
			got, gerr := s.Reservation(ctx, id)
			want, werr := m.lookup(id)
			if cmpErr("Reservation("+id+")", gerr, werr) {
				cmpRes("Reservation("+id+")", got, *want)
			}
		}
	}
}
