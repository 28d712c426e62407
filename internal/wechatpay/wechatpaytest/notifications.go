package wechatpaytest

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/surge-retail/surge/internal/wechatpay"
)

// NotifyOption changes how a notification is built, mostly to tamper with
// it in a test.
type NotifyOption func(*notifyOptions)

type notifyOptions struct {
	key       *rsa.PrivateKey
	serial    string
	now       time.Time
	offset    time.Duration
	nonce     string
	corrupt   bool
	eventType string
	notifyID  string
}

// WithWrongKey signs with a key WeChat Pay's merchant does not know, under
// the right serial: the signature does not verify.
func WithWrongKey() NotifyOption { return func(o *notifyOptions) { o.key = mustStrangerKey() } }

// WithSigningKey signs with key.
func WithSigningKey(key *rsa.PrivateKey) NotifyOption {
	return func(o *notifyOptions) { o.key = key }
}

// WithSerial sends serial as Wechatpay-Serial.
func WithSerial(serial string) NotifyOption { return func(o *notifyOptions) { o.serial = serial } }

// WithTime stamps the notification at t instead of now.
func WithTime(t time.Time) NotifyOption { return func(o *notifyOptions) { o.now = t } }

// WithTimeOffset moves Wechatpay-Timestamp by d (e.g. -6*time.Minute).
func WithTimeOffset(d time.Duration) NotifyOption { return func(o *notifyOptions) { o.offset = d } }

// WithNonce sends nonce as Wechatpay-Nonce (to replay one).
func WithNonce(nonce string) NotifyOption { return func(o *notifyOptions) { o.nonce = nonce } }

// WithCorruptCiphertext flips a bit of the sealed resource: it is still
// signed, but does not decrypt.
func WithCorruptCiphertext() NotifyOption { return func(o *notifyOptions) { o.corrupt = true } }

// WithEventType overrides the event_type.
func WithEventType(eventType string) NotifyOption {
	return func(o *notifyOptions) { o.eventType = eventType }
}

// WithID sets the notification id.
func WithID(id string) NotifyOption { return func(o *notifyOptions) { o.notifyID = id } }

func (k *Keys) options(opts []NotifyOption) notifyOptions {
	o := notifyOptions{key: k.PlatformKey, serial: k.PlatformKeyID, now: time.Now()}
	for _, f := range opts {
		f(&o)
	}
	if o.nonce == "" {
		o.nonce = wechatpay.NewNonce()
	}
	return o
}

// PaymentNotification builds a signed TRANSACTION.SUCCESS notification of
// tx. Empty fields get defaults: the keys' appid and mchid, trade_type
// JSAPI, trade_state SUCCESS, a transaction_id, payer_total = total,
// currency CNY, success_time now.
func (k *Keys) PaymentNotification(tx wechatpay.Transaction, opts ...NotifyOption) (http.Header, []byte) {
	o := k.options(opts)
	if tx.AppID == "" {
		tx.AppID = k.AppID
	}
	if tx.MchID == "" {
		tx.MchID = k.MchID
	}
	if tx.TransactionID == "" {
		tx.TransactionID = "4200" + randomDigits(24)
	}
	if tx.TradeType == "" {
		tx.TradeType = "JSAPI"
	}
	if tx.TradeState == "" {
		tx.TradeState = wechatpay.TradeStateSuccess
	}
	if tx.TradeStateDesc == "" && tx.TradeState == wechatpay.TradeStateSuccess {
		tx.TradeStateDesc = "支付成功"
	}
	if tx.SuccessTime.IsZero() {
		tx.SuccessTime = o.now.In(time.FixedZone("CST", 8*3600)).Truncate(time.Second)
	}
	if tx.Amount.PayerTotal == 0 {
		tx.Amount.PayerTotal = tx.Amount.Total
	}
	if tx.Amount.Currency == "" {
		tx.Amount.Currency = wechatpay.CurrencyCNY
	}
	if tx.Amount.PayerCurrency == "" {
		tx.Amount.PayerCurrency = wechatpay.CurrencyCNY
	}
	if o.eventType == "" {
		o.eventType = wechatpay.EventTransactionSuccess
	}
	return k.notification(o, "transaction", "支付成功", tx)
}

