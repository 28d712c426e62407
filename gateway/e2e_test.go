package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/buildinfo"
)

func TestE2EOps(t *testing.T) {
	h := newHarness(t, "memory")
	r := h.wantCode(CodeOK, "GET", "/healthz", nil)
	if r.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on an answer")
	}
	r = h.wantCode(CodeOK, "GET", "/healthz", nil, "X-Request-Id: trace-123")
	if got := r.Header.Get("X-Request-Id"); got != "trace-123" {
		t.Errorf("X-Request-Id = %q; want the caller's echoed", got)
	}
	h.wantCode(CodeOK, "GET", "/readyz", nil)
	h.wantCode(CodeNotFound, "GET", "/nope", nil)
	h.wantCode(CodeNotFound, "GET", "/api/v1/stores/s1/page", nil) // an engine call
	// A known path with the wrong method: 405, Allow, and the envelope
	// with 40000 naming the allowed methods.
	for _, c := range []struct{ method, path, allow string }{
		{"DELETE", "/api/v1/checkout", "POST"},
		{"GET", "/api/v1/checkout", "POST"},
		{"POST", "/healthz", "GET, HEAD"},
		{"PUT", "/api/v1/stores/s1/page", "GET, HEAD"},
		{"DELETE", "/admin/v1/flash-sales", "GET, HEAD, POST"},
		{"PUT", "/admin/v1/group-buys", "GET, HEAD, POST"},
		{"POST", "/admin/v1/flash-sales/f1", "GET, HEAD"},
		{"GET", "/admin/v1/flash-sales/f1/pause", "POST"},
		{"POST", "/admin/", "GET, HEAD"},
		{"GET", "/admin/v1/catalog", "PUT"},
	} {
		r = h.wantCode(CodeBadRequest, c.method, c.path, nil)
		if r.Status != 405 || r.Header.Get("Allow") != c.allow || !strings.HasSuffix(r.Msg, "allowed: "+c.allow) {
			t.Errorf("%s %s: HTTP %d, Allow %q, msg %q; want 405, Allow %q named in the message", c.method, c.path, r.Status, r.Header.Get("Allow"), r.Msg, c.allow)
		}
	}
	if res, err := h.client.Head(h.base + "/api/v1/checkout"); err != nil || res.StatusCode != 405 || res.Header.Get("Allow") != "POST" {
		t.Errorf("HEAD /api/v1/checkout: %v %v; want 405 with Allow POST", res, err)
	} else {
		res.Body.Close()
	}
	res, err := h.client.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`surge_gateway_requests_total{code="0",route="healthz"} 2`,
		`surge_gateway_requests_total{code="40400",route="unknown"} 1`,
		`surge_gateway_request_duration_seconds_bucket`,
		`surge_engine_call_duration_seconds_bucket{route="store_page"`,
		`surge_gateway_sheds_total{reason="sale_gate"} 0`,
		`surge_orders_lag`,
		`surge_engine_stats_up 1`,
		`surge_orders_write_failures_total 0`,
		`surge_build_info{commit="` + buildinfo.Get().Commit + `",go_version="` + runtime.Version() + `",version="`,
		`go_goroutines`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// pprof is admin only.
	h.wantCode(CodeUnauthorized, "GET", "/debug/pprof/", nil)
	h.wantCode(CodeUnauthorized, "GET", "/debug/pprof/", nil, "Authorization: Bearer not-the-admin-token")
	h.wantCode(CodeForbidden, "GET", "/debug/pprof/heap", nil, h.login("u-pprof"))
	pprof := func(path, wantType string, want ...string) {
		t.Helper()
		req, _ := http.NewRequest("GET", h.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		res, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), wantType) {
			t.Errorf("GET %s with the admin token: HTTP %d, Content-Type %q; want 200, %s", path, res.StatusCode, res.Header.Get("Content-Type"), wantType)
		}
		for _, w := range want {
			if !bytes.Contains(body, []byte(w)) {
				t.Errorf("GET %s with the admin token: body lacks %q", path, w)
			}
		}
	}
	// The index lists the profiles, with links relative to it.
	pprof("/debug/pprof/", "text/html", "Types of profiles available", `href='goroutine?debug=1'`, `href='heap?debug=1'`)
	pprof("/debug/pprof/cmdline", "text/plain")
	pprof("/debug/pprof/goroutine?debug=1", "text/plain", "goroutine profile:")
	pprof("/debug/pprof/heap", "application/octet-stream")
	h.wantCode(CodeNotFound, "GET", "/debug/pprof/heap/", nil, adminAuth)
}

