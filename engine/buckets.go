package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/surge-retail/surge/inventory"
)

// Stock buckets: one flash sale's stock split over several pools on
// several hash tags, so that a SKU too hot for one Redis Cluster shard
// spreads its reserves over several (FlashSaleSpec.Buckets).
//
// Layout. Bucket 0 is the sale's usual pool ("<store>:fs:<sale>", the
// store's tag: the listing's units move into it and back in one atomic
// step); bucket i > 0 is "<tag i>:fs:<sale>" with a tag of its own
// ("<store>~<n>"), chosen when the sale is created so that, on a cluster,
// the buckets' slots belong to different masters (tagSpreader), and kept
// in the sale's record (saleRec.Buckets) so that every node uses the same.
// A reservation lives in its bucket's tag (its id starts with it), so its
// payment, its order on the way and its idempotency key live there too.
//
// Reserving. A user's home bucket is a hash of the user id, so all of a
// user's reserves of a sale go to one bucket. The reserve tries its home
// bucket; when that is sold out, it takes units from the others, in the
// fixed order home+1, home+2, ... (mod N), into its home bucket (a
// transfer, below), and reserves there again.
//
// Per-user limits (law 6) hold exactly across buckets because a user's
// units are only ever reserved in the home bucket: the per-user count is
// the home bucket's, checked and taken in the same atomic step as the
// units (one script, one synced batch), as for a sale of one bucket. There
// is no allowance taken in one place and a unit in another, so no crash
// can leave an allowance consumed without its unit or the reverse: what
// crosses buckets is stock, never a user's count.
//
// Transfers (inventory.Store.Send / Receive) move units between buckets in
// two steps, each atomic on its own side, and recorded on both sides as
// running totals per pair (the source's sent total is the transfer's id;
// the destination keeps the highest total it was credited with). Receive
// is idempotent, so a node that dies between the steps leaves units in
// flight, neither available nor held anywhere (never oversold), and any
// node's sweeper completes the transfer (settleBuckets: it reads every
// bucket's ledger and delivers every sent total not yet received). Units in
// flight are counted in a sale's totals as remaining.
//
// Rebalancing. Besides the transfers on a miss, the sweeper moves half
// the difference from the fullest bucket to the emptiest when the emptiest
// has less than half of the fullest (one transfer per sale per sweep).
// When the sale ends (its window, or the operator), the sweeper and the
// end route gather every bucket's available units into bucket 0 and drain
// it into the listing; units held in a bucket come back there when their
// holds resolve, and are gathered at the next sweep (law 2). The sale is
// finished once no bucket has anything available or held and nothing is
// in flight.

// Bounds on buckets.
const (
	// BucketsMax bounds FlashSaleSpec.Buckets.
	BucketsMax = 16
	// bucketTagTries bounds the candidate tags a tagSpreader may look at.
	bucketTagTries = 256
)

// tagSpreader is implemented by backends that know where a tag lives
// (redisinv on a Redis Cluster): SpreadTags returns n-1 tags, each
// starting with base, whose slots belong to masters other than base's
// (round-robin over the masters; repeated when n-1 exceeds them).
type tagSpreader interface {
	SpreadTags(ctx context.Context, base string, n, tries int) ([]string, error)
}

// bucketPools names the pools of a sale of n buckets (nil for one).
func (e *Engine) bucketPools(ctx context.Context, spec FlashSaleSpec) ([]string, error) {
	n := spec.Buckets
	if n <= 1 {
		return nil, nil
	}
	var tags []string
	if sp, ok := e.opts.Store.(tagSpreader); ok { // the store as given: e.store is behind its circuit (circuit.go)
		var err error
		if tags, err = sp.SpreadTags(ctx, spec.StoreID, n, bucketTagTries); err != nil {
			return nil, fmt.Errorf("%w: cannot place buckets: %w", ErrUnavailable, err)
		}
	} else {
		for i := 1; i < n; i++ {
			tags = append(tags, spec.StoreID+"~"+strconv.Itoa(i))
		}
	}
	if len(tags) != n-1 {
		return nil, fmt.Errorf("BUG: %d bucket tags for %d buckets", len(tags), n)
	}
	pools := []string{salePool(spec.StoreID, spec.SaleID)}
	for _, t := range tags {
		pools = append(pools, salePool(t, spec.SaleID))
	}
	return pools, nil
}

