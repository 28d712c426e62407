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

	"github.com/surge-retail/surge/engine/records"
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
	// NewKeysPerSecond bounds the new keys one user makes the records
	// keep within one second (idemlimit.go); past it a call with another
	// new key is ErrTooManyKeys (429) and writes nothing. Default
	// NewKeysPerSecondDefault (10); negative: no bound.
	NewKeysPerSecond int
}

// WithDefaults returns o with zero fields set to their defaults.
func (o IdempotencyOptions) WithDefaults() IdempotencyOptions {
	if o.TTL <= 0 {
		o.TTL = answerTTLDefault
	}
	if o.EntriesMax <= 0 {
		o.EntriesMax = answerEntriesMaxDefault
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewKeysPerSecond == 0 {
		o.NewKeysPerSecond = NewKeysPerSecondDefault
	}
	return o
}

// IdempotencyKeyLenMax is the longest Idempotency-Key (bytes, API.md).
const IdempotencyKeyLenMax = 128

const (
	answerTTLDefault        = 24 * time.Hour
	answerEntriesMaxDefault = 10_000
	// keyLenMax is the longest Idempotency-Key (bytes, API.md).
	keyLenMax = IdempotencyKeyLenMax
	// userLenMax bounds a user id.
	userLenMax = IDLenMax
	// claimLease is how long a claim (an answer being computed) holds a key;
	// a claim older than this is taken to be from a dead process and is
	// taken over.
	claimLease = 10 * time.Second
	// claimWaitMax bounds how long a call waits for another node's claim.
	claimWaitMax = 5 * time.Second
	// claimPollMin and claimPollMax are the bounds of that wait's polling.
	claimPollMin = 2 * time.Millisecond
	claimPollMax = 50 * time.Millisecond
	// flightsMax bounds the calls computing an answer at once in this
	// process.
	flightsMax = 65536
	// cachedBodyMax: larger answers are not kept in the memory cache
	// (they stay in the records).
	cachedBodyMax = 64 << 10
	// lruShards is the number of cache shards.
	lruShards = 16
	// answerKeyPrefix prefixes the records' keys.
	answerKeyPrefix = "idem/"
)

// Record layout: state byte, 32-byte digest, 8-byte deadline (Unix ms;
// expiry of an answer, end of the lease of a claim), then for an answer a
// 4-byte status and the body, for a claim an 8-byte random token (so that
// a claim's bytes are unique and only its owner can swap it).
const (
	stateClaim      = 'C'
	stateAnswer     = 'A'
	answerHeaderLen = 1 + 32 + 8
)

// Idempotency remembers the first answer to a write per user and
// Idempotency-Key, for TTL (law 5). Answers live in the records (they survive a
// restart and, with Redis records, are shared by the nodes); recent ones
// are also cached in memory. Concurrent identical calls run fn once, also
// across nodes: the first claims the key in the records, the others wait
// for its answer.
type Idempotency struct {
	rec  records.Records
	opts IdempotencyOptions

	cache *lru[keptAnswer]
	// claims: write a claim to the records before running fn, so that
	// other nodes wait for it. Off for records only this process uses,
	// where the in-process single flight is enough (a claim would cost a
	// synced write and protect against nothing more: after a crash a
	// claim without an answer is taken over, just like no record).
	claims bool

	flight *flightGroup
	// newKeys bounds the new keys per user and second.
	newKeys newKeyLimit
}

// flightGroup tracks the answers being computed in this process, per
// records key.
type flightGroup struct {
	mu    sync.Mutex
	calls map[string]*flightCall // created on first use
}

// keptAnswer is a remembered answer.
type keptAnswer struct {
	digest  [32]byte
	status  int
	body    []byte
	expires time.Time
}

// flightCall is an answer being computed in this process.
type flightCall struct {
	digest [32]byte
	done   chan struct{}
	// set before done is closed; ok is false when the caller failed
	// without an answer (the waiters then start over).
	status int
	body   []byte
	ok     bool
}

// flightKey keys the shared single flight in records.Local.
type flightKey struct{}

// NewIdempotency returns an Idempotency keeping its records in rec.
func NewIdempotency(rec records.Records, opts IdempotencyOptions) *Idempotency {
	opts = opts.WithDefaults()
	i := &Idempotency{
		rec:     rec,
		opts:    opts,
		cache:   newLRU[keptAnswer](opts.EntriesMax),
		newKeys: newKeyLimit{max: opts.NewKeysPerSecond},
	}
	i.cache.stamp = func() int64 { return i.opts.Now().Unix() }
	if l, ok := rec.(records.Local); ok {
		// Every Idempotency over these records in this process shares
		// one single flight (two engines over one memory records, say).
		i.flight = l.Value(flightKey{}, func() any { return &flightGroup{} }).(*flightGroup)
	} else {
		i.claims = true
		i.flight = &flightGroup{}
	}
	return i
}

// IdempotencyKeyValid reports whether key is a valid Idempotency-Key: 1 to
// 128 printable ASCII characters.
func IdempotencyKeyValid(key string) bool {
	if len(key) == 0 || len(key) > keyLenMax {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// answerKey is the records key of (userID, key): a hash, so that any
// user id and key make a short key of fixed shape.
func answerKey(userID, key string) string {
	h := sha256.New()
	h.Write([]byte(userID))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var sum [32]byte
	return answerKeyPrefix + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// Do returns the first answer to (userID, key). The first call runs fn and
// remembers its answer for TTL; a later call with the same digest (of the
// request body and route) gets that answer again without running fn; a
// call with another digest gets ErrIdempotencyConflict. Answers with a 5xx
// or 429 status are not remembered: the next call runs fn again (calls
// waiting on that one get the same answer). An invalid key or user id is ErrInvalid. A
// call waits for a concurrent identical call at most until ctx ends (then
// ctx's error) or claimWaitMax (then ErrUnavailable).
func (i *Idempotency) Do(ctx context.Context, userID, key string, digest [32]byte, fn func() (status int, body []byte)) (status int, body []byte, err error) {
	if !IdempotencyKeyValid(key) {
		return 0, nil, fmt.Errorf("%w: Idempotency-Key must be 1 to %d printable ASCII characters", ErrInvalid, keyLenMax)
	}
	if userID == "" || len(userID) > userLenMax {
		return 0, nil, fmt.Errorf("%w: idempotency needs a user", ErrInvalid)
	}
	rkey := answerKey(userID, key)
	waitStart := time.Now()
	poll := claimPollMin
	for {
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		if a, ok := i.cached(rkey); ok {
			return reply(a, digest)
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
		if len(f.calls) >= flightsMax {
			f.mu.Unlock()
			return 0, nil, fmt.Errorf("%w: too many idempotent calls in flight", ErrUnavailable)
		}
		if f.calls == nil {
			f.calls = make(map[string]*flightCall)
		}
		c := &flightCall{digest: digest, done: make(chan struct{})}
		f.calls[rkey] = c
		f.mu.Unlock()

		status, body, retry, err := func() (int, []byte, bool, error) {
			defer func() { // also when fn panics
				f.mu.Lock()
				delete(f.calls, rkey)
				f.mu.Unlock()
				close(c.done)
			}()
			return i.lead(ctx, userID, rkey, digest, c, fn)
		}()
		if !retry {
			return status, body, err
		}
		// Another node holds the key: wait for it, bounded.
		if time.Since(waitStart) > claimWaitMax {
			return 0, nil, fmt.Errorf("%w: idempotency key busy", ErrUnavailable)
		}
		t := time.NewTimer(poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, nil, ctx.Err()
		}
		poll = min(2*poll, claimPollMax)
	}
}

// lead resolves the key against the records as this process's only caller
// for it. retry asks Do to wait and start over (another node's claim). c
// gets the answer for the waiters of this process.
func (i *Idempotency) lead(ctx context.Context, userID, rkey string, digest [32]byte, c *flightCall, fn func() (int, []byte)) (status int, body []byte, retry bool, err error) {
	var claim []byte // our claim, or (without claims) the record we replace
	absent := false  // without claims: there is no record
	for attempt := 0; claim == nil; attempt++ {
		if attempt >= 8 {
			// Lost every race for the key: let Do wait and start over.
			return 0, nil, true, nil
		}
		cur, ok, err := i.rec.Get(ctx, rkey)
		if err != nil {
			return 0, nil, false, fmt.Errorf("%w: cannot read idempotency record: %w", ErrUnavailable, err)
		}
		now := i.opts.Now()
		mine := encodeClaim(digest, now.Add(claimLease))
		if !ok && attempt == 0 {
			// A new key: within the user's bound, or refused before
			// anything is written.
			if err := i.newKeys.take(userID, now.Unix()); err != nil {
				return 0, nil, false, err
			}
		}
		if !ok && !i.claims {
			claim, absent = noRecord, true
			break
		}
		if !ok {
			won, err := i.rec.PutIfAbsent(ctx, rkey, mine)
			if err != nil {
				return 0, nil, false, fmt.Errorf("%w: cannot claim idempotency key: %w", ErrUnavailable, err)
			}
			if won {
				claim = mine
			}
			continue
		}
		state, keptDigest, deadline, rest, derr := decodeKept(cur)
		live := derr == nil && now.Before(deadline)
		switch {
		case live && state == stateAnswer:
			a := keptAnswer{digest: keptDigest, status: int(binary.BigEndian.Uint32(rest)), body: rest[4:], expires: deadline}
			i.remember(rkey, a)
			c.status, c.body, c.ok = a.status, a.body, a.digest == digest
			st, b, err := reply(a, digest)
			return st, b, false, err
		case live && state == stateClaim:
			if keptDigest != digest {
				return 0, nil, false, ErrIdempotencyConflict
			}
			return 0, nil, true, nil
		case !i.claims: // expired, released or unreadable: replace it later
			claim = cur
		default: // expired, released or unreadable: take it over
			won, err := i.rec.CompareAndSwap(ctx, rkey, cur, mine)
			if err != nil {
				return 0, nil, false, fmt.Errorf("%w: cannot claim idempotency key: %w", ErrUnavailable, err)
			}
			if won {
				claim = mine
			}
		}
	}

	status, body, panicked := runCatching(fn)
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
	// happened. The claim then expires after claimLease and a retry runs fn
	// again, as after a crash.
	old := claim
	if absent {
		old = nil
	}
	_, _ = i.rec.CompareAndSwap(context.WithoutCancel(ctx), rkey, old, encodeKeptAnswer(digest, expires, status, body))
	i.remember(rkey, keptAnswer{digest: digest, status: status, body: body, expires: expires})
	return status, body, false, nil
}

// runCatching runs fn, catching a panic so that the claim can be released.
func runCatching(fn func() (int, []byte)) (status int, body []byte, panicked any) {
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
	_, digest, _, _, _ := decodeKept(claim)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = i.rec.CompareAndSwap(ctx, rkey, claim, encodeClaim(digest, time.UnixMilli(0)))
}

func reply(a keptAnswer, digest [32]byte) (int, []byte, error) {
	if a.digest != digest {
		return 0, nil, ErrIdempotencyConflict
	}
	return a.status, a.body, nil
}

func (i *Idempotency) cached(rkey string) (keptAnswer, bool) {
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

func (i *Idempotency) remember(rkey string, a keptAnswer) {
	if len(a.body) <= cachedBodyMax {
		i.cache.Add(rkey, a)
	}
}

// PruneIdle drops the cached answers nobody read or stored since before
// (the records still keep them until they expire: a late retry costs one
// read), and rebuilds the cache's maps once they shrank (idle.go). It
// returns how many it dropped. The engine's sweeper calls it, so that a
// crowd's answers leave memory when the crowd does.
func (i *Idempotency) PruneIdle(before time.Time) int {
	return i.cache.pruneIdle(before.Unix())
}

// Sweep removes expired records and returns how many it removed. The
// engine calls it now and then (e.g. from its sweeper); records are also
// taken over lazily when a key is used again.
func (i *Idempotency) Sweep(ctx context.Context) (int, error) {
	now := i.opts.Now()
	var expired []records.KV
	err := i.rec.Scan(ctx, answerKeyPrefix, func(k string, v []byte) error {
		_, _, deadline, _, err := decodeKept(v)
		// A claim is kept for one more lease, so that its owner can still
		// store its answer.
		if err == nil && now.After(deadline.Add(claimLease)) {
			expired = append(expired, records.KV{Key: k, Val: v})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cannot sweep idempotency records: %w", err)
	}
	n := 0
	for _, kv := range expired {
		ok, err := records.DeleteIfEqual(ctx, i.rec, kv.Key, kv.Val)
		if err != nil {
			return n, fmt.Errorf("cannot sweep idempotency records: %w", err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

func encodeClaim(digest [32]byte, lease time.Time) []byte {
	b := make([]byte, answerHeaderLen+8)
	b[0] = stateClaim
	copy(b[1:33], digest[:])
	binary.BigEndian.PutUint64(b[33:41], uint64(lease.UnixMilli()))
	_, _ = rand.Read(b[41:])
	return b
}

func encodeKeptAnswer(digest [32]byte, expires time.Time, status int, body []byte) []byte {
	b := make([]byte, answerHeaderLen+4, answerHeaderLen+4+len(body))
	b[0] = stateAnswer
	copy(b[1:33], digest[:])
	binary.BigEndian.PutUint64(b[33:41], uint64(expires.UnixMilli()))
	binary.BigEndian.PutUint32(b[41:45], uint32(status))
	return append(b, body...)
}

var errKeptAnswer = errors.New("engine: bad idempotency record")

// noRecord marks "no record" (a non-nil empty claim).
var noRecord = []byte{}

func decodeKept(b []byte) (state byte, digest [32]byte, deadline time.Time, rest []byte, err error) {
	if len(b) < answerHeaderLen || b[0] != stateClaim && b[0] != stateAnswer ||
		b[0] == stateAnswer && len(b) < answerHeaderLen+4 {
		return 0, digest, time.Time{}, nil, errKeptAnswer
	}
	copy(digest[:], b[1:33])
	deadline = time.UnixMilli(int64(binary.BigEndian.Uint64(b[33:41])))
	return b[0], digest, deadline, b[answerHeaderLen:], nil
}

// ---------------------------------------------------------------------------
// A bounded, sharded LRU map with string keys (also used by the risk
// hook's token buckets; its per-attempt maps are touchMaps, touchmap.go).

type lru[V any] struct {
	seed     maphash.Seed
	shards   [lruShards]lruShard[V]
	shardMax int
	// stamp, when set, stamps each entry with the time (any unit) it was
	// last added or read, for pruneIdle (idle.go). nil: no stamps.
	stamp func() int64
}

type lruShard[V any] struct {
	mu    sync.Mutex
	items map[string]*list.Element
	order list.List // front: most recently used
	peak  int       // the most items the map held since it was made (idle.go)
}

type lruEntry[V any] struct {
	key  string
	val  V
	used int64 // see lru.stamp
}

// newLRU returns an LRU holding at most entriesMax entries (rounded
// up to a multiple of lruShards).
func newLRU[V any](entriesMax int) *lru[V] {
	l := &lru[V]{seed: maphash.MakeSeed(), shardMax: max(1, (entriesMax+lruShards-1)/lruShards)}
	for s := range l.shards {
		l.shards[s].items = make(map[string]*list.Element)
	}
	return l
}

func (l *lru[V]) shard(key string) *lruShard[V] {
	return &l.shards[maphash.String(l.seed, key)%lruShards]
}

// touch marks e used (and stamps when, where the cache keeps that).
func (l *lru[V]) touch(s *lruShard[V], e *list.Element) *lruEntry[V] {
	s.order.MoveToFront(e)
	en := e.Value.(*lruEntry[V])
	if l.stamp != nil {
		en.used = l.stamp()
	}
	return en
}

// Get returns the value of key and marks it used.
func (l *lru[V]) Get(key string) (V, bool) {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok {
		return l.touch(s, e).val, true
	}
	var zero V
	return zero, false
}

// GetOrAdd returns the value of key, adding mk() when absent (evicting the
// least recently used entry of the shard when full).
func (l *lru[V]) GetOrAdd(key string, mk func() V) V {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok {
		return l.touch(s, e).val
	}
	v := mk()
	l.addLocked(s, key, v)
	return v
}

// Add sets key to v.
func (l *lru[V]) Add(key string, v V) {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok {
		l.touch(s, e).val = v
		return
	}
	l.addLocked(s, key, v)
}

func (l *lru[V]) addLocked(s *lruShard[V], key string, v V) {
	for s.order.Len() >= l.shardMax {
		old := s.order.Back()
		s.order.Remove(old)
		delete(s.items, old.Value.(*lruEntry[V]).key)
	}
	en := &lruEntry[V]{key: key, val: v}
	if l.stamp != nil {
		en.used = l.stamp()
	}
	s.items[key] = s.order.PushFront(en)
}

// Remove deletes key.
func (l *lru[V]) Remove(key string) {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok {
		s.order.Remove(e)
		delete(s.items, key)
	}
}

// Len returns the number of entries.
func (l *lru[V]) Len() int {
	n := 0
	for s := range l.shards {
		l.shards[s].mu.Lock()
		n += l.shards[s].order.Len()
		l.shards[s].mu.Unlock()
	}
	return n
}
