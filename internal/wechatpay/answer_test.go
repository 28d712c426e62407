package wechatpay_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/surge-retail/surge/internal/wechatpay"
)

func TestNotifyAnswer(t *testing.T) {
	f := func(err error, wantStatus int, wantBody string) {
		t.Helper()
		status, body := wechatpay.NotifyAnswer(err)
		if status != wantStatus || string(body) != wantBody {
			t.Errorf("NotifyAnswer(%v) = %d %s; want %d %s", err, status, body, wantStatus, wantBody)
		}
	}
	f(nil, 204, "")
	f(&wechatpay.NotifyError{Reason: wechatpay.ReasonBadSignature, Err: wechatpay.ErrBadSignature}, 401, `{"code":"FAIL","message":"bad_signature"}`)
	f(&wechatpay.NotifyError{Reason: wechatpay.ReasonReplayedNonce, Err: wechatpay.ErrReplayedNonce}, 400, `{"code":"FAIL","message":"replayed_nonce"}`)
	f(&wechatpay.NotifyError{Reason: wechatpay.ReasonTooLarge, Err: wechatpay.ErrTooLarge}, 413, `{"code":"FAIL","message":"too_large"}`)
	f(&wechatpay.NotifyError{Reason: wechatpay.ReasonNoncesFull, Err: wechatpay.ErrNoncesFull}, 503, `{"code":"FAIL","message":"nonces_full"}`)
	f(fmt.Errorf("order store: %w", errors.New("disk full at /secret/path")), 500, `{"code":"FAIL","message":"internal error"}`)

	w := httptest.NewRecorder()
	wechatpay.WriteNotifyAnswer(w, nil)
	if w.Code != 204 || w.Body.Len() != 0 {
		t.Errorf("WriteNotifyAnswer(nil) = %d %q", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	wechatpay.WriteNotifyAnswer(w, &wechatpay.NotifyError{Reason: wechatpay.ReasonMalformed, Err: wechatpay.ErrMalformed})
	if w.Code != 400 || w.Body.String() != `{"code":"FAIL","message":"malformed"}` || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("WriteNotifyAnswer(malformed) = %d %q %v", w.Code, w.Body, w.Header())
	}
}

func TestReason(t *testing.T) {
	if got := wechatpay.Reason(nil); got != "" {
		t.Errorf("Reason(nil) = %q", got)
	}
	if got := wechatpay.Reason(errors.New("x")); got != wechatpay.ReasonOther {
		t.Errorf("Reason(other) = %q", got)
	}
	wrapped := fmt.Errorf("gateway: %w", &wechatpay.NotifyError{Reason: wechatpay.ReasonStaleTimestamp, Err: wechatpay.ErrStaleTimestamp})
	if got := wechatpay.Reason(wrapped); got != wechatpay.ReasonStaleTimestamp || !errors.Is(wrapped, wechatpay.ErrStaleTimestamp) {
		t.Errorf("Reason(wrapped) = %q", got)
	}
}
