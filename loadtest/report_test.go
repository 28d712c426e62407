package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"regexp"
	"strings"
	"testing"
	"time"
)

// syntheticReport builds a report from a recording made by hand: 20
// logins, then a main phase of 100 flash reserves (10 ok, 60 sold out, 20
// throttled, 5 unavailable, 3 timeouts, 2 connection errors) and 10 pays,
// a drain with 2 requests cut short, then the end-of-run phases.
func syntheticReport(t *testing.T) *Report {
	t.Helper()
	start := time.Date(2025, 11, 11, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	rec := newRecorder(start, 10*time.Second)
	rec.mark(phaseSetup, start)
	rec.mark(phaseLogins, at(100))
	for i := range 20 {
		rec.record("session", at(100+i), at(102+i), "0")
	}
	rec.mark(phaseWait, at(200))
	rec.mark(phaseMain, at(1000))
	n := 0
	add := func(route, outcome string, count int, latMs func(i int) int) {
		for i := range count {
			sent := at(1000 + n)
			rec.record(route, sent, sent.Add(time.Duration(latMs(i))*time.Millisecond), outcome)
			n++
		}
	}
	add("flash_reserve", "0", 10, func(i int) int { return 5 + i })
	add("flash_reserve", "40900", 60, func(i int) int { return 2 + i%3 })
	add("flash_reserve", "42900", 20, func(int) int { return 1 })
	add("flash_reserve", "50300", 5, func(int) int { return 40 })
	add("flash_reserve", outcomeTimeout, 3, func(int) int { return 2000 })
	add("flash_reserve", outcomeConnError, 2, func(int) int { return 1 })
	add("pay", "0", 10, func(int) int { return 3 })
	rec.mark(phaseDrain, at(3000))
	rec.record("pay", at(3000), at(3100), outcomeCanceled)
	rec.record("pay", at(3000), at(3100), outcomeCanceled)
	rec.drop()
	rec.mark(phaseOrders, at(4000))
	rec.mark(phaseSettle, at(4500))
	rec.finish(at(9000))

	routes, outcomes, timeline, all := rec.snapshot()
	bots := botShare(5, 15, 60, 40, 4, 6).withWinners(3, 6)
	bots.BotOutcomes = map[string]int64{"0": 4, "40900": 40, "42900": 16}
	bots.HumanOutcomes = map[string]int64{"0": 6, "40900": 20, "42900": 4, "50300": 5, outcomeTimeout: 3, outcomeConnError: 2}
	rep := &Report{
		Scenario: ScenarioFlash, Target: "http://127.0.0.1:9", StartedAt: start,
		ElapsedS: 2.1, Arrivals: 101, Drops: 1, Requests: 132, Throughput: 50, IntendedRate: 50,
		Routes: routes, Outcomes: outcomes, Timeline: timeline, All: all,
		Phases: rec.phaseSnapshot(at(9000)),
		Bots:   bots,
		Invariants: Invariants{OK: true, Violations: []Violation{},
			Checked: []string{"conservation and no oversell, 1 sale(s) on the server", "per-user limit 1, sale s1"},
			Checks: []Check{
				{Name: "conservation and no oversell, 1 sale(s) on the server", OK: true, Detail: "held + sold + remaining == supplied"},
				{Name: "per-user limit 1, sale s1", OK: true, Detail: "no buyer paid for more than 1 (10 buyers)"},
			},
			Skipped: []string{"orders of 3 paid reservations beyond the first 2"}},
		Sales:        map[string]PoolStats{"s1": {Supplied: 10, Held: 0, Sold: 8, Remaining: 2}},
		Deals:        map[string]PoolStats{"d1": {Supplied: 6, Held: 1, Sold: 3, Remaining: 2}},
		Reservations: map[string]int64{"flash_paid": 8, "flash_released": 2},
		Notes:        []string{"20 of 20 users logged in"},
		Config: RunConfig{Users: 20, Rate: 50, RampFrom: 5, RampS: 1, SpikeAtS: 1, SpikeForS: 0.5, SpikeFactor: 4,
			DurationS: 2, Bots: 0.25, Setup: true, SaleID: "s1", DealID: "d1", Seed: 42, InFlightMax: 4096, Conns: 256,
			TimeoutS: 2, PayShare: 0.8, CancelShare: 0.2, LoginRate: 500, ThinkMaxS: 0.3, MaxRequests: 1000,
			BotWeight: 3, BotRetries: 5, HumanRetries: 2, BotKinds: botKinds([kindsN]int{kindBasic: 5}, Config{BotRetries: 5, BotWeight: 3}),
			HoldS: 7, PerUserLimit: 1, WeChatPay: true, WeChatPayAddr: "127.0.0.1:8090"},
	}
	rep.finish(0, nil)
	return rep
}

func mustContain(t *testing.T, what, doc string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(doc, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, doc)
		}
	}
}

