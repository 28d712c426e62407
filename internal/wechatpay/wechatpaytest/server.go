package wechatpaytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/wechatpay"
)

// Errors of Pay and the refund helpers.
var (
	// ErrUnknownOrder: no order was placed with that out_trade_no.
	ErrUnknownOrder = errors.New("wechatpaytest: unknown order")
	// ErrOrderClosed: the order was closed and cannot be paid.
	ErrOrderClosed = errors.New("wechatpaytest: order closed")
	// ErrUnknownRefund: no refund was asked for with that out_refund_no.
	ErrUnknownRefund = errors.New("wechatpaytest: unknown refund")
)

// Options of a fake server; zero fields mean the documented defaults.
type Options struct {
	// Keys of the merchant and platform. Default: DefaultKeys, generated
	// once per process.
	Keys *Keys
	// RefundStatus is the status of a new refund. Default PROCESSING.
	RefundStatus string
	// RefundFinalStatus is what a PROCESSING refund becomes at its first
	// query. Default SUCCESS.
	RefundFinalStatus string
	// RequestsMax bounds the record of Requests (the oldest are dropped).
	// Default 1000.
	RequestsMax int
	// Addr is the "host:port" to listen on, for a server that a process
	// started beforehand must find (payment.base_url). Default
	// "127.0.0.1:0": a free loopback port.
	Addr string
}

// Down is how a server that is down fails.
type Down int

const (
	// Up serves normally.
	Up Down = iota
	// DownReset closes each connection without answering.
	DownReset
	// DownHang never answers, until the caller gives up.
	DownHang
)

// Order is an order the server knows.
type Order struct {
	wechatpay.JSAPIOrder
	PrepayID      string
	Closed        bool
	Paid          bool
	TransactionID string
	SuccessTime   time.Time
}

// Stats counts what the server saw.
type Stats struct {
	Prepays      int            // distinct orders placed
	PrepayCalls  int            // JSAPI calls answered 200
	Closes       int            // close calls answered 204
	Refunds      int            // distinct refunds (out_refund_no)
	RefundCalls  int            // refund calls answered 200
	RefundsByNo  map[string]int // refund calls answered 200, by out_refund_no
	Calls        map[string]int // every call, by route pattern ("POST /v3/pay/transactions/jsapi")
	Unauthorized int            // calls refused 401
}

// Request is a call the server received.
type Request struct {
	Method string
	URI    string
	Header http.Header
	Body   []byte
	At     time.Time
}

// Server is a fake WeChat Pay API v3 on 127.0.0.1 (or Options.Addr).
type Server struct {
	*Keys
	URL string

	opts    Options
	srv     *httptest.Server
	closing chan struct{}
	once    sync.Once

	mu        sync.Mutex
	delay     time.Duration
	failNext  int
	down      Down
	wrongKey  bool
	orders    map[string]*Order
	prepays   map[string]string // out_trade_no by prepay_id
	refunds   map[string]*wechatpay.Refund
	refundsOf map[string]int64  // refunded total by out_trade_no
	refundURL map[string]string // notify_url by out_refund_no
	stats     Stats
	requests  []Request
}

