package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/surge-retail/surge/inventory"
)

const (
	// reservationScanPage is the page size of the replay scan of paid reservations.
	reservationScanPage = 512
	// paymentIDLenMax bounds a payment id, in bytes.
	paymentIDLenMax = 128
	// userOrdersMax bounds UserOrders' answer.
	userOrdersMax = 100
	// saleKeepAfterEnd is how long a finished sale or deal stays in memory
	// after it ended; later it is read from the records when needed.
	saleKeepAfterEnd = time.Hour
	// userOrdersDefault is UserOrders' limit when none is given.
	userOrdersDefault = 20
)

func validReservationID(id string) bool {
	return len(id) > 0 && len(id) <= inventory.IDLenMax && strings.IndexByte(id, ':') > 0 && !strings.ContainsAny(id, "/ ")
}

func validPaymentID(id string) bool {
	if len(id) == 0 || len(id) > paymentIDLenMax {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// ownReservation reads a reservation and checks that userID owns it.
func (e *Engine) ownReservation(ctx context.Context, userID, resID string) (inventory.Reservation, error) {
	if !validReservationID(resID) {
		return inventory.Reservation{}, fmt.Errorf("%w: reservation %q", ErrNotFound, resID)
	}
	r, err := e.store.Reservation(ctx, resID)
	if err != nil {
		return r, storeErr(err)
	}
	if r.User != userID {
		return r, fmt.Errorf("%w: reservation %q", ErrForbidden, resID)
	}
	return r, nil
}

// Reservation returns the caller's reservation; order_id is set once its
// order is written.
func (e *Engine) Reservation(ctx context.Context, userID, resID string) (Reservation, error) {
	r, err := e.ownReservation(ctx, userID, resID)
	if err != nil {
		return Reservation{}, err
	}
	v, _, err := e.view(r)
	if err != nil {
		return Reservation{}, err
	}
	if r.State == inventory.StatePaid || r.Refunded {
		if pid, ok, err := e.rec.Get(ctx, keyPayPrefix+r.ID); err == nil && ok {
			v.PaymentID = string(pid)
		}
		oid := OrderID(r.ID)
		if e.writer.Written(oid) {
			v.OrderID = oid
		} else if _, ok, err := e.orders.Get(ctx, oid); err == nil && ok {
			v.OrderID = oid
		}
	}
	return v, nil
}

// Pay confirms the caller's held reservation with paymentID and submits
// its order. Paying again with the same payment id returns the paid
// reservation; with another one, or after release or expiry, ErrBadState.
func (e *Engine) Pay(ctx context.Context, userID, resID, paymentID string) (Reservation, error) {
	if e.closed.Load() {
		return Reservation{}, errEngineClosed
	}
	if !validPaymentID(paymentID) {
		return Reservation{}, fmt.Errorf("%w: payment_id must be 1 to %d printable characters", ErrInvalid, paymentIDLenMax)
	}
	r, err := e.ownReservation(ctx, userID, resID)
	if err != nil {
		return Reservation{}, err
	}
	if r.State == inventory.StateReleased {
		return Reservation{}, fmt.Errorf("%w: reservation %q is released", ErrBadState, resID)
	}
	m, err := recordOf(r)
	if err != nil {
		return Reservation{}, err
	}
	payKey := keyPayPrefix + r.ID
	wrote, err := e.rec.PutIfAbsent(ctx, payKey, []byte(paymentID))
	if err != nil {
		return Reservation{}, fmt.Errorf("%w: cannot record payment: %w", ErrUnavailable, err)
	}
	if !wrote {
		prev, ok, err := e.rec.Get(ctx, payKey)
		if err != nil {
			return Reservation{}, fmt.Errorf("%w: cannot read payment: %w", ErrUnavailable, err)
		}
		if ok && string(prev) != paymentID {
			return Reservation{}, fmt.Errorf("%w: reservation %q is paid by another payment", ErrBadState, resID)
		}
	}
	if m.Kind == kindGroup {
		t, _, err := e.readTeam(ctx, m.DealID, m.TeamID)
		if err == nil && t.State == teamFailed {
			return Reservation{}, fmt.Errorf("%w: team %q failed", ErrBadState, m.TeamID)
		}
	}
	cr, err := e.store.Confirm(ctx, r.ID)
	if err != nil {
		if errors.Is(err, inventory.ErrBadState) {
			e.afterRelease(ctx, r, false) // it expired just now
		}
		return Reservation{}, storeErr(err)
	}
	v := e.viewRecord(cr, &m)
	o := e.orderFromView(v, paymentID)
	if m.Kind == kindGroup {
		if err := e.payGroup(ctx, cr, m, o); err != nil {
			return Reservation{}, err
		}
	} else if !e.writer.Submit(o) {
		// The writer's queue is full: write this one ourselves rather than
		// drop it (the caller waits, which is the back-pressure we want).
		if err := e.orders.Upsert(ctx, []Order{o}); err != nil {
			return Reservation{}, fmt.Errorf("%w: cannot write order: %w", ErrUnavailable, err)
		}
	}
	v.PaymentID = paymentID
	v.OrderID = o.OrderID
	return v, nil
}

// payGroup writes a group member's order before marking them paid on the
// team, so that a team failing concurrently (on any node) always finds the
// order written and marks it refunded after.
func (e *Engine) payGroup(ctx context.Context, r inventory.Reservation, m resRecord, o Order) error {
	if err := e.orders.Upsert(ctx, []Order{o}); err != nil {
		return fmt.Errorf("%w: cannot write order: %w", ErrUnavailable, err)
	}
	t, err := e.teamMemberPaid(ctx, m.DealID, m.TeamID, r.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if t.State == teamFailed {
		if err := e.refundMember(ctx, r.ID); err != nil {
			return err
		}
		return fmt.Errorf("%w: team %q failed; the payment is refunded", ErrBadState, m.TeamID)
	}
	return nil
}

// Cancel releases the caller's held reservation.
func (e *Engine) Cancel(ctx context.Context, userID, resID string) (Reservation, error) {
	if e.closed.Load() {
		return Reservation{}, errEngineClosed
	}
	if _, err := e.ownReservation(ctx, userID, resID); err != nil {
		return Reservation{}, err
	}
	r, err := e.store.Release(ctx, resID)
	if err != nil {
		return Reservation{}, storeErr(err)
	}
	e.afterRelease(ctx, r, false)
	v, _, err := e.view(r)
	return v, err
}

// afterRelease updates memory after units went back to a pool: the sale's
// remaining count, the team's seat, the store page.
func (e *Engine) afterRelease(ctx context.Context, r inventory.Reservation, settling bool) {
	m, err := recordOf(r)
	if err != nil {
		return
	}
	var qty int64
	for _, l := range r.Lines {
		qty += l.Quantity
	}
	// Look the sale up through the records too: a sale dropped from memory
	// after it ended must still drain what comes back (law 2).
	switch m.Kind {
	case kindFlash:
		if s := e.flash(ctx, m.SaleID); s != nil {
			s.remaining.Add(qty)
			s.finished.Store(false)
		}
	case kindGroup:
		if d := e.group(ctx, m.DealID); d != nil {
			d.remaining.Add(qty)
			d.finished.Store(false)
		}
		if !settling {
			e.teamMemberGone(ctx, m.DealID, m.TeamID, r.ID)
		}
	}
	e.pages.markDirty(m.StoreID)
}

func (e *Engine) orderFromView(v Reservation, paymentID string) Order {
	return Order{
		OrderID:       OrderID(v.ReservationID),
		ReservationID: v.ReservationID,
		UserID:        v.UserID,
		StoreID:       v.StoreID,
		GuideID:       v.GuideID,
		Kind:          v.Kind,
		SaleID:        v.SaleID,
		DealID:        v.DealID,
		TeamID:        v.TeamID,
		Items:         v.Items,
		Amount:        v.Amount,
		PaymentID:     paymentID,
		State:         "created",
		CreatedAt:     v.CreatedAt,
	}
}

// orderOf builds the order of a paid (or refunded) reservation, with its
// recorded payment id.
func (e *Engine) orderOf(ctx context.Context, r inventory.Reservation) (Order, error) {
	v, _, err := e.view(r)
	if err != nil {
		return Order{}, err
	}
	pid, _, err := e.rec.Get(ctx, keyPayPrefix+r.ID)
	if err != nil {
		return Order{}, fmt.Errorf("%w: cannot read payment: %w", ErrUnavailable, err)
	}
	return e.orderFromView(v, string(pid)), nil
}

// Order returns the caller's order.
func (e *Engine) Order(ctx context.Context, userID, orderID string) (Order, error) {
	if orderID == "" || len(orderID) > inventory.IDLenMax+8 {
		return Order{}, fmt.Errorf("%w: order %q", ErrNotFound, orderID)
	}
	o, ok, err := e.orders.Get(ctx, orderID)
	if err != nil {
		return Order{}, fmt.Errorf("%w: cannot read order: %w", ErrUnavailable, err)
	}
	if !ok {
		return Order{}, fmt.Errorf("%w: order %q", ErrNotFound, orderID)
	}
	if o.UserID != userID {
		return Order{}, fmt.Errorf("%w: order %q", ErrForbidden, orderID)
	}
	return o, nil
}

// UserOrders returns the caller's orders, newest first.
func (e *Engine) UserOrders(ctx context.Context, userID string, limit int) ([]Order, error) {
	if limit <= 0 {
		limit = userOrdersDefault
	}
	limit = min(limit, userOrdersMax)
	os, err := e.orders.ByUser(ctx, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read orders: %w", ErrUnavailable, err)
	}
	return os, nil
}

// replayOrders writes the order of every paid reservation that the order
// store lacks (law 4: the process may have died between confirm and the
// order write).
func (e *Engine) replayOrders(ctx context.Context) error {
	cursor := ""
	for {
		rs, next, err := e.store.Scan(ctx, inventory.StatePaid, cursor, reservationScanPage)
		if err != nil {
			return fmt.Errorf("cannot scan paid reservations: %w", storeErr(err))
		}
		var missing []Order
		for _, r := range rs {
			if _, ok, err := e.orders.Get(ctx, OrderID(r.ID)); err != nil {
				return fmt.Errorf("%w: cannot read order: %w", ErrUnavailable, err)
			} else if ok {
				continue
			}
			o, err := e.orderOf(ctx, r)
			if err != nil {
				log.Printf("engine: cannot replay order of %s: %v", r.ID, err)
				continue
			}
			missing = append(missing, o)
		}
		if len(missing) > 0 {
			if err := e.orders.Upsert(ctx, missing); err != nil {
				return fmt.Errorf("%w: cannot write replayed orders: %w", ErrUnavailable, err)
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// ---- records sync ----

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
				return nil
			}
			var rec saleRec
			if err := json.Unmarshal(val, &rec); err != nil {
				log.Printf("engine: cannot decode %s: %v", key, err)
				return nil
			}
			if rec.Flash != nil && e.now().Sub(rec.Flash.EndsAt) > saleKeepAfterEnd ||
				rec.Group != nil && e.now().Sub(rec.Group.EndsAt) > saleKeepAfterEnd {
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
	p, err := e.store.Pool(ctx, pool)
	return err != nil || p.Available > 0 || p.Held > 0
}

func (e *Engine) installRec(ctx context.Context, rec saleRec) {
	switch {
	case rec.Flash != nil:
		if s := e.installFlash(*rec.Flash); s != nil {
			e.syncFlashRemaining(ctx, s)
			e.pages.markDirty(s.spec.StoreID)
		}
	case rec.Group != nil:
		if d := e.installGroup(*rec.Group); d != nil {
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

// ---- sweeper ----

func (e *Engine) sweepLoop() {
	defer e.stopped.Done()
	t := time.NewTicker(e.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), max(e.opts.SweepInterval*10, 10*time.Second))
			if err := e.Sweep(ctx); err != nil {
				log.Printf("engine: sweep: %v", err)
			}
			cancel()
		}
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
	}
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

// sweepSales resyncs remaining counts from the pools and drains ended sales
// and deals back into their listing pools (law 2).
func (e *Engine) sweepSales(ctx context.Context, now time.Time) {
	type item struct {
		id, store, sku, pool string
		start, end           time.Time
		remaining            interface{ Store(int64) }
		finished             interface {
			Load() bool
			Store(bool)
		}
		status string
		deal   bool
	}
	var items []item
	e.dealsMu.RLock()
	for _, s := range e.sales {
		items = append(items, item{s.spec.SaleID, s.spec.StoreID, s.spec.SKUID, s.pool, s.spec.StartsAt, s.spec.EndsAt, &s.remaining, &s.finished, "", false})
	}
	for _, d := range e.deals {
		items = append(items, item{d.spec.DealID, d.spec.StoreID, d.spec.SKUID, d.pool, d.spec.StartsAt, d.spec.EndsAt, &d.remaining, &d.finished, "", true})
	}
	e.dealsMu.RUnlock()
	for _, it := range items {
		if it.finished.Load() {
			if now.Sub(it.end) > saleKeepAfterEnd {
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
		st := windowStatus(now, it.start, it.end)
		if st == statusEnded {
			if _, err := e.store.Drain(ctx, it.pool, listingPool(it.store, it.sku)); err != nil {
				log.Printf("engine: cannot drain %s: %v", it.pool, err)
				continue
			}
		}
		p, err := e.store.Pool(ctx, it.pool)
		if err != nil {
			continue
		}
		it.remaining.Store(p.Available)
		if st == statusEnded && p.Available == 0 && p.Held == 0 {
			it.finished.Store(true)
			// A release racing with the read above clears finished before
			// we set it; look again so that its units are still drained.
			if p2, err := e.store.Pool(ctx, it.pool); err != nil || p2.Available > 0 || p2.Held > 0 {
				it.finished.Store(false)
			}
			e.pages.markDirty(it.store)
		}
		if e.pages.saleChanged(it.pool, st, stockState(p.Available, e.opts.StockLowMax)) {
			e.pages.markDirty(it.store)
		}
	}
}

// FlushOrders waits until every order submitted so far is written.
func (e *Engine) FlushOrders(ctx context.Context) error {
	return e.writer.Flush(ctx)
}
