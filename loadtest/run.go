package loadtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// runner holds one run's state.
type runner struct {
	cfg   Config
	tag   string // prefixes every id the run creates
	start time.Time
	rec   *recorder
	c     *client
	led   *ledger
	wx    *wxPay // nil: buyers pay with POST .../pay

	users         []*user
	bots, humans  []*user
	schedBots     []*user // the bots the arrival schedule picks from
	kindCounts    [kindsN]int
	replay        replayCapture
	mainStart     time.Time // the main phase's start: the opening (a countdown run's starts before it)
	openAt        time.Time // the opening: the sale's start by the local clock, or mainStart
	sale          *saleInfo
	deal          *dealInfo
	dealStarts    time.Time
	stores        []string
	skusByStore   map[string][]string // read-only once the main phase runs
	guidesByStore map[string][]string
	saleSKU       string
	dealSKU       string

	pageSKUs  boundedSet
	etags     etagCache
	openTeams teamRing

	inflight     atomic.Int64
	arrivals     atomic.Int64
	mainRequests int64     // requests answered during the main phase
	mainEnd      time.Time // when the main phase (and its drain) ended
	flows        sync.WaitGroup
	phase        atomic.Value // string, for the progress line

	notes []string // written by the main goroutine only
}

func (r *runner) notef(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// Run performs one load test and checks the invariants. It returns an error
// wrapping ErrUsage or ErrConnect when the run could not be made or judged
// (exit code 2); otherwise the Report, whose ExitCode is 0 when every
// invariant held and 1 when one failed. Run stops by itself: every phase is
// bounded in time and count. Cancelling ctx ends it early (with ctx's error).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	start := time.Now()
	r := &runner{
		cfg:   cfg,
		tag:   "lt" + strconv.FormatInt(start.UnixMilli(), 36),
		start: start,
		led:   newLedger(),
	}
	r.phase.Store("setup")
	span := cfg.Duration + time.Duration(float64(cfg.Users)/cfg.LoginRate*float64(time.Second))
	r.rec = newRecorder(start, span)
	r.rec.mark(phaseSetup, start)
	r.c = newClient(cfg.Target, cfg.Conns, cfg.Timeout, r.rec)
	defer r.c.close()
	r.pageSKUs.init(storesSetupMax * 4)
	r.etags.init(etagCacheMax)
	r.openTeams.init(teamsTrackedMax)

	if err := r.probe(ctx); err != nil {
		return nil, err
	}
	if cfg.WeChatPayTestKeys != "" {
		wx, err := startWeChatPay(cfg)
		if err != nil {
			return nil, err
		}
		defer wx.close()
		r.wx = wx
		r.notef("buyers pay through the fake WeChat Pay at %s (TEST keys of %s): prepay, then a signed notification", wx.srv.URL, cfg.WeChatPayTestKeys)
	}
	if cfg.Setup {
		if err := r.setupCatalog(ctx); err != nil {
			return nil, err
		}
	} else if err := r.discover(ctx); err != nil {
		return nil, err
	}

	stopProgress := r.progress()
	defer stopProgress()

	if cfg.needsUsers() {
		kinds, _ := parseBotKinds(cfg.BotKinds) // checked by Validate
		r.users = newUsers(r.tag, cfg.Users, cfg.Bots, kinds, shape{cfg.FarmAccountsPerDevice, cfg.FarmDevicesPerIP})
		for _, u := range r.users {
			r.kindCounts[u.kind]++
			if !u.bot {
				r.humans = append(r.humans, u)
				continue
			}
			r.bots = append(r.bots, u)
			if u.kind != kindSprinter || cfg.Scenario != ScenarioFlash {
				r.schedBots = append(r.schedBots, u)
			}
		}
		if err := r.login(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.Setup {
		r.rec.mark(phaseSetup, time.Now())
		if err := r.setupPools(ctx); err != nil {
			return nil, err
		}
		r.dealStarts = time.Now().Add(cfg.StartIn)
	}
	r.phase.Store("wait")
	r.rec.mark(phaseWait, time.Now())
	if r.sale != nil {
		if err := r.resolveSale(ctx); err != nil {
			return nil, err
		}
	}
	if r.deal != nil && r.deal.owned {
		sleepUntil(ctx, r.dealStarts.Add(-r.cfg.countdownLead()))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	mainStart, mainEnd, drops := r.mainPhase(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stopProgress()

	rep := &Report{
		Scenario:  cfg.Scenario,
		Target:    cfg.Target,
		StartedAt: start.UTC(),
		ElapsedS:  mainEnd.Sub(mainStart).Seconds(),
		Arrivals:  r.arrivals.Load(),
		Drops:     drops,
	}
	arr := r.arrival()
	rep.IntendedRate = arr.Expected() / cfg.Duration.Seconds()

	fmt.Fprintf(cfg.Progress, "checking invariants (orders, holds, stats)\n")
	inv, err := r.verify(ctx, rep)
	if err != nil {
		return nil, err
	}
	rep.Invariants = inv

	routes, outcomes, timeline, all := r.rec.snapshot()
	rep.Routes, rep.Outcomes, rep.Timeline, rep.All = routes, outcomes, timeline, all
	rep.Phases = r.rec.phaseSnapshot(time.Now())
	rep.Requests = r.rec.requests.Load()
	if el := rep.ElapsedS; el > 0 {
		rep.Throughput = float64(r.mainRequests) / el
	}
	r.led.mu.Lock()
	bw, hw := r.led.winners()
	rep.Bots = botShare(len(r.bots), len(r.humans), r.led.botAttempts, r.led.humanAttempts, r.led.botRes, r.led.humanRes).withWinners(bw, hw)
	rep.Bots.BotOutcomes, rep.Bots.HumanOutcomes = copyCounts(r.led.botOutcomes), copyCounts(r.led.humanOutcomes)
	rep.Bots = rep.Bots.withKinds(r.led.kindReports(r.kindCounts, r.openAt))
	r.led.mu.Unlock()
	if r.wx != nil {
		rep.Payments = r.wx.report()
	}
	if n := routes["pay"].Outcomes["40301"]; n > 0 {
		r.notef("POST .../pay was refused 40301 %d times: the server takes WeChat Pay only (payment.provider=wechat); "+
			"rehearse its pay path with --wechatpay-test-keys DIR --wechatpay-addr HOST:PORT (see surge wechatpay-test-keys)", n)
	}
	rep.Notes = r.notes
	rep.Config = RunConfig{
		Users: cfg.Users, Rate: cfg.Rate, RampFrom: cfg.RampFrom, RampS: cfg.Ramp.Seconds(),
		DurationS: cfg.Duration.Seconds(), Bots: cfg.Bots, Setup: cfg.Setup, Seed: cfg.Seed,
		InFlightMax: cfg.InFlightMax, Conns: cfg.Conns, TimeoutS: cfg.Timeout.Seconds(),
		PayShare: cfg.PayShare, CancelShare: cfg.CancelShare,
	}
	if cfg.SpikeFor > 0 && cfg.SpikeFactor > 0 {
		rep.Config.SpikeAtS, rep.Config.SpikeForS, rep.Config.SpikeFactor = cfg.SpikeAt.Seconds(), cfg.SpikeFor.Seconds(), cfg.SpikeFactor
	}
	if r.sale != nil {
		rep.Config.SaleID = r.sale.id
		rep.Config.HoldS = r.sale.holdS
		r.led.mu.Lock()
		rep.Config.PerUserLimit = r.led.limitMax[r.sale.id]
		r.led.mu.Unlock()
	}
	if r.deal != nil {
		rep.Config.DealID = r.deal.id
	}
	rep.Config.LoginRate, rep.Config.ThinkMaxS, rep.Config.MaxRequests = cfg.LoginRate, cfg.ThinkMax.Seconds(), cfg.MaxRequests
	rep.Config.BotWeight, rep.Config.BotRetries, rep.Config.HumanRetries = cfg.BotWeight, cfg.BotRetries, cfg.HumanRetries
	rep.Config.BotKinds = botKinds(r.kindCounts, cfg)
	rep.Config.BotKindsSpec = cfg.BotKinds
	rep.Config.FarmAccountsPerDevice, rep.Config.FarmDevicesPerIP, rep.Config.SprinterTries = cfg.FarmAccountsPerDevice, cfg.FarmDevicesPerIP, cfg.SprinterTries
	rep.Config.PageThinkMinS, rep.Config.PageThinkMaxS = cfg.PageThinkMin.Seconds(), cfg.PageThinkMax.Seconds()
	rep.Config.LoginLeadS = cfg.LoginLead.Seconds()
	rep.Config.Arrival = cfg.Arrival
	if r.countdowns() {
		rep.Config.CountdownSpreadS = cfg.CountdownSpread.Seconds()
	}
	rep.Config.WeChatPay, rep.Config.WeChatPayAddr = cfg.WeChatPayTestKeys != "", cfg.WeChatPayAddr
	rep.finish(cfg.MaxP99, cfg.MaxErrorRate)
	rep.applyBotThresholds(cfg.MaxBotWinRatio, cfg.MaxBotUnitShare, cfg.MaxHumanRiskRefused)
	return rep, nil
}

// finish derives what the report shows from what it holds: the main
// phase's answers and error rate, the outcomes' names, and the verdicts of
// the thresholds.
func (r *Report) finish(maxP99 time.Duration, maxErrorRate *float64) {
	r.MainAnswers = ClassCounts{}
	for _, p := range r.Phases {
		if p.Name == phaseMain || p.Name == phaseDrain {
			r.MainAnswers = r.MainAnswers.add(p.Answers)
		}
	}
	r.ErrorRate = 0
	if n := r.MainAnswers.Total(); n > 0 {
		r.ErrorRate = float64(r.MainAnswers.Errors) / float64(n)
	}
	r.OutcomeNames = map[string]string{}
	for k := range r.Outcomes {
		r.OutcomeNames[k] = OutcomeName(k)
	}
	for _, s := range r.Routes {
		for k := range s.Outcomes {
			r.OutcomeNames[k] = OutcomeName(k)
		}
	}
	r.applyThresholds(maxP99, maxErrorRate)
}

func copyCounts(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// arrival is the main phase's profile.
func (r *runner) arrival() Arrival {
	c := r.cfg
	return Arrival{Rate: c.Rate, RampFrom: c.RampFrom, Ramp: c.Ramp, SpikeAt: c.SpikeAt,
		SpikeFor: c.SpikeFor, SpikeFactor: c.SpikeFactor, Duration: c.Duration}
}

// sleepUntil waits until t or ctx's end; false when ctx ended.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// flowFunc is one user flow; intended is when its first request is due.
type flowFunc func(ctx context.Context, intended time.Time)

// drive runs an open-model phase: each arrival is started at its intended
// time whatever the server does; when InFlightMax flows are running the
// arrival is dropped and counted. next is called on the dispatching
// goroutine only. It returns the number of drops.
func (r *runner) drive(ctx, flowCtx context.Context, phaseStart time.Time, s *Schedule, next func(k int) flowFunc) (drops int64) {
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	for k := 0; ; k++ {
		off, ok := s.Next()
		if !ok {
			return drops
		}
		at := phaseStart.Add(off)
		if d := time.Until(at); d > 50*time.Microsecond {
			tm.Reset(d)
			select {
			case <-ctx.Done():
				return drops
			case <-tm.C:
			}
		} else if ctx.Err() != nil {
			return drops
		}
		f := next(k)
		if f == nil {
			continue
		}
		if r.inflight.Load() >= int64(r.cfg.InFlightMax) {
			drops++
			r.rec.drop()
			continue
		}
		r.inflight.Add(1)
		r.flows.Add(1)
		go func() {
			defer r.flows.Done()
			defer r.inflight.Add(-1)
			f(flowCtx, at)
		}()
	}
}

// waitFlows waits for running flows up to d, then cancels them and waits
// for them to notice (each request is bounded by Config.Timeout).
func (r *runner) waitFlows(cancel context.CancelFunc, d time.Duration) {
	done := make(chan struct{})
	go func() { r.flows.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		r.notef("%d flows were still running %v after the last arrival; cut short", r.inflight.Load(), d)
		cancel()
		<-done
	}
	cancel()
}

// login logs every user in, open-model at LoginRate.
func (r *runner) login(ctx context.Context) error {
	r.phase.Store("login")
	r.rec.mark(phaseLogins, time.Now())
	// The farm's accounts log in last, once everybody else has, just
	// before the sale (new accounts); everybody else well ahead.
	var early, farm []*user
	for _, u := range r.users {
		if u.kind == kindFarm {
			farm = append(farm, u)
		} else {
			early = append(early, u)
		}
	}
	var drops int64
	for i, wave := range [][]*user{early, farm} {
		if len(wave) == 0 {
			continue
		}
		if i == 1 && r.cfg.LoginLead > 0 && len(early) > 0 {
			fmt.Fprintf(r.cfg.Progress, "waiting %v before the farm logs in (--login-lead)\n", r.cfg.LoginLead)
			if !sleepUntil(ctx, time.Now().Add(r.cfg.LoginLead)) {
				return ctx.Err()
			}
		}
		flowCtx, cancel := context.WithCancel(ctx)
		arr := Arrival{Rate: r.cfg.LoginRate, Duration: time.Duration(float64(len(wave))/r.cfg.LoginRate*float64(time.Second)) + time.Second}
		drops += r.drive(ctx, flowCtx, time.Now(), arr.Schedule(len(wave)), func(k int) flowFunc {
			u := wave[k]
			return func(ctx context.Context, at time.Time) { r.loginUser(ctx, u, at) }
		})
		r.waitFlows(cancel, r.cfg.Timeout+r.cfg.DrainMax)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	// Users dropped at login (InFlightMax) log in on first use.
	n := 0
	for _, u := range r.users {
		if u.session() != "" {
			n++
		}
	}
	if n == 0 {
		_, outcomes, _, _ := r.rec.snapshot()
		return fmt.Errorf("%w: no user could log in via POST /api/v1/session (outcomes %v)", ErrConnect, outcomes)
	}
	r.notef("%d of %d users logged in (%d login arrivals dropped)", n, len(r.users), drops)
	return nil
}

type sessionDoc struct {
	Token  string `json:"token"`
	UserID string `json:"user_id"`
}

func (r *runner) loginUser(ctx context.Context, u *user, at time.Time) bool {
	a := r.c.do(ctx, call{route: "session", method: "POST", path: "/api/v1/session",
		body: map[string]string{"code": u.code}, device: u.deviceID(), xff: u.ip, intended: at})
	var d sessionDoc
	if !a.ok() || a.decode(&d) != nil || d.Token == "" {
		return false
	}
	u.setSession(d.Token, d.UserID)
	return true
}

// mainPhase runs the scenario's arrivals, then drains.
func (r *runner) mainPhase(ctx context.Context) (start, end time.Time, drops int64) {
	r.phase.Store("main")
	flowCtx, cancel := context.WithCancel(ctx)
	seed := uint64(r.cfg.Seed)
	rng := rand.New(rand.NewPCG(seed, 0x6c6f6164))
	before := r.rec.requests.Load()
	start = time.Now()
	r.mainStart, r.openAt = start, start
	if r.sale != nil {
		r.openAt = r.opening(start)
	}
	r.rec.mark(phaseMain, start)
	if r.sprints() && r.kindCounts[kindSprinter] > 0 && !r.countdowns() { // a countdown sets them off itself
		r.launchSprinters(ctx, flowCtx, start, start.Add(r.cfg.Duration))
	}
	if r.countdowns() {
		r.notef("countdown arrivals: every account once; people load the page during the countdown and tap %v + an exponential of mean %v after the opening, bots fire at the opening; the countdown ran %v of the %v wanted (--start-in)",
			countdownReactMin, r.cfg.CountdownSpread, r.openAt.Sub(r.mainStart).Round(time.Millisecond), r.cfg.countdownLead())
		drops = r.countdown(ctx, flowCtx, r.openAt)
	} else {
		drops = r.drive(ctx, flowCtx, start, r.arrival().Schedule(r.cfg.MaxRequests), func(k int) flowFunc {
			r.arrivals.Add(1)
			return r.pickFlow(rng, uint64(k))
		})
	}
	r.phase.Store("drain")
	r.rec.mark(phaseDrain, time.Now())
	r.waitFlows(cancel, r.cfg.DrainMax)
	r.mainRequests = r.rec.requests.Load() - before
	r.mainEnd = time.Now()
	return start, r.mainEnd, drops
}

// progress prints a line a second until the returned func is called (it
// may be called more than once).
func (r *runner) progress() func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(progressIntervalTick)
		defer t.Stop()
		var last int64
		lastAt := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				n := r.rec.requests.Load()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				last, lastAt = n, now
				fmt.Fprintf(r.cfg.Progress, "[%6.1fs %-5s] %7.0f req/s  total %d  ok %d  rejected %d  shed %d  failed %d  drops %d  flows %d  p99 %v\n",
					now.Sub(r.start).Seconds(), r.phase.Load(), rate, n, r.rec.ok.Load(), r.rec.rejected.Load(),
					r.rec.shed.Load(), r.rec.failed.Load(), r.rec.drops.Load(), r.inflight.Load(), r.rec.windowP99().Round(10*time.Microsecond))
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop); <-done }) }
}
