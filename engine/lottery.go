package engine

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The lottery window (issue 18). A sale created with lottery_window_ms W
// opens with a lottery: reserves that arrive in [starts_at, starts_at+W)
// are not served as they come but collected; when the window closes they
// are served in the order of HMAC-SHA256(seed, user_id), lowest first, so
// being first by milliseconds buys nothing, and one account entering many
// times is one entrant with one place. After the window, first come first
// served: arrivals while the drawn entrants are still being served queue
// behind them, then the sale goes back to the plain path.
//
// The seed is in the sale's record, so every node orders its own entrants
// by the same rule without asking the others; it is published with the
// sale once the window has closed, and anyone can recompute the order
// (LotteryOrder). The waiting requests are the callers' own goroutines
// (one per request, fasthttp's handlers); the draw spawns none: it wakes
// the first LotteryServeMax entrants, and each entrant that finishes
// wakes the next.

// Bounds and defaults of the lottery.
const (
	// LotteryWindowMax bounds a sale's lottery_window_ms (and
	// Options.LotteryWindow).
	LotteryWindowMax = 10 * time.Second
	// LotteryWindowDefault is the window of sales created without
	// lottery_window_ms when Options.LotteryWindow is 0. Zero: none.
	LotteryWindowDefault time.Duration = 0
	// LotteryQueueMaxDefault is the default of Options.LotteryQueueMax.
	LotteryQueueMaxDefault = 20_000
	// LotteryServeMaxDefault is the default of Options.LotteryServeMax.
	LotteryServeMaxDefault = 64
	// LotteryTurnWaitMax is how long after its window closes an entrant
	// may wait for its turn (LotteryTicket.WaitUntil).
	LotteryTurnWaitMax = 15 * time.Second
	// lotteryWaitersPerEntrantMax bounds the requests of one user waiting
	// on its entry (duplicates share the first request's outcome).
	lotteryWaitersPerEntrantMax = 8
	// lotteryCompactMin is how many served entrants the queue keeps before
	// it is compacted.
	lotteryCompactMin = 1024
	// lotterySeedLenMin and lotterySeedLenMax bound a lottery_seed.
	lotterySeedLenMin = 16
	lotterySeedLenMax = KeyLenMax
)

// ErrLotteryFull marks the refusal of a reserve because its sale's lottery
// queue is full (Options.LotteryQueueMax); it comes with ErrThrottled and
// ErrShed.
var ErrLotteryFull = errors.New("engine: the sale's lottery queue is full")

// lotteryFullError is the refusal of a full lottery queue: made once, so a
// refusal allocates nothing.
type lotteryFullError struct{}

func (lotteryFullError) Error() string {
	return "engine: too many buyers are waiting for this sale's draw, retry shortly"
}

func (lotteryFullError) Is(target error) bool {
	return target == ErrLotteryFull || target == ErrThrottled || target == ErrShed
}

var errLotteryFull error = lotteryFullError{}

// ValidLotterySeed reports whether s can be a sale's lottery_seed: 16 to
// 64 characters of [A-Za-z0-9_.-].
func ValidLotterySeed(s string) bool {
	return len(s) >= lotterySeedLenMin && len(s) <= lotterySeedLenMax && ValidKey(s)
}

