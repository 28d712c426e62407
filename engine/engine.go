package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// Bounds of the engine's in-memory state.
const (
	// engSalesMax bounds the flash sales and group deals kept in memory.
	engSalesMax = 10_000
	// engExpireBatchMax is the most reservations one Expire call releases.
	engExpireBatchMax = 1024
	// engExpireRoundsMax bounds the Expire calls of one sweep.
	engExpireRoundsMax = 64
	// engIdemSweepEvery is how often the sweeper removes expired idempotency
	// records.
	engIdemSweepEvery = time.Minute
	// engPurgeEvery is how often the sweeper forgets released reservations
	// past the retention window.
	engPurgeEvery = time.Minute
)

// Keys of the engine's records. Other components (idempotency, orders) use
// their own prefixes; every key of this file starts with "e/".
const (
	engKeyCatalogDoc = "e/cat/doc"
	engKeyCatalogVer = "e/cat/ver"
	engKeySalePrefix = "e/sale/"
	engKeyDealPrefix = "e/deal/"
	engKeyTeamPrefix = "e/team/"
	engKeyDuePrefix  = "e/tdue/"
	engKeyPayPrefix  = "e/pay/"
)

// Engine is Surge's business layer over an inventory.Store. Every method is
// safe for concurrent use.
type Engine struct {
	opts    Options
	store   inventory.Store
	rec     Records
	recOwn  bool
	orders  OrderStore
	writer  *OrderWriter
	idem    *Idempotency
	risk    RiskHook
	now     func() time.Time
	catalog atomic.Pointer[catSnap]
	catMu   sync.Mutex // serialises catalog loads

	dealsMu sync.RWMutex
	sales   map[string]*flashState
	deals   map[string]*groupState
	// salesMax bounds len(sales)+len(deals): engSalesMax (tests lower it).
	salesMax int

	pages pageSet

	riskMu      sync.Mutex
	riskDenials map[string]int64

	sweepMu sync.Mutex // one sweep at a time in this process
	// idemSweptAt is when expired idempotency records were last removed
	// (guarded by sweepMu).
	idemSweptAt time.Time
	// purgedAt is when released reservations were last purged. Guarded
	// by sweepMu.
	purgedAt time.Time
	stop     chan struct{}
	stopped  sync.WaitGroup
	closeErr error
	closed   atomic.Bool
}

// Open opens an engine over opts.Store: it opens (or takes) the records,
// loads the catalog, sales and deals recorded there, replays the orders of
// paid reservations that the order store lacks (law 4) and starts the
// sweeper.
func Open(ctx context.Context, opts Options) (*Engine, error) {
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
		sales:       make(map[string]*flashState),
		salesMax:    engSalesMax,
		deals:       make(map[string]*groupState),
		riskDenials: make(map[string]int64),
		stop:        make(chan struct{}),
	}
	e.pages.init(opts.PageGuidesMax)
	if e.rec == nil {
		var err error
		switch {
		case opts.RedisAddr != "":
			e.rec, err = OpenRedisRecordsWith(ctx, RedisRecordsOptions{
				Addr: opts.RedisAddr, Username: opts.RedisUsername, Password: opts.RedisPassword})
		case opts.Dir != "":
			e.rec, err = OpenPebbleRecords(opts.Dir)
		default:
			e.rec = NewMemRecords()
		}
		if err != nil {
			return nil, fmt.Errorf("cannot open engine records: %w", err)
		}
		if e.rec == nil {
			return nil, fmt.Errorf("cannot open engine records: %w", ErrUnavailable)
		}
		e.recOwn = true
	}
	e.orders = opts.Orders
	if e.orders == nil {
		e.orders = NewRecordsOrderStore(e.rec)
	}
	w, err := NewOrderWriter(e.orders, opts.OrderWriter)
	if err != nil {
		e.closeRecords()
		return nil, fmt.Errorf("cannot start order writer: %w", err)
	}
	e.writer = w
	idemOpts := opts.Idempotency
	if idemOpts.Now == nil {
		idemOpts.Now = opts.Now
	}
	e.idem = NewIdempotency(e.rec, idemOpts)
	e.catalog.Store(emptyCatSnap())

	if err := e.syncRecords(ctx, true); err != nil {
		e.abortOpen()
		return nil, fmt.Errorf("cannot load engine records: %w", err)
	}
	if err := e.replayOrders(ctx); err != nil {
		e.abortOpen()
		return nil, fmt.Errorf("cannot replay orders: %w", err)
	}
	e.refreshAllPages(ctx)
	if opts.SweepInterval > 0 {
		e.stopped.Add(1)
		go e.sweepLoop()
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
	if e.recOwn && e.rec != nil {
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
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.StopTimeout)
	defer cancel()
	var errs []error
	if err := e.writer.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("cannot close order writer: %w", err))
	}
	if e.recOwn {
		if err := e.rec.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cannot close records: %w", err))
		}
	}
	e.closeErr = errors.Join(errs...)
	return e.closeErr
}

