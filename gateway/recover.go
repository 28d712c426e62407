package gateway

import (
	"errors"
	"strings"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/valyala/fasthttp"
)

// POST /admin/v1/recover: the operator's explicit resume after the records
// lost their data (engine.Recover), audit-logged as the action "recover".

func (s *Server) serveRecover(ctx *fasthttp.RequestCtx) int {
	if err := s.authAdmin(ctx); err != nil {
		return s.writeErr(ctx, rAdminRecover, err)
	}
	if len(ctx.Request.Body()) > 0 {
		var req emptyReq
		if err := decodeStrict(ctx.Request.Body(), &req, false); err != nil {
			return s.writeErr(ctx, rAdminRecover, err)
		}
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	v, err := s.eng.Recover(ectx)
	s.observeEngine(rAdminRecover, t0)
	target := "nothing lost"
	if v.Recovered {
		target = "epoch " + v.Epoch
	}
	s.audit(ctx, rAdminRecover, "", target, err)
	if err != nil {
		return s.writeErr(ctx, rAdminRecover, err)
	}
	return s.writeOK(ctx, rAdminRecover, v)
}

// readyReasonLenMax bounds the reason /readyz gives.
const readyReasonLenMax = 300

// readyReason is why /readyz says not ready, in plain words: a circuit
// open, a backend that did not answer, or a data loss.
func readyReason(err error) string {
	var msg string
	switch {
	case errors.Is(err, engine.ErrCircuitOpen), errors.Is(err, engine.ErrDataLost):
		msg = err.Error()
	default:
		msg = "backends unreachable: " + err.Error()
	}
	msg = strings.ReplaceAll(msg, "engine: unavailable: ", "")
	msg = strings.TrimPrefix(msg, "engine: ")
	if len(msg) > readyReasonLenMax {
		msg = msg[:readyReasonLenMax] + "..."
	}
	return msg
}
