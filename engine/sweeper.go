package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// saleKeepAfterEnd is how long a finished sale or deal stays in memory
// after it ended; later it is read from the records when needed.
const saleKeepAfterEnd = time.Hour

func (e *Engine) sweepLoop() { e.every(nil, 10*time.Second, "sweep", e.Sweep) }

// every runs fn every SweepInterval (and when kick says so; nil: never)
// until the engine stops, each run bounded by ten intervals and at least
// timeoutMin, logging its error as what.
func (e *Engine) every(kick <-chan struct{}, timeoutMin time.Duration, what string, fn func(context.Context) error) {
	defer e.stopped.Done()
	t := time.NewTicker(e.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		case <-kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(e.opts.SweepInterval*10, timeoutMin))
		if err := fn(ctx); err != nil {
			e.opts.Logger.Error("engine: "+what, "err", err)
		}
		cancel()
	}
}

// Sweep runs one sweep now: it releases held reservations past their
// deadline (law 2), picks up what other nodes recorded, drains ended sales
// and deals back to their listings, decides team deadlines and refreshes
// store pages whose stock state changed. The background sweeper calls it
// every SweepInterval; tests call it directly with a fake clock.
func (e *Engine) Sweep(ctx context.Context) error {
	e.sweepMu.Lock()
	defer e.sweepMu.Unlock()
	now := e.now()
	var errs []error
	// Has the shared state been lost under us (dataloss.go)? One read.
	if err := e.checkEpoch(ctx); err != nil {
		errs = append(errs, err)
	}
	for range expireRoundsMax {
		rs, err := e.store.Expire(ctx, now, expireBatchMax)
		if err != nil {
			errs = append(errs, fmt.Errorf("cannot expire: %w", err))
			break
		}
		for _, r := range rs {
			e.afterRelease(ctx, r, false)
		}
		if len(rs) < expireBatchMax {
			break
		}
	}
	if err := e.syncRecords(ctx, false); err != nil {
		errs = append(errs, err)
	}
	if err := e.decideTeams(ctx, now); err != nil {
		errs = append(errs, err)
	}
	e.sweepSales(ctx, now)
	e.sweepDraws(ctx, now)
	e.pruneRisk(now)
	e.pruneAccounts(now)
	e.drawLotteries(now)
	e.refreshDirtyPages(ctx)
	// Expired idempotency records are removed once a minute: they are only
	// a bound on storage, and the scan is not free.
	if now.Sub(e.answersSweptAt) >= answersSweepEvery {
		e.answersSweptAt = now
		if _, err := e.idem.Sweep(ctx); err != nil {
			errs = append(errs, fmt.Errorf("cannot sweep idempotency records: %w", err))
		}
	}
	if e.opts.ReservationRetention > 0 && now.Sub(e.purgedAt) >= purgeEvery {
		e.purgedAt = now
		if err := e.purgeReleased(ctx, now.Add(-e.opts.ReservationRetention)); err != nil {
			errs = append(errs, err)
		}
		if _, err := e.purgeRefunds(ctx, now.Add(-e.opts.ReservationRetention)); err != nil {
			errs = append(errs, err)
		}
	}
	e.returnMemory(now)
	return errors.Join(errs...)
}

// purgeReleased forgets released reservations whose hold deadline is at or
// before `before`, in bounded rounds.
func (e *Engine) purgeReleased(ctx context.Context, before time.Time) error {
	for range expireRoundsMax {
		n, err := e.store.Purge(ctx, before, expireBatchMax)
		if err != nil {
			return fmt.Errorf("cannot purge released reservations: %w", err)
		}
		if n < expireBatchMax {
			return nil
		}
	}
	return nil
}

