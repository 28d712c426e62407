package loadtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// Sentinel errors. Errors wrapping ErrUsage or ErrConnect map to exit code 2.
var (
	// ErrUsage: the configuration is invalid or names something that does
	// not exist on the server.
	ErrUsage = errors.New("loadtest: bad usage")
	// ErrConnect: the target could not be reached or answered nonsense
	// during setup.
	ErrConnect = errors.New("loadtest: cannot talk to the target")
)

// Scenario names.
const (
	ScenarioFlash    = "flash"
	ScenarioBrowse   = "browse"
	ScenarioGroup    = "group"
	ScenarioCheckout = "checkout"
	ScenarioMix      = "mix"
)

// Bounds on what a run may do; a Config above them is refused.
const (
	usersMax          = 1_000_000
	rateMax           = 1_000_000.0
	durationMax       = time.Hour
	requestsMax       = 50_000_000
	inFlightMax       = 100_000
	connsMax          = 10_000
	waitMax           = 30 * time.Minute
	storesSetupMax    = 1000
	orderChecksMax    = 50_000
	bodyReadBytesMax  = 4 << 20 // responses larger than this are cut (and counted as errors)
	teamsTrackedMax   = 4096
	etagCacheMax      = 65_536
	retriesMax        = 20
	retryAfterWaitMax = 10 * time.Second
	browsersMax       = 1_000_000
)