func TestReportMainPhaseErrorRate(t *testing.T) {
	rep := syntheticReport(t)
	// main: 100 reserves + 10 pays; drain: 2 canceled. Errors: 5 + 3 + 2.
	m := rep.MainAnswers
	if m.Total() != 112 || m.Errors != 10 || m.Success != 20 || m.Refused != 80 || m.Other != 2 {
		t.Errorf("MainAnswers = %+v; want 112 answers: 20 success, 80 refused, 10 errors, 2 other", m)
	}
	if want := 10.0 / 112; rep.ErrorRate != want {
		t.Errorf("ErrorRate = %v; want %v", rep.ErrorRate, want)
	}
	fr := rep.Routes["flash_reserve"]
	if fr.Count != 100 || fr.Classes != (ClassCounts{Success: 10, Refused: 80, Errors: 10}) {
		t.Errorf("flash_reserve = %d answers, classes %+v", fr.Count, fr.Classes)
	}
	if !(fr.P50Ms <= fr.P90Ms && fr.P90Ms <= fr.P95Ms && fr.P95Ms <= fr.P99Ms && fr.P99Ms <= fr.P999Ms && fr.P999Ms <= fr.MaxMs) || fr.P95Ms == 0 {
		t.Errorf("flash_reserve quantiles out of order: %+v", fr)
	}
	if fr.MeanMs <= 0 {
		t.Errorf("flash_reserve mean = %v", fr.MeanMs)
	}
	var names []string
	for _, p := range rep.Phases {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "setup,logins,waiting for the start,main,drain,order check,settle" {
		t.Errorf("phases = %s", got)
	}
	if rep.ExitCode() != 0 {
		t.Errorf("ExitCode = %d without thresholds and with every invariant held", rep.ExitCode())
	}
}

func TestReportText(t *testing.T) {
	rep := syntheticReport(t)
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "text", buf.String(),
		// settings
		"target         http://127.0.0.1:9", "scenario       flash", "users          20", "rate           50/s (login rate 500/s)",
		"ramp           from 5/s over 1s", "spike          x4 at 1s for 0.5s", "duration       2s",
		"bots           0.25 of users (5 bots, 15 humans)", "lt-bot-farm-device", "203.0.113.7",
		"hold           7s", "per-user limit 1", "seed           42", "WeChat Pay     on, fake WeChat Pay at 127.0.0.1:8090",
		// latency with mean and p95
		"mean", "p95", "flash_reserve", "session",
		// outcomes by name, next to the code
		"sold_out (40900)=60", "throttled (42900)=20", "unavailable (50300)=5", "ok (0)=10", "timeout=3", "conn_error=2", "canceled=2", "client_drop=1",
		"flash_reserve    10 / 80 / 10 / 0:",
		"112 answers, 10 errors (5xx, timeouts, connection errors): error rate 0.0893",
		// bots vs humans
		"bots are 25.0% of accounts and made 60.0% of reserving attempts (60 of 100)",
		"successful reservations: bots 4 (40.0%), humans 6 (60.0%)",
		"win rate per account: bots 60.0% (3 of 5), humans 40.0% (6 of 15): ratio 1.50x",
		"advantage 2.00x",
		// sale totals
		"sale s1: supplied 10, sold 8, held 0, remaining 2", "deal d1: supplied 6, sold 3, held 1, remaining 2",
		// invariants, one per line
		"invariants: OK (2 checks)",
		"  ok     conservation and no oversell, 1 sale(s) on the server: held + sold + remaining == supplied\n",
		"  ok     per-user limit 1, sale s1: no buyer paid for more than 1 (10 buyers)\n",
		"  skip   orders of 3 paid reservations beyond the first 2\n",
		// phases, thresholds, verdict
		"waiting for the start", "order check", "settle",
		"thresholds: none", "exit code 0: every invariant held, no threshold exceeded")
}

