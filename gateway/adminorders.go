package gateway

import (
	"bufio"
	"context"
	"encoding/csv"
	"strconv"
	"strings"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/valyala/fasthttp"
)

// Admin order reads: GET /admin/v1/orders (a JSON page, or the whole
// filter as CSV with format=csv) and GET /admin/v1/attribution.
const (
	// csvPageLen is how many orders a CSV export reads at a time: the
	// export holds one page in memory, whatever its size.
	csvPageLen = engine.OrdersPageMax
	// csvExportsMax bounds the CSV exports streaming at once (each holds
	// a connection and reads the order store until it ends).
	csvExportsMax = 4
)

// csvHeader is the CSV export's first row.
var csvHeader = []string{"order_id", "reservation_id", "created_at", "store_id", "guide_id", "sale_id", "deal_id",
	"kind", "user_id", "items", "amount_fen", "payment_id", "state"}

// orderQuery is what the query string of an admin order read says.
type orderQuery struct {
	f      engine.OrderFilter
	cursor string
	limit  int
	csv    bool
}

// parseOrderQuery reads the query string of r: every parameter at most
// once, none unknown, ids and times well formed.
func parseOrderQuery(args *fasthttp.Args, r routeID) (orderQuery, error) {
	var q orderQuery
	var err error
	seen := map[string]bool{}
	args.VisitAll(func(k, v []byte) {
		if err != nil {
			return
		}
		key, val := string(k), string(v)
		if seen[key] {
			err = badf(key + " is given more than once")
			return
		}
		seen[key] = true
		known := key == "store_id" || key == "since" || key == "until"
		if r == rAdminOrders {
			known = known || key == "guide_id" || key == "sale_id" || key == "cursor" || key == "limit" || key == "format"
		}
		if !known {
			err = badf("unknown parameter " + strconv.Quote(key))
			return
		}
		switch key {
		case "store_id", "guide_id", "sale_id":
			if !validKey(val) {
				err = badf(key + " must be " + keyRule)
				return
			}
			switch key {
			case "store_id":
				q.f.StoreID = val
			case "guide_id":
				q.f.GuideID = val
			default:
				q.f.SaleID = val
			}
		case "since", "until":
			t, perr := time.Parse(time.RFC3339Nano, val)
			if perr != nil {
				err = badf(key + " must be an RFC 3339 time, e.g. 2026-11-11T00:00:00Z or 2026-11-11T08:00:00+08:00")
				return
			}
			if key == "since" {
				q.f.Since = t.UTC()
			} else {
				q.f.Until = t.UTC()
			}
		case "cursor":
			q.cursor = val // checked against the filter by the engine
		case "limit":
			n, perr := strconv.Atoi(val)
			if perr != nil || n < 1 || n > engine.OrdersPageMax {
				err = badf("limit must be between 1 and " + strconv.Itoa(engine.OrdersPageMax))
				return
			}
			q.limit = n
		case "format":
			if val != "csv" && val != "json" {
				err = badf(`format must be "json" or "csv"`)
				return
			}
			q.csv = val == "csv"
		}
	})
	if err != nil {
		return q, err
	}
	if !q.f.Since.IsZero() && !q.f.Until.IsZero() && !q.f.Since.Before(q.f.Until) {
		return q, badf("since must be before until")
	}
	if q.csv && (seen["cursor"] || seen["limit"]) {
		return q, badf("cursor and limit do not apply to format=csv: the export has every order of the filter")
	}
	return q, nil
}

