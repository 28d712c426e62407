package inventory

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"sync/atomic"
	"time"
)

// Memory is the in-process backend: atomic counters, no persistence. It is
// also the in-memory layer of the pebble backend (see durable).
//
// Reserving from one pool is one CAS on the pool's counter (no mutex per
// pool); a multi-line reserve takes its pools in pool-id order and rolls
// back on failure. Per-user counts are atomics in a sharded table, dropped
// when they return to zero. Reservations live in a sharded map, each shard
// with an expiry heap that Expire pops, so each expiry is released once.
//
// Memory keeps every reservation it ever made (Scan and Reservation read
// released ones too): a process holds about 200 bytes per reservation.
type Memory struct {
	opts       Options
	pools      poolTable
	users      userTable
	recSeed    maphash.Seed
	recs       [recShards]recShard
	expireNext atomic.Uint32
	closed     atomic.Bool
	// dur persists changes before they are acknowledged; nil for the pure
	// memory backend.
	dur durable
}

var _ Store = (*Memory)(nil)

// durable persists state changes, synced, before Memory acknowledges them.
// Units that leave a pool's free counter are taken in memory first and
// rolled back if persisting fails; units that return to free are persisted
// first. So memory never promises a unit the disk does not have.
type durable interface {
	putRecords(ws []recWrite) error
	putPools(ws []poolWrite) error
	deleteRecord(id string) error
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
}

// reserveRetryMax bounds how often Reserve waits for a concurrent creator of
// the same id that then failed.
const reserveRetryMax = 64

// NewMemory returns an empty memory store.
func NewMemory(opts Options) *Memory {
	m := &Memory{opts: opts.WithDefaults(), recSeed: maphash.MakeSeed()}
	m.pools.init()
	m.users.init()
	for i := range m.recs {
		m.recs[i].m = make(map[uint64]*record)
	}
	return m
}

// recShard returns the shard of id and id's hash.
func (m *Memory) recShard(id string) (*recShard, uint64) {
	h := maphash.String(m.recSeed, id)
	return &m.recs[h%recShards], h
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

// Reserve implements Store. The returned Lines and Meta are shared with the
// store: do not modify them.
func (m *Memory) Reserve(ctx context.Context, req ReserveRequest) (Reservation, error) {
	if m.closed.Load() {
		return Reservation{}, ErrClosed
	}
	if err := req.Validate(m.opts.MaxQuantity); err != nil {
		return Reservation{}, err
	}
	sh, h := m.recShard(req.ID)
	var head *record
	for attempt := 0; ; attempt++ {
		sh.mu.Lock()
		head = sh.m[h]
		rec := chainFind(head, req.ID)
		if rec == nil {
			// sh.mu stays locked: create below, chained before head.
			break
		}
		sh.mu.Unlock()
		rec.mu.Lock() // waits for a concurrent creator
		if rec.state == stateFailed {
			rec.mu.Unlock()
			if attempt >= reserveRetryMax {
				return Reservation{}, fmt.Errorf("cannot reserve %q: concurrent attempts keep failing: %w", req.ID, ErrUnavailable)
			}
			continue
		}
		res := rec.view()
		rec.mu.Unlock()
		if !SameRequest(&res, &req) {
			return Reservation{}, fmt.Errorf("cannot reserve %q: %w", req.ID, ErrIDConflict)
		}
		return res, nil
	}

	// sh.mu is held. Resolve the pools before creating anything.
	var poolsBuf [LinesMax]*pool
	for i := range req.Lines {
		p := m.pools.get(req.Lines[i].Pool)
		if p == nil {
			sh.mu.Unlock()
			return Reservation{}, fmt.Errorf("cannot reserve from %q: %w", req.Lines[i].Pool, ErrPoolNotFound)
		}
		poolsBuf[i] = p
	}
	// Sold out and over the limit are the common answers in a flash sale:
	// give them without creating a record (and without allocating). take
	// decides again, atomically, for the requests that pass.
	for i := range req.Lines {
		if poolsBuf[i].free.Load() < req.Lines[i].Quantity {
			sh.mu.Unlock()
			return Reservation{}, ErrSoldOut
		}
	}
	for i := range req.Lines {
		l := &req.Lines[i]
		if l.Limit > 0 && m.users.get(l.Pool, req.User)+l.Quantity > l.Limit {
			sh.mu.Unlock()
			return Reservation{}, ErrLimitExceeded
		}
	}
	createdMs, expiresMs := ExpiryMs(m.opts.Now(), req.TTL)
	rec := sh.alloc()
	rec.id = req.ID
	rec.hash = h
	rec.user = req.User
	rec.createdMs = createdMs
	rec.expiresMs = expiresMs
	if len(req.Lines) == 1 {
		rec.line0[0] = req.Lines[0]
		rec.pool0[0] = poolsBuf[0]
		rec.lines = rec.line0[:]
		rec.pools = rec.pool0[:]
	} else {
		rec.lines = slices.Clone(req.Lines)
		rec.pools = slices.Clone(poolsBuf[:len(req.Lines)])
	}
	if len(req.Meta) > 0 {
		rec.meta = slices.Clone(req.Meta)
	}
	rec.mu.Lock()
	rec.next = head // sh.mu was held since head was read
	sh.m[h] = rec
	sh.exp.push(expEntry{ms: expiresMs, rec: rec})
	sh.mu.Unlock()

	err := m.take(rec)
	if err == nil && m.dur != nil {
		if err = m.dur.putRecords([]recWrite{{rec: rec, state: StateHeld}}); err != nil {
			m.untake(rec)
		}
	}
	if err != nil {
		rec.state = stateFailed
		sh.mu.Lock()
		sh.del(rec)
		sh.mu.Unlock()
		rec.mu.Unlock()
		return Reservation{}, err
	}
	rec.state = StateHeld
	res := rec.view()
	rec.mu.Unlock()
	return res, nil
}

// take takes rec's units from its pools and the user's allowances, all or
// nothing: ErrSoldOut before ErrLimitExceeded. These two are the everyday
// refusals of a flash sale, returned unwrapped so that refusing allocates
// nothing.
func (m *Memory) take(rec *record) error {
	lines, pools := rec.lines, rec.pools
	for i := range lines {
		if pools[i].free.Load() < lines[i].Quantity {
			return ErrSoldOut
		}
	}
	for i := range lines {
		l := &lines[i]
		if !m.users.acquire(l.Pool, rec.user, l.Quantity, l.Limit) {
			for j := 0; j < i; j++ {
				m.users.release(lines[j].Pool, rec.user, lines[j].Quantity)
			}
			return ErrLimitExceeded
		}
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
				m.users.release(lines[j].Pool, rec.user, lines[j].Quantity)
			}
			return ErrSoldOut
		}
		pools[i].held.Add(q)
	}
	return nil
}