// Ready reports whether the inventory backend answers.
func (e *Engine) Ready(ctx context.Context) error {
	if e.closed.Load() {
		return ErrUnavailable
	}
	_, err := e.store.Pool(ctx, "surge-ready:probe")
	if err == nil || errors.Is(err, inventory.ErrPoolNotFound) {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Idempotent runs fn at most once per (userID, key) with the same digest
// (law 5); see Idempotency.Do.
func (e *Engine) Idempotent(ctx context.Context, userID, key string, digest [32]byte, fn func() (int, []byte)) (int, []byte, error) {
	return e.idem.Do(ctx, userID, key, digest, fn)
}

// ---- ids ----

const engIDAlphabet = "0123456789abcdefghijklmnopqrstuv" // base32hex, lowercase

// engValidID reports whether s can be a store, guide, sku, sale, deal or
// team id (ValidKey: 1..KeyLenMax bytes of [A-Za-z0-9_.-]).
func engValidID(s string) bool { return inventory.ValidKey(s) }

// engNewToken returns a sortable, URL-safe random token: 10 chars of
// milliseconds then 13 random chars.
func engNewToken(now time.Time) string {
	var b [engTokenLen]byte
	engPutToken(b[:], now)
	return string(b[:])
}

// engTokenLen is the length of engNewToken's tokens.
const engTokenLen = 23

// engPutToken writes a token into b[:engTokenLen].
func engPutToken(b []byte, now time.Time) {
	_ = b[engTokenLen-1]
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = engIDAlphabet[ms&31]
		ms >>= 5
	}
	r := rand.Uint64()
	for i := 22; i >= 10; i-- {
		b[i] = engIDAlphabet[r&31]
		r >>= 5
	}
}

// newReservationID returns "<store>:<token>" (one allocation: it is made
// for every reservation).
func (e *Engine) newReservationID(storeID string) string {
	var buf [64]byte
	b := buf[:0]
	if n := len(storeID) + 1 + engTokenLen; n > len(buf) {
		b = make([]byte, 0, n)
	}
	b = append(b, storeID...)
	b = append(b, ':')
	n := len(b)
	b = b[:n+engTokenLen]
	engPutToken(b[n:], e.now())
	return string(b)
}

// listingPool, salePool and dealPool name the stock pools; the store id is
// the tag so that every pool of a store lives together.
func listingPool(storeID, skuID string) string { return storeID + ":l:" + skuID }
func salePool(storeID, saleID string) string   { return storeID + ":fs:" + saleID }
func dealPool(storeID, dealID string) string   { return storeID + ":gb:" + dealID }

// ---- errors ----

// engMapErr maps an inventory error onto the engine's sentinels, keeping the
// original in the chain.
func engMapErr(err error) error {
	if err == nil {
		return nil
	}
	var target error
	switch {
	case errors.Is(err, inventory.ErrSoldOut):
		target = ErrSoldOut
	case errors.Is(err, inventory.ErrLimitExceeded):
		target = ErrLimitExceeded
	case errors.Is(err, inventory.ErrPoolNotFound), errors.Is(err, inventory.ErrReservationNotFound):
		target = ErrNotFound
	case errors.Is(err, inventory.ErrInvalid):
		target = ErrInvalid
	case errors.Is(err, inventory.ErrBadState), errors.Is(err, inventory.ErrIDConflict):
		target = ErrBadState
	case errors.Is(err, inventory.ErrClosed), errors.Is(err, inventory.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		target = ErrUnavailable
	default:
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", target, err)
}

// ---- reservation meta ----

// resMeta is what the engine keeps in inventory.Reservation.Meta to rebuild
// the Reservation view and the order without another lookup.
type resMeta struct {
	Kind   string   `json:"k"`
	Sale   string   `json:"s,omitempty"`
	Deal   string   `json:"d,omitempty"`
	Team   string   `json:"t,omitempty"`
	Store  string   `json:"st"`
	Guide  string   `json:"g,omitempty"`
	SKUs   []string `json:"sk"`
	Prices []int64  `json:"p"`
}

const (
	kindFlash    = "flash"
	kindGroup    = "group"
	kindCheckout = "checkout"
)

// Meta is encoded compactly, not as JSON, because it is written with every
// reservation and read with every payment: "m1|kind|sale|deal|team|store|
// guide|sku,sku|price,price". Ids never hold '|' or ',' (engValidID;
// reservation and team ids are ours).
const metaVersion = "m1"

func (m *resMeta) encode() []byte {
	n := len(metaVersion) + len(m.Kind) + len(m.Sale) + len(m.Deal) + len(m.Team) + len(m.Store) + len(m.Guide) + 8
	for _, k := range m.SKUs {
		n += len(k) + 1
	}
	n += 12 * len(m.Prices)
	b := make([]byte, 0, n)
	b = append(b, metaVersion...)
	for _, f := range [...]string{m.Kind, m.Sale, m.Deal, m.Team, m.Store, m.Guide} {
		b = append(b, '|')
		b = append(b, f...)
	}
	b = append(b, '|')
	for i, k := range m.SKUs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, k...)
	}
	b = append(b, '|')
	for i, p := range m.Prices {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, p, 10)
	}
	return b
}