func TestReportJSONFields(t *testing.T) {
	rep := syntheticReport(t)
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Routes map[string]struct {
			Count                                             int64
			MeanMs, P50Ms, P90Ms, P95Ms, P99Ms, P999Ms, MaxMs *float64
			Outcomes                                          map[string]int64
			Classes                                           *ClassCounts
		}
		Outcomes     map[string]int64
		OutcomeNames map[string]string `json:"outcome_names"`
		Bots         map[string]any
		Sales        map[string]PoolStats
		Deals        map[string]PoolStats
		Invariants   struct {
			OK     bool
			Checks []Check
		}
		Phases      []Phase
		MainAnswers *ClassCounts `json:"main_answers"`
		ErrorRate   *float64     `json:"error_rate"`
		Thresholds  *Thresholds
		Config      map[string]any
	}
	// encoding/json matches field names case-insensitively, not across
	// underscores: name the snake_case ones.
	raw := buf.String()
	for _, k := range []string{`"mean_ms"`, `"p50_ms"`, `"p90_ms"`, `"p95_ms"`, `"p99_ms"`, `"p999_ms"`, `"max_ms"`, `"classes"`} {
		mustContain(t, "JSON", raw, k)
	}
	raw = strings.NewReplacer(`"mean_ms"`, `"MeanMs"`, `"p50_ms"`, `"P50Ms"`, `"p90_ms"`, `"P90Ms"`, `"p95_ms"`, `"P95Ms"`,
		`"p99_ms"`, `"P99Ms"`, `"p999_ms"`, `"P999Ms"`, `"max_ms"`, `"MaxMs"`).Replace(raw)
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	fr := doc.Routes["flash_reserve"]
	if fr.Count != 100 || fr.MeanMs == nil || fr.P95Ms == nil || *fr.P95Ms == 0 || fr.P999Ms == nil || fr.Classes == nil || fr.Classes.Errors != 10 {
		t.Errorf("routes.flash_reserve = %+v", fr)
	}
	for code, name := range map[string]string{"0": "ok", "40900": "sold_out", "42900": "throttled", "50300": "unavailable",
		"timeout": "timeout", "conn_error": "conn_error", "canceled": "canceled", "client_drop": "client_drop"} {
		if doc.OutcomeNames[code] != name {
			t.Errorf("outcome_names[%q] = %q; want %q", code, doc.OutcomeNames[code], name)
		}
	}
	for _, k := range []string{"bot_user_share", "bot_attempt_share", "bot_reservation_share", "human_reservation_share",
		"bot_win_rate", "human_win_rate", "win_rate_ratio", "advantage", "bot_outcomes", "human_outcomes", "bot_winners", "human_winners"} {
		if _, ok := doc.Bots[k]; !ok {
			t.Errorf("bots.%s missing: %v", k, doc.Bots)
		}
	}
	if v, _ := doc.Bots["win_rate_ratio"].(float64); v < 1.5-1e-9 || v > 1.5+1e-9 {
		t.Errorf("bots.win_rate_ratio = %v; want 1.5", doc.Bots["win_rate_ratio"])
	}
	if doc.Sales["s1"].Sold != 8 || doc.Deals["d1"].Held != 1 {
		t.Errorf("sales %+v deals %+v", doc.Sales, doc.Deals)
	}
	if len(doc.Invariants.Checks) != 2 || !doc.Invariants.Checks[0].OK || doc.Invariants.Checks[0].Detail == "" {
		t.Errorf("invariants.checks = %+v", doc.Invariants.Checks)
	}
	if len(doc.Phases) != 7 || doc.Phases[3].Name != "main" || doc.Phases[3].Answers.Total() != 110 {
		t.Errorf("phases = %+v", doc.Phases)
	}
	if doc.MainAnswers == nil || doc.MainAnswers.Errors != 10 || doc.ErrorRate == nil || doc.Thresholds == nil {
		t.Errorf("main_answers %+v error_rate %v thresholds %v", doc.MainAnswers, doc.ErrorRate, doc.Thresholds)
	}
	for _, k := range []string{"users", "rate", "ramp_from", "ramp_s", "spike_at_s", "spike_for_s", "spike_factor", "duration_s",
		"bots", "bot_kinds", "hold_s", "per_user_limit", "seed", "wechatpay", "wechatpay_addr"} {
		if _, ok := doc.Config[k]; !ok {
			t.Errorf("config.%s missing: %v", k, doc.Config)
		}
	}
}

