package inventory

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/surge-retail/surge/internal/pebblefail"
)

// PebbleOptions configures OpenPebble. The zero value means the defaults.
type PebbleOptions struct {
	Options
	// FS is the file system. Default vfs.Default (the real disk); tests pass
	// vfs.NewCrashableMem or an errorfs wrapper.
	FS vfs.FS
	// Tune, if set, adjusts the pebble options before opening (cache,
	// memtable size, ...). FS and Logger are set by OpenPebble.
	Tune func(*pebble.Options)
	// NoWALWarmup skips filling Pebble's WAL recycler at open (see
	// warmWAL). The warm-up is the production setting: without it the
	// synced commits after every start append to fresh WAL files, whose
	// fdatasync also commits file-size metadata. Tests that open many
	// stores may skip it to save the few megabytes it writes.
	NoWALWarmup bool
	// WALSyncGap is the least time between two WAL syncs while the store
	// is busy (Pebble's WALMinSyncInterval, decided after every sync): when
	// at least WALSyncGapCommits commits are waiting, the next sync waits
	// for the gap and carries every commit that arrives meanwhile. Every
	// commit still returns only after the sync that covers it (law 3);
	// what changes is how many commits one fdatasync carries. When fewer
	// commits wait there is no gap, so a lone caller is not slowed.
	// Default 250µs; negative turns it off. See BENCHMARKS.md.
	WALSyncGap time.Duration
	// WALSyncGapCommits is how many commits must be waiting for the gap to
	// apply. Default 32.
	WALSyncGapCommits int
	// DiskEntriesMax bounds the disk entries the store keeps in memory:
	// one for each released reservation it evicted to disk (or found there
	// at open) until Purge or Forget deletes it, 16 to 32 bytes each in the
	// record index, so that a Reserve of a new id knows the disk does not
	// hold it without reading it. The bound is split evenly over the
	// record shards; a shard that would pass its part drops its entries
	// and from then on reads the disk (one Pebble Get, cheap with bloom
	// filters) before it creates any id it does not hold (see
	// recShard.overflowDisk). Answers never depend on it, only that cost
	// does. Default DiskEntriesMaxDefault; negative keeps none.
	DiskEntriesMax int
}

// DiskEntriesMaxDefault is the default of PebbleOptions.DiskEntriesMax:
// about two million released reservations on disk (a day's retention of
// a large sale) before reserves of new ids read the disk, for 32 to 64 MiB
// of index at most (an eighth of the demo's 512 MiB budget).
const DiskEntriesMaxDefault = 2 << 20

// Pebble is the embedded durable backend: Memory's atomic counters in
// front, Pebble behind. Every acknowledged change was committed to Pebble
// with pebble.Sync first; concurrent callers share fsyncs through Pebble's
// group commit. Open rebuilds the counters from what Pebble holds.
//
// What is stored: "p"+pool -> net units, on-hand, feed seq; "r"+id -> the
// reservation; for a released reservation also "x"+expiry+id -> nothing
// (the purge index: Purge walks it in expiry order). Held and sold counts,
// per-user counts and the expiry index are derived from the reservations
// on open.
//
// Memory holds the held and paid reservations only: a released one
// leaves memory once its release is committed (and is not loaded on open),
// and the cold paths that ask for it read it from Pebble (see Memory).
//
// A failed commit is never acknowledged: the operation returns
// ErrUnavailable, its in-memory change is rolled back and the store stops
// taking writes (Pebble's commit pipeline cannot continue after a WAL
// error); reopen to recover.
type Pebble struct {
	mem *Memory
	db  *pebble.DB
	// closeMu lets Close wait for operations in flight.
	closeMu sync.RWMutex
	closed  bool
	// guard fails the store at its first failed commit (pebblefail).
	guard pebblefail.Guard
	// committing counts commits waiting for their sync (see WALSyncGap).
	committing atomic.Int64
	// syncGaps counts the syncs that were made to wait for the gap.
	syncGaps atomic.Int64

	// purgeTurn lets one Purge round run at a time (a one-slot
	// semaphore, waited on with the caller's context): each round starts
	// where the one before it stopped (purgeFrom), which a round running
	// beside it could not know.
	purgeTurn chan struct{}
	// purgeMu guards the purge bounds below. It is never held across a
	// commit: writers of purge keys take it after theirs.
	purgeMu sync.Mutex
	// purgeFrom is the lower bound of the next Purge round's iterator:
	// no purge key below it is on disk. Without it every round would
	// start at the first purge key and step over the tombstones of every
	// key the rounds before it deleted (until a compaction drops them):
	// quadratic over a large drain. A released record can be written
	// below it (a refund of a reservation paid long ago, an expiry the
	// sweeper reached late), so every writer of purge keys lowers it to
	// its least key (notePurgeKey).
	purgeFrom []byte
	// purgeLow is the least purge key written while a round runs
	// (purging): the round may not have seen it (its iterator reads the
	// disk as it was when made), so the round moves purgeFrom no higher.
	purgeLow []byte
	purging  bool
	// purgePoints counts the keys Purge's iterators stepped over,
	// deleted ones included (Pebble's iterator stats): what the rounds
	// cost. Tests read it.
	purgePoints atomic.Int64
}