var errMeta = errors.New("cannot decode reservation meta")

func decodeMeta(b []byte) (resMeta, error) {
	var m resMeta
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &m); err != nil {
			return m, fmt.Errorf("%w: %w", errMeta, err)
		}
		return m, nil
	}
	s := string(b)
	var f [9]string
	for i := range f {
		j := strings.IndexByte(s, '|')
		if i == len(f)-1 {
			if j >= 0 {
				return m, errMeta
			}
			f[i] = s
			break
		}
		if j < 0 {
			return m, errMeta
		}
		f[i], s = s[:j], s[j+1:]
	}
	if f[0] != metaVersion {
		return m, fmt.Errorf("%w: version %q", errMeta, f[0])
	}
	m.Kind, m.Sale, m.Deal, m.Team, m.Store, m.Guide = f[1], f[2], f[3], f[4], f[5], f[6]
	if f[7] != "" {
		m.SKUs = strings.Split(f[7], ",")
	}
	if f[8] != "" {
		ps := f[8]
		m.Prices = make([]int64, 0, strings.Count(ps, ",")+1)
		for ps != "" {
			var p string
			p, ps, _ = strings.Cut(ps, ",")
			v, err := strconv.ParseInt(p, 10, 64)
			if err != nil {
				return m, fmt.Errorf("%w: price %q", errMeta, p)
			}
			m.Prices = append(m.Prices, v)
		}
	}
	return m, nil
}

// metaOf decodes a reservation's meta and checks it against its lines.
func metaOf(r inventory.Reservation) (resMeta, error) {
	m, err := decodeMeta(r.Meta)
	if err != nil {
		return m, err
	}
	if m.SKUs == nil && m.Kind == kindCheckout {
		m.SKUs = make([]string, len(r.Lines))
		for i, l := range r.Lines {
			m.SKUs[i] = l.Pool[strings.LastIndex(l.Pool, ":l:")+len(":l:"):]
		}
	}
	if len(m.SKUs) != len(r.Lines) || len(m.Prices) != len(r.Lines) {
		return m, fmt.Errorf("%w: meta does not match the lines of %s", errMeta, r.ID)
	}
	return m, nil
}

// view builds the API view of an inventory reservation.
func (e *Engine) view(r inventory.Reservation) (Reservation, resMeta, error) {
	m, err := metaOf(r)
	if err != nil {
		return Reservation{}, m, err
	}
	return e.viewMeta(r, m), m, nil
}

// viewMeta builds the API view from a reservation and its decoded meta
// (len(m.SKUs) == len(r.Lines)).
func (e *Engine) viewMeta(r inventory.Reservation, m resMeta) Reservation {
	cat := e.catalog.Load()
	v := Reservation{
		ReservationID: r.ID,
		Kind:          m.Kind,
		SaleID:        m.Sale,
		DealID:        m.Deal,
		TeamID:        m.Team,
		UserID:        r.User,
		StoreID:       m.Store,
		GuideID:       m.Guide,
		State:         r.State.String(),
		CreatedAt:     r.CreatedAt.UTC(),
		ExpiresAt:     r.ExpiresAt.UTC(),
		ExpiresAtMs:   r.ExpiresAt.UnixMilli(),
		Items:         make([]Item, len(r.Lines)),
	}
	for i, l := range r.Lines {
		it := Item{SKUID: m.SKUs[i], Quantity: l.Quantity, UnitPrice: m.Prices[i]}
		if p, ok := cat.products[it.SKUID]; ok {
			it.Title = p.Title
		}
		v.Items[i] = it
		v.Quantity += l.Quantity
		v.Amount += l.Quantity * m.Prices[i]
	}
	if len(v.Items) == 1 {
		v.SKUID = v.Items[0].SKUID
		v.UnitPrice = v.Items[0].UnitPrice
	}
	return v
}

// engKeyPart rejects ids that would break a record key.
func engKeyPart(s string) bool { return engValidID(s) && !strings.Contains(s, "/") }
