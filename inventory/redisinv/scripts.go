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

// Per-item answers of reserveScript. Each maps to one inventory answer in
// Reserve.
const (
	resCreated    = 0
	resSoldOut    = 1
	resLimit      = 2
	resNoPool     = 3
	resIDConflict = 4
)

// prelude is shared by every script. ARGV[1] is always the key base of the
// tag, "P:{T}:"; KEYS[1] is one key of that tag so that a cluster client
// routes the script to the right slot. Every other key is derived from the
// base and so lives in the same slot.
//
// A reservation record is one string (see record.go):
//
//	S F L ' ' ident C ' ' E ' ' meta
//
// S the state ('1' held, '2' paid, '3' released), F refunded ('0'/'1'), L
// the byte length of ident, ident "user n pool q k ... " (every token
// followed by one space; ids never contain spaces), C and E the created
// and expiry times in ms, meta the caller's bytes to the end. A state
// change rewrites the first two bytes only (SETRANGE).
//
// Pool hash fields: fr free, hd held, sd sold, oh on hand, sq seq (decimal
// uint64), cl '1' once closed (absent before). Free is Available minus Short: a feed that removes more than is
// available drives it below zero, and any unit that comes back (a feed
// increase, a release, a refund, a move in) pays the short back first.
// Available = max(fr, 0), Short = max(-fr, 0), Supplied = Available + hd + sd.
const prelude = `
local base = ARGV[1]
local function err(code) return redis.error_reply(code) end
-- parse returns the fields of record v: s, f, u, n, e, and lines
-- p[i], q[i] (strings).
local function parse(v)
  local il, at = string.match(v, '^..(%d+) ()')
  il = tonumber(il)
  local r = {s = string.sub(v, 1, 1), f = string.sub(v, 2, 2), p = {}, q = {}}
  local t = {}
  for w in string.gmatch(string.sub(v, at, at + il - 1), '%S+') do t[#t + 1] = w end
  r.u = t[1]
  r.n = tonumber(t[2])
  for i = 1, r.n do
    r.p[i] = t[3 * i]
    r.q[i] = t[3 * i + 1]
  end
  r.e = string.match(v, '^%d+ (%d+) ', at + il)
  return r
end
-- giveback returns the units of reservation r from counter fld ('hd' or
-- 'sd') to available and takes them off the user's count.
local function giveback(r, fld)
  for i = 1, r.n do
    local q = r.q[i]
    local pk = base .. 'p:' .. r.p[i]
    redis.call('HINCRBY', pk, fld, '-' .. q)
    redis.call('HINCRBY', pk, 'fr', q)
    local uk = base .. 'u:' .. r.p[i]
    if redis.call('HINCRBY', uk, r.u, '-' .. q) <= 0 then
      redis.call('HDEL', uk, r.u)
    end
  end
end
-- setstate moves reservation id (record v, parsed r) to state to with
-- refunded flag f, in the record and the indexes, and returns the new
-- record. A released reservation enters the purge index d, scored by its
-- expiry.
local function setstate(id, v, r, to, f)
  local hdr = to .. f
  redis.call('SETRANGE', base .. 'r:' .. id, 0, hdr)
  if r.s == '1' then
    redis.call('ZREM', base .. 'x', id)
  else
    redis.call('ZREM', base .. 's' .. r.s, id)
  end
  redis.call('ZADD', base .. 's' .. to, 0, id)
  if to == '3' then redis.call('ZADD', base .. 'd', r.e, id) end
  return hdr .. string.sub(v, 3)
end
`

