package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

// fakeServer implements just enough of API.md for the load tester, with
// switches that make it misbehave. It is the test's own server: the real
// one lives in gateway and is never imported here.
type fakeServer struct {
	oversell    bool // reserve without looking at the stock
	ignoreLimit bool // reserve without looking at the per-user limit
	noOrders    bool // pay says yes but never writes an order
	stuckHolds  bool // holds never expire
	holdMs      int64

	// WeChat Pay mode (payment.provider=wechat): /pay answers 40301, and
	// only a verified notification pays (see startWeChat).
	wx          *wechatpay.Client
	wxKeys      *wechatpaytest.Keys
	notifyURL   string
	badPaySign  bool              // prepay signs with a key that is not the merchant's
	notifyLate  bool              // every notification is taken only after its hold ended
	refundEarly bool              // a notification releases the hold and refunds: a lost payment
	failNotify  int               // the next n notifications are answered 500
	trades      map[string]string // reservation id by out_trade_no
	payIDs      map[string]string // transaction id by reservation id
	refunds     int64

	mu      sync.Mutex
	sales   map[string]*fakePool
	deals   map[string]*fakePool
	res     map[string]*fakeRes
	teams   map[string]*fakeTeam
	stores  map[string][]string // store -> skus
	nextID  int
	written int64
}

type fakePool struct {
	id, store, sku       string
	supplied, held, sold int64
	limit                int64
	startsMs, endsMs     int64
	teamSize, windowMs   int64
	perUser              map[string]int64
}

type fakeRes struct {
	id, user, pool, team string
	deal                 bool
	qty                  int64
	state                string
	expiresMs            int64
	orderID              string
}

type fakeTeam struct {
	id, deal  string
	size      int64
	members   []string // reservation ids
	expiresMs int64
	state     string
}

const fakeAdminToken = "admin-secret"

func newFake() *fakeServer {
	return &fakeServer{
		holdMs: 5000,
		sales:  map[string]*fakePool{}, deals: map[string]*fakePool{},
		res: map[string]*fakeRes{}, teams: map[string]*fakeTeam{}, stores: map[string][]string{},
	}
}