// validBuckets checks FlashSaleSpec.Buckets: 0 (the default, one) to
// BucketsMax.
func validBuckets(n int) error {
	if n < 0 || n > BucketsMax {
		return fmt.Errorf("%w: buckets must be between 1 and %d", ErrInvalid, BucketsMax)
	}
	return nil
}

// home is the index of user's home bucket of s.
func (s *flashState) home(user string) int {
	if len(s.pools) <= 1 {
		return 0
	}
	// FNV-1a, inline: no allocation on the reserve path.
	h := uint32(2166136261)
	for i := 0; i < len(user); i++ {
		h ^= uint32(user[i])
		h *= 16777619
	}
	return int(h % uint32(len(s.pools)))
}

// homePool is the pool and tag user reserves in.
func (s *flashState) homePool(user string) (pool, tag string) {
	if len(s.pools) <= 1 {
		return s.pool, s.spec.StoreID
	}
	p := s.pools[s.home(user)]
	return p, inventory.Tag(p)
}

// homeTag is the tag of user's reservations in s (keyed ids live there).
func (s *flashState) homeTag(user string) string {
	_, tag := s.homePool(user)
	return tag
}

// allPools is every pool of s: its buckets, or its one pool.
func (s *flashState) allPools() []string {
	if len(s.pools) > 1 {
		return s.pools
	}
	return []string{s.pool}
}

// reserveFromOthers is a reserve whose home bucket was sold out: units are
// sent from the other buckets, in order, into the home bucket, and the
// reserve is tried there again after each transfer that moved some.
func (e *Engine) reserveFromOthers(ctx context.Context, s *flashState, req inventory.ReserveRequest) (inventory.Reservation, error) {
	n := len(s.pools)
	h := s.home(req.User)
	home := s.pools[h]
	err := inventory.ErrSoldOut
	for k := 1; k < n; k++ {
		from := s.pools[(h+k)%n]
		if err := e.transfer(ctx, from, home, req.Lines[0].Quantity); err != nil {
			if errors.Is(err, inventory.ErrSoldOut) {
				continue
			}
			return inventory.Reservation{}, err
		}
		var r inventory.Reservation
		if r, err = e.store.Reserve(ctx, req); !errors.Is(err, inventory.ErrSoldOut) {
			return r, err
		}
	}
	return inventory.Reservation{}, err
}

// transfer moves up to qty available units of pool from into pool to, in
// the two steps of inventory's transfers; ErrSoldOut when from had none.
// A failure after the first step leaves the units in flight, for any
// sweeper to deliver (settleBuckets).
func (e *Engine) transfer(ctx context.Context, from, to string, qty int64) error {
	taken, sent, err := e.store.Send(ctx, from, to, qty)
	if err != nil {
		return err
	}
	if taken == 0 {
		return inventory.ErrSoldOut
	}
	if f := e.bucketFault; f != nil {
		if err := f(from, to); err != nil {
			return err
		}
	}
	_, err = e.store.Receive(ctx, to, from, sent)
	return err
}