// reserveScript reserves a batch of K requests of one tag, in order, each
// all or nothing on its own, exactly as K reserve calls one after the
// other would. The ids of one batch are distinct (the client keeps a
// repeated id for a later batch). KEYS[1] is the first record key. ARGV
// is laid out in columns, so that MGET and HMGET take ranges of it:
//
//	1 base, 2 K, 3 m (distinct pools), 4 '1' when every request has
//	exactly one line, 'u' when moreover m is 1 and every line has the
//	same quantity and limit, else '0', 5 the earliest deadline (ms) of
//	the batch
//	m pool names
//	K record keys, K ids, K records, K users
//	K line counts (only when ARGV[4] is '0')
//	the lines of every request in order: pool number (1..m; left out
//	  when m is 1), quantity, limit; when ARGV[4] is 'u', one quantity
//	  and limit for all
//
// Returns K when every request was reserved; otherwise an array of K
// answers: resCreated, another res* code, or the stored record (a string)
// when the id exists with the same user and lines.
//
// It reads everything first (the records, the pools, the users' counts),
// decides every request in Lua, and only then writes, one command per key
// and kind: it never fails half-way, and a batch that reserves nothing
// writes nothing. The ids it reserved go to the expiry index as one entry:
// a list P:{T}:b:<n> of the ids, entered in x as " <n>" (ids have no
// spaces) scored by the batch's earliest deadline; a batch of one enters
// its id itself. Lua is slow next to Redis's commands (every argument,
// table and string costs), so the loop reads ARGV in place.
var reserveScript = rueidis.NewLuaScript(prelude + reserveBody)

const reserveBody = `
local K = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
local one = ARGV[4] ~= '0'
local c0 = 6 + m
local cid, crec, cu = c0 + K, c0 + 2 * K, c0 + 3 * K
local cn = c0 + 4 * K
local ln = one and cn or cn + K
local w = (m == 1) and 2 or 3
-- The users of each pool, for HMGET.
local ul = {}
if m == 1 then
  ul[1] = {unpack(ARGV, cu, cu + K - 1)}
else
  for j = 1, m do ul[j] = {} end
  local l = ln
  for i = 1, K do
    local u = ARGV[cu + i - 1]
    local n = one and 1 or tonumber(ARGV[cn + i - 1])
    for x = 1, n do
      local t = ul[tonumber(ARGV[l])]
      t[#t + 1] = u
      l = l + 3
    end
  end
end
local fr, hd, cnt = {}, {}, {}
for j = 1, m do
  local name = ARGV[5 + j]
  local h = redis.call('HMGET', base .. 'p:' .. name, 'fr', 'hd', 'cl')
  if h[1] then
    -- A closed pool (closeScript) reserves nothing: sold out.
    fr[j] = h[3] and -1 or tonumber(h[1])
    hd[j] = tonumber(h[2])
    local us = ul[j]
    local v = redis.call('HMGET', base .. 'u:' .. name, unpack(us))
    local t = {}
    for k = 1, #us do t[us[k]] = tonumber(v[k]) or 0 end
    cnt[j] = t
  else
    fr[j] = false
  end
end
local olds = redis.call('MGET', unpack(ARGV, c0, c0 + K - 1))
local out, dirty = nil, {}
local mv, xv = {}, {}
local made, l = 0, ln
-- same reports whether request i repeats the stored record old.
local function same(i, old)
  local rec = ARGV[crec + i - 1]
  local d = string.match(rec, '^..(%d+) ')
  local pl = #d + 1 + tonumber(d)
  return string.sub(old, 3, 2 + pl) == string.sub(rec, 3, 2 + pl)
end
if ARGV[4] == 'u' then
  -- Uniform: one pool, one line each, the same quantity and limit.
  local q, k = tonumber(ARGV[ln]), tonumber(ARGV[ln + 1])
  local f, h, t = fr[1], hd[1], cnt[1]
  local dj = {}
  for i = 1, K do
    local old = olds[i]
    local code = 0
    if old then
      if same(i, old) then code = old else code = 4 end
    elseif not f then
      code = 3
    elseif f < q then
      code = 1
    else
      local u = ARGV[cu + i - 1]
      local have = t[u] + q
      if k > 0 and have > k then
        code = 2
      else
        f = f - q
        h = h + q
        t[u] = have
        dj[made + 1] = u
        mv[2 * made + 1] = ARGV[c0 + i - 1]
        mv[2 * made + 2] = ARGV[crec + i - 1]
        xv[made + 1] = ARGV[cid + i - 1]
        made = made + 1
      end
    end
    if code ~= 0 and not out then
      out = {}
      for x = 1, i - 1 do out[x] = 0 end
    end
    if out then out[i] = code end
  end
  if made > 0 then
    fr[1], hd[1], dirty[1] = f, h, dj
  end
else
for i = 1, K do
  local n = one and 1 or tonumber(ARGV[cn + i - 1])
  local l0 = l
  l = l0 + w * n
  local old = olds[i]
  local code = 0
  if old then
    if same(i, old) then code = old else code = 4 end
  else
    local u = ARGV[cu + i - 1]
    for x = l0, l - 1, w do
      local j = (w == 3) and tonumber(ARGV[x]) or 1
      if not fr[j] then code = 3 break end
    end
    if code == 0 then
      for x = l0, l - 1, w do
        local j = (w == 3) and tonumber(ARGV[x]) or 1
        if fr[j] < tonumber(ARGV[x + w - 2]) then code = 1 break end
      end
    end
    if code == 0 then
      for x = l0, l - 1, w do
        local k = tonumber(ARGV[x + w - 1])
        if k > 0 then
          local j = (w == 3) and tonumber(ARGV[x]) or 1
          if cnt[j][u] + tonumber(ARGV[x + w - 2]) > k then code = 2 break end
        end
      end
    end
    if code == 0 then
      for x = l0, l - 1, w do
        local j = (w == 3) and tonumber(ARGV[x]) or 1
        local q = tonumber(ARGV[x + w - 2])
        fr[j] = fr[j] - q
        hd[j] = hd[j] + q
        local t = cnt[j]
        t[u] = t[u] + q
        local dj = dirty[j]
        if not dj then
          dj = {}
          dirty[j] = dj
        end
        dj[#dj + 1] = u
      end
      mv[2 * made + 1] = ARGV[c0 + i - 1]
      mv[2 * made + 2] = ARGV[crec + i - 1]
      xv[made + 1] = ARGV[cid + i - 1]
      made = made + 1
    end
  end
  if code ~= 0 and not out then
    out = {}
    for x = 1, i - 1 do out[x] = 0 end
  end
  if out then out[i] = code end
end
end
if made == 0 then return out end
for j = 1, m do
  local dj = dirty[j]
  if dj then
    local name = ARGV[5 + j]
    redis.call('HSET', base .. 'p:' .. name, 'fr', fr[j], 'hd', hd[j])
    local t, uv = cnt[j], {}
    for x = 1, #dj do
      uv[2 * x - 1] = dj[x]
      uv[2 * x] = t[dj[x]]
    end
    redis.call('HSET', base .. 'u:' .. name, unpack(uv))
  end
end
redis.call('MSET', unpack(mv))
if made == 1 then
  redis.call('ZADD', base .. 'x', ARGV[5], xv[1])
else
  local seq = redis.call('INCR', base .. 'bseq')
  redis.call('RPUSH', base .. 'b:' .. seq, unpack(xv))
  redis.call('ZADD', base .. 'x', ARGV[5], ' ' .. seq)
end
if made == K then return K end
return out
`

