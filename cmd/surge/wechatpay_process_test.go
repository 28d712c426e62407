package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

// wechatServe starts `surge serve` paying through the fake WeChat Pay wx,
// with the merchant's files in a keys directory, as an operator configures
// it; addr is where it listens (so that notify_url can name it).
func wechatServe(t *testing.T, wx *wechatpaytest.Server, keysDir, addr string, args ...string) *proc {
	t.Helper()
	return startSurgeAt(t, addr, []string{
		"SURGE_PAYMENT_PROVIDER=wechat",
		"SURGE_PAYMENT_KEYS_DIR=" + keysDir,
		"SURGE_PAYMENT_BASE_URL=" + wx.URL,
		"SURGE_PAYMENT_NOTIFY_URL=http://" + addr + "/api/v1/payments/wechat/notify",
	}, args...)
}

func newFakeWeChatPay(t *testing.T) (*wechatpaytest.Server, string) {
	t.Helper()
	wx := wechatpaytest.New(t, wechatpaytest.Options{})
	dir := t.TempDir()
	if err := wechatpaytest.WriteKeys(dir, wx.Keys); err != nil {
		t.Fatal(err)
	}
	return wx, dir
}

type payParams struct {
	AppID   string `json:"appId"`
	Package string `json:"package"`
	PaySign string `json:"paySign"`
}

type orderView struct {
	OrderID   string `json:"order_id"`
	State     string `json:"state"`
	PaymentID string `json:"payment_id"`
}

