package redisinv

import "github.com/redis/rueidis"

// Error replies of the scripts. Each maps to one inventory sentinel in
// mapErr. A script only returns one of these before it has written
// anything: Redis does not roll a script back.
const (
	errSoldOut     = "SURGE_SOLDOUT"
	errLimit       = "SURGE_LIMIT"
	errNoPool      = "SURGE_NOPOOL"
	errPoolExists  = "SURGE_POOLEXISTS"
	errNoRes       = "SURGE_NORES"
	errIDConflict  = "SURGE_IDCONFLICT"
	errReplyPrefix = "SURGE_"
)

// prelude is shared by every script. ARGV[1] is always the key base of the
// tag, "P:{T}:"; KEYS[1] is one key of that tag so that a cluster client
// routes the script to the right slot. Every other key is derived from the
// base and so lives in the same slot.
//
// Reservation hash fields: u user, n line count, p<i> q<i> k<i> pool,
// quantity and limit of line i, s state (1 held, 2 paid, 3 released),
// m meta, c created ms, e expires ms, f refunded (0/1).
//
// Pool hash fields: fr free, hd held, sd sold, oh on hand, sq seq (decimal
// uint64). Free is Available minus Short: a feed that removes more than is
// available drives it below zero, and any unit that comes back (a feed
// increase, a release, a refund, a move in) pays the short back first.
// Available = max(fr, 0), Short = max(-fr, 0), Supplied = Available + hd + sd.
const prelude = `
local base = ARGV[1]
local function tomap(a)
  local r = {}
  for i = 1, #a, 2 do r[a[i]] = a[i + 1] end
  return r
end
local function err(code) return redis.error_reply(code) end
-- giveback returns the units of reservation r from counter fld ('hd' or
-- 'sd') to available and takes them off the user's count.
local function giveback(r, fld)
  for i = 1, tonumber(r.n) do
    local p = r['p' .. i]
    local q = r['q' .. i]
    local pk = base .. 'p:' .. p
    redis.call('HINCRBY', pk, fld, '-' .. q)
    redis.call('HINCRBY', pk, 'fr', q)
    local uk = base .. 'u:' .. p
    if redis.call('HINCRBY', uk, r.u, '-' .. q) <= 0 then
      redis.call('HDEL', uk, r.u)
    end
  end
end
-- setstate moves reservation id (record r) to state to in the indexes.
local function setstate(id, r, to)
  redis.call('HSET', base .. 'r:' .. id, 's', to)
  redis.call('ZREM', base .. 's' .. r.s, id)
  redis.call('ZADD', base .. 's' .. to, 0, id)
  if r.s == '1' then redis.call('ZREM', base .. 'x', id) end
end
`

// reserveScript: ARGV base, id, user, now ms, expires ms, meta, n, then n
// times pool, quantity, limit. Returns 1 for a new reservation, or the
// stored record (HGETALL) when the id exists with the same user and lines.
var reserveScript = rueidis.NewLuaScript(prelude + `
local id = ARGV[2]
local user = ARGV[3]
local n = tonumber(ARGV[7])
local rk = base .. 'r:' .. id
local a = redis.call('HGETALL', rk)
if #a > 0 then
  local r = tomap(a)
  if r.u ~= user or r.n ~= ARGV[7] then return err('SURGE_IDCONFLICT') end
  for i = 1, n do
    local j = 7 + (i - 1) * 3
    if r['p' .. i] ~= ARGV[j + 1] or r['q' .. i] ~= ARGV[j + 2] or r['k' .. i] ~= ARGV[j + 3] then
      return err('SURGE_IDCONFLICT')
    end
  end
  return a
end
for i = 1, n do
  if redis.call('EXISTS', base .. 'p:' .. ARGV[7 + (i - 1) * 3 + 1]) == 0 then return err('SURGE_NOPOOL') end
end
for i = 1, n do
  local j = 7 + (i - 1) * 3
  if tonumber(redis.call('HGET', base .. 'p:' .. ARGV[j + 1], 'fr')) < tonumber(ARGV[j + 2]) then
    return err('SURGE_SOLDOUT')
  end
end
for i = 1, n do
  local j = 7 + (i - 1) * 3
  local lim = tonumber(ARGV[j + 3])
  if lim > 0 then
    local have = tonumber(redis.call('HGET', base .. 'u:' .. ARGV[j + 1], user) or '0')
    if have + tonumber(ARGV[j + 2]) > lim then return err('SURGE_LIMIT') end
  end
end
local rec = {'u', user, 'n', ARGV[7], 's', '1', 'm', ARGV[6], 'c', ARGV[4], 'e', ARGV[5], 'f', '0'}
for i = 1, n do
  local j = 7 + (i - 1) * 3
  local p = ARGV[j + 1]
  local q = ARGV[j + 2]
  local pk = base .. 'p:' .. p
  redis.call('HINCRBY', pk, 'fr', '-' .. q)
  redis.call('HINCRBY', pk, 'hd', q)
  redis.call('HINCRBY', base .. 'u:' .. p, user, q)
  rec[#rec + 1] = 'p' .. i
  rec[#rec + 1] = p
  rec[#rec + 1] = 'q' .. i
  rec[#rec + 1] = q
  rec[#rec + 1] = 'k' .. i
  rec[#rec + 1] = ARGV[j + 3]
end
redis.call('HSET', rk, unpack(rec))
redis.call('ZADD', base .. 'x', ARGV[5], id)
redis.call('ZADD', base .. 's1', 0, id)
return 1
`)

