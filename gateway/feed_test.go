package gateway

import (
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestFeedSignature(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := &Server{feedKey: []byte("feed-secret"), o: Options{Now: func() time.Time { return now }, FeedWindow: 5 * time.Minute}}
	body := []byte(`{"updates":[{"store_id":"s1","sku_id":"k1","on_hand":5,"seq":1}]}`)
	f := func(ts, sig string, body []byte, want int) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		if ts != "" {
			ctx.Request.Header.Set("X-Surge-Timestamp", ts)
		}
		if sig != "" {
			ctx.Request.Header.Set("X-Surge-Signature", sig)
		}
		err := s.checkFeedSignature(&ctx, body)
		got := CodeOK
		var ae *apiError
		if errors.As(err, &ae) {
			got = ae.code
		} else if err != nil {
			got = CodeInternal
		}
		if got != want {
			t.Errorf("checkFeedSignature(ts=%q, sig=%q) = %v; want code %d", ts, sig, err, want)
		}
	}
	ts := now.Unix()
	tsS := strconv.FormatInt(ts, 10)
	good := SignFeed([]byte("feed-secret"), ts, body)
	f(tsS, good, body, CodeOK)
	// Within the window on both sides.
	for _, d := range []int64{-300, 300} {
		f(strconv.FormatInt(ts+d, 10), SignFeed([]byte("feed-secret"), ts+d, body), body, CodeOK)
	}
	// Outside it, even when signed right.
	for _, d := range []int64{-301, 301, -86400} {
		f(strconv.FormatInt(ts+d, 10), SignFeed([]byte("feed-secret"), ts+d, body), body, CodeUnauthorized)
	}
	f("", good, body, CodeUnauthorized)
	f(tsS, "", body, CodeUnauthorized)
	f("abc", good, body, CodeUnauthorized)
	f(tsS, good[:63], body, CodeUnauthorized)
	f(tsS, "zz"+good[2:], body, CodeUnauthorized)
	f(tsS, SignFeed([]byte("other"), ts, body), body, CodeUnauthorized)
	f(strconv.FormatInt(ts-1, 10), good, body, CodeUnauthorized) // signature of another timestamp
	f(tsS, good, append(append([]byte{}, body...), ' '), CodeUnauthorized)

	off := &Server{o: s.o}
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.Set("X-Surge-Timestamp", tsS)
	ctx.Request.Header.Set("X-Surge-Signature", SignFeed(nil, ts, body))
	if err := off.checkFeedSignature(&ctx, body); err == nil {
		t.Error("feed without a secret accepted a request")
	}
}

func TestRealIP(t *testing.T) {
	pfx, err := parsePrefixes([]string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "192.168.1.7"})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{trusted: pfx}
	f := func(remote, xff, want string) {
		t.Helper()
		r := netip.MustParseAddr(remote)
		got := r
		if s.isTrusted(r) && xff != "" {
			got = s.realIP(r, []byte(xff))
		}
		if got.String() != want {
			t.Errorf("realIP(%s, %q) = %s; want %s", remote, xff, got, want)
		}
	}
	f("127.0.0.1", "1.2.3.4", "1.2.3.4")
	f("127.0.0.1", "9.9.9.9, 1.2.3.4", "1.2.3.4")           // rightmost untrusted
	f("127.0.0.1", "9.9.9.9, 1.2.3.4, 10.1.1.1", "1.2.3.4") // trusted hops skipped
	f("127.0.0.1", "10.1.1.1, 192.168.1.7", "10.1.1.1")     // all trusted: leftmost
	f("127.0.0.1", "garbage, 1.2.3.4", "1.2.3.4")           // stops at the first untrusted
	f("127.0.0.1", "1.2.3.4, garbage", "127.0.0.1")         // unparsable hop: the last good address
	f("8.8.8.8", "1.2.3.4", "8.8.8.8")                      // untrusted peer: XFF ignored
	f("::1", "2001:db8::1", "2001:db8::1")
	f("192.168.1.7", "1.2.3.4", "1.2.3.4")
	f("192.168.1.8", "1.2.3.4", "192.168.1.8")
	if _, err := parsePrefixes([]string{"nonsense"}); err == nil {
		t.Error("parsePrefixes(nonsense) = nil error")
	}
}
