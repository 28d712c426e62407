package engine_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

var benchSink engine.Page

func benchEngine(b *testing.B, be testBackend) *testEnv {
	b.Helper()
	env := openEnv(b, be, func(o *engine.Options) { o.Now = time.Now })
	if _, err := env.e.LoadDemo(env.ctx); err != nil {
		b.Fatal(err)
	}
	return env
}

// BenchmarkStorePage serves a precomputed store page: a map lookup and the
// shared bytes, no encoding.
func BenchmarkStorePage(b *testing.B) {
	env := benchEngine(b, testBackends()[0])
	p, _ := env.e.StorePage("s001", "")
	b.SetBytes(int64(len(p.Body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		benchSink, _ = env.e.StorePage("s001", "")
	}
}

// BenchmarkGuidePage serves a guide's page (store page + overlay, cached).
func BenchmarkGuidePage(b *testing.B) {
	env := benchEngine(b, testBackends()[0])
	p, _ := env.e.StorePage("s001", "g001")
	b.SetBytes(int64(len(p.Body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var sink engine.Page
		for pb.Next() {
			sink, _ = env.e.StorePage("s001", "g003")
		}
		_ = sink
	})
}

// BenchmarkFlashReservePay reserves one unit of a running sale and pays for
// it, from parallel buyers, per backend (pebble: every step synced).
func BenchmarkFlashReservePay(b *testing.B) {
	for _, be := range testBackends() {
		if be.name == "redis" {
			continue
		}
		b.Run(be.name, func(b *testing.B) {
			env := openEnv(b, be, func(o *engine.Options) { o.Now = time.Now })
			if _, err := env.e.ApplyFeed(env.ctx, []engine.FeedUpdate{{StoreID: "s1", SKUID: "k1", OnHand: 100_000_000, Seq: 1}}); err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			saleID := "bench" + strconv.FormatInt(now.UnixNano(), 36)
			if _, err := env.e.CreateFlashSale(context.Background(), engine.FlashSaleSpec{SaleID: saleID, StoreID: "s1", SKUID: "k1",
				Price: 100, Quantity: 50_000_000, StartsAt: now, EndsAt: now.Add(time.Hour), HoldSeconds: 60}); err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			// Many buyers at once, as in a sale: pebble shares fsyncs
			// among them (group commit).
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					user := "u" + strconv.FormatInt(n.Add(1), 36)
					r, err := env.e.ReserveFlash(env.ctx, attempt(user), saleID, 1, "")
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := env.e.Pay(env.ctx, user, r.ReservationID, "p"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
