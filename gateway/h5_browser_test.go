package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/browsertest"
)

// The H5 storefront in a real headless Chromium (internal/browsertest), at
// a phone's 375 px, against a real gateway and engine over loopback: what
// a shopper sees and what the buttons do. Without Chromium these tests
// skip loudly (SURGE_REQUIRE_BROWSER=1 makes that a failure, as in CI).

// pollJS waits until a JavaScript expression is truthy.
func pollJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second))
}

func textOf(b *browsertest.Browser, sel string) string {
	return browsertest.Run(b, chromedp.Text(chromedp.CSS(sel)))
}

// fitsPhone checks that nothing overflows the 375 px viewport.
func fitsPhone(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	if w := browsertest.Eval[int](b, "document.documentElement.scrollWidth"); w > 375 {
		t.Errorf("document scrollWidth = %d; want <= 375 (something overflows a phone's width)", w)
	}
}

const saleSel = `[data-sale="fs1"]`

func TestH5BrowserStorePage(t *testing.T) {
	// The built-in risk hook, with a missing page token weighing enough to
	// deny alone: the page's reserves succeed only if it sends the token
	// the page API handed it, old enough and not reused.
	h := newHarness(t, "memory", withRisk(t, engine.RiskConfig{Weights: engine.RiskWeights{PageTokenMissing: engine.RiskScoreDenyDefault}}))
	h.wantCode(CodeOK, "PUT", "/admin/v1/catalog", h5Catalog, adminAuth)
	h.createSale("fs1", 20, 2)
	b := browsertest.New(t, browsertest.Options{})
	b.Do(chromedp.Navigate(h.base+"/h5/stores/s1"), chromedp.WaitVisible(chromedp.CSS("#store-name")))

	if got := textOf(b, "#store-name"); got != "静安店" {
		t.Errorf("store name = %q; want 静安店", got)
	}
	if got := textOf(b, "#store-city"); got != "上海" {
		t.Errorf("city = %q; want 上海", got)
	}
	grid := textOf(b, "#products")
	for _, want := range []string{"羊毛大衣", "¥499.00", "皮手套", "库存紧张"} {
		if !strings.Contains(grid, want) {
			t.Errorf("product grid %q lacks %q", grid, want)
		}
	}
	// The countdown ticks on the server's clock.
	b.Do(pollJS(`document.querySelector('` + saleSel + ` .countdown').textContent.indexOf("距结束") === 0`))
	cd1 := textOf(b, saleSel+" .countdown")
	b.Do(chromedp.Sleep(1500 * time.Millisecond))
	cd2 := textOf(b, saleSel+" .countdown")
	if cd1 == cd2 || !strings.HasPrefix(cd2, "距结束 00:5") {
		t.Errorf("countdown %q then %q; want it to tick, about an hour to the end", cd1, cd2)
	}
	fitsPhone(t, b)
	b.Screenshot("store")

	// Reserving before logging in asks for a login.
	b.Do(pollJS(`!document.querySelector('`+saleSel+` .reserve').disabled`),
		chromedp.Click(chromedp.CSS(saleSel+" .reserve")),
		pollJS(`document.getElementById("msg").textContent.indexOf("请先登录") >= 0`))

	// Log in (dev provider), reserve, pay.
	b.Do(chromedp.SendKeys(chromedp.CSS("#login-code"), "alice"),
		chromedp.Click(chromedp.CSS("#login-btn")),
		pollJS(`document.getElementById("login-state").textContent.indexOf("alice") >= 0`),
		pollJS(`!document.querySelector('`+saleSel+` .reserve').disabled`),
		chromedp.Click(chromedp.CSS(saleSel+" .reserve")),
		pollJS(`!document.getElementById("reservation").hidden && document.getElementById("res-id").textContent !== ""`))
	sale := into[engine.FlashSale](t, h.wantCode(CodeOK, "GET", "/api/v1/flash-sales/fs1", nil))
	if sale.Remaining != 19 {
		t.Errorf("remaining after a reserve = %d; want 19", sale.Remaining)
	}
	b.Do(pollJS(`document.querySelector('` + saleSel + ` .remaining').textContent === "19"`))
	resID := textOf(b, "#res-id")
	fitsPhone(t, b)

	b.Do(chromedp.Click(chromedp.CSS("#pay-btn")),
		pollJS(`document.getElementById("res-state").textContent.indexOf("paid") >= 0`))
	if st := h.resState(h.login("alice"), resID); st != "paid" {
		t.Errorf("reservation %s is %q after paying on the page; want paid", resID, st)
	}
	if msg := textOf(b, "#msg"); !strings.Contains(msg, "支付成功") {
		t.Errorf("message after paying = %q; want 支付成功", msg)
	}
	b.Screenshot("paid")

	// A second reserve hits the per-user limit of 2 only on the third:
	// the second succeeds, the third is refused in words.
	b.Do(pollJS(`!document.querySelector('`+saleSel+` .reserve').disabled`),
		chromedp.Click(chromedp.CSS(saleSel+" .reserve")),
		pollJS(`document.getElementById("res-id").textContent !== "`+resID+`"`),
		pollJS(`!document.querySelector('`+saleSel+` .reserve').disabled`),
		chromedp.Click(chromedp.CSS(saleSel+" .reserve")),
		pollJS(`document.getElementById("msg").textContent.indexOf("已达每人限购数量") >= 0`))
	b.NoConsoleErrors()
}

