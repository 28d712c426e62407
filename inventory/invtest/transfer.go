package invtest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/surge-retail/surge/inventory"
)

// testTransfer: Send takes what is available (up to the quantity) and
// counts it as sent; Receive credits the difference of a sent total once,
// whatever order and however often the totals arrive; the totals read
// back from Ledger.
func testTransfer(t *testing.T, f Factory) {
	h := newH(t, f)
	h.create("ta:x", 10)
	h.create("tb:y", 0)
	send := func(qty, wantTaken, wantSent int64) {
		t.Helper()
		taken, sent, err := h.s.Send(h.ctx, "ta:x", "tb:y", qty)
		if err != nil || taken != wantTaken || sent != wantSent {
			t.Fatalf("Send(%d) = %d, %d, %v; want %d, %d", qty, taken, sent, err, wantTaken, wantSent)
		}
		h.identity()
	}
	recv := func(sent, want int64) {
		t.Helper()
		n, err := h.s.Receive(h.ctx, "tb:y", "ta:x", sent)
		if err != nil || n != want {
			t.Fatalf("Receive(%d) = %d, %v; want %d", sent, n, err, want)
		}
		h.identity()
	}
	send(4, 4, 4)
	h.want("ta:x", 6, 0, 0)
	h.want("tb:y", 0, 0, 0) // in flight: in neither pool
	recv(4, 4)
	recv(4, 0) // again: nothing
	recv(3, 0) // an older total: nothing
	h.want("tb:y", 4, 0, 0)
	send(100, 6, 10) // what there is
	send(1, 0, 10)   // nothing left: no error
	h.want("ta:x", 0, 0, 0)
	recv(10, 6)
	h.want("tb:y", 10, 0, 0)
	l, err := h.s.Ledger(h.ctx, "ta:x")
	if err != nil || l.Sent["tb:y"] != 10 || len(l.Received) != 0 || l.Available != 0 || l.ID != "ta:x" {
		t.Fatalf("Ledger(ta:x) = %+v, %v; want sent 10 to tb:y", l, err)
	}
	l, err = h.s.Ledger(h.ctx, "tb:y")
	if err != nil || l.Received["ta:x"] != 10 || len(l.Sent) != 0 || l.Available != 10 || l.Supplied != 10 {
		t.Fatalf("Ledger(tb:y) = %+v, %v; want received 10 from ta:x", l, err)
	}
	// Units come back the same way; a reserve between the steps works.
	if _, err := h.s.Reserve(h.ctx, req("tb:r1", "u", line("tb:y", 3, 0))); err != nil {
		t.Fatal(err)
	}
	taken, sent, err := h.s.Send(h.ctx, "tb:y", "ta:x", 20)
	if err != nil || taken != 7 || sent != 7 {
		t.Fatalf("Send back = %d, %d, %v; want 7, 7", taken, sent, err)
	}
	if n, err := h.s.Receive(h.ctx, "ta:x", "tb:y", 7); err != nil || n != 7 {
		t.Fatalf("Receive back = %d, %v", n, err)
	}
	h.want("ta:x", 7, 0, 0)
	h.want("tb:y", 0, 3, 0)
	// Moves and the feed keep the totals.
	h.create("ta:z", 0)
	if err := h.s.Move(h.ctx, "ta:x", "ta:z", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.SetOnHand(h.ctx, "ta:x", 5, 1); err != nil {
		t.Fatal(err)
	}
	if l, err := h.s.Ledger(h.ctx, "ta:x"); err != nil || l.Sent["tb:y"] != 10 || l.Received["tb:y"] != 7 {
		t.Fatalf("Ledger(ta:x) after a move and a feed = %+v, %v", l, err)
	}
	if n, err := h.s.Receive(h.ctx, "ta:x", "tb:y", 7); err != nil || n != 0 {
		t.Fatalf("Receive again after a move = %d, %v; want 0", n, err)
	}

	// Bad input changes nothing.
	for _, c := range []struct {
		from, to string
		n        int64
	}{{"ta:x", "ta:x", 1}, {"ta:x", "tb:y", 0}, {"ta:x", "tb:y", -1}, {"", "tb:y", 1}, {"ta:x", "t b", 1}, {"ta:x", "tb:y", inventory.UnitsMax + 1}} {
		_, _, err := h.s.Send(h.ctx, c.from, c.to, c.n)
		wantErr(t, fmt.Sprintf("Send(%q, %q, %d)", c.from, c.to, c.n), err, inventory.ErrInvalid)
		_, err = h.s.Receive(h.ctx, c.to, c.from, c.n)
		wantErr(t, fmt.Sprintf("Receive(%q, %q, %d)", c.to, c.from, c.n), err, inventory.ErrInvalid)
	}
	_, _, err = h.s.Send(h.ctx, "tc:none", "tb:y", 1)
	wantErr(t, "Send(unknown)", err, inventory.ErrPoolNotFound)
	_, err = h.s.Receive(h.ctx, "tc:none", "ta:x", 1)
	wantErr(t, "Receive(unknown)", err, inventory.ErrPoolNotFound)
	_, err = h.s.Ledger(h.ctx, "tc:none")
	wantErr(t, "Ledger(unknown)", err, inventory.ErrPoolNotFound)
	h.want("ta:x", 11, 0, 0) // 7, 1 moved out, 5 from the feed
	h.want("tb:y", 0, 3, 0)
}

// testTransferConcurrent: goroutines send units back and forth between
// three pools of three tags and deliver the totals in any order, some
// twice, some never (another goroutine's later total covers them), while
// others reserve; at the end, once every last total is delivered, every
// unit is in exactly one pool.
func testTransferConcurrent(t *testing.T, f Factory) {
	h := newH(t, f)
	pools := []string{"ca:p", "cb:p", "cc:p"}
	const supplied = 300
	for _, p := range pools {
		h.create(p, supplied)
	}
	const workers, ops = 8, 60
	var wg sync.WaitGroup
	var mu sync.Mutex
	reserved := int64(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range ops {
				a := rng.IntN(len(pools))
				b := (a + 1 + rng.IntN(len(pools)-1)) % len(pools)
				if i%5 == 0 {
					id := fmt.Sprintf("%s:w%d-%d", inventory.Tag(pools[a]), w, i)
					if _, err := h.s.Reserve(h.ctx, req(id, "u", line(pools[a], 1, 0))); err == nil {
						mu.Lock()
						reserved++
						mu.Unlock()
					}
					continue
				}
				_, sent, err := h.s.Send(h.ctx, pools[a], pools[b], 1+rng.Int64N(5))
				if err != nil {
					t.Errorf("Send = %v", err)
					return
				}
				if sent == 0 || rng.IntN(4) == 0 {
					continue // left in flight for the final delivery
				}
				for range 1 + rng.IntN(2) {
					if _, err := h.s.Receive(h.ctx, pools[b], pools[a], sent); err != nil {
						t.Errorf("Receive = %v", err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	// Deliver every last total, as a sweeper would.
	for _, from := range pools {
		l, err := h.s.Ledger(h.ctx, from)
		if err != nil {
			t.Fatal(err)
		}
		for to, sent := range l.Sent {
			if _, err := h.s.Receive(h.ctx, to, from, sent); err != nil {
				t.Fatal(err)
			}
		}
	}
	var total, held int64
	for _, p := range pools {
		l, err := h.s.Ledger(h.ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		total += l.Supplied
		held += l.Held
		for from, got := range l.Received {
			fl, err := h.s.Ledger(h.ctx, from)
			if err != nil {
				t.Fatal(err)
			}
			if fl.Sent[p] != got {
				t.Fatalf("%s received %d from %s, which sent %d", p, got, from, fl.Sent[p])
			}
		}
	}
	if total != supplied*int64(len(pools)) || held != reserved {
		t.Fatalf("after transfers: supplied %d, held %d; want %d, %d", total, held, supplied*len(pools), reserved)
	}
}
