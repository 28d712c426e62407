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
// (all of them, weighted). A configurable share of users are bots: no think
// time, retries that ignore Retry-After, a shared or missing X-Device-Id and
// many accounts behind one X-Forwarded-For address. Buyers behave like buyers:
// some pay, some cancel and some let the hold expire.
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
// written as JSON, as a text summary and as a self-contained HTML plot.
//
// The JSON report (Report) carries at least
//
//	{"invariants": {"ok": bool, "violations": [{"law", "subject", "detail"}], "checked": [...]},
//	 "routes":     {"<route>": {"count", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "outcomes"}},
//	 "outcomes":   {"<code>": n}}
//
// where a route is session, flash_reserve, group_open, group_join,
// checkout, pay, cancel, store_page or product_page, and with WeChat Pay
// prepay and pay_notify instead of pay (pay_notify is the fake WeChat Pay
// marking the order paid and posting the notification, from the end of the
// prepay). An outcome is an API.md code ("0", "40900", ...), "304",
// "timeout", "conn_error", "canceled", "client_drop" or "http_<status>" for
// an answer without an envelope; pay_notify's are "204" (taken),
// "http_<status>", "order_closed" (the server had closed the order: its hold
// was released) or "unknown_prepay_id", and prepay's "bad_pay_params" for an
// answer 0 whose parameters do not verify. Latencies are milliseconds from
// the intended send time.
//
// Exit codes of `surge loadtest` (cmd/surge): 0 when the run completed and
// every invariant held (Report.ExitCode), 1 when an invariant failed, 2
// when Run returned an error (ErrUsage, ErrConnect, interrupted).
package loadtest
