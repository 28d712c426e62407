package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"github.com/valyala/fasthttp/pprofhandler"
)

// Bounds of admin and feed input.
const (
	// feedLinesMax bounds the updates of one feed request.
	feedLinesMax = 1000
	// specQuantityMax bounds a sale's or deal's quantity.
	specQuantityMax = 1_000_000_000
	// specPriceMax bounds a price, fen (10 million CNY).
	specPriceMax = 1_000_000_000
	// holdSecondsMax bounds a sale's hold_seconds (the engine's HoldMax).
	holdSecondsMax = int64(engine.HoldMax / time.Second)
	// teamWindowSecondsMax bounds a deal's team window (the engine's
	// TeamWindowMax).
	teamWindowSecondsMax = int64(engine.TeamWindowMax / time.Second)
	// teamSizeMax bounds a group-buy team.
	teamSizeMax = 100
	// readyTimeout bounds the Ready probe.
	readyTimeout = 2 * time.Second
)

// feedReq is POST /internal/v1/inventory/feed's body.
type feedReq struct {
	Updates []engine.FeedUpdate `json:"updates"`
}

type feedAnswer struct {
	Results []engine.FeedResult `json:"results"`
}

// statsAnswer is GET /admin/v1/stats: the engine's Stats plus the
// gateway's counters.
type statsAnswer struct {
	engine.Stats
	Sheds    map[string]int64 `json:"sheds"`
	Inflight map[string]int64 `json:"inflight"`
	// Limits is each route class's in-flight bound in force (the keys of
	// Inflight); "writes" moves with the adaptive limit (adaptive.go).
	Limits map[string]int64 `json:"limits"`
	// WritesLimit tells how the writes' bound is set.
	WritesLimit writesLimitAnswer `json:"writes_limit"`
	// Throttles counts the answers 42900 since start by route name (routes
	// with none are left out): sale gates, risk rate limits, wrong admin
	// tokens.
	Throttles map[string]int64 `json:"throttles"`
	// Latency is the reserve route's p50 and p99 (latency.go).
	Latency latencyAnswer `json:"latency"`
	// ServerTimeMs is the server's clock (Unix ms) when the answer was
	// made: the admin page counts down against it.
	ServerTimeMs int64 `json:"server_time_ms"`
}

func (s *Server) serveAdmin(ctx *fasthttp.RequestCtx, r routeID) int {
	if err := s.authAdmin(ctx); err != nil {
		return s.writeErr(ctx, r, err)
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	var (
		v   any
		err error
	)
	t0 := time.Now()
	switch r {
	case rPprof:
		return s.servePprof(ctx)
	case rAdminCatalog:
		var c engine.Catalog
		if err := decodeStrict(ctx.Request.Body(), &c, false); err != nil {
			return s.writeErr(ctx, r, err)
		}
		v, err = s.eng.LoadCatalog(ectx, c)
	case rAdminSales:
		var spec engine.FlashSaleSpec
		if err := decodeStrict(ctx.Request.Body(), &spec, false); err != nil {
			return s.writeErr(ctx, r, err)
		}
		if err := validSaleSpec(spec); err != nil {
			return s.writeErr(ctx, r, err)
		}
		v, err = s.eng.CreateFlashSale(ectx, spec)
	case rAdminDeals:
		var spec engine.GroupDealSpec
		if err := decodeStrict(ctx.Request.Body(), &spec, false); err != nil {
			return s.writeErr(ctx, r, err)
		}
		if err := validDealSpec(spec); err != nil {
			return s.writeErr(ctx, r, err)
		}
		v, err = s.eng.CreateGroupDeal(ectx, spec)
	case rAdminStats:
		v, err = s.stats(ectx)
	}
	s.observeEngine(r, t0)
	s.audit(ctx, r, "", auditTarget(v), err)
	if err != nil {
		return s.writeErr(ctx, r, err)
	}
	return s.writeOK(ctx, r, v)
}

// pprofIndex is net/http/pprof's index page (the list of profiles, linked
// relative to /debug/pprof/).
var pprofIndex = fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Index)

// servePprof serves /debug/pprof/ (the caller is the admin). fasthttp's
// pprofhandler answers every path ending in "/" with an empty 404, the
// index's own "/debug/pprof/" too, so the index is served here; other
// paths ending in "/" are 40400 like any unknown path.
func (s *Server) servePprof(ctx *fasthttp.RequestCtx) int {
	path := ctx.Path()
	switch {
	case string(path) == "/debug/pprof/":
		pprofIndex(ctx)
	case path[len(path)-1] == '/':
		return s.writeError(ctx, rPprof, CodeNotFound, "no such profile")
	default:
		pprofhandler.PprofHandler(ctx)
	}
	return CodeOK
}

