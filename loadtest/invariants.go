package loadtest

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	pollInterval     = 250 * time.Millisecond
	verifyWorkersMax = 16
	teamChecksMax    = 200
	// sweepSlack: a server releases an expired hold within its sweep
	// interval (1s by default); allow twice that.
	sweepSlack = 2 * time.Second
)

// verify resolves what the run does not know yet (lost pay answers, order
// ids), waits for holds to expire where the stuck-stock law applies, and
// checks every invariant. An error means the check could not be made.
func (r *runner) verify(ctx context.Context, rep *Report) (Invariants, error) {
	inv := Invariants{}
	r.phase.Store("verify")

	// 1. Every paid reservation has an order (bounded wait for the async
	// writer); lost answers are resolved on the way.
	r.rec.mark(phaseOrders, time.Now())
	orderV, resolved, skipped := r.checkOrders(ctx)
	if err := ctx.Err(); err != nil {
		return inv, err
	}
	if skipped != "" {
		inv.Skipped = append(inv.Skipped, skipped)
	}

	// 2. Wait for holds to end where demand exceeded supply.
	r.rec.mark(phaseSettle, time.Now())
	st, cancelled, err := r.settle(ctx)
	if err != nil {
		return inv, err
	}

	if r.deal != nil {
		r.rec.mark(phaseTeams, time.Now())
	}
	teamV, teams := r.checkTeams(ctx)
	r.rec.finish(time.Now())

	r.led.mu.Lock()
	defer r.led.mu.Unlock()
	var vs []Violation
	vs = append(vs, r.led.violations...)
	total := r.led.violationN
	// Each check counts the violations added while it runs (cur*); its
	// verdict is one line of the report.
	curN, curFirst := 0, ""
	add := func(v Violation) {
		total++
		curN++
		if curFirst == "" {
			curFirst = v.Subject + ": " + v.Detail
		}
		if len(vs) < violationsRecordMax {
			vs = append(vs, v)
		}
	}
	start := func() { curN, curFirst = 0, "" }
	end := func(name, okDetail string) {
		inv.Checked = append(inv.Checked, name)
		c := Check{Name: name, OK: curN == 0, Detail: okDetail}
		if curN > 0 {
			c.Detail = fmt.Sprintf("%d violation(s); first: %s", curN, curFirst)
		}
		inv.Checks = append(inv.Checks, c)
	}

	start()
	for _, v := range orderV {
		add(v)
	}
	end(fmt.Sprintf("order for every paid reservation (%d checked)", resolved),
		fmt.Sprintf("every paid reservation read back has an order (%d read back)", resolved))

	// 3. Conservation and no oversell for every sale and deal on the server.
	pools := func(kind string, m map[string]PoolStats) {
		if len(m) == 0 {
			return
		}
		start()
		for _, id := range sortedKeys(m) {
			p := m[id]
			if p.Held+p.Sold+p.Remaining != p.Supplied {
				add(Violation{Law: "conservation", Subject: kind + " " + id,
					Detail: fmt.Sprintf("held %d + sold %d + remaining %d != supplied %d", p.Held, p.Sold, p.Remaining, p.Supplied)})
			}
			if p.Sold > p.Supplied || p.Held+p.Sold > p.Supplied {
				add(Violation{Law: "oversell", Subject: kind + " " + id,
					Detail: fmt.Sprintf("sold %d + held %d of %d supplied", p.Sold, p.Held, p.Supplied)})
			}
			if p.Held < 0 || p.Sold < 0 || p.Remaining < 0 || p.Supplied < 0 {
				add(Violation{Law: "conservation", Subject: kind + " " + id,
					Detail: fmt.Sprintf("negative count: %+v", p)})
			}
		}
		end(fmt.Sprintf("conservation and no oversell, %d %s(s) on the server", len(m), kind),
			"held + sold + remaining == supplied, and sold + held <= supplied, for each")
	}
	pools("sale", st.Sales)
	pools("deal", st.Deals)
	rep.OrdersLag = st.Orders.Lag

	// 4. The run's own record against the server's: paid units of a flash
	// sale never exceed its supply, and the server counts each of them.
	paid := map[string]int64{}
	paidUser := map[string]int64{}
	unknown := map[string]int{}
	states := map[string]int64{}
	for _, rec := range r.led.res {
		states[rec.kind+"_"+stateName(rec.state)]++
		if rec.kind != "flash" {
			continue
		}
		switch rec.state {
		case resPaid:
			paid[rec.pool] += rec.qty
			paidUser[rec.pool+"\x00"+rec.u.code] += rec.qty
		case resUnknown, resPaying, resCancelling:
			unknown[rec.pool]++
		}
	}
	rep.Reservations = states
	if r.sale != nil {
		id := r.sale.id
		p, ok := st.Sales[id]
		rep.Sales = map[string]PoolStats{}
		if !ok {
			start()
			add(Violation{Law: "conservation", Subject: "sale " + id, Detail: "the sale is missing from GET /admin/v1/stats"})
			end("sale "+id+" in GET /admin/v1/stats", "")
		} else {
			rep.Sales[id] = p
			start()
			if paid[id] > p.Supplied {
				add(Violation{Law: "oversell", Subject: "sale " + id,
					Detail: fmt.Sprintf("the run was told paid for %d units of %d supplied", paid[id], p.Supplied)})
			}
			end("own record: paid units <= supplied, sale "+id, fmt.Sprintf("paid %d of %d supplied", paid[id], p.Supplied))
			start()
			if p.Sold < paid[id] {
				add(Violation{Law: "paid_lost", Subject: "sale " + id,
					Detail: fmt.Sprintf("server shows %d sold, the run was told paid for %d", p.Sold, paid[id])})
			}
			end("own record: server counts every paid unit, sale "+id, fmt.Sprintf("server sold %d, the run paid for %d", p.Sold, paid[id]))
			if r.sale.owned {
				if unknown[id] == 0 {
					start()
					if p.Sold != paid[id] {
						add(Violation{Law: "oversell", Subject: "sale " + id,
							Detail: fmt.Sprintf("server shows %d sold, only the run bought and it paid for %d", p.Sold, paid[id])})
					}
					end("own record: sold == units the run paid for, sale "+id, fmt.Sprintf("sold %d == paid %d", p.Sold, paid[id]))
				} else {
					inv.Skipped = append(inv.Skipped, fmt.Sprintf("sold == paid for sale %s: %d reservations in an unknown state", id, unknown[id]))
				}
			}
			if limit := r.led.limitMax[id]; limit > 0 {
				start()
				buyers := 0
				for _, k := range sortedKeys(paidUser) {
					pool, code := splitKey(k)
					if pool != id {
						continue
					}
					buyers++
					if paidUser[k] > limit {
						add(Violation{Law: "per_user_limit", Subject: "sale " + id,
							Detail: fmt.Sprintf("user %s paid for %d units, limit %d", code, paidUser[k], limit)})
					}
				}
				end(fmt.Sprintf("per-user limit %d, sale %s", limit, id), fmt.Sprintf("no buyer paid for more than %d (%d buyers)", limit, buyers))
			} else {
				inv.Skipped = append(inv.Skipped, "per-user limit of sale "+id+": unknown (the sale does not show it; pass --per-user-limit)")
			}
		}
	}
	if r.deal != nil {
		if p, ok := st.Deals[r.deal.id]; ok {
			rep.Deals = map[string]PoolStats{r.deal.id: p}
		} else {
			start()
			add(Violation{Law: "conservation", Subject: "deal " + r.deal.id, Detail: "the deal is missing from GET /admin/v1/stats"})
			end("deal "+r.deal.id+" in GET /admin/v1/stats", "")
		}
	}

	// 5. No stuck stock: where demand exceeded supply, nothing is held at
	// the end.
	for _, pool := range r.stuckPools() {
		kind, id := pool[0], pool[1]
		m := st.Sales
		if kind == "deal" {
			m = st.Deals
		}
		p, ok := m[id]
		if !ok {
			continue
		}
		if p.Held != 0 && cancelled && r.led.lostReserves > 0 {
			// The run cancelled what it knew of; holds behind lost
			// answers are the server's to expire, later than --settle.
			inv.Skipped = append(inv.Skipped, fmt.Sprintf("no stuck stock, %s %s: %d held after cancelling the run's holds, and %d reserve answers were lost (raise --settle past the hold time)",
				kind, id, p.Held, r.led.lostReserves))
			continue
		}
		start()
		if p.Held != 0 {
			add(Violation{Law: "stuck_stock", Subject: kind + " " + id,
				Detail: fmt.Sprintf("demand exceeded supply, yet %d units still held %v after the run's last hold ended", p.Held, sweepSlack)})
		}
		end("no stuck stock after sold out, "+kind+" "+id, "nothing held after the last hold ended")
	}
	if teams != nil {
		start()
		for _, v := range teamV {
			add(v)
		}
		end(fmt.Sprintf("team states (%d teams read)", teams["read"]), "no team over its size, every formed team paid, none forming past its deadline")
		delete(teams, "read")
		rep.Teams = teams
	}

	// 6. What the run checked on every answer while it went on.
	during := func(law, name, okDetail string) {
		inv.Checked = append(inv.Checked, name)
		c := Check{Name: name, OK: r.led.lawN[law] == 0, Detail: okDetail}
		if n := r.led.lawN[law]; n > 0 {
			c.Detail = fmt.Sprintf("%d violation(s)", n)
			for _, v := range r.led.violations {
				if v.Law == law {
					c.Detail += "; first: " + v.Subject + ": " + v.Detail
					break
				}
			}
		}
		inv.Checks = append(inv.Checks, c)
	}
	if r.sale != nil && r.led.limitMax[r.sale.id] > 0 {
		during("per_user_limit", "during the run: per-user limit on every successful reserve",
			"no user surely held or had bought more than the limit at once")
	}
	if r.deal != nil {
		during("team_size", "during the run: team size on every open and join", "no team had more live members than its size")
	}
	if r.wx != nil {
		during("pay_params", "during the run: prepay parameters verify", "every paySign verified with the merchant key")
		during("paid_lost", "during the run: no payment taken in time was refunded", "no payment with hold time left was released")
	}

	inv.Violations = vs
	if inv.Violations == nil {
		inv.Violations = []Violation{}
	}
	inv.ViolationsTotal = total
	inv.OK = total == 0
	return inv, nil
}

