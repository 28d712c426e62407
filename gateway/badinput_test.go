package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
)

// TestBadInput sends bad requests of every kind and checks each gets its
// documented code AND changes nothing (law 8): the stock, sales, deals and
// orders in /admin/v1/stats are the same before and after.
func TestBadInput(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	h.createSale("f1", 10, 2)
	now := time.Now()
	h.wantCode(CodeOK, "POST", "/admin/v1/group-buys", engine.GroupDealSpec{
		DealID: "d1", StoreID: "s1", SKUID: "k2", Price: 5000, TeamSize: 2, Quantity: 4,
		TeamWindowSeconds: 600, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	}, adminAuth)
	a, b := h.login("alice"), h.login("bob")
	held := into[engine.Reservation](t, h.wantCode(CodeOK, "POST", "/api/v1/flash-sales/f1/reservations", reserveBody(1), a))
	team := into[engine.Team](t, h.wantCode(CodeOK, "POST", "/api/v1/group-buys/d1/teams", nil, a))
	rp := "/api/v1/reservations/" + held.ReservationID

	expired := "Authorization: Bearer " + h.srv.sess.signUntil("alice", now.Add(-time.Second))
	otherKey := &sessions{secret: []byte("not-the-server-secret"), ttl: time.Hour, now: time.Now}
	forged, _ := otherKey.sign("alice")
	forgedAuth := "Authorization: Bearer " + forged

	reserve := "/api/v1/flash-sales/f1/reservations"
	saleSpec := func(mut string) string {
		return fmt.Sprintf(`{"sale_id":"fx","store_id":"s1","sku_id":"k1","price":100,"quantity":1,"per_user_limit":1,`+
			`"starts_at":%q,"ends_at":%q,"hold_seconds":60%s}`, now.Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), mut)
	}
	var items33 strings.Builder
	items33.WriteString(`{"store_id":"s1","items":[`)
	for i := 0; i < 33; i++ {
		if i > 0 {
			items33.WriteByte(',')
		}
		items33.WriteString(`{"sku_id":"k1","quantity":1}`)
	}
	items33.WriteString(`]}`)
	feedBody := `{"updates":[{"store_id":"s1","sku_id":"k1","on_hand":1,"seq":99}]}`

	cases := []struct {
		name, method, path string
		body               string
		hdr                []string
		code               int
	}{
		// Reservations: JSON shape.
		{"malformed", "POST", reserve, `{quantity:1}`, []string{a}, CodeBadRequest},
		{"truncated", "POST", reserve, `{"quantity":`, []string{a}, CodeBadRequest},
		{"truncated string", "POST", reserve, `{"quantity":1,"guide_id":"g`, []string{a}, CodeBadRequest},
		{"wrong type string", "POST", reserve, `{"quantity":"1"}`, []string{a}, CodeBadRequest},
		{"wrong type bool", "POST", reserve, `{"quantity":true}`, []string{a}, CodeBadRequest},
		{"wrong type guide", "POST", reserve, `{"quantity":1,"guide_id":7}`, []string{a}, CodeBadRequest},
		{"float", "POST", reserve, `{"quantity":1.5}`, []string{a}, CodeBadRequest},
		{"exponent", "POST", reserve, `{"quantity":1e2}`, []string{a}, CodeBadRequest},
		{"huge", "POST", reserve, `{"quantity":99999999999999999999999}`, []string{a}, CodeBadRequest},
		{"int64 max", "POST", reserve, `{"quantity":9223372036854775807}`, []string{a}, CodeBadRequest},
		{"over max", "POST", reserve, `{"quantity":10001}`, []string{a}, CodeBadRequest},
		{"negative", "POST", reserve, `{"quantity":-1}`, []string{a}, CodeBadRequest},
		{"int64 min", "POST", reserve, `{"quantity":-9223372036854775808}`, []string{a}, CodeBadRequest},
		{"zero", "POST", reserve, `{"quantity":0}`, []string{a}, CodeBadRequest},
		{"unknown field", "POST", reserve, `{"quantity":1,"price":1}`, []string{a}, CodeBadRequest},
		{"empty body", "POST", reserve, ``, []string{a}, CodeBadRequest},
		{"null", "POST", reserve, `null`, []string{a}, CodeBadRequest},
		{"array", "POST", reserve, `[{"quantity":1}]`, []string{a}, CodeBadRequest},
		{"two objects", "POST", reserve, `{"quantity":1}{"quantity":1}`, []string{a}, CodeBadRequest},
		{"invalid utf8", "POST", reserve, "{\"quantity\":1,\"guide_id\":\"\xff\"}", []string{a}, CodeBadRequest},
		{"guide id too long", "POST", reserve, `{"quantity":1,"guide_id":"` + strings.Repeat("g", 129) + `"}`, []string{a}, CodeBadRequest},
		{"over body limit", "POST", reserve, `{"quantity":1,"guide_id":"` + strings.Repeat("g", BodyMaxBytesDefault) + `"}`, []string{a}, CodeTooLarge},
		// Reservations: who.
		{"no token", "POST", reserve, `{"quantity":1}`, nil, CodeUnauthorized},
		{"not bearer", "POST", reserve, `{"quantity":1}`, []string{"Authorization: Basic YTpi"}, CodeUnauthorized},
		{"garbage token", "POST", reserve, `{"quantity":1}`, []string{"Authorization: Bearer xyz"}, CodeUnauthorized},
		{"expired token", "POST", reserve, `{"quantity":1}`, []string{expired}, CodeUnauthorized},
		{"forged token", "POST", reserve, `{"quantity":1}`, []string{forgedAuth}, CodeUnauthorized},
		{"admin token as user", "POST", reserve, `{"quantity":1}`, []string{adminAuth}, CodeUnauthorized},
		{"unknown sale", "POST", "/api/v1/flash-sales/nope/reservations", `{"quantity":1}`, []string{a}, CodeNotFound},
		{"bad idempotency key", "POST", reserve, `{"quantity":1}`, []string{a, "Idempotency-Key: " + strings.Repeat("k", 129)}, CodeBadRequest},
		// Other users' reservations.
		{"pay others", "POST", rp + "/pay", `{"payment_id":"p"}`, []string{b}, CodeForbidden},
		{"cancel others", "POST", rp + "/cancel", ``, []string{b}, CodeForbidden},
		{"read others", "GET", rp, ``, []string{b}, CodeForbidden},
		{"pay unknown", "POST", "/api/v1/reservations/nope/pay", `{"payment_id":"p"}`, []string{a}, CodeNotFound},
		{"pay no payment id", "POST", rp + "/pay", `{}`, []string{a}, CodeBadRequest},
		{"pay wrong type", "POST", rp + "/pay", `{"payment_id":5}`, []string{a}, CodeBadRequest},
		{"pay unknown field", "POST", rp + "/pay", `{"payment_id":"p","amount":1}`, []string{a}, CodeBadRequest},
		{"cancel with junk", "POST", rp + "/cancel", `{"x":1}`, []string{a}, CodeBadRequest},
		{"order unknown", "GET", "/api/v1/orders/nope", ``, []string{a}, CodeNotFound},
		// Group buys.
		{"join own team", "POST", "/api/v1/group-buys/d1/teams/" + team.TeamID + "/members", ``, []string{a}, CodeBadState},
		{"join unknown team", "POST", "/api/v1/group-buys/d1/teams/nope/members", ``, []string{b}, CodeNotFound},
		{"open unknown deal", "POST", "/api/v1/group-buys/nope/teams", ``, []string{b}, CodeNotFound},
		{"open bad guide", "POST", "/api/v1/group-buys/d1/teams", `{"guide_id":1}`, []string{b}, CodeBadRequest},
		{"team unknown", "GET", "/api/v1/group-buys/d1/teams/nope", ``, nil, CodeNotFound},
		// Checkout.
		{"checkout no items", "POST", "/api/v1/checkout", `{"store_id":"s1","items":[]}`, []string{b}, CodeBadRequest},
		{"checkout 33 items", "POST", "/api/v1/checkout", items33.String(), []string{b}, CodeBadRequest},
		{"checkout negative", "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k1","quantity":-3}]}`, []string{b}, CodeBadRequest},
		{"checkout huge", "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k1","quantity":1000000}]}`, []string{b}, CodeBadRequest},
		{"checkout no sku", "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"quantity":1}]}`, []string{b}, CodeBadRequest},
		{"checkout no store", "POST", "/api/v1/checkout", `{"items":[{"sku_id":"k1","quantity":1}]}`, []string{b}, CodeBadRequest},
		{"checkout nested unknown", "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k1","quantity":1,"price":1}]}`, []string{b}, CodeBadRequest},
		{"checkout items object", "POST", "/api/v1/checkout", `{"store_id":"s1","items":{"sku_id":"k1"}}`, []string{b}, CodeBadRequest},
		{"checkout unknown sku", "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"nope","quantity":1}]}`, []string{b}, CodeNotFound},
		{"checkout over stock", "POST", "/api/v1/checkout", `{"store_id":"s1","items":[{"sku_id":"k2","quantity":1},{"sku_id":"k3","quantity":9}]}`, []string{b}, CodeSoldOut},
		// Sessions.
		{"session malformed", "POST", "/api/v1/session", `{"code":`, nil, CodeBadRequest},
		{"session unknown field", "POST", "/api/v1/session", `{"code":"x","y":1}`, nil, CodeBadRequest},
		// Admin.
		{"catalog malformed", "PUT", "/admin/v1/catalog", `{"stores":[`, []string{adminAuth}, CodeBadRequest},
		{"catalog unknown field", "PUT", "/admin/v1/catalog", `{"stores":[],"shops":[]}`, []string{adminAuth}, CodeBadRequest},
		{"catalog wrong type", "PUT", "/admin/v1/catalog", `{"listings":[{"store_id":"s1","sku_id":"k1","price":"free","on_hand":1}]}`, []string{adminAuth}, CodeBadRequest},
		{"catalog negative price", "PUT", "/admin/v1/catalog", `{"listings":[{"store_id":"s1","sku_id":"k1","price":-1,"on_hand":1}]}`, []string{adminAuth}, CodeBadRequest},
		{"catalog by a user", "PUT", "/admin/v1/catalog", testCatalog, []string{a}, CodeForbidden},
		{"sale negative quantity", "POST", "/admin/v1/flash-sales", strings.Replace(saleSpec(""), `"quantity":1`, `"quantity":-1`, 1), []string{adminAuth}, CodeBadRequest},
		{"sale huge quantity", "POST", "/admin/v1/flash-sales", strings.Replace(saleSpec(""), `"quantity":1`, `"quantity":1e30`, 1), []string{adminAuth}, CodeBadRequest},
		{"sale unknown field", "POST", "/admin/v1/flash-sales", saleSpec(`,"discount":5`), []string{adminAuth}, CodeBadRequest},
		{"sale too many buckets", "POST", "/admin/v1/flash-sales", saleSpec(`,"buckets":17`), []string{adminAuth}, CodeBadRequest},
		{"sale negative buckets", "POST", "/admin/v1/flash-sales", saleSpec(`,"buckets":-1`), []string{adminAuth}, CodeBadRequest},
		{"sale buckets string", "POST", "/admin/v1/flash-sales", saleSpec(`,"buckets":"3"`), []string{adminAuth}, CodeBadRequest},
		{"sale buckets float", "POST", "/admin/v1/flash-sales", saleSpec(`,"buckets":2.5`), []string{adminAuth}, CodeBadRequest},
		{"sale bad time", "POST", "/admin/v1/flash-sales", strings.Replace(saleSpec(""), `"starts_at":"`, `"starts_at":"yesterday`, 1), []string{adminAuth}, CodeBadRequest},
		{"sale ends before start", "POST", "/admin/v1/flash-sales", fmt.Sprintf(`{"sale_id":"fy","store_id":"s1","sku_id":"k1","price":1,"quantity":1,"starts_at":%q,"ends_at":%q}`,
			now.Format(time.RFC3339), now.Add(-time.Hour).Format(time.RFC3339)), []string{adminAuth}, CodeBadRequest},
		{"sale unknown store", "POST", "/admin/v1/flash-sales", strings.Replace(saleSpec(""), `"store_id":"s1"`, `"store_id":"nope"`, 1), []string{adminAuth}, CodeNotFound},
		{"sale no token", "POST", "/admin/v1/flash-sales", saleSpec(""), nil, CodeUnauthorized},
		{"deal team size 0", "POST", "/admin/v1/group-buys", `{"deal_id":"dx","store_id":"s1","sku_id":"k1","price":1,"team_size":0,"quantity":1}`, []string{adminAuth}, CodeBadRequest},
		// Feed.
		{"feed unsigned", "POST", "/internal/v1/inventory/feed", feedBody, nil, CodeUnauthorized},
		{"feed bad signature", "POST", "/internal/v1/inventory/feed", feedBody, []string{fmt.Sprintf("X-Surge-Timestamp: %d", now.Unix()), "X-Surge-Signature: " + strings.Repeat("ab", 32)}, CodeUnauthorized},
		{"feed old", "POST", "/internal/v1/inventory/feed", feedBody, []string{fmt.Sprintf("X-Surge-Timestamp: %d", now.Unix()-3600),
			"X-Surge-Signature: " + SignFeed([]byte(testFeedSecret), now.Unix()-3600, []byte(feedBody))}, CodeUnauthorized},
		// Routing.
		{"unknown path", "GET", "/api/v1/nope", ``, []string{a}, CodeNotFound},
		{"wrong method", "GET", reserve, ``, []string{a}, CodeBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hh := *h
			hh.t = t
			before := hh.stockState()
			var body any
			if c.body != "" {
				body = c.body
			}
			r := hh.do(c.method, c.path, body, c.hdr...)
			if r.Code != c.code {
				t.Errorf("%s %s %.80q: code %d (%q); want %d", c.method, c.path, c.body, r.Code, r.Msg, c.code)
			}
			if after := hh.stockState(); after != before {
				t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	// Still one held unit of alice's, untouched.
	if got := into[engine.Reservation](t, h.wantCode(CodeOK, "GET", rp, nil, a)); got.State != "held" {
		t.Errorf("alice's reservation = %q; want held", got.State)
	}
}
