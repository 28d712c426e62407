package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/surge-retail/surge/engine"
)

// notRoutedYet lists operations of /openapi.json the router does not
// serve. It is empty: the document describes what the server serves.
// TestOpenAPIMatchesRouter fails for an entry the router serves.
var notRoutedYet = []string{}

// routeSamples are concrete requests of every route: each must be
// described by the document (a path template and the method).
var routeSamples = map[routeID][]string{
	rSession:        {"POST /api/v1/session"},
	rStorePage:      {"GET /api/v1/stores/s1/page"},
	rProductPage:    {"GET /api/v1/stores/s1/products/k1"},
	rSaleGet:        {"GET /api/v1/flash-sales/fs1"},
	rSaleReserve:    {"POST /api/v1/flash-sales/fs1/reservations"},
	rSaleRegister:   {"POST /api/v1/flash-sales/fs1/registrations"},
	rAdminSaleRegs:  {"GET /admin/v1/flash-sales/fs1/registrations"},
	rDealGet:        {"GET /api/v1/group-buys/d1"},
	rTeamOpen:       {"POST /api/v1/group-buys/d1/teams"},
	rTeamGet:        {"GET /api/v1/group-buys/d1/teams/t1"},
	rTeamJoin:       {"POST /api/v1/group-buys/d1/teams/t1/members"},
	rCheckout:       {"POST /api/v1/checkout"},
	rResGet:         {"GET /api/v1/reservations/r1"},
	rResPay:         {"POST /api/v1/reservations/r1/pay"},
	rResCancel:      {"POST /api/v1/reservations/r1/cancel"},
	rResPrepay:      {"POST /api/v1/reservations/r1/prepay"},
	rPayNotify:      {"POST /api/v1/payments/wechat/notify"},
	rOrderGet:       {"GET /api/v1/orders/o1"},
	rMyOrders:       {"GET /api/v1/me/orders"},
	rFeed:           {"POST /internal/v1/inventory/feed"},
	rAdminCatalog:   {"PUT /admin/v1/catalog"},
	rAdminSales:     {"POST /admin/v1/flash-sales"},
	rAdminDeals:     {"POST /admin/v1/group-buys"},
	rAdminSaleGet:   {"GET /admin/v1/flash-sales", "GET /admin/v1/flash-sales/fs1"},
	rAdminSaleCtl:   {"POST /admin/v1/flash-sales/fs1/pause", "POST /admin/v1/flash-sales/fs1/resume", "POST /admin/v1/flash-sales/fs1/end"},
	rAdminDealGet:   {"GET /admin/v1/group-buys", "GET /admin/v1/group-buys/d1"},
	rAdminDealCtl:   {"POST /admin/v1/group-buys/d1/pause", "POST /admin/v1/group-buys/d1/resume", "POST /admin/v1/group-buys/d1/end"},
	rAdminReconcile: {"GET /admin/v1/reconcile"},
	rAdminRecover:   {"POST /admin/v1/recover"},
	rAdminStats:     {"GET /admin/v1/stats"},
	rPprof:          {"GET /debug/pprof/", "GET /debug/pprof/heap"},
	rHealthz:        {"GET /healthz"},
	rReadyz:         {"GET /readyz"},
	rMetrics:        {"GET /metrics"},
	rOpenAPI:        {"GET /openapi.json"},
	rAdminOrders:    {"GET /admin/v1/orders"},
	rAdminAttrib:    {"GET /admin/v1/attribution"},
	rH5Store:        {"GET /h5/stores/s1"},
	rAdminPage:      {"GET /admin/"},
}

// openAPIOps returns the document's operations as "METHOD /template".
func openAPIOps(t *testing.T, doc map[string]any) []string {
	t.Helper()
	var ops []string
	for path, item := range doc["paths"].(map[string]any) {
		for m := range item.(map[string]any) {
			switch m {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				ops = append(ops, strings.ToUpper(m)+" "+path)
			}
		}
	}
	sort.Strings(ops)
	return ops
}

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	return doc
}

