package engine_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/redis/rueidis"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// TestBuyersTouchOnlyTheStoreSlot: on Redis, what every buyer does — a
// flash reserve (keyed and retried, or not), a checkout, a payment —
// writes nothing in the engine's records' slot ({surge-rec}): its
// reservation, its idempotency answer, its payment id and its order on the
// way all live in the store's slot (DESIGN.md, "no key that every request
// touches").
func TestBuyersTouchOnlyTheStoreSlot(t *testing.T) {
	orderStore := records.NewMemory() // orders written elsewhere (MySQL, say)
	t.Cleanup(func() { _ = orderStore.Close() })
	env, rc, _ := redisSaleEnv(t, engine.Options{Orders: orders.NewRecordsStore(orderStore)})
	ctx, e, st := env.ctx, env.e, env.store
	var err error
	recSlot := func() map[string]string {
		t.Helper()
		keys, err := rc.Do(ctx, rc.B().Keys().Pattern("{surge-rec}*").Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, k := range keys {
			typ, _ := rc.Do(ctx, rc.B().Type().Key(k).Build()).ToString()
			switch typ {
			case "string":
				out[k], _ = rc.Do(ctx, rc.B().Get().Key(k).Build()).ToString()
			case "zset":
				members, _ := rc.Do(ctx, rc.B().Zrange().Key(k).Min("0").Max("-1").Build()).AsStrSlice()
				out[k] = fmt.Sprint(members)
			default:
				out[k] = typ
			}
		}
		return out
	}
	before := recSlot()
	for i := range 20 {
		user := fmt.Sprintf("oSlot%02d", i)
		key := engine.Attempt{UserID: user, Once: engine.Once{Key: "k-" + user, Digest: sha256.Sum256([]byte(user))}}
		var r engine.Reservation
		for range 2 { // a retry
			if r, err = e.ReserveFlash(ctx, key, "fs1", 1, ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.Pay(ctx, user, r.ReservationID, "pay-"+user); err != nil {
			t.Fatal(err)
		}
		c, err := e.Checkout(ctx, key2(user), engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k1", Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Pay(ctx, user, c.ReservationID, "pay2-"+user); err != nil {
			t.Fatal(err)
		}
		if v, err := e.Reservation(ctx, user, r.ReservationID); err != nil || v.PaymentID != "pay-"+user {
			t.Fatalf("reservation = %+v, %v; want its payment id", v, err)
		}
	}
	after := recSlot()
	var changed []string
	for k, v := range after {
		if before[k] != v {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	if len(changed) > 0 {
		t.Fatalf("buyers wrote in the records' slot: %q", changed)
	}
	if p, err := st.Pool(ctx, "s1:fs:fs1"); err != nil || p.Sold != 20 {
		t.Fatalf("pool = %+v, %v; want 20 sold", p, err)
	}
}

func key2(user string) engine.Attempt {
	return engine.Attempt{UserID: user, Once: engine.Once{Key: "cart-" + user, Digest: sha256.Sum256([]byte("cart" + user))}}
}

// TestFlashReserveIsOneRedisCommand counts what a flash reserve sends to
// Redis, with MONITOR (which tells a client's commands from those its
// scripts run): one EVALSHA per reserve, keyed or not, retried or not,
// and nothing else: no read of the sale, the records or the idempotency
// answer around it.
// Under load the client combines concurrent reserves into one EVALSHA
// (redisinv's group commit), so this is the most a reserve costs.
func TestFlashReserveIsOneRedisCommand(t *testing.T) {
	env, rc, addr := redisSaleEnv(t, engine.Options{OutboxWriterOff: true}) // rc is connected: its handshake is not counted
	ctx, e := env.ctx, env.e
	// The sale is in memory now (its first reserve would have read it).
	if _, err := e.ReserveFlash(ctx, engine.Attempt{UserID: "oWarm"}, "fs1", 1, ""); err != nil {
		t.Fatal(err)
	}

	mon, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mon.Close() })
	lines := bufio.NewReader(mon)
	if _, err := mon.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	if l, err := lines.ReadString('\n'); err != nil || l != "+OK\r\n" {
		t.Fatalf("MONITOR = %q, %v", l, err)
	}
	const users = 20
	for i := range users {
		user := fmt.Sprintf("oOne%02d", i)
		if _, err := e.ReserveFlash(ctx, engine.Attempt{UserID: user}, "fs1", 1, ""); err != nil {
			t.Fatal(err)
		}
		keyed := engine.Attempt{UserID: user, Once: engine.Once{Key: "k-" + user, Digest: sha256.Sum256([]byte(user))}}
		for range 2 { // the retry finds the first answer in the same call
			if _, err := e.ReserveFlash(ctx, keyed, "fs1", 1, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	const marker = "surge-test-end-of-reserves"
	if err := rc.Do(ctx, rc.B().Echo().Message(marker).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for {
		l, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("reading MONITOR: %v (so far %v)", err, calls)
		}
		if strings.Contains(l, marker) {
			break
		}
		// +<time> [<db> <client>] "<command>" ...; a script's own
		// commands show "[<db> lua]".
		if strings.Contains(l, " lua] ") {
			continue
		}
		_, cmd, _ := strings.Cut(l, "] \"")
		cmd, _, _ = strings.Cut(cmd, "\"")
		cmd = strings.ToLower(cmd)
		if cmd == "ping" {
			continue // rueidis keeps an idle connection alive
		}
		calls[cmd]++
	}
	if want := map[string]int{"evalsha": 3 * users}; !maps.Equal(calls, want) {
		t.Errorf("%d reserves (%d plain, %d keyed, %d keyed retries) sent %v to Redis; want %v", 3*users, users, users, users, calls, want)
	}
}

// redisSaleEnv opens an engine (o, with its inventory and records on a
// redis-server of its own, no sweeper, no sale admission gate) with the
// test catalog and a running sale fs1 of 100 units, 2 a user, a client
// of that server and its address.
func redisSaleEnv(t *testing.T, o engine.Options) (*testEnv, rueidis.Client, string) {
	t.Helper()
	srv := redistest.Start(t)
	ctx := context.Background()
	st, err := redisinv.Open(ctx, redisinv.Options{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	clock := newTestClock()
	o.Store, o.RedisAddr, o.Now, o.SweepInterval, o.SaleAdmitFactor = st, srv.Addr, clock.Now, -1, -1
	e, err := engine.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	env := &testEnv{t: t, clock: clock, store: st, e: e, ctx: ctx}
	if _, err := e.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	env.sale("fs1", 100, 2)
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	return env, rc, srv.Addr
}
