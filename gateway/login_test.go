package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fakeWeChat is a loopback stand-in for api.weixin.qq.com's
// /sns/jscode2session: codes map onto canned answers.
type fakeWeChat struct {
	t       *testing.T
	srv     *httptest.Server
	release chan struct{} // "hang" codes wait for it
	mu      sync.Mutex
	calls   int
}

func newFakeWeChat(t *testing.T) *fakeWeChat {
	f := &fakeWeChat{t: t, release: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.release)
		f.srv.Close()
	})
	return f
}

func (f *fakeWeChat) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	q := r.URL.Query()
	if r.URL.Path != "/sns/jscode2session" || q.Get("appid") != "wxapp" || q.Get("secret") != "wxsecret" ||
		q.Get("grant_type") != "authorization_code" {
		fmt.Fprint(w, `{"errcode":40013,"errmsg":"invalid appid"}`)
		return
	}
	w.Header().Set("Content-Type", "text/plain") // WeChat really says text/plain
	switch code := q.Get("js_code"); code {
	case "bad":
		fmt.Fprint(w, `{"errcode":40029,"errmsg":"invalid code"}`)
	case "used":
		fmt.Fprint(w, `{"errcode":40163,"errmsg":"code been used"}`)
	case "ratelimit":
		fmt.Fprint(w, `{"errcode":45011,"errmsg":"api minute-quota reach limit"}`)
	case "risky":
		fmt.Fprint(w, `{"errcode":40226,"errmsg":"high risk user"}`)
	case "busy":
		fmt.Fprint(w, `{"errcode":-1,"errmsg":"system error"}`)
	case "weird":
		fmt.Fprint(w, `{"errcode":12345,"errmsg":"something new"}`)
	case "http500":
		w.WriteHeader(500)
	case "garbage":
		fmt.Fprint(w, `<html>`)
	case "noopenid":
		fmt.Fprint(w, `{"session_key":"k"}`)
	case "hang":
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
	default:
		fmt.Fprintf(w, `{"openid":"o-%s","session_key":"sk","unionid":"u"}`, code)
	}
}

func TestWeChatLogin(t *testing.T) {
	fw := newFakeWeChat(t)
	w := newWeChatLogin(LoginOptions{WeChatBaseURL: fw.srv.URL, AppID: "wxapp", AppSecret: "wxsecret", Timeout: 200 * time.Millisecond})
	f := func(code string, wantUID string, wantCode int) {
		t.Helper()
		uid, err := w.login(context.Background(), code)
		gotCode := CodeOK
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				gotCode = ae.code
			} else {
				gotCode = CodeInternal
			}
		}
		if uid != wantUID || gotCode != wantCode {
			t.Errorf("login(%q) = %q, code %d (%v); want %q, code %d", code, uid, gotCode, err, wantUID, wantCode)
		}
	}
	f("c0de", "o-c0de", CodeOK)
	f("bad", "", CodeUnauthorized)
	f("used", "", CodeUnauthorized)
	f("ratelimit", "", CodeThrottled)
	f("risky", "", CodeRiskDenied)
	f("busy", "", CodeUnavailable)
	f("weird", "", CodeInternal)
	f("http500", "", CodeUnavailable)
	f("garbage", "", CodeUnavailable)
	f("noopenid", "", CodeInternal)
	f("hang", "", CodeUnavailable) // client timeout
	f("", "", CodeBadRequest)
	f(string(make([]byte, loginCodeLenMax+1)), "", CodeBadRequest)

	// Wrong credentials are our bug: 50000.
	w2 := newWeChatLogin(LoginOptions{WeChatBaseURL: fw.srv.URL, AppID: "other", AppSecret: "wxsecret", Timeout: time.Second})
	if _, err := w2.login(context.Background(), "c0de"); err == nil || errors.As(err, new(*apiError)) {
		t.Errorf("login with a bad appid: %v; want an internal error", err)
	}
	// Unreachable provider: 50300.
	w3 := newWeChatLogin(LoginOptions{WeChatBaseURL: "http://127.0.0.1:1", AppID: "a", AppSecret: "b", Timeout: time.Second})
	_, err := w3.login(context.Background(), "c0de")
	var ae *apiError
	if !errors.As(err, &ae) || ae.code != CodeUnavailable {
		t.Errorf("login to a closed port: %v; want code %d", err, CodeUnavailable)
	}
}

func TestDevLogin(t *testing.T) {
	uid, err := devLogin{}.login(context.Background(), "openid-1")
	if err != nil || uid != "openid-1" {
		t.Errorf("dev login = %q, %v", uid, err)
	}
	for _, code := range []string{"has{brace", "has}brace"} {
		if _, err := (devLogin{}).login(context.Background(), code); err == nil {
			t.Errorf("dev login accepted %q, which could log in but never reserve", code)
		}
	}
	if _, err := (devLogin{}).login(context.Background(), "has space"); err == nil {
		t.Error("dev login accepted a code with a space")
	}
}
