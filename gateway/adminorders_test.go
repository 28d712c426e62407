package gateway

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
)

// gatedOrders is an order store whose List calls are counted, and whose
// call number gateAt (when set) waits until gate is closed, after saying
// so on entered.
type gatedOrders struct {
	orders.Store
	calls   atomic.Int64
	gateAt  int64
	entered chan struct{}
	gate    chan struct{}
}

func newGatedOrders(gateAt int64) *gatedOrders {
	return &gatedOrders{Store: orders.NewRecordsStore(records.NewMemory()), gateAt: gateAt,
		entered: make(chan struct{}, 1), gate: make(chan struct{})}
}

func (g *gatedOrders) List(ctx context.Context, f orders.Filter, after orders.Position, limit int) ([]orders.Order, orders.Position, error) {
	if g.calls.Add(1) == g.gateAt {
		g.entered <- struct{}{}
		<-g.gate
	}
	return g.Store.List(ctx, f, after, limit)
}

var exportT0 = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

// seedOrders writes n orders over two stores, two guides (and none), a
// sale (and none) and every state.
func seedOrders(t *testing.T, s orders.Store, n int) []orders.Order {
	t.Helper()
	states := []string{orders.StateCreated, orders.StateCreated, orders.StateCreated, orders.StateRefundPending, orders.StateRefunded}
	var all []orders.Order
	for i := 0; i < n; i++ {
		o := orders.Order{
			OrderID: fmt.Sprintf("o-r%06d", i), ReservationID: fmt.Sprintf("r%06d", i), UserID: fmt.Sprintf("u%d", i%97),
			StoreID: []string{"s1", "s2"}[i%2], GuideID: []string{"", "g1", "g2"}[i%3], Kind: "flash",
			Items:     []orders.Item{{SKUID: "k1", Title: "羊毛大衣", Quantity: int64(1 + i%2), UnitPrice: 100}},
			PaymentID: fmt.Sprintf("wx-%d", i), State: states[i%5], CreatedAt: exportT0.Add(time.Duration(i/2) * time.Second),
		}
		if i%4 == 0 {
			o.SaleID = "sale1"
			o.Items = append(o.Items, orders.Item{SKUID: "k2", Title: "围巾, \"红\"", Quantity: 3, UnitPrice: 10})
		}
		for _, it := range o.Items {
			o.Amount += it.Quantity * it.UnitPrice
		}
		all = append(all, o)
	}
	for start := 0; start < n; start += 1000 {
		if err := s.Upsert(context.Background(), all[start:min(start+1000, n)]); err != nil {
			t.Fatal(err)
		}
	}
	return all
}

// jsonPages reads every JSON page of query with limit.
func (h *harness) jsonPages(query url.Values, limit int) []engine.Order {
	h.t.Helper()
	var out []engine.Order
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			h.t.Fatal("no end of the pages")
		}
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("limit", strconv.Itoa(limit))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		page := into[engine.OrdersPage](h.t, h.wantCode(CodeOK, "GET", "/admin/v1/orders?"+q.Encode(), nil, adminAuth))
		if len(page.Orders) > limit {
			h.t.Fatalf("a page of %d orders; limit %d", len(page.Orders), limit)
		}
		out = append(out, page.Orders...)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

func orderIDs(list []engine.Order) string {
	var b strings.Builder
	for _, o := range list {
		b.WriteString(o.OrderID)
		b.WriteByte(' ')
	}
	return b.String()
}

