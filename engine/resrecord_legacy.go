package engine

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/surge-retail/surge/inventory"
)

// Reservations made before the record of resrecord.go (version 2) carry
// one of two older forms: "m1|kind|sale|deal|team|store|guide|sku,sku|
// price,price" (version 1), or before that the JSON of legacyMeta. They
// are read, never written. Paid reservations are kept for good (their
// orders are rebuilt from them), so this reader stays as long as a data
// directory or Redis may hold such a reservation.
type legacyMeta struct {
	Kind   string   `json:"k"`
	Sale   string   `json:"s,omitempty"`
	Deal   string   `json:"d,omitempty"`
	Team   string   `json:"t,omitempty"`
	Store  string   `json:"st"`
	Guide  string   `json:"g,omitempty"`
	SKUs   []string `json:"sk"`
	Prices []int64  `json:"p"`
}

const legacyMetaVersion = "m1"

func decodeLegacyMeta(b []byte) (legacyMeta, error) {
	var m legacyMeta
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &m); err != nil {
			return m, fmt.Errorf("%w: %w", errRecord, err)
		}
		return m, nil
	}
	s := string(b)
	var f [9]string
	for i := range f {
		j := strings.IndexByte(s, '|')
		if i == len(f)-1 {
			if j >= 0 {
				return m, errRecord
			}
			f[i] = s
			break
		}
		if j < 0 {
			return m, errRecord
		}
		f[i], s = s[:j], s[j+1:]
	}
	if f[0] != legacyMetaVersion {
		return m, fmt.Errorf("%w: version %q", errRecord, f[0])
	}
	m.Kind, m.Sale, m.Deal, m.Team, m.Store, m.Guide = f[1], f[2], f[3], f[4], f[5], f[6]
	if f[7] != "" {
		m.SKUs = strings.Split(f[7], ",")
	}
	if f[8] != "" {
		ps := f[8]
		m.Prices = make([]int64, 0, strings.Count(ps, ",")+1)
		for ps != "" {
			var p string
			p, ps, _ = strings.Cut(ps, ",")
			v, err := strconv.ParseInt(p, 10, 64)
			if err != nil {
				return m, fmt.Errorf("%w: price %q", errRecord, p)
			}
			m.Prices = append(m.Prices, v)
		}
	}
	return m, nil
}

// legacyRecordOf reads a reservation of an older form into a record.
// Quantities come from the reservation's lines and the amount is their
// sum, as the older forms did not keep them. A version 1 checkout left its
// skus out of the meta: they are taken from the listing pools' ids, the
// only place this is done.
func legacyRecordOf(r inventory.Reservation) (resRecord, error) {
	lm, err := decodeLegacyMeta(r.Meta)
	if err != nil {
		return resRecord{}, fmt.Errorf("reservation %s: %w", r.ID, err)
	}
	if lm.SKUs == nil && lm.Kind == kindCheckout {
		lm.SKUs = make([]string, len(r.Lines))
		for i, l := range r.Lines {
			lm.SKUs[i] = l.Pool[strings.LastIndex(l.Pool, ":l:")+len(":l:"):]
		}
	}
	if len(lm.SKUs) != len(r.Lines) || len(lm.Prices) != len(r.Lines) {
		return resRecord{}, fmt.Errorf("%w: meta does not match the lines of %s", errRecord, r.ID)
	}
	switch lm.Kind {
	case kindFlash, kindGroup, kindCheckout:
	default:
		return resRecord{}, fmt.Errorf("%w: kind %q of %s", errRecord, lm.Kind, r.ID)
	}
	m := resRecord{Kind: lm.Kind, SaleID: lm.Sale, DealID: lm.Deal, TeamID: lm.Team, StoreID: lm.Store, GuideID: lm.Guide,
		Items: make([]recordItem, len(r.Lines))}
	for i, l := range r.Lines {
		m.Items[i] = recordItem{SKUID: lm.SKUs[i], Quantity: l.Quantity, UnitPrice: lm.Prices[i]}
		m.Amount += l.Quantity * lm.Prices[i]
	}
	return m, nil
}
