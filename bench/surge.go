package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/gateway"
	"github.com/surge-retail/surge/inventory"
)

// Surge is an in-process Surge (engine + gateway) on a loopback port.
type Surge struct {
	Addr       string
	AdminToken string
	Engine     *engine.Engine
	srv        *gateway.Server
	store      inventory.Store
}

const benchAdminToken = "bench-admin-token-0123456789abcdef"

// StartSurge serves opts.Store through the real engine and gateway on a
// loopback port. opts says where the engine keeps its records (Dir, or
// RedisAddr; neither keeps them in memory). Risk control allows
// everything unless opts.Risk says otherwise: the benchmarks measure the
// reserve path, not the per-user token buckets that would (rightly)
// refuse a closed loop.
func StartSurge(ctx context.Context, opts engine.Options) (*Surge, error) {
	store := opts.Store
	if opts.Risk == nil {
		opts.Risk = engine.AllowAll()
	}
	eng, err := engine.Open(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("cannot open the engine: %w", err)
	}
	srv, err := gateway.New(gateway.Options{
		Engine:            eng,
		AdminToken:        benchAdminToken,
		SessionSecret:     []byte("bench-session-secret-0123456789ab"),
		WritesInflightMax: 1 << 16,
		ReadsInflightMax:  1 << 16,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		_ = eng.Close()
		return nil, fmt.Errorf("cannot build the gateway: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = eng.Close()
		return nil, err
	}
	go func() { _ = srv.Serve(ln) }()
	return &Surge{Addr: ln.Addr().String(), AdminToken: benchAdminToken, Engine: eng, srv: srv, store: store}, nil
}

// Close stops the gateway and the engine (not the store).
func (s *Surge) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	return s.Engine.Close()
}

// benchCatalog is one store with one SKU deep enough for a closed loop, a
// guide, and a page the size of a real store page (60 products).
func benchCatalog() engine.Catalog {
	c := engine.Catalog{
		Stores: []engine.Store{{StoreID: "b1", Name: "基准测试店", City: "上海", Banners: []string{"https://img.surge.example/b1.jpg"}}},
		Guides: []engine.Guide{{GuideID: "bg1", StoreID: "b1", Name: "小周", Picks: []string{"bk0", "bk1", "bk2"}}},
	}
	for i := 0; i < 60; i++ {
		sku := fmt.Sprintf("bk%d", i)
		c.Products = append(c.Products, engine.Product{SKUID: sku, Title: fmt.Sprintf("基准商品 %d 号", i), Price: 19900 + int64(i)*100, Images: []string{"https://img.surge.example/" + sku + ".jpg"}})
		onHand := int64(100)
		if i == 0 {
			onHand = 900_000_000
		}
		c.Listings = append(c.Listings, engine.Listing{StoreID: "b1", SKUID: sku, Price: 18900 + int64(i)*100, OnHand: onHand})
	}
	return c
}

// setupBenchSale loads the catalog and a running flash sale with no
// per-user limit and a long hold, so a closed loop reserves until the end.
func setupBenchSale(ctx context.Context, eng *engine.Engine, saleID string) error {
	if _, err := eng.LoadCatalog(ctx, benchCatalog()); err != nil {
		return fmt.Errorf("cannot load the bench catalog: %w", err)
	}
	now := time.Now()
	_, err := eng.CreateFlashSale(ctx, engine.FlashSaleSpec{
		SaleID: saleID, StoreID: "b1", SKUID: "bk0", Price: 9900,
		Quantity: 800_000_000, PerUserLimit: 0,
		StartsAt: now.Add(-time.Second), EndsAt: now.Add(time.Hour), HoldSeconds: 3600,
	})
	if err != nil {
		return fmt.Errorf("cannot create the bench sale: %w", err)
	}
	return nil
}
