package records

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/rueidis"
)

// Redis layout. Every record key k is stored as the string key
// redisRecordPrefix+k, and k is also a member (score 0) of the sorted set
// redisRecordIndex, so that Scan reads keys in byte order with ZRANGEBYLEX.
// Every write updates value and index in one Lua script, so they never
// disagree. All keys share the hash tag {surge-rec}: on Redis Cluster the
// records live in one slot (they are small: catalog, sales, deals, teams,
// idempotency records, orders), and every script's keys are in one slot.
const (
	redisRecordPrefix = "{surge-rec}:k:"
	redisRecordIndex  = "{surge-rec}:idx"
	// redisScanPage is how many keys Scan reads per round trip.
	redisScanPage = 256
)

var (
	// KEYS: idx, full keys...; ARGV: record keys..., values...
	redisPutScript = rueidis.NewLuaScript(`
local n = #KEYS - 1
for i = 1, n do
  redis.call('SET', KEYS[i+1], ARGV[n+i])
  redis.call('ZADD', KEYS[1], 0, ARGV[i])
end
return n`)

	// KEYS: idx, key; ARGV: record key, mode ("absent" | "equal"), old, new
	redisCASScript = rueidis.NewLuaScript(`
local cur = redis.call('GET', KEYS[2])
if ARGV[2] == 'absent' then
  if cur then return 0 end
else
  if (not cur) or cur ~= ARGV[3] then return 0 end
end
redis.call('SET', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return 1`)

	// KEYS: idx, key; ARGV: record key
	redisDelScript = rueidis.NewLuaScript(`
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1`)

	// KEYS: idx, key; ARGV: record key, old
	redisDelIfScript = rueidis.NewLuaScript(`
local cur = redis.call('GET', KEYS[2])
if (not cur) or cur ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1`)

	// KEYS: idx, counter, n written keys, m counted keys
	// ARGV: n, m, counter record key, n record keys, n values
	redisCountedScript = rueidis.NewLuaScript(`
local n = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local added = 0
local seen = {}
for j = 1, m do
  local k = KEYS[2+n+j]
  if not seen[k] then
    seen[k] = true
    if redis.call('EXISTS', k) == 0 then added = added + 1 end
  end
end
for i = 1, n do
  redis.call('SET', KEYS[2+i], ARGV[3+n+i])
  redis.call('ZADD', KEYS[1], 0, ARGV[3+i])
end
redis.call('INCRBY', KEYS[2], added)
redis.call('ZADD', KEYS[1], 0, ARGV[3])
return added`)
)

type redisRecords struct {
	c      rueidis.Client
	closed atomic.Bool
}

var _ Records = (*redisRecords)(nil)
var _ CountedBatcher = (*redisRecords)(nil)
var _ CompareDeleter = (*redisRecords)(nil)
var _ RangeScanner = (*redisRecords)(nil)

// OpenRedis returns Records kept in Redis at o.RedisAddrs, shared by every
// node that opens the same server or cluster. Writes are as durable as the
// server's persistence (appendonly yes with appendfsync always makes a
// returned write survive a crash of the server).
func OpenRedis(ctx context.Context, o Options) (Records, error) {
	if len(o.RedisAddrs) == 0 {
		return nil, fmt.Errorf("cannot open records in redis: %w: no address", ErrInvalid)
	}
	addr := strings.Join(o.RedisAddrs, ",")
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:  o.RedisAddrs,
		Username:     o.RedisUsername,
		Password:     o.RedisPassword,
		DisableCache: true,
		// No hidden retries: a dead server answers ErrUnavailable at once
		// (as the inventory does), not after the caller's deadline.
		DisableRetry: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot connect records to redis %s: %w: %w", addr, ErrUnavailable, err)
	}
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		c.Close()
		return nil, fmt.Errorf("cannot ping redis %s: %w: %w", addr, ErrUnavailable, err)
	}
	return &redisRecords{c: c}, nil
}

// fail wraps a Redis error; errors of an unreachable server are marked
// ErrUnavailable.
func (r *redisRecords) fail(what string, err error) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cannot %s: %w", what, err)
	}
	return fmt.Errorf("cannot %s: %w: %w", what, ErrUnavailable, err)
}

func (r *redisRecords) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	if r.closed.Load() {
		return nil, false, ErrClosed
	}
	v, err := r.c.Do(ctx, r.c.B().Get().Key(redisRecordPrefix+key).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, r.fail("get record "+strconv.Quote(key), err)
	}
	return cloneBytes(v), true, nil
}

func (r *redisRecords) Put(ctx context.Context, key string, val []byte) error {
	return r.PutBatch(ctx, []KV{{Key: key, Val: val}})
}