// The state changes (confirm, release, refund) return {status, record}:
// status 0 when the reservation is (now) in the wanted state, 1 when its
// state does not allow the change (ErrBadState, with the record as it is).

// confirmScript: ARGV base, id, now ms[, outbox entry]. A held reservation
// whose deadline is <= now is released instead, with status 1. With an
// entry, the move from held to paid also appends it to the tag's outbox
// stream (P:{T}:o), in the same script: never one without the other.
var confirmScript = rueidis.NewLuaScript(prelude + `
local id = ARGV[2]
local v = redis.call('GET', base .. 'r:' .. id)
if not v then return err('SURGE_NORES') end
local r = parse(v)
if r.s == '2' then return {0, v} end
if r.s ~= '1' then return {1, v} end
if tonumber(r.e) <= tonumber(ARGV[3]) then
  giveback(r, 'hd')
  return {1, setstate(id, v, r, '3', '0')}
end
for i = 1, r.n do
  local pk = base .. 'p:' .. r.p[i]
  redis.call('HINCRBY', pk, 'hd', '-' .. r.q[i])
  redis.call('HINCRBY', pk, 'sd', r.q[i])
end
if ARGV[4] then redis.call('XADD', base .. 'o', '*', 'e', ARGV[4]) end
return {0, setstate(id, v, r, '2', '0')}
`)

