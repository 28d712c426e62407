package engine

import (
	"context"
	"testing"

	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/internal/redistest"
)

// recordsBackend opens fresh, empty records.Records of one kind; reopen (when not nil)
// closes and reopens the same data.
type recordsBackend struct {
	name string
	open func(t *testing.T) (rec records.Records, reopen func() records.Records)
}

func recordsBackends() []recordsBackend {
	return []recordsBackend{
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
}

// forEachRecords runs f as a subtest on every backend.
func forEachRecords(t *testing.T, f func(t *testing.T, rec records.Records, reopen func() records.Records)) {
	t.Helper()
	for _, b := range recordsBackends() {
		t.Run(b.name, func(t *testing.T) {
			rec, reopen := b.open(t)
			f(t, rec, reopen)
		})
	}
}

// scanKeys returns the keys under prefix, in order.
func scanKeys(t *testing.T, rec records.Records, prefix string) []string {
	t.Helper()
	var keys []string
	err := rec.Scan(context.Background(), prefix, func(k string, v []byte) error {
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%q): %v", prefix, err)
	}
	return keys
}