var pathParam = regexp.MustCompile(`\{[^}/]+\}`)

// templateMatches reports whether a concrete path fits a path template.
func templateMatches(tmpl, path string) bool {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if pathParam.MatchString(ts[i]) && ts[i][0] == '{' && ts[i][len(ts[i])-1] == '}' {
			if ps[i] == "" {
				return false
			}
			continue
		}
		if ts[i] != ps[i] {
			return false
		}
	}
	return true
}

// TestOpenAPIMatchesRouter walks the router both ways: every route (by its
// samples) is in the document with its method, and every operation of the
// document is a route with that method, but for notRoutedYet.
func TestOpenAPIMatchesRouter(t *testing.T) {
	doc := loadOpenAPI(t)
	ops := openAPIOps(t, doc)
	for r := rUnknown + 1; r < routesLen; r++ {
		samples := routeSamples[r]
		if len(samples) == 0 {
			t.Errorf("route %s has no sample in routeSamples", routes[r].name)
		}
		for _, smp := range samples {
			method, path, _ := strings.Cut(smp, " ")
			if got, _, _, ok := match([]byte(method), []byte(path)); got != r || !ok {
				t.Errorf("sample %q routes to %s (method ok %v); want %s", smp, routes[got].name, ok, routes[r].name)
			}
			found := false
			for _, op := range ops {
				m, tmpl, _ := strings.Cut(op, " ")
				if m == method && templateMatches(tmpl, path) {
					found = true
				}
			}
			if !found {
				t.Errorf("route %s: %s is not in openapi.json", routes[r].name, smp)
			}
		}
	}
	for _, op := range ops {
		method, tmpl, _ := strings.Cut(op, " ")
		path := pathParam.ReplaceAllStringFunc(tmpl, func(p string) string {
			if p == "{profile}" {
				return "heap"
			}
			return "x1"
		})
		r, _, _, ok := match([]byte(method), []byte(path))
		routed := r != rUnknown && ok && (routes[r].method == method || routes[r].method == "")
		switch {
		case slices.Contains(notRoutedYet, op) && routed:
			t.Errorf("%s is routed now (%s): remove it from notRoutedYet", op, routes[r].name)
		case !slices.Contains(notRoutedYet, op) && !routed:
			t.Errorf("openapi.json has %s, which the router does not serve (%s as %s: route %s, method ok %v)", op, method, path, routes[r].name, ok)
		}
	}
	for _, op := range notRoutedYet {
		if !slices.Contains(ops, op) {
			t.Errorf("notRoutedYet has %s, which openapi.json does not describe", op)
		}
	}
}

