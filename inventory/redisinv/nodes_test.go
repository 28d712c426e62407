package redisinv_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
)

// TestTwoNodesRace runs two independent Stores (two gateway nodes, each
// with its own connections) on one server against the same pools: the
// totals must be exact, nothing oversold, no user over the limit.
func TestTwoNodesRace(t *testing.T) {
	const (
		nodes      = 2
		workers    = 12 // per node
		opsPerWkr  = 40
		supplied   = 300
		users      = 200
		userLimit  = 4
		pools      = 2
		qtyMax     = 3
		ttlMinutes = 10
	)
	srv := redistest.Start(t)
	ctx := context.Background()
	a := open(t, srv, "race", inventory.Options{})
	b := open(t, srv, "race", inventory.Options{})
	stores := []inventory.Store{a, b}
	for p := 0; p < pools; p++ {
		if err := a.CreatePool(ctx, fmt.Sprintf("shop:p%d", p), supplied); err != nil {
			t.Fatal(err)
		}
	}
	type outcome struct {
		res   inventory.Reservation
		final inventory.State
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		soldOut  int
		limited  int
	)
	var wg sync.WaitGroup
	for n := 0; n < nodes; n++ {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(n, w int) {
				defer wg.Done()
				s := stores[n]
				rng := rand.New(rand.NewPCG(uint64(n), uint64(w)))
				for i := 0; i < opsPerWkr; i++ {
					var lines []inventory.Line
					first := rng.IntN(pools)
					for p := 0; p < 1+rng.IntN(pools); p++ {
						lines = append(lines, line(fmt.Sprintf("shop:p%d", (first+p)%pools), 1+rng.Int64N(qtyMax), userLimit))
					}
					r := req(fmt.Sprintf("shop:n%d-w%d-%d", n, w, i), fmt.Sprintf("u%d", rng.IntN(users)), ttlMinutes*time.Minute, lines...)
					got, err := s.Reserve(ctx, r)
					switch {
					case errors.Is(err, inventory.ErrSoldOut):
						mu.Lock()
						soldOut++
						mu.Unlock()
						continue
					case errors.Is(err, inventory.ErrLimitExceeded):
						mu.Lock()
						limited++
						mu.Unlock()
						continue
					case err != nil:
						t.Errorf("Reserve(%s) = %v", r.ID, err)
						return
					}
					// The other node finishes a third of them.
					other := stores[1-n]
					final := inventory.StateHeld
					switch rng.IntN(3) {
					case 0:
						if _, err := other.Confirm(ctx, got.ID); err != nil {
							t.Errorf("Confirm(%s) = %v", got.ID, err)
						}
						final = inventory.StatePaid
					case 1:
						if _, err := other.Release(ctx, got.ID); err != nil {
							t.Errorf("Release(%s) = %v", got.ID, err)
						}
						final = inventory.StateReleased
					}
					mu.Lock()
					outcomes = append(outcomes, outcome{got, final})
					mu.Unlock()
				}
			}(n, w)
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	held := map[string]int64{}
	sold := map[string]int64{}
	live := map[[2]string]int64{}
	for _, o := range outcomes {
		r, err := a.Reservation(ctx, o.res.ID)
		if err != nil || r.State != o.final {
			t.Fatalf("Reservation(%s) = %v, %v; want state %v", o.res.ID, r.State, err, o.final)
		}
		for _, l := range r.Lines {
			switch o.final {
			case inventory.StateHeld:
				held[l.Pool] += l.Quantity
			case inventory.StatePaid:
				sold[l.Pool] += l.Quantity
			}
			if o.final != inventory.StateReleased {
				live[[2]string{l.Pool, r.User}] += l.Quantity
			}
		}
	}
	if soldOut == 0 {
		t.Errorf("no reserve was sold out; the test did not reach the limit of stock")
	}
	for p := 0; p < pools; p++ {
		id := fmt.Sprintf("shop:p%d", p)
		for _, s := range stores {
			got := mustPool(t, s, id)
			if got.Supplied != supplied || got.Held != held[id] || got.Sold != sold[id] {
				t.Fatalf("Pool(%s) = %+v; want supplied %d held %d sold %d", id, got, supplied, held[id], sold[id])
			}
		}
	}
	for k, n := range live {
		if n > userLimit {
			t.Errorf("user %s holds %d units of %s; limit %d", k[1], n, k[0], userLimit)
		}
	}
	t.Logf("%d reserved, %d sold out, %d over limit", len(outcomes), soldOut, limited)
}

// TestExpireExactlyOnce: many goroutines on two nodes expire the same
// holds across several tags; each hold is released exactly once.
func TestExpireExactlyOnce(t *testing.T) {
	const (
		tags     = 3
		holds    = 240
		callers  = 8 // per node
		batchMax = 7
	)
	srv := redistest.Start(t)
	ck := newClock()
	ctx := context.Background()
	a := open(t, srv, "exp", inventory.Options{Now: ck.Now})
	b := open(t, srv, "exp", inventory.Options{Now: ck.Now})
	for i := 0; i < tags; i++ {
		if err := a.CreatePool(ctx, fmt.Sprintf("t%d:p", i), holds); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < holds; i++ {
		tag := fmt.Sprintf("t%d", i%tags)
		ttl := time.Duration(1+i%5) * time.Second
		if _, err := a.Reserve(ctx, req(fmt.Sprintf("%s:r%03d", tag, i), "u", ttl, line(tag+":p", 1, 0))); err != nil {
			t.Fatal(err)
		}
	}
	// Not yet due: nothing.
	if out, err := b.Expire(ctx, ck.Now().Add(999*time.Millisecond), holds); err != nil || len(out) != 0 {
		t.Fatalf("Expire before deadline = %d, %v; want none", len(out), err)
	}
	// Confirm one before it expires: it must never be expired.
	if _, err := b.Confirm(ctx, "t0:r000"); err != nil {
		t.Fatal(err)
	}
	ck.Advance(5 * time.Second)
	now := ck.Now()
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, s := range []inventory.Store{a, b} {
		for c := 0; c < callers; c++ {
			wg.Add(1)
			go func(s inventory.Store) {
				defer wg.Done()
				for {
					out, err := s.Expire(ctx, now, batchMax)
					if err != nil {
						t.Errorf("Expire = %v", err)
						return
					}
					if len(out) > batchMax {
						t.Errorf("Expire returned %d; max %d", len(out), batchMax)
					}
					if len(out) == 0 {
						return
					}
					mu.Lock()
					for _, r := range out {
						if r.State != inventory.StateReleased {
							t.Errorf("expired %s in state %v", r.ID, r.State)
						}
						seen[r.ID]++
					}
					mu.Unlock()
				}
			}(s)
		}
	}
	wg.Wait()
	if len(seen) != holds-1 {
		t.Fatalf("expired %d distinct holds; want %d", len(seen), holds-1)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s expired %d times", id, n)
		}
	}
	if seen["t0:r000"] != 0 {
		t.Errorf("the confirmed reservation was expired")
	}
	wantPool(t, a, "t0:p", holds-1, 0, 1)
	wantPool(t, a, "t1:p", holds, 0, 0)
}

// TestScanTags: Scan merges the tags in id order, whatever the tags look
// like, with pagination by cursor at every limit.
func TestScanTags(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s := open(t, srv, "", inventory.Options{})
	// '!' sorts below ':', so the ids of tag "a!" come before those of
	// "a" although the tag sorts after it.
	tags := []string{"b", "a", "a!", "ab", "a:", "~x", "~"}
	for _, tag := range tags {
		if err := s.CreatePool(ctx, tag+":p", 1000); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[inventory.State][]string{}
	for i := 0; i < 90; i++ {
		tag := tags[rng.IntN(len(tags))]
		id := fmt.Sprintf("%s:%c%d", tag, 'a'+rune(rng.IntN(26)), i)
		if _, err := s.Reserve(ctx, req(id, "u", time.Hour, line(tag+":p", 1, 0))); err != nil {
			t.Fatalf("Reserve(%s) = %v", id, err)
		}
		st := inventory.StateHeld
		switch rng.IntN(3) {
		case 1:
			if _, err := s.Confirm(ctx, id); err != nil {
				t.Fatal(err)
			}
			st = inventory.StatePaid
		case 2:
			if _, err := s.Release(ctx, id); err != nil {
				t.Fatal(err)
			}
			st = inventory.StateReleased
		}
		want[st] = append(want[st], id)
	}
	for st, ids := range want {
		sort.Strings(ids)
		for _, limit := range []int{1, 2, 5, 31, len(ids), 1000} {
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > len(ids)+1 {
					t.Fatalf("Scan(%v, limit %d) does not end", st, limit)
				}
				rs, next, err := s.Scan(ctx, st, cursor, limit)
				if err != nil {
					t.Fatalf("Scan(%v, %q, %d) = %v", st, cursor, limit, err)
				}
				if len(rs) > limit {
					t.Fatalf("Scan(%v, %q, %d) returned %d", st, cursor, limit, len(rs))
				}
				for _, r := range rs {
					if r.State != st {
						t.Fatalf("Scan(%v) returned %s in state %v", st, r.ID, r.State)
					}
					got = append(got, r.ID)
				}
				if next == "" {
					break
				}
				if len(rs) != limit || next != rs[len(rs)-1].ID {
					t.Fatalf("Scan(%v, %q, %d) = %d, next %q", st, cursor, limit, len(rs), next)
				}
				cursor = next
			}
			if fmt.Sprint(got) != fmt.Sprint(ids) {
				t.Fatalf("Scan(%v, limit %d) = %v; want %v", st, limit, got, ids)
			}
		}
		// A cursor between ids, and one past the end.
		rs, next, err := s.Scan(ctx, st, ids[0]+"\x00", 1000)
		if err != nil || len(rs) != len(ids)-1 || next != "" {
			t.Fatalf("Scan(%v) after %q = %d, %q, %v; want %d", st, ids[0], len(rs), next, err, len(ids)-1)
		}
		if rs, next, err := s.Scan(ctx, st, "~~~", 10); err != nil || len(rs) != 0 || next != "" {
			t.Fatalf("Scan(%v) past the end = %v, %q, %v", st, rs, next, err)
		}
	}
}

// TestServerKilled: with the server gone, calls fail with ErrUnavailable,
// never success, and return in bounded time.
func TestServerKilled(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := open(t, srv, "", inventory.Options{})
	if err := s.CreatePool(ctx, "s:a", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, req("s:1", "u", time.Minute, line("s:a", 1, 0))); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	_, err := s.Reserve(ctx, req("s:2", "u", time.Minute, line("s:a", 1, 0)))
	wantErr(t, "Reserve on a killed server", err, inventory.ErrUnavailable)
	_, err = s.Confirm(ctx, "s:1")
	wantErr(t, "Confirm on a killed server", err, inventory.ErrUnavailable)
	_, err = s.Pool(ctx, "s:a")
	wantErr(t, "Pool on a killed server", err, inventory.ErrUnavailable)
	_, err = s.Expire(ctx, time.Now(), 10)
	wantErr(t, "Expire on a killed server", err, inventory.ErrUnavailable)
	_, _, err = s.Scan(ctx, inventory.StateHeld, "", 10)
	wantErr(t, "Scan on a killed server", err, inventory.ErrUnavailable)
	wantErr(t, "CreatePool on a killed server", s.CreatePool(ctx, "s:b", 1), inventory.ErrUnavailable)
	_, err = s.SetOnHand(ctx, "s:a", 1, 1)
	wantErr(t, "SetOnHand on a killed server", err, inventory.ErrUnavailable)
	if ctx.Err() != nil {
		t.Fatalf("calls on a killed server took longer than the test's deadline")
	}
}

// TestDurableAcrossKill: what was answered yes survives a SIGKILL of the
// server (appendonly, appendfsync always) and a restart on the same data.
func TestDurableAcrossKill(t *testing.T) {
	srv := redistest.Start(t)
	ck := newClock()
	ctx := context.Background()
	s := open(t, srv, "dur", inventory.Options{Now: ck.Now})
	if err := s.CreatePool(ctx, "s:a", 10); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := s.Reserve(ctx, req(fmt.Sprintf("s:%d", i), "u", time.Minute, line("s:a", 2, 0))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Confirm(ctx, "s:1"); err != nil {
		t.Fatal(err)
	}
	srv.Stop() // SIGKILL
	srv2 := redistest.Start(t, "--dir", srv.Dir)
	s2 := open(t, srv2, "dur", inventory.Options{Now: ck.Now})
	wantPool(t, s2, "s:a", 2, 6, 2)
	if r, err := s2.Reservation(ctx, "s:1"); err != nil || r.State != inventory.StatePaid {
		t.Fatalf("Reservation after restart = %+v, %v; want paid", r, err)
	}
	ck.Advance(time.Minute)
	if out, err := s2.Expire(ctx, ck.Now(), 10); err != nil || len(out) != 3 {
		t.Fatalf("Expire after restart = %d, %v; want 3", len(out), err)
	}
	wantPool(t, s2, "s:a", 8, 0, 2)
}

func TestClosed(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s := open(t, srv, "", inventory.Options{})
	if err := s.CreatePool(ctx, "s:a", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Reserve(ctx, req("s:1", "u", time.Minute, line("s:a", 1, 0)))
	wantErr(t, "Reserve after Close", err, inventory.ErrClosed)
	_, err = s.Pool(ctx, "s:a")
	wantErr(t, "Pool after Close", err, inventory.ErrClosed)
	wantErr(t, "CreatePool after Close", s.CreatePool(ctx, "s:b", 1), inventory.ErrClosed)
	_, err = s.Expire(ctx, time.Now(), 1)
	wantErr(t, "Expire after Close", err, inventory.ErrClosed)
}

// TestServerRefuses: an error reply that is not an inventory answer (here
// OOM: the server refuses writes) is ErrUnavailable, and nothing changed.
func TestServerRefuses(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s := open(t, srv, "", inventory.Options{})
	if err := s.CreatePool(ctx, "s:a", 10); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePool(ctx, "s:b", 0); err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	if err := c.Do(ctx, c.B().ConfigSet().ParameterValue().ParameterValue("maxmemory", "1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Reserve(ctx, req("s:1", "u", time.Minute, line("s:a", 1, 0)))
	wantErr(t, "Reserve on a server out of memory", err, inventory.ErrUnavailable)
	wantErr(t, "Move on a server out of memory", s.Move(ctx, "s:a", "s:b", 1), inventory.ErrUnavailable)
	if err := c.Do(ctx, c.B().ConfigSet().ParameterValue().ParameterValue("maxmemory", "0").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	wantPool(t, s, "s:a", 10, 0, 0)
	wantPool(t, s, "s:b", 0, 0, 0)
	_, err = s.Reservation(ctx, "s:1")
	wantErr(t, "Reservation refused earlier", err, inventory.ErrReservationNotFound)
}

// TestCanceled: a canceled context is ErrUnavailable and the cause.
func TestCanceled(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, "", inventory.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.CreatePool(ctx, "s:a", 1)
	wantErr(t, "CreatePool canceled", err, inventory.ErrUnavailable)
	wantErr(t, "CreatePool canceled", err, context.Canceled)
	_, err = s.Pool(context.Background(), "s:a")
	wantErr(t, "Pool after canceled create", err, inventory.ErrPoolNotFound)
}

// TestTagEncoding: tags that cannot be written as they are (empty,
// starting with '~') get distinct keys from every other tag.
func TestTagEncoding(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s := open(t, srv, "", inventory.Options{})
	pools := []string{":p", "~:p", "~7e:p", "~:q", "7e:p", "~~:p", "~3a70:p"}
	for i, p := range pools {
		if err := s.CreatePool(ctx, p, int64(i+1)); err != nil {
			t.Fatalf("CreatePool(%q) = %v", p, err)
		}
	}
	for i, p := range pools {
		if got := mustPool(t, s, p); got.Supplied != int64(i+1) {
			t.Fatalf("Pool(%q).Supplied = %d; want %d", p, got.Supplied, i+1)
		}
	}
	if err := s.Move(ctx, "~:p", "~:q", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, req("~:r", "u", time.Minute, line("~:q", 5, 0))); err != nil {
		t.Fatal(err)
	}
	wantPool(t, s, "~:q", 0, 5, 0)
	wantPool(t, s, "~:p", 1, 0, 0)
}

// TestTwoNodesLastUnits: two nodes' callers race for one small pool until
// it is sold out; exactly the supplied units are won, no more, no fewer.
func TestTwoNodesLastUnits(t *testing.T) {
	const (
		supplied = 37
		callers  = 32 // per node
		tries    = 4  // per caller: 2*32*4 = 256 attempts for 37 units
	)
	srv := redistest.Start(t)
	ctx := context.Background()
	a := open(t, srv, "last", inventory.Options{})
	b := open(t, srv, "last", inventory.Options{})
	if err := a.CreatePool(ctx, "shop:sku", supplied); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	won := map[string]bool{}
	var wg sync.WaitGroup
	for n, s := range []inventory.Store{a, b} {
		for c := 0; c < callers; c++ {
			wg.Add(1)
			go func(n, c int, s inventory.Store) {
				defer wg.Done()
				for i := 0; i < tries; i++ {
					id := fmt.Sprintf("shop:n%d-c%d-%d", n, c, i)
					_, err := s.Reserve(ctx, req(id, fmt.Sprintf("u%d-%d", n, c), time.Minute, line("shop:sku", 1, 0)))
					if errors.Is(err, inventory.ErrSoldOut) {
						continue
					}
					if err != nil {
						t.Errorf("Reserve(%s) = %v", id, err)
						return
					}
					mu.Lock()
					won[id] = true
					mu.Unlock()
				}
			}(n, c, s)
		}
	}
	wg.Wait()
	if len(won) != supplied {
		t.Fatalf("%d reserves won; want exactly %d", len(won), supplied)
	}
	wantPool(t, b, "shop:sku", 0, supplied, 0)
	held, _, err := a.Scan(ctx, inventory.StateHeld, "", inventory.ScanLimitMax)
	if err != nil || len(held) != supplied {
		t.Fatalf("Scan(held) = %d, %v; want %d", len(held), err, supplied)
	}
	for _, r := range held {
		if !won[r.ID] {
			t.Errorf("Scan(held) lists %s, which no caller won", r.ID)
		}
	}
}
