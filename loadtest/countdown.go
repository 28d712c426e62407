package loadtest

import (
	"context"
	"math/rand/v2"
	"net/url"
	"sort"
	"time"
)

// Arrival models of the main phase (Config.Arrival).
const (
	// ArrivalSpread: flows arrive on the open-model schedule (--rate,
	// --ramp, --spike) over --duration; bots BotWeight times as often.
	ArrivalSpread = "spread"
	// ArrivalCountdown: a flash sale's crowd waits at the countdown. Each
	// account comes once: a person loads the store page during the
	// countdown and taps CountdownReactMin plus an exponential time of mean
	// CountdownSpread after the opening; every bot fires at the opening
	// millisecond (a mimic or a replayer with the token of a page it loaded
	// during the countdown; sprinters as in a spread run). Refused taps retry as in a spread run.
	ArrivalCountdown = "countdown"
)

// Defaults and bounds of the countdown model.
const (
	countdownSpreadDefault = time.Second
	countdownReactMin      = 150 * time.Millisecond // nobody taps faster after the button lights up
	countdownReactMax      = 20 * time.Second       // the exponential's tail, cut
	countdownSpreadMax     = time.Minute
)

// countdownLead is how long before the opening the main phase starts in
// a countdown run: people load the page up to PageThinkMax before it.
func (c Config) countdownLead() time.Duration {
	if c.Arrival != ArrivalCountdown {
		return 0
	}
	return c.PageThinkMax
}

// countdownArrival is one account's arrival at the countdown.
type countdownArrival struct {
	u      *user
	start  time.Time // the flow starts (its page view, or its tap)
	press  time.Time // the tap on the buy button
	viewer bool      // loads the page first
	sprint bool      // a sprinter: sprintFlow from the opening
}

// reaction is a person's time from the opening to the tap.
func (r *runner) reaction(rng *rand.Rand) time.Duration {
	d := countdownReactMin + time.Duration(rng.ExpFloat64()*float64(r.cfg.CountdownSpread))
	return min(d, countdownReactMax)
}

// countdownPlan is every account's arrival around open, in start order.
func (r *runner) countdownPlan(rng *rand.Rand, open time.Time) []countdownArrival {
	var plan []countdownArrival
	for _, u := range r.users {
		a := countdownArrival{u: u, start: open, press: open}
		switch u.kind {
		case kindSprinter:
			a.sprint = true
		case kindHuman, kindMimic, kindReplayer:
			think := r.cfg.PageThinkMin
			if span := r.cfg.PageThinkMax - r.cfg.PageThinkMin; span > 0 {
				think += time.Duration(rng.Int64N(int64(span) + 1))
			}
			a.start, a.viewer = open.Add(-think), true
			if u.kind == kindHuman {
				a.press = open.Add(r.reaction(rng))
			}
		}
		plan = append(plan, a)
	}
	sort.SliceStable(plan, func(i, j int) bool { return plan[i].start.Before(plan[j].start) })
	return plan
}

// countdown runs the countdown's arrivals: every account once, started at
// its time whatever the server does (flows above InFlightMax are dropped
// and counted). It returns the drops.
func (r *runner) countdown(ctx, flowCtx context.Context, open time.Time) (drops int64) {
	rng := rand.New(rand.NewPCG(uint64(r.cfg.Seed), 0x636f756e74))
	for k, a := range r.countdownPlan(rng, open) {
		if !sleepUntil(ctx, a.start) {
			return drops
		}
		r.arrivals.Add(1)
		if r.inflight.Load() >= int64(r.cfg.InFlightMax) {
			drops++
			r.rec.drop()
			continue
		}
		frng := rand.New(rand.NewPCG(uint64(r.cfg.Seed), uint64(k)))
		r.inflight.Add(1)
		r.flows.Add(1)
		go func() {
			defer r.flows.Done()
			defer r.inflight.Add(-1)
			if a.sprint {
				r.sprintFlow(flowCtx, frng, a.u, open, open.Add(r.cfg.Duration))
				return
			}
			r.countdownFlow(flowCtx, frng, a)
		}()
	}
	// The sale runs Duration from the opening: the flows (taps up to
	// 20 s after it, retries) have until then before the drain.
	done := make(chan struct{})
	go func() { r.flows.Wait(); close(done) }()
	t := time.NewTimer(time.Until(open.Add(r.cfg.Duration)))
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
	return drops
}

// countdownFlow is flashFlow at the countdown: the page view (for those
// who load it) at a.start, the tap at a.press, or PageThinkMin after the
// page answered if that is later (a page that came late is not tapped
// sooner than a person can).
func (r *runner) countdownFlow(ctx context.Context, rng *rand.Rand, a countdownArrival) {
	u := a.u
	tok, at := r.ensureSession(ctx, u, a.start)
	if tok == "" {
		return
	}
	var pg *pageView
	if a.viewer {
		pg = &pageView{session: tok}
		if u.kind == kindReplayer {
			pg.token, pg.key = r.replayed(ctx, u, tok, at)
		} else {
			var done time.Time
			pg.token, done = r.viewPage(ctx, u, tok, at)
			if earliest := done.Add(r.cfg.PageThinkMin); earliest.After(a.press) {
				a.press = earliest
			}
		}
	}
	if !sleepUntil(ctx, a.press) {
		return
	}
	sale := r.sale.id
	res := r.reserveWith(ctx, rng, u, a.press, pg, func() call {
		return call{route: "flash_reserve", method: "POST", path: "/api/v1/flash-sales/" + url.PathEscape(sale) + "/reservations",
			body: map[string]any{"quantity": 1}, token: tok}
	})
	switch res.outcome {
	case "0":
		r.flashWon(ctx, rng, u, sale, res)
	case "40900":
		r.led.markSoldOut(sale)
	}
}
