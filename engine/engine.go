package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/inventory"
)

// Bounds of the engine's in-memory state.
const (
	// salesInMemoryMax bounds the flash sales and group deals kept in memory.
	salesInMemoryMax = 10_000
	// expireBatchMax is the most reservations one Expire call releases.
	expireBatchMax = 1024
	// expireRoundsMax bounds the Expire calls of one sweep.
	expireRoundsMax = 64
	// answersSweepEvery is how often the sweeper removes expired idempotency
	// records.
	answersSweepEvery = time.Minute
	// purgeEvery is how often the sweeper forgets released reservations
	// past the retention window.
	purgeEvery = time.Minute
)

// Keys of the engine's records. Other components (idempotency, orders) use
// their own prefixes; every key of this file starts with "e/".
const (
	keyCatalogDoc = "e/cat/doc"
	keyCatalogVer = "e/cat/ver"
	keySalePrefix = "e/sale/"
	keyDealPrefix = "e/deal/"
	keyTeamPrefix = "e/team/"
	keyDuePrefix  = "e/tdue/"
	// keyPayPrefix held payment ids before they moved under their store's
	// tag (payRecordKey); still read when the tagged record is missing.
	keyPayPrefix = "e/pay/"
	// keyEpoch holds a random token written when the records are first
	// used: records that lose it (a Redis restarted without persistence)
	// are told apart from records that are merely empty.
	keyEpoch = "e/epoch"
)

// Engine is Surge's business layer over an inventory.Store. Every method is
// safe for concurrent use.
type Engine struct {
	opts  Options
	store inventory.Store
	rec   records.Records
	// tagged keeps the records of one store's payments in that store's
	// slot (records.Tagged).
	tagged     records.Tagged
	ownRecords bool
	orders     orders.Store
	writer     *OrderWriter
	// outbox is the store's outbox when it has one (orders then travel
	// through it); outboxWriter is this engine's writer of it (nil when
	// Options.OutboxWriterOff).
	outbox       inventory.Outbox
	outboxWriter *OutboxWriter
	// epoch is the records' epoch (keyEpoch) when this engine opened them.
	epoch     string
	idem      *Idempotency
	risk      RiskHook
	now       func() time.Time
	catalog   atomic.Pointer[catalogSnap]
	catalogMu sync.Mutex // serialises catalog loads

	dealsMu sync.RWMutex
	sales   map[string]*flashState
	deals   map[string]*groupState
	// salesMax bounds len(sales)+len(deals): salesInMemoryMax (tests lower it).
	salesMax int

	// sets keeps the registrants of sales with registration
	// (registration.go), in their store's slot.
	sets records.TaggedSets

	pages pageSet

	riskMu      sync.Mutex
	riskDenials map[string]int64
	// accounts caches first-seen times of accounts (accounts.go).
	accounts *touchMap[string, int64]
	// coarseNow: now is the default clock (time.Now), so the accounts'
	// stamps may come from the coarse clock (accountsStamp).
	coarseNow bool

	sweepMu sync.Mutex // one sweep at a time in this process
	// answersSweptAt is when expired idempotency records were last removed
	// (guarded by sweepMu).
	answersSweptAt time.Time
	// purgedAt is when released reservations were last purged. Guarded
	// by sweepMu.
	purgedAt time.Time
	// freeOSPending is set when a crowd's memory was dropped; freedOSAt
	// (guarded by sweepMu) is when it was last handed back to the OS,
	// freedOS how often (idle.go).
	freeOSPending atomic.Bool
	freedOSAt     time.Time
	freedOS       atomic.Int64
	// accountsPrunedAt is when the first-seen cache was last pruned
	// (guarded by sweepMu; idle.go).
	accountsPrunedAt time.Time
	// payCloses queues released reservations whose WeChat Pay order is to
	// be closed; payKick wakes the payments loop; settleMu: one
	// SettlePayments at a time in this process.
	payCloses chan string
	payKick   chan struct{}
	settleMu  sync.Mutex
	stop      chan struct{}
	stopped   sync.WaitGroup
	closeErr  error
	closed    atomic.Bool
	// bucketFault, when set (tests), runs between the two steps of a
	// transfer between buckets; an error stops the transfer there.
	bucketFault func(from, to string) error

	// epochMu guards epoch after Open. lost is set when the records'
	// epoch vanished (dataloss.go).
	epochMu sync.Mutex
	lost    atomic.Pointer[DataLoss]
	// invCircuit and recCircuit guard the inventory store and the
	// records, ordCircuit an order store of its own (Options.Orders; nil
	// when orders are kept in the records) (circuit.go); store, rec,
	// tagged, sets and orders are the guarded ones, rawRec the records as
	// opened.
	invCircuit *circuit
	recCircuit *circuit
	ordCircuit *circuit
	rawRec     records.Records
}

