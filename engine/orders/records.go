package orders

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/surge-retail/surge/engine/records"
)

// Order records layout:
//
//	order/<order id>                     -> order JSON
//	orderu/<escaped user id>/<order id>  -> CreatedAt, Unix ns, decimal (the per-user index)
//	order#                               -> decimal count of order ids
//	orderx/...                           -> the admin indexes (recordsindex.go)
//
// The user id is path-escaped so that no user's prefix is another's.
const (
	RecordsKeyPrefix   = "order/"
	orderUserKeyPrefix = "orderu/"
	orderCountKey      = "order#"
)

const (
	// orderUserScanMax bounds the index entries ByUser reads for one user.
	orderUserScanMax = 10_000
	// orderUpsertChunkMax is how many orders go into one records batch (the
	// order, the per-user index and up to orderIndexKeysMax admin index
	// records each, under records.BatchMax); larger Upserts are split (each chunk is atomic, and the
	// whole call is idempotent).
	orderUpsertChunkMax = 2048
)

var errOrderStop = errors.New("orders: scan limit")

type recordsStore struct {
	rec records.Records
	cb  records.CountedBatcher // nil: rec is not one of ours; use mu
	// mu serialises Upserts when rec cannot count atomically itself; the
	// count is then exact within one process.
	mu sync.Mutex
	// indexed is set once the admin indexes are known to cover every
	// order (ensureIndex); indexMu serialises the backfill.
	indexed atomic.Bool
	indexMu sync.Mutex
}

var _ Store = (*recordsStore)(nil)

// NewRecordsStore returns a Store kept in rec: every order under
// "order/<id>", a per-user index, and an all-time count updated in the same
// atomic batch as the orders it counts, so that it stays exact under
// re-upserts, crashes and (with Redis records) several nodes.
func NewRecordsStore(rec records.Records) Store {
	s := &recordsStore{rec: rec}
	if cb, ok := rec.(records.CountedBatcher); ok {
		s.cb = cb
	}
	return s
}

func orderUserPrefix(userID string) string {
	return orderUserKeyPrefix + url.PathEscape(userID) + "/"
}

func (s *recordsStore) Upsert(ctx context.Context, orders []Order) error {
	for i := range orders {
		if err := Check(&orders[i]); err != nil {
			return err
		}
	}
	for len(orders) > 0 {
		n := min(len(orders), orderUpsertChunkMax)
		if err := s.upsert(ctx, orders[:n]); err != nil {
			return err
		}
		orders = orders[n:]
	}
	return nil
}

func (s *recordsStore) upsert(ctx context.Context, orders []Order) error {
	stale, err := s.keepStates(ctx, orders)
	if err != nil {
		return err
	}
	kvs := make([]records.KV, 0, (2+orderIndexKeysMax)*len(orders)+1)
	counted := make([]string, 0, len(orders))
	for i := range orders {
		o := &orders[i]
		body, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("cannot encode order %q: %w", o.OrderID, err)
		}
		key := RecordsKeyPrefix + o.OrderID
		kvs = append(kvs,
			records.KV{Key: key, Val: body},
			records.KV{Key: orderUserPrefix(o.UserID) + o.OrderID, Val: strconv.AppendInt(nil, o.CreatedAt.UnixNano(), 10)})
		if kvs, err = indexKVs(kvs, o); err != nil {
			return err
		}
		counted = append(counted, key)
	}
	if err := s.write(ctx, kvs, counted, len(orders)); err != nil {
		return err
	}
	// Index keys an earlier write of an order had and this one has not.
	// A key not deleted here is skipped by readers.
	for _, k := range stale {
		if err := s.rec.Delete(ctx, k); err != nil {
			break
		}
	}
	return nil
}

