package gateway

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/valyala/fasthttp"
)

// The shopper's H5 storefront, GET /h5/stores/{store_id}?guide={guide_id}
// (API.md, "Admin"): the page API's data (engine.StorePage's bytes)
// rendered on the server with html/template into one self-contained page
// (inline CSS and JS, go:embed), readable before any script runs. The
// script adds the countdowns (from the server's clock), a dev login, and
// reserve and pay buttons through the public API.
//
// Cost: a page version is decoded and rendered once, and kept by its ETag
// (h5CacheBytesMax); a request then costs the page API's engine call, one
// map lookup and a copy, and If-None-Match gives 304 as the page API does.
// The server's clock goes into each answer outside the cached bytes
// (h5Prefix + now + the rendered rest), so the cache never serves a stale
// time; a browser that revalidated to 304 keeps its old copy, and the
// script corrects its clock from GET /api/v1/flash-sales/{id}.

//go:embed h5/*
var h5Files embed.FS

const (
	// h5CacheBytesMax bounds the rendered pages kept, bytes (the HTML of
	// a demo store is about 60 KiB).
	h5CacheBytesMax = 16 << 20
	// h5EvictScanMax bounds the entries an eviction looks at.
	h5EvictScanMax = 64
)

// h5Prefix starts every page; the server's time (Unix ms) follows it, then
// the rendered rest of the page, which starts with `">`.
const h5Prefix = "<!doctype html>\n<html lang=\"zh-CN\" data-now-ms=\""

var (
	h5Tmpl, h5ErrTmpl *template.Template
	// h5CSS and h5JS are inlined verbatim; the Content-Security-Policy
	// allows exactly them by hash, so nothing injected into a page runs.
	h5CSS template.CSS
	h5JS  template.JS
	h5CSP string
	// h5Version is a hash of the page's code, part of each ETag, so that
	// a new build never answers 304 for a page an older one rendered.
	h5Version string

	contentTypeHTML = []byte("text/html; charset=utf-8")
)

func init() {
	read := func(name string) []byte {
		b, err := h5Files.ReadFile("h5/" + name)
		if err != nil {
			panic("BUG: " + err.Error())
		}
		return b
	}
	css, js := read("store.css"), read("store.js")
	h5CSS, h5JS = template.CSS(css), template.JS(js)
	funcs := template.FuncMap{"yuan": yuan, "stock": stockWords, "status": statusWords, "at": clockTime, "initial": initial}
	h5Tmpl = template.Must(template.New("store.html").Funcs(funcs).Parse(string(read("store.html"))))
	h5ErrTmpl = template.Must(template.New("error.html").Parse(string(read("error.html"))))
	sum := func(b []byte) string {
		h := sha256.Sum256(b)
		return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
	}
	h5CSP = "default-src 'none'; script-src " + sum(js) + "; style-src " + sum(css) +
		"; img-src https: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	v := sha256.New()
	for _, n := range []string{"store.html", "store.css", "store.js"} {
		v.Write(read(n))
	}
	h5Version = hex.EncodeToString(v.Sum(nil)[:4])
}

// h5Cache keeps rendered pages by the page API's ETag. The zero value is
// ready.
type h5Cache struct {
	bytesMax int // 0: h5CacheBytesMax (tests set less)

	mu    sync.RWMutex
	m     map[string]*h5Entry
	bytes int
}

// h5Entry is one rendered page version. once renders it: a crowd that
// meets a new version waits for one rendering instead of doing its own.
type h5Entry struct {
	once sync.Once
	etag string // the page's own ETag (from the page API's, plus h5Version)
	rest []byte // the page after h5Prefix and the time
	err  error
	size int         // len(rest) once counted in h5Cache.bytes; guarded by h5Cache.mu
	used atomic.Bool // since the last eviction scan
}

// get returns the entry of a page version, rendering it the first time.
func (c *h5Cache) get(page engine.Page) *h5Entry {
	if len(page.ETag) < 2 || page.ETag[len(page.ETag)-1] != '"' {
		panic("BUG: store page without a quoted ETag: " + page.ETag)
	}
	c.mu.RLock()
	e := c.m[page.ETag]
	c.mu.RUnlock()
	if e == nil {
		c.mu.Lock()
		if c.m == nil {
			c.m = make(map[string]*h5Entry)
		}
		if e = c.m[page.ETag]; e == nil {
			e = &h5Entry{etag: page.ETag[:len(page.ETag)-1] + "-h5." + h5Version + `"`}
			c.m[page.ETag] = e
		}
		c.mu.Unlock()
	}
	e.used.Store(true)
	e.once.Do(func() {
		e.rest, e.err = renderH5(page.Body)
		c.mu.Lock()
		if c.m[page.ETag] == e { // not evicted while rendering
			e.size = len(e.rest)
			c.bytes += e.size
			c.evict(e)
		}
		c.mu.Unlock()
	})
	return e
}

