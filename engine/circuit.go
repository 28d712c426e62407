package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/inventory"
)

// Circuit breakers in front of the engine's backends: the inventory store,
// the records (the engine's own, and the idempotency, payment, account and
// registration records kept there) and an order store of its own (MariaDB:
// Options.Orders; orders kept in the records go through the records'
// circuit). After CircuitOptions.Failures backend failures in a row
// (errors that are not an answer: a refused connection, a timeout, a
// failing disk) a backend's circuit opens, and every call that needs that
// backend fails at once with ErrCircuitOpen (503 / 50300 with Retry-After)
// instead of waiting for its own timeout. After OpenFor one call goes
// through as a probe (half-open); its success closes the circuit, its
// failure opens it again. The state machine is sony/gobreaker's; a closed
// circuit with no failure pending costs one atomic load per call, so the
// reserve path stays lock-free.

// Defaults of CircuitOptions.
const (
	// CircuitFailuresDefault is how many backend failures in a row open a
	// circuit.
	CircuitFailuresDefault = 5
	// CircuitOpenForDefault is how long an open circuit refuses calls
	// before it lets one probe through.
	CircuitOpenForDefault = 2 * time.Second
)

// Backend names, as /readyz, /metrics and the errors name them.
const (
	BackendInventory = "inventory"
	BackendRecords   = "records"
	// BackendOrders is the order store given in Options.Orders (MariaDB).
	BackendOrders = "orders"
)

// ErrCircuitOpen answers a call whose backend is known to be down: its
// circuit is open (or half-open with its probe already out). It is an
// ErrUnavailable.
var ErrCircuitOpen = fmt.Errorf("%w: backend circuit open", ErrUnavailable)

// CircuitOptions configures the engine's circuit breakers.
type CircuitOptions struct {
	// Failures is how many backend failures in a row open a circuit.
	// Default CircuitFailuresDefault (5); negative turns the circuits off.
	Failures int
	// OpenFor is how long an open circuit answers at once before a probe
	// goes through. Default CircuitOpenForDefault (2s).
	OpenFor time.Duration
}

func (o CircuitOptions) withDefaults() CircuitOptions {
	if o.Failures == 0 {
		o.Failures = CircuitFailuresDefault
	}
	if o.OpenFor <= 0 {
		o.OpenFor = CircuitOpenForDefault
	}
	return o
}

// CircuitState is one backend's circuit, for /readyz, /metrics and tests.
type CircuitState struct {
	Backend string `json:"backend"`
	// State is "closed", "half-open" or "open".
	State string `json:"state"`
	// Opened is when the circuit last opened (zero if never).
	Opened time.Time `json:"opened_at,omitzero"`
	// Opens counts how often it opened since start.
	Opens int64 `json:"opens"`
	// Failures counts the backend failures seen since start.
	Failures int64 `json:"failures"`
}

// circuit is one backend's breaker.
type circuit struct {
	name string
	cb   *gobreaker.TwoStepCircuitBreaker[struct{}]
	// state mirrors cb's state (a gobreaker.State), written by its
	// OnStateChange (under cb's lock), read lock-free on every call.
	state atomic.Int32
	// pending is set after a failure was counted in the closed state, so
	// that the next success resets the count (a success with nothing
	// pending is not reported: no lock on the hot path).
	pending  atomic.Bool
	opened   atomic.Int64 // unix nanoseconds of the last opening
	opens    atomic.Int64
	failures atomic.Int64
	off      bool
}

// errBackendFailed is what the breaker is told about a failed call.
var errBackendFailed = errors.New("backend failed")

func newCircuit(name string, o CircuitOptions) *circuit {
	c := &circuit{name: name, off: o.Failures < 0}
	failures := uint32(max(o.Failures, 1))
	c.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:    name,
		Timeout: o.OpenFor,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			return n.ConsecutiveFailures >= failures
		},
		// A probe its caller gave up on proves nothing: its slot goes to
		// the next call.
		IsExcluded: excluded,
		OnStateChange: func(_ string, _, to gobreaker.State) {
			c.state.Store(int32(to))
			if to == gobreaker.StateOpen {
				c.opened.Store(time.Now().UnixNano())
				c.opens.Add(1)
			}
		},
	})
	return c
}