const (
	walSyncGapDefault        = 250 * time.Microsecond
	walSyncGapCommitsDefault = 32
)

var _ Store = (*Pebble)(nil)

const (
	keyPool   = 'p'
	keyRecord = 'r'
	// keyPurge+expiry+id is the purge index of released records: the
	// expiry is 8 bytes, big-endian, of the Unix milliseconds with the sign
	// bit flipped, so that keys sort by expiry.
	keyPurge = 'x'
	// keyPurgeIndexed marks a store whose released records all have their
	// purge index key (written by the first open that builds it).
	keyPurgeIndexed = "m/purge-indexed"
	codecV1         = 1
	// codecV2 is a pool with transfer totals (codecV1's fields, then the
	// count of totals and each total's key and value).
	codecV2 = 2
	// codecV3 is a closed pool (ClosePool): codecV1's fields, a flags
	// byte (poolFlagClosed), then the totals as in codecV2 (a count of 0
	// when there are none).
	codecV3        = 3
	poolFlagClosed = 1
)

// OpenPebble opens (or creates) the store in dir and rebuilds its state.
func OpenPebble(dir string, opts PebbleOptions) (*Pebble, error) {
	po := &pebble.Options{}
	s := &Pebble{purgeTurn: make(chan struct{}, 1), purgeFrom: []byte{keyPurge}}
	if opts.WALSyncGap == 0 {
		opts.WALSyncGap = walSyncGapDefault
	}
	if opts.WALSyncGapCommits <= 0 {
		opts.WALSyncGapCommits = walSyncGapCommitsDefault
	}
	if opts.DiskEntriesMax == 0 {
		opts.DiskEntriesMax = DiskEntriesMaxDefault
	}
	if gap, busy := opts.WALSyncGap, int64(opts.WALSyncGapCommits); gap > 0 {
		po.WALMinSyncInterval = func() time.Duration {
			if s.committing.Load() >= busy {
				s.syncGaps.Add(1)
				return gap
			}
			return 0
		}
	}
	if opts.Tune != nil {
		opts.Tune(po)
	}
	if opts.FS != nil {
		po.FS = opts.FS
	}
	po.Logger = pebblefail.Logger{Name: "inventory"}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("cannot open pebble in %q: %w: %w", dir, ErrUnavailable, err)
	}
	s.mem, s.db = NewMemory(opts.Options), db
	s.mem.boundDisk(max(opts.DiskEntriesMax, 0))
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if !opts.NoWALWarmup {
		if err := warmWAL(db, po); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("cannot open pebble in %q: %w: %w", dir, ErrUnavailable, err)
		}
	}
	s.mem.dur = s
	return s, nil
}

