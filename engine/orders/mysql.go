package orders

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ErrUnavailable is returned when the order store cannot be asked (the
// database is down, refuses the write, or the call's deadline passed):
// nothing of the call may be taken as written, and a retry is safe
// (upserts are idempotent).
var ErrUnavailable = errors.New("orders: unavailable")

// SQLOptions configures OpenMySQL. The zero value of each field means its
// default.
type SQLOptions struct {
	// ConnsMax bounds the open connections to the database. Default 16.
	ConnsMax int
	// DialTimeout bounds connecting. Default 5s.
	DialTimeout time.Duration
	// IOTimeout bounds one read or write on a connection. Default 30s.
	IOTimeout time.Duration
	// RowsPerStatement is how many orders one INSERT carries. Default 256
	// (16 placeholders a row, far under the protocol's 65,535).
	RowsPerStatement int
}

// WithDefaults returns o with zero fields set to their defaults.
func (o SQLOptions) WithDefaults() SQLOptions {
	if o.ConnsMax <= 0 {
		o.ConnsMax = 16
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = 30 * time.Second
	}
	if o.RowsPerStatement <= 0 {
		o.RowsPerStatement = 256
	}
	return o
}

// MySQL is a Store in a MySQL-protocol database: MySQL, MariaDB or TiDB.
// Orders are rows of surge_orders keyed by order id, written by idempotent
// multi-row upserts; indexes serve the admin queries (store, guide, sale,
// created time) and a user's orders. OpenMySQL creates and migrates the
// schema.
type MySQL struct {
	db   *sql.DB
	opts SQLOptions
	name string // host:port/db, for errors (never the password)
}

var _ Store = (*MySQL)(nil)

// ParseMySQLURL turns "mysql://USER:PASS@HOST:PORT/DB" (or
// "mysql://USER@HOST:PORT/DB" without a password) into the driver's
// configuration. Anything else is ErrInvalid, with a message that never
// shows the password.
func ParseMySQLURL(raw string) (*mysql.Config, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: orders URL: %s (want mysql://USER:PASS@HOST:PORT/DB)", ErrInvalid, why)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, bad("does not parse")
	}
	if u.Scheme != "mysql" {
		return nil, bad(fmt.Sprintf("scheme %q", u.Scheme))
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, bad("no user")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return nil, bad(fmt.Sprintf("host %q is not HOST:PORT", u.Host))
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, bad("want exactly one database name and nothing after it")
	}
	c := mysql.NewConfig()
	c.User = u.User.Username()
	c.Passwd, _ = u.User.Password()
	c.Net = "tcp"
	c.Addr = u.Host
	c.DBName = db
	c.ParseTime = true
	c.Loc = time.UTC
	return c, nil
}

// OpenMySQL opens the order store at url (see ParseMySQLURL), creating its
// tables or migrating them to this version's schema. Several processes may
// open the same database at once.
func OpenMySQL(ctx context.Context, rawURL string, o SQLOptions) (*MySQL, error) {
	o = o.WithDefaults()
	c, err := ParseMySQLURL(rawURL)
	if err != nil {
		return nil, err
	}
	c.Timeout, c.ReadTimeout, c.WriteTimeout = o.DialTimeout, o.IOTimeout, o.IOTimeout
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("%w: orders URL: %w", ErrInvalid, err)
	}
	s := &MySQL{db: sql.OpenDB(conn), opts: o, name: c.Addr + "/" + c.DBName}
	s.db.SetMaxOpenConns(o.ConnsMax)
	s.db.SetMaxIdleConns(o.ConnsMax)
	s.db.SetConnMaxIdleTime(time.Minute)
	if err := s.migrate(ctx); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	return s, nil
}

// schemaVersion is the schema this version writes; migrations[v-1] takes
// a database from version v-1 to v.
//
//	1  surge_orders, keyed by order id, with its indexes
//	2  units: the sum of an order's item quantities, for Attribution
//	   (addUnits: the column, then the units of the rows already there)
const schemaVersion = 2

