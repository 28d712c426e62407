package engine

import (
	"context"
	"time"
)

// The risk score (issue 18): the built-in hook adds the weight of every
// signal an attempt raises and denies at or above ScoreDeny. The default
// weights are chosen so that one strong signal (a farm's device, a token
// fired faster than a human clicks, a replayed token, an account younger
// than the sale allows) denies alone, while the weak ones (no token, an
// expired token, a crowded address) deny only together: an API client
// that sends no token is allowed, a household is allowed, but no token
// from an address with too many devices is not.

// Account age signal: the account's first session is more recent than
// the sale's (or the server's) minimum account age.
const RiskReasonAccountYoung = "account_young"

// RiskScoreDenyDefault is the default of RiskConfig.ScoreDeny.
const RiskScoreDenyDefault = 100

// RiskWeights are the weights of the built-in hook's signals. Zero means
// the default (in brackets); a negative weight turns a signal's weight off
// (it is still measured and sent to the webhook).
type RiskWeights struct {
	// DeviceAccounts: more accounts on one device than AccountsPerDevice
	// (100: a farm); graded below it, from DeviceAccountsFree.
	DeviceAccounts int
	// IPDevices: more devices on one address than DevicesPerIP (60:
	// carrier NAT puts many shoppers behind one address); graded below
	// it, from IPDevicesFree.
	IPDevices int
	// PageTokenMissing: no X-Surge-Page-Token on a checkout, a team open
	// or join, or a registration (40: alone it denies nothing).
	PageTokenMissing int
	// FlashPageTokenMissing: no X-Surge-Page-Token on a flash reserve
	// (100: a flash reserve must come from a page view; the storefront
	// hands a token to every shopper's client, and only a script fires
	// without one).
	FlashPageTokenMissing int
	// PageTokenInvalid: malformed, not ours, or of another store (100).
	PageTokenInvalid int
	// PageTokenExpired: older than PageTokenTTL (40: as good as none).
	PageTokenExpired int
	// PageTokenYoung: used within PageTokenMinAge of the page view (100).
	PageTokenYoung int
	// PageTokenReused: used by a second account, or more than
	// PageTokenUses times (100).
	PageTokenReused int
	// AccountYoung: the account is younger than the minimum account age
	// (100: the operator asked for it).
	AccountYoung int
	// FarmShape: a device shared by more than DeviceAccountsFree accounts
	// on an address with more than IPDevicesFree devices (50: with the two
	// graded signals of a farm just under both thresholds, it denies).
	FarmShape int
}

// RiskWeightsDefault are the default weights.
var RiskWeightsDefault = RiskWeights{
	DeviceAccounts:   100,
	IPDevices:        60,
	PageTokenMissing: 40,
	PageTokenInvalid: 100,

	FlashPageTokenMissing: 100,
	PageTokenExpired:      40,
	PageTokenYoung:        100,
	PageTokenReused:       100,
	AccountYoung:          100,
	FarmShape:             50,
}

// withDefaults fills zero weights with their defaults and turns negative
// ones into 0.
func (w RiskWeights) withDefaults() RiskWeights {
	f := func(v *int, def int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = 0
		}
	}
	d := RiskWeightsDefault
	f(&w.DeviceAccounts, d.DeviceAccounts)
	f(&w.IPDevices, d.IPDevices)
	f(&w.PageTokenMissing, d.PageTokenMissing)
	f(&w.FlashPageTokenMissing, d.FlashPageTokenMissing)
	f(&w.PageTokenInvalid, d.PageTokenInvalid)
	f(&w.PageTokenExpired, d.PageTokenExpired)
	f(&w.PageTokenYoung, d.PageTokenYoung)
	f(&w.PageTokenReused, d.PageTokenReused)
	f(&w.AccountYoung, d.AccountYoung)
	f(&w.FarmShape, d.FarmShape)
	return w
}

// weight returns the weight of a signal.
func (w *RiskWeights) weight(signal string) int {
	switch signal {
	case RiskReasonDeviceAccounts:
		return w.DeviceAccounts
	case RiskReasonIPDevices:
		return w.IPDevices
	case RiskReasonPageTokenMissing:
		return w.PageTokenMissing
	case RiskReasonPageTokenInvalid:
		return w.PageTokenInvalid
	case RiskReasonPageTokenExpired:
		return w.PageTokenExpired
	case RiskReasonPageTokenYoung:
		return w.PageTokenYoung
	case RiskReasonPageTokenReused:
		return w.PageTokenReused
	case RiskReasonAccountYoung:
		return w.AccountYoung
	case RiskReasonFarmShape:
		return w.FarmShape
	}
	return 0
}

