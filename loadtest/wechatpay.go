package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

// Paying through WeChat Pay (Config.WeChatPayTestKeys): the run plays both
// the buyer and WeChat Pay, with a fake WeChat Pay (wechatpaytest) that
// the server under test was configured to call (payment.base_url). A
// buyer who pays:
//
//  1. POST /api/v1/reservations/{id}/prepay (route "prepay"); the answer's
//     wx.requestPayment parameters must carry the test keys' appId and a
//     paySign that verifies with the merchant public key, else the buyer's
//     WeChat would refuse them: a "pay_params" violation, and the buyer
//     walks away.
//  2. The fake WeChat Pay finds its order by the prepay_id of "package"
//     (the out_trade_no is the server's business), marks it paid and posts
//     the signed, encrypted TRANSACTION.SUCCESS notification to the order's
//     notify_url (route "pay_notify"; outcome "204" when taken). A 5xx or
//     lost answer is sent again, as WeChat Pay does: the server pays once.
//  3. After a 204 the buyer reads the reservation back (not recorded): paid,
//     or released when the payment came late (the hold had ended) and the
//     server refunds it. A late payment counts as released, never as sold.
const (
	routePrepay    = "prepay"
	routePayNotify = "pay_notify"

	outcomeNotified       = "204"               // the notification was taken
	outcomeBadPayParams   = "bad_pay_params"    // prepay's parameters do not verify
	outcomeUnknownPrepay  = "unknown_prepay_id" // no order of the fake WeChat Pay has that prepay_id
	outcomeOrderClosed    = "order_closed"      // the server closed the order (hold released) before the buyer paid
	payAttemptsMax        = 3                   // prepay calls, and notifications, per payment
	payRetryPause         = 100 * time.Millisecond
	payParamsClockSkewMax = 5 * time.Minute
)

// wxPay is a run's fake WeChat Pay and its counts.
type wxPay struct {
	srv  *wechatpaytest.Server
	keys *wechatpaytest.Keys

	prepays   atomic.Int64 // prepay answers with good parameters
	badParams atomic.Int64
	notified  atomic.Int64 // notifications answered 204
	paid      atomic.Int64 // ... whose reservation then read paid
	late      atomic.Int64 // ... whose reservation then read released: refunded
	closed    atomic.Int64
	refused   atomic.Int64 // notifications answered otherwise, not retried
	resent    atomic.Int64 // notifications sent again after a 5xx or a lost answer
	unknown   atomic.Int64 // prepay_ids the fake WeChat Pay never issued
}

// startWeChatPay loads the test keys and starts the fake WeChat Pay.
func startWeChatPay(cfg Config) (*wxPay, error) {
	keys, err := wechatpaytest.LoadKeys(cfg.WeChatPayTestKeys)
	if err != nil {
		return nil, fmt.Errorf("%w: --wechatpay-test-keys: %w", ErrUsage, err)
	}
	srv, err := wechatpaytest.Start(wechatpaytest.Options{Keys: keys, Addr: cfg.WeChatPayAddr})
	if err != nil {
		return nil, fmt.Errorf("%w: --wechatpay-addr: %w", ErrUsage, err)
	}
	return &wxPay{srv: srv, keys: keys}, nil
}

func (w *wxPay) close() { w.srv.Close() }

