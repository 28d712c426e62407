// Package recordstest opens every backend of engine/records for tests:
// the records' own conformance tests run on all of them, and so do the
// engine's and the order store's tests that keep data in records.
package recordstest

import (
	"context"
	"testing"

	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/internal/redistest"
)

// Backend opens fresh, empty records.Records of one kind; reopen (nil when the
// backend keeps nothing) closes them and opens the same data again.
type Backend struct {
	Name string
	Open func(t *testing.T) (rec records.Records, reopen func() records.Records)
}

// Backends returns every backend: memory, Pebble, Redis, and with cluster
// a 3-master Redis Cluster reached through all its nodes as seeds.
func Backends(cluster bool) []Backend {
	bs := []Backend{
		{"memory", func(t *testing.T) (records.Records, func() records.Records) {
			return records.NewMemory(), nil
		}},
		{"pebble", func(t *testing.T) (records.Records, func() records.Records) {
			dir := t.TempDir()
			rec, err := records.OpenPebble(dir, records.Options{})
			if err != nil {
				t.Fatal(err)
			}
			cur := rec
			t.Cleanup(func() { _ = cur.Close() })
			return rec, func() records.Records {
				if err := cur.Close(); err != nil {
					t.Fatal(err)
				}
				r2, err := records.OpenPebble(dir, records.Options{})
				if err != nil {
					t.Fatal(err)
				}
				cur = r2
				return r2
			}
		}},
		{"redis", func(t *testing.T) (records.Records, func() records.Records) {
			srv := redistest.Start(t)
			open := func() records.Records {
				rec, err := records.OpenRedis(context.Background(), records.Options{RedisAddrs: []string{srv.Addr}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = rec.Close() })
				return rec
			}
			rec := open()
			return rec, func() records.Records { _ = rec.Close(); rec = open(); return rec }
		}},
	}
	if cluster {
		// The records' scripts keep to one slot, and rueidis routes to it.
		bs = append(bs, Backend{"redis-cluster", func(t *testing.T) (records.Records, func() records.Records) {
			var seeds []string
			for _, n := range redistest.StartCluster(t, 3) {
				seeds = append(seeds, n.Addr)
			}
			open := func() records.Records {
				rec, err := records.OpenRedis(context.Background(), records.Options{RedisAddrs: seeds})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = rec.Close() })
				return rec
			}
			rec := open()
			return rec, func() records.Records { _ = rec.Close(); rec = open(); return rec }
		}})
	}
	return bs
}

// ForEach runs f as a subtest on every backend of bs.
func ForEach(t *testing.T, bs []Backend, f func(t *testing.T, rec records.Records, reopen func() records.Records)) {
	t.Helper()
	for _, b := range bs {
		t.Run(b.Name, func(t *testing.T) {
			rec, reopen := b.Open(t)
			f(t, rec, reopen)
		})
	}
}