// TestOpenAPIDocument checks the document's structure with the standard
// library: the version, every $ref resolves, every operation has an id,
// an answer and its path's parameters, and the error codes are API.md's
// table, each under its HTTP status.
func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v; want 3.1.0", doc["openapi"])
	}
	// resolve follows a local JSON pointer (RFC 6901).
	resolve := func(ref string) (any, bool) {
		if !strings.HasPrefix(ref, "#/") {
			return nil, false
		}
		var cur any = doc
		for _, tok := range strings.Split(ref[2:], "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[tok]; !ok {
				return nil, false
			}
		}
		return cur, true
	}
	refs := 0
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				refs++
				if _, ok := resolve(ref); !ok {
					t.Errorf("%s: $ref %q does not resolve", at, ref)
				}
			}
			for k, e := range v {
				walk(at+"/"+k, e)
			}
		case []any:
			for i, e := range v {
				walk(at+"/"+strconv.Itoa(i), e)
			}
		}
	}
	walk("#", doc)
	if refs == 0 {
		t.Error("no $ref at all")
	}
	deref := func(v any) map[string]any {
		m, _ := v.(map[string]any)
		if ref, ok := m["$ref"].(string); ok {
			r, _ := resolve(ref)
			m, _ = r.(map[string]any)
		}
		return m
	}
	ids := map[string]string{}
	for path, item := range doc["paths"].(map[string]any) {
		want := map[string]bool{}
		for _, p := range pathParam.FindAllString(path, -1) {
			want[p[1:len(p)-1]] = true
		}
		for m, o := range item.(map[string]any) {
			op := o.(map[string]any)
			at := strings.ToUpper(m) + " " + path
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s: no operationId", at)
			} else if other, dup := ids[id]; dup {
				t.Errorf("%s: operationId %q is %s's too", at, id, other)
			}
			ids[id] = at
			answers, _ := op["responses"].(map[string]any)
			if len(answers) == 0 {
				t.Errorf("%s: no answer", at)
			}
			for st, a := range answers {
				if n, err := strconv.Atoi(st); err != nil || n < 100 || n > 599 {
					t.Errorf("%s: answer %q is not an HTTP status", at, st)
				}
				if d, _ := deref(a)["description"].(string); d == "" {
					t.Errorf("%s: answer %s has no description", at, st)
				}
			}
			got := map[string]bool{}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				pm := deref(p)
				if pm["in"] == "path" {
					got[pm["name"].(string)] = true
					if pm["required"] != true {
						t.Errorf("%s: path parameter %v is not required", at, pm["name"])
					}
				}
				if pm["in"] == "header" && strings.EqualFold(pm["name"].(string), "Authorization") {
					t.Errorf("%s: Authorization as a parameter (OpenAPI ignores it; use security)", at)
				}
			}
			for p := range want {
				if !got[p] {
					t.Errorf("%s: path parameter {%s} is not declared", at, p)
				}
			}
			for p := range got {
				if !want[p] {
					t.Errorf("%s: parameter %s is not in the path", at, p)
				}
			}
		}
	}
	// The code table: ErrorCode lists API.md's codes, each with its
	// status, the gateway's codes among them; each error answer E<status>
	// lists the codes of that status.
	comp := doc["components"].(map[string]any)
	type row struct {
		status int
		name   string
	}
	listed := map[int]row{}
	for _, c := range comp["schemas"].(map[string]any)["ErrorCode"].(map[string]any)["oneOf"].([]any) {
		cm := c.(map[string]any)
		listed[int(cm["const"].(float64))] = row{int(cm["x-http-status"].(float64)), cm["title"].(string)}
	}
	for _, r := range codeTable {
		if got, ok := listed[r.code]; !ok || got != (row{r.status, r.name}) {
			t.Errorf("ErrorCode lists %d as %+v; the gateway answers it as HTTP %d %s", r.code, got, r.status, r.name)
		}
	}
	// API.md is beside the repository (../shared/) on our machines and in
	// CI; its table is the contract the document must repeat.
	if md, err := os.ReadFile(filepath.Join("..", "..", "shared", "API.md")); err != nil {
		t.Logf("API.md not found beside the repository (%v): ErrorCode checked against the gateway's table only", err)
	} else {
		table := regexp.MustCompile(`(?m)^\| (\d+) \| (\d{3}) \| (\w+) \|`).FindAllStringSubmatch(string(md), -1)
		if len(table) < 10 {
			t.Fatalf("API.md: found %d rows of the code table", len(table))
		}
		for _, m := range table {
			code, _ := strconv.Atoi(m[1])
			status, _ := strconv.Atoi(m[2])
			if got, ok := listed[code]; !ok || got != (row{status, m[3]}) {
				t.Errorf("ErrorCode lists %d as %+v; API.md says %d %s", code, got, status, m[3])
			}
		}
		if len(listed) != len(table) {
			t.Errorf("ErrorCode lists %d codes; API.md's table has %d", len(listed), len(table))
		}
	}
	for code, r := range listed {
		if code == CodeOK {
			continue
		}
		resp, ok := comp["responses"].(map[string]any)["E"+strconv.Itoa(r.status)].(map[string]any)
		if !ok {
			t.Errorf("no error answer E%d for %d", r.status, code)
			continue
		}
		b, _ := json.Marshal(resp)
		if !strings.Contains(string(b), strconv.Itoa(code)) {
			t.Errorf("error answer E%d does not list %d", r.status, code)
		}
	}
}

