package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// withRisk is a harness option that puts the built-in risk hook, with cfg
// on the harness's clock, in front of the engine.
func withRisk(t *testing.T, cfg engine.RiskConfig) engineOpts {
	return func(eo *engine.Options) {
		cfg.Now = eo.Now
		hook, err := engine.NewRiskHook(cfg)
		if err != nil {
			t.Fatal(err)
		}
		eo.Risk = hook
	}
}

// pageToken gets a page of store (path: "page" or "products/k1") and
// returns its page token.
func (h *harness) pageToken(store, path string, hdr ...string) string {
	h.t.Helper()
	r := h.wantCode(CodeOK, "GET", "/api/v1/stores/"+store+"/"+path, nil, hdr...)
	tok := r.Header.Get("X-Surge-Page-Token")
	if tok == "" {
		h.t.Fatalf("GET %s/%s: no X-Surge-Page-Token", store, path)
	}
	return tok
}

// TestPageTokenIssued: the store page and the product page carry a fresh
// token, on 200 and on 304, that reads back as issued (store, time) and
// differs from request to request; an error answer carries none; a token
// that is tampered with, truncated or not ours reads as bad.
func TestPageTokenIssued(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	before := h.clock.now().UnixMilli()
	seen := map[string]bool{}
	for _, path := range []string{"page", "page?guide=g1", "products/k1"} {
		tok := h.pageToken("s1", path)
		if seen[tok] {
			t.Fatalf("token %q handed out twice", tok)
		}
		seen[tok] = true
		v := h.srv.pageTok.read([]byte(tok), &h.srv.intern)
		if v.State != engine.PageTokenSigned || v.StoreID != "s1" || v.IssuedMs < before || v.IssuedMs > h.clock.now().UnixMilli() {
			t.Fatalf("token of %s reads %+v; want signed, store s1, issued just now", path, v)
		}
	}
	etag := h.do("GET", "/api/v1/stores/s1/page", nil).Header.Get("ETag")
	r := h.do("GET", "/api/v1/stores/s1/page", nil, "If-None-Match: "+etag)
	if r.Status != http.StatusNotModified || r.Header.Get("X-Surge-Page-Token") == "" || seen[r.Header.Get("X-Surge-Page-Token")] {
		t.Fatalf("304: HTTP %d, token %q; want 304 with a fresh token", r.Status, r.Header.Get("X-Surge-Page-Token"))
	}
	if r := h.wantCode(CodeNotFound, "GET", "/api/v1/stores/nope/page", nil); r.Header.Get("X-Surge-Page-Token") != "" {
		t.Fatalf("404 carries a page token")
	}
	good := h.pageToken("s2", "page")
	other := newPageTokens([]byte("another deployment's secret"))
	for _, bad := range []string{
		tamperTag(good),                         // tag changed
		strings.Replace(good, "p1.", "p1.A", 1), // payload changed
		good[:len(good)/2],
		"p1.",
		"p1..",
		"s1.abc.def",
		strings.Repeat("x", pageTokenLenMax+1),
		other.sign("s2", time.Now().UnixMilli()),
	} {
		if v := h.srv.pageTok.read([]byte(bad), &h.srv.intern); v.State != engine.PageTokenBad {
			t.Errorf("token %q reads %+v; want bad", bad, v)
		}
	}
}

