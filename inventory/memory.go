package inventory

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/surge-retail/surge/internal/coarseclock"
)

// Memory is the in-process backend: atomic counters, no persistence. It is
// also the in-memory layer of the pebble backend (see durable).
//
// Reserving from one pool is one CAS on the pool's counter (no mutex per
// pool); a multi-line reserve takes its pools in pool-id order and rolls
// back on failure. Per-user counts are atomics in a sharded table, dropped
// when they return to zero. Reservations live in shards: pointer-free
// records (so the garbage collector does not scan them) found through an
// open-addressing index, with an expiry heap that Expire pops, so each
// expiry is released once, and a purge heap of released records that Purge
// pops, so each is forgotten once.
//
// Memory keeps every reservation until it is forgotten (Forget, Purge):
// Scan and Reservation read released ones too. A reservation costs about
// 120 bytes (a 64-byte record, index entry, heap entries, line 0's limit)
// plus its id, user and meta; slots and arena space of forgotten ones are
// reused.
//
// As the memory layer of a durable store (Pebble) it keeps only held and
// paid reservations: a released one is evicted once its release is on
// disk, leaving a disk entry in the index (8 bytes, see onDisk), and is
// read back from disk on the cold paths that ask for it (Reservation, a
// retried Reserve, Confirm, Release, Refund and Forget of it). Deleting it
// from disk (Pebble's Purge, Forget) claims the id first (claimDisk), so
// that a Reserve of the id waits instead of creating it twice. The disk
// entries are bounded (PebbleOptions.DiskEntriesMax): a shard at its
// bound drops them and reads the disk for every id it does not hold, as
// if each had a disk entry (recShard.overflowDisk).
type Memory struct {
	opts    Options
	pools   poolTable
	users   userTable
	recSeed maphash.Seed
	// recs are the record shards, a power of two of them (shardsFor);
	// a record's shard is its id hash & shardMask.
	recs      []recShard
	shardMask uint64
	// coarseNow: opts.Now is the default clock, read inline.
	coarseNow  bool
	expireNext atomic.Uint32
	purgeNext  atomic.Uint32
	closed     atomic.Bool
	// dur persists changes before they are acknowledged; nil for the pure
	// memory backend.
	dur durable
}

var _ Store = (*Memory)(nil)

// errRetry: a reserve of an id being deleted from disk waited for the
// deletion; look again.
var errRetry = errors.New("inventory: look again")

// durable persists state changes, synced, before Memory acknowledges them.
// Units that leave a pool's free counter are taken in memory first and
// rolled back if persisting fails; units that return to free are persisted
// first. So memory never promises a unit the disk does not have.
//
// The records passed are locked (their mu) and current.
//
// Released records are evicted from memory once persisted: readReleased
// reads one back, deleteReleased deletes them (see claimDisk).
type durable interface {
	putRecords(ws []recWrite) error
	putPools(ws []poolWrite) error
	deleteRecords(recs []*record) error
	// readReleased reads id's record from disk: found is false when
	// there is none or it is not released.
	readReleased(id string) (res Reservation, found bool, err error)
	// deleteReleased deletes, in one synced batch, those of ids whose
	// record is released with ExpiresAt at or before beforeMs, and says
	// which it deleted. The ids are claimed (claimDisk).
	deleteReleased(ids []string, beforeMs int64) (deleted []bool, err error)
}

// putRecords persists ws (m.dur.putRecords), counting the records as
// committing in their shards meanwhile: they stay locked across the sync
// (see recShard.tryRebuild).
func (m *Memory) putRecords(ws []recWrite) error {
	for _, w := range ws {
		m.shardOf(w.rec).committing.Add(1)
	}
	err := m.dur.putRecords(ws)
	for _, w := range ws {
		m.shardOf(w.rec).committing.Add(-1)
	}
	return err
}

// deleteRecords deletes recs from disk (m.dur.deleteRecords), counting
// them as committing as putRecords does.
func (m *Memory) deleteRecords(recs []*record) error {
	for _, rec := range recs {
		m.shardOf(rec).committing.Add(1)
	}
	err := m.dur.deleteRecords(recs)
	for _, rec := range recs {
		m.shardOf(rec).committing.Add(-1)
	}
	return err
}

// recWrite is a record with the state it is moving to.
type recWrite struct {
	rec      *record
	state    State
	refunded bool
}

// poolWrite is a pool's persistent state: net units and the feed position.
type poolWrite struct {
	id     string
	net    int64
	onHand int64
	seq    uint64
	// ledger is the pool's transfer totals (transfer.go), written with
	// every change of the pool so that none drops them.
	ledger map[string]int64
	// closed: ClosePool closed the pool (written with every change, like
	// the ledger).
	closed bool
}

// reserveRetryMax bounds how often Reserve waits for a concurrent creator of
// the same id that then failed.
const reserveRetryMax = 64

// NewMemory returns an empty memory store.
func NewMemory(opts Options) *Memory {
	m := &Memory{opts: opts.WithDefaults(), recSeed: maphash.MakeSeed(), coarseNow: opts.Now == nil}
	n := shardsFor(runtime.GOMAXPROCS(0))
	m.recs, m.shardMask = make([]recShard, n), uint64(n-1)
	m.pools.init()
	m.users.init()
	for i := range m.recs {
		m.recs[i].init()
	}
	return m
}

