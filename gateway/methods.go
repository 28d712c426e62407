package gateway

import "github.com/valyala/fasthttp"

// allowOf is the Allow header of a known path whose route is r: the
// methods its routes take. A GET route takes HEAD too; the admin sale and
// deal collections take GET (list) and POST (create): match gives their
// other methods the create route.
func allowOf(r routeID) string {
	switch r {
	case rAdminSales, rAdminDeals:
		return "GET, HEAD, POST"
	}
	if m := routes[r].method; m != "GET" {
		return m
	}
	return "GET, HEAD"
}

// methodNotAllowed answers a known path called with a method it does not
// take: HTTP 405 (a status HTTP requires, with its Allow header) and the
// usual envelope with code 40000 (bad_request), whose message names the
// allowed methods.
func (s *Server) methodNotAllowed(ctx *fasthttp.RequestCtx, r routeID) int {
	allow := allowOf(r)
	ctx.Response.Header.Set("Allow", allow)
	code := s.writeError(ctx, r, CodeBadRequest, "method not allowed; allowed: "+allow)
	ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
	return code
}
