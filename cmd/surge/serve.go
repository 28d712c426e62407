package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/surge-retail/surge/config"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/gateway"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// Compile-time check that the engine is what the gateway needs.
var _ gateway.Engine = (*engine.Engine)(nil)

var serveConfigFile string

var serveCmd = &cobra.Command{
	Use:   "serve",
	Short: "Run the Surge gateway",
	Long: `Run the Surge gateway.

Settings come from --config FILE (JSON), then SURGE_* environment variables
(SURGE_ADMIN_TOKEN, SURGE_FEED_SECRET, SURGE_RISK_USER_RATE, ...), then flags;
flags win. A setting left unset takes the default of the component that uses
it (the gateway, the engine, the inventory backend). SIGTERM or SIGINT drains in-flight requests, flushes the order
writer and closes the stores.`,
	Args: cobra.NoArgs,
	RunE: runServe,
}

// The flags' defaults are empty on purpose: a flag only counts when given
// (runServe passes config the flags that were set), and every default is
// written once, in config.Default or in the component that owns it.
func init() {
	f := serveCmd.Flags()
	f.String("addr", "", "listen address (default: config's)")
	f.String("data", "", "data directory: Pebble stores, admin token, secrets (default: config's)")
	f.String("backend", "", "inventory backend: pebble (default), memory or redis")
	f.String("redis", "", "Redis address for --backend redis (default: the redis inventory's), or a comma-separated list of a cluster's nodes; "+
		"credentials from SURGE_REDIS_USERNAME and SURGE_REDIS_PASSWORD")
	f.String("orders", "", "where orders are kept: pebble (default: with the engine's records) or mysql://USER:PASS@HOST:PORT/DB (MySQL, MariaDB, TiDB)")
	f.Bool("order-writer", true, "with --backend redis, write the outbox's orders in this process too (false: `surge orders` processes do)")
	f.Bool("demo", false, "load the demo catalog, a flash sale and a group deal")
	f.String("log-level", "", "debug, info (default), warn or error")
	f.StringVar(&serveConfigFile, "config", "", "JSON config file (keys as in config.Config)")
	rootCmd.AddCommand(serveCmd)
}

func runServe(cmd *cobra.Command, _ []string) error {
	preset := map[string]string{}
	if fl := cmd.Flags().Lookup("order-writer"); fl.Changed { // config says it the other way round
		preset["no_order_writer"] = strconv.FormatBool(fl.Value.String() == "false")
	}
	cfg, err := loadConfig(cmd, serveConfigFile, preset, "order-writer")
	if err != nil {
		return err
	}
	return untilSignal(func(ctx context.Context) error { return serve(ctx, cfg, os.Stdout) })
}

// loadConfig loads the configuration from file, the environment and the
// flags set on cmd (a flag --a-b is the setting a_b), over preset; the
// flags named in skip and --config are not settings.
func loadConfig(cmd *cobra.Command, file string, preset map[string]string, skip ...string) (config.Config, error) {
	flags := preset
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		if fl.Name != "config" && !slices.Contains(skip, fl.Name) {
			flags[strings.ReplaceAll(fl.Name, "-", "_")] = fl.Value.String()
		}
	})
	return config.Load(config.Sources{File: file, Flags: flags})
}

// untilSignal runs fn with a context that ends at SIGINT or SIGTERM.
func untilSignal(fn func(ctx context.Context) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return fn(ctx)
}

// newLogger is the JSON logger of a surge process, made the default.
func newLogger(cfg config.Config) *slog.Logger {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(cfg.LogLevel)}))
	slog.SetDefault(logger)
	return logger
}