// serveAdminOrders serves GET /admin/v1/orders and /admin/v1/attribution.
func (s *Server) serveAdminOrders(ctx *fasthttp.RequestCtx, r routeID) int {
	if err := s.authAdmin(ctx); err != nil {
		return s.writeErr(ctx, r, err)
	}
	q, err := parseOrderQuery(ctx.QueryArgs(), r)
	if err != nil {
		return s.writeErr(ctx, r, err)
	}
	ectx, cancel := s.engineCtx(ctx)
	defer cancel()
	t0 := time.Now()
	var v any
	switch {
	case r == rAdminAttrib:
		v, err = s.eng.Attribution(ectx, q.f)
	case q.csv:
		if s.csvExports.Add(1) > csvExportsMax {
			s.csvExports.Add(-1)
			return s.writeError(ctx, r, CodeUnavailable, "too many CSV exports running ("+strconv.Itoa(csvExportsMax)+"), retry later")
		}
		// The first page is read here, so that a bad filter is answered
		// with its code before the export starts.
		first, err := s.eng.ListOrders(ectx, q.f, "", csvPageLen)
		s.observeEngine(r, t0)
		if err != nil {
			s.csvExports.Add(-1)
			return s.writeErr(ctx, r, err)
		}
		s.streamCSV(ctx, q.f, first)
		return CodeOK
	default:
		v, err = s.eng.ListOrders(ectx, q.f, q.cursor, q.limit)
	}
	s.observeEngine(r, t0)
	if err != nil {
		return s.writeErr(ctx, r, err)
	}
	return s.writeOK(ctx, r, v)
}

// streamCSV answers with the CSV of f's orders, first and the pages after
// it, each written and flushed as it is read: memory holds one page. A
// read that fails after the answer started closes the connection, so that
// the client sees a cut answer (no final chunk) rather than a short file.
func (s *Server) streamCSV(ctx *fasthttp.RequestCtx, f engine.OrderFilter, first engine.OrdersPage) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/csv; charset=utf-8")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="orders.csv"`)
	conn := ctx.Conn()
	rid := string(ctx.Response.Header.Peek("X-Request-Id"))
	timeout := s.o.EngineTimeout
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.csvExports.Add(-1)
		// A byte-order mark: Excel, where these files are opened, then
		// reads UTF-8 (Chinese titles, names) as UTF-8.
		_, _ = w.WriteString("\ufeff")
		cw := csv.NewWriter(w)
		_ = cw.Write(csvHeader)
		page := first
		row := make([]string, len(csvHeader))
		var items strings.Builder
		for {
			for i := range page.Orders {
				_ = cw.Write(csvRow(row, &items, &page.Orders[i]))
			}
			cw.Flush()
			if err := cw.Error(); err != nil {
				return // the client went away
			}
			if err := w.Flush(); err != nil {
				return
			}
			if page.NextCursor == "" {
				return
			}
			c, cancel := context.WithTimeout(context.WithValue(context.Background(), engine.RequestIDKey{}, rid), timeout)
			next, err := s.eng.ListOrders(c, f, page.NextCursor, csvPageLen)
			cancel()
			if err != nil {
				s.o.Logger.Warn("gateway: CSV export cut short", "request_id", rid, "err", err)
				if conn != nil {
					_ = conn.Close()
				}
				return
			}
			page = next
		}
	})
}

// csvRow fills row with o's fields in csvHeader's order. Items are
// "sku×quantity" joined by ";". A text field that a spreadsheet would
// take for a formula (starting with =, +, @, a tab or a carriage return)
// is written after a "'".
func csvRow(row []string, items *strings.Builder, o *engine.Order) []string {
	items.Reset()
	for i, it := range o.Items {
		if i > 0 {
			items.WriteByte(';')
		}
		items.WriteString(it.SKUID)
		items.WriteString("×")
		items.WriteString(strconv.FormatInt(it.Quantity, 10))
	}
	row[0] = csvSafe(o.OrderID)
	row[1] = csvSafe(o.ReservationID)
	row[2] = o.CreatedAt.UTC().Format(time.RFC3339Nano)
	row[3] = csvSafe(o.StoreID)
	row[4] = csvSafe(o.GuideID)
	row[5] = csvSafe(o.SaleID)
	row[6] = csvSafe(o.DealID)
	row[7] = csvSafe(o.Kind)
	row[8] = csvSafe(o.UserID)
	row[9] = csvSafe(items.String())
	row[10] = strconv.FormatInt(o.Amount, 10)
	row[11] = csvSafe(o.PaymentID)
	row[12] = csvSafe(o.State)
	return row
}

func csvSafe(v string) string {
	if v != "" && strings.IndexByte("=+@\t\r", v[0]) >= 0 {
		return "'" + v
	}
	return v
}
