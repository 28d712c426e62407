package engine

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkRiskCheck is the built-in hook's cost per attempt with the
// signals off and on (the loopback crowd of surge bench: 256 users, each
// on its device, one address, each with its page token).
func BenchmarkRiskCheck(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  RiskConfig
	}{
		{"off", RiskConfig{PageTokenOff: true}},
		{"on", RiskConfig{AccountsPerDevice: 5, DevicesPerIP: 30, PageTokenUses: 1 << 30, MinAccountAge: time.Millisecond}},
	} {
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