// stats is the answer of GET /admin/v1/stats.
func (s *Server) stats(ctx context.Context) (statsAnswer, error) {
	st, err := s.eng.Stats(ctx)
	if err != nil {
		return statsAnswer{}, err
	}
	return statsAnswer{
		Stats: st,
		Sheds: s.Sheds(),
		Inflight: map[string]int64{
			"reads":    s.sems[classReads].inflight(),
			"writes":   s.sems[classWrites].inflight(),
			"admin":    s.sems[classAdmin].inflight(),
			"sessions": s.sems[classSessions].inflight(),
			"pays":     s.sems[classPays].inflight(),
		},
		Limits:       s.limits(),
		WritesLimit:  s.writesLimitAnswer(),
		Throttles:    s.throttles(),
		Latency:      s.reserveLatency(),
		ServerTimeMs: s.o.Now().UnixMilli(),
	}, nil
}

// throttles is the "throttles" object of GET /admin/v1/stats.
func (s *Server) throttles() map[string]int64 {
	out := map[string]int64{}
	for r := range s.throttledN {
		if n := s.throttledN[r].Load(); n > 0 {
			out[routes[r].name] = n
		}
	}
	return out
}

func badf(msg string) error { return errf(CodeBadRequest, msg) }

func validSaleSpec(sp engine.FlashSaleSpec) error {
	switch {
	case !validKey(sp.SaleID):
		return badf("sale_id is required (" + keyRule + ")")
	case !validKey(sp.StoreID):
		return badf("store_id is required (" + keyRule + ")")
	case !validKey(sp.SKUID):
		return badf("sku_id is required (" + keyRule + ")")
	case sp.Price < 0 || sp.Price > specPriceMax:
		return badf("price must be between 0 and " + strconv.Itoa(specPriceMax))
	case sp.Quantity <= 0 || sp.Quantity > specQuantityMax:
		return badf("quantity must be between 1 and " + strconv.Itoa(specQuantityMax))
	case sp.PerUserLimit < 0 || sp.PerUserLimit > specQuantityMax:
		return badf("per_user_limit must be >= 0")
	case sp.HoldSeconds < 0 || sp.HoldSeconds > holdSecondsMax:
		return badf("hold_seconds must be between 0 and " + strconv.FormatInt(holdSecondsMax, 10))
	case sp.Buckets < 0 || sp.Buckets > engine.BucketsMax:
		return badf("buckets must be between 1 and " + strconv.Itoa(engine.BucketsMax))
	case !sp.StartsAt.IsZero() && !sp.EndsAt.IsZero() && !sp.EndsAt.After(sp.StartsAt):
		return badf("ends_at must be after starts_at")
	case sp.LotteryWindowMs != nil && (*sp.LotteryWindowMs < 0 || *sp.LotteryWindowMs > lotteryWindowMsMax):
		return badf("lottery_window_ms must be between 0 and " + strconv.FormatInt(lotteryWindowMsMax, 10))
	case sp.LotterySeed != "" && !engine.ValidLotterySeed(sp.LotterySeed):
		return badf("lottery_seed must be 16-64 characters of A-Z, a-z, 0-9, '_', '.' and '-'")
	case sp.MinAccountAgeSeconds < 0 || sp.MinAccountAgeSeconds > engine.MinAccountAgeSecondsMax:
		return badf("min_account_age_seconds must be between 0 and " + strconv.Itoa(engine.MinAccountAgeSecondsMax))
	}
	return nil
}

// lotteryWindowMsMax bounds a sale's lottery_window_ms.
var lotteryWindowMsMax = engine.LotteryWindowMax.Milliseconds()