// New starts a server for a test and closes it when the test ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Start(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Start starts a server on Options.Addr (default 127.0.0.1 at a free
// port); Close stops it.
func Start(opts Options) (*Server, error) {
	if opts.Keys == nil {
		k, err := DefaultKeys()
		if err != nil {
			return nil, err
		}
		opts.Keys = k
	}
	if opts.RefundStatus == "" {
		opts.RefundStatus = wechatpay.RefundProcessing
	}
	if opts.RefundFinalStatus == "" {
		opts.RefundFinalStatus = wechatpay.RefundSuccess
	}
	if opts.RequestsMax == 0 {
		opts.RequestsMax = 1000
	}
	s := &Server{
		Keys:      opts.Keys,
		opts:      opts,
		closing:   make(chan struct{}),
		orders:    make(map[string]*Order),
		prepays:   make(map[string]string),
		refunds:   make(map[string]*wechatpay.Refund),
		refundsOf: make(map[string]int64),
		refundURL: make(map[string]string),
		stats:     Stats{RefundsByNo: map[string]int{}, Calls: map[string]int{}},
	}
	mux := http.NewServeMux()
	s.route(mux, "POST /v3/pay/transactions/jsapi", s.jsapi)
	s.route(mux, "POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close", s.closeOrder)
	s.route(mux, "GET /v3/pay/transactions/out-trade-no/{out_trade_no}", s.queryOrder)
	s.route(mux, "POST /v3/refund/domestic/refunds", s.refund)
	s.route(mux, "GET /v3/refund/domestic/refunds/{out_refund_no}", s.queryRefund)
	s.srv = httptest.NewUnstartedServer(mux) // httptest listens on 127.0.0.1
	if opts.Addr != "" {
		l, err := net.Listen("tcp", opts.Addr)
		if err != nil {
			s.srv.Listener.Close()
			return nil, fmt.Errorf("wechatpaytest: cannot listen on %s: %w", opts.Addr, err)
		}
		s.srv.Listener.Close()
		s.srv.Listener = l
	}
	s.srv.Start()
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the server; hanging calls are released.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closing)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// Config is the merchant's wechatpay.Config pointing at the server, with
// a Timeout of 2s.
func (s *Server) Config() wechatpay.Config {
	c := s.ConfigFor(s.URL)
	c.Timeout = 2 * time.Second
	return c
}

// SetDelay delays every answer by d (the caller may give up first).
func (s *Server) SetDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// FailNext answers the next n calls 500 SYSTEM_ERROR.
func (s *Server) FailNext(n int) { s.mu.Lock(); s.failNext = n; s.mu.Unlock() }

// SetDown makes the server fail every call as mode says (Up: serve).
func (s *Server) SetDown(mode Down) { s.mu.Lock(); s.down = mode; s.mu.Unlock() }

// SignWithWrongKey signs answers with a key the merchant does not know.
func (s *Server) SignWithWrongKey(on bool) { s.mu.Lock(); s.wrongKey = on; s.mu.Unlock() }

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.RefundsByNo = make(map[string]int, len(s.stats.RefundsByNo))
	for k, v := range s.stats.RefundsByNo {
		st.RefundsByNo[k] = v
	}
	st.Calls = make(map[string]int, len(s.stats.Calls))
	for k, v := range s.stats.Calls {
		st.Calls[k] = v
	}
	return st
}

// Requests returns the last Options.RequestsMax calls, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Order returns the order placed as outTradeNo.
func (s *Server) Order(outTradeNo string) (Order, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[outTradeNo]
	if !ok {
		return Order{}, false
	}
	return *o, true
}

// OrderByPrepayID returns the order whose prepay_id is prepayID (the
// "package" of wx.requestPayment less its "prepay_id=" prefix).
func (s *Server) OrderByPrepayID(prepayID string) (Order, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[s.prepays[prepayID]]
	if !ok || o.PrepayID != prepayID {
		return Order{}, false
	}
	return *o, true
}

// Refund returns the refund asked as outRefundNo.
func (s *Server) Refund(outRefundNo string) (wechatpay.Refund, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refunds[outRefundNo]
	if !ok {
		return wechatpay.Refund{}, false
	}
	return *r, true
}

// Pay marks an order paid, as the buyer paying would, and returns its
// Transaction; paying a paid order returns the same one. A closed order
// is ErrOrderClosed, an unknown one ErrUnknownOrder.
func (s *Server) Pay(outTradeNo string) (wechatpay.Transaction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[outTradeNo]
	switch {
	case !ok:
		return wechatpay.Transaction{}, fmt.Errorf("%w: %q", ErrUnknownOrder, outTradeNo)
	case o.Closed:
		return wechatpay.Transaction{}, fmt.Errorf("%w: %q", ErrOrderClosed, outTradeNo)
	}
	if !o.Paid {
		o.Paid = true
		o.TransactionID = "4200" + randomDigits(24)
		o.SuccessTime = time.Now().In(time.FixedZone("CST", 8*3600)).Truncate(time.Second)
	}
	return s.transaction(o), nil
}

