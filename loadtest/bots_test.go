package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseBotKinds(t *testing.T) {
	f := func(spec string, want map[botKind]float64) {
		t.Helper()
		got, err := parseBotKinds(spec)
		if err != nil {
			t.Fatalf("parseBotKinds(%q): %v", spec, err)
		}
		var w [kindsN]float64
		for k, v := range want {
			w[k] = v
		}
		if got != w {
			t.Errorf("parseBotKinds(%q) = %v; want %v", spec, got, w)
		}
	}
	f("", map[botKind]float64{kindBasic: 1})
	f("sprinter", map[botKind]float64{kindSprinter: 1})
	f("sprinter, farm", map[botKind]float64{kindSprinter: 1, kindFarm: 1})
	f("sprinter=1,farm=2.5", map[botKind]float64{kindSprinter: 1, kindFarm: 2.5})
	f("basic,sprinter,farm,rotator,replayer,mimic", map[botKind]float64{kindBasic: 1, kindSprinter: 1, kindFarm: 1, kindRotator: 1, kindReplayer: 1, kindMimic: 1})
	for _, bad := range []string{"bogus", "human", "farm,farm", "farm=0", "farm=-1", "farm=x", "farm=", "farm=1e9", ",", "farm,,mimic", "farm=NaN"} {
		if _, err := parseBotKinds(bad); err == nil {
			t.Errorf("parseBotKinds(%q): no error", bad)
		}
	}
}

func TestSplitBots(t *testing.T) {
	f := func(nb int, w map[botKind]float64, want map[botKind]int) {
		t.Helper()
		var ws [kindsN]float64
		for k, v := range w {
			ws[k] = v
		}
		var wantN [kindsN]int
		for k, v := range want {
			wantN[k] = v
		}
		if got := splitBots(nb, ws); got != wantN {
			t.Errorf("splitBots(%d, %v) = %v; want %v", nb, w, got, wantN)
		}
	}
	f(10, map[botKind]float64{kindSprinter: 1, kindFarm: 1, kindMimic: 1}, map[botKind]int{kindSprinter: 4, kindFarm: 3, kindMimic: 3})
	f(9, map[botKind]float64{kindFarm: 1, kindRotator: 2}, map[botKind]int{kindFarm: 3, kindRotator: 6})
	f(0, map[botKind]float64{kindFarm: 1}, nil)
	f(1, map[botKind]float64{kindFarm: 1, kindMimic: 3}, map[botKind]int{kindMimic: 1})
	f(60, map[botKind]float64{kindBasic: 1, kindSprinter: 1, kindFarm: 1, kindRotator: 1, kindReplayer: 1, kindMimic: 1},
		map[botKind]int{kindBasic: 10, kindSprinter: 10, kindFarm: 10, kindRotator: 10, kindReplayer: 10, kindMimic: 10})
}