// check returns the prepay_id of wx.requestPayment parameters that the
// buyer's WeChat would accept.
func (w *wxPay) check(p wechatpay.PayParams, now time.Time) (string, error) {
	id, ok := strings.CutPrefix(p.Package, "prepay_id=")
	switch {
	case !ok || id == "":
		return "", fmt.Errorf("package %q is not prepay_id=...", p.Package)
	case p.AppID != w.keys.AppID:
		return "", fmt.Errorf("appId %q is not the test keys' %q", p.AppID, w.keys.AppID)
	case p.SignType != "RSA":
		return "", fmt.Errorf("signType %q is not RSA", p.SignType)
	case p.NonceStr == "":
		return "", errors.New("nonceStr is empty")
	}
	sec, err := strconv.ParseInt(p.TimeStamp, 10, 64)
	if err != nil {
		return "", fmt.Errorf("timeStamp %q is not unix seconds", p.TimeStamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > payParamsClockSkewMax || d < -payParamsClockSkewMax {
		return "", fmt.Errorf("timeStamp %s is %v off", p.TimeStamp, d.Round(time.Second))
	}
	if err := p.Verify(w.keys.MerchantPublicKey()); err != nil {
		return "", fmt.Errorf("paySign: %w", err)
	}
	return id, nil
}

// report is the Payments part of a Report.
func (w *wxPay) report() *PaymentReport {
	st := w.srv.Stats()
	return &PaymentReport{
		Provider: "wechat", WeChatPayURL: w.srv.URL,
		Prepays: w.prepays.Load(), BadPayParams: w.badParams.Load(), UnknownPrepayIDs: w.unknown.Load(),
		Notified: w.notified.Load(), Paid: w.paid.Load(), Late: w.late.Load(), Closed: w.closed.Load(),
		Refused: w.refused.Load(), Resent: w.resent.Load(),
		OrdersPlaced: int64(st.Prepays), OrdersClosed: int64(st.Closes), Refunds: int64(st.Refunds),
	}
}

// PaymentReport counts the payments of a run with WeChatPayTestKeys, as
// the buyers and the fake WeChat Pay saw them.
type PaymentReport struct {
	Provider     string `json:"provider"` // "wechat"
	WeChatPayURL string `json:"wechatpay_url"`
	// Prepays: prepay answers with parameters that verify; BadPayParams:
	// with parameters that do not (each one a violation);
	// UnknownPrepayIDs: with a prepay_id the fake WeChat Pay never issued.
	Prepays          int64 `json:"prepays"`
	BadPayParams     int64 `json:"bad_pay_params"`
	UnknownPrepayIDs int64 `json:"unknown_prepay_ids"`
	// Notified: payment notifications the server took (204); of them Paid
	// read back paid and Late released (paid after the hold ended: the
	// server refunds them). Closed: orders the server had closed before
	// the buyer paid. Refused: notifications answered otherwise, in the
	// end. Resent: notifications sent again after a 5xx or a lost answer.
	Notified int64 `json:"notified"`
	Paid     int64 `json:"paid"`
	Late     int64 `json:"late"`
	Closed   int64 `json:"closed"`
	Refused  int64 `json:"refused"`
	Resent   int64 `json:"resent"`
	// What the fake WeChat Pay saw from the server: distinct orders
	// placed, orders closed, refunds asked for.
	OrdersPlaced int64 `json:"orders_placed"`
	OrdersClosed int64 `json:"orders_closed"`
	Refunds      int64 `json:"refunds"`
}

// payWeChat is a buyer paying rec with WeChat Pay, from at; see above.
func (r *runner) payWeChat(ctx context.Context, u *user, rec *resRec, at time.Time) {
	wx := r.wx
	r.led.setState(rec, resPaying)
	path := "/api/v1/reservations/" + url.PathEscape(rec.id)
	var prepayID string
	for attempt := 1; ; attempt++ {
		a := r.c.do(ctx, call{method: "POST", path: path + "/prepay", token: u.session(),
			device: u.deviceID(), xff: u.ip, intended: at})
		outcome := a.outcome
		var bad error
		if a.ok() {
			var p wechatpay.PayParams
			if bad = a.decode(&p); bad == nil {
				prepayID, bad = wx.check(p, time.Now())
			}
			if bad != nil {
				outcome = outcomeBadPayParams
			}
		}
		r.rec.record(routePrepay, at, a.done, outcome)
		switch {
		case a.ok() && bad == nil:
			wx.prepays.Add(1)
		case a.ok():
			wx.badParams.Add(1)
			r.led.report(Violation{Law: "pay_params", Subject: "reservation " + rec.id,
				Detail: "prepay answered wx.requestPayment parameters the buyer's WeChat would refuse: " + bad.Error()})
			r.led.setState(rec, resHeld) // cannot pay: the hold runs out
			return
		case a.outcome == "40903":
			r.led.setState(rec, resReleased) // expired before the buyer paid
			return
		case retryable(a.outcome) && attempt < payAttemptsMax && ctx.Err() == nil:
			// Asking again for the same held reservation is safe.
			at = time.Now().Add(payRetryPause)
			if sleepUntil(ctx, at) {
				continue
			}
			fallthrough
		default:
			r.led.setState(rec, resHeld) // nothing was paid
			return
		}
		break
	}

	at = time.Now()
	o, ok := wx.srv.OrderByPrepayID(prepayID)
	if !ok {
		wx.unknown.Add(1)
		r.rec.record(routePayNotify, at, time.Now(), outcomeUnknownPrepay)
		r.led.report(Violation{Law: "pay_params", Subject: "reservation " + rec.id,
			Detail: fmt.Sprintf("prepay_id %q is no order of the fake WeChat Pay at %s (does the server's payment.base_url name --wechatpay-addr?)", prepayID, wx.srv.URL)})
		r.led.setState(rec, resHeld)
		return
	}
	for attempt := 1; ; attempt++ {
		nctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		status, _, err := wx.srv.PayAndNotify(nctx, o.OutTradeNo)
		cancel()
		done := time.Now()
		var outcome string
		switch {
		case errors.Is(err, wechatpaytest.ErrOrderClosed):
			outcome = outcomeOrderClosed
		case errors.Is(err, wechatpaytest.ErrUnknownOrder):
			outcome = outcomeUnknownPrepay
		case err != nil:
			outcome = transportOutcome(ctx, err)
		case status == 204:
			outcome = outcomeNotified
		default:
			outcome = "http_" + strconv.Itoa(status)
		}
		r.rec.record(routePayNotify, at, done, outcome)
		switch {
		case outcome == outcomeNotified:
			wx.notified.Add(1)
			r.paidOrLate(ctx, u, rec, done.UnixMilli())
			return
		case outcome == outcomeOrderClosed:
			// The server closes an order when its hold is released unpaid.
			wx.closed.Add(1)
			r.led.setState(rec, resReleased)
			return
		case (retryable(outcome) || status >= 500) && attempt < payAttemptsMax && ctx.Err() == nil:
			// WeChat Pay sends a notification again until it is taken; the
			// server pays once.
			wx.resent.Add(1)
			at = done.Add(payRetryPause)
			if sleepUntil(ctx, at) {
				continue
			}
		}
		if status != 0 {
			wx.refused.Add(1)
		}
		r.led.setState(rec, resUnknown) // the end of the run reads it back
		return
	}
}

// paidOrLate reads back a reservation whose payment notification was
// taken (answered at takenMs): paid, or released when the payment came
// after its hold ended (the server refunds it). A hold the server released
// although the notification was taken while it surely had time left is a
// lost payment.
func (r *runner) paidOrLate(ctx context.Context, u *user, rec *resRec, takenMs int64) {
	a := r.c.do(ctx, call{method: "GET", path: "/api/v1/reservations/" + url.PathEscape(rec.id), token: u.session(),
		device: u.deviceID(), xff: u.ip})
	var d resDoc
	if !a.ok() || a.decode(&d) != nil {
		r.led.setState(rec, resUnknown)
		return
	}
	switch d.State {
	case "paid":
		r.wx.paid.Add(1)
		r.led.setState(rec, resPaid)
	case "released":
		r.wx.late.Add(1)
		r.led.late(rec, takenMs)
	default:
		r.led.setState(rec, resUnknown)
	}
}
