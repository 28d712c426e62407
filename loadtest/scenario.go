package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"
)

// boundedSet maps a store to the SKUs seen on its page, up to a bound.
type boundedSet struct {
	mu  sync.Mutex
	m   map[string][]string
	max int
}

func (b *boundedSet) init(max int) { b.m = make(map[string][]string); b.max = max }

func (b *boundedSet) get(k string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m[k]
}

func (b *boundedSet) put(k string, v []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[k]; ok || len(b.m) < b.max {
		b.m[k] = v
	}
}

// etagCache is the simulated browsers' caches: ETag by browser and URL.
type etagCache struct {
	mu  sync.Mutex
	m   map[string]string
	max int
}

func (e *etagCache) init(max int) { e.m = make(map[string]string); e.max = max }

func (e *etagCache) get(k string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m[k]
}

func (e *etagCache) put(k, v string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.m) >= e.max {
		clear(e.m) // a browser that clears its cache: bounded memory
	}
	e.m[k] = v
}

// teamRing holds recently opened teams for others to join.
type teamRing struct {
	mu  sync.Mutex
	ids []string
	max int
	pos int
}

func (t *teamRing) init(max int) { t.max = max }

func (t *teamRing) add(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ids) < t.max {
		t.ids = append(t.ids, id)
		return
	}
	t.ids[t.pos] = id
	t.pos = (t.pos + 1) % t.max
}

func (t *teamRing) pick(rng *rand.Rand) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ids) == 0 {
		return ""
	}
	return t.ids[rng.IntN(len(t.ids))]
}

func (t *teamRing) remove(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, v := range t.ids {
		if v == id {
			last := len(t.ids) - 1
			t.ids[i] = t.ids[last]
			t.ids = t.ids[:last]
			t.pos = 0
			return
		}
	}
}

// pickUser picks the user of an arrival: bots arrive BotWeight times as
// often as humans.
func (r *runner) pickUser(rng *rand.Rand) *user {
	nb, nh := float64(len(r.bots)), float64(len(r.humans))
	if nb > 0 && rng.Float64()*(nb*r.cfg.BotWeight+nh) < nb*r.cfg.BotWeight {
		return r.bots[rng.IntN(len(r.bots))]
	}
	if len(r.humans) == 0 {
		return r.bots[rng.IntN(len(r.bots))]
	}
	return r.humans[rng.IntN(len(r.humans))]
}

// pickFlow chooses the next arrival's flow; it runs on the dispatcher.
func (r *runner) pickFlow(rng *rand.Rand, k uint64) flowFunc {
	kind := r.cfg.Scenario
	if kind == ScenarioMix {
		kind = r.pickMix(rng)
	}
	frng := rand.New(rand.NewPCG(uint64(r.cfg.Seed), k))
	switch kind {
	case ScenarioBrowse:
		return func(ctx context.Context, at time.Time) { r.browseFlow(ctx, frng, at) }
	case ScenarioFlash:
		u := r.pickUser(rng)
		return func(ctx context.Context, at time.Time) { r.flashFlow(ctx, frng, u, at) }
	case ScenarioGroup:
		u := r.pickUser(rng)
		return func(ctx context.Context, at time.Time) { r.groupFlow(ctx, frng, u, at) }
	case ScenarioCheckout:
		u := r.pickUser(rng)
		return func(ctx context.Context, at time.Time) { r.checkoutFlow(ctx, frng, u, at) }
	}
	return nil
}

// pickMix weighs the flows like a sale day: mostly browsing.
func (r *runner) pickMix(rng *rand.Rand) string {
	type w struct {
		kind string
		w    float64
	}
	ws := []w{{ScenarioBrowse, 0.6}}
	if r.sale != nil {
		ws = append(ws, w{ScenarioFlash, 0.2})
	}
	if r.deal != nil {
		ws = append(ws, w{ScenarioGroup, 0.1})
	}
	if len(r.stores) > 0 && len(r.skusByStore) > 0 {
		ws = append(ws, w{ScenarioCheckout, 0.1})
	}
	total := 0.0
	for _, x := range ws {
		total += x.w
	}
	p := rng.Float64() * total
	for _, x := range ws {
		if p < x.w {
			return x.kind
		}
		p -= x.w
	}
	return ScenarioBrowse
}

// ensureSession returns the user's token, logging in first if needed.
func (r *runner) ensureSession(ctx context.Context, u *user, at time.Time) (string, time.Time) {
	if tok := u.session(); tok != "" {
		return tok, at
	}
	if !r.loginUser(ctx, u, at) {
		return "", at
	}
	return u.session(), time.Now()
}

func retryable(outcome string) bool {
	switch outcome {
	case "42900", "50300", "http_429", "http_503", "http_502", outcomeTimeout, outcomeConnError:
		return true
	}
	return false
}