// write writes kvs in one batch and adds to the count the keys of counted
// that were new.
func (s *recordsStore) write(ctx context.Context, kvs []records.KV, counted []string, n int) error {
	if s.cb != nil {
		if _, err := s.cb.PutBatchCounted(ctx, kvs, counted, orderCountKey); err != nil {
			return fmt.Errorf("cannot write %d orders: %w", n, err)
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	added := int64(0)
	seen := make(map[string]struct{}, len(counted))
	for _, k := range counted {
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		_, ok, err := s.rec.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("cannot read order %q: %w", k, err)
		}
		if !ok {
			added++
		}
	}
	cur, ok, err := s.rec.Get(ctx, orderCountKey)
	if err != nil {
		return fmt.Errorf("cannot read order count: %w", err)
	}
	c, err := records.ParseCount(cur, ok)
	if err != nil {
		return err
	}
	kvs = append(kvs, records.KV{Key: orderCountKey, Val: fmt.Appendf(nil, "%d", c+added)})
	if err := s.rec.PutBatch(ctx, kvs); err != nil {
		return fmt.Errorf("cannot write %d orders: %w", n, err)
	}
	return nil
}

// keepStates raises each order's state to the stored one's when that is
// further on (StateRank), so that a write never moves a state back, and
// returns the admin index keys of the stored orders that the written ones
// no longer have. The read and the write are not one atomic step: a state
// written by another caller in between may be overwritten. The engine
// never races two states of one order (a created order is written by the
// order writer before any refund of it; a late payment's order is only
// ever written by its refund), and a refund writes its state again until
// the refund record says done.
func (s *recordsStore) keepStates(ctx context.Context, orders []Order) ([]string, error) {
	var stale []string
	for i := range orders {
		o := &orders[i]
		v, ok, err := s.rec.Get(ctx, RecordsKeyPrefix+o.OrderID)
		if err != nil {
			return nil, fmt.Errorf("cannot read order %q: %w", o.OrderID, err)
		}
		if !ok {
			continue
		}
		var cur Order
		if json.Unmarshal(v, &cur) != nil {
			continue
		}
		if StateRank(cur.State) > StateRank(o.State) {
			o.State = cur.State
		}
		stale = append(stale, staleIndexKeys(&cur, o)...)
	}
	return stale, nil
}

func (s *recordsStore) Get(ctx context.Context, orderID string) (Order, bool, error) {
	if orderID == "" || len(orderID) > IDLenMax {
		return Order{}, false, nil
	}
	v, ok, err := s.rec.Get(ctx, RecordsKeyPrefix+orderID)
	if err != nil || !ok {
		return Order{}, false, err
	}
	var o Order
	if err := json.Unmarshal(v, &o); err != nil {
		return Order{}, false, fmt.Errorf("cannot decode order %q: %w", orderID, err)
	}
	return o, true, nil
}

func (s *recordsStore) ByUser(ctx context.Context, userID string, limit int) ([]Order, error) {
	if userID == "" || len(userID) > IDLenMax {
		return nil, nil
	}
	if limit <= 0 || limit > ByUserMax {
		limit = ByUserMax
	}
	type entry struct {
		id      string
		created int64
	}
	var index []entry
	prefix := orderUserPrefix(userID)
	err := s.rec.Scan(ctx, prefix, func(key string, val []byte) error {
		if len(index) >= orderUserScanMax {
			return errOrderStop
		}
		created, err := strconv.ParseInt(string(val), 10, 64)
		if err != nil {
			return fmt.Errorf("cannot decode order index %q: %w", key, err)
		}
		index = append(index, entry{id: key[len(prefix):], created: created})
		return nil
	})
	if err != nil && err != errOrderStop {
		return nil, fmt.Errorf("cannot list orders of %q: %w", userID, err)
	}
	slices.SortFunc(index, func(a, b entry) int {
		if c := cmp.Compare(b.created, a.created); c != 0 {
			return c
		}
		return cmp.Compare(b.id, a.id)
	})
	out := make([]Order, 0, min(limit, len(index)))
	for _, e := range index {
		if len(out) == limit {
			break
		}
		o, ok, err := s.Get(ctx, e.id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, o)
		}
	}
	return out, nil
}

func (s *recordsStore) Count(ctx context.Context) (int64, error) {
	v, ok, err := s.rec.Get(ctx, orderCountKey)
	if err != nil {
		return 0, fmt.Errorf("cannot read order count: %w", err)
	}
	return records.ParseCount(v, ok)
}
