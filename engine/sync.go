package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/surge-retail/surge/inventory"
)

// syncRecords loads what other nodes (or an earlier life of this process)
// recorded: the catalog, sales and deals. It also finishes or undoes sales
// and deals whose creator died half way. At open, a sale or deal that is
// long over is installed too while its pool still has units, so that the
// sweeper drains what a dead process left there (law 2).
func (e *Engine) syncRecords(ctx context.Context, atOpen bool) error {
	if err := e.syncCatalog(ctx); err != nil {
		return err
	}
	for _, prefix := range []string{keySalePrefix, keyDealPrefix} {
		var pending []string
		err := e.rec.Scan(ctx, prefix, func(key string, val []byte) error {
			id := strings.TrimPrefix(key, prefix)
			e.dealsMu.RLock()
			_, known := e.sales[id]
			if prefix == keyDealPrefix {
				_, known = e.deals[id]
			}
			e.dealsMu.RUnlock()
			if known {
				e.syncCtl(ctx, val) // a pause, resume or end from another node
				return nil
			}
			var rec saleRec
			if err := json.Unmarshal(val, &rec); err != nil {
				e.logger(ctx).Error("engine: cannot decode a record", "key", key, "err", err)
				return nil
			}
			if (rec.Flash != nil || rec.Group != nil) && e.now().Sub(rec.endAt()) > saleKeepAfterEnd {
				if !atOpen || rec.State != "ready" || !e.poolBusy(ctx, rec) {
					return nil // long over; looked up from the records on demand
				}
			}
			if rec.State != "ready" {
				if e.now().Sub(rec.CreatedAt) > flashPendingStale {
					pending = append(pending, key)
				}
				return nil
			}
			e.installRec(ctx, rec)
			return nil
		})
		if err != nil {
			return fmt.Errorf("%w: cannot scan %s: %w", ErrUnavailable, prefix, err)
		}
		for _, key := range pending {
			e.recoverPending(ctx, key)
		}
	}
	return nil
}

// poolBusy reports whether the pool of a recorded sale or deal has
// units available or held (or cannot be read).
func (e *Engine) poolBusy(ctx context.Context, rec saleRec) bool {
	var pool string
	switch {
	case rec.Flash != nil:
		pool = salePool(rec.Flash.StoreID, rec.Flash.SaleID)
	case rec.Group != nil:
		pool = dealPool(rec.Group.StoreID, rec.Group.DealID)
	default:
		return false
	}
	p, err := e.saleTotals(ctx, pool, rec.Buckets)
	return err != nil || p.Available > 0 || p.Held > 0
}

func (e *Engine) installRec(ctx context.Context, rec saleRec) {
	switch {
	case rec.Flash != nil:
		if s := e.installFlash(*rec.Flash, rec.Buckets); s != nil {
			s.ctl.apply(&rec)
			e.syncFlashRemaining(ctx, s)
			e.pages.markDirty(s.spec.StoreID)
		}
	case rec.Group != nil:
		if d := e.installGroup(*rec.Group); d != nil {
			d.ctl.apply(&rec)
			if p, err := e.store.Pool(ctx, d.pool); err == nil {
				d.remaining.Store(p.Available)
			}
			e.pages.markDirty(d.spec.StoreID)
		}
	}
}

// recoverPending finishes a sale or deal whose stock moved but whose record
// stayed pending, or removes one whose stock never moved.
func (e *Engine) recoverPending(ctx context.Context, key string) {
	b, ok, err := e.rec.Get(ctx, key)
	if err != nil || !ok {
		return
	}
	var rec saleRec
	if json.Unmarshal(b, &rec) != nil || rec.State == "ready" {
		return
	}
	var pool string
	var qty int64
	switch {
	case rec.Flash != nil:
		pool, qty = salePool(rec.Flash.StoreID, rec.Flash.SaleID), rec.Flash.Quantity
	case rec.Group != nil:
		pool, qty = dealPool(rec.Group.StoreID, rec.Group.DealID), rec.Group.Quantity
	default:
		return
	}
	p, err := e.store.Pool(ctx, pool)
	switch {
	case err == nil && p.Supplied >= qty:
		rec.State = "ready"
		nb, _ := json.Marshal(&rec)
		if ok, _ := e.rec.CompareAndSwap(ctx, key, b, nb); ok {
			e.installRec(ctx, rec)
		}
	case err == nil && p.Supplied == 0, errors.Is(err, inventory.ErrPoolNotFound):
		if b2, ok, _ := e.rec.Get(ctx, key); ok && string(b2) == string(b) {
			_ = e.rec.Delete(ctx, key)
		}
	}
}
