package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/surge-retail/surge/inventory"
)

const (
	// flashHoldSecondsMax bounds a sale's hold_seconds.
	flashHoldSecondsMax = int64(HoldMax / time.Second)
	// flashPendingStale is how old a half-created sale or deal record must
	// be before a sync treats its creator as dead and finishes or undoes it.
	flashPendingStale = 30 * time.Second
)

// Status of a sale or deal.
const (
	statusUpcoming = "upcoming"
	statusActive   = "active"
	statusEnded    = "ended"
)

func windowStatus(now, start, end time.Time) string {
	switch {
	case now.Before(start):
		return statusUpcoming
	case now.Before(end):
		return statusActive
	}
	return statusEnded
}

// saleRec is a sale or deal as recorded.
type saleRec struct {
	Flash *FlashSaleSpec `json:"flash,omitempty"`
	Group *GroupDealSpec `json:"group,omitempty"`
	// State is "pending" (created, stock not yet moved) or "ready".
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	// Ctl is the operator's control (salectl.go): "" (none), "paused" or
	// "ended" (EndedAtMs: when); CtlVer grows with every change.
	Ctl       string `json:"ctl,omitempty"`
	CtlVer    int64  `json:"ctl_ver,omitempty"`
	EndedAtMs int64  `json:"ended_at_ms,omitempty"`
	// Buckets are a flash sale's bucket pools, bucket 0 (pool()) first;
	// none for a sale of one bucket (buckets.go).
	Buckets []string `json:"buckets,omitempty"`
}

// flashState is a flash sale in memory.
type flashState struct {
	spec FlashSaleSpec
	pool string
	// pools are the sale's bucket pools, pools[0] == pool; nil for one
	// bucket (buckets.go).
	pools []string
	// remaining is the sale pool's available units as last known: lowered
	// on each reservation, raised on releases, reset from the pool by the
	// sweeper. Sold out is answered from it without a backend call.
	remaining atomic.Int64
	// finished is set once the sale ended and its pool is empty (nothing
	// held, nothing available); a release clears it.
	finished atomic.Bool
	// inflight counts the reserve calls past the sale's admission gate.
	inflight atomic.Int64
	// ctl is the operator's pause or early end (salectl.go).
	ctl saleCtl
	// reg is the sale's registration (registration.go); nil without.
	reg *regState
	// lot is the sale's lottery (lottery.go); nil without a window.
	lot *lottery
}

func (s *flashState) hold(def time.Duration) time.Duration {
	if s.spec.HoldSeconds > 0 {
		return time.Duration(s.spec.HoldSeconds) * time.Second
	}
	return def
}

func (e *Engine) validateWindow(start, end time.Time) error {
	if start.IsZero() || end.IsZero() || !start.Before(end) {
		return fmt.Errorf("%w: starts_at must be before ends_at", ErrInvalid)
	}
	if !e.now().Before(end) {
		return fmt.Errorf("%w: ends_at is in the past", ErrInvalid)
	}
	return nil
}

