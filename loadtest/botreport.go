package loadtest

import (
	"fmt"
	"html"
	"strings"
	"time"
)

// outcomeRiskDenied is API.md's risk_denied: the risk hook said no.
const outcomeRiskDenied = "40300"

// KindReport is how one kind of user did: humans, or one bot kind.
type KindReport struct {
	Kind string `json:"kind"` // human, basic, sprinter, farm, rotator, replayer, mimic
	// Accounts of this kind and their share of all accounts (the crowd).
	Accounts   int     `json:"accounts"`
	CrowdShare float64 `json:"crowd_share"`
	// Attempts: reserving calls (retries included) and their share of all.
	Attempts     int64   `json:"attempts"`
	AttemptShare float64 `json:"attempt_share"`
	// UnitsReserved and UnitsPaid: units of the successful reservations
	// (each counted once), and of those the server said were paid; their
	// shares of all units reserved and paid in the run (the win share).
	Reservations  int64   `json:"reservations"`
	UnitsReserved int64   `json:"units_reserved"`
	UnitsPaid     int64   `json:"units_paid"`
	UnitShare     float64 `json:"unit_share"`
	PaidShare     float64 `json:"paid_share"`
	// Winners: accounts with at least one successful reservation; WinRate
	// is Winners / Accounts, and WinRateRatio its ratio to the humans'
	// (1 for the humans; 0 when the humans won nothing).
	Winners      int     `json:"winners"`
	WinRate      float64 `json:"win_rate"`
	WinRateRatio float64 `json:"win_rate_ratio"`
	// RiskRefused: accounts answered risk_denied at least once, and their
	// share of the kind's accounts (for the humans: the false positives).
	RiskRefused      int     `json:"risk_refused"`
	RiskRefusedShare float64 `json:"risk_refused_share"`
	// FirstAttemptMs: when the kind's first reserving call was sent, in ms
	// after the opening (the main phase's start); absent when it made none.
	FirstAttemptMs *float64 `json:"first_attempt_ms,omitempty"`
	// Outcomes counts the attempts by outcome.
	Outcomes map[string]int64 `json:"outcomes"`
}

// kindReports computes the per-kind figures from the ledger, humans first,
// then every bot kind present. Called with l.mu held.
func (l *ledger) kindReports(accounts [kindsN]int, opening time.Time) []KindReport {
	var reserved, paid, res [kindsN]int64
	var winners [kindsN]int
	won := make(map[*user]bool)
	for _, rec := range l.res {
		k := rec.u.kind
		res[k]++
		reserved[k] += rec.qty
		if rec.paidOK || rec.state == resPaid {
			paid[k] += rec.qty
		}
		if !won[rec.u] {
			won[rec.u] = true
			winners[k]++
		}
	}
	var allAccounts, allReserved, allPaid, allAttempts int64
	for k := range accounts {
		allAccounts += int64(accounts[k])
		allReserved += reserved[k]
		allPaid += paid[k]
		allAttempts += l.kindAttempts[k]
	}
	share := func(n, of int64) float64 {
		if of == 0 {
			return 0
		}
		return float64(n) / float64(of)
	}
	humanWinRate := share(int64(winners[kindHuman]), int64(accounts[kindHuman]))
	out := []KindReport{}
	for k := kindHuman; k < kindsN; k++ {
		if accounts[k] == 0 {
			continue
		}
		kr := KindReport{
			Kind: k.String(), Accounts: accounts[k], CrowdShare: share(int64(accounts[k]), allAccounts),
			Attempts: l.kindAttempts[k], AttemptShare: share(l.kindAttempts[k], allAttempts),
			Reservations: res[k], UnitsReserved: reserved[k], UnitsPaid: paid[k],
			UnitShare: share(reserved[k], allReserved), PaidShare: share(paid[k], allPaid),
			Winners: winners[k], WinRate: share(int64(winners[k]), int64(accounts[k])),
			RiskRefused: l.kindRiskRefused[k], RiskRefusedShare: share(int64(l.kindRiskRefused[k]), int64(accounts[k])),
			Outcomes: copyCounts(l.kindOutcomes[k]),
		}
		if humanWinRate > 0 {
			kr.WinRateRatio = kr.WinRate / humanWinRate
		}
		if f := l.kindFirstSent[k]; !f.IsZero() && !opening.IsZero() {
			ms := float64(f.Sub(opening)) / float64(time.Millisecond)
			kr.FirstAttemptMs = &ms
		}
		out = append(out, kr)
	}
	return out
}