// Config describes one run. The zero value of each field means its
// documented default; Target and Scenario are required.
type Config struct {
	// Target is the server's base URL, e.g. "http://127.0.0.1:8080". Only
	// this address is ever contacted (no proxies, no redirects elsewhere),
	// besides the notify_url the server gives its WeChat Pay orders when
	// WeChatPayTestKeys is set.
	Target string
	// AdminToken is the admin bearer token. Needed for Setup, for
	// discovering sales/deals/stores, and for the invariant check.
	AdminToken string
	// Scenario is flash, browse, group, checkout or mix.
	Scenario string
	// Users is the number of distinct users (accounts). Default 1000.
	Users int
	// Rate is the steady arrival rate of user flows per second. Default 100.
	Rate float64
	// RampFrom and Ramp: the rate grows linearly from RampFrom to Rate over
	// the first Ramp of the run. Default: no ramp.
	RampFrom float64
	Ramp     time.Duration
	// SpikeAt, SpikeFor, SpikeFactor: from SpikeAt for SpikeFor the rate is
	// multiplied by SpikeFactor. Default: no spike.
	SpikeAt     time.Duration
	SpikeFor    time.Duration
	SpikeFactor float64
	// Duration is how long arrivals are generated. Default 30s, max 1h.
	Duration time.Duration
	// Bots is the share of users that are bots, 0..1. Default 0.
	Bots float64
	// BotWeight: a bot user arrives this many times as often as a human.
	// Default 3.
	BotWeight float64
	// BotRetries: retries a bot makes on 429/503/errors, ignoring
	// Retry-After. Default 5. HumanRetries: retries a human makes, after
	// Retry-After. Default 2.
	BotRetries   int
	HumanRetries int
	// BotKinds is the mix of bot kinds: "sprinter,farm" (equal shares) or
	// weighted, "sprinter=1,farm=2"; kinds are basic, sprinter, farm,
	// rotator, replayer and mimic (see newUsers and doc.go). Default
	// "basic", the load tester's first bot.
	BotKinds string
	// FarmAccountsPerDevice and FarmDevicesPerIP shape the farm (and the
	// mimics): N accounts share a device id, M devices an address
	// (X-Forwarded-For); sprinters, rotators and replayers put M accounts
	// on an address. Defaults 4 and 25: just under the server's default
	// linkage thresholds (5 and 30), as a farm that knows them would.
	FarmAccountsPerDevice int
	FarmDevicesPerIP      int
	// LoginLead: everybody but the farm logs in this long before the
	// farm's accounts and the sale (accounts made well ahead against
	// accounts made just before; a sale's minimum account age tells them
	// apart). Default 0: the farm logs in right after the others.
	LoginLead time.Duration
	// SprinterTries caps a sprinter's attempts. Default 50.
	SprinterTries int
	// PageThinkMin and PageThinkMax: a person waits a uniform time in
	// [PageThinkMin, PageThinkMax] between the store page showing and
	// the reserve (mimics too). Defaults 500ms and 3s.
	PageThinkMin time.Duration
	PageThinkMax time.Duration
	// Arrival is the main phase's arrival model: ArrivalSpread (default)
	// or ArrivalCountdown (flash scenario only: each account once around
	// the opening, countdown.go). CountdownSpread is the mean of a
	// person's reaction after the opening beyond its 150 ms minimum
	// (exponential; default 1s).
	Arrival         string
	CountdownSpread time.Duration

	// Setup creates a fresh catalog, flash sale and group deal through the
	// admin API (ids prefixed with a per-run tag) instead of using existing
	// ones. Default false: use SaleID/DealID/Stores, or discover them from
	// GET /admin/v1/stats.
	Setup bool
	// SaleID, DealID: the existing flash sale / group deal to use.
	SaleID string
	DealID string
	// Stores to browse and check out from; SKUs to put in carts. Default:
	// discovered from the stats' listings.
	Stores []string
	SKUs   []string
	// Guides to attach to storefront visits and reservations. Default:
	// from Setup, else none.
	Guides []string

	// Setup parameters. SetupStores: stores created (default 20, max 1000).
	// SaleQuantity: units in the flash sale (default Users/4, at least 1).
	// PerUserLimit: the sale's per-user limit (default 1; for an existing
	// sale, taken from the sale when the server shows it). HoldSeconds: the
	// sale's hold time (default 5). StartIn: the sale starts this long after
	// the logins finished (default 1s). DealQuantity: units in the group deal
	// (default Users/4). TeamSize: default 3. TeamWindow: default 5s.
	SetupStores  int
	SaleQuantity int
	PerUserLimit int
	HoldSeconds  int
	StartIn      time.Duration
	DealQuantity int
	TeamSize     int
	TeamWindow   time.Duration

	// PayShare and CancelShare: of the buyers who got a reservation, the
	// share that pays and the share that cancels; the rest let the hold
	// expire. When both are zero the defaults 0.6 and 0.2 apply, unless
	// AllExpire is set: then every buyer lets the hold expire.
	PayShare    float64
	CancelShare float64
	AllExpire   bool
	// ThinkMax: humans wait a random time up to ThinkMax before paying,
	// cancelling or their next page. Default 300ms. Bots never wait.
	ThinkMax time.Duration

	// Browsers is how many distinct browser caches the browse flow
	// simulates; a browser that saw a page sends If-None-Match next time.
	// Default 1024.
	Browsers int

	// WeChatPayTestKeys is a directory of TEST keys written by `surge
	// wechatpay-test-keys` (wechatpaytest.WriteKeys). When set, the run
	// starts a fake WeChat Pay on WeChatPayAddr with them, and every buyer
	// pays as on a server with payment.provider=wechat: POST .../prepay,
	// then the fake WeChat Pay marks the order paid and posts the signed
	// notification to the order's notify_url. Default: none, buyers pay
	// with POST .../pay (payment.provider=dev).
	WeChatPayTestKeys string
	// WeChatPayAddr is the "host:port" the fake WeChat Pay listens on: the
	// address the server's payment.base_url names. Required with
	// WeChatPayTestKeys.
	WeChatPayAddr string

	// Seed makes user choices reproducible. Default 1.
	Seed int64
	// MaxRequests caps arrivals (user flows) in the main phase. Default
	// 1,000,000.
	MaxRequests int
	// Timeout per HTTP request. Default 5s.
	Timeout time.Duration
	// InFlightMax caps concurrent user flows; arrivals above it are counted
	// as client_drop. Default 4096.
	InFlightMax int
	// Conns caps TCP connections to the target. Default 256.
	Conns int
	// LoginRate is the arrival rate of the login phase. Default
	// max(Rate, 500).
	LoginRate float64

	// DrainMax bounds the wait for flows still running when arrivals stop.
	// Default 15s. StartWaitMax bounds the wait for a sale to start.
	// Default 2m. SettleMax bounds the wait for holds to expire before the
	// stuck-stock check. Default 60s. OrderWaitMax bounds the wait for the
	// async order writer. Default 20s.
	DrainMax     time.Duration
	StartWaitMax time.Duration
	SettleMax    time.Duration
	OrderWaitMax time.Duration

	// MaxP99: when above 0, every route whose p99 (from the intended send
	// time, over the whole run) is above it fails the run: the report
	// names the route and ExitCode is 1. Default: no threshold.
	MaxP99 time.Duration
	// MaxErrorRate: when set, a main phase (with its drain) whose errors
	// (5xx answers, timeouts, connection errors) over all its answers are
	// above it fails the run (ExitCode 1). Client drops are not answers.
	// Default nil: no threshold; 0 allows no error at all.
	MaxErrorRate *float64
	// MaxBotWinRatio: when set, a bot kind whose per-account win rate is
	// above this multiple of the humans' fails the run, each kind on its
	// own. MaxBotUnitShare: when set, the bots (all kinds) taking a larger
	// share of the units reserved fails it. MaxHumanRiskRefused: when set,
	// a larger share of the human accounts refused by risk (risk_denied)
	// at least once fails it. Default nil: no threshold.
	MaxBotWinRatio      *float64
	MaxBotUnitShare     *float64
	MaxHumanRiskRefused *float64

	// Progress receives a live progress line once per second. Default: none.
	Progress io.Writer
}

