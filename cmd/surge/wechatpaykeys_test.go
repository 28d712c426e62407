package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surge-retail/surge/config"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

func runTestKeys(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newWeChatPayTestKeysCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestWeChatPayTestKeys: the keys written are what surge serve reads with
// the settings printed, and keys already in DIR are kept unless --force.
func TestWeChatPayTestKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	cfgFile := filepath.Join(t.TempDir(), "wx.json")
	out, err := runTestKeys(t, dir, "--wechatpay-addr", "127.0.0.1:18090", "--serve-addr", "127.0.0.1:18080", "--config-out", cfgFile)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"TEST", "never in production", "SURGE_PAYMENT_BASE_URL=http://127.0.0.1:18090",
		"SURGE_PAYMENT_NOTIFY_URL=http://127.0.0.1:18080/api/v1/payments/wechat/notify", "--wechatpay-addr 127.0.0.1:18090"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
	keys, err := wechatpaytest.LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cfgFile)
	if err != nil || !json.Valid(b) {
		t.Fatalf("config file (%v): %s", err, b)
	}
	c, err := config.Load(config.Sources{File: cfgFile, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("config.Load(%s): %v", cfgFile, err)
	}
	wp, err := wechatPayOf(c.Payment)
	if err != nil || wp == nil {
		t.Fatalf("wechatPayOf(%+v) = %v, %v", c.Payment, wp, err)
	}
	if got := wp.Config(); got.MchID != keys.MchID || got.AppID != keys.AppID || got.BaseURL != "http://127.0.0.1:18090" {
		t.Errorf("serve's WeChat Pay config %v; want the test keys' at the fake's address", got)
	}

	if out, err := runTestKeys(t, dir); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second run over the same DIR: %v\n%s", err, out)
	}
	if again, _ := wechatpaytest.LoadKeys(dir); again.MchID != keys.MchID {
		t.Fatalf("keys were overwritten without --force")
	}
	if out, err := runTestKeys(t, dir, "--force"); err != nil {
		t.Fatalf("--force: %v\n%s", err, out)
	}
	if again, _ := wechatpaytest.LoadKeys(dir); again.MchID == keys.MchID {
		t.Errorf("--force kept the old keys")
	}
	if _, err := runTestKeys(t, dir, "--force", "--wechatpay-addr", "8090"); err == nil {
		t.Errorf("--wechatpay-addr 8090 (no host) accepted")
	}
}
