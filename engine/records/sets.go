package records

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"
)

// TaggedSets keeps bounded sets of members (a sale's registrants) in the
// slot of a hash tag (the sale's store), each member with a small value.
// A set can be closed: later adds of new members are refused, so that a
// computation over the whole set (a draw) sees every member there will
// ever be. Unlike Tagged records, sets can be listed and counted.
type TaggedSets interface {
	// AddToSet adds member with val unless it is there already, and
	// returns whether it added and the set's size after the call. A new
	// member of a closed set is ErrSetClosed; one that would make the set
	// larger than max is ErrSetFull. A member already there is no error
	// (Added false), closed or full.
	AddToSet(ctx context.Context, tag, set, member string, val []byte, max int64) (SetAdd, error)
	// SetMember reads a member's value; ok is false when it is not there.
	SetMember(ctx context.Context, tag, set, member string) (val []byte, ok bool, err error)
	// CloseSet closes the set (closing twice is fine) and returns its size,
	// final once CloseSet returned on any node.
	CloseSet(ctx context.Context, tag, set string) (n int64, err error)
	// SetInfo returns the set's size and whether it is closed.
	SetInfo(ctx context.Context, tag, set string) (n int64, closed bool, err error)
	// ScanSet calls fn once for every member, in no particular order. An
	// error from fn stops the scan and is returned as is.
	ScanSet(ctx context.Context, tag, set string, fn func(member string, val []byte) error) error
}

// SetAdd is AddToSet's answer.
type SetAdd struct {
	Added bool
	N     int64
}

var (
	// ErrSetClosed is AddToSet's refusal of a new member of a closed set.
	ErrSetClosed = errors.New("records: set closed")
	// ErrSetFull is AddToSet's refusal of a member past the set's bound.
	ErrSetFull = errors.New("records: set full")
)

// setScanPage is how many members one round trip of a Redis ScanSet asks
// for.
const setScanPage = 512

// SetsOf returns rec's TaggedSets: Redis keeps a set as one hash in the
// tag's slot; other Records (memory, Pebble: one process) keep members as
// plain records under "t/<tag>/s/<set>/m/<member>", counted in memory.
func SetsOf(rec Records) TaggedSets {
	if s, ok := rec.(TaggedSets); ok {
		return s
	}
	l, ok := rec.(Local)
	if !ok {
		l = &localValues{}
	}
	return plainSets{rec: rec, local: l}
}

func checkSet(tag, set, member string, withMember bool) error {
	if err := checkTag(tag); err != nil {
		return err
	}
	if set == "" || len(set) > KeyLenMax/4 || strings.ContainsAny(set, "{}/") {
		return fmt.Errorf("%w: bad set name %q", ErrInvalid, set)
	}
	if withMember && (member == "" || len(member) > KeyLenMax/2) {
		return fmt.Errorf("%w: bad set member %q", ErrInvalid, member)
	}
	return nil
}

// plainSets keeps sets as plain records of one process. Adds run
// concurrently (their writes share Pebble's group commit) under a read
// lock of their set; closing takes the write lock, so no add is half done
// when the set closes. The size is counted in memory, from a scan the
// first time a set is used in this process.
type plainSets struct {
	rec   Records
	local Local
}

type plainSetKey struct{ tag, set string }

type plainSet struct {
	mu     sync.RWMutex
	loaded bool // under mu (write)
	closed bool // under mu
	n      atomic.Int64
	// members serializes the adds of one member (by a hash of it), so
	// that two concurrent first adds of the same member never take two
	// slots: the second waits and finds the member.
	members [64]sync.Mutex
}

func plainSetPrefix(tag, set string) string { return "t/" + tag + "/s/" + set + "/" }