// closeFinished forgets what a finished sale or deal (ended, nothing held,
// nothing left to drain) keeps per user (DESIGN.md, "Memory, budgeted
// like time"): its pools are closed, which drops their per-user counts
// (a closed pool reserves nothing, so no limit can be passed: law 6), and
// its registration's cached decisions and its lottery's queue go. Every
// node's sweeper does it; closing twice is a no-op.
func (e *Engine) closeFinished(ctx context.Context, pool string, buckets []string, reg *regState, lot *lottery) error {
	pools := buckets
	if len(pools) == 0 {
		pools = []string{pool}
	}
	for _, p := range pools {
		if err := e.store.ClosePool(ctx, p); err != nil {
			return fmt.Errorf("cannot close pool %s: %w", p, err)
		}
	}
	if reg != nil {
		reg.dropCached()
	}
	if lot != nil {
		lot.dropIdle()
	}
	e.memoryDropped()
	return nil
}

// sweepSales resyncs remaining counts from the pools and drains ended sales
// and deals back into their listing pools (law 2).
func (e *Engine) sweepSales(ctx context.Context, now time.Time) {
	type item struct {
		id, store, sku, pool string
		buckets              []string
		start, end           time.Time
		remaining            interface{ Store(int64) }
		finished             interface {
			Load() bool
			Store(bool)
		}
		status string
		deal   bool
		ctl    *saleCtl
		reg    *regState
		lot    *lottery
	}
	var items []item
	e.dealsMu.RLock()
	for _, s := range e.sales {
		items = append(items, item{s.spec.SaleID, s.spec.StoreID, s.spec.SKUID, s.pool, s.pools, s.spec.StartsAt, s.spec.EndsAt, &s.remaining, &s.finished, "", false, &s.ctl, s.reg, s.lot})
	}
	for _, d := range e.deals {
		items = append(items, item{d.spec.DealID, d.spec.StoreID, d.spec.SKUID, d.pool, nil, d.spec.StartsAt, d.spec.EndsAt, &d.remaining, &d.finished, "", true, &d.ctl, nil, nil})
	}
	e.dealsMu.RUnlock()
	for _, it := range items {
		if it.finished.Load() {
			if now.Sub(it.ctl.endAt(it.end)) > saleKeepAfterEnd {
				e.dealsMu.Lock()
				if it.deal {
					delete(e.deals, it.id)
				} else {
					delete(e.sales, it.id)
				}
				e.dealsMu.Unlock()
			}
			continue
		}
		// Ended by its window or early by an operator: drained alike.
		st := it.ctl.status(now, it.start, it.end)
		// Transfers in flight between buckets are delivered, ended sales'
		// buckets gathered into bucket 0, running ones rebalanced.
		if err := e.settleBuckets(ctx, it.buckets, st == statusEnded); err != nil {
			e.logger(ctx).Error("engine: cannot settle a sale's buckets", "pool", it.pool, "err", err)
			continue
		}
		if st == statusEnded {
			if _, err := e.store.Drain(ctx, it.pool, listingPool(it.store, it.sku)); err != nil {
				e.logger(ctx).Error("engine: cannot drain a pool", "pool", it.pool, "err", err)
				continue
			}
		}
		p, err := e.saleTotals(ctx, it.pool, it.buckets)
		if err != nil {
			continue
		}
		it.remaining.Store(p.Available)
		if st == statusEnded && p.Available == 0 && p.Held == 0 {
			it.finished.Store(true)
			// A release racing with the read above clears finished before
			// we set it; look again so that its units are still drained.
			if p2, err := e.saleTotals(ctx, it.pool, it.buckets); err != nil || p2.Available > 0 || p2.Held > 0 {
				it.finished.Store(false)
			} else if err := e.closeFinished(ctx, it.pool, it.buckets, it.reg, it.lot); err != nil {
				e.logger(ctx).Error("engine: cannot close a finished sale's pools", "pool", it.pool, "err", err)
				it.finished.Store(false) // the next sweep tries again
			}
			e.pages.markDirty(it.store)
		}
		if e.pages.saleChanged(it.pool, st, stockState(p.Available, e.opts.StockLowMax)) {
			e.pages.markDirty(it.store)
		}
	}
}