// load rebuilds memory from Pebble.
func (s *Pebble) load() error {
	m := s.mem
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyPool}, UpperBound: []byte{keyPool + 1}})
	if err != nil {
		return fmt.Errorf("cannot read pools: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		id := string(it.Key()[1:])
		w, err := decodePool(id, it.Value())
		if err != nil {
			_ = it.Close()
			return err
		}
		p := &pool{id: id, net: w.net, ledger: w.ledger}
		p.closed.Store(w.closed) // before its reservations: no counts for it
		p.free.Store(w.net)
		p.onHand.Store(w.onHand)
		p.seq.Store(w.seq)
		m.pools.insertLocked(p)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("cannot read pools: %w", err)
	}
	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyRecord}, UpperBound: []byte{keyRecord + 1}})
	if err != nil {
		return fmt.Errorf("cannot read reservations: %w", err)
	}
	defer it.Close()
	// A store written before the purge index has released records
	// without their index key: write them now, once.
	_, closer, err := s.db.Get([]byte(keyPurgeIndexed))
	indexed := err == nil
	if indexed {
		_ = closer.Close()
	} else if err != pebble.ErrNotFound {
		return fmt.Errorf("cannot read reservations: %w", err)
	}
	var b *pebble.Batch
	if !indexed {
		b = s.db.NewBatch()
		defer func() { _ = b.Close() }()
	}
	var r storedRecord
	for it.First(); it.Valid(); it.Next() {
		id := string(it.Key()[1:])
		if err := r.decode(id, it.Value(), m.pools.get); err != nil {
			return err
		}
		m.restore(id, r.user, r.lines, r.pools, r.meta, r.createdMs, r.expiresMs, r.state, r.refunded)
		if b != nil && r.state == StateReleased {
			if err := b.Set(purgeKey(nil, r.expiresMs, id), nil, nil); err != nil {
				return fmt.Errorf("cannot index released reservations: %w", err)
			}
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if b != nil {
		if err := b.Set([]byte(keyPurgeIndexed), nil, nil); err != nil {
			return fmt.Errorf("cannot index released reservations: %w", err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("cannot index released reservations: %w: %w", ErrUnavailable, err)
		}
	}
	return nil
}

// purgeKey appends the purge index key of the released record id, which
// expires at expiresMs, to dst.
func purgeKey[ID string | []byte](dst []byte, expiresMs int64, id ID) []byte {
	dst = append(dst, keyPurge)
	dst = binary.BigEndian.AppendUint64(dst, uint64(expiresMs)^1<<63)
	return append(dst, id...)
}

// purgeKeyUpper is the least purge index key of a record expiring after
// ms.
func purgeKeyUpper(ms int64) []byte {
	if ms == math.MaxInt64 {
		return []byte{keyPurge + 1}
	}
	return binary.BigEndian.AppendUint64([]byte{keyPurge}, uint64(ms+1)^1<<63)
}

// commit writes b with pebble.Sync. It never reports success for a commit
// Pebble could not sync.
func (s *Pebble) commit(b *pebble.Batch) error {
	err := s.guard.Do(func() error {
		s.committing.Add(1)
		defer s.committing.Add(-1)
		return b.Commit(pebble.Sync)
	})
	if err != nil {
		// Pebble's commit pipeline cannot go on after a failed commit:
		// stop taking writes.
		s.guard.Fail(err)
		return fmt.Errorf("cannot commit: %w: %w", ErrUnavailable, err)
	}
	_ = b.Close()
	return nil
}

func (s *Pebble) putRecords(ws []recWrite) error {
	b := s.db.NewBatch()
	var key, val, low []byte
	for _, w := range ws {
		sh := s.mem.shardOf(w.rec)
		id := sh.idBytes(w.rec)
		key = append(append(key[:0], keyRecord), id...)
		val = s.encodeRecord(val[:0], w.rec, w.state, w.refunded)
		if err := b.Set(key, val, nil); err != nil {
			return fmt.Errorf("cannot write reservation: %w", err)
		}
		if w.state == StateReleased {
			key = purgeKey(key[:0], w.rec.expiresMs, id)
			if err := b.Set(key, nil, nil); err != nil {
				return fmt.Errorf("cannot write reservation: %w", err)
			}
			if low == nil || bytes.Compare(key, low) < 0 {
				low = append(low[:0], key...)
			}
		}
	}
	if err := s.commit(b); err != nil {
		return err
	}
	if low != nil {
		s.notePurgeKey(low)
	}
	return nil
}

// notePurgeKey tells Purge that the purge key k is on disk: the next
// round starts at or below it. k is kept (the caller must not reuse it).
// It is called after the commit that wrote k: a round whose iterator was
// made before that commit does not see k, and either it is still running,
// and finds k in purgeLow when it ends, or it has ended, and k lowers the
// purgeFrom it left.
func (s *Pebble) notePurgeKey(k []byte) {
	s.purgeMu.Lock()
	if bytes.Compare(k, s.purgeFrom) < 0 {
		s.purgeFrom = k
	}
	if s.purging && (s.purgeLow == nil || bytes.Compare(k, s.purgeLow) < 0) {
		s.purgeLow = k
	}
	s.purgeMu.Unlock()
}

// deleteRecords deletes the records, released ones with their purge index
// keys, in one synced batch.
func (s *Pebble) deleteRecords(recs []*record) error {
	b := s.db.NewBatch()
	var key []byte
	for _, rec := range recs {
		id := s.mem.shardOf(rec).idBytes(rec)
		key = append(append(key[:0], keyRecord), id...)
		if err := b.Delete(key, nil); err != nil {
			return fmt.Errorf("cannot delete reservation: %w", err)
		}
		if rec.state == StateReleased {
			if err := b.Delete(purgeKey(key[:0], rec.expiresMs, id), nil); err != nil {
				return fmt.Errorf("cannot delete reservation: %w", err)
			}
		}
	}
	return s.commit(b)
}

// readReleased implements durable.
func (s *Pebble) readReleased(id string) (Reservation, bool, error) {
	v, closer, err := s.db.Get(append([]byte{keyRecord}, id...))
	if err == pebble.ErrNotFound {
		return Reservation{}, false, nil
	}
	if err != nil {
		return Reservation{}, false, fmt.Errorf("cannot read reservation %q: %w: %w", id, ErrUnavailable, err)
	}
	defer closer.Close()
	var r storedRecord
	if err := r.decode(id, v, s.mem.pools.get); err != nil {
		return Reservation{}, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if r.state != StateReleased {
		return Reservation{}, false, nil
	}
	return r.reservation(id), true, nil
}

// deleteReleased implements durable.
func (s *Pebble) deleteReleased(ids []string, beforeMs int64) ([]bool, error) {
	deleted := make([]bool, len(ids))
	b := s.db.NewBatch()
	committing := false
	defer func() {
		if !committing { // commit closes it
			_ = b.Close()
		}
	}()
	var r storedRecord
	var key []byte
	n := 0
	for i, id := range ids {
		key = append(append(key[:0], keyRecord), id...)
		v, closer, err := s.db.Get(key)
		if err == pebble.ErrNotFound {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read reservation %q: %w: %w", id, ErrUnavailable, err)
		}
		err = r.decode(id, v, s.mem.pools.get)
		_ = closer.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if r.state != StateReleased || r.expiresMs > beforeMs {
			continue
		}
		if err := b.Delete(key, nil); err != nil {
			return nil, fmt.Errorf("cannot delete reservation: %w", err)
		}
		if err := b.Delete(purgeKey(key[:0], r.expiresMs, id), nil); err != nil {
			return nil, fmt.Errorf("cannot delete reservation: %w", err)
		}
		deleted[i] = true
		n++
	}
	if n == 0 {
		return deleted, nil
	}
	committing = true
	if err := s.commit(b); err != nil {
		return nil, err
	}
	return deleted, nil
}

func (s *Pebble) putPools(ws []poolWrite) error {
	b := s.db.NewBatch()
	var key, val []byte
	for _, w := range ws {
		key = append(append(key[:0], keyPool), w.id...)
		val = encodePool(val[:0], w)
		if err := b.Set(key, val, nil); err != nil {
			return fmt.Errorf("cannot write pool: %w", err)
		}
	}
	return s.commit(b)
}

func encodePool(dst []byte, w poolWrite) []byte {
	switch {
	case w.closed:
		dst = append(dst, codecV3)
	case len(w.ledger) > 0:
		dst = append(dst, codecV2)
	default:
		dst = append(dst, codecV1)
	}
	dst = binary.AppendVarint(dst, w.net)
	dst = binary.AppendVarint(dst, w.onHand)
	dst = binary.AppendUvarint(dst, w.seq)
	if w.closed {
		dst = append(dst, poolFlagClosed)
		dst = binary.AppendUvarint(dst, uint64(len(w.ledger)))
		for k, v := range w.ledger {
			dst = appendString(dst, k)
			dst = binary.AppendVarint(dst, v)
		}
	} else if len(w.ledger) > 0 {
		dst = binary.AppendUvarint(dst, uint64(len(w.ledger)))
		for k, v := range w.ledger {
			dst = appendString(dst, k)
			dst = binary.AppendVarint(dst, v)
		}
	}
	return dst
}

func decodePool(id string, v []byte) (poolWrite, error) {
	d := decoder{b: v}
	w := poolWrite{id: id}
	ver := d.byte()
	if ver != codecV1 && ver != codecV2 && ver != codecV3 {
		return w, fmt.Errorf("cannot decode pool %q: unknown version", id)
	}
	w.net = d.varint()
	w.onHand = d.varint()
	w.seq = d.uvarint()
	if ver == codecV3 {
		flags := d.byte()
		if flags&^poolFlagClosed != 0 {
			return w, fmt.Errorf("cannot decode pool %q: unknown flags", id)
		}
		w.closed = flags&poolFlagClosed != 0
	}
	if ver == codecV2 || ver == codecV3 {
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			return w, fmt.Errorf("cannot decode pool %q: corrupt", id)
		}
		if n > 0 {
			w.ledger = make(map[string]int64, n)
		}
		for range n {
			k := d.string()
			w.ledger[k] = d.varint()
		}
	}
	if d.err || len(d.b) != 0 {
		return w, fmt.Errorf("cannot decode pool %q: corrupt", id)
	}
	return w, nil
}

// encodeRecord appends rec's value, in state and refunded. Requires
// rec.mu.
func (s *Pebble) encodeRecord(dst []byte, rec *record, state State, refunded bool) []byte {
	sh := s.mem.shardOf(rec)
	dst = append(dst, codecV1, byte(state))
	if refunded {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	dst = binary.AppendVarint(dst, rec.createdMs)
	dst = binary.AppendVarint(dst, rec.expiresMs)
	dst = appendBytes(dst, sh.userBytes(rec))
	dst = binary.AppendUvarint(dst, uint64(rec.nLines))
	for i := range int(rec.nLines) {
		p, q, l := sh.line(rec, i)
		dst = appendString(dst, s.mem.pools.at(p).id)
		dst = binary.AppendVarint(dst, q)
		dst = binary.AppendVarint(dst, l)
	}
	return appendBytes(dst, sh.metaBytes(rec))
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// storedRecord is a decoded record value; its slices are reused by the
// next decode.
type storedRecord struct {
	state                State
	refunded             bool
	createdMs, expiresMs int64
	user                 string
	lines                []Line
	pools                []*pool
	meta                 []byte
}

// reservation returns r as the reservation id, with its own slices.
func (r *storedRecord) reservation(id string) Reservation {
	res := Reservation{
		ID:        id,
		User:      r.user,
		Lines:     slices.Clone(r.lines),
		State:     r.state,
		CreatedAt: time.UnixMilli(r.createdMs),
		ExpiresAt: time.UnixMilli(r.expiresMs),
		Refunded:  r.refunded,
	}
	if len(r.meta) > 0 {
		res.Meta = slices.Clone(r.meta)
	}
	return res
}

// decode fills r from v; pools resolves pool ids.
func (r *storedRecord) decode(id string, v []byte, pools func(string) *pool) error {
	d := decoder{b: v}
	bad := func(why string) error { return fmt.Errorf("cannot decode reservation %q: %s", id, why) }
	if d.byte() != codecV1 {
		return bad("unknown version")
	}
	r.state = State(d.byte())
	r.refunded = d.byte() == 1
	r.createdMs = d.varint()
	r.expiresMs = d.varint()
	r.user = d.string()
	n := d.uvarint()
	if d.err || n == 0 || n > LinesMax {
		return bad("corrupt lines")
	}
	r.lines, r.pools = r.lines[:0], r.pools[:0]
	for range n {
		l := Line{Pool: d.string(), Quantity: d.varint(), Limit: d.varint()}
		p := pools(l.Pool)
		if p == nil && !d.err {
			return bad("unknown pool " + l.Pool)
		}
		r.lines, r.pools = append(r.lines, l), append(r.pools, p)
	}
	r.meta = append(r.meta[:0], d.string()...)
	if d.err || len(d.b) != 0 || r.state < StateHeld || r.state > StateReleased {
		return bad("corrupt")
	}
	if !ValidReservationID(id) || !ValidID(r.user) || len(r.meta) > MetaLenMax {
		return bad("bad id, user or meta")
	}
	return nil
}

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// enter guards an operation against a concurrent Close.
func (s *Pebble) enter() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Pebble) leave() { s.closeMu.RUnlock() }

// CreatePool implements Store.
func (s *Pebble) CreatePool(ctx context.Context, id string, supplied int64) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.mem.CreatePool(ctx, id, supplied)
}

// Reserve implements Store.
func (s *Pebble) Reserve(ctx context.Context, req ReserveRequest) (Reservation, error) {
	if err := s.enter(); err != nil {
		return Reservation{}, err
	}
	defer s.leave()
	return s.mem.Reserve(ctx, req)
}

// Confirm implements Store.
func (s *Pebble) Confirm(ctx context.Context, id string) (Reservation, error) {
	if err := s.enter(); err != nil {
		return Reservation{}, err
	}
	defer s.leave()
	return s.mem.Confirm(ctx, id)
}

// Release implements Store.
func (s *Pebble) Release(ctx context.Context, id string) (Reservation, error) {
	if err := s.enter(); err != nil {
		return Reservation{}, err
	}
	defer s.leave()
	return s.mem.Release(ctx, id)
}

// Refund implements Store.
func (s *Pebble) Refund(ctx context.Context, id string) (Reservation, error) {
	if err := s.enter(); err != nil {
		return Reservation{}, err
	}
	defer s.leave()
	return s.mem.Refund(ctx, id)
}

// Expire implements Store.
func (s *Pebble) Expire(ctx context.Context, now time.Time, max int) ([]Reservation, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	return s.mem.Expire(ctx, now, max)
}

// Move implements Store.
func (s *Pebble) Move(ctx context.Context, from, to string, qty int64) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.mem.Move(ctx, from, to, qty)
}

// Drain implements Store.
func (s *Pebble) Drain(ctx context.Context, from, to string) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	return s.mem.Drain(ctx, from, to)
}

