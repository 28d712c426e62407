package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/inventory"
)

// Bounds of one catalog document.
const (
	storesMax        = 10_000
	catalogGuidesMax = 200_000
	productsMax      = 100_000
	listingsMax      = 1_000_000
	picksMax         = 50
	bannersMax       = 20
	textLenMax       = 512
	imagesMax        = 20
	// priceMax bounds prices, in fen (10 million yuan).
	priceMax = 1_000_000_000
	// onHandMax bounds a listing's seeded stock.
	onHandMax = 1_000_000_000
)

// catalogSnap is an immutable snapshot of the catalog; replaced whole on load.
type catalogSnap struct {
	ver int64
	// tag is the recorded version "<ver>.<hash of the document>": two
	// nodes loading at once may pick the same ver, never the same tag
	// for different documents.
	tag        string
	doc        Catalog
	stores     map[string]*Store
	storeOrder []string
	guides     map[string]*Guide
	products   map[string]*Product
	// listings per store, in document order.
	listings map[string][]Listing
	// listing by store then sku.
	listing map[string]map[string]Listing
}

func emptyCatalogSnap() *catalogSnap {
	return &catalogSnap{
		stores:   map[string]*Store{},
		guides:   map[string]*Guide{},
		products: map[string]*Product{},
		listings: map[string][]Listing{},
		listing:  map[string]map[string]Listing{},
	}
}

// listingPrice is the store's price of sku, and whether the store lists it.
func (c *catalogSnap) listingPrice(storeID, skuID string) (int64, bool) {
	l, ok := c.listing[storeID][skuID]
	if !ok {
		return 0, false
	}
	if l.Price > 0 {
		return l.Price, true
	}
	if p, ok := c.products[skuID]; ok {
		return p.Price, true
	}
	return 0, false
}

func shortText(s string) bool { return len(s) <= textLenMax }

// validateCatalog checks c and builds its snapshot (ver not set).
func validateCatalog(c Catalog) (*catalogSnap, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: catalog: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(c.Stores) > storesMax || len(c.Guides) > catalogGuidesMax || len(c.Products) > productsMax || len(c.Listings) > listingsMax {
		return nil, bad("too many entries")
	}
	s := emptyCatalogSnap()
	s.doc = c
	for i := range c.Stores {
		st := &c.Stores[i]
		if !keyPart(st.StoreID) {
			return nil, bad("invalid store_id %q", st.StoreID)
		}
		if _, dup := s.stores[st.StoreID]; dup {
			return nil, bad("duplicate store_id %q", st.StoreID)
		}
		if !shortText(st.Name) || !shortText(st.City) || !shortText(st.Address) || !shortText(st.Hours) || len(st.Banners) > bannersMax {
			return nil, bad("store %q: field too long", st.StoreID)
		}
		for _, b := range st.Banners {
			if !shortText(b) {
				return nil, bad("store %q: banner too long", st.StoreID)
			}
		}
		s.stores[st.StoreID] = st
		s.storeOrder = append(s.storeOrder, st.StoreID)
		s.listing[st.StoreID] = map[string]Listing{}
	}
	for i := range c.Products {
		p := &c.Products[i]
		if !keyPart(p.SKUID) {
			return nil, bad("invalid sku_id %q", p.SKUID)
		}
		if _, dup := s.products[p.SKUID]; dup {
			return nil, bad("duplicate sku_id %q", p.SKUID)
		}
		if p.Price < 0 || p.Price > priceMax {
			return nil, bad("product %q: price %d out of range", p.SKUID, p.Price)
		}
		if !shortText(p.Title) || !shortText(p.Category) || len(p.Images) > imagesMax {
			return nil, bad("product %q: field too long", p.SKUID)
		}
		for _, im := range p.Images {
			if !shortText(im) {
				return nil, bad("product %q: image too long", p.SKUID)
			}
		}
		s.products[p.SKUID] = p
	}
	for i := range c.Guides {
		g := &c.Guides[i]
		if !keyPart(g.GuideID) {
			return nil, bad("invalid guide_id %q", g.GuideID)
		}
		if _, dup := s.guides[g.GuideID]; dup {
			return nil, bad("duplicate guide_id %q", g.GuideID)
		}
		if _, ok := s.stores[g.StoreID]; !ok {
			return nil, bad("guide %q: unknown store %q", g.GuideID, g.StoreID)
		}
		if !shortText(g.Name) || !shortText(g.Avatar) || !shortText(g.Title) || len(g.Picks) > picksMax {
			return nil, bad("guide %q: field too long", g.GuideID)
		}
		for _, k := range g.Picks {
			if _, ok := s.products[k]; !ok {
				return nil, bad("guide %q: unknown pick %q", g.GuideID, k)
			}
		}
		s.guides[g.GuideID] = g
	}
	for _, l := range c.Listings {
		m, ok := s.listing[l.StoreID]
		if !ok {
			return nil, bad("listing: unknown store %q", l.StoreID)
		}
		if _, ok := s.products[l.SKUID]; !ok {
			return nil, bad("listing: unknown sku %q", l.SKUID)
		}
		if _, dup := m[l.SKUID]; dup {
			return nil, bad("duplicate listing %s/%s", l.StoreID, l.SKUID)
		}
		if l.Price < 0 || l.Price > priceMax {
			return nil, bad("listing %s/%s: price %d out of range", l.StoreID, l.SKUID, l.Price)
		}
		if l.OnHand < 0 || l.OnHand > onHandMax {
			return nil, bad("listing %s/%s: on_hand %d out of range", l.StoreID, l.SKUID, l.OnHand)
		}
		m[l.SKUID] = l
		s.listings[l.StoreID] = append(s.listings[l.StoreID], l)
	}
	return s, nil
}