// CreateFlashSale validates spec, records the sale and moves its quantity
// out of the store listing's available stock into the sale's pool
// (ErrSoldOut when the store has fewer).
func (e *Engine) CreateFlashSale(ctx context.Context, spec FlashSaleSpec) (FlashSale, error) {
	if e.closed.Load() {
		return FlashSale{}, errEngineClosed
	}
	if !keyPart(spec.SaleID) {
		return FlashSale{}, fmt.Errorf("%w: invalid sale_id %q", ErrInvalid, spec.SaleID)
	}
	cat := e.catalog.Load()
	if _, ok := cat.stores[spec.StoreID]; !ok {
		return FlashSale{}, fmt.Errorf("%w: unknown store %q", ErrNotFound, spec.StoreID)
	}
	if _, ok := cat.listingPrice(spec.StoreID, spec.SKUID); !ok {
		return FlashSale{}, fmt.Errorf("%w: store %q does not list sku %q", ErrNotFound, spec.StoreID, spec.SKUID)
	}
	switch {
	case spec.Price < 0 || spec.Price > priceMax:
		return FlashSale{}, fmt.Errorf("%w: price out of range", ErrInvalid)
	case spec.Quantity <= 0 || spec.Quantity > onHandMax:
		return FlashSale{}, fmt.Errorf("%w: quantity out of range", ErrInvalid)
	case spec.PerUserLimit < 0 || spec.PerUserLimit > inventory.QuantityMaxDefault:
		return FlashSale{}, fmt.Errorf("%w: per_user_limit out of range", ErrInvalid)
	case spec.HoldSeconds < 0 || spec.HoldSeconds > flashHoldSecondsMax:
		return FlashSale{}, fmt.Errorf("%w: hold_seconds out of range", ErrInvalid)
	case spec.MinAccountAgeSeconds < 0 || spec.MinAccountAgeSeconds > MinAccountAgeSecondsMax:
		return FlashSale{}, fmt.Errorf("%w: min_account_age_seconds out of range", ErrInvalid)
	}
	if err := validBuckets(spec.Buckets); err != nil {
		return FlashSale{}, err
	}
	if spec.Buckets == 1 {
		spec.Buckets = 0 // one bucket is the default: the same sale
	}
	if err := e.validateWindow(spec.StartsAt, spec.EndsAt); err != nil {
		return FlashSale{}, err
	}
	spec.StartsAt = spec.StartsAt.UTC().Truncate(time.Millisecond)
	spec.EndsAt = spec.EndsAt.UTC().Truncate(time.Millisecond)
	if err := e.checkRegistrationSpec(&spec); err != nil {
		return FlashSale{}, err
	}
	if err := e.resolveLottery(&spec); err != nil {
		return FlashSale{}, err
	}
	s, err := e.lookupFlash(ctx, spec.SaleID)
	if err != nil {
		return FlashSale{}, err
	}
	if s != nil {
		if spec.DrawSeed == "" && spec.RegistrationStartsAt.Equal(s.spec.RegistrationStartsAt) {
			spec.DrawSeed = s.spec.DrawSeed // the random seed made at creation
		}
		if sameFlashSpec(s.spec, spec) {
			return e.flashView(s), nil
		}
		return FlashSale{}, fmt.Errorf("%w: sale %q exists", ErrBadState, spec.SaleID)
	}
	if err := makeLotterySeed(&spec); err != nil {
		return FlashSale{}, err
	}
	if e.salesFull() {
		return FlashSale{}, fmt.Errorf("%w: too many sales", ErrUnavailable)
	}
	makeDrawSeed(&spec)
	pools, err := e.bucketPools(ctx, spec)
	if err != nil {
		return FlashSale{}, err
	}
	rec := saleRec{Flash: &spec, Buckets: pools}
	key, from, to := keySalePrefix+spec.SaleID, listingPool(spec.StoreID, spec.SKUID), salePool(spec.StoreID, spec.SaleID)
	if err := e.carve(ctx, key, &rec, from, to, spec.Quantity); err != nil {
		return FlashSale{}, err
	}
	s = e.installFlash(spec, pools)
	if s == nil {
		e.uncarve(ctx, key, from, to)
		return FlashSale{}, fmt.Errorf("%w: too many sales", ErrUnavailable)
	}
	s.remaining.Store(spec.Quantity)
	if len(pools) > 1 {
		e.spreadBuckets(ctx, pools, spec.Quantity)
	}
	e.pages.markDirty(spec.StoreID)
	e.refreshStore(ctx, spec.StoreID)
	return e.flashView(s), nil
}

