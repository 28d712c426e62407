package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/inventory"
)

// Reconciliation: for every pool (sales, deals, listings), its counters vs
// the reservation records vs the orders. GET /admin/v1/reconcile runs it on
// a live engine; `surge check` runs it on stores nobody else uses.

// Kinds of discrepancy.
const (
	// DiscPoolCounters: a pool's supplied != available + held + sold, or
	// a negative counter.
	DiscPoolCounters = "pool_counters"
	// DiscPoolHeld: a pool's held counter != the units of its held
	// reservations.
	DiscPoolHeld = "pool_held"
	// DiscPoolSold: a pool's sold counter != the units of its paid
	// reservations.
	DiscPoolSold = "pool_sold"
	// DiscPoolMissing: a sale, deal, listing or reservation names a pool
	// that does not exist.
	DiscPoolMissing = "pool_missing"
	// DiscDataLost: the records lost their data under this node
	// (dataloss.go); what the node knew of and cannot find is listed
	// with it as pool_missing.
	DiscDataLost = "data_lost"
	// DiscReservationRecord: a reservation whose engine record cannot be
	// read.
	DiscReservationRecord = "reservation_record"
	// DiscOrderMissing: a paid reservation without its order (law 4).
	DiscOrderMissing = "order_missing"
	// DiscOrderAmount: a paid reservation's order with another amount.
	DiscOrderAmount = "order_amount"
	// DiscOrderMismatch: a paid reservation's order names another
	// reservation or user.
	DiscOrderMismatch = "order_mismatch"
	// DiscOrderNotSold: a paid reservation whose order is refunded or
	// refund_pending (the units still count as sold).
	DiscOrderNotSold = "order_not_sold"
	// DiscOrderOrphan: an order (created) whose reservation is not paid.
	DiscOrderOrphan = "order_orphan"
)

// Defaults of ReconcileOptions.
const (
	reconcileDiscrepanciesMax = 1000
	reconcilePageMax          = 1000
	reconcilePoolsListedMax   = 10_000
	// reconcileMissingMax bounds the paid reservations without an order
	// kept for a second look at the end (an order still on its way).
	reconcileMissingMax = 10_000
	// reconcileGracePoll is how often orders on their way are looked for.
	reconcileGracePoll = 100 * time.Millisecond
	// reconcileLiveGrace is a live engine's OrderGrace.
	reconcileLiveGrace = 5 * time.Second
)

// ReconcileOptions bound a reconciliation. Zero fields mean the defaults.
type ReconcileOptions struct {
	// DiscrepanciesMax bounds the discrepancies listed (all are counted).
	// Default 1000.
	DiscrepanciesMax int
	// PageMax is how many reservations one Scan call reads. Default 1000.
	PageMax int
	// PoolsListedMax bounds the pools listed (all are checked). Default
	// 10,000.
	PoolsListedMax int
	// OrderGrace is how long the orders not found for paid reservations
	// are looked for again at the end (orders on their way: the order
	// writer, the outbox). Default 0: looked for once more.
	OrderGrace time.Duration
}

func (o ReconcileOptions) withDefaults() ReconcileOptions {
	if o.DiscrepanciesMax <= 0 {
		o.DiscrepanciesMax = reconcileDiscrepanciesMax
	}
	if o.PageMax <= 0 {
		o.PageMax = reconcilePageMax
	}
	if o.PoolsListedMax <= 0 {
		o.PoolsListedMax = reconcilePoolsListedMax
	}
	return o
}

// ReconcileSources are the stores a reconciliation reads; it writes
// nothing.
type ReconcileSources struct {
	Store   inventory.Store
	Records records.Records
	Orders  orders.Store
}

// PoolCheck is one pool's counters next to the sums of its reservations.
type PoolCheck struct {
	Pool string `json:"pool"`
	// Kind is "sale", "deal", "listing", or "other" (a pool only a
	// reservation names).
	Kind      string `json:"kind"`
	ID        string `json:"id"` // sale id, deal id or "store_id/sku_id"
	Supplied  int64  `json:"supplied"`
	Available int64  `json:"available"`
	Held      int64  `json:"held"`
	Sold      int64  `json:"sold"`
	// RecordsHeld and RecordsSold sum the units of the pool's held and
	// paid reservations.
	RecordsHeld int64 `json:"records_held"`
	RecordsSold int64 `json:"records_sold"`
	// Moving is set when the pool's counters changed while it was checked
	// (a live engine): they were not compared.
	Moving bool `json:"moving,omitempty"`
	OK     bool `json:"ok"`
}

// Discrepancy is one thing found wrong.
type Discrepancy struct {
	Kind          string `json:"kind"`
	Pool          string `json:"pool,omitempty"`
	ReservationID string `json:"reservation_id,omitempty"`
	OrderID       string `json:"order_id,omitempty"`
	Expected      any    `json:"expected,omitempty"`
	Found         any    `json:"found,omitempty"`
	Msg           string `json:"msg"`
}

