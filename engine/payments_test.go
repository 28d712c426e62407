package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
	"github.com/surge-retail/surge/inventory"
)

// payEnv is an engine paying through a fake WeChat Pay server (real HTTP
// on loopback, keys made for this run).
type payEnv struct {
	*testEnv
	wx *wechatpaytest.Server
}

func openPayEnv(t *testing.T, b testBackend, mutate func(*engine.Options)) *payEnv {
	t.Helper()
	wx := wechatpaytest.New(t, wechatpaytest.Options{})
	client, err := wechatpay.New(wx.Config())
	if err != nil {
		t.Fatal(err)
	}
	env := openEnv(t, b, func(o *engine.Options) {
		o.WeChatPay = client
		o.PayNotifyURL = "http://127.0.0.1:1/api/v1/payments/wechat/notify"
		if mutate != nil {
			mutate(o)
		}
	})
	return &payEnv{testEnv: env, wx: wx}
}

// paid is WeChat Pay's transaction for a reservation's order, as its
// notification carries it.
func (p *payEnv) paid(t *testing.T, resID string) *wechatpay.Transaction {
	t.Helper()
	tx, err := p.wx.Pay(engine.OutTradeNo(resID))
	if err != nil {
		t.Fatalf("fake WeChat Pay cannot pay %s: %v", resID, err)
	}
	return &tx
}

// prepaid holds one unit of fs1 for user and places its WeChat Pay order.
func (p *payEnv) prepaid(t *testing.T, user string) engine.Reservation {
	t.Helper()
	r, err := p.e.ReserveFlash(p.ctx, engine.Attempt{UserID: user}, "fs1", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.e.Prepay(p.ctx, user, r.ReservationID); err != nil {
		t.Fatal(err)
	}
	return r
}

func (p *payEnv) settle(t *testing.T) {
	t.Helper()
	if err := p.e.SettlePayments(p.ctx); err != nil {
		t.Fatalf("SettlePayments: %v", err)
	}
}

// TestPrepayAndNotify, on every backend: the buyer's prepay places one
// JSAPI order (the same prepay_id when asked again) with the reservation's
// amount and deadline; only its owner may; the buyer's own pay is refused;
// WeChat Pay's notification pays it, once however often it comes, and the
// order is written with the transaction id.
func TestPrepayAndNotify(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			p := openPayEnv(t, b, nil)
			p.sale("fs1", 10, 0)
			r, err := p.e.ReserveFlash(p.ctx, engine.Attempt{UserID: "oBuyer1"}, "fs1", 2, "")
			if err != nil {
				t.Fatal(err)
			}
			pp1, err := p.e.Prepay(p.ctx, "oBuyer1", r.ReservationID)
			if err != nil {
				t.Fatalf("Prepay: %v", err)
			}
			pp2, err := p.e.Prepay(p.ctx, "oBuyer1", r.ReservationID)
			if err != nil || pp2.Package != pp1.Package {
				t.Fatalf("Prepay again = %+v, %v; want package %s", pp2, err, pp1.Package)
			}
			if err := pp1.Verify(p.wx.MerchantPublicKey()); err != nil {
				t.Fatalf("paySign does not verify: %v", err)
			}
			o, ok := p.wx.Order(engine.OutTradeNo(r.ReservationID))
			if !ok || o.Amount.Total != r.Amount || o.Payer.OpenID != "oBuyer1" || p.wx.Stats().Prepays != 1 {
				t.Fatalf("WeChat Pay order = %+v (%v), stats %+v; want one order of %d fen for oBuyer1", o, ok, p.wx.Stats(), r.Amount)
			}
			_, err = p.e.Prepay(p.ctx, "oSomeoneElse", r.ReservationID)
			wantErr(t, "prepay of another's reservation", err, engine.ErrForbidden)
			_, err = p.e.Pay(p.ctx, "oBuyer1", r.ReservationID, "free")
			wantErr(t, "the buyer's own pay under WeChat Pay", err, engine.ErrForbidden)

			tx := p.paid(t, r.ReservationID)
			var wg sync.WaitGroup
			for range 8 { // WeChat Pay retries, concurrently
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := p.e.PaymentNotified(p.ctx, tx); err != nil {
						t.Errorf("PaymentNotified: %v", err)
					}
				}()
			}
			wg.Wait()
			v, err := p.e.Reservation(p.ctx, "oBuyer1", r.ReservationID)
			if err != nil || v.State != "paid" || v.PaymentID != tx.TransactionID {
				t.Fatalf("reservation after the notification = %+v, %v", v, err)
			}
			if pl := p.pool("s1:fs:fs1"); pl.Sold != 2 || pl.Held != 0 {
				t.Fatalf("pool = %+v; want 2 sold", pl)
			}
			p.waitOrder(t, "oBuyer1", engine.OrderID(r.ReservationID), "created")
			_, err = p.e.Prepay(p.ctx, "oBuyer1", r.ReservationID)
			wantErr(t, "prepay of a paid reservation", err, engine.ErrBadState)
		})
	}
}