func validDealSpec(sp engine.GroupDealSpec) error {
	switch {
	case !validKey(sp.DealID):
		return badf("deal_id is required (" + keyRule + ")")
	case !validKey(sp.StoreID):
		return badf("store_id is required (" + keyRule + ")")
	case !validKey(sp.SKUID):
		return badf("sku_id is required (" + keyRule + ")")
	case sp.Price < 0 || sp.Price > specPriceMax:
		return badf("price must be between 0 and " + strconv.Itoa(specPriceMax))
	case sp.TeamSize < 2 || sp.TeamSize > teamSizeMax:
		return badf("team_size must be between 2 and " + strconv.Itoa(teamSizeMax))
	case sp.Quantity <= 0 || sp.Quantity > specQuantityMax:
		return badf("quantity must be between 1 and " + strconv.Itoa(specQuantityMax))
	case sp.TeamWindowSeconds < 0 || sp.TeamWindowSeconds > teamWindowSecondsMax:
		return badf("team_window_seconds must be between 0 and " + strconv.FormatInt(teamWindowSecondsMax, 10))
	case sp.VirtualMinPaid < 0 || sp.VirtualMinPaid > sp.TeamSize:
		return badf("virtual_min_paid must be between 0 and team_size")
	case !sp.StartsAt.IsZero() && !sp.EndsAt.IsZero() && !sp.EndsAt.After(sp.StartsAt):
		return badf("ends_at must be after starts_at")
	}
	return nil
}

// serveFeed applies a signed store feed.
func (s *Server) serveFeed(ctx *fasthttp.RequestCtx) int {
	body := ctx.Request.Body()
	if err := s.checkFeedSignature(ctx, body); err != nil {
		return s.writeErr(ctx, rFeed, err)
	}
	var req feedReq
	if err := decodeStrict(body, &req, false); err != nil {
		return s.writeErr(ctx, rFeed, err)
	}
	if len(req.Updates) == 0 || len(req.Updates) > feedLinesMax {
		return s.writeError(ctx, rFeed, CodeBadRequest, "updates must have 1 to "+strconv.Itoa(feedLinesMax)+" lines")
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	res, err := s.eng.ApplyFeed(ectx, req.Updates)
	s.observeEngine(rFeed, t0)
	if err != nil {
		return s.writeErr(ctx, rFeed, err)
	}
	return s.writeOK(ctx, rFeed, feedAnswer{Results: res})
}

// checkFeedSignature checks X-Surge-Timestamp and X-Surge-Signature:
// hex HMAC-SHA256 of "<timestamp>.<body>" with the feed secret.
func (s *Server) checkFeedSignature(ctx *fasthttp.RequestCtx, body []byte) error {
	if len(s.feedKey) == 0 {
		return errf(CodeUnauthorized, "feed disabled: no feed secret configured")
	}
	tsB := ctx.Request.Header.Peek("X-Surge-Timestamp")
	sigB := ctx.Request.Header.Peek("X-Surge-Signature")
	if len(tsB) == 0 || len(sigB) == 0 {
		return errf(CodeUnauthorized, "missing X-Surge-Timestamp or X-Surge-Signature")
	}
	ts, err := strconv.ParseInt(string(tsB), 10, 64)
	if err != nil {
		return errf(CodeUnauthorized, "bad X-Surge-Timestamp")
	}
	now := s.o.Now().Unix()
	window := int64(s.o.FeedWindow / time.Second)
	if ts < now-window || ts > now+window {
		return errf(CodeUnauthorized, "X-Surge-Timestamp too far from the server clock")
	}
	var sig [sha256.Size]byte
	if len(sigB) != hex.EncodedLen(len(sig)) {
		return errf(CodeUnauthorized, "bad X-Surge-Signature")
	}
	if _, err := hex.Decode(sig[:], sigB); err != nil {
		return errf(CodeUnauthorized, "bad X-Surge-Signature")
	}
	m := hmac.New(sha256.New, s.feedKey)
	m.Write(tsB)
	m.Write([]byte{'.'})
	m.Write(body)
	if !hmac.Equal(m.Sum(nil), sig[:]) {
		return errf(CodeUnauthorized, "bad X-Surge-Signature")
	}
	return nil
}

// SignFeed returns the X-Surge-Signature of body at timestamp ts (unix
// seconds) with secret: for POS integrations and tests.
func SignFeed(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(strconv.AppendInt(nil, ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Server) serveReady(ctx *fasthttp.RequestCtx) int {
	rctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := s.eng.Ready(rctx); err != nil {
		s.o.Logger.Warn("gateway: not ready", "err", err)
		return s.writeError(ctx, rReadyz, CodeUnavailable, "not ready: "+readyReason(err))
	}
	return s.writeRaw(ctx, 200, []byte(`{"code":0,"msg":"ok","data":{"status":"ready"}}`))
}
