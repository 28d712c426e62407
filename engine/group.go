package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/inventory"
)

const (
	// groupTeamSizeMax bounds a deal's team size.
	groupTeamSizeMax = 100
	// groupWindowSecondsMax bounds a deal's team window.
	groupWindowSecondsMax = int64(TeamWindowMax / time.Second)
	// groupCASRetriesMax bounds the compare-and-swap retries of one team
	// update; each retry follows a change by someone else.
	groupCASRetriesMax = 64
)

// Team states.
const (
	teamForming = "forming"
	teamFormed  = "formed"
	teamFailed  = "failed"
)

// groupState is a group deal in memory.
type groupState struct {
	spec      GroupDealSpec
	pool      string
	remaining atomic.Int64
	finished  atomic.Bool
	// ctl is the operator's pause or early end (salectl.go).
	ctl saleCtl
}

// teamRec is a team as recorded; updated only by compare-and-swap.
type teamRec struct {
	TeamID    string       `json:"team_id"`
	DealID    string       `json:"deal_id"`
	StoreID   string       `json:"store_id"`
	Size      int64        `json:"size"`
	Members   []TeamMember `json:"members"`
	State     string       `json:"state"`
	Virtual   bool         `json:"virtual,omitempty"`
	Settled   bool         `json:"settled,omitempty"`
	ExpiresAt time.Time    `json:"expires_at"`
}

func (t *teamRec) paid() int64 {
	var n int64
	for _, m := range t.Members {
		if m.Paid {
			n++
		}
	}
	return n
}

func (t *teamRec) member(userID string) int {
	for i, m := range t.Members {
		if m.UserID == userID {
			return i
		}
	}
	return -1
}

func (t *teamRec) view(resID string) Team {
	return Team{
		TeamID:        t.TeamID,
		DealID:        t.DealID,
		ReservationID: resID,
		Size:          t.Size,
		Members:       append([]TeamMember(nil), t.Members...),
		State:         t.State,
		Virtual:       t.Virtual,
		ExpiresAt:     t.ExpiresAt,
		ExpiresAtMs:   t.ExpiresAt.UnixMilli(),
	}
}

func teamKey(dealID, teamID string) string { return keyTeamPrefix + dealID + "/" + teamID }

func dueKey(at time.Time, dealID, teamID string) string {
	ms := strconv.FormatInt(at.UnixMilli(), 10)
	return keyDuePrefix + strings.Repeat("0", max(0, 15-len(ms))) + ms + "/" + dealID + "/" + teamID
}