// TestAdminOrders: filtered pages concatenate to the filtered orders,
// newest first; bad input is 40000 and changes nothing; attribution sums
// per guide with refunds apart.
func TestAdminOrders(t *testing.T) {
	st := newGatedOrders(0)
	h := newHarness(t, "memory", engineOpts(func(o *engine.Options) { o.Orders = st }))
	all := seedOrders(t, st, 1234)

	model := func(f func(o *engine.Order) bool) string {
		var sel []engine.Order
		for i := len(all) - 1; i >= 0; i-- { // newest first: later i, same second: higher id
			if f(&all[i]) {
				sel = append(sel, all[i])
			}
		}
		return orderIDs(sel)
	}
	since, until := exportT0.Add(100*time.Second), exportT0.Add(300*time.Second)
	cases := []struct {
		q url.Values
		f func(o *engine.Order) bool
	}{
		{url.Values{}, func(*engine.Order) bool { return true }},
		{url.Values{"store_id": {"s1"}}, func(o *engine.Order) bool { return o.StoreID == "s1" }},
		{url.Values{"guide_id": {"g2"}, "sale_id": {"sale1"}}, func(o *engine.Order) bool { return o.GuideID == "g2" && o.SaleID == "sale1" }},
		{url.Values{"store_id": {"s2"}, "since": {since.Format(time.RFC3339)}, "until": {until.In(time.FixedZone("CST", 8*3600)).Format(time.RFC3339)}},
			func(o *engine.Order) bool {
				return o.StoreID == "s2" && !o.CreatedAt.Before(since) && o.CreatedAt.Before(until)
			}},
	}
	for _, c := range cases {
		want := model(c.f)
		for _, limit := range []int{7, 500} {
			if got := orderIDs(h.jsonPages(c.q, limit)); got != want {
				t.Fatalf("orders %v in pages of %d:\n%.300s\nwant\n%.300s", c.q, limit, got, want)
			}
		}
	}
	// The default page is 100, and an order comes whole.
	page := into[engine.OrdersPage](t, h.wantCode(CodeOK, "GET", "/admin/v1/orders?sale_id=sale1", nil, adminAuth))
	if len(page.Orders) != 100 || page.NextCursor == "" || page.Orders[0].Items[1].Title != "围巾, \"红\"" {
		t.Fatalf("default page: %d orders, cursor %q, %+v", len(page.Orders), page.NextCursor, page.Orders[0])
	}

	// Bad input.
	before := h.stockState()
	bad := []string{
		"store_id=s%201", "guide_id=g/1", "sale_id=", "store_id=" + strings.Repeat("s", 65),
		"since=yesterday", "until=2026-11-11", "since=2026-11-11T01:00:00Z&until=2026-11-11T00:00:00Z",
		"since=2026-11-11T00:00:00Z&until=2026-11-11T00:00:00Z",
		"limit=0", "limit=501", "limit=ten", "limit=-1",
		"cursor=garbage", "cursor=" + page.NextCursor[:len(page.NextCursor)-2] + "AA",
		"store_id=s1&cursor=" + page.NextCursor, // another filter's cursor
		"format=xml", "format=csv&limit=10", "format=csv&cursor=" + page.NextCursor,
		"store=s1", "store_id=s1&store_id=s2",
	}
	for _, q := range bad {
		r := h.wantCode(CodeBadRequest, "GET", "/admin/v1/orders?"+q, nil, adminAuth)
		if r.Msg == "" || r.Status != 400 {
			t.Errorf("orders?%s: %d %q", q, r.Status, r.Msg)
		}
	}
	for _, q := range []string{"guide_id=g1", "since=bad", "store_id=s/1", "cursor=x"} {
		h.wantCode(CodeBadRequest, "GET", "/admin/v1/attribution?"+q, nil, adminAuth)
	}
	if h.stockState() != before {
		t.Fatal("bad admin reads changed state")
	}
	h.wantCode(CodeUnauthorized, "GET", "/admin/v1/orders", nil)
	h.wantCode(CodeUnauthorized, "GET", "/admin/v1/attribution", nil)

	// Attribution: per store and guide, refunds apart, plus totals; the
	// store's and guide's names from the catalog (g2 is in none).
	h.loadCatalog()
	rep := into[engine.AttributionReport](t, h.wantCode(CodeOK, "GET", "/admin/v1/attribution?store_id=s1&until="+until.Format(time.RFC3339), nil, adminAuth))
	want := map[string]*orders.GuideTotals{}
	var total orders.Totals
	for _, o := range all {
		if o.StoreID != "s1" || !o.CreatedAt.Before(until) {
			continue
		}
		g := want[o.GuideID]
		if g == nil {
			g = &orders.GuideTotals{StoreID: "s1", GuideID: o.GuideID}
			want[o.GuideID] = g
		}
		u := orders.Totals{Orders: 1, Units: o.Units(), Amount: o.Amount}
		if o.State != orders.StateCreated {
			u = orders.Totals{RefundedOrders: 1, RefundedUnits: o.Units(), RefundedAmount: o.Amount}
		}
		g.Add(u)
		total.Add(u)
	}
	if len(rep.Guides) != 3 || rep.Guides[0].GuideID != "" || rep.Totals != total {
		t.Fatalf("attribution = %+v; want 3 rows (no guide first), totals %+v", rep, total)
	}
	names := map[string]string{"": "", "g1": "小王", "g2": ""}
	for _, g := range rep.Guides {
		if w := want[g.GuideID]; w == nil || *w != g.GuideTotals {
			t.Errorf("attribution row %+v; want %+v", g, w)
		}
		if g.StoreName != "静安店" || g.GuideName != names[g.GuideID] {
			t.Errorf("attribution row %q: store %q, guide %q; want 静安店, %q", g.GuideID, g.StoreName, g.GuideName, names[g.GuideID])
		}
	}
}

