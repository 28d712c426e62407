package gateway

import (
	"sync"
	"sync/atomic"
	"testing"
)

// hammerSemaphore runs workers goroutines, each trying rounds times to
// take a slot of s and, when admitted, running held(i) before giving it
// back. It fails t if more than max were ever inside at once, if not
// every try was admitted or refused (or none was admitted), or if a slot
// stayed taken.
func hammerSemaphore(t *testing.T, s *semaphore, max int64, workers, rounds int, held func(i int)) {
	t.Helper()
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
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				if held != nil {
					held(i)
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
	if a, r := admitted.Load(), refused.Load(); a+r != int64(workers*rounds) || a == 0 {
		t.Errorf("admitted %d + refused %d; want %d in all, some admitted", a, r, workers*rounds)
	}
	if n := s.inflight(); n != 0 {
		t.Errorf("in flight after all released = %d; want 0", n)
	}
}

func TestSemaphoreBound(t *testing.T) {
	const max, workers, rounds = 7, 64, 200
	s := newSemaphore(max)
	hammerSemaphore(t, s, max, workers, rounds, nil)
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
