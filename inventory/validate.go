package inventory

import (
	"encoding/binary"
	"math/bits"
	"time"
	"unsafe"
)

// This file holds the input rules every backend shares, so that the memory,
// pebble and redis backends refuse exactly the same requests.
//
// Reserve checks, in this order, and returns the first failure:
//
//  1. ErrInvalid: the request is malformed (see ReserveRequest.Validate).
//  2. The reservation id exists: same user and lines -> the stored
//     reservation and no error (whatever its state); otherwise ErrIDConflict.
//  3. ErrPoolNotFound: a line names an unknown pool.
//  4. ErrSoldOut: a line's pool has fewer available units than asked.
//  5. ErrLimitExceeded: a line would pass the user's per-user limit.
//
// Under concurrency 4 and 5 are decided at the moment the units are taken.

// More limits on inputs, shared by every backend.
const (
	// UnitsMax bounds a pool's supplied units, an on-hand level and a Move,
	// so that sums of counters never overflow int64.
	UnitsMax = 1 << 40
	// ScanLimitMax bounds Store.Scan's limit.
	ScanLimitMax = 1000
	// ExpireMax bounds Store.Expire's max.
	ExpireMax = 10_000
)

// Limits every layer checks its input against: the backends here, the
// engine, and the gateway through the engine's re-exports (engine.KeyLenMax,
// engine.HoldMax, ...), so that a request one layer refuses is refused by
// all of them, for the same reason. Each is written only here; together with
// IDLenMax, LinesMax and QuantityMaxDefault of inventory.go.
const (
	// KeyLenMax bounds a key, in bytes (see ValidKey).
	KeyLenMax = 64
	// HoldMax is the longest hold of a reservation (ReserveRequest.TTL):
	// a flash sale's hold_seconds, a checkout's or a group member's hold.
	HoldMax = 24 * time.Hour
)

// ValidKey reports whether s is a well-formed key: the id of a store, guide,
// sku, sale, deal or team, 1 to KeyLenMax bytes of [A-Za-z0-9_.-]. Keys are
// chosen by the brand, not by shoppers, and make up pool and reservation ids
// ("<store>:<sale>"), so they hold no ':', '/', space or Redis hash-tag
// brace. User ids come from login and follow ValidID instead.
func ValidKey(s string) bool {
	if len(s) == 0 || len(s) > KeyLenMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !keyByte[s[i]] {
			return false
		}
	}
	return true
}

// keyByte tells the bytes allowed in a key.
var keyByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
	}
	return t
}()

// ValidID reports whether s is a well-formed pool, reservation or user id:
// 1 to IDLenMax bytes of printable ASCII without spaces and without '{' or
// '}' (which would break Redis hash tags).
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > IDLenMax {
		return false
	}
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if idBad8(load8(s, i)) != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if !idByte[s[i]] {
			return false
		}
	}
	return true
}

// Eight bytes at a time (SWAR): every reserve checks its id, user and
// pools, and a byte-table loop was a tenth of a memory reserve.
const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// load8 returns s[i:i+8] as a little-endian word (the first byte lowest).
func load8(s string, i int) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:i+8]), 8))
}

// idBad8 returns a nonzero word if some byte of x is not an id byte (see
// idByte), else 0.
func idBad8(x uint64) uint64 {
	below := (x - swarLo*'!') &^ x                           // a byte < '!' (or >= 0x80, below)
	above := (x + swarLo*(0x7f-'~')) | x                     // a byte > '~'
	brace := swarZero(x^swarLo*'{') | swarZero(x^swarLo*'}') // '{' or '}'
	return (below | above | brace) & swarHi
}

// swarZero returns a word whose high bit is set in the lowest zero byte of
// x (higher bytes may be flagged too), or 0 if no byte of x is zero.
func swarZero(x uint64) uint64 { return (x - swarLo) &^ x & swarHi }

// idByte tells the bytes allowed in an id.
var idByte = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = c != '{' && c != '}'
	}
	return t
}()