func (f *fakeServer) start(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) (int, any)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			f.sweep()
			code, data := fn(w, r)
			f.mu.Unlock()
			if code == 304 {
				w.WriteHeader(304)
				return
			}
			writeEnvelope(w, code, data)
		})
	}
	user := func(r *http.Request) string {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer tok-")
		if !ok {
			return ""
		}
		return tok
	}
	admin := func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+fakeAdminToken }
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	h("POST /api/v1/session", func(w http.ResponseWriter, r *http.Request) (int, any) {
		var b struct{ Code string }
		if json.NewDecoder(r.Body).Decode(&b) != nil || b.Code == "" {
			return 40000, nil
		}
		return 0, map[string]any{"token": "tok-" + b.Code, "user_id": b.Code, "expires_at": time.Now().Add(time.Hour)}
	})
	h("PUT /admin/v1/catalog", func(w http.ResponseWriter, r *http.Request) (int, any) {
		if !admin(r) {
			return 40100, nil
		}
		var c struct {
			Listings []struct {
				StoreID string `json:"store_id"`
				SKUID   string `json:"sku_id"`
			} `json:"listings"`
		}
		if json.NewDecoder(r.Body).Decode(&c) != nil {
			return 40000, nil
		}
		for _, l := range c.Listings {
			f.stores[l.StoreID] = append(f.stores[l.StoreID], l.SKUID)
		}
		return 0, map[string]any{}
	})
	h("POST /admin/v1/flash-sales", func(w http.ResponseWriter, r *http.Request) (int, any) {
		if !admin(r) {
			return 40100, nil
		}
		var s struct {
			SaleID       string    `json:"sale_id"`
			Quantity     int64     `json:"quantity"`
			PerUserLimit int64     `json:"per_user_limit"`
			StartsAt     time.Time `json:"starts_at"`
			EndsAt       time.Time `json:"ends_at"`
		}
		if json.NewDecoder(r.Body).Decode(&s) != nil {
			return 40000, nil
		}
		f.sales[s.SaleID] = &fakePool{id: s.SaleID, supplied: s.Quantity, limit: s.PerUserLimit,
			startsMs: s.StartsAt.UnixMilli(), endsMs: s.EndsAt.UnixMilli(), perUser: map[string]int64{}}
		return 0, map[string]any{"sale_id": s.SaleID}
	})
	h("POST /admin/v1/group-buys", func(w http.ResponseWriter, r *http.Request) (int, any) {
		if !admin(r) {
			return 40100, nil
		}
		var s struct {
			DealID            string    `json:"deal_id"`
			Quantity          int64     `json:"quantity"`
			TeamSize          int64     `json:"team_size"`
			TeamWindowSeconds int64     `json:"team_window_seconds"`
			StartsAt          time.Time `json:"starts_at"`
		}
		if json.NewDecoder(r.Body).Decode(&s) != nil {
			return 40000, nil
		}
		f.deals[s.DealID] = &fakePool{id: s.DealID, supplied: s.Quantity, teamSize: s.TeamSize,
			windowMs: s.TeamWindowSeconds * 1000, startsMs: s.StartsAt.UnixMilli(), perUser: map[string]int64{}}
		return 0, map[string]any{"deal_id": s.DealID}
	})
	h("GET /admin/v1/stats", func(w http.ResponseWriter, r *http.Request) (int, any) {
		if !admin(r) {
			return 40100, nil
		}
		out := func(m map[string]*fakePool) map[string]PoolStats {
			o := map[string]PoolStats{}
			for id, p := range m {
				o[id] = PoolStats{Supplied: p.supplied, Held: p.held, Sold: p.sold, Remaining: p.supplied - p.held - p.sold}
			}
			return o
		}
		listings := map[string]any{}
		for s, skus := range f.stores {
			for _, k := range skus {
				listings[s+"/"+k] = map[string]int{"supplied": 50}
			}
		}
		return 0, map[string]any{"sales": out(f.sales), "deals": out(f.deals), "listings": listings,
			"orders": map[string]int64{"written": f.written, "lag": 0}}
	})
	h("GET /api/v1/flash-sales/{id}", func(w http.ResponseWriter, r *http.Request) (int, any) {
		p := f.sales[r.PathValue("id")]
		if p == nil {
			return 40400, nil
		}
		return 0, map[string]any{"sale_id": p.id, "per_user_limit": p.limit, "hold_seconds": f.holdMs / 1000,
			"remaining": p.supplied - p.held - p.sold, "starts_at_ms": p.startsMs, "ends_at_ms": p.endsMs,
			"server_time_ms": time.Now().UnixMilli()}
	})
	h("POST /api/v1/flash-sales/{id}/reservations", func(w http.ResponseWriter, r *http.Request) (int, any) {
		u := user(r)
		if u == "" {
			return 40100, nil
		}
		p := f.sales[r.PathValue("id")]
		if p == nil {
			return 40400, nil
		}
		if time.Now().UnixMilli() < p.startsMs {
			return 40902, nil
		}
		if !f.ignoreLimit && p.perUser[u]+1 > p.limit {
			return 40901, nil
		}
		if !f.oversell && p.held+p.sold >= p.supplied {
			return 40900, nil
		}
		return 0, f.reserve(p, u, "", false)
	})
	h("POST /api/v1/group-buys/{deal}/teams", func(w http.ResponseWriter, r *http.Request) (int, any) {
		u := user(r)
		p := f.deals[r.PathValue("deal")]
		if u == "" || p == nil {
			return 40400, nil
		}
		if p.held+p.sold >= p.supplied {
			return 40900, nil
		}
		f.nextID++
		t := &fakeTeam{id: fmt.Sprintf("t%d", f.nextID), deal: p.id, size: p.teamSize, state: "forming",
			expiresMs: time.Now().UnixMilli() + p.windowMs}
		f.teams[t.id] = t
		return 0, f.join(p, t, u)
	})
	h("POST /api/v1/group-buys/{deal}/teams/{team}/members", func(w http.ResponseWriter, r *http.Request) (int, any) {
		u := user(r)
		p, t := f.deals[r.PathValue("deal")], f.teams[r.PathValue("team")]
		if u == "" || p == nil || t == nil {
			return 40400, nil
		}
		if t.state != "forming" || int64(len(t.members)) >= t.size {
			return 40903, nil
		}
		if p.held+p.sold >= p.supplied {
			return 40900, nil
		}
		return 0, f.join(p, t, u)
	})
	h("GET /api/v1/group-buys/{deal}/teams/{team}", func(w http.ResponseWriter, r *http.Request) (int, any) {
		t := f.teams[r.PathValue("team")]
		if t == nil {
			return 40400, nil
		}
		return 0, f.teamView(t, "")
	})
	h("POST /api/v1/reservations/{id}/pay", func(w http.ResponseWriter, r *http.Request) (int, any) {
		x := f.res[r.PathValue("id")]
		if x == nil || x.user != user(r) {
			return 40400, nil
		}
		if f.wx != nil {
			return 40301, nil
		}
		switch x.state {
		case "paid":
		case "held":
			f.pay(x)
		default:
			return 40903, nil
		}
		return 0, map[string]any{"reservation_id": x.id, "state": x.state}
	})
	h("POST /api/v1/reservations/{id}/cancel", func(w http.ResponseWriter, r *http.Request) (int, any) {
		x := f.res[r.PathValue("id")]
		if x == nil || x.user != user(r) {
			return 40400, nil
		}
		if x.state != "held" {
			return 40903, nil
		}
		f.release(x)
		return 0, map[string]any{"reservation_id": x.id, "state": x.state}
	})
	h("GET /api/v1/reservations/{id}", func(w http.ResponseWriter, r *http.Request) (int, any) {
		x := f.res[r.PathValue("id")]
		if x == nil || x.user != user(r) {
			return 40400, nil
		}
		return 0, map[string]any{"reservation_id": x.id, "state": x.state, "order_id": x.orderID}
	})
	h("GET /api/v1/me/orders", func(w http.ResponseWriter, r *http.Request) (int, any) {
		var out []map[string]string
		for _, x := range f.res {
			if x.user == user(r) && x.orderID != "" {
				out = append(out, map[string]string{"order_id": x.orderID, "reservation_id": x.id})
			}
		}
		return 0, out
	})
	h("GET /api/v1/stores/{store}/page", func(w http.ResponseWriter, r *http.Request) (int, any) {
		skus, ok := f.stores[r.PathValue("store")]
		if !ok {
			return 40400, nil
		}
		etag := `"` + r.PathValue("store") + `-1"`
		if r.Header.Get("If-None-Match") == etag {
			return 304, nil
		}
		w.Header().Set("ETag", etag)
		var products []map[string]string
		for _, k := range skus {
			products = append(products, map[string]string{"sku_id": k})
		}
		return 0, map[string]any{"store_id": r.PathValue("store"), "sections": []any{map[string]any{"products": products}}}
	})
	h("GET /api/v1/stores/{store}/products/{sku}", func(w http.ResponseWriter, r *http.Request) (int, any) {
		return 0, map[string]any{"sku_id": r.PathValue("sku")}
	})
	if f.wx != nil {
		f.wechatRoutes(mux, user)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	if f.wx != nil {
		f.mu.Lock()
		f.notifyURL = srv.URL + "/api/v1/payments/wechat/notify"
		f.mu.Unlock()
	}
	return srv
}