// waitOrder waits (bounded) for the order writer to write an order in
// state.
func (p *payEnv) waitOrder(t *testing.T, user, orderID, state string) engine.Order {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, err := p.e.Order(p.ctx, user, orderID)
		if err == nil && o.State == state {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s = %+v, %v; want state %s", orderID, o, err, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNotifyRefusalsChangeNothing: a notification that does not match the
// reservation (amount, currency, merchant, app, order number) is refused
// with its reason and pays nothing.
func TestNotifyRefusalsChangeNothing(t *testing.T) {
	p := openPayEnv(t, testBackends()[0], nil)
	p.sale("fs1", 10, 0)
	r := p.prepaid(t, "oBuyer1")
	good := *p.paid(t, r.ReservationID)
	cases := []struct {
		reason string
		mod    func(tx *wechatpay.Transaction)
	}{
		{"amount", func(tx *wechatpay.Transaction) { tx.Amount.Total-- }},
		{"currency", func(tx *wechatpay.Transaction) { tx.Amount.Currency = "USD" }},
		{"mchid", func(tx *wechatpay.Transaction) { tx.MchID = "1900000109" }},
		{"appid", func(tx *wechatpay.Transaction) { tx.AppID = "wxother" }},
		{"unknown_out_trade_no", func(tx *wechatpay.Transaction) { tx.OutTradeNo = "sg0000000000000000000000000000ff" }},
		{"malformed", func(tx *wechatpay.Transaction) { tx.TransactionID = "" }},
	}
	for _, c := range cases {
		tx := good
		c.mod(&tx)
		err := p.e.PaymentNotified(p.ctx, &tx)
		var refusal *engine.PayRefusal
		if !errors.As(err, &refusal) || refusal.Reason != c.reason {
			t.Fatalf("%s: PaymentNotified = %v; want a refusal for %s", c.reason, err, c.reason)
		}
		if pl := p.pool("s1:fs:fs1"); pl.Held != 1 || pl.Sold != 0 {
			t.Fatalf("%s: pool = %+v; want the hold untouched", c.reason, pl)
		}
	}
	if err := p.e.PaymentNotified(p.ctx, &good); err != nil {
		t.Fatalf("the good notification after the refusals: %v", err)
	}
}

// TestLatePaymentsAreRefundedOnce, on every backend: a crowd whose holds
// expired on the pay sheet pays anyway, WeChat Pay retrying every
// notification: no unit is sold twice (none is sold at all: the units went
// back and are sold to others), every late payment is refunded exactly
// once (one out_refund_no each), and its order shows refund_pending, then
// refunded.
func TestLatePaymentsAreRefundedOnce(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			p := openPayEnv(t, b, nil)
			const buyers, supply = 12, 12
			p.sale("fs1", supply, 1)
			var late []engine.Reservation
			for i := range buyers {
				user := fmt.Sprintf("oLate%02d", i)
				r := p.prepaid(t, user)
				late = append(late, r)
			}
			// The holds (60 s) expire while the sale runs on (the fake
			// server's orders stay open: the close comes too late, as a
			// slow close may).
			p.clock.Advance(2 * time.Minute)
			p.sweep()
			txs := make([]*wechatpay.Transaction, len(late))
			for i, r := range late {
				txs[i] = p.paid(t, r.ReservationID)
			}
			// Meanwhile the units went back and a second crowd buys them.
			var wg sync.WaitGroup
			for range 3 {
				for i := range late {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := p.e.PaymentNotified(p.ctx, txs[i]); err != nil {
							t.Errorf("late notification: %v", err)
						}
					}()
				}
				for i := range buyers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, _ = p.e.ReserveFlash(p.ctx, engine.Attempt{UserID: fmt.Sprintf("oSecond%02d", i)}, "fs1", 1, "")
					}()
				}
			}
			wg.Wait()
			pl := p.pool("s1:fs:fs1")
			if pl.Sold != 0 || pl.Held+pl.Available != supply || pl.Held != buyers {
				t.Fatalf("pool after late payments = %+v; want nothing sold, the second crowd holding all %d", pl, supply)
			}
			for _, r := range late {
				v, err := p.e.Reservation(p.ctx, r.UserID, r.ReservationID)
				if err != nil || v.State != "released" {
					t.Fatalf("late reservation = %+v, %v; want released (not revived)", v, err)
				}
				p.waitOrder(t, r.UserID, engine.OrderID(r.ReservationID), "refund_pending")
			}
			if st, err := p.e.Stats(p.ctx); err != nil || st.Payments.RefundsOpen != buyers {
				t.Fatalf("stats payments = %+v, %v; want %d refunds open", st.Payments, err, buyers)
			}
			p.settle(t)
			p.settle(t) // a second round asks nothing twice
			st := p.wx.Stats()
			if st.Refunds != buyers {
				t.Fatalf("distinct refunds = %d; want %d", st.Refunds, buyers)
			}
			for no, n := range st.RefundsByNo {
				if n != 1 {
					t.Fatalf("refund %s requested %d times; want once", no, n)
				}
			}
			// WeChat Pay finishes them and says so; a repeated notification
			// changes nothing.
			for _, r := range late {
				rs, err := p.wx.SettleRefund(engine.OutRefundNo(r.ReservationID), wechatpay.RefundSuccess)
				if err != nil {
					t.Fatal(err)
				}
				for range 2 {
					if err := p.e.RefundNotified(p.ctx, &rs); err != nil {
						t.Fatalf("RefundNotified: %v", err)
					}
				}
				p.waitOrder(t, r.UserID, engine.OrderID(r.ReservationID), "refunded")
			}
			if st, err := p.e.Stats(p.ctx); err != nil || st.Payments.RefundsOpen != 0 || st.Payments.Provider != "wechat" {
				t.Fatalf("stats payments = %+v, %v; want wechat with no refund open", st.Payments, err)
			}
			// Within the retention a repeated payment notification finds
			// the refund done: no second refund.
			p.clock.Advance(engine.ReservationRetentionDefault - time.Hour)
			p.sweep()
			for i := range late {
				if err := p.e.PaymentNotified(p.ctx, txs[i]); err != nil {
					t.Fatalf("repeated late notification within the retention: %v", err)
				}
			}
			if st, err := p.e.Stats(p.ctx); err != nil || st.Payments.RefundsOpen != 0 {
				t.Fatalf("stats after repeated notifications = %+v, %v; want no refund opened again", st.Payments, err)
			}
			p.settle(t)
			if st, err := p.e.Stats(p.ctx); err != nil || st.Payments.RefundsOpen != 0 || p.wx.Stats().Refunds != buyers {
				t.Fatalf("after repeated notifications: stats %+v, %v, %d refunds; want none open, %d in all", st.Payments, err, p.wx.Stats().Refunds, buyers)
			}
			// Past it the finished refunds are forgotten, as the released
			// reservations are: the refund number is unknown then.
			p.clock.Advance(2 * time.Hour)
			p.sweep()
			for _, r := range late {
				rs, err := p.wx.SettleRefund(engine.OutRefundNo(r.ReservationID), wechatpay.RefundSuccess)
				if err != nil {
					t.Fatal(err)
				}
				var refusal *engine.PayRefusal
				if err := p.e.RefundNotified(p.ctx, &rs); !errors.As(err, &refusal) || refusal.Reason != "unknown_out_refund_no" {
					t.Fatalf("RefundNotified past the retention = %v; want unknown_out_refund_no (records purged)", err)
				}
			}
		})
	}
}

