package orders_test

import (
	"context"
	"testing"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/orders/orderstest"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/internal/redistest"
)

// foreignRecords hides the records' counted batch, so that the store takes
// its generic path (records of another package).
type foreignRecords struct{ records.Records }

// TestRecordsStore runs the conformance suite on the records store over
// every records backend, and over records of another package.
func TestRecordsStore(t *testing.T) {
	orderstest.Run(t, []orderstest.Backend{
		{Name: "memory", Open: func(t *testing.T) (orders.Store, func() orders.Store) {
			return orders.NewRecordsStore(records.NewMemory()), nil
		}},
		{Name: "generic", Open: func(t *testing.T) (orders.Store, func() orders.Store) {
			return orders.NewRecordsStore(foreignRecords{records.NewMemory()}), nil
		}},
		{Name: "pebble", Open: func(t *testing.T) (orders.Store, func() orders.Store) {
			dir := t.TempDir()
			open := func() records.Records {
				rec, err := records.OpenPebble(dir, records.Options{})
				if err != nil {
					t.Fatal(err)
				}
				return rec
			}
			cur := open()
			t.Cleanup(func() { _ = cur.Close() })
			return orders.NewRecordsStore(cur), func() orders.Store {
				if err := cur.Close(); err != nil {
					t.Fatal(err)
				}
				cur = open()
				return orders.NewRecordsStore(cur)
			}
		}},
		{Name: "redis", Open: func(t *testing.T) (orders.Store, func() orders.Store) {
			srv := redistest.Start(t)
			open := func() records.Records {
				rec, err := records.OpenRedis(context.Background(), records.Options{RedisAddrs: []string{srv.Addr}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = rec.Close() })
				return rec
			}
			return orders.NewRecordsStore(open()), func() orders.Store { return orders.NewRecordsStore(open()) }
		}},
	})
}
