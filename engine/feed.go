package engine

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/surge-retail/surge/inventory"
)

// feedLinesMax bounds the lines of one feed call.
const feedLinesMax = 10_000

// ApplyFeed applies POS / ERP on-hand levels (law 7), one result per line,
// in order: "applied", "stale" (seq not newer: nothing changed) or "error"
// (unknown store or sku: 40400; negative on_hand: 40000). A page is rebuilt
// when a listing's stock state changes.
func (e *Engine) ApplyFeed(ctx context.Context, updates []FeedUpdate) ([]FeedResult, error) {
	if e.closed.Load() {
		return nil, errEngineClosed
	}
	if len(updates) > feedLinesMax {
		return nil, fmt.Errorf("%w: more than %d feed lines", ErrInvalid, feedLinesMax)
	}
	cat := e.catalog.Load()
	out := make([]FeedResult, len(updates))
	// Stores whose page shows a stock state that changed: rebuilt once
	// each, after every line is applied.
	refresh := map[string]struct{}{}
	defer func() {
		for id := range refresh {
			e.refreshStore(ctx, id)
		}
	}()
	for i, u := range updates {
		r := FeedResult{StoreID: u.StoreID, SKUID: u.SKUID, Seq: u.Seq, OnHand: u.OnHand}
		fail := func(code int, msg string) {
			r.Status, r.Code, r.Msg = "error", code, msg
		}
		switch {
		case u.OnHand < 0 || u.OnHand > onHandMax:
			fail(40000, "on_hand out of range")
		case u.Seq == 0 || u.Seq > math.MaxInt64:
			// Bounded far below the top, so that no line can take a
			// SKU's seq where no later one could follow and freeze
			// its feed for good.
			fail(40000, "seq out of range (1 to 2^63-1)")
		default:
			if _, ok := cat.listing[u.StoreID][u.SKUID]; !ok {
				fail(40400, "unknown store or sku")
				break
			}
			res, err := e.store.SetOnHand(ctx, listingPool(u.StoreID, u.SKUID), u.OnHand, u.Seq+seedSeq)
			switch {
			case errors.Is(err, inventory.ErrPoolNotFound):
				fail(40400, "unknown store or sku")
			case errors.Is(err, inventory.ErrInvalid):
				fail(40000, err.Error())
			case err != nil:
				// The backend failed: stop here; the caller retries the
				// whole feed (lines already applied answer "stale").
				return nil, storeErr(err)
			default:
				r.Status = "stale"
				if res.Applied {
					r.Status = "applied"
				}
				r.Available, r.Short = res.Pool.Available, res.Pool.Short
				if !res.Applied {
					r.OnHand = res.Pool.OnHand
				}
				if res.Applied && e.stateChanged(u.StoreID, u.SKUID, res.Pool.Available) {
					refresh[u.StoreID] = struct{}{}
				}
			}
		}
		out[i] = r
	}
	return out, nil
}
