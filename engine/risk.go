package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// RiskInput is what the risk hook sees of one reserving attempt.
type RiskInput struct {
	Attempt
	SaleID  string // flash sale or group deal id, "" for checkout
	StoreID string
	// UserHeld is how many units of this sale the user holds or bought so
	// far (as far as the engine knows cheaply).
	UserHeld int64
	// MinAccountAge is the sale's minimum account age (0: the hook's
	// default applies).
	MinAccountAge time.Duration
	// AccountFirstSeenMs is when the user's first session was issued
	// (Unix ms; 0 when unknown or not asked for: the engine looks it up
	// only for hooks that judge account age).
	AccountFirstSeenMs int64
}

// Verdict is a risk hook's answer.
type Verdict struct {
	Allow  bool
	Reason string // why not, e.g. "rate_user", "blocklist", "no_device"
}

// RiskHook is called before every reserve, join and checkout. It must be
// safe for concurrent use and answer quickly.
type RiskHook interface {
	Check(ctx context.Context, in RiskInput) Verdict
}

// checkRisk asks the risk hook and counts denials by reason.
func (e *Engine) checkRisk(ctx context.Context, in RiskInput) error {
	var v Verdict
	if c, ok := e.risk.(*riskChain); ok {
		// The built-in hook, called as itself: in stays on the stack (an
		// interface call taking &in would move it to the heap every time).
		if c.wantsAccountAge(&in) {
			ms, err := e.accountFirstSeen(ctx, in.UserID)
			if err != nil {
				return err
			}
			in.AccountFirstSeenMs = ms
		}
		v = c.Check(ctx, in)
	} else if _, ok := e.risk.(accountAger); !ok {
		v = e.risk.Check(ctx, in)
	} else {
		other := in
		if err := e.withAccountAge(ctx, &other); err != nil {
			return err
		}
		v = e.risk.Check(ctx, other)
	}
	if v.Allow {
		return nil
	}
	reason := v.Reason
	if reason == "" {
		reason = "denied"
	}
	e.riskMu.Lock()
	if _, ok := e.riskDenials[reason]; !ok && len(e.riskDenials) >= riskReasonsMax {
		reason = "other"
	}
	e.riskDenials[reason]++
	e.riskMu.Unlock()
	// A token bucket that ran dry is a rate limit, not a verdict on the
	// buyer: API.md answers it 429/42900 with Retry-After, so a real buyer
	// who clicked too fast knows to try again.
	if reason == RiskReasonRateUser || reason == RiskReasonRateIP {
		return fmt.Errorf("%w: %s", ErrThrottled, reason)
	}
	return &RiskError{Reason: reason}
}

// checkUserGuide checks the caller and the guide a sale is credited to: a
// guide works in one store, so a guide of another store would credit the
// sale to someone who did not make it (a stale or forged share card).
func (e *Engine) checkUserGuide(userID, guideID, storeID string) error {
	if userID == "" || len(userID) > inventory.IDLenMax {
		return fmt.Errorf("%w: missing or oversized user id", ErrInvalid)
	}
	if guideID != "" {
		g, ok := e.catalog.Load().guides[guideID]
		if !ok {
			return fmt.Errorf("%w: unknown guide %q", ErrInvalid, guideID)
		}
		if storeID != "" && g.StoreID != storeID {
			return fmt.Errorf("%w: guide %q works in store %q, not %q", ErrInvalid, guideID, g.StoreID, storeID)
		}
	}
	return nil
}
