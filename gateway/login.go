package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// loginCodeLenMax bounds a wx.login code, bytes.
const loginCodeLenMax = 128

// wechatBodyMaxBytes bounds the code2session answer we read.
const wechatBodyMaxBytes = 16 << 10

// WeChat errcodes of code2session that we tell apart.
const (
	wxErrBusy        = -1    // system busy
	wxErrInvalidCode = 40029 // invalid code
	wxErrCodeUsed    = 40163 // code been used
	wxErrRateLimit   = 45011 // API minute-quota reached for this user
	wxErrRiskyUser   = 40226 // high-risk user blocked
)

// loginer turns a login code into a user id (an openid). Errors are
// *apiError for answers the caller should see, or others (50000).
type loginer interface {
	login(ctx context.Context, code string) (userID string, err error)
}

// devLogin takes the code as the openid.
type devLogin struct{}

func (devLogin) login(_ context.Context, code string) (string, error) {
	if !validUserID(code) {
		return "", errf(CodeBadRequest, "code must be 1-128 printable ASCII characters, without spaces or braces")
	}
	return code, nil
}

// wechatLogin calls code2session.
type wechatLogin struct {
	base, appID, secret string
	timeout             time.Duration
	client              *http.Client
}

func newWeChatLogin(o LoginOptions) *wechatLogin {
	return &wechatLogin{
		base: o.WeChatBaseURL, appID: o.AppID, secret: o.AppSecret, timeout: o.Timeout,
		client: &http.Client{
			Timeout: o.Timeout,
			Transport: &http.Transport{
				MaxIdleConnsPerHost: 64,
				MaxConnsPerHost:     256, // bound concurrent calls to WeChat
				IdleConnTimeout:     90 * time.Second,
			},
		},
	}
}

type code2session struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
	UnionID    string `json:"unionid"`
	ErrCode    int    `json:"errcode"`
	ErrMsg     string `json:"errmsg"`
}

func (w *wechatLogin) login(ctx context.Context, code string) (string, error) {
	if len(code) == 0 || len(code) > loginCodeLenMax {
		return "", errf(CodeBadRequest, "code must be 1-128 characters")
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	q := url.Values{}
	q.Set("appid", w.appID)
	q.Set("secret", w.secret)
	q.Set("js_code", code)
	q.Set("grant_type", "authorization_code")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.base+"/sns/jscode2session?"+q.Encode(), nil)
	if err != nil {
		return "", fmt.Errorf("cannot build code2session request: %w", err)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return "", &apiError{code: CodeUnavailable, msg: "login provider unreachable"}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, wechatBodyMaxBytes))
	if err != nil {
		return "", &apiError{code: CodeUnavailable, msg: "login provider unreachable"}
	}
	if resp.StatusCode != http.StatusOK {
		return "", &apiError{code: CodeUnavailable, msg: fmt.Sprintf("login provider answered HTTP %d", resp.StatusCode)}
	}
	var r code2session
	if err := json.Unmarshal(body, &r); err != nil {
		return "", &apiError{code: CodeUnavailable, msg: "login provider answered garbage"}
	}
	switch r.ErrCode {
	case 0:
	case wxErrInvalidCode, wxErrCodeUsed:
		return "", errf(CodeUnauthorized, "invalid login code")
	case wxErrRateLimit:
		return "", errf(CodeThrottled, "login rate limited, retry later")
	case wxErrRiskyUser:
		return "", errf(CodeRiskDenied, "denied by risk control: wechat")
	case wxErrBusy:
		return "", errf(CodeUnavailable, "login provider busy, retry later")
	default:
		// Our configuration (appid, secret) is wrong, or WeChat changed.
		return "", fmt.Errorf("code2session errcode %d: %s", r.ErrCode, r.ErrMsg)
	}
	if !validUserID(r.OpenID) {
		return "", fmt.Errorf("code2session returned a bad openid %q", r.OpenID)
	}
	return r.OpenID, nil
}
