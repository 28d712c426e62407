package engine

import (
	"math/rand/v2"
	"strings"
	"time"

	"github.com/surge-retail/surge/inventory"
)

const (
	// idAlphabet is the alphabet of tokens: base32hex, lowercase.
	idAlphabet = "0123456789abcdefghijklmnopqrstuv"
	// tokenLen is the length of newToken's tokens.
	tokenLen = 23
)

// validID reports whether s can be a store, guide, sku, sale, deal or
// team id (inventory.ValidKey: 1..KeyLenMax bytes of [A-Za-z0-9_.-]).
func validID(s string) bool { return inventory.ValidKey(s) }

// newToken returns a sortable, URL-safe random token: 10 chars of
// milliseconds then 13 random chars.
func newToken(now time.Time) string {
	var b [tokenLen]byte
	putToken(b[:], now)
	return string(b[:])
}

// putToken writes a token into b[:tokenLen].
func putToken(b []byte, now time.Time) {
	_ = b[tokenLen-1]
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = idAlphabet[ms&31]
		ms >>= 5
	}
	r := rand.Uint64()
	for i := 22; i >= 10; i-- {
		b[i] = idAlphabet[r&31]
		r >>= 5
	}
}

// newReservationID returns "<store>:<token>" (one allocation: it is made
// for every reservation).
func (e *Engine) newReservationID(storeID string) string {
	var buf [64]byte
	b := buf[:0]
	if n := len(storeID) + 1 + tokenLen; n > len(buf) {
		b = make([]byte, 0, n)
	}
	b = append(b, storeID...)
	b = append(b, ':')
	n := len(b)
	b = b[:n+tokenLen]
	putToken(b[n:], e.now())
	return string(b)
}

// listingPool, salePool and dealPool name the stock pools; the store id is
// the tag so that every pool of a store lives together.
func listingPool(storeID, skuID string) string { return storeID + ":l:" + skuID }

func salePool(storeID, saleID string) string { return storeID + ":fs:" + saleID }

func dealPool(storeID, dealID string) string { return storeID + ":gb:" + dealID }

// keyPart rejects ids that would break a record key.
func keyPart(s string) bool { return validID(s) && !strings.Contains(s, "/") }
