// Package wechatpay speaks the merchant side of the WeChat Pay API v3 with
// Go's standard crypto only: it signs requests with the merchant key,
// verifies the platform's signature on every answer, places JSAPI orders,
// closes them, asks for and queries refunds, makes the parameters of the
// mini-program's wx.requestPayment, and verifies, de-duplicates and
// decrypts payment and refund notifications.
//
// It knows nothing of Surge's business: checking a notification's mchid,
// appid, amount and currency against an order is the caller's job (every
// field is exposed).
//
// Files, one concern each:
//
//	config.go        Config, its defaults, Validate, and redacted String/LogValue
//	keys.go          LoadPrivateKey, LoadPublicKey (PEM: PKCS#1, PKCS#8, PKIX, certificates)
//	sign.go          the signed message, SHA256-RSA sign/verify, the Authorization header
//	client.go        Client: one signed call, answer verification, error classes
//	transactions.go  JSAPI prepay, close and query of an order; Transaction
//	refunds.go       refund request and query; Refund, RefundResource
//	payparams.go     PayParams for wx.requestPayment
//	notify.go        Verifier: notification checks, decryption and decoding
//	nonces.go        the bounded memory of notification nonces
//	answer.go        WeChat's answer to a notification (204, or {"code":"FAIL"})
//	errors.go        sentinel errors, APIError, NotifyError and Reason
//
// The subpackage wechatpaytest runs a fake WeChat Pay server on 127.0.0.1
// for tests; nothing in this package or its tests reaches the internet.
//
// Errors a caller branches on:
//
//   - ErrUnavailable: WeChat Pay could not be reached, did not answer in
//     time, or answered 5xx/429. The call may be retried; a gateway answers
//     503.
//   - *APIError: WeChat Pay refused the call (4xx) with {"code","message"}.
//   - ErrBadSignature, ErrUnknownSerial, ErrBadResponse: an answer that
//     cannot be trusted or read; not retried blindly.
//   - *NotifyError: a refused notification, with a Reason usable as a
//     metrics label (see Reason).
package wechatpay
