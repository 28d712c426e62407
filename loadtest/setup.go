package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// catalogBytesMax keeps each catalog document under the server's default
// 64 KiB body limit; bigger setups are loaded in chunks of whole stores.
const catalogBytesMax = 60 << 10

// saleInfo is the flash sale the run uses.
type saleInfo struct {
	id       string
	storeID  string // the store whose page shows it; "" unknown
	owned    bool   // created by this run
	limit    int64  // per-user limit; 0 unknown
	holdS    int64  // hold seconds; 0 unknown
	startsMs int64  // by the server's clock
	endsMs   int64
	offsetMs int64 // server clock - local clock, measured
}

// dealInfo is the group deal the run uses.
type dealInfo struct {
	id    string
	owned bool
}

// statsDoc is GET /admin/v1/stats, the parts the run reads.
type statsDoc struct {
	Sales    map[string]PoolStats       `json:"sales"`
	Deals    map[string]PoolStats       `json:"deals"`
	Listings map[string]json.RawMessage `json:"listings"`
	Orders   struct {
		Written int64 `json:"written"`
		Lag     int64 `json:"lag"`
	} `json:"orders"`
}

// adminCall sends an unrecorded admin request and insists on code 0.
func (r *runner) adminCall(ctx context.Context, method, path string, body any, out any) error {
	a := r.c.do(ctx, call{method: method, path: path, body: body, token: r.cfg.AdminToken})
	if a.err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrConnect, method, path, a.err)
	}
	if !a.ok() {
		if a.code == 40100 || a.code == 40301 || a.status == 401 || a.status == 403 {
			return fmt.Errorf("%w: %s %s refused the admin token (%s %s)", ErrUsage, method, path, a.outcome, a.msg)
		}
		return fmt.Errorf("%w: %s %s answered %s: %s", ErrConnect, method, path, a.outcome, a.msg)
	}
	if out != nil {
		if err := a.decode(out); err != nil {
			return fmt.Errorf("%w: cannot decode the answer to %s %s: %v", ErrConnect, method, path, err)
		}
	}
	return nil
}

func (r *runner) stats(ctx context.Context) (statsDoc, error) {
	var s statsDoc
	err := r.adminCall(ctx, "GET", "/admin/v1/stats", nil, &s)
	return s, err
}

// probe checks that the target answers at all.
func (r *runner) probe(ctx context.Context) error {
	a := r.c.do(ctx, call{method: "GET", path: "/healthz"})
	if a.err != nil {
		return fmt.Errorf("%w at %s: %v", ErrConnect, r.cfg.Target, a.err)
	}
	if a.status >= 500 {
		return fmt.Errorf("%w: %s/healthz answered HTTP %d", ErrConnect, r.cfg.Target, a.status)
	}
	return nil
}

