package gateway

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/valyala/fasthttp"
)

// TestAppendReservationOKMatchesSonic: the hand-written reservation answer
// is byte for byte what sonic writes, or it declines and sonic writes it.
func TestAppendReservationOKMatchesSonic(t *testing.T) {
	strs := []string{"", "s1", "b1:01HX5Q", "基准商品 0 号", "a\"b", `back\slash`, "tab\there", "nl\n", "<&>",
		"line\u2028sep", "para\u2029sep", "bad\xffutf8", "é", "\x7f", "emoji 😀", strings.Repeat("x", 300)}
	times := []time.Time{
		time.Date(2026, 11, 23, 15, 4, 5, 0, time.UTC),
		time.Date(2026, 11, 23, 15, 4, 5, 120000000, time.UTC),
		time.Date(2026, 11, 23, 15, 4, 5, 123456789, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("CST", 8*3600)),
		{},
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return strs[rng.IntN(len(strs))] }
	ints := []int64{0, 1, -1, 9900, 1 << 40, -1 << 62}
	pickInt := func() int64 { return ints[rng.IntN(len(ints))] }
	fast := 0
	for i := 0; i < 5000; i++ {
		r := engine.Reservation{
			ReservationID: pick(), Kind: pick(), SaleID: pick(), DealID: pick(), TeamID: pick(),
			UserID: pick(), StoreID: pick(), GuideID: pick(), SKUID: pick(),
			Quantity: pickInt(), UnitPrice: pickInt(), Amount: pickInt(),
			State: pick(), PaymentID: pick(), OrderID: pick(),
			CreatedAt: times[rng.IntN(len(times))], ExpiresAt: times[rng.IntN(len(times))], ExpiresAtMs: pickInt(),
		}
		if i%4 != 0 {
			// Mostly plain values, the case the fast path is for.
			r.ReservationID, r.Kind, r.SaleID, r.UserID, r.StoreID, r.State = "b1:01HX5Q", "flash", "fs1", "u-1", "b1", "held"
			r.DealID, r.TeamID, r.PaymentID, r.OrderID = "", "", "", ""
			r.CreatedAt, r.ExpiresAt = times[rng.IntN(4)], times[rng.IntN(4)]
		}
		switch n := rng.IntN(4); n {
		case 0:
		case 1:
			r.Items = []engine.Item{}
		default:
			for k := 0; k < n; k++ {
				r.Items = append(r.Items, engine.Item{SKUID: pick(), Title: pick(), Quantity: pickInt(), UnitPrice: pickInt()})
			}
		}
		if i%4 != 0 {
			r.GuideID, r.SKUID = []string{"", "g1"}[rng.IntN(2)], "bk0"
			for k := range r.Items {
				r.Items[k].SKUID, r.Items[k].Title = "bk0", []string{"", "基准商品 0 号", "<&> é 😀"}[rng.IntN(3)]
			}
		}
		want, werr := appendOK([]byte("prefix"), r)
		got, ok := appendReservationOK([]byte("prefix"), &r)
		if !ok {
			if string(got) != "prefix" {
				t.Fatalf("declined, but left %q", got)
			}
			continue
		}
		fast++
		if werr != nil {
			t.Fatalf("hand encoder wrote %s where sonic fails: %v", got, werr)
		}
		if string(got) != string(want) {
			t.Fatalf("reservation %+v:\nhand  %s\nsonic %s", r, got, want)
		}
	}
	if fast < 2500 {
		t.Fatalf("only %d of 5000 answers took the hand-written path", fast)
	}
}

