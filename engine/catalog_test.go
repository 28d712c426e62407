package engine_test

import (
	"testing"

	"github.com/surge-retail/surge/engine"
)

// TestCatalogValidation: bad documents are refused and change nothing.
func TestCatalogValidation(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	before, _ := env.e.StorePage("s1", "")
	f := func(name string, mut func(c *engine.Catalog)) {
		t.Helper()
		c := testCatalog()
		mut(&c)
		if _, err := env.e.LoadCatalog(env.ctx, c); !isErr(err, engine.ErrInvalid) {
			t.Fatalf("%s: err = %v; want ErrInvalid", name, err)
		}
		if after, _ := env.e.StorePage("s1", ""); after.ETag != before.ETag {
			t.Fatalf("%s: page changed", name)
		}
	}
	f("store id with colon", func(c *engine.Catalog) { c.Stores[0].StoreID = "s:1" })
	f("duplicate store", func(c *engine.Catalog) { c.Stores[1].StoreID = "s1" })
	f("guide of unknown store", func(c *engine.Catalog) { c.Guides[0].StoreID = "s9" })
	f("guide picks unknown sku", func(c *engine.Catalog) { c.Guides[0].Picks = []string{"k9"} })
	f("listing of unknown store", func(c *engine.Catalog) { c.Listings[0].StoreID = "s9" })
	f("listing of unknown sku", func(c *engine.Catalog) { c.Listings[0].SKUID = "k9" })
	f("negative price", func(c *engine.Catalog) { c.Products[0].Price = -1 })
	f("negative listing price", func(c *engine.Catalog) { c.Listings[0].Price = -1 })
	f("negative on_hand", func(c *engine.Catalog) { c.Listings[0].OnHand = -1 })
	f("empty sku id", func(c *engine.Catalog) { c.Products[0].SKUID = "" })
	if p := env.pool("s1:l:k1"); p.Supplied != 1000 {
		t.Fatalf("stock changed: %+v", p)
	}
}

// TestCatalogReload: a later load changes prices and assortment, never
// stock; a listing dropped from the document keeps its pool.
func TestCatalogReload(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	if _, err := env.e.Checkout(env.ctx, attempt("u1"), engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k1", Quantity: 5}}}); err != nil {
		t.Fatal(err)
	}
	c := testCatalog()
	c.Listings[0].OnHand = 7    // ignored: k1 exists
	c.Listings[0].Price = 45900 // new price
	c.Listings = c.Listings[:2] // drop s1/k3
	c.Listings = append(c.Listings, engine.Listing{StoreID: "s2", SKUID: "k2", Price: 100, OnHand: 4})
	res, err := env.e.LoadCatalog(env.ctx, c)
	if err != nil || res.NewListings != 1 || res.Listings != 3 {
		t.Fatalf("LoadCatalog = %+v, %v", res, err)
	}
	if p := env.pool("s1:l:k1"); p.Supplied != 1000 || p.Held != 5 {
		t.Fatalf("k1 = %+v; want stock untouched", p)
	}
	if p := env.pool("s1:l:k3"); p.Supplied != 3 {
		t.Fatalf("dropped k3 lost its pool: %+v", p)
	}
	_, prods := decodePage(t, mustPage(t, env, "s1"))
	if _, ok := prods["k3"]; ok || prods["k1"].Price != 45900 {
		t.Fatalf("s1 products = %+v", prods)
	}
	_, prods = decodePage(t, mustPage(t, env, "s2"))
	if prods["k2"].StockState != "low" {
		t.Fatalf("s2/k2 = %+v; want low", prods["k2"])
	}
}

func mustPage(t *testing.T, env *testEnv, store string) engine.Page {
	t.Helper()
	p, err := env.e.StorePage(store, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDemoCatalog: the embedded demo loads, with its sale and deal.
func TestDemoCatalog(t *testing.T) {
	c, err := engine.DemoCatalog()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Stores) != 20 || len(c.Guides) != 100 || len(c.Products) != 200 {
		t.Fatalf("demo: %d stores, %d guides, %d products", len(c.Stores), len(c.Guides), len(c.Products))
	}
	env := openEnv(t, testBackends()[0], nil)
	res, err := env.e.LoadDemo(env.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.SaleID == "" || res.DealID == "" || res.Catalog.NewListings != len(c.Listings) {
		t.Fatalf("LoadDemo = %+v", res)
	}
	fs, err := env.e.FlashSale(env.ctx, res.SaleID)
	if err != nil || fs.Status != "upcoming" || fs.StartsAtMs-fs.ServerTimeMs != 30_000 {
		t.Fatalf("demo sale = %+v, %v", fs, err)
	}
	gd, err := env.e.GroupDeal(env.ctx, res.DealID)
	if err != nil || gd.Status != "active" {
		t.Fatalf("demo deal = %+v, %v", gd, err)
	}
	again, err := env.e.LoadDemo(env.ctx)
	if err != nil || again.SaleID != res.SaleID || again.DealID != res.DealID || again.Catalog.NewListings != 0 {
		t.Fatalf("LoadDemo again = %+v, %v", again, err)
	}
	if _, err := env.e.StorePage("s001", "g001"); err != nil {
		t.Fatal(err)
	}
}