// enter admits a call. done is nil on the fast path (closed); otherwise
// the caller passes the call's outcome to done.
func (c *circuit) enter() (done func(error), err error) {
	if c.off || gobreaker.State(c.state.Load()) == gobreaker.StateClosed {
		return nil, nil
	}
	done, err = c.cb.Allow()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrCircuitOpen, c.name)
	}
	return done, nil
}

// refusing is ErrCircuitOpen while the circuit is open: for calls that do
// not go through the breaker (they would not be its probe) but need the
// same backend.
func (c *circuit) refusing() error {
	if !c.off && gobreaker.State(c.state.Load()) == gobreaker.StateOpen {
		return fmt.Errorf("%w: %s", ErrCircuitOpen, c.name)
	}
	return nil
}

// exit reports the outcome of a call that enter admitted; failed says
// whether err is the backend failing (not an answer such as "sold out").
func (c *circuit) exit(done func(error), err error, failed bool) {
	if c.off {
		return
	}
	if failed {
		c.failures.Add(1)
	}
	if done != nil {
		if excluded(err) {
			done(err)
			return
		}
		if failed {
			done(errBackendFailed)
		} else {
			done(nil)
		}
		return
	}
	switch {
	case failed:
		if d, aerr := c.cb.Allow(); aerr == nil {
			d(errBackendFailed)
		}
		c.pending.Store(true)
	case c.pending.Load() && !excluded(err):
		c.pending.Store(false)
		if d, aerr := c.cb.Allow(); aerr == nil {
			d(nil)
		}
	}
}

// excluded is an outcome that says nothing about the backend: the caller
// went away.
func excluded(err error) bool { return errors.Is(err, context.Canceled) }

func (c *circuit) snapshot() CircuitState {
	st := CircuitState{Backend: c.name, State: "closed", Opens: c.opens.Load(), Failures: c.failures.Load()}
	if !c.off {
		switch c.cb.State() {
		case gobreaker.StateOpen:
			st.State = "open"
		case gobreaker.StateHalfOpen:
			st.State = "half-open"
		}
	}
	if ns := c.opened.Load(); ns != 0 {
		st.Opened = time.Unix(0, ns).UTC()
	}
	return st
}

// Circuits returns the state of each backend's circuit.
func (e *Engine) Circuits() []CircuitState {
	cs := []CircuitState{e.invCircuit.snapshot(), e.recCircuit.snapshot()}
	if e.ordCircuit != nil {
		cs = append(cs, e.ordCircuit.snapshot())
	}
	return cs
}

// invFailed reports whether err from the inventory is the backend failing
// rather than an answer.
func invFailed(err error) bool {
	if err == nil || excluded(err) {
		return false
	}
	for _, answer := range [...]error{inventory.ErrSoldOut, inventory.ErrLimitExceeded,
		inventory.ErrPoolNotFound, inventory.ErrPoolExists, inventory.ErrReservationNotFound,
		inventory.ErrInvalid, inventory.ErrBadState, inventory.ErrIDConflict} {
		if errors.Is(err, answer) {
			return false
		}
	}
	return true
}

// guardedStore is the inventory store behind its circuit.
type guardedStore struct {
	inventory.Store
	c *circuit
	// lossCheck, when set, is asked when a reserve finds its pool gone
	// (dataloss.go): the engine checks the records' epoch at once rather
	// than at its next sweep, so a pool lost with Redis's data is not
	// answered "not found" meanwhile.
	lossCheck func(context.Context) error
}

func (s *guardedStore) CreatePool(ctx context.Context, pool string, supplied int64) error {
	done, err := s.c.enter()
	if err != nil {
		return err
	}
	err = s.Store.CreatePool(ctx, pool, supplied)
	s.c.exit(done, err, invFailed(err))
	return err
}

func (s *guardedStore) Reserve(ctx context.Context, req inventory.ReserveRequest) (inventory.Reservation, error) {
	done, err := s.c.enter()
	if err != nil {
		return inventory.Reservation{}, err
	}
	r, err := s.Store.Reserve(ctx, req)
	s.c.exit(done, err, invFailed(err))
	if err != nil && s.lossCheck != nil && errors.Is(err, inventory.ErrPoolNotFound) {
		if lerr := s.lossCheck(ctx); lerr != nil {
			return r, lerr
		}
	}
	return r, err
}

