package inventory

import (
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Record states besides the public ones.
const (
	// statePending: being created by a durable Reserve, whose creator
	// holds mu until the state is decided.
	statePending State = 0
	// stateFree: the slot holds no reservation (never used, failed or
	// forgotten).
	stateFree State = 255
)

// record is one reservation, kept pointer-free so that the garbage
// collector never scans the (many) records: pools are referenced by index,
// the id, user, meta and lines after the first live in the shard's arena
// (the blob, see blobSize).
//
// A record sits in a slot of its shard; a slot is reused after the record is
// forgotten, and gen counts the reuses. Locking: every field is written
// under the shard's mu before the record is published in the index (found
// by others); after that state and refunded change under mu only, and gen
// changes only when the slot is freed, under both mu and the shard's mu. So
// whoever found a record under the shard's mu and then locked mu checks gen
// to know the slot still holds what it found, and reads state under mu.
type record struct {
	mu sync.Mutex
	recFields
}

// recFields are a record's fields but its mutex: rebuild copies them.
// With the mutex they take 64 bytes, one cache line (recSize): a reserve
// writes a record whose line is usually not in cache, and a record that
// straddled two lines cost two misses. Line 0's limit lives in the blob
// (blobSize) to make room.
type recFields struct {
	gen uint32
	// fp and hashLo are the high 32 and low 8 bits of the id's hash
	// under Memory.recSeed (see hash): the index fingerprint and the
	// shard bits.
	fp        uint32
	createdMs int64
	expiresMs int64
	qty0      int64 // line 0
	pool0     uint32
	blobChunk uint32 // arena chunk and offset of the blob
	slot      uint32 // in its shard
	blobOff   uint16 // < arenaChunkSize
	metaLen   uint16
	state     State
	refunded  bool
	idLen     uint8
	userLen   uint8
	nLines    uint8
	// inExp and inPurge say whether the shard's expiry and purge heaps hold
	// an entry for this record (gen). Guarded by the shard's mu.
	inExp   bool
	inPurge bool
	hashLo  uint8
}

// recSize is a record's size: one cache line. Record chunks
// ([recChunk]record) are 16 KiB, a size class whose blocks start at
// multiples of 8 KiB, so no record straddles two lines.
const recSize = 64

var (
	_ [recSize - unsafe.Sizeof(record{})]struct{}
	_ [unsafe.Sizeof(record{}) - recSize]struct{}
	// hashLo holds every shard bit (Memory.shardMask < recShardsMax).
	_ [256 - recShardsMax]struct{}
	// blobOff holds every offset in a chunk.
	_ [1<<16 - arenaChunkSize]struct{}
)

// hash returns the bits of rec's id hash that anything reads: the
// fingerprint (high 32) and the shard bits (low 8).
func (rec *record) hash() uint64 { return uint64(rec.fp)<<32 | uint64(rec.hashLo) }

// lineBytes is the size of a line after the first in the blob: pool index
// (4), quantity (8), limit (8).
const lineBytes = 20

// limitBytes is the size of line 0's limit in the blob.
const limitBytes = 8

// blobSize is the arena space of a record: id, user, meta, line 0's limit,
// then lines 1..n-1.
func blobSize(id, user string, meta []byte, nLines int) int {
	return len(id) + len(user) + len(meta) + limitBytes + (nLines-1)*lineBytes
}

const (
	// recShardsMin and recShardsMax bound a store's record shards (see
	// shardsFor); both powers of two.
	recShardsMin = 16
	recShardsMax = 128
	// recChunk records are allocated at once, and never move.
	recChunk = 256
	// indexSlotsMin is a shard's index size before it first grows.
	indexSlotsMin = 256
	// arenaChunkSize is a shard's arena allocation unit: at least the
	// largest blob (IDLenMax*2 + MetaLenMax + limitBytes + (LinesMax-1)*lineBytes).
	arenaChunkSize = 16 << 10
	// arenaSpareMax bounds the empty arena chunks a shard keeps for reuse.
	arenaSpareMax = 2
)

// Compile-time check that a blob always fits a chunk.
var _ [arenaChunkSize - (2*IDLenMax + MetaLenMax + limitBytes + (LinesMax-1)*lineBytes)]struct{}

type arenaChunk [arenaChunkSize]byte

// recShard holds the records whose id hashes to it, an index from id to
// record, the expiry heap of held records and the purge heap of released
// ones. Everything here is guarded by mu; records are locked separately.
type recShard struct {
	mu sync.Mutex
	// index is an open-addressing table with linear probing: entries are
	// fingerprint<<32 | slot+1 (0 is empty), the fingerprint being the
	// id hash's high 32 bits, which also place the entry. At most half
	// full; deletion shifts entries back, so there are no tombstones.
	index []uint64
	n     int // entries in index
	// indexView is index as of its last replacement (setIndex), read
	// without mu by prefetchIndex only.
	indexView atomic.Pointer[[]uint64]
	// chunks hold the record slots: slot s is chunks[s/recChunk][s%recChunk].
	chunks []*[recChunk]record
	slots  uint32 // slots handed out so far
	// free holds the freed slots, reused first, each as gen<<32 | slot
	// with the slot's record's gen: taking a slot then reads nothing
	// from the record, whose line is usually not in cache.
	free  []uint64
	arena arena
	exp   expHeap // held records by expiry (entries may be stale)
	purge expHeap // released records by expiry (entries may be stale)
	// No entry of exp (purge) is later than expMax (purgeMax).
	expMax   int64
	purgeMax int64
	// Stale entries in exp and purge (their record was freed); the heaps
	// are compacted when more than half their entries are stale.
	expStale   int
	purgeStale int
	// disk counts the disk entries in index (see onDisk); evicts counts
	// the released records ever evicted (or restored) to disk, by their
	// id's fingerprint mod evictBuckets (noteEvict), so that a Reserve
	// that read the disk can tell whether one that may be its id was
	// added since. Counted by bucket, not by shard: once the shard holds
	// no disk entries (diskAny) every Reserve of a new id reads the disk,
	// and a shard-wide count would make it read again after any release
	// in the shard meanwhile (a sweep's burst of expiries makes hundreds),
	// up to reserveRetryMax times.
	disk   int
	evicts [evictBuckets]uint32
	// diskMax bounds disk (the store's DiskEntriesMax over its shards).
	// diskAny is set when one more disk entry would pass it: the shard
	// then drops its disk entries and adds none again, and probe
	// reports every id it does not hold as possibly on disk, so that
	// its callers read the disk first, as they do for a disk entry (see
	// overflowDisk). Never unset: a reopened store counts again.
	diskMax int
	diskAny bool
	// claims are the ids on disk being deleted (Purge, Forget), each
	// with a channel closed when the deletion is over: a Reserve of one
	// waits for it rather than create the id while its old record is
	// still on disk. At most the deletions in flight.
	claims map[string]chan struct{}
	// committing counts the shard's records locked across a durable
	// write (Memory.putRecords, deleteRecords): a rebuild would fail on
	// them, after walking the index, so none is tried meanwhile (see
	// tryRebuild). Atomic: the writers hold a record's mu, not the
	// shard's.
	committing atomic.Int32
	// rebuildTries counts the rebuilds tried (tests read it).
	rebuildTries uint64
	_            [64]byte
}

func (s *recShard) init() {
	s.setIndex(make([]uint64, indexSlotsMin))
	s.expMax, s.purgeMax = math.MinInt64, math.MinInt64
	s.arena.cur = -1
}

// rec returns the record in slot. Requires mu (records do not move, so the
// pointer stays valid after).
func (s *recShard) rec(slot uint32) *record {
	return &s.chunks[slot/recChunk][slot%recChunk]
}

// setIndex replaces the index. Requires mu.
func (s *recShard) setIndex(index []uint64) {
	s.index = index
	s.indexView.Store(&index)
}

// prefetchIndex starts fetching, for writing, the index line where the
// probe of the id whose hash is h starts: a reserve calls it before it
// validates its request and takes mu, so that the line (usually not in
// cache) is on its way meanwhile. Without mu: the index may be replaced
// since, and the hint is then wasted, never wrong.
func (s *recShard) prefetchIndex(h uint64) {
	if p := s.indexView.Load(); p != nil {
		ix := *p
		prefetchw(unsafe.Pointer(&ix[int(h>>32)&(len(ix)-1)]))
	}
}

// prefetchRec starts fetching the lines of the record in slot, which
// exists, for writing. Requires mu.
func (s *recShard) prefetchRec(slot uint32) {
	prefetchw(unsafe.Pointer(s.rec(slot))) // one line (recSize)
}

// blob returns rec's blob. Requires mu, or rec.mu with gen checked.
func (s *recShard) blob(rec *record) []byte {
	c := (*s.arena.tab.Load())[rec.blobChunk]
	return c[rec.blobOff : int(rec.blobOff)+blobSize0(rec)]
}

func blobSize0(rec *record) int {
	return int(rec.idLen) + int(rec.userLen) + int(rec.metaLen) + limitBytes + (int(rec.nLines)-1)*lineBytes
}

func (s *recShard) idBytes(rec *record) []byte { return s.blob(rec)[:rec.idLen] }

func (s *recShard) userBytes(rec *record) []byte {
	return s.blob(rec)[rec.idLen : int(rec.idLen)+int(rec.userLen)]
}

func (s *recShard) metaBytes(rec *record) []byte {
	o := int(rec.idLen) + int(rec.userLen)
	return s.blob(rec)[o : o+int(rec.metaLen)]
}

// line returns line i's pool index, quantity and limit. Requires what blob
// requires.
func (s *recShard) line(rec *record, i int) (pool uint32, qty, limit int64) {
	o := int(rec.idLen) + int(rec.userLen) + int(rec.metaLen)
	if i == 0 {
		return rec.pool0, rec.qty0, int64(binary.LittleEndian.Uint64(s.blob(rec)[o : o+limitBytes]))
	}
	o += limitBytes + (i-1)*lineBytes
	b := s.blob(rec)[o : o+lineBytes]
	return binary.LittleEndian.Uint32(b), int64(binary.LittleEndian.Uint64(b[4:])), int64(binary.LittleEndian.Uint64(b[12:]))
}

// find returns the record of id (hash h) and its gen, or nil and the
// index position where id would go (for publish). Requires mu.
func (s *recShard) find(h uint64, id string) (rec *record, gen uint32, pos int) {
	rec, gen, pos, _ = s.probe(h, id)
	return rec, gen, pos
}

// probe is find that also reports, when id has no record, whether the
// index holds a disk entry (onDisk) with id's fingerprint, or the shard
// holds no disk entries any more (diskAny): id may then be a released
// reservation kept on disk only (see Memory). A fingerprint is 32 bits,
// so that is a hint to read the disk, not an answer. Requires mu.
func (s *recShard) probe(h uint64, id string) (rec *record, gen uint32, pos int, disk bool) {
	fp := uint32(h >> 32)
	mask := len(s.index) - 1
	for i := int(fp) & mask; ; i = (i + 1) & mask {
		e := s.index[i]
		if e == 0 {
			return nil, 0, i, disk || s.diskAny
		}
		if uint32(e>>32) == fp {
			if uint32(e) == onDisk {
				disk = true
				continue
			}
			r := s.rec(uint32(e) - 1)
			if int(r.idLen) == len(id) && string(s.idBytes(r)) == id {
				return r, r.gen, 0, false
			}
		}
	}
}

// onDisk is the low half of a disk entry: an index entry that stands for a
// released reservation kept on disk only (fingerprint<<32 | onDisk). Disk
// entries of ids with the same fingerprint are equal, so any of them may be
// removed for any of those ids: the index counts them, it cannot tell them
// apart. No record slot reaches it (slot+1 < 2^32-1).
const onDisk = math.MaxUint32

// diskEntry is the disk entry of the id whose hash is h.
func diskEntry(h uint64) uint64 { return h>>32<<32 | onDisk }

// evictBuckets is how many fingerprint buckets a shard counts evictions
// in (recShard.evicts).
const evictBuckets = 64

// noteEvict counts an eviction (or a restore) to disk of the id whose
// hash is h. Requires mu.
func (s *recShard) noteEvict(h uint64) { s.evicts[uint32(h>>32)%evictBuckets]++ }

// evicted returns the evictions counted in the bucket of the id whose hash
// is h: when it has not changed, that id was not evicted meanwhile (a
// uint32 would have to wrap around during one disk read). Requires mu.
func (s *recShard) evicted(h uint64) uint32 { return s.evicts[uint32(h>>32)%evictBuckets] }

// addDisk adds a disk entry for the id whose hash is h (a released
// reservation found on disk at open), or none once the shard holds no
// disk entries (diskAny). Requires mu.
func (s *recShard) addDisk(h uint64) {
	s.noteEvict(h)
	if s.diskFull() {
		return
	}
	s.publish(diskEntry(h), -1)
	s.disk++
}

// dropDisk removes a disk entry for the id whose hash is h (the id was
// deleted from disk); a shard that holds no disk entries (diskAny) has
// none to remove, also for an id claimed before it dropped them. Requires
// mu.
func (s *recShard) dropDisk(h uint64) {
	if s.diskAny {
		return
	}
	s.unindex(diskEntry(h))
	s.disk--
}

// diskFull reports whether the shard takes no more disk entries: it holds
// none (diskAny), or it held diskMax of them and one more would pass the
// bound, so it drops them now (overflowDisk). Requires mu.
func (s *recShard) diskFull() bool {
	if !s.diskAny && s.disk >= s.diskMax {
		s.overflowDisk()
	}
	return s.diskAny
}

// overflowDisk drops the shard's disk entries and sets diskAny: from then
// on the disk may hold any id the shard has no record of, and every
// Reserve (lookup, claim) of such an id reads the disk first, the path a
// disk entry's hint takes (Memory.reserveOnDisk), so that idempotency
// never depends on the entries. The price is one Pebble Get per reserve
// of a new id in the shard, which Pebble's bloom filters keep cheap (the
// id is usually in no table); the sold-out answers of a crowd pay it too,
// since a replay of a released id must get its record, not ErrSoldOut.
//
// The bound is per shard, not per store: everything it decides (count,
// switch, drop) happens under the shard's mu, where probe, evict and the
// claims already are, so a Reserve sees the shard before or after the
// switch, never half of it, and no lock or counter is shared by the
// shards on the eviction path. Ids hash evenly over the shards, so they
// reach their bounds at about the same time. Requires mu.
func (s *recShard) overflowDisk() {
	s.diskAny = true
	if s.disk == 0 {
		return
	}
	// The records' entries are placed again, in an index of their size
	// (indexSizeFor): the dropped entries would leave holes in
	// their probe runs.
	s.n -= s.disk
	s.disk = 0
	s.reindex(indexSizeFor(s.n), true)
}

// newRecord takes a free slot and fills it with a reservation; lines[i]'s
// pool has index pools[i]. It is not yet in the index: publish puts the
// returned entry there (computed here, so that publishing does not read
// back the record's line while its writes are still on their way).
// Requires mu.
func (s *recShard) newRecord(h uint64, id, user string, lines []Line, pools []uint32, meta []byte, createdMs, expiresMs int64) (*record, newRef) {
	var slot, gen uint32
	if n := len(s.free); n > 0 {
		f := s.free[n-1]
		slot, gen = uint32(f), uint32(f>>32)
		s.free = s.free[:n-1]
		if n > 1 {
			// The next record of the shard goes into free[n-2]: its line
			// is usually not in cache, so start fetching it now, for
			// writing, rather than wait for it then.
			s.prefetchRec(uint32(s.free[n-2]))
		}
	} else {
		if s.slots%recChunk == 0 {
			s.chunks = append(s.chunks, new([recChunk]record))
		}
		slot = s.slots
		s.slots++
	}
	r := s.rec(slot)
	r.slot = slot
	r.fp, r.hashLo = uint32(h>>32), uint8(h)
	r.createdMs = createdMs
	r.expiresMs = expiresMs
	r.pool0, r.qty0 = pools[0], lines[0].Quantity
	r.idLen, r.userLen, r.metaLen, r.nLines = uint8(len(id)), uint8(len(user)), uint16(len(meta)), uint8(len(lines))
	chunk, off, b := s.arena.alloc(blobSize(id, user, meta, len(lines)))
	r.blobChunk, r.blobOff = chunk, uint16(off)
	o := copy(b, id)
	o += copy(b[o:], user)
	o += copy(b[o:], meta)
	binary.LittleEndian.PutUint64(b[o:], uint64(lines[0].Limit))
	o += limitBytes
	for i := 1; i < len(lines); i++ {
		binary.LittleEndian.PutUint32(b[o:], pools[i])
		binary.LittleEndian.PutUint64(b[o+4:], uint64(lines[i].Quantity))
		binary.LittleEndian.PutUint64(b[o+12:], uint64(lines[i].Limit))
		o += lineBytes
	}
	return r, newRef{entry: entryOf(h, slot), slot: slot, gen: gen}
}

// newRef is what newRecord knows of the record it filled: its index entry,
// slot and gen. Publishing and queueing the record's expiry use it rather
// than load the record back: its writes are then still on their way to a
// line that was usually not in cache, and a load would wait for the line.
type newRef struct {
	entry     uint64
	slot, gen uint32
}

// publish adds the index entry e of a record (from newRecord, id absent)
// at pos, which find returned with mu held since; pos < 0 to search.
// Requires mu.
func (s *recShard) publish(e uint64, pos int) {
	if (s.n+1)*2 > len(s.index) {
		s.grow()
		pos = -1
	}
	if pos >= 0 {
		s.index[pos] = e
	} else {
		s.place(s.index, e)
	}
	s.n++
}

func indexEntry(rec *record) uint64 { return entryOf(rec.hash(), rec.slot) }

// entryOf is the index entry of the record in slot whose id hash is h.
func entryOf(h uint64, slot uint32) uint64 { return h>>32<<32 | uint64(slot+1) }

func (s *recShard) place(index []uint64, e uint64) {
	mask := len(index) - 1
	for i := int(e>>32) & mask; ; i = (i + 1) & mask {
		if index[i] == 0 {
			index[i] = e
			return
		}
	}
}

func (s *recShard) grow() { s.reindex(len(s.index)*2, false) }

// indexSizeFor is the index size for n entries: at most a quarter full.
func indexSizeFor(n int) int {
	size := indexSlotsMin
	for size < 4*n {
		size *= 2
	}
	return size
}

// reindex places the index's entries again in a new index of size slots,
// without the disk entries when dropDisk. Requires mu.
func (s *recShard) reindex(size int, dropDisk bool) {
	index := make([]uint64, size)
	for _, e := range s.index {
		if e != 0 && !(dropDisk && uint32(e) == onDisk) {
			s.place(index, e)
		}
	}
	s.setIndex(index)
}

// forget frees rec's slot: out of the index, blob back to the arena, gen
// bumped so that whoever still holds the pointer sees it is gone. Requires
// mu and rec.mu.
func (s *recShard) forget(rec *record) {
	s.unindex(indexEntry(rec))
	s.free1(rec)
}

// evict frees the slot of rec, released and written so on disk, and puts a
// disk entry in its place in the index (same fingerprint, same probe run,
// so nothing moves): from then on its id is read from disk. A shard at its
// bound of disk entries (diskFull) only drops rec's entry: its probe
// reports every absent id as possibly on disk. Requires mu and rec.mu.
func (s *recShard) evict(rec *record) {
	s.noteEvict(rec.hash())
	if s.diskFull() {
		s.unindex(indexEntry(rec))
	} else {
		s.index[s.indexOf(indexEntry(rec))] = diskEntry(rec.hash())
		s.disk++
	}
	s.free1(rec)
}

// free1 frees rec's slot, which is out of the index. Requires mu and
// rec.mu.
func (s *recShard) free1(rec *record) {
	s.arena.releaseBlob(rec.blobChunk)
	if rec.inExp {
		s.expStale++
		rec.inExp = false
	}
	if rec.inPurge {
		s.purgeStale++
		rec.inPurge = false
	}
	rec.gen++
	rec.state, rec.refunded = stateFree, false
	s.free = append(s.free, uint64(rec.gen)<<32|uint64(rec.slot))
}

// indexOf returns the position of entry e in the index, which holds it.
func (s *recShard) indexOf(e uint64) int {
	mask := len(s.index) - 1
	i := int(e>>32) & mask
	for s.index[i] != e {
		if s.index[i] == 0 {
			panic("BUG: inventory: an entry that is not in the index")
		}
		i = (i + 1) & mask
	}
	return i
}

// unindex removes entry e, shifting later entries of its probe run back.
func (s *recShard) unindex(e uint64) {
	mask := len(s.index) - 1
	i := s.indexOf(e)
	for j := (i + 1) & mask; s.index[j] != 0; j = (j + 1) & mask {
		home := int(s.index[j]>>32) & mask
		// The entry at j may move to i if its home is not in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			s.index[i] = s.index[j]
			i = j
		}
	}
	s.index[i] = 0
	s.n--
}