// TestPageTokenReserve: over loopback HTTP through the gateway with the
// built-in hook's defaults (the minimum age raised so that the machine's
// speed cannot matter): a shopper who got the page a while ago reserves;
// one who fires at once is refused (40300) and so is a token replayed by
// another account, a forged one and another store's; a client without a
// token (the mini-program's) reserves, checks out and opens a team; each
// denial is counted by reason in stats and /metrics.
func TestPageTokenReserve(t *testing.T) {
	h := newHarness(t, "memory", withRisk(t, engine.RiskConfig{PageTokenMinAge: time.Minute}))
	h.loadCatalog()
	h.createSale("f1", 50, 5)
	alice, bob := h.login("alice"), h.login("bob")
	reserve := func(auth string, hdr ...string) resp {
		return h.do("POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), append([]string{auth}, hdr...)...)
	}
	// A sprinter: the token is seconds old (under the raised minimum).
	fast := h.pageToken("s1", "page")
	h.want(reserve(alice, "X-Surge-Page-Token: "+fast), CodeRiskDenied)
	// A shopper: the page, then a human while.
	slow := h.pageToken("s1", "products/k1")
	h.clock.advance(61 * time.Second)
	h.want(reserve(alice, "X-Surge-Page-Token: "+slow), CodeOK)
	// The same token from another account.
	h.want(reserve(bob, "X-Surge-Page-Token: "+slow), CodeRiskDenied)
	// Forged, and another store's.
	h.want(reserve(bob, "X-Surge-Page-Token: "+tamperTag(slow)), CodeRiskDenied)
	s2 := h.pageToken("s2", "page")
	h.clock.advance(61 * time.Second)
	h.want(reserve(bob, "X-Surge-Page-Token: "+s2), CodeRiskDenied)
	// No token: a flash reserve is refused (only a script reserves
	// without a page view); a checkout is allowed alone.
	h.want(reserve(bob), CodeRiskDenied)
	h.wantCode(CodeOK, "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k2","quantity":1}]}`, bob)
	// An expired token still shows a page view: 40, allowed alone.
	old := h.pageToken("s1", "page")
	h.clock.advance(11 * time.Minute)
	h.want(reserve(bob, "X-Surge-Page-Token: "+old), CodeOK)
	// Checkout judges the token as the flash reserve does.
	fresh := h.pageToken("s1", "page")
	h.wantCode(CodeRiskDenied, "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k2","quantity":1}]}`, bob,
		"X-Surge-Page-Token: "+fresh)
	h.wantCode(CodeBadRequest, "POST", "/api/v1/checkout", `{"store_id":"s1","items":[]}`, bob, "X-Surge-Page-Token: "+fresh)

	want := map[string]int64{
		engine.RiskReasonPageTokenYoung:   2,
		engine.RiskReasonPageTokenReused:  1,
		engine.RiskReasonPageTokenInvalid: 2,
		engine.RiskReasonPageTokenMissing: 1,
	}
	st := h.stats()
	for reason, n := range want {
		if st.RiskDenials[reason] != n {
			t.Errorf("stats risk denials %q = %d; want %d (all: %v)", reason, st.RiskDenials[reason], n, st.RiskDenials)
		}
	}
	m := h.metricsText()
	for reason, n := range want {
		if line := fmt.Sprintf(`surge_risk_denials_total{reason=%q} %d`, reason, n); !strings.Contains(m, line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
}

// TestRiskLinksOverHTTP: with the configured counts, a farm of 50
// accounts on one device (each behind its own address, each with a good
// token) is refused past the count, and a household of 3 accounts on one
// address, each on its phone, is not, however often it reserves; without
// tokens, the same household plus a crowd on its address is refused.
func TestRiskLinksOverHTTP(t *testing.T) {
	h := newHarness(t, "memory", withRisk(t, engine.RiskConfig{AccountsPerDevice: 5, DevicesPerIP: 4,
		// The household's tokenless reserves below weigh as a checkout's.
		Weights: engine.RiskWeights{FlashPageTokenMissing: 40}}))
	h.loadCatalog()
	h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{
		SaleID: "f1", StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: 100, PerUserLimit: 1,
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour), HoldSeconds: 300,
	}, adminAuth)
	tokens := make([]string, 0, 60)
	for range 60 {
		tokens = append(tokens, h.pageToken("s1", "page"))
	}
	h.clock.advance(time.Second)
	ok, refused := 0, 0
	for i := range 50 {
		auth := h.login(fmt.Sprintf("farm%02d", i))
		r := h.do("POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), auth, "X-Device-Id: farm-phone",
			fmt.Sprintf("X-Forwarded-For: 198.51.100.%d", i), "X-Surge-Page-Token: "+tokens[i])
		switch r.Code {
		case CodeOK:
			ok++
		case CodeRiskDenied:
			refused++
		default:
			t.Fatalf("farm account %d: code %d (%s)", i, r.Code, r.Msg)
		}
	}
	if ok != 5 || refused != 45 {
		t.Fatalf("farm of 50 on one device: %d reserved, %d refused; want 5 and 45", ok, refused)
	}
	for round := range 3 {
		for i := range 3 {
			auth := h.login(fmt.Sprintf("home%d", i))
			code := CodeOK
			if round > 0 {
				code = CodeLimitExceeded // per-user limit 1: the risk hook let them through
			}
			h.wantCode(code, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), auth,
				fmt.Sprintf("X-Device-Id: home-phone-%d", i), "X-Forwarded-For: 203.0.113.7",
				"X-Surge-Page-Token: "+tokens[50+i])
		}
	}
	// Two more phones on the household's address, no token: the fifth
	// device is over the count, and with no token that denies.
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), h.login("guest1"),
		"X-Device-Id: guest-phone-1", "X-Forwarded-For: 203.0.113.7")
	h.wantCode(CodeRiskDenied, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), h.login("guest2"),
		"X-Device-Id: guest-phone-2", "X-Forwarded-For: 203.0.113.7")
	// With a good token the same crowding alone is let through.
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), h.login("guest3"),
		"X-Device-Id: guest-phone-3", "X-Forwarded-For: 203.0.113.7", "X-Surge-Page-Token: "+tokens[55])
	st := h.stats()
	if st.RiskDenials[engine.RiskReasonDeviceAccounts] != 45 || st.RiskDenials[engine.RiskReasonIPDevices] != 1 {
		t.Fatalf("risk denials = %v; want device_accounts 45, ip_devices 1", st.RiskDenials)
	}
}

