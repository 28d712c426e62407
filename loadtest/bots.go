package loadtest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// botKind is who a user is: a human, or one kind of bot (Config.BotKinds).
type botKind uint8

const (
	kindHuman    botKind = iota
	kindBasic            // today's script: shared or no device, one address, no think time, retries at once
	kindSprinter         // fires at the opening from a pre-warmed session, retries at once until it wins
	kindFarm             // N accounts a device, M devices an address, logged in just before the sale
	kindRotator          // a new X-Device-Id on every request
	kindReplayer         // replays one captured page token and one Idempotency-Key across accounts
	kindMimic            // loads the page and thinks like a human, many accounts on few devices
	kindsN
)

var kindNames = [kindsN]string{"human", "basic", "sprinter", "farm", "rotator", "replayer", "mimic"}

func (k botKind) String() string { return kindNames[k] }

// BotKindNames are the kinds Config.BotKinds takes, in the report's order.
var BotKindNames = kindNames[kindBasic:]

// Defaults and bounds of the bots' shapes.
const (
	farmAccountsPerDeviceDefault = 4  // just under the server's risk.accounts_per_device (5)
	farmDevicesPerIPDefault      = 25 // just under the server's risk.devices_per_ip (30)
	farmShapeMax                 = 1000
	sprinterTriesDefault         = 50
	sprinterTriesMax             = 10_000
	householdMax                 = 3 // humans share an address with at most two others
	pageThinkMinDefault          = 500 * time.Millisecond
	pageThinkMaxDefault          = 3 * time.Second
	botKindWeightMax             = 1000
)

// parseBotKinds reads "sprinter,farm" or "sprinter=1,farm=2" into weights
// by kind; "" means basic only.
func parseBotKinds(spec string) ([kindsN]float64, error) {
	var w [kindsN]float64
	spec = strings.TrimSpace(spec)
	if spec == "" {
		w[kindBasic] = 1
		return w, nil
	}
	for _, part := range strings.Split(spec, ",") {
		name, weight, hasWeight := strings.Cut(strings.TrimSpace(part), "=")
		k := kindHuman
		for i := kindBasic; i < kindsN; i++ {
			if kindNames[i] == strings.TrimSpace(name) {
				k = i
			}
		}
		if k == kindHuman {
			return w, fmt.Errorf("unknown bot kind %q (want %s)", name, strings.Join(BotKindNames, ", "))
		}
		if w[k] != 0 {
			return w, fmt.Errorf("bot kind %q named twice", name)
		}
		x := 1.0
		if hasWeight {
			var err error
			if x, err = strconv.ParseFloat(strings.TrimSpace(weight), 64); err != nil || !(x > 0) || x > botKindWeightMax {
				return w, fmt.Errorf("bot kind %s: weight %q is not a number in (0, %d]", name, weight, botKindWeightMax)
			}
		}
		w[k] = x
	}
	return w, nil
}

// splitBots divides nb bots among the kinds in proportion to their
// weights (largest remainder; ties go to the earlier kind).
func splitBots(nb int, w [kindsN]float64) [kindsN]int {
	var n [kindsN]int
	total := 0.0
	for _, x := range w {
		total += x
	}
	if nb == 0 || total == 0 {
		return n
	}
	var rem [kindsN]float64
	left := nb
	for k, x := range w {
		exact := float64(nb) * x / total
		n[k] = int(math.Floor(exact))
		rem[k] = exact - float64(n[k])
		left -= n[k]
	}
	for ; left > 0; left-- {
		best := -1
		for k := range rem {
			if w[k] > 0 && (best < 0 || rem[k] > rem[best]) {
				best = k
			}
		}
		n[best]++
		rem[best] = -1
	}
	return n
}

// shape is how the bots of a run share devices and addresses.
type shape struct {
	accountsPerDevice, devicesPerIP int
}