// newLotterySeed returns a random seed: 32 hex digits (128 bits).
func newLotterySeed() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("cannot make a lottery seed: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// lotteryRank is a user's place in a lottery drawn with seed: lower
// first. It is HMAC-SHA256 with the seed (its bytes as written) as the key
// and the user id as the message, so it can be checked with, e.g.,
// `printf %s USER | openssl dgst -sha256 -hmac SEED`.
func lotteryRank(seed, user string) [32]byte {
	m := hmac.New(sha256.New, []byte(seed))
	m.Write([]byte(user))
	var r [32]byte
	m.Sum(r[:0])
	return r
}

// LotteryOrder returns the users of a lottery drawn with seed in the
// order they are served (each user once): by HMAC-SHA256(seed, user),
// lowest first. It is how the draw of a published seed is checked.
func LotteryOrder(seed string, users []string) []string {
	type ranked struct {
		user string
		rank [32]byte
	}
	seen := make(map[string]bool, len(users))
	rs := make([]ranked, 0, len(users))
	for _, u := range users {
		if !seen[u] {
			seen[u] = true
			rs = append(rs, ranked{u, lotteryRank(seed, u)})
		}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if c := bytes.Compare(a.rank[:], b.rank[:]); c != 0 {
			return c
		}
		return strings.Compare(a.user, b.user)
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.user
	}
	return out
}

// resolveLottery checks a new sale's lottery fields and fills the window
// (Options.LotteryWindow for a sale that does not say; nil when none) and
// the seed (random when not given). The seed is made only by makeSeed, so
// that a repeated creation can be compared first.
func (e *Engine) resolveLottery(spec *FlashSaleSpec) error {
	length := spec.EndsAt.Sub(spec.StartsAt)
	var w time.Duration
	if spec.LotteryWindowMs == nil {
		// The server's default applies to sales long enough for it.
		if d := e.opts.LotteryWindow; d > 0 && d < length {
			w = d
		}
	} else {
		ms := *spec.LotteryWindowMs
		if ms < 0 || ms > LotteryWindowMax.Milliseconds() {
			return fmt.Errorf("%w: lottery_window_ms must be between 0 and %d", ErrInvalid, LotteryWindowMax.Milliseconds())
		}
		w = time.Duration(ms) * time.Millisecond
		if w > 0 && w >= length {
			return fmt.Errorf("%w: lottery_window_ms must be shorter than the sale", ErrInvalid)
		}
	}
	if spec.LotterySeed != "" {
		if !ValidLotterySeed(spec.LotterySeed) {
			return fmt.Errorf("%w: lottery_seed must be %d to %d characters of A-Z, a-z, 0-9, '_', '.' and '-'", ErrInvalid, lotterySeedLenMin, lotterySeedLenMax)
		}
		if w == 0 {
			return fmt.Errorf("%w: lottery_seed needs a lottery window (lottery_window_ms)", ErrInvalid)
		}
	}
	spec.LotteryWindowMs = nil
	if w > 0 {
		ms := w.Milliseconds()
		spec.LotteryWindowMs = &ms
	}
	return nil
}

// makeLotterySeed gives a sale with a window and no seed a random one.
func makeLotterySeed(spec *FlashSaleSpec) error {
	if spec.LotteryWindowMs == nil || spec.LotterySeed != "" {
		return nil
	}
	seed, err := newLotterySeed()
	if err != nil {
		return err
	}
	spec.LotterySeed = seed
	return nil
}

// sameFlashSpec reports whether a repeated creation (req, resolved but
// without a made seed) asks for the sale that exists (have).
func sameFlashSpec(have, req FlashSaleSpec) bool {
	if lotteryWindowMs(have) != lotteryWindowMs(req) {
		return false
	}
	if req.LotterySeed != "" && req.LotterySeed != have.LotterySeed {
		return false
	}
	have.LotteryWindowMs, req.LotteryWindowMs = nil, nil
	have.LotterySeed, req.LotterySeed = "", ""
	return have == req
}

// lotteryWindowMs is a sale's window, 0 when none.
func lotteryWindowMs(spec FlashSaleSpec) int64 {
	if spec.LotteryWindowMs == nil {
		return 0
	}
	return *spec.LotteryWindowMs
}

// lotteryClosesAt is when a sale's window closes (its draw).
func lotteryClosesAt(spec FlashSaleSpec) time.Time {
	return spec.StartsAt.Add(time.Duration(lotteryWindowMs(spec)) * time.Millisecond)
}

// lotteryView fills the lottery fields of a sale's view: the window
// always, the seed once the window has closed.
func lotteryView(spec FlashSaleSpec, now time.Time) (windowMs, closesAtMs int64, seed string) {
	windowMs = lotteryWindowMs(spec)
	if windowMs == 0 {
		return 0, 0, ""
	}
	closes := lotteryClosesAt(spec)
	if !now.Before(closes) {
		seed = spec.LotterySeed
	}
	return windowMs, closes.UnixMilli(), seed
}

// lottery is one sale's lottery on this node.
type lottery struct {
	seed     string
	drawAt   time.Time
	queueMax int
	serveMax int
	// over is set once the lottery is over on this node (drawn and every
	// entrant served): reserves take the plain path without a lock.
	over atomic.Bool
	// soldOut is set once the store answered an entrant sold out. Until
	// then entrants ask the store even when the sale's remaining count
	// says none are left: that count is approximate (a resync by the
	// sweeper races with reserves in flight), and an entrant must not
	// lose its turn to it.
	soldOut atomic.Bool

	mu    sync.Mutex
	drawn bool
	// users holds the entries without an outcome yet, by user.
	users map[string]*entrant
	// queue is in arrival order before the draw; in draw order after it,
	// followed by later arrivals. queue[next] is the next to get a turn.
	queue []*entrant
	next  int
	// serving counts the entrants whose turn came and who have not
	// finished.
	serving int
	// Counters for Stats.
	entered, joined, refused int64
}

// entrant is one user's entry: every request of that user waiting in the
// lottery shares it, and its outcome.
type entrant struct {
	user string
	rank [32]byte
	// turn is closed when the entrant's turn comes; done when its outcome
	// (res, err) is known.
	turn, done chan struct{}
	waiters    int // requests waiting on this entry
	turned     bool
	claimed    bool // a request is serving it
	finished   bool
	abandoned  bool // every request gave up before its turn
	res        Reservation
	err        error
}

func newLottery(spec FlashSaleSpec, queueMax, serveMax int) *lottery {
	if lotteryWindowMs(spec) == 0 {
		return nil
	}
	return &lottery{
		seed: spec.LotterySeed, drawAt: lotteryClosesAt(spec),
		queueMax: queueMax, serveMax: serveMax,
		users: make(map[string]*entrant),
	}
}

// enter puts user in the lottery, or onto the entry it already has; with
// create false it only joins an existing entry. It returns nil (and no
// error) when there is nothing to join or the lottery is over: the caller
// takes the plain path.
func (l *lottery) enter(now time.Time, user string, create bool) (*entrant, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.over.Load() {
		return nil, nil
	}
	if !l.drawn && !now.Before(l.drawAt) {
		l.drawLocked()
	}
	if l.overLocked() {
		return nil, nil
	}
	if en := l.users[user]; en != nil {
		if en.waiters >= lotteryWaitersPerEntrantMax {
			l.refused++
			return nil, errLotteryFull
		}
		en.waiters++
		l.joined++
		return en, nil
	}
	if !create {
		return nil, nil
	}
	if len(l.users) >= l.queueMax || len(l.queue)-l.next >= l.queueMax {
		l.refused++
		return nil, errLotteryFull
	}
	en := &entrant{user: user, rank: lotteryRank(l.seed, user), waiters: 1,
		turn: make(chan struct{}), done: make(chan struct{})}
	l.users[user] = en
	l.queue = append(l.queue, en)
	l.entered++
	l.releaseLocked()
	return en, nil
}

// draw orders the entrants once the window has closed (at now).
func (l *lottery) draw(now time.Time) {
	if now.Before(l.drawAt) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.drawn {
		l.drawLocked()
		l.overLocked()
	}
}

func (l *lottery) drawLocked() {
	l.drawn = true
	q := l.queue[l.next:]
	slices.SortFunc(q, func(a, b *entrant) int {
		if c := bytes.Compare(a.rank[:], b.rank[:]); c != 0 {
			return c
		}
		return strings.Compare(a.user, b.user)
	})
	l.releaseLocked()
}

// releaseLocked gives turns to the next entrants, up to serveMax at once.
func (l *lottery) releaseLocked() {
	if !l.drawn {
		return
	}
	for l.serving < l.serveMax && l.next < len(l.queue) {
		en := l.queue[l.next]
		l.queue[l.next] = nil
		l.next++
		if en.abandoned {
			continue
		}
		en.turned = true
		close(en.turn)
		l.serving++
	}
	if l.next >= lotteryCompactMin && 2*l.next >= len(l.queue) {
		n := copy(l.queue, l.queue[l.next:])
		clear(l.queue[n:])
		l.queue, l.next = l.queue[:n], 0
	}
}

// overLocked reports whether the lottery is over (drawn, nobody queued or
// being served), and frees it when it is.
func (l *lottery) overLocked() bool {
	if l.over.Load() {
		return true
	}
	if !l.drawn || l.next < len(l.queue) || l.serving > 0 {
		return false
	}
	l.queue, l.next, l.users = nil, 0, nil // nobody enters any more
	l.over.Store(true)
	return true
}

// dropIdle frees the lottery's queue and entrants if it is over (the
// sale is finished: nobody waits any more).
func (l *lottery) dropIdle() {
	l.mu.Lock()
	l.overLocked()
	l.mu.Unlock()
}

// claim lets one request serve an entrant whose turn came.
func (l *lottery) claim(en *entrant) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if en.claimed || en.finished || en.abandoned {
		return false
	}
	en.claimed = true
	return true
}