// serve runs Surge until ctx is done, then shuts down in order: stop
// accepting and drain the gateway, close the engine (flushing the order
// writer), close the inventory store.
func serve(ctx context.Context, cfg config.Config, out io.Writer) error {
	logger := newLogger(cfg)
	if prev, now := procsForSync(cfg.Backend); now != prev {
		logger.Info("surge: GOMAXPROCS raised so that a WAL fsync does not stop the Go code", "from", prev, "to", now)
	}

	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("cannot create data directory: %w", err)
	}
	adminToken, adminTokenPath, err := secret(cfg.AdminToken, cfg.Data, "admin.token")
	if err != nil {
		return err
	}
	feedSecret, feedSecretPath, err := secret(cfg.FeedSecret, cfg.Data, "feed.secret")
	if err != nil {
		return err
	}
	sessionSecret, _, err := secret(cfg.SessionSecret, cfg.Data, "session.secret")
	if err != nil {
		return err
	}

	o := componentOptionsOf(cfg)
	store, err := openStore(ctx, cfg.Backend, cfg.Data, o)
	if err != nil {
		return err
	}
	defer store.Close()

	risk, err := engine.NewRiskHook(o.Risk)
	if err != nil {
		return fmt.Errorf("cannot build the risk hook: %w", err)
	}
	if strings.HasPrefix(cfg.Orders, "mysql://") {
		sqlOrders, err := orders.OpenMySQL(ctx, cfg.Orders, orders.SQLOptions{})
		if err != nil {
			return fmt.Errorf("cannot open the order store: %w", err)
		}
		defer sqlOrders.Close() // after the engine's Close, which flushes into it
		o.Engine.Orders = sqlOrders
	}
	wp, err := wechatPayOf(cfg.Payment)
	if err != nil {
		return err
	}
	if wp != nil {
		o.Engine.WeChatPay = wp
		o.Engine.PayNotifyURL = cfg.Payment.NotifyURL
		o.Gateway.WeChatPay = wp.Verifier()
	}
	o.Engine.Store = store
	o.Engine.Risk = risk
	o.Engine.Logger = logger
	eng, err := engine.Open(ctx, o.Engine)
	if err != nil {
		return fmt.Errorf("cannot open the engine: %w", err)
	}
	engineClosed := false
	defer func() {
		if !engineClosed {
			_ = eng.Close()
		}
	}()

	var demo engine.DemoResult
	if cfg.Demo {
		if demo, err = eng.LoadDemo(ctx); err != nil {
			return fmt.Errorf("cannot load the demo catalog: %w", err)
		}
	}

	o.Gateway.Engine = eng
	o.Gateway.AdminToken = adminToken
	o.Gateway.FeedSecret = feedSecret
	o.Gateway.SessionSecret = []byte(sessionSecret)
	o.Gateway.Logger = logger
	srv, err := gateway.New(o.Gateway)
	if err != nil {
		return fmt.Errorf("cannot build the gateway: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", cfg.Addr, err)
	}
	printBanner(out, cfg, ln.Addr(), adminTokenPath, feedSecretPath, demo)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("gateway stopped: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("gateway shutdown", "err", err)
	}
	engineClosed = true
	if err := eng.Close(); err != nil {
		return fmt.Errorf("cannot close the engine: %w", err)
	}
	if err := store.Close(); err != nil && !errors.Is(err, inventory.ErrClosed) {
		return fmt.Errorf("cannot close the inventory store: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// componentOptions are the components' Options as configured: what the
// user set, and zero where they did not, so that each component's own
// default applies (config restates none of them). serve adds what is not
// configuration (the store, the engine, secrets, the logger).
type componentOptions struct {
	Gateway gateway.Options
	Engine  engine.Options
	Risk    engine.RiskConfig
	// Memory, Pebble and Redis are the options of the inventory backends;
	// only the one of cfg.Backend is used.
	Memory inventory.Options
	Pebble inventory.PebbleOptions
	Redis  redisinv.Options
}

// componentOptionsOf maps cfg onto the components' Options, passing zero
// through.
func componentOptionsOf(cfg config.Config) componentOptions {
	o := componentOptions{
		Gateway: gateway.Options{
			SessionTTL: cfg.SessionTTL,
			Login: gateway.LoginOptions{
				Provider:      cfg.Login.Provider,
				WeChatBaseURL: cfg.Login.WeChatBaseURL,
				AppID:         cfg.Login.AppID,
				AppSecret:     cfg.Login.AppSecret,
				Timeout:       cfg.Login.Timeout,
			},
			BodyMaxBytes:        cfg.BodyMaxBytes,
			TrustedProxies:      cfg.TrustedProxies,
			ReadsInflightMax:    cfg.Admission.ReadsMax,
			WritesInflightMax:   cfg.Admission.WritesMax,
			WritesInflightMin:   cfg.Admission.WritesMin,
			WritesLimitFixed:    cfg.Admission.WritesFixed,
			AdminInflightMax:    cfg.Admission.AdminMax,
			SessionsInflightMax: cfg.Admission.SessionsMax,
			PaysInflightMax:     cfg.Admission.PaysMax,
		},
		Engine: engine.Options{
			OutboxWriterOff: cfg.NoOrderWriter,
			SweepInterval:   cfg.SweepInterval,
			SaleAdmitFactor: cfg.Admission.SaleAdmitFactor,
			// Zero: the engine's default.
			RegistrantsPerSaleMax: cfg.RegistrantsPerSaleMax,
			// Both say "the default" with zero and "none" with a
			// negative value (config.Off).
			LotteryWindow:   cfg.Sales.LotteryWindow,
			LotteryQueueMax: cfg.Sales.LotteryQueueMax,
			// Both say "keep everything" with a negative value
			// (config.Forever) and "the default" with zero.
			ReservationRetention: cfg.ReservationRetention,
			Circuit:              engine.CircuitOptions{Failures: cfg.Circuit.Failures, OpenFor: cfg.Circuit.OpenFor},
			Idempotency:          engine.IdempotencyOptions{NewKeysPerSecond: cfg.IdempotencyNewKeysPerSecond},
		},
		Risk: engine.RiskConfig{
			UserRate:           cfg.Risk.UserRate,
			UserBurst:          cfg.Risk.UserBurst,
			IPRate:             cfg.Risk.IPRate,
			IPBurst:            cfg.Risk.IPBurst,
			Blocklist:          cfg.Risk.Blocklist,
			RequireDevice:      cfg.Risk.RequireDevice,
			WebhookURL:         cfg.Risk.WebhookURL,
			WebhookTimeout:     cfg.Risk.WebhookTimeout,
			WebhookFailOpen:    cfg.Risk.WebhookFailOpen,
			AccountsPerDevice:  cfg.Risk.AccountsPerDevice,
			DevicesPerIP:       cfg.Risk.DevicesPerIP,
			LinkWindow:         cfg.Risk.LinkWindow,
			DeviceAccountsFree: cfg.Risk.DeviceAccountsFree,
			IPDevicesFree:      cfg.Risk.IPDevicesFree,
			LinkLoginsOff:      cfg.Risk.LinkLoginsOff,
			PageTokenOff:       cfg.Risk.PageTokenOff,
			PageTokenTTL:       cfg.Risk.PageTokenTTL,
			PageTokenMinAge:    cfg.Risk.PageTokenMinAge,
			PageTokenUses:      cfg.Risk.PageTokenUses,
			MinAccountAge:      cfg.Risk.MinAccountAge,
			ScoreDeny:          cfg.Risk.ScoreDeny,
			Weights:            engine.RiskWeights(cfg.Risk.Weights),
		},
		Pebble: inventory.PebbleOptions{DiskEntriesMax: cfg.DiskEntriesMax},
		Redis: redisinv.Options{
			Username: cfg.RedisUsername,
			Password: cfg.RedisPassword,
		},
	}
	if cfg.Redis != "" {
		// One server, or seeds: any nodes of a cluster.
		seeds := strings.Split(cfg.Redis, ",")
		o.Redis.Addr = seeds[0]
		if len(seeds) > 1 {
			o.Redis.InitAddress = seeds
		}
	}
	// Where the engine keeps its records: beside the Pebble inventory, or
	// in the same Redis (at the address the redis inventory connects to,
	// with the same credentials); in memory with the memory backend.
	switch cfg.Backend {
	case "pebble":
		o.Engine.Dir = filepath.Join(cfg.Data, "engine")
	case "redis":
		o.Engine.RedisAddr = strings.Join(o.Redis.WithDefaults().InitAddress, ",")
		o.Engine.RedisUsername = cfg.RedisUsername
		o.Engine.RedisPassword = cfg.RedisPassword
	}
	return o
}

// syncProcsMin is the fewest Ps (GOMAXPROCS) of a server whose every
// acknowledged write waits for an fsync in this process (the Pebble
// backend).
const syncProcsMin = 2

// procsForSync gives a Pebble server at least syncProcsMin Ps and returns
// GOMAXPROCS before and after. The goroutine that runs the WAL's fsync keeps
// its P for the whole call: the runtime hands the P on only when its monitor
// sees the same call in progress twice, and the monitor, once it has found
// nothing to take back for a while, looks only every 10 ms. Fsyncs of 0.1 to
// 1 ms, back to back under load, are never seen twice, so on one P (a
// one-CPU container: Go takes GOMAXPROCS from the CPU limit) no other Go
// code runs while the WAL syncs. Measured in the overload scenario, one core:
// the P ran Go code 20% of the time and sat in fdatasync 80%, with 35
// goroutines ready to run. A second P runs them meanwhile; the CPU the
// process may use is still the machine's or the container's. An explicit
// GOMAXPROCS in the environment is the operator's and is kept; more than
// two Ps gained nothing on two cores (wrk, pebble reserve), so the rule
// only lifts one to two.
func procsForSync(backend string) (prev, now int) {
	prev = runtime.GOMAXPROCS(0)
	if backend != "pebble" || prev >= syncProcsMin || os.Getenv("GOMAXPROCS") != "" {
		return prev, prev
	}
	runtime.GOMAXPROCS(syncProcsMin)
	return prev, syncProcsMin
}

// openStore opens the inventory backend with its options from o.
func openStore(ctx context.Context, backend, data string, o componentOptions) (inventory.Store, error) {
	switch backend {
	case "memory":
		return inventory.NewMemory(o.Memory), nil
	case "pebble":
		s, err := inventory.OpenPebble(filepath.Join(data, "inventory"), o.Pebble)
		if err != nil {
			return nil, fmt.Errorf("cannot open the pebble inventory in %s: %w", data, err)
		}
		return s, nil
	case "redis":
		s, err := redisinv.Open(ctx, o.Redis)
		if err != nil {
			// The address only: the options hold the password.
			return nil, fmt.Errorf("cannot open the redis inventory at %s: %w", strings.Join(o.Redis.WithDefaults().InitAddress, ","), err)
		}
		return s, nil
	}
	panic("BUG: config let through backend " + backend)
}

// secret returns the configured value, or the one kept in dir/name, or a
// new random one written there (0600) so that it survives restarts.
func secret(configured, dir, name string) (value, path string, err error) {
	if configured != "" {
		return configured, "", nil
	}
	path = filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(data))) >= 16 {
		return strings.TrimSpace(string(data)), path, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("cannot generate %s: %w", name, err)
	}
	value = hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("cannot write %s: %w", path, err)
	}
	return value, path, nil
}

