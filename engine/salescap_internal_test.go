package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// TestSalesCapLeavesNoStock: a sale or deal refused because memory already
// holds as many as it may takes no stock from the listing and leaves no
// record (law 2), and uncarve (the path for a cap reached between the
// check and the install) gives carved stock back.
func TestSalesCapLeavesNoStock(t *testing.T) {
	ctx := context.Background()
	st := inventory.NewMemory(inventory.Options{})
	e, err := Open(ctx, Options{Store: st, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, err = e.LoadCatalog(ctx, Catalog{
		Stores:   []Store{{StoreID: "s1", Name: "s1"}},
		Products: []Product{{SKUID: "k1", Title: "k1", Price: 100}},
		Listings: []Listing{{StoreID: "s1", SKUID: "k1", Price: 100, OnHand: 100}},
	})
	if err != nil {
		t.Fatal(err)
	}
	available := func() int64 {
		t.Helper()
		p, err := st.Pool(ctx, listingPool("s1", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		return p.Available
	}
	e.salesMax = 1
	now := time.Now()
	sale := func(id string) FlashSaleSpec {
		return FlashSaleSpec{SaleID: id, StoreID: "s1", SKUID: "k1", Price: 50, Quantity: 10,
			StartsAt: now, EndsAt: now.Add(time.Hour)}
	}
	if _, err := e.CreateFlashSale(ctx, sale("fs1")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateFlashSale(ctx, sale("fs2")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("CreateFlashSale over the cap = %v; want ErrUnavailable", err)
	}
	_, err = e.CreateGroupDeal(ctx, GroupDealSpec{DealID: "gd1", StoreID: "s1", SKUID: "k1", Price: 50,
		TeamSize: 2, Quantity: 10, TeamWindowSeconds: 60, StartsAt: now, EndsAt: now.Add(time.Hour)})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("CreateGroupDeal over the cap = %v; want ErrUnavailable", err)
	}
	if got := available(); got != 90 {
		t.Fatalf("listing available = %d; want 90 (only fs1 carved)", got)
	}
	for _, key := range []string{keySalePrefix + "fs2", keyDealPrefix + "gd1"} {
		if _, ok, err := e.rec.Get(ctx, key); err != nil || ok {
			t.Fatalf("record %s after a refused create: found %v, %v", key, ok, err)
		}
	}

	// The late path: carved, then found full.
	rec := saleRec{Flash: &FlashSaleSpec{SaleID: "fs3", StoreID: "s1", SKUID: "k1", Quantity: 7}}
	key, to := keySalePrefix+"fs3", salePool("s1", "fs3")
	if err := e.carve(ctx, key, &rec, listingPool("s1", "k1"), to, 7); err != nil {
		t.Fatal(err)
	}
	if got := available(); got != 83 {
		t.Fatalf("listing available after carving 7 = %d; want 83", got)
	}
	e.uncarve(ctx, key, listingPool("s1", "k1"), to)
	if got := available(); got != 90 {
		t.Fatalf("listing available after uncarve = %d; want 90", got)
	}
	if _, ok, err := e.rec.Get(ctx, key); err != nil || ok {
		t.Fatalf("record %s after uncarve: found %v, %v", key, ok, err)
	}
}
