package loadtest

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// htmlPointsMax bounds the points the HTML plots: a longer timeline is
// downsampled by merging neighbouring slices, so that the page stays
// small (tens of kilobytes) however long the run. The recorder already
// keeps at most timelineBucketsMax slices; this guards a Report built by
// other means.
const htmlPointsMax = timelineBucketsMax

// Colours of the outcome classes and the phases.
var (
	classColors = [classN]string{"#2ca02c", "#ff7f0e", "#d62728", "#999"}
	classNames  = [classN]string{"success", "refused (4xx)", "error (5xx, timeouts, connection errors)", "other (canceled, payment protocol faults)"}
	phaseFills  = []string{"#f4f4f4", "#e8f0fa"}
)

// WriteHTML writes a self-contained page (inline CSS and SVG, no scripts,
// no external assets). Each section has an id for tools and browser tests:
// summary, settings, latency-chart (p50, p99 and max over time, log scale,
// with the phases marked), requests-chart, routes (latency per route:
// count, mean, p50, p90, p95, p99, p99.9, max), route-bars (answers per
// route by class), outcomes (by route, each outcome named), bots (bots
// against humans), sale-totals, invariants (one check per row), thresholds,
// phases and notes.
func (r *Report) WriteHTML(w io.Writer) error {
	var b strings.Builder
	esc := html.EscapeString
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>surge loadtest: " + esc(r.Scenario) + "</title>\n")
	b.WriteString("<style>body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}" +
		"table{border-collapse:collapse;margin:4px 0 12px}td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #eee}" +
		"th:first-child,td:first-child{text-align:left}td.l,th.l{text-align:left}.bad{color:#b00;font-weight:bold}.ok{color:#070}" +
		"section{margin-bottom:20px}h2{font-size:1.2em;margin:18px 0 6px}.key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}</style></head><body>\n")

	// Summary and verdict.
	fmt.Fprintf(&b, "<h1>surge loadtest: %s</h1>\n<section id=\"summary\">\n<p>target %s, started %s; main phase %.1fs: %d arrivals (intended %.1f/s), %d client drops, %d requests, %.1f req/s</p>\n",
		esc(r.Scenario), esc(r.Target), r.StartedAt.UTC().Format("2006-01-02 15:04:05Z"), r.ElapsedS, r.Arrivals, r.IntendedRate, r.Drops, r.Requests, r.Throughput)
	cls := "ok"
	if r.ExitCode() != 0 {
		cls = "bad"
	}
	fmt.Fprintf(&b, "<p class=\"%s\" id=\"verdict\">exit code %d: %s</p>\n</section>\n", cls, r.ExitCode(), esc(r.Verdict()))

	// Settings.
	b.WriteString("<section id=\"settings\"><h2>Settings</h2>\n<table>\n")
	for _, kv := range r.settings() {
		fmt.Fprintf(&b, "<tr><th class=\"l\">%s</th><td class=\"l\">%s</td></tr>\n", esc(kv[0]), esc(kv[1]))
	}
	b.WriteString("</table></section>\n")

	// Charts.
	pts := downsample(r.Timeline, htmlPointsMax)
	span := chartSpan(pts, r.Phases)
	b.WriteString("<section id=\"latency-chart\"><h2>Latency from the intended send time, over the run</h2>\n")
	latencySVG(&b, pts, r.Phases, span)
	b.WriteString("</section>\n<section id=\"requests-chart\"><h2>Answers per slice</h2>\n")
	countSVG(&b, pts, span)
	b.WriteString("</section>\n")

	// Latency per route.
	b.WriteString("<section id=\"routes\"><h2>Latency per route (ms)</h2>\n<table><tr><th>route</th><th>count</th><th>mean</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n")
	row := func(name string, s RouteStats) {
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td></tr>\n",
			esc(name), s.Count, s.MeanMs, s.P50Ms, s.P90Ms, s.P95Ms, s.P99Ms, s.P999Ms, s.MaxMs)
	}
	for _, name := range sortedKeys(r.Routes) {
		row(name, r.Routes[name])
	}
	row("(all)", r.All)
	b.WriteString("</table></section>\n")

	// Bars per route by class.
	b.WriteString("<section id=\"route-bars\"><h2>Answers per route</h2>\n")
	routeBarsSVG(&b, r.Routes)
	m := r.MainAnswers
	fmt.Fprintf(&b, "<p>main phase and drain: %d answers, %d errors (5xx, timeouts, connection errors): error rate %.4f</p>\n</section>\n",
		m.Total(), m.Errors, r.ErrorRate)

	// Outcomes by name.
	b.WriteString("<section id=\"outcomes\"><h2>Outcomes per route</h2>\n<table><tr><th>route</th><th class=\"l\">outcome</th><th class=\"l\">code</th><th class=\"l\">class</th><th>count</th></tr>\n")
	outcomeRows := func(route string, om map[string]int64) {
		for _, k := range byCount(om) {
			fmt.Fprintf(&b, "<tr><td>%s</td><td class=\"l\">%s</td><td class=\"l\">%s</td><td class=\"l\">%s</td><td>%d</td></tr>\n",
				esc(route), esc(OutcomeName(k)), esc(k), esc(className(outcomeClass(k))), om[k])
		}
	}
	for _, name := range sortedKeys(r.Routes) {
		outcomeRows(name, r.Routes[name].Outcomes)
	}
	if n := r.Outcomes[outcomeDrop]; n > 0 {
		outcomeRows("(arrivals)", map[string]int64{outcomeDrop: n})
	}
	b.WriteString("</table></section>\n")

	r.writeBotsHTML(&b)

	// Sale totals.
	b.WriteString("<section id=\"sale-totals\"><h2>Sale totals (final GET /admin/v1/stats)</h2>\n")
	if len(r.Sales)+len(r.Deals) == 0 {
		b.WriteString("<p>no sale or deal used</p>\n")
	} else {
		b.WriteString("<table><tr><th>pool</th><th>supplied</th><th>sold</th><th>held</th><th>remaining</th></tr>\n")
		pool := func(kind string, pm map[string]PoolStats) {
			for _, id := range sortedKeys(pm) {
				p := pm[id]
				fmt.Fprintf(&b, "<tr><td>%s %s</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td></tr>\n", kind, esc(id), p.Supplied, p.Sold, p.Held, p.Remaining)
			}
		}
		pool("sale", r.Sales)
		pool("deal", r.Deals)
		b.WriteString("</table>\n")
	}
	if len(r.Reservations) > 0 {
		b.WriteString("<p>reservations (the run's own record):")
		for _, k := range sortedKeys(r.Reservations) {
			fmt.Fprintf(&b, " %s=%d", esc(k), r.Reservations[k])
		}
		b.WriteString("</p>\n")
	}
	if len(r.Teams) > 0 {
		b.WriteString("<p>teams:")
		for _, k := range sortedKeys(r.Teams) {
			fmt.Fprintf(&b, " %s=%d", esc(k), r.Teams[k])
		}
		b.WriteString("</p>\n")
	}
	fmt.Fprintf(&b, "<p>orders lag at the end: %d</p>\n", r.OrdersLag)
	if p := r.Payments; p != nil {
		fmt.Fprintf(&b, "<p>payments (%s at %s): %d prepays (%d bad parameters, %d unknown prepay_ids), %d notified: %d paid, %d late (refunded); %d closed, %d refused, %d resent</p>\n",
			esc(p.Provider), esc(p.WeChatPayURL), p.Prepays, p.BadPayParams, p.UnknownPrepayIDs, p.Notified, p.Paid, p.Late, p.Closed, p.Refused, p.Resent)
	}
	b.WriteString("</section>\n")

	// Invariants, one check per row.
	inv := r.Invariants
	b.WriteString("<section id=\"invariants\"><h2>Invariants</h2>\n")
	if inv.OK {
		fmt.Fprintf(&b, "<p class=\"ok\">invariants: OK (%d checks)</p>\n", len(inv.Checked))
	} else {
		fmt.Fprintf(&b, "<p class=\"bad\">invariants: FAILED (%d violations)</p>\n", inv.ViolationsTotal)
	}
	checkTable(&b, inv.Checks)
	if len(inv.Skipped) > 0 {
		b.WriteString("<p>skipped:</p>\n<ul>\n")
		for _, s := range inv.Skipped {
			fmt.Fprintf(&b, "<li>%s</li>\n", esc(s))
		}
		b.WriteString("</ul>\n")
	}
	if len(inv.Violations) > 0 {
		b.WriteString("<p>violations:</p>\n<ul>\n")
		for i, v := range inv.Violations {
			if i == violationsHTMLMax {
				fmt.Fprintf(&b, "<li>... %d more in the JSON report</li>\n", inv.ViolationsTotal-violationsHTMLMax)
				break
			}
			fmt.Fprintf(&b, "<li>%s: %s: %s</li>\n", esc(v.Law), esc(v.Subject), esc(v.Detail))
		}
		b.WriteString("</ul>\n")
	}
	b.WriteString("</section>\n")

	// Thresholds.
	b.WriteString("<section id=\"thresholds\"><h2>Thresholds</h2>\n")
	if len(r.Thresholds.Checks) == 0 {
		b.WriteString("<p>none (--max-p99, --max-error-rate)</p>\n")
	} else {
		checkTable(&b, r.Thresholds.Checks)
	}
	b.WriteString("</section>\n")

	// Phases.
	b.WriteString("<section id=\"phases\"><h2>Phases</h2>\n<table><tr><th>phase</th><th>from s</th><th>to s</th><th>answers</th><th>success</th><th>refused</th><th>errors</th><th>other</th></tr>\n")
	for _, p := range r.Phases {
		a := p.Answers
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%.1f</td><td>%.1f</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td></tr>\n",
			esc(p.Name), p.StartS, p.EndS, a.Total(), a.Success, a.Refused, a.Errors, a.Other)
	}
	b.WriteString("</table></section>\n")

	if len(r.Notes) > 0 {
		b.WriteString("<section id=\"notes\"><h2>Notes</h2>\n<ul>\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "<li>%s</li>\n", esc(n))
		}
		b.WriteString("</ul></section>\n")
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func className(c int) string { return strings.SplitN(classNames[c], " ", 2)[0] }

func checkTable(b *strings.Builder, cs []Check) {
	b.WriteString("<table><tr><th class=\"l\">check</th><th class=\"l\">verdict</th><th class=\"l\">detail</th></tr>\n")
	for _, c := range cs {
		cls, v := "ok", "ok"
		if !c.OK {
			cls, v = "bad", "FAILED"
		}
		fmt.Fprintf(b, "<tr class=\"check\"><td>%s</td><td class=\"l %s\">%s</td><td class=\"l\">%s</td></tr>\n",
			html.EscapeString(c.Name), cls, v, html.EscapeString(c.Detail))
	}
	b.WriteString("</table>\n")
}

func (r *Report) writeBotsHTML(b *strings.Builder) {
	bt := r.Bots
	b.WriteString("<section id=\"bots\"><h2>Bots vs humans</h2>\n")
	if bt.BotUsers == 0 {
		fmt.Fprintf(b, "<p>no bots (%d human accounts, %d successful reservations); humans refused by risk: %d (%s)</p>\n</section>\n",
			bt.HumanUsers, bt.HumanReservations, bt.HumansRiskRefused, pct(bt.HumansRiskRefusedShare))
		return
	}
	b.WriteString("<table><tr><th></th><th>bots</th><th>humans</th><th>bots / humans</th></tr>\n")
	rows := [][4]string{
		{"accounts (crowd share)", fmt.Sprintf("%d (%s)", bt.BotUsers, pct(bt.BotUserShare)), fmt.Sprintf("%d (%s)", bt.HumanUsers, pct(1-bt.BotUserShare)), ""},
		{"reserving attempts", fmt.Sprintf("%d (%s)", bt.BotAttempts, pct(bt.BotAttemptShare)), fmt.Sprintf("%d", bt.HumanAttempts), ""},
		{"successful reservations (share)", fmt.Sprintf("%d (%s)", bt.BotReservations, pct(bt.BotShare)), fmt.Sprintf("%d (%s)", bt.HumanReservations, pct(bt.HumanShare)), ""},
		{"win rate per account", fmt.Sprintf("%s (%d won)", pct(bt.BotWinRate), bt.BotWinners), fmt.Sprintf("%s (%d won)", pct(bt.HumanWinRate), bt.HumanWinners), fmt.Sprintf("%.2fx", bt.WinRateRatio)},
		{"reservations per account", fmt.Sprintf("%.3f", bt.BotPerUser), fmt.Sprintf("%.3f", bt.HumanPerUser), fmt.Sprintf("%.2fx", bt.Advantage)},
	}
	for _, rw := range rows {
		fmt.Fprintf(b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", rw[0], rw[1], rw[2], rw[3])
	}
	b.WriteString("</table>\n")
	r.writeKindsHTML(b)
	b.WriteString("<table><tr><th class=\"l\">reserving attempts by outcome</th><th class=\"l\">code</th><th>bots</th><th>humans</th></tr>\n")
	all := map[string]int64{}
	for k, v := range bt.BotOutcomes {
		all[k] += v
	}
	for k, v := range bt.HumanOutcomes {
		all[k] += v
	}
	for _, k := range byCount(all) {
		fmt.Fprintf(b, "<tr><td>%s</td><td class=\"l\">%s</td><td>%d</td><td>%d</td></tr>\n",
			html.EscapeString(OutcomeName(k)), html.EscapeString(k), bt.BotOutcomes[k], bt.HumanOutcomes[k])
	}
	b.WriteString("</table></section>\n")
}

// downsample merges neighbouring points until at most n remain: counts
// add up, p99 and max are the largest of the merged ones, p50 their
// count-weighted mean (an approximation, marked in the chart's title).
func downsample(pts []Point, n int) []Point {
	if len(pts) <= n || n < 1 {
		return pts
	}
	k := (len(pts) + n - 1) / n
	out := make([]Point, 0, n)
	for i := 0; i < len(pts); i += k {
		m := Point{AtS: pts[i].AtS}
		var w float64
		for _, p := range pts[i:min(i+k, len(pts))] {
			m.Count += p.Count
			m.Errors += p.Errors
			m.P99Ms = math.Max(m.P99Ms, p.P99Ms)
			m.MaxMs = math.Max(m.MaxMs, p.MaxMs)
			m.P50Ms += p.P50Ms * float64(p.Count)
			w += float64(p.Count)
		}
		if w > 0 {
			m.P50Ms /= w
		}
		out = append(out, m)
	}
	return out
}

const (
	plotW, plotH       = 900.0, 340.0
	plotLeft, plotBot  = 60.0, 30.0
	plotTop, plotRight = 44.0, 20.0
)

// chartSpan is the seconds the charts cover: the timeline and the phases.
func chartSpan(pts []Point, phases []Phase) float64 {
	span := 1.0
	if n := len(pts); n > 0 {
		step := 1.0
		if n > 1 {
			step = pts[1].AtS - pts[0].AtS
		}
		span = math.Max(span, pts[n-1].AtS+step)
	}
	for _, p := range phases {
		span = math.Max(span, p.EndS)
	}
	return span
}

func plotXs(s, span float64) float64 {
	return plotLeft + s/span*(plotW-plotLeft-plotRight)
}

func latencySVG(b *strings.Builder, pts []Point, phases []Phase, span float64) {
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\">\n", plotW, plotH, plotW, plotH)
	// Phases: alternating bands, a line at each start and its name
	// (staggered on three rows so that short phases stay readable).
	for i, p := range phases {
		x0, x1 := plotXs(p.StartS, span), plotXs(p.EndS, span)
		fmt.Fprintf(b, "<g class=\"phase\"><rect x=\"%.1f\" y=\"%g\" width=\"%.1f\" height=\"%g\" fill=\"%s\"/>"+
			"<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#888\" stroke-dasharray=\"3,3\"/>"+
			"<text x=\"%.1f\" y=\"%d\" font-size=\"10\" fill=\"#555\">%s</text><title>%s: %.1fs to %.1fs</title></g>\n",
			x0, plotTop, math.Max(x1-x0, 0.5), plotH-plotTop-plotBot, phaseFills[i%2],
			x0, plotTop-12*float64(i%3)-4, x0, plotH-plotBot,
			x0+2, 12+12*(i%3), html.EscapeString(p.Name), html.EscapeString(p.Name), p.StartS, p.EndS)
	}
	lo, hi := 0.1, 1.0
	for _, p := range pts {
		hi = math.Max(hi, p.MaxMs)
	}
	decLo, decHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	y := func(ms float64) float64 {
		v := math.Log10(math.Max(ms, lo))
		return plotTop + (decHi-v)/(decHi-decLo)*(plotH-plotTop-plotBot)
	}
	for d := decLo; d <= decHi; d++ {
		yy := y(math.Pow(10, d))
		fmt.Fprintf(b, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"4\" y=\"%.1f\" font-size=\"11\">%g ms</text>\n",
			plotLeft, yy, plotW-plotRight, yy, yy+4, math.Pow(10, d))
	}
	axisX(b, span, plotH)
	for _, s := range []struct {
		name, color string
		get         func(Point) float64
	}{
		{"max", "#bbb", func(p Point) float64 { return p.MaxMs }},
		{"p99", "#d62728", func(p Point) float64 { return p.P99Ms }},
		{"p50", "#1f77b4", func(p Point) float64 { return p.P50Ms }},
	} {
		// One polyline per run of non-empty slices: no line across a
		// pause (login, waiting for the start).
		var pl strings.Builder
		flush := func() {
			if pl.Len() > 0 {
				fmt.Fprintf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"%s\"><title>%s</title></polyline>\n", s.color, pl.String(), s.name)
				pl.Reset()
			}
		}
		for _, p := range pts {
			if p.Count == 0 {
				flush()
				continue
			}
			fmt.Fprintf(&pl, "%.1f,%.1f ", plotXs(p.AtS, span), y(s.get(p)))
		}
		flush()
	}
	fmt.Fprintf(b, "<text x=\"%g\" y=\"%g\" font-size=\"12\" fill=\"#1f77b4\">p50</text><text x=\"%g\" y=\"%g\" font-size=\"12\" fill=\"#d62728\">p99</text><text x=\"%g\" y=\"%g\" font-size=\"12\" fill=\"#999\">max</text>\n",
		plotW-150, plotTop+14, plotW-110, plotTop+14, plotW-70, plotTop+14)
	b.WriteString("</svg>\n")
}

