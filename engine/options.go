package engine

import (
	"time"

	"github.com/surge-retail/surge/inventory"
)

// Options configures an Engine. The zero value of each field means its
// documented default; Store is required.
type Options struct {
	// Store holds stock pools and reservations. Required.
	Store inventory.Store
	// Dir is where the engine keeps its own durable records (catalog,
	// sales, deals, teams, idempotency records, orders) in Pebble. "" keeps
	// them in memory (tests, the memory backend).
	Dir string
	// RedisAddr, when set, keeps the shared records (catalog, sales, deals,
	// teams) in Redis so that several nodes see the same state.
	RedisAddr string
	// Risk is called before every reserve, join and checkout. Default: allow.
	Risk RiskHook
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// SweepInterval is how often held reservations past their deadline are
	// released and team deadlines decided. Default 1s.
	SweepInterval time.Duration
}