// selfContained matches what would make a page fetch something: an
// external src or href, a script, a stylesheet link, a CSS url() or
// @import.
var externalRef = regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?\s*(https?:)?//|<script|<link|url\(|@import`)

func TestReportHTML(t *testing.T) {
	rep := syntheticReport(t)
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, id := range []string{"summary", "verdict", "settings", "latency-chart", "requests-chart", "routes", "route-bars",
		"outcomes", "bots", "sale-totals", "invariants", "thresholds", "phases", "notes"} {
		mustContain(t, "HTML", page, `id="`+id+`"`)
	}
	section := func(id string) string {
		i := strings.Index(page, `<section id="`+id+`"`)
		if i < 0 {
			t.Fatalf("no section %s", id)
		}
		j := strings.Index(page[i:], "</section>")
		return page[i : i+j]
	}
	mustContain(t, "settings", section("settings"), "http://127.0.0.1:9", "per-user limit", "hold", "7s", "seed", "42",
		"WeChat Pay", "on, fake WeChat Pay", "ramp", "spike", "bot kind", "lt-bot-farm-device")
	mustContain(t, "routes", section("routes"), "<th>mean</th>", "<th>p95</th>", "<th>p99.9</th>", "flash_reserve")
	mustContain(t, "outcomes", section("outcomes"), "sold_out", "40900", "throttled", "42900", "unavailable", "timeout", "conn_error", "client_drop")
	mustContain(t, "bots", section("bots"), "win rate per account", "60.0% (3 won)", "40.0% (6 won)", "1.50x", "crowd share", "25.0%")
	mustContain(t, "sale totals", section("sale-totals"), "<td>sale s1</td><td>10</td><td>8</td><td>0</td><td>2</td>", "deal d1")
	inv := section("invariants")
	mustContain(t, "invariants", inv, "per-user limit 1, sale s1", "no buyer paid for more than 1", "orders of 3 paid reservations")
	if n := strings.Count(inv, `<tr class="check">`); n != 2 {
		t.Errorf("invariants: %d check rows; want 2", n)
	}
	chart := section("latency-chart")
	for _, p := range []string{"logins", "waiting for the start", "main", "drain", "order check", "settle"} {
		mustContain(t, "latency chart", chart, ">"+p+"</text>")
	}
	mustContain(t, "route bars", section("route-bars"), "refused (4xx)", "error (5xx, timeouts, connection errors)", "flash_reserve error")
	if m := externalRef.FindString(page); m != "" {
		t.Errorf("the page is not self-contained: %q", m)
	}
}

func TestReportHTMLEscapes(t *testing.T) {
	rep := syntheticReport(t)
	rep.Target = `http://x/"><script>alert(1)</script>`
	rep.Notes = []string{"<img src=//evil>"}
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if strings.Contains(page, "<script") || strings.Contains(page, "<img") {
		t.Errorf("unescaped input in the page:\n%s", page)
	}
	mustContain(t, "HTML", page, "&lt;img src=//evil&gt;", "&lt;script&gt;")
}

