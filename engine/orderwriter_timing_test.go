package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
)

// BenchmarkOrderWriterPebble measures orders/s written durably (synced
// Pebble batches) through the OrderWriter into Pebble records.
func BenchmarkOrderWriterPebble(b *testing.B) {
	for _, batch := range []int{64, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			rec, err := records.OpenPebble(b.TempDir(), records.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer rec.Close()
			store := orders.NewRecordsStore(rec)
			w, err := NewOrderWriter(store, OrderWriterOptions{BatchMax: batch})
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			orders := make([]Order, b.N)
			for i := range orders {
				orders[i] = testOrder(fmt.Sprintf("r%09d", i), fmt.Sprintf("u%d", i%1000), t0)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for _, o := range orders {
				for !w.Submit(o) {
					if err := w.Flush(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := w.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "orders/s")
			if n, err := store.Count(context.Background()); err != nil || n != int64(b.N) {
				b.Fatalf("Count() = %d, %v; want %d", n, err, b.N)
			}
		})
	}
}

// BenchmarkOrderStoreUpsertPebble is the floor: one synced batch of 256
// orders per call straight into the store, no writer.
func BenchmarkOrderStoreUpsertPebble(b *testing.B) {
	rec, err := records.OpenPebble(b.TempDir(), records.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	store := orders.NewRecordsStore(rec)
	const batch = 256
	t0 := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		orders := make([]Order, batch)
		for j := range orders {
			orders[j] = testOrder(fmt.Sprintf("r%d-%d", i, j), "u", t0)
		}
		if err := store.Upsert(context.Background(), orders); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "orders/s")
}