func splitKey(k string) (string, string) {
	for i := 0; i < len(k); i++ {
		if k[i] == 0 {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}

func stateName(s resState) string {
	switch s {
	case resHeld:
		return "held"
	case resPaying:
		return "paying"
	case resPaid:
		return "paid"
	case resCancelling:
		return "cancelling"
	case resReleased:
		return "released"
	}
	return "unknown"
}

// stuckPools are the pools the run saw sold out: {"sale"|"deal", id}.
// Called with r.led.mu held.
func (r *runner) stuckPools() [][2]string {
	var out [][2]string
	if r.sale != nil && r.led.soldOut[r.sale.id] {
		out = append(out, [2]string{"sale", r.sale.id})
	}
	if r.deal != nil && r.led.soldOut[r.deal.id] {
		out = append(out, [2]string{"deal", r.deal.id})
	}
	return out
}

// settle waits, bounded by SettleMax, until every pool that sold out holds
// nothing, giving the run's holds their time to expire plus sweepSlack.
// When they would outlive SettleMax it cancels them instead (cancelled).
// Holds behind lost answers expire at most a hold time after the main
// phase ended; the wait covers them too when the hold time is known.
func (r *runner) settle(ctx context.Context) (st statsDoc, cancelled bool, err error) {
	r.led.mu.Lock()
	pools := r.stuckPools()
	var lastMs int64
	for _, rec := range r.led.res {
		if rec.state == resHeld || rec.state == resPaying || rec.state == resUnknown || rec.state == resCancelling {
			lastMs = max(lastMs, rec.expiresMs)
		}
	}
	for _, t := range r.led.teams {
		lastMs = max(lastMs, t.expiresMs)
	}
	lost := r.led.lostReserves
	r.led.mu.Unlock()
	deadline := time.Now()
	if len(pools) > 0 {
		offset := int64(0)
		if r.sale != nil {
			offset = r.sale.offsetMs
		}
		expected := time.Now()
		if lastMs > 0 {
			expected = time.UnixMilli(lastMs - offset).Add(sweepSlack)
		}
		if lost > 0 && r.sale != nil && r.sale.holdS > 0 {
			if t := r.mainEnd.Add(time.Duration(r.sale.holdS) * time.Second).Add(sweepSlack); t.After(expected) {
				expected = t
			}
		}
		if expected.After(time.Now().Add(r.cfg.SettleMax)) {
			// The holds outlive --settle: walk away politely instead, so
			// that held == 0 can be checked now.
			cancelled = true
			n := r.cancelHeld(ctx, pools)
			r.notef("holds expire at %s, beyond --settle %v: cancelled the run's %d remaining holds before checking for stuck stock",
				expected.UTC().Format(time.RFC3339), r.cfg.SettleMax, n)
			expected = time.Now().Add(sweepSlack)
		}
		deadline = expected
		fmt.Fprintf(r.cfg.Progress, "waiting up to %v for holds to end\n", time.Until(deadline).Round(time.Millisecond))
	}
	for {
		st, err = r.stats(ctx)
		if err != nil {
			return st, cancelled, fmt.Errorf("cannot read the stats to check the invariants: %w", err)
		}
		done := true
		for _, p := range pools {
			m := st.Sales
			if p[0] == "deal" {
				m = st.Deals
			}
			if m[p[1]].Held != 0 {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			return st, cancelled, nil
		}
		if !sleepUntil(ctx, time.Now().Add(pollInterval)) {
			return st, cancelled, ctx.Err()
		}
	}
}

// cancelHeld cancels the run's holds in the given pools that it left to
// expire; it returns how many it cancelled.
func (r *runner) cancelHeld(ctx context.Context, pools [][2]string) int {
	in := map[string]bool{}
	for _, p := range pools {
		in[p[1]] = true
	}
	r.led.mu.Lock()
	var todo []*resRec
	for _, rec := range r.led.res {
		if rec.state == resHeld && in[rec.pool] {
			todo = append(todo, rec)
		}
	}
	r.led.mu.Unlock()
	var n atomic.Int64
	work := make(chan *resRec)
	var wg sync.WaitGroup
	for w := 0; w < min(verifyWorkersMax, len(todo)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rec := range work {
				r.led.setState(rec, resCancelling)
				a := r.c.do(ctx, call{method: "POST", path: "/api/v1/reservations/" + url.PathEscape(rec.id) + "/cancel", token: rec.u.session()})
				if a.ok() {
					r.led.setState(rec, resReleased)
					n.Add(1)
				} else if a.outcome == "40903" {
					r.led.setState(rec, resReleased) // expired meanwhile
				} else {
					r.led.setState(rec, resUnknown)
				}
			}
		}()
	}
	for _, rec := range todo {
		work <- rec
	}
	close(work)
	wg.Wait()
	return int(n.Load())
}

// checkOrders reads back every reservation whose final state matters
// (paid, or the answer was lost) until each paid one shows its order id,
// bounded by OrderWaitMax; then looks for the rest in GET /api/v1/me/orders.
func (r *runner) checkOrders(ctx context.Context) (vs []Violation, checked int, skipped string) {
	r.led.mu.Lock()
	var todo []*resRec
	for _, rec := range r.led.res {
		switch rec.state {
		case resPaid, resPaying, resUnknown, resCancelling:
			todo = append(todo, rec)
		}
	}
	r.led.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool { return todo[i].id < todo[j].id })
	if len(todo) > orderChecksMax {
		skipped = fmt.Sprintf("orders of %d paid reservations beyond the first %d (by id)", len(todo)-orderChecksMax, orderChecksMax)
		todo = todo[:orderChecksMax]
	}
	checked = len(todo)
	deadline := time.Now().Add(r.cfg.OrderWaitMax)
	var mu sync.Mutex
	noOrder := map[*resRec]bool{}
	for len(todo) > 0 {
		var next []*resRec
		work := make(chan *resRec)
		var wg sync.WaitGroup
		for w := 0; w < min(verifyWorkersMax, len(todo)); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for rec := range work {
					keep, v := r.readBack(ctx, rec)
					mu.Lock()
					if v != nil {
						vs = append(vs, *v)
					}
					if keep {
						next = append(next, rec)
					}
					mu.Unlock()
				}
			}()
		}
		for _, rec := range todo {
			work <- rec
		}
		close(work)
		wg.Wait()
		todo = next
		if len(todo) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		sleepUntil(ctx, time.Now().Add(pollInterval))
	}
	// Last chance: the user's order list, for those surely paid; the rest
	// (lost answers the server never cleared up) cannot be judged.
	byUser := map[*user][]*resRec{}
	unjudged := 0
	r.led.mu.Lock()
	for _, rec := range todo {
		if rec.paidOK || rec.state == resPaid {
			byUser[rec.u] = append(byUser[rec.u], rec)
			noOrder[rec] = true
		} else {
			unjudged++
		}
	}
	r.led.mu.Unlock()
	if unjudged > 0 {
		skipped = strings.TrimPrefix(skipped+"; ", "; ") + fmt.Sprintf("%d reservations whose pay or cancel answer was lost could not be read back", unjudged)
	}
	// Bounded like the wait above; users not reached keep their
	// reservations counted as missing (no order_id within the wait).
	fallbackEnd := time.Now().Add(r.cfg.OrderWaitMax)
	for u, recs := range byUser {
		if time.Now().After(fallbackEnd) || ctx.Err() != nil {
			break
		}
		ids := r.userOrderReservations(ctx, u)
		for _, rec := range recs {
			if ids[rec.id] {
				delete(noOrder, rec)
			}
		}
	}
	missing := make([]*resRec, 0, len(noOrder))
	for rec := range noOrder {
		missing = append(missing, rec)
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].id < missing[j].id })
	for _, rec := range missing {
		vs = append(vs, Violation{Law: "order_missing", Subject: "reservation " + rec.id,
			Detail: fmt.Sprintf("paid, but no order after %v (neither order_id nor GET /api/v1/me/orders)", r.cfg.OrderWaitMax)})
	}
	return vs, checked, skipped
}

