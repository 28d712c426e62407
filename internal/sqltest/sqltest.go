// Package sqltest gives a test a throwaway database on the machine's
// MySQL-protocol server (MariaDB on 127.0.0.1:3306, user root, no password;
// SURGE_SQL_ADDR and SURGE_SQL_USER override), created as
// surge_test_<random> and dropped when the test ends. When nothing answers
// the test is skipped loudly, or fails when SURGE_REQUIRE_SQL=1 (as .ci/run
// sets), so that CI never passes without the SQL tests.
package sqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DB is a throwaway database.
type DB struct {
	// URL is the database in Surge's form, mysql://USER@HOST:PORT/NAME.
	URL string
	// Name is the database's name.
	Name string
	// Admin is a connection to the server with the database selected, for
	// tests that need to look or lock behind the store's back.
	Admin *sql.DB
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// New creates a throwaway database.
func New(tb testing.TB) *DB {
	tb.Helper()
	addr, user := env("SURGE_SQL_ADDR", "127.0.0.1:3306"), env("SURGE_SQL_USER", "root")
	c := mysql.NewConfig()
	c.User, c.Net, c.Addr, c.Timeout = user, "tcp", addr, 3*time.Second
	server, err := sql.Open("mysql", c.FormatDSN())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = server.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if server != nil {
			_ = server.Close()
		}
		msg := fmt.Sprintf("sqltest: no MySQL-protocol server answers at %s as %s (%v); SQL tests are NOT running (start MariaDB, or run .ci/run)", addr, user, err)
		if os.Getenv("SURGE_REQUIRE_SQL") == "1" {
			tb.Fatal(msg + " and SURGE_REQUIRE_SQL=1")
		}
		fmt.Fprintln(os.Stderr, "WARNING:", msg)
		tb.Skip(msg)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "surge_test_" + hex.EncodeToString(b[:])
	if _, err := server.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4"); err != nil {
		_ = server.Close()
		tb.Fatalf("sqltest: cannot create %s: %v", name, err)
	}
	c.DBName = name
	admin, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = admin.Close()
		if _, err := server.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			tb.Errorf("sqltest: cannot drop %s: %v", name, err)
		}
		_ = server.Close()
	})
	return &DB{URL: "mysql://" + user + "@" + addr + "/" + name, Name: name, Admin: admin}
}
