package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

const notifyPath = "/api/v1/payments/wechat/notify"

// newPayHarness is a harness whose engine pays through a fake WeChat Pay
// server (real HTTP on loopback, keys made for this run).
func newPayHarness(t *testing.T, opts ...any) (*harness, *wechatpaytest.Server) {
	t.Helper()
	wx := wechatpaytest.New(t, wechatpaytest.Options{})
	client, err := wechatpay.New(wx.Config())
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts,
		engineOpts(func(o *engine.Options) {
			o.WeChatPay = client
			o.PayNotifyURL = "http://127.0.0.1:1" + notifyPath // the tests post themselves
		}),
		harnessOpt(func(o *Options) { o.WeChatPay = client.Verifier() }))
	h := newHarness(t, "memory", opts...)
	h.loadCatalog()
	h.createSale("fs1", 100, 0)
	return h, wx
}

// notify posts a notification and returns WeChat Pay's view of the answer.
func (h *harness) notify(hdr http.Header, body []byte) (int, string) {
	h.t.Helper()
	status, b, err := wechatpaytest.Send(context.Background(), h.base+notifyPath, hdr, body)
	if err != nil {
		h.t.Fatal(err)
	}
	return status, string(b)
}

func (h *harness) resState(auth, resID string) string {
	h.t.Helper()
	r := h.wantCode(CodeOK, "GET", "/api/v1/reservations/"+resID, nil, auth)
	return into[engine.Reservation](h.t, r).State
}

// TestWeChatPayNotify: the buyer can only pay through WeChat Pay: the pay
// route is refused, prepay gives signed wx.requestPayment parameters, and
// a notification pays only when it is WeChat Pay's, fresh, unseen,
// intact and about this reservation's money. Each refusal changes
// nothing, is answered FAIL and counted by reason; a good notification
// pays once however often it comes.
func TestWeChatPayNotify(t *testing.T) {
	h, wx := newPayHarness(t)
	buyer := h.login("oBuyer1")
	res := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), buyer))
	h.wantCode(CodeForbidden, "POST", "/api/v1/reservations/"+res.ReservationID+"/pay", `{"payment_id":"free"}`, buyer)
	h.wantCode(CodeForbidden, "POST", "/api/v1/reservations/"+res.ReservationID+"/prepay", nil, h.login("oThief"))
	params := into[wechatpay.PayParams](t, h.wantCode(CodeOK, "POST", "/api/v1/reservations/"+res.ReservationID+"/prepay", nil, buyer))
	if err := params.Verify(wx.MerchantPublicKey()); err != nil || params.AppID != wx.AppID || !strings.HasPrefix(params.Package, "prepay_id=") {
		t.Fatalf("prepay answer %+v: %v", params, err)
	}
	tx, err := wx.Pay(engine.OutTradeNo(res.ReservationID))
	if err != nil {
		t.Fatal(err)
	}
	// A notification of an event Surge does not act on, to spend a nonce.
	hdr, body := wx.PaymentNotification(tx, wechatpaytest.WithNonce("spent-nonce"), wechatpaytest.WithEventType("TRANSACTION.CLOSED_FOR_TEST"))
	if status, b := h.notify(hdr, body); status != 204 {
		t.Fatalf("an ignored event: %d %s; want 204", status, b)
	}
	other := func(mod func(*wechatpay.Transaction)) wechatpay.Transaction {
		t2 := tx
		mod(&t2)
		return t2
	}
	cases := []struct {
		reason string
		status int
		hdr    http.Header
		body   []byte
	}{}
	add := func(reason string, status int, hdr http.Header, body []byte) {
		cases = append(cases, struct {
			reason string
			status int
			hdr    http.Header
			body   []byte
		}{reason, status, hdr, body})
	}
	hdr, body = wx.PaymentNotification(tx, wechatpaytest.WithWrongKey())
	add("bad_signature", 401, hdr, body)
	hdr, body = wx.PaymentNotification(tx, wechatpaytest.WithSerial("PUB_KEY_ID_NOT_OURS"))
	add("unknown_serial", 401, hdr, body)
	hdr, body = wx.PaymentNotification(tx, wechatpaytest.WithTimeOffset(-6*time.Minute))
	add("stale_timestamp", 401, hdr, body)
	hdr, body = wx.PaymentNotification(tx, wechatpaytest.WithNonce("spent-nonce"))
	add("replayed_nonce", 400, hdr, body)
	hdr, body = wx.PaymentNotification(tx, wechatpaytest.WithCorruptCiphertext())
	add("decrypt_failed", 500, hdr, body)
	hdr, body = wx.PaymentNotification(other(func(t *wechatpay.Transaction) { t.Amount.Total = 1 }))
	add("amount", 400, hdr, body)
	hdr, body = wx.PaymentNotification(other(func(t *wechatpay.Transaction) { t.MchID = "1900000109" }))
	add("mchid", 400, hdr, body)
	hdr, body = wx.PaymentNotification(other(func(t *wechatpay.Transaction) { t.AppID = "wx0ther0app" }))
	add("appid", 400, hdr, body)
	hdr, body = wx.PaymentNotification(other(func(t *wechatpay.Transaction) { t.OutTradeNo = "sg000000000000000000000000000000" }))
	add("unknown_out_trade_no", 400, hdr, body)
	// Over the 64 KiB body limit but within the gateway's read slack, so
	// the whole body is read and answered (a body far over it is cut off
	// by fasthttp, and the client may see its connection reset instead of
	// the answer: WeChat Pay then sends it again, as after any FAIL).
	hdr, _ = wx.PaymentNotification(tx)
	add("too_large", 413, hdr, []byte(`{"pad":"`+strings.Repeat("x", 65<<10)+`"}`))
	for _, c := range cases {
		status, b := h.notify(c.hdr, c.body)
		var fail struct{ Code, Message string }
		if status/100 == 2 || json.Unmarshal([]byte(b), &fail) != nil || fail.Code != "FAIL" {
			t.Fatalf("%s: answered %d %s; want a FAIL", c.reason, status, b)
		}
		if status != c.status {
			t.Errorf("%s: answered %d; want %d", c.reason, status, c.status)
		}
		if st := h.resState(buyer, res.ReservationID); st != "held" {
			t.Fatalf("%s: reservation %s; want still held", c.reason, st)
		}
	}
	metrics := h.metricsText()
	for _, c := range cases {
		if !strings.Contains(metrics, `surge_wechatpay_notify_refused_total{reason="`+c.reason+`"} 1`) {
			t.Errorf("/metrics does not count the %s refusal", c.reason)
		}
	}
	// WeChat Pay's own notification, sent again and again.
	for range 3 {
		hdr, body := wx.PaymentNotification(tx)
		if status, b := h.notify(hdr, body); status != 204 || b != "" {
			t.Fatalf("the real notification: %d %q; want 204 and no body", status, b)
		}
	}
	if st := h.resState(buyer, res.ReservationID); st != "paid" {
		t.Fatalf("reservation after the notification: %s; want paid", st)
	}
	if s := h.stats(); s.Sales["fs1"].Sold != 1 {
		t.Fatalf("sold after three notifications = %d; want 1", s.Sales["fs1"].Sold)
	}
	if strings.Contains(metrics, string(wx.APIv3Key)) {
		t.Fatal("/metrics shows the APIv3 key")
	}
}