// carve records a sale or deal as pending, creates its pool, moves qty
// into it from the listing pool and marks the record ready. On ErrSoldOut
// the record is removed again.
func (e *Engine) carve(ctx context.Context, key string, rec *saleRec, from, to string, qty int64) error {
	rec.State = "pending"
	rec.CreatedAt = e.now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("cannot encode sale record: %w", err)
	}
	ok, err := e.rec.PutIfAbsent(ctx, key, b)
	if err != nil {
		return fmt.Errorf("%w: cannot record sale: %w", ErrUnavailable, err)
	}
	if !ok {
		return fmt.Errorf("%w: %s exists", ErrBadState, key)
	}
	undo := func() { _ = e.rec.Delete(context.WithoutCancel(ctx), key) }
	if err := e.store.CreatePool(ctx, to, 0); err != nil && !errors.Is(err, inventory.ErrPoolExists) {
		undo()
		return fmt.Errorf("cannot create pool %s: %w", to, storeErr(err))
	}
	// A sale's other buckets exist before its stock moves, so a ready
	// sale (or a pending one found with its stock) has all of them.
	for _, p := range rec.Buckets[min(1, len(rec.Buckets)):] {
		if err := e.store.CreatePool(ctx, p, 0); err != nil && !errors.Is(err, inventory.ErrPoolExists) {
			undo()
			return fmt.Errorf("cannot create pool %s: %w", p, storeErr(err))
		}
	}
	if err := e.store.Move(ctx, from, to, qty); err != nil {
		undo()
		return fmt.Errorf("cannot move %d units into %s: %w", qty, to, storeErr(err))
	}
	rec.State = "ready"
	nb, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("cannot encode sale record: %w", err)
	}
	if err := e.rec.Put(ctx, key, nb); err != nil {
		// The stock moved; a later sync finds the pending record and the
		// full pool and marks it ready.
		return fmt.Errorf("%w: cannot record sale: %w", ErrUnavailable, err)
	}
	return nil
}

// salesFull reports whether memory holds as many sales and deals as it may.
// Checked before carving, so that a refused sale leaves no stock behind.
func (e *Engine) salesFull() bool {
	e.dealsMu.RLock()
	defer e.dealsMu.RUnlock()
	return len(e.sales)+len(e.deals) >= e.salesMax
}

// uncarve gives a carved pool's stock back to its listing and removes the
// record, for a sale or deal that filled up memory between salesFull and
// its install (law 2). If the stock cannot be moved back the record stays,
// and the sweeper drains the pool when the sale ends.
func (e *Engine) uncarve(ctx context.Context, key, from, to string) {
	ctx = context.WithoutCancel(ctx)
	if _, err := e.store.Drain(ctx, to, from); err != nil {
		e.logger(ctx).Error("engine: cannot give back the stock of a sale", "key", key, "err", err)
		return
	}
	_ = e.rec.Delete(ctx, key)
}

// installFlash adds a sale to memory (nil when over salesInMemoryMax);
// pools are its buckets (saleRec.Buckets).
func (e *Engine) installFlash(spec FlashSaleSpec, pools []string) *flashState {
	e.dealsMu.Lock()
	defer e.dealsMu.Unlock()
	if s, ok := e.sales[spec.SaleID]; ok {
		return s
	}
	if len(e.sales)+len(e.deals) >= e.salesMax {
		return nil
	}
	s := &flashState{spec: spec, pool: salePool(spec.StoreID, spec.SaleID),
		lot: newLottery(spec, e.opts.LotteryQueueMax, e.opts.LotteryServeMax)}
	if !spec.RegistrationStartsAt.IsZero() {
		s.reg = newRegState(2 * e.opts.RegistrantsPerSaleMax)
	}
	if len(pools) > 1 {
		s.pools = pools
	}
	s.remaining.Store(spec.Quantity)
	e.sales[spec.SaleID] = s
	return s
}

// flash finds a sale in memory, falling back to the records (a sale made
// on another node moments ago).
func (e *Engine) flash(ctx context.Context, saleID string) *flashState {
	s, _ := e.lookupFlash(ctx, saleID)
	return s
}

// lookupFlash is flash that tells "no such sale" (nil, nil) from "the
// records could not be asked" (an error wrapping ErrUnavailable): a
// backend that cannot be asked never yields "not found" (API.md).
func (e *Engine) lookupFlash(ctx context.Context, saleID string) (*flashState, error) {
	e.dealsMu.RLock()
	s := e.sales[saleID]
	e.dealsMu.RUnlock()
	if s != nil || !keyPart(saleID) {
		return s, nil
	}
	b, ok, err := e.rec.Get(ctx, keySalePrefix+saleID)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read sale %q: %w", ErrUnavailable, saleID, err)
	}
	if !ok {
		return nil, nil
	}
	var rec saleRec
	if json.Unmarshal(b, &rec) != nil || rec.Flash == nil || rec.State != "ready" {
		return nil, nil
	}
	s = e.installFlash(*rec.Flash, rec.Buckets)
	if s != nil {
		s.ctl.apply(&rec)
		e.syncFlashRemaining(ctx, s)
	}
	return s, nil
}

