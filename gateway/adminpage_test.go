package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

// getPage fetches a non-JSON answer over loopback.
func (h *harness) getPage(method, path string, hdr ...string) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, kv := range hdr {
		k, v, _ := strings.Cut(kv, ": ")
		req.Header.Set(k, v)
	}
	res, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return res, string(b)
}

var (
	reExternal   = regexp.MustCompile(`(?i)\s(src|href|action|srcset)\s*=|<link|@import|\burl\(|//[a-z0-9.-]+\.[a-z]{2,}/`)
	reInlineJS   = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	reInlineCSS  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
	reScriptTags = regexp.MustCompile(`<script`)
)

// TestAdminPageServed: GET /admin/ answers the page without a token:
// HTML, self-contained (no src, href or url() anywhere: nothing from
// outside), its inline script and style allowed by the CSP's hashes, an
// ETag that answers 304; /admin the same; other methods refused.
func TestAdminPageServed(t *testing.T) {
	h := newHarness(t, "memory")
	res, body := h.getPage("GET", "/admin/")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /admin/: HTTP %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if m := reExternal.FindString(body); m != "" {
		t.Errorf("the page refers to something outside itself: %q", m)
	}
	for _, want := range []string{"<!doctype html>", `lang="zh-CN"`, `charset="utf-8"`, "运营看板", `name="viewport"`,
		"/admin/v1/stats", "/admin/v1/flash-sales", "/admin/v1/group-buys", "/admin/v1/attribution", "sessionStorage", "Authorization"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, testAdminToken) {
		t.Error("the page holds the admin token")
	}
	csp := res.Header.Get("Content-Security-Policy")
	if n := len(reScriptTags.FindAllString(body, -1)); n != 1 {
		t.Errorf("%d script tags; want the one inline script", n)
	}
	for _, re := range []*regexp.Regexp{reInlineJS, reInlineCSS} {
		m := re.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no inline %v in the page", re)
		}
		sum := sha256.Sum256([]byte(m[1]))
		if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
			t.Errorf("CSP %q does not allow the inline block (%s)", csp, want)
		}
	}
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP = %q; want default-src 'none' and connect-src 'self'", csp)
	}
	etag := res.Header.Get("ETag")
	if res, _ := h.getPage("GET", "/admin/", "If-None-Match: "+etag); etag == "" || res.StatusCode != 304 {
		t.Errorf("GET /admin/ with If-None-Match %q: HTTP %d; want 304", etag, res.StatusCode)
	}
	if res, b := h.getPage("GET", "/admin"); res.StatusCode != 200 || b != body {
		t.Errorf("GET /admin: HTTP %d; want the same page", res.StatusCode)
	}
	if res, b := h.getPage("HEAD", "/admin/"); res.StatusCode != 200 || b != "" {
		t.Errorf("HEAD /admin/: HTTP %d, %d bytes; want 200 and no body", res.StatusCode, len(b))
	}
	h.wantCode(CodeBadRequest, "POST", "/admin/", nil)
	h.wantCode(CodeNotFound, "GET", "/admin/x", nil)
	// The page is admitted as admin, and needs no auth of its own.
	if r, _, _, ok := match([]byte("GET"), []byte("/admin/")); r != rAdminPage || !ok || routes[r].class != classAdmin {
		t.Errorf("match(GET /admin/) = %v, %v; want the admin page in the admin class", r, ok)
	}
	// A wrong token on the page's data calls is refused and counted
	// towards the wrong-token throttle, as any admin call.
	h.wantCode(CodeUnauthorized, "GET", "/admin/v1/stats", nil, "Authorization: Bearer wrong-token-wrong-token")
}

