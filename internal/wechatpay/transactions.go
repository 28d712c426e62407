package wechatpay

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Trade states of a Transaction.
const (
	TradeStateSuccess    = "SUCCESS"
	TradeStateRefund     = "REFUND"
	TradeStateNotPay     = "NOTPAY"
	TradeStateClosed     = "CLOSED"
	TradeStateRevoked    = "REVOKED"
	TradeStateUserPaying = "USERPAYING"
	TradeStatePayError   = "PAYERROR"
)

// CurrencyCNY is the only currency of a domestic JSAPI order.
const CurrencyCNY = "CNY"

// chinaTime is the zone WeChat Pay writes and expects times in.
var chinaTime = time.FixedZone("CST", 8*3600)

// FormatTime writes t as WeChat Pay does: RFC 3339 in UTC+8 without
// fractions, e.g. "2018-06-08T10:34:56+08:00".
func FormatTime(t time.Time) string { return t.In(chinaTime).Format(time.RFC3339) }

// PrepayRequest is a JSAPI order of the client's appid and mchid.
type PrepayRequest struct {
	Description string    // shown to the buyer; at most 127 characters
	OutTradeNo  string    // the merchant's order number, 6-32 of [0-9A-Za-z_*-]
	TimeExpire  time.Time // when the buyer can no longer pay; zero: WeChat's default
	NotifyURL   string    // where the payment notification goes
	Total       int64     // in fen
	Currency    string    // default CurrencyCNY
	OpenID      string    // the buyer's openid under the appid
	Attach      string    // optional, echoed back in the notification
}

// JSAPIOrder is the body of POST /v3/pay/transactions/jsapi.
type JSAPIOrder struct {
	AppID       string      `json:"appid"`
	MchID       string      `json:"mchid"`
	Description string      `json:"description"`
	OutTradeNo  string      `json:"out_trade_no"`
	TimeExpire  string      `json:"time_expire,omitempty"`
	Attach      string      `json:"attach,omitempty"`
	NotifyURL   string      `json:"notify_url"`
	Amount      OrderAmount `json:"amount"`
	Payer       Payer       `json:"payer"`
}

// OrderAmount is the amount of an order placed.
type OrderAmount struct {
	Total    int64  `json:"total"`
	Currency string `json:"currency"`
}

// Payer is the buyer.
type Payer struct {
	OpenID string `json:"openid"`
}

// CloseRequest is the body of POST .../out-trade-no/{no}/close.
type CloseRequest struct {
	MchID string `json:"mchid"`
}

// Transaction is a payment: the resource of a TRANSACTION.SUCCESS
// notification and the answer of QueryOrder.
type Transaction struct {
	AppID          string            `json:"appid"`
	MchID          string            `json:"mchid"`
	OutTradeNo     string            `json:"out_trade_no"`
	TransactionID  string            `json:"transaction_id,omitempty"`
	TradeType      string            `json:"trade_type,omitempty"` // "JSAPI"
	TradeState     string            `json:"trade_state"`          // TradeState*
	TradeStateDesc string            `json:"trade_state_desc,omitempty"`
	BankType       string            `json:"bank_type,omitempty"`
	Attach         string            `json:"attach,omitempty"`
	SuccessTime    time.Time         `json:"success_time,omitzero"`
	Payer          Payer             `json:"payer"`
	Amount         TransactionAmount `json:"amount"`
}

// TransactionAmount is what an order asked and what the buyer paid, in fen.
type TransactionAmount struct {
	Total         int64  `json:"total"`
	PayerTotal    int64  `json:"payer_total"`
	Currency      string `json:"currency"`
	PayerCurrency string `json:"payer_currency"`
}

// PrepayJSAPI places a JSAPI order and returns its prepay_id. Placing the
// same out_trade_no again with the same parameters returns the same
// prepay_id; with other parameters WeChat Pay refuses it (*APIError).
func (c *Client) PrepayJSAPI(ctx context.Context, r PrepayRequest) (prepayID string, err error) {
	order := JSAPIOrder{
		AppID:       c.cfg.AppID,
		MchID:       c.cfg.MchID,
		Description: r.Description,
		OutTradeNo:  r.OutTradeNo,
		Attach:      r.Attach,
		NotifyURL:   r.NotifyURL,
		Amount:      OrderAmount{Total: r.Total, Currency: r.Currency},
		Payer:       Payer{OpenID: r.OpenID},
	}
	if order.Amount.Currency == "" {
		order.Amount.Currency = CurrencyCNY
	}
	if !r.TimeExpire.IsZero() {
		order.TimeExpire = FormatTime(r.TimeExpire)
	}
	var out struct {
		PrepayID string `json:"prepay_id"`
	}
	if err := c.do(ctx, http.MethodPost, "/v3/pay/transactions/jsapi", order, &out); err != nil {
		return "", err
	}
	if out.PrepayID == "" {
		return "", fmt.Errorf("wechatpay: POST /v3/pay/transactions/jsapi: %w: no prepay_id", ErrBadResponse)
	}
	return out.PrepayID, nil
}

// CloseOrder closes an unpaid order so that it can no longer be paid.
func (c *Client) CloseOrder(ctx context.Context, outTradeNo string) error {
	return c.do(ctx, http.MethodPost, "/v3/pay/transactions/out-trade-no/"+url.PathEscape(outTradeNo)+"/close",
		CloseRequest{MchID: c.cfg.MchID}, nil)
}

// QueryOrder returns the state of an order by the merchant's number.
func (c *Client) QueryOrder(ctx context.Context, outTradeNo string) (*Transaction, error) {
	var tx Transaction
	path := "/v3/pay/transactions/out-trade-no/" + url.PathEscape(outTradeNo) + "?mchid=" + url.QueryEscape(c.cfg.MchID)
	if err := c.do(ctx, http.MethodGet, path, nil, &tx); err != nil {
		return nil, err
	}
	return &tx, nil
}
