package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/internal/sqltest"
	"github.com/surge-retail/surge/internal/tcpproxy"
)

// TestMariaDBDownOrdersCircuit: the order store (a real MariaDB) reached
// through a TCP proxy the test controls. Proxy stopped -> paying still
// says yes (the confirmation is durable and the order waits in the
// writer), the writer's failed batches open the order store's circuit,
// order reads are 503/50300 with Retry-After without reaching MariaDB,
// /readyz and /metrics name the orders circuit -> proxy back -> the probe
// closes the circuit and every paid reservation has exactly one order row.
func TestMariaDBDownOrdersCircuit(t *testing.T) {
	db := sqltest.New(t)
	target := strings.TrimPrefix(db.URL, "mysql://")
	target = target[strings.Index(target, "@")+1:]
	target = target[:strings.Index(target, "/")]
	proxy := tcpproxy.New(t, target)
	url := strings.Replace(db.URL, target, proxy.Addr, 1)
	st, err := orders.OpenMySQL(context.Background(), url, orders.SQLOptions{DialTimeout: time.Second, IOTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("OpenMySQL through the proxy: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })

	const openFor = 300 * time.Millisecond
	h := newHarness(t, "pebble", engineOpts(func(o *engine.Options) {
		o.Orders = st
		o.Circuit = engine.CircuitOptions{Failures: 3, OpenFor: openFor}
		o.OrderWriter = engine.OrderWriterOptions{RetryBackoff: 20 * time.Millisecond}
	}))
	h.loadCatalog()
	h.createSale("fs1", 100, 100)
	a := h.login("u1")
	var paid []string
	pay := func(i int) engine.Reservation {
		t.Helper()
		res := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a))
		v := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/reservations/"+res.ReservationID+"/pay",
			fmt.Sprintf(`{"payment_id":"p%d"}`, i), a))
		paid = append(paid, v.OrderID)
		return v
	}
	for i := range 5 {
		pay(i)
	}
	if err := h.eng.FlushOrders(context.Background()); err != nil {
		t.Fatalf("FlushOrders: %v", err)
	}
	h.wantCode(CodeOK, "GET", "/api/v1/orders/"+paid[0], nil, a)
	if c := h.circuit(engine.BackendOrders); c.State != "closed" {
		t.Fatalf("orders circuit before the fault = %+v; want closed", c)
	}

	proxy.Stop()
	// Paying is the confirmation (durable in Pebble) and the order handed
	// to the writer: a yes while MariaDB is away, the order kept.
	for i := 5; i < 15; i++ {
		pay(i)
	}
	waitFor(t, 30*time.Second, "an open orders circuit", func() bool {
		return h.circuit(engine.BackendOrders).State == "open"
	})
	before := h.circuit(engine.BackendOrders).Failures
	t0 := time.Now()
	for i := range 20 {
		r := h.do("GET", "/api/v1/orders/"+paid[i%len(paid)], nil, a)
		if r.Status != 503 || r.Code != CodeUnavailable || r.Header.Get("Retry-After") == "" {
			t.Fatalf("order read %d with MariaDB away: HTTP %d, code %d, Retry-After %q (%s); want 503/50300 with Retry-After",
				i, r.Status, r.Code, r.Header.Get("Retry-After"), r.Msg)
		}
	}
	r := h.wantCode(CodeUnavailable, "GET", "/api/v1/me/orders", nil, a)
	if !strings.Contains(r.Msg, "circuit open") {
		t.Errorf("my orders with the orders circuit open: msg %q; want it to say the circuit is open", r.Msg)
	}
	// The reads were answered by the circuit: the store was asked at most
	// by the probes (the writer's retries and these reads share them).
	probes := 1 + int64(time.Since(t0)/openFor)
	if got := h.circuit(engine.BackendOrders).Failures - before; got > probes {
		t.Fatalf("21 order reads with the circuit open: %d store failures; want at most %d (the probes)", got, probes)
	}
	ready := h.wantCode(CodeUnavailable, "GET", "/readyz", nil)
	if !strings.Contains(ready.Msg, "orders") {
		t.Errorf("/readyz msg = %q; want the orders circuit named", ready.Msg)
	}
	waitFor(t, 10*time.Second, "the orders circuit in /metrics", func() bool {
		m := h.metric(`surge_backend_circuit_state{backend="orders"}`)
		return strings.HasSuffix(m, " 2") || strings.HasSuffix(m, " 1")
	})
	if st := h.stats(); st.Orders.Lag != 10 {
		t.Errorf("order lag with MariaDB away = %d; want the 10 orders paid meanwhile", st.Orders.Lag)
	}

	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "ready after MariaDB came back", func() bool { return h.do("GET", "/readyz", nil).Code == CodeOK })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.eng.FlushOrders(ctx); err != nil {
		t.Fatalf("FlushOrders after MariaDB came back: %v", err)
	}
	if c := h.circuit(engine.BackendOrders); c.State != "closed" || c.Opens == 0 {
		t.Fatalf("orders circuit after MariaDB came back = %+v; want closed, opened before", c)
	}
	// Exactly once: one row per paid reservation, no other.
	var rows, distinct int
	if err := db.Admin.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT reservation_id) FROM surge_orders`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != len(paid) || distinct != len(paid) {
		t.Fatalf("order rows after recovery = %d (%d reservations); want %d, one each", rows, distinct, len(paid))
	}
	for _, id := range paid {
		o := into[engine.Order](t, h.wantCode(CodeOK, "GET", "/api/v1/orders/"+id, nil, a))
		if o.OrderID != id || o.State != orders.StateCreated {
			t.Fatalf("order %s after recovery = %+v", id, o)
		}
	}
	if st := h.stats(); st.Orders.Written != int64(len(paid)) || st.Orders.Lag != 0 {
		t.Fatalf("order stats after recovery = %+v; want %d written, no lag", st.Orders, len(paid))
	}
}

// TestRedisKilledKeyedCallsFast: with Redis killed, calls that carry an
// Idempotency-Key answer 503/50300 with Retry-After, never 404 or 500, and
// once the circuits are open without reaching Redis: a keyed reserve goes
// through the inventory's circuit (its reservation id is its key), a keyed
// team open through the records' circuit (the idempotency store lives in
// the records), a pay through both (the reservation, then its payment
// record). Back, the circuits close and the same calls succeed.
func TestRedisKilledKeyedCallsFast(t *testing.T) {
	const openFor = 300 * time.Millisecond
	h := newHarness(t, "redis", engineOpts(func(o *engine.Options) {
		o.Circuit = engine.CircuitOptions{Failures: 3, OpenFor: openFor}
	}))
	h.loadCatalog()
	h.createSale("fs1", 100, 100)
	now := time.Now()
	h.wantCode(CodeOK, "POST", "/admin/v1/group-buys", engine.GroupDealSpec{
		DealID: "d1", StoreID: "s1", SKUID: "k2", Price: 5000, TeamSize: 2, Quantity: 10,
		TeamWindowSeconds: 600, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	}, adminAuth)
	a := h.login("u1")
	res := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a, "Idempotency-Key: r0"))
	h.wantCode(CodeOK, "POST", "/api/v1/group-buys/d1/teams", nil, a, "Idempotency-Key: t0")

	h.redis.Stop()
	keyed := func(i int) resp {
		switch i % 3 {
		case 0:
			return h.do("POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a, fmt.Sprintf("Idempotency-Key: r%d", i+1))
		case 1:
			return h.do("POST", "/api/v1/group-buys/d1/teams", nil, a, fmt.Sprintf("Idempotency-Key: t%d", i))
		}
		return h.do("POST", "/api/v1/reservations/"+res.ReservationID+"/pay", `{"payment_id":"p1"}`, a, fmt.Sprintf("Idempotency-Key: p%d", i))
	}
	open := func() bool {
		return h.circuit(engine.BackendRecords).State == "open" && h.circuit(engine.BackendInventory).State == "open"
	}
	for i := 0; !open(); i++ {
		if i == 60 {
			t.Fatalf("circuits after 60 failed keyed calls = %+v; want records and inventory open", h.eng.Circuits())
		}
		if r := keyed(i); r.Status != 503 || r.Code != CodeUnavailable {
			t.Fatalf("keyed call %d with Redis killed: HTTP %d, code %d (%s); want 503/50300", i, r.Status, r.Code, r.Msg)
		}
	}
	recBefore, invBefore := h.circuit(engine.BackendRecords).Failures, h.circuit(engine.BackendInventory).Failures
	t0 := time.Now()
	for i := range 30 {
		r := keyed(i)
		if r.Status != 503 || r.Code != CodeUnavailable || r.Header.Get("Retry-After") == "" || !strings.Contains(r.Msg, "circuit open") {
			t.Fatalf("keyed call %d with the circuits open: HTTP %d, code %d, Retry-After %q (%s); want 503/50300, Retry-After, the circuit named",
				i, r.Status, r.Code, r.Header.Get("Retry-After"), r.Msg)
		}
	}
	probes := 1 + int64(time.Since(t0)/openFor)
	if got := h.circuit(engine.BackendRecords).Failures - recBefore; got > probes {
		t.Fatalf("30 keyed calls with the records circuit open reached Redis's records %d times; want at most %d (the probes)", got, probes)
	}
	if got := h.circuit(engine.BackendInventory).Failures - invBefore; got > probes {
		t.Fatalf("30 keyed calls with the inventory circuit open reached Redis's inventory %d times; want at most %d (the probes)", got, probes)
	}

	h.redis.Restart(t, true)
	waitFor(t, 30*time.Second, "keyed calls again after Redis came back", func() bool {
		return h.do("POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a, "Idempotency-Key: after").Code == CodeOK &&
			h.do("POST", "/api/v1/group-buys/d1/teams", nil, a, "Idempotency-Key: t-after").Code == CodeOK
	})
	h.wantCode(CodeOK, "POST", "/api/v1/reservations/"+res.ReservationID+"/pay", `{"payment_id":"p1"}`, a, "Idempotency-Key: pay-after")
	if c := h.circuit(engine.BackendRecords); c.State != "closed" || c.Opens == 0 {
		t.Fatalf("records circuit after Redis came back = %+v; want closed, opened before", c)
	}
}