// SetOnHand implements Store.
func (s *Pebble) SetOnHand(ctx context.Context, id string, onHand int64, seq uint64) (FeedResult, error) {
	if err := s.enter(); err != nil {
		return FeedResult{}, err
	}
	defer s.leave()
	return s.mem.SetOnHand(ctx, id, onHand, seq)
}

// Pool implements Store.
func (s *Pebble) Pool(ctx context.Context, id string) (Pool, error) {
	if err := s.enter(); err != nil {
		return Pool{}, err
	}
	defer s.leave()
	return s.mem.Pool(ctx, id)
}

// Reservation implements Store.
func (s *Pebble) Reservation(ctx context.Context, id string) (Reservation, error) {
	if err := s.enter(); err != nil {
		return Reservation{}, err
	}
	defer s.leave()
	return s.mem.Reservation(ctx, id)
}

// Scan implements Store.
func (s *Pebble) Scan(ctx context.Context, state State, cursor string, limit int) ([]Reservation, string, error) {
	if err := s.enter(); err != nil {
		return nil, "", err
	}
	defer s.leave()
	if state != StateHeld && state != StatePaid && state != StateReleased {
		return nil, "", invalidf("bad state")
	}
	if limit <= 0 || limit > ScanLimitMax || len(cursor) > IDLenMax {
		return nil, "", invalidf("bad limit or cursor")
	}
	// Pebble keeps the records in id order, so a page is a seek past the
	// cursor and a walk to the next limit matches: replaying every paid
	// reservation at start-up costs one pass over the records, not one
	// pass (and a sort) per page. The state is read from memory, which
	// holds what was acknowledged, for held and paid records; a record
	// memory does not hold is released (or being deleted) and is read
	// from Pebble.
	lower := append(append([]byte{keyRecord}, cursor...), 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: []byte{keyRecord + 1}})
	if err != nil {
		return nil, "", fmt.Errorf("cannot scan reservations: %w: %w", ErrUnavailable, err)
	}
	defer it.Close()
	var rs []Reservation
	for valid := it.First(); valid; valid = it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		id := string(it.Key()[1:])
		res, ok := s.mem.memReservation(id)
		if !ok {
			if state != StateReleased {
				continue // released, or forgotten meanwhile
			}
			// The iterator's value may predate the release: read it.
			var found bool
			if res, found, err = s.readReleased(id); err != nil {
				return nil, "", err
			}
			if !found {
				continue // deleted meanwhile
			}
		}
		if res.State != state {
			continue // in another state
		}
		if len(rs) == limit {
			return rs, rs[len(rs)-1].ID, nil
		}
		rs = append(rs, res)
	}
	if err := it.Error(); err != nil {
		return nil, "", fmt.Errorf("cannot scan reservations: %w: %w", ErrUnavailable, err)
	}
	return rs, "", nil
}

