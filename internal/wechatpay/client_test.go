package wechatpay_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

func newClient(t *testing.T, srv *wechatpaytest.Server, edit ...func(*wechatpay.Config)) *wechatpay.Client {
	t.Helper()
	cfg := srv.Config()
	for _, f := range edit {
		f(&cfg)
	}
	c, err := wechatpay.New(cfg)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	return c
}

func prepayRequest(no string) wechatpay.PrepayRequest {
	return wechatpay.PrepayRequest{
		Description: "Flash sale: 1 x tea",
		OutTradeNo:  no,
		TimeExpire:  time.Now().Add(15 * time.Minute),
		NotifyURL:   "https://surge.example/api/v1/payments/wechat/notify",
		Total:       1999,
		OpenID:      "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
	}
}

func TestPrepaySameOrderSamePrepayID(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	req := prepayRequest("R0001-prepay")
	id1, err := c.PrepayJSAPI(ctx, req)
	if err != nil {
		t.Fatalf("PrepayJSAPI = %v", err)
	}
	id2, err := c.PrepayJSAPI(ctx, req)
	if err != nil {
		t.Fatalf("PrepayJSAPI again = %v", err)
	}
	if id1 == "" || id1 != id2 {
		t.Fatalf("prepay ids %q, %q; want the same, non-empty", id1, id2)
	}
	if st := srv.Stats(); st.Prepays != 1 || st.PrepayCalls != 2 {
		t.Fatalf("Stats = %d prepays, %d calls; want 1, 2", st.Prepays, st.PrepayCalls)
	}
	o, ok := srv.Order(req.OutTradeNo)
	if !ok || o.AppID != srv.AppID || o.MchID != srv.MchID || o.Amount.Total != 1999 || o.Amount.Currency != "CNY" || o.Payer.OpenID != req.OpenID {
		t.Fatalf("Order = %+v, %v", o, ok)
	}
	if !strings.HasSuffix(o.TimeExpire, "+08:00") {
		t.Fatalf("time_expire = %q; want RFC 3339 in +08:00", o.TimeExpire)
	}

	// the same out_trade_no with another amount is refused
	req.Total = 2999
	_, err = c.PrepayJSAPI(ctx, req)
	var apiErr *wechatpay.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != "INVALID_REQUEST" {
		t.Fatalf("PrepayJSAPI(other amount) = %v; want APIError 400 INVALID_REQUEST", err)
	}
	if errors.Is(err, wechatpay.ErrUnavailable) {
		t.Fatalf("a 400 must not be ErrUnavailable: %v", err)
	}
}

func TestRequestsAreSignedAndParse(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{})
	c := newClient(t, srv)
	if _, err := c.PrepayJSAPI(context.Background(), prepayRequest("R0002-signed")); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests recorded; want 1", len(reqs))
	}
	r := reqs[0]
	a, err := wechatpay.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatalf("ParseAuthorization = %v", err)
	}
	if a.MchID != srv.MchID || a.SerialNo != srv.MerchantSerial || len(a.Nonce) != 32 {
		t.Fatalf("Authorization = %+v", a)
	}
	if err := a.Verify(srv.MerchantPublicKey(), "POST", "/v3/pay/transactions/jsapi", r.Body); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if err := a.Verify(srv.MerchantPublicKey(), "POST", "/v3/pay/transactions/jsapi", append(r.Body, ' ')); !errors.Is(err, wechatpay.ErrBadSignature) {
		t.Fatalf("Verify(other body) = %v; want ErrBadSignature", err)
	}
	for name, want := range map[string]string{"Accept": "application/json", "Content-Type": "application/json"} {
		if got := r.Header.Get(name); got != want {
			t.Errorf("%s = %q; want %q", name, got, want)
		}
	}
	if r.Header.Get("User-Agent") == "" {
		t.Error("no User-Agent")
	}
}

func TestCloseQueryAndPayClosed(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	req := prepayRequest("R0003-close")
	if _, err := c.PrepayJSAPI(ctx, req); err != nil {
		t.Fatal(err)
	}
	tx, err := c.QueryOrder(ctx, req.OutTradeNo)
	if err != nil || tx.TradeState != wechatpay.TradeStateNotPay || tx.Amount.Total != 1999 {
		t.Fatalf("QueryOrder = %+v, %v; want NOTPAY of 1999", tx, err)
	}
	if err := c.CloseOrder(ctx, req.OutTradeNo); err != nil {
		t.Fatalf("CloseOrder = %v", err)
	}
	if err := c.CloseOrder(ctx, req.OutTradeNo); err != nil {
		t.Fatalf("CloseOrder again = %v", err)
	}
	if tx, err = c.QueryOrder(ctx, req.OutTradeNo); err != nil || tx.TradeState != wechatpay.TradeStateClosed {
		t.Fatalf("QueryOrder after close = %+v, %v; want CLOSED", tx, err)
	}
	if _, err := srv.Pay(req.OutTradeNo); !errors.Is(err, wechatpaytest.ErrOrderClosed) {
		t.Fatalf("Pay(closed) = %v; want ErrOrderClosed", err)
	}
	if st := srv.Stats(); st.Closes != 2 {
		t.Fatalf("Stats.Closes = %d; want 2", st.Closes)
	}
	_, err = c.QueryOrder(ctx, "R0003-nobody")
	var apiErr *wechatpay.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != "ORDER_NOT_EXIST" {
		t.Fatalf("QueryOrder(unknown) = %v; want APIError 404 ORDER_NOT_EXIST", err)
	}
}