// PayAndNotify pays an order (see Pay) and posts its TRANSACTION.SUCCESS
// notification to the order's notify_url.
func (s *Server) PayAndNotify(ctx context.Context, outTradeNo string, opts ...NotifyOption) (status int, body []byte, err error) {
	tx, err := s.Pay(outTradeNo)
	if err != nil {
		return 0, nil, err
	}
	o, _ := s.Order(outTradeNo)
	h, b := s.PaymentNotification(tx, opts...)
	return Send(ctx, o.NotifyURL, h, b)
}

// SettleRefund sets a refund's status (SUCCESS, CLOSED, ABNORMAL) and
// returns it as a notification's resource.
func (s *Server) SettleRefund(outRefundNo, status string) (wechatpay.RefundResource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refunds[outRefundNo]
	if !ok {
		return wechatpay.RefundResource{}, fmt.Errorf("%w: %q", ErrUnknownRefund, outRefundNo)
	}
	s.settle(r, status)
	return refundResource(s.MchID, r), nil
}

// NotifyRefund posts the REFUND.* notification of a refund's current
// status to the notify_url it was asked with.
func (s *Server) NotifyRefund(ctx context.Context, outRefundNo string, opts ...NotifyOption) (status int, body []byte, err error) {
	s.mu.Lock()
	r, ok := s.refunds[outRefundNo]
	var res wechatpay.RefundResource
	var url string
	if ok {
		res, url = refundResource(s.MchID, r), s.refundURL[outRefundNo]
	}
	s.mu.Unlock()
	if !ok {
		return 0, nil, fmt.Errorf("%w: %q", ErrUnknownRefund, outRefundNo)
	}
	h, b := s.RefundNotification(res, opts...)
	return Send(ctx, url, h, b)
}

func refundResource(mchID string, r *wechatpay.Refund) wechatpay.RefundResource {
	return wechatpay.RefundResource{
		MchID:               mchID,
		OutTradeNo:          r.OutTradeNo,
		TransactionID:       r.TransactionID,
		OutRefundNo:         r.OutRefundNo,
		RefundID:            r.RefundID,
		RefundStatus:        r.Status,
		SuccessTime:         r.SuccessTime,
		UserReceivedAccount: r.UserReceivedAccount,
		Amount:              r.Amount,
	}
}

// settle sets a refund's status; s.mu is held. A refund that did not
// happen (CLOSED, ABNORMAL) gives its amount back to the order.
func (s *Server) settle(r *wechatpay.Refund, status string) {
	counts := func(status string) bool {
		return status != wechatpay.RefundClosed && status != wechatpay.RefundAbnormal
	}
	switch {
	case counts(r.Status) && !counts(status):
		s.refundsOf[r.OutTradeNo] -= r.Amount.Refund
	case !counts(r.Status) && counts(status):
		s.refundsOf[r.OutTradeNo] += r.Amount.Refund
	}
	r.Status = status
	if status == wechatpay.RefundSuccess && r.SuccessTime.IsZero() {
		r.SuccessTime = time.Now().In(time.FixedZone("CST", 8*3600)).Truncate(time.Second)
	}
}

func (s *Server) transaction(o *Order) wechatpay.Transaction {
	tx := wechatpay.Transaction{
		AppID:      o.AppID,
		MchID:      o.MchID,
		OutTradeNo: o.OutTradeNo,
		TradeType:  "JSAPI",
		TradeState: wechatpay.TradeStateNotPay,
		Attach:     o.Attach,
		Payer:      o.Payer,
		Amount:     wechatpay.TransactionAmount{Total: o.Amount.Total, Currency: o.Amount.Currency},
	}
	switch {
	case o.Paid:
		tx.TradeState, tx.TradeStateDesc = wechatpay.TradeStateSuccess, "支付成功"
		tx.TransactionID, tx.SuccessTime = o.TransactionID, o.SuccessTime
		tx.Amount.PayerTotal, tx.Amount.PayerCurrency = o.Amount.Total, o.Amount.Currency
	case o.Closed:
		tx.TradeState, tx.TradeStateDesc = wechatpay.TradeStateClosed, "订单已关闭"
	}
	return tx
}