// Forget deletes a released reservation (see Memory.Forget), durably.
func (s *Pebble) Forget(ctx context.Context, id string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.mem.Forget(ctx, id)
}

// Purge forgets up to max released reservations whose ExpiresAt is at or
// before before and returns how many it forgot. Released reservations are
// on disk only: it walks the purge index ("x" keys, in expiry order) up to
// before, claims each id (claimDisk: a concurrent Forget skips what Purge
// claimed and the other way round, so each reservation is forgotten once;
// a Reserve of the id waits), checks the record is still released, and
// deletes the claimed records in one synced batch. It reads at most max
// index keys that it could claim, plus those claimed by others.
//
// One round runs at a time, and starts where the round before it stopped
// (purgeFrom), so a drain in rounds reads each index key about once
// instead of stepping again over the tombstones of the keys deleted
// before.
func (s *Pebble) Purge(ctx context.Context, before time.Time, max int) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	if max <= 0 || max > ExpireMax {
		return 0, invalidf("max out of range")
	}
	select {
	case s.purgeTurn <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("cannot purge reservations: %w", ctx.Err())
	}
	defer func() { <-s.purgeTurn }()
	s.purgeMu.Lock()
	from := s.purgeFrom
	s.purgeLow, s.purging = nil, true
	s.purgeMu.Unlock()
	n, next, err := s.purgeRound(ctx, from, before.UnixMilli(), max)
	s.purgeMu.Lock()
	if err == nil && next != nil {
		if s.purgeLow != nil && bytes.Compare(s.purgeLow, next) < 0 {
			next = s.purgeLow
		}
		s.purgeFrom = next
	}
	// After an error purgeFrom stays where it was (lowered by the
	// writers meanwhile): the round may have deleted nothing.
	s.purgeLow, s.purging = nil, false
	s.purgeMu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("cannot purge reservations: %w", err)
	}
	return n, nil
}

