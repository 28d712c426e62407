package gateway

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/browsertest"
)

// TestAdminPageExportsOrders: finance exports orders from the page (no
// curl): the filter typed in the form, the file handed to the browser is
// byte for byte the CSV the route streams (its byte-order mark included),
// the count is said; a bad filter shows the server's 40000.
func TestAdminPageExportsOrders(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	h.createSale("f1", 10, 0)
	buy := func(user, guide string, qty int64) {
		a := h.login(user)
		body := reserveBody(qty)
		if guide != "" {
			body = fmt.Sprintf(`{"quantity":%d,"guide_id":%q}`, qty, guide)
		}
		r := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", body, a))
		h.wantCode(CodeOK, "POST", "/api/v1/reservations/"+r.ReservationID+"/pay", `{"payment_id":"pay-`+user+`"}`, a)
	}
	buy("alice", "g1", 1)
	buy("bob", "g1", 2)
	buy("carol", "", 1)
	for deadline := time.Now().Add(10 * time.Second); h.stats().Orders.Written < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the three orders were not written")
		}
	}
	res, want := h.getPage("GET", "/admin/v1/orders?format=csv&store_id=s1&guide_id=g1", adminAuth)
	if res.StatusCode != 200 || !strings.HasPrefix(want, "\ufeff") || strings.Count(want, "\n") != 3 {
		t.Fatalf("the route's CSV: HTTP %d\n%s\nwant a BOM, a header and 2 orders", res.StatusCode, want)
	}

	b := browsertest.New(t, browsertest.Options{Width: 1280, Height: 900, Desktop: true})
	downloads := t.TempDir()
	b.Do(chromedp.Navigate(h.base+"/admin/"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
			})
			return err
		}))
	enterToken(b, testAdminToken)
	b.Do(chromedp.WaitVisible(chromedp.CSS("#export")),
		chromedp.SetValue(chromedp.CSS("#ex-store"), "s1"),
		chromedp.SetValue(chromedp.CSS("#ex-guide"), "g1"),
		chromedp.Click(chromedp.CSS("#ex-go")),
		chromedp.WaitVisible(chromedp.CSS("#export-link")))
	name := browsertest.Eval[string](b, `document.getElementById("export-link").download`)
	if !strings.HasPrefix(name, "orders-") || !strings.HasSuffix(name, ".csv") {
		t.Errorf("download name %q", name)
	}
	// The file the browser saved.
	var file []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if file, err = os.ReadFile(filepath.Join(downloads, name)); err == nil && len(file) == len(want) {
			break
		}
		if time.Now().After(deadline) {
			ls, _ := os.ReadDir(downloads)
			t.Fatalf("no download %s of %d bytes (%v; the folder has %v)", name, len(want), err, ls)
		}
	}
	if !bytes.Equal(file, []byte(want)) {
		t.Errorf("the exported file:\n%q\nwant the route's CSV:\n%q", file, want)
	}
	if msg := textOf(b, "#export-msg"); !strings.Contains(msg, "exported 2 orders") {
		t.Errorf("export message %q; want it to count 2 orders", msg)
	}

	// A window that ends before it starts: the server's 40000, shown.
	b.Do(chromedp.SetValue(chromedp.CSS("#ex-since"), "2026-11-12T00:00"),
		chromedp.SetValue(chromedp.CSS("#ex-until"), "2026-11-11T00:00"),
		chromedp.Click(chromedp.CSS("#ex-go")),
		pollJS(`document.getElementById("export-msg").textContent.indexOf("40000") >= 0`))
	if msg := textOf(b, "#export-msg"); !strings.Contains(msg, "since must be before until") {
		t.Errorf("export message %q; want the server's reason", msg)
	}
	b.Screenshot("admin-export")
	b.NoConsoleErrors()
}