func (r *redisRecords) PutBatch(ctx context.Context, kvs []KV) error {
	if err := checkBatch(kvs); err != nil {
		return err
	}
	if len(kvs) == 0 {
		return nil
	}
	if r.closed.Load() {
		return ErrClosed
	}
	keys := make([]string, 0, len(kvs)+1)
	args := make([]string, 2*len(kvs))
	keys = append(keys, redisRecordIndex)
	for i, kv := range kvs {
		keys = append(keys, redisRecordPrefix+kv.Key)
		args[i] = kv.Key
		args[len(kvs)+i] = string(kv.Val)
	}
	if err := redisPutScript.Exec(ctx, r.c, keys, args).Error(); err != nil {
		return r.fail(fmt.Sprintf("put %d records", len(kvs)), err)
	}
	return nil
}

func (r *redisRecords) PutBatchCounted(ctx context.Context, kvs []KV, counted []string, counterKey string) (int64, error) {
	if err := checkBatch(kvs); err != nil {
		return 0, err
	}
	if err := checkKey(counterKey); err != nil {
		return 0, err
	}
	if r.closed.Load() {
		return 0, ErrClosed
	}
	n, m := len(kvs), len(counted)
	keys := make([]string, 0, 2+n+m)
	keys = append(keys, redisRecordIndex, redisRecordPrefix+counterKey)
	args := make([]string, 0, 3+2*n)
	args = append(args, strconv.Itoa(n), strconv.Itoa(m), counterKey)
	for _, kv := range kvs {
		keys = append(keys, redisRecordPrefix+kv.Key)
		args = append(args, kv.Key)
	}
	for _, k := range counted {
		keys = append(keys, redisRecordPrefix+k)
	}
	for _, kv := range kvs {
		args = append(args, string(kv.Val))
	}
	added, err := redisCountedScript.Exec(ctx, r.c, keys, args).AsInt64()
	if err != nil {
		return 0, r.fail(fmt.Sprintf("put %d counted records", n), err)
	}
	return added, nil
}

func (r *redisRecords) PutIfAbsent(ctx context.Context, key string, val []byte) (bool, error) {
	return r.CompareAndSwap(ctx, key, nil, val)
}

func (r *redisRecords) CompareAndSwap(ctx context.Context, key string, old, new []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	if r.closed.Load() {
		return false, ErrClosed
	}
	mode := "equal"
	if old == nil {
		mode = "absent"
	}
	n, err := redisCASScript.Exec(ctx, r.c,
		[]string{redisRecordIndex, redisRecordPrefix + key},
		[]string{key, mode, string(old), string(new)}).AsInt64()
	if err != nil {
		return false, r.fail("compare and swap record "+strconv.Quote(key), err)
	}
	return n == 1, nil
}

func (r *redisRecords) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if r.closed.Load() {
		return ErrClosed
	}
	err := redisDelScript.Exec(ctx, r.c, []string{redisRecordIndex, redisRecordPrefix + key}, []string{key}).Error()
	if err != nil {
		return r.fail("delete record "+strconv.Quote(key), err)
	}
	return nil
}

func (r *redisRecords) DeleteIfEqual(ctx context.Context, key string, old []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	if r.closed.Load() {
		return false, ErrClosed
	}
	n, err := redisDelIfScript.Exec(ctx, r.c, []string{redisRecordIndex, redisRecordPrefix + key}, []string{key, string(old)}).AsInt64()
	if err != nil {
		return false, r.fail("delete record "+strconv.Quote(key), err)
	}
	return n == 1, nil
}

func (r *redisRecords) Scan(ctx context.Context, prefix string, fn func(key string, val []byte) error) error {
	return r.ScanFrom(ctx, prefix, prefix, fn)
}

// ScanFrom implements RangeScanner.
func (r *redisRecords) ScanFrom(ctx context.Context, prefix, from string, fn func(key string, val []byte) error) error {
	if r.closed.Load() {
		return ErrClosed
	}
	lo := "[" + max(from, prefix)
	if max(from, prefix) == "" {
		lo = "-"
	}
	hi := "+"
	if end := prefixEnd(prefix); end != "" {
		hi = "(" + end
	}
	full := make([]string, 0, redisScanPage)
	for {
		keys, err := r.c.Do(ctx, r.c.B().Zrangebylex().Key(redisRecordIndex).Min(lo).Max(hi).
			Limit(0, redisScanPage).Build()).AsStrSlice()
		if err != nil {
			return r.fail("scan records "+strconv.Quote(prefix), err)
		}
		if len(keys) == 0 {
			return nil
		}
		full = full[:0]
		for _, k := range keys {
			full = append(full, redisRecordPrefix+k)
		}
		vals, err := r.c.Do(ctx, r.c.B().Mget().Key(full...).Build()).ToArray()
		if err != nil {
			return r.fail("scan records "+strconv.Quote(prefix), err)
		}
		for i, k := range keys {
			if i >= len(vals) || vals[i].IsNil() {
				continue // deleted between the two calls
			}
			v, err := vals[i].AsBytes()
			if err != nil {
				return r.fail("read record "+strconv.Quote(k), err)
			}
			if err := fn(k, cloneBytes(v)); err != nil {
				return err
			}
		}
		if len(keys) < redisScanPage {
			return nil
		}
		lo = "(" + keys[len(keys)-1]
	}
}

func (r *redisRecords) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	r.c.Close()
	return nil
}
