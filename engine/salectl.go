package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Sale controls: an operator pauses, resumes or ends a flash sale or a
// group deal early. The control lives in the sale's record (saleRec.Ctl,
// with a version that only grows), so every node applies it: the node
// that acts at once, the others at their next sync (a sweep), and a node
// that looks the sale up from the records on first use.
//
// What a pause guarantees: once PauseSale (ControlSale) returns on a node,
// no reservation of the sale succeeds on that node any more — the control
// is set under the sale's gate, which waits for the reserve calls already
// past their checks to finish. Other nodes refuse from their next sweep
// (SweepInterval). Holds made before may still be paid until their
// deadline. A paused sale keeps its units in its pool (a resume sells
// them); an ended one gives them back to the listing as its holds resolve
// (law 2, the sweeper's drain).

// Kinds of sale, as the admin routes name them.
const (
	SaleKindFlash = "flash"
	SaleKindGroup = "group"
)

// Sale control actions.
const (
	SaleActionPause  = "pause"
	SaleActionResume = "resume"
	SaleActionEnd    = "end"
)

// statusPaused is the status of a paused sale or deal (its window not over).
const statusPaused = "paused"

// Controls as recorded in saleRec.Ctl.
const (
	ctlRecPaused = "paused"
	ctlRecEnded  = "ended"
)

// Controls in memory (saleCtl.state).
const (
	ctlNone uint32 = iota
	ctlPaused
	ctlEnded
)

const (
	// ctlCASRetriesMax bounds the compare-and-swap retries of one control
	// change; each retry follows a change by someone else.
	ctlCASRetriesMax = 16
	// salesListedMax bounds the sales (or deals) one admin list answers.
	salesListedMax = 1000
)

// saleCtl is the control of a sale or deal in memory.
type saleCtl struct {
	// state is ctlNone, ctlPaused or ctlEnded: read without a lock by the
	// cheap checks of a reserve.
	state atomic.Uint32
	// endedAtMs is when the sale was ended early (0: not ended early).
	endedAtMs atomic.Int64
	// ver is the version of the recorded control last applied (guarded by
	// gate's write lock): an older record read by a racing sync is not
	// applied over a newer one.
	ver int64
	// gate is read-locked by a reserve from its last control check until
	// its reserve call returns, and write-locked to change the control:
	// a control change waits for the reserves already past the check.
	gate sync.RWMutex
}

// enter is a reserve's last control check; on true the caller holds the
// gate until leave.
func (c *saleCtl) enter() bool {
	c.gate.RLock()
	if c.state.Load() != ctlNone {
		c.gate.RUnlock()
		return false
	}
	return true
}

func (c *saleCtl) leave() { c.gate.RUnlock() }

// apply installs the control recorded in rec unless a newer one is in
// place.
func (c *saleCtl) apply(rec *saleRec) {
	c.gate.Lock()
	defer c.gate.Unlock()
	if rec.CtlVer < c.ver {
		return
	}
	c.ver = rec.CtlVer
	c.endedAtMs.Store(rec.EndedAtMs)
	switch rec.Ctl {
	case ctlRecPaused:
		c.state.Store(ctlPaused)
	case ctlRecEnded:
		c.state.Store(ctlEnded)
	default:
		c.state.Store(ctlNone)
	}
}

// status is the sale's status at now: its window's, unless paused or
// ended early.
func (c *saleCtl) status(now, start, end time.Time) string {
	st := windowStatus(now, start, end)
	switch c.state.Load() {
	case ctlEnded:
		return statusEnded
	case ctlPaused:
		if st != statusEnded {
			return statusPaused
		}
	}
	return st
}

// endAt is when the sale ended or ends: its window's end, or earlier when
// ended early.
func (c *saleCtl) endAt(end time.Time) time.Time {
	if ms := c.endedAtMs.Load(); ms > 0 && ms < end.UnixMilli() {
		return time.UnixMilli(ms).UTC()
	}
	return end
}

// refusal is the shed answer of a sale refused by its control.
func (c *saleCtl) refusal() error {
	if c.state.Load() == ctlEnded {
		return errShedEnded
	}
	return errShedPaused
}

var errShedPaused = &shedError{ErrNotActive, ErrNotActive.Error() + ": sale is " + statusPaused}

// recStatus is the status of a recorded sale or deal at now.
func (r *saleRec) status(now time.Time) string {
	start, end := r.window()
	st := windowStatus(now, start, end)
	switch r.Ctl {
	case ctlRecEnded:
		return statusEnded
	case ctlRecPaused:
		if st != statusEnded {
			return statusPaused
		}
	}
	return st
}