// newUsers makes n users, the first round(n*bots) of them bots, split
// among the kinds by weight in blocks (the dispatcher picks users at
// random, so position does not matter). Each kind gets its own addresses
// (X-Forwarded-For; the gateway believes it from a loopback proxy):
//
//   - humans: one device each; households of one to three share an
//     address (100.64.0.0/10, carrier-grade NAT space);
//   - basic: all on 203.0.113.7, half send the one shared device id, half
//     none (the load tester's first bot);
//   - farm and mimic: N accounts a device, M devices an address;
//   - sprinter, replayer: a device each, M accounts an address;
//   - rotator: M accounts an address, a new device id on every request.
//
// Bots' addresses are 10.<kind>.x.y.
func newUsers(tag string, n int, bots float64, kinds [kindsN]float64, sh shape) []*user {
	nb := int(float64(n)*bots + 0.5)
	split := splitBots(nb, kinds)
	us := make([]*user, n)
	i := 0
	for k := kindBasic; k < kindsN; k++ {
		for j := 0; j < split[k]; j++ {
			u := &user{n: i, code: fmt.Sprintf("%s-u%07d", tag, i), bot: true, kind: k}
			botAddr := func(a int) string { return fmt.Sprintf("10.%d.%d.%d", k, (a>>8)&255, a&255) }
			switch k {
			case kindBasic:
				u.ip = botIP
				if j%2 == 0 {
					u.device = botSharedDevice
				}
			case kindFarm, kindMimic:
				d := j / sh.accountsPerDevice
				u.device = fmt.Sprintf("%s-%s-d%05d", tag, k, d)
				u.ip = botAddr(d / sh.devicesPerIP)
			case kindRotator:
				u.device = fmt.Sprintf("%s-%s-%05d", tag, k, j) // a counter is added per request
				u.ip = botAddr(j / sh.devicesPerIP)
			default: // sprinter, replayer
				u.device = fmt.Sprintf("%s-%s-%05d", tag, k, j)
				u.ip = botAddr(j / sh.devicesPerIP)
			}
			us[i] = u
			i++
		}
	}
	household, inHousehold := 0, 0
	for ; i < n; i++ {
		u := &user{n: i, code: fmt.Sprintf("%s-u%07d", tag, i)}
		u.device = fmt.Sprintf("%s-dev%07d", tag, i)
		// Households of 1, 2, 3, 1, 2, 3, ... people share an address.
		if inHousehold == household%householdMax+1 {
			household, inHousehold = household+1, 0
		}
		inHousehold++
		h := household
		u.ip = fmt.Sprintf("100.%d.%d.%d", 64+(h>>16)&63, (h>>8)&255, h&255)
		us[i] = u
	}
	return us
}

// deviceID is the X-Device-Id u sends with its next request: a rotator
// makes up a new one every time.
func (u *user) deviceID() string {
	if u.kind == kindRotator {
		return u.device + "-r" + strconv.FormatUint(u.requests.Add(1), 10)
	}
	return u.device
}

// humanLike reports whether u waits like a person: Retry-After, think
// times, a fresh Idempotency-Key per decision.
func (u *user) humanLike() bool { return u.kind == kindHuman || u.kind == kindMimic }

// pageView is what a buyer took from the store page before reserving.
type pageView struct {
	session string // the bearer token, to load the page again
	token   string // X-Surge-Page-Token, "" when the server gave none
	key     string // a fixed Idempotency-Key (the replayer's), "" for a fresh one per decision
}

// pageTokenHeader carries the short-lived page-view token: the store page
// hands it out, a reserve may carry it back.
const pageTokenHeader = "X-Surge-Page-Token"

// saleStore is the store whose page shows the run's flash sale.
func (r *runner) saleStore() string {
	if r.sale != nil && r.sale.storeID != "" {
		return r.sale.storeID
	}
	return r.firstStore()
}

// viewPage loads the sale's store page as u (session, device, address),
// as the mini-program does before the buy button shows, and returns the
// page token the server handed out ("" when none) and when it came.
func (r *runner) viewPage(ctx context.Context, u *user, session string, at time.Time) (string, time.Time) {
	store := r.saleStore()
	if store == "" {
		return "", at
	}
	a := r.c.do(ctx, call{route: "store_page", method: "GET", path: "/api/v1/stores/" + url.PathEscape(store) + "/page",
		token: session, device: u.deviceID(), xff: u.ip, intended: at})
	if !a.ok() {
		return "", a.done
	}
	return a.pageToken, a.done
}

// pageThink is a person's time between the page showing and the tap on
// the buy button: uniform in [PageThinkMin, PageThinkMax].
func (r *runner) pageThink(ctx context.Context, rng *rand.Rand, from time.Time) (time.Time, bool) {
	d := r.cfg.PageThinkMin
	if span := r.cfg.PageThinkMax - r.cfg.PageThinkMin; span > 0 {
		d += time.Duration(rng.Int64N(int64(span) + 1))
	}
	at := from.Add(d)
	return at, sleepUntil(ctx, at)
}

// replayCapture is what the replayers captured once and replay from then
// on, across all their accounts and requests.
type replayCapture struct {
	mu    sync.Mutex
	token string
	key   string
	tried bool
}

// replayed returns the captured page token and Idempotency-Key, capturing
// them on first use: one page view and one key for all the replayers.
func (r *runner) replayed(ctx context.Context, u *user, session string, at time.Time) (token, key string) {
	c := &r.replay
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.tried {
		c.tried = true
		c.key = r.tag + "-replayed-key"
		c.token, _ = r.viewPage(ctx, u, session, at) // holds the lock: the others wait for the one capture
	}
	return c.token, c.key
}

// sprints reports whether the sprinters are set off at the opening of a
// flash sale (launchSprinters) rather than by the arrival schedule.
func (r *runner) sprints() bool {
	return r.sale != nil && (r.cfg.Scenario == ScenarioFlash || r.cfg.Scenario == ScenarioMix)
}

// opening is the sale's start by the local clock, or from if that is
// later (the wait for the start ended a hair early, or no start is known).
func (r *runner) opening(from time.Time) time.Time {
	if ms := r.sale.startsMs; ms > 0 {
		if at := time.UnixMilli(ms - r.sale.offsetMs); at.After(from) {
			return at
		}
	}
	return from
}

