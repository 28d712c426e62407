// Package realtest runs the load tester's bots and humans against the real
// engine and gateway, in process, over loopback, and checks what the
// gateway received from each kind. The loadtest package itself may not
// import Surge (it knows only HTTP); these tests sit beside it for that.
package realtest_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/gateway"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/loadtest"
)

const adminToken = "realtest-admin-token-0123456789"

// seen is one request as the gateway received it.
type seen struct {
	at      time.Time // received
	method  string
	path    string
	bearer  string // Authorization without "Bearer "
	device  string // X-Device-Id
	xff     string // X-Forwarded-For
	key     string // Idempotency-Key
	page    string // X-Surge-Page-Token sent
	code    string // login: the code; else ""
	session string // login: the token handed out
	gave    string // store page: the X-Surge-Page-Token handed out
	outcome int    // the envelope's code, -1 without one
}

func (s seen) reserve() bool { return s.method == "POST" && strings.HasSuffix(s.path, "/reservations") }
func (s seen) pageView() bool {
	return s.method == "GET" && strings.HasPrefix(s.path, "/api/v1/stores/") && strings.HasSuffix(s.path, "/page")
}
func (s seen) login() bool { return s.method == "POST" && s.path == "/api/v1/session" }

// userCall: a call a user makes (login, page, reserve, pay, cancel), not
// the load tester's own reads when it checks the invariants.
func (s seen) userCall() bool {
	return s.pageView() || s.method == "POST" && strings.HasPrefix(s.path, "/api/v1/")
}

// gw is the real gateway behind a handler that records every request.
type gw struct {
	base string
	// tokens: hand out an X-Surge-Page-Token with every store page that has
	// none, as the server's page-view token will (the contract with the risk
	// side); false: the server gives none.
	tokens bool

	mu   sync.Mutex
	reqs []seen
	n    int
}

func startGateway(t *testing.T, tokens bool) *gw {
	t.Helper()
	// The humans here think 100-150 ms after a page view: the hook's
	// minimum token age is set under that (its default, 300 ms, is a
	// person's; these tests are about the client's behaviour).
	return startGatewayRisk(t, tokens, engine.RiskConfig{PageTokenMinAge: 50 * time.Millisecond})
}

// startGatewayRisk is startGateway with the risk hook's configuration.
func startGatewayRisk(t *testing.T, tokens bool, rc engine.RiskConfig) *gw {
	t.Helper()
	store := inventory.NewMemory(inventory.Options{})
	risk, err := engine.NewRiskHook(rc)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(context.Background(), engine.Options{Store: store, Risk: risk})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(gateway.Options{
		Engine: eng, AdminToken: adminToken, SessionSecret: []byte("realtest-session-secret-0123456789"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	g := &gw{tokens: tokens}
	next := srv.Handler()
	hs := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		s := seen{at: time.Now(), method: string(ctx.Method()), path: string(ctx.Path()),
			bearer: strings.TrimPrefix(string(ctx.Request.Header.Peek("Authorization")), "Bearer "),
			device: string(ctx.Request.Header.Peek("X-Device-Id")), xff: string(ctx.Request.Header.Peek("X-Forwarded-For")),
			key: string(ctx.Request.Header.Peek("Idempotency-Key")), page: string(ctx.Request.Header.Peek("X-Surge-Page-Token"))}
		if s.login() {
			var b struct{ Code string }
			_ = json.Unmarshal(ctx.PostBody(), &b)
			s.code = b.Code
		}
		next(ctx)
		var env struct {
			Code *int `json:"code"`
			Data struct {
				Token string `json:"token"`
			} `json:"data"`
		}
		s.outcome = -1
		if json.Unmarshal(ctx.Response.Body(), &env) == nil && env.Code != nil {
			s.outcome = *env.Code
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if s.login() {
			s.session = env.Data.Token
		}
		if !g.tokens {
			// A server that hands out no page token (an older Surge, or
			// a proxy that drops the header).
			ctx.Response.Header.Del("X-Surge-Page-Token")
		}
		if s.pageView() && ctx.Response.StatusCode() == 200 {
			if tok := string(ctx.Response.Header.Peek("X-Surge-Page-Token")); tok != "" {
				s.gave = tok
			} else if g.tokens {
				g.n++
				s.gave = "pt-" + strconv.Itoa(g.n)
				ctx.Response.Header.Set("X-Surge-Page-Token", s.gave)
			}
		}
		g.reqs = append(g.reqs, s)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		_ = hs.Shutdown()
		_ = eng.Close()
		_ = store.Close()
	})
	g.base = "http://" + ln.Addr().String()
	return g
}

// requests returns what the gateway received so far.
func (g *gw) requests() []seen {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]seen(nil), g.reqs...)
}

