package gateway

import (
	"crypto/sha256"
	"errors"
	"strconv"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/valyala/fasthttp"
)

// Input bounds. The limits the engine also checks are the engine's own
// (defined once, in the inventory), so that both layers refuse the same.
const (
	// quantityMax bounds the quantity of one line.
	quantityMax = engine.QuantityMax
	// checkoutItemsMax bounds the lines of one checkout.
	checkoutItemsMax = engine.LinesMax
	// idempotencyKeyLenMax bounds an Idempotency-Key, bytes.
	idempotencyKeyLenMax = engine.IdempotencyKeyLenMax
	// deviceIDLenMax bounds X-Device-Id, bytes.
	deviceIDLenMax = 128
	// ordersLimitDefault and ordersLimitMax bound GET /api/v1/me/orders.
	ordersLimitDefault = 50
	ordersLimitMax     = 200
)

// Request bodies. Unknown fields are refused.
type (
	sessionReq struct {
		Code string `json:"code"`
	}
	reserveReq struct {
		Quantity *int64 `json:"quantity"`
		GuideID  string `json:"guide_id"`
	}
	teamOpenReq struct {
		GuideID string `json:"guide_id"`
	}
	emptyReq struct{}
	payReq   struct {
		PaymentID string `json:"payment_id"`
	}
)

// sessionAnswer is POST /api/v1/session's data.
type sessionAnswer struct {
	Token       string    `json:"token"`
	UserID      string    `json:"user_id"`
	ExpiresAt   time.Time `json:"expires_at"`
	ExpiresAtMs int64     `json:"expires_at_ms"`
}

// ordersAnswer is GET /api/v1/me/orders's data.
type ordersAnswer struct {
	Orders []engine.Order `json:"orders"`
}

// validKey reports whether an id from a body is a well-formed store, guide,
// sku, sale or deal id (engine.ValidKey).
func validKey(id string) bool { return engine.ValidKey(id) }

// keyRule says what validKey accepts, for error messages.
var keyRule = "1-" + strconv.Itoa(engine.KeyLenMax) + " characters of A-Z, a-z, 0-9, '_', '.' and '-'"

// idRule says what validUserID accepts (user and payment ids).
var idRule = "1-" + strconv.Itoa(engine.IDLenMax) + " printable ASCII characters without spaces, '{' or '}'"

// optionalKey checks an optional key field.
func optionalKey(id, field string) error {
	if id != "" && !validKey(id) {
		return errf(CodeBadRequest, field+" must be "+keyRule)
	}
	return nil
}

func (s *Server) serveSession(ctx *fasthttp.RequestCtx) int {
	var req sessionReq
	if err := decodeStrict(ctx.Request.Body(), &req, false); err != nil {
		return s.writeErr(ctx, rSession, err)
	}
	if req.Code == "" {
		return s.writeError(ctx, rSession, CodeBadRequest, "code is required")
	}
	// A client whose codes were refused too often is refused before its
	// code goes to the login provider: garbage codes cost WeChat calls.
	ip := s.clientIP(ctx)
	if s.loginFails.blocked(ip) {
		return s.writeError(ctx, rSession, CodeThrottled, "too many refused login codes from this address; retry later")
	}
	lctx, cancel := s.engineCtx(ctx)
	defer cancel()
	uid, err := s.login.login(lctx, req.Code)
	if err != nil {
		if errorsAsCode(err) == CodeUnauthorized {
			s.loginFails.fail(ip)
		}
		return s.writeErr(ctx, rSession, err)
	}
	// The account's first session is kept for the minimum account age of
	// sales (risk); a login whose record cannot be written is refused, so
	// that no account goes unrecorded.
	if _, err := s.eng.AccountSeen(lctx, uid); err != nil {
		return s.writeErr(ctx, rSession, err)
	}
	// The risk hook counts the login's links (accounts on the device,
	// devices on the address) before any of the account's reserves; a
	// malformed device id is not counted (the login does not judge it).
	if dev := ctx.Request.Header.Peek("X-Device-Id"); len(dev) > 0 && len(dev) <= deviceIDLenMax && printable(dev) {
		s.eng.LoginSeen(engine.Attempt{UserID: uid, IP: ip, DeviceID: string(dev), Route: "session"})
	}
	tok, exp := s.sess.sign(uid)
	return s.writeOK(ctx, rSession, sessionAnswer{Token: tok, UserID: uid, ExpiresAt: exp.UTC(), ExpiresAtMs: exp.UnixMilli()})
}