// setupCatalog loads a fresh catalog whose ids carry the run's tag.
func (r *runner) setupCatalog(ctx context.Context) error {
	const productsN = 10
	type store struct {
		StoreID string `json:"store_id"`
		Name    string `json:"name"`
		City    string `json:"city"`
	}
	type guide struct {
		GuideID string   `json:"guide_id"`
		StoreID string   `json:"store_id"`
		Name    string   `json:"name"`
		Picks   []string `json:"picks"`
	}
	type product struct {
		SKUID  string   `json:"sku_id"`
		Title  string   `json:"title"`
		Price  int64    `json:"price"`
		Images []string `json:"images"`
	}
	type listing struct {
		StoreID string `json:"store_id"`
		SKUID   string `json:"sku_id"`
		Price   int64  `json:"price"`
		OnHand  int64  `json:"on_hand"`
	}
	type catalog struct {
		Stores   []store   `json:"stores"`
		Guides   []guide   `json:"guides"`
		Products []product `json:"products"`
		Listings []listing `json:"listings"`
	}
	var products []product
	var skus []string
	for k := 1; k <= productsN; k++ {
		id := fmt.Sprintf("%s-k%02d", r.tag, k)
		skus = append(skus, id)
		products = append(products, product{SKUID: id, Title: fmt.Sprintf("压测商品 %d", k), Price: int64(10000 + 1000*k), Images: []string{}})
	}
	r.skusByStore = make(map[string][]string)
	r.guidesByStore = make(map[string][]string)
	chunk := catalog{Products: products}
	flush := func() error {
		if len(chunk.Stores) == 0 {
			return nil
		}
		if err := r.adminCall(ctx, "PUT", "/admin/v1/catalog", chunk, nil); err != nil {
			return fmt.Errorf("cannot load the catalog: %w", err)
		}
		chunk = catalog{Products: products}
		return nil
	}
	for i := 1; i <= r.cfg.SetupStores; i++ {
		sid := fmt.Sprintf("%s-s%03d", r.tag, i)
		st := store{StoreID: sid, Name: fmt.Sprintf("压测店 %d", i), City: "上海"}
		var gs []guide
		var ls []listing
		for g := 0; g < 2; g++ {
			gid := fmt.Sprintf("%s-g%03d%c", r.tag, i, 'a'+g)
			gs = append(gs, guide{GuideID: gid, StoreID: sid, Name: fmt.Sprintf("导购 %d%c", i, 'a'+g), Picks: []string{skus[g], skus[2+g]}})
			r.guidesByStore[sid] = append(r.guidesByStore[sid], gid)
		}
		for k, sku := range skus {
			onHand := int64(50)
			if i == 1 && k == 0 {
				onHand = int64(r.cfg.SaleQuantity)
			}
			if i == 1 && k == 1 {
				onHand = int64(r.cfg.DealQuantity)
			}
			ls = append(ls, listing{StoreID: sid, SKUID: sku, Price: products[k].Price - 1000, OnHand: onHand})
		}
		next := chunk
		next.Stores = append(append([]store(nil), chunk.Stores...), st)
		next.Guides = append(append([]guide(nil), chunk.Guides...), gs...)
		next.Listings = append(append([]listing(nil), chunk.Listings...), ls...)
		if b, _ := json.Marshal(next); len(b) > catalogBytesMax && len(chunk.Stores) > 0 {
			if err := flush(); err != nil {
				return err
			}
			next = catalog{Products: products, Stores: []store{st}, Guides: gs, Listings: ls}
		}
		chunk = next
		r.stores = append(r.stores, sid)
		r.skusByStore[sid] = skus
	}
	if err := flush(); err != nil {
		return err
	}
	r.saleSKU, r.dealSKU = skus[0], skus[1]
	r.notef("set up %d stores, %d products, 2 guides a store (ids prefixed %q)", r.cfg.SetupStores, productsN, r.tag)
	return nil
}

// setupPools creates the run's flash sale and group deal, starting StartIn
// from now and running well past every bounded phase of the run.
func (r *runner) setupPools(ctx context.Context) error {
	now := time.Now().UTC()
	starts := now.Add(r.cfg.StartIn)
	ends := starts.Add(r.cfg.Duration + r.cfg.DrainMax + r.cfg.SettleMax + r.cfg.OrderWaitMax + 10*time.Minute)
	store := r.stores[0]
	if r.cfg.Scenario == ScenarioFlash || r.cfg.Scenario == ScenarioMix {
		id := r.tag + "-sale"
		body := map[string]any{
			"sale_id": id, "store_id": store, "sku_id": r.saleSKU, "price": 9900,
			"quantity": r.cfg.SaleQuantity, "per_user_limit": max(r.cfg.PerUserLimit, 1),
			"starts_at": starts.Format(time.RFC3339Nano), "ends_at": ends.Format(time.RFC3339Nano),
			"hold_seconds": r.cfg.HoldSeconds,
		}
		if err := r.adminCall(ctx, "POST", "/admin/v1/flash-sales", body, nil); err != nil {
			return fmt.Errorf("cannot create the flash sale: %w", err)
		}
		r.sale = &saleInfo{id: id, owned: true}
		r.notef("created flash sale %s: %d units, limit %d, hold %ds", id, r.cfg.SaleQuantity, max(r.cfg.PerUserLimit, 1), r.cfg.HoldSeconds)
	}
	if r.cfg.Scenario == ScenarioGroup || r.cfg.Scenario == ScenarioMix {
		id := r.tag + "-deal"
		window := int64((r.cfg.TeamWindow + time.Second - 1) / time.Second)
		body := map[string]any{
			"deal_id": id, "store_id": store, "sku_id": r.dealSKU, "price": 7900,
			"team_size": r.cfg.TeamSize, "quantity": r.cfg.DealQuantity, "team_window_seconds": window,
			"starts_at": starts.Format(time.RFC3339Nano), "ends_at": ends.Format(time.RFC3339Nano),
		}
		if err := r.adminCall(ctx, "POST", "/admin/v1/group-buys", body, nil); err != nil {
			return fmt.Errorf("cannot create the group deal: %w", err)
		}
		r.deal = &dealInfo{id: id, owned: true}
		r.notef("created group deal %s: %d units, teams of %d, %ds window", id, r.cfg.DealQuantity, r.cfg.TeamSize, window)
	}
	return nil
}

