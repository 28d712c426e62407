package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/pebblefail"
	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// The end-to-end tests run a real Server with a real engine over a real
// inventory store (memory, or Pebble in t.TempDir()) and talk to it over
// loopback HTTP.

const (
	testAdminToken = "admin-token-for-tests"
	testFeedSecret = "feed-secret-for-tests"
)

// testCatalog is a small catalog: two stores, a guide, three products.
const testCatalog = `{
 "stores":   [{"store_id": "s1", "name": "静安店", "city": "上海"},
              {"store_id": "s2", "name": "徐汇店", "city": "上海"}],
 "guides":   [{"guide_id": "g1", "store_id": "s1", "name": "小王", "picks": ["k1"]}],
 "products": [{"sku_id": "k1", "title": "羊毛大衣", "price": 59900, "images": []},
              {"sku_id": "k2", "title": "围巾", "price": 9900, "images": []},
              {"sku_id": "k3", "title": "手套", "price": 4900, "images": []}],
 "listings": [{"store_id": "s1", "sku_id": "k1", "price": 49900, "on_hand": 100},
              {"store_id": "s1", "sku_id": "k2", "price": 8900, "on_hand": 10},
              {"store_id": "s1", "sku_id": "k3", "price": 3900, "on_hand": 3},
              {"store_id": "s2", "sku_id": "k1", "price": 52900, "on_hand": 50}]}`

// testRisk is a real risk hook with test-controlled behaviour, keyed by
// the X-Device-Id the gateway passes through: "bot" is denied, "hasty"
// is over its rate limit, "panic" panics (a bug below the gateway), "block" waits until released.
type testRisk struct {
	mu      sync.Mutex
	entered chan string   // receives the route of each blocked attempt
	release chan struct{} // closing it lets blocked attempts go on
	ips     []string      // the IPs seen
}

func newTestRisk() *testRisk {
	return &testRisk{entered: make(chan string, 1024), release: make(chan struct{})}
}

func (r *testRisk) Check(ctx context.Context, in engine.RiskInput) engine.Verdict {
	r.mu.Lock()
	r.ips = append(r.ips, in.IP)
	rel := r.release
	r.mu.Unlock()
	switch in.DeviceID {
	case "bot":
		return engine.Verdict{Allow: false, Reason: "blocklist"}
	case "hasty":
		return engine.Verdict{Allow: false, Reason: engine.RiskReasonRateUser}
	case "panic":
		panic("test risk hook panics")
	case "block":
		r.entered <- in.Route
		select {
		case <-rel:
		case <-ctx.Done():
		}
	}
	return engine.Verdict{Allow: true}
}

// unblock releases blocked attempts (and later ones go straight through).
func (r *testRisk) unblock() {
	r.mu.Lock()
	select {
	case <-r.release:
	default:
		close(r.release)
	}
	r.mu.Unlock()
}

func (r *testRisk) lastIP() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ips) == 0 {
		return ""
	}
	return r.ips[len(r.ips)-1]
}

// testClock is real time plus an offset tests can advance; the store, the
// engine and the gateway share it.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

type harness struct {
	t      *testing.T
	clock  *testClock
	srv    *Server
	eng    *engine.Engine
	store  inventory.Store
	risk   *testRisk
	base   string
	client *http.Client
	now    time.Time

	// redis is the "redis" backend's server; walFaults fails the WAL
	// writes of the "pebble-faults" backend while On (a failing disk).
	redis     *redistest.Server
	walFaults *pebblefail.WALFaults
}

type harnessOpt func(*Options)

// engineOpts is a harnessOpt that changes the engine's Options instead
// (newHarness applies it before opening the engine).
type engineOpts func(*engine.Options)

// newHarness starts a Server over a real engine; backend is "memory",
// "pebble", "redis" (inventory and records on a redis-server of the
// test's own, h.redis) or "pebble-faults" (Pebble in memory through
// errorfs, h.walFaults).
func newHarness(t *testing.T, backend string, opts ...any) *harness {
	t.Helper()
	clock := &testClock{}
	var store inventory.Store
	var rsrv *redistest.Server
	var faults *pebblefail.WALFaults
	switch backend {
	case "pebble-faults":
		faults = &pebblefail.WALFaults{}
		p, err := inventory.OpenPebble("db", inventory.PebbleOptions{
			Options: inventory.Options{Now: clock.now},
			FS:      reuseThroughErrorfs{errorfs.Wrap(vfs.NewMem(), faults)},
		})
		if err != nil {
			t.Fatalf("OpenPebble: %v", err)
		}
		store = p
	case "redis":
		rsrv = redistest.Start(t)
		r, err := redisinv.Open(context.Background(), redisinv.Options{Options: inventory.Options{Now: clock.now}, Addr: rsrv.Addr})
		if err != nil {
			t.Fatalf("redisinv.Open: %v", err)
		}
		store = r
	case "memory":
		store = inventory.NewMemory(inventory.Options{Now: clock.now})
	case "pebble":
		p, err := inventory.OpenPebble(t.TempDir(), inventory.PebbleOptions{Options: inventory.Options{Now: clock.now}})
		if err != nil {
			t.Fatalf("OpenPebble: %v", err)
		}
		store = p
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	risk := newTestRisk()
	ctx := context.Background()
	eo := engine.Options{Store: store, Risk: risk, Now: clock.now}
	switch backend {
	case "pebble":
		eo.Dir = t.TempDir()
	case "redis":
		eo.RedisAddr = rsrv.Addr
	}
	for _, f := range opts {
		if f, ok := f.(engineOpts); ok {
			f(&eo)
		}
	}
	eng, err := engine.Open(ctx, eo)
	if err != nil {
		store.Close()
		t.Fatalf("engine.Open: %v", err)
	}
	o := Options{
		Engine:        eng,
		AdminToken:    testAdminToken,
		FeedSecret:    testFeedSecret,
		SessionSecret: []byte("session-secret-for-tests"),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:           clock.now,
	}
	for _, f := range opts {
		switch f := f.(type) {
		case engineOpts:
		case harnessOpt:
			f(&o)
		case func(*Options):
			f(&o)
		default:
			t.Fatalf("newHarness: option of type %T", f)
		}
	}
	srv, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	h := &harness{
		t: t, clock: clock, srv: srv, eng: eng, store: store, risk: risk, redis: rsrv, walFaults: faults,
		base: "http://" + ln.Addr().String(),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 256, MaxConnsPerHost: 512,
		}},
	}
	t.Cleanup(func() {
		risk.unblock()
		// Idle client connections first: a connection that never sent a
		// request would hold Shutdown until the read timeout.
		h.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		h.client.CloseIdleConnections()
		eng.Close()
		store.Close()
	})
	return h
}