// evict drops entries not used since the last scan (any, when every one
// was) until the cache is under its bound; keep is never dropped. c.mu is
// held.
func (c *h5Cache) evict(keep *h5Entry) {
	bytesMax := c.bytesMax
	if bytesMax == 0 {
		bytesMax = h5CacheBytesMax
	}
	for pass := 0; pass < 3 && c.bytes > bytesMax; pass++ {
		n := 0
		for k, e := range c.m {
			if c.bytes <= bytesMax || n == h5EvictScanMax {
				break
			}
			n++
			if e == keep || e.size == 0 || (pass < 2 && e.used.Swap(false)) {
				continue // kept, being rendered, or used lately
			}
			delete(c.m, k)
			c.bytes -= e.size
		}
	}
}

func (s *Server) serveH5Store(ctx *fasthttp.RequestCtx, storeB []byte) int {
	store, storeKnown := s.intern.get(storeB)
	guide, guideKnown := s.intern.get(ctx.QueryArgs().Peek("guide"))
	if len(guide) > idLenMax {
		return s.writeH5Error(ctx, CodeBadRequest, "guide id too long")
	}
	t0 := time.Now()
	page, err := s.eng.StorePage(store, guide)
	s.observeEngine(rH5Store, t0)
	if err != nil {
		code, msg := s.classify(ctx, rH5Store, err)
		return s.writeH5Error(ctx, code, msg)
	}
	if !storeKnown {
		s.intern.keep(store)
	}
	if !guideKnown {
		s.intern.keep(guide)
	}
	e := s.h5.get(page)
	if e.err != nil {
		code, msg := s.classify(ctx, rH5Store, e.err)
		return s.writeH5Error(ctx, code, msg)
	}
	h := &ctx.Response.Header
	h.SetCanonical(headerETag, s2b(e.etag))
	h.SetCanonical(headerCacheControl, cacheNoCache)
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && etagMatch(inm, e.etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		ctx.Response.ResetBody()
		return CodeOK
	}
	setH5Headers(ctx)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.ResetBody()
	ctx.Response.AppendBodyString(h5Prefix)
	var num [20]byte
	ctx.Response.AppendBody(strconv.AppendInt(num[:0], s.o.Now().UnixMilli(), 10))
	ctx.Response.AppendBody(e.rest)
	return CodeOK
}

