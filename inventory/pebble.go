package inventory

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
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
}

// Pebble is the embedded durable backend: Memory's atomic counters in
// front, Pebble behind. Every acknowledged change was committed to Pebble
// with pebble.Sync first; concurrent callers share fsyncs through Pebble's
// group commit. Open rebuilds the counters from what Pebble holds.
//
// What is stored: "p"+pool -> net units, on-hand, feed seq; "r"+id -> the
// reservation. Held and sold counts, per-user counts and the expiry index
// are derived from the reservations on open.
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
	failed  atomic.Pointer[error]
}

var _ Store = (*Pebble)(nil)

const (
	keyPool   = 'p'
	keyRecord = 'r'
	codecV1   = 1
)

// errFatal carries a Pebble fatal error out of Logger.Fatalf as a panic, so
// that the failed commit returns an error instead of exiting (or, with a
// logger that returns, being acknowledged).
type errFatal struct{ msg string }

type pebbleLogger struct{}

func (pebbleLogger) Infof(string, ...any)              {}
func (pebbleLogger) Errorf(format string, args ...any) { log.Printf("pebble: "+format, args...) }
func (pebbleLogger) Fatalf(format string, args ...any) {
	panic(errFatal{msg: fmt.Sprintf(format, args...)})
}

// OpenPebble opens (or creates) the store in dir and rebuilds its state.
func OpenPebble(dir string, opts PebbleOptions) (*Pebble, error) {
	po := &pebble.Options{}
	if opts.Tune != nil {
		opts.Tune(po)
	}
	if opts.FS != nil {
		po.FS = opts.FS
	}
	po.Logger = pebbleLogger{}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("cannot open pebble in %q: %w: %w", dir, ErrUnavailable, err)
	}
	s := &Pebble{mem: NewMemory(opts.Options), db: db}
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, err
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
		p := &pool{id: id, net: w.net}
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
	for it.First(); it.Valid(); it.Next() {
		id := string(it.Key()[1:])
		sh, h := m.recShard(id)
		rec := sh.alloc()
		if err := decodeRecord(rec, id, it.Value(), m.pools.get); err != nil {
			return err
		}
		rec.hash = h
		sh.put(rec)
		if rec.state == StateReleased {
			continue
		}
		for i := range rec.lines {
			q := rec.lines[i].Quantity
			p := rec.pools[i]
			p.free.Add(-q)
			if rec.state == StateHeld {
				p.held.Add(q)
			} else {
				p.sold.Add(q)
			}
			m.users.acquire(rec.lines[i].Pool, rec.user, q, 0)
		}
		if rec.state == StateHeld {
			sh.exp.push(expEntry{ms: rec.expiresMs, rec: rec})
		}
	}
	return nil
}

// commit writes b with pebble.Sync. It never reports success for a commit
// Pebble could not sync.
func (s *Pebble) commit(b *pebble.Batch) (err error) {
	if e := s.failed.Load(); e != nil {
		return fmt.Errorf("cannot commit: store failed earlier (%w): %w", *e, ErrUnavailable)
	}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(errFatal)
			if !ok {
				panic(r)
			}
			err = errors.New(f.msg)
		}
		if err != nil {
			s.failed.CompareAndSwap(nil, &err)
			err = fmt.Errorf("cannot commit: %w: %w", ErrUnavailable, err)
		}
	}()
	err = b.Commit(pebble.Sync)
	if err == nil {
		_ = b.Close()
	}
	return err
}

func (s *Pebble) putRecords(ws []recWrite) error {
	b := s.db.NewBatch()
	var key, val []byte
	for _, w := range ws {
		key = append(append(key[:0], keyRecord), w.rec.id...)
		val = encodeRecord(val[:0], w.rec, w.state, w.refunded)
		if err := b.Set(key, val, nil); err != nil {
			return fmt.Errorf("cannot write reservation: %w", err)
		}
	}
	return s.commit(b)
}

func (s *Pebble) deleteRecord(id string) error {
	b := s.db.NewBatch()
	if err := b.Delete(append([]byte{keyRecord}, id...), nil); err != nil {
		return fmt.Errorf("cannot delete reservation: %w", err)
	}
	return s.commit(b)
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
	dst = append(dst, codecV1)
	dst = binary.AppendVarint(dst, w.net)
	dst = binary.AppendVarint(dst, w.onHand)
	return binary.AppendUvarint(dst, w.seq)
}

func decodePool(id string, v []byte) (poolWrite, error) {
	d := decoder{b: v}
	w := poolWrite{id: id}
	if d.byte() != codecV1 {
		return w, fmt.Errorf("cannot decode pool %q: unknown version", id)
	}
	w.net = d.varint()
	w.onHand = d.varint()
	w.seq = d.uvarint()
	if d.err || len(d.b) != 0 {
		return w, fmt.Errorf("cannot decode pool %q: corrupt", id)
	}
	return w, nil
}

func encodeRecord(dst []byte, r *record, state State, refunded bool) []byte {
	dst = append(dst, codecV1, byte(state))
	if refunded {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	dst = binary.AppendVarint(dst, r.createdMs)
	dst = binary.AppendVarint(dst, r.expiresMs)
	dst = appendString(dst, r.user)
	dst = binary.AppendUvarint(dst, uint64(len(r.lines)))
	for _, l := range r.lines {
		dst = appendString(dst, l.Pool)
		dst = binary.AppendVarint(dst, l.Quantity)
		dst = binary.AppendVarint(dst, l.Limit)
	}
	return appendString(dst, string(r.meta))
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decodeRecord fills rec from v; pools resolves pool ids.
func decodeRecord(rec *record, id string, v []byte, pools func(string) *pool) error {
	d := decoder{b: v}
	bad := func(why string) error { return fmt.Errorf("cannot decode reservation %q: %s", id, why) }
	if d.byte() != codecV1 {
		return bad("unknown version")
	}
	rec.id = id
	rec.state = State(d.byte())
	rec.refunded = d.byte() == 1
	rec.createdMs = d.varint()
	rec.expiresMs = d.varint()
	rec.user = d.string()
	n := d.uvarint()
	if d.err || n == 0 || n > LinesMax {
		return bad("corrupt lines")
	}
	rec.lines = make([]Line, n)
	rec.pools = make([]*pool, n)
	for i := range rec.lines {
		rec.lines[i] = Line{Pool: d.string(), Quantity: d.varint(), Limit: d.varint()}
		if rec.pools[i] = pools(rec.lines[i].Pool); rec.pools[i] == nil && !d.err {
			return bad("unknown pool " + rec.lines[i].Pool)
		}
	}
	if meta := d.string(); len(meta) > 0 {
		rec.meta = []byte(meta)
	}
	if d.err || len(d.b) != 0 || rec.state < StateHeld || rec.state > StateReleased {
		return bad("corrupt")
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
	// holds what was acknowledged.
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
		res, err := s.mem.Reservation(ctx, string(it.Key()[1:]))
		if err != nil || res.State != state {
			continue // forgotten meanwhile, or in another state
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
func (s *Pebble) Forget(id string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.mem.Forget(id)
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
	if e := s.failed.Load(); e != nil {
		// Pebble's commit pipeline is wedged after a WAL error; closing it
		// could block forever. Leave the files for the next open.
		return fmt.Errorf("cannot close cleanly: %w", *e)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("cannot close pebble: %w", err)
	}
	return nil
}
