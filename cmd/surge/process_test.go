package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/internal/sqltest"
)

// These tests run the built `surge` binary as a user would: real processes,
// real HTTP over loopback, real Pebble on disk and a real redis-server.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func surgeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "surge-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "surge")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, ".")
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type proc struct {
	base string
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

const (
	testAdminToken    = "test-admin-token-0123456789"
	testSessionSecret = "test-session-secret-0123456789abcdef"
)

// startSurge starts `surge serve` with args and waits until /readyz answers.
func startSurge(t *testing.T, args ...string) *proc {
	t.Helper()
	return startSurgeAt(t, freeAddr(t), nil, args...)
}

// startSurgeAt is startSurge on addr, with env added to the environment.
func startSurgeAt(t *testing.T, addr string, env []string, args ...string) *proc {
	t.Helper()
	return launchSurge(t, addr, true, env, args...)
}

// launchSurge starts `surge serve` on addr with env added to the
// environment and waits until /readyz answers. riskOff turns off the risk
// settings that a crowd from one address, reserving as API clients, would
// meet; without it the risk hook keeps its defaults.
func launchSurge(t *testing.T, addr string, riskOff bool, env []string, args ...string) *proc {
	t.Helper()
	return launchSurgeVia(t, nil, addr, riskOff, env, args...)
}

// launchSurgeVia is launchSurge with the binary started by a wrapper
// command (taskset, env), when wrapper is not empty.
func launchSurgeVia(t *testing.T, wrapper []string, addr string, riskOff bool, env []string, args ...string) *proc {
	t.Helper()
	argv := append([]string{surgeBinary(t), "serve", "--addr", addr, "--log-level", "warn"}, args...)
	argv = append(slices.Clip(wrapper), argv...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env,
		"SURGE_ADMIN_TOKEN="+testAdminToken,
		"SURGE_SESSION_SECRET="+testSessionSecret,
		"SURGE_FEED_SECRET=test-feed-secret-0123456789",
		"SURGE_SWEEP_INTERVAL=100ms",
	)
	if riskOff {
		cmd.Env = append(cmd.Env,
			// Every buyer of these tests comes from 127.0.0.1: the per-IP
			// bucket would refuse most of them, which is not under test here.
			"SURGE_RISK_IP_RATE=0",
			"SURGE_RISK_DEVICES_PER_IP=0",
			// They reserve as API clients, without a page view: a flash
			// reserve without a page token is denied by default.
			"SURGE_RISK_PAGE_TOKEN_OFF=true",
		)
	}
	logs := &bytes.Buffer{}
	cmd.Stdout = &syncWriter{w: logs}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{base: "http://" + addr, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("surge serve exited early:\n%s", p.output())
		default:
		}
		resp, err := http.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("surge serve did not become ready:\n%s", p.output())
	return nil
}

func (p *proc) output() string {
	if w, ok := p.cmd.Stdout.(*syncWriter); ok {
		w.mu.Lock()
		defer w.mu.Unlock()
	}
	return p.logs.String()
}

func (p *proc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill() // SIGKILL: no clean shutdown at all
	}
	<-p.done
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

type envelope struct {
	Code int             `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

var httpClient = &http.Client{Timeout: 20 * time.Second}

func call(method, url, token string, body any, out any) (envelope, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return envelope{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return envelope{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return envelope{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return envelope{}, err
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return envelope{}, fmt.Errorf("%s %s: HTTP %d, not an envelope: %q", method, url, resp.StatusCode, raw)
	}
	if out != nil && env.Code == 0 {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return env, err
		}
	}
	return env, nil
}

func mustCall(t *testing.T, method, url, token string, body any, out any) {
	t.Helper()
	env, err := call(method, url, token, body, out)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if env.Code != 0 {
		t.Fatalf("%s %s: code %d %s", method, url, env.Code, env.Msg)
	}
}

func login(t *testing.T, base, user string) string {
	t.Helper()
	var s struct {
		Token string `json:"token"`
	}
	mustCall(t, "POST", base+"/api/v1/session", "", map[string]string{"code": user}, &s)
	return s.Token
}

type poolStats struct {
	Supplied, Held, Sold, Remaining int64
}

type stats struct {
	Sales  map[string]poolStats `json:"sales"`
	Orders struct {
		Written int64 `json:"written"`
		Lag     int64 `json:"lag"`
	} `json:"orders"`
}

func getStats(t *testing.T, base string) stats {
	t.Helper()
	var s stats
	mustCall(t, "GET", base+"/admin/v1/stats", testAdminToken, nil, &s)
	for id, p := range s.Sales {
		if p.Supplied != p.Held+p.Sold+p.Remaining {
			t.Fatalf("sale %s: supplied %d != held %d + sold %d + remaining %d", id, p.Supplied, p.Held, p.Sold, p.Remaining)
		}
	}
	return s
}

func setupSale(t *testing.T, base, saleID string, quantity, onHand int64) {
	t.Helper()
	catalog := map[string]any{
		"stores":   []any{map[string]any{"store_id": "p1", "name": "进程测试店", "city": "上海"}},
		"guides":   []any{map[string]any{"guide_id": "pg1", "store_id": "p1", "name": "小李", "picks": []string{"pk1"}}},
		"products": []any{map[string]any{"sku_id": "pk1", "title": "羊绒围巾", "price": 39900, "images": []string{}}},
		"listings": []any{map[string]any{"store_id": "p1", "sku_id": "pk1", "price": 35900, "on_hand": onHand}},
	}
	mustCall(t, "PUT", base+"/admin/v1/catalog", testAdminToken, catalog, nil)
	now := time.Now().UTC()
	mustCall(t, "POST", base+"/admin/v1/flash-sales", testAdminToken, map[string]any{
		"sale_id": saleID, "store_id": "p1", "sku_id": "pk1", "price": 9900,
		"quantity": quantity, "per_user_limit": 1,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339Nano),
		"ends_at":   now.Add(time.Hour).Format(time.RFC3339Nano), "hold_seconds": 600,
	}, nil)
}

type reservation struct {
	ReservationID string `json:"reservation_id"`
	State         string `json:"state"`
	OrderID       string `json:"order_id"`
}

// TestKill9LosesNothingAcknowledged is the process-level crash test: buyers
// reserve and pay while the server is killed with SIGKILL; after a restart
// every acknowledged reservation and payment is there, every paid
// reservation has exactly one order and the totals hold.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	kill9LosesNothing(t)
}

// TestKill9OrdersIntoMySQL is the same crash with the orders kept in
// MariaDB (--orders mysql://…): after the restart every paid reservation
// is exactly one row (no duplicate, none missing), written by the replay
// and the order writer into the database.
func TestKill9OrdersIntoMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	db := sqltest.New(t)
	paid, sold := kill9LosesNothing(t, "--orders", db.URL)
	var rows, distinct int64
	if err := db.Admin.QueryRow("SELECT COUNT(*), COUNT(DISTINCT order_id) FROM surge_orders").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != sold || distinct != rows {
		t.Fatalf("MariaDB holds %d rows (%d distinct) for %d units sold; want one row per unit", rows, distinct, sold)
	}
	for _, resID := range paid {
		var state string
		if err := db.Admin.QueryRow("SELECT state FROM surge_orders WHERE reservation_id = ?", resID).Scan(&state); err != nil || state != "created" {
			t.Errorf("order of acknowledged payment %s: state %q, %v; want a created row", resID, state, err)
		}
	}
}

// kill9LosesNothing runs buyers that reserve and pay against `surge serve
// --backend pebble` (with extra args), kills it with SIGKILL mid-crowd,
// restarts it and checks every acknowledgement and law 4 through the API.
// It returns the acknowledged payments' reservation ids and the units sold.
func kill9LosesNothing(t *testing.T, extra ...string) (paidIDs []string, sold int64) {
	t.Helper()
	data := t.TempDir()
	args := append([]string{"--backend", "pebble", "--data", data}, extra...)
	p := startSurge(t, args...)
	const saleID, quantity, users = "crash-sale", 400, 600
	setupSale(t, p.base, saleID, quantity, 1000)

	type ack struct {
		user, token, resID string
		paid               bool
	}
	var mu sync.Mutex
	var acks []ack
	tokens := make([]string, users)
	for i := range tokens {
		tokens[i] = login(t, p.base, fmt.Sprintf("cu%03d", i))
	}
	var wg sync.WaitGroup
	next := make(chan int, users)
	for i := 0; i < users; i++ {
		next <- i
	}
	close(next)
	killed := make(chan struct{})
	var killOnce sync.Once
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var r reservation
				env, err := call("POST", p.base+"/api/v1/flash-sales/"+saleID+"/reservations", tokens[i], map[string]any{"quantity": 1}, &r)
				if err != nil || env.Code != 0 {
					continue // not acknowledged: no promise made
				}
				a := ack{user: fmt.Sprintf("cu%03d", i), token: tokens[i], resID: r.ReservationID}
				if i%2 == 0 {
					var pr reservation
					env, err := call("POST", p.base+"/api/v1/reservations/"+r.ReservationID+"/pay", tokens[i], map[string]any{"payment_id": "pay-" + a.user}, &pr)
					a.paid = err == nil && env.Code == 0 && pr.State == "paid"
				}
				mu.Lock()
				acks = append(acks, a)
				n := len(acks)
				mu.Unlock()
				if n == 150 {
					killOnce.Do(func() { p.kill(); close(killed) })
				}
			}
		}()
	}
	wg.Wait()
	killOnce.Do(func() { p.kill(); close(killed) })
	<-killed
	if len(acks) < 150 {
		t.Fatalf("only %d reservations acknowledged before the kill; the test needs 150", len(acks))
	}

	p2 := startSurge(t, args...)
	paid := 0
	for _, a := range acks {
		var r reservation
		env, err := call("GET", p2.base+"/api/v1/reservations/"+a.resID, a.token, nil, &r)
		if err != nil || env.Code != 0 {
			t.Fatalf("acknowledged reservation %s of %s lost after kill -9: %v %+v", a.resID, a.user, err, env)
		}
		if a.paid {
			paid++
			paidIDs = append(paidIDs, a.resID)
			if r.State != "paid" {
				t.Errorf("acknowledged payment of %s lost: state %q", a.resID, r.State)
			}
		} else if r.State != "held" && r.State != "paid" {
			t.Errorf("acknowledged reservation %s is %q; want held (or paid if the pay landed unacknowledged)", a.resID, r.State)
		}
	}
	// Every paid reservation becomes exactly one order (law 4), written by
	// the replay after restart; wait a bounded time for the async writer.
	var s stats
	deadline := time.Now().Add(30 * time.Second)
	for {
		s = getStats(t, p2.base)
		if s.Orders.Lag == 0 && s.Orders.Written == s.Sales[saleID].Sold || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	sale := s.Sales[saleID]
	if sale.Supplied != quantity {
		t.Errorf("supplied = %d; want %d", sale.Supplied, quantity)
	}
	if sale.Sold < int64(paid) {
		t.Errorf("sold = %d < %d acknowledged payments", sale.Sold, paid)
	}
	if sale.Held+sale.Sold < int64(len(acks)) {
		t.Errorf("held+sold = %d < %d acknowledged reservations", sale.Held+sale.Sold, len(acks))
	}
	if s.Orders.Written != sale.Sold {
		t.Errorf("orders written = %d; want one per sold unit = %d (lag %d)", s.Orders.Written, sale.Sold, s.Orders.Lag)
	}
	for _, a := range acks {
		if !a.paid {
			continue
		}
		var r reservation
		mustCall(t, "GET", p2.base+"/api/v1/reservations/"+a.resID, a.token, nil, &r)
		if r.OrderID == "" {
			t.Errorf("paid reservation %s has no order_id after restart", a.resID)
			continue
		}
		var o struct {
			OrderID       string `json:"order_id"`
			ReservationID string `json:"reservation_id"`
			State         string `json:"state"`
		}
		mustCall(t, "GET", p2.base+"/api/v1/orders/"+r.OrderID, a.token, nil, &o)
		if o.ReservationID != a.resID || o.State != "created" {
			t.Errorf("order %s = %+v; want created for %s", r.OrderID, o, a.resID)
		}
	}
	t.Logf("acknowledged %d reservations (%d paid) before kill -9; after restart sale %+v, orders %+v", len(acks), paid, sale, s.Orders)
	return paidIDs, sale.Sold
}