// riskSignalsMax bounds the signals of one attempt: three linkage
// signals, one page token signal, the account age.
const riskSignalsMax = 5

// riskSignals are what the chain measured of an attempt, for the score
// and the webhook.
type riskSignals struct {
	// DeviceAccounts and IPDevices are the linkage counts (0 when not
	// counted).
	DeviceAccounts int
	IPDevices      int
	// Page is the page token's state: "ok", or its signal; "" when the
	// page token is not judged (PageTokenOff). PageAgeMs and PageUses
	// describe a signed token.
	Page      string
	PageAgeMs int64
	PageUses  int
	// AccountAgeMs is the account's age (-1: unknown, its first session
	// was never recorded or the age was not asked for); MinAccountAgeMs
	// the minimum that applied (0: none).
	AccountAgeMs    int64
	MinAccountAgeMs int64
	// Signals are the signals raised, Score the sum of their weights.
	Signals [riskSignalsMax]string
	N       int
	Score   int
	// Top is the heaviest signal raised (the denial reason), topWeight
	// its weight.
	Top       string
	topWeight int
}

func (s *riskSignals) add(signal string, w *RiskWeights) {
	s.addWeight(signal, w.weight(signal))
}

// addWeight raises signal with weight wt.
func (s *riskSignals) addWeight(signal string, wt int) {
	if s.N == len(s.Signals) {
		panic("BUG: more risk signals than riskSignalsMax")
	}
	s.Signals[s.N] = signal
	s.N++
	s.Score += wt
	if s.Top == "" || wt > s.topWeight {
		s.Top, s.topWeight = signal, wt
	}
}

// list returns the signals raised as a fresh slice (never nil).
func (s *riskSignals) list() []string {
	return append(make([]string, 0, s.N), s.Signals[:s.N]...)
}

// scored reports whether the chain measures any signal at all (otherwise
// Check skips measuring).
func (c *riskChain) scored() bool {
	return c.links != nil || c.pages != nil || c.minAccountAge > 0 || c.webhook != nil
}

// measure raises the signals of in at now.
func (c *riskChain) measure(in *RiskInput, now time.Time) riskSignals {
	sig := riskSignals{AccountAgeMs: -1}
	if c.links != nil {
		sig.DeviceAccounts, sig.IPDevices = c.links.check(in, now)
		c.links.score(&sig, &c.weights)
	}
	if c.pages != nil {
		var page string
		page, sig.PageAgeMs, sig.PageUses = c.judgePage(in, now)
		if page == "" {
			sig.Page = "ok"
		} else {
			sig.Page = page
			if page == RiskReasonPageTokenMissing && in.Route == "flash_reserve" {
				sig.addWeight(page, c.weights.FlashPageTokenMissing)
			} else {
				sig.add(page, &c.weights)
			}
		}
	}
	minAge := c.minAccountAgeOf(in)
	sig.MinAccountAgeMs = minAge.Milliseconds()
	if in.AccountFirstSeenMs > 0 {
		sig.AccountAgeMs = max(0, now.UnixMilli()-in.AccountFirstSeenMs)
		if minAge > 0 && sig.AccountAgeMs < sig.MinAccountAgeMs {
			sig.add(RiskReasonAccountYoung, &c.weights)
		}
	}
	return sig
}

// minAccountAgeOf is the minimum account age that applies to in: the
// sale's own, else the hook's default.
func (c *riskChain) minAccountAgeOf(in *RiskInput) time.Duration {
	if in.MinAccountAge > 0 {
		return in.MinAccountAge
	}
	return c.minAccountAge
}

// accountAger is implemented by hooks that judge an account's age: the
// engine then looks up the account's first session for them (one read per
// user and node; the answer is cached).
type accountAger interface {
	wantsAccountAge(in *RiskInput) bool
}

// wantsAccountAge: the chain needs the account's age when a minimum
// applies, or to tell the webhook.
func (c *riskChain) wantsAccountAge(in *RiskInput) bool {
	return c.minAccountAgeOf(in) > 0 || c.webhook != nil
}

var _ accountAger = (*riskChain)(nil)

// withAccountAge fills in.AccountFirstSeenMs when the hook wants it.
func (e *Engine) withAccountAge(ctx context.Context, in *RiskInput) error {
	ag, ok := e.risk.(accountAger)
	if !ok || !ag.wantsAccountAge(in) {
		return nil
	}
	ms, err := e.accountFirstSeen(ctx, in.UserID)
	if err != nil {
		return err
	}
	in.AccountFirstSeenMs = ms
	return nil
}