// CreateGroupDeal validates spec, records the deal and carves its quantity
// out of the store listing like a flash sale.
func (e *Engine) CreateGroupDeal(ctx context.Context, spec GroupDealSpec) (GroupDeal, error) {
	if e.closed.Load() {
		return GroupDeal{}, errEngineClosed
	}
	if !keyPart(spec.DealID) {
		return GroupDeal{}, fmt.Errorf("%w: invalid deal_id %q", ErrInvalid, spec.DealID)
	}
	cat := e.catalog.Load()
	if _, ok := cat.stores[spec.StoreID]; !ok {
		return GroupDeal{}, fmt.Errorf("%w: unknown store %q", ErrNotFound, spec.StoreID)
	}
	if _, ok := cat.listingPrice(spec.StoreID, spec.SKUID); !ok {
		return GroupDeal{}, fmt.Errorf("%w: store %q does not list sku %q", ErrNotFound, spec.StoreID, spec.SKUID)
	}
	switch {
	case spec.Price < 0 || spec.Price > priceMax:
		return GroupDeal{}, fmt.Errorf("%w: price out of range", ErrInvalid)
	case spec.Quantity <= 0 || spec.Quantity > onHandMax:
		return GroupDeal{}, fmt.Errorf("%w: quantity out of range", ErrInvalid)
	case spec.TeamSize < 2 || spec.TeamSize > groupTeamSizeMax:
		return GroupDeal{}, fmt.Errorf("%w: team_size out of range", ErrInvalid)
	case spec.TeamWindowSeconds <= 0 || spec.TeamWindowSeconds > groupWindowSecondsMax:
		return GroupDeal{}, fmt.Errorf("%w: team_window_seconds out of range", ErrInvalid)
	case spec.VirtualMinPaid < 0 || spec.VirtualMinPaid > spec.TeamSize:
		return GroupDeal{}, fmt.Errorf("%w: virtual_min_paid out of range", ErrInvalid)
	}
	if err := e.validateWindow(spec.StartsAt, spec.EndsAt); err != nil {
		return GroupDeal{}, err
	}
	spec.StartsAt = spec.StartsAt.UTC().Truncate(time.Millisecond)
	spec.EndsAt = spec.EndsAt.UTC().Truncate(time.Millisecond)
	d, err := e.lookupGroup(ctx, spec.DealID)
	if err != nil {
		return GroupDeal{}, err
	}
	if d != nil {
		if d.spec == spec {
			return e.groupView(d), nil
		}
		return GroupDeal{}, fmt.Errorf("%w: deal %q exists", ErrBadState, spec.DealID)
	}
	if e.salesFull() {
		return GroupDeal{}, fmt.Errorf("%w: too many deals", ErrUnavailable)
	}
	rec := saleRec{Group: &spec}
	key, from, to := keyDealPrefix+spec.DealID, listingPool(spec.StoreID, spec.SKUID), dealPool(spec.StoreID, spec.DealID)
	if err := e.carve(ctx, key, &rec, from, to, spec.Quantity); err != nil {
		return GroupDeal{}, err
	}
	d = e.installGroup(spec)
	if d == nil {
		e.uncarve(ctx, key, from, to)
		return GroupDeal{}, fmt.Errorf("%w: too many deals", ErrUnavailable)
	}
	d.remaining.Store(spec.Quantity)
	e.pages.markDirty(spec.StoreID)
	e.refreshStore(ctx, spec.StoreID)
	return e.groupView(d), nil
}

func (e *Engine) installGroup(spec GroupDealSpec) *groupState {
	e.dealsMu.Lock()
	defer e.dealsMu.Unlock()
	if d, ok := e.deals[spec.DealID]; ok {
		return d
	}
	if len(e.sales)+len(e.deals) >= e.salesMax {
		return nil
	}
	d := &groupState{spec: spec, pool: dealPool(spec.StoreID, spec.DealID)}
	d.remaining.Store(spec.Quantity)
	e.deals[spec.DealID] = d
	return d
}

func (e *Engine) group(ctx context.Context, dealID string) *groupState {
	d, _ := e.lookupGroup(ctx, dealID)
	return d
}

// lookupGroup is group that tells "no such deal" (nil, nil) from "the
// records could not be asked" (an error wrapping ErrUnavailable).
func (e *Engine) lookupGroup(ctx context.Context, dealID string) (*groupState, error) {
	e.dealsMu.RLock()
	d := e.deals[dealID]
	e.dealsMu.RUnlock()
	if d != nil || !keyPart(dealID) {
		return d, nil
	}
	b, ok, err := e.rec.Get(ctx, keyDealPrefix+dealID)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read deal %q: %w", ErrUnavailable, dealID, err)
	}
	if !ok {
		return nil, nil
	}
	var rec saleRec
	if json.Unmarshal(b, &rec) != nil || rec.Group == nil || rec.State != "ready" {
		return nil, nil
	}
	d = e.installGroup(*rec.Group)
	if d != nil {
		d.ctl.apply(&rec)
		if p, err := e.store.Pool(ctx, d.pool); err == nil {
			d.remaining.Store(p.Available)
		}
	}
	return d, nil
}