// TestAdminOrdersCSV: a 20,000-order export streams: the answer starts
// (header and first page) while the store has not been read further,
// then the rest follows; parsed back, it is the JSON pages, Chinese text
// included.
func TestAdminOrdersCSV(t *testing.T) {
	st := newGatedOrders(2) // the export's second read waits
	h := newHarness(t, "memory", engineOpts(func(o *engine.Options) { o.Orders = st }))
	const n = 4_000 // eight pages; the memory order store scans every order per page, which under -race on a loaded machine took past the engine timeout at 20,000
	seedOrders(t, st, n)

	res, err := h.client.Do(mustRequest(t, "GET", h.base+"/admin/v1/orders?format=csv", adminAuth))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != 200 || ct != "text/csv; charset=utf-8" ||
		!strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("CSV answer: %d, %q, %q", res.StatusCode, ct, res.Header.Get("Content-Disposition"))
	}
	br := bufio.NewReader(res.Body)
	<-st.entered // the export is reading its second page...
	var head strings.Builder
	for i := 0; i <= csvPageLen; i++ { // ...and the header and first page are here already
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("line %d of the first page: %v", i, err)
		}
		head.WriteString(line)
	}
	if calls := st.calls.Load(); calls != 2 {
		t.Fatalf("List calls while the first page was read = %d; want 2", calls)
	}
	close(st.gate)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.TrimPrefix(head.String(), "\ufeff") + string(rest)
	rows, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != strings.Join(csvHeader, ",") || len(rows) != n+1 {
		t.Fatalf("CSV: header %v, %d rows; want %d", rows[0], len(rows)-1, n)
	}
	if calls, want := st.calls.Load(), int64((n+csvPageLen-1)/csvPageLen); calls != want {
		t.Errorf("List calls of the export = %d; want %d (pages of %d)", calls, want, csvPageLen)
	}
	pages := h.jsonPages(url.Values{}, 500)
	if len(pages) != n {
		t.Fatalf("JSON pages: %d orders; want %d", len(pages), n)
	}
	for i, o := range pages {
		var items []string
		for _, it := range o.Items {
			items = append(items, it.SKUID+"×"+strconv.FormatInt(it.Quantity, 10))
		}
		want := []string{o.OrderID, o.ReservationID, o.CreatedAt.Format(time.RFC3339Nano), o.StoreID, o.GuideID, o.SaleID,
			o.DealID, o.Kind, o.UserID, strings.Join(items, ";"), strconv.FormatInt(o.Amount, 10), o.PaymentID, o.State}
		if got := rows[i+1]; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("CSV row %d = %q; JSON says %q", i+1, got, want)
		}
	}

	// A filtered export; its bad filter is 40000 before anything streams.
	res2, err := h.client.Do(mustRequest(t, "GET", h.base+"/admin/v1/orders?format=csv&store_id=s2&guide_id=g1", adminAuth))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res2.Body)
	res2.Body.Close()
	rows, err = csv.NewReader(strings.NewReader(strings.TrimPrefix(string(body), "\ufeff"))).ReadAll()
	if err != nil || len(rows) != 1+(n+4)/6 || rows[1][3] != "s2" || rows[1][4] != "g1" {
		t.Fatalf("filtered CSV: %d rows, %v", len(rows), err)
	}
	h.wantCode(CodeBadRequest, "GET", "/admin/v1/orders?format=csv&since=2026-13-01T00:00:00Z", nil, adminAuth)
}

func mustRequest(t *testing.T, method, url string, hdr ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range hdr {
		k, v, _ := strings.Cut(kv, ": ")
		req.Header.Set(k, v)
	}
	return req
}