// TestAccountAgeOverHTTP: a sale created with min_account_age_seconds
// refuses an account whose first session is younger; the first login is
// what counts, not the latest; bad values are refused at creation.
func TestAccountAgeOverHTTP(t *testing.T) {
	// The sale's own minimum is judged even with nothing else of the
	// score on (these buyers send no page token).
	h := newHarness(t, "memory", withRisk(t, engine.RiskConfig{PageTokenOff: true}))
	h.loadCatalog()
	spec := engine.FlashSaleSpec{SaleID: "f1", StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: 10, PerUserLimit: 1,
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(48 * time.Hour), HoldSeconds: 300, MinAccountAgeSeconds: 86400}
	before := h.stockState()
	for _, bad := range []string{`-1`, `99999999999`, `"1d"`} {
		body := fmt.Sprintf(`{"sale_id":"f1","store_id":"s1","sku_id":"k1","price":9900,"quantity":10,"starts_at":%q,"ends_at":%q,"min_account_age_seconds":%s}`,
			spec.StartsAt.Format(time.RFC3339), spec.EndsAt.Format(time.RFC3339), bad)
		h.wantCode(CodeBadRequest, "POST", "/admin/v1/flash-sales", body, adminAuth)
	}
	if after := h.stockState(); after != before {
		t.Fatalf("refused sale changed the state: %s -> %s", before, after)
	}
	sale := into[engine.FlashSale](t, h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", spec, adminAuth))
	if sale.MinAccountAgeSeconds != 86400 {
		t.Fatalf("sale answer min_account_age_seconds = %d; want 86400", sale.MinAccountAgeSeconds)
	}
	old := h.login("old-timer")
	h.clock.advance(25 * time.Hour)
	newbie := h.login("newbie")
	old = h.login("old-timer") // the first session expired; a new one does not make the account younger
	h.wantCode(CodeRiskDenied, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), newbie)
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), old)
	if n := h.stats().RiskDenials[engine.RiskReasonAccountYoung]; n != 1 {
		t.Fatalf("account_young denials = %d; want 1", n)
	}
}

