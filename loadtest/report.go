package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
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
	// ViolationsTotal counts all violations; Violations keeps the first
	// few hundred.
	ViolationsTotal int `json:"violations_total"`
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
}

// ExitCode is 0 when every invariant held, 1 otherwise.
func (r *Report) ExitCode() int {
	if r.Invariants.OK {
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

// WriteText writes a human summary.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "surge loadtest: scenario %s against %s\n", r.Scenario, r.Target)
	fmt.Fprintf(&b, "  main phase %.1fs: %d arrivals (intended %.1f/s), %d client drops, %d requests, %.1f req/s\n",
		r.ElapsedS, r.Arrivals, r.IntendedRate, r.Drops, r.Requests, r.Throughput)
	fmt.Fprintf(&b, "\n  %-16s %8s %9s %9s %9s %9s %9s\n", "route", "count", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms")
	for _, name := range sortedKeys(r.Routes) {
		s := r.Routes[name]
		fmt.Fprintf(&b, "  %-16s %8d %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, s.Count, s.P50Ms, s.P90Ms, s.P99Ms, s.P999Ms, s.MaxMs)
	}
	s := r.All
	fmt.Fprintf(&b, "  %-16s %8d %9.2f %9.2f %9.2f %9.2f %9.2f\n", "(all)", s.Count, s.P50Ms, s.P90Ms, s.P99Ms, s.P999Ms, s.MaxMs)
	b.WriteString("\n  outcomes:")
	for _, k := range sortedKeys(r.Outcomes) {
		fmt.Fprintf(&b, " %s=%d", k, r.Outcomes[k])
	}
	b.WriteString("\n")
	if len(r.Reservations) > 0 {
		b.WriteString("  reservations:")
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
	bt := r.Bots
	if bt.BotUsers > 0 {
		fmt.Fprintf(&b, "  bots: %.1f%% of users got %.1f%% of successful reservations (%.3f per bot vs %.3f per human, advantage %.2fx)\n",
			100*bt.BotUserShare, 100*bt.BotShare, bt.BotPerUser, bt.HumanPerUser, bt.Advantage)
	}
	for _, id := range sortedKeys(r.Sales) {
		p := r.Sales[id]
		fmt.Fprintf(&b, "  sale %s: supplied %d sold %d held %d remaining %d\n", id, p.Supplied, p.Sold, p.Held, p.Remaining)
	}
	for _, id := range sortedKeys(r.Deals) {
		p := r.Deals[id]
		fmt.Fprintf(&b, "  deal %s: supplied %d sold %d held %d remaining %d\n", id, p.Supplied, p.Sold, p.Held, p.Remaining)
	}
	if p := r.Payments; p != nil {
		fmt.Fprintf(&b, "  payments (%s at %s): %d prepays (%d bad parameters, %d unknown prepay_ids), %d notified: %d paid, %d late (refunded); %d closed, %d refused, %d resent\n",
			p.Provider, p.WeChatPayURL, p.Prepays, p.BadPayParams, p.UnknownPrepayIDs, p.Notified, p.Paid, p.Late, p.Closed, p.Refused, p.Resent)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	inv := r.Invariants
	if inv.OK {
		fmt.Fprintf(&b, "\n  invariants: OK (%d checks)\n", len(inv.Checked))
	} else {
		fmt.Fprintf(&b, "\n  invariants: FAILED, %d violation(s) in %d checks\n", inv.ViolationsTotal, len(inv.Checked))
		vs := append([]Violation(nil), inv.Violations...)
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].Law < vs[j].Law })
		for i, v := range vs {
			if i == 20 {
				fmt.Fprintf(&b, "    ... %d more in the JSON report\n", len(vs)-20)
				break
			}
			fmt.Fprintf(&b, "    %s: %s: %s\n", v.Law, v.Subject, v.Detail)
		}
	}
	for _, sk := range inv.Skipped {
		fmt.Fprintf(&b, "  skipped: %s\n", sk)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
