package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flashConfig is a small, fast flash-sale run against srv: 60 arrivals of
// 20 users rushing 10 units, everybody pays or cancels at once.
func flashConfig(target string) Config {
	return Config{
		Target: target, AdminToken: fakeAdminToken, Scenario: ScenarioFlash, Setup: true,
		Users: 20, Rate: 300, Duration: 200 * time.Millisecond, Bots: 0.25,
		SaleQuantity: 10, PerUserLimit: 1, StartIn: 20 * time.Millisecond,
		PayShare: 0.8, CancelShare: 0.2, ThinkMax: time.Millisecond,
		PageThinkMin: time.Millisecond, PageThinkMax: 5 * time.Millisecond,
		Timeout: 2 * time.Second, DrainMax: 5 * time.Second, SettleMax: 3 * time.Second,
		OrderWaitMax: 500 * time.Millisecond, LoginRate: 2000, SetupStores: 3,
	}
}

func violationsOf(rep *Report, law string) int {
	n := 0
	for _, v := range rep.Invariants.Violations {
		if v.Law == law {
			n++
		}
	}
	return n
}

func TestFlashAgainstBehavingServerPasses(t *testing.T) {
	f := newFake()
	srv := f.start(t)
	var progress bytes.Buffer
	cfg := flashConfig(srv.URL)
	cfg.Progress = &syncWriter{w: &progress}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !rep.Invariants.OK || rep.ExitCode() != 0 {
		t.Fatalf("invariants failed against a correct server: %+v", rep.Invariants.Violations)
	}
	if rep.Arrivals != 60 {
		t.Errorf("arrivals = %d; want 60 (300/s for 200ms)", rep.Arrivals)
	}
	if n := rep.Outcomes["0"]; n == 0 {
		t.Errorf("no successful answer at all: %v", rep.Outcomes)
	}
	if rep.Outcomes["40900"]+rep.Outcomes["40901"] == 0 {
		t.Errorf("60 arrivals of 20 users for 10 units: want sold_out or limit answers, got %v", rep.Outcomes)
	}
	s := rep.Sales[f.saleID()]
	if s.Sold+s.Held+s.Remaining != s.Supplied || s.Supplied != 10 {
		t.Errorf("sale stats %+v", s)
	}
	if rep.Routes["flash_reserve"].Count == 0 || rep.Routes["session"].Count != 20 {
		t.Errorf("routes: %+v", rep.Routes)
	}
	if rep.Bots.BotUsers != 5 || rep.Bots.HumanUsers != 15 {
		t.Errorf("bots: %+v", rep.Bots)
	}
	if got := rep.Bots.BotReservations + rep.Bots.HumanReservations; got < 10 {
		t.Errorf("%d successful reservations; want at least the 10 units", got)
	}
	checked := strings.Join(rep.Invariants.Checked, "\n")
	for _, want := range []string{"conservation and no oversell, 1 sale(s)", "per-user limit 1", "order for every paid", "sold == units the run paid for"} {
		if !strings.Contains(checked, want) {
			t.Errorf("check %q did not run; ran:\n%s", want, checked)
		}
	}
	var text, html bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "invariants: OK") {
		t.Errorf("text summary (%v):\n%s", err, text.String())
	}
	if err := rep.WriteHTML(&html); err != nil || !strings.Contains(html.String(), "<svg") || strings.Contains(html.String(), "http-equiv") || strings.Contains(html.String(), "<script") {
		t.Errorf("html (%v)", err)
	}
	for _, ext := range []string{"src=", "href="} {
		if strings.Contains(html.String(), ext) {
			t.Errorf("html refers to an external asset (%s)", ext)
		}
	}
}

// syncWriter makes a bytes.Buffer safe for the progress goroutine.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (f *fakeServer) saleID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.sales {
		return id
	}
	return ""
}

func TestFlashAgainstOversellingServerFails(t *testing.T) {
	f := newFake()
	f.oversell = true
	srv := f.start(t)
	rep, err := Run(context.Background(), flashConfig(srv.URL))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Invariants.OK || rep.ExitCode() != 1 {
		t.Fatalf("an overselling server passed: %+v", rep.Sales)
	}
	if violationsOf(rep, "oversell") == 0 {
		t.Errorf("no oversell violation: %+v", rep.Invariants.Violations)
	}
}