func (r *saleRec) window() (start, end time.Time) {
	switch {
	case r.Flash != nil:
		return r.Flash.StartsAt, r.Flash.EndsAt
	case r.Group != nil:
		return r.Group.StartsAt, r.Group.EndsAt
	}
	return
}

// endAt is when the recorded sale ended or ends.
func (r *saleRec) endAt() time.Time {
	_, end := r.window()
	if r.EndedAtMs > 0 && r.EndedAtMs < end.UnixMilli() {
		return time.UnixMilli(r.EndedAtMs).UTC()
	}
	return end
}

func (r *saleRec) pool() (id, store, sku, pool string) {
	switch {
	case r.Flash != nil:
		return r.Flash.SaleID, r.Flash.StoreID, r.Flash.SKUID, salePool(r.Flash.StoreID, r.Flash.SaleID)
	case r.Group != nil:
		return r.Group.DealID, r.Group.StoreID, r.Group.SKUID, dealPool(r.Group.StoreID, r.Group.DealID)
	}
	return
}

// hasCtl reports, without decoding, whether a recorded sale carries a
// control (a sync decodes only those of the sales it knows).
func hasCtl(val []byte) bool { return bytes.Contains(val, []byte(`"ctl_ver"`)) }

// SaleAdmin is a sale or deal as the admin routes show it: its status
// (upcoming, active, paused, ended), its window and its pool's counts
// (Supplied == Held + Sold + Remaining).
type SaleAdmin struct {
	Kind    string `json:"kind"` // "flash" or "group"
	SaleID  string `json:"sale_id,omitempty"`
	DealID  string `json:"deal_id,omitempty"`
	StoreID string `json:"store_id"`
	SKUID   string `json:"sku_id"`
	// Title and StoreName are the product's title and the store's name in
	// the catalog now ("" when the catalog no longer has them).
	Title      string    `json:"title"`
	StoreName  string    `json:"store_name"`
	Price      int64     `json:"price"`
	Quantity   int64     `json:"quantity"`
	Status     string    `json:"status"`
	StartsAt   time.Time `json:"starts_at"`
	StartsAtMs int64     `json:"starts_at_ms"`
	EndsAt     time.Time `json:"ends_at"`
	EndsAtMs   int64     `json:"ends_at_ms"`
	// EndedAt is set when the sale was ended before its window closed.
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	EndedAtMs int64      `json:"ended_at_ms,omitempty"`
	Supplied  int64      `json:"supplied"`
	Held      int64      `json:"held"`
	Sold      int64      `json:"sold"`
	Remaining int64      `json:"remaining"`
	// The lottery window of a flash sale (lottery.go), as FlashSale.
	LotteryWindowMs   int64  `json:"lottery_window_ms,omitempty"`
	LotteryClosesAtMs int64  `json:"lottery_closes_at_ms,omitempty"`
	LotterySeed       string `json:"lottery_seed,omitempty"`
}

func saleKeyPrefix(kind string) (string, error) {
	switch kind {
	case SaleKindFlash:
		return keySalePrefix, nil
	case SaleKindGroup:
		return keyDealPrefix, nil
	}
	return "", fmt.Errorf("%w: kind %q", ErrInvalid, kind)
}

// readSaleRec reads a ready sale or deal record of kind; ok is false when
// there is none.
func (e *Engine) readSaleRec(ctx context.Context, kind, id string) (rec saleRec, raw []byte, ok bool, err error) {
	prefix, err := saleKeyPrefix(kind)
	if err != nil || !keyPart(id) {
		return rec, nil, false, err
	}
	raw, ok, err = e.rec.Get(ctx, prefix+id)
	if err != nil {
		return rec, nil, false, fmt.Errorf("%w: cannot read %s %q: %w", ErrUnavailable, kind, id, err)
	}
	if !ok || json.Unmarshal(raw, &rec) != nil || rec.State != "ready" ||
		kind == SaleKindFlash && rec.Flash == nil || kind == SaleKindGroup && rec.Group == nil {
		return rec, nil, false, nil
	}
	return rec, raw, true, nil
}