func (s *guardedStore) Confirm(ctx context.Context, id string) (inventory.Reservation, error) {
	return s.one(ctx, id, s.Store.Confirm)
}

func (s *guardedStore) Release(ctx context.Context, id string) (inventory.Reservation, error) {
	return s.one(ctx, id, s.Store.Release)
}

func (s *guardedStore) Refund(ctx context.Context, id string) (inventory.Reservation, error) {
	return s.one(ctx, id, s.Store.Refund)
}

func (s *guardedStore) Reservation(ctx context.Context, id string) (inventory.Reservation, error) {
	return s.one(ctx, id, s.Store.Reservation)
}

func (s *guardedStore) one(ctx context.Context, id string, fn func(context.Context, string) (inventory.Reservation, error)) (inventory.Reservation, error) {
	done, err := s.c.enter()
	if err != nil {
		return inventory.Reservation{}, err
	}
	r, err := fn(ctx, id)
	s.c.exit(done, err, invFailed(err))
	return r, err
}

func (s *guardedStore) Expire(ctx context.Context, now time.Time, n int) ([]inventory.Reservation, error) {
	done, err := s.c.enter()
	if err != nil {
		return nil, err
	}
	rs, err := s.Store.Expire(ctx, now, n)
	s.c.exit(done, err, invFailed(err))
	return rs, err
}

func (s *guardedStore) Move(ctx context.Context, from, to string, qty int64) error {
	done, err := s.c.enter()
	if err != nil {
		return err
	}
	err = s.Store.Move(ctx, from, to, qty)
	s.c.exit(done, err, invFailed(err))
	return err
}

func (s *guardedStore) Drain(ctx context.Context, from, to string) (int64, error) {
	done, err := s.c.enter()
	if err != nil {
		return 0, err
	}
	n, err := s.Store.Drain(ctx, from, to)
	s.c.exit(done, err, invFailed(err))
	return n, err
}

func (s *guardedStore) SetOnHand(ctx context.Context, pool string, onHand int64, seq uint64) (inventory.FeedResult, error) {
	done, err := s.c.enter()
	if err != nil {
		return inventory.FeedResult{}, err
	}
	r, err := s.Store.SetOnHand(ctx, pool, onHand, seq)
	s.c.exit(done, err, invFailed(err))
	return r, err
}

func (s *guardedStore) Pool(ctx context.Context, pool string) (inventory.Pool, error) {
	done, err := s.c.enter()
	if err != nil {
		return inventory.Pool{}, err
	}
	p, err := s.Store.Pool(ctx, pool)
	s.c.exit(done, err, invFailed(err))
	return p, err
}

func (s *guardedStore) Scan(ctx context.Context, state inventory.State, cursor string, limit int) ([]inventory.Reservation, string, error) {
	done, err := s.c.enter()
	if err != nil {
		return nil, "", err
	}
	rs, next, err := s.Store.Scan(ctx, state, cursor, limit)
	s.c.exit(done, err, invFailed(err))
	return rs, next, err
}

func (s *guardedStore) Forget(ctx context.Context, id string) error {
	done, err := s.c.enter()
	if err != nil {
		return err
	}
	err = s.Store.Forget(ctx, id)
	s.c.exit(done, err, invFailed(err))
	return err
}

func (s *guardedStore) ClosePool(ctx context.Context, pool string) error {
	done, err := s.c.enter()
	if err != nil {
		return err
	}
	err = s.Store.ClosePool(ctx, pool)
	s.c.exit(done, err, invFailed(err))
	return err
}

func (s *guardedStore) Purge(ctx context.Context, before time.Time, n int) (int, error) {
	done, err := s.c.enter()
	if err != nil {
		return 0, err
	}
	k, err := s.Store.Purge(ctx, before, n)
	s.c.exit(done, err, invFailed(err))
	return k, err
}

// Send, Receive and Ledger move units between a sale's buckets
// (buckets.go); a transfer's steps are idempotent, so a refusal while the
// circuit is open leaves it for the next sweep.
func (s *guardedStore) Send(ctx context.Context, from, to string, qty int64) (int64, int64, error) {
	done, err := s.c.enter()
	if err != nil {
		return 0, 0, err
	}
	taken, sent, err := s.Store.Send(ctx, from, to, qty)
	s.c.exit(done, err, invFailed(err))
	return taken, sent, err
}