func TestThresholdsExitCode(t *testing.T) {
	f := func(name string, maxP99 time.Duration, maxErrorRate *float64, wantCode int, wantFailed ...string) {
		t.Helper()
		rep := syntheticReport(t)
		rep.finish(maxP99, maxErrorRate)
		if got := rep.ExitCode(); got != wantCode {
			t.Errorf("%s: ExitCode = %d; want %d (%v)", name, got, wantCode, rep.Thresholds.Checks)
		}
		failed := strings.Join(rep.failedThresholds(), "\n")
		for _, w := range wantFailed {
			if !strings.Contains(failed, w) {
				t.Errorf("%s: failed thresholds %q do not name %q", name, failed, w)
			}
		}
		if len(wantFailed) == 0 && failed != "" {
			t.Errorf("%s: failed thresholds %q; want none", name, failed)
		}
		var text, page bytes.Buffer
		_ = rep.WriteText(&text)
		_ = rep.WriteHTML(&page)
		for _, w := range wantFailed {
			mustContain(t, name+": text", text.String(), "thresholds: EXCEEDED", w)
			mustContain(t, name+": HTML", page.String(), html.EscapeString(w))
		}
	}
	rate := func(v float64) *float64 { return &v }
	f("none", 0, nil, 0)
	f("generous", time.Minute, rate(0.5), 0)
	// flash_reserve's p99 is about 2s (3 timeouts in 100); pay's and
	// session's are a few ms.
	f("p99 100ms", 100*time.Millisecond, nil, 1, "p99 of flash_reserve")
	f("p99 1us", time.Microsecond, nil, 1, "p99 of flash_reserve", "p99 of pay", "p99 of session")
	f("error rate 5%", 0, rate(0.05), 1, "error rate of the main phase <= 0.05")
	f("error rate 0", 0, rate(0), 1, "error rate of the main phase <= 0")
	f("error rate 9%", 0, rate(0.09), 0)

	// An invariant failure alone is exit 1 too; thresholds do not hide it.
	rep := syntheticReport(t)
	rep.Invariants.OK = false
	rep.Invariants.ViolationsTotal = 1
	rep.finish(time.Minute, rate(1))
	if rep.ExitCode() != 1 || !strings.Contains(rep.Verdict(), "1 invariant violation") {
		t.Errorf("invariant failed: ExitCode %d, verdict %q", rep.ExitCode(), rep.Verdict())
	}
}

func TestOutcomeNamesAndClasses(t *testing.T) {
	f := func(outcome, name string, class int) {
		t.Helper()
		if got := OutcomeName(outcome); got != name {
			t.Errorf("OutcomeName(%q) = %q; want %q", outcome, got, name)
		}
		if got := outcomeClass(outcome); got != class {
			t.Errorf("outcomeClass(%q) = %d; want %d", outcome, got, class)
		}
	}
	f("0", "ok", classSuccess)
	f("40000", "bad_request", classRefused)
	f("40100", "unauthorized", classRefused)
	f("40300", "risk_denied", classRefused)
	f("40301", "forbidden", classRefused)
	f("40302", "not_registered", classRefused)
	f("40400", "not_found", classRefused)
	f("40900", "sold_out", classRefused)
	f("40901", "limit_exceeded", classRefused)
	f("40902", "not_active", classRefused)
	f("40903", "bad_state", classRefused)
	f("40904", "idempotency_conflict", classRefused)
	f("41300", "too_large", classRefused)
	f("42900", "throttled", classRefused)
	f("50000", "internal", classError)
	f("50300", "unavailable", classError)
	f("40999", "unknown_code", classRefused)
	f("304", "not_modified", classSuccess)
	f("204", "notified", classSuccess)
	f("timeout", "timeout", classError)
	f("conn_error", "conn_error", classError)
	f("canceled", "canceled", classOther)
	f("client_drop", "client_drop", classOther)
	f("http_502", "http_502", classError)
	f("http_404", "http_404", classRefused)
	f("http_302", "http_302", classOther)
	f("order_closed", "order_closed", classRefused)
	f("bad_pay_params", "bad_pay_params", classOther)
	f("unknown_prepay_id", "unknown_prepay_id", classOther)
	if got := outcomeLabel("40900"); got != "sold_out (40900)" {
		t.Errorf("outcomeLabel(40900) = %q", got)
	}
	if got := outcomeLabel("timeout"); got != "timeout" {
		t.Errorf("outcomeLabel(timeout) = %q", got)
	}
}

