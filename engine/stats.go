package engine

import (
	"context"
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
		Missing:     []Missing{},
		DataLost:    e.lost.Load(),
		Circuits:    e.Circuits(),
	}
	// A pool that cannot be read (gone with lost data, or its backend
	// down) is named in Missing, never "not found" and never the end of
	// the answer: the operator keeps sight of the rest.
	for _, r := range e.knownPools() {
		p, err := e.saleTotals(ctx, r.pool, r.buckets)
		if err != nil {
			st.Missing = append(st.Missing, Missing{Kind: r.kind, ID: r.id, Why: poolWhy(err)})
			continue
		}
		into := st.Sales
		if r.kind == "deal" {
			into = st.Deals
		}
		into[r.id] = poolStats(p.Supplied, p.Available, p.Held, p.Sold, p.Short)
	}
	cat := e.catalog.Load()
	for _, sid := range cat.storeOrder {
		for _, l := range cat.listings[sid] {
			p, err := e.store.Pool(ctx, listingPool(sid, l.SKUID))
			if err != nil {
				st.Missing = append(st.Missing, Missing{Kind: "listing", ID: sid + "/" + l.SKUID, Why: poolWhy(err)})
				continue
			}
			st.Listings[sid+"/"+l.SKUID] = poolStats(p.Supplied, p.Available, p.Held, p.Sold, p.Short)
		}
	}
	orders, err := e.orderStats(ctx)
	if err != nil {
		st.Missing = append(st.Missing, Missing{Kind: "orders", Why: "cannot count orders: " + err.Error()})
	}
	st.Orders = orders
	st.Payments.Provider = "dev"
	if e.wechat() {
		st.Payments.Provider = "wechat"
		if st.Payments.RefundsOpen, err = e.RefundsOpen(ctx); err != nil {
			st.Missing = append(st.Missing, Missing{Kind: "refunds", Why: "cannot count refunds: " + err.Error()})
		}
	}
	e.riskMu.Lock()
	for k, v := range e.riskDenials {
		st.RiskDenials[k] = v
	}
	e.riskMu.Unlock()
	return st, nil
}
