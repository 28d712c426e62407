// Package wechatpaytest runs a fake WeChat Pay API v3 server on 127.0.0.1
// (a free port, or Options.Addr) for tests and load tests, and builds
// signed, encrypted notifications.
//
// The server (Start, or New in a test) generates its keys once per process
// unless given Keys: a merchant key pair and serial, a platform key pair
// with an id like "PUB_KEY_ID_0114...", a random APIv3 key, a mchid and an
// appid. Server.Config is a wechatpay.Config pointing at it. It checks
// every call's Authorization with the merchant public key and mchid
// (401 SIGN_ERROR otherwise), signs every answer with the platform key, and
// keeps orders and refunds in memory:
//
//   - POST /v3/pay/transactions/jsapi: the same out_trade_no with the same
//     parameters gets the same prepay_id; with other parameters 400
//     INVALID_REQUEST; a closed order 400 ORDER_CLOSED; a paid one 400
//     ORDERPAID.
//   - POST /v3/pay/transactions/out-trade-no/{no}/close: 204, the order is
//     closed (Pay then refuses it); a paid order 400 ORDERPAID.
//   - GET /v3/pay/transactions/out-trade-no/{no}?mchid=: the Transaction,
//     404 ORDER_NOT_EXIST.
//   - POST /v3/refund/domestic/refunds: idempotent by out_refund_no (the
//     same refund_id); starts as Options.RefundStatus (PROCESSING). A refund
//     of an order the server does not know is accepted, since tests often
//     build payment notifications without Pay.
//   - GET /v3/refund/domestic/refunds/{no}: the first query of a PROCESSING
//     refund settles it as Options.RefundFinalStatus (SUCCESS).
//
// Knobs: SetDelay, FailNext (500 SYSTEM_ERROR), SetDown (reset connections
// or hang), SignWithWrongKey; counters in Stats and a bounded record of
// calls in Requests. Order finds an order by out_trade_no and
// OrderByPrepayID by the prepay_id it was given. Pay marks an order paid
// and PayAndNotify posts its TRANSACTION.SUCCESS notification to the
// order's notify_url; SettleRefund and NotifyRefund do the same for
// refunds.
//
// Keys.PaymentNotification, Keys.RefundNotification and Keys.SignBody build
// notifications (signed with the platform key, encrypted with the APIv3
// key), with NotifyOptions to tamper with them; Send posts one.
//
// WriteKeys writes Keys to a directory, and LoadKeys reads them back, one
// file each (secrets with mode 0600):
//
//	merchant_private_key.pem    merchant API private key, PKCS#8 "PRIVATE KEY"
//	merchant_serial.txt         merchant certificate serial (serial_no)
//	platform_public_key.pem     platform public key, PKIX "PUBLIC KEY"
//	platform_public_key_id.txt  its id, "PUB_KEY_ID_..." (Wechatpay-Serial)
//	platform_private_key.pem    platform private key, PKCS#8 (signs notifications in a load test)
//	apiv3_key.txt               the APIv3 key, 32 characters
//	mchid.txt                   the merchant id
//	appid.txt                   the appid
//
// Trailing white space in the .txt files is ignored.
package wechatpaytest