// pushExp adds rec's expiry entry. Requires mu.
func (s *recShard) pushExp(rec *record) {
	s.pushExpNew(rec, newRef{slot: rec.slot, gen: rec.gen}, rec.expiresMs)
}

// pushExpNew adds the expiry entry of rec, just filled by newRecord (ref)
// with expiresMs, without loading from rec. Requires mu.
func (s *recShard) pushExpNew(rec *record, ref newRef, expiresMs int64) {
	if s.expStale > staleMin && s.expStale*2 > len(s.exp) {
		s.expStale = s.compact(&s.exp, s.expStale)
	}
	s.exp.pushAfter(expEntry{ms: expiresMs, slot: ref.slot, gen: ref.gen}, &s.expMax)
	rec.inExp = true
}

// pushPurge adds rec's purge entry (rec was just released). Requires mu.
func (s *recShard) pushPurge(rec *record) {
	if s.purgeStale > staleMin && s.purgeStale*2 > len(s.purge) {
		s.purgeStale = s.compact(&s.purge, s.purgeStale)
	}
	s.purge.pushAfter(expEntry{ms: rec.expiresMs, slot: rec.slot, gen: rec.gen}, &s.purgeMax)
	rec.inPurge = true
}

// staleMin is how many stale heap entries a shard tolerates before it
// considers compacting.
const staleMin = 64