func (e *Engine) syncFlashRemaining(ctx context.Context, s *flashState) (inventory.Pool, bool) {
	p, err := e.saleTotals(ctx, s.pool, s.pools)
	if err != nil {
		return p, false
	}
	s.remaining.Store(p.Available)
	return p, true
}

func (e *Engine) flashView(s *flashState) FlashSale {
	now := e.now()
	cat := e.catalog.Load()
	v := FlashSale{
		SaleID:       s.spec.SaleID,
		StoreID:      s.spec.StoreID,
		SKUID:        s.spec.SKUID,
		Price:        s.spec.Price,
		Quantity:     s.spec.Quantity,
		PerUserLimit: s.spec.PerUserLimit,
		HoldSeconds:  int64(s.hold(e.opts.FlashHoldDefault) / time.Second),
		Remaining:    max(s.remaining.Load(), 0),
		Status:       s.ctl.status(now, s.spec.StartsAt, s.spec.EndsAt),
		StartsAt:     s.spec.StartsAt,
		StartsAtMs:   s.spec.StartsAt.UnixMilli(),
		EndsAt:       s.spec.EndsAt,
		EndsAtMs:     s.spec.EndsAt.UnixMilli(),
		ServerTimeMs: now.UnixMilli(),

		MinAccountAgeSeconds: s.spec.MinAccountAgeSeconds,
	}
	v.SaleRegistration = e.registrationView(s, now)
	if p, ok := cat.products[s.spec.SKUID]; ok {
		v.Title = p.Title
		v.ListPrice = p.Price
	}
	if lp, ok := cat.listingPrice(s.spec.StoreID, s.spec.SKUID); ok {
		v.ListPrice = lp
	}
	if v.Status == statusEnded {
		v.Remaining = 0
	}
	v.LotteryWindowMs, v.LotteryClosesAtMs, v.LotterySeed = lotteryView(s.spec, now)
	return v
}

// FlashSale returns a sale with its (approximate) remaining units.
func (e *Engine) FlashSale(ctx context.Context, saleID string) (FlashSale, error) {
	s, err := e.lookupFlash(ctx, saleID)
	if err != nil {
		return FlashSale{}, err
	}
	if s == nil {
		return FlashSale{}, fmt.Errorf("%w: sale %q", ErrNotFound, saleID)
	}
	return e.flashView(s), nil
}

// SaleRemaining is a cheap in-memory read of a sale's remaining units
// (approximate) and whether memory holds the sale.
func (e *Engine) SaleRemaining(saleID string) (int64, bool) {
	e.dealsMu.RLock()
	s := e.sales[saleID]
	e.dealsMu.RUnlock()
	if s == nil {
		return 0, false
	}
	return max(s.remaining.Load(), 0), true
}

// riskReasonsMax bounds the distinct denial reasons counted.
const riskReasonsMax = 64

// ReserveFlash holds quantity units of a running sale for the caller: the
// whole flash reservation, from the sale's lookup to the counter and back,
// in one call. The cheap checks come first and write nothing: an unknown
// sale is ErrNotFound; a paused or ended-early sale ErrNotActive (from
// memory, marked ErrShed); with nothing left, an ended or upcoming sale is
// ErrNotActive and a running one ErrSoldOut, answered from memory (marked
// ErrShed, with or without a key); a sale whose admission gate is full is
// ErrThrottled (ErrShed); then the quantity, the guide, the risk hook and
// the sale's window. Under an Idempotency-Key (a.Once) the reservation's id
// is derived from the key, so the one reserve call both takes the units
// and keeps what a retry finds; a retry gets the first answer again, and a
// refused retry looks for it (keyedRefusal) (law 5). During a sale's
// lottery (lottery.go) it waits for the caller's turn.
func (e *Engine) ReserveFlash(ctx context.Context, a Attempt, saleID string, quantity int64, guideID string) (Reservation, error) {
	r, t, err := e.ReserveFlashOrEnter(ctx, a, saleID, quantity, guideID)
	if t != nil {
		return t.Reserve(ctx)
	}
	return r, err
}

