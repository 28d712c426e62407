package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/surge-retail/surge/loadtest"
)

// The fairness scenario (group "fairness", issue 18): `surge serve --demo`
// with its defaults (the risk hook on, Pebble in a temporary directory, its
// own process on a free port) meets the load test's flash scenario with a
// fifth of the crowd bots of every kind, mixed equally. Each bot kind's
// per-account win rate is reported next to the humans' (its floor), the
// bots' share of all units reserved, and the humans refused by risk (the
// false positives).

// FairnessKinds are the bot kinds of the scenario, in the page's order.
var FairnessKinds = []string{"basic", "sprinter", "farm", "rotator", "replayer", "mimic"}

// FairnessOptions configures RunFairness.
type FairnessOptions struct {
	// Surge is the binary that serves (`surge serve --demo`). Required.
	Surge string
	// Users is the accounts of the crowd. Default 2000.
	Users int
	// Bots is the share of them that are bots. Default 0.2.
	Bots float64
	// Rate is arrivals (user flows) per second. Default 400.
	Rate float64
	// Duration is how long arrivals come. Default 10s.
	Duration time.Duration
	// PageThinkMin and PageThinkMax: the humans' (and mimics') time on
	// the store page before reserving. Default the load test's, 0.5–3 s.
	PageThinkMin, PageThinkMax time.Duration
	// Log receives progress lines. Default io.Discard.
	Log io.Writer
}

func (o FairnessOptions) withDefaults() FairnessOptions {
	if o.Users <= 0 {
		o.Users = 2000
	}
	if o.Bots <= 0 {
		o.Bots = 0.2
	}
	if o.Rate <= 0 {
		o.Rate = 400
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

// Fairness is what the fairness scenario measured.
type Fairness struct {
	Users    int
	Bots     float64
	Rate     float64
	Duration time.Duration
	// Elapsed is the whole load test (logins, sale, drain, checks).
	Elapsed time.Duration
	// Kinds: the humans first, then every bot kind, as the load test
	// reported them.
	Kinds []loadtest.KindReport
	// BotUnits and AllUnits: units reserved by the bots (all kinds) and by
	// everybody.
	BotUnits, AllUnits int64
	// HumanUsers and HumansRiskRefused: human accounts, and those
	// answered risk_denied at least once.
	HumanUsers, HumansRiskRefused int
	// InvariantsOK: the load test's end-of-run invariants held.
	InvariantsOK bool
	Violations   []string
}

// Summary keys of the fairness rows.
const (
	keyFairnessWinPrefix  = "fairness/win-ratio-"
	keyFairnessUnitShare  = "fairness/bot-unit-share"
	keyFairnessHumansDeny = "fairness/humans-risk-refused"
)

// fairnessTargets are issue 18's targets, one row a bot kind and two for
// the crowd: the ratio is the figure, a zero Surge side meets them (a bot
// kind that wins nothing is the aim).
func fairnessTargets() []summaryTarget {
	var out []summaryTarget
	for _, k := range FairnessKinds {
		out = append(out, summaryTarget{Key: keyFairnessWinPrefix + k, ZeroMeets: true, Max: 0.5,
			Label: fmt.Sprintf("fairness: `%s` bots' win rate vs the humans'", k)})
	}
	return append(out,
		summaryTarget{Key: keyFairnessUnitShare, ZeroMeets: true, Max: 0.10, Label: "fairness: units the bots reserved vs all units reserved"},
		summaryTarget{Key: keyFairnessHumansDeny, ZeroMeets: true, Max: 0.01, Label: "fairness: humans refused by risk vs all humans"},
	)
}

// rows are the fairness figures as summary rows (see fairnessTargets).
func (f *Fairness) rows() []Row {
	var human *loadtest.KindReport
	for i := range f.Kinds {
		if f.Kinds[i].Kind == "human" {
			human = &f.Kinds[i]
		}
	}
	var out []Row
	if human != nil {
		for _, k := range f.Kinds {
			if k.Kind == "human" {
				continue
			}
			out = append(out, Row{Key: keyFairnessWinPrefix + k.Kind, Scenario: "fairness: " + k.Kind + " win rate vs the humans'",
				Surge: 100 * k.WinRate, Floor: 100 * human.WinRate, Unit: "% won"})
		}
	}
	out = append(out,
		Row{Key: keyFairnessUnitShare, Scenario: "fairness: bots' units vs all units", Surge: float64(f.BotUnits), Floor: float64(f.AllUnits), Unit: "units"},
		Row{Key: keyFairnessHumansDeny, Scenario: "fairness: humans refused by risk", Surge: float64(f.HumansRiskRefused), Floor: float64(f.HumanUsers), Unit: "humans"},
	)
	return out
}

// fairnessEnv is the environment of the fair server: the parent's minus
// any SURGE_* setting, plus the admin token. Nothing else: the risk
// defaults are what is measured.
func fairnessEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SURGE_") {
			env = append(env, kv)
		}
	}
	return append(env, "SURGE_ADMIN_TOKEN="+externalAdminToken)
}

