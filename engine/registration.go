package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surge-retail/surge/engine/records"
)

// Registration (预约) before a sale, and the draw (抽签) among registrants.
//
// A sale created with registration_starts_at takes registrations from
// then until starts_at (RegisterFlash). Registrants are kept in a set of
// the records in the sale's store's slot (records.TaggedSets), bounded by
// Options.RegistrantsPerSaleMax. At starts_at the first node that needs
// the draw (the sweeper, a reserve, a registration, the admin export)
// closes the set, so that no registration lands after it, reads the whole
// list and computes the draw (draw.go); the result (seed, counts and the
// cutoff digest) is written once as a tagged record, and every node uses
// the one written. A user's decision is then a set lookup and a digest
// compared with the cutoff, cached in memory: a reserve of a sale with
// registration checks it after the window (ErrNotRegistered when the
// caller did not register or did not win).
//
// The seed is in the sale's record from its creation; it is shown (with
// the counts) only once the draw is made, and its SHA-256 from the start,
// so that shoppers can check afterwards that the seed was not changed.

const (
	// DrawSeedLenMax bounds a sale's draw_seed, bytes.
	DrawSeedLenMax = 128
	// drawRecordPrefix is the tagged record of a sale's draw.
	drawRecordPrefix = "draw/"
	// regSetPrefix names a sale's set of registrants.
	regSetPrefix = "reg."
)

// regState is a sale's registration in memory.
type regState struct {
	// n is the registrants as last known by this node (exact once drawn).
	n atomic.Int64
	// draw is the draw once made (read from the records or computed here).
	draw atomic.Pointer[drawRecord]
	// drawing is held by the one goroutine of this node that reads or
	// computes the draw; others wait for it, bounded by their context.
	drawing chan struct{}
	// decisions caches users' decisions once the draw is made (they never
	// change then), at most cacheMax entries.
	mu        sync.RWMutex
	decisions map[string]uint8
	cacheMax  int
}

// Decisions of a user in a drawn sale.
const (
	decUnregistered uint8 = iota + 1
	decLost
	decWon
)

// dropCached forgets the cached decisions (a finished sale's; they are
// read again from the draw if asked), in a new empty map: a Go map keeps
// its largest size until replaced.
func (r *regState) dropCached() {
	r.mu.Lock()
	r.decisions = map[string]uint8{}
	r.mu.Unlock()
}

func newRegState(cacheMax int64) *regState {
	return &regState{drawing: make(chan struct{}, 1), decisions: map[string]uint8{}, cacheMax: int(min(cacheMax, 1<<22))}
}

// drawRecord is what "draw/<sale>" keeps.
type drawRecord struct {
	Seed        string    `json:"seed"`
	Quantity    int64     `json:"quantity"`
	Registrants int64     `json:"registrants"`
	Winners     int64     `json:"winners"`
	CutoffHex   string    `json:"cutoff_digest,omitempty"`
	CutoffUser  string    `json:"cutoff_user,omitempty"`
	DrawnAt     time.Time `json:"drawn_at"`
}

// wins reports whether a registrant won.
func (d *drawRecord) wins(userID string) bool {
	if d.CutoffHex == "" {
		return true
	}
	c := drawEntry{DrawDigest(d.Seed, userID), userID}
	return !(drawEntry{d.CutoffHex, d.CutoffUser}).less(c)
}

// Registration is POST /api/v1/flash-sales/{id}/registrations's answer:
// Drawn is nil until the draw is made, then whether the caller won.
type Registration struct {
	SaleID     string `json:"sale_id"`
	Registered bool   `json:"registered"`
	Drawn      *bool  `json:"drawn"`
}

// SaleRegistration is the registration part of a sale's view (FlashSale).
type SaleRegistration struct {
	RegistrationStartsAt   time.Time `json:"registration_starts_at"`
	RegistrationStartsAtMs int64     `json:"registration_starts_at_ms"`
	// RegistrationStatus is "upcoming", "open" or "closed".
	RegistrationStatus string `json:"registration_status"`
	// DrawQuantity is how many registrants the draw admits; 0: all.
	DrawQuantity int64 `json:"draw_quantity"`
	// Registrants is exact once the draw is made; before, as last known
	// by the node that answers.
	Registrants int64 `json:"registrants"`
	// DrawSeedSHA256 commits to the seed before the draw.
	DrawSeedSHA256 string `json:"draw_seed_sha256"`
	// DrawMade, and then the seed and the number of winners.
	DrawMade bool   `json:"draw_made"`
	DrawSeed string `json:"draw_seed,omitempty"`
	Winners  *int64 `json:"winners,omitempty"`
}