// releaseScript: ARGV base, id.
var releaseScript = rueidis.NewLuaScript(prelude + `
local id = ARGV[2]
local v = redis.call('GET', base .. 'r:' .. id)
if not v then return err('SURGE_NORES') end
local r = parse(v)
if r.s == '3' then return {0, v} end
if r.s ~= '1' then return {1, v} end
giveback(r, 'hd')
return {0, setstate(id, v, r, '3', '0')}
`)

// refundScript: ARGV base, id.
var refundScript = rueidis.NewLuaScript(prelude + `
local id = ARGV[2]
local v = redis.call('GET', base .. 'r:' .. id)
if not v then return err('SURGE_NORES') end
local r = parse(v)
if r.s == '3' and r.f == '1' then return {0, v} end
if r.s ~= '2' then return {1, v} end
giveback(r, 'sd')
return {0, setstate(id, v, r, '3', '1')}
`)

// expireScript: ARGV base, now ms, max, budget. Releases up to max held
// reservations of the tag whose deadline is <= now and returns {more,
// id, record, id, record, ...}; more is 1 when it stopped early (it
// examined budget ids, or every entry it looked at was stale) and a
// further call may find more.
//
// The expiry index x holds ids (score: the deadline) and batch entries
// " <n>" (score: the earliest deadline of list b:<n>). An id in x or in a
// due list is released when its record is held and due, entered in x on
// its own (scored by its deadline) when it is held but not yet due, and
// dropped otherwise (confirmed, released or forgotten since): no index
// entry is removed on the reserve path, and every held reservation
// always has an entry scored at or before its deadline.
var expireScript = rueidis.NewLuaScript(prelude + `
local now = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local budget = tonumber(ARGV[4])
local xk = base .. 'x'
local out = {0}
local n, seen = 0, 0
local function check(id)
  seen = seen + 1
  local v = redis.call('GET', base .. 'r:' .. id)
  if not v or string.byte(v, 1) ~= 49 then return end
  local r = parse(v)
  if tonumber(r.e) <= now then
    giveback(r, 'hd')
    out[#out + 1] = id
    out[#out + 1] = setstate(id, v, r, '3', '0')
    n = n + 1
  else
    redis.call('ZADD', xk, r.e, id)
  end
end
local ents = redis.call('ZRANGEBYSCORE', xk, '-inf', ARGV[2], 'LIMIT', 0, max)
for _, e in ipairs(ents) do
  if n >= max or seen >= budget then break end
  if string.byte(e, 1) == 32 then
    local lk = base .. 'b:' .. string.sub(e, 2)
    local ids = redis.call('LRANGE', lk, 0, -1)
    local i = 0
    while i < #ids and n < max and seen < budget do
      i = i + 1
      check(ids[i])
    end
    if i >= #ids then
      redis.call('DEL', lk)
      redis.call('ZREM', xk, e)
    else
      redis.call('LTRIM', lk, i, -1)
    end
  else
    redis.call('ZREM', xk, e)
    check(e)
  end
end
if n < max and (seen >= budget or #ents == max) then out[1] = 1 end
return out
`)

// forgetScript: ARGV base, id. Drops a released reservation: returns 0
// when it is gone, 1 when it is held or paid (ErrBadState).
var forgetScript = rueidis.NewLuaScript(prelude + `
local id = ARGV[2]
local rk = base .. 'r:' .. id
local v = redis.call('GET', rk)
if not v then return err('SURGE_NORES') end
if string.sub(v, 1, 1) ~= '3' then return 1 end
redis.call('DEL', rk)
redis.call('ZREM', base .. 's3', id)
redis.call('ZREM', base .. 'd', id)
return 0
`)

