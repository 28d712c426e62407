package gateway

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestSemaphoreBound(t *testing.T) {
	const max, workers, rounds = 7, 64, 200
	s := newSemaphore(max)
	var peak, admitted, refused atomic.Int64
	var inside atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if !s.tryAcquire() {
					refused.Add(1)
					continue
				}
				n := inside.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				admitted.Add(1)
				inside.Add(-1)
				s.release()
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > max {
		t.Errorf("peak in flight = %d; want <= %d", p, max)
	}
	if a, r := admitted.Load(), refused.Load(); a+r != workers*rounds || a == 0 {
		t.Errorf("admitted %d + refused %d != %d", a, r, workers*rounds)
	}
	if n := s.inflight(); n != 0 {
		t.Errorf("inflight after all released = %d; want 0", n)
	}
	// Exactly max slots without releases.
	for i := 0; i < max; i++ {
		if !s.tryAcquire() {
			t.Fatalf("tryAcquire %d refused; want admitted", i)
		}
	}
	if s.tryAcquire() {
		t.Fatal("tryAcquire over max admitted")
	}
}

func TestSaleGate(t *testing.T) {
	g := newSaleGates(4)
	var slots []*atomic.Int64
	for i := 0; i < 8; i++ { // remaining 2 -> 8 slots
		c, ok := g.admit("f1", 2)
		if !ok {
			t.Fatalf("admit %d refused; want 8 admitted", i)
		}
		slots = append(slots, c)
	}
	if _, ok := g.admit("f1", 2); ok {
		t.Fatal("9th admit with remaining 2, factor 4: admitted; want refused")
	}
	// Another sale has its own gate.
	if _, ok := g.admit("f2", 1); !ok {
		t.Fatal("admit of another sale refused")
	}
	// Remaining shrinking tightens the gate for newcomers.
	(*gateSlot)(slots[0]).release()
	if _, ok := g.admit("f1", 1); ok {
		t.Fatal("admit with remaining 1 and 7 in flight: admitted; want refused")
	}
	(*gateSlot)(nil).release() // no-op
	// Huge remaining does not overflow.
	if _, ok := g.admit("f3", 1<<62); !ok {
		t.Fatal("admit with huge remaining refused")
	}
}