// RegistrationList is the admin's export of a sale's registrants (GET
// /admin/v1/flash-sales/{id}/registrations), sorted by user id.
type RegistrationList struct {
	SaleID string `json:"sale_id"`
	SaleRegistration
	Registrations []RegistrationEntry `json:"registrations"`
}

// RegistrationEntry is one registrant; Drawn is nil until the draw.
type RegistrationEntry struct {
	UserID         string    `json:"user_id"`
	RegisteredAt   time.Time `json:"registered_at"`
	RegisteredAtMs int64     `json:"registered_at_ms"`
	Drawn          *bool     `json:"drawn"`
}

// checkRegistrationSpec checks the registration fields of a new sale.
// The seed is made later (makeDrawSeed), once the sale is known new.
func (e *Engine) checkRegistrationSpec(spec *FlashSaleSpec) error {
	if spec.RegistrationStartsAt.IsZero() {
		if spec.DrawQuantity != 0 || spec.DrawSeed != "" {
			return fmt.Errorf("%w: draw_quantity and draw_seed need registration_starts_at", ErrInvalid)
		}
		return nil
	}
	spec.RegistrationStartsAt = spec.RegistrationStartsAt.UTC().Truncate(time.Millisecond)
	switch {
	case !spec.RegistrationStartsAt.Before(spec.StartsAt):
		return fmt.Errorf("%w: registration_starts_at must be before starts_at", ErrInvalid)
	case !e.now().Before(spec.StartsAt):
		return fmt.Errorf("%w: a sale with registration must start in the future", ErrInvalid)
	case spec.DrawQuantity < 0 || spec.DrawQuantity > e.opts.RegistrantsPerSaleMax:
		return fmt.Errorf("%w: draw_quantity must be between 0 (every registrant) and %d", ErrInvalid, e.opts.RegistrantsPerSaleMax)
	case len(spec.DrawSeed) > DrawSeedLenMax:
		return fmt.Errorf("%w: draw_seed is longer than %d bytes", ErrInvalid, DrawSeedLenMax)
	}
	for i := 0; i < len(spec.DrawSeed); i++ {
		if c := spec.DrawSeed[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%w: draw_seed must be printable ASCII without spaces", ErrInvalid)
		}
	}
	return nil
}