func (e *Engine) groupView(d *groupState) GroupDeal {
	now := e.now()
	v := GroupDeal{
		DealID:            d.spec.DealID,
		StoreID:           d.spec.StoreID,
		SKUID:             d.spec.SKUID,
		Price:             d.spec.Price,
		TeamSize:          d.spec.TeamSize,
		Quantity:          d.spec.Quantity,
		TeamWindowSeconds: d.spec.TeamWindowSeconds,
		VirtualMinPaid:    d.spec.VirtualMinPaid,
		Remaining:         max(d.remaining.Load(), 0),
		Status:            d.ctl.status(now, d.spec.StartsAt, d.spec.EndsAt),
		StartsAt:          d.spec.StartsAt,
		StartsAtMs:        d.spec.StartsAt.UnixMilli(),
		EndsAt:            d.spec.EndsAt,
		EndsAtMs:          d.spec.EndsAt.UnixMilli(),
	}
	if p, ok := e.catalog.Load().products[d.spec.SKUID]; ok {
		v.Title = p.Title
	}
	return v
}

// GroupDeal returns a deal.
func (e *Engine) GroupDeal(ctx context.Context, dealID string) (GroupDeal, error) {
	d, err := e.lookupGroup(ctx, dealID)
	if err != nil {
		return GroupDeal{}, err
	}
	if d == nil {
		return GroupDeal{}, fmt.Errorf("%w: deal %q", ErrNotFound, dealID)
	}
	return e.groupView(d), nil
}

// readTeam returns the team record and its raw bytes (for CAS).
func (e *Engine) readTeam(ctx context.Context, dealID, teamID string) (teamRec, []byte, error) {
	var t teamRec
	if !keyPart(dealID) || !keyPart(teamID) {
		return t, nil, fmt.Errorf("%w: team %q", ErrNotFound, teamID)
	}
	b, ok, err := e.rec.Get(ctx, teamKey(dealID, teamID))
	if err != nil {
		return t, nil, fmt.Errorf("%w: cannot read team: %w", ErrUnavailable, err)
	}
	if !ok {
		return t, nil, fmt.Errorf("%w: team %q", ErrNotFound, teamID)
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, nil, fmt.Errorf("cannot decode team %q: %w", teamID, err)
	}
	return t, b, nil
}

// updateTeam applies fn to the team until a compare-and-swap succeeds; fn
// returns false to leave the team as it is (its error is returned).
func (e *Engine) updateTeam(ctx context.Context, dealID, teamID string, fn func(t *teamRec) (bool, error)) (teamRec, error) {
	for range groupCASRetriesMax {
		t, old, err := e.readTeam(ctx, dealID, teamID)
		if err != nil {
			return t, err
		}
		change, err := fn(&t)
		if err != nil || !change {
			return t, err
		}
		nb, err := json.Marshal(&t)
		if err != nil {
			return t, fmt.Errorf("cannot encode team: %w", err)
		}
		ok, err := e.rec.CompareAndSwap(ctx, teamKey(dealID, teamID), old, nb)
		if err != nil {
			return t, fmt.Errorf("%w: cannot update team: %w", ErrUnavailable, err)
		}
		if ok {
			return t, nil
		}
	}
	return teamRec{}, fmt.Errorf("%w: team %q too contended", ErrUnavailable, teamID)
}