// TestAdminStatsForPage: GET /admin/v1/stats carries what the admin page
// reads: per sale and deal counts, orders, payments, risk denials, sheds,
// throttles by route, the reserve route's p50/p99 and the server's clock;
// and the admin lists carry status and window.
func TestAdminStatsForPage(t *testing.T) {
	h := newHarness(t, "memory", harnessOpt(func(o *Options) { o.AdminFailuresBurst = 2 }))
	h.loadCatalog()
	h.createSale("f1", 10, 0)
	now := time.Now()
	h.wantCode(CodeOK, "POST", "/admin/v1/group-buys", engine.GroupDealSpec{
		DealID: "d1", StoreID: "s1", SKUID: "k2", Price: 5000, TeamSize: 2, Quantity: 4,
		TeamWindowSeconds: 600, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	}, adminAuth)
	alice := h.login("alice")
	for range 3 {
		h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), alice)
	}
	h.wantCode(CodeRiskDenied, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), alice, "X-Device-Id: bot")

	raw := h.wantCode(CodeOK, "GET", "/admin/v1/stats", nil, adminAuth).Data
	var st map[string]json.RawMessage
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sales", "deals", "orders", "payments", "risk_denials", "sheds", "throttles", "inflight", "latency", "server_time_ms"} {
		if _, ok := st[k]; !ok {
			t.Errorf("stats lacks %q: %s", k, raw)
		}
	}
	a := into[statsAnswer](t, resp{Data: raw})
	if p := a.Sales["f1"]; p.Supplied != 10 || p.Held != 3 || p.Remaining != 7 {
		t.Errorf("sales.f1 = %+v; want 10 supplied, 3 held, 7 remaining", p)
	}
	if p := a.Deals["d1"]; p.Supplied != 4 {
		t.Errorf("deals.d1 = %+v; want 4 supplied", p)
	}
	if a.RiskDenials["blocklist"] != 1 {
		t.Errorf("risk_denials = %v; want blocklist 1", a.RiskDenials)
	}
	if d := time.Since(time.UnixMilli(a.ServerTimeMs)); d < -time.Second || d > 5*time.Second {
		t.Errorf("server_time_ms = %d, %v from now", a.ServerTimeMs, d)
	}
	lat := a.Latency
	if lat.Route != "sale_reserve" || lat.SinceStart.Count != 4 || lat.Recent.Count != 4 ||
		lat.SinceStart.P50Ms <= 0 || lat.SinceStart.P99Ms < lat.SinceStart.P50Ms || lat.SinceStart.Seconds < 0 {
		t.Errorf("latency = %+v; want 4 reserves with p50 > 0 and p99 >= p50", lat)
	}

	list := into[struct {
		Sales []map[string]any `json:"sales"`
	}](t, h.wantCode(CodeOK, "GET", "/admin/v1/flash-sales", nil, adminAuth))
	for _, k := range []string{"sale_id", "status", "starts_at_ms", "ends_at_ms", "store_id", "sku_id", "price", "quantity", "supplied", "held", "sold", "remaining"} {
		if len(list.Sales) != 1 || list.Sales[0][k] == nil {
			t.Errorf("flash-sales lacks %q: %v", k, list.Sales)
		}
	}

	// Wrong admin tokens past the burst: 42900, counted under throttles.
	for range 2 {
		h.wantCode(CodeUnauthorized, "GET", "/admin/v1/stats", nil, "Authorization: Bearer wrong-token-wrong-token")
	}
	h.wantCode(CodeThrottled, "GET", "/admin/v1/stats", nil, "Authorization: Bearer wrong-token-wrong-token")
	// This address is blocked now, even with the right token: read the
	// answer in process.
	got, err := h.srv.stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Throttles["admin_stats"] != 1 {
		t.Errorf("throttles = %v; want admin_stats 1", got.Throttles)
	}
}

func TestQuantileMs(t *testing.T) {
	bounds := []float64{.001, .002, .004}
	f := func(q float64, cum []uint64, count uint64, want float64) {
		t.Helper()
		if got := quantileMs(q, bounds, cum, count); got != want {
			t.Errorf("quantileMs(%v, %v, %d) = %v; want %v", q, cum, count, got, want)
		}
	}
	f(0.5, []uint64{10, 10, 10}, 10, 0.5)      // half-way into the first bucket
	f(0.5, []uint64{0, 10, 10}, 10, 1.5)       // half-way into the second
	f(0.99, []uint64{0, 0, 100}, 100, 3.98)    // near the top of the third
	f(0.99, []uint64{50, 50, 50}, 100, 4)      // past the last bucket: its bound
	f(0.5, []uint64{50, 100, 100}, 100, 1)     // exactly a bound
	f(0.5, []uint64{0, 0, 0}, 0, 0)            // nothing
	f(0.25, []uint64{100, 100, 100}, 100, .25) // a quarter into the first
}

// TestLatencyWindows: "recent" is measured from a snapshot at least
// latencyWindowMin old and reports its own length.
func TestLatencyWindows(t *testing.T) {
	since := histSnap{at: time.Unix(100, 0), bounds: []float64{.001, .002}, cum: []uint64{4, 4}, count: 4}
	now := histSnap{at: time.Unix(112, 0), bounds: []float64{.001, .002}, cum: []uint64{4, 14}, count: 14}
	w := windowOf(now, since)
	if w.Seconds != 12 || w.Count != 10 || w.P50Ms != 1.5 {
		t.Errorf("windowOf = %+v; want 12 s, 10 observations, p50 1.5 ms", w)
	}
	if w := windowOf(now, histSnap{at: time.Unix(100, 0)}); w.Count != 14 {
		t.Errorf("windowOf(since nothing) = %+v; want 14 observations", w)
	}
}