// Shard rebuilding (rebuild): a shard whose records in use fell to a
// quarter of its slots, with at least rebuildSlotsMin slots, or whose
// index is over rebuildIndexRatio times what its entries need, is
// rebuilt at its new size.
const (
	rebuildSlotsMin   = 4 * recChunk
	rebuildIndexRatio = 8
)

// wantsRebuild reports whether the shard's slots, arena or index are
// mostly empty space: after a crowd's holds ended, its records and arena
// chunks stay allocated for the few paid records scattered among them
// (slots are reused, never given back), and its index and heaps keep
// their largest size. Requires mu.
func (s *recShard) wantsRebuild() bool {
	live := int(s.slots) - len(s.free)
	if s.slots >= rebuildSlotsMin && live*4 <= int(s.slots) {
		return true
	}
	return len(s.index) > indexSlotsMin && len(s.index) > rebuildIndexRatio*2*s.n
}

// tryRebuild rebuilds the shard, which wants it, unless one of its records
// is locked across a durable write: on Pebble a Reserve (or a Confirm, a
// release) holds its record's lock across the WAL sync, so under steady
// traffic some record of the shard often is, and each try would walk the
// index under mu to fail on it. Skipped, it is tried at the next call
// (Expire and Purge make them, the sweeper every tick); it can still fail
// on a lock held briefly (a read), and is then tried again too. Requires
// mu.
func (s *recShard) tryRebuild() {
	if s.committing.Load() > 0 {
		return
	}
	s.rebuildTries++
	s.rebuild()
}

