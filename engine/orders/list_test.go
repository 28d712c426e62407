package orders_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
)

// TestCursor: a cursor gives back its position under the filter it was
// made for; edited, truncated, foreign or another filter's cursors are
// ErrInvalid.
func TestCursor(t *testing.T) {
	t0 := time.Date(2026, 11, 11, 1, 2, 3, 456789000, time.UTC)
	f := orders.Filter{StoreID: "s1", Since: t0.Add(-time.Hour)}
	p := orders.Position{CreatedAt: t0, OrderID: "o-r/1"}
	c := orders.EncodeCursor(f, p)
	got, err := orders.DecodeCursor(f, c)
	if err != nil || got.OrderID != p.OrderID || !got.CreatedAt.Equal(t0) {
		t.Fatalf("DecodeCursor(EncodeCursor(%+v)) = %+v, %v", p, got, err)
	}
	if c := orders.EncodeCursor(f, orders.Position{}); c != "" {
		t.Fatalf("EncodeCursor(start) = %q; want empty", c)
	}
	if got, err := orders.DecodeCursor(f, ""); err != nil || !got.IsZero() {
		t.Fatalf("DecodeCursor(\"\") = %+v, %v", got, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(c)
	flipped := append([]byte(nil), raw...)
	flipped[3] ^= 1
	bad := []string{
		c[:len(c)-1],
		c + "A",
		base64.RawURLEncoding.EncodeToString(flipped),
		"not a cursor!",
		"AAAA",
		strings.Repeat("A", 2000),
	}
	for _, b := range bad {
		if _, err := orders.DecodeCursor(f, b); !errors.Is(err, orders.ErrInvalid) {
			t.Errorf("DecodeCursor(%q) = %v; want ErrInvalid", b, err)
		}
	}
	for _, other := range []orders.Filter{{StoreID: "s2", Since: f.Since}, {StoreID: "s1"}, {StoreID: "s1", Since: f.Since, GuideID: "g1"}} {
		if _, err := orders.DecodeCursor(other, c); !errors.Is(err, orders.ErrInvalid) {
			t.Errorf("DecodeCursor under %+v = %v; want ErrInvalid", other, err)
		}
	}
}

// TestRecordsIndexBackfill: orders written before the admin indexes (no
// index keys, no index version) are indexed on the first List.
func TestRecordsIndexBackfill(t *testing.T) {
	ctx := context.Background()
	rec := records.NewMemory()
	s := orders.NewRecordsStore(rec)
	t0 := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	var list []orders.Order
	for i := 0; i < 1200; i++ {
		list = append(list, orders.Order{OrderID: "o-" + string(rune('a'+i%26)) + time.Duration(i).String(), UserID: "u", StoreID: "s1",
			Items: []orders.Item{{SKUID: "k", Quantity: 1}}, State: orders.StateCreated, CreatedAt: t0.Add(time.Duration(i) * time.Second)})
	}
	if err := s.Upsert(ctx, list); err != nil {
		t.Fatal(err)
	}
	var keys []string
	_ = rec.Scan(ctx, "orderx", func(k string, _ []byte) error { keys = append(keys, k); return nil })
	if len(keys) == 0 {
		t.Fatal("no index keys written")
	}
	for _, k := range keys {
		if err := rec.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	s = orders.NewRecordsStore(rec)
	page, _, err := s.List(ctx, orders.Filter{StoreID: "s1"}, orders.Position{}, 0)
	if err != nil || len(page) != orders.ListMax || !page[0].CreatedAt.Equal(t0.Add(1199*time.Second)) {
		t.Fatalf("List after backfill = %d orders, %v", len(page), err)
	}
	rows, err := s.Attribution(ctx, orders.Filter{})
	if err != nil || len(rows) != 1 || rows[0].Orders != 1200 || rows[0].Units != 1200 {
		t.Fatalf("Attribution after backfill = %+v, %v", rows, err)
	}
}
