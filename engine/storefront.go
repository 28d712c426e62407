package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// pageRoundRobinStores is how many stores each sweep refreshes besides
	// the dirty ones, so that changes made by other nodes show up too.
	pageRoundRobinStores = 4
	// pageSharePath is the mini-program page a shared card opens.
	pageSharePath = "/pages/store/index"
	// pageProductSharePath is the mini-program page of a shared product.
	pageProductSharePath = "/pages/product/index"
	// pageProductsMax bounds the product pages cached per store version.
	pageProductsMax = 10_000
)

// Stock states of a product on a page.
const (
	stockInStock = "in_stock"
	stockLow     = "low"
	stockSoldOut = "sold_out"
)

func stockState(available, lowMax int64) string {
	switch {
	case available <= 0:
		return stockSoldOut
	case available <= lowMax:
		return stockLow
	}
	return stockInStock
}

// pageSet holds every store's current page. Serving reads an immutable
// map and an atomic pointer; builds are serialised by mu.
type pageSet struct {
	guidesMax int
	slots     atomic.Pointer[map[string]*pageSlot]

	mu sync.Mutex // one build at a time; guards rr

	rr int

	dirtyMu sync.Mutex
	dirty   map[string]struct{}

	seenMu sync.Mutex
	seen   map[string]string // sale/deal pool -> "status/state" last seen
}

type pageSlot struct {
	cur atomic.Pointer[storePage]
}

// storePage is one build of a store's page; guide and product pages built
// from it are cached with it and die with it.
type storePage struct {
	storeID string
	ver     int64
	page    Page
	// states is each listed sku's stock state in this build.
	states map[string]string
	// items is each listed sku's grid item, for picks and product pages.
	items map[string]pageProduct
	flash []pageFlash
	group []pageGroup
	store pageStore

	mu       sync.RWMutex
	guides   map[string]*Page
	products map[string]map[string]*Page // sku -> guide ("" none) -> page
	nProduct int
}

func (ps *pageSet) init(guidesMax int) {
	ps.guidesMax = guidesMax
	m := map[string]*pageSlot{}
	ps.slots.Store(&m)
	ps.dirty = map[string]struct{}{}
	ps.seen = map[string]string{}
}

func (ps *pageSet) markDirty(storeID string) {
	ps.dirtyMu.Lock()
	if len(ps.dirty) < storesMax {
		ps.dirty[storeID] = struct{}{}
	}
	ps.dirtyMu.Unlock()
}

func (ps *pageSet) takeDirty() []string {
	ps.dirtyMu.Lock()
	defer ps.dirtyMu.Unlock()
	ids := make([]string, 0, len(ps.dirty))
	for id := range ps.dirty {
		ids = append(ids, id)
	}
	clear(ps.dirty)
	return ids
}

// saleChanged records a pool's status and stock state and reports whether
// they differ from the last call.
func (ps *pageSet) saleChanged(pool, status, state string) bool {
	v := status + "/" + state
	ps.seenMu.Lock()
	defer ps.seenMu.Unlock()
	if ps.seen[pool] == v {
		return false
	}
	if len(ps.seen) < salesInMemoryMax {
		ps.seen[pool] = v
	}
	return true
}

type pageStore struct {
	StoreID string `json:"store_id"`
	Name    string `json:"name"`
	City    string `json:"city"`
	Address string `json:"address,omitempty"`
	Hours   string `json:"hours,omitempty"`
}

type pageDeal struct {
	Kind     string `json:"kind"` // "flash" or "group"
	ID       string `json:"id"`
	Price    int64  `json:"price"`
	Status   string `json:"status"`
	TeamSize int64  `json:"team_size,omitempty"`
}

type pageProduct struct {
	SKUID      string     `json:"sku_id"`
	Title      string     `json:"title"`
	Category   string     `json:"category,omitempty"`
	Images     []string   `json:"images"`
	Price      int64      `json:"price"`
	ListPrice  int64      `json:"list_price"`
	StockState string     `json:"stock_state"`
	Deals      []pageDeal `json:"deals"`
}

