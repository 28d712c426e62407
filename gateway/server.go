package gateway

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// bodySlackBytes is how far above BodyMaxBytes fasthttp itself still reads
// a body; between the two the gateway answers 413 with its envelope and
// keeps the connection, above it fasthttp stops reading and the
// ErrorHandler answers 413.
const bodySlackBytes = 4 << 10

// logSampleEvery: on hot routes, one client error in logSampleEvery is
// logged.
const logSampleEvery = 256

// Server is Surge's HTTP front end.
type Server struct {
	o       Options
	eng     Engine
	sess    sessions
	login   loginer
	trusted []netip.Prefix
	// deadlines ends the engine contexts of requests that wait on Done.
	deadlines deadlineList
	// adminFails throttles clients that send wrong admin tokens;
	// loginFails, clients whose login codes the provider refuses.
	adminFails *failBuckets
	loginFails *failBuckets
	admin      []byte
	feedKey    []byte
	sems       [classesLen]*semaphore // by route class; [classNone] is nil
	csvExports atomic.Int64           // CSV exports streaming (adminorders.go)
	m          *metrics
	shedN      [shedReasonsLen]atomic.Int64
	// throttledN counts the answers 42900 by route (the "throttles" of
	// /admin/v1/stats).
	throttledN [routesLen]atomic.Int64
	// reserveLat keeps the reserve route's latency histogram as it was a
	// little while ago, for /admin/v1/stats' recent p50 and p99.
	reserveLat latencyWindows
	started    time.Time // when New made the server
	logN       atomic.Uint64
	ridN       atomic.Uint64
	ridPfx     [8]byte
	intern     interner
	h5         h5Cache     // rendered H5 storefronts (h5.go)
	pageTok    *pageTokens // page-view tokens (pagetoken.go)
	// pageViews: the engine's risk hook reads an attempt's page view, so
	// a reserve's token is checked; false when nothing would read it
	// (the built-in hook with risk.page_token_off).
	pageViews bool
	metricsH  fasthttp.RequestHandler
	srv       *fasthttp.Server
	retry     []byte // Retry-After value
	// wallClock: Options.Now was unset, so the clock is time.Now and a
	// request's start time (handle) is its wall time too.
	wallClock bool

	// writesLimit moves the bound of sems[classWrites] (adaptive.go); nil
	// with Options.WritesLimitFixed.
	writesLimit *adaptiveLimit

	mu      sync.Mutex
	serving bool // Serve was called
	shut    bool // Shutdown was called
}

// New builds a Server from opts (see Options for defaults).
func New(opts Options) (*Server, error) {
	o, err := opts.WithDefaults()
	if err != nil {
		return nil, err
	}
	trusted, err := parsePrefixes(o.TrustedProxies)
	if err != nil {
		return nil, err
	}
	s := &Server{
		o:          o,
		eng:        o.Engine,
		sess:       sessions{secret: o.SessionSecret, ttl: o.SessionTTL, now: o.Now},
		trusted:    trusted,
		admin:      []byte(o.AdminToken),
		adminFails: newFailBuckets(o.AdminFailuresPerSecond, o.AdminFailuresBurst, adminFailClientsMax, o.Now),
		loginFails: newFailBuckets(o.LoginFailuresPerSecond, o.LoginFailuresBurst, adminFailClientsMax, o.Now),
		feedKey:    []byte(o.FeedSecret),
		retry:      []byte(strconv.Itoa(o.RetryAfterSeconds)),
		started:    time.Now(),
		wallClock:  opts.Now == nil,
	}
	s.intern.init()
	s.pageTok = newPageTokens(o.SessionSecret)
	s.pageViews = true
	if j, ok := o.Engine.(interface{ JudgesPageViews() bool }); ok {
		s.pageViews = j.JudgesPageViews()
	}
	s.sems[classReads] = newSemaphore(o.ReadsInflightMax)
	s.sems[classWrites] = newSemaphore(o.WritesInflightMax)
	s.sems[classAdmin] = newSemaphore(o.AdminInflightMax)
	s.sems[classSessions] = newSemaphore(o.SessionsInflightMax)
	s.sems[classPays] = newSemaphore(o.PaysInflightMax)
	if !o.WritesLimitFixed {
		s.writesLimit = newAdaptiveLimit(s.sems[classWrites], o.WritesInflightMin, time.Now())
	}
	if o.Login.Provider == ProviderWeChat {
		s.login = newWeChatLogin(o.Login)
	} else {
		s.login = devLogin{}
	}
	if _, err := rand.Read(s.ridPfx[:4]); err != nil {
		return nil, fmt.Errorf("cannot seed request ids: %w", err)
	}
	hex.Encode(s.ridPfx[:], s.ridPfx[:4])
	reg := o.Registry
	if reg == nil {
		reg = newRegistry()
		s.o.Registry = reg
	}
	if s.m, err = newMetrics(reg, o.Engine); err != nil {
		return nil, fmt.Errorf("cannot register metrics: %w", err)
	}
	if err := s.registerLimitMetrics(reg); err != nil {
		return nil, fmt.Errorf("cannot register metrics: %w", err)
	}
	s.metricsH = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if o.AdminToken == "" {
		o.Logger.Warn("gateway: no admin token; /admin/v1 and /debug/pprof are disabled")
	}
	if o.FeedSecret == "" {
		o.Logger.Warn("gateway: no feed secret; /internal/v1/inventory/feed is disabled")
	}
	s.srv = &fasthttp.Server{
		Handler:                       s.handle,
		ErrorHandler:                  s.handleParseError,
		Name:                          "surge",
		Concurrency:                   o.ConnsMax + connsSlack,
		MaxRequestBodySize:            o.BodyMaxBytes + bodySlackBytes,
		ReadTimeout:                   o.ReadTimeout,
		WriteTimeout:                  o.WriteTimeout,
		IdleTimeout:                   o.IdleTimeout,
		DisablePreParseMultipartForm:  true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		Logger:                        fasthttpLogger{o.Logger},
	}
	return s, nil
}