func TestFlashAgainstServerIgnoringLimitFails(t *testing.T) {
	f := newFake()
	f.ignoreLimit = true
	srv := f.start(t)
	cfg := flashConfig(srv.URL)
	cfg.Users, cfg.SaleQuantity, cfg.PayShare, cfg.CancelShare = 5, 1000, 1, 0
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if violationsOf(rep, "per_user_limit") == 0 || rep.ExitCode() != 1 {
		t.Fatalf("60 paid reservations by 5 users with limit 1 passed: %+v", rep.Invariants)
	}
}

func TestFlashAgainstServerLosingOrdersFails(t *testing.T) {
	f := newFake()
	f.noOrders = true
	srv := f.start(t)
	rep, err := Run(context.Background(), flashConfig(srv.URL))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if violationsOf(rep, "order_missing") == 0 || rep.ExitCode() != 1 {
		t.Fatalf("paid reservations without orders passed: %+v", rep.Invariants)
	}
}

func TestFlashAgainstServerWithStuckHoldsFails(t *testing.T) {
	f := newFake()
	f.stuckHolds = true
	f.holdMs = 300
	srv := f.start(t)
	cfg := flashConfig(srv.URL)
	cfg.PayShare, cfg.CancelShare = 0.01, 0 // nearly everybody walks away
	cfg.HoldSeconds = 1
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if violationsOf(rep, "stuck_stock") == 0 || rep.ExitCode() != 1 {
		t.Fatalf("holds that never expire passed: %+v %+v", rep.Invariants, rep.Sales)
	}
}

func TestGroupAndHoldsExpiring(t *testing.T) {
	f := newFake()
	f.holdMs = 300
	srv := f.start(t)
	cfg := flashConfig(srv.URL)
	cfg.Scenario = ScenarioGroup
	cfg.DealQuantity, cfg.TeamSize, cfg.TeamWindow = 12, 2, time.Second
	cfg.PayShare, cfg.CancelShare = 0.7, 0
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !rep.Invariants.OK {
		t.Fatalf("group run against a correct server failed: %+v", rep.Invariants.Violations)
	}
	if rep.Routes["group_open"].Count == 0 || rep.Routes["group_join"].Count == 0 {
		t.Errorf("routes %v", sortedKeys(rep.Routes))
	}
	if len(rep.Deals) != 1 {
		t.Errorf("deals %+v", rep.Deals)
	}
}

func TestReportJSONShape(t *testing.T) {
	f := newFake()
	srv := f.start(t)
	cfg := flashConfig(srv.URL)
	cfg.Scenario = ScenarioMix
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	inv, _ := doc["invariants"].(map[string]any)
	if _, ok := inv["ok"].(bool); !ok {
		t.Errorf("invariants.ok missing: %v", inv)
	}
	if _, ok := inv["violations"].([]any); !ok {
		t.Errorf("invariants.violations is not an array: %v", inv["violations"])
	}
	routes, _ := doc["routes"].(map[string]any)
	if len(routes) == 0 {
		t.Fatalf("no routes: %s", buf.String())
	}
	for name, v := range routes {
		r, _ := v.(map[string]any)
		for _, k := range []string{"count", "p50_ms", "p99_ms", "p999_ms"} {
			if _, ok := r[k].(float64); !ok {
				t.Errorf("routes.%s.%s missing", name, k)
			}
		}
	}
	for _, want := range []string{"store_page", "flash_reserve", "session"} {
		if routes[want] == nil {
			t.Errorf("mix: route %s missing (have %v)", want, sortedKeys(routes))
		}
	}
	outcomes, _ := doc["outcomes"].(map[string]any)
	for k, v := range outcomes {
		if _, ok := v.(float64); !ok {
			t.Errorf("outcomes[%s] = %v; want a number", k, v)
		}
	}
	if outcomes["0"] == nil {
		t.Errorf("outcomes has no \"0\": %v", outcomes)
	}
}

func TestBrowseRevalidates(t *testing.T) {
	f := newFake()
	srv := f.start(t)
	cfg := flashConfig(srv.URL)
	cfg.Scenario, cfg.Rate, cfg.Duration = ScenarioBrowse, 500, 200*time.Millisecond
	cfg.SetupStores, cfg.Browsers = 2, 4
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Outcomes["304"] == 0 || rep.Routes["product_page"].Count == 0 {
		t.Errorf("100 visits to 2 stores from 4 browsers: want some 304s and product pages; outcomes %v", rep.Outcomes)
	}
	if !rep.Invariants.OK {
		t.Errorf("violations: %+v", rep.Invariants.Violations)
	}
}

