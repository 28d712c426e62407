package engine

import (
	"container/list"
	"runtime/debug"
	"time"

	"golang.org/x/time/rate"
)

// Memory back to idle (DESIGN.md, "Memory, budgeted like time"): after a
// crowd has gone, the per-user state it left behind in memory is dropped
// where dropping changes no answer, and the maps that held it are rebuilt
// at their new size (a Go map keeps its largest size until replaced).

// pruneRoundMax bounds the entries one prune looks at per LRU shard, so a
// sweep stays short; a large crowd is dropped over a few sweeps.
const pruneRoundMax = 16384

// pruneIf drops entries from the least recently used end of each shard
// while drop says so, looking at most at pruneRoundMax entries per shard,
// and rebuilds a shard's map once it holds under an eighth of what it
// held at its largest. It returns the entries dropped.
func (l *lru[V]) pruneIf(drop func(V) bool) int {
	return l.pruneEntries(func(en *lruEntry[V]) bool { return drop(en.val) })
}

// pruneIdle drops the entries last used before `before` (in the unit of
// l.stamp, which must be set), as pruneIf does.
func (l *lru[V]) pruneIdle(before int64) int {
	if l.stamp == nil {
		panic("BUG: engine: pruneIdle of an LRU without stamps")
	}
	return l.pruneEntries(func(en *lruEntry[V]) bool { return en.used < before })
}

func (l *lru[V]) pruneEntries(drop func(*lruEntry[V]) bool) int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		// The largest size seen by a prune (every sweep): close enough to
		// the map's own largest without a word in the served path.
		s.peak = max(s.peak, len(s.items))
		for j := 0; j < pruneRoundMax; j++ {
			e := s.order.Back()
			if e == nil || !drop(e.Value.(*lruEntry[V])) {
				break
			}
			s.order.Remove(e)
			delete(s.items, e.Value.(*lruEntry[V]).key)
			n++
		}
		s.shrinkLocked()
		s.mu.Unlock()
	}
	return n
}

// shrinkLocked rebuilds the shard's map when it holds under an eighth of
// its largest size (and that size was worth it).
func (s *lruShard[V]) shrinkLocked() {
	if s.peak < shrinkPeakMin || len(s.items) >= s.peak/8 {
		return
	}
	m := make(map[string]*list.Element, len(s.items))
	for k, v := range s.items {
		m[k] = v
	}
	s.items, s.peak = m, len(m)
}

// shrinkPeakMin: maps that never held more entries are left as they are.
const shrinkPeakMin = 1024

// Prune drops the token buckets that are full again: a full bucket allows
// exactly what a new one would, so dropping it changes no verdict. The
// sweeper calls it; after a sale's crowd has gone, its users' buckets go.
func (c *riskChain) Prune(now time.Time) int {
	full := func(lim *rate.Limiter) bool { return lim.TokensAt(now) >= float64(lim.Burst()) }
	n := 0
	if c.users != nil {
		n += c.users.pruneIf(full)
	}
	if c.ips != nil {
		n += c.ips.pruneIf(full)
	}
	return n
}

// pruner is a risk hook that keeps memory it can drop when idle.
type pruner interface {
	Prune(now time.Time) int
}

// pruneRisk lets the risk hook drop what it no longer needs.
func (e *Engine) pruneRisk(now time.Time) {
	if p, ok := e.risk.(pruner); ok {
		if p.Prune(now) >= droppedLargeMin {
			e.memoryDropped()
		}
	}
}

const (
	// accountsIdleFor: a cached first-seen time unused for this long is
	// dropped (a user who comes back costs one read of the records).
	accountsIdleFor = time.Minute
	// accountsPruneEvery bounds how often the cache is pruned.
	accountsPruneEvery = 10 * time.Second
	// answersIdleFor: a kept idempotency answer unread for this long
	// leaves the memory cache (retries come within seconds).
	answersIdleFor = 5 * time.Minute
	// droppedLargeMin: a prune that drops at least this many entries is
	// a crowd gone (memoryDropped).
	droppedLargeMin = 4096
	// freeOSMemoryEvery bounds how often the sweeper hands freed memory
	// back to the operating system.
	freeOSMemoryEvery = time.Minute
)

// pruneAccounts drops the first-seen times nobody asked for lately, and
// the kept idempotency answers likewise (both are read again from the
// records when asked). The first-seen cache is pruned at most every
// accountsPruneEvery: a prune looks at every entry (it has no order of
// use to stop early on).
func (e *Engine) pruneAccounts(now time.Time) {
	n := 0
	if now.Sub(e.accountsPrunedAt) >= accountsPruneEvery {
		e.accountsPrunedAt = now
		n += e.accounts.pruneIdle(now.Add(-accountsIdleFor).Unix())
	}
	n += e.idem.PruneIdle(now.Add(-answersIdleFor))
	if n >= droppedLargeMin {
		e.memoryDropped()
	}
}

// memoryDropped notes that a crowd's memory was dropped (a sale finished,
// a large prune): the sweep ends with returnMemory.
func (e *Engine) memoryDropped() { e.freeOSPending.Store(true) }

// returnMemory hands the heap freed by the drops back to the operating
// system at once (debug.FreeOSMemory: a collection, then every free page
// returned), at most once per freeOSMemoryEvery. Without it the runtime's
// scavenger returns those pages slowly, and the process stays at its peak
// resident size for minutes after a sale. It runs in the sweeper, never
// in a request; it costs a full collection (tens of milliseconds for a
// heap of tens of megabytes) and the page faults of memory used again.
func (e *Engine) returnMemory(now time.Time) {
	if !e.freeOSPending.Load() || now.Sub(e.freedOSAt) < freeOSMemoryEvery {
		return
	}
	e.freeOSPending.Store(false)
	e.freedOSAt = now
	e.freedOS.Add(1)
	debug.FreeOSMemory()
}
