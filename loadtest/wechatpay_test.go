package loadtest

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

// wechatRun runs flashConfig (changed by cfgFn) against the fake Surge in
// WeChat Pay mode (changed by fakeFn), with test keys written to a
// directory as `surge wechatpay-test-keys` writes them.
func wechatRun(t *testing.T, fakeFn func(*fakeServer), cfgFn func(*Config)) (*Report, *fakeServer) {
	t.Helper()
	keys, err := wechatpaytest.DefaultKeys()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := wechatpaytest.WriteKeys(dir, keys); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	f := newFake()
	f.startWeChat(t, keys, addr)
	if fakeFn != nil {
		fakeFn(f)
	}
	srv := f.start(t)
	cfg := flashConfig(srv.URL)
	cfg.WeChatPayTestKeys, cfg.WeChatPayAddr = dir, addr
	if cfgFn != nil {
		cfgFn(&cfg)
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Payments == nil {
		t.Fatalf("no payments in the report")
	}
	if _, ok := rep.Routes["pay"]; ok {
		t.Errorf("POST .../pay was used with WeChat Pay: %+v", rep.Routes["pay"])
	}
	return rep, f
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestWeChatPayFlashPasses(t *testing.T) {
	rep, f := wechatRun(t, nil, nil)
	if !rep.Invariants.OK {
		t.Fatalf("violations: %+v", rep.Invariants.Violations)
	}
	p := rep.Payments
	if p.Prepays == 0 || p.Paid == 0 || p.Notified != p.Paid || p.Late != 0 || p.BadPayParams != 0 || p.Refused != 0 {
		t.Fatalf("payments %+v", p)
	}
	if p.OrdersPlaced != p.Prepays {
		t.Errorf("orders placed at the fake WeChat Pay %d; want one per prepay, %d", p.OrdersPlaced, p.Prepays)
	}
	if s := rep.Sales[f.saleID()]; s.Sold != p.Paid {
		t.Errorf("sold %d; want the %d paid through WeChat Pay", s.Sold, p.Paid)
	}
	for _, route := range []string{routePrepay, routePayNotify} {
		if rep.Routes[route].Count == 0 {
			t.Errorf("route %s not recorded: %v", route, sortedKeys(rep.Routes))
		}
	}
	if n := rep.Routes[routePayNotify].Outcomes[outcomeNotified]; n != p.Notified {
		t.Errorf("pay_notify outcome 204 = %d; want %d", n, p.Notified)
	}
}

func TestWeChatPayBadPaySignIsViolation(t *testing.T) {
	rep, _ := wechatRun(t, func(f *fakeServer) { f.badPaySign = true }, nil)
	if rep.ExitCode() != 1 || violationsOf(rep, "pay_params") == 0 {
		t.Fatalf("a server signing with the wrong key passed: %+v", rep.Invariants)
	}
	if p := rep.Payments; p.BadPayParams == 0 || p.Notified != 0 {
		t.Errorf("payments %+v", p)
	}
	if rep.Routes[routePrepay].Outcomes[outcomeBadPayParams] == 0 {
		t.Errorf("prepay outcomes %v", rep.Routes[routePrepay].Outcomes)
	}
}

// TestWeChatPayLatePaymentsAreReleased: payments that arrive after the
// hold ended are refunded by the server; the run counts them as released,
// and the invariants hold.
func TestWeChatPayLatePaymentsAreReleased(t *testing.T) {
	rep, f := wechatRun(t, func(f *fakeServer) { f.holdMs, f.notifyLate = 300, true }, nil)
	if !rep.Invariants.OK {
		t.Fatalf("violations: %+v", rep.Invariants.Violations)
	}
	p := rep.Payments
	if p.Late == 0 || p.Paid != 0 {
		t.Fatalf("payments %+v; want all late", p)
	}
	if s := rep.Sales[f.saleID()]; s.Sold != 0 {
		t.Errorf("sold %d; want 0 (every payment was late)", s.Sold)
	}
	if rep.Reservations["flash_paid"] != 0 || rep.Reservations["flash_released"] < p.Late {
		t.Errorf("reservations %v; late payments must count as released", rep.Reservations)
	}
	f.mu.Lock()
	refunds := f.refunds
	f.mu.Unlock()
	if refunds < p.Late {
		t.Errorf("the server refunded %d; want at least the %d late", refunds, p.Late)
	}
}

// TestWeChatPayRefundedWhileHeldIsLostPayment: a server that refunds a
// payment notified while the hold had seconds left broke its promise.
func TestWeChatPayRefundedWhileHeldIsLostPayment(t *testing.T) {
	rep, _ := wechatRun(t, func(f *fakeServer) { f.refundEarly = true }, nil)
	if rep.ExitCode() != 1 || violationsOf(rep, "paid_lost") == 0 {
		t.Fatalf("a server refunding live holds passed: %+v", rep.Invariants)
	}
}

func TestWeChatPayResendsAfter5xx(t *testing.T) {
	rep, _ := wechatRun(t, func(f *fakeServer) { f.failNotify = 2 }, nil)
	if !rep.Invariants.OK {
		t.Fatalf("violations: %+v", rep.Invariants.Violations)
	}
	if p := rep.Payments; p.Resent < 2 || p.Paid == 0 {
		t.Fatalf("payments %+v; want 2 resent and payments", p)
	}
	if rep.Routes[routePayNotify].Outcomes["http_500"] != 2 {
		t.Errorf("pay_notify outcomes %v", rep.Routes[routePayNotify].Outcomes)
	}
}

func TestWeChatPayGroup(t *testing.T) {
	rep, _ := wechatRun(t, func(f *fakeServer) { f.holdMs = 300 }, func(c *Config) {
		c.Scenario = ScenarioGroup
		c.DealQuantity, c.TeamSize, c.TeamWindow = 12, 2, time.Second
		c.PayShare, c.CancelShare = 0.7, 0
	})
	if !rep.Invariants.OK {
		t.Fatalf("violations: %+v", rep.Invariants.Violations)
	}
	if p := rep.Payments; p.Notified == 0 {
		t.Fatalf("payments %+v", p)
	}
}

func TestWeChatPayUsage(t *testing.T) {
	base := flashConfig("http://127.0.0.1:1")
	for _, c := range []struct{ keys, addr string }{
		{"", "127.0.0.1:9"},
		{"/tmp/keys", ""},
		{"/tmp/keys", "no-port"},
	} {
		cfg := base
		cfg.WeChatPayTestKeys, cfg.WeChatPayAddr = c.keys, c.addr
		if err := cfg.Validate(); !errors.Is(err, ErrUsage) {
			t.Errorf("Validate(keys %q, addr %q) = %v; want ErrUsage", c.keys, c.addr, err)
		}
	}
	// A directory without keys is a usage error, found before any load.
	f := newFake()
	srv := f.start(t)
	cfg := flashConfig(srv.URL)
	cfg.WeChatPayTestKeys, cfg.WeChatPayAddr = filepath.Join(t.TempDir(), "none"), freeLoopbackAddr(t)
	if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrUsage) {
		t.Errorf("Run with no keys = %v; want ErrUsage", err)
	}
}