func TestE2ESessionsAndAdminAuth(t *testing.T) {
	h := newHarness(t, "memory")
	user := h.login("openid-1")
	h.wantCode(CodeBadRequest, "POST", "/api/v1/session", `{}`)
	h.wantCode(CodeBadRequest, "POST", "/api/v1/session", `{"code":""}`)
	h.wantCode(CodeBadRequest, "POST", "/api/v1/session", `{"code":"has space"}`)
	h.wantCode(CodeBadRequest, "POST", "/api/v1/session", `{"code":1}`)

	// Admin: no token, bad token, a user's token.
	h.wantCode(CodeUnauthorized, "GET", "/admin/v1/stats", nil)
	h.wantCode(CodeUnauthorized, "GET", "/admin/v1/stats", nil, "Authorization: Bearer nope")
	h.wantCode(CodeForbidden, "GET", "/admin/v1/stats", nil, user)
	h.wantCode(CodeUnauthorized, "PUT", "/admin/v1/catalog", testCatalog, user[:len(user)-1])
	h.wantCode(CodeOK, "GET", "/admin/v1/stats", nil, adminAuth)

	// User routes: the admin token is not a session.
	h.wantCode(CodeUnauthorized, "GET", "/api/v1/me/orders", nil, adminAuth)
	h.wantCode(CodeUnauthorized, "GET", "/api/v1/me/orders", nil)
	h.wantCode(CodeOK, "GET", "/api/v1/me/orders", nil, user)
}

func TestE2ESessionExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHarness(t, "memory", func(o *Options) { o.Now = clock; o.SessionTTL = time.Minute })
	user := h.login("u-exp")
	h.wantCode(CodeOK, "GET", "/api/v1/me/orders", nil, user)
	mu.Lock()
	now = now.Add(time.Minute + time.Second)
	mu.Unlock()
	r := h.wantCode(CodeUnauthorized, "GET", "/api/v1/me/orders", nil, user)
	if !strings.Contains(r.Msg, "expired") {
		t.Errorf("expired token msg = %q", r.Msg)
	}
}

func TestE2EWeChatLogin(t *testing.T) {
	fw := newFakeWeChat(t)
	h := newHarness(t, "memory", func(o *Options) {
		o.Login = LoginOptions{Provider: ProviderWeChat, WeChatBaseURL: fw.srv.URL, AppID: "wxapp", AppSecret: "wxsecret", Timeout: 300 * time.Millisecond}
	})
	r := h.wantCode(CodeOK, "POST", "/api/v1/session", `{"code":"abc"}`)
	if s := into[sessionAnswer](t, r); s.UserID != "o-abc" {
		t.Errorf("wechat session user = %q; want o-abc", s.UserID)
	}
	h.wantCode(CodeUnauthorized, "POST", "/api/v1/session", `{"code":"bad"}`)
	h.wantCode(CodeThrottled, "POST", "/api/v1/session", `{"code":"ratelimit"}`)
	h.wantCode(CodeUnavailable, "POST", "/api/v1/session", `{"code":"busy"}`)
	h.wantCode(CodeUnavailable, "POST", "/api/v1/session", `{"code":"hang"}`)
	r = h.wantCode(CodeInternal, "POST", "/api/v1/session", `{"code":"weird"}`)
	if !strings.Contains(r.Msg, "request id") {
		t.Errorf("50000 msg %q lacks the request id", r.Msg)
	}
}

func TestE2EStorefront(t *testing.T) {
	h := newHarness(t, "memory")
	h.wantCode(CodeNotFound, "GET", "/api/v1/stores/s1/page", nil)
	h.loadCatalog()
	r := h.wantCode(CodeOK, "GET", "/api/v1/stores/s1/page", nil) // no session needed
	etag := r.Header.Get("ETag")
	if etag == "" || !json.Valid(r.Raw) {
		t.Fatalf("store page: ETag %q, body valid JSON %v", etag, json.Valid(r.Raw))
	}
	if !bytes.Contains(r.Data, []byte("k1")) {
		t.Errorf("store page data lacks its product: %s", r.Data)
	}
	// 304 on If-None-Match.
	res := h.do("GET", "/api/v1/stores/s1/page", nil, "If-None-Match: "+etag)
	if res.Status != 304 || len(res.Raw) != 0 {
		t.Errorf("If-None-Match: HTTP %d body %q; want 304 and no body", res.Status, res.Raw)
	}
	res = h.do("GET", "/api/v1/stores/s1/page", nil, `If-None-Match: "other"`)
	if res.Status != 200 {
		t.Errorf("stale If-None-Match: HTTP %d; want 200", res.Status)
	}
	// Guide page: another ETag, carries the guide.
	g := h.wantCode(CodeOK, "GET", "/api/v1/stores/s1/page?guide=g1", nil)
	if g.Header.Get("ETag") == etag || !bytes.Contains(g.Data, []byte("g1")) {
		t.Errorf("guide page: ETag %q (store %q), data %s", g.Header.Get("ETag"), etag, g.Data)
	}
	h.wantCode(CodeNotFound, "GET", "/api/v1/stores/nope/page", nil)
	p := h.wantCode(CodeOK, "GET", "/api/v1/stores/s1/products/k1", nil)
	if !bytes.Contains(p.Data, []byte("49900")) {
		t.Errorf("product page lacks the store price: %s", p.Data)
	}
	h.wantCode(CodeOK, "GET", "/api/v1/stores/s1/products/k1?guide=g1", nil)
	h.wantCode(CodeNotFound, "GET", "/api/v1/stores/s2/products/k2", nil)
	h.wantCode(CodeNotFound, "GET", "/api/v1/stores/s1/products/nope", nil)
	h.wantCode(CodeBadRequest, "GET", "/api/v1/stores/s1/page?guide="+strings.Repeat("g", 200), nil)
	// HEAD works.
	hr := h.do("HEAD", "/api/v1/stores/s1/page", nil)
	if hr.Status != 200 || hr.Header.Get("ETag") != etag {
		t.Errorf("HEAD store page: HTTP %d ETag %q", hr.Status, hr.Header.Get("ETag"))
	}
}