// call is one authenticated call: its body, and where to answer.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	body []byte
}

// route registers a handler behind the knobs and the Authorization check.
func (s *Server) route(mux *http.ServeMux, pattern string, h func(*call)) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, wechatpay.MaxBodyBytes))
		s.mu.Lock()
		s.stats.Calls[pattern]++
		if len(s.requests) >= s.opts.RequestsMax {
			s.requests = append(s.requests[:0], s.requests[1:]...)
		}
		s.requests = append(s.requests, Request{Method: r.Method, URI: r.RequestURI, Header: r.Header.Clone(), Body: body, At: time.Now()})
		down, delay := s.down, s.delay
		fail := s.failNext > 0
		if fail {
			s.failNext--
		}
		s.mu.Unlock()

		switch down {
		case DownReset:
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case DownHang:
			select {
			case <-r.Context().Done():
			case <-s.closing:
			}
			// abort the connection: returning would answer an empty 200
			panic(http.ErrAbortHandler)
		}
		if delay > 0 {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				panic(http.ErrAbortHandler)
			case <-s.closing:
				panic(http.ErrAbortHandler)
			}
		}
		c := &call{w: w, r: r, body: body}
		if fail {
			s.fail(c, http.StatusInternalServerError, "SYSTEM_ERROR", "fake failure (FailNext)")
			return
		}
		if err := s.authenticate(r, body); err != nil {
			s.mu.Lock()
			s.stats.Unauthorized++
			s.mu.Unlock()
			s.fail(c, http.StatusUnauthorized, "SIGN_ERROR", err.Error())
			return
		}
		h(c)
	})
}

// authenticate checks the Authorization of a call.
func (s *Server) authenticate(r *http.Request, body []byte) error {
	a, err := wechatpay.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	if a.MchID != s.MchID {
		return fmt.Errorf("mchid %q is not the merchant's", a.MchID)
	}
	if a.SerialNo != s.MerchantSerial {
		return fmt.Errorf("serial_no %q is not the merchant certificate's", a.SerialNo)
	}
	sec, err := strconv.ParseInt(a.Timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q is not a number", a.Timestamp)
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s off", d)
	}
	return a.Verify(s.MerchantPublicKey(), r.Method, r.RequestURI, body)
}

// answer writes a signed JSON answer (no body for 204).
func (s *Server) answer(c *call, status int, v any) {
	var body []byte
	if status != http.StatusNoContent {
		var err error
		if body, err = json.Marshal(v); err != nil {
			panic("BUG: wechatpaytest: cannot encode answer: " + err.Error())
		}
	}
	s.mu.Lock()
	key := s.PlatformKey
	if s.wrongKey {
		key = mustStrangerKey()
	}
	s.mu.Unlock()
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), wechatpay.NewNonce()
	sig, err := wechatpay.SignMessage(key, wechatpay.ResponseMessage(ts, nonce, body))
	if err != nil {
		panic("BUG: wechatpaytest: " + err.Error())
	}
	h := c.w.Header()
	h.Set(wechatpay.HeaderTimestamp, ts)
	h.Set(wechatpay.HeaderNonce, nonce)
	h.Set(wechatpay.HeaderSignature, sig)
	h.Set(wechatpay.HeaderSerial, s.PlatformKeyID)
	h.Set(wechatpay.HeaderRequestID, randomHex(16))
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	c.w.WriteHeader(status)
	c.w.Write(body)
}

func (s *Server) fail(c *call, status int, code, message string) {
	s.answer(c, status, map[string]string{"code": code, "message": message})
}

