package engine

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/puzpuzpuz/xsync/v4"
)

// A bounded concurrent map for per-key state that every attempt reads
// (the risk hook's devices and addresses whose links are counted, the page
// tokens seen, the accounts' first sessions). The LRU (idempotency.go)
// locks its shard and moves the entry to the front of its list on every
// hit; when every attempt comes from one address (a campus NAT, surge
// bench's loopback crowd), they all queue on that one shard's lock. Here a
// hit is a lock-free read (xsync.Map) and at most one atomic store of the
// entry's last-used stamp, only when the stamp moved. Memory stays bounded
// as the LRU's: an insert past max entries has the least recently used
// eighth evicted (by stamp: a cut found from a sample of the stamps), so
// one eviction's scan is paid for by the max/8 inserts that follow it. The
// scan runs in a goroutine of its own (one at a time): a full map of the
// risk hook's default size takes milliseconds to scan, and the insert that
// passed the bound, with every insert behind it, would wait that long.
// Inserts wait only when the map reaches max plus an eighth (hardMax):
// the evictions fell behind.

// touchSampleMax bounds the stamps one eviction sorts to find its cut.
const touchSampleMax = 1024

type touchMap[K comparable, V any] struct {
	m   *xsync.Map[K, *touchEntry[V]]
	n   atomic.Int64 // entries (an insert adds one, a delete takes one)
	max int
	// evictMu lets one eviction run at a time. Inserts past hardMax wait
	// for it, so the map never holds more than hardMax plus the inserts
	// in flight.
	evictMu sync.Mutex
}

type touchEntry[V any] struct {
	val  V
	used atomic.Int64 // last-used stamp (the caller's clock and unit)
}

// touch stamps e used at now (a store only when the stamp moved forward:
// readers of a hot entry share its cache line instead of passing it
// around).
func (e *touchEntry[V]) touch(now int64) {
	if e.used.Load() < now {
		e.used.Store(now)
	}
}

func newTouchMap[K comparable, V any](entriesMax int) *touchMap[K, V] {
	return &touchMap[K, V]{m: xsync.NewMap[K, *touchEntry[V]](), max: max(1, entriesMax)}
}

// Get returns the value of key and stamps it used at now.
func (t *touchMap[K, V]) Get(key K, now int64) (V, bool) {
	if e, ok := t.m.Load(key); ok {
		e.touch(now)
		return e.val, true
	}
	var zero V
	return zero, false
}

// GetOrAdd returns the value of key, adding mk() when absent; either way
// the entry is stamped used at now.
func (t *touchMap[K, V]) GetOrAdd(key K, now int64, mk func() V) V {
	if e, ok := t.m.Load(key); ok {
		e.touch(now)
		return e.val
	}
	e, loaded := t.m.LoadOrCompute(key, func() (*touchEntry[V], bool) {
		en := &touchEntry[V]{val: mk()}
		en.used.Store(now)
		return en, false
	})
	if loaded {
		e.touch(now)
	} else {
		t.added()
	}
	return e.val
}

// Add sets key to v, stamped used at now.
func (t *touchMap[K, V]) Add(key K, v V, now int64) {
	en := &touchEntry[V]{val: v}
	en.used.Store(now)
	if _, loaded := t.m.LoadAndStore(key, en); !loaded {
		t.added()
	}
}

// added counts an insert. Past max it starts an eviction in the
// background unless one runs; past hardMax it evicts itself, after the
// one that runs.
func (t *touchMap[K, V]) added() {
	n := t.n.Add(1)
	switch {
	case n <= int64(t.max):
	case n > t.hardMax():
		t.evict()
	case t.evictMu.TryLock():
		go t.evictBackground()
	}
}

// hardMax is the size at which inserts wait for an eviction.
func (t *touchMap[K, V]) hardMax() int64 { return int64(t.max) + int64(max(1, t.max/8)) }

// evictBackground evicts with evictMu held (taken by its starter), and
// again while inserts that found it held took the map past max.
func (t *touchMap[K, V]) evictBackground() {
	for {
		t.evictLocked()
		t.evictMu.Unlock()
		if t.n.Load() <= int64(t.max) || !t.evictMu.TryLock() {
			return
		}
	}
}

// evict drops the least recently used entries until the map holds at most
// 7/8 of max (one eighth at least one entry), after any eviction that
// runs.
func (t *touchMap[K, V]) evict() {
	t.evictMu.Lock()
	defer t.evictMu.Unlock()
	t.evictLocked()
}

// evictLocked is evict with evictMu held.
func (t *touchMap[K, V]) evictLocked() {
	// Three rounds at most: the first by the sampled cut, the next ones
	// (when the sample misjudged, or inserts raced in) whatever comes.
	for round := 0; round < 3; round++ {
		n := t.n.Load()
		if n <= int64(t.max) {
			return
		}
		drop := n - int64(t.max) + int64(t.max/8)
		cut := int64(math.MaxInt64)
		if round == 0 {
			cut = t.cut(drop, n)
		}
		var dropped int64
		t.dropWhere(func(e *touchEntry[V]) (bool, bool) {
			if dropped >= drop {
				return false, true
			}
			if e.used.Load() <= cut {
				dropped++
				return true, dropped >= drop
			}
			return false, false
		})
	}
}

// cut estimates the stamp at or under which drop of the n entries lie.
func (t *touchMap[K, V]) cut(drop, n int64) int64 {
	sample := make([]int64, 0, min(touchSampleMax, n))
	t.m.RangeRelaxed(func(_ K, e *touchEntry[V]) bool {
		sample = append(sample, e.used.Load())
		return len(sample) < cap(sample)
	})
	if len(sample) == 0 {
		return math.MaxInt64
	}
	slices.Sort(sample)
	i := int(float64(len(sample))*float64(drop)/float64(n)) - 1
	return sample[min(max(i, 0), len(sample)-1)]
}

// dropWhere deletes the entries f says to (f also says when to stop) and
// returns how many it deleted.
func (t *touchMap[K, V]) dropWhere(f func(e *touchEntry[V]) (del, stop bool)) int {
	n := t.m.DeleteMatching(func(_ K, e *touchEntry[V]) (bool, bool) { return f(e) })
	t.n.Add(-int64(n))
	return n
}

// pruneIdle drops the entries last used before `before` (the stamps'
// unit) and returns how many.
func (t *touchMap[K, V]) pruneIdle(before int64) int {
	return t.dropWhere(func(e *touchEntry[V]) (bool, bool) { return e.used.Load() < before, false })
}

// Len returns the number of entries.
func (t *touchMap[K, V]) Len() int { return int(t.n.Load()) }
