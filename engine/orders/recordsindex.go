package orders

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/surge-retail/surge/engine/records"
)

// The admin indexes of the records store (List, Attribution), written in
// the same batch as the order:
//
//	orderx/a/<when><who>~                  every order
//	orderx/s/<escaped store id>/<when><who>~
//	orderx/g/<escaped guide id>/<when><who>~  (orders with a guide)
//	orderx/v/<escaped sale id>/<when><who>~   (orders of a flash sale)
//	orderx#                                 the indexes' version (set once
//	                                        orders written before them are indexed)
//
// <when> is CreatedAt in 16 hex digits, inverted, and <who> the order id's
// bytes inverted in hex, so that ascending keys are List's order (newest
// first, then order id descending: "~" after <who> puts a longer id with
// the same start first). The value is an indexEntry. A key is a function
// of the order's CreatedAt, id, store, guide and sale: writing the same
// order again writes the same keys; an order written again with other
// values leaves a stale key, deleted after the write, and skipped by
// readers (they check every key against the order) if the delete failed.
const (
	orderIndexPrefix   = "orderx/"
	orderIndexVersion  = "orderx#"
	orderIndexAll      = orderIndexPrefix + "a/"
	orderIndexStore    = orderIndexPrefix + "s/"
	orderIndexGuide    = orderIndexPrefix + "g/"
	orderIndexSale     = orderIndexPrefix + "v/"
	orderIndexKeysMax  = 4
	orderIndexWhenLen  = 16
	orderIndexBackfill = 512 // orders a backfill batch indexes
)

// indexEntry is the value of an admin index key: enough to filter on
// store, guide and sale without reading the order.
type indexEntry struct {
	V       int    `json:"v"`
	OrderID string `json:"o"`
	StoreID string `json:"s,omitempty"`
	GuideID string `json:"g,omitempty"`
	SaleID  string `json:"l,omitempty"`
}

func indexWhen(t time.Time) string {
	var b [8]byte
	u := ^(uint64(t.UnixNano()) ^ 1<<63)
	for i := 7; i >= 0; i-- {
		b[i] = byte(u)
		u >>= 8
	}
	return hex.EncodeToString(b[:])
}

func indexWhenParse(s string) (int64, bool) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 8 {
		return 0, false
	}
	u := uint64(0)
	for _, c := range b {
		u = u<<8 | uint64(c)
	}
	return int64(^u ^ 1<<63), true
}

// indexPos is the part of an index key after its prefix for a position.
func indexPos(t time.Time, orderID string) string {
	inv := make([]byte, len(orderID))
	for i := 0; i < len(orderID); i++ {
		inv[i] = ^orderID[i]
	}
	return indexWhen(t) + hex.EncodeToString(inv) + "~"
}

// indexPrefixes returns the index prefixes of an order.
func indexPrefixes(o *Order) []string {
	p := make([]string, 0, orderIndexKeysMax)
	p = append(p, orderIndexAll, orderIndexStore+url.PathEscape(o.StoreID)+"/")
	if o.GuideID != "" {
		p = append(p, orderIndexGuide+url.PathEscape(o.GuideID)+"/")
	}
	if o.SaleID != "" {
		p = append(p, orderIndexSale+url.PathEscape(o.SaleID)+"/")
	}
	return p
}

// indexKVs appends the admin index records of o.
func indexKVs(kvs []records.KV, o *Order) ([]records.KV, error) {
	val, err := json.Marshal(indexEntry{V: 1, OrderID: o.OrderID, StoreID: o.StoreID, GuideID: o.GuideID, SaleID: o.SaleID})
	if err != nil {
		return kvs, fmt.Errorf("cannot encode the index of order %q: %w", o.OrderID, err)
	}
	pos := indexPos(o.CreatedAt, o.OrderID)
	for _, p := range indexPrefixes(o) {
		kvs = append(kvs, records.KV{Key: p + pos, Val: val})
	}
	return kvs, nil
}

// staleIndexKeys returns the index keys of prev that the order next no
// longer has.
func staleIndexKeys(prev, next *Order) []string {
	if prev.CreatedAt.Equal(next.CreatedAt) && prev.StoreID == next.StoreID && prev.GuideID == next.GuideID && prev.SaleID == next.SaleID {
		return nil
	}
	keep := map[string]bool{}
	pos := indexPos(next.CreatedAt, next.OrderID)
	for _, p := range indexPrefixes(next) {
		keep[p+pos] = true
	}
	var stale []string
	pos = indexPos(prev.CreatedAt, prev.OrderID)
	for _, p := range indexPrefixes(prev) {
		if !keep[p+pos] {
			stale = append(stale, p+pos)
		}
	}
	return stale
}

// indexFor picks the index that serves f: the most selective filter set.
func indexFor(f Filter) string {
	switch {
	case f.SaleID != "":
		return orderIndexSale + url.PathEscape(f.SaleID) + "/"
	case f.GuideID != "":
		return orderIndexGuide + url.PathEscape(f.GuideID) + "/"
	case f.StoreID != "":
		return orderIndexStore + url.PathEscape(f.StoreID) + "/"
	}
	return orderIndexAll
}

var errIndexStop = errors.New("orders: index scan done")

