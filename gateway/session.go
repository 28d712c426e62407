package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/surge-retail/surge/engine"
)

// Session tokens are "s1.<base64url(user id)>.<expiry unix seconds>.<base64url(mac)>"
// where mac = HMAC-SHA256(secret, "s1.<base64url(user id)>.<expiry>"). They
// are checked without a lookup.

const (
	tokenPrefix = "s1."
	// userIDLenMax bounds a user id (an openid is 28 bytes), bytes.
	userIDLenMax = engine.IDLenMax
	// tokenLenMax bounds a token we try to parse, bytes.
	tokenLenMax = 512
)

// Session errors.
var (
	errTokenMalformed = errors.New("gateway: malformed session token")
	errTokenBadMAC    = errors.New("gateway: bad session token signature")
	errTokenExpired   = errors.New("gateway: session token expired")
)

// b64Strict refuses non-canonical encodings (unused trailing bits set), so
// a token has exactly one spelling.
var b64Strict = base64.RawURLEncoding.Strict()

// sessions signs and checks tokens.
type sessions struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	macs   sync.Pool // of *macState keyed with secret
}

// macState is a reusable HMAC-SHA256 with room for its sum.
type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// mac returns HMAC-SHA256(secret, b) in out.
func (s *sessions) mac(b []byte, out *[sha256.Size]byte) {
	m, _ := s.macs.Get().(*macState)
	if m == nil {
		m = &macState{h: hmac.New(sha256.New, s.secret)}
	}
	m.h.Reset()
	m.h.Write(b)
	m.h.Sum(m.sum[:0])
	*out = m.sum
	s.macs.Put(m)
}

// sign returns a token for userID valid until now+ttl, and that expiry.
func (s *sessions) sign(userID string) (string, time.Time) {
	exp := s.now().Add(s.ttl).Truncate(time.Second)
	return s.signUntil(userID, exp), exp
}

func (s *sessions) signUntil(userID string, exp time.Time) string {
	b := make([]byte, 0, 96+len(userID)*2)
	b = append(b, tokenPrefix...)
	b = base64.RawURLEncoding.AppendEncode(b, []byte(userID))
	b = append(b, '.')
	b = strconv.AppendInt(b, exp.Unix(), 10)
	var sum [sha256.Size]byte
	s.mac(b, &sum)
	b = append(b, '.')
	b = base64.RawURLEncoding.AppendEncode(b, sum[:])
	return string(b)
}

// verify checks a token and returns its user id.
func (s *sessions) verify(tok []byte) (string, error) {
	if len(tok) > tokenLenMax || len(tok) < len(tokenPrefix) || string(tok[:len(tokenPrefix)]) != tokenPrefix {
		return "", errTokenMalformed
	}
	last := lastDot(tok)
	if last <= len(tokenPrefix) {
		return "", errTokenMalformed
	}
	signed, macPart := tok[:last], tok[last+1:]
	var mac [sha256.Size]byte
	if base64.RawURLEncoding.DecodedLen(len(macPart)) != len(mac) {
		return "", errTokenMalformed
	}
	if n, err := b64Strict.Decode(mac[:], macPart); err != nil || n != len(mac) {
		return "", errTokenMalformed
	}
	var want [sha256.Size]byte
	s.mac(signed, &want)
	if !hmac.Equal(want[:], mac[:]) {
		return "", errTokenBadMAC
	}
	// Signed by us: the layout is ours.
	rest := string(signed[len(tokenPrefix):])
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return "", errTokenMalformed
	}
	exp, err := strconv.ParseInt(rest[dot+1:], 10, 64)
	if err != nil {
		return "", errTokenMalformed
	}
	if s.now().Unix() >= exp {
		return "", errTokenExpired
	}
	enc := rest[:dot]
	var buf [userIDLenMax]byte
	if b64Strict.DecodedLen(len(enc)) > len(buf) {
		return "", errTokenMalformed
	}
	n, err := b64Strict.Decode(buf[:], s2b(enc))
	if err != nil || n == 0 {
		return "", errTokenMalformed
	}
	return string(buf[:n]), nil
}

func lastDot(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '.' {
			return i
		}
	}
	return -1
}

// bearer returns the token of an "Authorization: Bearer <token>" header, or
// nil.
func bearer(h []byte) []byte {
	const p = "bearer "
	if len(h) <= len(p) {
		return nil
	}
	for i := 0; i < len(p); i++ {
		c := h[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != p[i] {
			return nil
		}
	}
	t := h[len(p):]
	for len(t) > 0 && t[0] == ' ' {
		t = t[1:]
	}
	for len(t) > 0 && t[len(t)-1] == ' ' {
		t = t[:len(t)-1]
	}
	return t
}

// validUserID reports whether id can be a user id (engine.ValidUserID:
// 1..userIDLenMax printable ASCII without spaces, '{' or '}'; an openid is
// [A-Za-z0-9_-]), so a user who can log in can also reserve.
func validUserID(id string) bool { return engine.ValidUserID(id) }