func (s *guardedStore) Receive(ctx context.Context, to, from string, sent int64) (int64, error) {
	done, err := s.c.enter()
	if err != nil {
		return 0, err
	}
	n, err := s.Store.Receive(ctx, to, from, sent)
	s.c.exit(done, err, invFailed(err))
	return n, err
}

func (s *guardedStore) Ledger(ctx context.Context, pool string) (inventory.Ledger, error) {
	done, err := s.c.enter()
	if err != nil {
		return inventory.Ledger{}, err
	}
	l, err := s.Store.Ledger(ctx, pool)
	s.c.exit(done, err, invFailed(err))
	return l, err
}

// guardedRecords is the records behind their circuit: the engine's own
// calls, the idempotency records and the order store over the records all
// go through it (guardRecords keeps records.Local); the tagged records
// (payments, accounts, draws) and the registrants' sets go through
// guardedTagged and guardedSets, on the same circuit.
type guardedRecords struct {
	records.Records
	c *circuit
}

// recFailed reports whether err from the records is the backend failing.
func recFailed(err error) bool {
	return err != nil && !excluded(err) && !errors.Is(err, records.ErrInvalid) &&
		!errors.Is(err, records.ErrSetClosed) && !errors.Is(err, records.ErrSetFull)
}

func (r *guardedRecords) Get(ctx context.Context, key string) ([]byte, bool, error) {
	done, err := r.c.enter()
	if err != nil {
		return nil, false, err
	}
	v, ok, err := r.Records.Get(ctx, key)
	r.c.exit(done, err, recFailed(err))
	return v, ok, err
}

func (r *guardedRecords) Put(ctx context.Context, key string, val []byte) error {
	done, err := r.c.enter()
	if err != nil {
		return err
	}
	err = r.Records.Put(ctx, key, val)
	r.c.exit(done, err, recFailed(err))
	return err
}

func (r *guardedRecords) PutBatch(ctx context.Context, kvs []records.KV) error {
	done, err := r.c.enter()
	if err != nil {
		return err
	}
	err = r.Records.PutBatch(ctx, kvs)
	r.c.exit(done, err, recFailed(err))
	return err
}

func (r *guardedRecords) PutIfAbsent(ctx context.Context, key string, val []byte) (bool, error) {
	done, err := r.c.enter()
	if err != nil {
		return false, err
	}
	ok, err := r.Records.PutIfAbsent(ctx, key, val)
	r.c.exit(done, err, recFailed(err))
	return ok, err
}

func (r *guardedRecords) CompareAndSwap(ctx context.Context, key string, old, new []byte) (bool, error) {
	done, err := r.c.enter()
	if err != nil {
		return false, err
	}
	ok, err := r.Records.CompareAndSwap(ctx, key, old, new)
	r.c.exit(done, err, recFailed(err))
	return ok, err
}

func (r *guardedRecords) Delete(ctx context.Context, key string) error {
	done, err := r.c.enter()
	if err != nil {
		return err
	}
	err = r.Records.Delete(ctx, key)
	r.c.exit(done, err, recFailed(err))
	return err
}

// fnError marks an error returned by a Scan's callback: the caller's, not
// the backend's.
type fnError struct{ err error }

func (f *fnError) Error() string { return f.err.Error() }

// scanThrough runs scan behind c, passing each pair to fn: an error of
// fn is the caller's and neither opens the circuit nor counts as the
// backend failing; scan's own error is judged by recFailed.
func scanThrough(c *circuit, scan func(func(string, []byte) error) error, fn func(string, []byte) error) error {
	done, err := c.enter()
	if err != nil {
		return err
	}
	err = scan(func(k string, v []byte) error {
		if err := fn(k, v); err != nil {
			return &fnError{err}
		}
		return nil
	})
	var fe *fnError
	if errors.As(err, &fe) {
		c.exit(done, nil, false)
		return fe.err
	}
	c.exit(done, err, recFailed(err))
	return err
}

func (r *guardedRecords) Scan(ctx context.Context, prefix string, fn func(key string, val []byte) error) error {
	return scanThrough(r.c, func(f func(string, []byte) error) error { return r.Records.Scan(ctx, prefix, f) }, fn)
}