// waitOrderState polls the buyer's order until it is in state.
func waitOrderState(t *testing.T, base, tok, orderID, state string) orderView {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var o orderView
		env, err := call("GET", base+"/api/v1/orders/"+orderID, tok, nil, &o)
		if err == nil && env.Code == 0 && o.State == state {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s = %+v (%v, %+v); want %s", orderID, o, err, env, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWeChatPayThroughServe: login → reserve → prepay → WeChat Pay's
// notification → the order written, through the real binary, with the
// embedded Pebble and with Redis; the buyer's own pay is refused.
func TestWeChatPayThroughServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	for _, mode := range []string{"pebble", "redis"} {
		t.Run(mode, func(t *testing.T) {
			wx, keys := newFakeWeChatPay(t)
			args := []string{"--data", t.TempDir()}
			if mode == "redis" {
				args = append(args, "--backend", "redis", "--redis", redistest.Start(t).Addr)
			}
			s := wechatServe(t, wx, keys, freeAddr(t), args...)
			setupSale(t, s.base, "wx-sale", 10, 20)
			tok := login(t, s.base, "oWxBuyer")
			var r reservation
			mustCall(t, "POST", s.base+"/api/v1/flash-sales/wx-sale/reservations", tok, map[string]any{"quantity": 1}, &r)
			if env, _ := call("POST", s.base+"/api/v1/reservations/"+r.ReservationID+"/pay", tok, map[string]string{"payment_id": "free"}, nil); env.Code != 40301 {
				t.Fatalf("the buyer's own pay under WeChat Pay: %+v; want 40301", env)
			}
			var pp payParams
			mustCall(t, "POST", s.base+"/api/v1/reservations/"+r.ReservationID+"/prepay", tok, nil, &pp)
			if pp.AppID != wx.AppID || pp.PaySign == "" {
				t.Fatalf("prepay = %+v", pp)
			}
			status, body, err := wx.PayAndNotify(context.Background(), engine.OutTradeNo(r.ReservationID))
			if err != nil || status != http.StatusNoContent {
				t.Fatalf("WeChat Pay's notification: %d %s %v; want 204", status, body, err)
			}
			o := waitOrderState(t, s.base, tok, engine.OrderID(r.ReservationID), "created")
			if ord, _ := wx.Order(engine.OutTradeNo(r.ReservationID)); o.PaymentID != ord.TransactionID {
				t.Fatalf("order's payment id %q; want WeChat Pay's transaction %q", o.PaymentID, ord.TransactionID)
			}
			if st := getStats(t, s.base); st.Sales["wx-sale"].Sold != 1 {
				t.Fatalf("sold = %d; want 1", st.Sales["wx-sale"].Sold)
			}
			var metrics bytes.Buffer
			if res, err := http.Get(s.base + "/metrics"); err == nil {
				_, _ = metrics.ReadFrom(res.Body)
				res.Body.Close()
			}
			if !strings.Contains(s.output(), "TEST keys") {
				t.Error("serve does not warn that its keys directory holds test keys")
			}
			for _, where := range []string{s.output(), metrics.String()} {
				if strings.Contains(where, string(wx.APIv3Key)) {
					t.Fatal("the APIv3 key shows in the logs or /metrics")
				}
			}
		})
	}
}

// TestLateRefundSurvivesKill9: a payment whose hold was released is
// accepted (204) and its refund recorded; the process is killed with
// SIGKILL before WeChat Pay accepted the refund; restarted, it requests the
// refund, once, and the order ends refunded.
func TestLateRefundSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	wx, keys := newFakeWeChatPay(t)
	data, addr := t.TempDir(), freeAddr(t)
	s := wechatServe(t, wx, keys, addr, "--data", data)
	setupSale(t, s.base, "wx-sale", 10, 20)
	now := time.Now().UTC()
	mustCall(t, "POST", s.base+"/admin/v1/flash-sales", testAdminToken, map[string]any{
		"sale_id": "wx-short", "store_id": "p1", "sku_id": "pk1", "price": 9900, "quantity": 5, "per_user_limit": 1,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339Nano), "ends_at": now.Add(time.Hour).Format(time.RFC3339Nano),
		"hold_seconds": 1,
	}, nil)
	tok := login(t, s.base, "oLateBuyer")
	var r reservation
	mustCall(t, "POST", s.base+"/api/v1/flash-sales/wx-short/reservations", tok, map[string]any{"quantity": 1}, &r)
	mustCall(t, "POST", s.base+"/api/v1/reservations/"+r.ReservationID+"/prepay", tok, nil, nil)
	// The buyer pays at the last moment; the notification comes after the
	// hold was released.
	tx, err := wx.Pay(engine.OutTradeNo(r.ReservationID))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var v reservation
		mustCall(t, "GET", s.base+"/api/v1/reservations/"+r.ReservationID, tok, nil, &v)
		if v.State == "released" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hold was never released: %+v", v)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wx.FailNext(1 << 20) // WeChat Pay refuses every refund request for now
	hdr, body := wx.PaymentNotification(tx)
	status, b, err := wechatpaytest.Send(context.Background(), s.base+"/api/v1/payments/wechat/notify", hdr, body)
	if err != nil || status != http.StatusNoContent {
		t.Fatalf("late notification: %d %s %v; want 204 (taken: a refund is recorded)", status, b, err)
	}
	waitOrderState(t, s.base, tok, engine.OrderID(r.ReservationID), "refund_pending")
	time.Sleep(300 * time.Millisecond) // a refund request or two fails
	s.kill()
	no := engine.OutRefundNo(r.ReservationID)
	if n := wx.Stats().RefundsByNo[no]; n != 0 {
		t.Fatalf("refund accepted %d times before the kill; want 0", n)
	}
	wx.FailNext(0)
	s = wechatServe(t, wx, keys, addr, "--data", data)
	for deadline := time.Now().Add(20 * time.Second); wx.Stats().RefundsByNo[no] == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the refund was never requested after the restart:\n%s", s.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := wx.SettleRefund(no, wechatpay.RefundSuccess); err != nil {
		t.Fatal(err)
	}
	if status, b, err := wx.NotifyRefund(context.Background(), no); err != nil || status != http.StatusNoContent {
		t.Fatalf("refund notification: %d %s %v", status, b, err)
	}
	o := waitOrderState(t, s.base, tok, engine.OrderID(r.ReservationID), "refunded")
	if o.PaymentID != tx.TransactionID {
		t.Fatalf("refunded order's payment %q; want %q", o.PaymentID, tx.TransactionID)
	}
	time.Sleep(300 * time.Millisecond)
	if n := wx.Stats().RefundsByNo[no]; n != 1 {
		t.Fatalf("refund accepted %d times; want exactly once", n)
	}
	if st := getStats(t, s.base); st.Sales["wx-short"].Sold != 0 {
		t.Fatalf("the late payment sold a unit: %+v", st.Sales["wx-short"])
	}
}