// Open opens an engine over opts.Store: it opens (or takes) the records,
// loads the catalog, sales and deals recorded there, replays the orders of
// paid reservations that the order store lacks (law 4) and starts the
// sweeper.
func Open(ctx context.Context, opts Options) (*Engine, error) {
	coarseNow := opts.Now == nil
	opts = opts.WithDefaults()
	if opts.Store == nil {
		return nil, fmt.Errorf("cannot open engine: %w: Options.Store is required", ErrInvalid)
	}
	e := &Engine{
		opts:        opts,
		store:       opts.Store,
		rec:         opts.Records,
		risk:        opts.Risk,
		now:         opts.Now,
		coarseNow:   coarseNow,
		sales:       make(map[string]*flashState),
		salesMax:    salesInMemoryMax,
		deals:       make(map[string]*groupState),
		riskDenials: make(map[string]int64),
		accounts:    newTouchMap[string, int64](accountsCachedMax),
		stop:        make(chan struct{}),
		payCloses:   make(chan string, closesQueued),
		payKick:     make(chan struct{}, 1),
	}
	e.pages.init(opts.PageGuidesMax)
	if e.rec == nil {
		var err error
		switch {
		case opts.RedisAddr != "":
			e.rec, err = records.OpenRedis(ctx, records.Options{
				RedisAddrs: strings.Split(opts.RedisAddr, ","), RedisUsername: opts.RedisUsername, RedisPassword: opts.RedisPassword})
		case opts.Dir != "":
			e.rec, err = records.OpenPebble(opts.Dir, records.Options{Logger: opts.Logger})
		default:
			e.rec = records.NewMemory()
		}
		if err != nil {
			return nil, fmt.Errorf("cannot open engine records: %w", err)
		}
		if e.rec == nil {
			return nil, fmt.Errorf("cannot open engine records: %w", ErrUnavailable)
		}
		e.ownRecords = true
	}
	e.rawRec = e.rec
	// Every call that hits a backend goes through that backend's circuit
	// (circuit.go): the records' for the engine's own records, the
	// idempotency records, the tagged payment and account records, the
	// registrants' sets and orders kept in the records; the order store's
	// own for an order store of its own (MariaDB).
	e.invCircuit = newCircuit(BackendInventory, opts.Circuit)
	e.recCircuit = newCircuit(BackendRecords, opts.Circuit)
	e.store = &guardedStore{Store: opts.Store, c: e.invCircuit, lossCheck: e.poolGone}
	e.rec = guardRecords(e.rawRec, e.recCircuit)
	e.tagged = &guardedTagged{t: records.TaggedOf(e.rawRec), c: e.recCircuit}
	e.sets = &guardedSets{s: records.SetsOf(e.rawRec), c: e.recCircuit}
	if opts.Orders != nil {
		e.ordCircuit = newCircuit(BackendOrders, opts.Circuit)
		e.orders = guardOrders(opts.Orders, e.ordCircuit)
	} else {
		e.orders = guardOrders(orders.NewRecordsStore(e.rawRec), e.recCircuit)
	}
	w, err := NewOrderWriter(e.orders, opts.OrderWriter)
	if err != nil {
		e.closeRecords()
		return nil, fmt.Errorf("cannot start order writer: %w", err)
	}
	e.writer = w
	answerOpts := opts.Idempotency
	if answerOpts.Now == nil {
		answerOpts.Now = opts.Now
	}
	e.idem = NewIdempotency(e.rec, answerOpts)
	e.catalog.Store(emptyCatalogSnap())

	if err := e.loadEpoch(ctx); err != nil {
		e.abortOpen()
		return nil, err
	}
	if err := e.syncRecords(ctx, true); err != nil {
		e.abortOpen()
		return nil, fmt.Errorf("cannot load engine records: %w", err)
	}
	if ob, ok := opts.Store.(inventory.Outbox); ok {
		// Orders travel through the store's outbox, written by outbox
		// writers whichever process died when: nothing to replay.
		e.outbox = ob
		if !opts.OutboxWriterOff {
			wo := opts.OutboxWriter
			if wo.Logger == nil {
				wo.Logger = opts.Logger
			}
			e.outboxWriter = NewOutboxWriter(ob, e.orders, wo)
		}
	} else if err := e.replayOrders(ctx); err != nil {
		e.abortOpen()
		return nil, fmt.Errorf("cannot replay orders: %w", err)
	}
	e.refreshAllPages(ctx)
	if opts.SweepInterval > 0 {
		e.stopped.Add(1)
		go e.sweepLoop()
		if e.wechat() {
			e.stopped.Add(1)
			go e.paymentsLoop()
		}
	}
	return e, nil
}

