package inventory

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// keyWarm is the scratch key the WAL warm-up writes and deletes. It sorts
// outside the pool and record ranges, so load never reads it.
const keyWarm = 'w'

// walWarmRoundsMax bounds the warm-up (each round is one memtable of
// filler and one flush).
const walWarmRoundsMax = 16

// warmWAL fills Pebble's WAL recycler with full-size log files before the
// store takes its first write.
//
// Why: every acknowledged write waits for an fdatasync of the WAL. A fresh
// WAL file grows as it is written, so each fdatasync must also commit the
// new file size (and, on ext4, the conversion of the preallocated extents)
// through the file system's journal: two device flushes and a journal
// thread, where an overwrite of blocks already in the file needs one flush
// and no journal commit (about 250 µs against 170 µs idle on the reference
// disk, and far more when the CPU is busy and the journal thread must be
// scheduled). Pebble recycles the WAL of a flushed memtable, which turns
// later WALs into overwrites, but only for files obsoleted since this open
// and only as large as they grew: after every start the first several
// memtables (256 KiB doubling up to MemTableSize) would append, exactly in
// the minutes after a deploy, when a flash sale starts.
//
// How: each round fills one memtable with a filler value under keyWarm
// (written without sync; it is garbage) and flushes, so its WAL becomes
// obsolete at about the memtable's size and Pebble keeps it for reuse. The
// rounds stop when the recycler holds as many files as it keeps, each
// close to a memtable's size, and the WAL that took the last of them is
// active. The filler is zeros, which the flush compresses to almost
// nothing; the key is deleted at the end.
//
// Durability is Pebble's own: a recycled WAL is read back by log number
// and checksum, so the old bytes in it are never replayed.
func warmWAL(db *pebble.DB, po *pebble.Options) error {
	po = po.Clone()
	po.EnsureDefaults()
	memSize := po.MemTableSize
	keep := po.MemTableStopWritesThreshold + 1 // Pebble's MaxNumRecyclableLogs
	chunk := uint64(256 << 10)
	if chunk > memSize/8 {
		chunk = memSize / 8
	}
	if chunk == 0 || keep <= 0 {
		return nil
	}
	// A memtable holds a little less than MemTableSize of values (arena
	// overhead); fill to two chunks short of it so that one round never
	// spills into a second WAL.
	fill := memSize - 2*chunk
	val := make([]byte, chunk)
	key := []byte{keyWarm}
	full := 0
	for round := 0; round < walWarmRoundsMax && full < 2; round++ {
		for n := uint64(0); n < fill; n += chunk {
			if err := db.Set(key, val, pebble.NoSync); err != nil {
				return fmt.Errorf("cannot warm the WAL: %w", err)
			}
		}
		if err := db.Flush(); err != nil {
			return fmt.Errorf("cannot warm the WAL: %w", err)
		}
		w := db.Metrics().WAL
		if w.ObsoleteFiles >= int64(keep) && w.ObsoletePhysicalSize >= uint64(keep)*fill {
			// Count two rounds in a row: the WAL made by the second
			// flush was taken from a recycler already full of large files.
			full++
		} else {
			full = 0
		}
	}
	if err := db.Delete(key, pebble.Sync); err != nil {
		return fmt.Errorf("cannot warm the WAL: %w", err)
	}
	return nil
}