// purgeScript: ARGV base, before ms, max. Forgets up to max released
// reservations of the tag whose deadline is <= before, oldest first, and
// returns how many. Only released reservations are ever in the index d;
// the record's state is checked again all the same.
var purgeScript = rueidis.NewLuaScript(prelude + `
local ids = redis.call('ZRANGEBYSCORE', base .. 'd', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local n = 0
local step = 500
for lo = 1, #ids, step do
  local hi = math.min(lo + step - 1, #ids)
  local keys, dead = {}, {}
  for i = lo, hi do keys[#keys + 1] = base .. 'r:' .. ids[i] end
  local vs = redis.call('MGET', unpack(keys))
  local dkeys = {}
  for k = 1, #keys do
    local v = vs[k]
    if (not v) or string.sub(v, 1, 1) == '3' then
      dead[#dead + 1] = ids[lo + k - 1]
      if v then dkeys[#dkeys + 1] = keys[k] end
    end
  end
  if #dkeys > 0 then
    redis.call('DEL', unpack(dkeys))
    redis.call('ZREM', base .. 's3', unpack(dead))
    n = n + #dkeys
  end
  local all = {}
  for i = lo, hi do all[#all + 1] = ids[i] end
  redis.call('ZREM', base .. 'd', unpack(all))
end
return n
`)

// createScript: ARGV base, pool, supplied.
var createScript = rueidis.NewLuaScript(prelude + `
local pk = base .. 'p:' .. ARGV[2]
if redis.call('EXISTS', pk) == 1 then return err('SURGE_POOLEXISTS') end
redis.call('HSET', pk, 'fr', ARGV[3], 'hd', '0', 'sd', '0', 'oh', '0', 'sq', '0')
return 1
`)

// closeScript: ARGV base, pool. Closes the pool (cl 1: reserveScript
// answers sold out for it from then on) and deletes its per-user counts.
// Returns 0, or the units held (nothing written) when some are.
var closeScript = rueidis.NewLuaScript(prelude + `
local pk = base .. 'p:' .. ARGV[2]
local h = redis.call('HMGET', pk, 'fr', 'hd')
if not h[1] then return err('SURGE_NOPOOL') end
local held = tonumber(h[2])
if held ~= 0 then return held end
redis.call('HSET', pk, 'cl', '1')
redis.call('DEL', base .. 'u:' .. ARGV[2])
return 0
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
// a flat array of id, record pairs in id order, read atomically. Held
// reservations have no index by id (Reserve does not pay for one): the
// held ids of the expiry index (its own ids and its batch lists) are put
// in a scratch sorted set of equal scores, which Redis orders by bytes,
// dropped before the script ends. This costs time in the size of the
// tag's expiry index; the engine never scans held reservations.
var scanScript = rueidis.NewLuaScript(prelude + `
local idx = base .. 's' .. ARGV[2]
if ARGV[2] == '1' then
  idx = base .. 'scan'
  local seen, cand = {}, {}
  local function add(id)
    if not seen[id] then
      seen[id] = true
      cand[#cand + 1] = id
    end
  end
  for _, e in ipairs(redis.call('ZRANGE', base .. 'x', 0, -1)) do
    if string.byte(e, 1) == 32 then
      for _, id in ipairs(redis.call('LRANGE', base .. 'b:' .. string.sub(e, 2), 0, -1)) do add(id) end
    else
      add(e)
    end
  end
  for lo = 1, #cand, 500 do
    local hi = math.min(lo + 499, #cand)
    local keys = {}
    for i = lo, hi do keys[#keys + 1] = base .. 'r:' .. cand[i] end
    local vs = redis.call('MGET', unpack(keys))
    local z = {}
    for k = 1, #keys do
      local v = vs[k]
      if v and string.byte(v, 1) == 49 then
        z[#z + 1] = 0
        z[#z + 1] = cand[lo + k - 1]
      end
    end
    if #z > 0 then redis.call('ZADD', idx, unpack(z)) end
  end
end
local ids = redis.call('ZRANGEBYLEX', idx, ARGV[3], '+', 'LIMIT', 0, tonumber(ARGV[4]))
if ARGV[2] == '1' then redis.call('DEL', idx) end
if #ids == 0 then return {} end
local keys = {}
for i, id in ipairs(ids) do keys[i] = base .. 'r:' .. id end
local vs = redis.call('MGET', unpack(keys))
local out = {}
for i, id in ipairs(ids) do
  local v = vs[i]
  if v and string.sub(v, 1, 1) == ARGV[2] then
    out[#out + 1] = id
    out[#out + 1] = v
  end
end
return out
`)