// untake undoes a successful take.
func (m *Memory) untake(rec *record) {
	for i := range rec.lines {
		q := rec.lines[i].Quantity
		rec.pools[i].held.Add(-q)
		rec.pools[i].free.Add(q)
		m.users.release(rec.lines[i].Pool, rec.user, q)
	}
}

// lookup returns the record of id with its mu locked.
func (m *Memory) lookup(id string) (*record, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	if !ValidReservationID(id) {
		return nil, invalidf("bad reservation id")
	}
	sh, h := m.recShard(id)
	sh.mu.Lock()
	rec := sh.get(h, id)
	sh.mu.Unlock()
	if rec != nil {
		rec.mu.Lock()
		if rec.state != stateFailed {
			return rec, nil
		}
		rec.mu.Unlock()
	}
	return nil, fmt.Errorf("cannot find reservation %q: %w", id, ErrReservationNotFound)
}

// Confirm implements Store.
func (m *Memory) Confirm(ctx context.Context, id string) (Reservation, error) {
	rec, err := m.lookup(id)
	if err != nil {
		return Reservation{}, err
	}
	defer rec.mu.Unlock()
	switch rec.state {
	case StatePaid:
		return rec.view(), nil
	case StateReleased:
		return rec.view(), fmt.Errorf("cannot confirm %q: released: %w", id, ErrBadState)
	}
	if m.opts.Now().UnixMilli() >= rec.expiresMs {
		if err := m.releaseLocked(rec); err != nil {
			return Reservation{}, err
		}
		return rec.view(), fmt.Errorf("cannot confirm %q: expired: %w", id, ErrBadState)
	}
	if m.dur != nil {
		if err := m.dur.putRecords([]recWrite{{rec: rec, state: StatePaid}}); err != nil {
			return Reservation{}, err
		}
	}
	for i := range rec.lines {
		q := rec.lines[i].Quantity
		rec.pools[i].held.Add(-q)
		rec.pools[i].sold.Add(q)
	}
	rec.state = StatePaid
	return rec.view(), nil
}

// releaseLocked releases a held or paid record (a paid one as a refund).
// Requires rec.mu.
func (m *Memory) releaseLocked(rec *record) error {
	refund := rec.state == StatePaid
	if m.dur != nil {
		if err := m.dur.putRecords([]recWrite{{rec: rec, state: StateReleased, refunded: refund}}); err != nil {
			return err
		}
	}
	m.applyRelease(rec)
	return nil
}

// applyRelease returns rec's units. Requires rec.mu; rec is held or paid.
func (m *Memory) applyRelease(rec *record) {
	refund := rec.state == StatePaid
	for i := range rec.lines {
		q := rec.lines[i].Quantity
		p := rec.pools[i]
		if refund {
			p.sold.Add(-q)
		} else {
			p.held.Add(-q)
		}
		p.free.Add(q)
		m.users.release(rec.lines[i].Pool, rec.user, q)
	}
	rec.state = StateReleased
	rec.refunded = refund
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, id string) (Reservation, error) {
	rec, err := m.lookup(id)
	if err != nil {
		return Reservation{}, err
	}
	defer rec.mu.Unlock()
	switch rec.state {
	case StateReleased:
		return rec.view(), nil
	case StatePaid:
		return rec.view(), fmt.Errorf("cannot release %q: paid: %w", id, ErrBadState)
	}
	if err := m.releaseLocked(rec); err != nil {
		return Reservation{}, err
	}
	return rec.view(), nil
}