// accounts maps each session token handed out to its login code.
func accounts(reqs []seen) map[string]string {
	m := map[string]string{}
	for _, s := range reqs {
		if s.login() && s.session != "" {
			m[s.session] = s.code
		}
	}
	return m
}

// run is a short flash sale with a fresh catalog: everybody who wins pays.
func run(t *testing.T, g *gw, users int, bots float64, kinds string, edit func(*loadtest.Config)) *loadtest.Report {
	t.Helper()
	cfg := loadtest.Config{
		Target: g.base, AdminToken: adminToken, Scenario: loadtest.ScenarioFlash, Setup: true, SetupStores: 1,
		Users: users, Rate: 200, Duration: 400 * time.Millisecond, Bots: bots, BotKinds: kinds,
		SaleQuantity: users, PerUserLimit: 1, StartIn: 300 * time.Millisecond, HoldSeconds: 5,
		PayShare: 1, ThinkMax: time.Millisecond, PageThinkMin: 100 * time.Millisecond, PageThinkMax: 150 * time.Millisecond,
		Timeout: 5 * time.Second, DrainMax: 10 * time.Second, SettleMax: 5 * time.Second, OrderWaitMax: 5 * time.Second,
		LoginRate: 2000,
	}
	if edit != nil {
		edit(&cfg)
	}
	rep, err := loadtest.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Invariants.OK {
		t.Errorf("invariants: %+v", rep.Invariants.Violations)
	}
	return rep
}

func kindOf(t *testing.T, rep *loadtest.Report, kind string) loadtest.KindReport {
	t.Helper()
	for _, k := range rep.Bots.Kinds {
		if k.Kind == kind {
			return k
		}
	}
	t.Fatalf("the report has no kind %q: %+v", kind, rep.Bots.Kinds)
	return loadtest.KindReport{}
}

// TestHumansViewThePageThinkAndCarryItsToken: every human reserve carries
// a page token the same account was handed by a page view at least
// PageThinkMin earlier, no token is used by two accounts, each human has
// one device, and an address is shared by at most three humans.
func TestHumansViewThePageThinkAndCarryItsToken(t *testing.T) {
	g := startGateway(t, true)
	rep := run(t, g, 30, 0, "", nil)
	reqs := g.requests()
	acct := accounts(reqs)
	gaveTo := map[string]string{}           // page token -> account
	gaveAt := map[string]time.Time{}        // page token -> when its page was asked for
	usedBy := map[string]string{}           // page token -> account that reserved with it
	devices := map[string]map[string]bool{} // account -> devices
	perIP := map[string]map[string]bool{}   // address -> accounts
	reserves := 0
	for _, s := range reqs {
		a := acct[s.bearer]
		if s.login() {
			a = s.code
		}
		if a == "" || !s.userCall() {
			continue
		}
		if devices[a] == nil {
			devices[a] = map[string]bool{}
		}
		devices[a][s.device] = true
		if perIP[s.xff] == nil {
			perIP[s.xff] = map[string]bool{}
		}
		perIP[s.xff][a] = true
		switch {
		case s.pageView():
			if s.gave == "" {
				t.Fatalf("page view without a token handed out: %+v", s)
			}
			gaveTo[s.gave], gaveAt[s.gave] = a, s.at
		case s.reserve():
			reserves++
			if s.page == "" {
				t.Errorf("%s reserved without a page token", a)
				continue
			}
			if gaveTo[s.page] != a {
				t.Errorf("%s reserved with token %q handed to %q", a, s.page, gaveTo[s.page])
			}
			if o := usedBy[s.page]; o != "" && o != a {
				t.Errorf("token %q used by %s and %s", s.page, o, a)
			}
			usedBy[s.page] = a
			if d := s.at.Sub(gaveAt[s.page]); d < 100*time.Millisecond {
				t.Errorf("%s reserved %v after its page view; want at least the 100ms PageThinkMin", a, d)
			}
		}
	}
	if reserves == 0 || rep.Bots.HumanReservations == 0 {
		t.Fatalf("no human reserved (%d reserves seen)", reserves)
	}
	for a, ds := range devices {
		if len(ds) != 1 {
			t.Errorf("human %s used %d devices: %v", a, len(ds), ds)
		}
	}
	for ip, as := range perIP {
		if len(as) > 3 {
			t.Errorf("address %s carries %d humans; households have at most 3", ip, len(as))
		}
	}
	if len(perIP) >= len(devices) {
		t.Errorf("%d addresses for %d humans: no household shares one", len(perIP), len(devices))
	}
}