func TestRefundIdempotentAndQuery(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	req := prepayRequest("R0004-refund")
	if _, err := c.PrepayJSAPI(ctx, req); err != nil {
		t.Fatal(err)
	}
	paid, err := srv.Pay(req.OutTradeNo)
	if err != nil {
		t.Fatal(err)
	}
	if tx, err := c.QueryOrder(ctx, req.OutTradeNo); err != nil || tx.TradeState != wechatpay.TradeStateSuccess || tx.TransactionID != paid.TransactionID {
		t.Fatalf("QueryOrder after Pay = %+v, %v", tx, err)
	}
	rr := wechatpay.RefundRequest{
		OutTradeNo:  req.OutTradeNo,
		OutRefundNo: "RF0004",
		Reason:      "hold released",
		NotifyURL:   "https://surge.example/api/v1/payments/wechat/refund-notify",
		Amount:      wechatpay.RefundRequestAmount{Refund: 1999, Total: 1999},
	}
	r1, err := c.Refund(ctx, rr)
	if err != nil {
		t.Fatalf("Refund = %v", err)
	}
	r2, err := c.Refund(ctx, rr)
	if err != nil {
		t.Fatalf("Refund again = %v", err)
	}
	if r1.RefundID == "" || r1.RefundID != r2.RefundID || r1.Status != wechatpay.RefundProcessing || r1.TransactionID != paid.TransactionID {
		t.Fatalf("refunds %+v, %+v; want the same PROCESSING refund of %s", r1, r2, paid.TransactionID)
	}
	if r1.Amount.Refund != 1999 || r1.Amount.Total != 1999 || r1.OutRefundNo != "RF0004" {
		t.Fatalf("refund = %+v", r1)
	}
	st := srv.Stats()
	if st.Refunds != 1 || st.RefundCalls != 2 || st.RefundsByNo["RF0004"] != 2 {
		t.Fatalf("Stats = %+v; want 1 refund, 2 calls", st)
	}
	q, err := c.QueryRefund(ctx, "RF0004")
	if err != nil || q.RefundID != r1.RefundID || q.Status != wechatpay.RefundSuccess || q.SuccessTime.IsZero() {
		t.Fatalf("QueryRefund = %+v, %v; want SUCCESS with a success_time", q, err)
	}
	// a second refund of the same order would exceed its total
	rr.OutRefundNo = "RF0004-b"
	var apiErr *wechatpay.APIError
	if _, err := c.Refund(ctx, rr); !errors.As(err, &apiErr) || apiErr.Code != "NOT_ENOUGH" {
		t.Fatalf("Refund(over the total) = %v; want NOT_ENOUGH", err)
	}
	if _, err := c.QueryRefund(ctx, "RF-nobody"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("QueryRefund(unknown) = %v; want 404", err)
	}
}

func TestTamperedAnswerRefused(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{})
	c := newClient(t, srv)
	srv.SignWithWrongKey(true)
	_, err := c.PrepayJSAPI(context.Background(), prepayRequest("R0005-tampered"))
	if !errors.Is(err, wechatpay.ErrBadSignature) {
		t.Fatalf("PrepayJSAPI(wrongly signed answer) = %v; want ErrBadSignature", err)
	}
	if errors.Is(err, wechatpay.ErrUnavailable) {
		t.Fatalf("a forged answer must not look retryable: %v", err)
	}

	// an answer signed by a platform key the client does not know
	srv.SignWithWrongKey(false)
	c2 := newClient(t, srv, func(cfg *wechatpay.Config) {
		cfg.PlatformKeys = map[string]*rsa.PublicKey{"PUB_KEY_ID_other": srv.PlatformPublicKey()}
	})
	if _, err := c2.PrepayJSAPI(context.Background(), prepayRequest("R0005-serial")); !errors.Is(err, wechatpay.ErrUnknownSerial) {
		t.Fatalf("PrepayJSAPI(unknown serial) = %v; want ErrUnknownSerial", err)
	}
}

