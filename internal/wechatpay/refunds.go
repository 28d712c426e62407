package wechatpay

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Refund states.
const (
	RefundSuccess    = "SUCCESS"
	RefundClosed     = "CLOSED"
	RefundProcessing = "PROCESSING"
	RefundAbnormal   = "ABNORMAL"
)

// RefundRequest is the body of POST /v3/refund/domestic/refunds. One of
// OutTradeNo and TransactionID names the payment; OutRefundNo makes the
// request idempotent: asking again with it returns the same refund.
type RefundRequest struct {
	TransactionID string              `json:"transaction_id,omitempty"`
	OutTradeNo    string              `json:"out_trade_no,omitempty"`
	OutRefundNo   string              `json:"out_refund_no"`
	Reason        string              `json:"reason,omitempty"`
	NotifyURL     string              `json:"notify_url,omitempty"`
	Amount        RefundRequestAmount `json:"amount"`
}

// RefundRequestAmount is how much of a payment's Total to refund, in fen.
// Currency defaults to CurrencyCNY.
type RefundRequestAmount struct {
	Refund   int64  `json:"refund"`
	Total    int64  `json:"total"`
	Currency string `json:"currency"`
}

// Refund is WeChat Pay's answer to a refund request or query.
type Refund struct {
	RefundID            string       `json:"refund_id"`
	OutRefundNo         string       `json:"out_refund_no"`
	TransactionID       string       `json:"transaction_id"`
	OutTradeNo          string       `json:"out_trade_no"`
	Channel             string       `json:"channel,omitempty"`
	UserReceivedAccount string       `json:"user_received_account,omitempty"`
	SuccessTime         time.Time    `json:"success_time,omitzero"`
	CreateTime          time.Time    `json:"create_time,omitzero"`
	Status              string       `json:"status"` // Refund*
	FundsAccount        string       `json:"funds_account,omitempty"`
	Amount              RefundAmount `json:"amount"`
}

// RefundAmount is the amounts of a refund, in fen.
type RefundAmount struct {
	Total       int64  `json:"total"`
	Refund      int64  `json:"refund"`
	PayerTotal  int64  `json:"payer_total"`
	PayerRefund int64  `json:"payer_refund"`
	Currency    string `json:"currency,omitempty"`
}

// RefundResource is the resource of a REFUND.* notification.
type RefundResource struct {
	MchID               string       `json:"mchid"`
	OutTradeNo          string       `json:"out_trade_no"`
	TransactionID       string       `json:"transaction_id"`
	OutRefundNo         string       `json:"out_refund_no"`
	RefundID            string       `json:"refund_id"`
	RefundStatus        string       `json:"refund_status"` // Refund*
	SuccessTime         time.Time    `json:"success_time,omitzero"`
	UserReceivedAccount string       `json:"user_received_account,omitempty"`
	Amount              RefundAmount `json:"amount"`
}

// Refund asks for a refund (or returns the one already asked for with the
// same OutRefundNo).
func (c *Client) Refund(ctx context.Context, r RefundRequest) (*Refund, error) {
	if r.Amount.Currency == "" {
		r.Amount.Currency = CurrencyCNY
	}
	var out Refund
	if err := c.do(ctx, http.MethodPost, "/v3/refund/domestic/refunds", r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// QueryRefund returns a refund by the merchant's refund number.
func (c *Client) QueryRefund(ctx context.Context, outRefundNo string) (*Refund, error) {
	var out Refund
	if err := c.do(ctx, http.MethodGet, "/v3/refund/domestic/refunds/"+url.PathEscape(outRefundNo), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
