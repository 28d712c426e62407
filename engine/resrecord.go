package engine

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/surge-retail/surge/inventory"
)

// resRecord is what the engine keeps with every reservation
// (inventory.Reservation.Meta): its kind, what it is for, who it is
// credited to, and its items with the unit prices and the amount fixed at
// reserve time. With it, a view, a payment or an order needs no other
// lookup, and nothing is parsed back out of pool or reservation ids.
type resRecord struct {
	Kind    string // kindFlash, kindGroup or kindCheckout
	SaleID  string
	DealID  string
	TeamID  string
	StoreID string
	GuideID string
	Items   []recordItem
	// Amount is the sum of the items' Quantity × UnitPrice (fen).
	Amount int64
	// Keyed marks a reservation made under an Idempotency-Key (its id is
	// onceReservationID's); Digest is then the digest of that request
	// (route and body), which a replay of the key must match.
	Keyed  bool
	Digest [32]byte
}

// recordItem is one line of a reservation: the inventory line of the same
// index holds its units.
type recordItem struct {
	SKUID     string
	Quantity  int64
	UnitPrice int64
}

const (
	kindFlash    = "flash"
	kindGroup    = "group"
	kindCheckout = "checkout"
)

// Encoding, version 2: a version byte, then the kind as one byte, then the
// five ids (sale, deal, team, store, guide) each as a uvarint length and its
// bytes, then the item count as a uvarint and per item the sku (length and
// bytes), the quantity (uvarint) and the unit price (varint), then the
// amount (varint). Version 3 is version 2 followed by the 32-byte digest
// of a keyed reservation's request; unkeyed records stay version 2.
// Version 1 ("m1|...") and the JSON form before it are still read
// (record_legacy.go).
const (
	recordVersion      = 2
	recordVersionKeyed = 3
)

// Kind codes of the encoding (0 is never written).
var kindCodes = [...]string{1: kindFlash, 2: kindGroup, 3: kindCheckout}

// recordLenMax is the longest encoded record: a full cart of the longest
// ids. inventory.MetaLenMax must hold it (checked at compile time below).
const recordLenMax = 2 + 5*(binary.MaxVarintLen16+KeyLenMax) + binary.MaxVarintLen16 +
	inventory.LinesMax*(binary.MaxVarintLen16+KeyLenMax+2*binary.MaxVarintLen64) + binary.MaxVarintLen64 + 32

// A record that can be refused by the inventory for its size would be a
// bug: fail the build instead.
var _ [inventory.MetaLenMax - recordLenMax]struct{}

var errRecord = errors.New("cannot decode reservation record")

func kindCode(kind string) byte {
	for i, k := range kindCodes {
		if k == kind && i > 0 {
			return byte(i)
		}
	}
	panic("BUG: unknown reservation kind " + kind)
}

// encode returns the record's bytes, in one allocation.
func (m *resRecord) encode() []byte {
	n := 2 + len(m.SaleID) + len(m.DealID) + len(m.TeamID) + len(m.StoreID) + len(m.GuideID) + 5 + 2*binary.MaxVarintLen64 + len(m.Digest)
	for _, it := range m.Items {
		n += 1 + len(it.SKUID) + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	version := byte(recordVersion)
	if m.Keyed {
		version = recordVersionKeyed
	}
	b = append(b, version, kindCode(m.Kind))
	for _, s := range [...]string{m.SaleID, m.DealID, m.TeamID, m.StoreID, m.GuideID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Items)))
	for _, it := range m.Items {
		b = binary.AppendUvarint(b, uint64(len(it.SKUID)))
		b = append(b, it.SKUID...)
		b = binary.AppendUvarint(b, uint64(it.Quantity))
		b = binary.AppendVarint(b, it.UnitPrice)
	}
	b = binary.AppendVarint(b, m.Amount)
	if m.Keyed {
		b = append(b, m.Digest[:]...)
	}
	return b
}

// recordReader reads an encoded record; its strings share one copy of the
// bytes (one allocation for all ids of a record).
type recordReader struct {
	s   string
	off int
	err error
}

// uvarint reads what binary.AppendUvarint wrote (read from the string, so
// that no byte slice is made).
func (r *recordReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	for i := 0; i < binary.MaxVarintLen64 && r.off < len(r.s); i++ {
		c := r.s[r.off]
		r.off++
		if i == binary.MaxVarintLen64-1 && c > 1 || i > 0 && c == 0 {
			break // overflows 64 bits, or not the shortest form
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v
		}
	}
	r.err = errRecord
	return 0
}