// purgeRound is one round of Purge from the purge key from, and returns
// how many it forgot and where the next round may start: the first key
// it read and did not delete (claimed by a Forget, or its record still in
// memory between its release's commit and its eviction), else the key it
// stopped at, else the end of what it could read (nil: purgeFrom stays,
// when nothing could be read). Requires purgeTurn.
func (s *Pebble) purgeRound(ctx context.Context, from []byte, beforeMs int64, max int) (n int, next []byte, err error) {
	upper := purgeKeyUpper(beforeMs)
	if bytes.Compare(from, upper) >= 0 {
		return 0, nil, nil // every key due is below from: deleted
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: upper})
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var ids []string
	var exps []uint64 // the expiry bytes of ids' keys, to rebuild a key
	var kept []byte   // the first key read and not claimed
	valid := it.First()
	for ; valid && len(ids) < max; valid = it.Next() {
		k := it.Key()
		if len(k) <= 9 {
			continue // not a purge key: nothing to wait for
		}
		id := string(k[9:])
		if ok, _ := s.mem.claimDisk(id); ok {
			ids = append(ids, id)
			exps = append(exps, binary.BigEndian.Uint64(k[1:9]))
		} else if kept == nil {
			kept = slices.Clone(k)
		}
	}
	next = upper // read to the end
	if valid {
		next = slices.Clone(it.Key()) // stopped at max
	}
	err = it.Error()
	s.purgePoints.Add(int64(it.Stats().InternalStats.PointCount))
	_ = it.Close()
	if err == nil {
		err = ctx.Err()
	}
	var deleted []bool
	if err == nil && len(ids) > 0 {
		deleted, err = s.deleteReleased(ids, beforeMs)
	}
	var undeleted []byte // the first claimed key not deleted
	for i, id := range ids {
		ok := err == nil && deleted[i]
		s.mem.unclaimDisk(id, ok)
		if ok {
			n++
		} else if undeleted == nil {
			// Its record is gone or no longer released (neither
			// happens while its key is there), and the key stays.
			undeleted = binary.BigEndian.AppendUint64([]byte{keyPurge}, exps[i])
			undeleted = append(undeleted, id...)
		}
	}
	if err != nil {
		return 0, nil, err
	}
	for _, k := range [][]byte{kept, undeleted} {
		if k != nil && bytes.Compare(k, next) < 0 {
			next = k
		}
	}
	return n, next, nil
}

// ClosePool implements Store: the pool is written closed in one synced
// batch before its counts are dropped; Open then rebuilds no counts for
// it. Pebble keeps no per-user counts of its own (they are derived from
// the reservations on open), so nothing else is deleted.
func (s *Pebble) ClosePool(ctx context.Context, id string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.mem.ClosePool(ctx, id)
}

// Close implements Store. It waits for operations in flight. After a
// failed commit Pebble may refuse to close cleanly; the error is returned.
func (s *Pebble) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.mem.Close()
	if err := s.guard.Err(); err != nil {
		// Pebble's commit pipeline is wedged after a WAL error; closing it
		// could block forever. Leave the files for the next open.
		return fmt.Errorf("cannot close cleanly: %w", err)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("cannot close pebble: %w", err)
	}
	return nil
}
