package redisinv

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// A reservation record is one Redis string:
//
//	S F L ' ' ident C ' ' E ' ' meta
//
// S is the state ('1' held, '2' paid, '3' released), F the refunded flag
// ('0' or '1'), L the decimal byte length of ident, ident the request's
// identity "user n pool q k pool q k ... " (every token followed by one
// space: user and pool ids never contain one), C and E the created and
// expiry times in Unix ms, and meta the caller's opaque bytes up to the
// end. A replayed reserve compares "L ' ' ident" byte for byte (same user
// and lines, in order); a state change rewrites S and F in place.

// encodeRecord returns the record of a new held reservation and the length
// of its "L ' ' ident" part.
func encodeRecord(req *inventory.ReserveRequest, createdMs, expiresMs int64) (rec string, plen int) {
	il := identLen(req)
	var b strings.Builder
	b.Grow(recordLen(req, il, createdMs, expiresMs))
	plen = writeRecord(&b, req, il, createdMs, expiresMs)
	return b.String(), plen
}

// identLen is the length of req's ident.
func identLen(req *inventory.ReserveRequest) int {
	n := len(req.User) + 1 + intLen(int64(len(req.Lines))) + 1
	for i := range req.Lines {
		l := &req.Lines[i]
		n += len(l.Pool) + 1 + intLen(l.Quantity) + 1 + intLen(l.Limit) + 1
	}
	return n
}

// recordLen is the length of the record that writeRecord writes; il is
// identLen(req).
func recordLen(req *inventory.ReserveRequest, il int, createdMs, expiresMs int64) int {
	return 2 + intLen(int64(il)) + 1 + il + intLen(createdMs) + 1 + intLen(expiresMs) + 1 + len(req.Meta)
}

// writeRecord writes the record of a new held reservation to b and returns
// the length of its "L ' ' ident" part; il is identLen(req).
func writeRecord(b *strings.Builder, req *inventory.ReserveRequest, il int, createdMs, expiresMs int64) (plen int) {
	start := b.Len()
	b.WriteString("10")
	writeInt(b, int64(il))
	b.WriteByte(' ')
	b.WriteString(req.User)
	b.WriteByte(' ')
	writeInt(b, int64(len(req.Lines)))
	b.WriteByte(' ')
	for i := range req.Lines {
		l := &req.Lines[i]
		b.WriteString(l.Pool)
		b.WriteByte(' ')
		writeInt(b, l.Quantity)
		b.WriteByte(' ')
		writeInt(b, l.Limit)
		b.WriteByte(' ')
	}
	plen = b.Len() - start - 2
	writeInt(b, createdMs)
	b.WriteByte(' ')
	writeInt(b, expiresMs)
	b.WriteByte(' ')
	b.Write(req.Meta)
	return plen
}

// writeInt writes n in decimal without allocating.
func writeInt(b *strings.Builder, n int64) {
	var buf [20]byte
	b.Write(strconv.AppendInt(buf[:0], n, 10))
}

// intLen returns the length of the decimal form of n (n >= 0).
func intLen(n int64) int {
	l := 1
	for n >= 10 {
		n /= 10
		l++
	}
	return l
}

// parseRecord parses record v of reservation id.
func parseRecord(op, id, v string) (inventory.Reservation, error) {
	bad := func(what string) (inventory.Reservation, error) {
		return inventory.Reservation{}, fmt.Errorf("redisinv: cannot %s: record %q: bad %s: %w", op, id, what, inventory.ErrUnavailable)
	}
	if len(v) < 3 {
		return bad("length")
	}
	r := inventory.Reservation{ID: id}
	switch v[0] {
	case '1':
		r.State = inventory.StateHeld
	case '2':
		r.State = inventory.StatePaid
	case '3':
		r.State = inventory.StateReleased
	default:
		return bad("state")
	}
	switch v[1] {
	case '0':
	case '1':
		r.Refunded = true
	default:
		return bad("refunded flag")
	}
	rest := v[2:]
	tok, rest, ok := strings.Cut(rest, " ")
	il, err := strconv.Atoi(tok)
	if !ok || err != nil || il < 0 || il > len(rest) {
		return bad("identity length")
	}
	ident, rest := rest[:il], rest[il:]
	next := func() (int64, bool) {
		var t string
		t, ident, ok = strings.Cut(ident, " ")
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseInt(t, 10, 64)
		return n, err == nil
	}
	r.User, ident, ok = strings.Cut(ident, " ")
	if !ok || r.User == "" {
		return bad("user")
	}
	n, ok := next()
	if !ok || n < 1 || n > inventory.LinesMax {
		return bad("line count")
	}
	r.Lines = make([]inventory.Line, n)
	for i := range r.Lines {
		l := &r.Lines[i]
		if l.Pool, ident, ok = strings.Cut(ident, " "); !ok || l.Pool == "" {
			return bad("pool")
		}
		if l.Quantity, ok = next(); !ok {
			return bad("quantity")
		}
		if l.Limit, ok = next(); !ok {
			return bad("limit")
		}
	}
	if ident != "" {
		return bad("identity")
	}
	tok, rest, ok = strings.Cut(rest, " ")
	c, err := strconv.ParseInt(tok, 10, 64)
	if !ok || err != nil {
		return bad("created")
	}
	tok, rest, ok = strings.Cut(rest, " ")
	e, err := strconv.ParseInt(tok, 10, 64)
	if !ok || err != nil {
		return bad("expiry")
	}
	r.CreatedAt, r.ExpiresAt = time.UnixMilli(c), time.UnixMilli(e)
	if rest != "" {
		r.Meta = []byte(rest)
	}
	return r, nil
}
