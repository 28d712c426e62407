package orders

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"
)

// Filter selects orders for List and Attribution. Every field is optional;
// the zero Filter selects every order.
type Filter struct {
	StoreID string
	GuideID string
	SaleID  string
	// Since (inclusive) and Until (exclusive) bound CreatedAt; zero means
	// unbounded.
	Since time.Time
	Until time.Time
}

// FilterIDLenMax bounds a store, guide or sale id of a Filter (bytes), as
// the schema's columns do.
const FilterIDLenMax = 64

// Check validates f: ids of 1..FilterIDLenMax bytes of [A-Za-z0-9_.-] when
// set, and Since before Until when both are. A bad filter is ErrInvalid
// with a message that names the field.
func (f Filter) Check() error {
	for _, id := range []struct{ name, v string }{{"store_id", f.StoreID}, {"guide_id", f.GuideID}, {"sale_id", f.SaleID}} {
		if id.v != "" && !validFilterID(id.v) {
			return fmt.Errorf("%w: %s must be 1-%d characters of A-Z, a-z, 0-9, '_', '.' and '-'", ErrInvalid, id.name, FilterIDLenMax)
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return fmt.Errorf("%w: since must be before until", ErrInvalid)
	}
	return nil
}

func validFilterID(s string) bool {
	if len(s) == 0 || len(s) > FilterIDLenMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// match reports whether o is selected by f.
func (f Filter) match(o *Order) bool {
	return (f.StoreID == "" || o.StoreID == f.StoreID) &&
		(f.GuideID == "" || o.GuideID == f.GuideID) &&
		(f.SaleID == "" || o.SaleID == f.SaleID) &&
		(f.Since.IsZero() || !o.CreatedAt.Before(f.Since)) &&
		(f.Until.IsZero() || o.CreatedAt.Before(f.Until))
}

// Position is a place in List's order: newest first, by CreatedAt
// descending, then OrderID descending. The zero Position is the start.
type Position struct {
	CreatedAt time.Time
	OrderID   string
}

// IsZero reports whether p is the start (or, as List's next, the end).
func (p Position) IsZero() bool { return p.OrderID == "" }

// after reports whether o comes after p in List's order.
func (p Position) after(o *Order) bool {
	if p.IsZero() {
		return true
	}
	if !o.CreatedAt.Equal(p.CreatedAt) {
		return o.CreatedAt.Before(p.CreatedAt)
	}
	return o.OrderID < p.OrderID
}

// ListMax bounds one List page.
const ListMax = 500

// GuideTotals is one row of Attribution: the orders of one guide of one
// store (GuideID "" for orders without a guide).
type GuideTotals struct {
	StoreID string `json:"store_id"`
	GuideID string `json:"guide_id"`
	Totals
}

// Totals sums orders. Orders, Units and Amount (fen) are net: orders
// still created. Refunded* count the orders being refunded or refunded
// (refund_pending, refunded), which the net leaves out.
type Totals struct {
	Orders         int64 `json:"orders"`
	Units          int64 `json:"units"`
	Amount         int64 `json:"amount"`
	RefundedOrders int64 `json:"refunded_orders"`
	RefundedUnits  int64 `json:"refunded_units"`
	RefundedAmount int64 `json:"refunded_amount"`
}

// Units is the number of units of an order: the sum of its items'
// quantities.
func (o *Order) Units() int64 {
	n := int64(0)
	for _, it := range o.Items {
		n += it.Quantity
	}
	return n
}

// Add adds u to t.
func (t *Totals) Add(u Totals) {
	t.Orders += u.Orders
	t.Units += u.Units
	t.Amount += u.Amount
	t.RefundedOrders += u.RefundedOrders
	t.RefundedUnits += u.RefundedUnits
	t.RefundedAmount += u.RefundedAmount
}

// add counts orders of one state into t.
func (t *Totals) add(state string, orders, units, amount int64) {
	if StateRank(state) > 0 {
		t.RefundedOrders += orders
		t.RefundedUnits += units
		t.RefundedAmount += amount
		return
	}
	t.Orders += orders
	t.Units += units
	t.Amount += amount
}

// Cursors. A cursor is the opaque text form of a Position, bound to the
// filter it was made for: base64url (no padding) of
//
//	version (1 byte) | CreatedAt, Unix ns (8) | filter digest (8) | order id | checksum (8)
//
// where the checksum is the first 8 bytes of SHA-256 over what precedes
// it. A cursor that does not decode, does not check, or was made for
// another filter is ErrInvalid. The checksum catches edits, not forgery:
// a forged cursor is only a position, and the filter still applies.
const cursorVersion = 1

func filterDigest(f Filter) [8]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", f.StoreID, f.GuideID, f.SaleID)
	for _, t := range []time.Time{f.Since, f.Until} {
		if t.IsZero() {
			h.Write([]byte{0})
		} else {
			h.Write(binary.BigEndian.AppendUint64([]byte{1}, uint64(t.UnixNano())))
		}
	}
	var d [8]byte
	copy(d[:], h.Sum(nil))
	return d
}

// EncodeCursor returns the cursor of p under f; "" for the zero Position.
func EncodeCursor(f Filter, p Position) string {
	if p.IsZero() {
		return ""
	}
	b := make([]byte, 0, 25+len(p.OrderID))
	b = append(b, cursorVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(p.CreatedAt.UnixNano()))
	d := filterDigest(f)
	b = append(b, d[:]...)
	b = append(b, p.OrderID...)
	sum := sha256.Sum256(b)
	b = append(b, sum[:8]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor returns the Position of a cursor made by EncodeCursor
// under the same filter; "" is the zero Position.
func DecodeCursor(f Filter, cursor string) (Position, error) {
	if cursor == "" {
		return Position{}, nil
	}
	bad := fmt.Errorf("%w: cursor is not one this listing gave", ErrInvalid)
	if len(cursor) > base64.RawURLEncoding.EncodedLen(25+IDLenMax) {
		return Position{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) < 26 || b[0] != cursorVersion {
		return Position{}, bad
	}
	body, sum := b[:len(b)-8], b[len(b)-8:]
	want := sha256.Sum256(body)
	if string(want[:8]) != string(sum) {
		return Position{}, bad
	}
	if d := filterDigest(f); string(body[9:17]) != string(d[:]) {
		return Position{}, fmt.Errorf("%w: cursor belongs to another filter (keep the filter of the first page)", ErrInvalid)
	}
	return Position{
		CreatedAt: time.Unix(0, int64(binary.BigEndian.Uint64(body[1:9]))).UTC(),
		OrderID:   string(body[17:]),
	}, nil
}