func countSVG(b *strings.Builder, pts []Point, span float64) {
	h := 160.0
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\">\n", plotW, h, plotW, h)
	var top int64 = 1
	for _, p := range pts {
		top = max(top, p.Count)
	}
	step := 1.0
	if len(pts) > 1 {
		step = pts[1].AtS - pts[0].AtS
	}
	bw := math.Max(1, plotXs(step, span)-plotLeft-1)
	for _, p := range pts {
		if p.Count == 0 {
			continue
		}
		x := plotXs(p.AtS, span)
		hh := float64(p.Count) / float64(top) * (h - 40)
		he := float64(p.Errors) / float64(top) * (h - 40)
		fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#9ecae1\"><title>%.0fs: %d answers, %d shed or failed</title></rect>\n",
			x, h-20-hh, bw, hh, p.AtS, p.Count, p.Errors)
		if he > 0 {
			fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#d62728\"/>\n", x, h-20-he, bw, he)
		}
	}
	axisX(b, span, h)
	fmt.Fprintf(b, "<text x=\"4\" y=\"16\" font-size=\"11\">%d</text><text x=\"4\" y=\"%g\" font-size=\"11\">0</text>\n", top, h-20)
	b.WriteString("</svg>\n<p class=\"key\"><span style=\"background:#9ecae1\"></span>answers<span style=\"background:#d62728\"></span>shed (429, 503) or failed</p>\n")
}

