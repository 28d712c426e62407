package loadtest

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// WriteHTML writes a self-contained page (inline SVG, no scripts, no
// external assets) plotting latency over time (p50, p99, max; log scale)
// and requests per slice.
func (r *Report) WriteHTML(w io.Writer) error {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>surge loadtest</title>\n")
	b.WriteString("<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}th:first-child,td:first-child{text-align:left}.bad{color:#b00}.ok{color:#070}</style></head><body>\n")
	fmt.Fprintf(&b, "<h1>surge loadtest: %s</h1>\n<p>target %s, started %s, %d arrivals, %d client drops, %d requests, %.1f req/s</p>\n",
		html.EscapeString(r.Scenario), html.EscapeString(r.Target), r.StartedAt.UTC().Format("2006-01-02 15:04:05Z"),
		r.Arrivals, r.Drops, r.Requests, r.Throughput)
	if r.Invariants.OK {
		fmt.Fprintf(&b, "<p class=\"ok\">invariants: OK (%d checks)</p>\n", len(r.Invariants.Checked))
	} else {
		fmt.Fprintf(&b, "<p class=\"bad\">invariants: FAILED (%d violations)</p>\n<ul>\n", r.Invariants.ViolationsTotal)
		for i, v := range r.Invariants.Violations {
			if i == 50 {
				break
			}
			fmt.Fprintf(&b, "<li>%s: %s: %s</li>\n", html.EscapeString(v.Law), html.EscapeString(v.Subject), html.EscapeString(v.Detail))
		}
		b.WriteString("</ul>\n")
	}
	b.WriteString("<h2>Latency from intended send time</h2>\n")
	latencySVG(&b, r.Timeline)
	b.WriteString("<h2>Requests per slice</h2>\n")
	countSVG(&b, r.Timeline)
	b.WriteString("<h2>Routes</h2>\n<table><tr><th>route</th><th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>\n")
	for _, name := range sortedKeys(r.Routes) {
		s := r.Routes[name]
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td></tr>\n",
			html.EscapeString(name), s.Count, s.P50Ms, s.P90Ms, s.P99Ms, s.P999Ms, s.MaxMs)
	}
	b.WriteString("</table>\n<h2>Outcomes</h2>\n<p>")
	for _, k := range sortedKeys(r.Outcomes) {
		fmt.Fprintf(&b, "%s=%d ", html.EscapeString(k), r.Outcomes[k])
	}
	b.WriteString("</p>\n</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

const (
	plotW, plotH       = 900.0, 320.0
	plotLeft, plotBot  = 60.0, 30.0
	plotTop, plotRight = 10.0, 20.0
)

func plotX(i, n int) float64 {
	if n <= 1 {
		return plotLeft
	}
	return plotLeft + float64(i)/float64(n-1)*(plotW-plotLeft-plotRight)
}

func latencySVG(b *strings.Builder, pts []Point) {
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\">\n", plotW, plotH, plotW, plotH)
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
	axisX(b, pts)
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
		for i, p := range pts {
			if p.Count == 0 {
				flush()
				continue
			}
			fmt.Fprintf(&pl, "%.1f,%.1f ", plotX(i, len(pts)), y(s.get(p)))
		}
		flush()
	}
	fmt.Fprintf(b, "<text x=\"%g\" y=\"20\" font-size=\"12\" fill=\"#1f77b4\">p50</text><text x=\"%g\" y=\"20\" font-size=\"12\" fill=\"#d62728\">p99</text><text x=\"%g\" y=\"20\" font-size=\"12\" fill=\"#999\">max</text>\n",
		plotW-150, plotW-110, plotW-70)
	b.WriteString("</svg>\n")
}

func countSVG(b *strings.Builder, pts []Point) {
	h := 160.0
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\">\n", plotW, h, plotW, h)
	var top int64 = 1
	for _, p := range pts {
		top = max(top, p.Count)
	}
	bw := math.Max(1, (plotW-plotLeft-plotRight)/math.Max(1, float64(len(pts)))-1)
	for i, p := range pts {
		x := plotLeft + float64(i)*(plotW-plotLeft-plotRight)/math.Max(1, float64(len(pts)))
		hh := float64(p.Count) / float64(top) * (h - 40)
		he := float64(p.Errors) / float64(top) * (h - 40)
		fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#9ecae1\"><title>%.0fs: %d requests, %d errors</title></rect>\n",
			x, h-20-hh, bw, hh, p.AtS, p.Count, p.Errors)
		if he > 0 {
			fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#d62728\"/>\n", x, h-20-he, bw, he)
		}
	}
	fmt.Fprintf(b, "<text x=\"4\" y=\"16\" font-size=\"11\">%d</text><text x=\"4\" y=\"%g\" font-size=\"11\">0</text>\n", top, h-20)
	b.WriteString("</svg>\n")
}

func axisX(b *strings.Builder, pts []Point) {
	n := len(pts)
	step := max(1, n/10)
	for i := 0; i < n; i += step {
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%g\" font-size=\"11\" text-anchor=\"middle\">%gs</text>\n", plotX(i, n), plotH-10, pts[i].AtS)
	}
}
