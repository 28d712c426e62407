package redisinv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
)

// answer classifies a Reserve outcome for comparison.
func answer(r inventory.Reservation, err error) string {
	if err != nil {
		for _, s := range []error{inventory.ErrSoldOut, inventory.ErrLimitExceeded, inventory.ErrPoolNotFound,
			inventory.ErrIDConflict, inventory.ErrInvalid, inventory.ErrUnavailable} {
			if errors.Is(err, s) {
				return s.Error()
			}
		}
		return "unexpected: " + err.Error()
	}
	return fmt.Sprintf("%s %s %v %d %q %d %d", r.ID, r.User, r.Lines, r.State, r.Meta, r.CreatedAt.UnixMilli(), r.ExpiresAt.UnixMilli())
}

// outcome returns what Reserve returns once the call's answer is set.
func outcome(c *reserveCall, req *inventory.ReserveRequest, nowMs, expMs int64) (inventory.Reservation, error) {
	if c.err != nil {
		return inventory.Reservation{}, c.err
	}
	return c.result(req, nowMs, expMs)
}

// TestBatchMatchesSequential runs random batches through the batch script
// and the same requests one at a time through the memory backend: every
// answer, every pool and every reservation must be the same, as if the
// batch's calls had run one after the other.
func TestBatchMatchesSequential(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	kinds := map[string]int{}
	defer func() {
		// The random requests must have reached every answer.
		for _, k := range []string{"ok", "replay", inventory.ErrSoldOut.Error(), inventory.ErrLimitExceeded.Error(),
			inventory.ErrPoolNotFound.Error(), inventory.ErrIDConflict.Error()} {
			if kinds[k] == 0 && !t.Failed() {
				t.Errorf("no batch answer was %q: %v", k, kinds)
			}
		}
	}()
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			now := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			s, err := Open(ctx, Options{Options: inventory.Options{Now: clock, MaxQuantity: 5}, Addr: srv.Addr, Prefix: fmt.Sprintf("seq%d", seed)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			mem := inventory.NewMemory(inventory.Options{Now: clock, MaxQuantity: 5})
			defer mem.Close()
			rng := rand.New(rand.NewPCG(seed, 7))
			pools := []string{"t:a", "t:b", "t:c", "t:d", "t:e", "t:f"}
			for i, p := range pools[:5] { // t:f is never created
				supply := int64(10 + 10*i)
				if err := s.CreatePool(ctx, p, supply); err != nil {
					t.Fatal(err)
				}
				if err := mem.CreatePool(ctx, p, supply); err != nil {
					t.Fatal(err)
				}
			}
			var ids []string
			for round := 0; round < 60; round++ {
				k := 1 + rng.IntN(40)
				var calls []*reserveCall
				var reqs []inventory.ReserveRequest
				seen := map[string]bool{}
				nowMs, expMs := inventory.ExpiryMs(now, time.Minute)
				for len(calls) < k {
					var id string
					if len(ids) > 0 && rng.IntN(4) == 0 {
						id = ids[rng.IntN(len(ids))] // a replay or a conflict
					} else {
						id = fmt.Sprintf("t:r%d", len(ids))
						ids = append(ids, id)
					}
					if seen[id] {
						continue // the leader never puts an id twice in a batch
					}
					seen[id] = true
					req := inventory.ReserveRequest{ID: id, User: fmt.Sprintf("u%d", rng.IntN(4)), TTL: time.Minute}
					if rng.IntN(3) == 0 {
						req.Meta = []byte{byte(rng.IntN(256)), ' ', 0, '9'}
					}
					// Mostly one line of one or two pools, sometimes several.
					n := 1
					if rng.IntN(3) == 0 {
						n = 1 + rng.IntN(4)
					}
					first := rng.IntN(2)
					if round%3 == 0 {
						first = rng.IntN(len(pools))
					}
					if id != fmt.Sprintf("t:r%d", len(ids)-1) && round%6 == 5 {
						continue // replays keep their own lines
					}
					for j := 0; j < n; j++ {
						req.Lines = append(req.Lines, inventory.Line{Pool: pools[(first+j)%len(pools)],
							Quantity: 1 + rng.Int64N(3), Limit: rng.Int64N(3) * 3})
					}
					switch round % 6 {
					case 1, 3: // uniform: one pool, the same line for all (the script's fast path)
						req.Lines = []inventory.Line{{Pool: "t:a", Quantity: 2, Limit: 6}}
					case 5:
						req.Lines = []inventory.Line{{Pool: "t:f", Quantity: 1}} // unknown pool
					}
					if err := req.Validate(5); err != nil {
						t.Fatal(err)
					}
					reqs = append(reqs, req)
					calls = append(calls, s.newCall(&req, nowMs, expMs))
				}
				s.runBatch(ctx, calls)
				for i, c := range calls {
					got := answer(outcome(c, &reqs[i], nowMs, expMs))
					want := answer(mem.Reserve(ctx, reqs[i]))
					switch {
					case c.isOld:
						kinds["replay"]++
					case c.code == resCreated && c.err == nil:
						kinds["ok"]++
					default:
						kinds[answer(inventory.Reservation{}, func() error { _, e := outcome(c, &reqs[i], nowMs, expMs); return e }())]++
					}
					if got != want {
						t.Fatalf("round %d request %d of %d (%+v): batch %s; one at a time %s", round, i, k, reqs[i], got, want)
					}
				}
				// Now and then let some of them go, so stock and limits come back.
				if round%5 == 4 {
					for _, id := range ids {
						if rng.IntN(3) != 0 {
							continue
						}
						var r1, r2 inventory.Reservation
						var e1, e2 error
						if rng.IntN(2) == 0 {
							r1, e1 = s.Release(ctx, id)
							r2, e2 = mem.Release(ctx, id)
						} else {
							r1, e1 = s.Confirm(ctx, id)
							r2, e2 = mem.Confirm(ctx, id)
						}
						if answer(r1, e1) != answer(r2, e2) && !(errors.Is(e1, inventory.ErrBadState) && errors.Is(e2, inventory.ErrBadState)) &&
							!(errors.Is(e1, inventory.ErrReservationNotFound) && errors.Is(e2, inventory.ErrReservationNotFound)) {
							t.Fatalf("state change of %s: redis %v %v; memory %v %v", id, r1, e1, r2, e2)
						}
					}
				}
				for _, p := range pools[:5] {
					a, err1 := s.Pool(ctx, p)
					b, err2 := mem.Pool(ctx, p)
					if err1 != nil || err2 != nil || a != b {
						t.Fatalf("round %d: pool %s: redis %+v %v; memory %+v %v", round, p, a, err1, b, err2)
					}
				}
			}
			for _, id := range ids {
				a, err1 := s.Reservation(ctx, id)
				b, err2 := mem.Reservation(ctx, id)
				if answer(a, err1) != answer(b, err2) && !(errors.Is(err1, inventory.ErrReservationNotFound) && errors.Is(err2, inventory.ErrReservationNotFound)) {
					t.Fatalf("reservation %s: redis %+v %v; memory %+v %v", id, a, err1, b, err2)
				}
				if err1 == nil && (a.Refunded != b.Refunded || !reflect.DeepEqual(a.Lines, b.Lines)) {
					t.Fatalf("reservation %s: redis %+v; memory %+v", id, a, b)
				}
			}
		})
	}
}