// TestTwoNodesOnOneRedis races buyers through two `surge serve` processes
// sharing one redis-server: exact totals, no oversell across nodes.
func TestTwoNodesOnOneRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	rs := redistest.Start(t).Addr
	a := startSurge(t, "--backend", "redis", "--redis", rs, "--data", t.TempDir())
	b := startSurge(t, "--backend", "redis", "--redis", rs, "--data", t.TempDir())
	const saleID, quantity, users = "two-node-sale", 150, 400
	setupSale(t, a.base, saleID, quantity, 500)
	// The sale created on node A must show on node B within a bounded time.
	deadline := time.Now().Add(10 * time.Second)
	for {
		env, err := call("GET", b.base+"/api/v1/flash-sales/"+saleID, "", nil, nil)
		if err == nil && env.Code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B never saw the sale created on node A: %v %+v", err, env)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	perUser := map[string]int{}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < users; i += 16 {
				node := a
				if i%2 == 1 {
					node = b
				}
				user := fmt.Sprintf("ru%03d", i)
				tok := login(t, node.base, user)
				// Each user tries twice (once per node) to test the limit across nodes.
				for _, n := range []*proc{node, map[bool]*proc{true: b, false: a}[node == a]} {
					env, err := call("POST", n.base+"/api/v1/flash-sales/"+saleID+"/reservations", tok, map[string]any{"quantity": 1}, nil)
					if err != nil {
						t.Errorf("reserve: %v", err)
						return
					}
					mu.Lock()
					codes[env.Code]++
					if env.Code == 0 {
						perUser[user]++
					}
					mu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	if codes[0] != quantity {
		t.Errorf("successful reservations = %d; want exactly %d (demand %d > supply); codes %v", codes[0], quantity, users, codes)
	}
	for u, n := range perUser {
		if n > 1 {
			t.Errorf("user %s got %d units; limit 1", u, n)
		}
	}
	for code := range codes {
		if code != 0 && code != 40900 && code != 40901 && code != 42900 {
			t.Errorf("unexpected code %d (%d times)", code, codes[code])
		}
	}
	for _, n := range []*proc{a, b} {
		s := getStats(t, n.base)
		sale := s.Sales[saleID]
		if sale.Supplied != quantity || sale.Held+sale.Sold != quantity || sale.Remaining != 0 {
			t.Errorf("%s: sale %+v; want supplied %d, held+sold %d, remaining 0", n.base, sale, quantity, quantity)
		}
	}
	t.Logf("codes %v", codes)
}
