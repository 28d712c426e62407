package gateway

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

// h5Catalog is testCatalog with what the H5 page shows besides: banners,
// a store address and hours, a guide's title and picks.
const h5Catalog = `{
 "stores":   [{"store_id": "s1", "name": "静安店", "city": "上海", "address": "南京西路1号", "hours": "10:00-22:00",
               "banners": ["https://img.surge.example/b1.jpg", "https://img.surge.example/b2.jpg"]},
              {"store_id": "s2", "name": "徐汇店", "city": "上海"}],
 "guides":   [{"guide_id": "g1", "store_id": "s1", "name": "小王", "title": "资深导购", "picks": ["k2"]}],
 "products": [{"sku_id": "k1", "title": "羊毛大衣", "price": 59900, "images": []},
              {"sku_id": "k2", "title": "羊绒围巾", "price": 9900, "images": []},
              {"sku_id": "k3", "title": "皮手套", "price": 4900, "images": []}],
 "listings": [{"store_id": "s1", "sku_id": "k1", "price": 49900, "on_hand": 100},
              {"store_id": "s1", "sku_id": "k2", "price": 8900, "on_hand": 10},
              {"store_id": "s1", "sku_id": "k3", "price": 3900, "on_hand": 3},
              {"store_id": "s2", "sku_id": "k1", "price": 52900, "on_hand": 50}]}`

// h5Get fetches an H5 page as a browser without scripts would.
func (h *harness) h5Get(path string, hdr ...string) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.base+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, kv := range hdr {
		k, v, _ := strings.Cut(kv, ": ")
		req.Header.Set(k, v)
	}
	res, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	return res, string(body)
}

func wantIn(t *testing.T, what, body string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(body, p) {
			t.Errorf("%s: %q is missing", what, p)
		}
	}
}

func TestH5StorePageIsReadableWithoutScripts(t *testing.T) {
	h := newHarness(t, "memory")
	h.wantCode(CodeOK, "PUT", "/admin/v1/catalog", h5Catalog, adminAuth)
	h.createSale("fs1", 20, 2)

	res, body := h.h5Get("/h5/stores/s1")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html; charset=utf-8") {
		t.Fatalf("GET /h5/stores/s1 = %d %q; want 200 text/html", res.StatusCode, res.Header.Get("Content-Type"))
	}
	wantIn(t, "store page", body,
		`<h1 id="store-name">静安店</h1>`, "上海", "南京西路1号", "10:00-22:00",
		"羊毛大衣", "羊绒围巾", "皮手套", "¥499.00", "¥599.00", "¥89.00", "¥39.00",
		"库存紧张", // k3: 3 on hand
		`data-sale="fs1"`, "¥99.00", "剩余 <b class=\"remaining\">20</b> / 20 件", "每人限 2 件",
		`class="banner banner-0"`, `src="https://img.surge.example/b1.jpg"`)
	if strings.Contains(body, `id="guide"`) || strings.Contains(body, `id="share"`) {
		t.Errorf("plain store page shows a guide card or share parameters")
	}
	// The server's clock is in the page, and the sale's window.
	i := strings.Index(body, `data-now-ms="`)
	if i < 0 {
		t.Fatalf("no data-now-ms in page")
	}
	rest := body[i+len(`data-now-ms="`):]
	ms, err := strconv.ParseInt(rest[:strings.IndexByte(rest, '"')], 10, 64)
	if d := time.Since(time.UnixMilli(ms)); err != nil || d < -time.Second || d > 5*time.Second {
		t.Errorf("data-now-ms = %d (%v); want about now", ms, err)
	}
	wantIn(t, "store page", body, `data-starts-ms="`, `data-ends-ms="`, "（北京时间）")
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'sha256-") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "<link") || strings.Contains(body, "<script src") {
		t.Errorf("page loads outside assets")
	}

	// A guide's page: the card, the picks and the share parameters.
	_, gbody := h.h5Get("/h5/stores/s1?guide=g1")
	wantIn(t, "guide page", gbody, `id="guide"`, `<b id="guide-name">小王</b>`, "资深导购", `id="picks"`, "小王 的推荐",
		"/pages/store/index?guide_id=g1&amp;store_id=s1", "小王@静安店")
	picks := gbody[strings.Index(gbody, `id="picks"`):strings.Index(gbody, `id="products"`)]
	if !strings.Contains(picks, "羊绒围巾") || strings.Contains(picks, "羊毛大衣") {
		t.Errorf("picks section = %q; want k2 only", picks)
	}
	// Another store's guide, or an unknown one: the plain page.
	if _, b := h.h5Get("/h5/stores/s2?guide=g1"); strings.Contains(b, `id="guide"`) {
		t.Errorf("s2's page shows s1's guide")
	}
}