// Handler returns the request handler (for tests and custom servers).
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Serve serves HTTP on ln until Shutdown; it returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.serving = true
	s.mu.Unlock()
	return s.srv.Serve(s.limitListener(ln))
}

// Shutdown stops accepting connections and waits for the requests in
// flight to finish, or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shut = true
	serving := s.serving
	s.mu.Unlock()
	if !serving {
		return nil
	}
	return s.srv.ShutdownWithContext(ctx)
}

// Sheds returns the requests shed so far by reason.
func (s *Server) Sheds() map[string]int64 {
	out := make(map[string]int64, shedReasonsLen)
	for i, r := range shedReasons {
		out[r] = s.shedN[i].Load()
	}
	return out
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp: " + fmt.Sprintf(format, args...))
}

// handleParseError answers requests fasthttp could not read.
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	code := CodeBadRequest
	msg := "cannot read request"
	var small *fasthttp.ErrSmallBuffer
	if errors.As(err, &small) {
		// Request headers over the read buffer: HTTP says 431 (RFC 6585),
		// the one status that differs from its code's row of API.md's
		// table (41300 is 413 elsewhere).
		s.setRequestID(ctx)
		s.writeError(ctx, rUnknown, CodeTooLarge, "request headers too large")
		ctx.SetStatusCode(fasthttp.StatusRequestHeaderFieldsTooLarge)
		s.m.request(rUnknown, codeIndex(CodeTooLarge)).Inc()
		return
	}
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		code, msg = CodeTooLarge, "request body over "+strconv.Itoa(s.o.BodyMaxBytes)+" bytes"
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		// A connection that sent nothing (or too slowly) within the read
		// timeout: close it rather than write an answer nobody asked for.
		if c := ctx.Conn(); c != nil {
			c.Close()
		}
		return
	}
	s.setRequestID(ctx)
	if r, _, _, _ := match(ctx.Method(), ctx.Path()); r == rPayNotify && code == CodeTooLarge {
		// WeChat Pay reads FAIL answers, not the envelope.
		s.refuseNotify(ctx, wechatpay.ReasonTooLarge, fasthttp.StatusRequestEntityTooLarge, msg)
		s.m.request(rPayNotify, codeIndex(code)).Inc()
		return
	}
	s.writeError(ctx, rUnknown, code, msg)
	s.m.request(rUnknown, codeIndex(code)).Inc()
}

// handle is the request handler.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	s.setRequestID(ctx)
	r, p1, p2, methodOK := match(ctx.Method(), ctx.Path())
	code := s.serveRoute(ctx, r, p1, p2, methodOK, start)
	dur := time.Since(start)
	s.m.request(r, codeIndex(code)).Inc()
	s.m.observeLatency(r, dur)
	if code == CodeThrottled {
		s.throttledN[r].Add(1)
	}
	if s.o.Logger.Enabled(context.Background(), slog.LevelDebug) && (!routes[r].hot || s.logN.Add(1)%logSampleEvery == 0) {
		s.o.Logger.Debug("gateway: request", "route", routes[r].name, "method", string(ctx.Method()),
			"path", string(ctx.Path()), "code", code, "status", ctx.Response.StatusCode(), "dur", dur,
			"request_id", string(ctx.Response.Header.Peek("X-Request-Id")), "sampled", routes[r].hot)
	}
}