// routeBarsSVG draws one horizontal bar per route, split by class.
func routeBarsSVG(b *strings.Builder, routes map[string]RouteStats) {
	names := sortedKeys(routes)
	rowH, labelW, barW := 22.0, 120.0, plotW-140.0-120.0
	h := rowH*float64(len(names)) + 10
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\">\n", plotW, h, plotW, h)
	var top int64 = 1
	for _, n := range names {
		top = max(top, routes[n].Count)
	}
	for i, n := range names {
		c := routes[n].Classes
		yy := 5 + rowH*float64(i)
		fmt.Fprintf(b, "<text x=\"0\" y=\"%.1f\" font-size=\"12\">%s</text>\n", yy+14, html.EscapeString(n))
		x := labelW
		for k, v := range [classN]int64{c.Success, c.Refused, c.Errors, c.Other} {
			if v == 0 {
				continue
			}
			wd := float64(v) / float64(top) * barW
			fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%g\" fill=\"%s\"><title>%s %s: %d</title></rect>\n",
				x, yy, math.Max(wd, 1), rowH-6, classColors[k], html.EscapeString(n), classNames[k], v)
			x += wd
		}
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\">%d / %d / %d / %d</text>\n", x+6, yy+14, c.Success, c.Refused, c.Errors, c.Other)
	}
	b.WriteString("</svg>\n<p class=\"key\">")
	for k := range classN {
		fmt.Fprintf(b, "<span style=\"background:%s\"></span>%s", classColors[k], classNames[k])
	}
	b.WriteString("</p>\n")
}

func axisX(b *strings.Builder, span, h float64) {
	step := math.Max(1, niceStep(span/10))
	for s := 0.0; s <= span; s += step {
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%g\" font-size=\"11\" text-anchor=\"middle\">%gs</text>\n", plotXs(s, span), h-6, s)
	}
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