type pageFlash struct {
	SaleID       string    `json:"sale_id"`
	SKUID        string    `json:"sku_id"`
	Title        string    `json:"title"`
	Image        string    `json:"image,omitempty"`
	Price        int64     `json:"price"`
	ListPrice    int64     `json:"list_price"`
	Quantity     int64     `json:"quantity"`
	Remaining    int64     `json:"remaining"`
	StockState   string    `json:"stock_state"`
	PerUserLimit int64     `json:"per_user_limit"`
	Status       string    `json:"status"`
	StartsAt     time.Time `json:"starts_at"`
	StartsAtMs   int64     `json:"starts_at_ms"`
	EndsAt       time.Time `json:"ends_at"`
	EndsAtMs     int64     `json:"ends_at_ms"`
}

type pageGroup struct {
	DealID     string    `json:"deal_id"`
	SKUID      string    `json:"sku_id"`
	Title      string    `json:"title"`
	Image      string    `json:"image,omitempty"`
	Price      int64     `json:"price"`
	ListPrice  int64     `json:"list_price"`
	TeamSize   int64     `json:"team_size"`
	Remaining  int64     `json:"remaining"`
	StockState string    `json:"stock_state"`
	Status     string    `json:"status"`
	StartsAt   time.Time `json:"starts_at"`
	StartsAtMs int64     `json:"starts_at_ms"`
	EndsAt     time.Time `json:"ends_at"`
	EndsAtMs   int64     `json:"ends_at_ms"`
}

type pageSection struct {
	Type  string `json:"type"` // "banners", "flash_sales", "group_deals", "products"
	Items any    `json:"items"`
}

type pageBody struct {
	Store    pageStore     `json:"store"`
	Sections []pageSection `json:"sections"`
}

type pageGuide struct {
	GuideID string `json:"guide_id"`
	Name    string `json:"name"`
	Avatar  string `json:"avatar,omitempty"`
	Title   string `json:"title,omitempty"`
}

type pageShare struct {
	Path        string            `json:"path"`
	Query       map[string]string `json:"query"`
	QueryString string            `json:"query_string"`
	Title       string            `json:"title"`
}

type pageOverlay struct {
	Guide pageGuide     `json:"guide"`
	Picks []pageProduct `json:"picks"`
	Share pageShare     `json:"share"`
}

type pageProductBody struct {
	Store      pageStore   `json:"store"`
	Product    pageProduct `json:"product"`
	FlashSales []pageFlash `json:"flash_sales"`
	GroupDeals []pageGroup `json:"group_deals"`
}

func pageETag(storeID string, body []byte, suffix string) string {
	h := fnv.New64a()
	h.Write(body)
	return `"` + storeID + "-" + strconv.FormatUint(h.Sum64(), 36) + suffix + `"`
}

// refreshAllPages makes a slot for every store of the catalog and rebuilds
// every page.
func (e *Engine) refreshAllPages(ctx context.Context) {
	cat := e.catalog.Load()
	e.pages.mu.Lock()
	old := *e.pages.slots.Load()
	m := make(map[string]*pageSlot, len(cat.stores))
	for _, id := range cat.storeOrder {
		if sl, ok := old[id]; ok {
			m[id] = sl
		} else {
			m[id] = &pageSlot{}
		}
	}
	e.pages.slots.Store(&m)
	e.pages.mu.Unlock()
	for _, id := range cat.storeOrder {
		e.refreshStore(ctx, id)
	}
}

// refreshDirtyPages rebuilds the stores marked dirty and a few others in
// turn (changes made on other nodes).
func (e *Engine) refreshDirtyPages(ctx context.Context) {
	ids := e.pages.takeDirty()
	cat := e.catalog.Load()
	if n := len(cat.storeOrder); n > 0 {
		e.pages.mu.Lock()
		for range min(pageRoundRobinStores, n) {
			e.pages.rr = (e.pages.rr + 1) % n
			ids = append(ids, cat.storeOrder[e.pages.rr])
		}
		e.pages.mu.Unlock()
	}
	done := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !done[id] {
			done[id] = true
			e.refreshStore(ctx, id)
		}
	}
}