// rebuild moves the shard's records into new slots, arena and heaps of
// their size and rebuilds its index, so that the old ones are garbage. It
// must lock every record in use, with TryLock (the lock order is a
// record's mu before its shard's): if one is locked it gives up and says
// so, and a later call tries again (see tryRebuild). Whoever holds a
// moved record's old pointer sees its gen changed (as if it were
// forgotten) and looks its id up again. Every held record gets a new
// expiry entry and every released one a purge entry, so an entry popped
// before the move (dropped by its popper, whose gen no longer matches) is
// not lost. Requires mu.
func (s *recShard) rebuild() bool {
	type moved struct {
		rec   *record
		entry int // its index position
	}
	var recs []moved
	for i, e := range s.index {
		if e == 0 || uint32(e) == onDisk {
			continue
		}
		r := s.rec(uint32(e) - 1)
		if !r.mu.TryLock() {
			for _, m := range recs {
				m.rec.mu.Unlock()
			}
			return false
		}
		recs = append(recs, moved{rec: r, entry: i})
	}
	oldTab := *s.arena.tab.Load()
	s.chunks, s.slots, s.free = nil, 0, nil
	s.arena.reset()
	s.exp, s.purge = nil, nil
	s.expMax, s.purgeMax = math.MinInt64, math.MinInt64
	s.expStale, s.purgeStale = 0, 0
	for _, m := range recs {
		old := m.rec
		if s.slots%recChunk == 0 {
			s.chunks = append(s.chunks, new([recChunk]record))
		}
		slot := s.slots
		s.slots++
		r := s.rec(slot)
		r.recFields = old.recFields
		r.slot, r.gen = slot, 0
		size := blobSize0(old)
		chunk, off, b := s.arena.alloc(size)
		r.blobChunk, r.blobOff = chunk, uint16(off)
		copy(b, oldTab[old.blobChunk][old.blobOff:int(old.blobOff)+size])
		r.inExp, r.inPurge = false, false
		switch r.state {
		case StateHeld, statePending:
			s.exp.push(expEntry{ms: r.expiresMs, slot: slot})
			r.inExp = true
			s.expMax = max(s.expMax, r.expiresMs)
		case StateReleased:
			s.purge.push(expEntry{ms: r.expiresMs, slot: slot})
			r.inPurge = true
			s.purgeMax = max(s.purgeMax, r.expiresMs)
		}
		s.index[m.entry] = entryOf(r.hash(), slot)
		old.gen++
		old.state, old.refunded = stateFree, false
	}
	s.resizeIndex()
	for _, m := range recs {
		m.rec.mu.Unlock()
	}
	return true
}