// TestNoTokenFromTheServerNoTokenSent: when the server hands out no page
// token, nobody sends one.
func TestNoTokenFromTheServerNoTokenSent(t *testing.T) {
	g := startGateway(t, false)
	run(t, g, 20, 0.5, "mimic,replayer", nil)
	views, reserves := 0, 0
	for _, s := range g.requests() {
		if s.pageView() {
			views++
		}
		if s.reserve() {
			reserves++
			if s.page != "" {
				t.Errorf("a reserve carried page token %q the server never gave", s.page)
			}
		}
	}
	if views == 0 || reserves == 0 {
		t.Fatalf("%d page views and %d reserves: nothing to judge", views, reserves)
	}
}

// TestRotatorSendsANewDeviceOnEveryRequest.
func TestRotatorSendsANewDeviceOnEveryRequest(t *testing.T) {
	g := startGateway(t, true)
	rep := run(t, g, 10, 1, "rotator", nil)
	seenDev := map[string]int{}
	n := 0
	for _, s := range g.requests() {
		if !s.userCall() || strings.HasPrefix(s.path, "/admin/") {
			continue
		}
		n++
		if s.device == "" {
			t.Errorf("a rotator sent no device: %+v", s)
		}
		seenDev[s.device]++
	}
	for d, c := range seenDev {
		if c > 1 {
			t.Errorf("device %q sent %d times; a rotator sends a new one per request", d, c)
		}
	}
	if k := kindOf(t, rep, "rotator"); k.Accounts != 10 || k.Attempts == 0 || n < 2*k.Accounts {
		t.Errorf("rotators: %+v, %d requests", k, n)
	}
}

// TestFarmSharesDevicesAndAddressesInItsShape: N accounts a device, M
// devices an address, and the farm logs in LoginLead after everybody else.
func TestFarmSharesDevicesAndAddressesInItsShape(t *testing.T) {
	g := startGateway(t, true)
	rep := run(t, g, 40, 0.75, "farm", func(c *loadtest.Config) {
		c.FarmAccountsPerDevice, c.FarmDevicesPerIP, c.LoginLead = 3, 4, 300*time.Millisecond
	})
	farm := kindOf(t, rep, "farm")
	if farm.Accounts != 30 {
		t.Fatalf("farm accounts %d; want 30", farm.Accounts)
	}
	reqs := g.requests()
	devAccounts := map[string]map[string]bool{}
	ipDevices := map[string]map[string]bool{}
	var lastHumanLogin, firstFarmLogin time.Time
	farmDevice := map[string]bool{}
	for _, s := range reqs {
		if !s.login() {
			continue
		}
		if strings.Contains(s.device, "-farm-") {
			farmDevice[s.device] = true
			if firstFarmLogin.IsZero() || s.at.Before(firstFarmLogin) {
				firstFarmLogin = s.at
			}
		} else if s.at.After(lastHumanLogin) {
			lastHumanLogin = s.at
		}
	}
	acct := accounts(reqs)
	for _, s := range reqs {
		a := acct[s.bearer]
		if s.login() {
			a = s.code
		}
		if a == "" || !farmDevice[s.device] {
			continue
		}
		if devAccounts[s.device] == nil {
			devAccounts[s.device] = map[string]bool{}
		}
		devAccounts[s.device][a] = true
		if ipDevices[s.xff] == nil {
			ipDevices[s.xff] = map[string]bool{}
		}
		ipDevices[s.xff][s.device] = true
	}
	if len(devAccounts) != 10 || len(ipDevices) != 3 {
		t.Errorf("farm: %d devices, %d addresses; want 10 and 3 (30 accounts, 3 a device, 4 devices an address)", len(devAccounts), len(ipDevices))
	}
	for d, as := range devAccounts {
		if len(as) != 3 {
			t.Errorf("device %s: %d accounts; want 3", d, len(as))
		}
	}
	for ip, ds := range ipDevices {
		if len(ds) > 4 {
			t.Errorf("address %s: %d devices; want at most 4", ip, len(ds))
		}
	}
	if d := firstFarmLogin.Sub(lastHumanLogin); d < 300*time.Millisecond {
		t.Errorf("the farm's first login came %v after the humans' last; want at least the 300ms --login-lead", d)
	}
}