// varint reads what binary.AppendVarint wrote.
func (r *recordReader) varint() int64 {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (r *recordReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > KeyLenMax || int(n) > len(r.s)-r.off {
		r.err = errRecord
		return ""
	}
	s := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

// decodeRecord decodes a reservation record of any version.
func decodeRecord(b []byte) (resRecord, error) {
	if len(b) == 0 {
		return resRecord{}, fmt.Errorf("%w: empty", errRecord)
	}
	var m resRecord
	if !currentRecord(b) {
		return m, fmt.Errorf("%w: version %d", errRecord, b[0])
	}
	if len(b) < 2 || int(b[1]) >= len(kindCodes) || b[1] == 0 {
		return m, fmt.Errorf("%w: bad kind", errRecord)
	}
	m.Kind = kindCodes[b[1]]
	r := recordReader{s: string(b[2:])}
	m.SaleID, m.DealID, m.TeamID, m.StoreID, m.GuideID = r.str(), r.str(), r.str(), r.str(), r.str()
	n := r.uvarint()
	if r.err == nil && (n == 0 || n > inventory.LinesMax) {
		r.err = errRecord
	}
	if r.err != nil {
		return m, r.err
	}
	m.Items = make([]recordItem, n)
	for i := range m.Items {
		it := &m.Items[i]
		it.SKUID = r.str()
		q := r.uvarint()
		it.UnitPrice = r.varint()
		if q == 0 || q > inventory.QuantityMaxDefault {
			r.err = errRecord
		}
		it.Quantity = int64(q)
	}
	m.Amount = r.varint()
	if m.Keyed = b[0] == recordVersionKeyed; m.Keyed && r.err == nil {
		if len(r.s)-r.off < len(m.Digest) {
			return m, fmt.Errorf("%w: short digest", errRecord)
		}
		r.off += copy(m.Digest[:], r.s[r.off:])
	}
	if r.err == nil && r.off != len(r.s) {
		r.err = fmt.Errorf("%w: %d bytes left over", errRecord, len(r.s)-r.off)
	}
	return m, r.err
}

// currentRecord reports whether b (not empty) is a record of version 2
// or 3, rather than one of the legacy forms.
func currentRecord(b []byte) bool { return b[0] == recordVersion || b[0] == recordVersionKeyed }

// recordOf decodes a reservation's record and checks it against the
// reservation's lines: one item per line, the same quantities, and the
// amount their sum.
func recordOf(r inventory.Reservation) (resRecord, error) {
	if len(r.Meta) > 0 && !currentRecord(r.Meta) {
		return legacyRecordOf(r)
	}
	m, err := decodeRecord(r.Meta)
	if err != nil {
		return m, fmt.Errorf("reservation %s: %w", r.ID, err)
	}
	if len(m.Items) != len(r.Lines) {
		return m, fmt.Errorf("%w: reservation %s has %d lines and %d items", errRecord, r.ID, len(r.Lines), len(m.Items))
	}
	var amount int64
	for i, l := range r.Lines {
		if m.Items[i].Quantity != l.Quantity {
			return m, fmt.Errorf("%w: reservation %s line %d holds %d, its item %d", errRecord, r.ID, i, l.Quantity, m.Items[i].Quantity)
		}
		amount += l.Quantity * m.Items[i].UnitPrice
	}
	if amount != m.Amount {
		return m, fmt.Errorf("%w: reservation %s amount %d, items sum to %d", errRecord, r.ID, m.Amount, amount)
	}
	return m, nil
}

// view builds the API view of an inventory reservation.
func (e *Engine) view(r inventory.Reservation) (Reservation, resRecord, error) {
	m, err := recordOf(r)
	if err != nil {
		return Reservation{}, m, err
	}
	return e.viewRecord(r, &m), m, nil
}

// viewRecord builds the API view from a reservation and its record
// (len(m.Items) == len(r.Lines)).
func (e *Engine) viewRecord(r inventory.Reservation, m *resRecord) Reservation {
	cat := e.catalog.Load()
	v := Reservation{
		ReservationID: r.ID,
		Kind:          m.Kind,
		SaleID:        m.SaleID,
		DealID:        m.DealID,
		TeamID:        m.TeamID,
		UserID:        r.User,
		StoreID:       m.StoreID,
		GuideID:       m.GuideID,
		State:         r.State.String(),
		CreatedAt:     r.CreatedAt.UTC(),
		ExpiresAt:     r.ExpiresAt.UTC(),
		ExpiresAtMs:   r.ExpiresAt.UnixMilli(),
		Amount:        m.Amount,
		Items:         make([]Item, len(m.Items)),
	}
	for i, it := range m.Items {
		vi := Item{SKUID: it.SKUID, Quantity: it.Quantity, UnitPrice: it.UnitPrice}
		if p, ok := cat.products[it.SKUID]; ok {
			vi.Title = p.Title
		}
		v.Items[i] = vi
		v.Quantity += it.Quantity
	}
	if len(v.Items) == 1 {
		v.SKUID = v.Items[0].SKUID
		v.UnitPrice = v.Items[0].UnitPrice
	}
	return v
}
