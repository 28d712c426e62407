package inventory

import (
	"context"
	"fmt"
	"maps"
)

// Transfers between pools of different tags (the engine's stock buckets:
// one sale's stock split over pools on several Redis Cluster slots).
//
// A pool of one tag cannot be changed in the same atomic step as a pool of
// another (a Redis Cluster script touches one slot), so a transfer is two
// steps, each atomic on its own side, and its record is kept on both sides
// as running totals per peer pool:
//
//  1. Send, on the source: takes units out of its free count and adds them
//     to sent[to], in one step. The transfer's id is the new total.
//  2. Receive, on the destination, given that total: when it is above
//     received[from], adds the difference to its free count and sets
//     received[from] to it, in one step; otherwise it does nothing.
//
// Receive is idempotent and commutative (received only grows: a late or
// repeated Receive of an older total changes nothing), so a transfer whose
// sender died after step 1 is completed by anyone who reads the source's
// Ledger and calls Receive with its sent total; and no unit is ever counted
// in both pools or in neither for longer than the gap between the steps.
// Units in flight, sent[to] - received[from] over every pair, are neither
// available nor held anywhere: whoever sums the pools of a set adds them.
// The totals never shrink, so a pair of pools costs two counters, however
// many transfers it carries.

// Ledger is a pool with its transfer totals.
type Ledger struct {
	Pool
	// Sent is, per destination pool, every unit this pool ever sent it.
	Sent map[string]int64
	// Received is, per source pool, the highest total of that pool's
	// sends this pool has been credited with.
	Received map[string]int64
}

// ledgerKeys: a pool's totals are kept in one map, "s:"+peer for sent and
// "r:"+peer for received.
const (
	ledgerSent     = "s:"
	ledgerReceived = "r:"
)

func (l *Ledger) fill(m map[string]int64) {
	for k, v := range m {
		if len(k) < 2 {
			continue
		}
		switch k[:2] {
		case ledgerSent:
			if l.Sent == nil {
				l.Sent = map[string]int64{}
			}
			l.Sent[k[2:]] = v
		case ledgerReceived:
			if l.Received == nil {
				l.Received = map[string]int64{}
			}
			l.Received[k[2:]] = v
		}
	}
}

// ValidTransfer checks the arguments of Send and Receive.
func ValidTransfer(pool, peer string, n int64) error {
	if !ValidID(pool) || !ValidID(peer) || pool == peer {
		return invalidf("bad pool pair")
	}
	if n <= 0 || n > UnitsMax {
		return invalidf("quantity out of range")
	}
	return nil
}

// Send implements Store: it takes up to qty available units of from for
// to, and returns how many it took and from's new sent total for to.
func (m *Memory) Send(ctx context.Context, from, to string, qty int64) (taken, sent int64, err error) {
	if m.closed.Load() {
		return 0, 0, ErrClosed
	}
	if err := ValidTransfer(from, to, qty); err != nil {
		return 0, 0, err
	}
	p := m.pools.get(from)
	if p == nil {
		return 0, 0, fmt.Errorf("cannot send from %q: %w", from, ErrPoolNotFound)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := ledgerSent + to
	for {
		v := p.free.Load()
		taken = min(qty, max(v, 0))
		if taken == 0 || p.free.CompareAndSwap(v, v-taken) {
			break
		}
	}
	if taken == 0 {
		return 0, p.ledger[key], nil
	}
	next := maps.Clone(p.ledger)
	if next == nil {
		next = map[string]int64{}
	}
	next[key] += taken
	if m.dur != nil {
		if err := m.dur.putPools([]poolWrite{{id: p.id, net: p.net - taken, onHand: p.onHand.Load(), seq: p.seq.Load(), ledger: next, closed: p.closed.Load()}}); err != nil {
			p.free.Add(taken)
			return 0, 0, err
		}
	}
	p.net -= taken
	p.ledger = next
	return taken, next[key], nil
}

// Receive implements Store: it credits to with what from sent beyond what
// to received, given from's sent total; it returns the units added.
func (m *Memory) Receive(ctx context.Context, to, from string, sent int64) (int64, error) {
	if m.closed.Load() {
		return 0, ErrClosed
	}
	if err := ValidTransfer(to, from, sent); err != nil {
		return 0, err
	}
	p := m.pools.get(to)
	if p == nil {
		return 0, fmt.Errorf("cannot receive into %q: %w", to, ErrPoolNotFound)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := ledgerReceived + from
	d := sent - p.ledger[key]
	if d <= 0 {
		return 0, nil
	}
	next := maps.Clone(p.ledger)
	if next == nil {
		next = map[string]int64{}
	}
	next[key] = sent
	// Units coming in are persisted first (see durable).
	if m.dur != nil {
		if err := m.dur.putPools([]poolWrite{{id: p.id, net: p.net + d, onHand: p.onHand.Load(), seq: p.seq.Load(), ledger: next, closed: p.closed.Load()}}); err != nil {
			return 0, err
		}
	}
	p.net += d
	p.ledger = next
	p.free.Add(d)
	return d, nil
}

// Ledger implements Store.
func (m *Memory) Ledger(ctx context.Context, id string) (Ledger, error) {
	if m.closed.Load() {
		return Ledger{}, ErrClosed
	}
	if !ValidID(id) {
		return Ledger{}, invalidf("bad pool id")
	}
	p := m.pools.get(id)
	if p == nil {
		return Ledger{}, fmt.Errorf("cannot read pool %q: %w", id, ErrPoolNotFound)
	}
	p.mu.Lock()
	l := Ledger{Pool: p.snapshot()}
	l.fill(p.ledger)
	p.mu.Unlock()
	return l, nil
}

// Send implements Store.
func (s *Pebble) Send(ctx context.Context, from, to string, qty int64) (int64, int64, error) {
	if err := s.enter(); err != nil {
		return 0, 0, err
	}
	defer s.leave()
	return s.mem.Send(ctx, from, to, qty)
}

// Receive implements Store.
func (s *Pebble) Receive(ctx context.Context, to, from string, sent int64) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	return s.mem.Receive(ctx, to, from, sent)
}

// Ledger implements Store.
func (s *Pebble) Ledger(ctx context.Context, id string) (Ledger, error) {
	if err := s.enter(); err != nil {
		return Ledger{}, err
	}
	defer s.leave()
	return s.mem.Ledger(ctx, id)
}
