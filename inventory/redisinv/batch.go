package redisinv

import (
	"context"
	"fmt"
	"hash/maphash"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// Group commit of reservations (see doc.go).
const (
	// BatchMaxDefault is the default of Options.BatchMax.
	BatchMaxDefault = 64
	// BatchMaxLimit bounds Options.BatchMax.
	BatchMaxLimit = 256
	// BatchesInFlightDefault is the default of Options.BatchesInFlight.
	BatchesInFlightDefault = 4
	// BatchesInFlightLimit bounds Options.BatchesInFlight.
	BatchesInFlightLimit = 64

	// batchShards is the number of batchers; a tag always uses the same.
	batchShards = 256
	// batchPendingMax bounds the waiting reservations of one batcher; a
	// caller that finds it full runs its reservation alone.
	batchPendingMax = 1024
	// leadYields bounds the times a leader steps back for more callers.
	leadYields = 16
	// batchArgBytesMax bounds the argument bytes of one batch (a request
	// is at most about 15 kB: meta and 32 lines).
	batchArgBytesMax = 1 << 20
)

// Phases of a reserveCall, guarded by its batcher's mu.
const (
	callPending   = iota // waiting in batcher.pending
	callTaken            // in a batch being run
	callDone             // answered: res, old, err are set
	callAbandoned        // its caller gave up before it was taken
)

// reserveCall is one Reserve waiting for (or leading) a batch.
type reserveCall struct {
	tag string
	// The request as script arguments, built by the caller before it is
	// queued and never changed after (the caller's request may change
	// once it returns).
	id, user, rkey, rec string
	expMs               int64
	lines               []callLine
	line1               [1]callLine // lines of a request of one line
	bytes               int
	// deadline of the caller's context; hasDeadline false if none.
	deadline    time.Time
	hasDeadline bool
	// done is signalled (without blocking; capacity 1) when the call is
	// answered or handed the lead. The waiter then looks at phase and
	// lead under mu.
	done chan struct{}

	// Guarded by the batcher's mu.
	phase uint8
	lead  bool // holds one of the batcher's in-flight slots: must lead or hand it on

	// The answer, written by the batch's leader before phase becomes
	// callDone (under mu), read by the caller after it sees callDone.
	code  int64  // res* code
	old   string // the stored record when isOld
	isOld bool
	err   error
}

// callLine is one line of a reserveCall, as script arguments.
type callLine struct {
	pool, qty, limit string
}

// batcher combines concurrent reservations of one tag into batches. Its
// in-flight slots (at most Options.BatchesInFlight) are held by leaders
// running a batch and by waiting calls that were handed the lead.
type batcher struct {
	mu       sync.Mutex
	pending  []*reserveCall
	inflight int
	// last is the size of the last batch taken: a leader that finds far
	// fewer waiting lets the callers just answered queue up first.
	last int
	_    [32]byte
}

var batchSeed = maphash.MakeSeed()

func (s *Store) batcherOf(tag string) *batcher {
	return &s.batchers[maphash.String(batchSeed, tag)%batchShards]
}

// signal wakes c's waiter without blocking.
func signal(c *reserveCall) {
	select {
	case c.done <- struct{}{}:
	default:
	}
}

// Reserve implements inventory.Store. Concurrent calls of one tag are
// combined into one script call (see doc.go); each is decided on its own.
// A new reservation's Lines and Meta are the request's own slices; a
// replayed one's are parsed from its record.
func (s *Store) Reserve(ctx context.Context, req inventory.ReserveRequest) (inventory.Reservation, error) {
	if s.closed.Load() {
		return inventory.Reservation{}, inventory.ErrClosed
	}
	if err := req.Validate(s.opts.MaxQuantity); err != nil {
		return inventory.Reservation{}, err
	}
	nowMs, expMs := inventory.ExpiryMs(s.opts.Now(), req.TTL)
	c := s.newCall(&req, nowMs, expMs)
	if err := s.submit(ctx, c); err != nil {
		return inventory.Reservation{}, err
	}
	return c.result(&req, nowMs, expMs)
}

// result is the answer of an answered call for req, made at nowMs with
// deadline expMs.
func (c *reserveCall) result(req *inventory.ReserveRequest, nowMs, expMs int64) (inventory.Reservation, error) {
	if c.isOld {
		r, err := parseRecord("reserve", req.ID, c.old)
		if err != nil {
			return inventory.Reservation{}, err
		}
		if !inventory.SameRequest(&r, req) {
			// The script compared the identities byte for byte; this
			// cannot differ unless the record is damaged.
			return inventory.Reservation{}, fmt.Errorf("redisinv: cannot reserve: record %q does not match its identity: %w", req.ID, inventory.ErrUnavailable)
		}
		r.Existed = true
		return r, nil
	}
	switch c.code {
	case resCreated:
	case resSoldOut:
		return inventory.Reservation{}, inventory.ErrSoldOut
	case resLimit:
		return inventory.Reservation{}, inventory.ErrLimitExceeded
	case resNoPool:
		return inventory.Reservation{}, inventory.ErrPoolNotFound
	case resIDConflict:
		return inventory.Reservation{}, inventory.ErrIDConflict
	default:
		return inventory.Reservation{}, fmt.Errorf("redisinv: cannot reserve: unknown answer %d: %w", c.code, inventory.ErrUnavailable)
	}
	r := inventory.Reservation{
		ID:        req.ID,
		User:      req.User,
		Lines:     req.Lines,
		State:     inventory.StateHeld,
		CreatedAt: time.UnixMilli(nowMs),
		ExpiresAt: time.UnixMilli(expMs),
	}
	if len(req.Meta) > 0 {
		r.Meta = req.Meta
	}
	return r, nil
}

// newCall returns the call of a valid request made at nowMs. Its strings
// (the record key, the record, each line's quantity and limit) are slices
// of one.
func (s *Store) newCall(req *inventory.ReserveRequest, nowMs, expMs int64) *reserveCall {
	tag := inventory.Tag(req.ID)
	c := &reserveCall{tag: tag, id: req.ID, user: req.User, expMs: expMs}
	if len(req.Lines) == 1 {
		c.lines = c.line1[:]
	} else {
		c.lines = make([]callLine, len(req.Lines))
	}
	tk, il := tagKey(tag), identLen(req)
	n := len(s.opts.Prefix) + 2 + len(tk) + 4 + len(req.ID) + recordLen(req, il, nowMs, expMs)
	for i := range req.Lines {
		n += intLen(req.Lines[i].Quantity) + intLen(req.Lines[i].Limit)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(s.opts.Prefix)
	b.WriteString(":{")
	b.WriteString(tk)
	b.WriteString("}:r:")
	b.WriteString(req.ID)
	rkeyEnd := b.Len()
	writeRecord(&b, req, il, nowMs, expMs)
	recEnd := b.Len()
	ends := make([]int, 0, 2*4)
	for i := range req.Lines {
		writeInt(&b, req.Lines[i].Quantity)
		ends = append(ends, b.Len())
		writeInt(&b, req.Lines[i].Limit)
		ends = append(ends, b.Len())
	}
	all := b.String()
	c.rkey, c.rec = all[:rkeyEnd], all[rkeyEnd:recEnd]
	at := recEnd
	for i, l := range req.Lines {
		c.lines[i] = callLine{pool: l.Pool, qty: all[at:ends[2*i]], limit: all[ends[2*i]:ends[2*i+1]]}
		at = ends[2*i+1]
	}
	c.bytes = 3*len(req.ID) + len(req.User) + len(c.rkey) + len(c.rec) + 40
	for _, l := range req.Lines {
		c.bytes += 2*len(l.Pool) + len(req.User) + 40
	}
	return c
}

// submit has c answered: alone when batching is off or the batcher is
// full, otherwise in a batch that this caller or another one leads. It
// returns nil once c's answer is set, or an error wrapping
// inventory.ErrUnavailable when ctx ends first (c may then still be
// written by a batch in flight, as a single call whose reply was lost).
func (s *Store) submit(ctx context.Context, c *reserveCall) error {
	c.deadline, c.hasDeadline = ctx.Deadline()
	if s.opts.BatchMax == 1 {
		s.runBatch(ctx, []*reserveCall{c})
		return c.err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisinv: cannot reserve: %w: %w", inventory.ErrUnavailable, err)
	}
	b := s.batcherOf(c.tag)
	b.mu.Lock()
	if len(b.pending) >= batchPendingMax {
		b.mu.Unlock()
		s.runBatch(ctx, []*reserveCall{c})
		return c.err
	}
	c.done = make(chan struct{}, 1)
	c.phase = callPending
	b.pending = append(b.pending, c)
	if b.inflight < s.opts.BatchesInFlight {
		b.inflight++
		c.lead = true
	}
	for {
		// b.mu is held here.
		if c.lead {
			if c.phase == callDone {
				// Answered by another batch: pass the slot on.
				c.lead = false
				b.handOffLocked()
				break
			}
			c.lead = false
			b.mu.Unlock()
			s.lead(b)
			b.mu.Lock()
			continue
		}
		if c.phase == callDone {
			break
		}
		b.mu.Unlock()
		select {
		case <-c.done:
			b.mu.Lock()
		case <-ctx.Done():
			b.mu.Lock()
			if c.phase == callDone {
				continue // answered meanwhile: the definite answer wins
			}
			if c.phase == callPending {
				b.removeLocked(c)
				c.phase = callAbandoned
			}
			if c.lead {
				c.lead = false
				b.handOffLocked()
			}
			b.mu.Unlock()
			return fmt.Errorf("redisinv: cannot reserve: %w: %w", inventory.ErrUnavailable, ctx.Err())
		}
	}
	b.mu.Unlock()
	return c.err
}

// removeLocked removes c from pending. Requires mu.
func (b *batcher) removeLocked(c *reserveCall) {
	for i, p := range b.pending {
		if p == c {
			copy(b.pending[i:], b.pending[i+1:])
			b.pending[len(b.pending)-1] = nil
			b.pending = b.pending[:len(b.pending)-1]
			return
		}
	}
}

// handOffLocked passes an in-flight slot to the first pending call that
// does not hold one, or frees it. Requires mu.
func (b *batcher) handOffLocked() {
	for _, p := range b.pending {
		if !p.lead {
			p.lead = true
			signal(p)
			return
		}
	}
	b.inflight--
}

// lead runs one batch with the slot its caller holds: the pending calls of
// the first pending call's tag, in order, up to BatchMax and
// batchArgBytesMax. Then it hands the slot on and wakes the batch's
// callers.
func (s *Store) lead(b *batcher) {
	b.mu.Lock()
	for i := 0; i < leadYields && len(b.pending) < b.last-b.last/8; i++ {
		// The callers of the batch just answered are probably runnable
		// and about to queue again: one small batch now would cost the
		// server a write (and an fsync) of its own. Step back a few
		// times so they join this batch. Only throughput depends on this.
		b.mu.Unlock()
		runtime.Gosched()
		b.mu.Lock()
	}
	if len(b.pending) == 0 {
		b.inflight--
		b.mu.Unlock()
		return
	}
	tag := b.pending[0].tag
	batch := make([]*reserveCall, 0, min(len(b.pending), s.opts.BatchMax))
	bytes := 0
	keep := b.pending[:0]
	var ids map[string]struct{} // ids in batch, once it has several
	for _, c := range b.pending {
		take := c.tag == tag && len(batch) < s.opts.BatchMax && (len(batch) == 0 || bytes+c.bytes <= batchArgBytesMax)
		if take && len(batch) > 0 {
			// A repeated id waits for a later batch, which then sees
			// this one's record: as if the calls ran one after the other.
			if ids == nil {
				ids = make(map[string]struct{}, cap(batch))
				ids[batch[0].id] = struct{}{}
			}
			_, dup := ids[c.id]
			take = !dup
		}
		if take {
			c.phase = callTaken
			batch = append(batch, c)
			bytes += c.bytes
			if ids != nil {
				ids[c.id] = struct{}{}
			}
		} else {
			keep = append(keep, c)
		}
	}
	clear(b.pending[len(keep):])
	b.pending = keep
	b.last = len(batch)
	b.mu.Unlock()

	// The batch must not end with one caller's context: it runs until the
	// latest deadline of its callers (none if one has none), and the
	// connection timeout bounds it in any case.
	ctx := context.Background()
	latest, all := time.Time{}, true
	for _, c := range batch {
		if !c.hasDeadline {
			all = false
			break
		}
		if c.deadline.After(latest) {
			latest = c.deadline
		}
	}
	if all {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	s.runBatch(ctx, batch)

	b.mu.Lock()
	for _, c := range batch {
		c.phase = callDone
	}
	b.handOffLocked()
	b.mu.Unlock()
	for _, c := range batch {
		signal(c)
	}
}

// runBatch runs reserveScript for calls of one tag with distinct ids and
// sets each call's answer (err for all of them when the script did not
// run).
func (s *Store) runBatch(ctx context.Context, batch []*reserveCall) {
	k := len(batch)
	// The distinct pools, numbered from 1 in order of appearance.
	var pools []string
	var index map[string]int // pool -> number, once there are several
	one, nLines := true, 0
	for _, c := range batch {
		if len(c.lines) != 1 {
			one = false
		}
		nLines += len(c.lines)
		for _, l := range c.lines {
			if index != nil {
				if _, ok := index[l.pool]; !ok {
					pools = append(pools, l.pool)
					index[l.pool] = len(pools)
				}
				continue
			}
			found := false
			for _, p := range pools {
				if p == l.pool {
					found = true
					break
				}
			}
			if !found {
				pools = append(pools, l.pool)
				if len(pools) > 4 {
					index = make(map[string]int, 2*len(pools))
					for x, p := range pools {
						index[p] = x + 1
					}
				}
			}
		}
	}
	number := func(pool string) int {
		if index != nil {
			return index[pool]
		}
		for x, p := range pools {
			if p == pool {
				return x + 1
			}
		}
		return 0
	}
	w := 3
	if len(pools) == 1 {
		w = 2
	}
	minExp := batch[0].expMs
	for _, c := range batch[1:] {
		minExp = min(minExp, c.expMs)
	}
	args := make([]string, 5, 5+len(pools)+5*k+w*nLines)
	args[0] = s.base(batch[0].tag)
	args[1] = strconv.Itoa(k)
	args[2] = strconv.Itoa(len(pools))
	args[3] = "0"
	args[4] = strconv.FormatInt(minExp, 10)
	uniform := one && len(pools) == 1
	if one {
		args[3] = "1"
		l0 := batch[0].lines[0]
		for _, c := range batch[1:] {
			if l := c.lines[0]; l.qty != l0.qty || l.limit != l0.limit {
				uniform = false
				break
			}
		}
		if uniform {
			args[3] = "u"
		}
	}
	args = append(args, pools...)
	for _, c := range batch {
		args = append(args, c.rkey)
	}
	for _, c := range batch {
		args = append(args, c.id)
	}
	for _, c := range batch {
		args = append(args, c.rec)
	}
	for _, c := range batch {
		args = append(args, c.user)
	}
	if !one {
		for _, c := range batch {
			args = append(args, strconv.Itoa(len(c.lines)))
		}
	}
	if uniform {
		args = append(args, batch[0].lines[0].qty, batch[0].lines[0].limit)
	}
	for _, c := range batch {
		if uniform {
			break
		}
		for _, l := range c.lines {
			if w == 3 {
				args = append(args, strconv.Itoa(number(l.pool)))
			}
			args = append(args, l.qty, l.limit)
		}
	}
	fail := func(err error) {
		for _, c := range batch {
			c.err = err
		}
	}
	res := reserveScript.Exec(ctx, s.client, []string{batch[0].rkey}, args)
	if n, err := res.AsInt64(); err == nil {
		if n != int64(k) {
			fail(fmt.Errorf("redisinv: cannot reserve: %d reserved of %d: %w", n, k, inventory.ErrUnavailable))
			return
		}
		for _, c := range batch {
			c.code = resCreated
		}
		return
	}
	vals, err := res.ToArray()
	if err != nil {
		fail(s.mapErr("reserve", err))
		return
	}
	if len(vals) != k {
		fail(fmt.Errorf("redisinv: cannot reserve: %d answers for %d requests: %w", len(vals), k, inventory.ErrUnavailable))
		return
	}
	for i, c := range batch {
		v := &vals[i]
		if v.IsInt64() {
			c.code, c.err = v.AsInt64()
		} else {
			c.old, c.err = v.ToString()
			c.isOld = true
		}
		if c.err != nil {
			c.err = s.mapErr("reserve", c.err)
		}
	}
}