// reserveGroupUnit reserves one unit of the deal for a member.
func (e *Engine) reserveGroupUnit(ctx context.Context, d *groupState, resID, userID, teamID, guideID string, deadline time.Time) (inventory.Reservation, error) {
	now := e.now()
	hold := min(e.opts.GroupHold, deadline.Sub(now))
	if hold <= 0 {
		return inventory.Reservation{}, fmt.Errorf("%w: team deadline passed", ErrBadState)
	}
	if d.remaining.Load() <= 0 {
		return inventory.Reservation{}, fmt.Errorf("%w: deal %q", ErrSoldOut, d.spec.DealID)
	}
	// A pause or end waits for the reserves past this check (salectl.go).
	if !d.ctl.enter() {
		return inventory.Reservation{}, d.ctl.refusal()
	}
	defer d.ctl.leave()
	m := resRecord{Kind: kindGroup, DealID: d.spec.DealID, TeamID: teamID, StoreID: d.spec.StoreID, GuideID: guideID,
		Items: []recordItem{{SKUID: d.spec.SKUID, Quantity: 1, UnitPrice: d.spec.Price}}, Amount: d.spec.Price}
	r, err := e.store.Reserve(ctx, inventory.ReserveRequest{
		ID:    resID,
		User:  userID,
		Lines: []inventory.Line{{Pool: d.pool, Quantity: 1}},
		TTL:   hold,
		Meta:  m.encode(),
	})
	if err != nil {
		if errors.Is(err, inventory.ErrSoldOut) {
			if d.remaining.Swap(0) > 0 {
				e.pages.markDirty(d.spec.StoreID)
			}
		}
		return r, storeErr(err)
	}
	if d.remaining.Add(-1) <= e.opts.StockLowMax {
		e.pages.markDirty(d.spec.StoreID)
	}
	return r, nil
}

func (e *Engine) releaseQuiet(ctx context.Context, resID string) {
	r, err := e.store.Release(context.WithoutCancel(ctx), resID)
	if err == nil {
		e.afterRelease(ctx, r, false)
	}
}

// groupActive checks a deal exists and runs now.
func (e *Engine) groupActive(ctx context.Context, dealID string) (*groupState, error) {
	d, err := e.lookupGroup(ctx, dealID)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, fmt.Errorf("%w: deal %q", ErrNotFound, dealID)
	}
	if st := d.ctl.status(e.now(), d.spec.StartsAt, d.spec.EndsAt); st != statusActive {
		return nil, fmt.Errorf("%w: deal %q is %s", ErrNotActive, dealID, st)
	}
	return d, nil
}

// OpenTeam opens a team with the caller as leader and reserves the
// leader's unit. With a key (a.Once) it runs at most once and its answer
// is replayed (law 5).
func (e *Engine) OpenTeam(ctx context.Context, a Attempt, dealID, guideID string) (Team, error) {
	if err := e.reservingAllowed(); err != nil {
		return Team{}, err
	}
	riskDone, err := e.teamRiskFirst(ctx, a, dealID, guideID, "group_open")
	if err != nil {
		return Team{}, err
	}
	return once(ctx, e, a.UserID, a.Once, func() (Team, error) { return e.openTeam(ctx, a, dealID, guideID, riskDone) })
}

// teamRiskFirst runs the risk hook (and its rate limits) of a keyed team
// call before the idempotency records are touched, so that a refused
// keyed call writes nothing, as an unkeyed one (API.md): a call refused
// here keeps no answer and its key is decided afresh. Unkeyed calls run
// it in openTeam and joinTeam; done says it ran here.
func (e *Engine) teamRiskFirst(ctx context.Context, a Attempt, dealID, guideID, route string) (done bool, err error) {
	if a.Once.Key == "" {
		return false, nil
	}
	if e.closed.Load() {
		return false, errEngineClosed
	}
	d, err := e.lookupGroup(ctx, dealID)
	if err != nil {
		return false, err
	}
	if d == nil {
		return false, fmt.Errorf("%w: deal %q", ErrNotFound, dealID)
	}
	store := d.spec.StoreID
	if guideID == "" {
		store = ""
	}
	if err := e.checkUserGuide(a.UserID, guideID, store); err != nil {
		return false, err
	}
	a.Route = route
	return true, e.checkRisk(ctx, RiskInput{Attempt: a, SaleID: dealID, StoreID: d.spec.StoreID})
}