func TestWrongMerchantKeyIsSignError(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{})
	other := otherKey(t)
	c := newClient(t, srv, func(cfg *wechatpay.Config) { cfg.MerchantKey = other })
	_, err := c.PrepayJSAPI(context.Background(), prepayRequest("R0006-signerr"))
	var apiErr *wechatpay.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || apiErr.Code != "SIGN_ERROR" {
		t.Fatalf("PrepayJSAPI(wrong merchant key) = %v; want APIError 401 SIGN_ERROR", err)
	}
	if st := srv.Stats(); st.Unauthorized != 1 || st.Prepays != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestServerErrorsAreUnavailable(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{})
	c := newClient(t, srv)
	srv.FailNext(1)
	_, err := c.PrepayJSAPI(context.Background(), prepayRequest("R0007-5xx"))
	var apiErr *wechatpay.APIError
	if !errors.Is(err, wechatpay.ErrUnavailable) || !errors.As(err, &apiErr) || apiErr.Status != 500 || apiErr.Code != "SYSTEM_ERROR" {
		t.Fatalf("PrepayJSAPI(500) = %v; want ErrUnavailable and APIError 500", err)
	}
	if _, err := c.PrepayJSAPI(context.Background(), prepayRequest("R0007-5xx")); err != nil {
		t.Fatalf("PrepayJSAPI after the failure = %v", err)
	}
}

func TestSlowServerTimesOut(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{})
	c := newClient(t, srv, func(cfg *wechatpay.Config) { cfg.Timeout = 100 * time.Millisecond })
	srv.SetDelay(5 * time.Second)
	start := time.Now()
	_, err := c.PrepayJSAPI(context.Background(), prepayRequest("R0008-slow"))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("PrepayJSAPI took %s against a 100ms timeout", took)
	}
	if !errors.Is(err, wechatpay.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PrepayJSAPI(slow) = %v; want ErrUnavailable wrapping DeadlineExceeded", err)
	}

	// the caller's own deadline is honoured too
	srv.SetDelay(0)
	srv.SetDown(wechatpaytest.DownHang)
	c2 := newClient(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = c2.CloseOrder(ctx, "R0008-hang")
	if took := time.Since(start); took > 2*time.Second || !errors.Is(err, wechatpay.ErrUnavailable) {
		t.Fatalf("CloseOrder(hanging server) = %v after %s; want ErrUnavailable quickly", err, took)
	}
}

func TestDownServerIsUnavailable(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{})
	c := newClient(t, srv)
	srv.SetDown(wechatpaytest.DownReset)
	if _, err := c.QueryRefund(context.Background(), "RF0009"); !errors.Is(err, wechatpay.ErrUnavailable) {
		t.Fatalf("QueryRefund(reset) = %v; want ErrUnavailable", err)
	}
	srv.SetDown(wechatpaytest.Up)
	if _, err := c.PrepayJSAPI(context.Background(), prepayRequest("R0009-up")); err != nil {
		t.Fatalf("PrepayJSAPI once up = %v", err)
	}

	// a closed server refuses connections
	srv.Close()
	if _, err := c.PrepayJSAPI(context.Background(), prepayRequest("R0009-closed")); !errors.Is(err, wechatpay.ErrUnavailable) {
		t.Fatalf("PrepayJSAPI(closed server) = %v; want ErrUnavailable", err)
	}
}

func TestPayParamsVerify(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{})
	c := newClient(t, srv)
	now := time.Unix(1_700_000_000, 0)
	p, err := c.PayParams("wx201410272009395522657a690389285100", now)
	if err != nil {
		t.Fatal(err)
	}
	if p.AppID != srv.AppID || p.TimeStamp != "1700000000" || p.Package != "prepay_id=wx201410272009395522657a690389285100" || p.SignType != "RSA" || len(p.NonceStr) != 32 {
		t.Fatalf("PayParams = %+v", p)
	}
	if err := p.Verify(srv.MerchantPublicKey()); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	msg := []byte(p.AppID + "\n" + p.TimeStamp + "\n" + p.NonceStr + "\n" + p.Package + "\n")
	if err := wechatpay.VerifyMessage(srv.MerchantPublicKey(), msg, p.PaySign); err != nil {
		t.Fatalf("paySign does not verify over appId\\ntimeStamp\\nnonceStr\\npackage\\n: %v", err)
	}
	p.Package = "prepay_id=other"
	if err := p.Verify(srv.MerchantPublicKey()); !errors.Is(err, wechatpay.ErrBadSignature) {
		t.Fatalf("Verify(tampered) = %v; want ErrBadSignature", err)
	}
	b, _ := json.Marshal(p)
	for _, name := range []string{`"appId"`, `"timeStamp"`, `"nonceStr"`, `"package"`, `"signType"`, `"paySign"`} {
		if !bytes.Contains(b, []byte(name)) {
			t.Errorf("PayParams JSON %s lacks %s", b, name)
		}
	}
}