// Reconciliation is the answer of GET /admin/v1/reconcile and `surge check`.
type Reconciliation struct {
	OK    bool        `json:"ok"`
	Pools []PoolCheck `json:"pools"`
	// PoolsTotal counts the pools checked (Pools lists at most
	// ReconcileOptions.PoolsListedMax); PoolsMoving those not compared.
	PoolsTotal    int           `json:"pools_total"`
	PoolsMoving   int           `json:"pools_moving"`
	Discrepancies []Discrepancy `json:"discrepancies"`
	// DiscrepanciesTotal counts every discrepancy, listed or not.
	DiscrepanciesTotal int   `json:"discrepancies_total"`
	Held               int64 `json:"reservations_held"`
	Paid               int64 `json:"reservations_paid"`
	// Orders counts the orders walked; OrdersScanned is false when the
	// order store cannot be walked (orders without a paid reservation are
	// then not looked for).
	Orders        int64 `json:"orders"`
	OrdersScanned bool  `json:"orders_scanned"`
}

type reconciler struct {
	src   ReconcileSources
	o     ReconcileOptions
	out   Reconciliation
	pools map[string]*poolAcc
}

type poolAcc struct {
	kind, id   string
	held, sold int64
	before     inventory.Pool
	read       bool // before was read (found: the pool exists)
	found      bool
}

func (rc *reconciler) add(d Discrepancy) {
	rc.out.DiscrepanciesTotal++
	if len(rc.out.Discrepancies) < rc.o.DiscrepanciesMax {
		rc.out.Discrepancies = append(rc.out.Discrepancies, d)
	}
}

func (rc *reconciler) pool(id string) *poolAcc {
	p := rc.pools[id]
	if p == nil {
		p = &poolAcc{kind: "other", id: id}
		rc.pools[id] = p
	}
	return p
}

// Reconcile checks src: every pool's counters against its held and paid
// reservations (law 1 and the counters' own sum), every paid reservation
// against its order (law 4: one order, same amount, not refunded), and
// every order against its reservation. It reads in pages and keeps one
// small entry per pool; it writes nothing. On stores in use, a pool whose
// counters moved during the check is reported as moving, not compared.
func Reconcile(ctx context.Context, src ReconcileSources, o ReconcileOptions) (Reconciliation, error) {
	rc := &reconciler{src: src, o: o.withDefaults(), pools: map[string]*poolAcc{}}
	rc.out.Discrepancies = []Discrepancy{}
	rc.out.Pools = []PoolCheck{}
	if err := rc.knownPools(ctx); err != nil {
		return rc.out, err
	}
	for id, p := range rc.pools {
		if err := rc.readBefore(ctx, id, p); err != nil {
			return rc.out, err
		}
	}
	missing, createdPaid, err := rc.reservations(ctx)
	if err != nil {
		return rc.out, err
	}
	// Another look at orders not found: one may have been on its way
	// (the order writer, the outbox) while the reservations were read.
	deadline := time.Now().Add(rc.o.OrderGrace)
	for len(missing) > 0 {
		var still []inventory.Reservation
		for _, r := range missing {
			o, ok, err := src.Orders.Get(ctx, OrderID(r.ID))
			if err != nil {
				return rc.out, fmt.Errorf("%w: cannot read order: %w", ErrUnavailable, err)
			}
			if !ok {
				still = append(still, r)
			} else if rc.checkOrder(r, o) {
				createdPaid++
			}
		}
		missing = still
		if len(missing) == 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(reconcileGracePoll)
	}
	for _, r := range missing {
		rc.add(Discrepancy{Kind: DiscOrderMissing, ReservationID: r.ID, OrderID: OrderID(r.ID), Expected: "order", Found: "none",
			Msg: "paid reservation without its order"})
	}
	if err := rc.orphans(ctx, createdPaid); err != nil {
		return rc.out, err
	}
	if err := rc.comparePools(ctx); err != nil {
		return rc.out, err
	}
	rc.out.OK = rc.out.DiscrepanciesTotal == 0
	return rc.out, nil
}