func TestE2EFlashSale(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	h.createSale("f1", 5, 2)
	now := time.Now()
	// An upcoming sale.
	h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{
		SaleID: "f-later", StoreID: "s1", SKUID: "k2", Price: 100, Quantity: 1, PerUserLimit: 1,
		StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour),
	}, adminAuth)
	// The store does not have 1000 of k3.
	h.wantCode(CodeSoldOut, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{
		SaleID: "f-big", StoreID: "s1", SKUID: "k3", Price: 100, Quantity: 1000,
		StartsAt: now, EndsAt: now.Add(time.Hour),
	}, adminAuth)
	h.wantCode(CodeNotFound, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{
		SaleID: "f-x", StoreID: "nope", SKUID: "k3", Price: 100, Quantity: 1, StartsAt: now, EndsAt: now.Add(time.Hour),
	}, adminAuth)

	sale := into[engine.FlashSale](t, h.wantCode(CodeOK, "GET", "/api/v1/flash-sales/f1", nil))
	if sale.Remaining != 5 || sale.StartsAtMs == 0 || sale.EndsAt.IsZero() {
		t.Errorf("sale info = %+v", sale)
	}
	h.wantCode(CodeNotFound, "GET", "/api/v1/flash-sales/nope", nil)

	a, b := h.login("alice"), h.login("bob")
	h.wantCode(CodeUnauthorized, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1))
	res := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", `{"quantity":1,"guide_id":"g1"}`, a))
	if res.ReservationID == "" || res.SaleID != "f1" || res.SKUID != "k1" || res.StoreID != "s1" ||
		res.Quantity != 1 || res.UnitPrice != 9900 || res.ExpiresAtMs == 0 || res.ExpiresAt.IsZero() {
		t.Errorf("reservation = %+v", res)
	}
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a)
	h.wantCode(CodeLimitExceeded, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a)
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(2), b)
	h.wantCode(CodeSoldOut, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(2), h.login("carol"))
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), h.login("dave"))
	// Sold out, answered from memory.
	h.wantCode(CodeSoldOut, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), h.login("erin"))
	h.wantCode(CodeNotActive, "POST", "/api/v1/flash-sales/f-later/reservations", reserveBody(1), a)
	h.wantCode(CodeNotFound, "POST", "/api/v1/flash-sales/nope/reservations", reserveBody(1), a)

	st := h.stats()
	f1 := st.Sales["f1"]
	if f1.Supplied != 5 || f1.Held != 5 || f1.Remaining != 0 || f1.Supplied != f1.Held+f1.Sold+f1.Remaining {
		t.Errorf("stats of f1 = %+v", f1)
	}
	if st.Sheds["sold_out_gate"] < 1 {
		t.Errorf("sheds = %v; want a sold_out_gate", st.Sheds)
	}

	// Cancel gives the unit back: another buyer gets it.
	h.wantCode(CodeOK, "POST", "/api/v1/reservations/"+res.ReservationID+"/cancel", nil, a)
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), h.login("frank"))
}

