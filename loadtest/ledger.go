package loadtest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// user is one account of the run.
type user struct {
	n      int
	code   string // the dev login code (the openid)
	bot    bool   // kind != kindHuman
	kind   botKind
	device string // X-Device-Id (see deviceID); "" for bots that send none
	ip     string // X-Forwarded-For

	requests atomic.Uint64 // a rotator's requests, for its next device id

	mu     sync.Mutex
	token  string
	userID string

	riskRefused bool // answered risk_denied at least once; under ledger.mu
}

func (u *user) session() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.token
}

func (u *user) setSession(token, id string) {
	u.mu.Lock()
	u.token, u.userID = token, id
	u.mu.Unlock()
}

// botSharedDevice is the one device fingerprint half of the basic bots
// share; the other half send none. botIP is the address every basic bot
// comes from.
const (
	botSharedDevice = "lt-bot-farm-device"
	botIP           = "203.0.113.7"
)

// Reservation states in the ledger.
type resState int

const (
	resHeld       resState = iota
	resPaying              // pay sent, no final answer yet
	resPaid                // the server said paid
	resCancelling          // cancel sent, no final answer yet
	resReleased            // cancelled, or pay refused because released
	resUnknown             // the answer to pay or cancel was lost
)

// resRec is the run's own record of one successful reservation.
type resRec struct {
	id        string
	kind      string // "flash", "group", "checkout"
	pool      string // sale or deal id; store id for checkout
	teamID    string
	u         *user
	qty       int64
	expiresMs int64 // server's expires_at_ms; 0 when unknown
	state     resState
	paidOK    bool // the server answered 0 to pay
	payID     string
}

// teamRec is the run's own record of a team.
type teamRec struct {
	id, deal  string
	size      int64
	members   []*resRec // successful opens and joins
	expiresMs int64
}

// ledger is the run's own record of answers, the second witness next to
// the server's stats.
type ledger struct {
	mu       sync.Mutex
	res      map[string]*resRec
	byUser   map[string][]*resRec // key pool+"\x00"+user code
	soldOut  map[string]bool      // pools that answered sold_out
	teams    map[string]*teamRec
	limitMax map[string]int64 // per-user limit by sale id (0: unknown)
	offsetMs int64            // server clock - local clock, when known

	violations []Violation
	violationN int
	lawN       map[string]int // violations by law, all of them

	// lostReserves counts reserving calls whose answer never came: the
	// server may hold units the run does not know about.
	lostReserves int64

	botAttempts, humanAttempts int64
	botRes, humanRes           int64
	// botOutcomes and humanOutcomes: reserving attempts by outcome (a
	// few dozen keys at most: codes and client-side outcomes).
	botOutcomes, humanOutcomes map[string]int64

	// By kind (kindHuman included): reserving attempts, their outcomes,
	// the first one's send time, and the accounts refused by risk.
	kindAttempts    [kindsN]int64
	kindOutcomes    [kindsN]map[string]int64
	kindFirstSent   [kindsN]time.Time
	kindRiskRefused [kindsN]int
}

func newLedger() *ledger {
	l := &ledger{
		res:      make(map[string]*resRec),
		byUser:   make(map[string][]*resRec),
		soldOut:  make(map[string]bool),
		teams:    make(map[string]*teamRec),
		limitMax: make(map[string]int64),
		lawN:     make(map[string]int),

		botOutcomes:   make(map[string]int64),
		humanOutcomes: make(map[string]int64),
	}
	for k := range l.kindOutcomes {
		l.kindOutcomes[k] = make(map[string]int64)
	}
	return l
}

// clockSlackMs: a hold is only counted as surely live while it has at
// least this long left, to allow for clock differences with the server.
const clockSlackMs = 500

func (l *ledger) violate(v Violation) {
	l.violationN++
	l.lawN[v.Law]++
	if len(l.violations) < violationsRecordMax {
		l.violations = append(l.violations, v)
	}
}

// attempt counts one reserving attempt by u, sent at sent, and its
// outcome.
func (l *ledger) attempt(u *user, outcome string, sent time.Time) {
	l.mu.Lock()
	k := u.kind
	l.kindAttempts[k]++
	l.kindOutcomes[k][outcome]++
	if f := l.kindFirstSent[k]; f.IsZero() || sent.Before(f) {
		l.kindFirstSent[k] = sent
	}
	if outcome == outcomeRiskDenied && !u.riskRefused {
		u.riskRefused = true
		l.kindRiskRefused[k]++
	}
	if u.bot {
		l.botAttempts++
		l.botOutcomes[outcome]++
	} else {
		l.humanAttempts++
		l.humanOutcomes[outcome]++
	}
	l.mu.Unlock()
}

