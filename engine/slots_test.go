package engine_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"

	"github.com/redis/rueidis"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// TestBuyersTouchOnlyTheStoreSlot: on Redis, what every buyer does — a
// flash reserve (keyed and retried, or not), a checkout, a payment —
// writes nothing in the engine's records' slot ({surge-rec}): its
// reservation, its idempotency answer, its payment id and its order on the
// way all live in the store's slot (DESIGN.md, "no key that every request
// touches").
func TestBuyersTouchOnlyTheStoreSlot(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	st, err := redisinv.Open(ctx, redisinv.Options{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	orderStore := records.NewMemory() // orders written elsewhere (MySQL, say)
	t.Cleanup(func() { _ = orderStore.Close() })
	clock := newTestClock()
	e, err := engine.Open(ctx, engine.Options{Store: st, RedisAddr: srv.Addr, Now: clock.Now, SweepInterval: -1,
		SaleAdmitFactor: -1, Orders: orders.NewRecordsStore(orderStore)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	env := &testEnv{t: t, clock: clock, store: st, e: e, ctx: ctx}
	if _, err := e.LoadCatalog(ctx, testCatalog()); err != nil {
		t.Fatal(err)
	}
	env.sale("fs1", 100, 2)
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	recSlot := func() map[string]string {
		t.Helper()
		keys, err := rc.Do(ctx, rc.B().Keys().Pattern("{surge-rec}*").Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, k := range keys {
			typ, _ := rc.Do(ctx, rc.B().Type().Key(k).Build()).ToString()
			switch typ {
			case "string":
				out[k], _ = rc.Do(ctx, rc.B().Get().Key(k).Build()).ToString()
			case "zset":
				members, _ := rc.Do(ctx, rc.B().Zrange().Key(k).Min("0").Max("-1").Build()).AsStrSlice()
				out[k] = fmt.Sprint(members)
			default:
				out[k] = typ
			}
		}
		return out
	}
	before := recSlot()
	for i := range 20 {
		user := fmt.Sprintf("oSlot%02d", i)
		key := engine.Attempt{UserID: user, Once: engine.Once{Key: "k-" + user, Digest: sha256.Sum256([]byte(user))}}
		var r engine.Reservation
		for range 2 { // a retry
			if r, err = e.ReserveFlash(ctx, key, "fs1", 1, ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.Pay(ctx, user, r.ReservationID, "pay-"+user); err != nil {
			t.Fatal(err)
		}
		c, err := e.Checkout(ctx, key2(user), engine.CheckoutRequest{StoreID: "s1", Items: []engine.CheckoutItem{{SKUID: "k1", Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Pay(ctx, user, c.ReservationID, "pay2-"+user); err != nil {
			t.Fatal(err)
		}
		if v, err := e.Reservation(ctx, user, r.ReservationID); err != nil || v.PaymentID != "pay-"+user {
			t.Fatalf("reservation = %+v, %v; want its payment id", v, err)
		}
	}
	after := recSlot()
	var changed []string
	for k, v := range after {
		if before[k] != v {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	if len(changed) > 0 {
		t.Fatalf("buyers wrote in the records' slot: %q", changed)
	}
	if p, err := st.Pool(ctx, "s1:fs:fs1"); err != nil || p.Sold != 20 {
		t.Fatalf("pool = %+v, %v; want 20 sold", p, err)
	}
}

func key2(user string) engine.Attempt {
	return engine.Attempt{UserID: user, Once: engine.Once{Key: "cart-" + user, Digest: sha256.Sum256([]byte("cart" + user))}}
}