// finish records an entrant's outcome and passes its turn on.
func (l *lottery) finish(en *entrant, res Reservation, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	en.res, en.err, en.finished = res, err, true
	close(en.done)
	if l.users[en.user] == en {
		delete(l.users, en.user)
	}
	l.serving--
	l.releaseLocked()
	l.overLocked()
}

// leave takes a request that gives up off its entry; the last one to
// leave an entry nobody serves abandons it (and passes on its turn).
func (l *lottery) leave(en *entrant) {
	l.mu.Lock()
	defer l.mu.Unlock()
	en.waiters--
	if en.waiters > 0 || en.claimed || en.finished || en.abandoned {
		return
	}
	en.abandoned = true
	if l.users[en.user] == en {
		delete(l.users, en.user)
	}
	if en.turned {
		l.serving--
		l.releaseLocked()
	}
	l.overLocked()
}

// LotteryStats is one sale's lottery on this node (Stats.Lotteries).
type LotteryStats struct {
	WindowMs int64 `json:"window_ms"`
	Drawn    bool  `json:"drawn"`
	// Entered counts entrants (one per user), Joined the duplicate
	// requests that waited on an entry, Refused the requests refused
	// because the queue was full; Waiting is the entrants without an
	// outcome yet.
	Entered int64 `json:"entered"`
	Joined  int64 `json:"joined"`
	Refused int64 `json:"refused"`
	Waiting int   `json:"waiting"`
}

