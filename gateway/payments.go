package gateway

import (
	"errors"
	"strings"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/valyala/fasthttp"
)

// serveResPrepay answers the buyer's prepay: the wx.requestPayment
// parameters of the reservation's WeChat Pay order (API.md, "Payments").
func (s *Server) serveResPrepay(ctx *fasthttp.RequestCtx, uid string, idB []byte) int {
	var req emptyReq
	if err := decodeStrict(ctx.Request.Body(), &req, true); err != nil {
		return s.writeErr(ctx, rResPrepay, err)
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	res, err := s.eng.Prepay(ectx, uid, string(idB))
	s.observeEngine(rResPrepay, t0)
	if err != nil {
		return s.writeErr(ctx, rResPrepay, err)
	}
	return s.writeOK(ctx, rResPrepay, res)
}

// Notification refusals that are the gateway's own (the verifier's are
// wechatpay.Reason's; the engine's are engine.PayRefusal's).
const (
	notifyNotConfigured = "not_configured"
	notifyUnavailable   = "unavailable"
	notifyOther         = "other"
)

// servePayNotify takes WeChat Pay's payment and refund notifications. It
// answers as WeChat Pay expects, not with the envelope: 204 without a body
// when the notification is settled (also a repeat), else a 4xx/5xx with
// {"code":"FAIL","message":...}, and WeChat Pay sends it again later.
// Every refusal is logged with its reason and counted in
// surge_wechatpay_notify_refused_total.
func (s *Server) servePayNotify(ctx *fasthttp.RequestCtx) int {
	if s.o.WeChatPay == nil {
		return s.refuseNotify(ctx, notifyNotConfigured, fasthttp.StatusBadRequest, "WeChat Pay is not configured here")
	}
	h := wechatpay.SignatureHeaders{
		Timestamp: string(ctx.Request.Header.Peek(wechatpay.HeaderTimestamp)),
		Nonce:     string(ctx.Request.Header.Peek(wechatpay.HeaderNonce)),
		Signature: string(ctx.Request.Header.Peek(wechatpay.HeaderSignature)),
		Serial:    string(ctx.Request.Header.Peek(wechatpay.HeaderSerial)),
	}
	ev, err := s.o.WeChatPay.Verify(h, ctx.Request.Body(), time.Now())
	if err != nil {
		status, _ := wechatpay.NotifyAnswer(err)
		return s.refuseNotify(ctx, wechatpay.Reason(err), status, err.Error())
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	switch {
	case ev.Transaction != nil && ev.EventType == wechatpay.EventTransactionSuccess:
		err = s.eng.PaymentNotified(ectx, ev.Transaction)
	case ev.Refund != nil:
		err = s.eng.RefundNotified(ectx, ev.Refund)
	default:
		// An event we do not act on: taken, so that it is not sent again.
		s.o.Logger.Info("gateway: WeChat Pay notification ignored", "event_type", ev.EventType, "id", ev.ID)
	}
	s.observeEngine(rPayNotify, t0)
	var refusal *engine.PayRefusal
	switch {
	case err == nil:
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		ctx.Response.ResetBody()
		return CodeOK
	case errors.As(err, &refusal):
		return s.refuseNotify(ctx, refusal.Reason, fasthttp.StatusBadRequest, refusal.Msg)
	case errors.Is(err, engine.ErrUnavailable):
		return s.refuseNotify(ctx, notifyUnavailable, fasthttp.StatusServiceUnavailable, err.Error())
	}
	return s.refuseNotify(ctx, notifyOther, fasthttp.StatusInternalServerError, err.Error())
}

// refuseNotify answers a refused notification the way WeChat Pay reads
// it, logs why (the message stays in the log; the answer names the reason
// only) and counts it.
func (s *Server) refuseNotify(ctx *fasthttp.RequestCtx, reason string, status int, msg string) int {
	s.m.notifyRefused(reason)
	s.o.Logger.Warn("gateway: WeChat Pay notification refused", "reason", reason, "status", status, "msg", msg,
		"ip", s.clientIP(ctx), "request_id", string(ctx.Response.Header.Peek("X-Request-Id")))
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.SetBytesV("Retry-After", s.retry)
	}
	ctx.SetBody(wechatpay.FailureBody(reason))
	return notifyCode(status)
}

// notifyCode is the API code a notification's answer is counted under in
// surge_gateway_requests_total.
func notifyCode(status int) int {
	switch {
	case status == fasthttp.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case status == fasthttp.StatusUnauthorized:
		return CodeUnauthorized
	case status == fasthttp.StatusServiceUnavailable:
		return CodeUnavailable
	case status >= 500:
		return CodeInternal
	}
	return CodeBadRequest
}

// notifyReasonLabel keeps the metric's label set bounded: a reason of
// lowercase letters and underscores, or "other".
func notifyReasonLabel(reason string) string {
	if reason == "" || len(reason) > 32 || strings.Trim(reason, "abcdefghijklmnopqrstuvwxyz_") != "" {
		return notifyOther
	}
	return reason
}
