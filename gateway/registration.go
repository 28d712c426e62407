package gateway

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// Registration (预约) for a flash sale that asks for it: POST
// /api/v1/flash-sales/{id}/registrations (a session; no body, or {}), and
// the admin's export GET /admin/v1/flash-sales/{id}/registrations
// (format=json, the default, or format=csv) from which anyone can re-run
// the draw with the published seed (`surge draw`).

// registrationsCSVHeader is the CSV export's first row.
var registrationsCSVHeader = []string{"user_id", "registered_at", "drawn"}

func (s *Server) serveRegister(ctx *fasthttp.RequestCtx, uid string, saleB []byte) int {
	var req emptyReq
	if err := decodeStrict(ctx.Request.Body(), &req, true); err != nil {
		return s.writeErr(ctx, rSaleRegister, err)
	}
	a, err := s.attempt(ctx, uid, "flash_register")
	if err != nil {
		return s.writeErr(ctx, rSaleRegister, err)
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	reg, err := s.eng.RegisterFlash(ectx, a, string(saleB))
	s.observeEngine(rSaleRegister, t0)
	return s.writeAnswer(ctx, rSaleRegister, reg, err)
}

func (s *Server) serveAdminRegistrations(ctx *fasthttp.RequestCtx, idB []byte) int {
	const r = rAdminSaleRegs
	if err := s.authAdmin(ctx); err != nil {
		return s.writeErr(ctx, r, err)
	}
	if !validKey(string(idB)) {
		return s.writeErr(ctx, r, badf("the id must be "+keyRule))
	}
	asCSV := false
	var bad error
	ctx.QueryArgs().VisitAll(func(k, v []byte) {
		switch {
		case string(k) != "format":
			bad = badf("unknown parameter " + strconv.Quote(string(k)) + "; only format is known")
		case string(v) == "csv":
			asCSV = true
		case string(v) != "json":
			bad = badf(`format must be "json" or "csv"`)
		}
	})
	if bad != nil {
		return s.writeErr(ctx, r, bad)
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	list, err := s.eng.FlashRegistrations(ectx, string(idB))
	s.observeEngine(r, t0)
	if err != nil {
		return s.writeErr(ctx, r, err)
	}
	if !asCSV {
		return s.writeOK(ctx, r, list)
	}
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	_ = cw.Write(registrationsCSVHeader)
	row := make([]string, len(registrationsCSVHeader))
	for _, e := range list.Registrations {
		row[0], row[1], row[2] = e.UserID, e.RegisteredAt.Format(time.RFC3339Nano), ""
		if e.Drawn != nil {
			row[2] = strconv.FormatBool(*e.Drawn)
		}
		_ = cw.Write(row)
	}
	cw.Flush()
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/csv; charset=utf-8")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="registrations-`+string(idB)+`.csv"`)
	ctx.SetBody(buf.Bytes())
	return CodeOK
}