// ValidReservationID reports whether s is a valid id of the form
// "<tag>:<rest>" with a non-empty tag and rest.
func ValidReservationID(s string) bool {
	return reservationTagLen(s) > 0
}

// reservationTagLen returns the length of s's tag if s is a valid
// reservation id, else 0: one pass for ValidID and Tag.
func reservationTagLen(s string) int {
	if len(s) == 0 || len(s) > IDLenMax {
		return 0
	}
	tag := -1
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := load8(s, i)
		if idBad8(x) != 0 {
			return 0
		}
		if z := swarZero(x ^ swarLo*':'); z != 0 && tag < 0 {
			tag = i + bits.TrailingZeros64(z)/8
		}
	}
	for ; i < len(s); i++ {
		c := s[i]
		if !idByte[c] {
			return 0
		}
		if c == ':' && tag < 0 {
			tag = i
		}
	}
	if tag <= 0 || tag >= len(s)-1 {
		return 0
	}
	return tag
}

// hasTag reports whether Tag(id) == tag, where tag holds no ':'.
func hasTag(id, tag string) bool {
	if len(id) == len(tag) {
		return id == tag
	}
	return len(id) > len(tag) && id[len(tag)] == ':' && id[:len(tag)] == tag
}

// Validate checks r against the shared input rules and returns ErrInvalid
// (wrapped with the reason) or nil. maxQuantity is Options.MaxQuantity.
func (r *ReserveRequest) Validate(maxQuantity int64) error {
	tagLen := reservationTagLen(r.ID)
	if tagLen == 0 {
		return invalidf("bad reservation id")
	}
	if !ValidID(r.User) {
		return invalidf("bad user id")
	}
	if len(r.Lines) == 0 || len(r.Lines) > LinesMax {
		return invalidf("need 1 to LinesMax lines")
	}
	if r.TTL <= 0 || r.TTL > HoldMax {
		return invalidf("ttl must be positive and at most HoldMax")
	}
	if len(r.Meta) > MetaLenMax {
		return invalidf("meta too long")
	}
	tag := r.ID[:tagLen]
	for i := range r.Lines {
		l := &r.Lines[i]
		if !ValidID(l.Pool) {
			return invalidf("bad pool id")
		}
		if !hasTag(l.Pool, tag) {
			return invalidf("pool tag differs from reservation tag")
		}
		if l.Quantity <= 0 || l.Quantity > maxQuantity {
			return invalidf("quantity out of range")
		}
		if l.Limit < 0 {
			return invalidf("negative limit")
		}
		for j := 0; j < i; j++ {
			if r.Lines[j].Pool == l.Pool {
				return invalidf("duplicate pool")
			}
		}
	}
	return nil
}

// SameRequest reports whether req asks for what res holds: the same user
// and the same lines in the same order. TTL and Meta are not compared.
func SameRequest(res *Reservation, req *ReserveRequest) bool {
	if res.User != req.User || len(res.Lines) != len(req.Lines) {
		return false
	}
	for i := range res.Lines {
		if res.Lines[i] != req.Lines[i] {
			return false
		}
	}
	return true
}

// ExpiryMs returns the creation and expiry times, in Unix milliseconds, of
// a reservation made at now with ttl: expiry is rounded up to a whole
// millisecond after creation, so a positive ttl always holds for at least
// one millisecond.
func ExpiryMs(now time.Time, ttl time.Duration) (createdMs, expiresMs int64) {
	return expiryMs(now.UnixMilli(), ttl)
}

// expiryMs is ExpiryMs from a time already in Unix milliseconds.
func expiryMs(nowMs int64, ttl time.Duration) (createdMs, expiresMs int64) {
	ttlMs := int64((ttl + time.Millisecond - 1) / time.Millisecond)
	return nowMs, nowMs + ttlMs
}

type invalidError string

func (e invalidError) Error() string { return "inventory: invalid request: " + string(e) }
func (e invalidError) Unwrap() error { return ErrInvalid }

func invalidf(reason string) error { return invalidError(reason) }
