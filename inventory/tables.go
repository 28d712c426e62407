package inventory

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unsafe"
)

// pool is one stock pool's counters. free is Available minus Short: the
// reserve path takes units with one CAS on it and never locks. Supplied is
// derived (max(free,0)+held+sold), so every snapshot keeps the identity.
type pool struct {
	free atomic.Int64
	held atomic.Int64
	sold atomic.Int64
	// onHand and seq are the feed state; written under mu, read lock-free.
	onHand atomic.Int64
	seq    atomic.Uint64
	// closed is set (under mu) by ClosePool, before the pool's per-user
	// counts are dropped: a closed pool takes no reserve.
	closed atomic.Bool
	id     string
	// idx is the pool's index in the table (records refer to pools by it).
	idx uint32
	// mu serializes the slow pool operations (feed, move, drain) so that
	// their durable record is written in the order they apply.
	mu sync.Mutex
	// net is free+held+sold, which only feed, move and drain change
	// (reserve, confirm, release and refund move units between the three).
	// Guarded by mu. The pebble backend persists it.
	net int64
	// ledger is the pool's transfer totals (transfer.go), nil until its
	// first transfer. Guarded by mu; replaced, never changed in place.
	ledger map[string]int64
	_      [64]byte // keep hot pools off each other's cache lines
}

// take removes q units from free if at least q are available.
func (p *pool) take(q int64) bool {
	for {
		v := p.free.Load()
		if v < q {
			return false
		}
		if p.free.CompareAndSwap(v, v-q) {
			return true
		}
	}
}

// snapshot reads the counters. Writers move units free->held->sold (and
// back) decrementing the source before incrementing the target, and this
// reads sold, then held, then free, so Held+Sold never counts a unit twice.
func (p *pool) snapshot() Pool {
	sold := p.sold.Load()
	held := p.held.Load()
	free := p.free.Load()
	s := Pool{ID: p.id, Held: held, Sold: sold, OnHand: p.onHand.Load(), Seq: p.seq.Load(), Closed: p.closed.Load()}
	if free >= 0 {
		s.Available = free
	} else {
		s.Short = -free
	}
	s.Supplied = s.Available + held + sold
	return s
}

// poolTable maps pool ids to pools, and pool indexes to pools. Reads are
// lock-free (open addressing over atomic pointers, load factor at most 1/2;
// indexes in chunks that never move); writers serialize on mu. Pools are
// never deleted.
type poolTable struct {
	mu    sync.Mutex
	tab   atomic.Pointer[poolSlots]
	byIdx atomic.Pointer[[]*[poolChunk]atomic.Pointer[pool]]
	n     int
	seed  maphash.Seed
}

const poolChunk = 256

// at returns the pool of index i, which exists.
func (t *poolTable) at(i uint32) *pool {
	return (*t.byIdx.Load())[i/poolChunk][i%poolChunk].Load()
}

type poolSlots struct {
	slots []atomic.Pointer[pool]
	mask  uint64
}

const poolSlotsMin = 64

func (t *poolTable) init() {
	t.seed = maphash.MakeSeed()
	t.tab.Store(&poolSlots{slots: make([]atomic.Pointer[pool], poolSlotsMin), mask: poolSlotsMin - 1})
}

func (t *poolTable) get(id string) *pool {
	tab := t.tab.Load()
	for i := maphash.String(t.seed, id) & tab.mask; ; i = (i + 1) & tab.mask {
		p := tab.slots[i].Load()
		if p == nil || p.id == id {
			return p
		}
	}
}

