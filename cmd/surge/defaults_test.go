package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/config"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/gateway"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// sameOptions fails unless got and want (two values of one Options type)
// are equal field by field; func fields (clocks) compare by nil-ness only,
// since two equal funcs are not DeepEqual.
func sameOptions(t *testing.T, name string, got, want any) {
	t.Helper()
	var walk func(path string, g, w reflect.Value)
	walk = func(path string, g, w reflect.Value) {
		switch g.Kind() {
		case reflect.Struct:
			for i := 0; i < g.NumField(); i++ {
				walk(path+"."+g.Type().Field(i).Name, g.Field(i), w.Field(i))
			}
		case reflect.Func:
			if g.IsNil() != w.IsNil() {
				t.Errorf("%s: set = %v; want %v", path, !g.IsNil(), !w.IsNil())
			}
		default:
			if !reflect.DeepEqual(g.Interface(), w.Interface()) {
				t.Errorf("%s = %#v; want %#v", path, g.Interface(), w.Interface())
			}
		}
	}
	walk(name, reflect.ValueOf(got), reflect.ValueOf(want))
}

// TestEmptyConfigIsComponentDefaults: a config with nothing set (what
// `surge serve` loads with no file, no SURGE_* variable and no flag) gives
// each component exactly its own defaults, through the same mapping serve
// uses; and those defaults are the values production ran with before they
// were written in one place.
func TestEmptyConfigIsComponentDefaults(t *testing.T) {
	for _, backend := range []string{"pebble", "memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			cfg, err := config.Load(config.Sources{
				Getenv: func(string) string { return "" },
				Flags:  map[string]string{"backend": backend},
			})
			if err != nil {
				t.Fatal(err)
			}
			o := componentOptionsOf(cfg)

			// The gateway. What serve adds that is not configuration
			// goes on both sides.
			wiring := gateway.Options{SessionSecret: []byte("0123456789abcdef0123456789abcdef")}
			wiring.Engine = gatewayEngine(t)
			g := o.Gateway
			g.Engine, g.SessionSecret = wiring.Engine, wiring.SessionSecret
			gotG, err := g.WithDefaults()
			if err != nil {
				t.Fatal(err)
			}
			wantG, err := wiring.WithDefaults()
			if err != nil {
				t.Fatal(err)
			}
			sameOptions(t, "gateway.Options", gotG, wantG)

			// The engine, with its order writer and idempotency: the
			// engine's defaults, but config's own lottery window for
			// flash sales (2s; the engine's own is none).
			e := o.Engine
			wantE := engine.Options{Dir: e.Dir, RedisAddr: e.RedisAddr, LotteryWindow: 2 * time.Second}
			sameOptions(t, "engine.Options", e.WithDefaults(), wantE.WithDefaults())
			sameOptions(t, "engine.OrderWriterOptions", e.OrderWriter.WithDefaults(), engine.OrderWriterOptions{}.WithDefaults())
			sameOptions(t, "engine.IdempotencyOptions", e.Idempotency.WithDefaults(), engine.IdempotencyOptions{}.WithDefaults())

			// The risk hook: config's own rates and linkage
			// thresholds (zero in the hook means off), the hook's
			// defaults for the rest.
			wantR := engine.RiskConfig{UserRate: cfg.Risk.UserRate, IPRate: cfg.Risk.IPRate,
				AccountsPerDevice: cfg.Risk.AccountsPerDevice, DevicesPerIP: cfg.Risk.DevicesPerIP}
			sameOptions(t, "engine.RiskConfig", o.Risk.WithDefaults(), wantR.WithDefaults())

			// The inventory backends.
			sameOptions(t, "inventory.Options", o.Memory.WithDefaults(), inventory.Options{}.WithDefaults())
			sameOptions(t, "inventory.PebbleOptions", o.Pebble, inventory.PebbleOptions{})
			sameOptions(t, "redisinv.Options", o.Redis.WithDefaults(), redisinv.Options{}.WithDefaults())

			// Where the engine keeps its records follows the backend.
			switch backend {
			case "pebble":
				if e.Dir == "" || e.RedisAddr != "" {
					t.Errorf("engine records: Dir %q, RedisAddr %q; want Pebble beside the inventory", e.Dir, e.RedisAddr)
				}
			case "redis":
				if e.Dir != "" || e.RedisAddr != redisinv.AddrDefault {
					t.Errorf("engine records: Dir %q, RedisAddr %q; want Redis at %s", e.Dir, e.RedisAddr, redisinv.AddrDefault)
				}
			case "memory":
				if e.Dir != "" || e.RedisAddr != "" {
					t.Errorf("engine records: Dir %q, RedisAddr %q; want memory", e.Dir, e.RedisAddr)
				}
			}

			// The values resolved when the defaults came to one place:
			// what `surge serve` has always run with.
			f := func(name string, got, want any) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %v; want %v", name, got, want)
				}
			}
			f("reads in flight", gotG.ReadsInflightMax, 4096)
			f("writes in flight", gotG.WritesInflightMax, 1024)
			f("writes in flight, adaptive floor", gotG.WritesInflightMin, 128)
			f("writes limit adaptive", gotG.WritesLimitFixed, false)
			f("admin in flight", gotG.AdminInflightMax, 64)
			f("sale admit factor", e.WithDefaults().SaleAdmitFactor, 4)
			f("body max bytes", gotG.BodyMaxBytes, 64<<10)
			f("session ttl", gotG.SessionTTL, 24*time.Hour)
			f("login provider", gotG.Login.Provider, gateway.ProviderDev)
			f("login timeout", gotG.Login.Timeout, 3*time.Second)
			r := o.Risk.WithDefaults()
			f("per-user rate", r.UserRate, 5.0)
			f("per-user burst", r.UserBurst, 10)
			f("per-IP rate", r.IPRate, 50.0)
			f("per-IP burst", r.IPBurst, 100)
			f("webhook timeout", r.WebhookTimeout, 50*time.Millisecond)
			f("accounts per device", r.AccountsPerDevice, 5)
			f("devices per IP", r.DevicesPerIP, 30)
			f("link window", r.LinkWindow, 10*time.Minute)
			f("sweep interval", e.WithDefaults().SweepInterval, time.Second)
			f("reservation retention", e.WithDefaults().ReservationRetention, 24*time.Hour)
			f("registrants per sale", e.WithDefaults().RegistrantsPerSaleMax, int64(100_000))
		})
	}
}

