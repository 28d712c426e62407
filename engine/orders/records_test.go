package orders_test

import (
	"testing"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/orders/orderstest"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/engine/records/recordstest"
)

// foreignRecords hides the records' counted batch, so that the store takes
// its generic path (records of another package).
type foreignRecords struct{ records.Records }

// TestRecordsStore runs the conformance suite on the records store over
// every records backend, and over records of another package.
func TestRecordsStore(t *testing.T) {
	backends := []orderstest.Backend{
		{Name: "generic", Open: func(t *testing.T) (orders.Store, func() orders.Store) {
			return orders.NewRecordsStore(foreignRecords{records.NewMemory()}), nil
		}},
	}
	for _, rb := range recordstest.Backends(false) {
		backends = append(backends, orderstest.Backend{Name: rb.Name, Open: func(t *testing.T) (orders.Store, func() orders.Store) {
			rec, reopen := rb.Open(t)
			if reopen == nil {
				return orders.NewRecordsStore(rec), nil
			}
			return orders.NewRecordsStore(rec), func() orders.Store { return orders.NewRecordsStore(reopen()) }
		}})
	}
	orderstest.Run(t, backends)
}