// TestBatchAllFailWritesNothing: a batch in which nothing is reserved
// leaves every key as it was (the script writes only after deciding).
func TestBatchAllFailWritesNothing(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s, err := Open(ctx, Options{Addr: srv.Addr, Prefix: "nofail"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreatePool(ctx, "t:a", 1); err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	keys := func() []string {
		k, err := c.Do(ctx, c.B().Keys().Pattern("nofail:*").Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	before := keys()
	nowMs, expMs := inventory.ExpiryMs(time.Now(), time.Minute)
	var calls []*reserveCall
	for i, l := range []inventory.Line{{Pool: "t:a", Quantity: 2}, {Pool: "t:zz", Quantity: 1}, {Pool: "t:a", Quantity: 1, Limit: 0}} {
		req := inventory.ReserveRequest{ID: fmt.Sprintf("t:%d", i), User: "u", TTL: time.Minute, Lines: []inventory.Line{l}}
		if i == 2 {
			req.Lines = append(req.Lines, inventory.Line{Pool: "t:zz", Quantity: 1})
		}
		calls = append(calls, s.newCall(&req, nowMs, expMs))
	}
	s.runBatch(ctx, calls)
	for i, want := range []int64{resSoldOut, resNoPool, resNoPool} {
		if calls[i].err != nil || calls[i].isOld || calls[i].code != want {
			t.Fatalf("call %d = code %d old %v err %v; want code %d", i, calls[i].code, calls[i].isOld, calls[i].err, want)
		}
	}
	if after := keys(); !reflect.DeepEqual(after, before) {
		t.Fatalf("keys after a failed batch = %v; before %v", after, before)
	}
}

// TestRecordRoundTrip: every record parses back to what was encoded,
// whatever the meta bytes.
func TestRecordRoundTrip(t *testing.T) {
	req := inventory.ReserveRequest{ID: "t:1", User: "u-1", TTL: time.Second,
		Lines: []inventory.Line{{Pool: "t:a", Quantity: 3, Limit: 10}, {Pool: "t:b", Quantity: 1}},
		Meta:  []byte("x 1 2 \x00\xff 3 ")}
	rec, plen := encodeRecord(&req, 1700000000123, 1700000001123)
	if want := "23 u-1 2 t:a 3 10 t:b 1 0 "; rec[2:2+plen] != want[:plen] || plen != len(want) {
		t.Fatalf("ident part = %q (plen %d); want %q", rec[2:2+plen], plen, want)
	}
	r, err := parseRecord("test", req.ID, rec)
	if err != nil {
		t.Fatal(err)
	}
	if !inventory.SameRequest(&r, &req) || string(r.Meta) != string(req.Meta) || r.State != inventory.StateHeld ||
		r.CreatedAt.UnixMilli() != 1700000000123 || r.ExpiresAt.UnixMilli() != 1700000001123 || r.Refunded {
		t.Fatalf("parseRecord = %+v", r)
	}
	for _, bad := range []string{"", "10", "40 ", "1099 u", "102 u ", "10x u 1 t:a 1 0 1 2 ", "109 u 1 t:a 1 0 1 2 "} {
		if _, err := parseRecord("test", "t:1", bad); !errors.Is(err, inventory.ErrUnavailable) {
			t.Fatalf("parseRecord(%q) = %v; want ErrUnavailable", bad, err)
		}
	}
}

// TestExpireBatchIndex: a batch enters the expiry index as one list;
// Expire releases exactly the held and due ids of it, re-indexes the held
// ones not yet due (an id reused after Forget), drops the stale ones, and
// keeps its promises across max and the per-call budget.
func TestExpireBatchIndex(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s, err := Open(ctx, Options{Options: inventory.Options{Now: clock}, Addr: srv.Addr, Prefix: "xb"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreatePool(ctx, "t:a", 1000); err != nil {
		t.Fatal(err)
	}
	old := expireBudget
	expireBudget = 3
	defer func() { expireBudget = old }()
	batch := func(from, to int, ttl time.Duration) {
		t.Helper()
		nowMs, expMs := inventory.ExpiryMs(clock(), ttl)
		var calls []*reserveCall
		for i := from; i < to; i++ {
			req := inventory.ReserveRequest{ID: fmt.Sprintf("t:r%d", i), User: "u", TTL: ttl,
				Lines: []inventory.Line{{Pool: "t:a", Quantity: 1}}}
			calls = append(calls, s.newCall(&req, nowMs, expMs))
		}
		s.runBatch(ctx, calls)
		for _, c := range calls {
			if c.err != nil || c.isOld || c.code != resCreated {
				t.Fatalf("batch reserve = %d %v %v", c.code, c.isOld, c.err)
			}
		}
	}
	batch(0, 20, time.Minute)
	for i := 0; i < 10; i++ {
		if _, err := s.Confirm(ctx, fmt.Sprintf("t:r%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 10; i < 13; i++ {
		if _, err := s.Release(ctx, fmt.Sprintf("t:r%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Forget(ctx, "t:r10"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, inventory.ReserveRequest{ID: "t:r10", User: "v", TTL: time.Hour,
		Lines: []inventory.Line{{Pool: "t:a", Quantity: 2}}}); err != nil {
		t.Fatal(err)
	}
	held := func() []string {
		t.Helper()
		rs, _, err := s.Scan(ctx, inventory.StateHeld, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if got := held(); len(got) != 8 || got[0] != "t:r10" {
		t.Fatalf("held = %v; want t:r10, t:r13..t:r19", got)
	}
	if out, err := s.Expire(ctx, clock(), 100); err != nil || len(out) != 0 {
		t.Fatalf("Expire before any deadline = %v, %v", out, err)
	}
	advance(time.Minute)
	got := map[string]bool{}
	for _, max := range []int{2, 2, 100, 100} {
		out, err := s.Expire(ctx, clock(), max)
		if err != nil || len(out) > max {
			t.Fatalf("Expire(max %d) = %v, %v", max, out, err)
		}
		for _, r := range out {
			if got[r.ID] || r.State != inventory.StateReleased {
				t.Fatalf("Expire returned %+v twice or not released", r)
			}
			got[r.ID] = true
		}
	}
	if len(got) != 7 || got["t:r10"] {
		t.Fatalf("expired %v; want t:r13..t:r19", got)
	}
	if got := held(); len(got) != 1 || got[0] != "t:r10" {
		t.Fatalf("held after Expire = %v; want t:r10", got)
	}
	p, err := s.Pool(ctx, "t:a")
	if err != nil || p.Held != 2 || p.Sold != 10 || p.Available != 988 {
		t.Fatalf("Pool = %+v, %v", p, err)
	}
	advance(time.Hour)
	out, err := s.Expire(ctx, clock(), 100)
	if err != nil || len(out) != 1 || out[0].ID != "t:r10" || out[0].User != "v" {
		t.Fatalf("Expire of the reused id = %+v, %v", out, err)
	}
	if out, err := s.Expire(ctx, clock(), 100); err != nil || len(out) != 0 {
		t.Fatalf("Expire again = %v, %v", out, err)
	}
	// Nothing is left in the index.
	c := s.Client()
	if n, err := c.Do(ctx, c.B().Zcard().Key(s.base("t")+"x").Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("expiry index holds %d, %v", n, err)
	}
	if keys, err := c.Do(ctx, c.B().Keys().Pattern("xb:*:b:*").Build()).AsStrSlice(); err != nil || len(keys) != 0 {
		t.Fatalf("batch lists left: %v, %v", keys, err)
	}
}
