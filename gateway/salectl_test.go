package gateway

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSaleControlRoutes: the admin routes of API.md's sale controls, with
// their codes; pause refuses reservations (40902) until a resume; an end
// refuses pause and resume (40903); reconcile answers ok; every action is
// audited (without the token) and counted in /metrics.
func TestSaleControlRoutes(t *testing.T) {
	logs := &lockedBuffer{}
	h := newHarness(t, "memory", harnessOpt(func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}))
	h.loadCatalog()
	h.createSale("f1", 10, 0)
	now := time.Now()
	h.wantCode(CodeOK, "POST", "/admin/v1/group-buys", engine.GroupDealSpec{
		DealID: "d1", StoreID: "s1", SKUID: "k2", Price: 5000, TeamSize: 2, Quantity: 4,
		TeamWindowSeconds: 600, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	}, adminAuth)
	alice := h.login("alice")
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), alice)

	type sales struct {
		Sales []engine.SaleAdmin `json:"sales"`
	}
	list := into[sales](t, h.wantCode(CodeOK, "GET", "/admin/v1/flash-sales", nil, adminAuth))
	if len(list.Sales) != 1 || list.Sales[0].SaleID != "f1" || list.Sales[0].Status != "active" ||
		list.Sales[0].Supplied != 10 || list.Sales[0].Held != 1 || list.Sales[0].Remaining != 9 || list.Sales[0].EndsAtMs == 0 ||
		list.Sales[0].Title != "羊毛大衣" || list.Sales[0].StoreName != "静安店" {
		t.Fatalf("flash-sales = %s", h.do("GET", "/admin/v1/flash-sales", nil, adminAuth).Data)
	}
	deals := into[struct {
		Deals []engine.SaleAdmin `json:"deals"`
	}](t, h.wantCode(CodeOK, "GET", "/admin/v1/group-buys", nil, adminAuth))
	if len(deals.Deals) != 1 || deals.Deals[0].DealID != "d1" || deals.Deals[0].Status != "active" || deals.Deals[0].Title != "围巾" {
		t.Fatalf("group-buys = %+v", deals)
	}
	status := func(r resp) string { return into[engine.SaleAdmin](t, r).Status }
	if s := status(h.wantCode(CodeOK, "GET", "/admin/v1/flash-sales/f1", nil, adminAuth)); s != "active" {
		t.Fatalf("status %q", s)
	}
	if s := status(h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales/f1/pause", nil, adminAuth)); s != "paused" {
		t.Fatalf("after pause: %q", s)
	}
	h.wantCode(CodeNotActive, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), h.login("bob"))
	if s := status(h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales/f1/pause", nil, adminAuth)); s != "paused" {
		t.Fatalf("after a second pause: %q", s)
	}
	if s := status(h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales/f1/resume", nil, adminAuth)); s != "active" {
		t.Fatalf("after resume: %q", s)
	}
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), h.login("bob"))
	if s := status(h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales/f1/end", nil, adminAuth)); s != "ended" {
		t.Fatalf("after end: %q", s)
	}
	h.wantCode(CodeNotActive, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), h.login("carol"))
	h.wantCode(CodeBadState, "POST", "/admin/v1/flash-sales/f1/resume", nil, adminAuth)
	h.wantCode(CodeBadState, "POST", "/admin/v1/flash-sales/f1/pause", nil, adminAuth)
	h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales/f1/end", nil, adminAuth)
	if s := status(h.wantCode(CodeOK, "POST", "/admin/v1/group-buys/d1/pause", nil, adminAuth)); s != "paused" {
		t.Fatalf("deal after pause: %q", s)
	}
	h.wantCode(CodeNotActive, "POST", "/api/v1/group-buys/d1/teams", nil, alice)

	// Unknown and bad ids, unknown actions, no admin token.
	h.wantCode(CodeNotFound, "GET", "/admin/v1/flash-sales/nope", nil, adminAuth)
	h.wantCode(CodeNotFound, "POST", "/admin/v1/flash-sales/nope/pause", nil, adminAuth)
	h.wantCode(CodeNotFound, "GET", "/admin/v1/group-buys/f1", nil, adminAuth)
	h.wantCode(CodeBadRequest, "GET", "/admin/v1/flash-sales/bad$id", nil, adminAuth)
	h.wantCode(CodeBadRequest, "POST", "/admin/v1/flash-sales/bad$id/end", nil, adminAuth)
	h.wantCode(CodeNotFound, "POST", "/admin/v1/flash-sales/f1/explode", nil, adminAuth)
	h.wantCode(CodeNotFound, "GET", "/admin/v1/flash-sales/"+strings.Repeat("x", idLenMax+1), nil, adminAuth)
	h.wantCode(CodeBadRequest, "GET", "/admin/v1/flash-sales/f1/pause", nil, adminAuth)
	h.wantCode(CodeUnauthorized, "POST", "/admin/v1/flash-sales/f1/pause", nil)
	h.wantCode(CodeForbidden, "GET", "/admin/v1/reconcile", nil, alice)

	rep := into[engine.Reconciliation](t, h.wantCode(CodeOK, "GET", "/admin/v1/reconcile", nil, adminAuth))
	if !rep.OK || len(rep.Pools) == 0 || rep.Discrepancies == nil {
		t.Fatalf("reconcile = %+v", rep)
	}

	// Audit lines: who (address, token fingerprint, never the token) and what.
	out := logs.String()
	if strings.Contains(out, testAdminToken) {
		t.Fatalf("the admin token is in the logs")
	}
	fp := tokenFingerprint([]byte(testAdminToken))
	for _, a := range []string{"catalog_load", "sale_create", "deal_create", "sale_pause", "sale_resume", "sale_end", "deal_pause"} {
		if !strings.Contains(out, `"action":"`+a+`"`) {
			t.Errorf("no audit line for %s in %s", a, out)
		}
	}
	if !strings.Contains(out, `"token_fp":"`+fp+`"`) || !strings.Contains(out, `"client_ip":"127.0.0.1"`) {
		t.Errorf("audit lines lack who: %s", out)
	}
	mr, err := h.client.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Body.Close()
	m, _ := io.ReadAll(mr.Body)
	for _, want := range []string{`surge_admin_actions_total{action="sale_pause"} 2`, `surge_admin_actions_total{action="sale_end"} 2`,
		`surge_admin_actions_total{action="catalog_load"} 1`} {
		if !bytes.Contains(m, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