// DeleteIfEqual keeps the records' atomic compare-and-delete
// (records.CompareDeleter) behind the circuit.
func (r *guardedRecords) DeleteIfEqual(ctx context.Context, key string, old []byte) (bool, error) {
	done, err := r.c.enter()
	if err != nil {
		return false, err
	}
	ok, err := records.DeleteIfEqual(ctx, r.Records, key, old)
	r.c.exit(done, err, recFailed(err))
	return ok, err
}

// ScanFrom keeps the records' range scan (records.RangeScanner) behind
// the circuit; records without one scan the whole prefix (records.ScanFrom).
func (r *guardedRecords) ScanFrom(ctx context.Context, prefix, from string, fn func(key string, val []byte) error) error {
	return scanThrough(r.c, func(f func(string, []byte) error) error { return records.ScanFrom(ctx, r.Records, prefix, from, f) }, fn)
}

// guardedLocalRecords is guardedRecords over records.Local records (memory,
// a Pebble directory): the idempotency's single flight stays in process.
type guardedLocalRecords struct {
	*guardedRecords
	local records.Local
}

// Value is the records' own records.Local value: no backend call.
func (r *guardedLocalRecords) Value(key any, mk func() any) any { return r.local.Value(key, mk) }

// guardRecords puts rec behind c, keeping records.Local when rec has it
// (whether the records are this process's alone decides how idempotency
// claims keys).
func guardRecords(rec records.Records, c *circuit) records.Records {
	g := &guardedRecords{Records: rec, c: c}
	if l, ok := rec.(records.Local); ok {
		return &guardedLocalRecords{guardedRecords: g, local: l}
	}
	return g
}

// guardedTagged is the tagged records (records.TaggedOf) behind the
// records' circuit: payment, prepay, account and draw records.
type guardedTagged struct {
	t records.Tagged
	c *circuit
}

func (g *guardedTagged) GetTagged(ctx context.Context, tag, key string) ([]byte, bool, error) {
	done, err := g.c.enter()
	if err != nil {
		return nil, false, err
	}
	v, ok, err := g.t.GetTagged(ctx, tag, key)
	g.c.exit(done, err, recFailed(err))
	return v, ok, err
}

func (g *guardedTagged) PutIfAbsentTagged(ctx context.Context, tag, key string, val []byte) (bool, error) {
	done, err := g.c.enter()
	if err != nil {
		return false, err
	}
	ok, err := g.t.PutIfAbsentTagged(ctx, tag, key, val)
	g.c.exit(done, err, recFailed(err))
	return ok, err
}

func (g *guardedTagged) DeleteTagged(ctx context.Context, tag, key string) error {
	done, err := g.c.enter()
	if err != nil {
		return err
	}
	err = g.t.DeleteTagged(ctx, tag, key)
	g.c.exit(done, err, recFailed(err))
	return err
}

// guardedSets is the registrants' sets (records.SetsOf) behind the
// records' circuit.
type guardedSets struct {
	s records.TaggedSets
	c *circuit
}

func (g *guardedSets) AddToSet(ctx context.Context, tag, set, member string, val []byte, max int64) (records.SetAdd, error) {
	done, err := g.c.enter()
	if err != nil {
		return records.SetAdd{}, err
	}
	a, err := g.s.AddToSet(ctx, tag, set, member, val, max)
	g.c.exit(done, err, recFailed(err))
	return a, err
}

func (g *guardedSets) SetMember(ctx context.Context, tag, set, member string) ([]byte, bool, error) {
	done, err := g.c.enter()
	if err != nil {
		return nil, false, err
	}
	v, ok, err := g.s.SetMember(ctx, tag, set, member)
	g.c.exit(done, err, recFailed(err))
	return v, ok, err
}

func (g *guardedSets) CloseSet(ctx context.Context, tag, set string) (int64, error) {
	done, err := g.c.enter()
	if err != nil {
		return 0, err
	}
	n, err := g.s.CloseSet(ctx, tag, set)
	g.c.exit(done, err, recFailed(err))
	return n, err
}

func (g *guardedSets) SetInfo(ctx context.Context, tag, set string) (int64, bool, error) {
	done, err := g.c.enter()
	if err != nil {
		return 0, false, err
	}
	n, closed, err := g.s.SetInfo(ctx, tag, set)
	g.c.exit(done, err, recFailed(err))
	return n, closed, err
}

func (g *guardedSets) ScanSet(ctx context.Context, tag, set string, fn func(member string, val []byte) error) error {
	return scanThrough(g.c, func(f func(string, []byte) error) error { return g.s.ScanSet(ctx, tag, set, f) }, fn)
}