func (e *Engine) openTeam(ctx context.Context, a Attempt, dealID, guideID string, riskDone bool) (Team, error) {
	if e.closed.Load() {
		return Team{}, errEngineClosed
	}
	d, err := e.lookupGroup(ctx, dealID)
	if err != nil {
		return Team{}, err
	}
	if d == nil {
		return Team{}, fmt.Errorf("%w: deal %q", ErrNotFound, dealID)
	}
	if err := e.checkUserGuide(a.UserID, guideID, d.spec.StoreID); err != nil {
		return Team{}, err
	}
	a.Route = "group_open"
	if !riskDone {
		if err := e.checkRisk(ctx, RiskInput{Attempt: a, SaleID: dealID, StoreID: d.spec.StoreID}); err != nil {
			return Team{}, err
		}
	}
	if _, err := e.groupActive(ctx, dealID); err != nil {
		return Team{}, err
	}
	now := e.now()
	teamID := "t" + newToken(now)
	deadline := now.Add(time.Duration(d.spec.TeamWindowSeconds) * time.Second).UTC().Truncate(time.Millisecond)
	r, err := e.reserveGroupUnit(ctx, d, e.newReservationID(d.spec.StoreID), a.UserID, teamID, guideID, deadline)
	if err != nil {
		return Team{}, err
	}
	t := teamRec{
		TeamID: teamID, DealID: dealID, StoreID: d.spec.StoreID, Size: d.spec.TeamSize,
		Members:   []TeamMember{{UserID: a.UserID, ReservationID: r.ID, Leader: true}},
		State:     teamForming,
		ExpiresAt: deadline,
	}
	b, err := json.Marshal(&t)
	if err != nil {
		e.releaseQuiet(ctx, r.ID)
		return Team{}, fmt.Errorf("cannot encode team: %w", err)
	}
	// The due key first: if the team record is written, its deadline is
	// always seen by the sweeper.
	if err := e.rec.PutBatch(ctx, []records.KV{{Key: dueKey(deadline, dealID, teamID), Val: []byte("1")}, {Key: teamKey(dealID, teamID), Val: b}}); err != nil {
		e.releaseQuiet(ctx, r.ID)
		return Team{}, fmt.Errorf("%w: cannot record team: %w", ErrUnavailable, err)
	}
	return t.view(r.ID), nil
}

// JoinTeam adds the caller to a forming team and reserves their unit. Of
// racing joiners for the last seat exactly one wins; the others get
// ErrBadState and their unit back. With a key (a.Once) it runs at most
// once and its answer is replayed (law 5).
func (e *Engine) JoinTeam(ctx context.Context, a Attempt, dealID, teamID string) (Team, error) {
	if err := e.reservingAllowed(); err != nil {
		return Team{}, err
	}
	riskDone, err := e.teamRiskFirst(ctx, a, dealID, "", "group_join")
	if err != nil {
		return Team{}, err
	}
	return once(ctx, e, a.UserID, a.Once, func() (Team, error) { return e.joinTeam(ctx, a, dealID, teamID, riskDone) })
}

