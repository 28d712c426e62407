package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/internal/sqltest"
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

// BenchmarkOrderWriterMySQL measures orders/s written through the
// OrderWriter (its default batch of 256 and 4 workers) into the SQL order
// store on the machine's MariaDB, next to its floor measured in the same
// run: the same rows as raw multi-row INSERTs of 256 rows, from 4
// goroutines, through the same driver, into a table of the same schema.
// of-floor is orders/s over floor-orders/s (issue 13's target: ≥ 0.7).
func BenchmarkOrderWriterMySQL(b *testing.B) {
	db := sqltest.New(b)
	ctx := context.Background()
	store, err := orders.OpenMySQL(ctx, db.URL, orders.SQLOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if _, err := db.Admin.Exec("CREATE TABLE floor_orders LIKE surge_orders"); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now().UTC()
	list := make([]Order, b.N)
	for i := range list {
		list[i] = testOrder(fmt.Sprintf("r%09d", i), fmt.Sprintf("u%d", i%1000), t0)
	}
	const batch, workers = 256, 4

	// The floor: the rows as plain multi-row INSERTs.
	floorStart := time.Now()
	next := make(chan []Order, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for chunk := range next {
				var q strings.Builder
				q.WriteString("INSERT INTO floor_orders (order_id, reservation_id, user_id, store_id, guide_id, kind, sale_id, deal_id, team_id, items, amount, payment_id, state, created_at, updated_at) VALUES ")
				args := make([]any, 0, 15*len(chunk))
				for i, o := range chunk {
					items, _ := json.Marshal(o.Items)
					if i > 0 {
						q.WriteString(",")
					}
					q.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
					args = append(args, o.OrderID, o.ReservationID, o.UserID, o.StoreID, o.GuideID, o.Kind, o.SaleID, o.DealID, o.TeamID,
						string(items), o.Amount, o.PaymentID, o.State, o.CreatedAt, t0)
				}
				if _, err := db.Admin.Exec(q.String(), args...); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for start := 0; start < len(list); start += batch {
		next <- list[start:min(start+batch, len(list))]
	}
	close(next)
	wg.Wait()
	floor := float64(b.N) / time.Since(floorStart).Seconds()

	w, err := NewOrderWriter(store, OrderWriterOptions{BatchMax: batch, Workers: workers})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for _, o := range list {
		for !w.Submit(o) {
			if err := w.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	surge := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(surge, "orders/s")
	b.ReportMetric(floor, "floor-orders/s")
	b.ReportMetric(surge/floor, "of-floor")
	if n, err := store.Count(ctx); err != nil || n != int64(b.N) {
		b.Fatalf("Count() = %d, %v; want %d", n, err, b.N)
	}
}
