package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/chromedp/chromedp"
	"github.com/surge-retail/surge/internal/browsertest"
)

func pollJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second))
}

// TestPagesOfARealServe opens what people open on sale day, in a real
// headless Chromium, against the real binary (`surge serve --backend
// memory --demo`): the shopper's H5 storefront at a phone's width, the
// operator's /admin/ page (the demo sale listed, its countdown running,
// pause and resume through the page's buttons), and the HTML report of a
// `surge loadtest` run against it, with each of its sections.
func TestPagesOfARealServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	s := startSurge(t, "--backend", "memory", "--demo")
	var list struct {
		Sales []struct {
			SaleID string `json:"sale_id"`
			Status string `json:"status"`
		} `json:"sales"`
	}
	mustCall(t, "GET", s.base+"/admin/v1/flash-sales", testAdminToken, nil, &list)
	if len(list.Sales) == 0 {
		t.Fatal("the demo has no flash sale")
	}
	saleID := list.Sales[0].SaleID

	// The shopper's storefront, at a phone's width.
	phone := browsertest.New(t, browsertest.Options{})
	phone.Do(chromedp.Navigate(s.base+"/h5/stores/s001?guide=g001"), chromedp.WaitVisible(chromedp.CSS("#store-name")))
	name := browsertest.Run(phone, chromedp.Text(chromedp.CSS("#store-name")))
	if !strings.ContainsFunc(name, func(r rune) bool { return unicode.Is(unicode.Han, r) }) {
		t.Errorf("store name %q: want the demo store's Chinese name", name)
	}
	if g := browsertest.Run(phone, chromedp.Text(chromedp.CSS("#guide-name"))); g == "" {
		t.Error("the guide's page shows no guide")
	}
	countdown := `(document.querySelector(".countdown") || {}).textContent || ""`
	first := browsertest.Eval[string](phone, countdown)
	phone.Do(pollJS(countdown + ` !== ` + jsString(first)))
	if w := browsertest.Eval[int](phone, "document.documentElement.scrollWidth"); w > 375 {
		t.Errorf("the storefront is %d px wide at a 375 px phone", w)
	}
	phone.Screenshot("h5-demo")
	phone.NoConsoleErrors()

	// The operator's page: the demo sale, paused and resumed by its buttons.
	desk := browsertest.New(t, browsertest.Options{Width: 1280, Height: 900, Desktop: true})
	card := `.card[data-kind="flash"][data-id="` + saleID + `"]`
	desk.Do(chromedp.Navigate(s.base+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), testAdminToken),
		chromedp.Click(chromedp.CSS("#login-btn")),
		chromedp.WaitVisible(chromedp.CSS(card)))
	// act clicks a sale button, confirms, and waits until the page shows
	// the sale paused (or not); the API must agree.
	act := func(what string, paused bool) {
		t.Helper()
		shown := `(document.querySelector('` + card + ` .status') || {}).textContent.indexOf("paused") >= 0`
		if !paused {
			shown = "!" + shown
		}
		desk.Do(pollJS(`!document.querySelector('`+card+` [data-act=`+what+`]').disabled`),
			chromedp.Click(chromedp.CSS(card+" [data-act="+what+"]")),
			chromedp.WaitVisible(chromedp.CSS("#dlg-ok")),
			chromedp.Click(chromedp.CSS("#dlg-ok")),
			pollJS(shown))
		var sale struct {
			Status string `json:"status"`
		}
		mustCall(t, "GET", s.base+"/admin/v1/flash-sales/"+saleID, testAdminToken, nil, &sale)
		if (sale.Status == "paused") != paused {
			t.Fatalf("after %s in the page the sale is %q", what, sale.Status)
		}
	}
	act("pause", true)
	desk.Screenshot("admin-demo-paused")
	act("resume", false)
	desk.NoConsoleErrors()

	// A rehearsal's report.
	dir := t.TempDir()
	html := filepath.Join(dir, "report.html")
	lt := exec.Command(surgeBinary(t), "loadtest", "--target", s.base, "--admin-token", testAdminToken,
		"--scenario", "flash", "--setup", "--setup-stores", "2", "--users", "150", "--rate", "150",
		"--duration", "2s", "--start-in", "200ms", "--hold", "2", "--bots", "0.1",
		"--settle", "15s", "--order-wait", "10s", "--max-p99", "30s", "--max-error-rate", "0.5", "--quiet", "--html", html)
	if out, err := lt.CombinedOutput(); err != nil {
		t.Fatalf("surge loadtest: %v\n%s", err, out)
	}
	rep := browsertest.New(t, browsertest.Options{Width: 1280, Height: 900, Desktop: true})
	rep.Do(chromedp.Navigate("file://"+html), chromedp.WaitVisible(chromedp.CSS("#settings")))
	for _, id := range []string{"summary", "verdict", "settings", "sale-totals", "invariants", "thresholds", "bots", "outcomes",
		"latency-chart", "requests-chart", "routes", "route-bars", "phases"} {
		if !browsertest.Eval[bool](rep, `(function(){var e=document.getElementById("`+id+`");return !!e && e.getBoundingClientRect().height > 0;})()`) {
			t.Errorf("the report has no visible #%s", id)
		}
	}
	text := func(sel string) string {
		return browsertest.Eval[string](rep, `Array.prototype.map.call(document.querySelectorAll('`+sel+`'), function (e) { return e.textContent; }).join("|")`)
	}
	if v := text("#verdict"); !strings.HasPrefix(v, "exit code 0") {
		t.Errorf("verdict %q; want exit code 0", v)
	}
	if n := browsertest.Eval[int](rep, `document.querySelectorAll("#invariants .check").length`); n == 0 {
		t.Error("the report lists no invariant check")
	}
	// The thresholds given, one check a line, each passed.
	if th := text("#thresholds .check"); !strings.Contains(th, "p99 of") || !strings.Contains(th, "error rate") || strings.Contains(th, "FAILED") {
		t.Errorf("thresholds shown: %q; want the p99 and error-rate checks, passed", th)
	}
	// p95 and mean beside the other percentiles; outcomes by their API.md
	// names; the answers per route split by class; the phases marked on
	// the latency chart.
	if h := text("#routes th"); !strings.Contains(h, "mean") || !strings.Contains(h, "p95") || !strings.Contains(h, "p99.9") {
		t.Errorf("route latency columns %q; want mean, p95 and p99.9", h)
	}
	if o := text("#outcomes td"); !strings.Contains(o, "flash_reserve") || !strings.Contains(o, "|ok|") {
		t.Errorf("outcomes %q; want flash_reserve's, named", o)
	}
	if bars := text("#route-bars rect title"); !strings.Contains(bars, "success") {
		t.Errorf("route bars %q; want segments by class", bars)
	}
	if ph := text("#latency-chart g.phase text"); !strings.Contains(ph, "main") || !strings.Contains(ph, "drain") {
		t.Errorf("phase markers on the latency chart: %q; want main and drain among them", ph)
	}
	rep.Screenshot("loadtest-report")
	rep.NoConsoleErrors()
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
