package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/internal/sqltest"
)

// startOrders starts `surge orders` with args and waits for its start line.
func startOrders(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(surgeBinary(t), append([]string{"orders", "--log-level", "warn"}, args...)...)
	cmd.Env = os.Environ()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, "surge orders: writing") {
		t.Fatalf("surge orders did not start: %q, %v", line, err)
	}
	go func() { _, _ = bufio.NewReader(stdout).WriteTo(devNull{}) }()
	return cmd
}

type devNull struct{}

func (devNull) Write(b []byte) (int, error) { return len(b), nil }

// TestManyNodesOrdersThroughTheOutbox is the many-node crash test: two
// `surge serve --order-writer=false` nodes on one Redis, then on a
// 3-master Redis Cluster, and two `surge orders` writers into MariaDB; reservations on node A, payments on node B;
// node B and one writer are killed with SIGKILL mid-crowd, the rest pay on
// A. With nothing restarted, every paid reservation becomes exactly one
// row in MariaDB within a bounded time (rows == units sold, no duplicate),
// and supplied == held + sold + remaining.
func TestManyNodesOrdersThroughTheOutbox(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t.Run("redis", func(t *testing.T) { manyNodesThroughTheOutbox(t, redistest.Start(t).Addr) })
	t.Run("redis-cluster", func(t *testing.T) {
		// Three masters, every node given as a seed.
		var seeds []string
		for _, n := range redistest.StartCluster(t, 3) {
			seeds = append(seeds, n.Addr)
		}
		manyNodesThroughTheOutbox(t, strings.Join(seeds, ","))
	})
}

func manyNodesThroughTheOutbox(t *testing.T, rs string) {
	db := sqltest.New(t)
	node := func() *proc {
		return startSurge(t, "--backend", "redis", "--redis", rs, "--data", t.TempDir(), "--orders", db.URL, "--order-writer=false")
	}
	a, b := node(), node()
	w1 := startOrders(t, "--redis", rs, "--orders", db.URL, "--claim-idle", "500ms")
	startOrders(t, "--redis", rs, "--orders", db.URL, "--claim-idle", "500ms")
	const saleID, quantity, users = "outbox-sale", 300, 240
	setupSale(t, a.base, saleID, quantity, 400)
	for i := 0; ; i++ { // node B sees the sale within a bounded time
		if env, err := call("GET", b.base+"/api/v1/flash-sales/"+saleID, "", nil, nil); err == nil && env.Code == 0 {
			break
		}
		if i == 200 {
			t.Fatal("node B never saw the sale")
		}
		time.Sleep(50 * time.Millisecond)
	}

	var mu sync.Mutex
	var paid []string
	var killOnce sync.Once
	bDead := make(chan struct{})
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
				user := fmt.Sprintf("ou%03d", i)
				tok := login(t, a.base, user) // sessions work on every node
				var r reservation
				if env, err := call("POST", a.base+"/api/v1/flash-sales/"+saleID+"/reservations", tok, map[string]any{"quantity": 1}, &r); err != nil || env.Code != 0 {
					t.Errorf("reserve on A: %v %+v", err, env)
					return
				}
				payOn := b
				select {
				case <-bDead:
					payOn = a
				default:
				}
				var pr reservation
				env, err := call("POST", payOn.base+"/api/v1/reservations/"+r.ReservationID+"/pay", tok, map[string]any{"payment_id": "pay-" + user}, &pr)
				if err != nil || env.Code != 0 || pr.State != "paid" {
					if payOn == b {
						continue // B died under it: not acknowledged, no promise made
					}
					t.Errorf("pay on A: %v %+v", err, env)
					return
				}
				mu.Lock()
				paid = append(paid, r.ReservationID)
				n := len(paid)
				mu.Unlock()
				if n == 80 {
					killOnce.Do(func() { b.kill(); _ = w1.Process.Kill(); close(bDead) })
				}
			}
		}()
	}
	wg.Wait()
	if len(paid) < 100 {
		t.Fatalf("only %d payments acknowledged; the test needs more", len(paid))
	}

	// A bounded wait for the surviving writer, not a timing assertion.
	var s stats
	var rows, distinct int64
	for i := 0; ; i++ {
		s = getStats(t, a.base)
		if err := db.Admin.QueryRow("SELECT COUNT(*), COUNT(DISTINCT order_id) FROM surge_orders").Scan(&rows, &distinct); err != nil {
			t.Fatal(err)
		}
		// orders.written is the store's count, or the last one known when
		// the count does not answer within its timeout (a loaded machine):
		// wait for it too.
		if s.Orders.Lag == 0 && rows == s.Sales[saleID].Sold && s.Orders.Written == rows {
			break
		}
		if i == 600 {
			t.Fatalf("after 30s: %d rows for %d sold, lag %d, orders.written %d", rows, s.Sales[saleID].Sold, s.Orders.Lag, s.Orders.Written)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sale := s.Sales[saleID]
	if rows != distinct || rows != sale.Sold || sale.Sold < int64(len(paid)) {
		t.Fatalf("%d rows (%d distinct) for %d sold and %d acknowledged payments", rows, distinct, sale.Sold, len(paid))
	}
	for _, resID := range paid {
		var n int
		if err := db.Admin.QueryRow("SELECT COUNT(*) FROM surge_orders WHERE reservation_id = ?", resID).Scan(&n); err != nil || n != 1 {
			t.Errorf("acknowledged payment %s has %d rows, %v; want 1", resID, n, err)
		}
	}
	if s.Orders.Written != rows {
		t.Errorf("stats orders.written = %d; want the %d rows", s.Orders.Written, rows)
	}
	t.Logf("%d payments acknowledged (B and one writer killed after 80); sale %+v; %d rows", len(paid), sale, rows)
}