// TestOpenAPIValidates runs kin-openapi's validator over the document
// (OpenAPI 3.1 structure, JSON Schema 2020-12 schemas, examples).
func TestOpenAPIValidates(t *testing.T) {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromData(openAPIDoc)
	if err != nil {
		t.Fatalf("kin-openapi cannot load openapi.json: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Errorf("kin-openapi reads version %q; want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableMultiError(), openapi3.EnableSchemaFormatValidation(), openapi3.EnableSchemaDefaultsValidation(), openapi3.EnableExamplesValidation()); err != nil {
		t.Errorf("openapi.json is not valid: %v", err)
	}
}

// TestOpenAPIServed: GET /openapi.json is the embedded document, with an
// ETag and 304 on If-None-Match.
func TestOpenAPIServed(t *testing.T) {
	h := newHarness(t, "memory")
	get := func(hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", h.base+"/openapi.json", nil)
		for _, kv := range hdr {
			k, v, _ := strings.Cut(kv, ": ")
			req.Header.Set(k, v)
		}
		res, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res, body
	}
	res, body := get()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") || string(body) != string(openAPIDoc) {
		t.Fatalf("GET /openapi.json: HTTP %d, Content-Type %q, %d bytes; want 200, application/json, the %d bytes of openapi.json",
			res.StatusCode, res.Header.Get("Content-Type"), len(body), len(openAPIDoc))
	}
	etag := res.Header.Get("ETag")
	if etag != openAPIETag {
		t.Errorf("ETag %q; want %q", etag, openAPIETag)
	}
	if res, body = get("If-None-Match: " + etag); res.StatusCode != 304 || len(body) != 0 {
		t.Errorf("If-None-Match: the ETag: HTTP %d with %d bytes; want 304, empty", res.StatusCode, len(body))
	}
	if res, _ = get(`If-None-Match: "other"`); res.StatusCode != 200 {
		t.Errorf("If-None-Match: another tag: HTTP %d; want 200", res.StatusCode)
	}
	r := h.wantCode(CodeBadRequest, "POST", "/openapi.json", nil)
	if r.Status != 405 || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /openapi.json: HTTP %d, Allow %q; want 405, GET, HEAD", r.Status, r.Header.Get("Allow"))
	}
}

