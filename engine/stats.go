package engine

import (
	"context"
	"fmt"
)

func poolStats(supplied, available, held, sold, short int64) PoolStats {
	return PoolStats{Supplied: supplied, Held: held, Sold: sold, Remaining: available, Short: short}
}

// Stats returns per sale, deal and listing counts (each from one pool
// snapshot, so Supplied == Held + Sold + Remaining), the order writer's
// counters and risk denials by reason.
func (e *Engine) Stats(ctx context.Context) (Stats, error) {
	st := Stats{
		Sales:       map[string]PoolStats{},
		Deals:       map[string]PoolStats{},
		Listings:    map[string]PoolStats{},
		RiskDenials: map[string]int64{},
		Lotteries:   e.lotteryStats(),
	}
	type ref struct {
		id, pool string
		buckets  []string
	}
	var sales, deals []ref
	e.dealsMu.RLock()
	for id, s := range e.sales {
		sales = append(sales, ref{id, s.pool, s.pools})
	}
	for id, d := range e.deals {
		deals = append(deals, ref{id, d.pool, nil})
	}
	e.dealsMu.RUnlock()
	for _, set := range []struct {
		refs []ref
		into map[string]PoolStats
	}{{sales, st.Sales}, {deals, st.Deals}} {
		for _, r := range set.refs {
			p, err := e.saleTotals(ctx, r.pool, r.buckets)
			if err != nil {
				// A known sale's pool that cannot be read (or is gone: the
				// data was lost) is never "not found" to the operator.
				return st, fmt.Errorf("%w: cannot read pool %s: %v", ErrUnavailable, r.pool, err)
			}
			set.into[r.id] = poolStats(p.Supplied, p.Available, p.Held, p.Sold, p.Short)
		}
	}
	cat := e.catalog.Load()
	for _, sid := range cat.storeOrder {
		for _, l := range cat.listings[sid] {
			p, err := e.store.Pool(ctx, listingPool(sid, l.SKUID))
			if err != nil {
				return st, fmt.Errorf("%w: cannot read listing %s/%s: %v", ErrUnavailable, sid, l.SKUID, err)
			}
			st.Listings[sid+"/"+l.SKUID] = poolStats(p.Supplied, p.Available, p.Held, p.Sold, p.Short)
		}
	}
	orders, err := e.orderStats(ctx)
	if err != nil {
		return st, err
	}
	st.Orders = orders
	st.Payments.Provider = "dev"
	if e.wechat() {
		st.Payments.Provider = "wechat"
		if st.Payments.RefundsOpen, err = e.RefundsOpen(ctx); err != nil {
			return st, fmt.Errorf("%w: cannot count refunds: %w", ErrUnavailable, err)
		}
	}
	e.riskMu.Lock()
	for k, v := range e.riskDenials {
		st.RiskDenials[k] = v
	}
	e.riskMu.Unlock()
	return st, nil
}
