// Package loadtest rehearses a sale day against any server that speaks
// Surge's HTTP API (API.md). It knows the server only through HTTP: it never
// imports the engine, inventory or gateway packages, so it can be pointed at
// a build of Surge, at another implementation of the contract, or at a
// deliberately broken server in a test.
//
// A run is open-model: arrivals are scheduled at intended times from a fixed,
// ramping or spiking rate (Arrival), independent of how fast the server
// answers. Every request's latency is measured from the time it was meant to
// be sent, so a server that stalls is charged for the requests queued behind
// the stall (no coordinated omission). Latencies go into HdrHistograms, one
// per route, plus a coarse timeline for the plot.
//
// Concurrency is bounded: at most Config.InFlightMax user flows run at once
// (each flow has at most one request in flight); an arrival that finds the
// cap reached is counted as a client-side drop ("client_drop"), never hidden
// or delayed. Connections are bounded by Config.Conns; waiting for one counts
// in the latency. Every run is bounded in arrivals (MaxRequests) and time
// (Duration plus bounded drain, settle and order-check phases) and stops by
// itself.
//
// Scenarios: "flash" (N users log in, wait for the sale to start and rush
// it), "browse" (store and guide pages across many stores with If-None-Match
// revalidation, and product pages), "group" (teams open, fill, pay, and fail
// when members do not pay in time), "checkout" (multi-item carts) and "mix"
// (all of them, weighted). A configurable share of users are bots, of the
// kinds Config.BotKinds mixes (bots.go): basic (no think time, retries that
// ignore Retry-After, a shared or missing X-Device-Id, all behind one
// X-Forwarded-For address), sprinter (fires at the opening from a session
// logged in ahead and again at once until it wins, bounded), farm (N
// accounts a device, M devices an address, logged in last), rotator (a new
// device id per request), replayer (one captured page token and
// Idempotency-Key replayed across accounts) and mimic (a person's page view
// and think time, on the farm's few devices and addresses). Humans have a
// device each and share an address in households of at most three; in the
// flash scenario they load the sale's store page, think PageThinkMin to
// PageThinkMax and reserve carrying the page's X-Surge-Page-Token (none
// when the server gives none). Arrivals follow the rate schedule
// (Config.Arrival "spread") or, for a flash sale, the countdown
// (countdown.go): every account once, people loading the page during the
// countdown and tapping a reaction time after the opening, bots at the
// opening millisecond. Buyers behave like buyers: some pay, some cancel and
// some let the hold expire.
//
// Paying: by default a buyer pays with POST /api/v1/reservations/{id}/pay
// (payment.provider=dev). With Config.WeChatPayTestKeys (a directory of TEST
// keys, `surge wechatpay-test-keys`) the run also plays WeChat Pay: it starts
// a fake WeChat Pay (internal/wechatpay/wechatpaytest, protocol only) on
// Config.WeChatPayAddr, the server's payment.base_url, and a buyer who pays
// calls POST .../prepay, checks the answer's paySign with the merchant
// public key (a bad one is a "pay_params" violation), then the fake WeChat
// Pay finds its order by the prepay_id, marks it paid and posts the signed,
// encrypted TRANSACTION.SUCCESS notification to the order's notify_url
// (sent again after a 5xx or a lost answer, as WeChat Pay does). After a
// 204 the buyer reads the reservation back: paid, or released when the
// payment came after the hold ended (late: the server refunds it, and the
// run counts it as released, never sold; a flash hold that surely still had
// time left when the 204 came back, and was refunded anyway, is
// "paid_lost"). The report's "payments"
// counts prepays, notifications, paid, late, closed, refused and resent.
//
// At the end Run checks invariants against GET /admin/v1/stats and its own
// record of answers (no oversell, no stuck stock, per-user limits, an order
// for every paid reservation, team sizes) and returns a Report, which can be
// written as JSON (WriteJSON), as a text summary (WriteText) and as a
// self-contained HTML page (WriteHTML: inline CSS and SVG, no scripts, no
// outside assets).
//
// The text summary and the HTML page show, for a person: the run's settings
// (target, scenario, users, rate, ramp, spike, duration, the bots' share and
// kinds, hold, per-user limit, seed, WeChat Pay on or off, thresholds); the
// run's phases (setup, logins, waiting for the start, main, drain, order
// check, settle, team check), marked on the latency-over-time chart; per
// route count, mean, p50, p90, p95, p99, p99.9 and max; each route's
// answers as success, refused (4xx), error (5xx, timeouts, connection
// errors) and other (canceled at the end, payment protocol faults), with
// every outcome named next to its code ("sold_out (40900)"); the bots
// against the humans (share of accounts and of reserving attempts, share
// of successful reservations, the win rate per account and its ratio to
// the humans', reservations per account, attempts by outcome), and the same
// per kind (crowd share, units reserved and paid and their shares, win rate
// and its ratio to the humans', accounts refused by risk, first reserve
// after the opening), all bots' share of the units and the humans refused
// by risk (the false positives); the sale
// totals from the final stats; every invariant check and threshold on its
// own line with its verdict and detail; and the exit code with the reason.
// The HTML page's sections carry ids, for tools and browser tests:
// summary, verdict, settings, latency-chart, requests-chart, routes,
// route-bars, outcomes, bots (with the table bot-kinds), sale-totals, invariants, thresholds, phases
// and notes. Its size is bounded: the timeline keeps at most 400 slices
// however long the run (neighbouring slices merge as the run goes on), and
// lists of violations are cut (the JSON keeps the first 200).
//
// The JSON report (Report) carries at least
//
//	{"invariants":    {"ok": bool, "violations": [{"law", "subject", "detail"}], "checked": [...],
//	                   "checks": [{"name", "ok", "detail"}]},
//	 "routes":        {"<route>": {"count", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms",
//	                   "outcomes", "classes": {"success", "refused", "errors", "other"}}},
//	 "outcomes":      {"<code>": n},
//	 "outcome_names": {"<code>": "<name>"},
//	 "bots":          {"bot_user_share", "bot_attempt_share", "bot_reservation_share", "bot_win_rate",
//	                   "human_win_rate", "win_rate_ratio", "advantage", "bot_outcomes", "human_outcomes",
//	                   "kinds": [{"kind", "accounts", "crowd_share", "attempts", "units_reserved", "units_paid",
//	                              "unit_share", "paid_share", "winners", "win_rate", "win_rate_ratio",
//	                              "risk_refused", "risk_refused_share", "first_attempt_ms", "outcomes"}],
//	                   "bot_unit_share", "bot_paid_share", "humans_risk_refused", "humans_risk_refused_share", ...},
//	 "sales", "deals": {"<id>": {"supplied", "sold", "held", "remaining"}},
//	 "phases":        [{"name", "start_s", "end_s", "answers"}],
//	 "main_answers", "error_rate", "thresholds": {"ok", "checks"}, "config": {...}}
//
// where a route is session, flash_reserve, group_open, group_join,
// checkout, pay, cancel, store_page or product_page, and with WeChat Pay
// prepay and pay_notify instead of pay (pay_notify is the fake WeChat Pay
// marking the order paid and posting the notification, from the end of the
// prepay). An outcome is an API.md code ("0", "40900", ...; OutcomeName
// gives API.md's name: ok, sold_out, limit_exceeded, not_active,
// throttled, unavailable, risk_denied, not_registered, bad_state,
// idempotency_conflict, bad_request, unauthorized, forbidden, not_found,
// too_large, internal), "304", "timeout", "conn_error", "canceled",
// "client_drop" or "http_<status>" for an answer without an envelope;
// pay_notify's are "204" (taken), "http_<status>", "order_closed" (the
// server had closed the order: its hold was released) or
// "unknown_prepay_id", and prepay's "bad_pay_params" for an answer 0 whose
// parameters do not verify. Latencies are milliseconds from the intended
// send time.
//
// Thresholds (Config.MaxP99, Config.MaxErrorRate, Config.MaxBotWinRatio,
// Config.MaxBotUnitShare, Config.MaxHumanRiskRefused; `surge loadtest
// --max-p99 DURATION --max-error-rate FRACTION --max-bot-win-ratio X
// --max-bot-unit-share FRACTION --max-human-risk-refused FRACTION`): the
// bot limits hold each kind's win-rate ratio, all bots' share of the units
// reserved and the share of humans refused by risk. The p99 limit applies to
// every route on its own, each route's p99 over the whole run (logins
// included), so that a slow pay or page is caught as well as a slow
// reserve; the error-rate limit applies to the main phase with its drain:
// errors (5xx answers with or without an envelope, timeouts, connection
// errors) over all its answers. Client drops are not answers and count in
// neither; refusals (4xx: sold out, throttled, ...) are not errors. A
// threshold exceeded is named in the report and makes ExitCode 1.
//
// Exit codes of `surge loadtest` (cmd/surge): 0 when the run completed,
// every invariant held and no threshold was exceeded (Report.ExitCode), 1
// when an invariant failed or a threshold was exceeded, 2 when Run
// returned an error (ErrUsage, ErrConnect, interrupted).
package loadtest