func setH5Headers(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.SetContentTypeBytes(contentTypeHTML)
	h.Set("Content-Security-Policy", h5CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

// writeH5Error answers an H5 request with an HTML page of code's status.
func (s *Server) writeH5Error(ctx *fasthttp.RequestCtx, code int, msg string) int {
	status := statusOf(code)
	ctx.SetStatusCode(status)
	setH5Headers(ctx)
	if status == fasthttp.StatusTooManyRequests || status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.SetBytesV("Retry-After", s.retry)
	}
	title := "出错了 · Something went wrong"
	switch code {
	case CodeNotFound:
		title = "找不到这家店 · Store not found"
	case CodeUnavailable, CodeThrottled:
		title = "人太多了，请稍后再试 · Busy, please retry shortly"
	case CodeInternal:
		msg = codeTable[codeIndex(code)].msg + " (request id " + string(ctx.Response.Header.Peek("X-Request-Id")) + ")"
	}
	var buf bytes.Buffer
	if err := h5ErrTmpl.Execute(&buf, struct {
		Status     int
		Title, Msg string
		CSS        template.CSS
	}{status, title, msg, h5CSS}); err != nil {
		panic("BUG: cannot render the H5 error page: " + err.Error())
	}
	ctx.SetBody(buf.Bytes())
	return code
}

// --- the page's data: the page API's JSON (API.md, "Storefronts") ---

type h5Store struct {
	StoreID string `json:"store_id"`
	Name    string `json:"name"`
	City    string `json:"city"`
	Address string `json:"address"`
	Hours   string `json:"hours"`
}

type h5Product struct {
	SKUID      string   `json:"sku_id"`
	Title      string   `json:"title"`
	Category   string   `json:"category"`
	Images     []string `json:"images"`
	Price      int64    `json:"price"`
	ListPrice  int64    `json:"list_price"`
	StockState string   `json:"stock_state"`
	Deals      []struct {
		Kind     string `json:"kind"`
		ID       string `json:"id"`
		Price    int64  `json:"price"`
		Status   string `json:"status"`
		TeamSize int64  `json:"team_size"`
	} `json:"deals"`
}

type h5Sale struct {
	SaleID       string `json:"sale_id"`
	DealID       string `json:"deal_id"`
	SKUID        string `json:"sku_id"`
	Title        string `json:"title"`
	Image        string `json:"image"`
	Price        int64  `json:"price"`
	ListPrice    int64  `json:"list_price"`
	Quantity     int64  `json:"quantity"`
	TeamSize     int64  `json:"team_size"`
	Remaining    int64  `json:"remaining"`
	StockState   string `json:"stock_state"`
	PerUserLimit int64  `json:"per_user_limit"`
	Status       string `json:"status"`
	StartsAtMs   int64  `json:"starts_at_ms"`
	EndsAtMs     int64  `json:"ends_at_ms"`
}

type h5PageJSON struct {
	Store    h5Store `json:"store"`
	Sections []struct {
		Type  string          `json:"type"`
		Items json.RawMessage `json:"items"`
	} `json:"sections"`
	Guide *struct {
		GuideID string `json:"guide_id"`
		Name    string `json:"name"`
		Avatar  string `json:"avatar"`
		Title   string `json:"title"`
	} `json:"guide"`
	Picks []h5Product `json:"picks"`
	Share *struct {
		Path        string `json:"path"`
		QueryString string `json:"query_string"`
		Title       string `json:"title"`
	} `json:"share"`
}

// h5View is what the template renders.
type h5View struct {
	h5PageJSON
	Banners  []string
	Flash    []h5Sale
	Group    []h5Sale
	Products []h5Product
	// Script is the data the script needs, as a JSON island.
	Script h5Script
	CSS    template.CSS
	JS     template.JS
}

type h5Script struct {
	StoreID string         `json:"store_id"`
	GuideID string         `json:"guide_id,omitempty"`
	Sales   []h5ScriptSale `json:"sales"`
}

type h5ScriptSale struct {
	SaleID     string `json:"sale_id"`
	Remaining  int64  `json:"remaining"`
	Quantity   int64  `json:"quantity"`
	Status     string `json:"status"`
	StartsAtMs int64  `json:"starts_at_ms"`
	EndsAtMs   int64  `json:"ends_at_ms"`
}

// errH5Page marks a page the H5 view cannot read (a bug: the engine wrote
// it).
var errH5Page = errors.New("gateway: cannot read store page for H5")

// renderH5 renders a store page (the page API's data) into the page after
// h5Prefix and the time.
func renderH5(body []byte) ([]byte, error) {
	var v h5View
	if err := json.Unmarshal(body, &v.h5PageJSON); err != nil {
		return nil, fmt.Errorf("%w: %w", errH5Page, err)
	}
	for _, sec := range v.Sections {
		var dst any
		switch sec.Type {
		case "banners":
			dst = &v.Banners
		case "flash_sales":
			dst = &v.Flash
		case "group_deals":
			dst = &v.Group
		case "products":
			dst = &v.Products
		default:
			continue
		}
		if err := json.Unmarshal(sec.Items, dst); err != nil {
			return nil, fmt.Errorf("%w: section %s: %w", errH5Page, sec.Type, err)
		}
	}
	v.Script = h5Script{StoreID: v.Store.StoreID, Sales: []h5ScriptSale{}}
	if v.Guide != nil {
		v.Script.GuideID = v.Guide.GuideID
	}
	for _, f := range v.Flash {
		v.Script.Sales = append(v.Script.Sales, h5ScriptSale{SaleID: f.SaleID, Remaining: f.Remaining,
			Quantity: f.Quantity, Status: f.Status, StartsAtMs: f.StartsAtMs, EndsAtMs: f.EndsAtMs})
	}
	v.CSS, v.JS = h5CSS, h5JS
	var buf bytes.Buffer
	buf.Grow(2*len(body) + len(h5CSS) + len(h5JS) + 4096)
	if err := h5Tmpl.Execute(&buf, &v); err != nil {
		return nil, fmt.Errorf("cannot render H5 store page: %w", err)
	}
	return buf.Bytes(), nil
}

// --- template helpers ---

// yuan writes fen as yuan: 49900 -> "¥499.00".
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s¥%d.%02d", sign, fen/100, fen%100)
}

func stockWords(state string) string {
	switch state {
	case "in_stock":
		return "有货"
	case "low":
		return "库存紧张"
	case "sold_out":
		return "已售罄"
	}
	return state
}

func statusWords(status string) string {
	switch status {
	case "upcoming":
		return "即将开始"
	case "active":
		return "进行中"
	case "paused":
		return "已暂停"
	case "ended":
		return "已结束"
	}
	return status
}

// h5Zone is the shoppers' clock (China Standard Time, no DST).
var h5Zone = time.FixedZone("CST", 8*3600)

// clockTime writes a Unix-ms time as the shopper reads it.
func clockTime(ms int64) string {
	return time.UnixMilli(ms).In(h5Zone).Format("01-02 15:04:05")
}

// initial is the first letter of s, for a picture's placeholder.
func initial(s string) string {
	s = strings.TrimSpace(s)
	for _, r := range s {
		return string(r)
	}
	return "·"
}
