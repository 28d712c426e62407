package loadtest

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// TestCountdownPlan: at the countdown every account comes once; people
// load the page during the countdown (PageThinkMin..PageThinkMax before
// the opening) and tap 150 ms plus an exponential of mean CountdownSpread
// after it; every bot taps at the opening, mimics and replayers with a
// page loaded during the countdown, sprinters marked for sprintFlow.
func TestCountdownPlan(t *testing.T) {
	kinds, err := parseBotKinds("basic,sprinter,farm,rotator,replayer,mimic")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Scenario: ScenarioFlash, Arrival: ArrivalCountdown, CountdownSpread: 800 * time.Millisecond,
		PageThinkMin: 500 * time.Millisecond, PageThinkMax: 3 * time.Second}.withDefaults()
	r := &runner{cfg: cfg, users: newUsers("t", 20_000, 0.2, kinds, shape{4, 25})}
	open := time.Unix(1_800_000_000, 0)
	plan := r.countdownPlan(rand.New(rand.NewPCG(1, 2)), open)
	if len(plan) != len(r.users) {
		t.Fatalf("%d arrivals for %d accounts; want one each", len(plan), len(r.users))
	}
	seen := map[*user]bool{}
	var humans int
	var reactSum time.Duration
	for i, a := range plan {
		if seen[a.u] {
			t.Fatalf("account %d arrives twice", a.u.n)
		}
		seen[a.u] = true
		if i > 0 && a.start.Before(plan[i-1].start) {
			t.Fatalf("arrival %d starts before arrival %d", i, i-1)
		}
		lead := open.Sub(a.start)
		viewer := a.u.kind == kindHuman || a.u.kind == kindMimic || a.u.kind == kindReplayer
		if a.viewer != viewer || a.sprint != (a.u.kind == kindSprinter) {
			t.Fatalf("%s: viewer %v sprint %v", a.u.kind, a.viewer, a.sprint)
		}
		if viewer && (lead < cfg.PageThinkMin || lead > cfg.PageThinkMax) || !viewer && lead != 0 {
			t.Fatalf("%s starts %v before the opening", a.u.kind, lead)
		}
		react := a.press.Sub(open)
		if a.u.kind != kindHuman {
			if react != 0 {
				t.Fatalf("bot %s taps %v after the opening; want at it", a.u.kind, react)
			}
			continue
		}
		if react < countdownReactMin || react > countdownReactMax {
			t.Fatalf("a person taps %v after the opening; want %v..%v", react, countdownReactMin, countdownReactMax)
		}
		humans++
		reactSum += react - countdownReactMin
	}
	mean := reactSum / time.Duration(humans)
	if mean < 760*time.Millisecond || mean > 840*time.Millisecond { // 16,000 draws: the mean's s.d. is 6 ms
		t.Errorf("people's mean reaction beyond the minimum = %v; want about 800ms", mean)
	}
}

// TestCountdownConfig: --arrival takes spread or countdown, countdown only
// for the flash scenario, and --countdown-spread within bounds.
func TestCountdownConfig(t *testing.T) {
	base := Config{Target: "http://127.0.0.1:1", Scenario: ScenarioFlash}
	for _, c := range []struct {
		edit func(*Config)
		ok   bool
	}{
		{func(c *Config) {}, true},
		{func(c *Config) { c.Arrival = ArrivalCountdown }, true},
		{func(c *Config) { c.Arrival = ArrivalSpread }, true},
		{func(c *Config) { c.Arrival = "crowd" }, false},
		{func(c *Config) { c.Arrival, c.Scenario = ArrivalCountdown, ScenarioBrowse }, false},
		{func(c *Config) { c.Arrival, c.CountdownSpread = ArrivalCountdown, -time.Second }, false},
		{func(c *Config) { c.Arrival, c.CountdownSpread = ArrivalCountdown, 2*time.Minute }, false},
	} {
		cfg := base
		c.edit(&cfg)
		err := cfg.Validate()
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrUsage) {
			t.Errorf("Validate(arrival %q, scenario %q, spread %v) = %v; want ok %v", cfg.Arrival, cfg.Scenario, cfg.CountdownSpread, err, c.ok)
		}
	}
	if got := (Config{Arrival: ArrivalCountdown, PageThinkMax: 2 * time.Second}).countdownLead(); got != 2*time.Second {
		t.Errorf("countdown lead = %v; want PageThinkMax", got)
	}
	if got := (Config{PageThinkMax: 2 * time.Second}).countdownLead(); got != 0 {
		t.Errorf("a spread run's lead = %v; want 0", got)
	}
}