// refreshStore rebuilds a store's page from the catalog, the listing pools
// and the store's sales and deals; the page (and its ETag) changes only
// when its content does.
func (e *Engine) refreshStore(ctx context.Context, storeID string) {
	cat := e.catalog.Load()
	st, ok := cat.stores[storeID]
	if !ok {
		return
	}
	e.pages.mu.Lock()
	defer e.pages.mu.Unlock()
	sl := (*e.pages.slots.Load())[storeID]
	if sl == nil {
		return
	}
	now := e.now()
	sp := &storePage{
		storeID:  storeID,
		store:    pageStore{StoreID: st.StoreID, Name: st.Name, City: st.City, Address: st.Address, Hours: st.Hours},
		states:   map[string]string{},
		items:    map[string]pageProduct{},
		guides:   map[string]*Page{},
		products: map[string]map[string]*Page{},
	}
	// Counts shown on the strip change with the stock state only (a page
	// is rebuilt per state, not per unit); the sale's own endpoint has the
	// live count.
	prevRemaining := map[string]int64{}
	prevState := map[string]string{}
	if old := sl.cur.Load(); old != nil {
		for _, f := range old.flash {
			prevRemaining["f/"+f.SaleID], prevState["f/"+f.SaleID] = f.Remaining, f.Status+"/"+f.StockState
		}
		for _, g := range old.group {
			prevRemaining["g/"+g.DealID], prevState["g/"+g.DealID] = g.Remaining, g.Status+"/"+g.StockState
		}
	}
	shown := func(key, status, state string, rem int64) int64 {
		if prevState[key] == status+"/"+state {
			return prevRemaining[key]
		}
		return rem
	}
	dealsBySKU := map[string][]pageDeal{}
	e.dealsMu.RLock()
	for _, s := range e.sales {
		if s.spec.StoreID != storeID {
			continue
		}
		status := s.ctl.status(now, s.spec.StartsAt, s.spec.EndsAt)
		if status == statusEnded {
			continue
		}
		rem := max(s.remaining.Load(), 0)
		state := stockState(rem, e.opts.StockLowMax)
		pf := pageFlash{SaleID: s.spec.SaleID, SKUID: s.spec.SKUID, Price: s.spec.Price, Quantity: s.spec.Quantity,
			Remaining: shown("f/"+s.spec.SaleID, status, state, rem), StockState: state, PerUserLimit: s.spec.PerUserLimit, Status: status,
			StartsAt: s.spec.StartsAt, StartsAtMs: s.spec.StartsAt.UnixMilli(), EndsAt: s.spec.EndsAt, EndsAtMs: s.spec.EndsAt.UnixMilli()}
		if p, ok := cat.products[s.spec.SKUID]; ok {
			pf.Title, pf.ListPrice = p.Title, p.Price
			if len(p.Images) > 0 {
				pf.Image = p.Images[0]
			}
		}
		if lp, ok := cat.listingPrice(storeID, s.spec.SKUID); ok {
			pf.ListPrice = lp
		}
		sp.flash = append(sp.flash, pf)
		dealsBySKU[s.spec.SKUID] = append(dealsBySKU[s.spec.SKUID], pageDeal{Kind: kindFlash, ID: s.spec.SaleID, Price: s.spec.Price, Status: status})
	}
	for _, d := range e.deals {
		if d.spec.StoreID != storeID {
			continue
		}
		status := d.ctl.status(now, d.spec.StartsAt, d.spec.EndsAt)
		if status == statusEnded {
			continue
		}
		rem := max(d.remaining.Load(), 0)
		state := stockState(rem, e.opts.StockLowMax)
		pg := pageGroup{DealID: d.spec.DealID, SKUID: d.spec.SKUID, Price: d.spec.Price, TeamSize: d.spec.TeamSize,
			Remaining: shown("g/"+d.spec.DealID, status, state, rem), StockState: state, Status: status,
			StartsAt: d.spec.StartsAt, StartsAtMs: d.spec.StartsAt.UnixMilli(), EndsAt: d.spec.EndsAt, EndsAtMs: d.spec.EndsAt.UnixMilli()}
		if p, ok := cat.products[d.spec.SKUID]; ok {
			pg.Title, pg.ListPrice = p.Title, p.Price
			if len(p.Images) > 0 {
				pg.Image = p.Images[0]
			}
		}
		if lp, ok := cat.listingPrice(storeID, d.spec.SKUID); ok {
			pg.ListPrice = lp
		}
		sp.group = append(sp.group, pg)
		dealsBySKU[d.spec.SKUID] = append(dealsBySKU[d.spec.SKUID], pageDeal{Kind: kindGroup, ID: d.spec.DealID, Price: d.spec.Price, Status: status, TeamSize: d.spec.TeamSize})
	}
	e.dealsMu.RUnlock()
	sort.Slice(sp.flash, func(i, j int) bool {
		a, b := sp.flash[i], sp.flash[j]
		return a.StartsAt.Before(b.StartsAt) || (a.StartsAt.Equal(b.StartsAt) && a.SaleID < b.SaleID)
	})
	sort.Slice(sp.group, func(i, j int) bool { return sp.group[i].DealID < sp.group[j].DealID })
	for _, ds := range dealsBySKU {
		sort.Slice(ds, func(i, j int) bool { return ds[i].ID < ds[j].ID })
	}

	grid := make([]pageProduct, 0, len(cat.listings[storeID]))
	for _, l := range cat.listings[storeID] {
		p := cat.products[l.SKUID]
		price, _ := cat.listingPrice(storeID, l.SKUID)
		state := stockSoldOut
		if pool, err := e.store.Pool(ctx, listingPool(storeID, l.SKUID)); err == nil {
			state = stockState(pool.Available, e.opts.StockLowMax)
		} else if old := sl.cur.Load(); old != nil && old.states[l.SKUID] != "" {
			state = old.states[l.SKUID] // backend hiccup: keep what we showed
		}
		item := pageProduct{SKUID: l.SKUID, Title: p.Title, Category: p.Category, Images: p.Images,
			Price: price, ListPrice: p.Price, StockState: state, Deals: dealsBySKU[l.SKUID]}
		if item.Images == nil {
			item.Images = []string{}
		}
		if item.Deals == nil {
			item.Deals = []pageDeal{}
		}
		grid = append(grid, item)
		sp.states[l.SKUID] = state
		sp.items[l.SKUID] = item
	}
	banners := st.Banners
	if banners == nil {
		banners = []string{}
	}
	flash, group := sp.flash, sp.group
	if flash == nil {
		flash = []pageFlash{}
	}
	if group == nil {
		group = []pageGroup{}
	}
	body, err := json.Marshal(pageBody{Store: sp.store, Sections: []pageSection{
		{Type: "banners", Items: banners},
		{Type: "flash_sales", Items: flash},
		{Type: "group_deals", Items: group},
		{Type: "products", Items: grid},
	}})
	if err != nil {
		panic("BUG: cannot encode store page: " + err.Error())
	}
	etag := pageETag(storeID, body, "")
	old := sl.cur.Load()
	if old != nil && old.page.ETag == etag {
		return
	}
	if old != nil {
		sp.ver = old.ver + 1
	} else {
		sp.ver = 1
	}
	sp.page = Page{Body: body, ETag: etag}
	sl.cur.Store(sp)
}