// knownPools collects the pools of the recorded sales, deals and catalog
// listings.
func (rc *reconciler) knownPools(ctx context.Context) error {
	for _, prefix := range []string{keySalePrefix, keyDealPrefix} {
		err := rc.src.Records.Scan(ctx, prefix, func(key string, val []byte) error {
			var rec saleRec
			if json.Unmarshal(val, &rec) != nil || rec.State != "ready" {
				return nil
			}
			id, _, _, pool := rec.pool()
			if pool == "" {
				return nil
			}
			for _, pool := range append([]string{pool}, rec.Buckets[min(1, len(rec.Buckets)):]...) {
				p := rc.pool(pool)
				p.kind, p.id = "sale", id
				if rec.Group != nil {
					p.kind = "deal"
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%w: cannot scan %s: %w", ErrUnavailable, prefix, err)
		}
	}
	b, ok, err := rc.src.Records.Get(ctx, keyCatalogDoc)
	if err != nil {
		return fmt.Errorf("%w: cannot read the catalog: %w", ErrUnavailable, err)
	}
	if ok {
		var c Catalog
		if err := json.Unmarshal(b, &c); err != nil {
			return fmt.Errorf("cannot decode the recorded catalog: %w", err)
		}
		for _, l := range c.Listings {
			p := rc.pool(listingPool(l.StoreID, l.SKUID))
			p.kind, p.id = "listing", l.StoreID+"/"+l.SKUID
		}
	}
	return nil
}

func (rc *reconciler) readBefore(ctx context.Context, id string, p *poolAcc) error {
	p.read = true
	ip, err := rc.src.Store.Pool(ctx, id)
	switch {
	case errors.Is(err, inventory.ErrPoolNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("%w: cannot read pool %s: %w", ErrUnavailable, id, err)
	}
	p.before, p.found = ip, true
	return nil
}

// reservations sums the held and paid reservations per pool and checks
// each paid one's order. It returns the paid reservations whose order was
// not found (at most reconcileMissingMax; the others are reported at once)
// and how many paid reservations have their created order.
func (rc *reconciler) reservations(ctx context.Context) (missing []inventory.Reservation, createdPaid int64, err error) {
	for _, state := range []inventory.State{inventory.StateHeld, inventory.StatePaid} {
		cursor := ""
		for {
			rs, next, err := rc.src.Store.Scan(ctx, state, cursor, rc.o.PageMax)
			if err != nil {
				return nil, 0, fmt.Errorf("%w: cannot scan %s reservations: %w", ErrUnavailable, state, err)
			}
			for _, r := range rs {
				for _, l := range r.Lines {
					p := rc.pool(l.Pool)
					if !p.read {
						if err := rc.readBefore(ctx, l.Pool, p); err != nil {
							return nil, 0, err
						}
					}
					if state == inventory.StateHeld {
						p.held += l.Quantity
					} else {
						p.sold += l.Quantity
					}
				}
				if state == inventory.StateHeld {
					rc.out.Held++
					continue
				}
				rc.out.Paid++
				o, ok, err := rc.src.Orders.Get(ctx, OrderID(r.ID))
				if err != nil {
					return nil, 0, fmt.Errorf("%w: cannot read order: %w", ErrUnavailable, err)
				}
				switch {
				case ok:
					if rc.checkOrder(r, o) {
						createdPaid++
					}
				case len(missing) < reconcileMissingMax:
					missing = append(missing, r)
				default:
					rc.add(Discrepancy{Kind: DiscOrderMissing, ReservationID: r.ID, OrderID: OrderID(r.ID), Expected: "order", Found: "none",
						Msg: "paid reservation without its order"})
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	return missing, createdPaid, nil
}

// checkOrder compares the paid reservation r with its order o and reports
// whether o is a created order that matches.
func (rc *reconciler) checkOrder(r inventory.Reservation, o Order) bool {
	m, err := recordOf(r)
	if err != nil {
		rc.add(Discrepancy{Kind: DiscReservationRecord, ReservationID: r.ID, Msg: err.Error()})
		return false
	}
	switch {
	case o.State == orders.StateRefunded || o.State == orders.StateRefundPending:
		rc.add(Discrepancy{Kind: DiscOrderNotSold, ReservationID: r.ID, OrderID: o.OrderID, Expected: orders.StateCreated, Found: o.State,
			Msg: "paid reservation whose order is " + o.State})
		return false
	case o.ReservationID != r.ID || o.UserID != r.User:
		rc.add(Discrepancy{Kind: DiscOrderMismatch, ReservationID: r.ID, OrderID: o.OrderID, Expected: r.ID + " by " + r.User,
			Found: o.ReservationID + " by " + o.UserID, Msg: "order names another reservation or user"})
		return false
	case o.Amount != m.Amount:
		rc.add(Discrepancy{Kind: DiscOrderAmount, ReservationID: r.ID, OrderID: o.OrderID, Expected: m.Amount, Found: o.Amount,
			Msg: "order amount differs from the reservation's"})
		return false
	}
	return true
}

// orphans walks the orders: when the created ones outnumber the paid
// reservations that have theirs, it walks again to name the orders whose
// reservation is not paid.
func (rc *reconciler) orphans(ctx context.Context, createdPaid int64) error {
	sc, ok := rc.src.Orders.(orders.Scanner)
	if !ok {
		return nil
	}
	rc.out.OrdersScanned = true
	var created int64
	err := sc.ScanOrders(ctx, func(o Order) error {
		rc.out.Orders++
		if o.State == orders.StateCreated || o.State == "" {
			created++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: cannot scan orders: %w", ErrUnavailable, err)
	}
	if created == createdPaid {
		return nil // each created order is the order of one paid reservation
	}
	err = sc.ScanOrders(ctx, func(o Order) error {
		if o.State != orders.StateCreated && o.State != "" {
			return nil
		}
		resID := o.ReservationID
		if resID == "" {
			resID = strings.TrimPrefix(o.OrderID, OrderID(""))
		}
		r, err := rc.src.Store.Reservation(ctx, resID)
		switch {
		case errors.Is(err, inventory.ErrReservationNotFound):
			rc.add(Discrepancy{Kind: DiscOrderOrphan, ReservationID: resID, OrderID: o.OrderID, Expected: "paid", Found: "none",
				Msg: "order without a reservation"})
		case err != nil:
			return fmt.Errorf("%w: cannot read reservation %s: %w", ErrUnavailable, resID, err)
		case r.State != inventory.StatePaid:
			rc.add(Discrepancy{Kind: DiscOrderOrphan, ReservationID: resID, OrderID: o.OrderID, Expected: "paid", Found: r.State.String(),
				Msg: "order whose reservation is not paid"})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: cannot scan orders: %w", ErrUnavailable, err)
	}
	return nil
}

// comparePools reads every pool again and compares the ones that did not
// move with their reservations.
func (rc *reconciler) comparePools(ctx context.Context) error {
	ids := make([]string, 0, len(rc.pools))
	for id := range rc.pools {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	rc.out.PoolsTotal = len(ids)
	for _, id := range ids {
		p := rc.pools[id]
		pc := PoolCheck{Pool: id, Kind: p.kind, ID: p.id, RecordsHeld: p.held, RecordsSold: p.sold, OK: true}
		after, err := rc.src.Store.Pool(ctx, id)
		switch {
		case errors.Is(err, inventory.ErrPoolNotFound):
			if !p.found {
				pc.OK = false
				rc.add(Discrepancy{Kind: DiscPoolMissing, Pool: id, Expected: "pool", Found: "none", Msg: "no such pool (" + p.kind + " " + p.id + ")"})
			} else {
				pc.Moving = true
			}
		case err != nil:
			return fmt.Errorf("%w: cannot read pool %s: %w", ErrUnavailable, id, err)
		case !p.found || after != p.before:
			pc.Moving = true
		default:
			pc.OK = rc.comparePool(id, p, after)
		}
		if err == nil {
			pc.Supplied, pc.Available, pc.Held, pc.Sold = after.Supplied, after.Available, after.Held, after.Sold
		}
		if pc.Moving {
			rc.out.PoolsMoving++
		}
		if len(rc.out.Pools) < rc.o.PoolsListedMax {
			rc.out.Pools = append(rc.out.Pools, pc)
		}
	}
	return nil
}

func (rc *reconciler) comparePool(id string, p *poolAcc, ip inventory.Pool) bool {
	ok := true
	if ip.Supplied != ip.Available+ip.Held+ip.Sold || ip.Available < 0 || ip.Held < 0 || ip.Sold < 0 {
		ok = false
		rc.add(Discrepancy{Kind: DiscPoolCounters, Pool: id, Expected: ip.Supplied, Found: ip.Available + ip.Held + ip.Sold,
			Msg: fmt.Sprintf("supplied %d != available %d + held %d + sold %d", ip.Supplied, ip.Available, ip.Held, ip.Sold)})
	}
	if ip.Held != p.held {
		ok = false
		rc.add(Discrepancy{Kind: DiscPoolHeld, Pool: id, Expected: p.held, Found: ip.Held,
			Msg: "held counter differs from the units of held reservations"})
	}
	if ip.Sold != p.sold {
		ok = false
		rc.add(Discrepancy{Kind: DiscPoolSold, Pool: id, Expected: p.sold, Found: ip.Sold,
			Msg: "sold counter differs from the units of paid reservations"})
	}
	return ok
}

// Reconcile runs the reconciliation over this engine's stores, after
// flushing its order writer; orders still on their way (the outbox) are
// looked for again for up to reconcileLiveGrace.
func (e *Engine) Reconcile(ctx context.Context) (Reconciliation, error) {
	if e.closed.Load() {
		return Reconciliation{}, errEngineClosed
	}
	if err := e.writer.Flush(ctx); err != nil {
		e.logger(ctx).Warn("engine: reconcile: cannot flush the order writer", "err", err)
	}
	rec, err := Reconcile(ctx, ReconcileSources{Store: e.store, Records: e.rec, Orders: e.orders}, ReconcileOptions{OrderGrace: reconcileLiveGrace})
	if err != nil {
		return rec, err
	}
	e.reconcileLoss(ctx, &rec)
	return rec, nil
}
