package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "surge.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsValidate(t *testing.T) {
	c, err := Load(Sources{Getenv: env(nil)})
	if err != nil {
		t.Fatalf("Load(defaults) = %v; want nil", err)
	}
	if c.Addr != ":8080" || c.Backend != "pebble" || c.Data != "./surge-data" || c.LogLevel != "info" {
		t.Fatalf("defaults = %+v", c)
	}
	if c.Risk.UserRate != 5 || c.Risk.IPRate != 50 {
		t.Fatalf("risk rate defaults = %+v", c.Risk)
	}
	// What a component owns stays unset here, so that the component's
	// default applies: body_max_bytes 65536, login.provider dev and
	// admission.sale_admit_factor 4 are the gateway's, and
	// cmd/surge's TestEmptyConfigIsComponentDefaults checks that serve
	// ends up with them.
	if c.BodyMaxBytes != 0 || c.Login.Provider != "" || c.Admission.SaleAdmitFactor != 0 || c.Admission.ReadsMax != 0 {
		t.Fatalf("component-owned settings = %+v; want them unset (zero)", c)
	}
}

func TestPrecedenceFlagsOverEnvOverFile(t *testing.T) {
	file := writeFile(t, `{"addr": "127.0.0.1:7000", "backend": "memory", "log_level": "warn",
		"login": {"timeout": "2s"}, "risk": {"user_rate": 9, "blocklist": ["u1", "10.0.0.9"]},
		"admission": {"writes_max": 10, "writes_min": 4, "writes_fixed": true}}`)
	c, err := Load(Sources{
		File:   file,
		Getenv: env(map[string]string{"SURGE_ADDR": "127.0.0.1:7001", "SURGE_BACKEND": "redis", "SURGE_ADMIN_TOKEN": "tok"}),
		Flags:  map[string]string{"addr": "127.0.0.1:7002"},
	})
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	f := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v; want %v", name, got, want)
		}
	}
	f("addr (flag wins)", c.Addr, "127.0.0.1:7002")
	f("backend (env over file)", c.Backend, "redis")
	f("log_level (file)", c.LogLevel, "warn")
	f("admin_token (env)", c.AdminToken, "tok")
	f("login.timeout", c.Login.Timeout, 2*time.Second)
	f("risk.user_rate", c.Risk.UserRate, 9.0)
	f("risk.blocklist", strings.Join(c.Risk.Blocklist, "|"), "u1|10.0.0.9")
	f("admission.writes_max", c.Admission.WritesMax, 10)
	f("admission.writes_min", c.Admission.WritesMin, 4)
	f("admission.writes_fixed", c.Admission.WritesFixed, true)
	f("admission.reads_max (unset: the gateway's default, 4096)", c.Admission.ReadsMax, 0)
}

func TestBadSettingsAreNamed(t *testing.T) {
	f := func(src Sources, wantInMsg string) {
		t.Helper()
		if src.Getenv == nil {
			src.Getenv = env(nil)
		}
		_, err := Load(src)
		if err == nil {
			t.Fatalf("Load(%+v) = nil; want an error mentioning %q", src, wantInMsg)
		}
		if !errors.Is(err, ErrInvalid) && !strings.Contains(err.Error(), "cannot read") {
			t.Errorf("Load error %v is not ErrInvalid", err)
		}
		if !strings.Contains(err.Error(), wantInMsg) {
			t.Errorf("Load error = %q; want it to mention %q", err, wantInMsg)
		}
	}
	f(Sources{Flags: map[string]string{"backend": "mysql"}}, "backend")
	f(Sources{Flags: map[string]string{"orders": "postgres://u:p@h:1/db"}}, "orders")
	f(Sources{Flags: map[string]string{"backend": "redis", "redis": "10.0.0.1:7000,,10.0.0.2:7000"}}, "redis")
	f(Sources{Flags: map[string]string{"addr": "nonsense"}}, "addr")
	f(Sources{Flags: map[string]string{"nope": "1"}}, `unknown flag setting "nope"`)
	f(Sources{Getenv: env(map[string]string{"SURGE_BODY_MAX_BYTES": "lots"})}, "SURGE_BODY_MAX_BYTES")
	f(Sources{Getenv: env(map[string]string{"SURGE_BODY_MAX_BYTES": "1"})}, "body_max_bytes")
	f(Sources{Getenv: env(map[string]string{"SURGE_SWEEP_INTERVAL": "soon"})}, "duration")
	f(Sources{Flags: map[string]string{"reservation_retention": "5m"}}, "reservation_retention")
	f(Sources{Getenv: env(map[string]string{"SURGE_RESERVATION_RETENTION": "-1h"})}, "reservation_retention")
	f(Sources{Flags: map[string]string{"disk_entries_max": "10"}}, "disk_entries_max")
	f(Sources{Getenv: env(map[string]string{"SURGE_DISK_ENTRIES_MAX": "-2"})}, "disk_entries_max")
	f(Sources{Flags: map[string]string{"login.provider": "wechat"}}, "app_id")
	f(Sources{Flags: map[string]string{"trusted_proxies": "127.0.0.1"}}, "CIDR")
	f(Sources{Flags: map[string]string{"risk.webhook_url": "ftp://x"}}, "webhook_url")
	f(Sources{Flags: map[string]string{"admission.writes_max": "10", "admission.writes_min": "20"}}, "admission.writes_min")
	f(Sources{Getenv: env(map[string]string{"SURGE_CIRCUIT_FAILURES": "-2"})}, "circuit.failures")
	f(Sources{Getenv: env(map[string]string{"SURGE_CIRCUIT_OPEN_FOR": "1ms"})}, "circuit.open_for")
	f(Sources{File: writeFile(t, `{"idempotency_new_keys_per_second": -5}`)}, "idempotency_new_keys_per_second")
	f(Sources{File: writeFile(t, `{"adr": ":1"}`)}, `unknown setting "adr"`)
	f(Sources{File: writeFile(t, `{"addr": `)}, "config file")
	f(Sources{File: writeFile(t, `{"risk": {"blocklist": [1]}}`)}, "list of strings")
	f(Sources{File: filepath.Join(t.TempDir(), "missing.json")}, "cannot read config file")
}