func (e *Engine) currentPage(storeID string) (*storePage, error) {
	sl := (*e.pages.slots.Load())[storeID]
	if sl == nil {
		return nil, fmt.Errorf("%w: store %q", ErrNotFound, storeID)
	}
	sp := sl.cur.Load()
	if sp == nil {
		return nil, fmt.Errorf("%w: store %q", ErrNotFound, storeID)
	}
	return sp, nil
}

// StorePage returns the store's precomputed page; with a guide, the page
// plus the guide's overlay (card, picks, share parameters). Unknown guides
// and guides of other stores get the plain store page.
func (e *Engine) StorePage(storeID, guideID string) (Page, error) {
	sp, err := e.currentPage(storeID)
	if err != nil {
		return Page{}, err
	}
	if guideID == "" {
		return sp.page, nil
	}
	sp.mu.RLock()
	p := sp.guides[guideID]
	sp.mu.RUnlock()
	if p != nil {
		return *p, nil
	}
	g, ok := e.catalog.Load().guides[guideID]
	if !ok || g.StoreID != storeID {
		// Unknown guides, and guides of other stores, get the plain
		// page: this bounds the cached overlays by the store's guides.
		return sp.page, nil
	}
	ov := e.overlay(sp, g, pageSharePath, "")
	body := make([]byte, 0, len(sp.page.Body)+len(ov)+1)
	body = append(body, sp.page.Body[:len(sp.page.Body)-1]...)
	body = append(body, ',')
	body = append(body, ov[1:]...)
	np := &Page{Body: body, ETag: sp.page.ETag[:len(sp.page.ETag)-1] + "-" + guideID + `"`}
	sp.mu.Lock()
	if len(sp.guides) < e.pages.guidesMax {
		sp.guides[guideID] = np
	}
	sp.mu.Unlock()
	return *np, nil
}