// attempt describes the caller for the risk hook.
func (s *Server) attempt(ctx *fasthttp.RequestCtx, uid, route string) (engine.Attempt, error) {
	dev := ctx.Request.Header.Peek("X-Device-Id")
	if len(dev) > deviceIDLenMax || !printable(dev) {
		return engine.Attempt{}, errf(CodeBadRequest, "X-Device-Id must be at most 128 printable ASCII characters")
	}
	a := engine.Attempt{UserID: uid, IP: s.clientIP(ctx), DeviceID: string(dev), Route: route}
	if s.pageViews {
		a.Page = s.pageTok.read(ctx.Request.Header.PeekBytes(headerPageToken), &s.intern)
	}
	return a, nil
}

// idempotencyKey returns the request's Idempotency-Key ("" when absent).
func idempotencyKey(ctx *fasthttp.RequestCtx) (string, error) {
	k := ctx.Request.Header.Peek("Idempotency-Key")
	if len(k) == 0 {
		return "", nil
	}
	if len(k) > idempotencyKeyLenMax || !printable(k) {
		return "", errf(CodeBadRequest, "Idempotency-Key must be 1-128 printable ASCII characters")
	}
	return string(k), nil
}

// digest identifies a request for idempotency: method, path and body.
func digest(ctx *fasthttp.RequestCtx) [32]byte {
	h := sha256.New()
	h.Write(ctx.Method())
	h.Write([]byte{'\n'})
	h.Write(ctx.Path())
	h.Write([]byte{'\n'})
	h.Write(ctx.Request.Body())
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// once returns the Idempotency-Key and digest of a creating request.
func once(ctx *fasthttp.RequestCtx) (engine.Once, error) {
	key, err := idempotencyKey(ctx)
	if err != nil || key == "" {
		return engine.Once{}, err
	}
	return engine.Once{Key: key, Digest: digest(ctx)}, nil
}

// serveReserve parses and checks the request, then makes the one engine
// call of a flash reservation, which decides everything else (unknown
// sale, not active, sold out, the sale's admission gate, idempotency).
func (s *Server) serveReserve(ctx *fasthttp.RequestCtx, uid string, saleB []byte) int {
	qty, guideID, err := parseReserveBody(ctx.Request.Body())
	if err != nil {
		return s.writeErr(ctx, rSaleReserve, err)
	}
	if qty <= 0 || qty > quantityMax {
		return s.writeError(ctx, rSaleReserve, CodeBadRequest, "quantity must be between 1 and "+strconv.Itoa(quantityMax))
	}
	if err := optionalKey(guideID, "guide_id"); err != nil {
		return s.writeErr(ctx, rSaleReserve, err)
	}
	a, err := s.attempt(ctx, uid, "flash_reserve")
	if err != nil {
		return s.writeErr(ctx, rSaleReserve, err)
	}
	if a.Once, err = once(ctx); err != nil {
		return s.writeErr(ctx, rSaleReserve, err)
	}
	t0 := time.Now()
	ectx := s.newEngineCtxAt(ctx, t0)
	defer ectx.cancel()
	res, ticket, err := s.eng.ReserveFlashOrEnter(ectx, a, string(saleB), qty, guideID)
	if ticket != nil {
		// The entry is engine time; the wait for the draw is not.
		s.observeEngine(rSaleReserve, t0)
		res, err = s.waitLottery(ctx, ticket)
	}
	if err != nil {
		if errors.Is(err, engine.ErrShed) {
			if errors.Is(err, engine.ErrLotteryFull) {
				return s.shed(ctx, rSaleReserve, shedLottery, CodeThrottled, messageOf(CodeThrottled, err))
			}
			if errors.Is(err, engine.ErrThrottled) {
				return s.shed(ctx, rSaleReserve, shedSaleGate, CodeThrottled, messageOf(CodeThrottled, err))
			}
			s.countShed(shedSoldOut)
		} else if ticket == nil {
			s.observeEngine(rSaleReserve, t0)
		}
		return s.writeErr(ctx, rSaleReserve, err)
	}
	if ticket == nil {
		s.observeEngine(rSaleReserve, t0)
	}
	if body, ok := appendReservationOK(make([]byte, 0, 512), &res); ok {
		return s.writeRaw(ctx, fasthttp.StatusOK, body)
	}
	return s.writeOK(ctx, rSaleReserve, res)
}

// parseReserveBody reads a reserve request's quantity (default 1) and guide.
// The common body {"quantity":N} is parsed without the JSON decoder;
// everything else goes through decodeStrict.
func parseReserveBody(body []byte) (qty int64, guideID string, err error) {
	if q, ok := reserveBodyFast(body); ok {
		return q, "", nil
	}
	req := new(reserveReq)
	if err := decodeStrict(body, req, false); err != nil {
		return 0, "", err
	}
	qty = 1
	if req.Quantity != nil {
		qty = *req.Quantity
	}
	return qty, req.GuideID, nil
}

func (s *Server) serveTeamOpen(ctx *fasthttp.RequestCtx, uid string, dealB []byte) int {
	var req teamOpenReq
	if err := decodeStrict(ctx.Request.Body(), &req, true); err != nil {
		return s.writeErr(ctx, rTeamOpen, err)
	}
	if err := optionalKey(req.GuideID, "guide_id"); err != nil {
		return s.writeErr(ctx, rTeamOpen, err)
	}
	a, err := s.attempt(ctx, uid, "group_open")
	if err != nil {
		return s.writeErr(ctx, rTeamOpen, err)
	}
	if a.Once, err = once(ctx); err != nil {
		return s.writeErr(ctx, rTeamOpen, err)
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	team, err := s.eng.OpenTeam(ectx, a, string(dealB), req.GuideID)
	s.observeEngine(rTeamOpen, t0)
	return s.writeAnswer(ctx, rTeamOpen, teamFor(team, uid), err)
}

func (s *Server) serveTeamJoin(ctx *fasthttp.RequestCtx, uid string, dealB, teamB []byte) int {
	var req emptyReq
	if err := decodeStrict(ctx.Request.Body(), &req, true); err != nil {
		return s.writeErr(ctx, rTeamJoin, err)
	}
	a, err := s.attempt(ctx, uid, "group_join")
	if err != nil {
		return s.writeErr(ctx, rTeamJoin, err)
	}
	if a.Once, err = once(ctx); err != nil {
		return s.writeErr(ctx, rTeamJoin, err)
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	t, err := s.eng.JoinTeam(ectx, a, string(dealB), string(teamB))
	s.observeEngine(rTeamJoin, t0)
	return s.writeAnswer(ctx, rTeamJoin, teamFor(t, uid), err)
}

func (s *Server) serveCheckout(ctx *fasthttp.RequestCtx, uid string) int {
	var req engine.CheckoutRequest
	if err := decodeStrict(ctx.Request.Body(), &req, false); err != nil {
		return s.writeErr(ctx, rCheckout, err)
	}
	if err := validCheckout(req); err != nil {
		return s.writeErr(ctx, rCheckout, err)
	}
	a, err := s.attempt(ctx, uid, "checkout")
	if err != nil {
		return s.writeErr(ctx, rCheckout, err)
	}
	if a.Once, err = once(ctx); err != nil {
		return s.writeErr(ctx, rCheckout, err)
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	res, err := s.eng.Checkout(ectx, a, req)
	s.observeEngine(rCheckout, t0)
	return s.writeAnswer(ctx, rCheckout, res, err)
}

func validCheckout(req engine.CheckoutRequest) error {
	if !validKey(req.StoreID) {
		return errf(CodeBadRequest, "store_id is required ("+keyRule+")")
	}
	if err := optionalKey(req.GuideID, "guide_id"); err != nil {
		return err
	}
	if len(req.Items) == 0 || len(req.Items) > checkoutItemsMax {
		return errf(CodeBadRequest, "items must have 1 to "+strconv.Itoa(checkoutItemsMax)+" lines")
	}
	for i, it := range req.Items {
		if !validKey(it.SKUID) {
			return errf(CodeBadRequest, "items["+strconv.Itoa(i)+"].sku_id is required ("+keyRule+")")
		}
		if it.Quantity <= 0 || it.Quantity > quantityMax {
			return errf(CodeBadRequest, "items["+strconv.Itoa(i)+"].quantity must be between 1 and "+strconv.Itoa(quantityMax))
		}
	}
	return nil
}

func (s *Server) serveResGet(ctx *fasthttp.RequestCtx, uid string, idB []byte) int {
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	res, err := s.eng.Reservation(ectx, uid, string(idB))
	s.observeEngine(rResGet, t0)
	if err != nil {
		return s.writeErr(ctx, rResGet, err)
	}
	return s.writeOK(ctx, rResGet, res)
}

func (s *Server) serveResPay(ctx *fasthttp.RequestCtx, uid string, idB []byte) int {
	var req payReq
	if err := decodeStrict(ctx.Request.Body(), &req, false); err != nil {
		return s.writeErr(ctx, rResPay, err)
	}
	if !validUserID(req.PaymentID) {
		return s.writeError(ctx, rResPay, CodeBadRequest, "payment_id is required ("+idRule+")")
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	res, err := s.eng.Pay(ectx, uid, string(idB), req.PaymentID)
	s.observeEngine(rResPay, t0)
	if err != nil {
		return s.writeErr(ctx, rResPay, err)
	}
	return s.writeOK(ctx, rResPay, res)
}

func (s *Server) serveResCancel(ctx *fasthttp.RequestCtx, uid string, idB []byte) int {
	var req emptyReq
	if err := decodeStrict(ctx.Request.Body(), &req, true); err != nil {
		return s.writeErr(ctx, rResCancel, err)
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	res, err := s.eng.Cancel(ectx, uid, string(idB))
	s.observeEngine(rResCancel, t0)
	if err != nil {
		return s.writeErr(ctx, rResCancel, err)
	}
	return s.writeOK(ctx, rResCancel, res)
}

func (s *Server) serveOrderGet(ctx *fasthttp.RequestCtx, uid string, idB []byte) int {
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	o, err := s.eng.Order(ectx, uid, string(idB))
	s.observeEngine(rOrderGet, t0)
	if err != nil {
		return s.writeErr(ctx, rOrderGet, err)
	}
	return s.writeOK(ctx, rOrderGet, o)
}

func (s *Server) serveMyOrders(ctx *fasthttp.RequestCtx, uid string) int {
	limit := ordersLimitDefault
	if l := ctx.QueryArgs().Peek("limit"); len(l) > 0 {
		n, err := strconv.Atoi(string(l))
		if err != nil || n <= 0 || n > ordersLimitMax {
			return s.writeError(ctx, rMyOrders, CodeBadRequest, "limit must be between 1 and "+strconv.Itoa(ordersLimitMax))
		}
		limit = n
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	os, err := s.eng.UserOrders(ectx, uid, limit)
	s.observeEngine(rMyOrders, t0)
	if err != nil {
		return s.writeErr(ctx, rMyOrders, err)
	}
	if os == nil {
		os = []engine.Order{}
	}
	return s.writeOK(ctx, rMyOrders, ordersAnswer{Orders: os})
}

func (s *Server) serveSaleGet(ctx *fasthttp.RequestCtx, idB []byte) int {
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	fs, err := s.eng.FlashSale(ectx, string(idB))
	s.observeEngine(rSaleGet, t0)
	if err != nil {
		return s.writeErr(ctx, rSaleGet, err)
	}
	return s.writeOK(ctx, rSaleGet, fs)
}

func (s *Server) serveDealGet(ctx *fasthttp.RequestCtx, idB []byte) int {
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	d, err := s.eng.GroupDeal(ectx, string(idB))
	s.observeEngine(rDealGet, t0)
	if err != nil {
		return s.writeErr(ctx, rDealGet, err)
	}
	return s.writeOK(ctx, rDealGet, d)
}

func (s *Server) serveTeamGet(ctx *fasthttp.RequestCtx, dealB, teamB []byte) int {
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	t, err := s.eng.Team(ectx, string(dealB), string(teamB))
	s.observeEngine(rTeamGet, t0)
	if err != nil {
		return s.writeErr(ctx, rTeamGet, err)
	}
	// The team view is public (it is shared to recruit members); a session,
	// when present, only decides which member is "you".
	viewer, _ := s.auth(ctx)
	return s.writeOK(ctx, rTeamGet, teamFor(t, viewer))
}

// teamFor is the team as viewer may see it. A team page is shared to
// strangers, and a member's user id is their WeChat openid: everybody but
// the member sees it masked, and only the member sees their own
// reservation id. The caller's own reservation id is set on the team.
func teamFor(t engine.Team, viewer string) engine.Team {
	members := make([]engine.TeamMember, len(t.Members))
	for i, m := range t.Members {
		if viewer != "" && m.UserID == viewer {
			t.ReservationID = m.ReservationID
		} else {
			m.UserID = maskUserID(m.UserID)
			m.ReservationID = ""
		}
		members[i] = m
	}
	t.Members = members
	return t
}

// maskUserID keeps the first two characters of an id: enough for a member
// list to tell people apart, too little to identify anyone.
func maskUserID(id string) string {
	r := []rune(id)
	if len(r) <= 2 {
		return "***"
	}
	return string(r[:2]) + "***"
}