// riskNode is one gateway node over a shared Redis (inventory and
// records), with the built-in risk hook.
func riskNode(t *testing.T, redisAddr string, secret []byte, clock *testClock) string {
	t.Helper()
	ctx := context.Background()
	store, err := redisinv.Open(ctx, redisinv.Options{Addr: redisAddr})
	if err != nil {
		t.Fatal(err)
	}
	hook, err := engine.NewRiskHook(engine.RiskConfig{PageTokenMinAge: time.Minute, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(ctx, engine.Options{Store: store, RedisAddr: redisAddr, Risk: hook, SweepInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Engine: eng, AdminToken: testAdminToken, SessionSecret: secret, Now: clock.now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
		eng.Close()
		store.Close()
	})
	return "http://" + ln.Addr().String()
}

// TestPageTokenTwoNodes: two gateways sharing a Redis and the session
// secret: a page token from one node is good on the other (a shopper a
// load balancer sends to another node reserves), a sprinter's token is
// too young on either, and a node with another secret refuses it. The
// nodes share a test clock (minimum age raised to a minute), so that the
// machine's speed cannot matter.
func TestPageTokenTwoNodes(t *testing.T) {
	rs := redistest.Start(t)
	secret := []byte("shared-session-secret-of-the-fleet")
	a, b := &harness{t: t, client: &http.Client{Timeout: 30 * time.Second}}, &harness{t: t, client: &http.Client{Timeout: 30 * time.Second}}
	clock := &testClock{}
	a.base, b.base = riskNode(t, rs.Addr, secret, clock), riskNode(t, rs.Addr, secret, clock)
	c := &harness{t: t, client: &http.Client{Timeout: 30 * time.Second}, base: riskNode(t, rs.Addr, []byte("a stranger's secret, not ours"), clock)}
	a.loadCatalog()
	now := time.Now()
	a.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{SaleID: "f1", StoreID: "s1", SKUID: "k1",
		Price: 9900, Quantity: 10, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour), HoldSeconds: 300}, adminAuth)
	// The other nodes learn of the catalog and the sale at their next sync.
	for _, n := range []*harness{b, c} {
		deadline := time.Now().Add(20 * time.Second)
		for n.do("GET", "/api/v1/flash-sales/f1", nil).Code != CodeOK || n.do("GET", "/api/v1/stores/s1/page", nil).Code != CodeOK {
			if time.Now().After(deadline) {
				t.Fatal("the sale did not reach the other node")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	alice := a.login("alice") // the session secret is shared: good on b
	tok := a.pageToken("s1", "page")
	// A sprinter: a fresh token on the other node is too young there too.
	b.wantCode(CodeRiskDenied, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), alice, "X-Surge-Page-Token: "+b.pageToken("s1", "page"))
	clock.advance(61 * time.Second)
	b.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), alice, "X-Surge-Page-Token: "+tok)
	// Another deployment's node cannot read it: its session is not good
	// there either, so log in there.
	c.wantCode(CodeRiskDenied, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), c.login("carol"), "X-Surge-Page-Token: "+tok)
}

// tamperTag changes the first character of a token's tag.
func tamperTag(tok string) string { return tamperTagAt(tok, 0) }