// overlay returns the JSON object {"guide","picks","share"} of a guide on
// a store page (or on one product when skuID is set).
func (e *Engine) overlay(sp *storePage, g *Guide, path, skuID string) []byte {
	ov := pageOverlay{
		Guide: pageGuide{GuideID: g.GuideID, Name: g.Name, Avatar: g.Avatar, Title: g.Title},
		Picks: []pageProduct{},
	}
	for _, k := range g.Picks {
		if it, ok := sp.items[k]; ok {
			ov.Picks = append(ov.Picks, it)
		}
	}
	q := url.Values{}
	q.Set("store_id", sp.storeID)
	q.Set("guide_id", g.GuideID)
	ov.Share = pageShare{Path: path, Query: map[string]string{"store_id": sp.storeID, "guide_id": g.GuideID}, Title: sp.store.Name}
	if skuID != "" {
		q.Set("sku_id", skuID)
		ov.Share.Query["sku_id"] = skuID
		ov.Share.Title = sp.items[skuID].Title + " · " + sp.store.Name
	} else if g.Name != "" {
		ov.Share.Title = g.Name + "@" + sp.store.Name
	}
	ov.Share.QueryString = q.Encode()
	b, err := json.Marshal(ov)
	if err != nil {
		panic("BUG: cannot encode guide overlay: " + err.Error())
	}
	return b
}

// ProductPage returns one product as this store sells it, with the guide's
// overlay when guideID names a guide.
func (e *Engine) ProductPage(storeID, skuID, guideID string) (Page, error) {
	sp, err := e.currentPage(storeID)
	if err != nil {
		return Page{}, err
	}
	var g *Guide
	if guideID != "" {
		if gg, ok := e.catalog.Load().guides[guideID]; ok && gg.StoreID == storeID {
			g = gg
		} else {
			guideID = ""
		}
	}
	sp.mu.RLock()
	p := sp.products[skuID][guideID]
	sp.mu.RUnlock()
	if p != nil {
		return *p, nil
	}
	item, ok := sp.items[skuID]
	if !ok {
		return Page{}, fmt.Errorf("%w: store %q does not list sku %q", ErrNotFound, storeID, skuID)
	}
	pb := pageProductBody{Store: sp.store, Product: item, FlashSales: []pageFlash{}, GroupDeals: []pageGroup{}}
	for _, f := range sp.flash {
		if f.SKUID == skuID {
			pb.FlashSales = append(pb.FlashSales, f)
		}
	}
	for _, d := range sp.group {
		if d.SKUID == skuID {
			pb.GroupDeals = append(pb.GroupDeals, d)
		}
	}
	body, err := json.Marshal(pb)
	if err != nil {
		panic("BUG: cannot encode product page: " + err.Error())
	}
	etagSuffix := "-" + skuID
	if g != nil {
		ov := e.overlay(sp, g, pageProductSharePath, skuID)
		body = append(body[:len(body)-1], ',')
		body = append(body, ov[1:]...)
		etagSuffix += "-" + guideID
	}
	np := &Page{Body: body, ETag: sp.page.ETag[:len(sp.page.ETag)-1] + etagSuffix + `"`}
	sp.mu.Lock()
	if sp.nProduct < pageProductsMax && (g == nil || len(sp.products[skuID]) < e.pages.guidesMax) {
		if sp.products[skuID] == nil {
			sp.products[skuID] = map[string]*Page{}
		}
		if _, dup := sp.products[skuID][guideID]; !dup {
			sp.products[skuID][guideID] = np
			sp.nProduct++
		}
	}
	sp.mu.Unlock()
	return *np, nil
}

// stateChanged reports whether a listing's stock state differs from the
// one its store's page shows.
func (e *Engine) stateChanged(storeID, skuID string, available int64) bool {
	sp, err := e.currentPage(storeID)
	if err != nil {
		return false
	}
	return sp.states[skuID] != stockState(available, e.opts.StockLowMax)
}
