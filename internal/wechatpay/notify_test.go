package wechatpay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

func newVerifier(t testing.TB, keys *wechatpaytest.Keys, edit ...func(*wechatpay.Config)) *wechatpay.Verifier {
	t.Helper()
	cfg := keys.ConfigFor("")
	for _, f := range edit {
		f(&cfg)
	}
	v, err := wechatpay.NewVerifier(cfg)
	if err != nil {
		t.Fatalf("NewVerifier = %v", err)
	}
	return v
}

func defaultKeys(t testing.TB) *wechatpaytest.Keys {
	t.Helper()
	k, err := wechatpaytest.DefaultKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func payment() wechatpay.Transaction {
	return wechatpay.Transaction{
		OutTradeNo: "R0100-notify",
		Payer:      wechatpay.Payer{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
		Amount:     wechatpay.TransactionAmount{Total: 1999},
	}
}

func TestNotifyPaymentDecodes(t *testing.T) {
	keys := defaultKeys(t)
	v := newVerifier(t, keys)
	h, body := keys.PaymentNotification(payment())
	ev, err := v.Verify(wechatpay.HeadersFromHTTP(h), body, time.Now())
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	tx := ev.Transaction
	if ev.EventType != wechatpay.EventTransactionSuccess || ev.Refund != nil || tx == nil {
		t.Fatalf("Event = %+v; want a TRANSACTION.SUCCESS with a Transaction", ev)
	}
	if tx.AppID != keys.AppID || tx.MchID != keys.MchID || tx.OutTradeNo != "R0100-notify" || tx.TransactionID == "" ||
		tx.TradeType != "JSAPI" || tx.TradeState != wechatpay.TradeStateSuccess || tx.SuccessTime.IsZero() ||
		tx.Payer.OpenID != "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" ||
		tx.Amount != (wechatpay.TransactionAmount{Total: 1999, PayerTotal: 1999, Currency: "CNY", PayerCurrency: "CNY"}) {
		t.Fatalf("Transaction = %+v", tx)
	}
	if ev.Serial != keys.PlatformKeyID || ev.Nonce != h.Get(wechatpay.HeaderNonce) || ev.Resource.Algorithm != "AEAD_AES_256_GCM" || ev.ResourceType != "encrypt-resource" {
		t.Fatalf("Event = %+v", ev)
	}
}

func TestNotifyRefundDecodes(t *testing.T) {
	keys := defaultKeys(t)
	v := newVerifier(t, keys)
	for _, status := range []string{wechatpay.RefundSuccess, wechatpay.RefundAbnormal, wechatpay.RefundClosed} {
		h, body := keys.RefundNotification(wechatpay.RefundResource{
			OutTradeNo: "R0101", TransactionID: "4200000001", OutRefundNo: "RF0101-" + status, RefundID: "50000001",
			RefundStatus: status, Amount: wechatpay.RefundAmount{Total: 1999, Refund: 1999, PayerTotal: 1999, PayerRefund: 1999},
		})
		ev, err := v.Verify(wechatpay.HeadersFromHTTP(h), body, time.Now())
		if err != nil {
			t.Fatalf("Verify(%s) = %v", status, err)
		}
		r := ev.Refund
		if ev.EventType != "REFUND."+status || r == nil || ev.Transaction != nil || r.RefundStatus != status || r.MchID != keys.MchID ||
			r.OutRefundNo != "RF0101-"+status || r.RefundID != "50000001" || r.Amount.Refund != 1999 || r.Amount.PayerRefund != 1999 {
			t.Fatalf("Event(%s) = %+v, refund %+v", status, ev, r)
		}
	}
}

// refused checks that Verify refuses with reason.
func refused(t *testing.T, v *wechatpay.Verifier, h http.Header, body []byte, now time.Time, reason string, sentinel error) {
	t.Helper()
	ev, err := v.Verify(wechatpay.HeadersFromHTTP(h), body, now)
	if err == nil {
		t.Fatalf("Verify = %+v; want refused as %s", ev, reason)
	}
	if got := wechatpay.Reason(err); got != reason {
		t.Fatalf("Reason(%v) = %q; want %q", err, got, reason)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("Verify = %v; want it to wrap %v", err, sentinel)
	}
	var ne *wechatpay.NotifyError
	if !errors.As(err, &ne) {
		t.Fatalf("Verify = %T; want *NotifyError", err)
	}
}

func TestNotifyRefusals(t *testing.T) {
	keys := defaultKeys(t)
	now := time.Now()
	fresh := func() *wechatpay.Verifier { return newVerifier(t, keys) }

	t.Run("bad_signature", func(t *testing.T) {
		h, body := keys.PaymentNotification(payment(), wechatpaytest.WithWrongKey())
		refused(t, fresh(), h, body, now, wechatpay.ReasonBadSignature, wechatpay.ErrBadSignature)
	})
	t.Run("bad_signature_body_changed", func(t *testing.T) {
		h, body := keys.PaymentNotification(payment())
		body = bytes.Replace(body, []byte(`"summary":"`), []byte(`"summary":"x`), 1)
		refused(t, fresh(), h, body, now, wechatpay.ReasonBadSignature, wechatpay.ErrBadSignature)
	})
	t.Run("bad_signature_not_base64", func(t *testing.T) {
		h, body := keys.PaymentNotification(payment())
		h.Set(wechatpay.HeaderSignature, "%%%")
		refused(t, fresh(), h, body, now, wechatpay.ReasonBadSignature, wechatpay.ErrBadSignature)
	})
	t.Run("unknown_serial", func(t *testing.T) {
		h, body := keys.PaymentNotification(payment(), wechatpaytest.WithSerial("PUB_KEY_ID_0114000000000000"))
		refused(t, fresh(), h, body, now, wechatpay.ReasonUnknownSerial, wechatpay.ErrUnknownSerial)
	})
	t.Run("stale_timestamp_past", func(t *testing.T) {
		h, body := keys.PaymentNotification(payment(), wechatpaytest.WithTimeOffset(-6*time.Minute))
		refused(t, fresh(), h, body, time.Now(), wechatpay.ReasonStaleTimestamp, wechatpay.ErrStaleTimestamp)
	})
	t.Run("stale_timestamp_future", func(t *testing.T) {
		h, body := keys.PaymentNotification(payment(), wechatpaytest.WithTimeOffset(6*time.Minute))
		refused(t, fresh(), h, body, time.Now(), wechatpay.ReasonStaleTimestamp, wechatpay.ErrStaleTimestamp)
	})
	t.Run("within_window", func(t *testing.T) {
		h, body := keys.PaymentNotification(payment(), wechatpaytest.WithTimeOffset(-4*time.Minute))
		if _, err := fresh().Verify(wechatpay.HeadersFromHTTP(h), body, time.Now()); err != nil {
			t.Fatalf("Verify(4 minutes old) = %v", err)
		}
	})
	t.Run("window_configurable", func(t *testing.T) {
		v := newVerifier(t, keys, func(c *wechatpay.Config) { c.NotifyWindow = time.Minute })
		h, body := keys.PaymentNotification(payment(), wechatpaytest.WithTimeOffset(-2*time.Minute))
		refused(t, v, h, body, time.Now(), wechatpay.ReasonStaleTimestamp, wechatpay.ErrStaleTimestamp)
	})
	t.Run("malformed_timestamp", func(t *testing.T) {
		body := []byte(`{}`)
		h := keys.SignBody(body)
		h.Set(wechatpay.HeaderTimestamp, "soon")
		// the signature covers the timestamp: re-sign with it
		sig, _ := wechatpay.SignMessage(keys.PlatformKey, wechatpay.ResponseMessage("soon", h.Get(wechatpay.HeaderNonce), body))
		h.Set(wechatpay.HeaderSignature, sig)
		refused(t, fresh(), h, body, now, wechatpay.ReasonMalformed, wechatpay.ErrMalformed)
	})
	t.Run("replayed_nonce", func(t *testing.T) {
		v := fresh()
		h, body := keys.PaymentNotification(payment())
		if _, err := v.Verify(wechatpay.HeadersFromHTTP(h), body, now); err != nil {
			t.Fatalf("Verify = %v", err)
		}
		refused(t, v, h, body, now.Add(time.Minute), wechatpay.ReasonReplayedNonce, wechatpay.ErrReplayedNonce)
		// the same nonce on another, genuinely signed notification is refused too
		h2, body2 := keys.PaymentNotification(payment(), wechatpaytest.WithNonce(h.Get(wechatpay.HeaderNonce)))
		refused(t, v, h2, body2, now, wechatpay.ReasonReplayedNonce, wechatpay.ErrReplayedNonce)
		// once the window is over, a replay is stale, not replayed
		refused(t, v, h, body, now.Add(6*time.Minute), wechatpay.ReasonStaleTimestamp, wechatpay.ErrStaleTimestamp)
	})
	t.Run("decrypt_failed", func(t *testing.T) {
		h, body := keys.PaymentNotification(payment(), wechatpaytest.WithCorruptCiphertext())
		refused(t, fresh(), h, body, now, wechatpay.ReasonDecryptFailed, wechatpay.ErrDecrypt)
	})
	t.Run("decrypt_failed_wrong_apiv3_key", func(t *testing.T) {
		v := newVerifier(t, keys, func(c *wechatpay.Config) { c.APIv3Key = bytes.Repeat([]byte("k"), 32) })
		h, body := keys.PaymentNotification(payment())
		refused(t, v, h, body, now, wechatpay.ReasonDecryptFailed, wechatpay.ErrDecrypt)
	})
	t.Run("too_large", func(t *testing.T) {
		body := bytes.Repeat([]byte(" "), wechatpay.MaxBodyBytes+1)
		refused(t, fresh(), keys.SignBody(body), body, now, wechatpay.ReasonTooLarge, wechatpay.ErrTooLarge)
	})
	t.Run("malformed_json", func(t *testing.T) {
		body := []byte(`{"id":"x","resource":`)
		refused(t, fresh(), keys.SignBody(body), body, now, wechatpay.ReasonMalformed, wechatpay.ErrMalformed)
	})
	t.Run("malformed_resource", func(t *testing.T) {
		res := keys.Seal([]byte(`{"amount":"lots"}`), "transaction")
		body, _ := json.Marshal(wechatpay.Notification{ID: "n1", EventType: wechatpay.EventTransactionSuccess, ResourceType: "encrypt-resource", Resource: res})
		refused(t, fresh(), keys.SignBody(body), body, now, wechatpay.ReasonMalformed, wechatpay.ErrMalformed)
	})
	t.Run("missing_header", func(t *testing.T) {
		for _, name := range []string{wechatpay.HeaderTimestamp, wechatpay.HeaderNonce, wechatpay.HeaderSignature, wechatpay.HeaderSerial} {
			h, body := keys.PaymentNotification(payment())
			h.Del(name)
			refused(t, fresh(), h, body, now, wechatpay.ReasonMissingHeader, wechatpay.ErrMissingHeader)
		}
	})
}

// A forged notification carrying a real one's nonce must not burn it.
func TestForgedNotificationDoesNotBurnNonce(t *testing.T) {
	keys := defaultKeys(t)
	v := newVerifier(t, keys)
	now := time.Now()
	const nonce = "NONCE-OF-A-REAL-NOTIFICATION-0001"
	for _, forge := range []wechatpaytest.NotifyOption{wechatpaytest.WithWrongKey(), wechatpaytest.WithSerial("PUB_KEY_ID_unknown")} {
		h, body := keys.PaymentNotification(payment(), wechatpaytest.WithNonce(nonce), forge)
		if _, err := v.Verify(wechatpay.HeadersFromHTTP(h), body, now); err == nil {
			t.Fatal("forged notification accepted")
		}
	}
	if n := v.Nonces(); n != 0 {
		t.Fatalf("Nonces = %d after forgeries; want 0", n)
	}
	h, body := keys.PaymentNotification(payment(), wechatpaytest.WithNonce(nonce))
	if _, err := v.Verify(wechatpay.HeadersFromHTTP(h), body, now); err != nil {
		t.Fatalf("Verify(real, after forgeries of its nonce) = %v", err)
	}
}

// Many notifications, concurrently, over several windows, twice as dense
// as the memory: it never holds more than NoncesMax, every refusal is
// nonces_full, and expired nonces make room again.
func TestNonceMemoryBoundedConcurrent(t *testing.T) {
	keys := defaultKeys(t)
	const max, total, workers = 64, 320, 8
	window := time.Minute
	v := newVerifier(t, keys, func(c *wechatpay.Config) { c.NoncesMax = max; c.NotifyWindow = window })
	t0 := time.Now()
	type note struct {
		h    http.Header
		body []byte
		at   time.Time
	}
	// 320 notifications over 2.5 windows: about 128 stamped per window,
	// twice what the memory holds
	notes := make([]note, total)
	for i := range notes {
		at := t0.Add(time.Duration(i) * 5 * window / 2 / total)
		h, body := keys.PaymentNotification(payment(), wechatpaytest.WithTime(at))
		notes[i] = note{h, body, at}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, full := 0, 0
	next := make(chan note)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range next {
				_, err := v.Verify(wechatpay.HeadersFromHTTP(n.h), n.body, n.at)
				mu.Lock()
				switch wechatpay.Reason(err) {
				case "":
					accepted++
				case wechatpay.ReasonNoncesFull:
					full++
				default:
					t.Errorf("Verify = %v", err)
				}
				mu.Unlock()
				if got := v.Nonces(); got > max {
					t.Errorf("Nonces = %d; want at most %d", got, max)
				}
			}
		}()
	}
	for _, n := range notes {
		next <- n
	}
	close(next)
	wg.Wait()
	t.Logf("accepted %d, refused as full %d", accepted, full)
	if accepted+full != total || accepted < max || full == 0 {
		t.Fatalf("accepted %d, full %d of %d", accepted, full, total)
	}
	if got := v.Nonces(); got > max {
		t.Fatalf("Nonces = %d; want at most %d", got, max)
	}
}

// The notify route as a caller writes it: VerifyRequest, then
// WriteNotifyAnswer; WeChat's conventions on the wire.
func TestNotifyOverHTTP(t *testing.T) {
	srv := wechatpaytest.New(t, wechatpaytest.Options{})
	c := newClient(t, srv)
	var mu sync.Mutex
	var got []*wechatpay.Event
	notify := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := c.Verifier().VerifyRequest(r, time.Now())
		if err == nil {
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
		}
		wechatpay.WriteNotifyAnswer(w, err)
	}))
	defer notify.Close()

	ctx := context.Background()
	req := prepayRequest("R0102-http")
	req.NotifyURL = notify.URL
	if _, err := c.PrepayJSAPI(ctx, req); err != nil {
		t.Fatal(err)
	}
	status, body, err := srv.PayAndNotify(ctx, req.OutTradeNo)
	if err != nil || status != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("PayAndNotify = %d %q, %v; want 204 and no body", status, body, err)
	}
	if len(got) != 1 || got[0].Transaction.OutTradeNo != req.OutTradeNo || got[0].Transaction.Amount.Total != req.Total {
		t.Fatalf("events %+v", got)
	}

	h, b := srv.PaymentNotification(*got[0].Transaction, wechatpaytest.WithNonce(got[0].Nonce))
	status, body, err = wechatpaytest.Send(ctx, notify.URL, h, b)
	if err != nil || status != http.StatusBadRequest || string(body) != `{"code":"FAIL","message":"replayed_nonce"}` {
		t.Fatalf("replay answered %d %s, %v; want 400 FAIL replayed_nonce", status, body, err)
	}

	rr := wechatpay.RefundRequest{OutTradeNo: req.OutTradeNo, OutRefundNo: "RF0102", NotifyURL: notify.URL,
		Amount: wechatpay.RefundRequestAmount{Refund: req.Total, Total: req.Total}}
	if _, err := c.Refund(ctx, rr); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SettleRefund("RF0102", wechatpay.RefundSuccess); err != nil {
		t.Fatal(err)
	}
	status, _, err = srv.NotifyRefund(ctx, "RF0102")
	if err != nil || status != http.StatusNoContent {
		t.Fatalf("NotifyRefund = %d, %v; want 204", status, err)
	}
	if len(got) != 2 || got[1].EventType != wechatpay.EventRefundSuccess || got[1].Refund.OutRefundNo != "RF0102" || got[1].Refund.RefundStatus != "SUCCESS" {
		t.Fatalf("refund event %+v", got[1])
	}
}
