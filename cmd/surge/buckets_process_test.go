package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/redistest"
)

// TestBucketsThroughServe: two `surge serve` nodes on a 3-master Redis
// Cluster; a sale of 3 stock buckets is created on A and bought through
// both nodes by a crowd larger than the stock, each buyer within the
// per-user limit; once the operator ends the sale and the holds are
// cancelled, every unit not sold is back on the listing and
// reconciliation is clean.
func TestBucketsThroughServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	var seeds []string
	for _, n := range redistest.StartCluster(t, 3) {
		seeds = append(seeds, n.Addr)
	}
	rs := strings.Join(seeds, ",")
	node := func() *proc { return startSurge(t, "--backend", "redis", "--redis", rs, "--data", t.TempDir()) }
	a, b := node(), node()
	const saleID, quantity, onHand, users, limit = "bk-sale", 90, 200, 80, 2
	mustCall(t, "PUT", a.base+"/admin/v1/catalog", testAdminToken, map[string]any{
		"stores":   []any{map[string]any{"store_id": "p1", "name": "进程测试店", "city": "上海"}},
		"products": []any{map[string]any{"sku_id": "pk1", "title": "羊绒围巾", "price": 39900, "images": []string{}}},
		"listings": []any{map[string]any{"store_id": "p1", "sku_id": "pk1", "price": 35900, "on_hand": onHand}},
	}, nil)
	now := time.Now().UTC()
	mustCall(t, "POST", a.base+"/admin/v1/flash-sales", testAdminToken, map[string]any{
		"sale_id": saleID, "store_id": "p1", "sku_id": "pk1", "price": 9900,
		"quantity": quantity, "per_user_limit": limit, "buckets": 3,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339Nano),
		"ends_at":   now.Add(time.Hour).Format(time.RFC3339Nano), "hold_seconds": 600,
	}, nil)
	for i := 0; ; i++ { // node B sees the sale within a bounded time
		if env, err := call("GET", b.base+"/api/v1/flash-sales/"+saleID, "", nil, nil); err == nil && env.Code == 0 {
			break
		}
		if i == 200 {
			t.Fatal("node B never saw the sale")
		}
		time.Sleep(50 * time.Millisecond)
	}

	type held struct{ id, tok string }
	var (
		mu    sync.Mutex
		holds []held
		got   = map[string]int{}
	)
	next := make(chan int, users)
	for i := range users {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				user := fmt.Sprintf("bu%03d", i)
				on := []*proc{a, b}[i%2]
				tok := login(t, on.base, user)
				for range limit + 1 {
					var r reservation
					env, err := call("POST", on.base+"/api/v1/flash-sales/"+saleID+"/reservations", tok, map[string]any{"quantity": 1}, &r)
					switch {
					case err != nil:
						t.Errorf("reserve: %v", err)
						return
					case env.Code == 40900 || env.Code == 40901:
						continue
					case env.Code == 42900:
						// The sale's admission gate (sale_admit_factor ×
						// remaining) sheds a crowd near the end of the
						// stock: a refusal that changes nothing.
						time.Sleep(10 * time.Millisecond)
						continue
					case env.Code != 0:
						t.Errorf("reserve: %+v", env)
						return
					}
					mu.Lock()
					got[user]++
					holds = append(holds, held{r.ReservationID, tok})
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for u, n := range got {
		if n > limit {
			t.Fatalf("user %s got %d units; limit %d", u, n, limit)
		}
	}
	s := getStats(t, a.base).Sales[saleID]
	if s.Supplied != quantity || s.Held != int64(len(holds)) || s.Held+s.Remaining != quantity {
		t.Fatalf("after the crowd: %+v with %d holds; want supplied %d", s, len(holds), quantity)
	}
	// Pay a third, cancel the rest after the end: all back but the paid.
	var paid int64
	for i, h := range holds {
		if i%3 == 0 {
			mustCall(t, "POST", b.base+"/api/v1/reservations/"+h.id+"/pay", h.tok, map[string]any{"payment_id": "p-" + h.id}, nil)
			paid++
		}
	}
	mustCall(t, "POST", a.base+"/admin/v1/flash-sales/"+saleID+"/end", testAdminToken, nil, nil)
	for i, h := range holds {
		if i%3 != 0 {
			mustCall(t, "POST", a.base+"/api/v1/reservations/"+h.id+"/cancel", h.tok, nil, nil)
		}
	}
	var st struct {
		Sales    map[string]poolStats `json:"sales"`
		Listings map[string]poolStats `json:"listings"`
	}
	for i := 0; ; i++ { // a bounded wait for the sweepers (100 ms), not a timing assertion
		mustCall(t, "GET", a.base+"/admin/v1/stats", testAdminToken, nil, &st)
		s, l := st.Sales[saleID], st.Listings["p1/pk1"]
		if s.Held == 0 && s.Remaining == 0 && s.Sold == paid && l.Remaining == onHand-paid {
			break
		}
		if i == 400 {
			t.Fatalf("after the end: sale %+v, listing %+v; want %d sold, the rest (%d) back on the listing", s, l, paid, onHand-paid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var rc struct {
		OK bool `json:"ok"`
	}
	mustCall(t, "GET", b.base+"/admin/v1/reconcile", testAdminToken, nil, &rc)
	if !rc.OK {
		t.Fatalf("reconcile not ok")
	}
}