// withDefaults returns a copy of c with defaults filled in.
func (c Config) withDefaults() Config {
	if c.Users == 0 {
		c.Users = 1000
	}
	if c.Rate == 0 {
		c.Rate = 100
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.BotWeight == 0 {
		c.BotWeight = 3
	}
	if c.BotRetries == 0 {
		c.BotRetries = 5
	}
	if c.HumanRetries == 0 {
		c.HumanRetries = 2
	}
	if c.FarmAccountsPerDevice == 0 {
		c.FarmAccountsPerDevice = farmAccountsPerDeviceDefault
	}
	if c.FarmDevicesPerIP == 0 {
		c.FarmDevicesPerIP = farmDevicesPerIPDefault
	}
	if c.SprinterTries == 0 {
		c.SprinterTries = sprinterTriesDefault
	}
	if c.Arrival == "" {
		c.Arrival = ArrivalSpread
	}
	if c.CountdownSpread == 0 {
		c.CountdownSpread = countdownSpreadDefault
	}
	if c.PageThinkMin == 0 && c.PageThinkMax == 0 {
		c.PageThinkMin, c.PageThinkMax = pageThinkMinDefault, pageThinkMaxDefault
	}
	if c.SetupStores == 0 {
		c.SetupStores = 20
	}
	if c.SaleQuantity == 0 {
		c.SaleQuantity = max(c.Users/4, 1)
	}
	if c.DealQuantity == 0 {
		c.DealQuantity = max(c.Users/4, 1)
	}
	if c.HoldSeconds == 0 {
		c.HoldSeconds = 5
	}
	if c.StartIn == 0 {
		c.StartIn = time.Second
	}
	if c.TeamSize == 0 {
		c.TeamSize = 3
	}
	if c.TeamWindow == 0 {
		c.TeamWindow = 5 * time.Second
	}
	if c.PayShare == 0 && c.CancelShare == 0 && !c.AllExpire {
		c.PayShare, c.CancelShare = 0.6, 0.2
	}
	if c.ThinkMax == 0 {
		c.ThinkMax = 300 * time.Millisecond
	}
	if c.Browsers == 0 {
		c.Browsers = 1024
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.MaxRequests == 0 {
		c.MaxRequests = 1_000_000
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.InFlightMax == 0 {
		c.InFlightMax = 4096
	}
	if c.Conns == 0 {
		c.Conns = 256
	}
	if c.LoginRate == 0 {
		c.LoginRate = max(c.Rate, 500)
	}
	if c.DrainMax == 0 {
		c.DrainMax = 15 * time.Second
	}
	if c.StartWaitMax == 0 {
		c.StartWaitMax = 2 * time.Minute
	}
	if c.SettleMax == 0 {
		c.SettleMax = 60 * time.Second
	}
	if c.OrderWaitMax == 0 {
		c.OrderWaitMax = 20 * time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// Validate reports what is wrong with c (after defaults), wrapping ErrUsage.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
	}
	if c.Target == "" {
		return bad("--target is required")
	}
	u, err := url.Parse(c.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("--target %q is not an http(s) base URL", c.Target)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return bad("--target %q must be a plain base URL", c.Target)
	}
	switch c.Scenario {
	case ScenarioFlash, ScenarioBrowse, ScenarioGroup, ScenarioCheckout, ScenarioMix:
	case "":
		return bad("--scenario is required (flash, browse, group, checkout or mix)")
	default:
		return bad("unknown scenario %q (want flash, browse, group, checkout or mix)", c.Scenario)
	}
	switch {
	case c.Users < 1 || c.Users > usersMax:
		return bad("--users %d out of range 1..%d", c.Users, usersMax)
	case !(c.Rate > 0) || c.Rate > rateMax:
		return bad("--rate %v out of range (0, %v]", c.Rate, rateMax)
	case c.RampFrom < 0 || c.RampFrom > rateMax:
		return bad("--ramp-from %v out of range [0, %v]", c.RampFrom, rateMax)
	case c.Ramp < 0 || c.Ramp > durationMax:
		return bad("--ramp %v out of range", c.Ramp)
	case c.SpikeAt < 0 || c.SpikeFor < 0 || c.SpikeFactor < 0 || c.SpikeFactor*c.Rate > rateMax:
		return bad("spike (--spike-at %v --spike-for %v --spike-factor %v) out of range", c.SpikeAt, c.SpikeFor, c.SpikeFactor)
	case c.Duration <= 0 || c.Duration > durationMax:
		return bad("--duration %v out of range (0, %v]", c.Duration, durationMax)
	case !(c.Bots >= 0 && c.Bots <= 1):
		return bad("--bots %v out of range 0..1", c.Bots)
	case c.BotWeight <= 0 || c.BotWeight > 1000:
		return bad("--bot-weight %v out of range (0, 1000]", c.BotWeight)
	case c.BotRetries < 0 || c.BotRetries > retriesMax || c.HumanRetries < 0 || c.HumanRetries > retriesMax:
		return bad("retries out of range 0..%d", retriesMax)
	case c.SetupStores < 1 || c.SetupStores > storesSetupMax:
		return bad("--setup-stores %d out of range 1..%d", c.SetupStores, storesSetupMax)
	case c.SaleQuantity < 1 || c.DealQuantity < 1 || c.PerUserLimit < 0 || c.HoldSeconds < 1 || c.TeamSize < 2:
		return bad("setup parameters out of range (quantities >= 1, hold >= 1s, team size >= 2)")
	case c.StartIn < 0 || c.TeamWindow <= 0:
		return bad("--start-in and --team-window must not be negative")
	case c.PayShare < 0 || c.CancelShare < 0 || c.PayShare+c.CancelShare > 1:
		return bad("--pay %v and --cancel %v must be shares summing to at most 1", c.PayShare, c.CancelShare)
	case c.ThinkMax < 0 || c.ThinkMax > time.Minute:
		return bad("--think %v out of range", c.ThinkMax)
	case c.Browsers < 1 || c.Browsers > browsersMax:
		return bad("--browsers %d out of range 1..%d", c.Browsers, browsersMax)
	case c.MaxRequests < 1 || c.MaxRequests > requestsMax:
		return bad("--max-requests %d out of range 1..%d", c.MaxRequests, requestsMax)
	case c.Timeout <= 0 || c.Timeout > time.Minute:
		return bad("--timeout %v out of range (0, 1m]", c.Timeout)
	case c.InFlightMax < 1 || c.InFlightMax > inFlightMax:
		return bad("--inflight %d out of range 1..%d", c.InFlightMax, inFlightMax)
	case c.Conns < 1 || c.Conns > connsMax:
		return bad("--conns %d out of range 1..%d", c.Conns, connsMax)
	case !(c.LoginRate > 0) || c.LoginRate > rateMax:
		return bad("--login-rate %v out of range", c.LoginRate)
	case c.MaxP99 < 0:
		return bad("--max-p99 %v must not be negative", c.MaxP99)
	case c.MaxErrorRate != nil && !(*c.MaxErrorRate >= 0 && *c.MaxErrorRate <= 1):
		return bad("--max-error-rate %v out of range 0..1", *c.MaxErrorRate)
	case c.FarmAccountsPerDevice < 1 || c.FarmAccountsPerDevice > farmShapeMax || c.FarmDevicesPerIP < 1 || c.FarmDevicesPerIP > farmShapeMax:
		return bad("--farm-accounts-per-device %d and --farm-devices-per-ip %d must be in 1..%d", c.FarmAccountsPerDevice, c.FarmDevicesPerIP, farmShapeMax)
	case c.LoginLead < 0 || c.LoginLead > waitMax:
		return bad("--login-lead %v out of range 0..%v", c.LoginLead, waitMax)
	case c.SprinterTries < 1 || c.SprinterTries > sprinterTriesMax:
		return bad("--sprinter-tries %d out of range 1..%d", c.SprinterTries, sprinterTriesMax)
	case c.Arrival != "" && c.Arrival != ArrivalSpread && c.Arrival != ArrivalCountdown:
		return bad("--arrival %q: want %s or %s", c.Arrival, ArrivalSpread, ArrivalCountdown)
	case c.Arrival == ArrivalCountdown && c.Scenario != ScenarioFlash:
		return bad("--arrival %s is for --scenario %s", ArrivalCountdown, ScenarioFlash)
	case c.CountdownSpread < 0 || c.CountdownSpread > countdownSpreadMax:
		return bad("--countdown-spread %v out of range 0..%v", c.CountdownSpread, countdownSpreadMax)
	case c.PageThinkMin < 0 || c.PageThinkMax < c.PageThinkMin || c.PageThinkMax > time.Minute:
		return bad("--page-think-min %v and --page-think-max %v: want 0 <= min <= max <= 1m", c.PageThinkMin, c.PageThinkMax)
	case c.MaxBotWinRatio != nil && !(*c.MaxBotWinRatio >= 0 && *c.MaxBotWinRatio <= 1000):
		return bad("--max-bot-win-ratio %v out of range 0..1000", *c.MaxBotWinRatio)
	case c.MaxBotUnitShare != nil && !(*c.MaxBotUnitShare >= 0 && *c.MaxBotUnitShare <= 1):
		return bad("--max-bot-unit-share %v out of range 0..1", *c.MaxBotUnitShare)
	case c.MaxHumanRiskRefused != nil && !(*c.MaxHumanRiskRefused >= 0 && *c.MaxHumanRiskRefused <= 1):
		return bad("--max-human-risk-refused %v out of range 0..1", *c.MaxHumanRiskRefused)
	}
	if _, err := parseBotKinds(c.BotKinds); err != nil {
		return bad("--bot-kinds: %v", err)
	}
	for _, d := range []time.Duration{c.DrainMax, c.StartWaitMax, c.SettleMax, c.OrderWaitMax} {
		if d < 0 || d > waitMax {
			return bad("wait bounds must be within 0..%v", waitMax)
		}
	}
	for _, id := range append(append(append([]string{c.SaleID, c.DealID}, c.Stores...), c.SKUs...), c.Guides...) {
		if strings.ContainsAny(id, "/?#% \t\r\n") {
			return bad("id %q contains characters not allowed in a path", id)
		}
	}
	if c.Setup && c.AdminToken == "" {
		return bad("--setup needs --admin-token")
	}
	switch {
	case c.WeChatPayTestKeys == "" && c.WeChatPayAddr != "":
		return bad("--wechatpay-addr needs --wechatpay-test-keys")
	case c.WeChatPayTestKeys != "" && c.WeChatPayAddr == "":
		return bad("--wechatpay-test-keys needs --wechatpay-addr (the host:port the server's payment.base_url names)")
	case c.WeChatPayAddr != "":
		if _, port, err := net.SplitHostPort(c.WeChatPayAddr); err != nil || port == "" {
			return bad("--wechatpay-addr %q is not host:port", c.WeChatPayAddr)
		}
	}
	return nil
}

// needsUsers reports whether the scenario logs users in.
func (c Config) needsUsers() bool { return c.Scenario != ScenarioBrowse }