func lostAnswer(outcome string) bool { return outcome == outcomeTimeout || outcome == outcomeConnError }

// reserve sends a reserving call with the user's retry habits: a bot
// retries at once, ignoring Retry-After, without an Idempotency-Key; a
// human waits Retry-After, and keeps the key when the answer was lost.
func (r *runner) reserve(ctx context.Context, rng *rand.Rand, u *user, at time.Time, mk func() call) answer {
	tries := r.cfg.HumanRetries
	if u.bot {
		tries = r.cfg.BotRetries
	}
	newKey := func() string { return fmt.Sprintf("%s-%d-%x", r.tag, u.n, rng.Uint64()) }
	key := ""
	if !u.bot {
		key = newKey()
	}
	for attempt := 0; ; attempt++ {
		q := mk()
		q.intended, q.idemKey, q.device, q.xff = at, key, u.device, u.ip
		a := r.c.do(ctx, q)
		r.led.attempt(u.bot, a.outcome)
		if !retryable(a.outcome) || attempt >= tries || ctx.Err() != nil {
			if lostAnswer(a.outcome) || a.outcome == outcomeCanceled {
				r.led.lostReserve()
			}
			return a
		}
		if u.bot {
			at = time.Now()
			continue
		}
		if !lostAnswer(a.outcome) {
			key = newKey() // a definite refusal: a fresh attempt
		}
		wait := a.retryAfter
		if wait <= 0 {
			wait = time.Second
		}
		wait = min(wait, retryAfterWaitMax) + time.Duration(rng.Int64N(int64(250*time.Millisecond)))
		at = time.Now().Add(wait)
		if !sleepUntil(ctx, at) {
			return a
		}
	}
}

// resDoc is a reservation as the API shows it (the parts the run reads).
type resDoc struct {
	ReservationID string    `json:"reservation_id"`
	Quantity      int64     `json:"quantity"`
	State         string    `json:"state"`
	OrderID       string    `json:"order_id"`
	ExpiresAt     time.Time `json:"expires_at"`
	ExpiresAtMs   int64     `json:"expires_at_ms"`
}

// teamDoc is a team as the API shows it.
type teamDoc struct {
	TeamID        string          `json:"team_id"`
	ReservationID string          `json:"reservation_id"`
	Size          int64           `json:"size"`
	Members       json.RawMessage `json:"members"`
	State         string          `json:"state"`
	Virtual       bool            `json:"virtual"`
	ExpiresAt     time.Time       `json:"expires_at"`
	ExpiresAtMs   int64           `json:"expires_at_ms"`
}

type memberDoc struct {
	UserID        string `json:"user_id"`
	ReservationID string `json:"reservation_id"`
	Paid          *bool  `json:"paid"`
}

// members returns the member list, or nil and a count when the server
// gives only a number.
func (t teamDoc) members() ([]memberDoc, int64) {
	var ms []memberDoc
	if json.Unmarshal(t.Members, &ms) == nil {
		return ms, int64(len(ms))
	}
	var n int64
	if json.Unmarshal(t.Members, &n) == nil {
		return nil, n
	}
	return nil, -1
}

func (r *runner) think(ctx context.Context, rng *rand.Rand, u *user, from time.Time) (time.Time, bool) {
	if u.bot || r.cfg.ThinkMax <= 0 {
		return from, ctx.Err() == nil
	}
	at := from.Add(time.Duration(rng.Int64N(int64(r.cfg.ThinkMax))))
	return at, sleepUntil(ctx, at)
}

// afterHold is what a buyer does with a reservation: pay, cancel, or
// walk away and let it expire.
func (r *runner) afterHold(ctx context.Context, rng *rand.Rand, u *user, rec *resRec, done time.Time) {
	x := rng.Float64()
	pay := x < r.cfg.PayShare
	cancel := !pay && x < r.cfg.PayShare+r.cfg.CancelShare
	if !pay && !cancel {
		return
	}
	at, ok := r.think(ctx, rng, u, done)
	if !ok {
		return
	}
	tok := u.session()
	path := "/api/v1/reservations/" + url.PathEscape(rec.id)
	if cancel {
		r.led.setState(rec, resCancelling)
		a := r.c.do(ctx, call{route: "cancel", method: "POST", path: path + "/cancel", token: tok,
			device: u.device, xff: u.ip, intended: at})
		if a.ok() || a.outcome == "40903" { // 40903: it expired first
			r.led.setState(rec, resReleased)
		} else {
			r.led.setState(rec, resUnknown)
		}
		return
	}
	if r.wx != nil {
		r.payWeChat(ctx, u, rec, at)
		return
	}
	r.led.setState(rec, resPaying)
	rec.payID = "lt-pay-" + rec.id
	for attempt := 0; attempt < 3; attempt++ {
		a := r.c.do(ctx, call{route: "pay", method: "POST", path: path + "/pay", token: tok,
			body: map[string]string{"payment_id": rec.payID}, device: u.device, xff: u.ip, intended: at})
		switch {
		case a.ok():
			r.led.setState(rec, resPaid)
			return
		case a.outcome == "40903":
			r.led.setState(rec, resReleased) // expired before we paid
			return
		case retryable(a.outcome) && ctx.Err() == nil:
			// Paying again with the same payment_id is safe.
			at = time.Now().Add(100 * time.Millisecond)
			if !sleepUntil(ctx, at) {
				r.led.setState(rec, resUnknown)
				return
			}
		default:
			r.led.setState(rec, resUnknown)
			return
		}
	}
	r.led.setState(rec, resUnknown)
}

