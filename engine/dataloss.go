package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// Data loss: the records carry an epoch (keyEpoch), written when they are
// first used. If it vanishes or changes under a running node (Redis
// restarted without persistence, a failover to a replica that missed
// writes), the shared state this node knew of is gone: the node stops
// taking reservations (ErrDataLost), says why in Ready, Stats and
// /metrics, and resumes only when an operator calls Recover. Recover
// writes a recovered epoch ("r/..."), which the other nodes adopt when
// they see it, so one admin call resumes them all.

// recoveredEpochPrefix starts an epoch written by Recover.
const recoveredEpochPrefix = "r/"

// ErrDataLost refuses reservations after the records lost their data. It
// is an ErrUnavailable (503 / 50300).
var ErrDataLost = fmt.Errorf("%w: the records lost their data", ErrUnavailable)

// DataLoss says when this node saw that the records lost their data.
type DataLoss struct {
	// At is when this node noticed.
	At time.Time `json:"at"`
	// Reason says what was seen.
	Reason string `json:"reason"`
}

// DataLost returns the data loss this node saw and has not recovered
// from, or nil.
func (e *Engine) DataLost() *DataLoss { return e.lost.Load() }

// reservingAllowed refuses new reservations (flash, team, checkout) while
// the records' data loss is not recovered.
func (e *Engine) reservingAllowed() error {
	l := e.lost.Load()
	if l == nil {
		return nil
	}
	return fmt.Errorf("%w at %s: reservations are stopped until an operator recovers (POST /admin/v1/recover)",
		ErrDataLost, l.At.Format(time.RFC3339))
}

// checkEpoch compares the records' epoch with this node's: a vanished or
// changed epoch marks the data lost (unless it is a recovered epoch, which
// this node adopts). A records error is returned as is: a backend that
// cannot be asked has not lost anything we know of.
func (e *Engine) checkEpoch(ctx context.Context) error {
	e.epochMu.Lock()
	mine := e.epoch
	e.epochMu.Unlock()
	ep, ok, err := e.rec.Get(ctx, keyEpoch)
	if err != nil {
		return fmt.Errorf("%w: cannot read the records: %w", ErrUnavailable, err)
	}
	e.epochMu.Lock()
	defer e.epochMu.Unlock()
	if e.epoch != mine {
		// Recover (or another check) moved the epoch while we read: what
		// we read may be older than it.
		return nil
	}
	switch {
	case ok && string(ep) == e.epoch:
		return nil
	case ok && strings.HasPrefix(string(ep), recoveredEpochPrefix) &&
		strings.TrimPrefix(string(ep), recoveredEpochPrefix) > strings.TrimPrefix(e.epoch, recoveredEpochPrefix):
		// An operator recovered through another node, after this node
		// opened the records (tokens start with their time): an older
		// recovered epoch is a replica that missed writes, a loss.
		e.opts.Logger.Warn("engine: adopting the records' recovered epoch", "epoch", string(ep))
		e.epoch = string(ep)
		e.lost.Store(nil)
		return nil
	}
	reason := "the records' epoch changed since this node opened them (a failover to a replica that missed writes?)"
	if !ok {
		reason = "the records' epoch is gone (Redis restarted without persistence?)"
	}
	if e.lost.Load() == nil {
		e.lost.Store(&DataLoss{At: e.now().UTC(), Reason: reason})
		e.opts.Logger.Error("engine: the records lost their data; reservations stop until an operator recovers", "reason", reason)
	}
	return nil
}

// poolGone is called when a reserve found its pool gone: if that is
// because the records lost their data, the reserve is refused as such
// (ErrDataLost) rather than "not found".
func (e *Engine) poolGone(ctx context.Context) error {
	if err := e.checkEpoch(ctx); err != nil {
		return err
	}
	return e.reservingAllowed()
}

// Recovery is Recover's answer.
type Recovery struct {
	// Recovered is false when there was nothing to recover.
	Recovered bool `json:"recovered"`
	// Lost is the data loss recovered from.
	Lost *DataLoss `json:"lost,omitempty"`
	// Epoch is the records' epoch now.
	Epoch string `json:"epoch"`
	// CatalogReloaded says the catalog this node held was written back
	// and its listing pools that were missing seeded from on_hand.
	CatalogReloaded bool `json:"catalog_reloaded"`
	// Missing names what this node knew of that is still missing: sales
	// and deals whose pools are gone (with their holds, sales and
	// per-user counts). They are not re-created: re-create them
	// (POST /admin/v1/flash-sales, /group-buys) under new ids.
	Missing []Missing `json:"missing"`
	// Next says what the operator does next.
	Next string `json:"next"`
}

// Missing names a part of the state that could not be read or is gone.
type Missing struct {
	Kind string `json:"kind"` // "sale", "deal", "listing", "orders", "refunds"
	ID   string `json:"id"`
	Why  string `json:"why"`
}

