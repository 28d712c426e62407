package gateway

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

// TestRegistrationHTTP runs a sale with registration (预约) and a draw
// over loopback HTTP: bad specs are 40000 and create nothing; users
// register (twice, concurrently) before the start; the seed is hidden
// until the draw and then published, matching its commitment; at the
// start strangers and the draw's losers are 403 / 40302 and winners
// reserve; the admin's JSON and CSV exports re-run to the same winners.
func TestRegistrationHTTP(t *testing.T) {
	h := newHarness(t, "pebble")
	h.loadCatalog()
	now := h.clock.now()
	starts, ends := now.Add(time.Minute).UTC().Format(time.RFC3339Nano), now.Add(time.Hour).UTC().Format(time.RFC3339Nano)
	regStarts := now.Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	spec := func(extra string) string {
		return `{"sale_id":"fr1","store_id":"s1","sku_id":"k1","price":100,"quantity":10,"per_user_limit":1,` +
			`"starts_at":"` + starts + `","ends_at":"` + ends + `"` + extra + `}`
	}
	for _, bad := range []string{
		`,"registration_starts_at":"` + starts + `"`,
		`,"registration_starts_at":"` + ends + `"`,
		`,"registration_starts_at":"` + regStarts + `","draw_quantity":-1`,
		`,"registration_starts_at":"` + regStarts + `","draw_quantity":100000000`,
		`,"registration_starts_at":"` + regStarts + `","draw_seed":"` + strings.Repeat("x", 129) + `"`,
		`,"registration_starts_at":"not a time"`,
		`,"draw_quantity":3`,
	} {
		h.wantCode(CodeBadRequest, "POST", "/admin/v1/flash-sales", spec(bad), adminAuth)
		h.wantCode(CodeNotFound, "GET", "/api/v1/flash-sales/fr1", nil)
	}
	h.wantCode(CodeOK, "POST", "/admin/v1/flash-sales", spec(`,"registration_starts_at":"`+regStarts+`","draw_quantity":3,"draw_seed":"pub-seed"`), adminAuth)
	h.createSale("plain", 5, 1)

	fs := into[engine.FlashSale](t, h.wantCode(CodeOK, "GET", "/api/v1/flash-sales/fr1", nil))
	sum := sha256.Sum256([]byte("pub-seed"))
	if fs.SaleRegistration == nil || fs.DrawSeed != "" || fs.DrawMade || fs.RegistrationStatus != "open" || fs.DrawQuantity != 3 ||
		fs.DrawSeedSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("sale before the draw: %+v; want open, the seed hidden, its SHA-256 shown", fs.SaleRegistration)
	}

	const users = 8
	auth := make([]string, users+2)
	for i := range auth {
		auth[i] = h.login(fmt.Sprint("u", i)) // u8 and u9 never register
	}
	h.wantCode(CodeUnauthorized, "POST", "/api/v1/flash-sales/fr1/registrations", nil)
	h.wantCode(CodeBadRequest, "POST", "/api/v1/flash-sales/fr1/registrations", `{"x":1}`, auth[0])
	h.wantCode(CodeBadState, "POST", "/api/v1/flash-sales/plain/registrations", nil, auth[0])
	h.wantCode(CodeNotFound, "POST", "/api/v1/flash-sales/nope/registrations", nil, auth[0])
	var wg sync.WaitGroup
	for g := range 2 * users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.do("POST", "/api/v1/flash-sales/fr1/registrations", `{}`, auth[g%users])
			if r.Code != CodeOK || string(r.Data) != `{"sale_id":"fr1","registered":true,"drawn":null}` {
				t.Errorf("register u%d: code %d, data %s", g%users, r.Code, r.Data)
			}
		}()
	}
	wg.Wait()
	h.wantCode(CodeNotActive, "POST", "/api/v1/flash-sales/fr1/reservations", reserveBody(1), auth[0])
	list := into[engine.RegistrationList](t, h.wantCode(CodeOK, "GET", "/admin/v1/flash-sales/fr1/registrations", nil, adminAuth))
	if len(list.Registrations) != users || list.Registrants != users || list.DrawSeed != "" {
		t.Fatalf("export before the draw: %d listed, %d counted, seed %q", len(list.Registrations), list.Registrants, list.DrawSeed)
	}
	h.wantCode(CodeBadRequest, "GET", "/admin/v1/flash-sales/fr1/registrations?format=xml", nil, adminAuth)
	h.wantCode(CodeBadState, "GET", "/admin/v1/flash-sales/plain/registrations", nil, adminAuth)

	h.clock.advance(time.Minute)
	var names []string
	for i := range users {
		names = append(names, fmt.Sprint("u", i))
	}
	won := map[string]bool{}
	for _, w := range engine.Draw("pub-seed", names, 3) {
		won[w] = true
	}
	h.wantCode(CodeNotRegistered, "POST", "/api/v1/flash-sales/fr1/reservations", reserveBody(1), auth[users])
	h.wantCode(CodeNotActive, "POST", "/api/v1/flash-sales/fr1/registrations", nil, auth[users+1])
	reserved := 0
	for i := range users {
		name := fmt.Sprint("u", i)
		r := into[engine.Registration](t, h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/fr1/registrations", nil, auth[i]))
		if r.Drawn == nil || *r.Drawn != won[name] {
			t.Fatalf("registration of %s after the draw: %+v; want drawn %v", name, r, won[name])
		}
		want := CodeNotRegistered
		if won[name] {
			want = CodeOK
			reserved++
		}
		h.wantCode(want, "POST", "/api/v1/flash-sales/fr1/reservations", reserveBody(1), auth[i])
	}
	if reserved != 3 {
		t.Fatalf("%d winners reserved; want 3", reserved)
	}
	fs = into[engine.FlashSale](t, h.wantCode(CodeOK, "GET", "/api/v1/flash-sales/fr1", nil))
	if !fs.DrawMade || fs.DrawSeed != "pub-seed" || fs.Winners == nil || *fs.Winners != 3 || fs.Registrants != users || fs.Remaining != 7 {
		t.Fatalf("sale after the draw: %+v (remaining %d)", fs.SaleRegistration, fs.Remaining)
	}

	req, _ := http.NewRequest("GET", h.base+"/admin/v1/flash-sales/fr1/registrations?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV export: HTTP %d, %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	rows, err := csv.NewReader(res.Body).ReadAll()
	if err != nil || len(rows) != users+1 || strings.Join(rows[0], ",") != "user_id,registered_at,drawn" {
		t.Fatalf("CSV export: %q, %v", rows, err)
	}
	var fromCSV []string
	for _, row := range rows[1:] {
		fromCSV = append(fromCSV, row[0])
		if (row[2] == "true") != won[row[0]] {
			t.Fatalf("CSV row %q; want drawn %v", row, won[row[0]])
		}
	}
	if got := engine.Draw(fs.DrawSeed, fromCSV, fs.DrawQuantity); len(got) != 3 || !won[got[0]] || !won[got[1]] || !won[got[2]] {
		t.Fatalf("re-running the draw from the export gives %v; want the winners %v", got, won)
	}
}
