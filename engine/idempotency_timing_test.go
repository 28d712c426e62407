package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/surge-retail/surge/engine/records"
)

// BenchmarkIdempotencyDo measures first calls (fn runs, the answer is
// stored durably) and replays (the answer comes back from the cache) over
// Pebble records.
func BenchmarkIdempotencyDo(b *testing.B) {
	rec, err := records.OpenPebble(b.TempDir(), records.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	// One user makes every key here: the per-user bound on new keys is
	// not what is measured.
	i := NewIdempotency(rec, IdempotencyOptions{NewKeysPerSecond: -1})
	body := []byte(`{"code":0,"msg":"ok","data":{"reservation_id":"r-0123456789","quantity":1}}`)
	fn := func() (int, []byte) { return 200, body }
	digest := testDigest("req")
	b.Run("first", func(b *testing.B) {
		var n atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(32) // many requests in flight share fsyncs
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				key := fmt.Sprint("k", n.Add(1))
				if _, _, err := i.Do(context.Background(), "u", key, digest, fn); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("replay", func(b *testing.B) {
		if _, _, err := i.Do(context.Background(), "u", "same", digest, fn); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := i.Do(context.Background(), "u", "same", digest, fn); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