// serveRoute admits and dispatches one request and returns its API code.
func (s *Server) serveRoute(ctx *fasthttp.RequestCtx, r routeID, p1, p2 []byte, methodOK bool, start time.Time) (code int) {
	if r == rUnknown {
		return s.writeError(ctx, r, CodeNotFound, "no such endpoint")
	}
	if !methodOK {
		return s.methodNotAllowed(ctx, r)
	}
	if cl := routes[r].class; cl != classNone {
		sem := s.sems[cl]
		if !sem.tryAcquire() {
			return s.shed(ctx, r, classShed[cl], CodeUnavailable, "server busy, retry later")
		}
		defer sem.release()
		if cl == classWrites && s.writesLimit != nil {
			defer s.writeDone(start, &code)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			s.o.Logger.Error("gateway: panic", "route", routes[r].name, "request_id", string(ctx.Response.Header.Peek("X-Request-Id")), "panic", fmt.Sprint(p))
			ctx.Response.ResetBody()
			code = s.writeError(ctx, r, CodeInternal, "")
		}
	}()
	if len(ctx.Request.Body()) > s.o.BodyMaxBytes {
		ctx.SetConnectionClose()
		if r == rPayNotify { // answered as WeChat Pay reads answers
			return s.refuseNotify(ctx, wechatpay.ReasonTooLarge, fasthttp.StatusRequestEntityTooLarge, "body over "+strconv.Itoa(s.o.BodyMaxBytes)+" bytes")
		}
		return s.writeError(ctx, r, CodeTooLarge, "request body over "+strconv.Itoa(s.o.BodyMaxBytes)+" bytes")
	}
	switch r {
	case rStorePage:
		return s.serveStorePage(ctx, p1, start)
	case rProductPage:
		return s.serveProductPage(ctx, p1, p2, start)
	case rH5Store:
		return s.serveH5Store(ctx, p1)
	case rAdminPage:
		return s.serveAdminPage(ctx)
	case rHealthz:
		return s.writeRaw(ctx, 200, []byte(`{"code":0,"msg":"ok","data":{"status":"alive"}}`))
	case rReadyz:
		return s.serveReady(ctx)
	case rMetrics:
		s.metricsH(ctx)
		return CodeOK
	case rOpenAPI:
		return s.serveOpenAPI(ctx)
	case rFeed:
		return s.serveFeed(ctx)
	case rAdminCatalog, rAdminSales, rAdminDeals, rAdminStats, rPprof:
		return s.serveAdmin(ctx, r)
	case rAdminOrders, rAdminAttrib:
		return s.serveAdminOrders(ctx, r)
	case rSaleGet:
		return s.serveSaleGet(ctx, p1)
	case rDealGet:
		return s.serveDealGet(ctx, p1)
	case rTeamGet:
		return s.serveTeamGet(ctx, p1, p2)
	case rAdminSaleGet, rAdminSaleCtl, rAdminDealGet, rAdminDealCtl, rAdminReconcile:
		return s.serveSaleAdmin(ctx, r, p1, p2)
	case rAdminSaleRegs:
		return s.serveAdminRegistrations(ctx, p1)
	case rAdminRecover:
		return s.serveRecover(ctx)
	case rSession:
		return s.serveSession(ctx)
	case rPayNotify:
		return s.servePayNotify(ctx)
	}
	// Everything else needs a user session.
	uid, err := s.auth(ctx)
	if err != nil {
		return s.writeErr(ctx, r, err)
	}
	switch r {
	case rSaleReserve:
		return s.serveReserve(ctx, uid, p1)
	case rSaleRegister:
		return s.serveRegister(ctx, uid, p1)
	case rTeamOpen:
		return s.serveTeamOpen(ctx, uid, p1)
	case rTeamJoin:
		return s.serveTeamJoin(ctx, uid, p1, p2)
	case rCheckout:
		return s.serveCheckout(ctx, uid)
	case rResGet:
		return s.serveResGet(ctx, uid, p1)
	case rResPay:
		return s.serveResPay(ctx, uid, p1)
	case rResCancel:
		return s.serveResCancel(ctx, uid, p1)
	case rResPrepay:
		return s.serveResPrepay(ctx, uid, p1)
	case rOrderGet:
		return s.serveOrderGet(ctx, uid, p1)
	case rMyOrders:
		return s.serveMyOrders(ctx, uid)
	}
	panic("BUG: route without handler: " + routes[r].name)
}

