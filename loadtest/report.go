package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Violation is one broken invariant.
type Violation struct {
	Law     string `json:"law"`     // oversell, conservation, stuck_stock, per_user_limit, order_missing, paid_lost, team_size, team_state, pay_params
	Subject string `json:"subject"` // "sale s1", "deal d1", "reservation r1", ...
	Detail  string `json:"detail"`
}

// Invariants is the end-of-run check.
type Invariants struct {
	OK bool `json:"ok"`
	// Checked names each check that ran, e.g. "conservation sale s1".
	Checked []string `json:"checked"`
	// Skipped names checks that could not run, and why.
	Skipped    []string    `json:"skipped,omitempty"`
	Violations []Violation `json:"violations"`
	// Checks is every check with its verdict, one per line of the report:
	// those of the end of the run, then those made on every answer while
	// the run went on.
	Checks []Check `json:"checks"`
	// ViolationsTotal counts all violations; Violations keeps the first
	// few hundred.
	ViolationsTotal int `json:"violations_total"`
}

// Check is one check and its verdict: Detail says what was found.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// BotReport compares the bots' share of successful reservations with
// their share of users.
type BotReport struct {
	BotUsers          int     `json:"bot_users"`
	HumanUsers        int     `json:"human_users"`
	BotAttempts       int64   `json:"bot_attempts"`
	HumanAttempts     int64   `json:"human_attempts"`
	BotReservations   int64   `json:"bot_reservations"`
	HumanReservations int64   `json:"human_reservations"`
	BotUserShare      float64 `json:"bot_user_share"`
	BotShare          float64 `json:"bot_reservation_share"`
	HumanShare        float64 `json:"human_reservation_share"`
	BotPerUser        float64 `json:"bot_reservations_per_user"`
	HumanPerUser      float64 `json:"human_reservations_per_user"`
	// Advantage is BotPerUser / HumanPerUser: 1 means bots did as well as
	// humans per account, above 1 better. 0 when humans got nothing or
	// there were no bots.
	Advantage float64 `json:"advantage"`
	// BotAttemptShare is the bots' share of reserving attempts (retries
	// included): their share of the crowd at the door.
	BotAttemptShare float64 `json:"bot_attempt_share"`
	// BotWinners and HumanWinners: accounts with at least one successful
	// reservation; the win rates are their share of their kind's
	// accounts, and WinRateRatio is BotWinRate / HumanWinRate (0 when
	// humans won nothing or there were no bots).
	BotWinners   int     `json:"bot_winners"`
	HumanWinners int     `json:"human_winners"`
	BotWinRate   float64 `json:"bot_win_rate"`
	HumanWinRate float64 `json:"human_win_rate"`
	WinRateRatio float64 `json:"win_rate_ratio"`
	// BotOutcomes and HumanOutcomes count the reserving attempts (flash
	// reserve, group open and join, checkout; retries included) by
	// outcome, as in Report.Outcomes.
	BotOutcomes   map[string]int64 `json:"bot_outcomes"`
	HumanOutcomes map[string]int64 `json:"human_outcomes"`
	// Kinds: the humans and each bot kind present, on their own (see
	// KindReport).
	Kinds []KindReport `json:"kinds"`
	// BotUnits and BotUnitsPaid: units reserved and paid by all bot kinds;
	// BotUnitShare and BotPaidShare their shares of all units reserved and
	// paid in the run (what --max-bot-unit-share judges: reserved).
	BotUnits     int64   `json:"bot_units"`
	BotUnitsPaid int64   `json:"bot_units_paid"`
	BotUnitShare float64 `json:"bot_unit_share"`
	BotPaidShare float64 `json:"bot_paid_share"`
	// HumansRiskRefused: human accounts answered risk_denied (40300) at
	// least once, the risk hook's false positives; and their share of the
	// human accounts (what --max-human-risk-refused judges).
	HumansRiskRefused      int     `json:"humans_risk_refused"`
	HumansRiskRefusedShare float64 `json:"humans_risk_refused_share"`
}

// botShare computes the BotReport from counts.
func botShare(botUsers, humanUsers int, botAttempts, humanAttempts, botRes, humanRes int64) BotReport {
	b := BotReport{
		BotUsers: botUsers, HumanUsers: humanUsers,
		BotAttempts: botAttempts, HumanAttempts: humanAttempts,
		BotReservations: botRes, HumanReservations: humanRes,
	}
	if n := botUsers + humanUsers; n > 0 {
		b.BotUserShare = float64(botUsers) / float64(n)
	}
	if n := botRes + humanRes; n > 0 {
		b.BotShare = float64(botRes) / float64(n)
		b.HumanShare = float64(humanRes) / float64(n)
	}
	if botUsers > 0 {
		b.BotPerUser = float64(botRes) / float64(botUsers)
	}
	if humanUsers > 0 {
		b.HumanPerUser = float64(humanRes) / float64(humanUsers)
	}
	if botUsers > 0 && b.HumanPerUser > 0 {
		b.Advantage = b.BotPerUser / b.HumanPerUser
	}
	if n := botAttempts + humanAttempts; n > 0 {
		b.BotAttemptShare = float64(botAttempts) / float64(n)
	}
	return b
}