// makeDrawSeed gives a new sale with registration and no seed a random
// one (256 bits, hex).
func makeDrawSeed(spec *FlashSaleSpec) {
	if spec.RegistrationStartsAt.IsZero() || spec.DrawSeed != "" {
		return
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	spec.DrawSeed = hex.EncodeToString(b[:])
}

func regSet(saleID string) string { return regSetPrefix + saleID }

// registrationView fills the registration part of a sale's view.
func (e *Engine) registrationView(s *flashState, now time.Time) *SaleRegistration {
	if s.reg == nil {
		return nil
	}
	sum := sha256.Sum256([]byte(s.spec.DrawSeed))
	v := &SaleRegistration{
		RegistrationStartsAt:   s.spec.RegistrationStartsAt,
		RegistrationStartsAtMs: s.spec.RegistrationStartsAt.UnixMilli(),
		RegistrationStatus:     "open",
		DrawQuantity:           s.spec.DrawQuantity,
		Registrants:            s.reg.n.Load(),
		DrawSeedSHA256:         hex.EncodeToString(sum[:]),
	}
	switch {
	case now.Before(s.spec.RegistrationStartsAt):
		v.RegistrationStatus = statusUpcoming
	case !now.Before(s.spec.StartsAt) || s.ctl.status(now, s.spec.StartsAt, s.spec.EndsAt) == statusEnded:
		v.RegistrationStatus = "closed"
	}
	if d := s.reg.draw.Load(); d != nil {
		v.DrawMade = true
		v.DrawSeed = d.Seed
		v.Registrants = d.Registrants
		w := d.Winners
		v.Winners = &w
	}
	return v
}

// RegisterFlash registers the caller for a sale with registration, or,
// once the draw is made, answers the caller's registration and decision.
// A sale without registration is ErrBadState; before
// registration_starts_at, or at starts_at and later for one who did not
// register, ErrNotActive; past Options.RegistrantsPerSaleMax, ErrBadState.
// Registering twice is the same registration.
func (e *Engine) RegisterFlash(ctx context.Context, a Attempt, saleID string) (Registration, error) {
	if e.closed.Load() {
		return Registration{}, errEngineClosed
	}
	s, err := e.lookupFlash(ctx, saleID)
	if err != nil {
		return Registration{}, err
	}
	if s == nil {
		return Registration{}, fmt.Errorf("%w: sale %q", ErrNotFound, saleID)
	}
	if s.reg == nil {
		return Registration{}, fmt.Errorf("%w: sale %q takes no registration", ErrBadState, saleID)
	}
	if a.UserID == "" || len(a.UserID) > IDLenMax {
		return Registration{}, fmt.Errorf("%w: user id", ErrInvalid)
	}
	now := e.now()
	switch {
	case s.ctl.status(now, s.spec.StartsAt, s.spec.EndsAt) == statusEnded:
		return Registration{}, fmt.Errorf("%w: sale %q is %s", ErrNotActive, saleID, statusEnded)
	case now.Before(s.spec.RegistrationStartsAt):
		return Registration{}, fmt.Errorf("%w: registration for sale %q opens at %s", ErrNotActive, saleID, s.spec.RegistrationStartsAt.Format(time.RFC3339))
	case !now.Before(s.spec.StartsAt):
		return e.registrationAfterDraw(ctx, s, a.UserID)
	}
	a.Route = "flash_register"
	if err := e.checkRisk(ctx, RiskInput{Attempt: a, SaleID: saleID, StoreID: s.spec.StoreID,
		MinAccountAge: time.Duration(s.spec.MinAccountAgeSeconds) * time.Second}); err != nil {
		return Registration{}, err
	}
	val := strconv.FormatInt(now.UnixMilli(), 10)
	add, err := e.sets.AddToSet(ctx, s.spec.StoreID, regSet(saleID), a.UserID, []byte(val), e.opts.RegistrantsPerSaleMax)
	switch {
	case errors.Is(err, records.ErrSetClosed):
		// Another node's clock reached starts_at first and made the draw.
		return e.registrationAfterDraw(ctx, s, a.UserID)
	case errors.Is(err, records.ErrSetFull):
		return Registration{}, fmt.Errorf("%w: registration for sale %q is full (%d registrants)", ErrBadState, saleID, add.N)
	case err != nil:
		return Registration{}, fmt.Errorf("%w: cannot register: %w", ErrUnavailable, err)
	}
	for {
		old := s.reg.n.Load()
		if add.N <= old || s.reg.n.CompareAndSwap(old, add.N) {
			break
		}
	}
	return Registration{SaleID: saleID, Registered: true}, nil
}

// registrationAfterDraw answers a registration at or after starts_at: the
// caller's decision, or ErrNotActive for one who did not register.
func (e *Engine) registrationAfterDraw(ctx context.Context, s *flashState, userID string) (Registration, error) {
	d, err := e.ensureDraw(ctx, s)
	if err != nil {
		return Registration{}, err
	}
	if d == nil {
		return Registration{}, fmt.Errorf("%w: registration for sale %q is closed", ErrNotActive, s.spec.SaleID)
	}
	dec, err := e.decision(ctx, s, d, userID)
	if err != nil {
		return Registration{}, err
	}
	if dec == decUnregistered {
		return Registration{}, fmt.Errorf("%w: registration for sale %q closed at its start", ErrNotActive, s.spec.SaleID)
	}
	won := dec == decWon
	return Registration{SaleID: s.spec.SaleID, Registered: true, Drawn: &won}, nil
}

// checkRegistered is a reserve's check of a sale with registration, after
// its window: the caller must have registered and, with a draw quantity,
// won. A backend that cannot be asked is ErrUnavailable, never "not
// registered".
func (e *Engine) checkRegistered(ctx context.Context, s *flashState, userID string) error {
	d, err := e.ensureDraw(ctx, s)
	if err != nil {
		return err
	}
	if d == nil {
		return fmt.Errorf("%w: sale %q has not started", ErrNotActive, s.spec.SaleID)
	}
	dec, err := e.decision(ctx, s, d, userID)
	if err != nil {
		return err
	}
	switch dec {
	case decWon:
		return nil
	case decLost:
		return fmt.Errorf("%w: not drawn in the draw of sale %q", ErrNotRegistered, s.spec.SaleID)
	}
	return fmt.Errorf("%w: sale %q admits registered users only", ErrNotRegistered, s.spec.SaleID)
}

// decision is a user's decision in a drawn sale, from the cache or the
// records.
func (e *Engine) decision(ctx context.Context, s *flashState, d *drawRecord, userID string) (uint8, error) {
	r := s.reg
	r.mu.RLock()
	dec, ok := r.decisions[userID]
	r.mu.RUnlock()
	if ok {
		return dec, nil
	}
	_, registered, err := e.sets.SetMember(ctx, s.spec.StoreID, regSet(s.spec.SaleID), userID)
	if err != nil {
		return 0, fmt.Errorf("%w: cannot read the registration: %w", ErrUnavailable, err)
	}
	switch {
	case !registered:
		dec = decUnregistered
	case d.wins(userID):
		dec = decWon
	default:
		dec = decLost
	}
	r.mu.Lock()
	if len(r.decisions) < r.cacheMax {
		r.decisions[userID] = dec
	}
	r.mu.Unlock()
	return dec, nil
}

// ensureDraw returns the sale's draw: nil before starts_at (by this
// node's clock); otherwise the one in the records, made now if there is
// none. One goroutine of a node reads or makes it; others wait, bounded
// by their context.
func (e *Engine) ensureDraw(ctx context.Context, s *flashState) (*drawRecord, error) {
	r := s.reg
	if d := r.draw.Load(); d != nil {
		return d, nil
	}
	if e.now().Before(s.spec.StartsAt) {
		return nil, nil
	}
	select {
	case r.drawing <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: the draw is being made: %w", ErrUnavailable, ctx.Err())
	}
	defer func() { <-r.drawing }()
	if d := r.draw.Load(); d != nil {
		return d, nil
	}
	d, err := e.makeDraw(ctx, s)
	if err != nil {
		return nil, err
	}
	r.n.Store(d.Registrants)
	r.draw.Store(d)
	return d, nil
}

// makeDraw reads the sale's draw from the records, or closes its
// registration, computes the draw over every registrant and records it
// (the first record written is the draw on every node).
func (e *Engine) makeDraw(ctx context.Context, s *flashState) (*drawRecord, error) {
	tag, key := s.spec.StoreID, drawRecordPrefix+s.spec.SaleID
	if d, ok, err := e.readDraw(ctx, tag, key); err != nil || ok {
		return d, err
	}
	set := regSet(s.spec.SaleID)
	n, err := e.sets.CloseSet(ctx, tag, set)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot close the registration: %w", ErrUnavailable, err)
	}
	p := newDrawPicker(s.spec.DrawSeed, s.spec.DrawQuantity)
	err = e.sets.ScanSet(ctx, tag, set, func(member string, _ []byte) error {
		if p.n >= n {
			return fmt.Errorf("BUG: registration of sale %q has more than the %d registrants it had when closed", s.spec.SaleID, n)
		}
		p.add(member)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read the registrants: %w", ErrUnavailable, err)
	}
	if p.n != n {
		return nil, fmt.Errorf("%w: read %d registrants of sale %q; it has %d", ErrUnavailable, p.n, s.spec.SaleID, n)
	}
	d := &drawRecord{Seed: s.spec.DrawSeed, Quantity: s.spec.DrawQuantity, Registrants: n, Winners: n, DrawnAt: e.now().UTC()}
	if c, ok := p.cutoff(); ok {
		d.CutoffHex, d.CutoffUser, d.Winners = c.digest, c.user, int64(len(p.h))
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the draw: %w", err)
	}
	won, err := e.tagged.PutIfAbsentTagged(ctx, tag, key, b)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot record the draw: %w", ErrUnavailable, err)
	}
	if !won {
		// Another node recorded it first (the same draw: the set was
		// closed before either read it).
		d2, ok, err := e.readDraw(ctx, tag, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: the draw of sale %q vanished", ErrUnavailable, s.spec.SaleID)
		}
		return d2, nil
	}
	e.opts.Logger.Info("engine: draw made", "sale", s.spec.SaleID, "registrants", d.Registrants, "winners", d.Winners)
	return d, nil
}