// ReserveFlashOrEnter is ReserveFlash, except that during a sale's lottery
// it does not wait: it enters the caller (after the checks, the risk hook
// included) and returns a ticket, whose Reserve waits for the caller's
// turn and reserves. A full lottery queue is ErrLotteryFull (with
// ErrThrottled, ErrShed).
func (e *Engine) ReserveFlashOrEnter(ctx context.Context, a Attempt, saleID string, quantity int64, guideID string) (Reservation, *LotteryTicket, error) {
	if e.closed.Load() {
		return Reservation{}, nil, errEngineClosed
	}
	if err := e.reservingAllowed(); err != nil {
		return Reservation{}, nil, err
	}
	s, err := e.lookupFlash(ctx, saleID)
	if err != nil {
		return Reservation{}, nil, err
	}
	if s == nil {
		return Reservation{}, nil, fmt.Errorf("%w: sale %q", ErrNotFound, saleID)
	}
	if s.ctl.state.Load() != ctlNone {
		r, err := e.keyedRefusal(ctx, a, s.homeTag(a.UserID), s.ctl.refusal())
		return r, nil, err
	}
	if s.remaining.Load() <= 0 {
		r, err := e.keyedRefusal(ctx, a, s.homeTag(a.UserID), shedEmpty(s.ctl.status(e.now(), s.spec.StartsAt, s.spec.EndsAt)))
		return r, nil, err
	}
	risked := false
	if s.lot != nil && !s.lot.over.Load() {
		t, checked, err := e.enterLottery(ctx, a, s, quantity, guideID)
		if err != nil {
			r, err := e.keyedRefusal(ctx, a, s.homeTag(a.UserID), err)
			return r, nil, err
		}
		if t != nil {
			return Reservation{}, t, nil
		}
		risked = checked
	}
	r, err := e.reserveFlashChecked(ctx, a, s, quantity, guideID, !risked)
	return r, nil, err
}

// reserveFlashChecked is ReserveFlash past the sale's lookup: the gate,
// the checks (the risk hook unless it was asked already) and the reserve.
func (e *Engine) reserveFlashChecked(ctx context.Context, a Attempt, s *flashState, quantity int64, guideID string, risk bool) (Reservation, error) {
	if f := e.opts.SaleAdmitFactor; f > 0 {
		if !s.admit(int64(f)) {
			return Reservation{}, errShedGate
		}
		defer s.inflight.Add(-1)
	}
	if err := e.checkFlash(ctx, a, s, quantity, guideID, risk); err != nil {
		return e.keyedRefusal(ctx, a, s.homeTag(a.UserID), err)
	}
	// A pause or end waits for the reserves past this check (salectl.go).
	if !s.ctl.enter() {
		return e.keyedRefusal(ctx, a, s.homeTag(a.UserID), s.ctl.refusal())
	}
	defer s.ctl.leave()
	return e.reserveFlash(ctx, a, s, quantity, guideID)
}

// shedError is a refusal decided from memory: errors.Is matches ErrShed and
// its sentinel. The values are made once, so a shed allocates nothing.
type shedError struct {
	kind error
	msg  string
}

func (e *shedError) Error() string { return e.msg }
func (e *shedError) Is(target error) bool {
	return target == ErrShed || target == e.kind
}

var (
	errShedSoldOut  = &shedError{ErrSoldOut, ErrSoldOut.Error()}
	errShedUpcoming = &shedError{ErrNotActive, ErrNotActive.Error() + ": sale is " + statusUpcoming}
	errShedEnded    = &shedError{ErrNotActive, ErrNotActive.Error() + ": sale is " + statusEnded}
	errShedGate     = &shedError{ErrThrottled, "engine: too many buyers right now, retry shortly"}
)

// shedEmpty is the refusal of a sale with nothing left, by its status.
func shedEmpty(status string) error {
	switch status {
	case statusUpcoming:
		return errShedUpcoming
	case statusEnded:
		return errShedEnded
	}
	return errShedSoldOut
}

