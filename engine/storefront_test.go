package engine_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/surge-retail/surge/engine"
)

type testPage struct {
	Store struct {
		StoreID string `json:"store_id"`
		Name    string `json:"name"`
	} `json:"store"`
	Sections []struct {
		Type  string            `json:"type"`
		Items []json.RawMessage `json:"items"`
	} `json:"sections"`
	Guide *struct {
		GuideID string `json:"guide_id"`
	} `json:"guide"`
	Picks []struct {
		SKUID string `json:"sku_id"`
	} `json:"picks"`
	Share *struct {
		Path  string            `json:"path"`
		Query map[string]string `json:"query"`
	} `json:"share"`
}

type testProduct struct {
	SKUID      string `json:"sku_id"`
	Price      int64  `json:"price"`
	StockState string `json:"stock_state"`
	Deals      []struct {
		Kind string `json:"kind"`
		ID   string `json:"id"`
	} `json:"deals"`
}

func decodePage(t *testing.T, p engine.Page) (testPage, map[string]testProduct) {
	t.Helper()
	var pg testPage
	if err := json.Unmarshal(p.Body, &pg); err != nil {
		t.Fatalf("page is not JSON: %v\n%s", err, p.Body)
	}
	prods := map[string]testProduct{}
	for _, s := range pg.Sections {
		if s.Type != "products" {
			continue
		}
		for _, raw := range s.Items {
			var it testProduct
			if err := json.Unmarshal(raw, &it); err != nil {
				t.Fatal(err)
			}
			prods[it.SKUID] = it
		}
	}
	return pg, prods
}

// TestStorePageStockState: the page changes (bytes and ETag) when a stock
// state changes, and only then.
func TestStorePageStockState(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	p1, err := env.e.StorePage("s1", "")
	if err != nil {
		t.Fatal(err)
	}
	pg, prods := decodePage(t, p1)
	if pg.Store.Name != "静安店" || len(pg.Sections) != 4 || len(prods) != 3 {
		t.Fatalf("page = %s", p1.Body)
	}
	if prods["k1"].StockState != "in_stock" || prods["k3"].StockState != "low" || prods["k1"].Price != 49900 || prods["k2"].Price != 29900 {
		t.Fatalf("products = %+v", prods)
	}
	// A feed change within the same state: same page.
	res, err := env.e.ApplyFeed(env.ctx, []engine.FeedUpdate{{StoreID: "s1", SKUID: "k1", OnHand: 900, Seq: 1}})
	if err != nil || res[0].Status != "applied" || res[0].Available != 900 {
		t.Fatalf("ApplyFeed = %+v, %v", res, err)
	}
	p2, _ := env.e.StorePage("s1", "")
	if p2.ETag != p1.ETag || !bytes.Equal(p2.Body, p1.Body) {
		t.Fatalf("page changed on a count change: %s -> %s", p1.ETag, p2.ETag)
	}
	// To sold out: a new page at once.
	res, err = env.e.ApplyFeed(env.ctx, []engine.FeedUpdate{{StoreID: "s1", SKUID: "k1", OnHand: 0, Seq: 2}})
	if err != nil || res[0].Status != "applied" {
		t.Fatalf("ApplyFeed = %+v, %v", res, err)
	}
	p3, _ := env.e.StorePage("s1", "")
	if p3.ETag == p1.ETag {
		t.Fatal("ETag unchanged after sold out")
	}
	if _, prods := decodePage(t, p3); prods["k1"].StockState != "sold_out" {
		t.Fatalf("k1 = %+v; want sold_out", prods["k1"])
	}
	// A checkout takes the last units of k3: the next sweep shows sold out.
	if _, err := env.e.Checkout(env.ctx, attempt("u1"), engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k3", Quantity: 3}}}); err != nil {
		t.Fatal(err)
	}
	env.sweep()
	p4, _ := env.e.StorePage("s1", "")
	if _, prods := decodePage(t, p4); prods["k3"].StockState != "sold_out" || p4.ETag == p3.ETag {
		t.Fatalf("k3 = %+v (etag %s -> %s); want sold_out", prods["k3"], p3.ETag, p4.ETag)
	}
	// Another store is untouched.
	if _, err := env.e.StorePage("zz", ""); !isErr(err, engine.ErrNotFound) {
		t.Fatalf("unknown store: %v", err)
	}
}