// resizeIndex rebuilds the index at the size its entries need: at most a
// quarter full, at least indexSlotsMin. Requires mu.
func (s *recShard) resizeIndex() {
	if size := indexSizeFor(s.n); size != len(s.index) {
		s.reindex(size, false)
	}
}

// popDue pops h's entries due at or before ms, up to max, skipping stale
// ones, and appends the records to due. Requires mu.
func (s *recShard) popDue(h *expHeap, stale *int, shard int, ms int64, max int, due []dueRec) []dueRec {
	for len(due) < max && len(*h) > 0 && (*h)[0].ms <= ms {
		e := h.pop()
		r := s.rec(e.slot)
		if r.gen != e.gen {
			*stale--
			continue
		}
		if h == &s.exp {
			r.inExp = false
		} else {
			r.inPurge = false
		}
		due = append(due, dueRec{rec: r, shard: uint32(shard), slot: e.slot, gen: e.gen})
	}
	return due
}

// compact drops h's stale entries, given stale of them, and returns the new
// stale count (0). When all are stale (a sale's holds all released and
// forgotten) it empties h without reading a record: each read would be a
// cache miss on a record line.
func (s *recShard) compact(h *expHeap, stale int) int {
	if stale == len(*h) {
		*h = (*h)[:0]
		return 0
	}
	kept := (*h)[:0]
	for _, e := range *h {
		if s.rec(e.slot).gen == e.gen {
			kept = append(kept, e)
		}
	}
	clear((*h)[len(kept):])
	*h = kept
	h.init()
	return 0
}