// Recover is the operator's explicit resume after a data loss: it writes
// a recovered epoch (adopted by every node at its next sweep), writes the
// catalog this node holds back into the records (seeding the listing
// pools that are missing from their on_hand, which the POS feed then
// corrects), and names the sales and deals whose pools are gone. With
// nothing lost it changes nothing and says so.
func (e *Engine) Recover(ctx context.Context) (Recovery, error) {
	if e.closed.Load() {
		return Recovery{}, errEngineClosed
	}
	if err := e.checkEpoch(ctx); err != nil {
		return Recovery{}, err
	}
	lost := e.lost.Load()
	if lost == nil {
		e.epochMu.Lock()
		ep := e.epoch
		e.epochMu.Unlock()
		return Recovery{Epoch: ep, Missing: []Missing{}, Next: "nothing was lost; nothing to do"}, nil
	}
	e.epochMu.Lock()
	old := e.epoch
	fresh := recoveredEpochPrefix + newToken(e.now())
	cur, ok, err := e.rec.Get(ctx, keyEpoch)
	if err == nil {
		var prev []byte
		if ok {
			prev = cur
		}
		var swapped bool
		swapped, err = e.rec.CompareAndSwap(ctx, keyEpoch, prev, []byte(fresh))
		if err == nil && !swapped {
			err = fmt.Errorf("%w: the records' epoch moved meanwhile; try again", ErrUnavailable)
		}
	}
	if err != nil {
		e.epochMu.Unlock()
		return Recovery{}, fmt.Errorf("%w: cannot write the records' epoch: %w", ErrUnavailable, err)
	}
	e.epoch = fresh
	e.lost.Store(nil)
	e.epochMu.Unlock()
	e.opts.Logger.Warn("engine: recovered from a data loss", "old_epoch", old, "epoch", fresh, "lost_at", lost.At)

	rec := Recovery{Recovered: true, Lost: lost, Epoch: fresh, Missing: []Missing{}}
	if snap := e.catalog.Load(); snap != nil && len(snap.doc.Listings) > 0 {
		if _, err := e.LoadCatalog(ctx, snap.doc); err != nil {
			rec.Missing = append(rec.Missing, Missing{Kind: "catalog", Why: "cannot write the catalog back: " + err.Error()})
		} else {
			rec.CatalogReloaded = true
		}
	}
	for _, p := range e.knownPools() {
		if _, err := e.store.Pool(ctx, p.pool); err != nil {
			rec.Missing = append(rec.Missing, Missing{Kind: p.kind, ID: p.id, Why: poolWhy(err)})
		}
	}
	rec.Next = "reservations resumed. Reload the catalog (PUT /admin/v1/catalog) if it changed since this node loaded it, " +
		"let the POS feed resend stock levels, and re-create the sales and deals listed in missing under new ids; " +
		"holds and payments made before the loss are gone from Redis (orders already written to MySQL are kept)"
	return rec, nil
}

// poolRef is a sale's or deal's pool that this node knows.
// buckets are a bucketed sale's pools (buckets.go), nil otherwise.
type poolRef struct {
	kind, id, pool string
	buckets        []string
}

// knownPools lists the pools of the sales and deals in memory.
func (e *Engine) knownPools() []poolRef {
	e.dealsMu.RLock()
	defer e.dealsMu.RUnlock()
	refs := make([]poolRef, 0, len(e.sales)+len(e.deals))
	for id, s := range e.sales {
		refs = append(refs, poolRef{"sale", id, s.pool, s.pools})
	}
	for id, d := range e.deals {
		refs = append(refs, poolRef{"deal", id, d.pool, nil})
	}
	return refs
}

// poolWhy says in plain words why a pool could not be read.
func poolWhy(err error) string {
	switch {
	case errors.Is(err, inventory.ErrPoolNotFound):
		return "pool gone from the inventory"
	case errors.Is(err, ErrCircuitOpen):
		return "inventory backend down (circuit open)"
	default:
		return "cannot read pool: " + err.Error()
	}
}

// reconcileLoss adds to a live reconciliation what only this node's
// memory can tell: a data loss not recovered yet, and the pools of the
// sales and deals it knows that are gone (the records that named them may
// be gone too, so the reconciliation over the stores cannot see them).
func (e *Engine) reconcileLoss(ctx context.Context, rec *Reconciliation) {
	add := func(d Discrepancy) {
		rec.OK = false
		rec.DiscrepanciesTotal++
		if len(rec.Discrepancies) < reconcileDiscrepanciesMax {
			rec.Discrepancies = append(rec.Discrepancies, d)
		}
	}
	if l := e.lost.Load(); l != nil {
		add(Discrepancy{Kind: DiscDataLost, Found: l.At.Format(time.RFC3339),
			Msg: "Redis lost data at " + l.At.Format(time.RFC3339) + ": " + l.Reason + "; POST /admin/v1/recover resumes reservations"})
	}
	listed := make(map[string]bool, len(rec.Discrepancies))
	for _, d := range rec.Discrepancies {
		if d.Kind == DiscPoolMissing {
			listed[d.Pool] = true
		}
	}
	for _, p := range e.knownPools() {
		if listed[p.pool] {
			continue
		}
		if _, err := e.store.Pool(ctx, p.pool); errors.Is(err, inventory.ErrPoolNotFound) {
			add(Discrepancy{Kind: DiscPoolMissing, Pool: p.pool, Expected: "pool", Found: "none",
				Msg: "no such pool (" + p.kind + " " + p.id + ", known to this node): its holds, sales and per-user counts are gone"})
		}
	}
}
