package inventory_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/surge-retail/surge/internal/cputime"
	"github.com/surge-retail/surge/inventory"
)

var sinkRes inventory.Reservation

// quietLogger keeps pebble's info lines out of benchmark output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)              {}
func (quietLogger) Errorf(format string, args ...any) { fmt.Printf(format+"\n", args...) }
func (quietLogger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// benchChunk bounds how many reservations one memory store accumulates in a
// benchmark; the store is replaced (timer stopped) after each chunk.
const benchChunk = 1 << 16

func benchIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = prefix + strconv.Itoa(i)
	}
	return ids
}

// chunked runs op(i) for i < b.N; before each chunk of benchChunk ops it
// calls refill with the timer stopped (first: nothing ran yet). It also
// reports thread-cpu-ns/op: the CPU time of the (locked) thread while the
// timer ran, which leaves out both the untimed refills and the time spent
// waiting for a core on a shared machine (wall time counts that).
func chunked(b *testing.B, refill func(first bool), op func(i int)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var cpu, t0 time.Duration
	for i := 0; i < b.N; i++ {
		if i%benchChunk == 0 {
			if i > 0 {
				cpu += threadCPUTime() - t0
			}
			b.StopTimer()
			refill(i == 0)
			b.StartTimer()
			t0 = threadCPUTime()
		}
		op(i)
	}
	if cpu += threadCPUTime() - t0; cpu > 0 && b.N > 0 {
		b.ReportMetric(float64(cpu)/float64(b.N), "thread-cpu-ns/op")
	}
}