func TestE2EIdempotency(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	h.createSale("f1", 1, 1)
	a := h.login("alice")
	key := "Idempotency-Key: k-123"
	first := h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a, key)
	// Same key, same body: the first answer again, byte for byte, even
	// though the sale is now sold out.
	again := h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a, key)
	if !bytes.Equal(first.Raw, again.Raw) {
		t.Errorf("replay differs:\n%s\n%s", first.Raw, again.Raw)
	}
	// Same key, different body: 40904.
	h.wantCode(CodeIdempotencyConflict, "POST", "/api/v1/flash-sales/f1/reservations", `{"quantity":1,"guide_id":"g1"}`, a, key)
	// Another user's same key is another request.
	h.wantCode(CodeSoldOut, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), h.login("bob"), key)
	// Bad keys.
	h.wantCode(CodeBadRequest, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a, "Idempotency-Key: "+strings.Repeat("k", 129))
	h.wantCode(CodeBadRequest, "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k2","quantity":1}]}`, a, "Idempotency-Key: bad-ké")
	if st := h.stats(); st.Sales["f1"].Held != 1 {
		t.Errorf("held after replays = %d; want 1", st.Sales["f1"].Held)
	}
	// Checkout replay.
	ck := `{"store_id":"s1","items":[{"sku_id":"k2","quantity":2}]}`
	c1 := h.wantCode(CodeOK, "POST", "/api/v1/checkout", ck, a, "Idempotency-Key: ck-1")
	c2 := h.wantCode(CodeOK, "POST", "/api/v1/checkout", ck, a, "Idempotency-Key: ck-1")
	if !bytes.Equal(c1.Raw, c2.Raw) {
		t.Errorf("checkout replay differs")
	}
	if l := h.stats().Listings["s1/k2"]; l.Held != 2 {
		t.Errorf("s1/k2 held = %d after a replayed checkout; want 2", l.Held)
	}
}

func TestE2EGroupBuy(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	now := time.Now()
	h.wantCode(CodeOK, "POST", "/admin/v1/group-buys", engine.GroupDealSpec{
		DealID: "d1", StoreID: "s1", SKUID: "k2", Price: 5000, TeamSize: 2, Quantity: 4,
		TeamWindowSeconds: 600, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	}, adminAuth)
	h.wantCode(CodeBadRequest, "POST", "/admin/v1/group-buys", engine.GroupDealSpec{
		DealID: "d2", StoreID: "s1", SKUID: "k2", Price: 5000, TeamSize: 1, Quantity: 4,
		StartsAt: now, EndsAt: now.Add(time.Hour),
	}, adminAuth)
	deal := into[engine.GroupDeal](t, h.wantCode(CodeOK, "GET", "/api/v1/group-buys/d1", nil))
	if deal.TeamSize != 2 || deal.Remaining != 4 {
		t.Errorf("deal = %+v", deal)
	}
	a, b, c := h.login("alice"), h.login("bob"), h.login("carol")
	h.wantCode(CodeUnauthorized, "POST", "/api/v1/group-buys/d1/teams", nil)
	team := into[engine.Team](t, h.wantCode(CodeOK, "POST", "/api/v1/group-buys/d1/teams", `{"guide_id":"g1"}`, a))
	if team.TeamID == "" || team.ReservationID == "" || team.Size != 2 || len(team.Members) != 1 || team.ExpiresAt.IsZero() {
		t.Fatalf("team = %+v", team)
	}
	path := "/api/v1/group-buys/d1/teams/" + team.TeamID
	h.wantCode(CodeBadState, "POST", path+"/members", nil, a) // already a member
	joined := into[engine.Team](t, h.wantCode(CodeOK, "POST", path+"/members", nil, b))
	if len(joined.Members) != 2 || joined.ReservationID == "" {
		t.Errorf("joined team = %+v", joined)
	}
	h.wantCode(CodeBadState, "POST", path+"/members", `{}`, c) // full
	got := into[engine.Team](t, h.wantCode(CodeOK, "GET", path, nil))
	if got.State != "forming" || len(got.Members) != 2 {
		t.Errorf("team state = %+v", got)
	}
	// The team page is public: strangers see masked user ids (openids) and
	// no reservation ids; a member sees their own reservation and nobody
	// else's.
	for _, m := range got.Members {
		if m.UserID == "alice" || m.UserID == "bob" || m.ReservationID != "" {
			t.Errorf("anonymous team view leaks member %+v", m)
		}
	}
	mine := into[engine.Team](t, h.wantCode(CodeOK, "GET", path, nil, b))
	if mine.ReservationID != joined.ReservationID {
		t.Errorf("bob's team view reservation = %q; want his %q", mine.ReservationID, joined.ReservationID)
	}
	for _, m := range mine.Members {
		switch {
		case m.UserID == "bob" && m.ReservationID != joined.ReservationID:
			t.Errorf("bob's own member entry = %+v", m)
		case m.UserID != "bob" && (m.UserID == "alice" || m.ReservationID != ""):
			t.Errorf("bob sees alice unmasked: %+v", m)
		}
	}
	if joined.Members[0].UserID != "al***" || joined.Members[0].ReservationID != "" {
		t.Errorf("join answer shows the leader as %+v; want masked", joined.Members[0])
	}
	// Both pay: formed.
	h.wantCode(CodeOK, "POST", "/api/v1/reservations/"+team.ReservationID+"/pay", `{"payment_id":"p-a"}`, a)
	h.wantCode(CodeOK, "POST", "/api/v1/reservations/"+joined.ReservationID+"/pay", `{"payment_id":"p-b"}`, b)
	if got := into[engine.Team](t, h.wantCode(CodeOK, "GET", path, nil)); got.State != "formed" {
		t.Errorf("team after both paid = %q; want formed", got.State)
	}
	h.wantCode(CodeNotFound, "GET", "/api/v1/group-buys/d1/teams/nope", nil)
	h.wantCode(CodeNotFound, "POST", "/api/v1/group-buys/nope/teams", nil, c)
	h.wantCode(CodeBadRequest, "POST", path+"/members", `{"x":1}`, c)
	if d := h.stats().Deals["d1"]; d.Supplied != d.Held+d.Sold+d.Remaining || d.Sold != 2 {
		t.Errorf("deal stats = %+v", d)
	}
}

func TestE2ECheckoutReservationsOrders(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	a, b := h.login("alice"), h.login("bob")
	h.wantCode(CodeUnauthorized, "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k1","quantity":1}]}`)
	before := h.stockState()
	// All or nothing: k3 has only 3.
	h.wantCode(CodeSoldOut, "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k1","quantity":1},{"sku_id":"k3","quantity":4}]}`, a)
	if after := h.stockState(); after != before {
		t.Errorf("a refused checkout changed stock:\n%s\n%s", before, after)
	}
	h.wantCode(CodeNotFound, "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"nope","quantity":1}]}`, a)
	h.wantCode(CodeNotFound, "POST", "/api/v1/checkout", `{"store_id":"nope","items":[{"sku_id":"k1","quantity":1}]}`, a)
	res := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/checkout",
		`{"store_id":"s1","guide_id":"g1","items":[{"sku_id":"k1","quantity":1},{"sku_id":"k3","quantity":3}]}`, a))
	if res.State != "held" || len(res.Items) != 2 || res.Amount != 49900+3*3900 {
		t.Errorf("checkout reservation = %+v", res)
	}
	rp := "/api/v1/reservations/" + res.ReservationID
	got := into[engine.Reservation](t, h.wantCode(CodeOK, "GET", rp, nil, a))
	if got.State != "held" {
		t.Errorf("reservation state = %q", got.State)
	}
	h.wantCode(CodeForbidden, "GET", rp, nil, b)
	h.wantCode(CodeForbidden, "POST", rp+"/pay", `{"payment_id":"p1"}`, b)
	h.wantCode(CodeForbidden, "POST", rp+"/cancel", nil, b)
	h.wantCode(CodeNotFound, "GET", "/api/v1/reservations/nope", nil, a)
	h.wantCode(CodeBadRequest, "POST", rp+"/pay", `{}`, a)
	paid := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", rp+"/pay", `{"payment_id":"p1"}`, a))
	if paid.State != "paid" {
		t.Errorf("paid state = %q", paid.State)
	}
	h.wantCode(CodeOK, "POST", rp+"/pay", `{"payment_id":"p1"}`, a) // same payment again: ok
	h.wantCode(CodeBadState, "POST", rp+"/cancel", nil, a)          // paid cannot be cancelled

	// The order appears (the writer is asynchronous; bounded wait).
	var orderID string
	for i := 0; i < 500 && orderID == ""; i++ {
		orderID = into[engine.Reservation](t, h.wantCode(CodeOK, "GET", rp, nil, a)).OrderID
		if orderID == "" {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if orderID == "" {
		t.Fatal("order of a paid reservation not written within 5s")
	}
	o := into[engine.Order](t, h.wantCode(CodeOK, "GET", "/api/v1/orders/"+orderID, nil, a))
	if o.StoreID != "s1" || o.GuideID != "g1" || o.State != "created" || o.Amount != paid.Amount || len(o.Items) != 2 {
		t.Errorf("order = %+v", o)
	}
	h.wantCode(CodeForbidden, "GET", "/api/v1/orders/"+orderID, nil, b)
	h.wantCode(CodeNotFound, "GET", "/api/v1/orders/nope", nil, a)
	mine := into[ordersAnswer](t, h.wantCode(CodeOK, "GET", "/api/v1/me/orders?limit=10", nil, a))
	if len(mine.Orders) != 1 || mine.Orders[0].OrderID != orderID {
		t.Errorf("my orders = %+v", mine)
	}
	if theirs := into[ordersAnswer](t, h.wantCode(CodeOK, "GET", "/api/v1/me/orders", nil, b)); len(theirs.Orders) != 0 {
		t.Errorf("bob's orders = %+v", theirs)
	}
	h.wantCode(CodeBadRequest, "GET", "/api/v1/me/orders?limit=0", nil, a)
	h.wantCode(CodeBadRequest, "GET", "/api/v1/me/orders?limit=x", nil, a)

	// Cancel then pay: 40903.
	r2 := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k2","quantity":1}]}`, b))
	rp2 := "/api/v1/reservations/" + r2.ReservationID
	if c := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", rp2+"/cancel", nil, b)); c.State != "released" {
		t.Errorf("cancelled state = %q", c.State)
	}
	h.wantCode(CodeBadState, "POST", rp2+"/pay", `{"payment_id":"p2"}`, b)
	if st := h.stats(); st.Listings["s1/k2"].Held != 0 || st.Listings["s1/k3"].Sold != 3 {
		t.Errorf("listings after cancel and pay = %+v", st.Listings)
	}
}