func (e *Engine) readDraw(ctx context.Context, tag, key string) (*drawRecord, bool, error) {
	b, ok, err := e.tagged.GetTagged(ctx, tag, key)
	if err != nil {
		return nil, false, fmt.Errorf("%w: cannot read the draw: %w", ErrUnavailable, err)
	}
	if !ok {
		return nil, false, nil
	}
	d := new(drawRecord)
	if err := json.Unmarshal(b, d); err != nil {
		return nil, false, fmt.Errorf("cannot decode the draw %s: %w", key, err)
	}
	return d, true, nil
}

// sweepDraws makes the draws of sales with registration that have
// started, so that the first reserves find them made, and refreshes the
// registrant counts of those still registering (registrations made on
// other nodes).
func (e *Engine) sweepDraws(ctx context.Context, now time.Time) {
	var due, open []*flashState
	e.dealsMu.RLock()
	for _, s := range e.sales {
		switch {
		case s.reg == nil || s.reg.draw.Load() != nil:
		case !now.Before(s.spec.StartsAt):
			due = append(due, s)
		case !now.Before(s.spec.RegistrationStartsAt):
			open = append(open, s)
		}
	}
	e.dealsMu.RUnlock()
	for _, s := range due {
		if _, err := e.ensureDraw(ctx, s); err != nil {
			e.logger(ctx).Error("engine: cannot make a draw", "sale", s.spec.SaleID, "err", err)
		}
	}
	for _, s := range open {
		if n, _, err := e.sets.SetInfo(ctx, s.spec.StoreID, regSet(s.spec.SaleID)); err == nil {
			s.reg.n.Store(n)
		}
	}
}