// TestOpenAPIAnswersFitSchemas sends requests of most routes, answered
// and refused, and checks every JSON answer against the schema the
// document gives its route and status: the schemas are the answers'.
func TestOpenAPIAnswersFitSchemas(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPIDoc)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, "memory")
	check := func(r resp, method, path string) resp {
		t.Helper()
		path, _, _ = strings.Cut(path, "?")
		var item *openapi3.PathItem
		for tmpl, it := range doc.Paths.Map() {
			if templateMatches(tmpl, path) && it.GetOperation(method) != nil {
				item = it
			}
		}
		if item == nil {
			t.Fatalf("%s %s: not in openapi.json", method, path)
		}
		answer := item.GetOperation(method).Responses.Status(r.Status)
		if answer == nil || answer.Value == nil {
			t.Errorf("%s %s: HTTP %d (code %d) is not an answer openapi.json lists", method, path, r.Status, r.Code)
			return r
		}
		mt := answer.Value.Content.Get("application/json")
		if mt == nil || mt.Schema == nil {
			t.Errorf("%s %s: answer %d has no JSON schema", method, path, r.Status)
			return r
		}
		var v any
		if err := json.Unmarshal(r.Raw, &v); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if err := mt.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
			t.Errorf("%s %s: answer %d %s does not fit its schema: %v", method, path, r.Status, r.Raw, err)
		}
		return r
	}
	do := func(code int, method, path string, body any, hdr ...string) resp {
		t.Helper()
		return check(h.wantCode(code, method, path, body, hdr...), method, path)
	}
	do(CodeOK, "GET", "/healthz", nil)
	do(CodeOK, "GET", "/readyz", nil)
	do(CodeNotFound, "GET", "/api/v1/stores/s1/page", nil)
	do(CodeOK, "PUT", "/admin/v1/catalog", testCatalog, adminAuth)
	do(CodeUnauthorized, "PUT", "/admin/v1/catalog", testCatalog)
	do(CodeOK, "GET", "/api/v1/stores/s1/page?guide=g1", nil)
	do(CodeOK, "GET", "/api/v1/stores/s1/page", nil)
	do(CodeOK, "GET", "/api/v1/stores/s1/products/k1?guide=g1", nil)
	now := time.Now()
	do(CodeOK, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{
		SaleID: "fs1", StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: 3, PerUserLimit: 1,
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour), HoldSeconds: 300,
	}, adminAuth)
	do(CodeOK, "POST", "/admin/v1/group-buys", engine.GroupDealSpec{
		DealID: "d1", StoreID: "s1", SKUID: "k2", Price: 5000, TeamSize: 2, Quantity: 4,
		TeamWindowSeconds: 600, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	}, adminAuth)
	do(CodeBadRequest, "POST", "/admin/v1/group-buys", `{"deal_id":"d2"}`, adminAuth)
	do(CodeOK, "GET", "/api/v1/flash-sales/fs1", nil)
	do(CodeOK, "GET", "/api/v1/group-buys/d1", nil)
	a, b := h.login("alice"), h.login("bob")
	do(CodeBadRequest, "POST", "/api/v1/session", `{"code":""}`)
	res := into[engine.Reservation](t, do(CodeOK, "POST", "/api/v1/flash-sales/fs1/reservations", `{"quantity":1,"guide_id":"g1"}`, a, "Idempotency-Key: k1"))
	do(CodeLimitExceeded, "POST", "/api/v1/flash-sales/fs1/reservations", `{"quantity":1}`, a)
	do(CodeIdempotencyConflict, "POST", "/api/v1/flash-sales/fs1/reservations", `{"quantity":2}`, a, "Idempotency-Key: k1")
	do(CodeUnauthorized, "POST", "/api/v1/flash-sales/fs1/reservations", `{"quantity":1}`)
	do(CodeRiskDenied, "POST", "/api/v1/flash-sales/fs1/reservations", `{"quantity":1}`, b, "X-Device-Id: bot")
	do(CodeOK, "GET", "/api/v1/reservations/"+res.ReservationID, nil, a)
	do(CodeForbidden, "GET", "/api/v1/reservations/"+res.ReservationID, nil, b)
	do(CodeOK, "POST", "/api/v1/reservations/"+res.ReservationID+"/pay", `{"payment_id":"p1"}`, a)
	do(CodeBadState, "POST", "/api/v1/reservations/"+res.ReservationID+"/cancel", nil, a)
	do(CodeForbidden, "POST", "/api/v1/reservations/"+res.ReservationID+"/prepay", nil, a) // payment.provider dev
	team := into[engine.Team](t, do(CodeOK, "POST", "/api/v1/group-buys/d1/teams", `{"guide_id":"g1"}`, a))
	do(CodeOK, "GET", "/api/v1/group-buys/d1/teams/"+team.TeamID, nil)
	do(CodeOK, "POST", "/api/v1/group-buys/d1/teams/"+team.TeamID+"/members", nil, b)
	do(CodeBadState, "POST", "/api/v1/group-buys/d1/teams/"+team.TeamID+"/members", nil, h.login("carol"))
	co := into[engine.Reservation](t, do(CodeOK, "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k2","quantity":1},{"sku_id":"k3","quantity":1}]}`, b))
	do(CodeOK, "POST", "/api/v1/reservations/"+co.ReservationID+"/cancel", nil, b)
	do(CodeSoldOut, "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k3","quantity":4}]}`, b)
	do(CodeNotFound, "GET", "/api/v1/orders/nope", nil, a)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mine := into[ordersAnswer](t, do(CodeOK, "GET", "/api/v1/me/orders", nil, a))
		if len(mine.Orders) > 0 {
			do(CodeOK, "GET", "/api/v1/orders/"+mine.Orders[0].OrderID, nil, a)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no order for alice's payment within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts := time.Now().Unix()
	feed := `{"updates":[{"store_id":"s1","sku_id":"k1","on_hand":90,"seq":1}]}`
	check(h.feed(feed, ts), "POST", "/internal/v1/inventory/feed")
	do(CodeUnauthorized, "POST", "/internal/v1/inventory/feed", feed)
	do(CodeOK, "GET", "/admin/v1/stats", nil, adminAuth)
	do(CodeOK, "GET", "/admin/v1/reconcile", nil, adminAuth)
	do(CodeOK, "GET", "/admin/v1/flash-sales", nil, adminAuth)
	do(CodeOK, "GET", "/admin/v1/group-buys", nil, adminAuth)
	do(CodeOK, "GET", "/admin/v1/flash-sales/fs1", nil, adminAuth)
	do(CodeOK, "POST", "/admin/v1/flash-sales/fs1/pause", nil, adminAuth)
	do(CodeNotActive, "POST", "/api/v1/flash-sales/fs1/reservations", `{"quantity":1}`, b)
	do(CodeOK, "POST", "/admin/v1/flash-sales/fs1/resume", nil, adminAuth)
	do(CodeOK, "POST", "/admin/v1/group-buys/d1/end", nil, adminAuth)
	do(CodeBadState, "POST", "/admin/v1/group-buys/d1/resume", nil, adminAuth)
	do(CodeNotFound, "GET", "/admin/v1/group-buys/nope", nil, adminAuth)
	do(CodeForbidden, "GET", "/admin/v1/stats", nil, a)
	// A sale with registration (预约): the registration, its refusals, the
	// sale's view and the admin's export fit their schemas.
	do(CodeOK, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{
		SaleID: "fr1", StoreID: "s1", SKUID: "k1", Price: 100, Quantity: 2, PerUserLimit: 1,
		StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour), RegistrationStartsAt: now.Add(-time.Minute), DrawQuantity: 1,
	}, adminAuth)
	do(CodeOK, "POST", "/api/v1/flash-sales/fr1/registrations", nil, a)
	do(CodeBadState, "POST", "/api/v1/flash-sales/fs1/registrations", nil, a)
	do(CodeNotActive, "POST", "/api/v1/flash-sales/fr1/reservations", `{"quantity":1}`, a)
	do(CodeOK, "GET", "/api/v1/flash-sales/fr1", nil)
	do(CodeOK, "GET", "/admin/v1/flash-sales/fr1/registrations", nil, adminAuth)
	do(CodeNotFound, "GET", "/admin/v1/flash-sales/nope/registrations", nil, adminAuth)
	// A known path called with the wrong method: E405, with Allow.
	r := h.wantCode(CodeBadRequest, "GET", "/api/v1/checkout", nil)
	var v any
	_ = json.Unmarshal(r.Raw, &v)
	e405 := doc.Components.Responses["E405"].Value
	if err := e405.Content.Get("application/json").Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil || r.Status != 405 || r.Header.Get("Allow") != "POST" {
		t.Errorf("GET /api/v1/checkout: HTTP %d %s (Allow %q) is not E405: %v", r.Status, r.Raw, r.Header.Get("Allow"), err)
	}
	if e405.Headers["Allow"] == nil || !e405.Headers["Allow"].Value.Required {
		t.Error("E405 does not require the Allow header")
	}
	// WeChat Pay is not configured here: every notification is refused,
	// in WeChat Pay's own format.
	hres, err := h.client.Post(h.base+"/api/v1/payments/wechat/notify", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(hres.Body)
	hres.Body.Close()
	r = resp{Status: hres.StatusCode, Header: hres.Header, Raw: raw}
	var fail struct{ Code, Message string }
	if err := json.Unmarshal(r.Raw, &fail); err != nil || r.Status != 400 || fail.Code != "FAIL" {
		t.Errorf("notify without WeChat Pay: HTTP %d %s", r.Status, r.Raw)
	}
	check(r, "POST", "/api/v1/payments/wechat/notify")
}