// withKinds adds the per-kind figures and what follows from them: the
// bots' (all kinds') share of the units, and the humans refused by risk.
func (b BotReport) withKinds(kinds []KindReport) BotReport {
	b.Kinds = kinds
	var botUnits, botPaid, allUnits, allPaid int64
	for _, k := range kinds {
		allUnits += k.UnitsReserved
		allPaid += k.UnitsPaid
		if k.Kind == kindHuman.String() {
			b.HumansRiskRefused, b.HumansRiskRefusedShare = k.RiskRefused, k.RiskRefusedShare
			continue
		}
		botUnits += k.UnitsReserved
		botPaid += k.UnitsPaid
	}
	b.BotUnits, b.BotUnitsPaid = botUnits, botPaid
	if allUnits > 0 {
		b.BotUnitShare = float64(botUnits) / float64(allUnits)
	}
	if allPaid > 0 {
		b.BotPaidShare = float64(botPaid) / float64(allPaid)
	}
	return b
}

// applyBotThresholds judges the bots' figures against the limits (nil:
// none) and adds the verdicts to r.Thresholds.
func (r *Report) applyBotThresholds(maxWinRatio, maxUnitShare, maxHumanRefused *float64) {
	th := &r.Thresholds
	bt := r.Bots
	var human *KindReport
	for i := range bt.Kinds {
		if bt.Kinds[i].Kind == kindHuman.String() {
			human = &bt.Kinds[i]
		}
	}
	if v := maxWinRatio; v != nil {
		th.MaxBotWinRatio = ptr(*v)
		n := 0
		for _, k := range bt.Kinds {
			if k.Kind == kindHuman.String() {
				continue
			}
			n++
			c := Check{Name: fmt.Sprintf("win rate of bot kind %s <= %gx the humans'", k.Kind, *v)}
			switch {
			case human != nil && human.WinRate > 0:
				c.OK = k.WinRateRatio <= *v
				c.Detail = fmt.Sprintf("%s of %d accounts won, humans %s: %.2fx (limit %gx)", pct(k.WinRate), k.Accounts, pct(human.WinRate), k.WinRateRatio, *v)
			default:
				c.OK = k.Winners == 0
				c.Detail = fmt.Sprintf("the humans won nothing; %d of %d %s accounts won", k.Winners, k.Accounts, k.Kind)
			}
			th.Checks = append(th.Checks, c)
		}
		if n == 0 {
			th.Checks = append(th.Checks, Check{Name: fmt.Sprintf("win rate of every bot kind <= %gx the humans'", *v), OK: true, Detail: "no bots in the run"})
		}
	}
	if v := maxUnitShare; v != nil {
		th.MaxBotUnitShare = ptr(*v)
		th.Checks = append(th.Checks, Check{
			Name: fmt.Sprintf("bots' share of the units reserved <= %g", *v), OK: bt.BotUnitShare <= *v,
			Detail: fmt.Sprintf("bots reserved %d units: %s of all, with %s of the accounts (limit %g)", bt.BotUnits, pct(bt.BotUnitShare), pct(bt.BotUserShare), *v),
		})
	}
	if v := maxHumanRefused; v != nil {
		th.MaxHumanRiskRefused = ptr(*v)
		th.Checks = append(th.Checks, Check{
			Name: fmt.Sprintf("humans refused by risk <= %g of humans", *v), OK: bt.HumansRiskRefusedShare <= *v,
			Detail: fmt.Sprintf("%d of %d human accounts answered risk_denied at least once: %s (limit %g)", bt.HumansRiskRefused, bt.HumanUsers, pct(bt.HumansRiskRefusedShare), *v),
		})
	}
	th.OK = true
	for _, c := range th.Checks {
		if !c.OK {
			th.OK = false
		}
	}
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

func ptr[T any](v T) *T { return &v }

// firstMs shows a KindReport's FirstAttemptMs.
func firstMs(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%+.0f ms", *v)
}

func ratio(k KindReport) string {
	if k.Kind == kindHuman.String() {
		return "1.00x"
	}
	return fmt.Sprintf("%.2fx", k.WinRateRatio)
}

// writeKindsText writes the per-kind table of the text summary.
func (r *Report) writeKindsText(b *strings.Builder) {
	bt := r.Bots
	if len(bt.Kinds) == 0 {
		return
	}
	fmt.Fprintf(b, "  by kind (crowd share: accounts; win share: units reserved / paid; win rate: accounts that won; first: first reserve after the opening):\n")
	fmt.Fprintf(b, "    %-9s %8s %7s %9s %7s %7s %7s %7s %12s %7s %12s %9s\n",
		"kind", "accounts", "crowd", "attempts", "units", "share", "paid", "share", "win rate", "ratio", "risk_denied", "first")
	for _, k := range bt.Kinds {
		fmt.Fprintf(b, "    %-9s %8d %7s %9d %7d %7s %7d %7s %12s %7s %12s %9s\n",
			k.Kind, k.Accounts, pct(k.CrowdShare), k.Attempts, k.UnitsReserved, pct(k.UnitShare), k.UnitsPaid, pct(k.PaidShare),
			fmt.Sprintf("%s (%d)", pct(k.WinRate), k.Winners), ratio(k), fmt.Sprintf("%d (%s)", k.RiskRefused, pct(k.RiskRefusedShare)), firstMs(k.FirstAttemptMs))
	}
	fmt.Fprintf(b, "  all bot kinds: %s of the accounts took %s of the units reserved (%d) and %s of the units paid (%d)\n",
		pct(bt.BotUserShare), pct(bt.BotUnitShare), bt.BotUnits, pct(bt.BotPaidShare), bt.BotUnitsPaid)
	fmt.Fprintf(b, "  humans refused by risk (risk_denied at least once: false positives): %d of %d (%s)\n",
		bt.HumansRiskRefused, bt.HumanUsers, pct(bt.HumansRiskRefusedShare))
}

// writeKindsHTML writes the per-kind table of the HTML page.
func (r *Report) writeKindsHTML(b *strings.Builder) {
	bt := r.Bots
	if len(bt.Kinds) == 0 {
		return
	}
	b.WriteString("<table id=\"bot-kinds\"><tr><th class=\"l\">kind</th><th>accounts (crowd share)</th><th>attempts</th>" +
		"<th>units reserved (win share)</th><th>units paid (share)</th><th>win rate per account</th><th>ratio to humans</th>" +
		"<th>refused by risk</th><th>first reserve after the opening</th></tr>\n")
	for _, k := range bt.Kinds {
		fmt.Fprintf(b, "<tr class=\"kind\"><td class=\"l\">%s</td><td>%d (%s)</td><td>%d (%s)</td><td>%d (%s)</td><td>%d (%s)</td><td>%s (%d won)</td><td>%s</td><td>%d (%s)</td><td>%s</td></tr>\n",
			html.EscapeString(k.Kind), k.Accounts, pct(k.CrowdShare), k.Attempts, pct(k.AttemptShare), k.UnitsReserved, pct(k.UnitShare),
			k.UnitsPaid, pct(k.PaidShare), pct(k.WinRate), k.Winners, ratio(k), k.RiskRefused, pct(k.RiskRefusedShare), html.EscapeString(firstMs(k.FirstAttemptMs)))
	}
	fmt.Fprintf(b, "</table>\n<p>all bot kinds: %s of the accounts took %s of the units reserved (%d) and %s of the units paid (%d); "+
		"humans refused by risk (false positives): %d of %d (%s)</p>\n",
		pct(bt.BotUserShare), pct(bt.BotUnitShare), bt.BotUnits, pct(bt.BotPaidShare), bt.BotUnitsPaid,
		bt.HumansRiskRefused, bt.HumanUsers, pct(bt.HumansRiskRefusedShare))
}