// shed answers a request admission control refused.
func (s *Server) shed(ctx *fasthttp.RequestCtx, r routeID, reason, code int, msg string) int {
	s.countShed(reason)
	if n := s.logN.Add(1); n%logSampleEvery == 0 {
		s.o.Logger.Warn("gateway: shedding", "route", routes[r].name, "reason", shedReasons[reason], "sampled_1_in", logSampleEvery)
	}
	return s.writeError(ctx, r, code, msg)
}

// countShed counts a shed of reason.
func (s *Server) countShed(reason int) {
	s.shedN[reason].Add(1)
	s.m.sheds[reason].Inc()
}

// auth returns the user of the request's bearer session token.
func (s *Server) auth(ctx *fasthttp.RequestCtx) (string, error) {
	tok := bearer(ctx.Request.Header.Peek("Authorization"))
	if tok == nil {
		return "", errf(CodeUnauthorized, "missing session token (Authorization: Bearer <token>)")
	}
	uid, err := s.sess.verify(tok)
	if err != nil {
		if errors.Is(err, errTokenExpired) {
			return "", errf(CodeUnauthorized, "session token expired")
		}
		return "", errf(CodeUnauthorized, "bad session token")
	}
	return uid, nil
}

// authAdmin checks the admin bearer token.
func (s *Server) authAdmin(ctx *fasthttp.RequestCtx) error {
	// A client that guessed wrong too often is refused before its token
	// is even looked at, so the admin token cannot be guessed at speed.
	ip := s.clientIP(ctx)
	if s.adminFails.blocked(ip) {
		return errf(CodeThrottled, "too many wrong admin tokens from this address; retry later")
	}
	tok := bearer(ctx.Request.Header.Peek("Authorization"))
	if tok == nil {
		return errf(CodeUnauthorized, "missing admin token")
	}
	if len(s.admin) > 0 && subtle.ConstantTimeCompare(tok, s.admin) == 1 {
		return nil
	}
	if _, err := s.sess.verify(tok); err == nil {
		return errf(CodeForbidden, "admin only")
	}
	s.adminFails.fail(ip)
	return errf(CodeUnauthorized, "bad admin token")
}

// ridLenMax bounds a request id, in bytes.
const ridLenMax = 64

// setRequestID echoes a sane X-Request-Id or makes one.
func (s *Server) setRequestID(ctx *fasthttp.RequestCtx) {
	// SetCanonical: the name is already canonical, and the value is
	// printable ASCII (checked, or made here), so fasthttp's key
	// normalisation has nothing to do.
	if in := ctx.Request.Header.PeekBytes(headerRequestID); len(in) > 0 && len(in) <= ridLenMax && printable(in) {
		ctx.Response.Header.SetCanonical(headerRequestID, in)
		return
	}
	var b [8 + 1 + 16]byte
	copy(b[:], s.ridPfx[:])
	b[8] = '-'
	buf := strconv.AppendUint(b[:9], s.ridN.Add(1), 16)
	ctx.Response.Header.SetCanonical(headerRequestID, buf)
}

// headerRequestID is the request id header's name, already in canonical
// form: SetCanonical skips normalizing it on every request.
var headerRequestID = []byte("X-Request-Id")