func (e *Engine) joinTeam(ctx context.Context, a Attempt, dealID, teamID string, riskDone bool) (Team, error) {
	if e.closed.Load() {
		return Team{}, errEngineClosed
	}
	d, err := e.lookupGroup(ctx, dealID)
	if err != nil {
		return Team{}, err
	}
	if d == nil {
		return Team{}, fmt.Errorf("%w: deal %q", ErrNotFound, dealID)
	}
	if err := e.checkUserGuide(a.UserID, "", ""); err != nil {
		return Team{}, err
	}
	a.Route = "group_join"
	if !riskDone {
		if err := e.checkRisk(ctx, RiskInput{Attempt: a, SaleID: dealID, StoreID: d.spec.StoreID}); err != nil {
			return Team{}, err
		}
	}
	if _, err := e.groupActive(ctx, dealID); err != nil {
		return Team{}, err
	}
	t, _, err := e.readTeam(ctx, dealID, teamID)
	if err != nil {
		return Team{}, err
	}
	joinable := func(t *teamRec) error {
		switch {
		case t.State != teamForming:
			return fmt.Errorf("%w: team %q is %s", ErrBadState, teamID, t.State)
		case !e.now().Before(t.ExpiresAt):
			return fmt.Errorf("%w: team %q is past its deadline", ErrBadState, teamID)
		case int64(len(t.Members)) >= t.Size:
			return fmt.Errorf("%w: team %q is full", ErrBadState, teamID)
		case t.member(a.UserID) >= 0:
			return fmt.Errorf("%w: already a member of team %q", ErrBadState, teamID)
		}
		return nil
	}
	if err := joinable(&t); err != nil {
		return Team{}, err
	}
	guide := ""
	if len(t.Members) > 0 {
		// The leader's guide shared the team card: attribute to them.
		if lr, err := e.store.Reservation(ctx, t.Members[0].ReservationID); err == nil {
			if m, err := recordOf(lr); err == nil {
				guide = m.GuideID
			}
		}
	}
	// Claim the seat first, then reserve the unit: racing joiners for the
	// last seat never take a unit they would have to give back, so they
	// cannot make a joiner of another team see a spurious sold-out.
	resID := e.newReservationID(d.spec.StoreID)
	if _, err := e.updateTeam(ctx, dealID, teamID, func(t *teamRec) (bool, error) {
		if err := joinable(t); err != nil {
			return false, err
		}
		t.Members = append(t.Members, TeamMember{UserID: a.UserID, ReservationID: resID})
		return true, nil
	}); err != nil {
		return Team{}, err
	}
	if _, err := e.reserveGroupUnit(ctx, d, resID, a.UserID, teamID, guide, t.ExpiresAt); err != nil {
		// Give the seat back. Should this fail, the seat stays taken by a
		// reservation that does not exist until the team's deadline.
		e.teamMemberGone(ctx, dealID, teamID, resID)
		return Team{}, err
	}
	nt, _, err := e.readTeam(ctx, dealID, teamID)
	if err != nil {
		return Team{}, err
	}
	if nt.State == teamFailed {
		// Decided while we reserved; the settler may have missed our unit.
		e.releaseQuiet(ctx, resID)
		return Team{}, fmt.Errorf("%w: team %q failed", ErrBadState, teamID)
	}
	return nt.view(resID), nil
}

// Team returns a team's state.
func (e *Engine) Team(ctx context.Context, dealID, teamID string) (Team, error) {
	t, _, err := e.readTeam(ctx, dealID, teamID)
	if err != nil {
		return Team{}, err
	}
	return t.view(""), nil
}

// teamMemberGone removes a released member from a forming team (cancel or
// expiry), freeing the seat.
func (e *Engine) teamMemberGone(ctx context.Context, dealID, teamID, resID string) {
	_, _ = e.updateTeam(context.WithoutCancel(ctx), dealID, teamID, func(t *teamRec) (bool, error) {
		if t.State != teamForming {
			return false, nil
		}
		for i, m := range t.Members {
			if m.ReservationID == resID && !m.Paid {
				t.Members = append(t.Members[:i], t.Members[i+1:]...)
				return true, nil
			}
		}
		return false, nil
	})
}

// teamMemberPaid marks a member paid after their reservation was
// confirmed and their order written; the team forms when Size members
// paid. It returns the team as updated.
func (e *Engine) teamMemberPaid(ctx context.Context, dealID, teamID, resID string) (teamRec, error) {
	return e.updateTeam(ctx, dealID, teamID, func(t *teamRec) (bool, error) {
		for i := range t.Members {
			if t.Members[i].ReservationID != resID {
				continue
			}
			if t.State == teamFailed {
				return false, nil
			}
			if t.Members[i].Paid {
				return false, nil
			}
			t.Members[i].Paid = true
			if t.State == teamForming && t.paid() >= t.Size {
				t.State = teamFormed
			}
			return true, nil
		}
		return false, nil
	})
}

