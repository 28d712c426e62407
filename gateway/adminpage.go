package gateway

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"

	"github.com/valyala/fasthttp"
)

// The operator's live page, GET /admin/ (API.md, "Admin"): one
// self-contained HTML page (inline CSS and JS, go:embed, nothing from
// outside). The page itself needs no token and holds no data: it asks for
// the admin token, keeps it in sessionStorage, and reads everything
// through the admin API with it (GET /admin/v1/stats once a second, the
// sale and deal lists every few seconds, attribution now and then), so
// that the data calls carry the admin auth and its wrong-token throttle.
//
// Cost: the page is assembled once at start-up; a request costs the
// admission of the admin class and a write of the same bytes (or a 304).

//go:embed adminpage/*
var adminPageFiles embed.FS

var (
	// adminPage is the whole page; adminPageETag its version.
	adminPage     []byte
	adminPageETag string
	// adminPageCSP allows exactly the page's own style and script (by
	// hash) and calls to this origin.
	adminPageCSP string
)

func init() {
	read := func(name string) []byte {
		b, err := adminPageFiles.ReadFile("adminpage/" + name)
		if err != nil {
			panic("BUG: " + err.Error())
		}
		return b
	}
	html, css, js := read("page.html"), read("page.css"), read("page.js")
	for _, marker := range []string{"/*CSS*/", "/*JS*/"} {
		if bytes.Count(html, []byte(marker)) != 1 {
			panic("BUG: adminpage/page.html must hold " + marker + " once")
		}
	}
	page := bytes.Replace(html, []byte("/*CSS*/"), css, 1)
	adminPage = bytes.Replace(page, []byte("/*JS*/"), js, 1)
	sum := func(b []byte) string {
		h := sha256.Sum256(b)
		return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
	}
	adminPageCSP = "default-src 'none'; script-src " + sum(js) + "; style-src " + sum(css) +
		"; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	v := sha256.Sum256(adminPage)
	adminPageETag = `"admin-` + hex.EncodeToString(v[:6]) + `"`
}

// serveAdminPage answers GET /admin/ with the page (no token needed: the
// page holds no data).
func (s *Server) serveAdminPage(ctx *fasthttp.RequestCtx) int {
	h := &ctx.Response.Header
	h.SetCanonical(headerETag, s2b(adminPageETag))
	h.SetCanonical(headerCacheControl, cacheNoCache)
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && etagMatch(inm, adminPageETag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		ctx.Response.ResetBody()
		return CodeOK
	}
	h.SetContentTypeBytes(contentTypeHTML)
	h.Set("Content-Security-Policy", adminPageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.SetBodyRaw(adminPage)
	return CodeOK
}
