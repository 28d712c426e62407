package engine

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

//go:embed demo/catalog.json
var demoCatalogJSON []byte

const (
	// demoStoreID is the store of the demo sale and deal.
	demoStoreID = "s001"
	// demoSaleQuantity is the demo flash sale's quantity (less when the
	// listing has fewer units).
	demoSaleQuantity = 100
	// demoSaleStartDelay is how long after LoadDemo the flash sale starts.
	demoSaleStartDelay = 30 * time.Second
	// demoSaleDuration is how long the demo sale and deal run.
	demoSaleDuration = 2 * time.Hour
	demoSalePrefix   = "demo-fs-"
	demoDealPrefix   = "demo-gb-"
)

// DemoCatalog returns the embedded demo catalog: 20 stores in six cities,
// 100 guides, 200 SKUs and 2,400 listings.
func DemoCatalog() (Catalog, error) {
	var c Catalog
	dec := json.NewDecoder(bytes.NewReader(demoCatalogJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Catalog{}, fmt.Errorf("cannot decode demo catalog: %w", err)
	}
	return c, nil
}

// DemoResult says what LoadDemo loaded.
type DemoResult struct {
	Catalog CatalogResult `json:"catalog"`
	SaleID  string        `json:"sale_id"`
	DealID  string        `json:"deal_id"`
	StoreID string        `json:"store_id"`
}

// LoadDemo loads the demo catalog, a flash sale in store s001 starting
// 30 seconds from now and a running group deal there. A sale or deal left
// from an earlier LoadDemo that has not ended is reused.
func (e *Engine) LoadDemo(ctx context.Context) (DemoResult, error) {
	c, err := DemoCatalog()
	if err != nil {
		return DemoResult{}, err
	}
	cr, err := e.LoadCatalog(ctx, c)
	if err != nil {
		return DemoResult{}, fmt.Errorf("cannot load demo catalog: %w", err)
	}
	res := DemoResult{Catalog: cr, StoreID: demoStoreID}
	now := e.now()
	e.dealsMu.RLock()
	for id, s := range e.sales {
		if strings.HasPrefix(id, demoSalePrefix) && now.Before(s.spec.EndsAt) {
			res.SaleID = id
		}
	}
	for id, d := range e.deals {
		if strings.HasPrefix(id, demoDealPrefix) && now.Before(d.spec.EndsAt) {
			res.DealID = id
		}
	}
	e.dealsMu.RUnlock()
	// The two best-stocked listings of the demo store.
	var best [2]Listing
	for _, l := range c.Listings {
		if l.StoreID != demoStoreID {
			continue
		}
		switch {
		case l.OnHand > best[0].OnHand:
			best[1], best[0] = best[0], l
		case l.OnHand > best[1].OnHand:
			best[1] = l
		}
	}
	qty := func(l Listing) (int64, error) {
		p, err := e.store.Pool(ctx, listingPool(l.StoreID, l.SKUID))
		if err != nil {
			return 0, fmt.Errorf("cannot read demo listing: %w", storeErr(err))
		}
		if p.Available <= 0 {
			return 0, fmt.Errorf("%w: demo listing %s has no stock left", ErrSoldOut, l.SKUID)
		}
		return min(demoSaleQuantity, p.Available), nil
	}
	token := newToken(now)
	if res.SaleID == "" {
		q, err := qty(best[0])
		if err != nil {
			return res, err
		}
		price, _ := e.catalog.Load().listingPrice(demoStoreID, best[0].SKUID)
		start := now.Add(demoSaleStartDelay)
		fs, err := e.CreateFlashSale(ctx, FlashSaleSpec{
			SaleID: demoSalePrefix + token, StoreID: demoStoreID, SKUID: best[0].SKUID,
			Price: price / 2, Quantity: q, PerUserLimit: 1,
			StartsAt: start, EndsAt: start.Add(demoSaleDuration), HoldSeconds: 300,
		})
		if err != nil {
			return res, fmt.Errorf("cannot create demo flash sale: %w", err)
		}
		res.SaleID = fs.SaleID
	}
	if res.DealID == "" {
		q, err := qty(best[1])
		if err != nil {
			return res, err
		}
		price, _ := e.catalog.Load().listingPrice(demoStoreID, best[1].SKUID)
		gd, err := e.CreateGroupDeal(ctx, GroupDealSpec{
			DealID: demoDealPrefix + token, StoreID: demoStoreID, SKUID: best[1].SKUID,
			Price: price * 7 / 10, TeamSize: 3, Quantity: q, TeamWindowSeconds: 600,
			StartsAt: now.Add(-time.Second), EndsAt: now.Add(demoSaleDuration),
		})
		if err != nil {
			return res, fmt.Errorf("cannot create demo group deal: %w", err)
		}
		res.DealID = gd.DealID
	}
	return res, nil
}