// TestLatencyCountsFromIntendedTime: a server that stalls its first
// request; with one connection every request queued behind it is charged
// from the time it was meant to be sent, not from when it got a connection.
func TestLatencyCountsFromIntendedTime(t *testing.T) {
	const stall = 200 * time.Millisecond
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			time.Sleep(stall)
		}
		w.Write([]byte(`{"code":0,"msg":"ok","data":{}}`))
	}))
	defer srv.Close()
	cfg := Config{Target: srv.URL, Scenario: ScenarioBrowse, Conns: 1}.withDefaults()
	start := time.Now()
	r := &runner{cfg: cfg, rec: newRecorder(start, time.Second)}
	r.c = newClient(srv.URL, 1, 5*time.Second, r.rec)
	defer r.c.close()
	ctx := context.Background()
	// 50/s for 200ms: arrivals at 0, 20, ..., 180ms; the six at 0..100ms
	// cannot be answered before the stall ends at >= 200ms, so each is
	// charged at least 100ms.
	drops := r.drive(ctx, ctx, start, Arrival{Rate: 50, Duration: stall}.Schedule(100), func(int) flowFunc {
		return func(ctx context.Context, at time.Time) {
			r.c.do(ctx, call{route: "stall", method: "GET", path: "/", intended: at})
		}
	})
	r.flows.Wait()
	if drops != 0 {
		t.Fatalf("drops = %d", drops)
	}
	r.rec.mu.Lock()
	h := r.rec.routes["stall"].hist
	total := h.TotalCount()
	var atLeast100ms int64
	for _, b := range h.Distribution() {
		if b.From >= (100 * time.Millisecond).Microseconds() {
			atLeast100ms += b.Count
		}
	}
	r.rec.mu.Unlock()
	if total != 10 {
		t.Fatalf("recorded %d requests; want 10", total)
	}
	if atLeast100ms < 6 {
		t.Errorf("%d of 10 latencies >= 100ms; want >= 6 (queued behind a %v stall, counted from the intended time)", atLeast100ms, stall)
	}
	// The primitive itself: a request meant for 150ms ago is charged them.
	r.c.do(ctx, call{route: "late", method: "GET", path: "/", intended: time.Now().Add(-150 * time.Millisecond)})
	r.rec.mu.Lock()
	got := time.Duration(r.rec.routes["late"].hist.Min()) * time.Microsecond
	r.rec.mu.Unlock()
	if got < 150*time.Millisecond {
		t.Errorf("latency of a request sent 150ms late = %v; want >= 150ms", got)
	}
}

func TestInFlightCapCountsDrops(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte(`{"code":0,"msg":"ok","data":{}}`))
	}))
	defer srv.Close()
	defer close(release)
	cfg := Config{Target: srv.URL, Scenario: ScenarioBrowse, InFlightMax: 3}.withDefaults()
	start := time.Now()
	r := &runner{cfg: cfg, rec: newRecorder(start, time.Second)}
	r.c = newClient(srv.URL, 8, 5*time.Second, r.rec)
	defer r.c.close()
	ctx := context.Background()
	// 10 arrivals, none answered while arriving: 3 run, 7 are dropped.
	drops := r.drive(ctx, ctx, start, Arrival{Rate: 1000, Duration: 10 * time.Millisecond}.Schedule(10), func(int) flowFunc {
		return func(ctx context.Context, at time.Time) {
			r.c.do(ctx, call{route: "x", method: "GET", path: "/", intended: at})
		}
	})
	if drops != 7 || r.rec.drops.Load() != 7 {
		t.Errorf("drops = %d (recorded %d); want 7", drops, r.rec.drops.Load())
	}
	release <- struct{}{}
	release <- struct{}{}
	release <- struct{}{}
	r.flows.Wait()
	_, outcomes, _, _ := r.rec.snapshot()
	if outcomes[outcomeDrop] != 7 || outcomes["0"] != 3 {
		t.Errorf("outcomes %v; want client_drop=7 and 0=3", outcomes)
	}
}

