package orders

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// scanPageMax is how many orders one page of MySQL.ScanOrders reads.
const scanPageMax = 1000

// Scanner is a Store whose orders can all be walked, for reconciliation
// (surge check). Both stores here implement it.
type Scanner interface {
	// ScanOrders calls fn for every order, in ascending order id, reading
	// in bounded pages; an error from fn stops the walk and is returned.
	ScanOrders(ctx context.Context, fn func(Order) error) error
}

var (
	_ Scanner = (*recordsStore)(nil)
	_ Scanner = (*MySQL)(nil)
)

// ScanOrders walks the order records under RecordsKeyPrefix.
func (s *recordsStore) ScanOrders(ctx context.Context, fn func(Order) error) error {
	return s.rec.Scan(ctx, RecordsKeyPrefix, func(key string, val []byte) error {
		var o Order
		if err := json.Unmarshal(val, &o); err != nil {
			return fmt.Errorf("cannot decode order %q: %w", strings.TrimPrefix(key, RecordsKeyPrefix), err)
		}
		return fn(o)
	})
}

// ScanOrders walks surge_orders by primary key, a page at a time (keyset
// pagination: each page starts after the last order id of the one before).
func (s *MySQL) ScanOrders(ctx context.Context, fn func(Order) error) error {
	after := ""
	for {
		page, err := s.scanPage(ctx, after)
		if err != nil {
			return err
		}
		for _, o := range page {
			if err := fn(o); err != nil {
				return err
			}
		}
		if len(page) < scanPageMax {
			return nil
		}
		after = page[len(page)-1].OrderID
	}
}

func (s *MySQL) scanPage(ctx context.Context, after string) ([]Order, error) {
	rows, err := s.db.QueryContext(ctx, selectOrder+` WHERE order_id > ? ORDER BY order_id LIMIT ?`, after, scanPageMax)
	if err != nil {
		return nil, s.fail("scan orders", err)
	}
	defer rows.Close()
	page := make([]Order, 0, scanPageMax)
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, s.fail("scan orders", err)
		}
		page = append(page, o)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("scan orders", err)
	}
	return page, nil
}