// saleAdmin is the admin view of a recorded sale or deal, with its pool.
func (e *Engine) saleAdmin(ctx context.Context, rec *saleRec) (SaleAdmin, error) {
	start, end := rec.window()
	v := SaleAdmin{
		Status:     rec.status(e.now()),
		StartsAt:   start,
		StartsAtMs: start.UnixMilli(),
		EndsAt:     end,
		EndsAtMs:   end.UnixMilli(),
	}
	switch {
	case rec.Flash != nil:
		v.Kind, v.SaleID, v.StoreID, v.SKUID, v.Price, v.Quantity = SaleKindFlash, rec.Flash.SaleID, rec.Flash.StoreID, rec.Flash.SKUID, rec.Flash.Price, rec.Flash.Quantity
		v.LotteryWindowMs, v.LotteryClosesAtMs, v.LotterySeed = lotteryView(*rec.Flash, e.now())
	case rec.Group != nil:
		v.Kind, v.DealID, v.StoreID, v.SKUID, v.Price, v.Quantity = SaleKindGroup, rec.Group.DealID, rec.Group.StoreID, rec.Group.SKUID, rec.Group.Price, rec.Group.Quantity
	}
	v.StoreName, v.Title = e.catalog.Load().names(v.StoreID, v.SKUID)
	if rec.EndedAtMs > 0 {
		t := time.UnixMilli(rec.EndedAtMs).UTC()
		v.EndedAt, v.EndedAtMs = &t, rec.EndedAtMs
	}
	_, _, _, pool := rec.pool()
	p, err := e.saleTotals(ctx, pool, rec.Buckets)
	if err != nil {
		return v, fmt.Errorf("%w: cannot read pool %s: %w", ErrUnavailable, pool, err)
	}
	v.Supplied, v.Held, v.Sold, v.Remaining = p.Supplied, p.Held, p.Sold, p.Available
	return v, nil
}

// AdminSale returns one sale (kind SaleKindFlash) or deal (SaleKindGroup)
// as the records have it, with its pool's counts; ErrNotFound when there
// is none.
func (e *Engine) AdminSale(ctx context.Context, kind, id string) (SaleAdmin, error) {
	rec, _, ok, err := e.readSaleRec(ctx, kind, id)
	if err != nil {
		return SaleAdmin{}, err
	}
	if !ok {
		return SaleAdmin{}, fmt.Errorf("%w: %s %q", ErrNotFound, kind, id)
	}
	return e.saleAdmin(ctx, &rec)
}

