package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/surge-retail/surge/config"
	"github.com/surge-retail/surge/engine"
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

Settings come from defaults, then --config FILE (JSON), then SURGE_* environment
variables (SURGE_ADMIN_TOKEN, SURGE_FEED_SECRET, SURGE_RISK_USER_RATE, ...), then
flags; flags win. SIGTERM or SIGINT drains in-flight requests, flushes the order
writer and closes the stores.`,
	Args: cobra.NoArgs,
	RunE: runServe,
}

func init() {
	f := serveCmd.Flags()
	f.String("addr", ":8080", "listen address")
	f.String("data", "./surge-data", "data directory (Pebble stores, admin token, secrets)")
	f.String("backend", "pebble", "inventory backend: pebble, memory or redis")
	f.String("redis", "127.0.0.1:6379", "Redis address for --backend redis")
	f.Bool("demo", false, "load the demo catalog, a flash sale and a group deal")
	f.String("log-level", "info", "debug, info, warn or error")
	f.StringVar(&serveConfigFile, "config", "", "JSON config file (keys as in config.Config)")
	rootCmd.AddCommand(serveCmd)
}

func runServe(cmd *cobra.Command, _ []string) error {
	flags := map[string]string{}
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		if fl.Name != "config" {
			flags[strings.ReplaceAll(fl.Name, "-", "_")] = fl.Value.String()
		}
	})
	cfg, err := config.Load(config.Sources{File: serveConfigFile, Flags: flags})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, os.Stdout)
}

// serve runs Surge until ctx is done, then shuts down in order: stop
// accepting and drain the gateway, close the engine (flushing the order
// writer), close the inventory store.
func serve(ctx context.Context, cfg config.Config, out io.Writer) error {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(cfg.LogLevel)}))
	slog.SetDefault(logger)

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

	store, engineDir, redisAddr, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	risk, err := engine.NewRiskHook(engine.RiskConfig{
		UserRate:        cfg.Risk.UserRate,
		UserBurst:       cfg.Risk.UserBurst,
		IPRate:          cfg.Risk.IPRate,
		IPBurst:         cfg.Risk.IPBurst,
		Blocklist:       cfg.Risk.Blocklist,
		RequireDevice:   cfg.Risk.RequireDevice,
		WebhookURL:      cfg.Risk.WebhookURL,
		WebhookTimeout:  cfg.Risk.WebhookTimeout,
		WebhookFailOpen: cfg.Risk.WebhookFailOpen,
	})
	if err != nil {
		return fmt.Errorf("cannot build the risk hook: %w", err)
	}
	eng, err := engine.Open(ctx, engine.Options{
		Store:         store,
		Dir:           engineDir,
		RedisAddr:     redisAddr,
		Risk:          risk,
		SweepInterval: cfg.SweepInterval,
		// SaleAdmitFactor bounds each sale's reserve calls in flight.
		SaleAdmitFactor: cfg.Admission.SaleAdmitFactor,
		// 0 in the config keeps every reservation; negative says so to
		// the engine, whose zero means its default.
		ReservationRetention: cmp.Or(cfg.ReservationRetention, -1),
	})
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

	srv, err := gateway.New(gateway.Options{
		Engine:        eng,
		AdminToken:    adminToken,
		FeedSecret:    feedSecret,
		SessionSecret: []byte(sessionSecret),
		SessionTTL:    cfg.SessionTTL,
		Login: gateway.LoginOptions{
			Provider:      cfg.Login.Provider,
			WeChatBaseURL: cfg.Login.WeChatBaseURL,
			AppID:         cfg.Login.AppID,
			AppSecret:     cfg.Login.AppSecret,
			Timeout:       cfg.Login.Timeout,
		},
		BodyMaxBytes:      cfg.BodyMaxBytes,
		TrustedProxies:    cfg.TrustedProxies,
		ReadsInflightMax:  cfg.Admission.ReadsMax,
		WritesInflightMax: cfg.Admission.WritesMax,
		AdminInflightMax:  cfg.Admission.AdminMax,
		Logger:            logger,
	})
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

// openStore opens the configured inventory backend and says where the
// engine keeps its records: a Pebble directory, or Redis.
func openStore(ctx context.Context, cfg config.Config) (store inventory.Store, engineDir, redisAddr string, err error) {
	switch cfg.Backend {
	case "memory":
		return inventory.NewMemory(inventory.Options{}), "", "", nil
	case "pebble":
		s, err := inventory.OpenPebble(filepath.Join(cfg.Data, "inventory"), inventory.PebbleOptions{})
		if err != nil {
			return nil, "", "", fmt.Errorf("cannot open the pebble inventory in %s: %w", cfg.Data, err)
		}
		return s, filepath.Join(cfg.Data, "engine"), "", nil
	case "redis":
		s, err := redisinv.Open(ctx, redisinv.Options{Addr: cfg.Redis})
		if err != nil {
			return nil, "", "", fmt.Errorf("cannot open the redis inventory at %s: %w", cfg.Redis, err)
		}
		return s, "", cfg.Redis, nil
	}
	panic("BUG: config let through backend " + cfg.Backend)
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
	if demo.StoreID != "" {
		fmt.Fprintf(out, "  store page:   %s/api/v1/stores/%s/page\n", base, demo.StoreID)
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
	fmt.Fprintf(out, "  stats:        %s/admin/v1/stats (Authorization: Bearer <admin token>)\n", base)
	fmt.Fprintf(out, "  metrics:      %s/metrics\n", base)
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