// boundDisk bounds the disk entries of a durable store's shards to
// entriesMax in all (PebbleOptions.DiskEntriesMax): entriesMax/shards each,
// rounded down so that the total never passes it; a shard whose part is 0
// holds none from the start. Called before any record is added.
func (m *Memory) boundDisk(entriesMax int) {
	for i := range m.recs {
		sh := &m.recs[i]
		sh.diskMax = entriesMax / len(m.recs)
		sh.diskAny = sh.diskMax == 0
	}
}

// shardsFor returns how many record shards a store uses on procs
// processors: 8 a processor, as a power of two between recShardsMin and
// recShardsMax. A reserve holds its shard's lock for well under a
// microsecond, so that keeps shards rarely contended, while fewer shards
// keep the lines a run of reserves writes (each shard's next record,
// arena, heap and free-list entries) fewer and warmer: on the 2-core bench
// machine 16 shards took about 15% less CPU per reserve than 128
// (uncontended-reused).
func shardsFor(procs int) int {
	n := recShardsMin
	for n < 8*procs && n < recShardsMax {
		n *= 2
	}
	return n
}

// shardOf returns the shard of a record.
func (m *Memory) shardOf(rec *record) *recShard { return &m.recs[rec.hash()&m.shardMask] }

// shardOfHash returns the shard of the id whose hash is h.
func (m *Memory) shardOfHash(h uint64) *recShard { return &m.recs[h&m.shardMask] }

// nowMs reads the store's clock in Unix milliseconds.
func (m *Memory) nowMs() int64 {
	if m.coarseNow {
		return coarseclock.UnixMilli()
	}
	return m.opts.Now().UnixMilli()
}

// CreatePool implements Store.
func (m *Memory) CreatePool(ctx context.Context, id string, supplied int64) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if !ValidID(id) {
		return invalidf("bad pool id")
	}
	if supplied < 0 || supplied > UnitsMax {
		return invalidf("supplied out of range")
	}
	m.pools.mu.Lock()
	defer m.pools.mu.Unlock()
	if m.pools.get(id) != nil {
		return fmt.Errorf("cannot create pool %q: %w", id, ErrPoolExists)
	}
	if m.dur != nil {
		if err := m.dur.putPools([]poolWrite{{id: id, net: supplied}}); err != nil {
			return err
		}
	}
	p := &pool{id: id, net: supplied}
	p.free.Store(supplied)
	m.pools.insertLocked(p)
	return nil
}

// Reserve implements Store. A new reservation's Lines and Meta are the
// request's own slices; a replayed one's are fresh copies.
func (m *Memory) Reserve(ctx context.Context, req ReserveRequest) (Reservation, error) {
	if m.closed.Load() {
		return Reservation{}, ErrClosed
	}
	var h uint64
	var sh *recShard
	if len(req.ID) <= IDLenMax {
		// Hash first (Validate refuses longer ids), so that the index
		// line is fetched while the request is validated.
		h = maphash.String(m.recSeed, req.ID)
		sh = m.shardOfHash(h)
		sh.prefetchIndex(h)
	}
	if err := req.Validate(m.opts.MaxQuantity); err != nil {
		return Reservation{}, err
	}
	// Resolve the pools before taking the shard's mu (the table is read
	// without locks, and pools are never removed): the index line is on
	// its way meanwhile. A missing pool is answered only for a new id,
	// after the probe, as if it had been looked up there.
	var poolsBuf [LinesMax]*pool
	var idxBuf [LinesMax]uint32
	missing := -1
	for i := range req.Lines {
		p := m.pools.get(req.Lines[i].Pool)
		if p == nil {
			missing = i
			break
		}
		poolsBuf[i], idxBuf[i] = p, p.idx
	}
	var pos int
	// readEvicts is the shard's evictions of ids like req.ID (evicted)
	// when the disk said req.ID is not there (diskRead).
	var readEvicts uint32
	diskRead := false
	for attempt := 0; ; attempt++ {
		sh.mu.Lock()
		var rec *record
		var gen uint32
		var disk bool
		rec, gen, pos, disk = sh.probe(h, req.ID)
		if rec == nil {
			// No disk entry of its fingerprint (and the shard keeps
			// them: diskAny is off), or the disk did not have it and
			// nothing that may be it was evicted (evicted) or claimed
			// since: a new id.
			if !disk || (diskRead && sh.evicted(h) == readEvicts && sh.claims[req.ID] == nil) {
				// sh.mu stays locked: create below.
				break
			}
			if attempt >= reserveRetryMax {
				sh.mu.Unlock()
				return Reservation{}, fmt.Errorf("cannot reserve %q: its record on disk keeps changing: %w", req.ID, ErrUnavailable)
			}
			readEvicts = sh.evicted(h)
			res, err := m.reserveOnDisk(ctx, sh, &req) // unlocks sh.mu
			if err == errRetry {
				// No answer from the disk this pass (it waited on a
				// claim): an older "not there" must not count, or a
				// later pass could create an id the disk holds again.
				diskRead = false
				continue
			}
			if err != nil || res.ID != "" {
				return res, err
			}
			diskRead = true
			continue
		}
		sh.mu.Unlock()
		rec.mu.Lock() // waits for a concurrent creator
		if rec.gen != gen {
			// Its creation failed, or it was forgotten: look again.
			rec.mu.Unlock()
			if attempt >= reserveRetryMax {
				return Reservation{}, fmt.Errorf("cannot reserve %q: concurrent attempts keep failing: %w", req.ID, ErrUnavailable)
			}
			continue
		}
		same := m.sameRequest(sh, rec, &req)
		var res Reservation
		if same {
			res = m.view(sh, rec, req.ID)
			res.Existed = true
		}
		rec.mu.Unlock()
		if !same {
			return Reservation{}, fmt.Errorf("cannot reserve %q: %w", req.ID, ErrIDConflict)
		}
		return res, nil
	}

	// sh.mu is held: a new id. Refuse a missing pool before creating
	// anything.
	if missing >= 0 {
		sh.mu.Unlock()
		return Reservation{}, fmt.Errorf("cannot reserve from %q: %w", req.Lines[missing].Pool, ErrPoolNotFound)
	}
	pools := poolsBuf[:len(req.Lines)]
	if m.dur == nil {
		// Nothing to wait for: take the units (take refuses sold out,
		// then over the limit) and publish the record under sh.mu, so
		// nobody ever sees it pending.
		if err := m.take(req.User, req.Lines, pools); err != nil {
			sh.mu.Unlock()
			return Reservation{}, err
		}
		createdMs, expiresMs := expiryMs(m.nowMs(), req.TTL)
		rec, ref := sh.newRecord(h, req.ID, req.User, req.Lines, idxBuf[:len(pools)], req.Meta, createdMs, expiresMs)
		rec.state, rec.refunded = StateHeld, false
		sh.publish(ref.entry, pos)
		sh.pushExpNew(rec, ref, expiresMs)
		sh.mu.Unlock()
		return newHeld(&req, createdMs, expiresMs), nil
	}

	// Sold out and over the limit are the common answers in a flash sale:
	// give them before creating and persisting a pending record. take
	// decides again, atomically, for the requests that pass.
	for i, p := range pools {
		if p.free.Load() < req.Lines[i].Quantity || p.closed.Load() {
			sh.mu.Unlock()
			return Reservation{}, ErrSoldOut
		}
	}
	for i := range req.Lines {
		l := &req.Lines[i]
		if l.Limit > 0 && m.users.get(pools[i], req.User)+l.Quantity > l.Limit {
			sh.mu.Unlock()
			return Reservation{}, ErrLimitExceeded
		}
	}
	createdMs, expiresMs := expiryMs(m.nowMs(), req.TTL)
	res := newHeld(&req, createdMs, expiresMs)

	// Durable: publish the record pending (concurrent reserves of the id
	// wait on its mu), take the units, persist, then decide.
	rec, ref := sh.newRecord(h, req.ID, req.User, req.Lines, idxBuf[:len(pools)], req.Meta, createdMs, expiresMs)
	rec.mu.Lock() // a free slot: whoever holds it only checks gen and leaves
	rec.state, rec.refunded = statePending, false
	sh.publish(ref.entry, pos)
	sh.pushExpNew(rec, ref, expiresMs)
	sh.mu.Unlock()

	err := m.take(req.User, req.Lines, pools)
	if err == nil {
		if err = m.putRecords([]recWrite{{rec: rec, state: StateHeld}}); err != nil {
			m.untake(req.User, req.Lines, pools)
		}
	}
	if err != nil {
		sh.mu.Lock()
		sh.forget(rec)
		sh.mu.Unlock()
		rec.mu.Unlock()
		return Reservation{}, err
	}
	rec.state, rec.refunded = StateHeld, false
	rec.mu.Unlock()
	return res, nil
}

