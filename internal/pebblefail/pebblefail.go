// Package pebblefail is Surge's one policy for Pebble's fatal errors, used
// by every Pebble database Surge opens (the inventory store, the engine's
// records): a fatal error (a WAL that cannot be written or synced) fails
// the commit that met it with an error, never a process exit and never an
// acknowledgement, and every later commit of that database fails fast,
// because Pebble cannot promise durability after it. Errors are logged
// through slog; Pebble's informational lines are dropped.
package pebblefail

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// ErrFailed marks an error of a database that met a fatal error earlier.
var ErrFailed = errors.New("pebble: failed earlier")

// fatal carries a fatal error from Logger.Fatalf to Guard.Do as a panic.
type fatal struct{ msg string }

// Logger is a pebble.Logger: Infof is dropped, Errorf is logged at error
// level with the database's name, Fatalf panics for Guard.Do to recover.
type Logger struct {
	// Name names the database in log lines ("inventory", "records").
	Name string
	// Log is where errors go. Default slog.Default().
	Log *slog.Logger
}

func (l Logger) log() *slog.Logger {
	if l.Log != nil {
		return l.Log
	}
	return slog.Default()
}

// Infof drops Pebble's informational lines.
func (Logger) Infof(string, ...any) {}

// Errorf logs an error of Pebble's.
func (l Logger) Errorf(format string, args ...any) {
	l.log().Error("pebble: "+fmt.Sprintf(format, args...), "db", l.Name)
}

// Fatalf panics with the error; Guard.Do turns the panic into an error.
func (l Logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log().Error("pebble: fatal: "+msg, "db", l.Name)
	panic(fatal{msg: msg})
}

// Guard remembers the first fatal error of one database.
type Guard struct {
	failed atomic.Pointer[error]
}

// Err returns the fatal error met earlier (wrapping ErrFailed), or nil.
func (g *Guard) Err() error {
	if e := g.failed.Load(); e != nil {
		return fmt.Errorf("%w: %w", ErrFailed, *e)
	}
	return nil
}

// Fail remembers err as the database's failure (for callers whose policy
// is that any failed commit stops writes); the first failure is kept.
func (g *Guard) Fail(err error) {
	if err != nil {
		g.failed.CompareAndSwap(nil, &err)
	}
}

// Do runs commit unless the database failed earlier. A fatal error raised
// inside commit (Logger.Fatalf) is returned as an error and remembered;
// any other panic goes on.
func (g *Guard) Do(commit func() error) (err error) {
	if err := g.Err(); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			err = errors.New(f.msg)
			g.failed.CompareAndSwap(nil, &err)
		}
	}()
	return commit()
}