func printBanner(out io.Writer, cfg config.Config, addr net.Addr, adminTokenPath, feedSecretPath string, demo engine.DemoResult) {
	base := "http://" + displayAddr(addr)
	fmt.Fprintf(out, "surge: serving on %s (backend %s, data %s)\n", base, cfg.Backend, cfg.Data)
	if strings.HasPrefix(cfg.Orders, "mysql://") {
		fmt.Fprintf(out, "  orders:       %s\n", redactURL(cfg.Orders))
	}
	if demo.StoreID != "" {
		fmt.Fprintf(out, "  store page:   %s/api/v1/stores/%s/page\n", base, demo.StoreID)
		fmt.Fprintf(out, "  shop (H5):    %s/h5/stores/%s\n", base, demo.StoreID)
		fmt.Fprintf(out, "  flash sale:   %s/api/v1/flash-sales/%s\n", base, demo.SaleID)
		fmt.Fprintf(out, "  group deal:   %s/api/v1/group-buys/%s\n", base, demo.DealID)
	}
	if adminTokenPath != "" {
		fmt.Fprintf(out, "  admin token:  %s\n", adminTokenPath)
	} else {
		fmt.Fprintf(out, "  admin token:  from SURGE_ADMIN_TOKEN / config\n")
	}
	if feedSecretPath != "" {
		fmt.Fprintf(out, "  feed secret:  %s\n", feedSecretPath)
	}
	fmt.Fprintf(out, "  admin page:   %s/admin/ (paste the admin token)\n", base)
	fmt.Fprintf(out, "  stats:        %s/admin/v1/stats (Authorization: Bearer <admin token>)\n", base)
	fmt.Fprintf(out, "  metrics:      %s/metrics\n", base)
	if cfg.Payment.Provider == "wechat" {
		fmt.Fprintf(out, "  payments:     WeChat Pay (notifications at %s)\n", cfg.Payment.NotifyURL)
		if testKeys(cfg.Payment) {
			fmt.Fprintf(out, "  WARNING: payment.keys_dir holds TEST keys (a platform private key is there): a rehearsal, not a sale.\n")
		}
	} else {
		fmt.Fprintf(out, "  WARNING: payment provider dev: any logged-in buyer marks their own reservation paid, no money moves.\n"+
			"           Set payment.provider=wechat (README, \"Payments\") before a real sale.\n")
	}
	if cfg.Login.Provider != "wechat" {
		fmt.Fprintf(out, "  WARNING: login provider dev: a login code is taken as the user id, nobody is checked.\n"+
			"           Set login.provider=wechat before a real sale.\n")
	}
}

// redactURL hides a URL's password.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if tcp.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", tcp.Port)
	}
	return tcp.String()
}

func logLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