// countdowns reports whether the main phase is the countdown model's
// (Config.Arrival) rather than the schedule's.
func (r *runner) countdowns() bool {
	return r.cfg.Arrival == ArrivalCountdown && r.sale != nil && r.cfg.Scenario == ScenarioFlash
}

// launchSprinters sets every sprinter off at the sale's opening (the main
// phase's start, or the sale's start if that is later), each from its
// session logged in ahead, with no think time. Flows above InFlightMax
// are dropped and counted, as arrivals are.
func (r *runner) launchSprinters(ctx, flowCtx context.Context, open, until time.Time) {
	open = r.opening(open)
	if !sleepUntil(ctx, open) {
		return
	}
	for _, u := range r.bots {
		if u.kind != kindSprinter {
			continue
		}
		if r.inflight.Load() >= int64(r.cfg.InFlightMax) {
			r.rec.drop()
			continue
		}
		rng := rand.New(rand.NewPCG(uint64(r.cfg.Seed), 1<<63|uint64(u.n)))
		r.inflight.Add(1)
		r.flows.Add(1)
		go func() {
			defer r.flows.Done()
			defer r.inflight.Add(-1)
			r.sprintFlow(flowCtx, rng, u, open, until)
		}()
	}
}

// sprintFlow fires at once and again without a pause on throttling,
// errors, sold out (units may come back when holds lapse) and not active
// (a hair early), until it wins, is refused otherwise, has made
// SprinterTries attempts, or the arrivals have ended.
func (r *runner) sprintFlow(ctx context.Context, rng *rand.Rand, u *user, at, until time.Time) {
	tok, at := r.ensureSession(ctx, u, at)
	if tok == "" {
		return
	}
	sale := r.sale.id
	path := "/api/v1/flash-sales/" + url.PathEscape(sale) + "/reservations"
	for try := 0; try < r.cfg.SprinterTries; try++ {
		sent := time.Now()
		a := r.c.do(ctx, call{route: "flash_reserve", method: "POST", path: path, body: map[string]any{"quantity": 1},
			token: tok, device: u.deviceID(), xff: u.ip, intended: at})
		r.led.attempt(u, a.outcome, sent)
		if lostAnswer(a.outcome) || a.outcome == outcomeCanceled {
			r.led.lostReserve() // no key: a retry is a new request, the lost one may hold a unit
		}
		switch {
		case a.outcome == "0":
			r.flashWon(ctx, rng, u, sale, a)
			return
		case a.outcome == "40900":
			r.led.markSoldOut(sale)
		case a.outcome == "40902", retryable(a.outcome): // not active: a hair early
		default:
			return
		}
		at = time.Now()
		if ctx.Err() != nil || at.After(until) {
			return
		}
	}
}

// botKinds says in plain words how the run's bots behave.
func botKinds(counts [kindsN]int, cfg Config) []string {
	var out []string
	for k := kindBasic; k < kindsN; k++ {
		n := counts[k]
		if n == 0 {
			continue
		}
		var s string
		switch k {
		case kindBasic:
			s = fmt.Sprintf("%d send the one shared X-Device-Id %q, %d send none; all behind one X-Forwarded-For address, %s; "+
				"no think time; up to %d retries at once, ignoring Retry-After, without an Idempotency-Key; arrive %g times as often as a human",
				(n+1)/2, botSharedDevice, n/2, botIP, cfg.BotRetries, cfg.BotWeight)
		case kindSprinter:
			s = fmt.Sprintf("all fire at the opening from sessions logged in ahead, no page view, no think time; "+
				"again at once on throttling, errors, sold out and not active, up to %d attempts each until the arrivals end; "+
				"a device each, %d accounts an address", cfg.SprinterTries, cfg.FarmDevicesPerIP)
		case kindFarm:
			s = fmt.Sprintf("%d accounts a device, %d devices an address, logged in last (%v after the others), just before the sale; "+
				"no page view, no think time; up to %d retries at once; arrive %g times as often as a human",
				cfg.FarmAccountsPerDevice, cfg.FarmDevicesPerIP, cfg.LoginLead, cfg.BotRetries, cfg.BotWeight)
		case kindRotator:
			s = fmt.Sprintf("a new X-Device-Id on every request, %d accounts an address; no page view, no think time; "+
				"up to %d retries at once; arrive %g times as often as a human", cfg.FarmDevicesPerIP, cfg.BotRetries, cfg.BotWeight)
		case kindReplayer:
			s = fmt.Sprintf("one page token and one Idempotency-Key captured once and replayed on every reserve of every account; "+
				"no think time; up to %d retries at once; a device each, %d accounts an address; arrive %g times as often as a human",
				cfg.BotRetries, cfg.FarmDevicesPerIP, cfg.BotWeight)
		case kindMimic:
			s = fmt.Sprintf("load the page and think %v-%v like a person, carry their own page token and retry after Retry-After, "+
				"but %d accounts a device and %d devices an address; arrive %g times as often as a human",
				cfg.PageThinkMin, cfg.PageThinkMax, cfg.FarmAccountsPerDevice, cfg.FarmDevicesPerIP, cfg.BotWeight)
		}
		out = append(out, fmt.Sprintf("%s (%d): %s", k, n, s))
	}
	return out
}