// insertLocked adds p; the caller holds mu and checked p.id is absent.
func (t *poolTable) insertLocked(p *pool) {
	tab := t.tab.Load()
	if (t.n+1)*2 > len(tab.slots) {
		bigger := &poolSlots{slots: make([]atomic.Pointer[pool], len(tab.slots)*2)}
		bigger.mask = uint64(len(bigger.slots) - 1)
		for i := range tab.slots {
			if q := tab.slots[i].Load(); q != nil {
				t.place(bigger, q)
			}
		}
		t.tab.Store(bigger)
		tab = bigger
	}
	p.idx = uint32(t.n) // before p is published
	var chunks []*[poolChunk]atomic.Pointer[pool]
	if c := t.byIdx.Load(); c != nil {
		chunks = *c
	}
	if t.n%poolChunk == 0 {
		chunks = append(chunks[:len(chunks):len(chunks)], new([poolChunk]atomic.Pointer[pool]))
		t.byIdx.Store(&chunks)
	}
	chunks[p.idx/poolChunk][p.idx%poolChunk].Store(p)
	t.place(tab, p)
	t.n++
}

func (t *poolTable) place(tab *poolSlots, p *pool) {
	for i := maphash.String(t.seed, p.id) & tab.mask; ; i = (i + 1) & tab.mask {
		if tab.slots[i].Load() == nil {
			tab.slots[i].Store(p)
			return
		}
	}
}

func (t *poolTable) all() []*pool {
	tab := t.tab.Load()
	var ps []*pool
	for i := range tab.slots {
		if p := tab.slots[i].Load(); p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// userTable counts each user's live (held or paid) units per pool, for
// per-user limits. Counts are atomics; a shard lock guards only map
// membership. An entry is dropped when its count returns to zero, so a user
// with no live units costs nothing.
//
// The map key is the pool's index (4 bytes) followed by the user id, one
// string, so that lookups take the map's string fast path; the key of a
// lookup is built on the stack (see userKey).
type userTable struct {
	seed   maphash.Seed
	shards [userShards]userShard
}

const userShards = 256

// userKeyBuf holds a key: pool index and user id.
type userKeyBuf [4 + IDLenMax]byte

// userKey writes the key of (pool, user) into buf and returns it as a
// string aliasing buf: valid for lookups only, while buf lives; a stored
// key must be cloned.
func userKey(buf *userKeyBuf, pool uint32, user string) string {
	if len(user) > IDLenMax {
		// Validate refuses such users; a truncated key could merge two.
		panic("BUG: inventory: user id longer than IDLenMax in the user table")
	}
	binary.LittleEndian.PutUint32(buf[:4], pool)
	n := 4 + copy(buf[4:], user)
	return unsafe.String(&buf[0], n)
}

// userKeyOf reports whether k, a key of userKey, is a count of pool.
func userKeyOf(k string, pool *pool) bool {
	return len(k) >= 4 && binary.LittleEndian.Uint32([]byte(k[:4])) == pool.idx
}

// userCount is one (pool, user) count; -1 marks an entry being dropped.
type userCount struct{ n atomic.Int64 }

// newUserCount allocates a count holding q and a copy of key after it, in
// one allocation, and returns the count and the copy (the map key).
func newUserCount(key string, q int64) (*userCount, string) {
	// The size is rounded up to a multiple of 8, so it is at least 16
	// (an 8-byte count and a 4-byte pool index, rounded up): the block
	// skips the tiny allocator and starts at a multiple of its size
	// class, itself a multiple of 8, so the atomic is 8-byte aligned.
	b := make([]byte, (8+len(key)+7)&^7)
	c := (*userCount)(unsafe.Pointer(&b[0]))
	c.n.Store(q)
	n := copy(b[8:], key)
	return c, unsafe.String(&b[8], n)
}

type userShard struct {
	mu sync.RWMutex
	m  map[string]*userCount
	// peak is the most entries m held since it was made: a Go map keeps
	// its largest size until replaced, so once a crowd's counts are gone
	// the map is rebuilt at its new size (shrinkLocked).
	peak int
	_    [32]byte
}

// userShrinkPeakMin: a shard map that never held more entries is left as
// it is (256 shards: about 16,000 users in all).
const userShrinkPeakMin = 64

// shrinkLocked rebuilds the shard's map once it holds under an eighth of
// its peak. The counts are pointers, so a caller holding one (acquire,
// between its lookup and its CAS) still holds the entry of the new map.
func (sh *userShard) shrinkLocked() {
	if sh.peak < userShrinkPeakMin || len(sh.m) >= sh.peak/8 {
		return
	}
	m := make(map[string]*userCount, len(sh.m))
	for k, c := range sh.m {
		m[k] = c
	}
	sh.m, sh.peak = m, len(m)
}

func (t *userTable) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].m = make(map[string]*userCount)
	}
}

