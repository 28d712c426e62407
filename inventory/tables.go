package inventory

import (
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
// per-user limits. Counts are atomics; an entry is dropped when its count
// returns to zero, so a user with no live units costs nothing.
//
// Lookups take no lock: each shard is an open-addressing table of atomic
// pointers to counts (linear probing, at most half full counting
// tombstones), and a shard's mutex serializes only inserts and drops. A
// count carries its key (pool index and user) and the key's hash, so a
// lookup hashes the user once (the hash picks the shard and the slot) and
// builds no key. A reserve's lookup is then a few plain loads where a
// read-locked map cost two atomic read-modify-writes and two hashes.
type userTable struct {
	seed   maphash.Seed
	shards [userShards]userShard
}

const (
	userShards = 256
	// userSlotsMin is a shard table's size when it holds few counts
	// (256 shards: 2,048 slots, 16 KiB, in all).
	userSlotsMin = 8
)

// userCount is one (pool, user) count; -1 marks an entry being dropped.
// The user id's bytes follow userLen in the same allocation
// (newUserCount), so a count of a short user id takes 24 bytes.
type userCount struct {
	n    atomic.Int64
	pool uint32
	// hash is the low 32 bits of the key's hash: the shard and slot bits
	// (rebuilds place by it) and a quick check before the user id's bytes.
	hash    uint32
	userLen uint8
}

// userCountUserOff is where the user id's bytes start.
const userCountUserOff = unsafe.Offsetof(userCount{}.userLen) + 1

// userTombstone marks a slot whose count was dropped: probes go past it,
// inserts reuse it.
var userTombstone = new(userCount)

// newUserCount allocates a count holding q with its key and hash, and the
// user id after it, in one pointer-free allocation (the garbage collector
// does not scan it). user is at most IDLenMax bytes.
func newUserCount(h uint64, pool uint32, user string, q int64) *userCount {
	if len(user) > IDLenMax {
		// Validate refuses such users; userLen could not hold every one.
		panic("BUG: inventory: user id longer than IDLenMax in the user table")
	}
	// The size is rounded up to a multiple of 8, so it is at least
	// unsafe.Sizeof(userCount{}) (24): the block skips the tiny allocator
	// and starts at a multiple of its size class, itself a multiple of 8,
	// so the atomic is 8-byte aligned.
	b := make([]byte, (int(userCountUserOff)+len(user)+7)&^7)
	c := (*userCount)(unsafe.Pointer(&b[0]))
	c.n.Store(q)
	c.hash, c.pool, c.userLen = uint32(h), pool, uint8(copy(b[userCountUserOff:], user))
	return c
}

// is reports whether c is the count of (pool, user), whose hash is h.
func (c *userCount) is(h uint64, pool uint32, user string) bool {
	return c.hash == uint32(h) && c.pool == pool && int(c.userLen) == len(user) &&
		unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(c), userCountUserOff)), c.userLen) == user
}

type userShard struct {
	mu  sync.Mutex
	tab atomic.Pointer[userSlots]
	// n counts the live entries, used the slots that are not empty (live
	// or tombstones). Guarded by mu.
	n, used int
	_       [32]byte
}

// userSlots is a shard's table: a power of two of slots, each nil (empty),
// userTombstone or a count. Written under the shard's mu; replaced whole
// (rebuild), never resized in place, so a reader keeps a consistent one.
type userSlots struct {
	slots []atomic.Pointer[userCount]
	mask  uint64
}

// home is the first slot to probe for a count whose hash's low 32 bits are
// h: the bits above the shard's.
func (t *userSlots) home(h uint32) uint64 { return uint64(h) / userShards & t.mask }

func newUserSlots(n int) *userSlots {
	return &userSlots{slots: make([]atomic.Pointer[userCount], n), mask: uint64(n - 1)}
}

func (t *userTable) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].tab.Store(newUserSlots(userSlotsMin))
	}
}

// hash returns the hash of (pool, user): the user's seeded hash, mixed
// with the pool index, so that one user's counts in different pools
// spread like different users'. The low 8 bits pick the shard, the next
// 24 the slot (home).
func (t *userTable) hash(pool uint32, user string) uint64 {
	return maphash.String(t.seed, user) ^ uint64(pool)*0x9e3779b97f4a7c15
}

func (t *userTable) shard(h uint64) *userShard { return &t.shards[h%userShards] }

// lookup returns the count of (pool, user), hash h, or nil; without a lock.
// A count it returns may be being dropped (-1); one inserted meanwhile may
// be missed: callers that must not miss one look again under mu.
func (sh *userShard) lookup(h uint64, pool uint32, user string) *userCount {
	tab := sh.tab.Load()
	for i := tab.home(uint32(h)); ; i = (i + 1) & tab.mask {
		c := tab.slots[i].Load()
		if c == nil {
			return nil
		}
		if c != userTombstone && c.is(h, pool, user) {
			return c
		}
	}
}

// insertLocked adds c, whose key is absent. Requires mu.
func (sh *userShard) insertLocked(c *userCount) {
	tab := sh.tab.Load()
	if (sh.used+1)*2 > len(tab.slots) {
		tab = sh.rebuildLocked(sh.n + 1)
	}
	for i := tab.home(c.hash); ; i = (i + 1) & tab.mask {
		switch tab.slots[i].Load() {
		case nil:
			sh.used++
		case userTombstone:
		default:
			continue
		}
		tab.slots[i].Store(c)
		sh.n++
		return
	}
}