func (s *Server) jsapi(c *call) {
	var o wechatpay.JSAPIOrder
	if err := json.Unmarshal(c.body, &o); err != nil {
		s.fail(c, http.StatusBadRequest, "PARAM_ERROR", "body is not JSON: "+err.Error())
		return
	}
	if o.AppID != s.AppID || o.MchID != s.MchID {
		s.fail(c, http.StatusBadRequest, "APPID_MCHID_NOT_MATCH", "appid and mchid do not match")
		return
	}
	if msg := checkOrder(o); msg != "" {
		s.fail(c, http.StatusBadRequest, "PARAM_ERROR", msg)
		return
	}
	s.mu.Lock()
	old, ok := s.orders[o.OutTradeNo]
	var prepayID, code, msg string
	switch {
	case ok && old.Paid:
		code, msg = "ORDERPAID", "order already paid"
	case ok && old.Closed:
		code, msg = "ORDER_CLOSED", "order closed"
	case ok && old.JSAPIOrder != o:
		code, msg = "INVALID_REQUEST", "out_trade_no exists with other parameters"
	case ok:
		prepayID = old.PrepayID
	default:
		prepayID = "wx" + time.Now().Format("20060102150405") + randomHex(12)
		s.orders[o.OutTradeNo] = &Order{JSAPIOrder: o, PrepayID: prepayID}
		s.prepays[prepayID] = o.OutTradeNo
		s.stats.Prepays++
	}
	if code == "" {
		s.stats.PrepayCalls++
	}
	s.mu.Unlock()
	if code != "" {
		s.fail(c, http.StatusBadRequest, code, msg)
		return
	}
	s.answer(c, http.StatusOK, map[string]string{"prepay_id": prepayID})
}

func checkOrder(o wechatpay.JSAPIOrder) string {
	switch {
	case len(o.OutTradeNo) < 6 || len(o.OutTradeNo) > 32:
		return "out_trade_no must be 6 to 32 characters"
	case o.Description == "":
		return "description is empty"
	case o.NotifyURL == "":
		return "notify_url is empty"
	case o.Amount.Total <= 0:
		return "amount.total must be positive"
	case o.Amount.Currency != "" && o.Amount.Currency != wechatpay.CurrencyCNY:
		return "amount.currency must be CNY"
	case o.Payer.OpenID == "":
		return "payer.openid is empty"
	}
	if o.TimeExpire != "" {
		if _, err := time.Parse(time.RFC3339, o.TimeExpire); err != nil {
			return "time_expire is not RFC 3339"
		}
	}
	return ""
}

func (s *Server) closeOrder(c *call) {
	var req wechatpay.CloseRequest
	if err := json.Unmarshal(c.body, &req); err != nil || req.MchID != s.MchID {
		s.fail(c, http.StatusBadRequest, "PARAM_ERROR", "body must be {\"mchid\": the merchant's}")
		return
	}
	no := c.r.PathValue("out_trade_no")
	s.mu.Lock()
	o, ok := s.orders[no]
	paid := ok && o.Paid
	if !paid {
		if !ok {
			// WeChat Pay closes an order number nobody placed too: it can
			// then never be placed.
			o = &Order{JSAPIOrder: wechatpay.JSAPIOrder{OutTradeNo: no, MchID: s.MchID, AppID: s.AppID}}
			s.orders[no] = o
		}
		o.Closed = true
		s.stats.Closes++
	}
	s.mu.Unlock()
	if paid {
		s.fail(c, http.StatusBadRequest, "ORDERPAID", "order already paid")
		return
	}
	s.answer(c, http.StatusNoContent, nil)
}

func (s *Server) queryOrder(c *call) {
	if c.r.URL.Query().Get("mchid") != s.MchID {
		s.fail(c, http.StatusBadRequest, "PARAM_ERROR", "mchid query parameter must be the merchant's")
		return
	}
	s.mu.Lock()
	o, ok := s.orders[c.r.PathValue("out_trade_no")]
	var tx wechatpay.Transaction
	if ok {
		tx = s.transaction(o)
	}
	s.mu.Unlock()
	if !ok {
		s.fail(c, http.StatusNotFound, "ORDER_NOT_EXIST", "order does not exist")
		return
	}
	s.answer(c, http.StatusOK, tx)
}

