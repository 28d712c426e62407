package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/surge-retail/surge/inventory"
)

// paymentIDLenMax bounds a payment id, in bytes.
const paymentIDLenMax = 128

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
		if pid, ok, err := e.paymentOf(ctx, r.ID); err == nil && ok {
			v.PaymentID = pid
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
// its order: the dev payment provider, where the buyer's session pays.
// With WeChat Pay configured it is ErrForbidden: only a verified
// notification pays (PaymentNotified). Paying again with the same payment
// id returns the paid reservation; with another one, or after release or
// expiry, ErrBadState.
func (e *Engine) Pay(ctx context.Context, userID, resID, paymentID string) (Reservation, error) {
	if e.closed.Load() {
		return Reservation{}, errEngineClosed
	}
	if e.wechat() {
		return Reservation{}, fmt.Errorf("%w: payments come from WeChat Pay (prepay, then its notification)", ErrForbidden)
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
	return e.pay(ctx, r, m, paymentID)
}

// pay confirms the held reservation r (whose record is m) with paymentID
// and hands its order on (the outbox, the writer, or for a group member
// the order store before the team).
func (e *Engine) pay(ctx context.Context, r inventory.Reservation, m resRecord, paymentID string) (Reservation, error) {
	resID := r.ID
	wrote, err := e.tagged.PutIfAbsentTagged(ctx, inventory.Tag(r.ID), payRecordKey(r.ID), []byte(paymentID))
	if err != nil {
		return Reservation{}, fmt.Errorf("%w: cannot record payment: %w", ErrUnavailable, err)
	}
	if !wrote {
		prev, ok, err := e.paymentOf(ctx, r.ID)
		if err != nil {
			return Reservation{}, err
		}
		if ok && prev != paymentID {
			return Reservation{}, fmt.Errorf("%w: reservation %q is paid by another payment", ErrBadState, resID)
		}
	}
	if m.Kind == kindGroup {
		t, _, err := e.readTeam(ctx, m.DealID, m.TeamID)
		if err == nil && t.State == teamFailed {
			return Reservation{}, fmt.Errorf("%w: team %q failed", ErrBadState, m.TeamID)
		}
	}
	var cr inventory.Reservation
	if e.outbox != nil && m.Kind != kindGroup {
		// The order goes to the outbox in the same atomic step as the
		// confirmation (outbox.go); a group member's is written below,
		// before the team learns of the payment.
		entry, jerr := json.Marshal(e.orderFromView(e.viewRecord(r, &m), paymentID))
		if jerr != nil {
			return Reservation{}, fmt.Errorf("cannot encode the order of %s: %w", r.ID, jerr)
		}
		cr, err = e.outbox.ConfirmWith(ctx, r.ID, entry)
	} else {
		cr, err = e.store.Confirm(ctx, r.ID)
	}
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
	} else if e.outbox == nil && !e.writer.Submit(o) {
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
	e.queueClose(r.ID)
}

// payRecordKey is the tagged record (in the reservation's store's slot)
// of the payment id of a reservation.
func payRecordKey(resID string) string { return "pay/" + resID }

// paymentOf returns the payment id recorded for a reservation: its tagged
// record, or where an earlier version kept it (keyPayPrefix).
func (e *Engine) paymentOf(ctx context.Context, resID string) (string, bool, error) {
	pid, ok, err := e.tagged.GetTagged(ctx, inventory.Tag(resID), payRecordKey(resID))
	if err == nil && !ok {
		pid, ok, err = e.rec.Get(ctx, keyPayPrefix+resID)
	}
	if err != nil {
		return "", false, fmt.Errorf("%w: cannot read payment: %w", ErrUnavailable, err)
	}
	return string(pid), ok, nil
}