// flashFlow: one rush at the flash sale.
func (r *runner) flashFlow(ctx context.Context, rng *rand.Rand, u *user, at time.Time) {
	tok, at := r.ensureSession(ctx, u, at)
	if tok == "" {
		return
	}
	sale := r.sale.id
	var guide string
	if gs := r.guidesByStore[r.firstStore()]; len(gs) > 0 && rng.IntN(2) == 0 {
		guide = gs[rng.IntN(len(gs))]
	}
	a := r.reserve(ctx, rng, u, at, func() call {
		body := map[string]any{"quantity": 1}
		if guide != "" {
			body["guide_id"] = guide
		}
		return call{route: "flash_reserve", method: "POST", path: "/api/v1/flash-sales/" + url.PathEscape(sale) + "/reservations", body: body, token: tok}
	})
	switch a.outcome {
	case "0":
		var d resDoc
		if a.decode(&d) != nil || d.ReservationID == "" {
			return
		}
		rec := &resRec{id: d.ReservationID, kind: "flash", pool: sale, u: u, qty: max(d.Quantity, 1), expiresMs: msOf(d.ExpiresAtMs, d.ExpiresAt)}
		// A reservation another flow was answered first (the user's
		// outcome in a lottery window) is that flow's to pay or cancel.
		if r.led.reserved(rec, a.done) {
			r.afterHold(ctx, rng, u, rec, a.done)
		}
	case "40900":
		r.led.markSoldOut(sale)
	}
}

func (r *runner) firstStore() string {
	if len(r.stores) == 0 {
		return ""
	}
	return r.stores[0]
}

// groupFlow: open a team, or join one somebody opened.
func (r *runner) groupFlow(ctx context.Context, rng *rand.Rand, u *user, at time.Time) {
	tok, at := r.ensureSession(ctx, u, at)
	if tok == "" {
		return
	}
	deal := r.deal.id
	base := "/api/v1/group-buys/" + url.PathEscape(deal) + "/teams"
	team := ""
	if rng.IntN(3) != 0 {
		team = r.openTeams.pick(rng)
	}
	var a answer
	if team == "" {
		body := map[string]any{}
		if gs := r.guidesByStore[r.firstStore()]; len(gs) > 0 {
			body["guide_id"] = gs[rng.IntN(len(gs))]
		}
		a = r.reserve(ctx, rng, u, at, func() call {
			return call{route: "group_open", method: "POST", path: base, body: body, token: tok}
		})
	} else {
		a = r.reserve(ctx, rng, u, at, func() call {
			return call{route: "group_join", method: "POST", path: base + "/" + url.PathEscape(team) + "/members", body: map[string]any{}, token: tok}
		})
	}
	switch a.outcome {
	case "0":
	case "40900":
		r.led.markSoldOut(deal)
		return
	case "40903", "40400":
		if team != "" {
			r.openTeams.remove(team) // full, failed or gone
		}
		return
	default:
		return
	}
	var d teamDoc
	if a.decode(&d) != nil || d.TeamID == "" {
		return
	}
	exp := msOf(d.ExpiresAtMs, d.ExpiresAt)
	r.led.teamJoined(deal, d.TeamID, d.Size, exp)
	if team == "" {
		r.openTeams.add(d.TeamID)
	}
	if ms, n := d.members(); d.Size > 0 && (n >= d.Size || (ms != nil && int64(len(ms)) >= d.Size)) {
		r.openTeams.remove(d.TeamID)
	}
	if d.ReservationID == "" {
		return
	}
	rec := &resRec{id: d.ReservationID, kind: "group", pool: deal, teamID: d.TeamID, u: u, qty: 1, expiresMs: exp}
	r.led.reserved(rec, a.done)
	r.afterHold(ctx, rng, u, rec, a.done)
}