// dropLocked removes c, which is in the table and whose count the caller
// set to -1, and rebuilds the table at its new size once it holds under an
// eighth of it. Requires mu.
func (sh *userShard) dropLocked(c *userCount) {
	tab := sh.tab.Load()
	for i := tab.home(c.hash); ; i = (i + 1) & tab.mask {
		switch tab.slots[i].Load() {
		case nil:
			panic("BUG: inventory: dropping a user count that is not in its table")
		case c:
			tab.slots[i].Store(userTombstone)
			sh.n--
			sh.shrinkLocked()
			return
		}
	}
}

// shrinkLocked rebuilds the table at its new size once it holds under an
// eighth of its slots, so that a crowd's slots go when its counts did.
func (sh *userShard) shrinkLocked() {
	if l := len(sh.tab.Load().slots); l > userSlotsMin && sh.n*8 < l {
		sh.rebuildLocked(sh.n)
	}
}

// rebuildLocked replaces the table with one sized for n live entries (at
// most half full) holding the live ones, without tombstones, and returns
// it. Readers of the old table find the same counts there (entries dropped
// since are -1) or miss new ones (and look again under mu). Requires mu.
func (sh *userShard) rebuildLocked(n int) *userSlots {
	size := userSlotsMin
	for size < 2*n+2 {
		size *= 2
	}
	old, tab := sh.tab.Load(), newUserSlots(size)
	for i := range old.slots {
		c := old.slots[i].Load()
		if c == nil || c == userTombstone {
			continue
		}
		j := tab.home(c.hash)
		for tab.slots[j].Load() != nil {
			j = (j + 1) & tab.mask
		}
		tab.slots[j].Store(c)
	}
	sh.used = sh.n
	sh.tab.Store(tab)
	return tab
}

// acquire adds q to the user's units in pool unless that would pass limit
// (0 means no limit) or the pool is closed (a new count is made under the
// shard's lock after checking closed, and dropPool marks the counts it
// drops, so no count of a closed pool grows once dropPool has run).
func (t *userTable) acquire(pool *pool, user string, q, limit int64) bool {
	h := t.hash(pool.idx, user)
	sh := t.shard(h)
	for {
		c := sh.lookup(h, pool.idx, user)
		if c == nil {
			if limit > 0 && q > limit {
				return false
			}
			sh.mu.Lock()
			c = sh.lookup(h, pool.idx, user)
			if c == nil {
				if pool.closed.Load() {
					sh.mu.Unlock()
					return false
				}
				sh.insertLocked(newUserCount(h, pool.idx, user, q))
				sh.mu.Unlock()
				return true
			}
			sh.mu.Unlock()
		}
		for {
			v := c.n.Load()
			if v < 0 {
				// Being dropped: its dropper holds sh.mu until the entry
				// has left the table. Wait for it rather than spin (on
				// one P a spinner would keep the dropper off the CPU),
				// then look the entry up again.
				sh.mu.Lock()
				sh.mu.Unlock()
				break
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
	h := t.hash(pool.idx, user)
	sh := t.shard(h)
	// A count with live units is in the table until it drops to zero, and
	// only its owner's releases take it there: the lookup cannot miss it.
	c := sh.lookup(h, pool.idx, user)
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
		// Still zero: no acquire came back meanwhile. A count at zero is
		// in the table (counts leave it only once -1).
		if c.n.CompareAndSwap(0, -1) {
			sh.dropLocked(c)
		}
		sh.mu.Unlock()
	}
}

// dropPool drops every count of pool, which is closed, and rebuilds the
// shard tables that shrank below an eighth of their size. It visits every
// shard (a count's shard is picked by its user), each under its lock for
// one pass over its table. It returns the counts dropped.
func (t *userTable) dropPool(pool *pool) int {
	if !pool.closed.Load() {
		panic("BUG: inventory: dropping the counts of an open pool")
	}
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		tab := sh.tab.Load()
		for j := range tab.slots {
			if c := tab.slots[j].Load(); c != nil && c != userTombstone && c.pool == pool.idx {
				c.n.Store(-1) // a concurrent acquire looks again, and finds none
				tab.slots[j].Store(userTombstone)
				sh.n--
				n++
			}
		}
		sh.shrinkLocked()
		sh.mu.Unlock()
	}
	return n
}

// each calls fn with every live count of every shard, under its shard's
// lock (tests).
func (t *userTable) each(fn func(c *userCount)) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		tab := sh.tab.Load()
		for j := range tab.slots {
			if c := tab.slots[j].Load(); c != nil && c != userTombstone {
				fn(c)
			}
		}
		sh.mu.Unlock()
	}
}

// poolLen returns the counts of pool (tests).
func (t *userTable) poolLen(pool *pool) int {
	n := 0
	t.each(func(c *userCount) {
		if c.pool == pool.idx {
			n++
		}
	})
	return n
}

func (t *userTable) get(pool *pool, user string) int64 {
	h := t.hash(pool.idx, user)
	c := t.shard(h).lookup(h, pool.idx, user)
	if c == nil {
		return 0
	}
	return max(c.n.Load(), 0)
}

func (t *userTable) len() int {
	n := 0
	t.each(func(*userCount) { n++ })
	return n
}
