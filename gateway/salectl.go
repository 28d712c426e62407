package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strconv"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/valyala/fasthttp"
)

// Sale controls (GET /admin/v1/flash-sales[/{id}], POST
// /admin/v1/flash-sales/{id}/pause|resume|end, the same for group-buys)
// and GET /admin/v1/reconcile; and the audit line of every admin action.

// adminByMethod picks the route of /admin/v1/flash-sales (or group-buys):
// GET (and HEAD) lists, anything else is the create route.
func adminByMethod(method []byte, create, get routeID) routeID {
	if string(method) == "GET" || string(method) == "HEAD" {
		return get
	}
	return create
}

// matchAdminSale matches the segments after /admin/v1/ of a sale's or
// deal's own routes: {kind}/{id} and {kind}/{id}/{action}.
func matchAdminSale(s [][]byte) (r routeID, p1, p2 []byte) {
	get, ctl := rAdminSaleGet, rAdminSaleCtl
	switch string(s[0]) {
	case "flash-sales":
	case "group-buys":
		get, ctl = rAdminDealGet, rAdminDealCtl
	default:
		return rUnknown, nil, nil
	}
	switch {
	case len(s) == 2:
		return get, s[1], nil
	case len(s) == 3:
		switch string(s[2]) {
		case engine.SaleActionPause, engine.SaleActionResume, engine.SaleActionEnd:
			return ctl, s[1], s[2]
		case "registrations":
			if get == rAdminSaleGet {
				return rAdminSaleRegs, s[1], nil
			}
		}
	}
	return rUnknown, nil, nil
}

// salesList is the list of flash sales ({"sales"}) and dealsList of
// group deals ({"deals"}); Truncated when there were more than one answer
// holds.
type salesList struct {
	Sales     []engine.SaleAdmin `json:"sales"`
	Truncated bool               `json:"truncated,omitempty"`
}

type dealsList struct {
	Deals     []engine.SaleAdmin `json:"deals"`
	Truncated bool               `json:"truncated,omitempty"`
}

func (s *Server) serveSaleAdmin(ctx *fasthttp.RequestCtx, r routeID, idB, actionB []byte) int {
	if err := s.authAdmin(ctx); err != nil {
		return s.writeErr(ctx, r, err)
	}
	kind := engine.SaleKindFlash
	if r == rAdminDealGet || r == rAdminDealCtl {
		kind = engine.SaleKindGroup
	}
	id := string(idB)
	if idB != nil && !validKey(id) {
		return s.writeErr(ctx, r, badf("the id must be "+keyRule))
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	var (
		v   any
		err error
	)
	t0 := time.Now()
	switch {
	case r == rAdminReconcile:
		v, err = s.eng.Reconcile(ectx)
	case (r == rAdminSaleGet || r == rAdminDealGet) && idB == nil:
		var list []engine.SaleAdmin
		var more bool
		list, more, err = s.eng.AdminSales(ectx, kind)
		if list == nil {
			list = []engine.SaleAdmin{}
		}
		v = salesList{list, more}
		if kind == engine.SaleKindGroup {
			v = dealsList{list, more}
		}
	case r == rAdminSaleGet || r == rAdminDealGet:
		v, err = s.eng.AdminSale(ectx, kind, id)
	default:
		v, err = s.eng.ControlSale(ectx, kind, id, string(actionB))
		s.audit(ctx, r, string(actionB), kind+" "+id, err)
	}
	s.observeEngine(r, t0)
	if err != nil {
		return s.writeErr(ctx, r, err)
	}
	return s.writeOK(ctx, r, v)
}

// auditTarget names what an admin action answered.
func auditTarget(v any) string {
	switch v := v.(type) {
	case engine.FlashSale:
		return "flash " + v.SaleID
	case engine.GroupDeal:
		return "group " + v.DealID
	case engine.CatalogResult:
		return "catalog: " + strconv.Itoa(v.Stores) + " stores, " + strconv.Itoa(v.Products) + " products, " + strconv.Itoa(v.Listings) + " listings"
	}
	return ""
}

// adminActionOf names the admin action of route r ("" for reads).
func adminActionOf(r routeID, action string) string {
	switch r {
	case rAdminCatalog:
		return "catalog_load"
	case rAdminSales:
		return "sale_create"
	case rAdminDeals:
		return "deal_create"
	case rAdminSaleCtl:
		return "sale_" + action
	case rAdminDealCtl:
		return "deal_" + action
	case rAdminRecover:
		return "recover"
	}
	return ""
}

// audit writes the audit line of an admin action (who: the client's
// address and a fingerprint of the admin token, never the token; what;
// and the answer's code) and counts the action when it was carried out.
func (s *Server) audit(ctx *fasthttp.RequestCtx, r routeID, action, target string, err error) {
	a := adminActionOf(r, action)
	if a == "" {
		return
	}
	code := CodeOK
	if err != nil {
		code = codeOf(err)
	} else {
		s.m.adminActions.WithLabelValues(a).Inc()
	}
	s.o.Logger.LogAttrs(context.Background(), slog.LevelInfo, "gateway: admin action",
		slog.String("action", a), slog.String("target", target), slog.String("client_ip", s.clientIP(ctx)),
		slog.String("token_fp", tokenFingerprint(s.admin)), slog.Int("code", code),
		slog.String("request_id", string(ctx.Response.Header.Peek("X-Request-Id"))))
}

// tokenFingerprint is a short, one-way name of a token for logs: the
// first 8 hex digits of its SHA-256.
func tokenFingerprint(tok []byte) string {
	sum := sha256.Sum256(tok)
	return hex.EncodeToString(sum[:4])
}
