package loadtest

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Bounds on what the text and HTML summaries list; the JSON report has the
// rest.
const (
	violationsTextMax = 20
	violationsHTMLMax = 50
)

// WriteText writes a human summary: the run and its settings, latency per
// route, outcomes by name, bots against humans, the sale totals, every
// invariant check and threshold one per line, and the verdict.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "surge loadtest: scenario %s against %s\n", r.Scenario, r.Target)
	fmt.Fprintf(&b, "  main phase %.1fs: %d arrivals (intended %.1f/s), %d client drops, %d requests, %.1f req/s\n",
		r.ElapsedS, r.Arrivals, r.IntendedRate, r.Drops, r.Requests, r.Throughput)

	b.WriteString("\nsettings:\n")
	for _, kv := range r.settings() {
		fmt.Fprintf(&b, "  %-14s %s\n", kv[0], kv[1])
	}

	if len(r.Phases) > 0 {
		b.WriteString("\nphases (seconds from the start):\n")
		for _, p := range r.Phases {
			a := p.Answers
			fmt.Fprintf(&b, "  %-22s %7.1f - %7.1f  %d answers: %d success, %d refused, %d errors, %d other\n",
				p.Name, p.StartS, p.EndS, a.Total(), a.Success, a.Refused, a.Errors, a.Other)
		}
	}

	b.WriteString("\nlatency per route (ms from the intended send time):\n")
	fmt.Fprintf(&b, "  %-16s %8s %9s %9s %9s %9s %9s %9s %9s\n", "route", "count", "mean", "p50", "p90", "p95", "p99", "p99.9", "max")
	row := func(name string, s RouteStats) {
		fmt.Fprintf(&b, "  %-16s %8d %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, s.Count, s.MeanMs, s.P50Ms, s.P90Ms, s.P95Ms, s.P99Ms, s.P999Ms, s.MaxMs)
	}
	for _, name := range sortedKeys(r.Routes) {
		row(name, r.Routes[name])
	}
	row("(all)", r.All)

	b.WriteString("\noutcomes per route (success / refused 4xx / errors 5xx, timeouts, connection errors / other):\n")
	for _, name := range sortedKeys(r.Routes) {
		s := r.Routes[name]
		c := s.Classes
		fmt.Fprintf(&b, "  %-16s %d / %d / %d / %d:%s\n", name, c.Success, c.Refused, c.Errors, c.Other, outcomeList(s.Outcomes))
	}
	fmt.Fprintf(&b, "  %-16s%s\n", "(all)", outcomeList(r.Outcomes))
	m := r.MainAnswers
	fmt.Fprintf(&b, "  main phase and drain: %d answers, %d errors (5xx, timeouts, connection errors): error rate %.4f\n",
		m.Total(), m.Errors, r.ErrorRate)

	b.WriteString("\nbots vs humans:\n")
	r.writeBotsText(&b)

	b.WriteString("\nsale totals (final GET /admin/v1/stats):\n")
	if len(r.Sales)+len(r.Deals) == 0 {
		b.WriteString("  no sale or deal used\n")
	}
	for _, id := range sortedKeys(r.Sales) {
		p := r.Sales[id]
		fmt.Fprintf(&b, "  sale %s: supplied %d, sold %d, held %d, remaining %d\n", id, p.Supplied, p.Sold, p.Held, p.Remaining)
	}
	for _, id := range sortedKeys(r.Deals) {
		p := r.Deals[id]
		fmt.Fprintf(&b, "  deal %s: supplied %d, sold %d, held %d, remaining %d\n", id, p.Supplied, p.Sold, p.Held, p.Remaining)
	}
	if len(r.Reservations) > 0 {
		b.WriteString("  reservations (the run's own record):")
		for _, k := range sortedKeys(r.Reservations) {
			fmt.Fprintf(&b, " %s=%d", k, r.Reservations[k])
		}
		b.WriteString("\n")
	}
	if len(r.Teams) > 0 {
		b.WriteString("  teams:")
		for _, k := range sortedKeys(r.Teams) {
			fmt.Fprintf(&b, " %s=%d", k, r.Teams[k])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  orders lag at the end: %d\n", r.OrdersLag)
	if p := r.Payments; p != nil {
		fmt.Fprintf(&b, "  payments (%s at %s): %d prepays (%d bad parameters, %d unknown prepay_ids), %d notified: %d paid, %d late (refunded); %d closed, %d refused, %d resent\n",
			p.Provider, p.WeChatPayURL, p.Prepays, p.BadPayParams, p.UnknownPrepayIDs, p.Notified, p.Paid, p.Late, p.Closed, p.Refused, p.Resent)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}

	inv := r.Invariants
	if inv.OK {
		fmt.Fprintf(&b, "\ninvariants: OK (%d checks)\n", len(inv.Checked))
	} else {
		fmt.Fprintf(&b, "\ninvariants: FAILED, %d violation(s) in %d checks\n", inv.ViolationsTotal, len(inv.Checked))
	}
	for _, c := range inv.Checks {
		fmt.Fprintf(&b, "  %-6s %s: %s\n", verdict(c.OK), c.Name, c.Detail)
	}
	for _, sk := range inv.Skipped {
		fmt.Fprintf(&b, "  %-6s %s\n", "skip", sk)
	}
	if !inv.OK {
		vs := append([]Violation(nil), inv.Violations...)
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].Law < vs[j].Law })
		b.WriteString("  violations:\n")
		for i, v := range vs {
			if i == violationsTextMax {
				fmt.Fprintf(&b, "    ... %d more in the JSON report\n", inv.ViolationsTotal-violationsTextMax)
				break
			}
			fmt.Fprintf(&b, "    %s: %s: %s\n", v.Law, v.Subject, v.Detail)
		}
	}

	th := r.Thresholds
	if len(th.Checks) == 0 {
		b.WriteString("\nthresholds: none (--max-p99, --max-error-rate, --max-bot-win-ratio, --max-bot-unit-share, --max-human-risk-refused)\n")
	} else {
		if failed := r.failedThresholds(); len(failed) == 0 {
			b.WriteString("\nthresholds: OK\n")
		} else {
			fmt.Fprintf(&b, "\nthresholds: EXCEEDED (%d)\n", len(failed))
		}
		for _, c := range th.Checks {
			fmt.Fprintf(&b, "  %-6s %s: %s\n", verdict(c.OK), c.Name, c.Detail)
		}
	}
	fmt.Fprintf(&b, "\nexit code %d: %s\n", r.ExitCode(), r.Verdict())
	_, err := io.WriteString(w, b.String())
	return err
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAILED"
}

