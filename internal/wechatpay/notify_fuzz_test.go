package wechatpay_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/wechatpay"
)

// FuzzVerify: whatever the headers and body, Verify does not panic, and a
// refusal is a *NotifyError with one of the documented reasons.
func FuzzVerify(f *testing.F) {
	keys := defaultKeys(f)
	v := newVerifier(f, keys)
	h, body := keys.PaymentNotification(payment())
	f.Add(h.Get(wechatpay.HeaderTimestamp), h.Get(wechatpay.HeaderNonce), h.Get(wechatpay.HeaderSignature), h.Get(wechatpay.HeaderSerial), body)
	f.Add("", "", "", "", []byte(`{}`))
	f.Add("1", "n", "AAAA", keys.PlatformKeyID, []byte(`{"resource":{"algorithm":"AEAD_AES_256_GCM","nonce":"123456789012","ciphertext":"AAAA"}}`))
	reasons := map[string]bool{
		wechatpay.ReasonTooLarge: true, wechatpay.ReasonMissingHeader: true, wechatpay.ReasonMalformed: true,
		wechatpay.ReasonUnknownSerial: true, wechatpay.ReasonBadSignature: true, wechatpay.ReasonStaleTimestamp: true,
		wechatpay.ReasonReplayedNonce: true, wechatpay.ReasonNoncesFull: true, wechatpay.ReasonDecryptFailed: true,
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, ts, nonce, sig, serial string, body []byte) {
		hh := http.Header{}
		hh.Set(wechatpay.HeaderTimestamp, ts)
		hh.Set(wechatpay.HeaderNonce, nonce)
		hh.Set(wechatpay.HeaderSignature, sig)
		hh.Set(wechatpay.HeaderSerial, serial)
		_, err := v.Verify(wechatpay.HeadersFromHTTP(hh), body, now)
		if err != nil && !reasons[wechatpay.Reason(err)] {
			t.Fatalf("Verify = %v with reason %q", err, wechatpay.Reason(err))
		}
	})
}
