package gateway

import "testing"

func TestMatch(t *testing.T) {
	f := func(method, path string, want routeID, p1, p2 string, methodOK bool) {
		t.Helper()
		r, g1, g2, ok := match([]byte(method), []byte(path))
		if r != want || string(g1) != p1 || string(g2) != p2 || ok != methodOK {
			t.Errorf("match(%s %q) = %s %q %q %v; want %s %q %q %v", method, path,
				routes[r].name, g1, g2, ok, routes[want].name, p1, p2, methodOK)
		}
	}
	f("POST", "/api/v1/session", rSession, "", "", true)
	f("GET", "/api/v1/session", rSession, "", "", false)
	f("GET", "/api/v1/stores/s1/page", rStorePage, "s1", "", true)
	f("HEAD", "/api/v1/stores/s1/page", rStorePage, "s1", "", true)
	f("GET", "/api/v1/stores/s1/products/k1", rProductPage, "s1", "k1", true)
	f("GET", "/api/v1/flash-sales/f1", rSaleGet, "f1", "", true)
	f("POST", "/api/v1/flash-sales/f1/reservations", rSaleReserve, "f1", "", true)
	f("GET", "/api/v1/flash-sales/f1/reservations", rSaleReserve, "f1", "", false)
	f("GET", "/api/v1/group-buys/d1", rDealGet, "d1", "", true)
	f("POST", "/api/v1/group-buys/d1/teams", rTeamOpen, "d1", "", true)
	f("GET", "/api/v1/group-buys/d1/teams/t1", rTeamGet, "d1", "t1", true)
	f("POST", "/api/v1/group-buys/d1/teams/t1/members", rTeamJoin, "d1", "t1", true)
	f("POST", "/api/v1/checkout", rCheckout, "", "", true)
	f("GET", "/api/v1/reservations/r1", rResGet, "r1", "", true)
	f("POST", "/api/v1/reservations/r1/pay", rResPay, "r1", "", true)
	f("POST", "/api/v1/reservations/r1/cancel", rResCancel, "r1", "", true)
	f("GET", "/api/v1/orders/o1", rOrderGet, "o1", "", true)
	f("GET", "/api/v1/me/orders", rMyOrders, "", "", true)
	f("POST", "/internal/v1/inventory/feed", rFeed, "", "", true)
	f("PUT", "/admin/v1/catalog", rAdminCatalog, "", "", true)
	f("POST", "/admin/v1/catalog", rAdminCatalog, "", "", false)
	f("POST", "/admin/v1/flash-sales", rAdminSales, "", "", true)
	f("POST", "/admin/v1/group-buys", rAdminDeals, "", "", true)
	f("GET", "/admin/v1/stats", rAdminStats, "", "", true)
	f("GET", "/admin/v1/flash-sales", rAdminSaleGet, "", "", true)
	f("GET", "/admin/v1/flash-sales/f1", rAdminSaleGet, "f1", "", true)
	f("POST", "/admin/v1/flash-sales/f1/pause", rAdminSaleCtl, "f1", "pause", true)
	f("POST", "/admin/v1/flash-sales/f1/end", rAdminSaleCtl, "f1", "end", true)
	f("GET", "/admin/v1/group-buys", rAdminDealGet, "", "", true)
	f("POST", "/admin/v1/group-buys/d1/resume", rAdminDealCtl, "d1", "resume", true)
	f("GET", "/admin/v1/group-buys/d1/resume", rAdminDealCtl, "d1", "resume", false)
	f("GET", "/admin/v1/reconcile", rAdminReconcile, "", "", true)
	f("POST", "/admin/v1/recover", rAdminRecover, "", "", true)
	f("GET", "/admin/v1/recover", rAdminRecover, "", "", false)
	f("GET", "/debug/pprof/", rPprof, "", "", true)
	f("GET", "/debug/pprof/heap", rPprof, "", "", true)
	f("GET", "/healthz", rHealthz, "", "", true)
	f("GET", "/readyz", rReadyz, "", "", true)
	f("GET", "/metrics", rMetrics, "", "", true)
	f("GET", "/openapi.json", rOpenAPI, "", "", true)
	f("HEAD", "/openapi.json", rOpenAPI, "", "", true)
	f("POST", "/openapi.json", rOpenAPI, "", "", false)
	// Not routes.
	for _, p := range []string{"", "/", "healthz", "/api", "/api/v1", "/api/v1/", "/api/v1/stores", "/api/v1/stores/s1",
		"/api/v1/stores//page", "/api/v1/stores/s1/page/", "/api/v1/checkout/", "/api/v2/checkout",
		"/api/v1/flash-sales/f1/reservations/x", "/api/v1/group-buys/d1/teams/t1/members/x",
		"/api/v1/me", "/api/v1/me/x", "/admin/v1", "/admin/v1/nope", "/admin/v1/flash-sales/f1/nope", "/admin/v1/nope/f1", "/internal/v1/inventory",
		"/a/b/c/d/e/f/g/h/i/j", "/api/v1/reservations/r1/refund", "/debug/pprof",
		"/openapi", "/openapi.json/", "/api/v1/openapi.json"} {
		f("GET", p, rUnknown, "", "", false)
	}
	long := make([]byte, idLenMax+1)
	for i := range long {
		long[i] = 'x'
	}
	f("GET", "/api/v1/stores/"+string(long)+"/page", rUnknown, "", "", false)
	f("GET", "/api/v1/stores/"+string(long[:idLenMax])+"/page", rStorePage, string(long[:idLenMax]), "", true)
}

func TestMatchNoAlloc(t *testing.T) {
	m, p := []byte("GET"), []byte("/api/v1/group-buys/d1/teams/t1")
	if n := testing.AllocsPerRun(100, func() { match(m, p) }); n != 0 {
		t.Errorf("match allocates %v times; want 0", n)
	}
}

func TestRoutesComplete(t *testing.T) {
	for r := range routesLen {
		if routes[r].name == "" {
			t.Errorf("route %d has no spec", r)
		}
	}
}
