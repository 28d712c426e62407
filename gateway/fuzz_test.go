package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/inventory"
	"github.com/valyala/fasthttp"
)

// inproc is a Server over a real engine called in process (no sockets),
// for fuzzing and the allocation test.
type inproc struct {
	srv   *Server
	eng   *engine.Engine
	token string
}

func newInproc(tb testing.TB) *inproc {
	tb.Helper()
	store := inventory.NewMemory(inventory.Options{})
	eng, err := engine.Open(context.Background(), engine.Options{Store: store})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := New(Options{
		Engine: eng, AdminToken: testAdminToken, FeedSecret: testFeedSecret,
		SessionSecret: []byte("session-secret-for-tests"),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { eng.Close(); store.Close() })
	var c engine.Catalog
	if err := json.Unmarshal([]byte(testCatalog), &c); err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if _, err := eng.LoadCatalog(ctx, c); err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	if _, err := eng.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: "f1", StoreID: "s1", SKUID: "k1", Price: 1,
		Quantity: 50, PerUserLimit: 3, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)}); err != nil {
		tb.Fatal(err)
	}
	tok, _ := srv.sess.sign("fuzzer")
	return &inproc{srv: srv, eng: eng, token: tok}
}

var loopbackAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}

// call serves one request in process and returns the response (valid
// until the next call).
func (p *inproc) call(ctx *fasthttp.RequestCtx, method, path string, body []byte, hdr ...string) *fasthttp.Response {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(path)
	req.SetBody(body)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	ctx.Init(&req, loopbackAddr, nil)
	p.srv.Handler()(ctx)
	return &ctx.Response
}

// fuzzRoutes are the decoding routes the fuzzer drives.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/api/v1/flash-sales/f1/reservations"},
	{"POST", "/api/v1/checkout"},
	{"POST", "/api/v1/session"},
	{"POST", "/api/v1/group-buys/d1/teams"},
	{"POST", "/api/v1/reservations/nope/pay"},
	{"POST", "/admin/v1/flash-sales"},
	{"POST", "/admin/v1/group-buys"},
	{"POST", "/internal/v1/inventory/feed"},
}

// FuzzRequestDecoding sends arbitrary bodies to the decoding routes: every
// answer must be a JSON envelope whose code is in API.md's table with the
// table's status, and the sale's books must balance.
func FuzzRequestDecoding(f *testing.F) {
	for i := range fuzzRoutes {
		for _, seed := range []string{
			``, `{}`, `null`, `[]`, `{"quantity":1}`, `{"quantity":-1}`, `{"quantity":1e99}`, `{"quantity":"1"}`,
			`{"quantity":1,"guide_id":"g1"}`, `{"quantity":1,"x":1}`, `{"quantity":`, `{"code":"u1"}`,
			`{"store_id":"s1","items":[{"sku_id":"k1","quantity":1}]}`, `{"store_id":"s1","items":[{"sku_id":"k1","quantity":1,"p":1}]}`,
			`{"payment_id":"p1"}`, `{"guide_id":"g1"}`,
			`{"sale_id":"fz","store_id":"s1","sku_id":"k2","price":1,"quantity":1,"starts_at":"2020-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:00Z"}`,
			`{"updates":[{"store_id":"s1","sku_id":"k3","on_hand":5,"seq":1}]}`, "{\"a\":\"\xff\"}", `{"quantity":1}garbage`,
		} {
			f.Add(uint8(i), []byte(seed))
		}
	}
	p := newInproc(f)
	var ctx fasthttp.RequestCtx
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		tsN, _ := strconv.ParseInt(ts, 10, 64)
		hdr := []string{"Authorization", "Bearer " + p.token}
		switch rt.path {
		case "/admin/v1/flash-sales", "/admin/v1/group-buys":
			hdr = []string{"Authorization", "Bearer " + testAdminToken}
		case "/internal/v1/inventory/feed":
			hdr = []string{"X-Surge-Timestamp", ts, "X-Surge-Signature", SignFeed([]byte(testFeedSecret), tsN, body)}
		}
		res := p.call(&ctx, rt.method, rt.path, body, hdr...)
		var env struct {
			Code *int   `json:"code"`
			Msg  string `json:"msg"`
		}
		if err := json.Unmarshal(res.Body(), &env); err != nil || env.Code == nil {
			t.Fatalf("%s %s %q: answer %q is not an envelope", rt.method, rt.path, body, res.Body())
		}
		if statusOf(*env.Code) != res.StatusCode() || codeTable[codeIndex(*env.Code)].code != *env.Code {
			t.Fatalf("%s %s %q: HTTP %d code %d", rt.method, rt.path, body, res.StatusCode(), *env.Code)
		}
		if *env.Code == CodeInternal {
			t.Fatalf("%s %s %q: 50000 %s", rt.method, rt.path, body, env.Msg)
		}
		st, err := p.eng.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for id, s := range st.Sales {
			if s.Supplied != s.Held+s.Sold+s.Remaining || s.Held < 0 || s.Remaining < 0 {
				t.Fatalf("sale %s books do not balance: %+v", id, s)
			}
		}
	})
}
