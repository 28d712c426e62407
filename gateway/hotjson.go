package gateway

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/surge-retail/surge/engine"
)

// The reservation answer is the body of every successful reserve, the
// hottest write route. appendReservationOK writes it by hand: the same
// bytes sonic writes (a test compares them over many values), without
// sonic's encoder state and time.Time's MarshalJSON allocations. Whatever
// it is not sure to write exactly as sonic would (a string that needs
// escaping, a time outside years 0-9999) goes to sonic instead.

// appendReservationOK appends the success envelope of r; ok is false when
// the caller must encode r with appendOK instead.
func appendReservationOK(dst []byte, r *engine.Reservation) ([]byte, bool) {
	start := len(dst)
	fail := func() ([]byte, bool) { return dst[:start], false }
	dst = append(dst, envelopeOKPrefix...)
	var ok bool
	str := func(key, v string, omitEmpty bool) {
		if !ok || (omitEmpty && v == "") {
			return
		}
		dst = append(dst, key...)
		dst, ok = appendPlainJSONString(dst, v)
	}
	num := func(key string, v int64) {
		dst = append(dst, key...)
		dst = strconv.AppendInt(dst, v, 10)
	}
	ok = true
	str(`{"reservation_id":`, r.ReservationID, false)
	str(`,"kind":`, r.Kind, false)
	str(`,"sale_id":`, r.SaleID, true)
	str(`,"deal_id":`, r.DealID, true)
	str(`,"team_id":`, r.TeamID, true)
	str(`,"user_id":`, r.UserID, false)
	str(`,"store_id":`, r.StoreID, false)
	str(`,"guide_id":`, r.GuideID, true)
	str(`,"sku_id":`, r.SKUID, true)
	if !ok {
		return fail()
	}
	num(`,"quantity":`, r.Quantity)
	num(`,"unit_price":`, r.UnitPrice)
	num(`,"amount":`, r.Amount)
	if r.Items == nil {
		dst = append(dst, `,"items":null`...)
	} else {
		dst = append(dst, `,"items":[`...)
		for i := range r.Items {
			it := &r.Items[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			str(`{"sku_id":`, it.SKUID, false)
			str(`,"title":`, it.Title, true)
			if !ok {
				return fail()
			}
			num(`,"quantity":`, it.Quantity)
			num(`,"unit_price":`, it.UnitPrice)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	str(`,"state":`, r.State, false)
	str(`,"payment_id":`, r.PaymentID, true)
	str(`,"order_id":`, r.OrderID, true)
	if !ok {
		return fail()
	}
	if dst, ok = appendJSONTime(append(dst, `,"created_at":`...), r.CreatedAt); !ok {
		return fail()
	}
	if dst, ok = appendJSONTime(append(dst, `,"expires_at":`...), r.ExpiresAt); !ok {
		return fail()
	}
	num(`,"expires_at_ms":`, r.ExpiresAtMs)
	dst = append(dst, '}')
	return append(dst, envelopeSuffix...), true
}

// appendPlainJSONString appends s quoted when it needs no escaping in
// sonic's output: no control characters, quotes or backslashes, valid
// UTF-8 and neither U+2028 nor U+2029 (which JSON encoders may escape).
// Otherwise it reports false and what it appended must be dropped.
func appendPlainJSONString(dst []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' {
			return dst, false
		}
		if c >= utf8.RuneSelf {
			if !utf8.ValidString(s[i:]) || containsLineSep(s[i:]) {
				return dst, false
			}
			break
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"'), true
}

// containsLineSep reports whether s holds U+2028 or U+2029.
func containsLineSep(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == 0xe2 && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9) {
			return true
		}
	}
	return false
}

// appendJSONTime appends t as time.Time.MarshalJSON does (RFC 3339 with
// nanoseconds, quoted); false for years it refuses.
func appendJSONTime(dst []byte, t time.Time) ([]byte, bool) {
	if t.Location() == time.UTC {
		return appendJSONTimeUTC(dst, t)
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return dst, false
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), true
}

// appendJSONTimeUTC is appendJSONTime of a UTC time (every time of a
// reservation answer) written digit by digit: the bytes of
// time.RFC3339Nano (fraction without trailing zeros, "Z"), without
// AppendFormat's walk of the layout.
func appendJSONTimeUTC(dst []byte, t time.Time) ([]byte, bool) {
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return dst, false
	}
	hour, minute, sec := t.Clock()
	var b [len(`"2006-01-02T15:04:05.999999999Z"`)]byte
	b[0] = '"'
	put4(b[1:], year)
	b[5] = '-'
	put2(b[6:], int(month))
	b[8] = '-'
	put2(b[9:], day)
	b[11] = 'T'
	put2(b[12:], hour)
	b[14] = ':'
	put2(b[15:], minute)
	b[17] = ':'
	put2(b[18:], sec)
	n := 20
	if ns := t.Nanosecond(); ns != 0 {
		b[20] = '.'
		for i := 29; i > 20; i-- {
			b[i] = byte('0' + ns%10)
			ns /= 10
		}
		n = 30
		for b[n-1] == '0' {
			n--
		}
	}
	b[n] = 'Z'
	b[n+1] = '"'
	return append(dst, b[:n+2]...), true
}

func put2(b []byte, v int) { b[0], b[1] = byte('0'+v/10), byte('0'+v%10) }

func put4(b []byte, v int) {
	put2(b, v/100)
	put2(b[2:], v%100)
}

// reserveBodyFast parses the common reserve body, {"quantity":N} with N a
// plain decimal of at most five digits and nothing else (no spaces, no
// other field), without the JSON decoder. Any other body reports false and
// goes through decodeStrict, which decides what it means.
func reserveBodyFast(b []byte) (qty int64, ok bool) {
	const pre = `{"quantity":`
	if len(b) < len(pre)+2 || string(b[:len(pre)]) != pre || b[len(b)-1] != '}' {
		return 0, false
	}
	digits := b[len(pre) : len(b)-1]
	if len(digits) == 0 || len(digits) > 5 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		qty = qty*10 + int64(c-'0')
	}
	return qty, true
}
