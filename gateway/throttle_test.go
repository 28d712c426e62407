package gateway

import (
	"testing"
	"time"
)

// TestWrongAdminTokensThrottled: an address may send 10 wrong admin tokens,
// then one a second; past that every admin call from it is 429/42900 with
// Retry-After, even with the right token, until its bucket refills; right
// tokens never count, and other addresses are not affected.
func TestWrongAdminTokensThrottled(t *testing.T) {
	h := newHarness(t, "memory")
	h.wantCode(CodeOK, "GET", "/admin/v1/stats", nil, adminAuth)
	for range 10 {
		h.wantCode(CodeUnauthorized, "GET", "/admin/v1/stats", nil, "Authorization: Bearer wrong-token-guess")
	}
	r := h.wantCode(CodeThrottled, "GET", "/admin/v1/stats", nil, "Authorization: Bearer wrong-token-guess")
	if r.Header.Get("Retry-After") == "" {
		t.Error("42900 without Retry-After")
	}
	h.wantCode(CodeThrottled, "GET", "/admin/v1/stats", nil, adminAuth)
	// Another address (a client behind the trusted loopback proxy) is not
	// held back.
	h.wantCode(CodeOK, "GET", "/admin/v1/stats", nil, adminAuth, "X-Forwarded-For: 203.0.113.7")
	h.clock.advance(2 * time.Second)
	h.wantCode(CodeOK, "GET", "/admin/v1/stats", nil, adminAuth)
	for range 50 { // right tokens take nothing
		h.wantCode(CodeOK, "GET", "/admin/v1/stats", nil, adminAuth)
	}
}

// TestFailBucketsBounded: the addresses tracked stay within their bound.
func TestFailBucketsBounded(t *testing.T) {
	now := time.Now()
	b := newFailBuckets(1, 2, 8, func() time.Time { return now })
	for i := range 100 {
		b.fail(string(rune('a'+i%26)) + string(rune('a'+i/26)))
	}
	if len(b.m) > 8 {
		t.Fatalf("tracked %d addresses; want at most 8", len(b.m))
	}
	b.fail("x")
	if b.blocked("x") {
		t.Fatal("blocked after 1 of 2 failures")
	}
	b.fail("x")
	if !b.blocked("x") {
		t.Fatal("not blocked after 2 of 2 failures")
	}
}

// TestRefusedLoginCodesThrottled: with the WeChat login provider, an
// address whose codes WeChat refused 20 times is answered 429 at once,
// without another call to WeChat; logins that succeed take nothing, and
// other addresses log in as before.
func TestRefusedLoginCodesThrottled(t *testing.T) {
	fw := newFakeWeChat(t)
	h := newHarness(t, "memory", func(o *Options) {
		o.Login = LoginOptions{Provider: ProviderWeChat, WeChatBaseURL: fw.srv.URL, AppID: "wxapp", AppSecret: "wxsecret"}
	})
	for range 30 { // successes take nothing
		h.wantCode(CodeOK, "POST", "/api/v1/session", `{"code":"good"}`)
	}
	for range 20 {
		h.wantCode(CodeUnauthorized, "POST", "/api/v1/session", `{"code":"bad"}`)
	}
	fw.mu.Lock()
	before := fw.calls
	fw.mu.Unlock()
	for range 100 {
		h.wantCode(CodeThrottled, "POST", "/api/v1/session", `{"code":"bad"}`)
	}
	h.wantCode(CodeThrottled, "POST", "/api/v1/session", `{"code":"good"}`)
	fw.mu.Lock()
	after := fw.calls
	fw.mu.Unlock()
	if after != before {
		t.Fatalf("WeChat was called %d times while the address was throttled; want 0", after-before)
	}
	h.wantCode(CodeOK, "POST", "/api/v1/session", `{"code":"good"}`, "X-Forwarded-For: 203.0.113.9")
	h.clock.advance(time.Second)
	h.wantCode(CodeOK, "POST", "/api/v1/session", `{"code":"good"}`)
}
