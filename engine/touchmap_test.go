package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTouchMapEvictsLeastRecentlyUsed: past max, the entries used longest
// ago go (an eighth of max at once), the ones used lately stay.
func TestTouchMapEvictsLeastRecentlyUsed(t *testing.T) {
	const max = 100
	m := newTouchMap[string, int](max)
	for i := range max {
		if v := m.GetOrAdd(fmt.Sprint("k", i), int64(i+1), func() int { return i }); v != i {
			t.Fatalf("GetOrAdd(k%d) = %d; want %d", i, v, i)
		}
	}
	for i := range 10 { // the first ten used again, last
		if v, ok := m.Get(fmt.Sprint("k", i), 1000); !ok || v != i {
			t.Fatalf("Get(k%d) = %d, %v; want %d, true", i, v, ok, i)
		}
	}
	m.Add("new", -1, 1001)
	m.evict() // waits for the eviction the insert started, which leaves nothing to do
	if n := m.Len(); n != max+1-(1+max/8) || n != m.m.Size() {
		t.Fatalf("Len = %d (map %d) after one insert past %d; want %d", n, m.m.Size(), max, max+1-(1+max/8))
	}
	for i := range 10 {
		if _, ok := m.Get(fmt.Sprint("k", i), 0); !ok {
			t.Fatalf("k%d, used last, was evicted", i)
		}
	}
	if _, ok := m.Get("new", 0); !ok {
		t.Fatal("the new entry was evicted")
	}
	for i := 10; i < 10+1+max/8; i++ {
		if _, ok := m.Get(fmt.Sprint("k", i), 0); ok {
			t.Fatalf("k%d, among the least recently used, is still there", i)
		}
	}
	if n := m.pruneIdle(1000); n != max+1-(1+max/8)-11 || m.Len() != 11 || m.m.Size() != 11 {
		t.Fatalf("pruneIdle dropped %d, %d left; want %d dropped, 11 left (used at 1000 or later)", n, m.Len(), max+1-(1+max/8)-11)
	}
}

// TestTouchMapBoundedConcurrent: goroutines adding new keys and reading
// hot ones at once never take the map past hardMax plus the inserts in
// flight, its count stays exact, and once they stop and the evictions
// end it is back within max.
func TestTouchMapBoundedConcurrent(t *testing.T) {
	const max, workers, keys = 512, 8, 5000
	m := newTouchMap[string, int](max)
	var peak atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range keys {
				now := int64(i)
				m.GetOrAdd(fmt.Sprint("hot", i%4), now, func() int { return -1 })
				m.GetOrAdd(fmt.Sprintf("w%d-%d", w, i), now, func() int { return i })
				for n := int64(m.m.Size()); ; {
					// An atomic maximum: a plain load-then-store could
					// lose a higher peak to a lower one.
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	m.evict() // after the background ones
	if n, size := m.Len(), m.m.Size(); n != size || n > max {
		t.Fatalf("Len = %d, map holds %d; want equal and at most %d", n, size, max)
	}
	if p := peak.Load(); p > m.hardMax()+workers {
		t.Fatalf("map held %d entries at its peak; want at most %d", p, m.hardMax()+workers)
	}
}

// TestTouchMapInsertsDoNotWaitForEviction: while an eviction runs (its
// lock held here), inserts past max return at once; the insert past
// hardMax waits for it and then brings the map back within max.
func TestTouchMapInsertsDoNotWaitForEviction(t *testing.T) {
	const max = 64
	m := newTouchMap[string, int](max)
	for i := range max {
		m.Add(fmt.Sprint("k", i), i, int64(i))
	}
	m.evictMu.Lock() // an eviction in progress
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range int(m.hardMax()) - max {
			m.Add(fmt.Sprint("n", i), i, 1000)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // only if they block
		m.evictMu.Unlock()
		t.Fatal("inserts past max, within hardMax, waited for the eviction in progress")
	}
	if n := m.Len(); n != int(m.hardMax()) {
		t.Fatalf("Len = %d with an eviction in progress; want hardMax %d", n, m.hardMax())
	}
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		m.Add("last", 0, 2000) // past hardMax: waits, then evicts
	}()
	m.evictMu.Unlock()
	<-waited
	if n := m.Len(); n > max {
		t.Fatalf("Len = %d after the insert past hardMax; want at most %d", n, max)
	}
	if _, ok := m.Get("last", 0); !ok {
		t.Fatal("the newest entry was evicted")
	}
}