func (h *harness) metricsText() string {
	h.t.Helper()
	res, err := h.client.Get(h.base + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestNotifyWithoutWeChatPay: without WeChat Pay keys the route exists and
// refuses every notification (API.md).
func TestNotifyWithoutWeChatPay(t *testing.T) {
	h := newHarness(t, "memory")
	wx := wechatpaytest.New(t, wechatpaytest.Options{})
	tx, _ := wx.Pay("sg-not-an-order-of-ours")
	hdr, body := wx.PaymentNotification(tx)
	status, b := h.notify(hdr, body)
	if status != 400 || !strings.Contains(b, `"FAIL"`) {
		t.Fatalf("notification without WeChat Pay: %d %s; want 400 FAIL", status, b)
	}
}

// TestSlowWeChatPayDoesNotSlowReserves: prepays hanging on a WeChat Pay
// that does not answer fill only their own admission class (pays): the
// next prepay is shed at once, and reserves go on being answered.
func TestSlowWeChatPayDoesNotSlowReserves(t *testing.T) {
	const pays = 4
	h, wx := newPayHarness(t, harnessOpt(func(o *Options) { o.PaysInflightMax = pays }))
	wx.SetDelay(time.Minute)
	var wg sync.WaitGroup
	started := make(chan struct{}, pays)
	for i := range pays {
		auth := h.login("oSlow" + string(rune('a'+i)))
		res := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), auth))
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			r := h.do("POST", "/api/v1/reservations/"+res.ReservationID+"/prepay", nil, auth)
			if r.Code != CodeUnavailable {
				t.Errorf("prepay with WeChat Pay hanging: code %d; want 50300 after the client's timeout", r.Code)
			}
		}()
	}
	for range pays {
		<-started
	}
	// Wait until the pays class is full (the prepays are in flight): a
	// prepay sent before them would take a slot itself and shed one of
	// them instead.
	auth := h.login("oLate")
	res := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), auth))
	waitFor(t, 10*time.Second, "the pays class full", func() bool { return h.srv.sems[classPays].inflight() >= pays })
	for deadline := time.Now().Add(10 * time.Second); ; {
		r := h.do("POST", "/api/v1/reservations/"+res.ReservationID+"/prepay", nil, auth)
		if r.Code == CodeUnavailable && strings.Contains(r.Msg, "busy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pays class never filled: last prepay %d %s", r.Code, r.Msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Reserves are not in that class: they are answered while it is full.
	for i := range 20 {
		auth := h.login("oCrowd" + string(rune('a'+i)))
		h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), auth)
	}
	wg.Wait()
}