func TestH5StorePageETag(t *testing.T) {
	h := newHarness(t, "memory")
	h.wantCode(CodeOK, "PUT", "/admin/v1/catalog", h5Catalog, adminAuth)
	res, body := h.h5Get("/h5/stores/s1")
	etag := res.Header.Get("ETag")
	api := h.do("GET", "/api/v1/stores/s1/page", nil).Header.Get("ETag")
	if etag == "" || etag == api || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag = %q (page API's %q), Cache-Control %q; want its own ETag, no-cache", etag, api, res.Header.Get("Cache-Control"))
	}
	res2, body2 := h.h5Get("/h5/stores/s1", "If-None-Match: "+etag)
	if res2.StatusCode != 304 || body2 != "" {
		t.Errorf("If-None-Match: %d with %d bytes; want 304, empty", res2.StatusCode, len(body2))
	}
	gres, _ := h.h5Get("/h5/stores/s1?guide=g1")
	if g := gres.Header.Get("ETag"); g == etag || g == "" {
		t.Errorf("guide page ETag = %q; want one of its own (store page %q)", g, etag)
	}
	if r, _ := h.h5Get("/h5/stores/s1?guide=g1", "If-None-Match: "+etag); r.StatusCode != 200 {
		t.Errorf("guide page with the store page's ETag = %d; want 200", r.StatusCode)
	}
	// The same version again is the same page (from the cache), but for
	// the server's time.
	_, again := h.h5Get("/h5/stores/s1")
	cut := func(s string) string { return s[strings.Index(s, `">`):] }
	if cut(again) != cut(body) {
		t.Errorf("same page version rendered differently")
	}
	// A new version (a price change) is a new ETag and new content.
	h.wantCode(CodeOK, "PUT", "/admin/v1/catalog", strings.Replace(h5Catalog, `"price": 49900`, `"price": 45900`, 1), adminAuth)
	res3, body3 := h.h5Get("/h5/stores/s1", "If-None-Match: "+etag)
	if res3.StatusCode != 200 || res3.Header.Get("ETag") == etag || !strings.Contains(body3, "¥459.00") {
		t.Errorf("after a price change: %d, ETag %q (was %q), new price shown %v; want 200, a new ETag, ¥459.00",
			res3.StatusCode, res3.Header.Get("ETag"), etag, strings.Contains(body3, "¥459.00"))
	}
	if r, b := h.h5Get("/h5/stores/s1"); r.Request.Method != "GET" || len(b) == 0 {
		t.Errorf("empty page")
	}
	hr, err := h.client.Head(h.base + "/h5/stores/s1")
	if err != nil || hr.StatusCode != 200 {
		t.Errorf("HEAD = %v, %v; want 200", hr, err)
	}
}

func TestH5UnknownStoreIsAnHTML404(t *testing.T) {
	h := newHarness(t, "memory")
	h.wantCode(CodeOK, "PUT", "/admin/v1/catalog", h5Catalog, adminAuth)
	for _, path := range []string{"/h5/stores/nope", "/h5/stores/nope?guide=g1"} {
		res, body := h.h5Get(path)
		if res.StatusCode != 404 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s = %d %q; want 404 text/html", path, res.StatusCode, res.Header.Get("Content-Type"))
		}
		wantIn(t, path, body, "找不到这家店", "Store not found", "<html")
	}
	res, body := h.h5Get("/h5/stores/s1?guide=" + strings.Repeat("g", 200))
	if res.StatusCode != 400 || !strings.Contains(body, "guide id too long") {
		t.Errorf("long guide id = %d %q; want 400", res.StatusCode, body)
	}
	if r, _ := h.h5Get("/h5/stores/s1/extra"); r.StatusCode != 404 {
		t.Errorf("/h5/stores/s1/extra = %d; want 404", r.StatusCode)
	}
}

func TestH5EscapesCatalogText(t *testing.T) {
	h := newHarness(t, "memory")
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)>"'&`
	cat := strings.NewReplacer(
		`"title": "羊毛大衣"`, `"title": `+strconv.Quote(evil),
		`"name": "小王"`, `"name": `+strconv.Quote(`</script><script>alert(3)</script>`),
		`"city": "上海", "address"`, `"city": `+strconv.Quote(`" onmouseover="alert(4)`)+`, "address"`,
		`"https://img.surge.example/b1.jpg"`, `"javascript:alert(5)"`,
	).Replace(h5Catalog)
	h.wantCode(CodeOK, "PUT", "/admin/v1/catalog", cat, adminAuth)
	h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{
		SaleID: "fs1", StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: 5, PerUserLimit: 1,
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour), HoldSeconds: 300,
	}, adminAuth)
	res, body := h.h5Get("/h5/stores/s1?guide=g1")
	if res.StatusCode != 200 {
		t.Fatalf("GET = %d", res.StatusCode)
	}
	for _, bad := range []string{"<script>alert", "<img src=x", `" onmouseover="`, "javascript:alert", "</script><script>"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	if n := strings.Count(body, "<script"); n != 2 {
		t.Errorf("page has %d <script elements; want 2 (data and code)", n)
	}
	wantIn(t, "escaped page", body, "&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;/script&gt;&lt;script&gt;alert(3)")
}

// TestH5CacheIsBounded: page versions past the byte bound push older ones
// out; concurrent requests of one version share its rendering.
func TestH5CacheIsBounded(t *testing.T) {
	h := newHarness(t, "memory")
	h.wantCode(CodeOK, "PUT", "/admin/v1/catalog", h5Catalog, adminAuth)
	page, err := h.eng.StorePage("s1", "g1")
	if err != nil {
		t.Fatal(err)
	}
	c := h5Cache{bytesMax: 256 << 10}
	first := c.get(page)
	if first.err != nil || first.size == 0 {
		t.Fatalf("get = %v, %d bytes", first.err, first.size)
	}
	n := 2*c.bytesMax/first.size + 10
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				p := page
				if (i+w)%3 != 0 { // a third of the calls share versions
					p.ETag = `"v` + strconv.Itoa(i) + `"`
				}
				if e := c.get(p); e.err != nil || len(e.rest) != first.size {
					t.Errorf("get(%s) = %v, %d bytes; want %d", p.ETag, e.err, len(e.rest), first.size)
					return
				}
			}
		}()
	}
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := 0
	for _, e := range c.m {
		sum += e.size
	}
	if sum != c.bytes || c.bytes > c.bytesMax+first.size {
		t.Errorf("cache holds %d bytes (counted %d) in %d pages; want at most %d", sum, c.bytes, len(c.m), c.bytesMax+first.size)
	}
}
