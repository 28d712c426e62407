package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/browsertest"
)

// TestAdminPageShowsDataLoss: after Redis restarted empty under the node,
// the operator's page (/admin/, real Chromium) says "Redis lost data at
// T" and names what its stats cannot read; after POST /admin/v1/recover
// the alert says only what is still missing.
func TestAdminPageShowsDataLoss(t *testing.T) {
	h := newHarness(t, "redis")
	h.loadCatalog()
	h.createSale("f1", 10, 0)
	h.redis.Stop()
	h.redis.Restart(t, false)
	waitFor(t, 30*time.Second, "the data loss seen", func() bool { return h.eng.DataLost() != nil })

	b := browsertest.New(t, browsertest.Options{Width: 1280, Height: 900, Desktop: true})
	b.Do(chromedp.Navigate(h.base + "/admin/"))
	enterToken(b, testAdminToken)
	b.Do(pollJS(`document.getElementById("alert").textContent.indexOf("Redis lost data at ") >= 0`))
	alert := browsertest.Eval[string](b, `document.getElementById("alert").textContent`)
	if !strings.Contains(alert, "/admin/v1/recover") || !strings.Contains(alert, "sale f1") {
		t.Errorf("alert = %q; want how to resume and the missing sale f1", alert)
	}

	rc := into[engine.Recovery](t, h.wantCode(CodeOK, "POST", "/admin/v1/recover", nil, adminAuth))
	if !rc.Recovered {
		t.Fatalf("recover = %+v", rc)
	}
	b.Do(pollJS(`document.getElementById("alert").textContent.indexOf("Redis lost data") < 0`))
	if alert := browsertest.Eval[string](b, `document.getElementById("alert").textContent`); !strings.Contains(alert, "sale f1") {
		t.Errorf("alert after recover = %q; want the sale still missing named", alert)
	}
}
