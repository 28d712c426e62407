package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/cputime"
	"github.com/surge-retail/surge/inventory"
)

// riskBenchConfigs are the hook with its signals off and on (surge bench's
// servers: the linkage counts of `surge serve`'s defaults, page tokens, a
// minimum account age).
var riskBenchConfigs = []struct {
	name string
	cfg  RiskConfig
}{
	{"off", RiskConfig{PageTokenOff: true}},
	{"on", RiskConfig{AccountsPerDevice: 5, DevicesPerIP: 30, PageTokenUses: 1 << 30, MinAccountAge: time.Millisecond}},
}

// BenchmarkRiskCheck is the built-in hook's cost per attempt with the
// signals off and on (the loopback crowd of surge bench: 256 users, each
// on its device, one address, each with its page token).
func BenchmarkRiskCheck(b *testing.B) {
	for _, tc := range riskBenchConfigs {
		b.Run(tc.name, func(b *testing.B) {
			hook, err := NewRiskHook(tc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			ins := make([]RiskInput, 256)
			for i := range ins {
				ins[i] = pageIn(fmt.Sprintf("user%03d", i), "127.0.0.1", fmt.Sprintf("device%03d", i), "s1", time.Now().Add(-time.Second), byte(i))
				ins[i].AccountFirstSeenMs = time.Now().Add(-time.Hour).UnixMilli()
			}
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if !hook.Check(ctx, ins[i%len(ins)]).Allow {
					b.Fatal("denied")
				}
				i++
			}
		})
	}
}

// BenchmarkRiskCheckParallel is the engine's risk check (the built-in
// hook and the account's first-session lookup) from many goroutines at
// once, every attempt from one address as in surge bench: 256 users, each
// on its device with its page token. The shared address's link set and
// the caches' hot entries are where attempts meet.
func BenchmarkRiskCheckParallel(b *testing.B) {
	for _, tc := range riskBenchConfigs {
		b.Run(tc.name, func(b *testing.B) {
			hook, err := NewRiskHook(tc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			store := inventory.NewMemory(inventory.Options{})
			defer store.Close()
			eng, err := Open(context.Background(), Options{Store: store, Risk: hook, SweepInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			ctx := context.Background()
			ins := make([]RiskInput, 256)
			for i := range ins {
				ins[i] = pageIn(fmt.Sprintf("user%03d", i), "127.0.0.1", fmt.Sprintf("device%03d", i), "s1", time.Now().Add(-time.Second), byte(i))
				if _, err := eng.AccountSeen(ctx, ins[i].UserID); err != nil {
					b.Fatal(err)
				}
			}
			time.Sleep(50 * time.Millisecond) // older than the minimum account age (coarse clocks)
			var next atomic.Int64
			b.ReportAllocs()
			cpu0, cpuOK := cputime.Process()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) * 37
				for pb.Next() {
					if err := eng.checkRisk(ctx, ins[i%len(ins)]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			// The machine is shared: the process's CPU time per attempt
			// moves less with the others' load than the wall time does.
			// Where it cannot be read, wall time is all there is.
			if cpu1, ok := cputime.Process(); cpuOK && ok {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}
