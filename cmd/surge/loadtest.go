package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/surge-retail/surge/loadtest"
)

func init() { rootCmd.AddCommand(loadtestCmd) }

var loadtestCmd = newLoadtestCmd()

// exitError carries the process exit status of `surge loadtest`: 1 when an
// invariant failed, 2 for usage or connection errors.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string  { return e.err.Error() }
func (e *exitError) Unwrap() error  { return e.err }
func (e *exitError) ExitCode() int  { return e.code }
func usageErr(err error) *exitError { return &exitError{code: 2, err: err} }

func newLoadtestCmd() *cobra.Command {
	var (
		cfg                loadtest.Config
		reportPath, html   string
		quiet              bool
		stores, skus, gdes []string
		maxErrorRate       float64
		maxBotWinRatio     float64
		maxBotUnitShare    float64
		maxHumanRefused    float64
	)
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "Rehearse a sale day against a Surge server over HTTP and check its invariants",
		Long: `surge loadtest drives an open-model load (arrivals at intended times, latency
measured from the intended send time) against a server that speaks Surge's
HTTP API, then checks the invariants against GET /admin/v1/stats and its own
record of answers: no oversell, no stuck stock, per-user limits, an order for
every paid reservation.

Against a server with payment.provider=wechat, pass --wechatpay-test-keys DIR
--wechatpay-addr HOST:PORT: the load tester then runs a fake WeChat Pay on
HOST:PORT (the server's payment.base_url) with the TEST keys of DIR (made by
surge wechatpay-test-keys), and every buyer who pays calls POST .../prepay,
checks its paySign, and has the fake WeChat Pay post the signed payment
notification to the server (routes prepay and pay_notify; POST .../pay is
never used). Payments that arrive after their hold ended are refunded by the
server and count as released.

Thresholds: --max-p99 DURATION holds every route's p99 (from the intended send
time, over the whole run, logins included) to DURATION, each route on its own;
--max-error-rate FRACTION holds the main phase (with its drain) to at most that
share of errors: 5xx answers, timeouts and connection errors over all its
answers (client drops are not answers; 0 allows none). --max-bot-win-ratio X
holds each bot kind's per-account win rate to X times the humans',
--max-bot-unit-share F holds all bots together to a share F of the units
reserved, and --max-human-risk-refused F holds the humans refused by risk
(risk_denied at least once) to a share F of the humans. The report names each
threshold exceeded, and the exit status is 1, as for a failed invariant.

Bots (--bots FRACTION of the accounts) come in kinds, mixed by --bot-kinds
(default basic): basic (a shared or no device, one address, no think time,
retries at once), sprinter (fires at the opening from a session logged in
ahead, again at once until it wins, up to --sprinter-tries), farm
(--farm-accounts-per-device accounts a device, --farm-devices-per-ip devices
an address, logged in just before the sale), rotator (a new device id on every
request), replayer (one captured page token and Idempotency-Key replayed by all
its accounts) and mimic (loads the page and thinks like a human, many accounts
on the farm's few devices and addresses). Humans have a device each, share an
address in households of at most three, load the store page, think
--page-think-min..--page-think-max and reserve carrying the page token the
server gave (X-Surge-Page-Token; none when it gave none). The report shows
each kind's share of the crowd and of the units, its win rate per account and
the ratio to the humans', and the humans refused by risk.

Exit status: 0 when the run completed, every invariant held and no threshold
was exceeded, 1 when an invariant failed or a threshold was exceeded, 2 for
usage or connection errors.

Examples:
  surge loadtest --target http://127.0.0.1:8080 --admin-token $TOKEN \
      --scenario flash --setup --users 5000 --rate 2000 --duration 30s --bots 0.1 \
      --report out.json --html plot.html
  surge loadtest --target http://127.0.0.1:8080 --admin-token $TOKEN --scenario flash --setup \
      --users 2000 --rate 400 --bots 0.2 --bot-kinds sprinter,farm,rotator,replayer,mimic \
      --max-bot-win-ratio 0.5 --max-bot-unit-share 0.1 --max-human-risk-refused 0.01
  surge loadtest --target http://127.0.0.1:8080 --admin-token $TOKEN --scenario mix \
      --rate 500 --ramp 10s --spike-at 20s --spike-for 5s --spike-factor 10
  surge wechatpay-test-keys ./wx-test-keys     # prints the matching serve settings
  surge loadtest --target http://127.0.0.1:8080 --admin-token $TOKEN --scenario flash --setup \
      --wechatpay-test-keys ./wx-test-keys --wechatpay-addr 127.0.0.1:8090`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.AdminToken == "" {
				cfg.AdminToken = os.Getenv("SURGE_ADMIN_TOKEN")
			}
			cfg.Stores, cfg.SKUs, cfg.Guides = stores, skus, gdes
			if cfg.PayShare == 0 && cfg.CancelShare == 0 {
				cfg.AllExpire = true // --pay 0 --cancel 0: everybody walks away
			}
			if !quiet {
				cfg.Progress = cmd.ErrOrStderr()
			}
			if cmd.Flags().Changed("max-error-rate") {
				cfg.MaxErrorRate = &maxErrorRate
			}
			if cmd.Flags().Changed("max-bot-win-ratio") {
				cfg.MaxBotWinRatio = &maxBotWinRatio
			}
			if cmd.Flags().Changed("max-bot-unit-share") {
				cfg.MaxBotUnitShare = &maxBotUnitShare
			}
			if cmd.Flags().Changed("max-human-risk-refused") {
				cfg.MaxHumanRiskRefused = &maxHumanRefused
			}
			if err := cfg.Validate(); err != nil {
				return usageErr(err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := loadtest.Run(ctx, cfg)
			if err != nil {
				if errors.Is(err, context.Canceled) {
					err = fmt.Errorf("interrupted: %w", err)
				}
				return usageErr(err)
			}
			if err := writeReports(rep, cmd.OutOrStdout(), reportPath, html); err != nil {
				return usageErr(err)
			}
			if code := rep.ExitCode(); code != 0 {
				return &exitError{code: code, err: errors.New(rep.Verdict())}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Target, "target", "", "base URL of the server, e.g. http://127.0.0.1:8080 (required)")
	f.StringVar(&cfg.AdminToken, "admin-token", "", "admin bearer token (default $SURGE_ADMIN_TOKEN)")
	f.StringVar(&cfg.Scenario, "scenario", "", "flash, browse, group, checkout or mix (required)")
	f.IntVar(&cfg.Users, "users", 1000, "distinct users (accounts)")
	f.Float64Var(&cfg.Rate, "rate", 100, "arrivals (user flows) per second")
	f.Float64Var(&cfg.RampFrom, "ramp-from", 0, "rate at the start of the ramp")
	f.DurationVar(&cfg.Ramp, "ramp", 0, "ramp from --ramp-from to --rate over this long (0: no ramp)")
	f.DurationVar(&cfg.SpikeAt, "spike-at", 0, "start of a spike, from the start of the main phase")
	f.DurationVar(&cfg.SpikeFor, "spike-for", 0, "length of the spike (0: no spike)")
	f.Float64Var(&cfg.SpikeFactor, "spike-factor", 10, "rate multiplier during the spike")
	f.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long arrivals are generated")
	f.Float64Var(&cfg.Bots, "bots", 0, "share of users that are bots, 0..1")
	f.Float64Var(&cfg.BotWeight, "bot-weight", 3, "a bot arrives this many times as often as a human")
	f.IntVar(&cfg.BotRetries, "bot-retries", 5, "retries a bot makes, ignoring Retry-After")
	f.IntVar(&cfg.HumanRetries, "human-retries", 2, "retries a human makes, after Retry-After")
	f.StringVar(&cfg.BotKinds, "bot-kinds", "basic", "the bots' kinds, mixed: basic, sprinter, farm, rotator, replayer, mimic; e.g. sprinter,farm or sprinter=1,farm=2")
	f.IntVar(&cfg.FarmAccountsPerDevice, "farm-accounts-per-device", 4, "farm and mimic bots: accounts sharing one device id")
	f.IntVar(&cfg.FarmDevicesPerIP, "farm-devices-per-ip", 25, "farm and mimic bots: devices behind one address (sprinters, rotators, replayers: accounts)")
	f.DurationVar(&cfg.LoginLead, "login-lead", 0, "everybody but the farm bots logs in this long before the farm and the sale (account age)")
	f.IntVar(&cfg.SprinterTries, "sprinter-tries", 50, "attempts a sprinter bot makes from the opening, without a pause")
	f.DurationVar(&cfg.PageThinkMin, "page-think-min", 500*time.Millisecond, "shortest time a human (and a mimic bot) looks at the store page before reserving")
	f.DurationVar(&cfg.PageThinkMax, "page-think-max", 3*time.Second, "longest time a human (and a mimic bot) looks at the store page before reserving")
	f.StringVar(&cfg.Arrival, "arrival", "spread", "arrival model: spread (the --rate schedule) or countdown (--scenario flash: every account once; people load the page during the countdown and tap after the opening, bots at the opening millisecond)")
	f.DurationVar(&cfg.CountdownSpread, "countdown-spread", time.Second, "--arrival countdown: mean of a person's reaction after the opening beyond 150ms (exponential)")
	f.BoolVar(&cfg.Setup, "setup", false, "create a fresh catalog, flash sale and group deal through the admin API")
	f.StringVar(&cfg.SaleID, "sale", "", "existing flash sale to use (default: discovered from the admin stats)")
	f.StringVar(&cfg.DealID, "deal", "", "existing group deal to use (default: discovered from the admin stats)")
	f.StringSliceVar(&stores, "stores", nil, "stores to browse and check out from (default: discovered)")
	f.StringSliceVar(&skus, "skus", nil, "SKUs to put in carts (default: discovered)")
	f.StringSliceVar(&gdes, "guides", nil, "guides as store:guide pairs")
	f.IntVar(&cfg.SetupStores, "setup-stores", 20, "--setup: stores to create")
	f.IntVar(&cfg.SaleQuantity, "sale-quantity", 0, "--setup: units in the flash sale (default users/4)")
	f.IntVar(&cfg.PerUserLimit, "per-user-limit", 0, "the sale's per-user limit (default: the sale's own; 1 with --setup)")
	f.IntVar(&cfg.HoldSeconds, "hold", 5, "--setup: seconds a reservation is held")
	f.DurationVar(&cfg.StartIn, "start-in", time.Second, "--setup: the sale starts this long after the logins")
	f.IntVar(&cfg.DealQuantity, "deal-quantity", 0, "--setup: units in the group deal (default users/4)")
	f.IntVar(&cfg.TeamSize, "team-size", 3, "--setup: members a team needs")
	f.DurationVar(&cfg.TeamWindow, "team-window", 5*time.Second, "--setup: time a team has to form")
	f.Float64Var(&cfg.PayShare, "pay", 0.6, "share of buyers who pay")
	f.Float64Var(&cfg.CancelShare, "cancel", 0.2, "share of buyers who cancel (the rest let the hold expire)")
	f.DurationVar(&cfg.ThinkMax, "think", 300*time.Millisecond, "longest human think time")
	f.IntVar(&cfg.Browsers, "browsers", 1024, "distinct browser caches revalidating store pages")
	f.StringVar(&cfg.WeChatPayTestKeys, "wechatpay-test-keys", "", "pay through a fake WeChat Pay with the TEST keys of this directory (surge wechatpay-test-keys); needs --wechatpay-addr")
	f.StringVar(&cfg.WeChatPayAddr, "wechatpay-addr", "", "host:port the fake WeChat Pay listens on: what the server's payment.base_url names")
	f.Int64Var(&cfg.Seed, "seed", 1, "seed for the users' choices")
	f.IntVar(&cfg.MaxRequests, "max-requests", 1_000_000, "cap on arrivals in the main phase")
	f.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "per-request timeout")
	f.IntVar(&cfg.InFlightMax, "inflight", 4096, "cap on concurrent user flows; arrivals above it count as client_drop")
	f.IntVar(&cfg.Conns, "conns", 256, "cap on connections to the target")
	f.Float64Var(&cfg.LoginRate, "login-rate", 0, "logins per second before the main phase (default max(rate, 500))")
	f.DurationVar(&cfg.DrainMax, "drain", 15*time.Second, "longest wait for running flows after the last arrival")
	f.DurationVar(&cfg.StartWaitMax, "start-wait", 2*time.Minute, "longest wait for the sale to start")
	f.DurationVar(&cfg.SettleMax, "settle", time.Minute, "longest wait for holds to expire before the stuck-stock check")
	f.DurationVar(&cfg.OrderWaitMax, "order-wait", 20*time.Second, "longest wait for the order writer")
	f.DurationVar(&cfg.MaxP99, "max-p99", 0, "fail (exit 1) when any route's p99 is above this, e.g. 200ms (0: no threshold)")
	f.Float64Var(&maxErrorRate, "max-error-rate", 0, "fail (exit 1) when the main phase's errors (5xx, timeouts, connection errors) over its answers exceed this fraction, e.g. 0.01 (unset: no threshold)")
	f.Float64Var(&maxBotWinRatio, "max-bot-win-ratio", 0, "fail (exit 1) when a bot kind's per-account win rate is above this multiple of the humans', e.g. 0.5 (unset: no threshold)")
	f.Float64Var(&maxBotUnitShare, "max-bot-unit-share", 0, "fail (exit 1) when the bots (all kinds) reserve more than this share of the units, e.g. 0.1 (unset: no threshold)")
	f.Float64Var(&maxHumanRefused, "max-human-risk-refused", 0, "fail (exit 1) when more than this share of the humans were refused by risk (risk_denied), e.g. 0.01 (unset: no threshold)")
	f.StringVar(&reportPath, "report", "", "write the JSON report here")
	f.StringVar(&html, "html", "", "write a self-contained HTML report (settings, charts, routes, outcomes, bots, sale totals, invariants) here")
	f.BoolVar(&quiet, "quiet", false, "no progress line on stderr")
	return cmd
}

// writeReports prints the summary and writes the files asked for.
func writeReports(rep *loadtest.Report, stdout io.Writer, reportPath, htmlPath string) error {
	if err := rep.WriteText(stdout); err != nil {
		return err
	}
	write := func(path string, fn func(io.Writer) error) error {
		if path == "" {
			return nil
		}
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("cannot write the report: %w", err)
		}
		if err := fn(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("cannot write %s: %w", path, err)
		}
		return nil
	}
	if err := write(reportPath, rep.WriteJSON); err != nil {
		return err
	}
	return write(htmlPath, rep.WriteHTML)
}
