package gateway

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/redistest"
)

// Broken backends through the real gateway over loopback HTTP, with a real
// redis-server of the test's own: killed, frozen (a hung Redis), restarted
// with its data, and restarted empty.

// circuit returns the engine's circuit of backend.
func (h *harness) circuit(backend string) engine.CircuitState {
	h.t.Helper()
	for _, c := range h.eng.Circuits() {
		if c.Backend == backend {
			return c
		}
	}
	h.t.Fatalf("no circuit %q in %+v", backend, h.eng.Circuits())
	return engine.CircuitState{}
}

// waitFor polls cond (every 50 ms, at most limit): a wait for a state,
// never a timing that is asserted.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); ; {
		if cond() {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("still not %s after %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantFastRefusals sends n reserves while the inventory's circuit is open
// and checks that each is 503 / 50300 with Retry-After and that they
// reached the backend at most once per OpenFor (the half-open probe): the
// circuit answers them, not a timeout.
func wantFastRefusals(h *harness, a string, n int, openFor time.Duration) {
	h.t.Helper()
	before := h.circuit(engine.BackendInventory).Failures
	t0 := time.Now()
	for i := range n {
		r := h.do("POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a)
		if r.Status != 503 || r.Code != CodeUnavailable || r.Header.Get("Retry-After") == "" {
			h.t.Fatalf("reserve %d with the circuit open: HTTP %d, code %d, Retry-After %q (%s); want 503/50300 with Retry-After",
				i, r.Status, r.Code, r.Header.Get("Retry-After"), r.Msg)
		}
	}
	probes := 1 + int64(time.Since(t0)/openFor)
	if got := h.circuit(engine.BackendInventory).Failures - before; got > probes {
		h.t.Fatalf("%d reserves with the circuit open reached the backend %d times; want at most %d (its probes)", n, got, probes)
	}
}

// metric returns the line of /metrics that starts with prefix.
func (h *harness) metric(prefix string) string {
	h.t.Helper()
	r, err := h.client.Get(h.base + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer r.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

// TestRedisKilledCircuitOpensAndCloses: Redis killed -> a few failures
// open the inventory's circuit -> reserves are 503/50300 with Retry-After
// without reaching Redis, /readyz says why, /metrics shows the circuit
// open, an unknown sale is 503 never 404 -> Redis back (with its AOF) ->
// the probe closes the circuit and reserves are 200 again.
func TestRedisKilledCircuitOpensAndCloses(t *testing.T) {
	const openFor = 300 * time.Millisecond
	h := newHarness(t, "redis", engineOpts(func(o *engine.Options) {
		o.Circuit = engine.CircuitOptions{Failures: 3, OpenFor: openFor}
	}))
	h.loadCatalog()
	h.createSale("fs1", 100, 100)
	a := h.login("u1")
	res := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a))
	if c := h.circuit(engine.BackendInventory); c.State != "closed" {
		t.Fatalf("inventory circuit before the fault = %+v; want closed", c)
	}

	h.redis.Stop()
	// Failures until the circuit opens: each is a 503 already, never
	// anything else.
	for i := 0; h.circuit(engine.BackendInventory).State != "open"; i++ {
		if i == 20 {
			t.Fatalf("inventory circuit after 20 failed reserves = %+v; want open", h.circuit(engine.BackendInventory))
		}
		h.wantCode(CodeUnavailable, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a)
	}
	wantFastRefusals(h, a, 30, openFor)
	r := h.wantCode(CodeUnavailable, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a)
	if !strings.Contains(r.Msg, "circuit open") {
		t.Errorf("reserve msg with the circuit open = %q; want it to say the circuit is open", r.Msg)
	}
	// Reads that need the backend: 503, never 404 (API.md).
	h.wantCode(CodeUnavailable, "GET", "/api/v1/flash-sales/nosuch", nil)
	h.wantCode(CodeUnavailable, "GET", "/api/v1/group-buys/nosuch", nil)
	h.wantCode(CodeUnavailable, "GET", "/api/v1/group-buys/nosuch/teams/t1", nil)
	h.wantCode(CodeUnavailable, "GET", "/api/v1/reservations/"+res.ReservationID, nil, a)
	h.wantCode(CodeUnavailable, "GET", "/api/v1/reservations/s1:nosuch", nil, a)
	h.wantCode(CodeUnavailable, "POST", "/api/v1/reservations/"+res.ReservationID+"/pay", `{"payment_id":"p1"}`, a)
	h.wantCode(CodeUnavailable, "GET", "/admin/v1/reconcile", nil, adminAuth)
	ready := h.wantCode(CodeUnavailable, "GET", "/readyz", nil)
	if !strings.Contains(ready.Msg, "not ready: ") || !strings.Contains(ready.Msg, "inventory") {
		t.Errorf("/readyz msg = %q; want the reason (the inventory)", ready.Msg)
	}
	if m := h.metric(`surge_backend_circuit_state{backend="inventory"}`); !strings.HasSuffix(m, " 2") && !strings.HasSuffix(m, " 1") {
		t.Errorf("/metrics %q; want the inventory circuit open (2) or probing (1)", m)
	}
	// The stats name what they cannot read and answer the rest.
	st := h.stats()
	if len(st.Missing) == 0 || st.Missing[0].Kind == "" {
		t.Errorf("stats with Redis down: missing = %+v; want the unreadable pools named", st.Missing)
	}

	h.redis.Restart(t, true)
	waitFor(t, 30*time.Second, "reserving again after Redis came back", func() bool {
		return h.do("POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a).Code == CodeOK
	})
	if c := h.circuit(engine.BackendInventory); c.State != "closed" || c.Opens == 0 {
		t.Fatalf("inventory circuit after Redis came back = %+v; want closed, opened before", c)
	}
	// The records' circuit closes at its own next probe.
	waitFor(t, 30*time.Second, "ready after Redis came back", func() bool { return h.do("GET", "/readyz", nil).Code == CodeOK })
	if st := h.stats(); len(st.Missing) != 0 || st.Sales["fs1"].Supplied != 100 {
		t.Fatalf("stats after Redis came back: missing %+v, fs1 %+v; want nothing missing, 100 supplied", st.Missing, st.Sales["fs1"])
	}
}

// TestRedisHungCircuit: a frozen Redis (SIGSTOP: it takes connections and
// answers nothing) costs the first requests their engine timeout; then
// the circuit opens and the rest are answered 503 at once without
// reaching it; thawed, the probe closes the circuit.
func TestRedisHungCircuit(t *testing.T) {
	const openFor = 500 * time.Millisecond
	h := newHarness(t, "redis", engineOpts(func(o *engine.Options) {
		o.Circuit = engine.CircuitOptions{Failures: 3, OpenFor: openFor}
	}), harnessOpt(func(o *Options) {
		// Short enough that the hung calls end soon, long enough that the
		// set-up's own calls (catalog, sale, first reserve) finish on a
		// loaded machine: at 300 ms the catalog load was seen to time out.
		o.EngineTimeout = time.Second
	}))
	h.loadCatalog()
	h.createSale("fs1", 100, 100)
	a := h.login("u1")
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a)

	if err := h.redis.Freeze(); errors.Is(err, redistest.ErrNoFreeze) {
		t.Skip(err) // no SIGSTOP on this platform: no way to hang a server
	} else if err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			_ = h.redis.Thaw()
		}
	}()
	// Concurrent reserves time out together; each answer is a 503.
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.do("POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a)
			if r.Code != CodeUnavailable {
				errs <- fmt.Sprintf("reserve with Redis hung: code %d (%s); want 50300", r.Code, r.Msg)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	waitFor(t, 10*time.Second, "an open inventory circuit", func() bool {
		if h.circuit(engine.BackendInventory).State == "open" {
			return true
		}
		h.do("POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a)
		return false
	})
	wantFastRefusals(h, a, 30, openFor)

	if err := h.redis.Thaw(); err != nil {
		t.Fatal(err)
	}
	thawed = true
	waitFor(t, 30*time.Second, "reserving again after Redis thawed", func() bool {
		return h.do("POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a).Code == CodeOK
	})
	if c := h.circuit(engine.BackendInventory); c.State != "closed" {
		t.Fatalf("inventory circuit after the thaw = %+v; want closed", c)
	}
}

// TestRedisDataLossStopsReservations: Redis restarted empty under a
// running node -> reserves, checkouts and team joins are 503/50300 with a
// message that says so, /readyz and /metrics say why, the stats carry
// data_lost and name the pools that are gone -> POST /admin/v1/recover
// (audit-logged) adopts a new epoch, writes the catalog back and names the
// sale that is gone -> checkouts are taken again, the lost sale is named.
func TestRedisDataLossStopsReservations(t *testing.T) {
	h := newHarness(t, "redis")
	h.loadCatalog()
	h.createSale("fs1", 10, 5)
	a := h.login("u1")
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a)
	ck := `{"store_id":"s1","items":[{"sku_id":"k2","quantity":1}]}`
	h.wantCode(CodeOK, "POST", "/api/v1/checkout", ck, a)
	// Nothing lost: recover changes nothing.
	if rc := into[engine.Recovery](t, h.wantCode(CodeOK, "POST", "/admin/v1/recover", nil, adminAuth)); rc.Recovered {
		t.Fatalf("recover with nothing lost = %+v; want recovered false", rc)
	}

	h.redis.Stop()
	h.redis.Restart(t, false)
	waitFor(t, 30*time.Second, "the data loss seen", func() bool { return h.eng.DataLost() != nil })

	for _, req := range []struct{ method, path, body string }{
		{"POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1)},
		{"POST", "/api/v1/checkout", ck},
		{"POST", "/api/v1/group-buys/d1/teams", "{}"},
		{"POST", "/api/v1/group-buys/d1/teams/t1/members", ""},
	} {
		r := h.wantCode(CodeUnavailable, req.method, req.path, req.body, a, "Idempotency-Key: k-"+req.path)
		if !strings.Contains(r.Msg, "lost their data") || !strings.Contains(r.Msg, "/admin/v1/recover") {
			t.Errorf("%s %s after the loss: msg %q; want it to say the data was lost and how to resume", req.method, req.path, r.Msg)
		}
	}
	ready := h.wantCode(CodeUnavailable, "GET", "/readyz", nil)
	if !strings.Contains(ready.Msg, "Redis lost data at ") {
		t.Errorf("/readyz msg after the loss = %q; want \"Redis lost data at T\"", ready.Msg)
	}
	if m := h.metric("surge_records_data_lost "); m != "surge_records_data_lost 1" {
		t.Errorf("/metrics after the loss: %q; want surge_records_data_lost 1", m)
	}
	st := h.stats()
	if st.DataLost == nil || st.DataLost.At.IsZero() {
		t.Fatalf("stats after the loss: data_lost = %+v; want when it was seen", st.DataLost)
	}
	if !hasMissing(st.Missing, "sale", "fs1") || !hasMissing(st.Missing, "listing", "s1/k2") {
		t.Fatalf("stats after the loss: missing = %+v; want sale fs1 and listing s1/k2 named", st.Missing)
	}

	// The reconciliation tells what is missing: the loss itself, and the
	// sale this node knew whose pool is gone.
	recon := into[engine.Reconciliation](t, h.wantCode(CodeOK, "GET", "/admin/v1/reconcile", nil, adminAuth))
	kinds := map[string]int{}
	for _, d := range recon.Discrepancies {
		kinds[d.Kind]++
	}
	if recon.OK || kinds[engine.DiscDataLost] != 1 || kinds[engine.DiscPoolMissing] == 0 {
		t.Fatalf("reconcile after the loss = ok %v, discrepancies %+v; want data_lost and pool_missing", recon.OK, recon.Discrepancies)
	}

	rc := into[engine.Recovery](t, h.wantCode(CodeOK, "POST", "/admin/v1/recover", nil, adminAuth))
	if !rc.Recovered || rc.Lost == nil || !rc.CatalogReloaded || !hasMissing(rc.Missing, "sale", "fs1") || rc.Next == "" {
		t.Fatalf("recover = %+v; want recovered, the catalog written back, sale fs1 named missing", rc)
	}
	h.wantCode(CodeOK, "GET", "/readyz", nil)
	h.wantCode(CodeOK, "POST", "/api/v1/checkout", ck, a)
	// /metrics reads the stats at most once a second.
	waitFor(t, 10*time.Second, "surge_records_data_lost 0 after recover", func() bool {
		return h.metric("surge_records_data_lost ") == "surge_records_data_lost 0"
	})
	st = h.stats()
	if st.DataLost != nil || hasMissing(st.Missing, "listing", "s1/k2") || !hasMissing(st.Missing, "sale", "fs1") {
		t.Fatalf("stats after recover: data_lost %+v, missing %+v; want no loss, the listing back, sale fs1 still missing", st.DataLost, st.Missing)
	}
	if l := st.Listings["s1/k2"]; l.Supplied != 10 || l.Held != 1 {
		t.Fatalf("s1/k2 after recover = %+v; want seeded from the catalog (10) with the new hold", l)
	}
}

// TestRedisRestartWithAOFKeepsServing: a Redis restarted with its AOF
// (appendonly yes, appendfsync always) lost nothing: the node keeps its
// epoch and goes on taking reservations, counts intact.
func TestRedisRestartWithAOFKeepsServing(t *testing.T) {
	h := newHarness(t, "redis")
	h.loadCatalog()
	h.createSale("fs1", 10, 5)
	a := h.login("u1")
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(2), a)

	h.redis.Stop()
	h.redis.Restart(t, true)
	waitFor(t, 30*time.Second, "reserving again after the restart", func() bool {
		return h.do("POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a).Code == CodeOK
	})
	// The records' client finds its connection gone at its first call.
	waitFor(t, 30*time.Second, "ready after the restart", func() bool { return h.do("GET", "/readyz", nil).Code == CodeOK })
	waitFor(t, 30*time.Second, "a clean sweep after the restart", func() bool { return h.eng.Sweep(t.Context()) == nil })
	st := h.stats()
	if st.DataLost != nil || len(st.Missing) != 0 || st.Sales["fs1"].Held != 3 || st.Sales["fs1"].Supplied != 10 {
		t.Fatalf("stats after a restart with AOF: data_lost %+v, missing %+v, fs1 %+v; want nothing lost, 3 held of 10", st.DataLost, st.Missing, st.Sales["fs1"])
	}
}

func hasMissing(ms []engine.Missing, kind, id string) bool {
	for _, m := range ms {
		if m.Kind == kind && m.ID == id {
			return true
		}
	}
	return false
}

// TestPebbleDiskFailingCircuit: with the WAL's writes and syncs failing
// (errorfs), every reserve is 503 and counts nothing as sold; after a few
// the inventory's circuit opens, reserves are answered by it without
// touching the disk, /readyz says not ready; the store stays refusing
// (internal/pebblefail: a process that cannot sync stops taking writes)
// even once the disk answers again, until it is restarted.
func TestPebbleDiskFailingCircuit(t *testing.T) {
	const openFor = 200 * time.Millisecond
	h := newHarness(t, "pebble-faults", engineOpts(func(o *engine.Options) {
		o.Circuit = engine.CircuitOptions{Failures: 3, OpenFor: openFor}
	}))
	h.loadCatalog()
	h.createSale("fs1", 100, 100)
	a := h.login("u1")
	h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a)

	h.walFaults.On.Store(true)
	for i := 0; h.circuit(engine.BackendInventory).State != "open"; i++ {
		if i == 20 {
			t.Fatalf("inventory circuit after 20 reserves on a failing disk = %+v; want open", h.circuit(engine.BackendInventory))
		}
		h.wantCode(CodeUnavailable, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a)
	}
	wantFastRefusals(h, a, 30, openFor)
	if r := h.wantCode(CodeUnavailable, "GET", "/readyz", nil); !strings.Contains(r.Msg, "inventory") {
		t.Errorf("/readyz on a failing disk: %q; want the inventory named", r.Msg)
	}
	h.walFaults.On.Store(false)
	// The probes keep failing: the store took a fatal error and refuses
	// every write until the process restarts.
	time.Sleep(2 * openFor)
	h.wantCode(CodeUnavailable, "POST", "/api/v1/flash-sales/fs1/reservations", reserveBody(1), a)
	// Nothing refused counts: the store itself (past the circuit) holds
	// the one acknowledged hold.
	p, err := h.store.Pool(t.Context(), "s1:fs:fs1")
	if err != nil || p.Held != 1 || p.Sold != 0 || p.Supplied != 100 {
		t.Fatalf("sale pool after the refused reserves: %+v, %v; want the one acknowledged hold of 100", p, err)
	}
	// The stats name what the circuit keeps them from reading.
	if st := h.stats(); len(st.Missing) == 0 && st.Sales["fs1"].Held != 1 {
		t.Fatalf("stats on a failing disk: fs1 %+v, missing %+v; want fs1 read or named missing", st.Sales["fs1"], st.Missing)
	}
}
