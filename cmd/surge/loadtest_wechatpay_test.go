package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadtestPaysThroughFakeWeChatPay rehearses a flash sale with
// payment.provider=wechat end to end, three real commands: `surge
// wechatpay-test-keys` writes TEST keys and the serve settings, `surge
// serve` takes them, and `surge loadtest --wechatpay-test-keys` plays the
// buyers and the fake WeChat Pay. Every payment goes through prepay and a
// signed notification; the buyer's POST .../pay is never used.
func TestLoadtestPaysThroughFakeWeChatPay(t *testing.T) {
	bin := surgeBinary(t)
	dir := t.TempDir()
	keysDir, cfgFile, report := filepath.Join(dir, "wx-keys"), filepath.Join(dir, "wx.json"), filepath.Join(dir, "report.json")
	wxAddr, serveAddr := freeAddr(t), freeAddr(t)

	out, err := exec.Command(bin, "wechatpay-test-keys", keysDir, "--wechatpay-addr", wxAddr,
		"--serve-addr", serveAddr, "--config-out", cfgFile).CombinedOutput()
	if err != nil {
		t.Fatalf("surge wechatpay-test-keys: %v\n%s", err, out)
	}
	for _, want := range []string{"TEST", "SURGE_PAYMENT_PROVIDER=wechat", "--wechatpay-test-keys " + keysDir + " --wechatpay-addr " + wxAddr} {
		if !strings.Contains(string(out), want) {
			t.Errorf("surge wechatpay-test-keys does not print %q:\n%s", want, out)
		}
	}

	p := startSurgeAt(t, serveAddr, nil, "--backend", "pebble", "--data", filepath.Join(dir, "data"), "--config", cfgFile)

	start := time.Now()
	lt := exec.Command(bin, "loadtest", "--target", p.base, "--admin-token", testAdminToken,
		"--scenario", "flash", "--setup", "--setup-stores", "2", "--users", "200", "--rate", "200",
		"--duration", "2s", "--start-in", "200ms", "--hold", "3", "--pay", "0.8", "--cancel", "0.1",
		"--settle", "15s", "--order-wait", "10s", "--quiet", "--report", report,
		"--wechatpay-test-keys", keysDir, "--wechatpay-addr", wxAddr)
	out, err = lt.CombinedOutput()
	if err != nil {
		t.Fatalf("surge loadtest: %v (exit %d)\n%s\nserve:\n%s", err, lt.ProcessState.ExitCode(), out, p.output())
	}
	t.Logf("surge loadtest took %v:\n%s", time.Since(start).Round(time.Millisecond), out)

	var rep struct {
		Invariants struct {
			OK bool `json:"ok"`
		} `json:"invariants"`
		Routes   map[string]json.RawMessage `json:"routes"`
		Payments *struct {
			Prepays      int64 `json:"prepays"`
			BadPayParams int64 `json:"bad_pay_params"`
			Notified     int64 `json:"notified"`
			Paid         int64 `json:"paid"`
			Refused      int64 `json:"refused"`
		} `json:"payments"`
		Config struct {
			SaleID string `json:"sale_id"`
		} `json:"config"`
	}
	b, err := os.ReadFile(report)
	if err != nil || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("report (%v):\n%s", err, b)
	}
	pay := rep.Payments
	if !rep.Invariants.OK || pay == nil || pay.Paid == 0 || pay.BadPayParams != 0 || pay.Refused != 0 {
		t.Fatalf("report: invariants ok %v, payments %+v", rep.Invariants.OK, pay)
	}
	if _, ok := rep.Routes["pay"]; ok || rep.Routes["prepay"] == nil || rep.Routes["pay_notify"] == nil {
		t.Errorf("routes %s; want prepay and pay_notify, and no pay", b)
	}

	// The server's side: orders carry WeChat Pay transaction ids, one per
	// unit sold, and nobody called POST .../pay.
	s := getStats(t, p.base)
	sold := s.Sales[rep.Config.SaleID].Sold
	if sold != pay.Paid || s.Orders.Written < sold || sold == 0 {
		t.Errorf("sold %d, orders written %d; want the %d paid through WeChat Pay", sold, s.Orders.Written, pay.Paid)
	}
	// The run's users are "<tag>-u%07d" (dev login), the sale "<tag>-sale".
	tag := strings.TrimSuffix(rep.Config.SaleID, "-sale")
	created := int64(0)
	for i := 0; i < 200; i++ {
		tok := login(t, p.base, fmt.Sprintf("%s-u%07d", tag, i))
		var raw json.RawMessage
		mustCall(t, "GET", p.base+"/api/v1/me/orders", tok, nil, &raw)
		type order struct {
			ReservationID string `json:"reservation_id"`
			SaleID        string `json:"sale_id"`
			PaymentID     string `json:"payment_id"`
			State         string `json:"state"`
		}
		var list []order
		if json.Unmarshal(raw, &list) != nil {
			var wrapped struct {
				Orders []order `json:"orders"`
			}
			if err := json.Unmarshal(raw, &wrapped); err != nil {
				t.Fatalf("GET /api/v1/me/orders: %v: %s", err, raw)
			}
			list = wrapped.Orders
		}
		for _, o := range list {
			if o.SaleID != rep.Config.SaleID {
				continue
			}
			if !strings.HasPrefix(o.PaymentID, "4200") || len(o.PaymentID) != 28 {
				t.Errorf("order of %s: payment_id %q is not a WeChat Pay transaction id", o.ReservationID, o.PaymentID)
			}
			if o.State == "created" {
				created++
			}
		}
	}
	if created != sold {
		t.Errorf("%d orders created for sale %s; want %d (sold)", created, rep.Config.SaleID, sold)
	}
	resp, err := http.Get(p.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(metrics), `route="reservation_pay"`) {
		t.Errorf("POST .../pay was called:\n%s", grepLines(string(metrics), `route="reservation_pay"`))
	}
	if !strings.Contains(string(metrics), `surge_gateway_requests_total{code="0",route="wechatpay_notify"}`) {
		t.Errorf("no notification was taken:\n%s", grepLines(string(metrics), "wechatpay"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