func TestE2EFeed(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	now := time.Now().Unix()
	body := `{"updates":[{"store_id":"s1","sku_id":"k2","on_hand":20,"seq":1},{"store_id":"s1","sku_id":"nope","on_hand":1,"seq":1}]}`
	r := h.want(h.feed(body, now), CodeOK)
	fa := into[feedAnswer](t, r)
	if len(fa.Results) != 2 || fa.Results[0].Status != "applied" || fa.Results[1].Status != "error" {
		t.Fatalf("feed results = %+v", fa.Results)
	}
	if l := h.stats().Listings["s1/k2"]; l.Supplied != 20 {
		t.Errorf("s1/k2 after feed = %+v; want supplied 20", l)
	}
	// Replayed: stale, nothing changes.
	fa = into[feedAnswer](t, h.want(h.feed(body, now), CodeOK))
	if fa.Results[0].Status != "stale" {
		t.Errorf("replayed feed line = %q; want stale", fa.Results[0].Status)
	}
	before := h.stockState()
	newer := `{"updates":[{"store_id":"s1","sku_id":"k2","on_hand":1,"seq":2}]}`
	h.want(h.feed(newer, now-360), CodeUnauthorized) // old (boundaries: TestFeedSignature)
	h.want(h.feed(newer, now+360), CodeUnauthorized) // future
	h.wantCode(CodeUnauthorized, "POST", "/internal/v1/inventory/feed", newer)
	h.wantCode(CodeUnauthorized, "POST", "/internal/v1/inventory/feed", newer,
		fmt.Sprintf("X-Surge-Timestamp: %d", now), "X-Surge-Signature: "+SignFeed([]byte("wrong"), now, []byte(newer)))
	h.wantCode(CodeUnauthorized, "POST", "/internal/v1/inventory/feed", newer,
		fmt.Sprintf("X-Surge-Timestamp: %d", now), "X-Surge-Signature: "+SignFeed([]byte(testFeedSecret), now, []byte(body)))
	h.want(h.feed(`{"updates":[]}`, now), CodeBadRequest)
	h.want(h.feed(`{"updates":[{"store_id":"s1","sku_id":"k2","on_hand":"1","seq":2}]}`, now), CodeBadRequest)
	h.want(h.feed(`{"updates":[{"store_id":"s1","sku_id":"k2","on_hand":1,"seq":-2}]}`, now), CodeBadRequest)
	var many strings.Builder
	many.WriteString(`{"updates":[`)
	for i := 0; i <= feedLinesMax; i++ {
		if i > 0 {
			many.WriteByte(',')
		}
		fmt.Fprintf(&many, `{"store_id":"s1","sku_id":"k2","on_hand":1,"seq":%d}`, i+10)
	}
	many.WriteString(`]}`)
	h.want(h.feed(many.String(), now), CodeBadRequest)
	if after := h.stockState(); after != before {
		t.Errorf("refused feeds changed stock:\n%s\n%s", before, after)
	}
	// Negative on_hand: the line is an error, nothing changes.
	fa = into[feedAnswer](t, h.want(h.feed(`{"updates":[{"store_id":"s1","sku_id":"k2","on_hand":-5,"seq":3}]}`, now), CodeOK))
	if fa.Results[0].Status != "error" || fa.Results[0].Code != CodeBadRequest {
		t.Errorf("negative on_hand line = %+v; want error 40000", fa.Results[0])
	}
	if after := h.stockState(); after != before {
		t.Errorf("a negative on_hand changed stock")
	}
}