// TestRefundSurvivesARestart: the process dies after recording a late
// payment's refund and before requesting it; the next engine over the same
// stores requests it, once, and follows it to refunded by asking (no
// notification comes).
func TestRefundSurvivesARestart(t *testing.T) {
	for _, b := range durableBackends() {
		t.Run(b.name, func(t *testing.T) {
			wx := wechatpaytest.New(t, wechatpaytest.Options{})
			client, err := wechatpay.New(wx.Config())
			if err != nil {
				t.Fatal(err)
			}
			clock := newTestClock()
			st, dir, reopen := b.open(t, clock)
			open := func(st inventory.Store) *engine.Engine {
				o := engine.Options{Store: st, Now: clock.Now, SweepInterval: -1, SaleAdmitFactor: -1,
					WeChatPay: client, PayNotifyURL: "http://127.0.0.1:1/notify"}
				if addr, ok := cutRedis(dir); ok {
					o.RedisAddr = addr
				} else {
					o.Dir = dir
				}
				e, err := engine.Open(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
			ctx := context.Background()
			e := open(st)
			env := &testEnv{t: t, clock: clock, store: st, e: e, ctx: ctx}
			if _, err := e.LoadCatalog(ctx, testCatalog()); err != nil {
				t.Fatal(err)
			}
			env.sale("fs1", 5, 0)
			r, err := e.ReserveFlash(ctx, engine.Attempt{UserID: "oBuyer"}, "fs1", 1, "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Prepay(ctx, "oBuyer", r.ReservationID); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Hour)
			if err := e.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			tx, err := wx.Pay(engine.OutTradeNo(r.ReservationID))
			if err != nil {
				t.Fatal(err)
			}
			if err := e.PaymentNotified(ctx, &tx); err != nil {
				t.Fatal(err)
			}
			// Dies here: nothing asked of WeChat Pay yet.
			_ = e.Close()
			_ = st.Close()
			if got := wx.Stats().RefundCalls; got != 0 {
				t.Fatalf("refund calls before the restart = %d", got)
			}
			st2 := reopen()
			t.Cleanup(func() { _ = st2.Close() })
			e2 := open(st2)
			t.Cleanup(func() { _ = e2.Close() })
			if err := e2.SettlePayments(ctx); err != nil {
				t.Fatal(err)
			}
			if got := wx.Stats().RefundsByNo[engine.OutRefundNo(r.ReservationID)]; got != 1 {
				t.Fatalf("refund requested %d times after the restart; want 1", got)
			}
			if _, err := wx.SettleRefund(engine.OutRefundNo(r.ReservationID), wechatpay.RefundSuccess); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Minute) // past the poll interval
			if err := e2.SettlePayments(ctx); err != nil {
				t.Fatal(err)
			}
			o, err := e2.Order(ctx, "oBuyer", engine.OrderID(r.ReservationID))
			if err != nil || o.State != "refunded" || o.PaymentID != tx.TransactionID {
				t.Fatalf("order after the refund = %+v, %v; want refunded", o, err)
			}
			if got := wx.Stats().RefundsByNo[engine.OutRefundNo(r.ReservationID)]; got != 1 {
				t.Fatalf("refund requested %d times in all; want 1", got)
			}
		})
	}
}

func cutRedis(dir string) (string, bool) { return strings.CutPrefix(dir, "redis:") }

// TestExpiredHoldClosesItsOrder: a hold released unpaid closes its WeChat
// Pay order, so the buyer cannot pay a dead order from the sheet.
func TestExpiredHoldClosesItsOrder(t *testing.T) {
	p := openPayEnv(t, testBackends()[0], nil)
	p.sale("fs1", 5, 0)
	r := p.prepaid(t, "oBuyer")
	p.clock.Advance(2 * time.Minute)
	p.sweep()
	p.settle(t)
	if o, ok := p.wx.Order(engine.OutTradeNo(r.ReservationID)); !ok || !o.Closed {
		t.Fatalf("WeChat Pay order after the hold expired = %+v, %v; want closed", o, ok)
	}
	if _, err := p.wx.Pay(engine.OutTradeNo(r.ReservationID)); !errors.Is(err, wechatpaytest.ErrOrderClosed) {
		t.Fatalf("paying the closed order: %v; want refused", err)
	}
}

// TestWeChatPaySlowIsUnavailable: a WeChat Pay slower than its timeout
// makes a prepay ErrUnavailable within about the timeout, never a hang.
func TestWeChatPaySlowIsUnavailable(t *testing.T) {
	p := openPayEnv(t, testBackends()[0], nil)
	p.sale("fs1", 5, 0)
	r, err := p.e.ReserveFlash(p.ctx, engine.Attempt{UserID: "oBuyer"}, "fs1", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	p.wx.SetDelay(time.Minute)
	done := make(chan error, 1)
	go func() { _, err := p.e.Prepay(p.ctx, "oBuyer", r.ReservationID); done <- err }()
	select {
	case err := <-done:
		wantErr(t, "prepay with WeChat Pay hanging", err, engine.ErrUnavailable)
	case <-time.After(30 * time.Second):
		t.Fatal("prepay still waiting after 30 s (the client's timeout is 2 s)")
	}
}

// TestFailedTeamIsRefunded, on every backend: a team that does not form by
// its deadline gives its units back, and its member who paid through
// WeChat Pay is refunded through it, once; the order shows refund_pending,
// then refunded.
func TestFailedTeamIsRefunded(t *testing.T) {
	for _, b := range testBackends() {
		t.Run(b.name, func(t *testing.T) {
			p := openPayEnv(t, b, nil)
			p.deal("gb1", 3, 30, 0)
			team, err := p.e.OpenTeam(p.ctx, engine.Attempt{UserID: "oLeader"}, "gb1", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.e.Prepay(p.ctx, "oLeader", team.ReservationID); err != nil {
				t.Fatal(err)
			}
			if err := p.e.PaymentNotified(p.ctx, p.paid(t, team.ReservationID)); err != nil {
				t.Fatal(err)
			}
			p.waitOrder(t, "oLeader", engine.OrderID(team.ReservationID), "created")
			p.clock.Advance(11 * time.Minute) // past the 10-minute team window
			p.sweep()
			got, err := p.e.Team(p.ctx, "gb1", team.TeamID)
			if err != nil || got.State != "failed" {
				t.Fatalf("team = %+v, %v; want failed", got, err)
			}
			p.waitOrder(t, "oLeader", engine.OrderID(team.ReservationID), "refund_pending")
			if pl := p.pool("s1:gb:gb1"); pl.Sold != 0 || pl.Held != 0 || pl.Available != 30 {
				t.Fatalf("deal pool = %+v; want every unit back", pl)
			}
			p.settle(t)
			no := engine.OutRefundNo(team.ReservationID)
			if n := p.wx.Stats().RefundsByNo[no]; n != 1 {
				t.Fatalf("refund requested %d times; want 1", n)
			}
			rs, err := p.wx.SettleRefund(no, wechatpay.RefundSuccess)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.e.RefundNotified(p.ctx, &rs); err != nil {
				t.Fatal(err)
			}
			p.waitOrder(t, "oLeader", engine.OrderID(team.ReservationID), "refunded")
		})
	}
}

// TestCloseWaitsForWeChatPay: a close that WeChat Pay cannot take now is
// kept and made in a later round.
func TestCloseWaitsForWeChatPay(t *testing.T) {
	p := openPayEnv(t, testBackends()[0], nil)
	p.sale("fs1", 5, 0)
	r := p.prepaid(t, "oBuyer")
	p.clock.Advance(2 * time.Minute)
	p.sweep()
	p.wx.FailNext(1000)
	if err := p.e.SettlePayments(p.ctx); err == nil {
		t.Fatal("SettlePayments with WeChat Pay failing: no error")
	}
	if o, _ := p.wx.Order(engine.OutTradeNo(r.ReservationID)); o.Closed {
		t.Fatal("closed while WeChat Pay failed")
	}
	p.wx.FailNext(0)
	p.settle(t)
	if o, _ := p.wx.Order(engine.OutTradeNo(r.ReservationID)); !o.Closed {
		t.Fatal("the close was dropped instead of made once WeChat Pay answered")
	}
}