// migration is one step of the schema: statements, then run.
type migration struct {
	stmts []string
	run   func(s *MySQL, ctx context.Context) error
}

var migrations = [schemaVersion]migration{
	{stmts: []string{`CREATE TABLE IF NOT EXISTS surge_orders (
		order_id       VARCHAR(256) NOT NULL,
		reservation_id VARCHAR(256) NOT NULL,
		user_id        VARCHAR(256) NOT NULL,
		store_id       VARCHAR(64)  NOT NULL,
		guide_id       VARCHAR(64)  NOT NULL DEFAULT '',
		kind           VARCHAR(16)  NOT NULL,
		sale_id        VARCHAR(64)  NOT NULL DEFAULT '',
		deal_id        VARCHAR(64)  NOT NULL DEFAULT '',
		team_id        VARCHAR(64)  NOT NULL DEFAULT '',
		items          MEDIUMTEXT   NOT NULL,
		amount         BIGINT       NOT NULL,
		payment_id     VARCHAR(256) NOT NULL DEFAULT '',
		state          VARCHAR(32)  NOT NULL,
		created_at     DATETIME(6)  NOT NULL,
		updated_at     DATETIME(6)  NOT NULL,
		PRIMARY KEY (order_id),
		KEY by_user (user_id, created_at, order_id),
		KEY by_store (store_id, created_at),
		KEY by_guide (guide_id, created_at),
		KEY by_sale (sale_id, created_at),
		KEY by_created (created_at)
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`}},
	{run: (*MySQL).addUnits},
}

func (s *MySQL) fail(what string, err error) error {
	return fmt.Errorf("%w: cannot %s in %s: %w", ErrUnavailable, what, s.name, err)
}

// migrate brings the schema to schemaVersion: each step is idempotent, and
// the version row only moves forward, so processes opening the database at
// once agree.
func (s *MySQL) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS surge_schema (
		id TINYINT NOT NULL PRIMARY KEY, version INT NOT NULL) ENGINE=InnoDB`); err != nil {
		return s.fail("create the schema table", err)
	}
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT version FROM surge_schema WHERE id = 1`).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return s.fail("read the schema version", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("%w: the order tables in %s are at schema version %d, newer than this Surge's %d", ErrInvalid, s.name, v, schemaVersion)
	}
	for ; v < schemaVersion; v++ {
		for _, stmt := range migrations[v].stmts {
			if _, err := s.db.ExecContext(ctx, stmt); err != nil {
				return s.fail(fmt.Sprintf("migrate the order tables to version %d", v+1), err)
			}
		}
		if run := migrations[v].run; run != nil {
			if err := run(s, ctx); err != nil {
				return s.fail(fmt.Sprintf("migrate the order tables to version %d", v+1), err)
			}
		}
		if _, err := s.db.ExecContext(ctx, `INSERT INTO surge_schema (id, version) VALUES (1, ?)
			ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))`, v+1); err != nil {
			return s.fail("record the schema version", err)
		}
	}
	return nil
}

const orderColumns = `order_id, reservation_id, user_id, store_id, guide_id, kind, sale_id, deal_id, team_id,
	items, amount, units, payment_id, state, created_at, updated_at`