// Verdict says why ExitCode is what it is: the invariant violations and the
// thresholds exceeded, or that all went well.
func (r *Report) Verdict() string {
	var why []string
	if !r.Invariants.OK {
		why = append(why, fmt.Sprintf("%d invariant violation(s)", r.Invariants.ViolationsTotal))
	}
	if f := r.failedThresholds(); len(f) > 0 {
		why = append(why, "threshold(s) exceeded: "+strings.Join(f, "; "))
	}
	if len(why) == 0 {
		return "every invariant held, no threshold exceeded"
	}
	return strings.Join(why, "; ")
}

// outcomeList is " sold_out (40900)=3 ok (0)=2", largest first.
func outcomeList(m map[string]int64) string {
	var b strings.Builder
	for _, k := range byCount(m) {
		fmt.Fprintf(&b, " %s=%d", outcomeLabel(k), m[k])
	}
	return b.String()
}

// byCount returns m's keys, largest count first, then by key.
func byCount(m map[string]int64) []string {
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	return keys
}

func (r *Report) writeBotsText(b *strings.Builder) {
	bt := r.Bots
	if bt.BotUsers == 0 {
		fmt.Fprintf(b, "  no bots (%d human accounts, %d successful reservations); humans refused by risk: %d (%s)\n",
			bt.HumanUsers, bt.HumanReservations, bt.HumansRiskRefused, pct(bt.HumansRiskRefusedShare))
		return
	}
	fmt.Fprintf(b, "  crowd: %d bot and %d human accounts: bots are %.1f%% of accounts and made %.1f%% of reserving attempts (%d of %d)\n",
		bt.BotUsers, bt.HumanUsers, 100*bt.BotUserShare, 100*bt.BotAttemptShare, bt.BotAttempts, bt.BotAttempts+bt.HumanAttempts)
	fmt.Fprintf(b, "  successful reservations: bots %d (%.1f%%), humans %d (%.1f%%)\n",
		bt.BotReservations, 100*bt.BotShare, bt.HumanReservations, 100*bt.HumanShare)
	fmt.Fprintf(b, "  win rate per account: bots %.1f%% (%d of %d), humans %.1f%% (%d of %d): ratio %.2fx\n",
		100*bt.BotWinRate, bt.BotWinners, bt.BotUsers, 100*bt.HumanWinRate, bt.HumanWinners, bt.HumanUsers, bt.WinRateRatio)
	fmt.Fprintf(b, "  reservations per account: bots %.3f, humans %.3f: advantage %.2fx\n", bt.BotPerUser, bt.HumanPerUser, bt.Advantage)
	fmt.Fprintf(b, "  bots' attempts:  %s\n", strings.TrimSpace(outcomeList(bt.BotOutcomes)))
	fmt.Fprintf(b, "  humans' attempts: %s\n", strings.TrimSpace(outcomeList(bt.HumanOutcomes)))
	r.writeKindsText(b)
}