// TestNewUsersIdentities: each kind's devices and addresses in its shape,
// and the humans' realistic ones.
func TestNewUsersIdentities(t *testing.T) {
	kinds, _ := parseBotKinds("basic,sprinter,farm,rotator,replayer,mimic")
	us := newUsers("t", 1000, 0.24, kinds, shape{accountsPerDevice: 3, devicesPerIP: 2})
	byKind := map[botKind][]*user{}
	for i, u := range us {
		if u.n != i || u.bot != (u.kind != kindHuman) {
			t.Fatalf("user %d: %+v", i, u)
		}
		byKind[u.kind] = append(byKind[u.kind], u)
	}
	if len(byKind[kindHuman]) != 760 {
		t.Fatalf("%d humans; want 760", len(byKind[kindHuman]))
	}
	for k := kindBasic; k < kindsN; k++ {
		if len(byKind[k]) != 40 {
			t.Errorf("%s: %d accounts; want 40", k, len(byKind[k]))
		}
	}
	// shareOf counts the distinct xs per y.
	shareOf := func(us []*user, y, x func(*user) string) map[string]map[string]bool {
		m := map[string]map[string]bool{}
		for _, u := range us {
			if m[y(u)] == nil {
				m[y(u)] = map[string]bool{}
			}
			m[y(u)][x(u)] = true
		}
		return m
	}
	dev := func(u *user) string { return u.device }
	ip := func(u *user) string { return u.ip }
	acct := func(u *user) string { return u.code }
	for _, k := range []botKind{kindFarm, kindMimic} {
		for d, as := range shareOf(byKind[k], dev, acct) {
			if len(as) > 3 {
				t.Errorf("%s device %s: %d accounts; want at most 3", k, d, len(as))
			}
		}
		for a, ds := range shareOf(byKind[k], ip, dev) {
			if len(ds) > 2 {
				t.Errorf("%s address %s: %d devices; want at most 2", k, a, len(ds))
			}
		}
		if n := len(shareOf(byKind[k], dev, acct)); n != 14 { // ceil(40/3)
			t.Errorf("%s: %d devices; want 14", k, n)
		}
	}
	for _, k := range []botKind{kindSprinter, kindReplayer, kindRotator} {
		if n := len(shareOf(byKind[k], ip, acct)); n != 20 {
			t.Errorf("%s: %d addresses; want 20 (2 accounts each)", k, n)
		}
	}
	for _, u := range byKind[kindBasic] {
		if u.ip != botIP || (u.device != "" && u.device != botSharedDevice) {
			t.Errorf("basic bot: %+v", u)
		}
	}
	rot := byKind[kindRotator][0]
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		d := rot.deviceID()
		if d == "" || seen[d] {
			t.Fatalf("rotator device %q repeated or empty", d)
		}
		seen[d] = true
	}
	if d := byKind[kindFarm][0]; d.deviceID() != d.deviceID() {
		t.Error("a farm device changes between requests")
	}
	households := shareOf(byKind[kindHuman], ip, acct)
	sizes := map[int]int{}
	for _, as := range households {
		sizes[len(as)]++
	}
	if sizes[1] == 0 || sizes[2] == 0 || sizes[3] == 0 || len(sizes) != 3 {
		t.Errorf("household sizes %v; want 1, 2 and 3 people on an address, no more", sizes)
	}
	for d, as := range shareOf(byKind[kindHuman], dev, acct) {
		if len(as) != 1 || d == "" {
			t.Errorf("human device %q shared by %d", d, len(as))
		}
	}
	for _, u := range byKind[kindHuman] {
		if !strings.HasPrefix(u.ip, "100.") || u.kind.String() != "human" || !u.humanLike() {
			t.Errorf("human: %+v", u)
		}
	}
}