func TestH5BrowserGuidePage(t *testing.T) {
	h := newHarness(t, "memory")
	h.wantCode(CodeOK, "PUT", "/admin/v1/catalog", h5Catalog, adminAuth)
	now := time.Now()
	// An upcoming sale: the countdown is to its start, and the button waits.
	h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", engine.FlashSaleSpec{
		SaleID: "fs1", StoreID: "s1", SKUID: "k1", Price: 9900, Quantity: 10, PerUserLimit: 1,
		StartsAt: now.Add(10 * time.Minute), EndsAt: now.Add(time.Hour), HoldSeconds: 300,
	}, adminAuth)
	b := browsertest.New(t, browsertest.Options{})
	b.Do(chromedp.Navigate(h.base+"/h5/stores/s1?guide=g1"), chromedp.WaitVisible(chromedp.CSS("#guide")))
	if got := textOf(b, "#guide-name"); got != "小王" {
		t.Errorf("guide name = %q; want 小王", got)
	}
	if picks := textOf(b, "#picks"); !strings.Contains(picks, "羊绒围巾") || strings.Contains(picks, "皮手套") {
		t.Errorf("picks = %q; want 羊绒围巾 only", picks)
	}
	if share := textOf(b, "#share-path"); share != "/pages/store/index?guide_id=g1&store_id=s1" {
		t.Errorf("share path = %q", share)
	}
	b.Do(pollJS(`document.querySelector('` + saleSel + ` .countdown').textContent.indexOf("距开始 00:0") === 0`))
	if !browsertest.Eval[bool](b, `document.querySelector('`+saleSel+` .reserve').disabled`) {
		t.Errorf("reserve button enabled before the sale starts")
	}
	fitsPhone(t, b)
	b.Screenshot("guide")
	b.NoConsoleErrors()
}

// TestH5BrowserWeChatPay: under WeChat Pay the pay route answers 40301;
// the page says so and shows prepay's wx.requestPayment parameters.
func TestH5BrowserWeChatPay(t *testing.T) {
	h, _ := newPayHarness(t)
	b := browsertest.New(t, browsertest.Options{})
	b.Do(chromedp.Navigate(h.base+"/h5/stores/s1?guide=g1"), chromedp.WaitVisible(chromedp.CSS("#store-name")),
		chromedp.SendKeys(chromedp.CSS("#login-code"), "oBuyer1"),
		chromedp.Click(chromedp.CSS("#login-btn")),
		pollJS(`document.getElementById("login-state").textContent.indexOf("oBuyer1") >= 0`),
		pollJS(`!document.querySelector('`+saleSel+` .reserve').disabled`),
		chromedp.Click(chromedp.CSS(saleSel+" .reserve")),
		pollJS(`document.getElementById("res-id").textContent !== ""`),
		chromedp.Click(chromedp.CSS("#pay-btn")),
		pollJS(`!document.getElementById("prepay").hidden`))
	if pre := textOf(b, "#prepay"); !strings.Contains(pre, "prepay_id=") || !strings.Contains(pre, "paySign") {
		t.Errorf("prepay shown = %q; want wx.requestPayment's parameters", pre)
	}
	if msg := textOf(b, "#msg"); !strings.Contains(msg, "微信支付") {
		t.Errorf("message = %q; want it to say WeChat Pay", msg)
	}
	if st := h.resState(h.login("oBuyer1"), textOf(b, "#res-id")); st != "held" {
		t.Errorf("reservation is %q; want held until WeChat Pay notifies", st)
	}
	fitsPhone(t, b)
	b.NoConsoleErrors()
}

func TestH5BrowserNotFound(t *testing.T) {
	h := newHarness(t, "memory")
	b := browsertest.New(t, browsertest.Options{})
	b.Do(chromedp.Navigate(h.base+"/h5/stores/nope"), chromedp.WaitVisible(chromedp.CSS("#error-title")))
	if got := textOf(b, "#error-title"); !strings.Contains(got, "找不到这家店") {
		t.Errorf("404 page title = %q", got)
	}
	fitsPhone(t, b)
}