func printable(b []byte) bool {
	for _, c := range b {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// clientIP is the caller's address: the connection's, or from
// X-Forwarded-For when the connection comes from a trusted proxy (the
// rightmost address that is not a trusted proxy, as nginx's real_ip with
// real_ip_recursive on).
func (s *Server) clientIP(ctx *fasthttp.RequestCtx) string {
	xff := ctx.Request.Header.Peek("X-Forwarded-For")
	if len(xff) == 0 {
		return connIP(ctx)
	}
	remote, ok := netip.AddrFromSlice(ctx.RemoteIP())
	if !ok {
		return ""
	}
	remote = remote.Unmap()
	if !s.isTrusted(remote) {
		return connIP(ctx)
	}
	return s.realIP(remote, xff).String()
}

// connIP is the connection's remote address as clientIP writes it ("" if
// it has none). A connection's address does not change, so a connection
// accepted by Serve formats it once and keeps the string.
func connIP(ctx *fasthttp.RequestCtx) string {
	lc, _ := ctx.Conn().(*limitConn)
	if lc != nil {
		if p := lc.ip.Load(); p != nil {
			return *p
		}
	}
	var ip string
	if remote, ok := netip.AddrFromSlice(ctx.RemoteIP()); ok {
		ip = remote.Unmap().String()
	}
	if lc != nil {
		p := new(string)
		*p = ip
		lc.ip.Store(p)
	}
	return ip
}

// realIP walks X-Forwarded-For from the right.
func (s *Server) realIP(remote netip.Addr, xff []byte) netip.Addr {
	const hopsMax = 32
	addr := remote
	end := len(xff)
	for hop := 0; hop < hopsMax && end > 0; hop++ {
		start := end - 1
		for start >= 0 && xff[start] != ',' {
			start--
		}
		part := trimSpace(xff[start+1 : end])
		end = start
		if len(part) == 0 {
			continue
		}
		a, err := netip.ParseAddr(string(part))
		if err != nil {
			return addr
		}
		addr = a.Unmap()
		if !s.isTrusted(addr) {
			return addr
		}
	}
	return addr
}

func (s *Server) isTrusted(a netip.Addr) bool {
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// --- answers ---

var contentTypeJSON = []byte("application/json; charset=utf-8")

// writeRaw writes a ready envelope and returns its code.
func (s *Server) writeRaw(ctx *fasthttp.RequestCtx, status int, body []byte) int {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	if status == fasthttp.StatusTooManyRequests || status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.SetBytesV("Retry-After", s.retry)
	}
	ctx.SetBody(body)
	return codeOfBody(body)
}

// writeOK writes v in a success envelope.
func (s *Server) writeOK(ctx *fasthttp.RequestCtx, r routeID, v any) int {
	body, err := appendOK(nil, v)
	if err != nil {
		return s.writeErr(ctx, r, fmt.Errorf("cannot encode answer: %w", err))
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	ctx.SetBody(body)
	return CodeOK
}

// writeAnswer writes v in a success envelope, or the answer of err.
func (s *Server) writeAnswer(ctx *fasthttp.RequestCtx, r routeID, v any, err error) int {
	if err != nil {
		return s.writeErr(ctx, r, err)
	}
	return s.writeOK(ctx, r, v)
}

// writeErr writes the answer of err (an *apiError or an engine error).
func (s *Server) writeErr(ctx *fasthttp.RequestCtx, r routeID, err error) int {
	code, msg := s.classify(ctx, r, err)
	return s.writeError(ctx, r, code, msg)
}

// classify maps err onto its code and message, logging what needs it.
func (s *Server) classify(ctx *fasthttp.RequestCtx, r routeID, err error) (int, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code, ae.msg
	}
	code := codeOf(err)
	if code == CodeInternal {
		s.o.Logger.Error("gateway: internal error", "route", routes[r].name,
			"request_id", string(ctx.Response.Header.Peek("X-Request-Id")), "err", err)
	} else if code >= 50000 {
		s.o.Logger.Warn("gateway: unavailable", "route", routes[r].name,
			"request_id", string(ctx.Response.Header.Peek("X-Request-Id")), "err", err)
	} else if !routes[r].hot || s.logN.Add(1)%logSampleEvery == 0 {
		s.o.Logger.Debug("gateway: refused", "route", routes[r].name,
			"request_id", string(ctx.Response.Header.Peek("X-Request-Id")), "code", code, "err", err)
	}
	return code, messageOf(code, err)
}

// writeError writes an error envelope with code's status.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, r routeID, code int, msg string) int {
	if msg == "" {
		msg = codeTable[codeIndex(code)].msg
	}
	if code == CodeInternal {
		msg += " (request id " + string(ctx.Response.Header.Peek("X-Request-Id")) + ")"
	}
	status := statusOf(code)
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	if status == fasthttp.StatusTooManyRequests || status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.SetBytesV("Retry-After", s.retry)
	}
	ctx.SetBody(appendErr(make([]byte, 0, 64+len(msg)), code, msg))
	return code
}

// engineCtx is the context of a request's engine calls.
func (s *Server) engineCtx(rc *fasthttp.RequestCtx) (context.Context, context.CancelFunc) {
	c := s.newEngineCtx(rc)
	return c, c.cancel
}

// observeEngine records the time of an engine call that started at t0.
func (s *Server) observeEngine(r routeID, t0 time.Time) {
	s.m.observeEngine(r, time.Since(t0))
}