// tamperTagAt changes the character at offset at of a token's tag.
func tamperTagAt(tok string, at int) string {
	i := strings.LastIndexByte(tok, '.') + 1 + at
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// TestRiskLinksCountedAtLogin: with `surge serve`'s linkage defaults, a
// farm whose 100 accounts logged in 4 to a phone and 25 phones to an
// address is refused from its very first reserve (good tokens and all),
// while a household whose 3 accounts logged in on their phones behind one
// address reserves; a login with a malformed X-Device-Id still gets its
// session (the login is not judged) and counts nothing.
func TestRiskLinksCountedAtLogin(t *testing.T) {
	h := newHarness(t, "memory", withRisk(t, engine.RiskConfig{AccountsPerDevice: 5, DevicesPerIP: 30}))
	h.loadCatalog()
	h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{
		SaleID: "f1", StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: 50, PerUserLimit: 1,
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour), HoldSeconds: 300,
	}, adminAuth)
	loginOn := func(uid string, hdr ...string) string {
		t.Helper()
		r := h.wantCode(CodeOK, "POST", "/api/v1/session", map[string]string{"code": uid}, hdr...)
		return "Authorization: Bearer " + into[sessionAnswer](t, r).Token
	}
	farm := make([]string, 0, 100)
	for d := range 25 {
		for a := range 4 {
			farm = append(farm, loginOn(fmt.Sprintf("farm-%02d-%d", d, a), fmt.Sprintf("X-Device-Id: farm-phone-%02d", d), "X-Forwarded-For: 198.51.100.9"))
		}
	}
	home := make([]string, 0, 3)
	for i := range 3 {
		home = append(home, loginOn(fmt.Sprintf("home%d", i), fmt.Sprintf("X-Device-Id: home-phone-%d", i), "X-Forwarded-For: 203.0.113.7"))
	}
	odd := loginOn("odd", "X-Device-Id: "+strings.Repeat("x", 200), "X-Forwarded-For: 203.0.113.8")
	tokens := make([]string, 0, 104)
	for range 104 {
		tokens = append(tokens, h.pageToken("s1", "page"))
	}
	h.clock.advance(time.Second)
	for i, auth := range farm {
		h.wantCode(CodeRiskDenied, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), auth,
			fmt.Sprintf("X-Device-Id: farm-phone-%02d", i/4), "X-Forwarded-For: 198.51.100.9", "X-Surge-Page-Token: "+tokens[i])
	}
	for i, auth := range home {
		h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), auth,
			fmt.Sprintf("X-Device-Id: home-phone-%d", i), "X-Forwarded-For: 203.0.113.7", "X-Surge-Page-Token: "+tokens[100+i])
	}
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), odd,
		"X-Device-Id: odd-phone", "X-Forwarded-For: 203.0.113.8", "X-Surge-Page-Token: "+tokens[103])
	if st := h.stats(); st.RiskDenials[engine.RiskReasonDeviceAccounts] != 100 {
		t.Fatalf("risk denials = %v; want device_accounts 100 (the heaviest of device 50, address 42, farm_shape 50)", st.RiskDenials)
	}
}

// TestPageTokenCheckRemembered: a token read before is read again from the
// table of tokens checked, still as what it says; a token with its tag but
// another payload (one byte of the issue time changed, so it lands in the
// same slot), or its payload with another tag, is still bad, and the good
// one stays good after them.
func TestPageTokenCheckRemembered(t *testing.T) {
	p := newPageTokens([]byte("test-session-secret-0123456789abcd"))
	var in interner
	in.init()
	in.keep("s1")
	now := time.Now().UnixMilli()
	good := p.sign("s1", now)
	want := p.read([]byte(good), &in)
	if want.State != engine.PageTokenSigned || want.StoreID != "s1" || want.IssuedMs != now {
		t.Fatalf("token reads %+v; want signed, store s1, issued %d", want, now)
	}
	dot := strings.LastIndexByte(good, '.')
	forged := []byte(good)
	i := len(pageTokenPrefix) + 2 // within the issue time
	if forged[i] == 'A' {
		forged[i] = 'B'
	} else {
		forged[i] = 'A'
	}
	for round := range 3 {
		if v := p.read([]byte(good), &in); v != want {
			t.Fatalf("round %d: the token read again reads %+v; want %+v", round, v, want)
		}
		if v := p.read(forged, &in); v.State != engine.PageTokenBad {
			t.Fatalf("round %d: its tag on another payload (%q) reads %+v; want bad", round, forged[:dot], v)
		}
		if v := p.read([]byte(tamperTag(good)), &in); v.State != engine.PageTokenBad {
			t.Fatalf("round %d: its payload with another tag reads %+v; want bad", round, v)
		}
		// A tag that differs only past the bytes that choose the slot
		// finds the remembered token in its slot: the tag compare
		// refuses it.
		if v := p.read([]byte(tamperTagAt(good, 8)), &in); v.State != engine.PageTokenBad {
			t.Fatalf("round %d: its payload with a tag differing in its slot reads %+v; want bad", round, v)
		}
	}
}