// AdminSales lists the sales or deals of the records in id order, at most
// salesListedMax of them; more reports that there were others.
func (e *Engine) AdminSales(ctx context.Context, kind string) (list []SaleAdmin, more bool, err error) {
	prefix, err := saleKeyPrefix(kind)
	if err != nil {
		return nil, false, err
	}
	var recs []saleRec
	errStop := errors.New("stop")
	err = e.rec.Scan(ctx, prefix, func(_ string, val []byte) error {
		var rec saleRec
		if json.Unmarshal(val, &rec) != nil || rec.State != "ready" {
			return nil
		}
		if len(recs) == salesListedMax {
			more = true
			return errStop
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, false, fmt.Errorf("%w: cannot list %s sales: %w", ErrUnavailable, kind, err)
	}
	list = make([]SaleAdmin, 0, len(recs))
	for i := range recs {
		v, err := e.saleAdmin(ctx, &recs[i])
		if err != nil {
			return nil, false, err
		}
		list = append(list, v)
	}
	return list, more, nil
}

// ControlSale pauses, resumes or ends a sale or deal (action
// SaleActionPause, SaleActionResume, SaleActionEnd) and returns it as
// AdminSale does. Repeating an action answers the sale as it is; pausing
// or resuming an ended sale is ErrBadState. The change is recorded first
// (compare-and-swap on the sale's record, so that concurrent operators on
// any nodes take turns), then applied on this node; an end moves the
// available units back to the listing at once.
func (e *Engine) ControlSale(ctx context.Context, kind, id, action string) (SaleAdmin, error) {
	if e.closed.Load() {
		return SaleAdmin{}, errEngineClosed
	}
	switch action {
	case SaleActionPause, SaleActionResume, SaleActionEnd:
	default:
		return SaleAdmin{}, fmt.Errorf("%w: action %q", ErrInvalid, action)
	}
	prefix, err := saleKeyPrefix(kind)
	if err != nil {
		return SaleAdmin{}, err
	}
	for range ctlCASRetriesMax {
		rec, raw, ok, err := e.readSaleRec(ctx, kind, id)
		if err != nil {
			return SaleAdmin{}, err
		}
		if !ok {
			return SaleAdmin{}, fmt.Errorf("%w: %s %q", ErrNotFound, kind, id)
		}
		now := e.now()
		st := rec.status(now)
		change := true
		switch action {
		case SaleActionPause:
			if st == statusEnded {
				return SaleAdmin{}, fmt.Errorf("%w: %s %q ended", ErrBadState, kind, id)
			}
			change = rec.Ctl != ctlRecPaused
			rec.Ctl = ctlRecPaused
		case SaleActionResume:
			if st == statusEnded {
				return SaleAdmin{}, fmt.Errorf("%w: %s %q ended", ErrBadState, kind, id)
			}
			change = rec.Ctl != ""
			rec.Ctl = ""
		case SaleActionEnd:
			change = st != statusEnded
			rec.Ctl = ctlRecEnded
			rec.EndedAtMs = now.UnixMilli()
		}
		if !change {
			e.applyCtl(ctx, &rec)
			return e.saleAdmin(ctx, &rec)
		}
		rec.CtlVer++
		nb, err := json.Marshal(&rec)
		if err != nil {
			return SaleAdmin{}, fmt.Errorf("cannot encode sale record: %w", err)
		}
		swapped, err := e.rec.CompareAndSwap(ctx, prefix+id, raw, nb)
		if err != nil {
			return SaleAdmin{}, fmt.Errorf("%w: cannot record the %s of %s %q: %w", ErrUnavailable, action, kind, id, err)
		}
		if !swapped {
			continue
		}
		e.logger(ctx).Info("engine: sale control", "kind", kind, "id", id, "action", action, "ctl_ver", rec.CtlVer)
		e.applyCtl(ctx, &rec)
		if action == SaleActionEnd {
			e.drainEnded(ctx, &rec)
		}
		return e.saleAdmin(ctx, &rec)
	}
	return SaleAdmin{}, fmt.Errorf("%w: %s %q too contended", ErrUnavailable, kind, id)
}

// applyCtl applies a recorded control to the sale or deal in memory
// (installing it from the records when memory does not hold it).
func (e *Engine) applyCtl(ctx context.Context, rec *saleRec) {
	var c *saleCtl
	var store string
	switch {
	case rec.Flash != nil:
		if s, _ := e.lookupFlash(ctx, rec.Flash.SaleID); s != nil {
			c, store = &s.ctl, s.spec.StoreID
		}
	case rec.Group != nil:
		if d, _ := e.lookupGroup(ctx, rec.Group.DealID); d != nil {
			c, store = &d.ctl, d.spec.StoreID
		}
	}
	if c == nil {
		return
	}
	before := c.state.Load()
	c.apply(rec)
	if c.state.Load() != before {
		e.pages.markDirty(store)
	}
}

// drainEnded moves what is available in an ended sale's pool back to its
// listing now, rather than at the next sweep; what is held comes back as
// the holds resolve, and the sweeper drains it (law 2).
func (e *Engine) drainEnded(ctx context.Context, rec *saleRec) {
	ctx = context.WithoutCancel(ctx)
	_, store, sku, pool := rec.pool()
	if err := e.settleBuckets(ctx, rec.Buckets, true); err != nil {
		e.logger(ctx).Warn("engine: cannot gather an ended sale's buckets now; the sweeper will", "pool", pool, "err", err)
	}
	if _, err := e.store.Drain(ctx, pool, listingPool(store, sku)); err != nil {
		e.logger(ctx).Warn("engine: cannot drain an ended sale now; the sweeper will", "pool", pool, "err", err)
		return
	}
	p, err := e.saleTotals(ctx, pool, rec.Buckets)
	if err != nil {
		return
	}
	switch {
	case rec.Flash != nil:
		if s := e.flash(ctx, rec.Flash.SaleID); s != nil {
			s.remaining.Store(p.Available)
		}
	case rec.Group != nil:
		if d := e.group(ctx, rec.Group.DealID); d != nil {
			d.remaining.Store(p.Available)
		}
	}
	e.pages.markDirty(store)
	e.refreshStore(ctx, store)
}

// syncCtl applies the control of a known sale's record read by a sync.
func (e *Engine) syncCtl(ctx context.Context, val []byte) {
	if !hasCtl(val) {
		return
	}
	var rec saleRec
	if err := json.Unmarshal(val, &rec); err != nil || rec.State != "ready" {
		return
	}
	e.applyCtl(ctx, &rec)
}