// TestReplayerReplaysOneTokenAndKey: the replayers load the page once and
// carry its token and one Idempotency-Key on every reserve, of every
// account.
func TestReplayerReplaysOneTokenAndKey(t *testing.T) {
	g := startGateway(t, true)
	run(t, g, 12, 1, "replayer", nil)
	reqs := g.requests()
	acct := accounts(reqs)
	views, gave := 0, ""
	tokens, keys, who := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range reqs {
		switch {
		case s.pageView():
			views++
			gave = s.gave
		case s.reserve():
			tokens[s.page], keys[s.key] = true, true
			who[acct[s.bearer]] = true
		}
	}
	if views != 1 || gave == "" {
		t.Fatalf("%d page views (token %q); want the one capture", views, gave)
	}
	if len(tokens) != 1 || !tokens[gave] || len(keys) != 1 || keys[""] {
		t.Errorf("reserves carried tokens %v and keys %v; want only %q and one key", tokens, keys, gave)
	}
	if len(who) < 2 {
		t.Errorf("only %d accounts reserved; the replay is across accounts", len(who))
	}
}

// TestSprinterFiresAtTheOpening: every sprinter's first reserve reaches
// the gateway after the logins ended (a session logged in ahead) and
// before any human's (who view the page and think half a second first).
func TestSprinterFiresAtTheOpening(t *testing.T) {
	g := startGateway(t, true)
	rep := run(t, g, 20, 0.5, "sprinter", func(c *loadtest.Config) { c.PageThinkMin, c.PageThinkMax = 500*time.Millisecond, 600*time.Millisecond })
	reqs := g.requests()
	acct := accounts(reqs)
	firstReserve := map[string]time.Time{}
	var firstHuman time.Time
	sprinters := map[string]bool{}
	var lastLogin time.Time
	for _, s := range reqs {
		if s.login() && s.at.After(lastLogin) {
			lastLogin = s.at
		}
		if !s.reserve() {
			continue
		}
		a := acct[s.bearer]
		if strings.Contains(s.device, "-sprinter-") {
			sprinters[a] = true
			if _, ok := firstReserve[a]; !ok {
				firstReserve[a] = s.at
			}
		} else if firstHuman.IsZero() {
			firstHuman = s.at
		}
	}
	if len(sprinters) != 10 || firstHuman.IsZero() {
		t.Fatalf("%d sprinters reserved, first human reserve %v; want all 10 and some human", len(sprinters), firstHuman)
	}
	for a, at := range firstReserve {
		if !at.Before(firstHuman) {
			t.Errorf("sprinter %s first reserved %v after the first human", a, at.Sub(firstHuman))
		}
		if !at.After(lastLogin) {
			t.Errorf("sprinter %s reserved before the logins ended", a)
		}
	}
	// With the risk hook's defaults a flash reserve needs a page token,
	// and a sprinter never views the page: every one is refused.
	k := kindOf(t, rep, "sprinter")
	if k.FirstAttemptMs == nil || k.Winners != 0 || k.RiskRefused != k.Accounts {
		t.Errorf("sprinter report: %+v; want every sprinter refused by risk", k)
	}
	t.Logf("sprinters: first reserve %+.1f ms after the opening, win rate %.2f (humans' ratio %.2fx)", *k.FirstAttemptMs, k.WinRate, k.WinRateRatio)
}

