package wechatpay

import (
	"crypto/rsa"
	"fmt"
	"strconv"
	"time"
)

// PayParams are the parameters of the mini-program's wx.requestPayment,
// with WeChat's JSON field names.
type PayParams struct {
	AppID     string `json:"appId"`
	TimeStamp string `json:"timeStamp"` // unix seconds
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"` // "prepay_id=..."
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
}

// PayParams signs the wx.requestPayment parameters of prepayID with the
// merchant key, stamped now.
func (c *Client) PayParams(prepayID string, now time.Time) (PayParams, error) {
	return NewPayParams(c.cfg.MerchantKey, c.cfg.AppID, prepayID, now, NewNonce())
}

// NewPayParams signs the wx.requestPayment parameters: paySign is
// base64(SHA256-RSA over "appId\ntimeStamp\nnonceStr\npackage\n").
func NewPayParams(key *rsa.PrivateKey, appID, prepayID string, now time.Time, nonce string) (PayParams, error) {
	p := PayParams{
		AppID:     appID,
		TimeStamp: strconv.FormatInt(now.Unix(), 10),
		NonceStr:  nonce,
		Package:   "prepay_id=" + prepayID,
		SignType:  "RSA",
	}
	sig, err := SignMessage(key, p.message())
	if err != nil {
		return PayParams{}, fmt.Errorf("wechatpay: pay params: %w", err)
	}
	p.PaySign = sig
	return p, nil
}

func (p PayParams) message() []byte {
	return []byte(p.AppID + "\n" + p.TimeStamp + "\n" + p.NonceStr + "\n" + p.Package + "\n")
}

// Verify checks PaySign with the merchant public key; its error wraps
// ErrBadSignature.
func (p PayParams) Verify(pub *rsa.PublicKey) error {
	return VerifyMessage(pub, p.message(), p.PaySign)
}
