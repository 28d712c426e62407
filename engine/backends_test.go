package engine_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// durableBackends lists the durable inventory backends the engine tests
// also run on. The returned dir is where the engine keeps its records
// (Options.Dir); "" with redis, whose records go to the same server.
func durableBackends() []testBackend {
	return []testBackend{
		{"pebble", func(t testing.TB, clock *testClock) (inventory.Store, string, func() inventory.Store) {
			dir := t.TempDir()
			open := func() inventory.Store {
				st, err := inventory.OpenPebble(filepath.Join(dir, "inv"), inventory.PebbleOptions{Options: inventory.Options{Now: clock.Now}})
				if err != nil {
					t.Fatalf("OpenPebble: %v", err)
				}
				return st
			}
			return open(), filepath.Join(dir, "rec"), open
		}},
		{"redis", func(t testing.TB, clock *testClock) (inventory.Store, string, func() inventory.Store) {
			srv := redistest.Start(t)
			open := func() inventory.Store {
				st, err := redisinv.Open(context.Background(), redisinv.Options{Options: inventory.Options{Now: clock.Now}, Addr: srv.Addr})
				if err != nil {
					t.Fatalf("redisinv.Open: %v", err)
				}
				return st
			}
			return open(), "redis:" + srv.Addr, open
		}},
	}
}
