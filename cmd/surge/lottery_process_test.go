package main

import (
	"fmt"
	"sync"
	"testing"

	"github.com/surge-retail/surge/internal/redistest"
)

// TestLotteryTwoNodesOnOneRedis: two `surge serve --backend redis` nodes
// whose config gives sales a 10 s lottery window (sales.lottery_window);
// a sale created on one node without lottery_window_ms gets it, both nodes
// hold the reserves of the window and serve them after its close, exactly
// the quantity is won across both nodes (one unit per user), and both
// publish the same seed from the shared record.
func TestLotteryTwoNodesOnOneRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	rs := redistest.Start(t).Addr
	env := []string{"SURGE_SALES_LOTTERY_WINDOW=10s"}
	a := startSurgeAt(t, freeAddr(t), env, "--backend", "redis", "--redis", rs, "--data", t.TempDir())
	b := startSurgeAt(t, freeAddr(t), env, "--backend", "redis", "--redis", rs, "--data", t.TempDir())
	const saleID, quantity, users = "lottery-sale", 15, 40
	toks := make([]string, users)
	nodes := make([]*proc, users)
	for i := range users {
		nodes[i] = a
		if i%2 == 1 {
			nodes[i] = b
		}
		toks[i] = login(t, nodes[i].base, fmt.Sprintf("lu%02d", i))
	}
	setupSale(t, a.base, saleID, quantity, 100)
	var sale struct {
		LotteryWindowMs int64  `json:"lottery_window_ms"`
		LotterySeed     string `json:"lottery_seed"`
	}
	mustCall(t, "GET", b.base+"/api/v1/flash-sales/"+saleID, "", nil, &sale)
	if sale.LotteryWindowMs != 10_000 || sale.LotterySeed != "" {
		t.Fatalf("sale on node B in its window = %+v; want the configured 10 s window, no seed yet", sale)
	}
	codes := make([]int, users)
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env, err := call("POST", nodes[i].base+"/api/v1/flash-sales/"+saleID+"/reservations", toks[i], map[string]any{"quantity": 1}, nil)
			if err != nil {
				t.Errorf("reserve: %v", err)
				return
			}
			codes[i] = env.Code
		}()
	}
	wg.Wait()
	won := 0
	for i, c := range codes {
		switch c {
		case 0:
			won++
		case 40900:
		default:
			t.Errorf("user %d: code %d; want 0 or 40900", i, c)
		}
	}
	if won != quantity {
		t.Fatalf("won %d; want exactly %d (codes %v)", won, quantity, codes)
	}
	var seeds []string
	entered := int64(0)
	for _, n := range []*proc{a, b} {
		var s struct {
			Sales     map[string]poolStats `json:"sales"`
			Lotteries map[string]struct {
				Entered int64 `json:"entered"`
				Waiting int64 `json:"waiting"`
			} `json:"lotteries"`
		}
		mustCall(t, "GET", n.base+"/admin/v1/stats", testAdminToken, nil, &s)
		if p := s.Sales[saleID]; p.Supplied != quantity || p.Held != quantity || p.Remaining != 0 {
			t.Errorf("%s: sale %+v; want %d held", n.base, p, quantity)
		}
		l := s.Lotteries[saleID]
		entered += l.Entered
		if l.Waiting != 0 {
			t.Errorf("%s: %d still waiting", n.base, l.Waiting)
		}
		mustCall(t, "GET", n.base+"/api/v1/flash-sales/"+saleID, "", nil, &sale)
		seeds = append(seeds, sale.LotterySeed)
	}
	if entered != users {
		t.Errorf("entrants on both nodes = %d; want %d", entered, users)
	}
	if seeds[0] == "" || seeds[0] != seeds[1] {
		t.Fatalf("published seeds %q; want one seed on both nodes", seeds)
	}
}