// settings lists the run's settings as label, value pairs.
func (r *Report) settings() [][2]string {
	c := r.Config
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	orNone := func(s string) string {
		if s == "" {
			return "none"
		}
		return s
	}
	ramp := "none"
	if c.RampS > 0 {
		ramp = fmt.Sprintf("from %g/s over %gs", c.RampFrom, c.RampS)
	}
	spike := "none"
	if c.SpikeForS > 0 {
		spike = fmt.Sprintf("x%g at %gs for %gs", c.SpikeFactor, c.SpikeAtS, c.SpikeForS)
	}
	hold, limit := "unknown", "unknown"
	if c.HoldS > 0 {
		hold = fmt.Sprintf("%ds", c.HoldS)
	}
	if c.PerUserLimit > 0 {
		limit = fmt.Sprintf("%d", c.PerUserLimit)
	}
	wx := "off (POST .../pay)"
	if c.WeChatPay {
		wx = "on, fake WeChat Pay at " + c.WeChatPayAddr
	}
	thresholds := "none"
	var th []string
	if r.Thresholds.MaxP99Ms > 0 {
		th = append(th, fmt.Sprintf("max p99 %g ms per route", r.Thresholds.MaxP99Ms))
	}
	if v := r.Thresholds.MaxErrorRate; v != nil {
		th = append(th, fmt.Sprintf("max error rate %g", *v))
	}
	if v := r.Thresholds.MaxBotWinRatio; v != nil {
		th = append(th, fmt.Sprintf("max bot win ratio %gx per kind", *v))
	}
	if v := r.Thresholds.MaxBotUnitShare; v != nil {
		th = append(th, fmt.Sprintf("max bot unit share %g", *v))
	}
	if v := r.Thresholds.MaxHumanRiskRefused; v != nil {
		th = append(th, fmt.Sprintf("max humans refused by risk %g", *v))
	}
	if len(th) > 0 {
		thresholds = strings.Join(th, ", ")
	}
	bots := fmt.Sprintf("%g of users (%d bots, %d humans); retries bot %d, human %d; bot weight %g",
		c.Bots, r.Bots.BotUsers, r.Bots.HumanUsers, c.BotRetries, c.HumanRetries, c.BotWeight)
	if c.BotKindsSpec != "" {
		bots += "; kinds " + c.BotKindsSpec
	}
	out := [][2]string{
		{"target", r.Target},
		{"scenario", r.Scenario},
		{"started", r.StartedAt.UTC().Format("2006-01-02 15:04:05Z")},
		{"users", fmt.Sprintf("%d", c.Users)},
		{"rate", fmt.Sprintf("%g/s (login rate %g/s)", c.Rate, c.LoginRate)},
		{"ramp", ramp},
		{"spike", spike},
		{"duration", fmt.Sprintf("%gs (max %d arrivals)", c.DurationS, c.MaxRequests)},
		{"bots", bots},
	}
	for _, k := range c.BotKinds {
		out = append(out, [2]string{"bot kind", k})
	}
	out = append(out,
		[2]string{"setup", onOff(c.Setup)},
		[2]string{"sale", orNone(c.SaleID)},
		[2]string{"deal", orNone(c.DealID)},
		[2]string{"hold", hold},
		[2]string{"per-user limit", limit},
		[2]string{"buyers", fmt.Sprintf("pay %g, cancel %g, the rest let the hold expire; think up to %gs", c.PayShare, c.CancelShare, c.ThinkMaxS)},
		[2]string{"humans", fmt.Sprintf("a device each, households of 1-%d on an address; load the store page and think %gs-%gs before reserving, carrying the page token when the server gives one",
			householdMax, c.PageThinkMinS, c.PageThinkMaxS)},
		[2]string{"seed", fmt.Sprintf("%d (each arrival's choices: seed and arrival number)", c.Seed)},
		[2]string{"WeChat Pay", wx},
		[2]string{"client", fmt.Sprintf("inflight %d, conns %d, timeout %gs", c.InFlightMax, c.Conns, c.TimeoutS)},
		[2]string{"thresholds", thresholds},
	)
	return out
}