// decideTeams decides the teams whose deadline passed (made once across
// nodes by compare-and-swap on the team record) and settles them: failed
// teams release held units and refund paid members; formed teams release
// unpaid holds.
func (e *Engine) decideTeams(ctx context.Context, now time.Time) error {
	var due []string
	errStop := errors.New("stop")
	err := e.rec.Scan(ctx, keyDuePrefix, func(key string, _ []byte) error {
		rest := strings.TrimPrefix(key, keyDuePrefix)
		parts := strings.SplitN(rest, "/", 3)
		if len(parts) != 3 {
			return nil
		}
		ms, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			return nil
		}
		if ms > now.UnixMilli() || len(due) >= expireBatchMax {
			return errStop
		}
		due = append(due, key)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("cannot scan team deadlines: %w", err)
	}
	var errs []error
	for _, key := range due {
		parts := strings.SplitN(strings.TrimPrefix(key, keyDuePrefix), "/", 3)
		dealID, teamID := parts[1], parts[2]
		if err := e.settleTeam(ctx, dealID, teamID, now); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := e.rec.Delete(ctx, key); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) settleTeam(ctx context.Context, dealID, teamID string, now time.Time) error {
	t, err := e.updateTeam(ctx, dealID, teamID, func(t *teamRec) (bool, error) {
		if t.State != teamForming || now.Before(t.ExpiresAt) {
			return false, nil
		}
		paid := t.paid()
		switch {
		case paid >= t.Size:
			t.State = teamFormed
		case t.Size > 0 && paid > 0 && paid >= e.virtualMin(ctx, dealID):
			t.State, t.Virtual = teamFormed, true
		default:
			t.State = teamFailed
		}
		return true, nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if t.Settled || t.State == teamForming {
		return nil
	}
	for _, m := range t.Members {
		r, err := e.store.Release(ctx, m.ReservationID)
		switch {
		case err == nil:
			e.afterRelease(ctx, r, true)
		case errors.Is(err, inventory.ErrBadState):
			if t.State == teamFailed {
				if err := e.refundMember(ctx, m.ReservationID); err != nil {
					return err
				}
			}
		case errors.Is(err, inventory.ErrReservationNotFound):
		default:
			return fmt.Errorf("cannot release team member %s: %w", m.ReservationID, storeErr(err))
		}
	}
	_, err = e.updateTeam(ctx, dealID, teamID, func(t *teamRec) (bool, error) {
		if t.Settled {
			return false, nil
		}
		t.Settled = true
		return true, nil
	})
	return err
}

func (e *Engine) virtualMin(ctx context.Context, dealID string) int64 {
	// Through the records too: a team may be decided after its deal ended
	// and left memory.
	d := e.group(ctx, dealID)
	if d == nil || d.spec.VirtualMinPaid <= 0 {
		return 1 << 62
	}
	return d.spec.VirtualMinPaid
}

// refundMember refunds a paid member of a failed team and marks the order
// refunded.
func (e *Engine) refundMember(ctx context.Context, resID string) error {
	r, err := e.store.Refund(ctx, resID)
	if err != nil {
		return fmt.Errorf("cannot refund %s: %w", resID, storeErr(err))
	}
	if e.wechat() {
		// The money goes back through WeChat Pay: a refund recorded now,
		// requested by SettlePayments; the order shows refund_pending.
		m, err := recordOf(r)
		if err != nil {
			return err
		}
		pid, _, err := e.paymentOf(ctx, r.ID)
		if err != nil {
			return err
		}
		if err := e.startRefund(ctx, r, m, pid, RefundTeamFailed); err != nil {
			return err
		}
		if d := e.group(ctx, m.DealID); d != nil {
			d.finished.Store(false)
			d.remaining.Add(1)
		}
		return nil
	}
	o, err := e.orderOf(ctx, r)
	if err != nil {
		return err
	}
	o.State = orders.StateRefunded
	if err := e.orders.Upsert(ctx, []Order{o}); err != nil {
		return fmt.Errorf("%w: cannot mark order refunded: %w", ErrUnavailable, err)
	}
	if m, err := recordOf(r); err == nil {
		if d := e.group(ctx, m.DealID); d != nil {
			d.finished.Store(false)
			d.remaining.Add(1)
		}
	}
	return nil
}