// Upsert writes orders in one transaction, in multi-row upserts keyed by
// the order id: writing an order again replaces it and does not count it
// twice; its state only moves forward (StateRank, in the statement itself:
// FIELD ranks created and unknown states 0). Every order is checked first; one bad order
// refuses the whole call (ErrInvalid) and writes nothing.
func (s *MySQL) Upsert(ctx context.Context, list []Order) error {
	for i := range list {
		if err := Check(&list[i]); err != nil {
			return err
		}
	}
	if len(list) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("begin a transaction", err)
	}
	defer func() { _ = tx.Rollback() }()
	now := time.Now().UTC()
	for start := 0; start < len(list); start += s.opts.RowsPerStatement {
		chunk := list[start:min(start+s.opts.RowsPerStatement, len(list))]
		var q strings.Builder
		q.WriteString("INSERT INTO surge_orders (" + orderColumns + ") VALUES ")
		args := make([]any, 0, 16*len(chunk))
		for i := range chunk {
			o := &chunk[i]
			items, err := json.Marshal(o.Items)
			if err != nil {
				return fmt.Errorf("%w: order %q: items: %w", ErrInvalid, o.OrderID, err)
			}
			if i > 0 {
				q.WriteString(",")
			}
			q.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
			args = append(args, o.OrderID, o.ReservationID, o.UserID, o.StoreID, o.GuideID, o.Kind, o.SaleID, o.DealID, o.TeamID,
				string(items), o.Amount, o.Units(), o.PaymentID, o.State, o.CreatedAt.UTC(), now)
		}
		q.WriteString(` ON DUPLICATE KEY UPDATE reservation_id = VALUES(reservation_id), user_id = VALUES(user_id),
			store_id = VALUES(store_id), guide_id = VALUES(guide_id), kind = VALUES(kind), sale_id = VALUES(sale_id),
			deal_id = VALUES(deal_id), team_id = VALUES(team_id), items = VALUES(items), amount = VALUES(amount),
			units = VALUES(units), payment_id = VALUES(payment_id),
			state = IF(FIELD(VALUES(state), 'refund_pending', 'refunded') >= FIELD(state, 'refund_pending', 'refunded'), VALUES(state), state),
			created_at = VALUES(created_at),
			updated_at = VALUES(updated_at)`)
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return s.fail(fmt.Sprintf("write %d orders", len(chunk)), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.fail(fmt.Sprintf("commit %d orders", len(list)), err)
	}
	return nil
}

func scanOrder(row interface{ Scan(...any) error }) (Order, error) {
	var o Order
	var items string
	err := row.Scan(&o.OrderID, &o.ReservationID, &o.UserID, &o.StoreID, &o.GuideID, &o.Kind, &o.SaleID, &o.DealID, &o.TeamID,
		&items, &o.Amount, &o.PaymentID, &o.State, &o.CreatedAt)
	if err != nil {
		return o, err
	}
	o.CreatedAt = o.CreatedAt.UTC()
	if err := json.Unmarshal([]byte(items), &o.Items); err != nil {
		return o, fmt.Errorf("cannot decode the items of order %q: %w", o.OrderID, err)
	}
	return o, nil
}

const selectOrder = `SELECT order_id, reservation_id, user_id, store_id, guide_id, kind, sale_id, deal_id, team_id,
	items, amount, payment_id, state, created_at FROM surge_orders`

// Get returns one order; ok is false when there is none.
func (s *MySQL) Get(ctx context.Context, orderID string) (Order, bool, error) {
	if orderID == "" || len(orderID) > IDLenMax {
		return Order{}, false, nil
	}
	o, err := scanOrder(s.db.QueryRowContext(ctx, selectOrder+` WHERE order_id = ?`, orderID))
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, false, nil
	}
	if err != nil {
		return Order{}, false, s.fail("read order "+orderID, err)
	}
	return o, true, nil
}

// ByUser returns a user's orders, newest first (created time, then order
// id), at most limit (1..ByUserMax; other values mean ByUserMax).
func (s *MySQL) ByUser(ctx context.Context, userID string, limit int) ([]Order, error) {
	if limit <= 0 || limit > ByUserMax {
		limit = ByUserMax
	}
	rows, err := s.db.QueryContext(ctx, selectOrder+` WHERE user_id = ? ORDER BY created_at DESC, order_id DESC LIMIT ?`, userID, limit)
	if err != nil {
		return nil, s.fail("read the orders of a user", err)
	}
	defer rows.Close()
	out := make([]Order, 0, limit)
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, s.fail("read the orders of a user", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("read the orders of a user", err)
	}
	return out, nil
}

// Count returns the number of orders in the store, all time.
func (s *MySQL) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM surge_orders`).Scan(&n); err != nil {
		return 0, s.fail("count orders", err)
	}
	return n, nil
}

// Close closes the connections.
func (s *MySQL) Close() error { return s.db.Close() }
