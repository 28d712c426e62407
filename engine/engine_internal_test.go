package engine

import (
	"reflect"
	"testing"
	"time"
)

func TestMetaRoundTrip(t *testing.T) {
	f := func(m resMeta) {
		t.Helper()
		got, err := decodeMeta(m.encode())
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("decodeMeta(encode(%+v)) = %+v, %v", m, got, err)
		}
	}
	f(resMeta{Kind: kindFlash, Sale: "fs1", Store: "s1", Guide: "g1", SKUs: []string{"k1"}, Prices: []int64{9900}})
	f(resMeta{Kind: kindGroup, Deal: "gb-1", Team: "t01", Store: "s.1", SKUs: []string{"k_1"}, Prices: []int64{0}})
	f(resMeta{Kind: kindCheckout, Store: "s1", Prices: []int64{1, 2, 3}})
	for _, bad := range []string{"", "m1", "m2|flash||||s1||k1|1", "m1|flash||||s1||k1|x", "m1|flash||||s1||k1|1|extra"} {
		if _, err := decodeMeta([]byte(bad)); err == nil {
			t.Fatalf("decodeMeta(%q) succeeded", bad)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add([]byte("m1|flash|fs1||||s1|g1|k1|9900"))
	f.Add([]byte(`{"k":"flash"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		_ = m.encode()
	})
}

func TestNewTokenSortable(t *testing.T) {
	now := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	a, b := engNewToken(now), engNewToken(now.Add(time.Millisecond))
	if len(a) != 23 || a[:10] >= b[:10] {
		t.Fatalf("tokens %q, %q: not sortable by time", a, b)
	}
	if !engValidID(a) {
		t.Fatalf("token %q is not a valid id", a)
	}
}