// reserveOnDisk answers a Reserve of an id that may be a released
// reservation on disk (its fingerprint has a disk entry, or its shard
// holds none: recShard.overflowDisk): the reservation
// (Existed) if the disk has it, ErrIDConflict if it has it for another
// request, errRetry after waiting for a deletion of the id, or nothing
// (no error, no id) if the disk does not have it. Requires sh.mu, which it
// unlocks.
func (m *Memory) reserveOnDisk(ctx context.Context, sh *recShard, req *ReserveRequest) (Reservation, error) {
	if ch := sh.claims[req.ID]; ch != nil {
		sh.mu.Unlock()
		select {
		case <-ch:
			return Reservation{}, errRetry
		case <-ctx.Done():
			return Reservation{}, ctx.Err()
		}
	}
	sh.mu.Unlock()
	res, found, err := m.dur.readReleased(req.ID)
	if err != nil || !found {
		return Reservation{}, err
	}
	if !SameRequest(&res, req) {
		return Reservation{}, fmt.Errorf("cannot reserve %q: %w", req.ID, ErrIDConflict)
	}
	res.Existed = true
	return res, nil
}

// claimDisk claims id, whose fingerprint has a disk entry (or whose shard
// holds none, diskAny) and which has no record in memory, for deleting
// its record from disk: a Reserve of id then waits (see Memory.Reserve)
// until unclaimDisk. ok is false when id has no such entry (nothing to
// delete), or when another deletion claimed it; wait is then that
// deletion's channel.
func (m *Memory) claimDisk(id string) (ok bool, wait chan struct{}) {
	h := maphash.String(m.recSeed, id)
	sh := m.shardOfHash(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ch := sh.claims[id]; ch != nil {
		return false, ch
	}
	if rec, _, _, disk := sh.probe(h, id); rec != nil || !disk {
		return false, nil
	}
	if sh.claims == nil {
		sh.claims = make(map[string]chan struct{})
	}
	sh.claims[id] = make(chan struct{})
	return true, nil
}

// unclaimDisk ends claimDisk's claim of id; deleted says its record was
// deleted from disk, and its disk entry goes too.
func (m *Memory) unclaimDisk(id string, deleted bool) {
	h := maphash.String(m.recSeed, id)
	sh := m.shardOfHash(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if deleted {
		sh.dropDisk(h)
	}
	close(sh.claims[id])
	delete(sh.claims, id)
	if len(sh.claims) == 0 {
		sh.claims = nil // a map never shrinks: drop it
	}
}

// forgetOnDisk deletes id's released record from disk (Forget of an
// evicted reservation).
func (m *Memory) forgetOnDisk(ctx context.Context, id string) error {
	for range reserveRetryMax {
		ok, wait := m.claimDisk(id)
		if !ok {
			if wait == nil {
				break
			}
			select {
			case <-wait: // another deletion ended: look again
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		deleted, err := m.dur.deleteReleased([]string{id}, math.MaxInt64)
		m.unclaimDisk(id, err == nil && deleted[0])
		if err != nil {
			return err
		}
		if deleted[0] {
			return nil
		}
		break
	}
	return fmt.Errorf("cannot find reservation %q: %w", id, ErrReservationNotFound)
}

// newHeld returns the reservation that req creates, held, with the
// request's own Lines and Meta.
func newHeld(req *ReserveRequest, createdMs, expiresMs int64) Reservation {
	res := Reservation{
		ID:        req.ID,
		User:      req.User,
		Lines:     req.Lines,
		State:     StateHeld,
		CreatedAt: time.UnixMilli(createdMs),
		ExpiresAt: time.UnixMilli(expiresMs),
	}
	if len(req.Meta) > 0 {
		res.Meta = req.Meta
	}
	return res
}

// sameRequest reports whether req asks for what rec holds (see
// SameRequest), without building the reservation. Requires rec.mu.
func (m *Memory) sameRequest(sh *recShard, rec *record, req *ReserveRequest) bool {
	if string(sh.userBytes(rec)) != req.User || int(rec.nLines) != len(req.Lines) {
		return false
	}
	for i := range req.Lines {
		p, q, l := sh.line(rec, i)
		if m.pools.at(p).id != req.Lines[i].Pool || q != req.Lines[i].Quantity || l != req.Lines[i].Limit {
			return false
		}
	}
	return true
}

// view returns the reservation in rec, whose id is id. Requires rec.mu.
func (m *Memory) view(sh *recShard, rec *record, id string) Reservation {
	res := Reservation{
		ID:        id,
		User:      string(sh.userBytes(rec)),
		Lines:     make([]Line, rec.nLines),
		State:     rec.state,
		CreatedAt: time.UnixMilli(rec.createdMs),
		ExpiresAt: time.UnixMilli(rec.expiresMs),
		Refunded:  rec.refunded,
	}
	for i := range res.Lines {
		p, q, l := sh.line(rec, i)
		res.Lines[i] = Line{Pool: m.pools.at(p).id, Quantity: q, Limit: l}
	}
	if rec.metaLen > 0 {
		res.Meta = slices.Clone(sh.metaBytes(rec))
	}
	return res
}

// recLines returns rec's lines, their pools and its user, in the buffers.
// The user aliases the record's blob: use it only under rec.mu, never keep
// it. Requires rec.mu.
func (m *Memory) recLines(rec *record, lines *[LinesMax]Line, pools *[LinesMax]*pool) ([]Line, []*pool, string) {
	sh := m.shardOf(rec)
	n := int(rec.nLines)
	for i := range n {
		p, q, l := sh.line(rec, i)
		pools[i] = m.pools.at(p)
		lines[i] = Line{Pool: pools[i].id, Quantity: q, Limit: l}
	}
	u := sh.userBytes(rec)
	return lines[:n], pools[:n], unsafe.String(unsafe.SliceData(u), len(u))
}

// take takes the lines' units from their pools and the user's allowances,
// all or nothing: ErrSoldOut before ErrLimitExceeded. These two are the
// everyday refusals of a flash sale, returned unwrapped so that refusing
// allocates nothing.
func (m *Memory) take(user string, lines []Line, pools []*pool) error {
	for i := range lines {
		if pools[i].free.Load() < lines[i].Quantity || pools[i].closed.Load() {
			return ErrSoldOut
		}
	}
	for i := range lines {
		l := &lines[i]
		if !m.users.acquire(pools[i], user, l.Quantity, l.Limit) {
			for j := 0; j < i; j++ {
				m.users.release(pools[j], user, lines[j].Quantity)
			}
			if pools[i].closed.Load() {
				return ErrSoldOut // closed meanwhile
			}
			return ErrLimitExceeded
		}
	}
	if len(lines) == 1 {
		if !pools[0].take(lines[0].Quantity) {
			m.users.release(pools[0], user, lines[0].Quantity)
			return ErrSoldOut
		}
		pools[0].held.Add(lines[0].Quantity)
		return nil
	}
	// Take stock in pool-id order so competing multi-line reserves meet on
	// the same first pool instead of each taking one and failing the other.
	var orderBuf [LinesMax]uint8
	order := orderBuf[:len(lines)]
	for i := range order {
		order[i] = uint8(i)
		for j := i; j > 0 && lines[order[j]].Pool < lines[order[j-1]].Pool; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	for k, i := range order {
		q := lines[i].Quantity
		if !pools[i].take(q) {
			for _, j := range order[:k] {
				// held first, then free: no reader ever sees a unit twice.
				pools[j].held.Add(-lines[j].Quantity)
				pools[j].free.Add(lines[j].Quantity)
			}
			for j := range lines {
				m.users.release(pools[j], user, lines[j].Quantity)
			}
			return ErrSoldOut
		}
		pools[i].held.Add(q)
	}
	return nil
}

// untake undoes a successful take.
func (m *Memory) untake(user string, lines []Line, pools []*pool) {
	for i := range lines {
		q := lines[i].Quantity
		pools[i].held.Add(-q)
		pools[i].free.Add(q)
		m.users.release(pools[i], user, q)
	}
}

// lookup returns the record of id with its mu locked or, for a released
// reservation kept on disk only (see durable), nil and the reservation read
// from disk.
func (m *Memory) lookup(id string) (*record, *Reservation, error) {
	if m.closed.Load() {
		return nil, nil, ErrClosed
	}
	if !ValidReservationID(id) {
		return nil, nil, invalidf("bad reservation id")
	}
	h := maphash.String(m.recSeed, id)
	sh := m.shardOfHash(h)
	for range reserveRetryMax {
		sh.mu.Lock()
		rec, gen, _, disk := sh.probe(h, id)
		sh.mu.Unlock()
		if rec != nil {
			rec.mu.Lock()
			if rec.gen == gen {
				return rec, nil, nil
			}
			rec.mu.Unlock()
			continue // failed, forgotten, moved or evicted since: look again
		}
		if disk && m.dur != nil {
			res, found, err := m.dur.readReleased(id)
			if err != nil {
				return nil, nil, err
			}
			if found {
				return nil, &res, nil
			}
		}
		break
	}
	return nil, nil, fmt.Errorf("cannot find reservation %q: %w", id, ErrReservationNotFound)
}

// memReservation reads id from memory only: ok is false when memory holds
// no record of it (a released one on a durable store is on disk). The
// state of a record being created is statePending.
func (m *Memory) memReservation(id string) (res Reservation, ok bool) {
	h := maphash.String(m.recSeed, id)
	sh := m.shardOfHash(h)
	for range reserveRetryMax {
		sh.mu.Lock()
		rec, gen, _ := sh.find(h, id)
		sh.mu.Unlock()
		if rec == nil {
			break
		}
		rec.mu.Lock()
		if rec.gen == gen {
			res = m.view(sh, rec, id)
			rec.mu.Unlock()
			return res, true
		}
		rec.mu.Unlock() // failed, forgotten, moved or evicted since: look again
	}
	return Reservation{}, false
}

// Confirm implements Store.
func (m *Memory) Confirm(ctx context.Context, id string) (Reservation, error) {
	rec, disk, err := m.lookup(id)
	if err != nil {
		return Reservation{}, err
	}
	if disk != nil {
		return *disk, fmt.Errorf("cannot confirm %q: released: %w", id, ErrBadState)
	}
	defer rec.mu.Unlock()
	sh := m.shardOf(rec)
	switch rec.state {
	case StatePaid:
		return m.view(sh, rec, id), nil
	case StateReleased:
		return m.view(sh, rec, id), fmt.Errorf("cannot confirm %q: released: %w", id, ErrBadState)
	}
	if m.nowMs() >= rec.expiresMs {
		if err := m.releaseLocked(rec); err != nil {
			return Reservation{}, err
		}
		res := m.view(sh, rec, id)
		m.retire(rec)
		return res, fmt.Errorf("cannot confirm %q: expired: %w", id, ErrBadState)
	}
	if m.dur != nil {
		if err := m.putRecords([]recWrite{{rec: rec, state: StatePaid}}); err != nil {
			return Reservation{}, err
		}
	}
	for i := range int(rec.nLines) {
		p, q, _ := sh.line(rec, i)
		pl := m.pools.at(p)
		pl.held.Add(-q)
		pl.sold.Add(q)
	}
	rec.state, rec.refunded = StatePaid, false
	return m.view(sh, rec, id), nil
}

// releaseLocked releases a held or paid record (a paid one as a refund).
// Requires rec.mu.
func (m *Memory) releaseLocked(rec *record) error {
	refund := rec.state == StatePaid
	if m.dur != nil {
		if err := m.putRecords([]recWrite{{rec: rec, state: StateReleased, refunded: refund}}); err != nil {
			return err
		}
	}
	m.applyRelease(rec)
	return nil
}

// applyRelease returns rec's units and marks it released; retire then
// makes it a purge candidate (or evicts it). Requires rec.mu; rec is held
// or paid.
func (m *Memory) applyRelease(rec *record) {
	refund := rec.state == StatePaid
	var linesBuf [LinesMax]Line
	var poolsBuf [LinesMax]*pool
	lines, pools, user := m.recLines(rec, &linesBuf, &poolsBuf)
	for i := range lines {
		q := lines[i].Quantity
		p := pools[i]
		if refund {
			p.sold.Add(-q)
		} else {
			p.held.Add(-q)
		}
		p.free.Add(q)
		m.users.release(pools[i], user, q)
	}
	rec.state, rec.refunded = StateReleased, refund
}

// retire follows applyRelease, once whatever the caller answers was read
// from rec: rec becomes a purge candidate or, on a durable store (where
// its release is on disk), leaves memory (recShard.evict). Requires rec.mu.
func (m *Memory) retire(rec *record) {
	sh := m.shardOf(rec)
	sh.mu.Lock()
	if m.dur != nil {
		sh.evict(rec)
	} else {
		sh.pushPurge(rec)
	}
	sh.mu.Unlock()
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, id string) (Reservation, error) {
	rec, disk, err := m.lookup(id)
	if err != nil {
		return Reservation{}, err
	}
	if disk != nil {
		return *disk, nil
	}
	defer rec.mu.Unlock()
	sh := m.shardOf(rec)
	switch rec.state {
	case StateReleased:
		return m.view(sh, rec, id), nil
	case StatePaid:
		return m.view(sh, rec, id), fmt.Errorf("cannot release %q: paid: %w", id, ErrBadState)
	}
	if err := m.releaseLocked(rec); err != nil {
		return Reservation{}, err
	}
	res := m.view(sh, rec, id)
	m.retire(rec)
	return res, nil
}

// Refund implements Store.
func (m *Memory) Refund(ctx context.Context, id string) (Reservation, error) {
	rec, disk, err := m.lookup(id)
	if err != nil {
		return Reservation{}, err
	}
	if disk != nil {
		if disk.Refunded {
			return *disk, nil
		}
		return *disk, fmt.Errorf("cannot refund %q: released: %w", id, ErrBadState)
	}
	defer rec.mu.Unlock()
	sh := m.shardOf(rec)
	switch st := rec.state; {
	case st == StateReleased && rec.refunded:
		return m.view(sh, rec, id), nil
	case st != StatePaid:
		return m.view(sh, rec, id), fmt.Errorf("cannot refund %q: %s: %w", id, st, ErrBadState)
	}
	if err := m.releaseLocked(rec); err != nil {
		return Reservation{}, err
	}
	res := m.view(sh, rec, id)
	m.retire(rec)
	return res, nil
}

// popDue pops up to max records due at or before ms from the shards' expiry
// heaps (purge: the purge heaps), starting at a rotating shard.
func (m *Memory) popDue(purge bool, ms int64, max int, due []dueRec) []dueRec {
	next := &m.expireNext
	if purge {
		next = &m.purgeNext
	}
	start := int(next.Add(1))
	for i := 0; i < len(m.recs) && len(due) < max; i++ {
		si := (start + i) % len(m.recs)
		sh := &m.recs[si]
		sh.mu.Lock()
		if purge {
			due = sh.popDue(&sh.purge, &sh.purgeStale, si, ms, max, due)
		} else {
			due = sh.popDue(&sh.exp, &sh.expStale, si, ms, max, due)
		}
		sh.mu.Unlock()
	}
	return due
}

// Expire implements Store. It pops due entries from the shards' expiry
// heaps (each entry is popped by one caller only, so each reservation is
// released once) and releases the held ones in one durable batch.
func (m *Memory) Expire(ctx context.Context, now time.Time, max int) ([]Reservation, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	if max <= 0 || max > ExpireMax {
		return nil, invalidf("max out of range")
	}
	nowMs := now.UnixMilli()
	var out []Reservation
	var due []dueRec
	// Each round pops up to max-len(out) entries; entries of records that
	// are no longer held are dropped, so rounds repeat until enough were
	// released or nothing is due. Every round pops at least one entry.
	for len(out) < max {
		due = m.popDue(false, nowMs, max-len(out), due[:0])
		if len(due) == 0 {
			break
		}
		var err error
		if out, err = m.expireDue(due, out); err != nil {
			return out, err
		}
	}
	m.shrink()
	return out, nil
}

// shrink rebuilds the record shards that are mostly empty space
// (recShard.wantsRebuild), so that the memory a crowd's records took goes
// back once they are gone. Expire and Purge call it (the sweeper calls
// Expire every tick) with no record locked.
func (m *Memory) shrink() {
	for i := range m.recs {
		sh := &m.recs[i]
		sh.mu.Lock()
		if sh.wantsRebuild() {
			sh.tryRebuild()
		}
		sh.mu.Unlock()
	}
}

// expireDue releases the held records of due (popped from the heaps) and
// appends them to out. If persisting fails they go back on their heaps.
func (m *Memory) expireDue(due []dueRec, out []Reservation) ([]Reservation, error) {
	held := lockDue(due, StateHeld)
	if len(held) == 0 {
		return out, nil
	}
	if m.dur != nil {
		ws := make([]recWrite, len(held))
		for i, d := range held {
			ws[i] = recWrite{rec: d.rec, state: StateReleased}
		}
		if err := m.putRecords(ws); err != nil {
			for _, d := range held {
				sh := &m.recs[d.shard]
				sh.mu.Lock()
				sh.pushExp(d.rec)
				sh.mu.Unlock()
				d.rec.mu.Unlock()
			}
			return out, err
		}
	}
	for _, d := range held {
		m.applyRelease(d.rec)
		sh := &m.recs[d.shard]
		out = append(out, m.view(sh, d.rec, string(sh.idBytes(d.rec))))
		m.retire(d.rec)
		d.rec.mu.Unlock()
	}
	return out, nil
}

// Purge forgets up to max released reservations whose ExpiresAt is at or
// before before and returns how many it forgot. Held and paid reservations
// are never purged. It pops the shards' purge heaps (each entry is popped by
// one caller only, so each reservation is forgotten once); on a durable
// store the records are deleted in one synced batch per round before they
// are forgotten. max out of (0, ExpireMax]: ErrInvalid.
func (m *Memory) Purge(ctx context.Context, before time.Time, max int) (int, error) {
	if m.closed.Load() {
		return 0, ErrClosed
	}
	if max <= 0 || max > ExpireMax {
		return 0, invalidf("max out of range")
	}
	beforeMs := before.UnixMilli()
	n := 0
	var due []dueRec
	var recs []*record
	for n < max {
		due = m.popDue(true, beforeMs, max-n, due[:0])
		if len(due) == 0 {
			break
		}
		rel := lockDue(due, StateReleased)
		if len(rel) == 0 {
			continue
		}
		if m.dur != nil {
			recs = recs[:0]
			for _, d := range rel {
				recs = append(recs, d.rec)
			}
			if err := m.deleteRecords(recs); err != nil {
				for _, d := range rel {
					sh := &m.recs[d.shard]
					sh.mu.Lock()
					sh.pushPurge(d.rec)
					sh.mu.Unlock()
					d.rec.mu.Unlock()
				}
				return n, err
			}
		}
		for _, d := range rel {
			sh := &m.recs[d.shard]
			sh.mu.Lock()
			sh.forget(d.rec)
			sh.mu.Unlock()
			d.rec.mu.Unlock()
		}
		n += len(rel)
	}
	m.shrink()
	return n, nil
}

func (m *Memory) twoPools(from, to string, qty int64, checkQty bool) (*pool, *pool, error) {
	if m.closed.Load() {
		return nil, nil, ErrClosed
	}
	if !ValidID(from) || !ValidID(to) || from == to || Tag(from) != Tag(to) {
		return nil, nil, invalidf("bad pool pair")
	}
	if checkQty && (qty <= 0 || qty > UnitsMax) {
		return nil, nil, invalidf("quantity out of range")
	}
	pf, pt := m.pools.get(from), m.pools.get(to)
	if pf == nil {
		return nil, nil, fmt.Errorf("cannot move from %q: %w", from, ErrPoolNotFound)
	}
	if pt == nil {
		return nil, nil, fmt.Errorf("cannot move to %q: %w", to, ErrPoolNotFound)
	}
	// Lock in id order: Move(a,b) and Move(b,a) may run at once.
	if from < to {
		pf.mu.Lock()
		pt.mu.Lock()
	} else {
		pt.mu.Lock()
		pf.mu.Lock()
	}
	return pf, pt, nil
}

// Move implements Store.
func (m *Memory) Move(ctx context.Context, from, to string, qty int64) error {
	pf, pt, err := m.twoPools(from, to, qty, true)
	if err != nil {
		return err
	}
	defer pf.mu.Unlock()
	defer pt.mu.Unlock()
	if !pf.take(qty) {
		return fmt.Errorf("cannot move from %q: %w", from, ErrSoldOut)
	}
	return m.finishMove(pf, pt, qty)
}

// finishMove persists and completes a move of qty units already taken from
// pf's free counter. Requires both pools' mu.
func (m *Memory) finishMove(pf, pt *pool, qty int64) error {
	if m.dur != nil {
		err := m.dur.putPools([]poolWrite{
			{id: pf.id, net: pf.net - qty, onHand: pf.onHand.Load(), seq: pf.seq.Load(), ledger: pf.ledger, closed: pf.closed.Load()},
			{id: pt.id, net: pt.net + qty, onHand: pt.onHand.Load(), seq: pt.seq.Load(), ledger: pt.ledger, closed: pt.closed.Load()},
		})
		if err != nil {
			pf.free.Add(qty)
			return err
		}
	}
	pf.net -= qty
	pt.net += qty
	pt.free.Add(qty)
	return nil
}

// Drain implements Store.
func (m *Memory) Drain(ctx context.Context, from, to string) (int64, error) {
	pf, pt, err := m.twoPools(from, to, 0, false)
	if err != nil {
		return 0, err
	}
	defer pf.mu.Unlock()
	defer pt.mu.Unlock()
	var n int64
	for {
		v := pf.free.Load()
		if v <= 0 {
			return 0, nil
		}
		if pf.free.CompareAndSwap(v, 0) {
			n = v
			break
		}
	}
	if err := m.finishMove(pf, pt, n); err != nil {
		return 0, err
	}
	return n, nil
}

// SetOnHand implements Store.
func (m *Memory) SetOnHand(ctx context.Context, id string, onHand int64, seq uint64) (FeedResult, error) {
	if m.closed.Load() {
		return FeedResult{}, ErrClosed
	}
	if !ValidID(id) {
		return FeedResult{}, invalidf("bad pool id")
	}
	if onHand < 0 || onHand > UnitsMax {
		return FeedResult{}, invalidf("on-hand out of range")
	}
	p := m.pools.get(id)
	if p == nil {
		return FeedResult{}, fmt.Errorf("cannot set on-hand of %q: %w", id, ErrPoolNotFound)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq <= p.seq.Load() {
		return FeedResult{Pool: p.snapshot()}, nil
	}
	delta := onHand - p.onHand.Load()
	// A decrease takes units first (what is held or sold becomes Short);
	// an increase is persisted first and first pays back Short.
	if delta < 0 {
		p.free.Add(delta)
	}
	if m.dur != nil {
		if err := m.dur.putPools([]poolWrite{{id: id, net: p.net + delta, onHand: onHand, seq: seq, ledger: p.ledger, closed: p.closed.Load()}}); err != nil {
			if delta < 0 {
				p.free.Add(-delta)
			}
			return FeedResult{}, err
		}
	}
	if delta > 0 {
		p.free.Add(delta)
	}
	p.net += delta
	p.onHand.Store(onHand)
	p.seq.Store(seq)
	return FeedResult{Applied: true, Pool: p.snapshot()}, nil
}

// Pool implements Store. Under concurrent writes to the pool the fields are
// each recent rather than one instant's; Supplied is derived from the
// others so the identity always holds.
func (m *Memory) Pool(ctx context.Context, id string) (Pool, error) {
	if m.closed.Load() {
		return Pool{}, ErrClosed
	}
	if !ValidID(id) {
		return Pool{}, invalidf("bad pool id")
	}
	p := m.pools.get(id)
	if p == nil {
		return Pool{}, fmt.Errorf("cannot read pool %q: %w", id, ErrPoolNotFound)
	}
	return p.snapshot(), nil
}

// Reservation implements Store.
func (m *Memory) Reservation(ctx context.Context, id string) (Reservation, error) {
	rec, disk, err := m.lookup(id)
	if err != nil {
		return Reservation{}, err
	}
	if disk != nil {
		return *disk, nil
	}
	res := m.view(m.shardOf(rec), rec, id)
	rec.mu.Unlock()
	return res, nil
}

// Scan implements Store. It visits every reservation: O(n) per page.
func (m *Memory) Scan(ctx context.Context, state State, cursor string, limit int) ([]Reservation, string, error) {
	if m.closed.Load() {
		return nil, "", ErrClosed
	}
	if state != StateHeld && state != StatePaid && state != StateReleased {
		return nil, "", invalidf("bad state")
	}
	if limit <= 0 || limit > ScanLimitMax || len(cursor) > IDLenMax {
		return nil, "", invalidf("bad limit or cursor")
	}
	type cand struct {
		id  string
		rec *record
		gen uint32
	}
	var cands []cand
	for i := range m.recs {
		sh := &m.recs[i]
		sh.mu.Lock()
		for _, e := range sh.index {
			if e == 0 || uint32(e) == onDisk {
				continue
			}
			rec := sh.rec(uint32(e) - 1)
			if id := sh.idBytes(rec); string(id) > cursor {
				cands = append(cands, cand{id: string(id), rec: rec, gen: rec.gen})
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(cands, func(a, b cand) int { return strings.Compare(a.id, b.id) })
	var rs []Reservation
	for _, c := range cands {
		c.rec.mu.Lock()
		same := c.rec.gen == c.gen
		var res Reservation
		if same {
			res = m.view(m.shardOf(c.rec), c.rec, c.id)
		}
		c.rec.mu.Unlock()
		if !same {
			// Forgotten, or moved (recShard.rebuild): look it up.
			var ok bool
			if res, ok = m.memReservation(c.id); !ok {
				continue
			}
		}
		if res.State != state {
			continue
		}
		if len(rs) == limit {
			return rs, rs[len(rs)-1].ID, nil
		}
		rs = append(rs, res)
	}
	return rs, "", nil
}

// Forget drops a released reservation, so that a long-running process does
// not keep every reservation it ever made; its id may then be reused. It
// returns ErrBadState for a held or paid reservation. Purge forgets in bulk.
func (m *Memory) Forget(ctx context.Context, id string) error {
	rec, disk, err := m.lookup(id)
	if err != nil {
		return err
	}
	if disk != nil {
		return m.forgetOnDisk(ctx, id)
	}
	defer rec.mu.Unlock()
	if st := rec.state; st != StateReleased {
		return fmt.Errorf("cannot forget %q: %s: %w", id, st, ErrBadState)
	}
	if m.dur != nil {
		if err := m.deleteRecords([]*record{rec}); err != nil {
			return err
		}
	}
	sh := m.shardOf(rec)
	sh.mu.Lock()
	sh.forget(rec)
	sh.mu.Unlock()
	return nil
}

// restore adds a stored reservation (Pebble's load): the record, its units
// in its pools and the user's counts, and its heap entry; for a released
// one only a disk entry (it stays on disk), within the shard's bound of
// them (recShard.addDisk: past it, the shard reads the disk for every id
// it does not hold, and keeps no entries). pools[i] is the pool of
// lines[i]. The id must be absent.
func (m *Memory) restore(id, user string, lines []Line, pools []*pool, meta []byte, createdMs, expiresMs int64, st State, refunded bool) {
	h := maphash.String(m.recSeed, id)
	sh := m.shardOfHash(h)
	if st == StateReleased {
		sh.mu.Lock()
		sh.addDisk(h)
		sh.mu.Unlock()
		return
	}
	var idxBuf [LinesMax]uint32
	for i, p := range pools {
		idxBuf[i] = p.idx
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	rec, ref := sh.newRecord(h, id, user, lines, idxBuf[:len(pools)], meta, createdMs, expiresMs)
	rec.state, rec.refunded = st, refunded
	sh.publish(ref.entry, -1)
	if st == StateHeld {
		sh.pushExpNew(rec, ref, expiresMs)
	}
	for i := range lines {
		q := lines[i].Quantity
		p := pools[i]
		p.free.Add(-q)
		if st == StateHeld {
			p.held.Add(q)
		} else {
			p.sold.Add(q)
		}
		if !p.closed.Load() { // a closed pool's counts were forgotten
			m.users.acquire(pools[i], user, q, 0)
		}
	}
}

// ClosePool implements Store. The pool's counts are dropped from the
// sharded user table (one pass over it) and the shard maps rebuilt at
// their new size; on a durable store the pool is written closed first.
func (m *Memory) ClosePool(ctx context.Context, id string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if !ValidID(id) {
		return invalidf("bad pool id")
	}
	p := m.pools.get(id)
	if p == nil {
		return fmt.Errorf("cannot close pool %q: %w", id, ErrPoolNotFound)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return nil
	}
	if h := p.held.Load(); h != 0 {
		return fmt.Errorf("cannot close pool %q: %d units held: %w", id, h, ErrBadState)
	}
	if m.dur != nil {
		if err := m.dur.putPools([]poolWrite{{id: id, net: p.net, onHand: p.onHand.Load(), seq: p.seq.Load(), ledger: p.ledger, closed: true}}); err != nil {
			return err
		}
	}
	p.closed.Store(true)
	m.users.dropPool(p)
	return nil
}

// Close implements Store.
func (m *Memory) Close() error {
	m.closed.Store(true)
	return nil
}
