package engine

import "context"

// RiskInput is what the risk hook sees of one reserving attempt.
type RiskInput struct {
	Attempt
	SaleID  string // flash sale or group deal id, "" for checkout
	StoreID string
	// UserHeld is how many units of this sale the user holds or bought so
	// far (as far as the engine knows cheaply).
	UserHeld int64
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
