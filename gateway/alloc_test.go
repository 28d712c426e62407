//go:build !race

package gateway

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/inventory"
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

// TestFlashReserveAllocs bounds the allocations of a successful flash
// reserve through the whole handler (memory backend): session, risk hook,
// sale gate, engine, inventory, answer. It was 27 before the answer was
// written by hand and the request context lost its timer; the bound
// leaves a little room, and a regression past it is worth a look.
func TestFlashReserveAllocs(t *testing.T) {
	store := inventory.NewMemory(inventory.Options{})
	eng, err := engine.Open(context.Background(), engine.Options{Store: store, Risk: engine.AllowAll()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Engine: eng, AdminToken: testAdminToken, SessionSecret: []byte("session-secret-for-tests"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); store.Close() })
	ctx := context.Background()
	cat := engine.Catalog{
		Stores:   []engine.Store{{StoreID: "s1", Name: "静安店", City: "上海"}},
		Products: []engine.Product{{SKUID: "k1", Title: "羊毛大衣", Price: 59900, Images: []string{}}},
		Listings: []engine.Listing{{StoreID: "s1", SKUID: "k1", Price: 49900, OnHand: 1_000_000}},
	}
	if _, err := eng.LoadCatalog(ctx, cat); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := eng.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: "f1", StoreID: "s1", SKUID: "k1", Price: 9900,
		Quantity: 500_000, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour), HoldSeconds: 3600}); err != nil {
		t.Fatal(err)
	}
	tok, _ := srv.sess.sign("alloc-user")
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/api/v1/flash-sales/f1/reservations")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.SetBody([]byte(`{"quantity":1}`))
	var rctx fasthttp.RequestCtx
	rctx.Init(&req, loopbackAddr, nil)
	h := srv.Handler()
	serve := func() {
		rctx.Response.Reset()
		h(&rctx)
		if rctx.Response.StatusCode() != 200 {
			t.Fatalf("reserve: HTTP %d %s", rctx.Response.StatusCode(), rctx.Response.Body())
		}
	}
	for i := 0; i < 100; i++ {
		serve()
	}
	const allocsMax = 14
	if n := testing.AllocsPerRun(500, serve); n > allocsMax {
		t.Errorf("flash reserve: %v allocations per request; want <= %d", n, allocsMax)
	} else {
		t.Logf("flash reserve: %v allocations per request", n)
	}
}