func TestBotShare(t *testing.T) {
	// 10 bots and 90 humans; bots got 30 of 60 reservations.
	b := botShare(10, 90, 200, 300, 30, 30)
	f := func(name string, got, want float64) {
		t.Helper()
		if diff := got - want; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s = %v; want %v", name, got, want)
		}
	}
	f("BotUserShare", b.BotUserShare, 0.1)
	f("BotShare", b.BotShare, 0.5)
	f("HumanShare", b.HumanShare, 0.5)
	f("BotPerUser", b.BotPerUser, 3)
	f("HumanPerUser", b.HumanPerUser, 1.0/3)
	f("Advantage", b.Advantage, 9)
	z := botShare(0, 10, 0, 5, 0, 5)
	f("no bots: Advantage", z.Advantage, 0)
	f("no bots: BotShare", z.BotShare, 0)
	f("no bots: HumanShare", z.HumanShare, 1)
	e := botShare(5, 5, 1, 1, 0, 0)
	f("nothing reserved: BotShare", e.BotShare, 0)
	f("nothing reserved: Advantage", e.Advantage, 0)
}

func TestBadConfigIsUsageError(t *testing.T) {
	ok := Config{Target: "http://127.0.0.1:1", Scenario: ScenarioFlash}
	bad := []func(*Config){
		func(c *Config) { c.Target = "" },
		func(c *Config) { c.Target = "ftp://x" },
		func(c *Config) { c.Target = "127.0.0.1:8080" },
		func(c *Config) { c.Scenario = "" },
		func(c *Config) { c.Scenario = "stampede" },
		func(c *Config) { c.Users = -1 },
		func(c *Config) { c.Rate = -5 },
		func(c *Config) { c.Bots = 1.5 },
		func(c *Config) { c.Duration = 2 * time.Hour },
		func(c *Config) { c.PayShare, c.CancelShare = 0.9, 0.9 },
		func(c *Config) { c.Setup = true },
		func(c *Config) { c.SaleID = "a/b" },
		func(c *Config) { c.InFlightMax = inFlightMax + 1 },
	}
	for i, mut := range bad {
		c := ok
		mut(&c)
		if _, err := Run(context.Background(), c); !errors.Is(err, ErrUsage) {
			t.Errorf("case %d (%+v): err = %v; want ErrUsage", i, c, err)
		}
	}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestUnreachableTargetIsConnectError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	_, err := Run(context.Background(), Config{Target: url, Scenario: ScenarioFlash, Timeout: time.Second})
	if !errors.Is(err, ErrConnect) {
		t.Fatalf("err = %v; want ErrConnect", err)
	}
}

func TestNoSaleToRushIsUsageError(t *testing.T) {
	f := newFake()
	srv := f.start(t)
	_, err := Run(context.Background(), Config{Target: srv.URL, AdminToken: fakeAdminToken, Scenario: ScenarioFlash, Timeout: time.Second})
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("err = %v; want ErrUsage", err)
	}
	_, err = Run(context.Background(), Config{Target: srv.URL, AdminToken: "wrong", Scenario: ScenarioFlash, Setup: true, Timeout: time.Second})
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("wrong admin token: err = %v; want ErrUsage", err)
	}
}

// TestImportsOnlyTheHTTPAPI: the load tester knows Surge only through HTTP
// (DESIGN.md's layout): no package of this module may be imported, but for
// the WeChat Pay protocol and its fake server (which know nothing of Surge).
func TestImportsOnlyTheHTTPAPI(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sources: %v", err)
	}
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			if p == "github.com/surge-retail/surge/internal/wechatpay" || p == "github.com/surge-retail/surge/internal/wechatpay/wechatpaytest" {
				continue
			}
			if strings.HasPrefix(p, "github.com/surge-retail/surge") {
				t.Errorf("%s imports %s; loadtest must talk to Surge over HTTP only", name, p)
			}
		}
	}
}

// TestHoldsOutlivingSettleAreCancelled: when the holds would outlive
// --settle, the run cancels its own and then insists on held == 0.
func TestHoldsOutlivingSettleAreCancelled(t *testing.T) {
	f := newFake()
	f.holdMs = 60_000
	srv := f.start(t)
	cfg := flashConfig(srv.URL)
	cfg.PayShare, cfg.CancelShare = 0.3, 0 // most walk away
	cfg.SettleMax = 300 * time.Millisecond
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !rep.Invariants.OK {
		t.Fatalf("violations: %+v", rep.Invariants.Violations)
	}
	if s := rep.Sales[f.saleID()]; s.Held != 0 {
		t.Errorf("held %d after cancelling the run's holds", s.Held)
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "cancelled the run's") {
		t.Errorf("notes do not say the holds were cancelled: %q", rep.Notes)
	}
	if !strings.Contains(strings.Join(rep.Invariants.Checked, "\n"), "no stuck stock") {
		t.Errorf("the stuck-stock check did not run: %q", rep.Invariants.Checked)
	}
}