// FlashRegistrations lists a sale's registrants, sorted by user id, with
// each one's decision once the draw is made (the admin's export: with the
// seed, anyone can re-run the draw). A sale without registration is
// ErrBadState.
func (e *Engine) FlashRegistrations(ctx context.Context, saleID string) (RegistrationList, error) {
	s, err := e.lookupFlash(ctx, saleID)
	if err != nil {
		return RegistrationList{}, err
	}
	if s == nil {
		return RegistrationList{}, fmt.Errorf("%w: sale %q", ErrNotFound, saleID)
	}
	if s.reg == nil {
		return RegistrationList{}, fmt.Errorf("%w: sale %q takes no registration", ErrBadState, saleID)
	}
	d, err := e.ensureDraw(ctx, s)
	if err != nil {
		return RegistrationList{}, err
	}
	var list []RegistrationEntry
	err = e.sets.ScanSet(ctx, s.spec.StoreID, regSet(saleID), func(member string, val []byte) error {
		ms, _ := strconv.ParseInt(string(val), 10, 64)
		en := RegistrationEntry{UserID: member, RegisteredAt: time.UnixMilli(ms).UTC(), RegisteredAtMs: ms}
		if d != nil {
			won := d.wins(member)
			en.Drawn = &won
		}
		list = append(list, en)
		return nil
	})
	if err != nil {
		return RegistrationList{}, fmt.Errorf("%w: cannot read the registrants: %w", ErrUnavailable, err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].UserID < list[j].UserID })
	if list == nil {
		list = []RegistrationEntry{}
	}
	out := RegistrationList{SaleID: saleID, SaleRegistration: *e.registrationView(s, e.now()), Registrations: list}
	if d == nil {
		out.Registrants = int64(len(list))
	}
	return out, nil
}
