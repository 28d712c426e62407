package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/loadtest"
)

// TestFairnessSection: the page says "not run" without the scenario; with
// it, the summary judges each bot kind's ratio to the humans' (a kind that
// won nothing meets the target, one above 0.5x does not), the bots' units
// and the humans refused, and the section has a line per kind.
func TestFairnessSection(t *testing.T) {
	md := (&Results{}).Markdown()
	if !strings.Contains(md, "## Fairness: every bot kind against `surge serve --demo` defaults\n\nnot run") {
		t.Errorf("page without the scenario lacks its \"not run\"")
	}
	if !strings.Contains(md, "| fairness: `mimic` bots' win rate vs the humans'") {
		t.Errorf("the summary lacks the mimic's row when not run")
	}
	f := &Fairness{Users: 1000, Bots: 0.2, Rate: 400, Duration: 10 * time.Second, Elapsed: 25 * time.Second,
		Kinds: []loadtest.KindReport{
			{Kind: "human", Accounts: 800, CrowdShare: 0.8, Attempts: 1200, UnitsReserved: 380, UnitShare: 0.95, Winners: 400, WinRate: 0.5, WinRateRatio: 1, RiskRefused: 2, RiskRefusedShare: 0.0025},
			{Kind: "sprinter", Accounts: 100, CrowdShare: 0.1, Attempts: 100, RiskRefused: 100, RiskRefusedShare: 1},
			{Kind: "mimic", Accounts: 100, CrowdShare: 0.1, Attempts: 300, UnitsReserved: 20, UnitShare: 0.05, Winners: 20, WinRate: 0.2, WinRateRatio: 0.4},
		},
		BotUnits: 20, AllUnits: 400, HumanUsers: 800, HumansRiskRefused: 2, InvariantsOK: true}
	md = (&Results{Fairness: f}).Markdown()
	for _, want := range []string{
		"| fairness: `sprinter` bots' win rate vs the humans' | 0.0% won | 50.0% won | 0.00 | ≤ 0.50 | yes |",
		"| fairness: `mimic` bots' win rate vs the humans' | 20.0% won | 50.0% won | 0.40 | ≤ 0.50 | yes |",
		"| fairness: `farm` bots' win rate vs the humans' | not run |",
		"| fairness: units the bots reserved vs all units reserved | 20 units | 400 units | 0.05 | ≤ 0.10 | yes |",
		"| fairness: humans refused by risk vs all humans | 2 humans | 800 humans | 0.00 | ≤ 0.01 | yes |",
		"| human | 800 | 80.0% | 1200 | 380 | 95.0% | 50.0% | 1 (floor) | 2 (0.2%) | — |",
		"| sprinter | 100 | 10.0% | 100 | 0 | 0.0% | 0.0% | 0.00x | 100 (100.0%) | — |",
		"invariants held",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("page lacks %q:\n%s", want, f.markdown())
		}
	}
	f.Kinds[2].WinRate, f.Kinds[2].WinRateRatio, f.BotUnits, f.HumansRiskRefused = 0.6, 1.2, 60, 9
	f.InvariantsOK, f.Violations = false, []string{"oversell sale s1: 3 over"}
	md = (&Results{Fairness: f}).Markdown()
	for _, want := range []string{
		"| 60.0% won | 50.0% won | 1.20 | ≤ 0.50 | **no** |",
		"| 60 units | 400 units | 0.15 | ≤ 0.10 | **no** |",
		// 9/800 = 0.01125 misses ≤ 0.01: a third decimal shows it.
		"| 9 humans | 800 humans | 0.011 | ≤ 0.01 | **no** |",
		"**The load test's invariants failed**: oversell sale s1: 3 over.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("page lacks %q:\n%s", want, f.markdown())
		}
	}
	// Humans who won nothing leave no floor: nothing is met.
	f.Kinds[0].WinRate = 0
	f.Kinds[1].WinRate = 0
	md = (&Results{Fairness: f}).Markdown()
	if !strings.Contains(md, "| 0.0% won | 0.0% won | 0.00 | ≤ 0.50 | **no** |") {
		t.Errorf("a kind next to humans who won nothing is judged met:\n%s", md)
	}
}

// TestRunFairnessSmall runs the fairness scenario small against this
// tree's `surge serve --demo`: every kind is in the report, the crowd
// adds up, the load test's invariants hold, and the page carries every
// fairness row measured. The figures themselves depend on timing and are
// logged, not asserted.
func TestRunFairnessSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts surge serve")
	}
	bin := filepath.Join(t.TempDir(), "surge")
	build := exec.Command("go", "build", "-o", bin, "../cmd/surge")
	build.Env = os.Environ()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := RunFairness(context.Background(), FairnessOptions{Surge: bin, Users: 300, Rate: 300, Duration: 2 * time.Second,
		PageThinkMin: 500 * time.Millisecond, PageThinkMax: time.Second, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	if !f.InvariantsOK {
		t.Errorf("the load test's invariants failed: %v", f.Violations)
	}
	accounts := map[string]int{}
	var units int64
	for _, k := range f.Kinds {
		accounts[k.Kind] = k.Accounts
		units += k.UnitsReserved
		if k.Attempts == 0 {
			t.Errorf("kind %s made no reserving attempt", k.Kind)
		}
	}
	if accounts["human"] != 240 || f.HumanUsers != 240 {
		t.Errorf("%d humans (%d in the report); want 240", accounts["human"], f.HumanUsers)
	}
	for _, k := range FairnessKinds {
		if accounts[k] != 10 {
			t.Errorf("kind %s: %d accounts; want 10", k, accounts[k])
		}
	}
	if units != f.AllUnits || f.AllUnits == 0 || f.BotUnits > f.AllUnits {
		t.Errorf("units: %d by kind, %d in all, %d by bots", units, f.AllUnits, f.BotUnits)
	}
	md := (&Results{Fairness: f}).Markdown()
	for _, tg := range fairnessTargets() {
		row := "| " + tg.Label + " | "
		i := strings.Index(md, row)
		if i < 0 {
			t.Errorf("the summary lacks %q", tg.Label)
			continue
		}
		line := md[i : i+strings.IndexByte(md[i:], '\n')]
		if strings.Contains(line, notRun) {
			t.Errorf("the summary's row is not run: %s", line)
		}
		t.Log(line)
	}
	for _, k := range append([]string{"human"}, FairnessKinds...) {
		if !strings.Contains(md, "\n| "+k+" | ") {
			t.Errorf("the fairness section has no line for %s", k)
		}
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