// dueRec is a record taken from a heap under its shard's mu, with where it
// was and its gen then.
type dueRec struct {
	rec   *record
	shard uint32
	slot  uint32
	gen   uint32
}

// lockDue locks the records of due and keeps those that still hold the same
// reservation, in state st; the others are unlocked. Every operation that
// locks many records at once locks them in (shard, slot) order, so two of
// them never wait for each other.
func lockDue(due []dueRec, st State) []dueRec {
	slices.SortFunc(due, func(a, b dueRec) int {
		if a.shard != b.shard {
			return int(a.shard) - int(b.shard)
		}
		return int(a.slot) - int(b.slot)
	})
	kept := due[:0]
	for _, d := range due {
		d.rec.mu.Lock()
		if d.rec.gen == d.gen && d.rec.state == st {
			kept = append(kept, d)
		} else {
			d.rec.mu.Unlock()
		}
	}
	return kept
}

// arena holds the blobs of a shard's records in chunks. Blobs are carved
// from the current chunk; a chunk is reused once all its blobs are freed.
// Guarded by the shard's mu, except that readers of a live record's blob
// load tab without it (chunks never move; a slot of tab changes only while
// the chunk holds no live blob).
type arena struct {
	tab     atomic.Pointer[[]*arenaChunk]
	live    []int32 // blobs per chunk
	cur     int32   // chunk being carved, -1 for none
	off     int     // next free byte of cur
	spare   []uint32
	dropped []uint32 // nil slots of tab
}