// TestLongRunStaysSmall: ten hours of answers, far beyond the span the
// recorder planned for, keep the timeline and the HTML bounded, and no
// answer is lost from the timeline when slices merge.
func TestLongRunStaysSmall(t *testing.T) {
	start := time.Now()
	rec := newRecorder(start, 10*time.Second)
	rec.mark(phaseMain, start)
	const n = 20_000
	for i := range n {
		done := start.Add(time.Duration(i) * 10 * time.Hour / n)
		rec.record("flash_reserve", done.Add(-3*time.Millisecond), done, "0")
	}
	rec.finish(start.Add(10 * time.Hour))
	routes, outcomes, timeline, all := rec.snapshot()
	if len(timeline) > timelineBucketsMax {
		t.Errorf("timeline has %d points; want at most %d", len(timeline), timelineBucketsMax)
	}
	var sum int64
	for _, p := range timeline {
		sum += p.Count
	}
	if sum != n {
		t.Errorf("timeline counts %d answers; want %d", sum, n)
	}
	if last := timeline[len(timeline)-1].AtS; last < 9*3600 {
		t.Errorf("timeline ends at %vs; want about 36000s", last)
	}
	rep := &Report{Routes: routes, Outcomes: outcomes, Timeline: timeline, All: all, Phases: rec.phaseSnapshot(time.Now())}
	rep.finish(0, nil)
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > 150_000 {
		t.Errorf("HTML of a 10-hour run is %d bytes; want at most 150000", buf.Len())
	}

	// A timeline from elsewhere is downsampled for the page.
	long := make([]Point, 5000)
	for i := range long {
		long[i] = Point{AtS: float64(i), Count: 2, Errors: 1, P50Ms: 1, P99Ms: float64(i % 7), MaxMs: 9}
	}
	d := downsample(long, htmlPointsMax)
	sum = 0
	for _, p := range d {
		sum += p.Count
	}
	if len(d) > htmlPointsMax || sum != 10000 || d[0].P99Ms != 6 || d[0].P50Ms != 1 {
		t.Errorf("downsample: %d points, %d answers, first %+v", len(d), sum, d[0])
	}
}

// TestRunReportSections: a real run fills what the report shows.
func TestRunReportSections(t *testing.T) {
	f := newFake()
	srv := f.start(t)
	cfg := flashConfig(srv.URL)
	rate := 1.0
	cfg.MaxP99, cfg.MaxErrorRate = time.Minute, &rate
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.ExitCode() != 0 {
		t.Fatalf("exit %d: %s", rep.ExitCode(), rep.Verdict())
	}
	var names []string
	for _, p := range rep.Phases {
		names = append(names, p.Name)
	}
	got := strings.Join(names, ",")
	for _, want := range []string{"logins", "waiting for the start", "main", "drain", "order check", "settle"} {
		if !strings.Contains(got, want) {
			t.Errorf("phases %s: %q missing", got, want)
		}
	}
	if rep.MainAnswers.Total() == 0 || len(rep.Thresholds.Checks) == 0 || !rep.Thresholds.OK {
		t.Errorf("main answers %+v, thresholds %+v", rep.MainAnswers, rep.Thresholds)
	}
	if len(rep.Invariants.Checks) != len(rep.Invariants.Checked) || len(rep.Invariants.Checks) == 0 {
		t.Errorf("checks %d, checked %d", len(rep.Invariants.Checks), len(rep.Invariants.Checked))
	}
	for _, c := range rep.Invariants.Checks {
		if !c.OK || c.Detail == "" {
			t.Errorf("check %+v", c)
		}
	}
	b := rep.Bots
	var botN, humanN int64
	for _, v := range b.BotOutcomes {
		botN += v
	}
	for _, v := range b.HumanOutcomes {
		humanN += v
	}
	if botN != b.BotAttempts || humanN != b.HumanAttempts || botN == 0 || humanN == 0 {
		t.Errorf("bots' outcomes %v (%d attempts), humans' %v (%d)", b.BotOutcomes, b.BotAttempts, b.HumanOutcomes, b.HumanAttempts)
	}
	if b.BotWinners+b.HumanWinners == 0 || b.BotWinners > b.BotUsers || b.HumanWinners > b.HumanUsers {
		t.Errorf("winners: %+v", b)
	}
	c := rep.Config
	if c.PerUserLimit != 1 || c.HoldS != 5 || len(c.BotKinds) == 0 || c.WeChatPay {
		t.Errorf("config %+v", c)
	}
}