// Refund implements Store.
func (m *Memory) Refund(ctx context.Context, id string) (Reservation, error) {
	rec, err := m.lookup(id)
	if err != nil {
		return Reservation{}, err
	}
	defer rec.mu.Unlock()
	switch {
	case rec.state == StateReleased && rec.refunded:
		return rec.view(), nil
	case rec.state != StatePaid:
		return rec.view(), fmt.Errorf("cannot refund %q: %s: %w", id, rec.state, ErrBadState)
	}
	if err := m.releaseLocked(rec); err != nil {
		return Reservation{}, err
	}
	return rec.view(), nil
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
	var due []*record
	start := int(m.expireNext.Add(1))
	// Each round pops up to max-len(out) entries; entries of records that
	// are no longer held are dropped, so rounds repeat until enough were
	// released or nothing is due. Every round pops at least one entry.
	for len(out) < max {
		due = due[:0]
		for i := 0; i < recShards && len(due) < max-len(out); i++ {
			sh := &m.recs[(start+i)%recShards]
			sh.mu.Lock()
			for len(due) < max-len(out) && len(sh.exp) > 0 && sh.exp[0].ms <= nowMs {
				due = append(due, sh.exp.pop().rec)
			}
			sh.mu.Unlock()
		}
		if len(due) == 0 {
			break
		}
		var err error
		if out, err = m.expireDue(due, out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// expireDue releases the held records of due (popped from the heaps) and
// appends them to out. If persisting fails they go back on their heaps.
func (m *Memory) expireDue(due []*record, out []Reservation) ([]Reservation, error) {
	held := due[:0]
	for _, rec := range due {
		rec.mu.Lock()
		if rec.state == StateHeld {
			held = append(held, rec)
		} else {
			rec.mu.Unlock()
		}
	}
	if len(held) == 0 {
		return out, nil
	}
	if m.dur != nil {
		ws := make([]recWrite, len(held))
		for i, rec := range held {
			ws[i] = recWrite{rec: rec, state: StateReleased}
		}
		if err := m.dur.putRecords(ws); err != nil {
			for _, rec := range held {
				sh := &m.recs[rec.hash%recShards]
				sh.mu.Lock()
				sh.exp.push(expEntry{ms: rec.expiresMs, rec: rec})
				sh.mu.Unlock()
				rec.mu.Unlock()
			}
			return out, err
		}
	}
	for _, rec := range held {
		m.applyRelease(rec)
		out = append(out, rec.view())
		rec.mu.Unlock()
	}
	return out, nil
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
			{id: pf.id, net: pf.net - qty, onHand: pf.onHand.Load(), seq: pf.seq.Load()},
			{id: pt.id, net: pt.net + qty, onHand: pt.onHand.Load(), seq: pt.seq.Load()},
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
		if err := m.dur.putPools([]poolWrite{{id: id, net: p.net + delta, onHand: onHand, seq: seq}}); err != nil {
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
	rec, err := m.lookup(id)
	if err != nil {
		return Reservation{}, err
	}
	res := rec.view()
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
	var cand []*record
	for i := range m.recs {
		sh := &m.recs[i]
		sh.mu.Lock()
		for _, head := range sh.m {
			for rec := head; rec != nil; rec = rec.next {
				if rec.id > cursor {
					cand = append(cand, rec)
				}
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(cand, func(a, b *record) int {
		if a.id < b.id {
			return -1
		}
		return 1
	})
	var rs []Reservation
	for _, rec := range cand {
		rec.mu.Lock()
		st := rec.state
		var res Reservation
		if st == state {
			res = rec.view()
		}
		rec.mu.Unlock()
		if st != state {
			continue
		}
		if len(rs) == limit {
			return rs, rs[len(rs)-1].ID, nil
		}
		rs = append(rs, res)
	}
	return rs, "", nil
}

// Forget drops a released reservation from memory, so that a long-running
// process does not keep every reservation it ever made; its id may then be
// reused. It returns ErrBadState for a held or paid reservation.
func (m *Memory) Forget(id string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	rec, err := m.lookup(id)
	if err != nil {
		return err
	}
	defer rec.mu.Unlock()
	if rec.state != StateReleased {
		return fmt.Errorf("cannot forget %q: %s: %w", id, rec.state, ErrBadState)
	}
	if m.dur != nil {
		if err := m.dur.deleteRecord(id); err != nil {
			return err
		}
	}
	sh := &m.recs[rec.hash%recShards]
	sh.mu.Lock()
	sh.del(rec)
	sh.mu.Unlock()
	// Waiters that looked the record up before the delete see it failed
	// and look again.
	rec.state = stateFailed
	return nil
}

// Close implements Store.
func (m *Memory) Close() error {
	m.closed.Store(true)
	return nil
}