// LoadCatalog validates and installs c: new listings get a stock pool
// seeded with on_hand; names, prices and assortment are replaced; stock of
// existing pools is never touched (listings missing from c leave the
// assortment but keep their pool). Invalid input changes nothing.
func (e *Engine) LoadCatalog(ctx context.Context, c Catalog) (CatalogResult, error) {
	if e.closed.Load() {
		return CatalogResult{}, errEngineClosed
	}
	snap, err := validateCatalog(c)
	if err != nil {
		return CatalogResult{}, err
	}
	e.catalogMu.Lock()
	defer e.catalogMu.Unlock()
	res := CatalogResult{Stores: len(c.Stores), Guides: len(c.Guides), Products: len(c.Products), Listings: len(c.Listings)}
	for _, l := range c.Listings {
		seeded, err := e.seedListing(ctx, l)
		if err != nil {
			return res, err
		}
		if seeded {
			res.NewListings++
		}
	}
	doc, err := json.Marshal(c)
	if err != nil {
		return res, fmt.Errorf("cannot encode catalog: %w", err)
	}
	ver, _, err := e.recordedCatalogVer(ctx)
	if err != nil {
		return res, err
	}
	if cur := e.catalog.Load().ver; cur > ver {
		ver = cur
	}
	ver++
	tag := catalogTag(ver, doc)
	if err := e.rec.PutBatch(ctx, []records.KV{
		{Key: keyCatalogDoc, Val: doc},
		{Key: keyCatalogVer, Val: []byte(tag)},
	}); err != nil {
		return res, fmt.Errorf("%w: cannot record catalog: %w", ErrUnavailable, err)
	}
	snap.ver, snap.tag = ver, tag
	e.installCatalog(ctx, snap)
	return res, nil
}

func catalogTag(ver int64, doc []byte) string {
	h := fnv.New64a()
	h.Write(doc)
	return strconv.FormatInt(ver, 10) + "." + strconv.FormatUint(h.Sum64(), 36)
}

// recordedCatalogVer reads the recorded catalog version and tag.
func (e *Engine) recordedCatalogVer(ctx context.Context) (int64, string, error) {
	b, ok, err := e.rec.Get(ctx, keyCatalogVer)
	if err != nil {
		return 0, "", fmt.Errorf("%w: cannot read catalog version: %w", ErrUnavailable, err)
	}
	if !ok {
		return 0, "", nil
	}
	num, _, _ := strings.Cut(string(b), ".")
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("cannot parse catalog version %q: %w", b, err)
	}
	return v, string(b), nil
}

// syncCatalog installs the recorded catalog when it differs from ours and
// is not older (another node loaded one, or we are starting).
func (e *Engine) syncCatalog(ctx context.Context) error {
	stale := func(ver int64, tag string) bool {
		cur := e.catalog.Load()
		return tag != "" && tag != cur.tag && ver >= cur.ver
	}
	ver, tag, err := e.recordedCatalogVer(ctx)
	if err != nil || !stale(ver, tag) {
		return err
	}
	e.catalogMu.Lock()
	defer e.catalogMu.Unlock()
	b, ok, err := e.rec.Get(ctx, keyCatalogDoc)
	if err != nil {
		return fmt.Errorf("%w: cannot read catalog: %w", ErrUnavailable, err)
	}
	if !ok {
		return nil
	}
	// The document and the tag are written in one batch, but read in two
	// calls: take the tag of the document we read.
	tag = catalogTag(ver, b)
	if !stale(ver, tag) {
		return nil
	}
	var c Catalog
	if err := json.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("cannot decode recorded catalog: %w", err)
	}
	snap, err := validateCatalog(c)
	if err != nil {
		return fmt.Errorf("cannot install recorded catalog: %w", err)
	}
	snap.ver, snap.tag = ver, tag
	e.installCatalog(ctx, snap)
	return nil
}

func (e *Engine) installCatalog(ctx context.Context, snap *catalogSnap) {
	e.catalog.Store(snap)
	e.refreshAllPages(ctx)
}

// seedSeq is the inventory feed sequence of a listing's seed level. The
// feed's own sequences are shifted by one (feedSeq) so that a POS starting
// at seq 1 is newer than the seed.
const seedSeq = 1

// seedListing creates a listing's pool and sets its on-hand level to the
// seed through the feed path, so that the pool's on-hand baseline is the
// seed and the first POS level moves availability by the difference
// (law 7). A pool left unseeded by a crash is seeded on the next load.
func (e *Engine) seedListing(ctx context.Context, l Listing) (bool, error) {
	pool := listingPool(l.StoreID, l.SKUID)
	err := e.store.CreatePool(ctx, pool, 0)
	if err != nil && !errors.Is(err, inventory.ErrPoolExists) {
		return false, fmt.Errorf("cannot create listing pool %s/%s: %w", l.StoreID, l.SKUID, storeErr(err))
	}
	if err != nil {
		p, err := e.store.Pool(ctx, pool)
		if err != nil {
			return false, fmt.Errorf("cannot read listing pool %s/%s: %w", l.StoreID, l.SKUID, storeErr(err))
		}
		if p.Seq >= seedSeq {
			return false, nil
		}
	}
	res, err := e.store.SetOnHand(ctx, pool, l.OnHand, seedSeq)
	if err != nil {
		return false, fmt.Errorf("cannot seed listing %s/%s: %w", l.StoreID, l.SKUID, storeErr(err))
	}
	return res.Applied, nil
}