// readBack reads one reservation: keep is true while it is paid without an
// order id (or unreadable); v reports a broken promise.
func (r *runner) readBack(ctx context.Context, rec *resRec) (keep bool, v *Violation) {
	a := r.c.do(ctx, call{method: "GET", path: "/api/v1/reservations/" + url.PathEscape(rec.id), token: rec.u.session()})
	var d resDoc
	if !a.ok() || a.decode(&d) != nil {
		return true, nil
	}
	r.led.mu.Lock()
	defer r.led.mu.Unlock()
	switch d.State {
	case "paid":
		rec.state = resPaid
		return d.OrderID == "", nil
	case "released", "held":
		if rec.paidOK && rec.kind == "group" && d.State == "released" {
			// A failed team releases its paid members' units and
			// refunds their orders: the order must still exist.
			return d.OrderID == "", nil
		}
		if rec.paidOK {
			return false, &Violation{Law: "paid_lost", Subject: "reservation " + rec.id,
				Detail: fmt.Sprintf("the server answered 0 to pay, now the reservation is %q", d.State)}
		}
		if d.State == "released" {
			rec.state = resReleased
		} else {
			rec.state = resHeld
		}
		return false, nil
	}
	return true, nil
}

// userOrderReservations returns the reservation ids of the user's orders.
func (r *runner) userOrderReservations(ctx context.Context, u *user) map[string]bool {
	out := map[string]bool{}
	a := r.c.do(ctx, call{method: "GET", path: "/api/v1/me/orders", token: u.session()})
	if !a.ok() {
		return out
	}
	var list []struct {
		ReservationID string `json:"reservation_id"`
	}
	var wrapped struct {
		Orders []struct {
			ReservationID string `json:"reservation_id"`
		} `json:"orders"`
	}
	if a.decode(&list) != nil {
		if a.decode(&wrapped) != nil {
			return out
		}
		list = wrapped.Orders
	}
	for _, o := range list {
		out[o.ReservationID] = true
	}
	return out
}