// reserveAt returns the op of chunked that reserves one unit of b:p as
// ids[i%benchChunk] in *m (read at each call: chunked's refill may replace
// the store).
func reserveAt(b *testing.B, m **inventory.Memory, ids []string) func(i int) {
	ctx := context.Background()
	req := inventory.ReserveRequest{User: "u1", TTL: time.Minute, Lines: []inventory.Line{{Pool: "b:p", Quantity: 1}}}
	return func(i int) {
		req.ID = ids[i%benchChunk]
		r, err := (*m).Reserve(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		sinkRes = r
	}
}

func newBenchMemory(b *testing.B, supply int64) *inventory.Memory {
	m := inventory.NewMemory(inventory.Options{})
	if err := m.CreatePool(context.Background(), "b:p", supply); err != nil {
		b.Fatal(err)
	}
	return m
}

// cpuTime returns the CPU time the process used so far, or 0 where it
// cannot be read (benchmarks then report wall time only). Benchmarks report
// it per op next to wall time: on a shared machine wall time also counts
// time spent waiting for a core.
func cpuTime() time.Duration {
	d, _ := cputime.Process()
	return d
}

// reportCPU reports CPU time per op since start (all threads, GC included).
func reportCPU(b *testing.B, start time.Duration) {
	if c := cpuTime(); c > 0 {
		b.ReportMetric(float64(c-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkMemoryReserve measures single-line reserves on the memory
// backend: one goroutine, and all goroutines on one pool.
func BenchmarkMemoryReserve(b *testing.B) {
	ctx := context.Background()
	b.Run("uncontended", func(b *testing.B) {
		b.ReportAllocs()
		ids := benchIDs("b:r", benchChunk)
		var m *inventory.Memory
		defer reportCPU(b, cpuTime())
		chunked(b, func(bool) { m = newBenchMemory(b, inventory.UnitsMax) }, reserveAt(b, &m, ids))
	})
	// As uncontended, but the store is long-lived, as on a sale day: after
	// each chunk its reservations are released and forgotten (timer
	// stopped), so later reserves reuse slots, index and arena instead of
	// growing them.
	b.Run("uncontended-reused", func(b *testing.B) {
		b.ReportAllocs()
		ids := benchIDs("b:r", benchChunk)
		// No cpu-ns/op: CPU time would count the untimed releases too.
		m := newBenchMemory(b, inventory.UnitsMax)
		chunked(b, func(first bool) {
			if first {
				return
			}
			for _, id := range ids {
				if _, err := m.Release(ctx, id); err != nil {
					b.Fatal(err)
				}
				if err := m.Forget(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		}, reserveAt(b, &m, ids))
	})
	// Floors for the two above: only remembering each id, in a built-in
	// map, with the same ids and chunks: a fresh map per chunk (as
	// uncontended's fresh store) and a cleared one (as uncontended-reused).
	b.Run("floor-map", func(b *testing.B) {
		b.ReportAllocs()
		ids := benchIDs("b:r", benchChunk)
		var m map[string]uint32
		chunked(b, func(bool) { m = make(map[string]uint32) }, func(i int) { m[ids[i%benchChunk]] = uint32(i) })
	})
	b.Run("floor-map-reused", func(b *testing.B) {
		b.ReportAllocs()
		ids := benchIDs("b:r", benchChunk)
		m := make(map[string]uint32)
		chunked(b, func(bool) { clear(m) }, func(i int) { m[ids[i%benchChunk]] = uint32(i) })
	})
	// The floor of uncontended-reused's work rather than of its index
	// alone: what any reserve with caller-supplied ids must do, in the
	// cheapest form Go offers, with no validation, locks, idempotency
	// check or answer: remember the id (cleared map, as floor-map-reused),
	// write a one-cache-line record into the next slot (sequential, the
	// best case), take the unit from the pool's counter, count it for the
	// user (one user, as above) and queue the expiry.
	b.Run("floor-essential-reused", func(b *testing.B) {
		b.ReportAllocs()
		type rec struct {
			hash, createdMs, expiresMs, qty int64
			pool, user, state, gen          uint32
			_                               [16]byte
		}
		type expiry struct {
			ms   int64
			slot uint32
		}
		ids := benchIDs("b:r", benchChunk)
		index := make(map[string]uint32)
		recs := make([]rec, benchChunk)
		exp := make([]expiry, 0, benchChunk)
		users := map[string]*atomic.Int64{"u1": new(atomic.Int64)}
		var free atomic.Int64
		free.Store(inventory.UnitsMax)
		now := time.Now().UnixMilli()
		chunked(b, func(bool) {
			clear(index)
			exp = exp[:0]
		}, func(i int) {
			slot := uint32(i % benchChunk)
			id := ids[slot]
			if free.Add(-1) < 0 {
				b.Fatal("sold out")
			}
			users["u1"].Add(1)
			recs[slot] = rec{hash: int64(i), createdMs: now, expiresMs: now + 60_000, qty: 1, state: 1}
			n := len(index)
			index[id] = slot
			if len(index) == n {
				b.Fatal("duplicate id")
			}
			exp = append(exp, expiry{ms: now + 60_000, slot: slot})
		})
	})
	// The clock read that every reserve made until 2026-11-28 (time.Now),
	// measured in the same run; reserves now read coarseclock by default.
	b.Run("floor-clock", func(b *testing.B) {
		b.ReportAllocs()
		var sum int64
		for i := 0; i < b.N; i++ {
			sum += time.Now().UnixMilli()
		}
		sinkRes.CreatedAt = time.UnixMilli(sum)
	})
	// One uncontended lock and unlock of a mutex: a reserve takes one (its
	// shard's) and does a handful of atomic operations, so this shows
	// what the machine charges for them (BENCHMARKS.md: 102 ns on the
	// Intel Xeon machine, 5 ns on the AMD EPYC one).
	b.Run("floor-mutex", func(b *testing.B) {
		b.ReportAllocs()
		var mu sync.Mutex
		for i := 0; i < b.N; i++ {
			mu.Lock()
			mu.Unlock() // an empty section: the lock itself is measured
		}
	})
	b.Run("uncontended-soldout", func(b *testing.B) {
		b.ReportAllocs()
		m := newBenchMemory(b, 0)
		req := inventory.ReserveRequest{ID: "b:x", User: "u1", TTL: time.Minute, Lines: []inventory.Line{{Pool: "b:p", Quantity: 1}}}
		defer reportCPU(b, cpuTime())
		for i := 0; i < b.N; i++ {
			if _, err := m.Reserve(ctx, req); err != inventory.ErrSoldOut {
				b.Fatal(err)
			}
		}
	})
	// Contended: every goroutine reserves, releases and forgets on the one
	// pool, so ids can be reused and memory stays bounded; ns/op is one
	// whole cycle (three store calls).
	b.Run("contended-cycle", func(b *testing.B) {
		b.ReportAllocs()
		m := newBenchMemory(b, 1_000_000)
		var gid atomic.Int64
		defer reportCPU(b, cpuTime())
		b.RunParallel(func(pb *testing.PB) {
			g := gid.Add(1)
			ids := benchIDs(fmt.Sprintf("b:g%d-", g), 1024)
			user := fmt.Sprintf("u%d", g)
			req := inventory.ReserveRequest{User: user, TTL: time.Minute, Lines: []inventory.Line{{Pool: "b:p", Quantity: 1, Limit: 4}}}
			for i := 0; pb.Next(); i++ {
				req.ID = ids[i%len(ids)]
				if _, err := m.Reserve(ctx, req); err != nil {
					b.Fatal(err)
				}
				if _, err := m.Release(ctx, req.ID); err != nil {
					b.Fatal(err)
				}
				if err := m.Forget(ctx, req.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("uncontended-cycle", func(b *testing.B) {
		b.ReportAllocs()
		m := newBenchMemory(b, 1_000_000)
		ids := benchIDs("b:r", 1024)
		req := inventory.ReserveRequest{User: "u1", TTL: time.Minute, Lines: []inventory.Line{{Pool: "b:p", Quantity: 1, Limit: 4}}}
		defer reportCPU(b, cpuTime())
		for i := 0; i < b.N; i++ {
			req.ID = ids[i%len(ids)]
			if _, err := m.Reserve(ctx, req); err != nil {
				b.Fatal(err)
			}
			if _, err := m.Release(ctx, req.ID); err != nil {
				b.Fatal(err)
			}
			if err := m.Forget(ctx, req.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Contended sold-out: the flash sale after the last unit went.
	b.Run("contended-soldout", func(b *testing.B) {
		b.ReportAllocs()
		m := newBenchMemory(b, 0)
		defer reportCPU(b, cpuTime())
		b.RunParallel(func(pb *testing.PB) {
			req := inventory.ReserveRequest{ID: "b:x", User: "u1", TTL: time.Minute, Lines: []inventory.Line{{Pool: "b:p", Quantity: 1}}}
			for pb.Next() {
				if _, err := m.Reserve(ctx, req); err != inventory.ErrSoldOut {
					b.Fatal(err)
				}
			}
		})
	})
}

// runConcurrent calls fn(i) for i in [0, n) from conc goroutines and
// returns the elapsed time.
func runConcurrent(n, conc int, fn func(i int) error) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return 0, *e
	}
	return time.Since(start), nil
}

// BenchmarkPebbleReserve measures durable reserves (synced before the
// answer) at 1, 16 and 256 concurrent callers, next to the floor measured
// in the same run on the same disk: raw pebble batch commits with Sync of
// the same key and value size. x-floor is reserve time over floor time.
func BenchmarkPebbleReserve(b *testing.B) {
	for _, conc := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			s, err := inventory.OpenPebble(b.TempDir(), inventory.PebbleOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.CreatePool(ctx, "b:p", inventory.UnitsMax); err != nil {
				b.Fatal(err)
			}
			floorDB, err := pebble.Open(b.TempDir(), &pebble.Options{Logger: quietLogger{}})
			if err != nil {
				b.Fatal(err)
			}
			defer floorDB.Close()
			ids := benchIDs("b:r", b.N)
			req := func(i int) inventory.ReserveRequest {
				return inventory.ReserveRequest{ID: ids[i], User: "u" + ids[i][3:], TTL: time.Minute,
					Lines: []inventory.Line{{Pool: "b:p", Quantity: 1, Limit: 2}}}
			}
			// The stored record is key "r"+id and about this value size.
			value := make([]byte, 3+2*6+1+len("u")+len(ids[b.N-1])+1+1+len("b:p")+2+1)

			// Floor and reserves alternate in segments so that drift on a
			// shared machine (other load, disk state) hits both alike.
			const segments = 4
			var floor, elapsed, cpu time.Duration
			b.StopTimer()
			for k := range segments {
				lo, hi := b.N*k/segments, b.N*(k+1)/segments
				d, err := runConcurrent(hi-lo, conc, func(i int) error {
					batch := floorDB.NewBatch()
					key := append([]byte{'r'}, ids[lo+i]...)
					if err := batch.Set(key, value, nil); err != nil {
						return err
					}
					return batch.Commit(pebble.Sync)
				})
				if err != nil {
					b.Fatal(err)
				}
				floor += d
				b.StartTimer()
				cpu0 := cpuTime()
				d, err = runConcurrent(hi-lo, conc, func(i int) error {
					_, err := s.Reserve(ctx, req(lo+i))
					return err
				})
				cpu += cpuTime() - cpu0
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				elapsed += d
			}
			if cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
			floorNs := float64(floor.Nanoseconds()) / float64(b.N)
			ns := float64(elapsed.Nanoseconds()) / float64(b.N)
			b.ReportMetric(floorNs, "floor-ns/op")
			b.ReportMetric(ns/floorNs, "x-floor")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "reserves/s")
		})
	}
}
