package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/inventory"
)

// Payments through WeChat Pay v3 (Options.WeChatPay; API.md, "Payments").
// Without it the dev provider is in force: the buyer's own session pays
// (Pay). With it, Pay is refused and only a verified notification pays:
//
//   - Prepay places a JSAPI order for a held reservation (out_trade_no
//     derived from its id, amount its amount, time_expire its deadline) and
//     keeps the prepay_id with it, so asking again gives the same one.
//   - PaymentNotified takes a verified, decrypted TRANSACTION.SUCCESS and
//     pays the reservation exactly once, however often WeChat retries;
//     a payment for a reservation that can no longer be paid (released,
//     expired, its team failed) becomes a refund.
//   - A refund is a record written before the notification is answered,
//     then requested by SettlePayments (idempotent by out_refund_no) until
//     WeChat accepts it, and followed until it succeeded (by the refund
//     notification or by asking). Its order shows refund_pending, then
//     refunded. A process that dies anywhere in between leaves the record,
//     and the next SettlePayments of any node carries on.
//   - A hold released unpaid closes its WeChat Pay order (best effort: a
//     payment that still comes is refunded).
//
// Records. On the path of every buyer, in the reservation's store's slot
// (records.Tagged): "pp/<reservation>" the prepay, "pay/<reservation>"
// the payment id. The reservation id travels with the WeChat Pay order as
// its attach, so a notification needs no lookup to find it. Refunds are
// rare and listed by the payments loop, so they are plain records:
// e/refund/<reservation> an open refund, e/refunded/<reservation> a
// finished one, e/refundno/<out_refund_no> its reservation (for refund
// notifications).
const (
	keyRefundPrefix   = "e/refund/"
	keyRefundedPrefix = "e/refunded/"
	keyRefundNoPrefix = "e/refundno/"
)

func prepayRecordKey(resID string) string { return "pp/" + resID }

const (
	// refundLease is how long one node owns an open refund while it asks
	// WeChat Pay about it; a node that dies holding it is taken over after.
	refundLease = 30 * time.Second
	// refundPollEvery is how often an accepted refund is asked about when
	// its notification has not come.
	refundPollEvery = 30 * time.Second
	// refundBackoffMax bounds the wait between failed refund requests.
	refundBackoffMax = 5 * time.Minute
	// refundsPerRound bounds the refunds one SettlePayments handles.
	refundsPerRound = 256
	// closesQueued bounds the WeChat Pay orders waiting to be closed.
	closesQueued = 4096
	// closesPerRound bounds the closes one SettlePayments makes.
	closesPerRound = 512
)

// Refund reasons, kept with a refund.
const (
	RefundLatePayment = "late_payment"
	RefundTeamFailed  = "team_failed"
)

// PayRefusal is why a verified payment notification was refused without
// paying anything; WeChat Pay then retries, and the refusal is logged and
// counted by Reason.
type PayRefusal struct {
	Reason string // a metrics label: mchid, appid, amount, currency, unknown_out_trade_no, ...
	Msg    string
}

func (r *PayRefusal) Error() string { return "engine: payment refused: " + r.Reason + ": " + r.Msg }

// Is makes a refusal ErrInvalid: it changes nothing.
func (r *PayRefusal) Is(target error) bool { return target == ErrInvalid }

// OutTradeNo is the WeChat Pay order number of a reservation: "sg" and 30
// hex characters of its id's SHA-256 (WeChat allows 6 to 32 characters of
// [0-9A-Za-z_*-], which reservation ids are not).
func OutTradeNo(resID string) string { return "sg" + hashHex("trade\x00"+resID, 15) }

// OutRefundNo is the refund number of a reservation's payment (one refund
// per reservation, so a repeated request is the same refund).
func OutRefundNo(resID string) string { return "rf" + hashHex("refund\x00"+resID, 15) }

func hashHex(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:n])
}

// prepayRecord is what e/pp/<reservation> keeps.
type prepayRecord struct {
	PrepayID   string `json:"prepay_id"`
	OutTradeNo string `json:"out_trade_no"`
	Total      int64  `json:"total"`
	ExpiresMs  int64  `json:"expires_ms"`
}