// scanIndex calls fn, in List's order, for every order f selects after
// the Position after, checking every index key against its order (a stale
// key is skipped). fn returns false to stop.
func (s *recordsStore) scanIndex(ctx context.Context, f Filter, after Position, fn func(o *Order) bool) error {
	if err := s.ensureIndex(ctx); err != nil {
		return err
	}
	prefix := indexFor(f)
	from := prefix
	if !f.Until.IsZero() {
		// Keys of orders at Until or later sort before this one.
		from = prefix + indexWhen(f.Until) + "~"
	}
	if !after.IsZero() {
		from = max(from, prefix+indexPos(after.CreatedAt, after.OrderID))
	}
	err := records.ScanFrom(ctx, s.rec, prefix, from, func(key string, val []byte) error {
		rest := key[len(prefix):]
		if len(rest) < orderIndexWhenLen {
			return fmt.Errorf("cannot decode order index key %q", key)
		}
		ns, ok := indexWhenParse(rest[:orderIndexWhenLen])
		if !ok {
			return fmt.Errorf("cannot decode order index key %q", key)
		}
		if !f.Since.IsZero() && ns < f.Since.UnixNano() {
			return errIndexStop // every later key is older
		}
		var e indexEntry
		if err := json.Unmarshal(val, &e); err != nil {
			return fmt.Errorf("cannot decode order index %q: %w", key, err)
		}
		if (f.StoreID != "" && e.StoreID != f.StoreID) || (f.GuideID != "" && e.GuideID != f.GuideID) ||
			(f.SaleID != "" && e.SaleID != f.SaleID) {
			return nil
		}
		if !after.IsZero() && rest == indexPos(after.CreatedAt, after.OrderID) {
			return nil
		}
		o, ok, err := s.Get(ctx, e.OrderID)
		if err != nil {
			return err
		}
		// The order as written now decides: a key left by an earlier
		// write of it with other values is skipped.
		if !ok || o.CreatedAt.UnixNano() != ns || !f.match(&o) || !after.after(&o) ||
			!slices.Contains(indexPrefixes(&o), prefix) {
			return nil
		}
		if !fn(&o) {
			return errIndexStop
		}
		return nil
	})
	if err != nil && err != errIndexStop {
		return fmt.Errorf("cannot list orders: %w", err)
	}
	return nil
}

func (s *recordsStore) List(ctx context.Context, f Filter, after Position, limit int) ([]Order, Position, error) {
	if err := f.Check(); err != nil {
		return nil, Position{}, err
	}
	if limit <= 0 || limit > ListMax {
		limit = ListMax
	}
	page := make([]Order, 0, min(limit+1, 64))
	err := s.scanIndex(ctx, f, after, func(o *Order) bool {
		page = append(page, *o)
		return len(page) <= limit
	})
	if err != nil {
		return nil, Position{}, err
	}
	if len(page) <= limit {
		return page, Position{}, nil
	}
	page = page[:limit]
	last := page[limit-1]
	return page, Position{CreatedAt: last.CreatedAt, OrderID: last.OrderID}, nil
}

func (s *recordsStore) Attribution(ctx context.Context, f Filter) ([]GuideTotals, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	type group struct{ store, guide string }
	sums := map[group]*GuideTotals{}
	err := s.scanIndex(ctx, f, Position{}, func(o *Order) bool {
		g := group{o.StoreID, o.GuideID}
		t := sums[g]
		if t == nil {
			t = &GuideTotals{StoreID: o.StoreID, GuideID: o.GuideID}
			sums[g] = t
		}
		t.add(o.State, 1, o.Units(), o.Amount)
		return true
	})
	if err != nil {
		return nil, err
	}
	out := make([]GuideTotals, 0, len(sums))
	for _, t := range sums {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b GuideTotals) int {
		return cmp.Or(strings.Compare(a.StoreID, b.StoreID), strings.Compare(a.GuideID, b.GuideID))
	})
	return out, nil
}

// ensureIndex indexes the orders written before the admin indexes existed,
// once: it scans every order, writes its index keys (the same keys an
// Upsert writes, so racing one is harmless), then records the version.
func (s *recordsStore) ensureIndex(ctx context.Context) error {
	if s.indexed.Load() {
		return nil
	}
	s.indexMu.Lock()
	defer s.indexMu.Unlock()
	if s.indexed.Load() {
		return nil
	}
	if _, ok, err := s.rec.Get(ctx, orderIndexVersion); err != nil {
		return fmt.Errorf("cannot read the order index version: %w", err)
	} else if ok {
		s.indexed.Store(true)
		return nil
	}
	kvs := make([]records.KV, 0, orderIndexBackfill*orderIndexKeysMax)
	n := 0
	flush := func() error {
		if len(kvs) == 0 {
			return nil
		}
		if err := s.rec.PutBatch(ctx, kvs); err != nil {
			return fmt.Errorf("cannot index orders: %w", err)
		}
		kvs, n = kvs[:0], 0
		return nil
	}
	err := s.rec.Scan(ctx, RecordsKeyPrefix, func(key string, val []byte) error {
		var o Order
		if err := json.Unmarshal(val, &o); err != nil {
			return fmt.Errorf("cannot decode order %q: %w", key, err)
		}
		var err error
		if kvs, err = indexKVs(kvs, &o); err != nil {
			return err
		}
		if n++; n == orderIndexBackfill {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	if err := s.rec.Put(ctx, orderIndexVersion, []byte("1")); err != nil {
		return fmt.Errorf("cannot record the order index version: %w", err)
	}
	s.indexed.Store(true)
	return nil
}
