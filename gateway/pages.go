package gateway

import (
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The storefront routes serve the engine's precomputed Page bytes inside
// the envelope, with no JSON encoding and no allocation.

// internMax bounds the ids kept by the interner.
const internMax = 16 << 10

// interner maps id bytes from a request onto a string the engine may keep,
// without allocating for ids seen before. Only ids the engine answered
// successfully for are kept, so unknown ids cannot fill it.
type interner struct {
	mu sync.RWMutex
	m  map[string]string
}

func (in *interner) init() { in.m = make(map[string]string, 256) }

// get returns the interned string of b, or a fresh copy and false.
func (in *interner) get(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", true
	}
	in.mu.RLock()
	s, ok := in.m[string(b)]
	in.mu.RUnlock()
	if ok {
		return s, true
	}
	return string(b), false
}

// keep interns s (if there is room).
func (in *interner) keep(s string) {
	in.mu.Lock()
	if len(in.m) < internMax {
		in.m[s] = s
	}
	in.mu.Unlock()
}

var (
	headerETag         = []byte("ETag")
	headerCacheControl = []byte("Cache-Control")
	cacheNoCache       = []byte("no-cache")
)

// The storefront routes are the cheapest requests Surge answers, so their
// clock reads show (each time.Now reads two clocks, 60 ns or more on a
// virtual machine): the engine's time is two readings of the monotonic
// clock since the request's start (time.Since reads only that one), and a
// page token's issue time is the request's start when the server runs on
// the wall clock (Options.Now unset).

// issuedMs is the issue time of a page token minted by a request that
// started at start, in Unix milliseconds.
func (s *Server) issuedMs(start time.Time) int64 {
	if s.wallClock {
		return start.UnixMilli()
	}
	return s.o.Now().UnixMilli()
}

func (s *Server) serveStorePage(ctx *fasthttp.RequestCtx, storeB []byte, start time.Time) int {
	store, storeKnown := s.intern.get(storeB)
	guide, guideKnown := s.intern.get(ctx.QueryArgs().Peek("guide"))
	if len(guide) > idLenMax {
		return s.writeError(ctx, rStorePage, CodeBadRequest, "guide id too long")
	}
	e0 := time.Since(start)
	page, err := s.eng.StorePage(store, guide)
	s.m.observeEngine(rStorePage, time.Since(start)-e0)
	if err != nil {
		return s.writeErr(ctx, rStorePage, err)
	}
	if !storeKnown {
		s.intern.keep(store)
	}
	if !guideKnown {
		s.intern.keep(guide)
	}
	s.pageTok.set(&ctx.Response.Header, store, s.issuedMs(start))
	return s.writePage(ctx, page.Body, page.ETag)
}

func (s *Server) serveProductPage(ctx *fasthttp.RequestCtx, storeB, skuB []byte, start time.Time) int {
	store, storeKnown := s.intern.get(storeB)
	sku, skuKnown := s.intern.get(skuB)
	guide, guideKnown := s.intern.get(ctx.QueryArgs().Peek("guide"))
	if len(guide) > idLenMax {
		return s.writeError(ctx, rProductPage, CodeBadRequest, "guide id too long")
	}
	e0 := time.Since(start)
	page, err := s.eng.ProductPage(store, sku, guide)
	s.m.observeEngine(rProductPage, time.Since(start)-e0)
	if err != nil {
		return s.writeErr(ctx, rProductPage, err)
	}
	if !storeKnown {
		s.intern.keep(store)
	}
	if !skuKnown {
		s.intern.keep(sku)
	}
	if !guideKnown {
		s.intern.keep(guide)
	}
	s.pageTok.set(&ctx.Response.Header, store, s.issuedMs(start))
	return s.writePage(ctx, page.Body, page.ETag)
}

// writePage answers a page: 304 when If-None-Match matches its ETag.
func (s *Server) writePage(ctx *fasthttp.RequestCtx, body []byte, etag string) int {
	h := &ctx.Response.Header
	if etag != "" {
		h.SetCanonical(headerETag, s2b(etag))
		h.SetCanonical(headerCacheControl, cacheNoCache)
		if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && etagMatch(inm, etag) {
			ctx.SetStatusCode(fasthttp.StatusNotModified)
			ctx.Response.ResetBody()
			return CodeOK
		}
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	h.SetContentTypeBytes(contentTypeJSON)
	ctx.Response.ResetBody()
	ctx.Response.AppendBodyString(envelopeOKPrefix)
	ctx.Response.AppendBody(body)
	ctx.Response.AppendBodyString(envelopeSuffix)
	return CodeOK
}

// etagMatch implements If-None-Match's weak comparison: "*", or any of the
// listed tags equal to etag ignoring a W/ prefix on either side.
func etagMatch(inm []byte, etag string) bool {
	etag = trimWeak(etag)
	for len(inm) > 0 {
		i := 0
		for i < len(inm) && inm[i] != ',' {
			i++
		}
		tag := trimSpace(inm[:i])
		if len(tag) == 1 && tag[0] == '*' {
			return true
		}
		if len(tag) > 2 && tag[0] == 'W' && tag[1] == '/' {
			tag = tag[2:]
		}
		if string(tag) == etag {
			return true
		}
		if i == len(inm) {
			break
		}
		inm = inm[i+1:]
	}
	return false
}

func trimWeak(t string) string {
	if len(t) > 2 && t[0] == 'W' && t[1] == '/' {
		return t[2:]
	}
	return t
}
