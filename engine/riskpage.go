package engine

import (
	"hash/maphash"
	"sync/atomic"
	"time"
)

// The page-view token (issue 18): the storefront routes hand out a short
// signed token (X-Surge-Page-Token) that a reserve carries back. The
// gateway checks its signature and hands what it says to the engine as a
// PageView; the built-in risk hook judges it: missing, invalid (forged, or
// of another store), expired, too young (no human reserves within
// PageTokenMinAge of seeing the page) or reused (by another account, or
// more than PageTokenUses times). Reuse is remembered per node, in a
// bounded set: a token replayed on another node is seen there afresh.

// PageTokenState says what a reserve's page token is, as the gateway read it.
type PageTokenState uint8

// Page token states. The zero value is "no token".
const (
	// PageTokenNone: the request carried no token.
	PageTokenNone PageTokenState = iota
	// PageTokenBad: a token that is malformed or not signed by us.
	PageTokenBad
	// PageTokenSigned: a token signed by us (with the shared session
	// secret, so by any node); the hook still judges its age, store and
	// reuse.
	PageTokenSigned
)

// PageNonceLen is the length of a page token's random nonce (bytes).
const PageNonceLen = 16

// PageView is a reserve's page-view token as the gateway read it. The
// zero value is "no token".
type PageView struct {
	State PageTokenState
	// IssuedMs is when the page was served (Unix ms, the issuing node's
	// clock); StoreID the store whose page it was; Nonce its random
	// identity. Set only when State is PageTokenSigned.
	IssuedMs int64
	StoreID  string
	Nonce    [PageNonceLen]byte
}

// Page token signals (also the denial reasons when one is the heaviest
// signal of a denied attempt).
const (
	RiskReasonPageTokenMissing = "page_token_missing"
	RiskReasonPageTokenInvalid = "page_token_invalid"
	RiskReasonPageTokenExpired = "page_token_expired"
	RiskReasonPageTokenYoung   = "page_token_young"
	RiskReasonPageTokenReused  = "page_token_reused"
)

// Defaults of the page token settings of RiskConfig.
const (
	RiskPageTokenTTLDefault    = 10 * time.Minute
	RiskPageTokenMinAgeDefault = 300 * time.Millisecond
	RiskPageTokenUsesDefault   = 5
)

// pageTokenSkewMax is how far in the future (another node's clock) a
// token's issue time may be before the token is invalid.
const pageTokenSkewMax = time.Minute

// pageUse is what a node remembers of one token: the account that used it
// first (a hash) and how many attempts carried it.
type pageUse struct {
	user uint64
	uses atomic.Int32
}

// pageSeen remembers the tokens reserves carried, least recently used
// forgotten past KeysMax (a token is only worth remembering for its TTL;
// older ones are expired anyway).
type pageSeen struct {
	seed  maphash.Seed
	users *touchMap[[PageNonceLen]byte, *pageUse]
}

func newPageSeen(keysMax int) *pageSeen {
	return &pageSeen{seed: maphash.MakeSeed(), users: newTouchMap[[PageNonceLen]byte, *pageUse](keysMax)}
}

// use counts one attempt of userID at nowMs with the token of nonce and
// returns the uses so far (this one included) and whether another account
// used it first.
func (p *pageSeen) use(nonce *[PageNonceLen]byte, userID string, nowMs int64) (uses int, other bool) {
	h := maphash.String(p.seed, userID)
	u := p.users.GetOrAdd(*nonce, nowMs, func() *pageUse { return &pageUse{user: h} })
	return int(u.uses.Add(1)), u.user != h
}

// judgePage is the page token's signal of an attempt ("" when the token
// is good), its age (ms, 0 without a signed token) and its uses so far.
func (c *riskChain) judgePage(in *RiskInput, now time.Time) (signal string, ageMs int64, uses int) {
	p := &in.Page
	switch p.State {
	case PageTokenNone:
		return RiskReasonPageTokenMissing, 0, 0
	case PageTokenSigned:
	default:
		return RiskReasonPageTokenInvalid, 0, 0
	}
	ageMs = now.UnixMilli() - p.IssuedMs
	if p.StoreID != in.StoreID || ageMs < -pageTokenSkewMax.Milliseconds() {
		return RiskReasonPageTokenInvalid, ageMs, 0
	}
	if ageMs > c.pageTTL.Milliseconds() {
		return RiskReasonPageTokenExpired, ageMs, 0
	}
	uses, other := c.pages.use(&p.Nonce, in.UserID, now.UnixMilli())
	switch {
	case other || uses > c.pageUses:
		return RiskReasonPageTokenReused, ageMs, uses
	case ageMs < c.pageMinAge.Milliseconds():
		return RiskReasonPageTokenYoung, ageMs, uses
	}
	return "", ageMs, uses
}

// JudgesPageViews reports whether the risk hook reads an attempt's page
// view (Attempt.Page): false only for the built-in hook with its page
// token off (risk.page_token_off), which neither judges a token nor sends
// its state to the webhook. The gateway then leaves the token unchecked.
func (e *Engine) JudgesPageViews() bool {
	if c, ok := e.risk.(*riskChain); ok {
		return c.pages != nil
	}
	return e.risk != nil
}