func (e *Engine) abortOpen() {
	cctx, cancel := context.WithTimeout(context.Background(), e.opts.StopTimeout)
	defer cancel()
	_ = e.writer.Close(cctx)
	e.closeRecords()
}

func (e *Engine) closeRecords() {
	if e.ownRecords && e.rec != nil {
		_ = e.rec.Close()
	}
}

// Close stops the sweeper, flushes the order writer and closes the records
// the engine opened. It does not close Options.Store (the caller owns it).
// errEngineClosed answers calls that would change state after Close.
var errEngineClosed = fmt.Errorf("%w: engine closed", ErrUnavailable)

func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return e.closeErr
	}
	close(e.stop)
	e.stopped.Wait()
	if e.outboxWriter != nil {
		e.outboxWriter.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.StopTimeout)
	defer cancel()
	var errs []error
	if err := e.writer.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("cannot close order writer: %w", err))
	}
	if e.ownRecords {
		if err := e.rec.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cannot close records: %w", err))
		}
	}
	e.closeErr = errors.Join(errs...)
	return e.closeErr
}

// Ready reports whether the backends answer (a call through each: while a
// circuit is open it fails at once, once it is half-open the call is its
// probe), whether the order store's own circuit (Options.Orders) is open,
// and whether the records still hold what this node opened (dataloss.go).
// The error says why in plain words.
func (e *Engine) Ready(ctx context.Context) error {
	if e.closed.Load() {
		return ErrUnavailable
	}
	_, err := e.store.Pool(ctx, "surge-ready:probe")
	if err != nil && !errors.Is(err, inventory.ErrPoolNotFound) {
		return fmt.Errorf("%w: inventory: %w", ErrUnavailable, err)
	}
	if err := e.checkEpoch(ctx); err != nil {
		return err
	}
	if e.ordCircuit != nil {
		// The order store is asked by the order writer, whose retries
		// are the circuit's probes: readiness only looks at the state.
		if err := e.ordCircuit.refusing(); err != nil {
			return err
		}
	}
	if l := e.lost.Load(); l != nil {
		// Sales, reservations and orders this node knew of are gone from
		// the shared records: an operator must look, and no answer from
		// them can be trusted meanwhile.
		return fmt.Errorf("%w: Redis lost data at %s: %s; POST /admin/v1/recover resumes", ErrDataLost, l.At.Format(time.RFC3339), l.Reason)
	}
	return nil
}

// loadEpoch reads the records' epoch, writing a new one into records that
// have none (new, or reset).
func (e *Engine) loadEpoch(ctx context.Context) error {
	fresh := newToken(e.now())
	if _, err := e.rec.PutIfAbsent(ctx, keyEpoch, []byte(fresh)); err != nil {
		return fmt.Errorf("cannot open engine records: %w: %w", ErrUnavailable, err)
	}
	ep, ok, err := e.rec.Get(ctx, keyEpoch)
	if err != nil || !ok {
		return fmt.Errorf("cannot read the records' epoch: %w: %v", ErrUnavailable, err)
	}
	e.epoch = string(ep)
	return nil
}
