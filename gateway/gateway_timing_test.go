package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/inventory"
	"github.com/valyala/fasthttp"
)

// Benchmarks through real HTTP over loopback, each next to its floor
// measured in the same run: a bare fasthttp handler answering a fixed JSON
// body of the same size. x_floor is time per request over the floor's.
//
//	go test -run XXX -bench . -benchtime 20000x ./gateway

// benchConcurrency is the number of client goroutines (each with its own
// connection).
const benchConcurrency = 8

type benchTarget struct {
	srv  *Server
	addr string
	eng  *engine.Engine
	stop func()
}

func startBenchServer(b *testing.B, backend string) *benchTarget {
	b.Helper()
	var store inventory.Store
	var dir string
	switch backend {
	case "memory":
		store = inventory.NewMemory(inventory.Options{})
	case "pebble":
		p, err := inventory.OpenPebble(b.TempDir(), inventory.PebbleOptions{})
		if err != nil {
			b.Fatal(err)
		}
		store, dir = p, b.TempDir()
	}
	eng, err := engine.Open(context.Background(), engine.Options{Store: store, Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Options{Engine: eng, AdminToken: testAdminToken, SessionSecret: []byte("session-secret-for-bench"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	ctx := context.Background()
	cat := engine.Catalog{
		Stores:   []engine.Store{{StoreID: "s1", Name: "静安店", City: "上海"}},
		Guides:   []engine.Guide{{GuideID: "g1", StoreID: "s1", Name: "小王", Picks: []string{"k1"}}},
		Products: []engine.Product{{SKUID: "k1", Title: "羊毛大衣", Price: 59900, Images: []string{}}},
		Listings: []engine.Listing{{StoreID: "s1", SKUID: "k1", Price: 49900, OnHand: 100_000_000}},
	}
	for i := 2; i <= 24; i++ {
		sku := fmt.Sprintf("k%d", i)
		cat.Products = append(cat.Products, engine.Product{SKUID: sku, Title: "商品 " + sku, Price: int64(1000 * i), Images: []string{}})
		cat.Listings = append(cat.Listings, engine.Listing{StoreID: "s1", SKUID: sku, Price: int64(900 * i), OnHand: 50})
	}
	if _, err := eng.LoadCatalog(ctx, cat); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	if _, err := eng.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: "f1", StoreID: "s1", SKUID: "k1", Price: 9900,
		Quantity: 50_000_000, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour), HoldSeconds: 3600}); err != nil {
		b.Fatal(err)
	}
	return &benchTarget{srv: srv, addr: ln.Addr().String(), eng: eng, stop: func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		eng.Close()
		store.Close()
	}}
}

// startFloor serves body for every request with a bare fasthttp handler.
func startFloor(b *testing.B, body []byte) (addr string, stop func()) {
	b.Helper()
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json; charset=utf-8")
		ctx.SetBody(body)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(ln)
	return ln.Addr().String(), func() { s.Shutdown() }
}

// drive sends n requests from benchConcurrency clients and returns the
// elapsed time. mk fills request i.
func drive(b *testing.B, addr string, n int, mk func(req *fasthttp.Request, i int), want int) time.Duration {
	b.Helper()
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < benchConcurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &fasthttp.HostClient{Addr: addr, MaxConns: 1}
			req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(res)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				req.Reset()
				mk(req, i)
				req.Header.SetHost(addr)
				if err := c.Do(req, res); err != nil || res.StatusCode() != want {
					if failed.Load() == 0 {
						b.Logf("request %d: %v HTTP %d %.200s", i, err, res.StatusCode(), res.Body())
					}
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d requests failed", f, n)
	}
	return el
}

func report(b *testing.B, subject, floor time.Duration, bodyLen int) {
	n := float64(b.N)
	b.ReportMetric(float64(floor.Nanoseconds())/n, "floor_ns/op")
	b.ReportMetric(float64(subject)/float64(floor), "x_floor")
	b.ReportMetric(n/subject.Seconds(), "req/s")
	b.ReportMetric(float64(bodyLen), "body_bytes")
}

func BenchmarkStorePage(b *testing.B) {
	b.ReportAllocs()
	t := startBenchServer(b, "memory")
	defer t.stop()
	page, err := t.eng.StorePage("s1", "")
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 0, len(page.Body)+40)
	body = append(append(append(body, envelopeOKPrefix...), page.Body...), '}')
	floorAddr, stopFloor := startFloor(b, body)
	defer stopFloor()
	mk := func(req *fasthttp.Request, i int) { req.SetRequestURI("/api/v1/stores/s1/page") }
	b.StopTimer()
	drive(b, floorAddr, 1000, mk, 200) // warm both
	drive(b, t.addr, 1000, mk, 200)
	floor := drive(b, floorAddr, b.N, mk, 200)
	b.StartTimer()
	subject := drive(b, t.addr, b.N, mk, 200)
	b.StopTimer()
	report(b, subject, floor, len(body))
}

func benchReserve(b *testing.B, backend string) {
	b.ReportAllocs()
	t := startBenchServer(b, backend)
	defer t.stop()
	const usersLen = 1024
	auth := make([][]byte, usersLen)
	for i := range auth {
		tok, _ := t.srv.sess.sign(fmt.Sprintf("bench-user-%d", i))
		auth[i] = []byte("Bearer " + tok)
	}
	reqBody := []byte(`{"quantity":1}`)
	mk := func(req *fasthttp.Request, i int) {
		req.Header.SetMethod("POST")
		req.SetRequestURI("/api/v1/flash-sales/f1/reservations")
		req.Header.SetBytesV("Authorization", auth[i%usersLen])
		req.Header.Set("X-Device-Id", "bench-device")
		req.SetBody(reqBody)
	}
	// The floor answers a body the size of a reservation answer.
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	mk(&req, 0)
	ctx.Init(&req, loopbackAddr, nil)
	t.srv.Handler()(&ctx)
	if ctx.Response.StatusCode() != 200 {
		b.Fatalf("reserve: %s", ctx.Response.Body())
	}
	body := append([]byte(nil), ctx.Response.Body()...)
	floorAddr, stopFloor := startFloor(b, body)
	defer stopFloor()
	b.StopTimer()
	drive(b, floorAddr, 500, mk, 200)
	drive(b, t.addr, 500, mk, 200)
	floor := drive(b, floorAddr, b.N, mk, 200)
	b.StartTimer()
	subject := drive(b, t.addr, b.N, mk, 200)
	b.StopTimer()
	report(b, subject, floor, len(body))
}

func BenchmarkFlashReserveMemory(b *testing.B) { benchReserve(b, "memory") }
func BenchmarkFlashReservePebble(b *testing.B) { benchReserve(b, "pebble") }

// BenchmarkReserveInProcess is the gateway's own cost of a flash
// reservation (memory backend) without sockets.
func BenchmarkReserveInProcess(b *testing.B) {
	b.ReportAllocs()
	t := startBenchServer(b, "memory")
	defer t.stop()
	tok, _ := t.srv.sess.sign("bench-user")
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/api/v1/flash-sales/f1/reservations")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.SetBody([]byte(`{"quantity":1}`))
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, loopbackAddr, nil)
	h := t.srv.Handler()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		h(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("reserve: %s", ctx.Response.Body())
		}
	}
}
