package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/browsertest"
)

// guideRow is one row of GET /admin/v1/attribution.
type guideRow struct {
	StoreID   string `json:"store_id"`
	GuideID   string `json:"guide_id"`
	StoreName string `json:"store_name"`
	GuideName string `json:"guide_name"`
	Orders    int64  `json:"orders"`
	Units     int64  `json:"units"`
	Amount    int64  `json:"amount"`
}

type attribution struct {
	Guides []guideRow `json:"guides"`
	Totals struct {
		Orders int64 `json:"orders"`
		Units  int64 `json:"units"`
		Amount int64 `json:"amount"`
	} `json:"totals"`
}

// TestGuideSalesInABrowser: orders attributed to two guides, made through
// the public API (one of them by a shopper on the guide's H5 page, with
// its buttons), show on the operator's /admin/ page of a real `surge
// serve --demo` as the per-guide panel's counts and amounts, the same as
// the attribution route's, with the guides' and store's names; a later
// order shows after the panel's refresh; the sale's card shows its
// product's title and store. The guide's H5 page shows the guide's card
// and picks as the demo catalog has them.
func TestGuideSalesInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	phone := browsertest.New(t, browsertest.Options{}) // skips without Chromium
	cat, err := engine.DemoCatalog()
	if err != nil {
		t.Fatal(err)
	}
	const store, sku, price = "s001", "k0006", 9900
	storeName, title := "", ""
	for _, s := range cat.Stores {
		if s.StoreID == store {
			storeName = s.Name
		}
	}
	for _, p := range cat.Products {
		if p.SKUID == sku {
			title = p.Title
		}
	}
	guides := map[string]engine.Guide{}
	for _, g := range cat.Guides {
		guides[g.GuideID] = g
	}
	g1, g2 := guides["g001"], guides["g002"]
	if storeName == "" || title == "" || g1.StoreID != store || g2.StoreID != store || len(g2.Picks) == 0 {
		t.Fatalf("the demo catalog changed: store %q, %s %q, guides %+v %+v", storeName, sku, title, g1, g2)
	}

	s := startSurge(t, "--backend", "memory", "--demo")
	now := time.Now()
	const saleID = "guides-fs"
	mustCall(t, "POST", s.base+"/admin/v1/flash-sales", testAdminToken, engine.FlashSaleSpec{
		SaleID: saleID, StoreID: store, SKUID: sku, Price: price, Quantity: 30, PerUserLimit: 5,
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour), HoldSeconds: 300,
	}, nil)

	// The shopper on guide g002's page: the guide's card and picks, then a
	// reservation and its payment through the page's buttons.
	sel := `[data-sale="` + saleID + `"]`
	phone.Do(chromedp.Navigate(s.base+"/h5/stores/"+store+"?guide="+g2.GuideID), chromedp.WaitVisible(chromedp.CSS("#guide")))
	if got := browsertest.Run(phone, chromedp.Text(chromedp.CSS("#guide-name"))); got != g2.Name {
		t.Errorf("guide name on the H5 page = %q; want %q", got, g2.Name)
	}
	picks := browsertest.Eval[[]string](phone, `Array.prototype.map.call(document.querySelectorAll("#picks .product"), function (e) { return e.dataset.sku; })`)
	if strings.Join(picks, ",") != strings.Join(g2.Picks, ",") {
		t.Errorf("picks on the H5 page = %v; want the catalog's %v", picks, g2.Picks)
	}
	phone.Do(chromedp.SendKeys(chromedp.CSS("#login-code"), "h5-shopper"),
		chromedp.Click(chromedp.CSS("#login-btn")),
		pollJS(`document.getElementById("login-state").textContent.indexOf("h5-shopper") >= 0`),
		pollJS(`!document.querySelector('`+sel+` .reserve').disabled`),
		chromedp.Click(chromedp.CSS(sel+" .reserve")),
		pollJS(`document.getElementById("res-id").textContent !== ""`),
		chromedp.Click(chromedp.CSS("#pay-btn")),
		pollJS(`document.getElementById("res-state").textContent.indexOf("paid") >= 0`))
	phone.Screenshot("h5-guide-paid")
	phone.NoConsoleErrors()

	// The others through the API: g001 two paid orders (2 + 1 units) and
	// one hold never paid; g002 one more (3 units); one without a guide.
	buy := func(user, guide string, qty int64, pay bool) {
		t.Helper()
		tok := login(t, s.base, user)
		body := map[string]any{"quantity": qty}
		if guide != "" {
			body["guide_id"] = guide
		}
		var r struct {
			ReservationID string `json:"reservation_id"`
		}
		mustCall(t, "POST", s.base+"/api/v1/flash-sales/"+saleID+"/reservations", tok, body, &r)
		if pay {
			mustCall(t, "POST", s.base+"/api/v1/reservations/"+r.ReservationID+"/pay", tok, map[string]any{"payment_id": "pay-" + user}, nil)
		}
	}
	buy("a1", g1.GuideID, 2, true)
	buy("a2", g1.GuideID, 1, true)
	buy("a3", g1.GuideID, 1, false)
	buy("b1", g2.GuideID, 3, true)
	buy("c1", "", 1, true)
	want := map[string]guideRow{
		g1.GuideID: {StoreID: store, GuideID: g1.GuideID, StoreName: storeName, GuideName: g1.Name, Orders: 2, Units: 3, Amount: 3 * price},
		g2.GuideID: {StoreID: store, GuideID: g2.GuideID, StoreName: storeName, GuideName: g2.Name, Orders: 2, Units: 4, Amount: 4 * price},
		"":         {StoreID: store, StoreName: storeName, Orders: 1, Units: 1, Amount: price},
	}
	waitAttribution(t, s.base, 5)
	checkAttribution(t, s.base, want)

	// The operator's page: the sale's card names its product and store;
	// the per-guide panel shows what the route answers.
	desk := browsertest.New(t, browsertest.Options{Width: 1280, Height: 1000, Desktop: true})
	card := `.card[data-kind="flash"][data-id="` + saleID + `"]`
	desk.Do(chromedp.Navigate(s.base+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), testAdminToken),
		chromedp.Click(chromedp.CSS("#login-btn")),
		chromedp.WaitVisible(chromedp.CSS(card+" .title")),
		pollJS(`document.querySelector('`+card+` .title').textContent === `+jsString(title)),
		chromedp.WaitVisible(chromedp.CSS("#p-guides")))
	if sub := browsertest.Run(desk, chromedp.Text(chromedp.CSS(card+" .sub"))); !strings.Contains(sub, storeName) {
		t.Errorf("the sale's card says %q; want the store's name %q", sub, storeName)
	}
	shows := func(w map[string]guideRow) {
		t.Helper()
		total := guideRow{}
		for _, g := range w {
			total.Orders += g.Orders
			total.Units += g.Units
			total.Amount += g.Amount
			row := `#guides tbody tr[data-guide="` + g.GuideID + `"]`
			desk.Do(pollJS(`(document.querySelector('` + row + ` .c2') || {}).textContent === "` + fmt.Sprint(g.Orders) + `"`))
			cells := browsertest.Eval[[]string](desk, `Array.prototype.map.call(document.querySelectorAll('`+row+` td'), function (e) { return e.textContent; })`)
			name := g.GuideName
			if g.GuideID == "" {
				name = "无导购"
			}
			if len(cells) != 6 || !strings.Contains(cells[0], storeName) || !strings.Contains(cells[1], name) ||
				cells[2] != fmt.Sprint(g.Orders) || cells[3] != fmt.Sprint(g.Units) || cells[4] != yuan(g.Amount) || cells[5] != "0" {
				t.Errorf("guide %q's row shows %q; want %s, %s, %d orders, %d units, %s, 0 refunded",
					g.GuideID, cells, storeName, name, g.Orders, g.Units, yuan(g.Amount))
			}
		}
		if n := browsertest.Eval[int](desk, `document.querySelectorAll("#guides tbody tr").length`); n != len(w) {
			t.Errorf("the panel has %d rows; want %d", n, len(w))
		}
		foot := browsertest.Eval[[]string](desk, `Array.prototype.map.call(document.querySelectorAll("#guides tfoot td"), function (e) { return e.textContent; })`)
		if len(foot) != 6 || foot[2] != fmt.Sprint(total.Orders) || foot[3] != fmt.Sprint(total.Units) || foot[4] != yuan(total.Amount) {
			t.Errorf("the panel's totals show %q; want %d orders, %d units, %s", foot, total.Orders, total.Units, yuan(total.Amount))
		}
	}
	shows(want)
	// The sale's counters: 8 units paid, 1 held.
	desk.Do(pollJS(`document.querySelector('` + card + ` .n-sold').textContent === "8" && document.querySelector('` + card + ` .n-held').textContent === "1"`))

	// A later order: the sale's counters move at the next refresh, the
	// guides' panel after its refresh button.
	buy("a4", g1.GuideID, 1, true)
	desk.Do(pollJS(`document.querySelector('` + card + ` .n-sold').textContent === "9"`))
	w := want[g1.GuideID]
	w.Orders, w.Units, w.Amount = 3, 4, 4*price
	want[g1.GuideID] = w
	waitAttribution(t, s.base, 6)
	checkAttribution(t, s.base, want)
	desk.Do(chromedp.Click(chromedp.CSS("#guides-refresh")))
	shows(want)
	desk.Screenshot("admin-guides")
	desk.NoConsoleErrors()
}

// yuan is how the admin page writes an amount in fen.
func yuan(fen int64) string { return fmt.Sprintf("¥%d.%02d", fen/100, fen%100) }

// waitAttribution waits until the attribution route counts orders orders
// (the order writer is asynchronous).
func waitAttribution(t *testing.T, base string, orders int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var a attribution
		mustCall(t, "GET", base+"/admin/v1/attribution", testAdminToken, nil, &a)
		if a.Totals.Orders == orders {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("attribution counts %d orders; want %d", a.Totals.Orders, orders)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkAttribution checks the attribution route's rows against want.
func checkAttribution(t *testing.T, base string, want map[string]guideRow) {
	t.Helper()
	var a attribution
	mustCall(t, "GET", base+"/admin/v1/attribution", testAdminToken, nil, &a)
	if len(a.Guides) != len(want) {
		t.Errorf("attribution has %d rows; want %d: %+v", len(a.Guides), len(want), a.Guides)
	}
	for _, g := range a.Guides {
		if g != want[g.GuideID] {
			t.Errorf("attribution row %+v; want %+v", g, want[g.GuideID])
		}
	}
}