func (t *userTable) shard(user string) *userShard {
	return &t.shards[maphash.String(t.seed, user)%userShards]
}

// acquire adds q to the user's units in pool unless that would pass limit
// (0 means no limit) or the pool is closed (a new count is made under the
// shard's lock after checking closed, and dropPool marks the counts it
// drops, so no count of a closed pool grows once dropPool has run).
func (t *userTable) acquire(pool *pool, user string, q, limit int64) bool {
	sh := t.shard(user)
	var buf userKeyBuf
	k := userKey(&buf, pool.idx, user)
	for {
		sh.mu.RLock()
		c := sh.m[k]
		sh.mu.RUnlock()
		if c == nil {
			if limit > 0 && q > limit {
				return false
			}
			sh.mu.Lock()
			c = sh.m[k]
			if c == nil {
				if pool.closed.Load() {
					sh.mu.Unlock()
					return false
				}
				var key string
				c, key = newUserCount(k, q)
				sh.m[key] = c
				sh.peak = max(sh.peak, len(sh.m))
				sh.mu.Unlock()
				return true
			}
			sh.mu.Unlock()
		}
		for {
			v := c.n.Load()
			if v < 0 {
				break // being dropped: look the entry up again
			}
			if limit > 0 && v+q > limit {
				return false
			}
			if c.n.CompareAndSwap(v, v+q) {
				return true
			}
		}
	}
}

// release gives back q units acquired before. The counts of a closed pool
// may have been dropped (dropPool): there is nothing to give back to.
func (t *userTable) release(pool *pool, user string, q int64) {
	sh := t.shard(user)
	var buf userKeyBuf
	k := userKey(&buf, pool.idx, user)
	sh.mu.RLock()
	c := sh.m[k]
	sh.mu.RUnlock()
	if c == nil {
		if pool.closed.Load() {
			return
		}
		panic("BUG: inventory: releasing units of an unknown user count")
	}
	v := c.n.Add(-q)
	if v < 0 {
		if pool.closed.Load() {
			return
		}
		panic("BUG: inventory: user count below zero")
	}
	if v == 0 {
		sh.mu.Lock()
		if sh.m[k] == c && c.n.CompareAndSwap(0, -1) {
			delete(sh.m, k)
			sh.shrinkLocked()
		}
		sh.mu.Unlock()
	}
}

// dropPool drops every count of pool, which is closed, and rebuilds the
// shard maps that shrank below an eighth of their peak. It visits every
// shard (a count's shard is picked by its user), each under its lock for
// one pass over its map. It returns the counts dropped.
func (t *userTable) dropPool(pool *pool) int {
	if !pool.closed.Load() {
		panic("BUG: inventory: dropping the counts of an open pool")
	}
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		before := len(sh.m)
		for k, c := range sh.m {
			if userKeyOf(k, pool) {
				c.n.Store(-1) // a concurrent acquire looks again, and finds none
				delete(sh.m, k)
			}
		}
		n += before - len(sh.m)
		sh.peak = max(sh.peak, before)
		sh.shrinkLocked()
		sh.mu.Unlock()
	}
	return n
}

// poolLen returns the counts of pool (tests).
func (t *userTable) poolLen(pool *pool) int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for k := range sh.m {
			if userKeyOf(k, pool) {
				n++
			}
		}
		sh.mu.RUnlock()
	}
	return n
}

func (t *userTable) get(pool *pool, user string) int64 {
	sh := t.shard(user)
	var buf userKeyBuf
	sh.mu.RLock()
	c := sh.m[userKey(&buf, pool.idx, user)]
	sh.mu.RUnlock()
	if c == nil {
		return 0
	}
	return max(c.n.Load(), 0)
}

func (t *userTable) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}