func TestEnvNamesAndKeys(t *testing.T) {
	if got := EnvName("login.wechat_base_url"); got != "SURGE_LOGIN_WECHAT_BASE_URL" {
		t.Fatalf("EnvName = %q", got)
	}
	keys := strings.Join(Keys(), " ")
	for _, k := range []string{"addr", "data", "backend", "redis", "demo", "admin_token", "feed_secret", "risk.require_device", "admission.sale_admit_factor",
		"circuit.failures", "circuit.open_for", "idempotency_new_keys_per_second"} {
		if !strings.Contains(" "+keys+" ", " "+k+" ") {
			t.Errorf("Keys() lacks %q", k)
		}
	}
}

// TestReservationRetention: "forever" keeps every reservation (it was
// spelled 0 before zero came to mean "the engine's default", 24h, which an
// unset or zero retention is now; cmd/surge's tests check what the engine
// gets).
func TestReservationRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{"forever": Forever, "48h": 48 * time.Hour, "": 0, "0s": 0} {
		src := Sources{Getenv: env(nil)}
		if in != "" {
			src.Flags = map[string]string{"reservation_retention": in}
		}
		c, err := Load(src)
		if err != nil {
			t.Fatalf("Load(reservation_retention %q) = %v", in, err)
		}
		if c.ReservationRetention != want {
			t.Fatalf("reservation_retention %q = %s; want %s", in, c.ReservationRetention, want)
		}
	}
}

func TestRedisAuth(t *testing.T) {
	c, err := Load(Sources{Getenv: env(map[string]string{"SURGE_BACKEND": "redis", "SURGE_REDIS_USERNAME": "surge", "SURGE_REDIS_PASSWORD": "s3cret"})})
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if c.RedisUsername != "surge" || c.RedisPassword != "s3cret" {
		t.Fatalf("redis auth = %q, %q; want surge, s3cret", c.RedisUsername, c.RedisPassword)
	}
	c, err = Load(Sources{Getenv: env(nil), File: writeFile(t, `{"redis_username": "u", "redis_password": "p"}`)})
	if err != nil || c.RedisUsername != "u" || c.RedisPassword != "p" {
		t.Fatalf("redis auth from file = %q, %q, %v", c.RedisUsername, c.RedisPassword, err)
	}
	// A bad setting next to the password is named without the password.
	_, err = Load(Sources{Getenv: env(map[string]string{"SURGE_REDIS_PASSWORD": "s3cret", "SURGE_BACKEND": "redis", "SURGE_REDIS": "nonsense"})})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Load(bad redis) = %v; want an error without the password", err)
	}
}

// TestWeChatPaySettingsAllNamed: with provider wechat, every missing or
// malformed payment setting is named in one error, and a keys directory
// stands in for the file and id settings.
func TestWeChatPaySettingsAllNamed(t *testing.T) {
	_, err := Load(Sources{Getenv: env(map[string]string{
		"SURGE_PAYMENT_PROVIDER":   "wechat",
		"SURGE_PAYMENT_API_V3_KEY": "too-short",
		"SURGE_PAYMENT_BASE_URL":   "ftp://wechat",
	})})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Load = %v; want ErrInvalid", err)
	}
	for _, want := range []string{"payment.mch_id", "payment.app_id", "payment.merchant_serial", "payment.merchant_key_file",
		"payment.platform_key_file", "payment.platform_key_id", "payment.api_v3_key must be 32 characters",
		"payment.base_url", "payment.notify_url"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "too-short") {
		t.Errorf("error %q shows the APIv3 key", err)
	}
	c, err := Load(Sources{Getenv: env(map[string]string{
		"SURGE_PAYMENT_PROVIDER":   "wechat",
		"SURGE_PAYMENT_KEYS_DIR":   "/etc/surge/wechatpay",
		"SURGE_PAYMENT_NOTIFY_URL": "https://shop.example/api/v1/payments/wechat/notify",
	})})
	if err != nil || c.Payment.KeysDir != "/etc/surge/wechatpay" {
		t.Fatalf("Load with a keys directory = %+v, %v", c.Payment, err)
	}
	if _, err := Load(Sources{Getenv: env(map[string]string{"SURGE_PAYMENT_PROVIDER": "alipay"})}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("provider alipay: %v; want ErrInvalid", err)
	}
}