// checkTeams reads back teams whose deadline has passed: a team never has
// more members than its size, a formed team has all of them paid, and a
// team past its deadline is decided.
func (r *runner) checkTeams(ctx context.Context) ([]Violation, map[string]int64) {
	if r.deal == nil {
		return nil, nil
	}
	r.led.mu.Lock()
	var teams []*teamRec
	for _, t := range r.led.teams {
		teams = append(teams, &teamRec{id: t.id, deal: t.deal, size: t.size, expiresMs: t.expiresMs})
	}
	r.led.mu.Unlock()
	sort.Slice(teams, func(i, j int) bool { return teams[i].id < teams[j].id })
	if len(teams) > teamChecksMax {
		teams = teams[:teamChecksMax]
	}
	counts := map[string]int64{"read": 0}
	var vs []Violation
	for _, t := range teams {
		a := r.c.do(ctx, call{method: "GET", path: "/api/v1/group-buys/" + url.PathEscape(t.deal) + "/teams/" + url.PathEscape(t.id)})
		var d teamDoc
		if !a.ok() || a.decode(&d) != nil {
			continue
		}
		counts["read"]++
		counts[d.State]++
		ms, n := d.members()
		size := max(d.Size, t.size)
		if size > 0 && n > size {
			vs = append(vs, Violation{Law: "team_size", Subject: "team " + t.id, Detail: fmt.Sprintf("%d members in a team of %d", n, size)})
		}
		if d.State == "formed" && ms != nil && !d.Virtual {
			paid := int64(0)
			for _, m := range ms {
				if m.Paid != nil && *m.Paid {
					paid++
				}
			}
			if paid < size && ms[0].Paid != nil {
				vs = append(vs, Violation{Law: "team_state", Subject: "team " + t.id, Detail: fmt.Sprintf("formed with %d of %d members paid", paid, size)})
			}
		}
		exp := msOf(d.ExpiresAtMs, d.ExpiresAt)
		if d.State == "forming" && exp > 0 && time.Now().UnixMilli() > exp+(sweepSlack+time.Second).Milliseconds() {
			vs = append(vs, Violation{Law: "team_state", Subject: "team " + t.id, Detail: "still forming past its deadline"})
		}
	}
	return vs, counts
}
