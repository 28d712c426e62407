package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestReserveEndedSaleDroppedFromMemory: a sale that ended more than an
// hour ago leaves the engine's memory but still exists: reserving from it
// is 409/40902 (not_active), as the engine answers, not 404 (unknown sale).
func TestReserveEndedSaleDroppedFromMemory(t *testing.T) {
	h := newHarness(t, "memory")
	h.loadCatalog()
	h.createSale("fs-old", 5, 0)
	user := h.login("u1")
	h.clock.advance(3 * time.Hour)
	for range 2 {
		if err := h.eng.Sweep(context.Background()); err != nil {
			t.Fatalf("Sweep: %v", err)
		}
	}
	h.wantCode(CodeNotActive, "POST", "/api/v1/flash-sales/fs-old/reservations", reserveBody(1), user)
	h.wantCode(CodeOK, "GET", "/api/v1/flash-sales/fs-old", nil)
}

// TestConnLimitAnswersEnvelope: a connection over ConnsMax is shed like any
// other request: 503 with Retry-After and the JSON envelope (API.md
// conventions), not fasthttp's plain-text refusal.
func TestConnLimitAnswersEnvelope(t *testing.T) {
	h := newHarness(t, "memory", func(o *Options) { o.ConnsMax = 1 })
	busy, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	time.Sleep(50 * time.Millisecond) // let the server take the first connection
	res, err := http.Get(h.base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over the limit: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("over the connection limit: HTTP %d, Retry-After %q, body %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	var env struct {
		Code int `json:"code"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Code != CodeUnavailable {
		t.Fatalf("over the connection limit: body %q; want the 50300 envelope", body)
	}
}