func TestE2EBodyLimits(t *testing.T) {
	h := newHarness(t, "memory")
	a := h.login("alice")
	h.loadCatalog()
	before := h.stockState()
	// Just over the limit: our check, envelope 413.
	over := `{"store_id":"s1","items":[{"sku_id":"k1","quantity":1}],"pad":"` + strings.Repeat("x", BodyMaxBytesDefault) + `"}`
	h.wantCode(CodeTooLarge, "POST", "/api/v1/checkout", over, a)
	// 10 MB: fasthttp stops reading; the error handler answers 413.
	big := bytes.Repeat([]byte("x"), 10<<20)
	req, _ := http.NewRequest("POST", h.base+"/api/v1/checkout", bytes.NewReader(big))
	req.Header.Set("Authorization", strings.TrimPrefix(a, "Authorization: "))
	res, err := h.client.Do(req)
	if err == nil {
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var env resp
		if res.StatusCode != 413 || json.Unmarshal(raw, &env) != nil || env.Code != CodeTooLarge {
			t.Errorf("10 MB body: HTTP %d %q; want 413/41300", res.StatusCode, raw)
		}
	} // else: the server closed the connection while the client was still sending: also refused.
	// Deterministically: announce 10 MB and send nothing; the answer comes
	// from the headers alone.
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/checkout HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 10<<20)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, _ := io.ReadAll(conn)
	head, body, _ := strings.Cut(string(raw), "\r\n\r\n")
	var env resp
	if !strings.HasPrefix(head, "HTTP/1.1 413") || json.Unmarshal([]byte(body), &env) != nil || env.Code != CodeTooLarge {
		t.Errorf("10 MB announced: %q; want 413 with a 41300 envelope", raw)
	}
	// Exactly at the limit is read (and then refused as bad JSON, not 413).
	at := `{"pad":"` + strings.Repeat("x", BodyMaxBytesDefault-10) + `"}`
	h.wantCode(CodeBadRequest, "POST", "/api/v1/checkout", at, a)
	if after := h.stockState(); after != before {
		t.Errorf("refused bodies changed stock")
	}
	// The server still serves.
	h.wantCode(CodeOK, "GET", "/healthz", nil)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestE2ERiskAndClientIP(t *testing.T) {
	var logs syncBuffer
	h := newHarness(t, "memory", func(o *Options) { o.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
	h.loadCatalog()
	h.createSale("f1", 10, 5)
	a := h.login("alice")
	before := h.stockState()
	r := h.wantCode(CodeRiskDenied, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a, "X-Device-Id: bot")
	if !strings.Contains(r.Msg, "blocklist") {
		t.Errorf("risk msg = %q", r.Msg)
	}
	h.wantCode(CodeRiskDenied, "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k1","quantity":1}]}`, a, "X-Device-Id: bot")
	if after := h.stockState(); after != before {
		t.Errorf("risk denials changed stock")
	}
	if st := h.stats(); st.RiskDenials["blocklist"] != 2 {
		t.Errorf("risk denials = %v; want blocklist 2", st.RiskDenials)
	}
	// A rate limit is "throttled", not "denied" (API.md): 429/42900 with
	// Retry-After (the harness checks the header on every 429), nothing
	// reserved, counted by reason.
	r = h.wantCode(CodeThrottled, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a, "X-Device-Id: hasty")
	if r.Status != 429 || !strings.Contains(r.Msg, "rate_user") {
		t.Errorf("rate-limited reserve = HTTP %d %q; want 429 mentioning rate_user", r.Status, r.Msg)
	}
	if after := h.stockState(); after != before {
		t.Errorf("a throttled reserve changed stock")
	}
	if st := h.stats(); st.RiskDenials["rate_user"] != 1 {
		t.Errorf("risk denials = %v; want rate_user 1", st.RiskDenials)
	}
	mres, err := h.client.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mres.Body)
	mres.Body.Close()
	for _, want := range []string{`surge_risk_denials_total{reason="blocklist"} 2`, `surge_gateway_requests_total{code="40300",route="sale_reserve"} 1`,
		`surge_pool_units{id="f1",kind="sale",state="supplied"} 10`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	h.wantCode(CodeBadRequest, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a, "X-Device-Id: "+strings.Repeat("d", 129))
	// Loopback is a trusted proxy: X-Forwarded-For is believed.
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a, "X-Forwarded-For: 203.0.113.9, 10.0.0.1, 127.0.0.1", "X-Device-Id: d1")
	if ip := h.risk.lastIP(); ip != "10.0.0.1" {
		t.Errorf("client ip = %q; want 10.0.0.1 (rightmost untrusted)", ip)
	}
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a)
	if ip := h.risk.lastIP(); ip != "127.0.0.1" {
		t.Errorf("client ip without XFF = %q", ip)
	}
	// A panic below the gateway is a 50000 with a request id, and the
	// server goes on.
	r = h.wantCode(CodeInternal, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a, "X-Device-Id: panic", "X-Request-Id: req-panic")
	if !strings.Contains(r.Msg, "req-panic") {
		t.Errorf("50000 msg = %q; want the request id", r.Msg)
	}
	if l := logs.String(); !strings.Contains(l, `"request_id":"req-panic"`) || !strings.Contains(l, `"level":"ERROR"`) {
		t.Errorf("the 50000 is not logged with its request id:\n%s", l)
	}
	h.wantCode(CodeOK, "GET", "/healthz", nil)
}

func TestE2EUntrustedProxy(t *testing.T) {
	h := newHarness(t, "memory", func(o *Options) { o.TrustedProxies = []string{"10.0.0.0/8"} })
	h.loadCatalog()
	h.createSale("f1", 10, 5)
	a := h.login("alice")
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a, "X-Forwarded-For: 203.0.113.9")
	if ip := h.risk.lastIP(); ip != "127.0.0.1" {
		t.Errorf("client ip from an untrusted peer's XFF = %q; want 127.0.0.1", ip)
	}
}

func TestE2EUnavailable(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	h.createSale("f1", 10, 5)
	a := h.login("alice")
	h.store.Close()
	h.wantCode(CodeUnavailable, "GET", "/readyz", nil)
	r := h.do("POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a)
	if r.Code != CodeUnavailable {
		t.Errorf("reserve on a closed engine = %d %q; want 50300", r.Code, r.Msg)
	}
}

func TestE2EPebble(t *testing.T) {
	h := newHarness(t, "pebble")
	h.loadCatalog()
	h.createSale("f1", 3, 1)
	var ids []string
	for i := 0; i < 4; i++ {
		u := h.login(fmt.Sprintf("u%d", i))
		r := h.do("POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), u)
		if i < 3 {
			res := into[engine.Reservation](t, h.want(r, CodeOK))
			ids = append(ids, res.ReservationID)
			h.wantCode(CodeOK, "POST", "/api/v1/reservations/"+res.ReservationID+"/pay", `{"payment_id":"p"}`, u)
		} else {
			h.want(r, CodeSoldOut)
		}
	}
	st := h.stats()
	if f := st.Sales["f1"]; f.Sold != 3 || f.Remaining != 0 || f.Held != 0 {
		t.Errorf("pebble sale stats = %+v", f)
	}
	h.wantCode(CodeOK, "GET", "/api/v1/stores/s1/page", nil)
	h.wantCode(CodeOK, "GET", "/readyz", nil)
}

// TestE2EShutdownDrains checks that Shutdown waits for a request in flight
// and that it is answered.
func TestE2EShutdownDrains(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	h.createSale("f1", 10, 5)
	a := h.login("alice")
	got := make(chan resp, 1)
	go func() {
		got <- h.do("POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a, "X-Device-Id: block")
	}()
	<-h.risk.entered // the request is inside the engine
	done := make(chan error, 1)
	go func() { done <- h.srv.Shutdown(t.Context()) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	h.risk.unblock()
	if r := <-got; r.Code != CodeOK {
		t.Errorf("in-flight request during shutdown: code %d", r.Code)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	// New connections are refused.
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(h.base, "http://"), time.Second); err == nil {
		t.Error("dial after Shutdown succeeded")
	}
}

// TestE2EExpiryAndTeamFailure: a held reservation past its hold is
// released by the sweeper (paying it is 40903), and a team past its
// deadline fails: its units go back and the paid member's order is
// refunded (law 2, API.md group buying).
func TestE2EExpiryAndTeamFailure(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	h.createSale("f1", 5, 5) // hold 300s
	now := h.clock.now()
	h.wantCode(CodeOK, "POST", "/admin/v1/group-buys", engine.GroupDealSpec{
		DealID: "d1", StoreID: "s1", SKUID: "k2", Price: 5000, TeamSize: 3, Quantity: 6,
		TeamWindowSeconds: 600, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(24 * time.Hour),
	}, adminAuth)
	a, b := h.login("alice"), h.login("bob")
	res := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(2), a))
	team := into[engine.Team](t, h.wantCode(CodeOK, "POST", "/api/v1/group-buys/d1/teams", nil, a))
	joined := into[engine.Team](t, h.wantCode(CodeOK, "POST", "/api/v1/group-buys/d1/teams/"+team.TeamID+"/members", nil, b))
	h.wantCode(CodeOK, "POST", "/api/v1/reservations/"+team.ReservationID+"/pay", `{"payment_id":"pa"}`, a)
	if d := h.stats().Deals["d1"]; d.Sold != 1 || d.Held != 1 {
		t.Fatalf("deal before the deadline = %+v", d)
	}

	h.clock.advance(11 * time.Minute) // past the sale hold and the team window
	if err := h.eng.Sweep(t.Context()); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if r := into[engine.Reservation](t, h.wantCode(CodeOK, "GET", "/api/v1/reservations/"+res.ReservationID, nil, a)); r.State != "released" {
		t.Errorf("expired reservation = %q; want released", r.State)
	}
	h.wantCode(CodeBadState, "POST", "/api/v1/reservations/"+res.ReservationID+"/pay", `{"payment_id":"late"}`, a)
	if f := h.stats().Sales["f1"]; f.Held != 0 || f.Remaining != 5 {
		t.Errorf("sale after expiry = %+v; want all 5 back", f)
	}
	if got := into[engine.Team](t, h.wantCode(CodeOK, "GET", "/api/v1/group-buys/d1/teams/"+team.TeamID, nil)); got.State != "failed" {
		t.Errorf("team after its deadline = %q; want failed", got.State)
	}
	h.wantCode(CodeBadState, "POST", "/api/v1/reservations/"+joined.ReservationID+"/pay", `{"payment_id":"pb"}`, b)
	if d := h.stats().Deals["d1"]; d.Held != 0 || d.Sold != 0 || d.Remaining != 6 {
		t.Errorf("deal after the team failed = %+v; want all 6 back", d)
	}
	// The paid member's order is refunded (the writer is asynchronous:
	// bounded wait).
	var state string
	for i := 0; i < 500 && state != "refunded"; i++ {
		if os := into[ordersAnswer](t, h.wantCode(CodeOK, "GET", "/api/v1/me/orders", nil, a)).Orders; len(os) == 1 {
			state = os[0].State
		}
		if state != "refunded" {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if state != "refunded" {
		t.Errorf("paid member's order = %q; want refunded", state)
	}
}

// TestE2EEndedSale: once a sale has ended, a reservation is 40902 (not
// 40900) also when nothing is left in its pool.
func TestE2EEndedSale(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	h.createSale("f1", 1, 1) // ends in an hour
	a, b := h.login("alice"), h.login("bob")
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a)
	h.wantCode(CodeSoldOut, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), b)
	h.clock.advance(2 * time.Hour)
	if err := h.eng.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rem, ok := h.eng.SaleRemaining("f1"); !ok || rem != 0 {
		t.Fatalf("SaleRemaining after the end = %d, %v; want 0 (the gateway's memory path)", rem, ok)
	}
	h.wantCode(CodeNotActive, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), b)
	h.wantCode(CodeNotActive, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), b, "Idempotency-Key: after-end")
	if s := into[engine.FlashSale](t, h.wantCode(CodeOK, "GET", "/api/v1/flash-sales/f1", nil)); s.Status != "ended" {
		t.Errorf("sale status = %q; want ended", s.Status)
	}
}

// TestClientIPPerConnection: a connection's address is formatted once and
// kept on the connection, and X-Forwarded-For from a trusted peer still
// decides on every request of that connection, in either order.
func TestClientIPPerConnection(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	h.createSale("f1", 100, 50)
	a := h.login("alice")
	for i, c := range []struct{ xff, want string }{
		{"", "127.0.0.1"},
		{"X-Forwarded-For: 203.0.113.9, 10.0.0.1", "10.0.0.1"},
		{"", "127.0.0.1"},
		{"X-Forwarded-For: 198.51.100.4", "198.51.100.4"},
		{"", "127.0.0.1"},
	} {
		hdr := []string{a}
		if c.xff != "" {
			hdr = append(hdr, c.xff)
		}
		h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), hdr...)
		if ip := h.risk.lastIP(); ip != c.want {
			t.Errorf("request %d (%q): client ip = %q; want %q", i, c.xff, ip, c.want)
		}
	}
}