func (l *lottery) stats(windowMs int64) LotteryStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LotteryStats{WindowMs: windowMs, Drawn: l.drawn, Entered: l.entered, Joined: l.joined,
		Refused: l.refused, Waiting: len(l.users)}
}

// LotteryTicket is a request's place in a sale's lottery
// (ReserveFlashOrEnter). Its Reserve must be called exactly once.
type LotteryTicket struct {
	e       *Engine
	s       *flashState
	en      *entrant
	a       Attempt
	qty     int64
	guideID string
}

// WaitUntil is how long the ticket's holder should be ready to wait: its
// sale's window closes, then the entrants drawn before it are served.
func (t *LotteryTicket) WaitUntil() time.Time {
	return t.s.lot.drawAt.Add(LotteryTurnWaitMax)
}

// errLotteryGaveUp answers a request that stopped waiting for its turn.
var errLotteryGaveUp = fmt.Errorf("%w: gave up waiting for the sale's draw, retry", ErrThrottled)

// Reserve waits for the ticket's turn (bounded by ctx), then reserves
// through the plain path (law 1 and law 6 as for any reserve). A request
// of a user whose entry another request is serving waits for that outcome
// and returns it.
func (t *LotteryTicket) Reserve(ctx context.Context) (Reservation, error) {
	l, en := t.s.lot, t.en
	var drawC <-chan time.Time
	l.mu.Lock()
	drawn := l.drawn
	l.mu.Unlock()
	if !drawn {
		tm := time.NewTimer(max(l.drawAt.Sub(t.e.now()), 0))
		defer tm.Stop()
		drawC = tm.C
	}
	turn := en.turn
	for {
		select {
		case <-turn:
			if l.claim(en) {
				return t.serve(ctx)
			}
			turn = nil // another request of the user serves the entry
		case <-en.done:
			return en.res, en.err
		case <-drawC:
			drawC = nil
			l.draw(t.e.now())
		case <-ctx.Done():
			l.leave(en)
			return Reservation{}, errLotteryGaveUp
		case <-t.e.stop:
			l.leave(en)
			return Reservation{}, errEngineClosed
		}
	}
}

// errLotteryServe is the outcome of an entrant whose reserve panicked (a
// bug): the requests sharing the entry get it; the panic goes on up.
var errLotteryServe = fmt.Errorf("%w: the reserve of this entrant failed", ErrUnavailable)

// serve reserves for the ticket's entrant at its turn and passes the turn
// on, whatever happens: a lottery never stalls behind one entrant.
func (t *LotteryTicket) serve(ctx context.Context) (res Reservation, err error) {
	err = errLotteryServe
	defer func() { t.s.lot.finish(t.en, res, err) }()
	res, err = t.e.serveEntrant(ctx, t.a, t.s, t.qty, t.guideID)
	return res, err
}