func writeEnvelope(w http.ResponseWriter, code int, data any) {
	status := map[int]int{0: 200, 40000: 400, 40100: 401, 40301: 403, 40400: 404, 40900: 409, 40901: 409, 40902: 409, 40903: 409, 42900: 429, 50300: 503}[code]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "msg": "m", "data": data})
}

// pay marks a held reservation paid and writes its order.
func (f *fakeServer) pay(x *fakeRes) {
	x.state = "paid"
	f.pool(x).held -= x.qty
	f.pool(x).sold += x.qty
	if !f.noOrders {
		x.orderID = "o-" + x.id
		f.written++
	}
	if t := f.teams[x.team]; t != nil {
		f.maybeFormed(t)
	}
}

// startWeChat switches the fake to payment.provider=wechat against a fake
// WeChat Pay listening on addr, with keys: call before start.
func (f *fakeServer) startWeChat(t *testing.T, keys *wechatpaytest.Keys, addr string) {
	t.Helper()
	c, err := wechatpay.New(keys.ConfigFor("http://" + addr))
	if err != nil {
		t.Fatal(err)
	}
	f.wx, f.wxKeys = c, keys
	f.trades, f.payIDs = map[string]string{}, map[string]string{}
}

// wechatRoutes serve prepay and the payment notification as API.md says,
// without holding f.mu while WeChat Pay is called or a late notification
// waits.
func (f *fakeServer) wechatRoutes(mux *http.ServeMux, user func(*http.Request) string) {
	mux.HandleFunc("POST /api/v1/reservations/{id}/prepay", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.sweep()
		x := f.res[r.PathValue("id")]
		switch {
		case x == nil || x.user != user(r):
			f.mu.Unlock()
			writeEnvelope(w, 40400, nil)
			return
		case x.state != "held":
			f.mu.Unlock()
			writeEnvelope(w, 40903, nil)
			return
		}
		no := "trade-" + x.id
		f.trades[no] = x.id
		req := wechatpay.PrepayRequest{Description: "fake", OutTradeNo: no, TimeExpire: time.UnixMilli(x.expiresMs),
			NotifyURL: f.notifyURL, Total: 100 * x.qty, OpenID: x.user}
		f.mu.Unlock()
		prepayID, err := f.wx.PrepayJSAPI(r.Context(), req)
		if err != nil {
			writeEnvelope(w, 50300, nil)
			return
		}
		key := f.wxKeys.MerchantKey
		if f.badPaySign {
			key = f.wxKeys.PlatformKey // a key, but not the merchant's
		}
		p, err := wechatpay.NewPayParams(key, f.wxKeys.AppID, prepayID, time.Now(), wechatpay.NewNonce())
		if err != nil {
			writeEnvelope(w, 50300, nil)
			return
		}
		writeEnvelope(w, 0, p)
	})
	mux.HandleFunc("POST /api/v1/payments/wechat/notify", func(w http.ResponseWriter, r *http.Request) {
		ev, err := f.wx.Verifier().VerifyRequest(r, time.Now())
		if err == nil && ev.Transaction == nil {
			err = errors.New("not a transaction")
		}
		if err != nil {
			wechatpay.WriteNotifyAnswer(w, err)
			return
		}
		tx := ev.Transaction
		f.mu.Lock()
		x := f.res[f.trades[tx.OutTradeNo]]
		fail := f.failNotify > 0
		if fail {
			f.failNotify--
		}
		f.mu.Unlock()
		switch {
		case fail:
			w.WriteHeader(http.StatusInternalServerError)
			return
		case x == nil || tx.Amount.Total != 100*x.qty:
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if f.notifyLate {
			time.Sleep(time.Until(time.UnixMilli(x.expiresMs + 20)))
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.sweep()
		if f.refundEarly && x.state == "held" {
			f.release(x)
		}
		switch {
		case x.state == "held":
			f.pay(x)
			f.payIDs[x.id] = tx.TransactionID
		case x.state == "paid" && f.payIDs[x.id] == tx.TransactionID:
			// a repeat
		default:
			f.refunds++ // late: the money goes back
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func (f *fakeServer) pool(x *fakeRes) *fakePool {
	if x.deal {
		return f.deals[x.pool]
	}
	return f.sales[x.pool]
}

func (f *fakeServer) reserve(p *fakePool, u, team string, deal bool) map[string]any {
	f.nextID++
	x := &fakeRes{id: fmt.Sprintf("r%d", f.nextID), user: u, pool: p.id, team: team, deal: deal, qty: 1,
		state: "held", expiresMs: time.Now().UnixMilli() + f.holdMs}
	f.res[x.id] = x
	p.held++
	p.perUser[u]++
	return map[string]any{"reservation_id": x.id, "quantity": 1, "expires_at_ms": x.expiresMs}
}

func (f *fakeServer) join(p *fakePool, t *fakeTeam, u string) map[string]any {
	x := f.reserve(p, u, t.id, true)
	rid := x["reservation_id"].(string)
	f.res[rid].expiresMs = t.expiresMs
	t.members = append(t.members, rid)
	return f.teamView(t, rid)
}

func (f *fakeServer) teamView(t *fakeTeam, rid string) map[string]any {
	var ms []map[string]any
	for _, id := range t.members {
		ms = append(ms, map[string]any{"reservation_id": id, "paid": f.res[id].state == "paid"})
	}
	return map[string]any{"team_id": t.id, "reservation_id": rid, "size": t.size, "members": ms,
		"state": t.state, "expires_at_ms": t.expiresMs}
}

func (f *fakeServer) maybeFormed(t *fakeTeam) {
	if int64(len(t.members)) < t.size {
		return
	}
	for _, id := range t.members {
		if f.res[id].state != "paid" {
			return
		}
	}
	t.state = "formed"
}

func (f *fakeServer) release(x *fakeRes) {
	if x.state == "held" {
		f.pool(x).held -= x.qty
	} else if x.state == "paid" {
		f.pool(x).sold -= x.qty
	}
	x.state = "released"
	f.pool(x).perUser[x.user]--
}

// sweep releases expired holds and fails teams past their deadline.
func (f *fakeServer) sweep() {
	if f.stuckHolds {
		return
	}
	now := time.Now().UnixMilli()
	for _, t := range f.teams {
		if t.state == "forming" && now >= t.expiresMs {
			t.state = "failed"
			for _, id := range t.members {
				if x := f.res[id]; x.state == "held" {
					f.release(x)
				}
			}
		}
	}
	for _, x := range f.res {
		if x.state == "held" && x.team == "" && now >= x.expiresMs {
			f.release(x)
		}
	}
}
