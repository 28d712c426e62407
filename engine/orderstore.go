package engine

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

	"github.com/surge-retail/surge/engine/records"
)

// OrderStore keeps orders.
type OrderStore interface {
	// Upsert writes orders durably. Writing an order id again replaces the
	// order (e.g. its state) and does not count it again.
	Upsert(ctx context.Context, orders []Order) error
	// Get returns one order; ok is false when there is none.
	Get(ctx context.Context, orderID string) (Order, bool, error)
	// ByUser returns a user's orders, newest first (CreatedAt, then
	// OrderID), at most limit (1..ordersByUserMax; other values mean
	// ordersByUserMax).
	ByUser(ctx context.Context, userID string, limit int) ([]Order, error)
	// Count returns the number of distinct orders ever written, all time.
	Count(ctx context.Context) (int64, error)
}

// Order records layout:
//
//	order/<order id>                     -> order JSON
//	orderu/<escaped user id>/<order id>  -> CreatedAt, Unix ns, decimal (the per-user index)
//	order#                               -> decimal count of order ids
//
// The user id is path-escaped so that no user's prefix is another's.
const (
	orderKeyPrefix     = "order/"
	orderUserKeyPrefix = "orderu/"
	orderCountKey      = "order#"
)

const (
	// ordersByUserMax bounds one ByUser answer.
	ordersByUserMax = 100
	// orderUserScanMax bounds the index entries ByUser reads for one user.
	orderUserScanMax = 10_000
	// orderUpsertChunkMax is how many orders go into one records batch (two
	// records each); larger Upserts are split (each chunk is atomic, and the
	// whole call is idempotent).
	orderUpsertChunkMax = 2048
	// orderIDMax bounds an order id and a user id (bytes).
	orderIDMax = 256
)

var errOrderStop = errors.New("engine: order scan limit")

type recordsOrderStore struct {
	rec records.Records
	cb  records.CountedBatcher // nil: rec is not one of ours; use mu
	// mu serialises Upserts when rec cannot count atomically itself; the
	// count is then exact within one process.
	mu sync.Mutex
}

var _ OrderStore = (*recordsOrderStore)(nil)

// NewRecordsOrderStore returns an OrderStore kept in rec: every order under
// "order/<id>", a per-user index, and an all-time count updated in the same
// atomic batch as the orders it counts, so that it stays exact under
// re-upserts, crashes and (with Redis records) several nodes.
func NewRecordsOrderStore(rec records.Records) OrderStore {
	s := &recordsOrderStore{rec: rec}
	if cb, ok := rec.(records.CountedBatcher); ok {
		s.cb = cb
	}
	return s
}

func orderUserPrefix(userID string) string {
	return orderUserKeyPrefix + url.PathEscape(userID) + "/"
}

func orderCheck(o *Order) error {
	if o.OrderID == "" || len(o.OrderID) > orderIDMax {
		return fmt.Errorf("%w: order id %q", ErrInvalid, o.OrderID)
	}
	if o.UserID == "" || len(o.UserID) > orderIDMax {
		return fmt.Errorf("%w: order %q: user id %q", ErrInvalid, o.OrderID, o.UserID)
	}
	return nil
}

func (s *recordsOrderStore) Upsert(ctx context.Context, orders []Order) error {
	for i := range orders {
		if err := orderCheck(&orders[i]); err != nil {
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

func (s *recordsOrderStore) upsert(ctx context.Context, orders []Order) error {
	kvs := make([]records.KV, 0, 2*len(orders))
	counted := make([]string, 0, len(orders))
	for i := range orders {
		o := &orders[i]
		body, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("cannot encode order %q: %w", o.OrderID, err)
		}
		key := orderKeyPrefix + o.OrderID
		kvs = append(kvs,
			records.KV{Key: key, Val: body},
			records.KV{Key: orderUserPrefix(o.UserID) + o.OrderID, Val: strconv.AppendInt(nil, o.CreatedAt.UnixNano(), 10)})
		counted = append(counted, key)
	}
	if s.cb != nil {
		if _, err := s.cb.PutBatchCounted(ctx, kvs, counted, orderCountKey); err != nil {
			return fmt.Errorf("cannot write %d orders: %w", len(orders), err)
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
	n, err := records.ParseCount(cur, ok)
	if err != nil {
		return err
	}
	kvs = append(kvs, records.KV{Key: orderCountKey, Val: fmt.Appendf(nil, "%d", n+added)})
	if err := s.rec.PutBatch(ctx, kvs); err != nil {
		return fmt.Errorf("cannot write %d orders: %w", len(orders), err)
	}
	return nil
}

func (s *recordsOrderStore) Get(ctx context.Context, orderID string) (Order, bool, error) {
	if orderID == "" || len(orderID) > orderIDMax {
		return Order{}, false, nil
	}
	v, ok, err := s.rec.Get(ctx, orderKeyPrefix+orderID)
	if err != nil || !ok {
		return Order{}, false, err
	}
	var o Order
	if err := json.Unmarshal(v, &o); err != nil {
		return Order{}, false, fmt.Errorf("cannot decode order %q: %w", orderID, err)
	}
	return o, true, nil
}

func (s *recordsOrderStore) ByUser(ctx context.Context, userID string, limit int) ([]Order, error) {
	if userID == "" || len(userID) > orderIDMax {
		return nil, nil
	}
	if limit <= 0 || limit > ordersByUserMax {
		limit = ordersByUserMax
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

func (s *recordsOrderStore) Count(ctx context.Context) (int64, error) {
	v, ok, err := s.rec.Get(ctx, orderCountKey)
	if err != nil {
		return 0, fmt.Errorf("cannot read order count: %w", err)
	}
	return records.ParseCount(v, ok)
}