// withWinners adds the accounts that won at least one reservation.
func (b BotReport) withWinners(botWinners, humanWinners int) BotReport {
	b.BotWinners, b.HumanWinners = botWinners, humanWinners
	if b.BotUsers > 0 {
		b.BotWinRate = float64(botWinners) / float64(b.BotUsers)
	}
	if b.HumanUsers > 0 {
		b.HumanWinRate = float64(humanWinners) / float64(b.HumanUsers)
	}
	if b.BotUsers > 0 && b.HumanWinRate > 0 {
		b.WinRateRatio = b.BotWinRate / b.HumanWinRate
	}
	return b
}

// PoolStats is a sale's or deal's counts as GET /admin/v1/stats shows them.
type PoolStats struct {
	Supplied  int64 `json:"supplied"`
	Held      int64 `json:"held"`
	Sold      int64 `json:"sold"`
	Remaining int64 `json:"remaining"`
}

// Report is the result of a run.
type Report struct {
	Scenario  string    `json:"scenario"`
	Target    string    `json:"target"`
	StartedAt time.Time `json:"started_at"`
	// ElapsedS is the main phase's length in seconds (arrivals and drain).
	ElapsedS float64 `json:"elapsed_s"`
	// Arrivals: user flows scheduled in the main phase, dropped ones
	// included; Drops: arrivals refused because InFlightMax flows were
	// running (client-side drops, also in Outcomes as "client_drop").
	Arrivals int64 `json:"arrivals"`
	Drops    int64 `json:"drops"`
	// Requests answered (or failed) over the whole run, logins included;
	// Throughput is the main phase's requests per second.
	Requests   int64   `json:"requests"`
	Throughput float64 `json:"throughput_rps"`
	// IntendedRate is the profile's mean arrival rate.
	IntendedRate float64               `json:"intended_rate"`
	All          RouteStats            `json:"all"`
	Routes       map[string]RouteStats `json:"routes"`
	Outcomes     map[string]int64      `json:"outcomes"`
	Bots         BotReport             `json:"bots"`
	Invariants   Invariants            `json:"invariants"`
	// Sales and Deals: the server's counts at the end, for the pools used.
	Sales map[string]PoolStats `json:"sales,omitempty"`
	Deals map[string]PoolStats `json:"deals,omitempty"`
	// OrdersLag is stats.orders.lag at the end.
	OrdersLag int64 `json:"orders_lag"`
	// Reservations: successful reservations by final state, from the run's
	// own record ("held" are left to expire).
	Reservations map[string]int64 `json:"reservations"`
	Teams        map[string]int64 `json:"teams,omitempty"`
	Timeline     []Point          `json:"timeline"`
	// Payments: with WeChatPayTestKeys, how the payments through the fake
	// WeChat Pay went.
	Payments *PaymentReport `json:"payments,omitempty"`
	// Notes: what the run decided (ids used, waits) in plain words.
	Notes []string `json:"notes,omitempty"`
	// Config echoes the settings that shape the load, to reproduce it.
	Config RunConfig `json:"config"`
	// Phases are the run's steps (setup, logins, waiting for the start,
	// main, drain, order check, settle, team check) with their times,
	// seconds from StartedAt, and answers by class.
	Phases []Phase `json:"phases"`
	// MainAnswers counts the answers of the main phase and its drain by
	// class; ErrorRate is MainAnswers.Errors (5xx, timeouts, connection
	// errors) over MainAnswers.Total(), what --max-error-rate judges.
	// Client drops are not requests and are not in either.
	MainAnswers ClassCounts `json:"main_answers"`
	ErrorRate   float64     `json:"error_rate"`
	// OutcomeNames names every outcome of the report: API.md's name of a
	// code ("40900": "sold_out"), or the client-side outcome itself.
	OutcomeNames map[string]string `json:"outcome_names"`
	// Thresholds: the verdicts of --max-p99 and --max-error-rate; a failed
	// one makes the exit code 1.
	Thresholds Thresholds `json:"thresholds"`
}

// Thresholds are the limits a run was held to and their verdicts.
type Thresholds struct {
	// MaxP99Ms applies to every route's p99 separately; 0: none.
	MaxP99Ms float64 `json:"max_p99_ms,omitempty"`
	// MaxErrorRate applies to ErrorRate; absent: none.
	MaxErrorRate *float64 `json:"max_error_rate,omitempty"`
	// MaxBotWinRatio applies to each bot kind's WinRateRatio,
	// MaxBotUnitShare to Bots.BotUnitShare, MaxHumanRiskRefused to
	// Bots.HumansRiskRefusedShare; absent: none.
	MaxBotWinRatio      *float64 `json:"max_bot_win_ratio,omitempty"`
	MaxBotUnitShare     *float64 `json:"max_bot_unit_share,omitempty"`
	MaxHumanRiskRefused *float64 `json:"max_human_risk_refused,omitempty"`
	OK                  bool     `json:"ok"`
	Checks              []Check  `json:"checks"`
}

