package inventory

import (
	"fmt"
	"hash/maphash"

	"github.com/cockroachdb/pebble/v2"
)

// SyncGaps returns how many WAL syncs of s waited for the sync gap.
func SyncGaps(s *Pebble) int64 { return s.syncGaps.Load() }

// UserCounts returns the per-user counts the store keeps in memory for
// pool (Memory or Pebble; -1 for an unknown pool).
func UserCounts(s Store, pool string) int {
	m := memOf(s)
	p := m.pools.get(pool)
	if p == nil {
		return -1
	}
	return m.users.poolLen(p)
}

func memOf(s Store) *Memory {
	switch s := s.(type) {
	case *Memory:
		return s
	case *Pebble:
		return s.mem
	}
	panic("BUG: memory of a " + fmt.Sprintf("%T", s))
}

// MemRecords returns how many reservation records s (Memory or Pebble)
// keeps in memory, and how many disk entries its index holds for released
// reservations kept on disk only.
func MemRecords(s Store) (records, disk int) {
	m := memOf(s)
	for i := range m.recs {
		sh := &m.recs[i]
		sh.mu.Lock()
		records += sh.n - sh.disk
		disk += sh.disk
		sh.mu.Unlock()
	}
	return records, disk
}

// DiskKeys returns how many keys s's Pebble holds that start with prefix.
func DiskKeys(s *Pebble, prefix byte) int {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		panic(err)
	}
	defer it.Close()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		n++
	}
	return n
}

// DropPurgeIndex deletes s's purge index and its marker, as a store written
// before the index has neither.
func DropPurgeIndex(s *Pebble) {
	b := s.db.NewBatch()
	if err := b.DeleteRange([]byte{keyPurge}, []byte{keyPurge + 1}, nil); err != nil {
		panic(err)
	}
	if err := b.Delete([]byte(keyPurgeIndexed), nil); err != nil {
		panic(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		panic(err)
	}
}

// MemSlots returns the record slots s's shards hold (in use or free) and
// their index sizes, in all.
func MemSlots(s Store) (slots, index int) {
	m := memOf(s)
	for i := range m.recs {
		sh := &m.recs[i]
		sh.mu.Lock()
		slots += int(sh.slots)
		index += len(sh.index)
		sh.mu.Unlock()
	}
	return slots, index
}

// Shards returns how many record shards s has, and how many slots a shard
// must have before it is rebuilt when mostly empty.
func Shards(s Store) (shards, rebuildSlots int) { return len(memOf(s).recs), rebuildSlotsMin }

// PurgePoints returns how many keys, deleted ones included, s's Purge
// iterators have stepped over.
func PurgePoints(s *Pebble) int64 { return s.purgePoints.Load() }

// LockRecord locks the record of id, held or paid in memory, as an
// operation on it would, and returns its unlock.
func LockRecord(s Store, id string) (unlock func()) {
	m := memOf(s)
	h := maphash.String(m.recSeed, id)
	sh := m.shardOfHash(h)
	sh.mu.Lock()
	rec, gen, _ := sh.find(h, id)
	sh.mu.Unlock()
	if rec == nil {
		panic("BUG: no record of " + id)
	}
	rec.mu.Lock()
	if rec.gen != gen {
		panic("BUG: the record of " + id + " moved")
	}
	return rec.mu.Unlock
}

// ShardOf returns the slots of id's record shard (in use or free), and
// how many rebuilds of it were tried.
func ShardOf(s Store, id string) (slots int, rebuildTries uint64) {
	m := memOf(s)
	sh := m.shardOfHash(maphash.String(m.recSeed, id))
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return int(sh.slots), sh.rebuildTries
}

// ShardSlotsMax returns the most record slots one of s's shards holds (in
// use or free).
func ShardSlotsMax(s Store) int {
	m := memOf(s)
	most := 0
	for i := range m.recs {
		sh := &m.recs[i]
		sh.mu.Lock()
		most = max(most, int(sh.slots))
		sh.mu.Unlock()
	}
	return most
}

// DiskEntries walks the record indexes of s (Memory or Pebble) and returns
// the disk entries they hold, the disk entries their shards count, and
// how many shards hold none any more (past their bound: diskAny).
func DiskEntries(s Store) (entries, counted, overflowed int) {
	m := memOf(s)
	for i := range m.recs {
		sh := &m.recs[i]
		sh.mu.Lock()
		for _, e := range sh.index {
			if e != 0 && uint32(e) == onDisk {
				entries++
			}
		}
		counted += sh.disk
		if sh.diskAny {
			overflowed++
		}
		sh.mu.Unlock()
	}
	return entries, counted, overflowed
}