// state returns the set's in-memory state, loaded from the records.
func (p plainSets) state(ctx context.Context, tag, set string) (*plainSet, error) {
	st := p.local.Value(plainSetKey{tag, set}, func() any { return new(plainSet) }).(*plainSet)
	st.mu.RLock()
	loaded := st.loaded
	st.mu.RUnlock()
	if loaded {
		return st, nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.loaded {
		return st, nil
	}
	pre := plainSetPrefix(tag, set)
	n := int64(0)
	if err := p.rec.Scan(ctx, pre+"m/", func(string, []byte) error { n++; return nil }); err != nil {
		return nil, err
	}
	_, closed, err := p.rec.Get(ctx, pre+"closed")
	if err != nil {
		return nil, err
	}
	st.n.Store(n)
	st.closed = closed
	st.loaded = true
	return st, nil
}

func (p plainSets) AddToSet(ctx context.Context, tag, set, member string, val []byte, max int64) (SetAdd, error) {
	if err := checkSet(tag, set, member, true); err != nil {
		return SetAdd{}, err
	}
	st, err := p.state(ctx, tag, set)
	if err != nil {
		return SetAdd{}, err
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	h := fnv.New32a()
	_, _ = h.Write([]byte(member))
	ml := &st.members[h.Sum32()%uint32(len(st.members))]
	ml.Lock()
	defer ml.Unlock()
	key := plainSetPrefix(tag, set) + "m/" + member
	if _, ok, err := p.rec.Get(ctx, key); err != nil {
		return SetAdd{}, err
	} else if ok {
		return SetAdd{N: st.n.Load()}, nil
	}
	if st.closed {
		return SetAdd{N: st.n.Load()}, ErrSetClosed
	}
	// The slot is taken before the write, so that concurrent adds never
	// pass max together; a write that fails or finds the member gives it
	// back.
	n := st.n.Add(1)
	if n > max {
		st.n.Add(-1)
		return SetAdd{N: n - 1}, ErrSetFull
	}
	won, err := p.rec.PutIfAbsent(ctx, key, val)
	if err != nil || !won {
		n = st.n.Add(-1)
		return SetAdd{N: n}, err
	}
	return SetAdd{Added: true, N: n}, nil
}

func (p plainSets) SetMember(ctx context.Context, tag, set, member string) ([]byte, bool, error) {
	if err := checkSet(tag, set, member, true); err != nil {
		return nil, false, err
	}
	return p.rec.Get(ctx, plainSetPrefix(tag, set)+"m/"+member)
}

func (p plainSets) CloseSet(ctx context.Context, tag, set string) (int64, error) {
	if err := checkSet(tag, set, "", false); err != nil {
		return 0, err
	}
	st, err := p.state(ctx, tag, set)
	if err != nil {
		return 0, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.closed {
		if err := p.rec.Put(ctx, plainSetPrefix(tag, set)+"closed", []byte("1")); err != nil {
			return 0, err
		}
		st.closed = true
	}
	return st.n.Load(), nil
}

func (p plainSets) SetInfo(ctx context.Context, tag, set string) (int64, bool, error) {
	if err := checkSet(tag, set, "", false); err != nil {
		return 0, false, err
	}
	st, err := p.state(ctx, tag, set)
	if err != nil {
		return 0, false, err
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.n.Load(), st.closed, nil
}

func (p plainSets) ScanSet(ctx context.Context, tag, set string, fn func(member string, val []byte) error) error {
	if err := checkSet(tag, set, "", false); err != nil {
		return err
	}
	pre := plainSetPrefix(tag, set) + "m/"
	return p.rec.Scan(ctx, pre, func(k string, v []byte) error {
		return fn(k[len(pre):], v)
	})
}

// Redis keeps a set as the hash "{tag}:set:<set>" (member → value) and
// its closing as the key "{tag}:setc:<set>", both in the tag's slot, so
// that one script adds a member with its checks.
func redisSetKeys(tag, set string) (hash, closed string) {
	return "{" + tag + "}:set:" + set, "{" + tag + "}:setc:" + set
}

var (
	// KEYS: hash, closed; ARGV: member, value, max.
	// Returns {1, n} added, {0, n} already there, {-1, n} closed,
	// {-2, n} full.
	redisSetAddScript = rueidis.NewLuaScript(`
local n = redis.call('HLEN', KEYS[1])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {0, n} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, n} end
if n >= tonumber(ARGV[3]) then return {-2, n} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {1, n + 1}`)

	// KEYS: hash, closed. Returns the size.
	redisSetCloseScript = rueidis.NewLuaScript(`
redis.call('SET', KEYS[2], '1')
return redis.call('HLEN', KEYS[1])`)
)

func (r *redisRecords) AddToSet(ctx context.Context, tag, set, member string, val []byte, max int64) (SetAdd, error) {
	if err := checkSet(tag, set, member, true); err != nil {
		return SetAdd{}, err
	}
	if r.closed.Load() {
		return SetAdd{}, ErrClosed
	}
	h, c := redisSetKeys(tag, set)
	vs, err := redisSetAddScript.Exec(ctx, r.c, []string{h, c},
		[]string{member, string(val), strconv.FormatInt(max, 10)}).AsIntSlice()
	if err != nil {
		return SetAdd{}, r.fail("add to set "+strconv.Quote(set), err)
	}
	if len(vs) != 2 {
		return SetAdd{}, fmt.Errorf("BUG: set add script answered %v", vs)
	}
	a := SetAdd{Added: vs[0] == 1, N: vs[1]}
	switch vs[0] {
	case -1:
		return a, ErrSetClosed
	case -2:
		return a, ErrSetFull
	}
	return a, nil
}

func (r *redisRecords) SetMember(ctx context.Context, tag, set, member string) ([]byte, bool, error) {
	if err := checkSet(tag, set, member, true); err != nil {
		return nil, false, err
	}
	if r.closed.Load() {
		return nil, false, ErrClosed
	}
	h, _ := redisSetKeys(tag, set)
	v, err := r.c.Do(ctx, r.c.B().Hget().Key(h).Field(member).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, r.fail("read set member", err)
	}
	return v, true, nil
}

func (r *redisRecords) CloseSet(ctx context.Context, tag, set string) (int64, error) {
	if err := checkSet(tag, set, "", false); err != nil {
		return 0, err
	}
	if r.closed.Load() {
		return 0, ErrClosed
	}
	h, c := redisSetKeys(tag, set)
	n, err := redisSetCloseScript.Exec(ctx, r.c, []string{h, c}, nil).AsInt64()
	if err != nil {
		return 0, r.fail("close set "+strconv.Quote(set), err)
	}
	return n, nil
}

func (r *redisRecords) SetInfo(ctx context.Context, tag, set string) (int64, bool, error) {
	if err := checkSet(tag, set, "", false); err != nil {
		return 0, false, err
	}
	if r.closed.Load() {
		return 0, false, ErrClosed
	}
	h, c := redisSetKeys(tag, set)
	res := r.c.DoMulti(ctx, r.c.B().Hlen().Key(h).Build(), r.c.B().Exists().Key(c).Build())
	n, err := res[0].AsInt64()
	if err != nil {
		return 0, false, r.fail("count set "+strconv.Quote(set), err)
	}
	closed, err := res[1].AsInt64()
	if err != nil {
		return 0, false, r.fail("read set "+strconv.Quote(set), err)
	}
	return n, closed == 1, nil
}

// ScanSet reads the hash with HSCAN, which may return a member twice
// while Redis rehashes the hash; members seen are skipped, so fn sees each
// once (the memory is that of the set, which AddToSet bounds).
func (r *redisRecords) ScanSet(ctx context.Context, tag, set string, fn func(member string, val []byte) error) error {
	if err := checkSet(tag, set, "", false); err != nil {
		return err
	}
	if r.closed.Load() {
		return ErrClosed
	}
	h, _ := redisSetKeys(tag, set)
	seen := map[string]struct{}{}
	cursor := uint64(0)
	for {
		e, err := r.c.Do(ctx, r.c.B().Hscan().Key(h).Cursor(cursor).Count(setScanPage).Build()).AsScanEntry()
		if err != nil {
			return r.fail("scan set "+strconv.Quote(set), err)
		}
		for i := 0; i+1 < len(e.Elements); i += 2 {
			m := e.Elements[i]
			if _, dup := seen[m]; dup {
				continue
			}
			seen[m] = struct{}{}
			if err := fn(m, []byte(e.Elements[i+1])); err != nil {
				return err
			}
		}
		if e.Cursor == 0 {
			return nil
		}
		cursor = e.Cursor
	}
}

var _ TaggedSets = (*redisRecords)(nil)
