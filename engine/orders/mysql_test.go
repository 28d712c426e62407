package orders_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/orders/orderstest"
	"github.com/surge-retail/surge/internal/sqltest"
)

func openMySQL(t *testing.T, url string) *orders.MySQL {
	t.Helper()
	s, err := orders.OpenMySQL(context.Background(), url, orders.SQLOptions{RowsPerStatement: 7})
	if err != nil {
		t.Fatalf("OpenMySQL: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestMySQLStore runs the conformance suite on MariaDB (TiDB and MySQL
// speak the same protocol). Seven rows a statement, so that the suite's
// batches span several statements of one transaction.
func TestMySQLStore(t *testing.T) {
	orderstest.Run(t, []orderstest.Backend{
		{Name: "mysql", Open: func(t *testing.T) (orders.Store, func() orders.Store) {
			db := sqltest.New(t)
			return openMySQL(t, db.URL), func() orders.Store { return openMySQL(t, db.URL) }
		}},
	})
}

// TestMySQLURL: Surge's URL form is taken apart; anything else is refused
// with ErrInvalid and a message that does not show the password.
func TestMySQLURL(t *testing.T) {
	c, err := orders.ParseMySQLURL("mysql://surge:s3cr%40t@db.local:4000/shop")
	if err != nil || c.User != "surge" || c.Passwd != "s3cr@t" || c.Addr != "db.local:4000" || c.DBName != "shop" || !c.ParseTime {
		t.Fatalf("ParseMySQLURL = %+v, %v", c, err)
	}
	if c, err := orders.ParseMySQLURL("mysql://root@127.0.0.1:3306/db"); err != nil || c.Passwd != "" {
		t.Fatalf("without a password: %+v, %v", c, err)
	}
	for _, bad := range []string{
		"", "pebble", "postgres://u:hunter2@h:1/db", "mysql://h:1/db", "mysql://u:hunter2@h/db",
		"mysql://u:hunter2@h:1/", "mysql://u:hunter2@h:1/a/b", "mysql://u:hunter2@h:1/db?x=1", "mysql://u:hunter2@:1/db", "::",
	} {
		_, err := orders.ParseMySQLURL(bad)
		if !errors.Is(err, orders.ErrInvalid) {
			t.Errorf("ParseMySQLURL(%q) = %v; want ErrInvalid", bad, err)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseMySQLURL(%q): the error shows the password: %v", bad, err)
		}
	}
}

// TestMySQLRefusedWrite: while another transaction holds an order's row,
// an upsert touching it fails with ErrUnavailable within its deadline and
// writes nothing of its batch; once the row is free the same upsert writes
// everything, counted once.
func TestMySQLRefusedWrite(t *testing.T) {
	db := sqltest.New(t)
	s := openMySQL(t, db.URL)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	o := func(id string) orders.Order {
		return orders.Order{OrderID: "o-" + id, ReservationID: id, UserID: "u1", StoreID: "s1", Kind: "flash",
			Items: []orders.Item{{SKUID: "k1", Quantity: 1, UnitPrice: 5}}, Amount: 5, PaymentID: "p", State: "created", CreatedAt: t0}
	}
	if err := s.Upsert(ctx, []orders.Order{o("r1")}); err != nil {
		t.Fatal(err)
	}
	lock, err := db.Admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(ctx, "SELECT order_id FROM surge_orders WHERE order_id = 'o-r1' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err = s.Upsert(short, []orders.Order{o("r2"), o("r1"), o("r3")})
	cancel()
	if !errors.Is(err, orders.ErrUnavailable) {
		t.Fatalf("Upsert of a locked row = %v; want ErrUnavailable", err)
	}
	_ = lock.Rollback()
	if n, err := s.Count(ctx); err != nil || n != 1 {
		t.Fatalf("Count after the refused upsert = %d, %v; want 1 (nothing of it written)", n, err)
	}
	if err := s.Upsert(ctx, []orders.Order{o("r2"), o("r1"), o("r3")}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(ctx); err != nil || n != 3 {
		t.Fatalf("Count after the retry = %d, %v; want 3", n, err)
	}
}

// TestMySQLSchemaNewer: a database migrated by a newer Surge is refused
// rather than written in a shape this version does not know.
func TestMySQLSchemaNewer(t *testing.T) {
	db := sqltest.New(t)
	openMySQL(t, db.URL)
	if _, err := db.Admin.Exec("UPDATE surge_schema SET version = 99 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := orders.OpenMySQL(context.Background(), db.URL, orders.SQLOptions{}); !errors.Is(err, orders.ErrInvalid) {
		t.Fatalf("OpenMySQL of a newer schema = %v; want ErrInvalid", err)
	}
}

// TestMySQLMigrateUnits: a database at schema 1 (no units column) with
// orders in it is migrated to 2 on open, and the units of those orders
// are filled, so that Attribution counts them.
func TestMySQLMigrateUnits(t *testing.T) {
	db := sqltest.New(t)
	for _, stmt := range []string{
		orders.SchemaV1,
		`CREATE TABLE surge_schema (id TINYINT NOT NULL PRIMARY KEY, version INT NOT NULL) ENGINE=InnoDB`,
		`INSERT INTO surge_schema VALUES (1, 1)`,
		`INSERT INTO surge_orders (order_id, reservation_id, user_id, store_id, guide_id, kind, items, amount, state, created_at, updated_at) VALUES
		 ('o-1', '1', 'u', 's1', 'g1', 'flash', '[{"sku_id":"k1","quantity":2,"unit_price":5},{"sku_id":"k2","quantity":3,"unit_price":1}]', 13, 'created', NOW(6), NOW(6)),
		 ('o-2', '2', 'u', 's1', '', 'checkout', '[{"sku_id":"k1","quantity":1,"unit_price":5}]', 5, 'refunded', NOW(6), NOW(6))`,
	} {
		if _, err := db.Admin.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	s := openMySQL(t, db.URL)
	var v int
	if err := db.Admin.QueryRow("SELECT version FROM surge_schema").Scan(&v); err != nil || v != 2 {
		t.Fatalf("schema version = %d, %v; want 2", v, err)
	}
	rows, err := s.Attribution(context.Background(), orders.Filter{StoreID: "s1"})
	want := "[{StoreID:s1 GuideID: Totals:{Orders:0 Units:0 Amount:0 RefundedOrders:1 RefundedUnits:1 RefundedAmount:5}} {StoreID:s1 GuideID:g1 Totals:{Orders:1 Units:5 Amount:13 RefundedOrders:0 RefundedUnits:0 RefundedAmount:0}}]"
	if got := fmt.Sprintf("%+v", rows); err != nil || got != want {
		t.Fatalf("Attribution after the migration = %s, %v;\nwant %s", got, err, want)
	}
	openMySQL(t, db.URL) // opening again changes nothing
}
