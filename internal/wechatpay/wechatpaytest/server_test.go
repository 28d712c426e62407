package wechatpaytest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

func client(t *testing.T, srv *wechatpaytest.Server) *wechatpay.Client {
	t.Helper()
	c, err := wechatpay.New(srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func order(no string) wechatpay.PrepayRequest {
	return wechatpay.PrepayRequest{Description: "tea", OutTradeNo: no, NotifyURL: "http://127.0.0.1:1/notify", Total: 100, OpenID: "o1"}
}

func TestPrepayAfterCloseOrPayRefused(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{})
	c := client(t, srv)
	ctx := context.Background()
	var apiErr *wechatpay.APIError
	if _, err := c.PrepayJSAPI(ctx, order("T000001")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseOrder(ctx, "T000001"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PrepayJSAPI(ctx, order("T000001")); !errors.As(err, &apiErr) || apiErr.Code != "ORDER_CLOSED" {
		t.Fatalf("PrepayJSAPI(closed) = %v; want ORDER_CLOSED", err)
	}
	if _, err := c.PrepayJSAPI(ctx, order("T000002")); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Pay("T000002"); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseOrder(ctx, "T000002"); !errors.As(err, &apiErr) || apiErr.Code != "ORDERPAID" {
		t.Fatalf("CloseOrder(paid) = %v; want ORDERPAID", err)
	}
	if _, err := srv.Pay("T-nobody"); !errors.Is(err, wechatpaytest.ErrUnknownOrder) {
		t.Fatalf("Pay(unknown) = %v", err)
	}
	if _, err := c.PrepayJSAPI(ctx, wechatpay.PrepayRequest{OutTradeNo: "T000003"}); !errors.As(err, &apiErr) || apiErr.Code != "PARAM_ERROR" {
		t.Fatalf("PrepayJSAPI(empty order) = %v; want PARAM_ERROR", err)
	}
	st := srv.Stats()
	if st.Calls["POST /v3/pay/transactions/jsapi"] != 4 || st.Calls["POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close"] != 2 {
		t.Fatalf("Stats.Calls = %v", st.Calls)
	}
}

func TestRefundStatusesConfigurable(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{RefundStatus: wechatpay.RefundSuccess})
	c := client(t, srv)
	ctx := context.Background()
	// a refund of an order the server does not know is accepted
	r, err := c.Refund(ctx, wechatpay.RefundRequest{OutTradeNo: "T000010", OutRefundNo: "RF10", Amount: wechatpay.RefundRequestAmount{Refund: 50, Total: 100}})
	if err != nil || r.Status != wechatpay.RefundSuccess {
		t.Fatalf("Refund = %+v, %v; want SUCCESS at once", r, err)
	}
	res, err := srv.SettleRefund("RF10", wechatpay.RefundClosed)
	if err != nil || res.RefundStatus != wechatpay.RefundClosed || res.RefundID != r.RefundID {
		t.Fatalf("SettleRefund = %+v, %v", res, err)
	}
	if q, err := c.QueryRefund(ctx, "RF10"); err != nil || q.Status != wechatpay.RefundClosed {
		t.Fatalf("QueryRefund = %+v, %v; want CLOSED", q, err)
	}
	if _, err := srv.SettleRefund("RF-nobody", wechatpay.RefundSuccess); !errors.Is(err, wechatpaytest.ErrUnknownRefund) {
		t.Fatalf("SettleRefund(unknown) = %v", err)
	}
}

func TestRequestsBounded(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{RequestsMax: 3})
	c := client(t, srv)
	for i := range 5 {
		if _, err := c.PrepayJSAPI(context.Background(), order(fmt.Sprintf("T00010%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != 3 || !containsOrder(reqs[2].Body, "T000104") {
		t.Fatalf("Requests = %d, last %s; want the last 3", len(reqs), reqs[len(reqs)-1].Body)
	}
}

func containsOrder(body []byte, no string) bool {
	var o wechatpay.JSAPIOrder
	return json.Unmarshal(body, &o) == nil && o.OutTradeNo == no
}

func TestCloseReleasesHangingCalls(t *testing.T) {
	srv, err := wechatpaytest.Start(wechatpaytest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := srv.Config()
	cfg.Timeout = time.Minute
	c, err := wechatpay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetDown(wechatpaytest.DownHang)
	done := make(chan error, 1)
	go func() { done <- c.CloseOrder(context.Background(), "T000020") }()
	time.Sleep(50 * time.Millisecond)
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs behind a hanging call")
	}
	if err := <-done; !errors.Is(err, wechatpay.ErrUnavailable) {
		t.Fatalf("CloseOrder = %v; want ErrUnavailable", err)
	}
}

func TestAddrAndOrderByPrepayID(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := wechatpaytest.New(t, wechatpaytest.Options{Addr: addr})
	if srv.URL != "http://"+addr {
		t.Fatalf("URL = %q; want http://%s", srv.URL, addr)
	}
	if _, err := wechatpaytest.Start(wechatpaytest.Options{Addr: addr}); err == nil {
		t.Fatalf("Start on the address in use: no error")
	}
	prepayID, err := client(t, srv).PrepayJSAPI(context.Background(), order("T000009"))
	if err != nil {
		t.Fatal(err)
	}
	o, ok := srv.OrderByPrepayID(prepayID)
	if !ok || o.OutTradeNo != "T000009" || o.PrepayID != prepayID {
		t.Fatalf("OrderByPrepayID(%q) = %+v, %v; want order T000009", prepayID, o, ok)
	}
	if _, ok := srv.OrderByPrepayID("wx-nobody"); ok {
		t.Fatalf("OrderByPrepayID(unknown) found an order")
	}
}