// reuseThroughErrorfs makes an errorfs inject its faults into recycled WAL
// files too (errorfs hands back a reused file unwrapped; see
// inventory/pebble_wal_test.go).
type reuseThroughErrorfs struct{ *errorfs.FS }

func (f reuseThroughErrorfs) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.Rename(oldname, newname); err != nil {
		return nil, err
	}
	return f.OpenReadWrite(newname, category)
}

// resp is an answer as a client sees it.
type resp struct {
	Status int
	Header http.Header
	Raw    []byte
	Code   int             `json:"code"`
	Msg    string          `json:"msg"`
	Data   json.RawMessage `json:"data"`
}

// do sends a request; hdr is "Key: value" pairs.
func (h *harness) do(method, path string, body any, hdr ...string) resp {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, kv := range hdr {
		k, v, _ := strings.Cut(kv, ": ")
		req.Header.Set(k, v)
	}
	res, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	r := resp{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if len(raw) > 0 && method != "HEAD" {
		if err := json.Unmarshal(raw, &r); err != nil {
			h.t.Fatalf("%s %s: answer is not a JSON envelope: %q", method, path, raw)
		}
		// A wrong method is 405 (HTTP requires it) with code 40000 and Allow.
		wrongMethod := r.Status == 405 && r.Code == CodeBadRequest && r.Header.Get("Allow") != ""
		if r.Status != statusOf(r.Code) && !wrongMethod {
			h.t.Errorf("%s %s: HTTP %d with code %d (%s); the table says %d", method, path, r.Status, r.Code, r.Msg, statusOf(r.Code))
		}
		if (r.Status == 429 || r.Status == 503) && r.Header.Get("Retry-After") == "" {
			h.t.Errorf("%s %s: %d without Retry-After", method, path, r.Status)
		}
	}
	return r
}

// want checks an answer's code and returns it.
func (h *harness) want(r resp, code int) resp {
	h.t.Helper()
	if r.Code != code {
		h.t.Fatalf("answer code %d (HTTP %d, %q); want %d", r.Code, r.Status, r.Msg, code)
	}
	return r
}

// wantCode sends a request and checks its code.
func (h *harness) wantCode(code int, method, path string, body any, hdr ...string) resp {
	h.t.Helper()
	r := h.do(method, path, body, hdr...)
	if r.Code != code {
		h.t.Fatalf("%s %s: code %d (HTTP %d, %q); want %d", method, path, r.Code, r.Status, r.Msg, code)
	}
	return r
}

// into decodes an answer's data.
func into[T any](t *testing.T, r resp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Data, &v); err != nil {
		t.Fatalf("cannot decode data %s: %v", r.Data, err)
	}
	return v
}

const adminAuth = "Authorization: Bearer " + testAdminToken

// login returns the bearer header of a dev session for uid.
func (h *harness) login(uid string) string {
	h.t.Helper()
	r := h.wantCode(CodeOK, "POST", "/api/v1/session", map[string]string{"code": uid})
	s := into[sessionAnswer](h.t, r)
	if s.UserID != uid || s.Token == "" {
		h.t.Fatalf("session for %q = %+v", uid, s)
	}
	return "Authorization: Bearer " + s.Token
}

func (h *harness) loadCatalog() {
	h.t.Helper()
	h.wantCode(CodeOK, "PUT", "/admin/v1/catalog", testCatalog, adminAuth)
}

// createSale creates a running flash sale of s1/k1.
func (h *harness) createSale(id string, qty, perUser int64) {
	h.t.Helper()
	now := time.Now()
	h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{
		SaleID: id, StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: qty, PerUserLimit: perUser,
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour), HoldSeconds: 300,
	}, adminAuth)
}

// stats returns /admin/v1/stats.
func (h *harness) stats() statsAnswer {
	h.t.Helper()
	return into[statsAnswer](h.t, h.wantCode(CodeOK, "GET", "/admin/v1/stats", nil, adminAuth))
}

// stockState is the state a bad request must not change: every pool's
// counts and the orders.
func (h *harness) stockState() string {
	h.t.Helper()
	st := h.stats()
	b, _ := json.Marshal(struct {
		S, D, L any
		W       int64
	}{st.Sales, st.Deals, st.Listings, st.Orders.Written})
	return string(b)
}

// feed posts a signed feed body at time ts.
func (h *harness) feed(body string, ts int64) resp {
	h.t.Helper()
	return h.do("POST", "/internal/v1/inventory/feed", body,
		"X-Surge-Timestamp: "+strconv.FormatInt(ts, 10),
		"X-Surge-Signature: "+SignFeed([]byte(testFeedSecret), ts, []byte(body)))
}

func reserveBody(q int64) string { return fmt.Sprintf(`{"quantity":%d}`, q) }