// admit takes a slot of the sale's admission gate: at most factor ×
// remaining reserve calls of a sale run at once. The caller gives the
// slot back with s.inflight.Add(-1).
func (s *flashState) admit(factor int64) bool {
	remaining := s.remaining.Load()
	limit := remaining * factor
	if remaining > (1<<62)/factor {
		limit = 1 << 62
	}
	if s.inflight.Add(1) > limit {
		s.inflight.Add(-1)
		return false
	}
	return true
}

// checkFlash is a reserve's checks before anything is written: the
// quantity, the caller and guide, the risk hook (when risk), and the
// sale's window.
func (e *Engine) checkFlash(ctx context.Context, a Attempt, s *flashState, quantity int64, guideID string, risk bool) error {
	if quantity <= 0 || quantity > QuantityMax {
		return fmt.Errorf("%w: quantity %d", ErrInvalid, quantity)
	}
	if err := e.checkUserGuide(a.UserID, guideID, s.spec.StoreID); err != nil {
		return err
	}
	a.Route = "flash_reserve"
	if risk {
		if err := e.checkRisk(ctx, RiskInput{Attempt: a, SaleID: s.spec.SaleID, StoreID: s.spec.StoreID,
			MinAccountAge: time.Duration(s.spec.MinAccountAgeSeconds) * time.Second}); err != nil {
			return err
		}
	}
	if st := s.ctl.status(e.now(), s.spec.StartsAt, s.spec.EndsAt); st != statusActive {
		return fmt.Errorf("%w: sale %q is %s", ErrNotActive, s.spec.SaleID, st)
	}
	if s.reg != nil {
		return e.checkRegistered(ctx, s, a.UserID)
	}
	return nil
}

// reserveFlash is ReserveFlash past its checks: the reserve itself.
func (e *Engine) reserveFlash(ctx context.Context, a Attempt, s *flashState, quantity int64, guideID string) (Reservation, error) {
	saleID := s.spec.SaleID
	pool, tag := s.homePool(a.UserID)
	// The record's one item and the request's one line share one
	// allocation (both escape: the line into the store).
	one := &struct {
		items [1]recordItem
		lines [1]inventory.Line
	}{
		items: [1]recordItem{{SKUID: s.spec.SKUID, Quantity: quantity, UnitPrice: s.spec.Price}},
		lines: [1]inventory.Line{{Pool: pool, Quantity: quantity, Limit: s.spec.PerUserLimit}},
	}
	m := resRecord{Kind: kindFlash, SaleID: saleID, StoreID: s.spec.StoreID, GuideID: guideID,
		Items: one.items[:], Amount: quantity * s.spec.Price}
	id, err := e.reserveIDIn(a, &m, tag)
	if err != nil {
		return Reservation{}, err
	}
	hold := s.hold(e.opts.FlashHoldDefault)
	req := inventory.ReserveRequest{
		ID:    id,
		User:  a.UserID,
		Lines: one.lines[:],
		TTL:   hold,
		Meta:  m.encode(),
	}
	r, err := e.store.Reserve(ctx, req)
	if errors.Is(err, inventory.ErrSoldOut) && len(s.pools) > 1 {
		r, err = e.reserveFromOthers(ctx, s, req)
	}
	if err != nil {
		if errors.Is(err, inventory.ErrSoldOut) && len(s.pools) > 1 {
			// Units may be on their way between buckets: count them.
			e.syncFlashRemaining(ctx, s)
		} else if errors.Is(err, inventory.ErrSoldOut) && quantity == 1 {
			if s.remaining.Swap(0) > 0 {
				e.pages.markDirty(s.spec.StoreID)
			}
		}
		return Reservation{}, e.reserveErr(err, m.Keyed)
	}
	if r.Existed {
		return e.keyedAnswer(r, a.Once)
	}
	if left := s.remaining.Add(-quantity); left <= e.opts.StockLowMax {
		e.pages.markDirty(s.spec.StoreID)
	}
	return e.viewRecord(r, &m), nil
}