// RunFairness runs the fairness scenario.
func RunFairness(ctx context.Context, o FairnessOptions) (*Fairness, error) {
	o = o.withDefaults()
	if o.Surge == "" {
		return nil, fmt.Errorf("bench: fairness needs the surge binary")
	}
	logf := func(format string, args ...any) { fmt.Fprintf(o.Log, "bench: fairness: "+format+"\n", args...) }
	dir, err := os.MkdirTemp("", "surge-fairness-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	args := []string{"serve", "--demo", "--data", filepath.Join(dir, "data"), "--log-level", "warn"}
	srv, err := startProcess(ctx, o.Surge, args, filepath.Join(dir, "surge.log"), "--addr", fairnessEnv())
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	logf("surge serve --demo on %s; %d accounts, %.0f%% bots (%s), %.0f arrivals/s for %v",
		srv.addr, o.Users, 100*o.Bots, strings.Join(FairnessKinds, ","), o.Rate, o.Duration)
	t0 := time.Now()
	rep, err := loadtest.Run(ctx, loadtest.Config{
		Target: "http://" + srv.addr, AdminToken: externalAdminToken,
		Scenario: loadtest.ScenarioFlash, Setup: true,
		Users: o.Users, Rate: o.Rate, Duration: o.Duration,
		Bots: o.Bots, BotKinds: strings.Join(FairnessKinds, ","),
		PageThinkMin: o.PageThinkMin, PageThinkMax: o.PageThinkMax,
	})
	if err != nil {
		return nil, fmt.Errorf("fairness: load test: %w (server log: %s)", err, tail(srv.log))
	}
	f := &Fairness{Users: o.Users, Bots: o.Bots, Rate: o.Rate, Duration: o.Duration, Elapsed: time.Since(t0),
		Kinds: rep.Bots.Kinds, BotUnits: rep.Bots.BotUnits,
		HumanUsers: rep.Bots.HumanUsers, HumansRiskRefused: rep.Bots.HumansRiskRefused,
		InvariantsOK: rep.Invariants.OK}
	for _, k := range rep.Bots.Kinds {
		f.AllUnits += k.UnitsReserved
	}
	for _, v := range rep.Invariants.Violations {
		f.Violations = append(f.Violations, v.Law+" "+v.Subject+": "+v.Detail)
	}
	for _, r := range f.rows() {
		logf("%-35s %8.1f %-6s humans/all %8.1f   ratio %.2f", strings.TrimPrefix(r.Scenario, "fairness: "), r.Surge, r.Unit, r.Floor, r.Ratio())
	}
	logf("took %v; invariants ok %v", f.Elapsed.Round(time.Second), f.InvariantsOK)
	return f, nil
}

// markdown is the fairness section of BENCHMARKS.md: the setting and a
// line per kind.
func (f *Fairness) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "`surge serve --demo` with its defaults (risk on, Pebble in a temporary directory, its own process) against `surge loadtest --scenario flash --setup --users %d --rate %.0f --duration %v --bots %g --bot-kinds %s` (the load test's other settings at their defaults; it took %v in all). ",
		f.Users, f.Rate, f.Duration, f.Bots, strings.Join(FairnessKinds, ","), f.Elapsed.Round(time.Second))
	b.WriteString("A kind's win rate is the share of its accounts that reserved at least once; the summary judges its ratio to the humans'. The figures depend on the crowd's timing and move between runs.\n\n")
	b.WriteString("| kind | accounts | crowd share | reserving attempts | units reserved | unit share | win rate | vs humans | refused by risk | first reserve after the opening |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range f.Kinds {
		first := "—"
		if k.FirstAttemptMs != nil {
			first = fmt.Sprintf("%.0f ms", *k.FirstAttemptMs)
		}
		vs := fmt.Sprintf("%.2fx", k.WinRateRatio)
		if k.Kind == "human" {
			vs = "1 (floor)"
		}
		fmt.Fprintf(&b, "| %s | %d | %.1f%% | %d | %d | %.1f%% | %.1f%% | %s | %d (%.1f%%) | %s |\n", k.Kind, k.Accounts, 100*k.CrowdShare, k.Attempts,
			k.UnitsReserved, 100*k.UnitShare, 100*k.WinRate, vs, k.RiskRefused, 100*k.RiskRefusedShare, first)
	}
	b.WriteString("\n")
	share := 0.0
	if f.AllUnits > 0 {
		share = float64(f.BotUnits) / float64(f.AllUnits)
	}
	fmt.Fprintf(&b, "- Bots (all kinds) reserved %d of %d units (%.1f%%; target ≤ 10%%); humans refused by risk: %d of %d.\n", f.BotUnits, f.AllUnits, 100*share, f.HumansRiskRefused, f.HumanUsers)
	if f.InvariantsOK {
		b.WriteString("- The load test's invariants held (nothing oversold, limits kept, no stock stuck).\n\n")
	} else {
		fmt.Fprintf(&b, "- **The load test's invariants failed**: %s.\n\n", strings.Join(f.Violations, "; "))
	}
	return b.String()
}