// reset empties the arena: its chunks are left to whoever still reads
// them (rebuild).
func (a *arena) reset() {
	var tab []*arenaChunk
	a.tab.Store(&tab)
	a.live, a.cur, a.off, a.spare, a.dropped = nil, -1, 0, nil, nil
}

// alloc returns space for n bytes.
func (a *arena) alloc(n int) (chunk, off uint32, b []byte) {
	if a.cur < 0 || a.off+n > arenaChunkSize {
		a.next()
	}
	c := (*a.tab.Load())[a.cur]
	off = uint32(a.off)
	a.off += n
	a.live[a.cur]++
	if next := a.off + 64; uint32(a.off)/64 != off/64 && next < arenaChunkSize {
		// This blob reached a new line: fetch the one after it, which
		// the shard's next blobs take, while it is not needed yet.
		prefetchw(unsafe.Pointer(&c[next]))
	}
	return uint32(a.cur), off, c[off : off+uint32(n)]
}

// next starts a new current chunk.
func (a *arena) next() {
	if old := a.cur; old >= 0 {
		a.cur = -1
		if a.live[old] == 0 {
			a.recycle(uint32(old))
		}
	}
	if n := len(a.spare); n > 0 {
		a.cur = int32(a.spare[n-1])
		a.spare = a.spare[:n-1]
		a.off = 0
		return
	}
	var tab []*arenaChunk
	if p := a.tab.Load(); p != nil {
		tab = *p
	}
	c := new(arenaChunk)
	if n := len(a.dropped); n > 0 {
		i := a.dropped[n-1]
		a.dropped = a.dropped[:n-1]
		tab[i] = c
		a.cur = int32(i)
	} else {
		tab = append(tab[:len(tab):len(tab)], c) // a new array: readers keep the old one
		a.tab.Store(&tab)
		a.live = append(a.live, 0)
		a.cur = int32(len(tab) - 1)
	}
	a.off = 0
}