// TestParseReserveBody: the fast path reads only the canonical body, and
// agrees with the strict decoder on everything it reads.
func TestParseReserveBody(t *testing.T) {
	for _, c := range []struct {
		body     string
		fast     bool
		qty      int64
		guide    string
		badInput bool
	}{
		{`{"quantity":1}`, true, 1, "", false},
		{`{"quantity":10000}`, true, 10000, "", false},
		{`{"quantity":99999}`, true, 99999, "", false},
		{`{"quantity":0}`, true, 0, "", false},
		{`{"quantity":100000}`, false, 100000, "", false},
		{`{"quantity":01}`, false, 0, "", true},
		{`{"quantity":-1}`, false, -1, "", false},
		{`{"quantity":1.5}`, false, 0, "", true},
		{`{"quantity":"1"}`, false, 0, "", true},
		{`{"quantity":}`, false, 0, "", true},
		{`{"quantity":1,"guide_id":"g1"}`, false, 1, "g1", false},
		{`{"quantity":1,"x":1}`, false, 0, "", true},
		{`{"quantity": 1}`, false, 1, "", false},
		{`{}`, false, 1, "", false},
		{``, false, 0, "", true},
		{`{"quantity":1}}`, false, 0, "", true},
		{`{"quantity":1}x`, false, 0, "", true},
		{`{"quantity":1} `, false, 1, "", false},
	} {
		_, fast := reserveBodyFast([]byte(c.body))
		if fast != c.fast {
			t.Errorf("%q: fast path %v; want %v", c.body, fast, c.fast)
		}
		qty, guide, err := parseReserveBody([]byte(c.body))
		if c.badInput {
			var ae *apiError
			if !errors.As(err, &ae) || ae.code != CodeBadRequest {
				t.Errorf("%q: err %v; want a bad request", c.body, err)
			}
			continue
		}
		if err != nil || qty != c.qty || guide != c.guide {
			t.Errorf("%q: %d %q %v; want %d %q", c.body, qty, guide, err, c.qty, c.guide)
		}
	}
}

// TestEngineCtxRequestID: the engine's context of a request carries its
// X-Request-Id under engine.RequestIDKey, and nothing under other keys.
func TestEngineCtxRequestID(t *testing.T) {
	s := &Server{o: Options{EngineTimeout: time.Second}}
	var rc fasthttp.RequestCtx
	rc.Response.Header.Set("X-Request-Id", "rid-7")
	c := s.newEngineCtx(&rc)
	defer c.cancel()
	if got := c.Value(engine.RequestIDKey{}); got != "rid-7" {
		t.Fatalf("Value(RequestIDKey) = %v; want rid-7", got)
	}
	if got := c.Value("other"); got != nil {
		t.Fatalf("Value(other) = %v; want nil", got)
	}
}

// TestAppendJSONTimeUTC: the digit-by-digit UTC path writes what
// time.Time's MarshalJSON writes, over random instants and fractions
// (whole seconds, milliseconds, microseconds, nanoseconds) of years 0-9999.
func TestAppendJSONTimeUTC(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	lo := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	fracs := []func() int{
		func() int { return 0 },
		func() int { return rng.IntN(1000) * 1e6 },
		func() int { return rng.IntN(1e6) * 1e3 },
		func() int { return rng.IntN(1e9) },
		func() int { return []int{1, 10, 100, 1e8, 5e8, 999999999}[rng.IntN(6)] },
	}
	for i := 0; i < 200000; i++ {
		sec := lo + rng.Int64N(hi-lo+1)
		if i%4 == 0 {
			sec = time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC).Unix() + rng.Int64N(400*86400)
		}
		tm := time.Unix(sec, int64(fracs[i%len(fracs)]())).UTC()
		want, err := tm.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendJSONTime([]byte("x"), tm)
		if !ok || string(got) != "x"+string(want) {
			t.Fatalf("appendJSONTime(%v) = %q, %v; want x%s", tm, got, ok, want)
		}
	}
	for _, tm := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC)} {
		if got, ok := appendJSONTime([]byte("x"), tm); ok || string(got) != "x" {
			t.Errorf("appendJSONTime(%v) = %q, %v; want it declined", tm, got, ok)
		}
	}
}
