package engine

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// IdempotencyOptions configures Idempotency. The zero value of each field
// means its default.
type IdempotencyOptions struct {
	// TTL is how long an answer is remembered. Default 24h.
	TTL time.Duration
	// EntriesMax bounds the in-memory cache of answers (the records keep
	// them all until they expire, and answer what the cache does not).
	// Default 10_000: retries come within seconds of the first try, so the
	// most recent answers are the ones replayed, and a 100,000-user crowd
	// costs a few megabytes here rather than 35 MB (DESIGN.md budgets about
	// 100 bytes of memory per user of a sale).
	EntriesMax int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// WithDefaults returns o with zero fields set to their defaults.
func (o IdempotencyOptions) WithDefaults() IdempotencyOptions {
	if o.TTL <= 0 {
		o.TTL = idemTTLDefault
	}
	if o.EntriesMax <= 0 {
		o.EntriesMax = idemEntriesMaxDefault
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// IdempotencyKeyLenMax is the longest Idempotency-Key (bytes, API.md).
const IdempotencyKeyLenMax = 128

const (
	idemTTLDefault        = 24 * time.Hour
	idemEntriesMaxDefault = 10_000
	// idemKeyMax is the longest Idempotency-Key (bytes, API.md).
	idemKeyMax = IdempotencyKeyLenMax
	// idemUserMax bounds a user id.
	idemUserMax = IDLenMax
	// idemLease is how long a claim (an answer being computed) holds a key;
	// a claim older than this is taken to be from a dead process and is
	// taken over.
	idemLease = 10 * time.Second
	// idemWaitMax bounds how long a call waits for another node's claim.
	idemWaitMax = 5 * time.Second
	// idemPollMin and idemPollMax are the bounds of that wait's polling.
	idemPollMin = 2 * time.Millisecond
	idemPollMax = 50 * time.Millisecond
	// idemInflightMax bounds the calls computing an answer at once in this
	// process.
	idemInflightMax = 65536
	// idemBodyCacheMax: larger answers are not kept in the memory cache
	// (they stay in the records).
	idemBodyCacheMax = 64 << 10
	// idemShards is the number of cache shards.
	idemShards = 16
	// idemRecordPrefix prefixes the records' keys.
	idemRecordPrefix = "idem/"
)

// Record layout: state byte, 32-byte digest, 8-byte deadline (Unix ms;
// expiry of an answer, end of the lease of a claim), then for an answer a
// 4-byte status and the body, for a claim an 8-byte random token (so that
// a claim's bytes are unique and only its owner can swap it).
const (
	idemStateClaim  = 'C'
	idemStateAnswer = 'A'
	idemHeaderLen   = 1 + 32 + 8
)

// Idempotency remembers the first answer to a write per user and
// Idempotency-Key, for TTL (law 5). Answers live in Records (they survive a
// restart and, with Redis records, are shared by the nodes); recent ones
// are also cached in memory. Concurrent identical calls run fn once, also
// across nodes: the first claims the key in the records, the others wait
// for its answer.
type Idempotency struct {
	rec  Records
	opts IdempotencyOptions

	cache *idemLRU[idemAnswer]
	// claims: write a claim to the records before running fn, so that
	// other nodes wait for it. Off for records only this process uses,
	// where the in-process single flight is enough (a claim would cost a
	// synced write and protect against nothing more: after a crash a
	// claim without an answer is taken over, just like no record).
	claims bool

	flight *idemFlight
}

// idemFlight tracks the answers being computed in this process, per
// records key.
type idemFlight struct {
	mu    sync.Mutex
	calls map[string]*idemCall // created on first use
}

// idemAnswer is a remembered answer.
type idemAnswer struct {
	digest  [32]byte
	status  int
	body    []byte
	expires time.Time
}

// idemCall is an answer being computed in this process.
type idemCall struct {
	digest [32]byte
	done   chan struct{}
	// set before done is closed; ok is false when the caller failed
	// without an answer (the waiters then start over).
	status int
	body   []byte
	ok     bool
}

// NewIdempotency returns an Idempotency keeping its records in rec.
func NewIdempotency(rec Records, opts IdempotencyOptions) *Idempotency {
	opts = opts.WithDefaults()
	i := &Idempotency{
		rec:   rec,
		opts:  opts,
		cache: newIdemLRU[idemAnswer](opts.EntriesMax),
	}
	if l, ok := rec.(recLocal); ok {
		i.flight = l.recFlight()
	} else {
		i.claims = true
		i.flight = &idemFlight{}
	}
	return i
}

// IdempotencyKeyValid reports whether key is a valid Idempotency-Key: 1 to
// 128 printable ASCII characters.
func IdempotencyKeyValid(key string) bool {
	if len(key) == 0 || len(key) > idemKeyMax {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// idemRecordKey is the records key of (userID, key): a hash, so that any
// user id and key make a short key of fixed shape.
func idemRecordKey(userID, key string) string {
	h := sha256.New()
	h.Write([]byte(userID))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var sum [32]byte
	return idemRecordPrefix + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// Do returns the first answer to (userID, key). The first call runs fn and
// remembers its answer for TTL; a later call with the same digest (of the
// request body and route) gets that answer again without running fn; a
// call with another digest gets ErrIdempotencyConflict. Answers with a 5xx
// or 429 status are not remembered: the next call runs fn again (calls
// waiting on that one get the same answer). An invalid key or user id is ErrInvalid. A
// call waits for a concurrent identical call at most until ctx ends (then
// ctx's error) or idemWaitMax (then ErrUnavailable).
func (i *Idempotency) Do(ctx context.Context, userID, key string, digest [32]byte, fn func() (status int, body []byte)) (status int, body []byte, err error) {
	if !IdempotencyKeyValid(key) {
		return 0, nil, fmt.Errorf("%w: Idempotency-Key must be 1 to %d printable ASCII characters", ErrInvalid, idemKeyMax)
	}
	if userID == "" || len(userID) > idemUserMax {
		return 0, nil, fmt.Errorf("%w: idempotency needs a user", ErrInvalid)
	}
	rkey := idemRecordKey(userID, key)
	waitStart := time.Now()
	poll := idemPollMin
	for {
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		if a, ok := i.cached(rkey); ok {
			return idemReply(a, digest)
		}

		// One caller per key in this process talks to the records; the
		// others wait for its answer.
		f := i.flight
		f.mu.Lock()
		if c, ok := f.calls[rkey]; ok {
			f.mu.Unlock()
			if c.digest != digest {
				return 0, nil, ErrIdempotencyConflict
			}
			select {
			case <-c.done:
			case <-ctx.Done():
				return 0, nil, ctx.Err()
			}
			if c.ok {
				return c.status, c.body, nil
			}
			continue
		}
		if len(f.calls) >= idemInflightMax {
			f.mu.Unlock()
			return 0, nil, fmt.Errorf("%w: too many idempotent calls in flight", ErrUnavailable)
		}
		if f.calls == nil {
			f.calls = make(map[string]*idemCall)
		}
		c := &idemCall{digest: digest, done: make(chan struct{})}
		f.calls[rkey] = c
		f.mu.Unlock()

		status, body, retry, err := func() (int, []byte, bool, error) {
			defer func() { // also when fn panics
				f.mu.Lock()
				delete(f.calls, rkey)
				f.mu.Unlock()
				close(c.done)
			}()
			return i.lead(ctx, rkey, digest, c, fn)
		}()
		if !retry {
			return status, body, err
		}
		// Another node holds the key: wait for it, bounded.
		if time.Since(waitStart) > idemWaitMax {
			return 0, nil, fmt.Errorf("%w: idempotency key busy", ErrUnavailable)
		}
		t := time.NewTimer(poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, nil, ctx.Err()
		}
		poll = min(2*poll, idemPollMax)
	}
}

// lead resolves the key against the records as this process's only caller
// for it. retry asks Do to wait and start over (another node's claim). c
// gets the answer for the waiters of this process.
func (i *Idempotency) lead(ctx context.Context, rkey string, digest [32]byte, c *idemCall, fn func() (int, []byte)) (status int, body []byte, retry bool, err error) {
	var claim []byte // our claim, or (without claims) the record we replace
	absent := false  // without claims: there is no record
	for attempt := 0; claim == nil; attempt++ {
		if attempt >= 8 {
			// Lost every race for the key: let Do wait and start over.
			return 0, nil, true, nil
		}
		cur, ok, err := i.rec.Get(ctx, rkey)
		if err != nil {
			return 0, nil, false, fmt.Errorf("cannot read idempotency record: %w", err)
		}
		now := i.opts.Now()
		mine := idemEncodeClaim(digest, now.Add(idemLease))
		if !ok && !i.claims {
			claim, absent = idemNone, true
			break
		}
		if !ok {
			won, err := i.rec.PutIfAbsent(ctx, rkey, mine)
			if err != nil {
				return 0, nil, false, fmt.Errorf("cannot claim idempotency key: %w", err)
			}
			if won {
				claim = mine
			}
			continue
		}
		state, recDigest, deadline, rest, derr := idemDecode(cur)
		live := derr == nil && now.Before(deadline)
		switch {
		case live && state == idemStateAnswer:
			a := idemAnswer{digest: recDigest, status: int(binary.BigEndian.Uint32(rest)), body: rest[4:], expires: deadline}
			i.remember(rkey, a)
			c.status, c.body, c.ok = a.status, a.body, a.digest == digest
			st, b, err := idemReply(a, digest)
			return st, b, false, err
		case live && state == idemStateClaim:
			if recDigest != digest {
				return 0, nil, false, ErrIdempotencyConflict
			}
			return 0, nil, true, nil
		case !i.claims: // expired, released or unreadable: replace it later
			claim = cur
		default: // expired, released or unreadable: take it over
			won, err := i.rec.CompareAndSwap(ctx, rkey, cur, mine)
			if err != nil {
				return 0, nil, false, fmt.Errorf("cannot claim idempotency key: %w", err)
			}
			if won {
				claim = mine
			}
		}
	}

	status, body, panicked := idemRun(fn)
	if panicked != nil {
		i.release(rkey, claim)
		panic(panicked)
	}
	c.status, c.body, c.ok = status, body, true
	// 5xx and 429 answers say "not now", not "done": a retry with the same
	// key must run fn again rather than replay the refusal.
	if status >= 500 || status <= 0 || status == 429 {
		i.release(rkey, claim)
		return status, body, false, nil
	}
	expires := i.opts.Now().Add(i.opts.TTL)
	// The answer is given even when it cannot be stored: fn's effects have
	// happened. The claim then expires after idemLease and a retry runs fn
	// again, as after a crash.
	old := claim
	if absent {
		old = nil
	}
	_, _ = i.rec.CompareAndSwap(context.WithoutCancel(ctx), rkey, old, idemEncodeAnswer(digest, expires, status, body))
	i.remember(rkey, idemAnswer{digest: digest, status: status, body: body, expires: expires})
	return status, body, false, nil
}

// idemRun runs fn, catching a panic so that the claim can be released.
func idemRun(fn func() (int, []byte)) (status int, body []byte, panicked any) {
	defer func() {
		if r := recover(); r != nil {
			panicked = r
		}
	}()
	status, body = fn()
	return status, body, nil
}

// release gives up a claim: it is replaced by an expired one, which the
// next call takes over (and Sweep removes).
func (i *Idempotency) release(rkey string, claim []byte) {
	if !i.claims {
		return // nothing was written
	}
	_, digest, _, _, _ := idemDecode(claim)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = i.rec.CompareAndSwap(ctx, rkey, claim, idemEncodeClaim(digest, time.UnixMilli(0)))
}

func idemReply(a idemAnswer, digest [32]byte) (int, []byte, error) {
	if a.digest != digest {
		return 0, nil, ErrIdempotencyConflict
	}
	return a.status, a.body, nil
}

func (i *Idempotency) cached(rkey string) (idemAnswer, bool) {
	a, ok := i.cache.Get(rkey)
	if !ok {
		return a, false
	}
	if !i.opts.Now().Before(a.expires) {
		i.cache.Remove(rkey)
		return a, false
	}
	return a, true
}

func (i *Idempotency) remember(rkey string, a idemAnswer) {
	if len(a.body) <= idemBodyCacheMax {
		i.cache.Add(rkey, a)
	}
}

// Sweep removes expired records and returns how many it removed. The
// engine calls it now and then (e.g. from its sweeper); records are also
// taken over lazily when a key is used again.
func (i *Idempotency) Sweep(ctx context.Context) (int, error) {
	now := i.opts.Now()
	var expired []KV
	err := i.rec.Scan(ctx, idemRecordPrefix, func(k string, v []byte) error {
		_, _, deadline, _, err := idemDecode(v)
		// A claim is kept for one more lease, so that its owner can still
		// store its answer.
		if err == nil && now.After(deadline.Add(idemLease)) {
			expired = append(expired, KV{Key: k, Val: v})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cannot sweep idempotency records: %w", err)
	}
	n := 0
	for _, kv := range expired {
		ok, err := recDeleteIfEqual(ctx, i.rec, kv.Key, kv.Val)
		if err != nil {
			return n, fmt.Errorf("cannot sweep idempotency records: %w", err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

func idemEncodeClaim(digest [32]byte, lease time.Time) []byte {
	b := make([]byte, idemHeaderLen+8)
	b[0] = idemStateClaim
	copy(b[1:33], digest[:])
	binary.BigEndian.PutUint64(b[33:41], uint64(lease.UnixMilli()))
	_, _ = rand.Read(b[41:])
	return b
}

func idemEncodeAnswer(digest [32]byte, expires time.Time, status int, body []byte) []byte {
	b := make([]byte, idemHeaderLen+4, idemHeaderLen+4+len(body))
	b[0] = idemStateAnswer
	copy(b[1:33], digest[:])
	binary.BigEndian.PutUint64(b[33:41], uint64(expires.UnixMilli()))
	binary.BigEndian.PutUint32(b[41:45], uint32(status))
	return append(b, body...)
}

var errIdemRecord = errors.New("engine: bad idempotency record")

// idemNone marks "no record" (a non-nil empty claim).
var idemNone = []byte{}

func idemDecode(b []byte) (state byte, digest [32]byte, deadline time.Time, rest []byte, err error) {
	if len(b) < idemHeaderLen || b[0] != idemStateClaim && b[0] != idemStateAnswer ||
		b[0] == idemStateAnswer && len(b) < idemHeaderLen+4 {
		return 0, digest, time.Time{}, nil, errIdemRecord
	}
	copy(digest[:], b[1:33])
	deadline = time.UnixMilli(int64(binary.BigEndian.Uint64(b[33:41])))
	return b[0], digest, deadline, b[idemHeaderLen:], nil
}

// ---------------------------------------------------------------------------
// A bounded, sharded LRU map with string keys (also used by the risk hook).

type idemLRU[V any] struct {
	seed     maphash.Seed
	shards   [idemShards]idemLRUShard[V]
	shardMax int
}

type idemLRUShard[V any] struct {
	mu    sync.Mutex
	items map[string]*list.Element
	order list.List // front: most recently used
}

type idemLRUEntry[V any] struct {
	key string
	val V
}

// newIdemLRU returns an LRU holding at most entriesMax entries (rounded
// up to a multiple of idemShards).
func newIdemLRU[V any](entriesMax int) *idemLRU[V] {
	l := &idemLRU[V]{seed: maphash.MakeSeed(), shardMax: max(1, (entriesMax+idemShards-1)/idemShards)}
	for s := range l.shards {
		l.shards[s].items = make(map[string]*list.Element)
	}
	return l
}

func (l *idemLRU[V]) shard(key string) *idemLRUShard[V] {
	return &l.shards[maphash.String(l.seed, key)%idemShards]
}

// Get returns the value of key and marks it used.
func (l *idemLRU[V]) Get(key string) (V, bool) {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok {
		s.order.MoveToFront(e)
		return e.Value.(*idemLRUEntry[V]).val, true
	}
	var zero V
	return zero, false
}

// GetOrAdd returns the value of key, adding mk() when absent (evicting the
// least recently used entry of the shard when full).
func (l *idemLRU[V]) GetOrAdd(key string, mk func() V) V {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok {
		s.order.MoveToFront(e)
		return e.Value.(*idemLRUEntry[V]).val
	}
	v := mk()
	l.addLocked(s, key, v)
	return v
}

// Add sets key to v.
func (l *idemLRU[V]) Add(key string, v V) {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok {
		e.Value.(*idemLRUEntry[V]).val = v
		s.order.MoveToFront(e)
		return
	}
	l.addLocked(s, key, v)
}

func (l *idemLRU[V]) addLocked(s *idemLRUShard[V], key string, v V) {
	for s.order.Len() >= l.shardMax {
		old := s.order.Back()
		s.order.Remove(old)
		delete(s.items, old.Value.(*idemLRUEntry[V]).key)
	}
	s.items[key] = s.order.PushFront(&idemLRUEntry[V]{key: key, val: v})
}

// Remove deletes key.
func (l *idemLRU[V]) Remove(key string) {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok {
		s.order.Remove(e)
		delete(s.items, key)
	}
}

// Len returns the number of entries.
func (l *idemLRU[V]) Len() int {
	n := 0
	for s := range l.shards {
		l.shards[s].mu.Lock()
		n += l.shards[s].order.Len()
		l.shards[s].mu.Unlock()
	}
	return n
}