// winners counts the accounts with at least one successful reservation.
// Called with l.mu held.
func (l *ledger) winners() (bots, humans int) {
	seen := make(map[*user]bool)
	for _, rec := range l.res {
		if seen[rec.u] {
			continue
		}
		seen[rec.u] = true
		if rec.u.bot {
			bots++
		} else {
			humans++
		}
	}
	return bots, humans
}

// reserved records a successful reservation answered at done and checks
// the per-user limit: units the user surely holds or has paid in this sale,
// plus this one, must not exceed the limit. It reports whether the
// reservation is new: one already recorded belongs to the flow that was
// answered it first.
func (l *ledger) reserved(r *resRec, done time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.res[r.id]; old != nil {
		// The same reservation twice (an idempotent replay, or two
		// requests of one user in a sale's lottery window, which share
		// that user's one outcome): nothing new.
		return false
	}
	if r.u.bot {
		l.botRes++
	} else {
		l.humanRes++
	}
	key := r.pool + "\x00" + r.u.code
	if limit := l.limitMax[r.pool]; r.kind == "flash" && limit > 0 {
		live := r.qty
		nowMs := done.UnixMilli() + l.offsetMs
		for _, o := range l.byUser[key] {
			if surelyLive(o, nowMs) {
				live += o.qty
			}
		}
		if live > limit {
			l.violate(Violation{Law: "per_user_limit", Subject: "sale " + r.pool,
				Detail: fmt.Sprintf("user %s holds or bought %d units at once, limit %d (reservation %s)", r.u.code, live, limit, r.id)})
		}
	}
	if t := l.teams[r.teamID]; r.kind == "group" && t != nil {
		// Members who cancelled leave the team; the others surely still
		// hold their place.
		live := int64(1)
		nowMs := done.UnixMilli() + l.offsetMs
		for _, o := range t.members {
			if surelyLive(o, nowMs) {
				live++
			}
		}
		if t.size > 0 && live > t.size {
			l.violate(Violation{Law: "team_size", Subject: "team " + t.id,
				Detail: fmt.Sprintf("%d members at once in a team of %d (reservation %s)", live, t.size, r.id)})
		}
		t.members = append(t.members, r)
	}
	l.res[r.id] = r
	l.byUser[key] = append(l.byUser[key], r)
	return true
}

// surelyLive reports whether the server must still count o for its user.
func surelyLive(o *resRec, nowMs int64) bool {
	switch o.state {
	case resPaid:
		return true
	case resHeld, resPaying:
		return o.expiresMs > nowMs+clockSlackMs
	}
	return false
}

func (l *ledger) setState(r *resRec, s resState) {
	l.mu.Lock()
	r.state = s
	if s == resPaid {
		r.paidOK = true
	}
	l.mu.Unlock()
}

func (l *ledger) lostReserve() {
	l.mu.Lock()
	l.lostReserves++
	l.mu.Unlock()
}

func (l *ledger) markSoldOut(pool string) {
	l.mu.Lock()
	l.soldOut[pool] = true
	l.mu.Unlock()
}

// teamJoined records a team's size and deadline from an open or join.
func (l *ledger) teamJoined(deal, team string, size, expiresMs int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.teams[team]
	if t == nil {
		if len(l.teams) >= teamsTrackedMax*16 {
			return // bounded: enough teams to judge
		}
		t = &teamRec{id: team, deal: deal}
		l.teams[team] = t
	}
	if size > 0 {
		t.size = size
	}
	if expiresMs > 0 {
		t.expiresMs = expiresMs
	}
}

// report records a violation seen while the run goes on.
func (l *ledger) report(v Violation) {
	l.mu.Lock()
	l.violate(v)
	l.mu.Unlock()
}

// late records a payment the server took after r's hold had ended: the
// reservation stays released (the server refunds the money), never sold.
// A flash hold that surely had time left when the server answered the
// payment notification (takenMs, local clock; the server decides before it
// answers) must have been paid instead.
func (l *ledger) late(r *resRec, takenMs int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.state = resReleased
	if left := r.expiresMs - (takenMs + l.offsetMs); r.kind == "flash" && r.expiresMs > 0 && left > clockSlackMs {
		l.violate(Violation{Law: "paid_lost", Subject: "reservation " + r.id,
			Detail: fmt.Sprintf("payment notification taken with %dms of the hold left, yet the reservation was released (refunded) instead of paid", left)})
	}
}