// enterLottery is a reserve of a sale with a lottery (s.lot != nil): from
// the sale's start until its lottery is over, the request enters it, after
// the checks of a reserve (quantity, guide, risk: an entrant refused by
// risk does not enter). It returns a nil ticket when the request takes the
// plain path, and whether the risk hook was asked already.
func (e *Engine) enterLottery(ctx context.Context, a Attempt, s *flashState, quantity int64, guideID string) (*LotteryTicket, bool, error) {
	l := s.lot
	now := e.now()
	if now.Before(s.spec.StartsAt) {
		return nil, false, nil
	}
	if quantity <= 0 || quantity > QuantityMax {
		return nil, false, fmt.Errorf("%w: quantity %d", ErrInvalid, quantity)
	}
	if err := e.checkUserGuide(a.UserID, guideID, s.spec.StoreID); err != nil {
		return nil, false, err
	}
	ticket := func(en *entrant) *LotteryTicket {
		return &LotteryTicket{e: e, s: s, en: en, a: a, qty: quantity, guideID: guideID}
	}
	// A user already waiting waits on the same entry: no second entry,
	// and no second risk call.
	en, err := l.enter(now, a.UserID, false)
	if err != nil || en != nil {
		if en == nil {
			return nil, false, err
		}
		return ticket(en), false, nil
	}
	if l.over.Load() {
		return nil, false, nil
	}
	// A sale with registration (预约) admits only its registrants (or
	// the draw's winners) to the lottery too.
	if s.reg != nil {
		if err := e.checkRegistered(ctx, s, a.UserID); err != nil {
			return nil, false, err
		}
	}
	a.Route = "flash_reserve"
	if err := e.checkRisk(ctx, RiskInput{Attempt: a, SaleID: s.spec.SaleID, StoreID: s.spec.StoreID,
		MinAccountAge: time.Duration(s.spec.MinAccountAgeSeconds) * time.Second}); err != nil {
		return nil, true, err
	}
	en, err = l.enter(e.now(), a.UserID, true)
	if err != nil {
		return nil, true, err
	}
	if en == nil {
		return nil, true, nil
	}
	return ticket(en), true, nil
}

// serveEntrant is an entrant's reserve at its turn: the plain path past
// the checks made at entry (the risk hook was asked then) and the sale's
// admission gate (the lottery bounds its own reserves in flight).
func (e *Engine) serveEntrant(ctx context.Context, a Attempt, s *flashState, quantity int64, guideID string) (Reservation, error) {
	if s.ctl.state.Load() != ctlNone {
		return e.keyedRefusal(ctx, a, s.homeTag(a.UserID), s.ctl.refusal())
	}
	st := s.ctl.status(e.now(), s.spec.StartsAt, s.spec.EndsAt)
	if s.remaining.Load() <= 0 && s.lot.soldOut.Load() {
		return e.keyedRefusal(ctx, a, s.homeTag(a.UserID), shedEmpty(st))
	}
	if st != statusActive {
		return e.keyedRefusal(ctx, a, s.homeTag(a.UserID), fmt.Errorf("%w: sale %q is %s", ErrNotActive, s.spec.SaleID, st))
	}
	if !s.ctl.enter() {
		return e.keyedRefusal(ctx, a, s.homeTag(a.UserID), s.ctl.refusal())
	}
	defer s.ctl.leave()
	res, err := e.reserveFlash(ctx, a, s, quantity, guideID)
	if errors.Is(err, ErrSoldOut) {
		s.lot.soldOut.Store(true)
	}
	return res, err
}

// drawLotteries draws the lotteries whose window has closed (the sweeper's
// backstop to the waiters' own timers).
func (e *Engine) drawLotteries(now time.Time) {
	var lots []*lottery
	e.dealsMu.RLock()
	for _, s := range e.sales {
		if s.lot != nil && !s.lot.over.Load() {
			lots = append(lots, s.lot)
		}
	}
	e.dealsMu.RUnlock()
	for _, l := range lots {
		l.draw(now)
	}
}

// lotteryStats is Stats.Lotteries: the sales with a lottery in memory.
func (e *Engine) lotteryStats() map[string]LotteryStats {
	out := map[string]LotteryStats{}
	e.dealsMu.RLock()
	defer e.dealsMu.RUnlock()
	for id, s := range e.sales {
		if s.lot != nil {
			out[id] = s.lot.stats(lotteryWindowMs(s.spec))
		}
	}
	return out
}

// Lottery returns a sale's lottery on this node; false when memory holds
// no such sale or the sale has no lottery window.
func (e *Engine) Lottery(saleID string) (LotteryStats, bool) {
	e.dealsMu.RLock()
	s := e.sales[saleID]
	e.dealsMu.RUnlock()
	if s == nil || s.lot == nil {
		return LotteryStats{}, false
	}
	return s.lot.stats(lotteryWindowMs(s.spec)), true
}