// TestConfigReachesComponents: what the user sets arrives unchanged,
// including retention "forever" and the Redis credentials.
func TestConfigReachesComponents(t *testing.T) {
	env := map[string]string{
		"SURGE_REDIS_USERNAME":              "surge",
		"SURGE_REDIS_PASSWORD":              "s3cret",
		"SURGE_RESERVATION_RETENTION":       "forever",
		"SURGE_ADMISSION_READS_MAX":         "100",
		"SURGE_LOGIN_TIMEOUT":               "2s",
		"SURGE_RISK_USER_BURST":             "3",
		"SURGE_REDIS":                       "10.0.0.7:6380",
		"SURGE_BACKEND":                     "redis",
		"SURGE_ADMISSION_WRITES_MAX":        "200",
		"SURGE_ADMISSION_WRITES_MIN":        "8",
		"SURGE_ADMISSION_WRITES_FIXED":      "true",
		"SURGE_ADMISSION_SALE_ADMIT_FACTOR": "2",
		"SURGE_REGISTRANTS_PER_SALE_MAX":    "500",
		"SURGE_DISK_ENTRIES_MAX":            "-1",
	}
	cfg, err := config.Load(config.Sources{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	o := componentOptionsOf(cfg)
	f := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v; want %v", name, got, want)
		}
	}
	f("redisinv username", o.Redis.Username, "surge")
	f("redisinv password", o.Redis.Password, "s3cret")
	f("redisinv addr", o.Redis.Addr, "10.0.0.7:6380")
	f("engine redis addr", o.Engine.RedisAddr, "10.0.0.7:6380")
	f("engine redis username", o.Engine.RedisUsername, "surge")
	f("engine redis password", o.Engine.RedisPassword, "s3cret")

	// Seeds: a cluster's nodes reach the inventory and the records alike.
	seeded, err := config.Load(config.Sources{Flags: map[string]string{"backend": "redis", "redis": "10.0.0.1:7000,10.0.0.2:7000"}})
	if err != nil {
		t.Fatal(err)
	}
	so := componentOptionsOf(seeded)
	f("redisinv seeds", strings.Join(so.Redis.WithDefaults().InitAddress, ","), "10.0.0.1:7000,10.0.0.2:7000")
	f("engine redis seeds", so.Engine.RedisAddr, "10.0.0.1:7000,10.0.0.2:7000")
	f("reads in flight", o.Gateway.ReadsInflightMax, 100)
	f("writes in flight", o.Gateway.WritesInflightMax, 200)
	f("writes in flight, adaptive floor", o.Gateway.WritesInflightMin, 8)
	f("writes limit fixed", o.Gateway.WritesLimitFixed, true)
	f("sale admit factor", o.Engine.SaleAdmitFactor, 2)
	f("registrants per sale", o.Engine.RegistrantsPerSaleMax, int64(500))
	f("disk entries", o.Pebble.DiskEntriesMax, -1)
	f("login timeout", o.Gateway.Login.Timeout, 2*time.Second)
	f("per-user burst", o.Risk.UserBurst, 3)
	if r := o.Engine.WithDefaults().ReservationRetention; r >= 0 {
		t.Errorf("retention forever reaches the engine as %s; want negative (keep all)", r)
	}
}

// gatewayEngine is an engine for gateway.Options.WithDefaults, which
// requires one.
func gatewayEngine(t *testing.T) gateway.Engine {
	t.Helper()
	store := inventory.NewMemory(inventory.Options{})
	t.Cleanup(func() { store.Close() })
	eng, err := engine.Open(t.Context(), engine.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}
