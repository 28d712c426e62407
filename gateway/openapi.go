package gateway

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"

	"github.com/valyala/fasthttp"
)

// openAPIDoc is GET /openapi.json: API.md's routes described in OpenAPI
// 3.1, served as committed. openapi_test.go checks it against the router
// (every route described, every described route routed) and validates it.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPIETag is the document's version: a strong ETag of its bytes.
var openAPIETag = func() string {
	sum := sha256.Sum256(openAPIDoc)
	return `"openapi-` + hex.EncodeToString(sum[:8]) + `"`
}()

// serveOpenAPI answers the document, or 304 when If-None-Match matches.
func (s *Server) serveOpenAPI(ctx *fasthttp.RequestCtx) int {
	h := &ctx.Response.Header
	h.SetCanonical(headerETag, s2b(openAPIETag))
	h.SetCanonical(headerCacheControl, cacheNoCache)
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && etagMatch(inm, openAPIETag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		ctx.Response.ResetBody()
		return CodeOK
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	h.SetContentTypeBytes(contentTypeJSON)
	ctx.Response.SetBodyRaw(openAPIDoc) // never modified: no copy
	return CodeOK
}