// discover fills in what the flags did not name, from the admin stats.
func (r *runner) discover(ctx context.Context) error {
	c := r.cfg
	r.stores = append(r.stores, c.Stores...)
	r.skusByStore = make(map[string][]string)
	r.guidesByStore = make(map[string][]string)
	wantSale := c.Scenario == ScenarioFlash || c.Scenario == ScenarioMix
	wantDeal := c.Scenario == ScenarioGroup || c.Scenario == ScenarioMix
	var st statsDoc
	if c.AdminToken != "" {
		var err error
		if st, err = r.stats(ctx); err != nil {
			return err
		}
	}
	if len(r.stores) == 0 || len(c.SKUs) == 0 {
		seen := map[string]bool{}
		for _, key := range sortedKeys(st.Listings) {
			s, sku, ok := strings.Cut(key, "/")
			if !ok {
				continue
			}
			r.skusByStore[s] = append(r.skusByStore[s], sku)
			if len(c.Stores) == 0 && !seen[s] {
				seen[s] = true
				r.stores = append(r.stores, s)
			}
		}
	}
	if len(c.SKUs) > 0 {
		for _, s := range r.stores {
			r.skusByStore[s] = c.SKUs
		}
	}
	for _, g := range c.Guides {
		if s, gid, ok := strings.Cut(g, ":"); ok {
			r.guidesByStore[s] = append(r.guidesByStore[s], gid)
		}
	}
	if wantSale {
		id := c.SaleID
		if id == "" {
			for _, k := range sortedKeys(st.Sales) {
				if st.Sales[k].Remaining > 0 {
					if info, err := r.saleInfo(ctx, k); err == nil && (info.endsMs == 0 || info.endsMs > time.Now().UnixMilli()+info.offsetMs) {
						id = k
						break
					}
				}
			}
		}
		if id == "" && c.Scenario == ScenarioFlash {
			return fmt.Errorf("%w: no flash sale to rush: name one with --sale, or use --setup", ErrUsage)
		}
		if id != "" {
			r.sale = &saleInfo{id: id}
		}
	}
	if wantDeal {
		id := c.DealID
		if id == "" {
			for _, k := range sortedKeys(st.Deals) {
				if st.Deals[k].Remaining > 0 {
					id = k
					break
				}
			}
		}
		if id == "" && c.Scenario == ScenarioGroup {
			return fmt.Errorf("%w: no group deal: name one with --deal, or use --setup", ErrUsage)
		}
		if id != "" {
			r.deal = &dealInfo{id: id}
		}
	}
	needStores := c.Scenario == ScenarioBrowse || c.Scenario == ScenarioCheckout || c.Scenario == ScenarioMix
	if needStores && len(r.stores) == 0 {
		return fmt.Errorf("%w: no stores: name them with --stores, give --admin-token to discover them, or use --setup", ErrUsage)
	}
	if c.Scenario == ScenarioCheckout {
		n := 0
		for _, s := range r.stores {
			n += len(r.skusByStore[s])
		}
		if n == 0 {
			return fmt.Errorf("%w: no SKUs to check out: name them with --skus, or use --setup", ErrUsage)
		}
	}
	if r.sale != nil {
		r.notef("using flash sale %s", r.sale.id)
	}
	if r.deal != nil {
		r.notef("using group deal %s", r.deal.id)
	}
	if len(r.stores) > 0 {
		r.notef("using %d stores", len(r.stores))
	}
	return nil
}

