package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/surge-retail/surge/engine"
	"github.com/valyala/fasthttp"
)

// Page-view tokens (issue 18). The storefront routes (store page, product
// page; 200 and 304 alike) answer with a token in X-Surge-Page-Token; a
// reserve (flash reserve, team open and join, checkout) may send it back
// in the same request header. The token is
//
//	"p1." + base64url(issued ms, 8 bytes big-endian | nonce, 16 bytes | store id) + "." + base64url(tag)
//
// where tag is the first 16 bytes of HMAC-SHA256 over everything before
// the last dot, keyed with HMAC-SHA256(session secret, pageKeyLabel): the
// session secret is shared by every node, so a token from one node is
// good on all of them. The gateway checks the signature only; the risk
// hook judges the rest (age, store, reuse: engine/riskpage.go). Minting
// one allocates nothing: a pooled MAC with its scratch buffer, a nonce
// from the runtime's per-thread generator.
//
// A shopper's client sends the same token with each reserve of its page
// view, so the gateway remembers the tokens whose signature it checked in
// a fixed table (pageCheckedSlots, a slot picked by the tag, a newer token
// taking an older one's slot): a token equal byte for byte to one checked
// before reads as it did, without its HMAC or its decoding again (the HMAC
// is most of a read). An invalid token is never remembered.

const (
	pageTokenPrefix = "p1."
	// pageKeyLabel separates the page token key from the session key.
	pageKeyLabel = "surge page-view token v1"
	// pageTagLen is the length of a token's tag (bytes).
	pageTagLen = 16
	// pagePayloadMax is the longest payload: time, nonce, store id.
	pagePayloadMax = 8 + engine.PageNonceLen + engine.KeyLenMax
	// pageTokenLenMax bounds a token we try to read (bytes).
	pageTokenLenMax = 256
	// pageCheckedSlots is the size of the table of tokens checked (a
	// power of two; under 2 MB with tokens of the longest store ids).
	pageCheckedSlots = 4096
)

var headerPageToken = []byte("X-Surge-Page-Token")

// pageTokens signs and reads page-view tokens.
type pageTokens struct {
	key     []byte
	macs    sync.Pool // of *pageMAC
	checked [pageCheckedSlots]atomic.Pointer[pageChecked]
}

// pageChecked is a token whose signature was checked: its tag, what it
// signs, and what it reads as.
type pageChecked struct {
	tag    [pageTagLen]byte
	signed string
	view   engine.PageView
}

// pageMAC is a reusable HMAC with scratch room for a token.
type pageMAC struct {
	h   hash.Hash
	sum [sha256.Size]byte
	buf []byte
	pl  [pagePayloadMax]byte
}

func newPageTokens(sessionSecret []byte) *pageTokens {
	m := hmac.New(sha256.New, sessionSecret)
	m.Write([]byte(pageKeyLabel))
	return &pageTokens{key: m.Sum(nil)}
}

func (p *pageTokens) get() *pageMAC {
	m, _ := p.macs.Get().(*pageMAC)
	if m == nil {
		m = &pageMAC{h: hmac.New(sha256.New, p.key), buf: make([]byte, 0, pageTokenLenMax)}
	}
	return m
}

// tag returns the tag of signed in m.sum[:pageTagLen].
func (m *pageMAC) tag(signed []byte) []byte {
	m.h.Reset()
	m.h.Write(signed)
	m.h.Sum(m.sum[:0])
	return m.sum[:pageTagLen]
}

// set puts a fresh token for storeID, issued at nowMs, in the answer's
// X-Surge-Page-Token header.
func (p *pageTokens) set(h *fasthttp.ResponseHeader, storeID string, nowMs int64) {
	m := p.get()
	pl := m.pl[:0]
	pl = binary.BigEndian.AppendUint64(pl, uint64(nowMs))
	pl = binary.BigEndian.AppendUint64(pl, rand.Uint64())
	pl = binary.BigEndian.AppendUint64(pl, rand.Uint64())
	pl = append(pl, storeID...)
	b := append(m.buf[:0], pageTokenPrefix...)
	b = base64.RawURLEncoding.AppendEncode(b, pl)
	tag := m.tag(b)
	b = append(b, '.')
	b = base64.RawURLEncoding.AppendEncode(b, tag)
	h.SetCanonical(headerPageToken, b)
	m.buf = b
	p.macs.Put(m)
}

// sign returns a token for storeID issued at nowMs (tests, tools).
func (p *pageTokens) sign(storeID string, nowMs int64) string {
	var h fasthttp.ResponseHeader
	p.set(&h, storeID, nowMs)
	return string(h.PeekBytes(headerPageToken))
}

// read reads a request's token: none, bad, or signed by us (with what it
// says; intern maps the store id onto a kept string without allocating).
func (p *pageTokens) read(tok []byte, intern *interner) engine.PageView {
	if len(tok) == 0 {
		return engine.PageView{}
	}
	bad := engine.PageView{State: engine.PageTokenBad}
	if len(tok) > pageTokenLenMax || string(tok[:min(len(tok), len(pageTokenPrefix))]) != pageTokenPrefix {
		return bad
	}
	last := lastDot(tok)
	if last <= len(pageTokenPrefix) {
		return bad
	}
	signed, tagPart := tok[:last], tok[last+1:]
	var tag [pageTagLen]byte
	if base64.RawURLEncoding.DecodedLen(len(tagPart)) != pageTagLen {
		return bad
	}
	if n, err := b64Strict.Decode(tag[:], tagPart); err != nil || n != pageTagLen {
		return bad
	}
	// A token checked before reads as it did then. The tag is compared in
	// constant time: a slot holds another shopper's token, whose tag a
	// caller must not learn byte by byte.
	slot := &p.checked[binary.LittleEndian.Uint32(tag[:4])%pageCheckedSlots]
	if c := slot.Load(); c != nil && hmac.Equal(c.tag[:], tag[:]) && c.signed == string(signed) {
		return c.view
	}
	m := p.get()
	defer p.macs.Put(m)
	if !hmac.Equal(m.tag(signed), tag[:]) {
		return bad
	}
	enc := signed[len(pageTokenPrefix):]
	if b64Strict.DecodedLen(len(enc)) > len(m.pl) {
		return bad
	}
	n, err := b64Strict.Decode(m.pl[:], enc)
	if err != nil || n <= 8+engine.PageNonceLen {
		return bad
	}
	pl := m.pl[:n]
	v := engine.PageView{State: engine.PageTokenSigned, IssuedMs: int64(binary.BigEndian.Uint64(pl))}
	copy(v.Nonce[:], pl[8:8+engine.PageNonceLen])
	v.StoreID, _ = intern.get(pl[8+engine.PageNonceLen:])
	slot.Store(&pageChecked{tag: tag, signed: string(signed), view: v})
	return v
}