// refundRecord is an open (e/refund/) or finished (e/refunded/) refund.
type refundRecord struct {
	ReservationID string `json:"reservation_id"`
	OutTradeNo    string `json:"out_trade_no"`
	TransactionID string `json:"transaction_id"`
	OutRefundNo   string `json:"out_refund_no"`
	Total         int64  `json:"total"`
	Refund        int64  `json:"refund"`
	Reason        string `json:"reason"`
	// State is "pending" (not yet accepted by WeChat Pay), "requested"
	// (accepted, not yet done) or "refunded".
	State string `json:"state"`
	// Status is WeChat Pay's last word on it (PROCESSING, SUCCESS, ...).
	Status    string `json:"status,omitempty"`
	Tries     int    `json:"tries"`
	NextMs    int64  `json:"next_ms"` // not before: a lease, or a backoff
	CreatedMs int64  `json:"created_ms"`
	// DoneMs is when it finished (a finished refund's retention counts
	// from it; CreatedMs for records written before it was kept).
	DoneMs    int64  `json:"done_ms,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

const (
	refundPending   = "pending"
	refundRequested = "requested"
	refundDone      = "refunded"
)

// wechat reports whether WeChat Pay is the payment provider.
func (e *Engine) wechat() bool { return e.opts.WeChatPay != nil }

// Prepay places (or finds) the WeChat Pay JSAPI order of the caller's held
// reservation and returns the signed wx.requestPayment parameters. Only the
// owner may; a released or paid reservation is ErrBadState; WeChat Pay slow
// or down is ErrUnavailable within its timeout.
func (e *Engine) Prepay(ctx context.Context, userID, resID string) (wechatpay.PayParams, error) {
	if e.closed.Load() {
		return wechatpay.PayParams{}, errEngineClosed
	}
	if !e.wechat() {
		return wechatpay.PayParams{}, fmt.Errorf("%w: WeChat Pay is not configured (payment.provider is dev): pay with POST /api/v1/reservations/{id}/pay", ErrForbidden)
	}
	r, err := e.ownReservation(ctx, userID, resID)
	if err != nil {
		return wechatpay.PayParams{}, err
	}
	now := e.now()
	switch {
	case r.State == inventory.StatePaid:
		return wechatpay.PayParams{}, fmt.Errorf("%w: reservation %q is paid", ErrBadState, resID)
	case r.State != inventory.StateHeld || !now.Before(r.ExpiresAt):
		return wechatpay.PayParams{}, fmt.Errorf("%w: reservation %q is released", ErrBadState, resID)
	}
	m, err := recordOf(r)
	if err != nil {
		return wechatpay.PayParams{}, err
	}
	wp := e.opts.WeChatPay
	if pp, ok, err := e.readPrepay(ctx, r.ID); err != nil {
		return wechatpay.PayParams{}, err
	} else if ok {
		return e.payParams(pp.PrepayID)
	}
	no := OutTradeNo(r.ID)
	prepayID, err := wp.PrepayJSAPI(ctx, wechatpay.PrepayRequest{
		Description: e.payDescription(&m),
		OutTradeNo:  no,
		TimeExpire:  r.ExpiresAt,
		NotifyURL:   e.opts.PayNotifyURL,
		Total:       m.Amount,
		Currency:    wechatpay.CurrencyCNY,
		OpenID:      r.User,
		Attach:      r.ID,
	})
	if err != nil {
		return wechatpay.PayParams{}, wechatErr("place the WeChat Pay order", err)
	}
	b, _ := json.Marshal(prepayRecord{PrepayID: prepayID, OutTradeNo: no, Total: m.Amount, ExpiresMs: r.ExpiresAt.UnixMilli()})
	if won, err := e.tagged.PutIfAbsentTagged(ctx, inventory.Tag(r.ID), prepayRecordKey(r.ID), b); err != nil {
		return wechatpay.PayParams{}, fmt.Errorf("%w: cannot keep the prepay: %w", ErrUnavailable, err)
	} else if !won {
		// Another call placed it first; WeChat Pay gives one order number
		// one prepay_id, but answer with the one kept.
		if pp, ok, err := e.readPrepay(ctx, r.ID); err == nil && ok {
			prepayID = pp.PrepayID
		}
	}
	return e.payParams(prepayID)
}

func (e *Engine) payParams(prepayID string) (wechatpay.PayParams, error) {
	p, err := e.opts.WeChatPay.PayParams(prepayID, e.now())
	if err != nil {
		return p, fmt.Errorf("cannot sign the payment parameters: %w", err)
	}
	return p, nil
}

func (e *Engine) readPrepay(ctx context.Context, resID string) (prepayRecord, bool, error) {
	var pp prepayRecord
	b, ok, err := e.tagged.GetTagged(ctx, inventory.Tag(resID), prepayRecordKey(resID))
	if err != nil {
		return pp, false, fmt.Errorf("%w: cannot read the prepay: %w", ErrUnavailable, err)
	}
	if !ok {
		return pp, false, nil
	}
	if err := json.Unmarshal(b, &pp); err != nil {
		return pp, false, fmt.Errorf("cannot decode the prepay of %s: %w", resID, err)
	}
	return pp, true, nil
}

// payDescription is what the buyer's pay sheet shows (at most 127
// characters).
func (e *Engine) payDescription(m *resRecord) string {
	cat := e.catalog.Load()
	d := "Surge order"
	if st, ok := cat.stores[m.StoreID]; ok && st.Name != "" {
		d = st.Name
	}
	if len(m.Items) > 0 {
		if p, ok := cat.products[m.Items[0].SKUID]; ok && p.Title != "" {
			d += " - " + p.Title
		}
	}
	if r := []rune(d); len(r) > 127 {
		d = string(r[:127])
	}
	return d
}

// wechatErr maps a WeChat Pay error: unreachable, slow or failing is
// ErrUnavailable (the caller retries); a refusal (4xx) is ErrBadState with
// WeChat's words.
func wechatErr(what string, err error) error {
	var api *wechatpay.APIError
	if errors.As(err, &api) && !errors.Is(err, wechatpay.ErrUnavailable) {
		return fmt.Errorf("%w: cannot %s: %s %s", ErrBadState, what, api.Code, api.Message)
	}
	return fmt.Errorf("%w: cannot %s: %w", ErrUnavailable, what, err)
}

// PaymentNotified settles a verified TRANSACTION notification (the
// gateway checked its signature, timestamp and nonce, and decrypted it). A
// nil answer means settled, and WeChat Pay stops retrying: the reservation
// is paid with the transaction id as its payment id (exactly once however
// often it comes), or, when it can no longer be paid, a refund is recorded
// and its order shows refund_pending. A *PayRefusal changes nothing:
// another merchant's or app's payment, an unknown out_trade_no, an amount
// or currency that is not the reservation's. ErrUnavailable: try again.
func (e *Engine) PaymentNotified(ctx context.Context, tx *wechatpay.Transaction) error {
	if !e.wechat() {
		return &PayRefusal{Reason: "not_configured", Msg: "WeChat Pay is not configured"}
	}
	cfg := e.opts.WeChatPay.Config()
	switch {
	case tx.MchID != cfg.MchID:
		return &PayRefusal{Reason: "mchid", Msg: fmt.Sprintf("mchid %q is not ours", tx.MchID)}
	case tx.AppID != cfg.AppID:
		return &PayRefusal{Reason: "appid", Msg: fmt.Sprintf("appid %q is not ours", tx.AppID)}
	case tx.TradeState != wechatpay.TradeStateSuccess:
		return nil // nothing was paid: nothing to do
	case tx.TransactionID == "" || !validPaymentID(tx.TransactionID):
		return &PayRefusal{Reason: "malformed", Msg: "no usable transaction_id"}
	}
	r, m, err := e.tradeReservation(ctx, tx.OutTradeNo, tx.Attach)
	if err != nil {
		return err
	}
	if tx.Amount.Total != m.Amount {
		return &PayRefusal{Reason: "amount", Msg: fmt.Sprintf("paid %d fen, the reservation is %d", tx.Amount.Total, m.Amount)}
	}
	if cur := tx.Amount.Currency; cur != "" && cur != wechatpay.CurrencyCNY {
		return &PayRefusal{Reason: "currency", Msg: fmt.Sprintf("currency %q", cur)}
	}
	if r.State == inventory.StateHeld {
		_, err := e.pay(ctx, r, m, tx.TransactionID)
		if err == nil || !errors.Is(err, ErrBadState) {
			return err
		}
		// Released meanwhile (expired, its team failed), or paid by
		// another payment: read where it stands.
		if r, err = e.store.Reservation(ctx, r.ID); err != nil {
			return storeErr(err)
		}
	}
	if r.State == inventory.StatePaid {
		pid, ok, err := e.paymentOf(ctx, r.ID)
		if err != nil {
			return err
		}
		if ok && pid == tx.TransactionID {
			return nil // a repeat
		}
	}
	// Late (the hold was released), for a failed team, or a second
	// payment of a paid reservation: the money goes back.
	reason := RefundLatePayment
	if m.Kind == kindGroup {
		if t, _, err := e.readTeam(ctx, m.DealID, m.TeamID); err == nil && t.State == teamFailed {
			reason = RefundTeamFailed
		}
	}
	return e.startRefund(ctx, r, m, tx.TransactionID, reason)
}

// tradeReservation finds the reservation of a payment: its id is the
// order's attach (signed by WeChat Pay with the rest), and out_trade_no
// must be the one derived from it.
func (e *Engine) tradeReservation(ctx context.Context, no, attach string) (inventory.Reservation, resRecord, error) {
	if attach == "" || !validReservationID(attach) || OutTradeNo(attach) != no {
		return inventory.Reservation{}, resRecord{}, &PayRefusal{Reason: "unknown_out_trade_no", Msg: fmt.Sprintf("out_trade_no %q (attach %q) is no order of ours", no, attach)}
	}
	r, err := e.store.Reservation(ctx, attach)
	if errors.Is(err, inventory.ErrReservationNotFound) {
		// Forgotten past its retention: its amount cannot be checked.
		return r, resRecord{}, &PayRefusal{Reason: "unknown_out_trade_no", Msg: fmt.Sprintf("reservation of out_trade_no %q is gone", no)}
	}
	if err != nil {
		return r, resRecord{}, storeErr(err)
	}
	m, err := recordOf(r)
	if err != nil {
		return r, m, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return r, m, nil
}

// startRefund records the refund of a payment of r (once: a repeat finds
// it recorded) and shows it on r's order as refund_pending, before the
// notification is answered; SettlePayments requests it.
func (e *Engine) startRefund(ctx context.Context, r inventory.Reservation, m resRecord, transactionID, reason string) error {
	rr := refundRecord{
		ReservationID: r.ID, OutTradeNo: OutTradeNo(r.ID), TransactionID: transactionID,
		OutRefundNo: OutRefundNo(r.ID), Total: m.Amount, Refund: m.Amount, Reason: reason,
		State: refundPending, CreatedMs: e.now().UnixMilli(),
	}
	b, _ := json.Marshal(rr)
	// A refund that finished is kept (e/refunded/) for the retention: a
	// repeated notification then starts none (the open record is gone).
	if _, done, err := e.rec.Get(ctx, keyRefundedPrefix+r.ID); err != nil {
		return fmt.Errorf("%w: cannot read the refund: %w", ErrUnavailable, err)
	} else if done {
		return nil
	}
	wrote, err := e.rec.PutIfAbsent(ctx, keyRefundPrefix+r.ID, b)
	if err != nil {
		return fmt.Errorf("%w: cannot record the refund: %w", ErrUnavailable, err)
	}
	if err := e.rec.Put(ctx, keyRefundNoPrefix+rr.OutRefundNo, []byte(r.ID)); err != nil {
		return fmt.Errorf("%w: cannot record the refund: %w", ErrUnavailable, err)
	}
	if !wrote {
		if _, done, err := e.rec.Get(ctx, keyRefundedPrefix+r.ID); err != nil {
			return fmt.Errorf("%w: cannot read the refund: %w", ErrUnavailable, err)
		} else if done {
			return nil
		}
	}
	if wrote {
		e.logger(ctx).Warn("engine: payment to refund", "reservation", r.ID, "transaction", transactionID, "reason", reason, "amount", m.Amount)
	}
	o := e.orderFromView(e.viewRecord(r, &m), transactionID)
	o.State = orders.StateRefundPending
	if err := e.orders.Upsert(ctx, []Order{o}); err != nil {
		return fmt.Errorf("%w: cannot mark the order refund_pending: %w", ErrUnavailable, err)
	}
	e.kickPayments()
	return nil
}

// RefundNotified settles a verified REFUND notification: a successful one
// finishes the refund (its order shows refunded); others are kept in the
// refund's record for the next SettlePayments to ask about.
func (e *Engine) RefundNotified(ctx context.Context, rs *wechatpay.RefundResource) error {
	if !e.wechat() {
		return &PayRefusal{Reason: "not_configured", Msg: "WeChat Pay is not configured"}
	}
	if rs.MchID != e.opts.WeChatPay.Config().MchID {
		return &PayRefusal{Reason: "mchid", Msg: fmt.Sprintf("mchid %q is not ours", rs.MchID)}
	}
	if rs.OutRefundNo == "" || len(rs.OutRefundNo) > 64 {
		return &PayRefusal{Reason: "unknown_out_refund_no", Msg: fmt.Sprintf("out_refund_no %q", rs.OutRefundNo)}
	}
	id, ok, err := e.rec.Get(ctx, keyRefundNoPrefix+rs.OutRefundNo)
	if err != nil {
		return fmt.Errorf("%w: cannot read the refund: %w", ErrUnavailable, err)
	}
	if !ok || OutRefundNo(string(id)) != rs.OutRefundNo || OutTradeNo(string(id)) != rs.OutTradeNo {
		return &PayRefusal{Reason: "unknown_out_refund_no", Msg: fmt.Sprintf("out_refund_no %q", rs.OutRefundNo)}
	}
	r := inventory.Reservation{ID: string(id)}
	if rs.RefundStatus != wechatpay.RefundSuccess {
		e.logger(ctx).Error("engine: refund did not succeed", "reservation", r.ID, "status", rs.RefundStatus)
		return nil
	}
	return e.finishRefund(ctx, r.ID, rs.RefundStatus)
}

// finishRefund marks the refund of resID done: its order refunded, its
// record moved from e/refund/ to e/refunded/. Done twice is done once.
func (e *Engine) finishRefund(ctx context.Context, resID, status string) error {
	b, ok, err := e.rec.Get(ctx, keyRefundPrefix+resID)
	if err != nil {
		return fmt.Errorf("%w: cannot read the refund: %w", ErrUnavailable, err)
	}
	if !ok {
		return nil // finished already (or never ours)
	}
	var rr refundRecord
	if err := json.Unmarshal(b, &rr); err != nil {
		return fmt.Errorf("cannot decode the refund of %s: %w", resID, err)
	}
	r, err := e.store.Reservation(ctx, resID)
	if err != nil {
		return storeErr(err)
	}
	m, err := recordOf(r)
	if err != nil {
		return err
	}
	o := e.orderFromView(e.viewRecord(r, &m), rr.TransactionID)
	o.State = orders.StateRefunded
	if err := e.orders.Upsert(ctx, []Order{o}); err != nil {
		return fmt.Errorf("%w: cannot mark the order refunded: %w", ErrUnavailable, err)
	}
	rr.State, rr.Status, rr.DoneMs = refundDone, status, e.now().UnixMilli()
	done, _ := json.Marshal(rr)
	if err := e.rec.Put(ctx, keyRefundedPrefix+resID, done); err != nil {
		return fmt.Errorf("%w: cannot record the refund done: %w", ErrUnavailable, err)
	}
	if _, err := records.DeleteIfEqual(ctx, e.rec, keyRefundPrefix+resID, b); err != nil {
		return fmt.Errorf("%w: cannot close the refund: %w", ErrUnavailable, err)
	}
	e.logger(ctx).Info("engine: refunded", "reservation", resID, "amount", rr.Refund, "reason", rr.Reason)
	return nil
}

// purgeRefunds forgets finished refunds (e/refunded/ and the refund
// number's e/refundno/) that finished at or before `before`, at most
// expireBatchMax per call. The sweeper calls it with the reservation
// retention, as it purges released reservations: within it a repeated
// notification finds the refund done and starts none; after it, the
// reservation itself is forgotten too (and WeChat Pay takes a repeated
// out_refund_no as the same refund). Open refunds (e/refund/) are never
// purged.
func (e *Engine) purgeRefunds(ctx context.Context, before time.Time) (int, error) {
	type done struct {
		key      string
		val      []byte
		refundNo string
	}
	var old []done
	err := e.rec.Scan(ctx, keyRefundedPrefix, func(k string, v []byte) error {
		if len(old) >= expireBatchMax {
			return nil
		}
		var rr refundRecord
		if err := json.Unmarshal(v, &rr); err != nil {
			return nil // not ours to judge; kept
		}
		at := rr.DoneMs
		if at == 0 {
			at = rr.CreatedMs
		}
		if at <= before.UnixMilli() {
			old = append(old, done{k, v, rr.OutRefundNo})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cannot purge finished refunds: %w", err)
	}
	n := 0
	for _, d := range old {
		resID := strings.TrimPrefix(d.key, keyRefundedPrefix)
		// The number's record first: a purge cut between the two leaves
		// the finished refund, which the next purge finds again.
		if d.refundNo != "" {
			if _, err := records.DeleteIfEqual(ctx, e.rec, keyRefundNoPrefix+d.refundNo, []byte(resID)); err != nil {
				return n, fmt.Errorf("cannot purge finished refunds: %w", err)
			}
		}
		ok, err := records.DeleteIfEqual(ctx, e.rec, d.key, d.val)
		if err != nil {
			return n, fmt.Errorf("cannot purge finished refunds: %w", err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// queueClose asks for the WeChat Pay order of a released reservation to be
// closed (if it has one), without waiting: the queue is bounded, and a
// close that does not happen only means a payment that is refunded.
func (e *Engine) queueClose(resID string) {
	if !e.wechat() {
		return
	}
	select {
	case e.payCloses <- resID:
		e.kickPayments()
	default:
	}
}

func (e *Engine) kickPayments() {
	select {
	case e.payKick <- struct{}{}:
	default:
	}
}

func (e *Engine) paymentsLoop() {
	e.every(e.payKick, 30*time.Second, "settle payments", e.SettlePayments)
}

// SettlePayments closes the WeChat Pay orders of released holds and moves
// every open refund on: requests the pending ones (WeChat accepts a
// repeated out_refund_no as the same refund), asks about the accepted
// ones, and finishes those that succeeded. The engine runs it in the
// background (every SweepInterval, and at once when there is work);
// tests call it directly.
func (e *Engine) SettlePayments(ctx context.Context) error {
	if !e.wechat() {
		return nil
	}
	e.settleMu.Lock()
	defer e.settleMu.Unlock()
	var errs []error
closes:
	for range closesPerRound {
		var resID string
		select {
		case resID = <-e.payCloses:
		default:
			break closes
		}
		if err := e.closeTrade(ctx, resID); err != nil {
			// WeChat Pay (or the records) cannot be asked now: keep it
			// for the next round (if there is room) and let the refunds
			// have this round's time.
			select {
			case e.payCloses <- resID:
			default:
			}
			errs = append(errs, err)
			break
		}
	}
	var open []records.KV
	err := e.rec.Scan(ctx, keyRefundPrefix, func(k string, v []byte) error {
		if len(open) >= refundsPerRound {
			return errStopScan
		}
		open = append(open, records.KV{Key: k, Val: v})
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return errors.Join(append(errs, fmt.Errorf("cannot list refunds: %w", err))...)
	}
	for _, kv := range open {
		if err := e.settleRefund(ctx, kv); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var errStopScan = errors.New("engine: enough")

// closeTrade closes the WeChat Pay order of a released reservation, if it
// placed one, and then forgets the prepay (nothing reads it once the
// order is closed: a late payment finds its reservation by its attach),
// so that prepays do not outlive their reservations.
func (e *Engine) closeTrade(ctx context.Context, resID string) error {
	pp, ok, err := e.readPrepay(ctx, resID)
	if err != nil || !ok {
		return err
	}
	if err := e.opts.WeChatPay.CloseOrder(ctx, pp.OutTradeNo); err != nil {
		if errors.Is(err, wechatpay.ErrUnavailable) {
			return fmt.Errorf("cannot close the WeChat Pay order of %s: %w", resID, err)
		}
		// Refused (paid meanwhile, say): not fatal, a payment that still
		// comes is refunded.
		e.logger(ctx).Warn("engine: WeChat Pay refused to close an order", "reservation", resID, "out_trade_no", pp.OutTradeNo, "err", err)
	}
	if err := e.tagged.DeleteTagged(ctx, inventory.Tag(resID), prepayRecordKey(resID)); err != nil {
		return fmt.Errorf("cannot forget the prepay of %s: %w", resID, err)
	}
	return nil
}

// settleRefund moves one open refund on, under a lease so that one node at
// a time asks WeChat Pay about it.
func (e *Engine) settleRefund(ctx context.Context, kv records.KV) error {
	var rr refundRecord
	if err := json.Unmarshal(kv.Val, &rr); err != nil {
		return fmt.Errorf("cannot decode refund %s: %w", kv.Key, err)
	}
	now := e.now()
	if now.UnixMilli() < rr.NextMs {
		return nil
	}
	rr.Tries++
	rr.NextMs = now.Add(refundLease).UnixMilli()
	leased, _ := json.Marshal(rr)
	if won, err := e.rec.CompareAndSwap(ctx, kv.Key, kv.Val, leased); err != nil || !won {
		return err
	}
	wp := e.opts.WeChatPay
	var (
		ans *wechatpay.Refund
		err error
	)
	if rr.State == refundPending {
		ans, err = wp.Refund(ctx, wechatpay.RefundRequest{
			TransactionID: rr.TransactionID,
			OutRefundNo:   rr.OutRefundNo,
			Reason:        refundReasonText(rr.Reason),
			NotifyURL:     e.opts.PayNotifyURL,
			Amount:        wechatpay.RefundRequestAmount{Refund: rr.Refund, Total: rr.Total, Currency: wechatpay.CurrencyCNY},
		})
	} else {
		ans, err = wp.QueryRefund(ctx, rr.OutRefundNo)
	}
	next := rr
	switch {
	case err != nil:
		next.LastError = err.Error()
		next.NextMs = now.Add(min(time.Duration(1<<min(rr.Tries, 16))*time.Second, refundBackoffMax)).UnixMilli()
		e.logger(ctx).Warn("engine: refund not accepted yet", "reservation", rr.ReservationID, "tries", rr.Tries, "err", err)
	case ans.Status == wechatpay.RefundSuccess:
		return e.finishRefund(ctx, rr.ReservationID, ans.Status)
	default:
		next.State, next.Status, next.LastError = refundRequested, ans.Status, ""
		next.NextMs = now.Add(refundPollEvery).UnixMilli()
		if ans.Status == wechatpay.RefundAbnormal || ans.Status == wechatpay.RefundClosed {
			e.logger(ctx).Error("engine: refund needs an operator", "reservation", rr.ReservationID, "status", ans.Status)
			next.NextMs = now.Add(refundBackoffMax).UnixMilli()
		}
	}
	nb, _ := json.Marshal(next)
	if _, err := e.rec.CompareAndSwap(ctx, kv.Key, leased, nb); err != nil {
		return fmt.Errorf("cannot update refund %s: %w", kv.Key, err)
	}
	return nil
}

func refundReasonText(reason string) string {
	switch reason {
	case RefundTeamFailed:
		return "拼团未成团退款"
	case RefundLatePayment:
		return "支付超时退款"
	}
	return reason
}

// RefundsOpen counts the refunds not finished yet (at most refundsPerRound
// are counted; stats and /metrics show it).
func (e *Engine) RefundsOpen(ctx context.Context) (int, error) {
	n := 0
	err := e.rec.Scan(ctx, keyRefundPrefix, func(string, []byte) error {
		n++
		if n >= 10_000 {
			return errStopScan
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return n, err
	}
	return n, nil
}