func (s *Server) refund(c *call) {
	var req wechatpay.RefundRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		s.fail(c, http.StatusBadRequest, "PARAM_ERROR", "body is not JSON: "+err.Error())
		return
	}
	switch {
	case req.OutRefundNo == "":
		s.fail(c, http.StatusBadRequest, "PARAM_ERROR", "out_refund_no is empty")
		return
	case req.OutTradeNo == "" && req.TransactionID == "":
		s.fail(c, http.StatusBadRequest, "PARAM_ERROR", "out_trade_no or transaction_id is required")
		return
	case req.Amount.Refund <= 0 || req.Amount.Refund > req.Amount.Total:
		s.fail(c, http.StatusBadRequest, "PARAM_ERROR", "amount.refund must be in (0, amount.total]")
		return
	}
	s.mu.Lock()
	r, ok := s.refunds[req.OutRefundNo]
	var code, msg string
	if !ok {
		code, msg, r = s.newRefund(req)
	}
	var out wechatpay.Refund
	if code == "" {
		s.stats.RefundCalls++
		s.stats.RefundsByNo[req.OutRefundNo]++
		out = *r
	}
	s.mu.Unlock()
	if code != "" {
		s.fail(c, http.StatusBadRequest, code, msg)
		return
	}
	s.answer(c, http.StatusOK, out)
}

// newRefund records a new refund; s.mu is held.
func (s *Server) newRefund(req wechatpay.RefundRequest) (code, msg string, r *wechatpay.Refund) {
	var o *Order
	if req.OutTradeNo != "" {
		o = s.orders[req.OutTradeNo]
	} else {
		for _, x := range s.orders {
			if x.TransactionID == req.TransactionID {
				o = x
				break
			}
		}
	}
	outTradeNo, txID := req.OutTradeNo, req.TransactionID
	if o != nil {
		switch {
		case !o.Paid:
			return "INVALID_REQUEST", "order is not paid", nil
		case req.Amount.Total != o.Amount.Total:
			return "INVALID_REQUEST", "amount.total is not the order's", nil
		case s.refundsOf[o.OutTradeNo]+req.Amount.Refund > o.Amount.Total:
			return "NOT_ENOUGH", "refunds exceed the order's total", nil
		}
		outTradeNo, txID = o.OutTradeNo, o.TransactionID
	}
	if outTradeNo == "" {
		outTradeNo = "unknown-" + txID
	}
	if txID == "" {
		txID = "4200" + randomDigits(24)
	}
	now := time.Now().In(time.FixedZone("CST", 8*3600)).Truncate(time.Second)
	r = &wechatpay.Refund{
		RefundID:            "50" + randomDigits(27),
		OutRefundNo:         req.OutRefundNo,
		TransactionID:       txID,
		OutTradeNo:          outTradeNo,
		Channel:             "ORIGINAL",
		UserReceivedAccount: "支付用户零钱",
		CreateTime:          now,
		FundsAccount:        "AVAILABLE",
		Amount: wechatpay.RefundAmount{
			Total: req.Amount.Total, Refund: req.Amount.Refund,
			PayerTotal: req.Amount.Total, PayerRefund: req.Amount.Refund,
			Currency: req.Amount.Currency,
		},
	}
	s.refundsOf[outTradeNo] += req.Amount.Refund
	s.settle(r, s.opts.RefundStatus)
	s.refunds[req.OutRefundNo] = r
	s.refundURL[req.OutRefundNo] = req.NotifyURL
	s.stats.Refunds++
	return "", "", r
}

func (s *Server) queryRefund(c *call) {
	s.mu.Lock()
	r, ok := s.refunds[c.r.PathValue("out_refund_no")]
	var out wechatpay.Refund
	if ok {
		if r.Status == wechatpay.RefundProcessing {
			s.settle(r, s.opts.RefundFinalStatus)
		}
		out = *r
	}
	s.mu.Unlock()
	if !ok {
		s.fail(c, http.StatusNotFound, "RESOURCE_NOT_EXISTS", "refund does not exist")
		return
	}
	s.answer(c, http.StatusOK, out)
}