// releaseBlob frees one blob of chunk.
func (a *arena) releaseBlob(chunk uint32) {
	a.live[chunk]--
	if a.live[chunk] > 0 {
		return
	}
	if int32(chunk) == a.cur {
		a.off = 0 // nobody reads a freed blob: carve again from the start
		return
	}
	a.recycle(chunk)
}

// recycle keeps an empty chunk for reuse, or drops it.
func (a *arena) recycle(chunk uint32) {
	if len(a.spare) < arenaSpareMax {
		a.spare = append(a.spare, chunk)
		return
	}
	(*a.tab.Load())[chunk] = nil
	a.dropped = append(a.dropped, chunk)
}

type expEntry struct {
	ms   int64
	slot uint32
	gen  uint32
}

// expHeap is a min-heap of expiry times.
type expHeap []expEntry

func (h *expHeap) push(e expEntry) {
	*h = append(*h, e)
	h.up(len(*h) - 1)
}

// pushAfter pushes e, knowing that no entry is later than *maxMs (which it
// then updates): entries that come in time order (one TTL for a sale) are
// appended without reading their parents, which are far away in memory.
func (h *expHeap) pushAfter(e expEntry, maxMs *int64) {
	if e.ms >= *maxMs {
		*maxMs = e.ms
		*h = append(*h, e)
		if n := len(*h); n%4 == 0 && n+4 <= cap(*h) {
			// Every fourth entry (a line's worth), fetch the line
			// that the next appends write.
			prefetchw(unsafe.Pointer(&(*h)[:n+4][n+3]))
		}
		return
	}
	h.push(e)
}

func (h expHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].ms <= h[i].ms {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (h expHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r].ms < h[l].ms {
			m = r
		}
		if h[i].ms <= h[m].ms {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (h *expHeap) init() {
	for i := len(*h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *expHeap) pop() expEntry {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	s.down(0)
	*h = s
	return top
}

// msTime converts Unix milliseconds to a time.
func msTime(ms int64) time.Time { return time.UnixMilli(ms) }