// bucketTotals reads every bucket of a sale and sums them, units in
// flight counted as available (they are on their way to a bucket):
// Supplied == Available + Held + Sold holds for the sum. ledgers are the
// buckets' reads, in pools' order.
func (e *Engine) bucketTotals(ctx context.Context, pools []string) (sum inventory.Pool, ledgers []inventory.Ledger, err error) {
	if len(pools) == 1 {
		p, err := e.store.Pool(ctx, pools[0])
		return p, nil, err
	}
	ledgers = make([]inventory.Ledger, len(pools))
	for i, p := range pools {
		if ledgers[i], err = e.store.Ledger(ctx, p); err != nil {
			return sum, nil, err
		}
	}
	sum.ID = pools[0]
	for i := range ledgers {
		l := &ledgers[i]
		sum.Available += l.Available
		sum.Held += l.Held
		sum.Sold += l.Sold
		sum.Short += l.Short
		sum.Available += inFlight(ledgers, pools, i)
	}
	sum.Supplied = sum.Available + sum.Held + sum.Sold
	return sum, ledgers, nil
}

// inFlight is what bucket i sent to the other buckets and they have not
// received yet. Ledgers are read one after another, so a transfer
// completed between two reads may show a negative gap: counted as none.
func inFlight(ledgers []inventory.Ledger, pools []string, i int) int64 {
	var n int64
	for j, to := range pools {
		if j != i {
			n += max(ledgers[i].Sent[to]-ledgers[j].Received[pools[i]], 0)
		}
	}
	return n
}

// saleTotals reads the pool of a sale or deal, or the sum of its buckets.
func (e *Engine) saleTotals(ctx context.Context, pool string, buckets []string) (inventory.Pool, error) {
	if len(buckets) <= 1 {
		return e.store.Pool(ctx, pool)
	}
	p, _, err := e.bucketTotals(ctx, buckets)
	return p, err
}

// settleBuckets delivers the transfers in flight between a sale's buckets
// (those a node died in the middle of), then, for an ended sale, gathers
// every bucket's available units into bucket 0 (which drains into the
// listing), and for a running one moves units from the fullest bucket to
// the emptiest when it has less than half. It returns the first error; a
// later sweep carries on.
func (e *Engine) settleBuckets(ctx context.Context, pools []string, ended bool) error {
	if len(pools) <= 1 {
		return nil
	}
	_, ledgers, err := e.bucketTotals(ctx, pools)
	if err != nil {
		return err
	}
	moved := false
	for i, from := range pools {
		for j, to := range pools {
			if i == j {
				continue
			}
			if sent := ledgers[i].Sent[to]; sent > ledgers[j].Received[from] {
				if _, err := e.store.Receive(ctx, to, from, sent); err != nil {
					return err
				}
				moved = true
			}
		}
	}
	if moved {
		if _, ledgers, err = e.bucketTotals(ctx, pools); err != nil {
			return err
		}
	}
	if ended {
		for i := 1; i < len(pools); i++ {
			if a := ledgers[i].Available; a > 0 {
				if err := e.transfer(ctx, pools[i], pools[0], a); err != nil && !errors.Is(err, inventory.ErrSoldOut) {
					return err
				}
			}
		}
		return nil
	}
	hi, lo := 0, 0
	for i := range ledgers {
		if ledgers[i].Available > ledgers[hi].Available {
			hi = i
		}
		if ledgers[i].Available < ledgers[lo].Available {
			lo = i
		}
	}
	mx, mn := ledgers[hi].Available, ledgers[lo].Available
	if mx-mn >= 2 && mn*2 < mx {
		if err := e.transfer(ctx, pools[hi], pools[lo], (mx-mn)/2); err != nil && !errors.Is(err, inventory.ErrSoldOut) {
			return err
		}
	}
	return nil
}

// spreadBuckets gives each bucket of a new sale its share of the stock
// carved into bucket 0. A failure leaves the rest to the sweeper's
// rebalancing (the sale works meanwhile: misses take from bucket 0).
func (e *Engine) spreadBuckets(ctx context.Context, pools []string, qty int64) {
	share := qty / int64(len(pools))
	if share == 0 {
		return
	}
	for _, p := range pools[1:] {
		if err := e.transfer(ctx, pools[0], p, share); err != nil {
			e.logger(ctx).Warn("engine: cannot spread a sale's stock over its buckets; the sweeper will", "pool", p, "err", err)
			return
		}
	}
}