// TestSalesLottery: sales.lottery_window takes 0 (the engine's default),
// "off" or a window up to 10s; "off" is no spelling of other durations,
// and "forever" none of this one.
func TestSalesLottery(t *testing.T) {
	for in, want := range map[string]time.Duration{"off": Off, "2s": 2 * time.Second, "1500ms": 1500 * time.Millisecond, "0s": 0} {
		c, err := Load(Sources{Getenv: env(map[string]string{"SURGE_SALES_LOTTERY_WINDOW": in})})
		if err != nil || c.Sales.LotteryWindow != want {
			t.Fatalf("sales.lottery_window %q = %s, %v; want %s", in, c.Sales.LotteryWindow, err, want)
		}
	}
	for _, in := range []string{"11s", "forever", "-1s", "soon", "500us"} {
		if _, err := Load(Sources{Getenv: env(map[string]string{"SURGE_SALES_LOTTERY_WINDOW": in})}); err == nil {
			t.Fatalf("sales.lottery_window %q: no error", in)
		}
	}
	if _, err := Load(Sources{Getenv: env(nil), Flags: map[string]string{"reservation_retention": "off"}}); err == nil {
		t.Fatal(`reservation_retention "off": no error`)
	}
	c, err := Load(Sources{Getenv: env(nil), File: writeFile(t, `{"sales": {"lottery_window": "3s", "lottery_queue_max": 5000}}`)})
	if err != nil || c.Sales.LotteryWindow != 3*time.Second || c.Sales.LotteryQueueMax != 5000 {
		t.Fatalf("sales from a file = %+v, %v", c.Sales, err)
	}
	if _, err := Load(Sources{Getenv: env(map[string]string{"SURGE_SALES_LOTTERY_QUEUE_MAX": "-1"})}); err == nil {
		t.Fatal("sales.lottery_queue_max -1: no error")
	}
}

// TestRiskScoreSettings: the score's settings load from a file, the
// environment and flags, weights included, and bad ones are named.
func TestRiskScoreSettings(t *testing.T) {
	c, err := Load(Sources{
		File:   writeFile(t, `{"risk": {"score_deny": 80, "page_token_min_age": "500ms", "weights": {"page_token_missing": 50, "ip_devices": -1}}}`),
		Getenv: env(map[string]string{"SURGE_RISK_PAGE_TOKEN_TTL": "5m", "SURGE_RISK_WEIGHTS_ACCOUNT_YOUNG": "70"}),
		Flags:  map[string]string{"risk.min_account_age": "24h", "risk.page_token_uses": "3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Risk
	want := Risk{UserRate: 5, IPRate: 50, AccountsPerDevice: 5, DevicesPerIP: 30, ScoreDeny: 80, PageTokenMinAge: 500 * time.Millisecond,
		PageTokenTTL: 5 * time.Minute, PageTokenUses: 3, MinAccountAge: 24 * time.Hour,
		Weights: RiskWeights{PageTokenMissing: 50, IPDevices: -1, AccountYoung: 70}}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("risk settings = %+v; want %+v", r, want)
	}
	bad := func(key, val string) {
		t.Helper()
		if _, err := Load(Sources{Getenv: env(nil), Flags: map[string]string{key: val}}); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s = %s: %v; want an error naming it", key, val, err)
		}
	}
	bad("risk.score_deny", "-1")
	bad("risk.page_token_ttl", "48h")
	bad("risk.page_token_min_age", "-1s")
	bad("risk.page_token_uses", "-2")
	bad("risk.min_account_age", "9000h")
}

// TestLinkageSettings: the graded linkage settings load from the
// environment and a file, bad ones are named, and flash sales open with a
// 2 s lottery window unless told otherwise.
func TestLinkageSettings(t *testing.T) {
	c, err := Load(Sources{
		File: writeFile(t, `{"risk": {"weights": {"farm_shape": 70}}}`),
		Getenv: env(map[string]string{"SURGE_RISK_DEVICE_ACCOUNTS_FREE": "-1", "SURGE_RISK_IP_DEVICES_FREE": "20",
			"SURGE_RISK_LINK_LOGINS_OFF": "true"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Risk; r.DeviceAccountsFree != -1 || r.IPDevicesFree != 20 || !r.LinkLoginsOff || r.Weights.FarmShape != 70 {
		t.Fatalf("linkage settings = %+v", r)
	}
	if c.Sales.LotteryWindow != 2*time.Second {
		t.Fatalf("sales.lottery_window by default = %s; want 2s", c.Sales.LotteryWindow)
	}
	for key, val := range map[string]string{"risk.device_accounts_free": "-2", "risk.ip_devices_free": "100001"} {
		if _, err := Load(Sources{Getenv: env(nil), Flags: map[string]string{key: val}}); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s = %s: %v; want an error naming it", key, val, err)
		}
	}
}
