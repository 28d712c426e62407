package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/config"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/inventory"
)

// TestCheckPebble: surge check over the Pebble stores a node left: ok
// after sales and payments; a reservation paid behind the engine's back
// (no order) is reported by name and fails the check.
func TestCheckPebble(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg, err := config.Load(config.Sources{Flags: map[string]string{"data": dir, "backend": "pebble"}})
	if err != nil {
		t.Fatal(err)
	}
	openInv := func() inventory.Store {
		st, err := inventory.OpenPebble(filepath.Join(dir, "inventory"), inventory.PebbleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := openInv()
	eng, err := engine.Open(ctx, engine.Options{Store: st, Dir: filepath.Join(dir, "engine"), SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.LoadDemo(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cat := engine.Catalog{
		Stores:   []engine.Store{{StoreID: "s1", Name: "s1", City: "c"}},
		Products: []engine.Product{{SKUID: "k1", Title: "k1", Price: 100}},
		Listings: []engine.Listing{{StoreID: "s1", SKUID: "k1", Price: 100, OnHand: 20}},
	}
	if _, err := eng.LoadCatalog(ctx, cat); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: "f1", StoreID: "s1", SKUID: "k1", Price: 50,
		Quantity: 5, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var held string
	for i, u := range []string{"a", "b", "c"} {
		r, err := eng.ReserveFlash(ctx, engine.Attempt{UserID: u}, "f1", 1, "")
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			held = r.ReservationID
			continue
		}
		if _, err := eng.Pay(ctx, u, r.ReservationID, "p-"+u); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	rep, err := check(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printCheck(&out, rep, false)
	if !rep.OK || rep.Paid != 2 || rep.Held != 1 || !strings.Contains(out.String(), "surge check: ok") {
		t.Fatalf("check = %+v\n%s", rep, out.String())
	}

	st = openInv()
	if _, err := st.Confirm(ctx, held); err != nil {
		t.Fatal(err)
	}
	st.Close()
	rep, err = check(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	printCheck(&out, rep, false)
	if rep.OK || rep.DiscrepanciesTotal != 1 || !strings.Contains(out.String(), engine.DiscOrderMissing+" reservation="+held) {
		t.Fatalf("check after damage = %+v\n%s", rep, out.String())
	}
}