// saleDoc is GET /api/v1/flash-sales/{id}.
type saleDoc struct {
	SaleID       string    `json:"sale_id"`
	StoreID      string    `json:"store_id"`
	PerUserLimit *int64    `json:"per_user_limit"`
	HoldSeconds  *int64    `json:"hold_seconds"`
	Remaining    int64     `json:"remaining"`
	Status       string    `json:"status"`
	StartsAt     time.Time `json:"starts_at"`
	StartsAtMs   int64     `json:"starts_at_ms"`
	EndsAt       time.Time `json:"ends_at"`
	EndsAtMs     int64     `json:"ends_at_ms"`
	ServerTimeMs int64     `json:"server_time_ms"`
}

func msOf(ms int64, t time.Time) int64 {
	if ms > 0 {
		return ms
	}
	if !t.IsZero() {
		return t.UnixMilli()
	}
	return 0
}

// saleInfo reads a sale through the public API.
func (r *runner) saleInfo(ctx context.Context, id string) (saleInfo, error) {
	sent := time.Now()
	a := r.c.do(ctx, call{method: "GET", path: "/api/v1/flash-sales/" + url.PathEscape(id)})
	if a.err != nil {
		return saleInfo{}, fmt.Errorf("%w: cannot read flash sale %s: %v", ErrConnect, id, a.err)
	}
	if a.code == 40400 {
		return saleInfo{}, fmt.Errorf("%w: flash sale %q not found", ErrUsage, id)
	}
	var d saleDoc
	if !a.ok() || a.decode(&d) != nil {
		return saleInfo{}, fmt.Errorf("%w: cannot read flash sale %s: %s %s", ErrConnect, id, a.outcome, a.msg)
	}
	info := saleInfo{id: id, storeID: d.StoreID, startsMs: msOf(d.StartsAtMs, d.StartsAt), endsMs: msOf(d.EndsAtMs, d.EndsAt)}
	if d.PerUserLimit != nil {
		info.limit = *d.PerUserLimit
	}
	if d.HoldSeconds != nil {
		info.holdS = *d.HoldSeconds
	}
	if d.ServerTimeMs > 0 {
		mid := sent.Add(a.done.Sub(sent) / 2)
		info.offsetMs = d.ServerTimeMs - mid.UnixMilli()
	}
	return info, nil
}

// resolveSale reads the sale, fills in the limit and waits for its start.
func (r *runner) resolveSale(ctx context.Context) error {
	info, err := r.saleInfo(ctx, r.sale.id)
	if err != nil {
		return err
	}
	info.owned = r.sale.owned
	if info.limit == 0 {
		info.limit = int64(r.cfg.PerUserLimit)
		if r.sale.owned {
			info.limit = int64(max(r.cfg.PerUserLimit, 1)) // what setupPools asked for
		}
	}
	if info.holdS == 0 && r.sale.owned {
		info.holdS = int64(r.cfg.HoldSeconds)
	}
	*r.sale = info
	r.led.mu.Lock()
	r.led.limitMax[info.id] = info.limit
	r.led.offsetMs = info.offsetMs
	r.led.mu.Unlock()
	nowSrv := time.Now().UnixMilli() + info.offsetMs
	if info.endsMs > 0 && info.endsMs <= nowSrv {
		return fmt.Errorf("%w: flash sale %s has ended", ErrUsage, info.id)
	}
	// A countdown run starts its main phase before the opening: people
	// load the page during the countdown.
	if wait := time.Duration(info.startsMs-nowSrv)*time.Millisecond - r.cfg.countdownLead(); wait > 0 {
		if wait > r.cfg.StartWaitMax {
			return fmt.Errorf("%w: flash sale %s starts in %v, beyond --start-wait %v", ErrUsage, info.id, wait.Round(time.Second), r.cfg.StartWaitMax)
		}
		r.notef("waited %v for the sale to start", wait.Round(time.Millisecond))
		fmt.Fprintf(r.cfg.Progress, "waiting %v for flash sale %s to start\n", wait.Round(time.Millisecond), info.id)
		if !sleepUntil(ctx, time.Now().Add(wait)) {
			return ctx.Err()
		}
	}
	return nil
}