// TestMimicViewsThinksAndShares: a mimic reserves only after a page view
// and a human think time, but its accounts share devices in the farm's
// shape.
func TestMimicViewsThinksAndShares(t *testing.T) {
	g := startGateway(t, true)
	run(t, g, 12, 1, "mimic", func(c *loadtest.Config) { c.FarmAccountsPerDevice, c.FarmDevicesPerIP = 4, 3 })
	reqs := g.requests()
	acct := accounts(reqs)
	gaveAt := map[string]time.Time{}
	devAccounts := map[string]map[string]bool{}
	ips := map[string]bool{}
	reserves := 0
	for _, s := range reqs {
		if s.pageView() {
			gaveAt[s.gave] = s.at
		}
		if !s.reserve() {
			continue
		}
		reserves++
		at, ok := gaveAt[s.page]
		if !ok {
			t.Errorf("a mimic reserved with token %q from no page view", s.page)
		} else if d := s.at.Sub(at); d < 100*time.Millisecond {
			t.Errorf("a mimic reserved %v after its page view; want at least 100ms", d)
		}
		if devAccounts[s.device] == nil {
			devAccounts[s.device] = map[string]bool{}
		}
		devAccounts[s.device][acct[s.bearer]] = true
		ips[s.xff] = true
	}
	if reserves == 0 {
		t.Fatal("no mimic reserved")
	}
	for d, as := range devAccounts {
		if len(as) > 4 {
			t.Errorf("device %s: %d accounts; want at most 4", d, len(as))
		}
	}
	if len(devAccounts) > 3 || len(ips) != 1 {
		t.Errorf("mimics used %d devices on %d addresses; want at most 3 devices on 1 address", len(devAccounts), len(ips))
	}
}

// TestMimicHeldToHalfAHumansRate: against the linkage defaults of `surge
// serve` (5 accounts a device, 30 devices an address, graded from 2 and
// 10, counted at logins too), the mimic's farm (4 accounts a device, 25
// devices an address, page views, a person's think time) wins at most
// half a person's rate, judged by the load tester's own threshold
// (--max-bot-win-ratio 0.5), and no person is refused by risk
// (--max-human-risk-refused 0). The verdict does not depend on timing:
// the farm's accounts are linked to their devices when they log in.
func TestMimicHeldToHalfAHumansRate(t *testing.T) {
	g := startGatewayRisk(t, true, engine.RiskConfig{AccountsPerDevice: 5, DevicesPerIP: 30, PageTokenMinAge: 50 * time.Millisecond})
	half, none := 0.5, 0.0
	rep := run(t, g, 400, 0.5, "mimic", func(c *loadtest.Config) {
		c.SaleQuantity = 100 // a contest: 400 accounts for 100 units
		c.MaxBotWinRatio, c.MaxHumanRiskRefused = &half, &none
	})
	mimic, human := kindOf(t, rep, "mimic"), kindOf(t, rep, "human")
	if mimic.Accounts != 200 || mimic.Attempts == 0 || human.Winners == 0 {
		t.Fatalf("mimic %+v, human %+v: want 200 mimic accounts that reserved, and human winners", mimic, human)
	}
	checks := 0
	for _, c := range rep.Thresholds.Checks {
		if strings.Contains(c.Name, "bot kind mimic") || strings.Contains(c.Name, "refused by risk") {
			checks++
			if !c.OK {
				t.Errorf("threshold %q failed: %s", c.Name, c.Detail)
			}
		}
	}
	if checks != 2 {
		t.Errorf("%d of the 2 thresholds judged: %+v", checks, rep.Thresholds.Checks)
	}
	t.Logf("mimic: %d of %d accounts won (%.2fx the humans' rate), %d refused by risk; humans refused %d",
		mimic.Winners, mimic.Accounts, mimic.WinRateRatio, mimic.RiskRefused, human.RiskRefused)
}
