//go:build !race

package gateway

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestStorePageNoAlloc: serving a store page (plain, with a guide, and a
// 304) allocates nothing once warm. Built without -race, which allocates.
func TestStorePageNoAlloc(t *testing.T) {
	p := newInproc(t)
	f := func(path string, hdr ...string) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		res := p.call(&ctx, "GET", path, nil, hdr...)
		if res.StatusCode() != 200 && res.StatusCode() != 304 {
			t.Fatalf("GET %s: HTTP %d %s", path, res.StatusCode(), res.Body())
		}
		h := p.srv.Handler()
		for i := 0; i < 10; i++ { // warm: interned ids, buffers, guide page
			ctx.Response.Reset()
			h(&ctx)
		}
		if n := testing.AllocsPerRun(200, func() {
			ctx.Response.Reset()
			h(&ctx)
		}); n != 0 {
			t.Errorf("GET %s %v: %v allocations per request; want 0", path, hdr, n)
		}
	}
	f("/api/v1/stores/s1/page")
	f("/api/v1/stores/s1/page?guide=g1")
	f("/api/v1/stores/s1/products/k1")
	var ctx fasthttp.RequestCtx
	etag := string(p.call(&ctx, "GET", "/api/v1/stores/s1/page", nil).Header.Peek("ETag"))
	f("/api/v1/stores/s1/page", "If-None-Match", etag)
}

func TestSessionVerifyAllocs(t *testing.T) {
	s := &sessions{secret: []byte("0123456789abcdef0123"), ttl: time.Hour, now: time.Now}
	tok, _ := s.sign("user-1")
	b := []byte(tok)
	// One allocation: the user id string.
	if n := testing.AllocsPerRun(100, func() { s.verify(b) }); n > 2 {
		t.Errorf("verify allocates %v times; want <= 2", n)
	}
}
