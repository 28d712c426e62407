package orders

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// unitsBackfillRows is how many rows one step of addUnits fills.
const unitsBackfillRows = 512

// addUnits is migration 2: the units column (when a process that migrated
// at the same time has not added it already), then the units of the rows
// written before it, in steps of unitsBackfillRows by order id. Every
// order has at least one unit, so units = 0 marks a row still to fill.
func (s *MySQL) addUnits(ctx context.Context) error {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'surge_orders' AND COLUMN_NAME = 'units'`).Scan(&n)
	if err != nil {
		return err
	}
	if n == 0 {
		_, err := s.db.ExecContext(ctx, `ALTER TABLE surge_orders ADD COLUMN units BIGINT NOT NULL DEFAULT 0 AFTER amount`)
		var me *mysql.MySQLError
		if err != nil && !(errors.As(err, &me) && me.Number == 1060) { // 1060: duplicate column, added meanwhile
			return err
		}
	}
	after := ""
	for {
		rows, err := s.db.QueryContext(ctx, `SELECT order_id, items FROM surge_orders
			WHERE units = 0 AND order_id > ? ORDER BY order_id LIMIT ?`, after, unitsBackfillRows)
		if err != nil {
			return err
		}
		type fill struct {
			id    string
			units int64
		}
		var fills []fill
		for rows.Next() {
			var id, items string
			if err := rows.Scan(&id, &items); err != nil {
				rows.Close()
				return err
			}
			var o Order
			if err := json.Unmarshal([]byte(items), &o.Items); err != nil {
				rows.Close()
				return fmt.Errorf("cannot decode the items of order %q: %w", id, err)
			}
			fills = append(fills, fill{id, o.Units()})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, f := range fills {
			if _, err := s.db.ExecContext(ctx, `UPDATE surge_orders SET units = ? WHERE order_id = ? AND units = 0`, f.units, f.id); err != nil {
				return err
			}
		}
		if len(fills) < unitsBackfillRows {
			return nil
		}
		after = fills[len(fills)-1].id
	}
}

// where appends f's conditions to q and their arguments to args.
func (f Filter) where(q *strings.Builder, args []any) []any {
	q.WriteString(" WHERE 1 = 1")
	if f.StoreID != "" {
		q.WriteString(" AND store_id = ?")
		args = append(args, f.StoreID)
	}
	if f.GuideID != "" {
		q.WriteString(" AND guide_id = ?")
		args = append(args, f.GuideID)
	}
	if f.SaleID != "" {
		q.WriteString(" AND sale_id = ?")
		args = append(args, f.SaleID)
	}
	if !f.Since.IsZero() {
		q.WriteString(" AND created_at >= ?")
		args = append(args, f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q.WriteString(" AND created_at < ?")
		args = append(args, f.Until.UTC())
	}
	return args
}

// List pages by keyset on (created_at, order_id), both descending, over
// the index of the filter (by_store, by_guide, by_sale, by_created: each
// ends with the primary key, order_id), never by OFFSET.
func (s *MySQL) List(ctx context.Context, f Filter, after Position, limit int) ([]Order, Position, error) {
	if err := f.Check(); err != nil {
		return nil, Position{}, err
	}
	if limit <= 0 || limit > ListMax {
		limit = ListMax
	}
	var q strings.Builder
	q.WriteString(selectOrder)
	args := f.where(&q, make([]any, 0, 9))
	if !after.IsZero() {
		q.WriteString(" AND (created_at < ? OR (created_at = ? AND order_id < ?))")
		args = append(args, after.CreatedAt.UTC(), after.CreatedAt.UTC(), after.OrderID)
	}
	q.WriteString(" ORDER BY created_at DESC, order_id DESC LIMIT ?")
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, Position{}, s.fail("list orders", err)
	}
	defer rows.Close()
	page := make([]Order, 0, min(limit+1, 64))
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, Position{}, s.fail("list orders", err)
		}
		page = append(page, o)
	}
	if err := rows.Err(); err != nil {
		return nil, Position{}, s.fail("list orders", err)
	}
	if len(page) <= limit {
		return page, Position{}, nil
	}
	page = page[:limit]
	last := page[limit-1]
	return page, Position{CreatedAt: last.CreatedAt, OrderID: last.OrderID}, nil
}

// Attribution is one GROUP BY over the filter's index (by_store and its
// created time with a store; by_created without).
func (s *MySQL) Attribution(ctx context.Context, f Filter) ([]GuideTotals, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	var q strings.Builder
	q.WriteString(`SELECT store_id, guide_id, state, COUNT(*), COALESCE(SUM(units), 0), COALESCE(SUM(amount), 0) FROM surge_orders`)
	args := f.where(&q, nil)
	q.WriteString(" GROUP BY store_id, guide_id, state")
	rows, err := s.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, s.fail("sum orders per guide", err)
	}
	defer rows.Close()
	var out []GuideTotals
	at := map[[2]string]int{} // store and guide -> index in out
	for rows.Next() {
		var store, guide, state string
		var n, units, amount int64
		if err := rows.Scan(&store, &guide, &state, &n, &units, &amount); err != nil {
			return nil, s.fail("sum orders per guide", err)
		}
		i, ok := at[[2]string{store, guide}]
		if !ok {
			i = len(out)
			at[[2]string{store, guide}] = i
			out = append(out, GuideTotals{StoreID: store, GuideID: guide})
		}
		out[i].add(state, n, units, amount)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("sum orders per guide", err)
	}
	slices.SortFunc(out, func(a, b GuideTotals) int {
		return cmp.Or(strings.Compare(a.StoreID, b.StoreID), strings.Compare(a.GuideID, b.GuideID))
	})
	return out, nil
}