// TestStorePageSalesAndGuide: sales and deals show on the page and on their
// products; a guide's page is the store page plus the overlay.
func TestStorePageSalesAndGuide(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	env.sale("fs1", 10, 1)
	env.deal("gb1", 2, 10, 0)
	p, err := env.e.StorePage("s1", "")
	if err != nil {
		t.Fatal(err)
	}
	pg, prods := decodePage(t, p)
	var nFlash, nGroup int
	for _, s := range pg.Sections {
		switch s.Type {
		case "flash_sales":
			nFlash = len(s.Items)
		case "group_deals":
			nGroup = len(s.Items)
		}
	}
	if nFlash != 1 || nGroup != 1 || len(prods["k1"].Deals) != 2 {
		t.Fatalf("flash %d group %d k1 deals %+v\n%s", nFlash, nGroup, prods["k1"].Deals, p.Body)
	}
	if !strings.Contains(string(p.Body), `"starts_at_ms":`) || !strings.Contains(string(p.Body), `"ends_at_ms":`) {
		t.Fatalf("no countdown fields: %s", p.Body)
	}
	g, err := env.e.StorePage("s1", "g1")
	if err != nil {
		t.Fatal(err)
	}
	if g.ETag == p.ETag || !bytes.HasPrefix(g.Body, p.Body[:len(p.Body)-1]) {
		t.Fatalf("guide page is not the store page plus an overlay")
	}
	gp, _ := decodePage(t, g)
	if gp.Guide == nil || gp.Guide.GuideID != "g1" || len(gp.Picks) != 2 || gp.Share == nil ||
		gp.Share.Query["store_id"] != "s1" || gp.Share.Query["guide_id"] != "g1" || gp.Share.Path == "" {
		t.Fatalf("guide overlay = %s", g.Body[len(p.Body)-1:])
	}
	// Cached: the same bytes again.
	g2, _ := env.e.StorePage("s1", "g1")
	if &g2.Body[0] != &g.Body[0] {
		t.Fatal("guide page rebuilt on a second request")
	}
	// Unknown guide: the store page.
	if u, _ := env.e.StorePage("s1", "nobody"); u.ETag != p.ETag {
		t.Fatal("unknown guide did not get the store page")
	}
	// The store page changes: the guide page follows.
	if _, err := env.e.ApplyFeed(env.ctx, []engine.FeedUpdate{{StoreID: "s1", SKUID: "k2", OnHand: 0, Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	g3, _ := env.e.StorePage("s1", "g1")
	if g3.ETag == g.ETag {
		t.Fatal("guide page not invalidated by a store change")
	}
	// Product page.
	pp, err := env.e.ProductPage("s1", "k1", "g1")
	if err != nil {
		t.Fatal(err)
	}
	var prod struct {
		Product    testProduct       `json:"product"`
		FlashSales []json.RawMessage `json:"flash_sales"`
		Share      struct {
			Query map[string]string `json:"query"`
		} `json:"share"`
	}
	if err := json.Unmarshal(pp.Body, &prod); err != nil {
		t.Fatal(err)
	}
	if prod.Product.Price != 49900 || len(prod.FlashSales) != 1 || prod.Share.Query["sku_id"] != "k1" || prod.Share.Query["guide_id"] != "g1" {
		t.Fatalf("product page = %s", pp.Body)
	}
	if _, err := env.e.ProductPage("s1", "k9", ""); !isErr(err, engine.ErrNotFound) {
		t.Fatalf("unknown sku: %v", err)
	}
	if _, err := env.e.ProductPage("s2", "k2", ""); !isErr(err, engine.ErrNotFound) {
		t.Fatalf("sku not listed in s2: %v", err)
	}
}
