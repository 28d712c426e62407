package redisinv

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"github.com/surge-retail/surge/inventory"
)

// Transfers (inventory/transfer.go) keep their totals in the pool's hash:
// field "s:<to>" is what the pool sent to, "r:<from>" the highest sent
// total of from it was credited with. Each step is one script on one
// tag's slot.

// sendScript: ARGV base, from, to, quantity. Returns {taken, sent}.
var sendScript = rueidis.NewLuaScript(prelude + `
local pk = base .. 'p:' .. ARGV[2]
local fr = redis.call('HGET', pk, 'fr')
if not fr then return err('SURGE_NOPOOL') end
local q = math.min(tonumber(ARGV[4]), math.max(tonumber(fr), 0))
local f = 's:' .. ARGV[3]
if q <= 0 then return {0, tonumber(redis.call('HGET', pk, f) or '0')} end
local qs = string.format('%d', q)
redis.call('HINCRBY', pk, 'fr', '-' .. qs)
return {q, redis.call('HINCRBY', pk, f, qs)}
`)

// receiveScript: ARGV base, to, from, sent total. Returns the units added.
var receiveScript = rueidis.NewLuaScript(prelude + `
local pk = base .. 'p:' .. ARGV[2]
if redis.call('EXISTS', pk) == 0 then return err('SURGE_NOPOOL') end
local f = 'r:' .. ARGV[3]
local sent = tonumber(ARGV[4])
local d = sent - tonumber(redis.call('HGET', pk, f) or '0')
if d <= 0 then return 0 end
redis.call('HINCRBY', pk, 'fr', string.format('%d', d))
redis.call('HSET', pk, f, ARGV[4])
return d
`)

// Send implements inventory.Store.
func (s *Store) Send(ctx context.Context, from, to string, qty int64) (int64, int64, error) {
	if s.closed.Load() {
		return 0, 0, inventory.ErrClosed
	}
	if err := inventory.ValidTransfer(from, to, qty); err != nil {
		return 0, 0, err
	}
	base := s.base(inventory.Tag(from))
	vals, err := sendScript.Exec(ctx, s.client, []string{base + "p:" + from},
		[]string{base, from, to, strconv.FormatInt(qty, 10)}).AsIntSlice()
	if err != nil {
		return 0, 0, s.mapErr("send", err)
	}
	if len(vals) != 2 {
		return 0, 0, fmt.Errorf("redisinv: send: bad reply: %w", inventory.ErrUnavailable)
	}
	return vals[0], vals[1], nil
}

// Receive implements inventory.Store.
func (s *Store) Receive(ctx context.Context, to, from string, sent int64) (int64, error) {
	if s.closed.Load() {
		return 0, inventory.ErrClosed
	}
	if err := inventory.ValidTransfer(to, from, sent); err != nil {
		return 0, err
	}
	base := s.base(inventory.Tag(to))
	n, err := receiveScript.Exec(ctx, s.client, []string{base + "p:" + to},
		[]string{base, to, from, strconv.FormatInt(sent, 10)}).AsInt64()
	if err != nil {
		return 0, s.mapErr("receive", err)
	}
	return n, nil
}

// Ledger implements inventory.Store: one HGETALL of the pool's hash.
func (s *Store) Ledger(ctx context.Context, pool string) (inventory.Ledger, error) {
	if s.closed.Load() {
		return inventory.Ledger{}, inventory.ErrClosed
	}
	if !inventory.ValidID(pool) {
		return inventory.Ledger{}, inventory.ErrInvalid
	}
	key := s.base(inventory.Tag(pool)) + "p:" + pool
	m, err := s.client.Do(ctx, s.client.B().Hgetall().Key(key).Build()).AsStrMap()
	if err != nil {
		return inventory.Ledger{}, s.mapErr("read pool", err)
	}
	if _, ok := m["fr"]; !ok {
		return inventory.Ledger{}, inventory.ErrPoolNotFound
	}
	var n [5]int64
	var seq uint64
	for i, f := range []string{"fr", "hd", "sd", "oh", "sq"} {
		var err error
		if i == 4 {
			seq, err = strconv.ParseUint(m[f], 10, 64)
		} else {
			n[i], err = strconv.ParseInt(m[f], 10, 64)
		}
		if err != nil {
			return inventory.Ledger{}, fmt.Errorf("redisinv: cannot parse pool %q: %w: %w", pool, inventory.ErrUnavailable, err)
		}
	}
	l := inventory.Ledger{Pool: inventory.Pool{ID: pool, Held: n[1], Sold: n[2], OnHand: n[3], Seq: seq}}
	if free := n[0]; free >= 0 {
		l.Available = free
	} else {
		l.Short = -free
	}
	l.Supplied = l.Available + l.Held + l.Sold
	for k, v := range m {
		sent, isSent := strings.CutPrefix(k, "s:")
		recv, isRecv := strings.CutPrefix(k, "r:")
		if !isSent && !isRecv {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return inventory.Ledger{}, fmt.Errorf("redisinv: cannot parse pool %q: %w", pool, inventory.ErrUnavailable)
		}
		if isSent {
			if l.Sent == nil {
				l.Sent = map[string]int64{}
			}
			l.Sent[sent] = n
		} else {
			if l.Received == nil {
				l.Received = map[string]int64{}
			}
			l.Received[recv] = n
		}
	}
	return l, nil
}