// guardedOrders is an order store behind a circuit: the order store's own
// (BackendOrders) for Options.Orders, the records' for orders kept in the
// records. While it is open the order writer keeps its batches and backs
// off (orderwriter.go), and reads of orders answer ErrCircuitOpen.
type guardedOrders struct {
	orders.Store
	c *circuit
}

// ordFailed reports whether err from the order store is the backend
// failing rather than an answer (an order it refuses).
func ordFailed(err error) bool {
	return err != nil && !excluded(err) && !errors.Is(err, orders.ErrInvalid) && !errors.Is(err, ErrCircuitOpen)
}

func (g *guardedOrders) Upsert(ctx context.Context, os []orders.Order) error {
	done, err := g.c.enter()
	if err != nil {
		return err
	}
	err = g.Store.Upsert(ctx, os)
	g.c.exit(done, err, ordFailed(err))
	return err
}

func (g *guardedOrders) Get(ctx context.Context, orderID string) (orders.Order, bool, error) {
	done, err := g.c.enter()
	if err != nil {
		return orders.Order{}, false, err
	}
	o, ok, err := g.Store.Get(ctx, orderID)
	g.c.exit(done, err, ordFailed(err))
	return o, ok, err
}

func (g *guardedOrders) ByUser(ctx context.Context, userID string, limit int) ([]orders.Order, error) {
	done, err := g.c.enter()
	if err != nil {
		return nil, err
	}
	os, err := g.Store.ByUser(ctx, userID, limit)
	g.c.exit(done, err, ordFailed(err))
	return os, err
}

func (g *guardedOrders) Count(ctx context.Context) (int64, error) {
	done, err := g.c.enter()
	if err != nil {
		return 0, err
	}
	n, err := g.Store.Count(ctx)
	g.c.exit(done, err, ordFailed(err))
	return n, err
}

func (g *guardedOrders) List(ctx context.Context, f orders.Filter, after orders.Position, limit int) ([]orders.Order, orders.Position, error) {
	done, err := g.c.enter()
	if err != nil {
		return nil, orders.Position{}, err
	}
	page, next, err := g.Store.List(ctx, f, after, limit)
	g.c.exit(done, err, ordFailed(err))
	return page, next, err
}

func (g *guardedOrders) Attribution(ctx context.Context, f orders.Filter) ([]orders.GuideTotals, error) {
	done, err := g.c.enter()
	if err != nil {
		return nil, err
	}
	rows, err := g.Store.Attribution(ctx, f)
	g.c.exit(done, err, ordFailed(err))
	return rows, err
}

// guardedScanOrders is guardedOrders over an orders.Scanner (both of
// Surge's order stores): reconciliation's walk goes through the circuit.
type guardedScanOrders struct {
	*guardedOrders
	sc orders.Scanner
}

func (g *guardedScanOrders) ScanOrders(ctx context.Context, fn func(orders.Order) error) error {
	done, err := g.c.enter()
	if err != nil {
		return err
	}
	err = g.sc.ScanOrders(ctx, func(o orders.Order) error {
		if err := fn(o); err != nil {
			return &fnError{err}
		}
		return nil
	})
	var fe *fnError
	if errors.As(err, &fe) {
		g.c.exit(done, nil, false)
		return fe.err
	}
	g.c.exit(done, err, ordFailed(err))
	return err
}

// guardOrders puts st behind c, keeping orders.Scanner when st has it.
func guardOrders(st orders.Store, c *circuit) orders.Store {
	g := &guardedOrders{Store: st, c: c}
	if sc, ok := st.(orders.Scanner); ok {
		return &guardedScanOrders{guardedOrders: g, sc: sc}
	}
	return g
}

var (
	_ inventory.Store        = (*guardedStore)(nil)
	_ records.Records        = (*guardedRecords)(nil)
	_ records.CompareDeleter = (*guardedRecords)(nil)
	_ records.RangeScanner   = (*guardedRecords)(nil)
	_ records.Local          = (*guardedLocalRecords)(nil)
	_ records.Tagged         = (*guardedTagged)(nil)
	_ records.TaggedSets     = (*guardedSets)(nil)
	_ orders.Scanner         = (*guardedScanOrders)(nil)
)
