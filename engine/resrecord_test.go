package engine

import (
	"reflect"
	"strings"
	"testing"

	"github.com/surge-retail/surge/inventory"
)

// resOf makes an inventory reservation holding m's items.
func resOf(m resRecord) inventory.Reservation {
	r := inventory.Reservation{ID: "s1:r1", User: "u1", Meta: m.encode()}
	for _, it := range m.Items {
		r.Lines = append(r.Lines, inventory.Line{Pool: listingPool(m.StoreID, it.SKUID), Quantity: it.Quantity})
	}
	return r
}

func TestRecordRoundTrip(t *testing.T) {
	f := func(m resRecord) {
		t.Helper()
		got, err := recordOf(resOf(m))
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("recordOf(encode(%+v)) = %+v, %v", m, got, err)
		}
	}
	f(resRecord{Kind: kindFlash, SaleID: "fs1", StoreID: "s1", GuideID: "g1",
		Items: []recordItem{{SKUID: "k1", Quantity: 2, UnitPrice: 9900}}, Amount: 19800})
	f(resRecord{Kind: kindGroup, DealID: "gb-1", TeamID: "t01", StoreID: "s.1",
		Items: []recordItem{{SKUID: "k_1", Quantity: 1, UnitPrice: 0}}, Amount: 0})
	f(resRecord{Kind: kindCheckout, StoreID: "s1", Items: []recordItem{
		{SKUID: "a", Quantity: 1, UnitPrice: 1}, {SKUID: "b", Quantity: 3, UnitPrice: 2}, {SKUID: "c", Quantity: 10_000, UnitPrice: 59900}},
		Amount: 1 + 6 + 10_000*59900})
	// Negative prices are kept as they are (a varint), though the
	// catalog never makes them.
	f(resRecord{Kind: kindFlash, SaleID: "x", StoreID: "s1", Items: []recordItem{{SKUID: "k", Quantity: 1, UnitPrice: -5}}, Amount: -5})
	// A keyed reservation keeps its request's digest (version 3).
	keyed := resRecord{Kind: kindFlash, SaleID: "fs1", StoreID: "s1", Keyed: true,
		Items: []recordItem{{SKUID: "k1", Quantity: 1, UnitPrice: 100}}, Amount: 100}
	for i := range keyed.Digest {
		keyed.Digest[i] = byte(i + 1)
	}
	f(keyed)
	if b := keyed.encode(); b[0] != recordVersionKeyed {
		t.Fatalf("keyed record version %d; want %d", b[0], recordVersionKeyed)
	}
	// Cut short in its digest: refused.
	r := resOf(keyed)
	r.Meta = r.Meta[:len(r.Meta)-1]
	if _, err := recordOf(r); err == nil {
		t.Fatal("keyed record with a short digest decoded")
	}
}

// TestRecordFullCartFits: the largest record the engine makes (a full cart
// of the longest ids and prices) is accepted by the inventory.
func TestRecordFullCartFits(t *testing.T) {
	id := strings.Repeat("x", KeyLenMax)
	m := resRecord{Kind: kindCheckout, StoreID: id, GuideID: id, SaleID: id, DealID: id, TeamID: id, Keyed: true}
	for i := range inventory.LinesMax {
		sku := strings.Repeat(string(rune('a'+i%26)), KeyLenMax-2) + string(rune('a'+i/26)) + "k"
		m.Items = append(m.Items, recordItem{SKUID: sku, Quantity: inventory.QuantityMaxDefault, UnitPrice: 1 << 40})
		m.Amount += inventory.QuantityMaxDefault << 40
	}
	b := m.encode()
	if len(b) > inventory.MetaLenMax || len(b) > recordLenMax {
		t.Fatalf("full cart record is %d bytes; MetaLenMax %d, recordLenMax %d", len(b), inventory.MetaLenMax, recordLenMax)
	}
	if got, err := recordOf(resOf(m)); err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("full cart round trip: %v", err)
	}
}