func TestBotConfigIsValidated(t *testing.T) {
	ok := Config{Target: "http://127.0.0.1:1", Scenario: ScenarioFlash, Bots: 0.2, BotKinds: "sprinter=2,farm"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	neg := -0.1
	for i, mut := range []func(*Config){
		func(c *Config) { c.BotKinds = "farm,bogus" },
		func(c *Config) { c.FarmAccountsPerDevice = -1 },
		func(c *Config) { c.FarmDevicesPerIP = farmShapeMax + 1 },
		func(c *Config) { c.SprinterTries = -3 },
		func(c *Config) { c.LoginLead = -time.Second },
		func(c *Config) { c.PageThinkMin, c.PageThinkMax = 2*time.Second, time.Second },
		func(c *Config) { c.PageThinkMin = -time.Second },
		func(c *Config) { c.PageThinkMax = 2 * time.Minute },
		func(c *Config) { c.MaxBotWinRatio = &neg },
		func(c *Config) { v := 1.5; c.MaxBotUnitShare = &v },
		func(c *Config) { c.MaxHumanRiskRefused = &neg },
	} {
		c := ok
		mut(&c)
		if _, err := Run(context.Background(), c); !errors.Is(err, ErrUsage) {
			t.Errorf("case %d: err = %v; want ErrUsage", i, err)
		}
	}
}

// kindsReport is a report whose humans won 40 of 200 accounts (20%), the
// sprinters 10 of 10 (5x), the mimics 1 of 10 (0.5x).
func kindsReport() *Report {
	bots := botShare(20, 200, 120, 300, 11, 40).withWinners(11, 40)
	ms := 12.0
	bots = bots.withKinds([]KindReport{
		{Kind: "human", Accounts: 200, CrowdShare: 200.0 / 220, UnitsReserved: 40, UnitsPaid: 30, UnitShare: 40.0 / 51, Winners: 40, WinRate: 0.2, WinRateRatio: 1, RiskRefused: 2, RiskRefusedShare: 0.01},
		{Kind: "sprinter", Accounts: 10, CrowdShare: 10.0 / 220, Attempts: 100, UnitsReserved: 10, UnitsPaid: 6, UnitShare: 10.0 / 51, Winners: 10, WinRate: 1, WinRateRatio: 5, FirstAttemptMs: &ms},
		{Kind: "mimic", Accounts: 10, CrowdShare: 10.0 / 220, Attempts: 20, UnitsReserved: 1, UnitsPaid: 1, UnitShare: 1.0 / 51, Winners: 1, WinRate: 0.1, WinRateRatio: 0.5, RiskRefused: 3, RiskRefusedShare: 0.3},
	})
	return &Report{Scenario: ScenarioFlash, Bots: bots, Invariants: Invariants{OK: true}}
}

func TestWithKinds(t *testing.T) {
	b := kindsReport().Bots
	if b.BotUnits != 11 || b.BotUnitsPaid != 7 || b.HumansRiskRefused != 2 || b.HumansRiskRefusedShare != 0.01 {
		t.Errorf("withKinds: %+v", b)
	}
	if d := b.BotUnitShare - 11.0/51; d > 1e-9 || d < -1e-9 {
		t.Errorf("BotUnitShare = %v; want 11/51", b.BotUnitShare)
	}
	if d := b.BotPaidShare - 7.0/37; d > 1e-9 || d < -1e-9 {
		t.Errorf("BotPaidShare = %v; want 7/37", b.BotPaidShare)
	}
}

func TestBotThresholds(t *testing.T) {
	v := func(x float64) *float64 { return &x }
	f := func(name string, rep *Report, ratio, units, refused *float64, wantOK bool, wantChecks int, wantFailed ...string) {
		t.Helper()
		rep.finish(0, nil)
		rep.applyBotThresholds(ratio, units, refused)
		if got := rep.ExitCode() == 0; got != wantOK {
			t.Errorf("%s: exit %d; want ok %v (%+v)", name, rep.ExitCode(), wantOK, rep.Thresholds.Checks)
		}
		if len(rep.Thresholds.Checks) != wantChecks {
			t.Errorf("%s: %d checks; want %d: %+v", name, len(rep.Thresholds.Checks), wantChecks, rep.Thresholds.Checks)
		}
		failed := strings.Join(rep.failedThresholds(), "\n")
		for _, w := range wantFailed {
			if !strings.Contains(failed, w) {
				t.Errorf("%s: failed %q does not name %q", name, failed, w)
			}
		}
		if strings.Count(failed, "\n")+1 != len(wantFailed) && !(failed == "" && len(wantFailed) == 0) {
			t.Errorf("%s: failed %q; want %d", name, failed, len(wantFailed))
		}
	}
	f("none", kindsReport(), nil, nil, nil, true, 0)
	f("generous", kindsReport(), v(5), v(0.5), v(0.01), true, 4)
	f("ratio 0.5", kindsReport(), v(0.5), nil, nil, false, 2, "win rate of bot kind sprinter <= 0.5x the humans'")
	f("ratio 0.4", kindsReport(), v(0.4), nil, nil, false, 2, "bot kind sprinter", "bot kind mimic")
	f("units 0.1", kindsReport(), nil, v(0.1), nil, false, 1, "bots' share of the units reserved <= 0.1")
	f("refused 0", kindsReport(), nil, nil, v(0), false, 1, "humans refused by risk <= 0 of humans")

	// The humans won nothing: a kind that won anything fails, one that
	// won nothing passes.
	rep := kindsReport()
	rep.Bots.Kinds[0].Winners, rep.Bots.Kinds[0].WinRate = 0, 0
	rep.Bots.Kinds[2].Winners = 0
	f("humans won nothing", rep, v(1), nil, nil, false, 2, "bot kind sprinter")
	// No bots: one check, passed.
	rep = &Report{Bots: BotReport{Kinds: []KindReport{{Kind: "human", Accounts: 5}}}, Invariants: Invariants{OK: true}}
	f("no bots", rep, v(0.5), nil, nil, true, 1)
}

func TestKindsInTextJSONAndHTML(t *testing.T) {
	rep := kindsReport()
	rep.finish(0, nil)
	rep.applyBotThresholds(ptr(0.5), ptr(0.1), ptr(0.01))
	var text, page, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "text", text.String(), "by kind", "sprinter", "mimic", "100.0% (10)", "5.00x", "0.50x", "+12 ms",
		"all bot kinds: 9.1% of the accounts took 21.6% of the units reserved (11)", "humans refused by risk (risk_denied at least once: false positives): 2 of 200 (1.0%)",
		"FAILED win rate of bot kind sprinter <= 0.5x the humans'", "max bot win ratio 0.5x per kind")
	if err := rep.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "HTML", page.String(), `id="bot-kinds"`, `<tr class="kind"><td class="l">sprinter</td>`, "5.00x", "false positives")
	if n := strings.Count(page.String(), `<tr class="kind">`); n != 3 {
		t.Errorf("HTML: %d kind rows; want 3", n)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Bots struct {
			Kinds                  []map[string]any `json:"kinds"`
			BotUnitShare           *float64         `json:"bot_unit_share"`
			BotPaidShare           *float64         `json:"bot_paid_share"`
			HumansRiskRefused      *int             `json:"humans_risk_refused"`
			HumansRiskRefusedShare *float64         `json:"humans_risk_refused_share"`
		} `json:"bots"`
		Thresholds map[string]any `json:"thresholds"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	b := doc.Bots
	if len(b.Kinds) != 3 || b.BotUnitShare == nil || b.BotPaidShare == nil || b.HumansRiskRefused == nil || b.HumansRiskRefusedShare == nil {
		t.Fatalf("JSON bots: %s", js.String())
	}
	for _, k := range []string{"kind", "accounts", "crowd_share", "attempts", "attempt_share", "units_reserved", "units_paid",
		"unit_share", "paid_share", "winners", "win_rate", "win_rate_ratio", "risk_refused", "risk_refused_share", "outcomes"} {
		if _, ok := b.Kinds[1][k]; !ok {
			t.Errorf("bots.kinds[].%s missing: %v", k, b.Kinds[1])
		}
	}
	for _, k := range []string{"max_bot_win_ratio", "max_bot_unit_share", "max_human_risk_refused"} {
		if _, ok := doc.Thresholds[k]; !ok {
			t.Errorf("thresholds.%s missing", k)
		}
	}
}

// TestEveryKindAgainstTheFake: a run with every kind mixed against the
// test's own server: every kind in the report, the sprinters first at the
// opening, and the invariants hold.
func TestEveryKindAgainstTheFake(t *testing.T) {
	f := newFake()
	srv := f.start(t)
	cfg := flashConfig(srv.URL)
	cfg.Users, cfg.Bots, cfg.BotKinds, cfg.SaleQuantity = 60, 0.5, "basic,sprinter,farm,rotator,replayer,mimic", 30
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Invariants.OK {
		t.Fatalf("invariants: %+v", rep.Invariants.Violations)
	}
	got := map[string]KindReport{}
	accounts := 0
	for _, k := range rep.Bots.Kinds {
		got[k.Kind] = k
		accounts += k.Accounts
	}
	if len(got) != 7 || accounts != 60 || got["human"].Accounts != 30 || got["sprinter"].Accounts != 5 {
		t.Fatalf("kinds: %+v", rep.Bots.Kinds)
	}
	if s := got["sprinter"]; s.Attempts == 0 || s.FirstAttemptMs == nil {
		t.Errorf("sprinters did not fire: %+v", s)
	}
	if len(rep.Config.BotKinds) != 6 || rep.Config.BotKindsSpec != cfg.BotKinds {
		t.Errorf("config: %q, %q", rep.Config.BotKinds, rep.Config.BotKindsSpec)
	}
}