// The state changes (confirm, release, refund) return {status, record}:
// status 0 when the reservation is (now) in the wanted state, 1 when its
// state does not allow the change (ErrBadState, with the record as it is).

// confirmScript: ARGV base, id, now ms. A held reservation whose deadline
// is <= now is released instead, with status 1.
var confirmScript = rueidis.NewLuaScript(prelude + `
local id = ARGV[2]
local rk = base .. 'r:' .. id
local a = redis.call('HGETALL', rk)
if #a == 0 then return err('SURGE_NORES') end
local r = tomap(a)
if r.s == '2' then return {0, a} end
if r.s ~= '1' then return {1, a} end
if tonumber(r.e) <= tonumber(ARGV[3]) then
  giveback(r, 'hd')
  setstate(id, r, '3')
  return {1, redis.call('HGETALL', rk)}
end
for i = 1, tonumber(r.n) do
  local pk = base .. 'p:' .. r['p' .. i]
  local q = r['q' .. i]
  redis.call('HINCRBY', pk, 'hd', '-' .. q)
  redis.call('HINCRBY', pk, 'sd', q)
end
setstate(id, r, '2')
return {0, redis.call('HGETALL', rk)}
`)

// releaseScript: ARGV base, id.
var releaseScript = rueidis.NewLuaScript(prelude + `
local id = ARGV[2]
local rk = base .. 'r:' .. id
local a = redis.call('HGETALL', rk)
if #a == 0 then return err('SURGE_NORES') end
local r = tomap(a)
if r.s == '3' then return {0, a} end
if r.s ~= '1' then return {1, a} end
giveback(r, 'hd')
setstate(id, r, '3')
return {0, redis.call('HGETALL', rk)}
`)

// refundScript: ARGV base, id.
var refundScript = rueidis.NewLuaScript(prelude + `
local id = ARGV[2]
local rk = base .. 'r:' .. id
local a = redis.call('HGETALL', rk)
if #a == 0 then return err('SURGE_NORES') end
local r = tomap(a)
if r.s == '3' and r.f == '1' then return {0, a} end
if r.s ~= '2' then return {1, a} end
giveback(r, 'sd')
setstate(id, r, '3')
redis.call('HSET', rk, 'f', '1')
return {0, redis.call('HGETALL', rk)}
`)

// expireScript: ARGV base, now ms, max. Releases up to max held
// reservations of the tag whose deadline is <= now; returns a flat array
// of id, record pairs.
var expireScript = rueidis.NewLuaScript(prelude + `
local ids = redis.call('ZRANGEBYSCORE', base .. 'x', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', base .. 'x', id)
  local rk = base .. 'r:' .. id
  local r = tomap(redis.call('HGETALL', rk))
  if r.s == '1' then
    giveback(r, 'hd')
    setstate(id, r, '3')
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGETALL', rk)
  end
end
return out
`)

// createScript: ARGV base, pool, supplied.
var createScript = rueidis.NewLuaScript(prelude + `
local pk = base .. 'p:' .. ARGV[2]
if redis.call('EXISTS', pk) == 1 then return err('SURGE_POOLEXISTS') end
redis.call('HSET', pk, 'fr', ARGV[3], 'hd', '0', 'sd', '0', 'oh', '0', 'sq', '0')
return 1
`)

// moveScript: ARGV base, from, to, quantity or "all". Returns the units
// moved.
var moveScript = rueidis.NewLuaScript(prelude + `
local fk = base .. 'p:' .. ARGV[2]
local tk = base .. 'p:' .. ARGV[3]
if redis.call('EXISTS', fk) == 0 or redis.call('EXISTS', tk) == 0 then return err('SURGE_NOPOOL') end
local fr = tonumber(redis.call('HGET', fk, 'fr'))
local q
if ARGV[4] == 'all' then
  q = math.max(fr, 0)
else
  q = tonumber(ARGV[4])
  if fr < q then return err('SURGE_SOLDOUT') end
end
if q > 0 then
  local qs = string.format('%d', q)
  redis.call('HINCRBY', fk, 'fr', '-' .. qs)
  redis.call('HINCRBY', tk, 'fr', qs)
end
return q
`)

// feedScript: ARGV base, pool, on hand, seq. Returns {applied 0/1, fr, hd,
// sd, oh, sq}. Seqs are compared as decimal strings so every uint64 is
// exact. An applied level moves free by its difference to the last one.
var feedScript = rueidis.NewLuaScript(prelude + `
local pk = base .. 'p:' .. ARGV[2]
local h = redis.call('HMGET', pk, 'fr', 'hd', 'sd', 'oh', 'sq')
if not h[1] then return err('SURGE_NOPOOL') end
local seq, last = ARGV[4], h[5]
if #seq < #last or (#seq == #last and seq <= last) then
  return {0, h[1], h[2], h[3], h[4], h[5]}
end
local fr = string.format('%d', tonumber(h[1]) + tonumber(ARGV[3]) - tonumber(h[4]))
redis.call('HSET', pk, 'fr', fr, 'oh', ARGV[3], 'sq', seq)
return {1, fr, h[2], h[3], ARGV[3], seq}
`)

// scanScript: ARGV base, state, lex min ("-" or "(cursor"), count. Returns
// a flat array of id, record pairs in id order, read atomically.
var scanScript = rueidis.NewLuaScript(prelude + `
local ids = redis.call('ZRANGEBYLEX', base .. 's' .. ARGV[2], ARGV[3], '+', 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGETALL', base .. 'r:' .. id)
end
return out
`)