// applyThresholds judges the report against the limits (maxP99 0 and
// maxErrorRate nil: none) and records the verdicts in r.Thresholds.
func (r *Report) applyThresholds(maxP99 time.Duration, maxErrorRate *float64) {
	th := Thresholds{OK: true, Checks: []Check{}}
	if maxP99 > 0 {
		limitMs := float64(maxP99) / float64(time.Millisecond)
		th.MaxP99Ms = limitMs
		for _, name := range sortedKeys(r.Routes) {
			s := r.Routes[name]
			c := Check{Name: "p99 of " + name + " <= " + maxP99.String(), OK: s.P99Ms <= limitMs,
				Detail: fmt.Sprintf("p99 %.2f ms over %d answers (limit %v)", s.P99Ms, s.Count, maxP99)}
			th.Checks = append(th.Checks, c)
		}
	}
	if maxErrorRate != nil {
		v := *maxErrorRate
		th.MaxErrorRate = &v
		m := r.MainAnswers
		th.Checks = append(th.Checks, Check{
			Name: fmt.Sprintf("error rate of the main phase <= %g", v), OK: r.ErrorRate <= v,
			Detail: fmt.Sprintf("%d errors (5xx, timeouts, connection errors) in %d answers: %.4f (limit %g)", m.Errors, m.Total(), r.ErrorRate, v),
		})
	}
	for _, c := range th.Checks {
		if !c.OK {
			th.OK = false
		}
	}
	r.Thresholds = th
}

// failedThresholds names the thresholds that were exceeded.
func (r *Report) failedThresholds() []string {
	var out []string
	for _, c := range r.Thresholds.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

// RunConfig is the part of Config a report repeats.
type RunConfig struct {
	Users       int     `json:"users"`
	Rate        float64 `json:"rate"`
	RampFrom    float64 `json:"ramp_from,omitempty"`
	RampS       float64 `json:"ramp_s,omitempty"`
	SpikeAtS    float64 `json:"spike_at_s,omitempty"`
	SpikeForS   float64 `json:"spike_for_s,omitempty"`
	SpikeFactor float64 `json:"spike_factor,omitempty"`
	DurationS   float64 `json:"duration_s"`
	Bots        float64 `json:"bots"`
	Setup       bool    `json:"setup"`
	SaleID      string  `json:"sale_id,omitempty"`
	DealID      string  `json:"deal_id,omitempty"`
	Seed        int64   `json:"seed"`
	InFlightMax int     `json:"inflight_max"`
	Conns       int     `json:"conns"`
	TimeoutS    float64 `json:"timeout_s"`
	PayShare    float64 `json:"pay_share"`
	CancelShare float64 `json:"cancel_share"`
	LoginRate   float64 `json:"login_rate"`
	ThinkMaxS   float64 `json:"think_max_s"`
	MaxRequests int     `json:"max_requests"`
	// BotWeight, BotRetries, HumanRetries and BotKinds: how the bots
	// behave, in plain words for BotKinds.
	BotWeight    float64  `json:"bot_weight"`
	BotRetries   int      `json:"bot_retries"`
	HumanRetries int      `json:"human_retries"`
	BotKinds     []string `json:"bot_kinds,omitempty"`
	// BotKindsSpec is --bot-kinds as given; the farm's shape, the
	// sprinters' attempts and the humans' page think time as run.
	BotKindsSpec          string  `json:"bot_kinds_spec,omitempty"`
	FarmAccountsPerDevice int     `json:"farm_accounts_per_device"`
	FarmDevicesPerIP      int     `json:"farm_devices_per_ip"`
	SprinterTries         int     `json:"sprinter_tries"`
	PageThinkMinS         float64 `json:"page_think_min_s"`
	PageThinkMaxS         float64 `json:"page_think_max_s"`
	LoginLeadS            float64 `json:"login_lead_s,omitempty"`
	// Arrival is the arrival model (spread, countdown); CountdownSpreadS
	// the mean of a person's reaction after the opening (countdown).
	Arrival          string  `json:"arrival,omitempty"`
	CountdownSpreadS float64 `json:"countdown_spread_s,omitempty"`
	// HoldS and PerUserLimit: the flash sale's, as the run knew them (0:
	// unknown or no sale).
	HoldS        int64 `json:"hold_s,omitempty"`
	PerUserLimit int64 `json:"per_user_limit,omitempty"`
	// WeChatPay: buyers paid through the fake WeChat Pay at WeChatPayAddr.
	WeChatPay     bool   `json:"wechatpay"`
	WeChatPayAddr string `json:"wechatpay_addr,omitempty"`
}

// ExitCode is 0 when every invariant held and no threshold was exceeded,
// 1 otherwise.
func (r *Report) ExitCode() int {
	if r.Invariants.OK && len(r.failedThresholds()) == 0 {
		return 0
	}
	return 1
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("cannot write the report: %w", err)
	}
	return nil
}