// TestRecordRefused: a record that does not match its reservation, or is
// cut short or padded, is an error, never a wrong view.
func TestRecordRefused(t *testing.T) {
	m := resRecord{Kind: kindFlash, SaleID: "fs1", StoreID: "s1",
		Items: []recordItem{{SKUID: "k1", Quantity: 2, UnitPrice: 100}}, Amount: 200}
	good := resOf(m)
	f := func(name string, change func(r *inventory.Reservation)) {
		t.Helper()
		r := good
		r.Lines = append([]inventory.Line(nil), good.Lines...)
		r.Meta = append([]byte(nil), good.Meta...)
		change(&r)
		if got, err := recordOf(r); err == nil {
			t.Errorf("%s: recordOf = %+v; want an error", name, got)
		}
	}
	f("empty", func(r *inventory.Reservation) { r.Meta = nil })
	f("quantity differs from the line", func(r *inventory.Reservation) { r.Lines[0].Quantity = 3 })
	f("more lines than items", func(r *inventory.Reservation) { r.Lines = append(r.Lines, r.Lines[0]) })
	f("amount wrong", func(r *inventory.Reservation) {
		bad := m
		bad.Amount = 201
		r.Meta = bad.encode()
	})
	f("cut short", func(r *inventory.Reservation) { r.Meta = r.Meta[:len(r.Meta)-1] })
	f("padded", func(r *inventory.Reservation) { r.Meta = append(r.Meta, 0) })
	f("unknown version", func(r *inventory.Reservation) { r.Meta[0] = 3 })
	f("unknown kind", func(r *inventory.Reservation) { r.Meta[1] = 9 })
	f("legacy version 2 string", func(r *inventory.Reservation) { r.Meta = []byte("m2|flash||||s1||k1|1") })
	f("legacy bad price", func(r *inventory.Reservation) { r.Meta = []byte("m1|flash||||s1||k1|x") })
	f("legacy extra field", func(r *inventory.Reservation) { r.Meta = []byte("m1|flash||||s1||k1|1|extra") })
	f("legacy too few fields", func(r *inventory.Reservation) { r.Meta = []byte("m1") })
}

// TestRecordLegacy: reservations written by earlier versions (the "m1|"
// string and the JSON before it) read as the same record.
func TestRecordLegacy(t *testing.T) {
	f := func(meta string, lines []inventory.Line, want resRecord) {
		t.Helper()
		got, err := recordOf(inventory.Reservation{ID: "s1:r", Meta: []byte(meta), Lines: lines})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("recordOf(%q) = %+v, %v; want %+v", meta, got, err, want)
		}
	}
	f("m1|flash|fs1|||s1|g1|k1|9900", []inventory.Line{{Pool: "s1:fs:fs1", Quantity: 2}},
		resRecord{Kind: kindFlash, SaleID: "fs1", StoreID: "s1", GuideID: "g1",
			Items: []recordItem{{SKUID: "k1", Quantity: 2, UnitPrice: 9900}}, Amount: 19800})
	f("m1|checkout||||s1|||5,7", []inventory.Line{{Pool: "s1:l:a", Quantity: 1}, {Pool: "s1:l:b.2", Quantity: 2}},
		resRecord{Kind: kindCheckout, StoreID: "s1",
			Items: []recordItem{{SKUID: "a", Quantity: 1, UnitPrice: 5}, {SKUID: "b.2", Quantity: 2, UnitPrice: 7}}, Amount: 19})
	f(`{"k":"group","d":"d1","t":"t1","st":"s1","sk":["k1"],"p":[300]}`, []inventory.Line{{Pool: "s1:gb:d1", Quantity: 1}},
		resRecord{Kind: kindGroup, DealID: "d1", TeamID: "t1", StoreID: "s1",
			Items: []recordItem{{SKUID: "k1", Quantity: 1, UnitPrice: 300}}, Amount: 300})
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add((&resRecord{Kind: kindFlash, SaleID: "fs1", StoreID: "s1", Items: []recordItem{{SKUID: "k1", Quantity: 1, UnitPrice: 9}}, Amount: 9}).encode())
	f.Add([]byte("m1|flash|fs1|||s1|g1|k1|9900"))
	f.Add([]byte(`{"k":"flash"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeRecord(b)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes.
		if got := m.encode(); string(got) != string(b) {
			t.Fatalf("decode(%x) = %+v, encodes to %x", b, m, got)
		}
	})
}
