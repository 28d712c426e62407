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