// checkoutFlow: a cart of one to three SKUs of one store.
func (r *runner) checkoutFlow(ctx context.Context, rng *rand.Rand, u *user, at time.Time) {
	if len(r.stores) == 0 {
		return
	}
	store := r.pickStore(rng)
	skus := r.skusByStore[store]
	if len(skus) == 0 {
		skus = r.pageSKUs.get(store)
	}
	if len(skus) == 0 {
		return
	}
	tok, at := r.ensureSession(ctx, u, at)
	if tok == "" {
		return
	}
	n := 1 + rng.IntN(min(3, len(skus)))
	perm := rng.Perm(len(skus))[:n]
	items := make([]map[string]any, 0, n)
	for _, i := range perm {
		items = append(items, map[string]any{"sku_id": skus[i], "quantity": 1})
	}
	body := map[string]any{"store_id": store, "items": items}
	if gs := r.guidesByStore[store]; len(gs) > 0 && rng.IntN(2) == 0 {
		body["guide_id"] = gs[rng.IntN(len(gs))]
	}
	a := r.reserve(ctx, rng, u, at, func() call {
		return call{route: "checkout", method: "POST", path: "/api/v1/checkout", body: body, token: tok}
	})
	switch a.outcome {
	case "0":
		var d resDoc
		if a.decode(&d) != nil || d.ReservationID == "" {
			return
		}
		rec := &resRec{id: d.ReservationID, kind: "checkout", pool: store, u: u, qty: int64(n), expiresMs: msOf(d.ExpiresAtMs, d.ExpiresAt)}
		r.led.reserved(rec, a.done)
		r.afterHold(ctx, rng, u, rec, a.done)
	case "40900":
		r.led.markSoldOut("checkout " + store)
	}
}

// pickStore favours a few popular stores (about 80% of visits go to the
// first fifth), as real traffic does.
func (r *runner) pickStore(rng *rand.Rand) string {
	n := len(r.stores)
	hot := max(1, n/5)
	if rng.IntN(5) != 0 {
		return r.stores[rng.IntN(hot)]
	}
	return r.stores[rng.IntN(n)]
}

// browseFlow: a store page (with a guide half the time), revalidated with
// If-None-Match when this browser saw it before, then maybe a product.
func (r *runner) browseFlow(ctx context.Context, rng *rand.Rand, at time.Time) {
	if len(r.stores) == 0 {
		return
	}
	store := r.pickStore(rng)
	browser := rng.IntN(r.cfg.Browsers)
	q := ""
	if gs := r.guidesByStore[store]; len(gs) > 0 && rng.IntN(2) == 0 {
		q = "?guide=" + url.QueryEscape(gs[rng.IntN(len(gs))])
	}
	path := "/api/v1/stores/" + url.PathEscape(store) + "/page" + q
	key := fmt.Sprint(browser, " ", path)
	a := r.c.do(ctx, call{route: "store_page", method: "GET", path: path, ifNoneMatch: r.etags.get(key), intended: at})
	if a.ok() {
		if a.etag != "" {
			r.etags.put(key, a.etag)
		}
		if r.pageSKUs.get(store) == nil {
			r.pageSKUs.put(store, skusIn(a.data, 200))
		}
	}
	if rng.IntN(2) == 0 {
		return
	}
	skus := r.pageSKUs.get(store)
	if len(skus) == 0 {
		skus = r.skusByStore[store]
	}
	if len(skus) == 0 {
		return
	}
	at = a.done
	if r.cfg.ThinkMax > 0 {
		at = at.Add(time.Duration(rng.Int64N(int64(r.cfg.ThinkMax))))
		if !sleepUntil(ctx, at) {
			return
		}
	}
	ppath := "/api/v1/stores/" + url.PathEscape(store) + "/products/" + url.PathEscape(skus[rng.IntN(len(skus))]) + q
	pkey := fmt.Sprint(browser, " ", ppath)
	b := r.c.do(ctx, call{route: "product_page", method: "GET", path: ppath, ifNoneMatch: r.etags.get(pkey), intended: at})
	if b.ok() && b.etag != "" {
		r.etags.put(pkey, b.etag)
	}
}

// skusIn collects up to max distinct "sku_id" strings from a JSON document.
func skusIn(data json.RawMessage, max int) []string {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return []string{}
	}
	seen := map[string]bool{}
	out := []string{}
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if len(out) >= max || depth > 16 {
			return
		}
		switch x := v.(type) {
		case map[string]any:
			if s, ok := x["sku_id"].(string); ok && s != "" && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
			for _, c := range x {
				walk(c, depth+1)
			}
		case []any:
			for _, c := range x {
				walk(c, depth+1)
			}
		}
	}
	walk(v, 0)
	return out
}