// RefundNotification builds a signed REFUND.* notification of r, its event
// type from r.RefundStatus (SUCCESS when empty). Empty mchid and currency
// get defaults.
func (k *Keys) RefundNotification(r wechatpay.RefundResource, opts ...NotifyOption) (http.Header, []byte) {
	o := k.options(opts)
	if r.MchID == "" {
		r.MchID = k.MchID
	}
	if r.RefundStatus == "" {
		r.RefundStatus = wechatpay.RefundSuccess
	}
	if r.Amount.Currency == "" {
		r.Amount.Currency = wechatpay.CurrencyCNY
	}
	if r.SuccessTime.IsZero() && r.RefundStatus == wechatpay.RefundSuccess {
		r.SuccessTime = o.now.In(time.FixedZone("CST", 8*3600)).Truncate(time.Second)
	}
	if o.eventType == "" {
		o.eventType = "REFUND." + r.RefundStatus
	}
	return k.notification(o, "refund", "退款状态变更", r)
}

func (k *Keys) notification(o notifyOptions, originalType, summary string, resource any) (http.Header, []byte) {
	plain, err := json.Marshal(resource)
	if err != nil {
		panic("BUG: wechatpaytest: cannot encode resource: " + err.Error())
	}
	res := k.seal(plain, originalType)
	if o.corrupt {
		sealed, _ := base64.StdEncoding.DecodeString(res.Ciphertext)
		sealed[len(sealed)/2] ^= 1
		res.Ciphertext = base64.StdEncoding.EncodeToString(sealed)
	}
	id := o.notifyID
	if id == "" {
		id = randomUUID()
	}
	body, err := json.Marshal(wechatpay.Notification{
		ID:           id,
		CreateTime:   wechatpay.FormatTime(o.now),
		EventType:    o.eventType,
		ResourceType: "encrypt-resource",
		Summary:      summary,
		Resource:     res,
	})
	if err != nil {
		panic("BUG: wechatpaytest: cannot encode notification: " + err.Error())
	}
	return k.sign(o, body), body
}

// Seal encrypts plain as WeChat Pay does: AEAD_AES_256_GCM with the APIv3
// key, a random 12-character nonce, associatedData as additional data.
func (k *Keys) Seal(plain []byte, associatedData string) wechatpay.Resource {
	return k.seal(plain, associatedData)
}

func (k *Keys) seal(plain []byte, associatedData string) wechatpay.Resource {
	block, err := aes.NewCipher(k.APIv3Key)
	if err != nil {
		panic("BUG: wechatpaytest: APIv3 key: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("BUG: wechatpaytest: " + err.Error())
	}
	nonce := wechatpay.NewNonce()[:aead.NonceSize()]
	return wechatpay.Resource{
		Algorithm:      wechatpay.AlgorithmAEADAES256GCM,
		Ciphertext:     base64.StdEncoding.EncodeToString(aead.Seal(nil, []byte(nonce), plain, []byte(associatedData))),
		AssociatedData: associatedData,
		OriginalType:   associatedData,
		Nonce:          nonce,
	}
}

// SignBody returns the Wechatpay-* headers of any body (e.g. malformed
// JSON that is nonetheless signed), with the options' tampering.
func (k *Keys) SignBody(body []byte, opts ...NotifyOption) http.Header {
	return k.sign(k.options(opts), body)
}

func (k *Keys) sign(o notifyOptions, body []byte) http.Header {
	ts := strconv.FormatInt(o.now.Add(o.offset).Unix(), 10)
	sig, err := wechatpay.SignMessage(o.key, wechatpay.ResponseMessage(ts, o.nonce, body))
	if err != nil {
		panic("BUG: wechatpaytest: " + err.Error())
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(wechatpay.HeaderTimestamp, ts)
	h.Set(wechatpay.HeaderNonce, o.nonce)
	h.Set(wechatpay.HeaderSignature, sig)
	h.Set(wechatpay.HeaderSerial, o.serial)
	return h
}

func randomUUID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// sendClient posts notifications; it never uses a proxy.
var sendClient = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

// Send posts a notification to url, as WeChat Pay does, and returns the
// answer's status and body (read up to 64 KiB).
func Send(ctx context.Context, url string, header http.Header, body []byte) (status int, respBody []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("wechatpaytest: send: %w", err)
	}
	for name, values := range header {
		req.Header[name] = append([]string(nil), values...)
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "Mozilla/4.0 (wechatpaytest)")
	resp, err := sendClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("wechatpaytest: send: %w", err)
	}
	defer resp.Body.Close()
	respBody, err = io.ReadAll(io.LimitReader(resp.Body, wechatpay.MaxBodyBytes))
	if err != nil {
		return resp.StatusCode, respBody, fmt.Errorf("wechatpaytest: send: reading the answer: %w", err)
	}
	return resp.StatusCode, respBody, nil
}
