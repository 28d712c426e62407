package gateway

import (
	"sync"
	"sync/atomic"
)

// Admission control (law 9): nothing waits. A request either gets a slot at
// once or is answered 429/503 with Retry-After.

// semaphore is a non-blocking counting semaphore.
type semaphore struct {
	n   atomic.Int64
	max int64
}

func newSemaphore(max int) *semaphore { return &semaphore{max: int64(max)} }

// tryAcquire takes a slot, or reports false without waiting.
func (s *semaphore) tryAcquire() bool {
	if s.n.Add(1) > s.max {
		s.n.Add(-1)
		return false
	}
	return true
}

func (s *semaphore) release() { s.n.Add(-1) }

// inflight returns the slots taken.
func (s *semaphore) inflight() int64 { return s.n.Load() }

// Shed reasons: indexes of shedReasons, whose names label
// surge_gateway_sheds_total and key the "sheds" object of /admin/v1/stats.
const (
	shedReads    = iota // route class reads over its in-flight bound (503)
	shedWrites          // route class writes over its in-flight bound (503)
	shedAdmin           // admin and feed over their in-flight bound (503)
	shedSaleGate        // more than factor x remaining reserve calls of a sale (429)
	shedSoldOut         // sold out, answered 40900 from memory
	shedReasonsLen
)

var shedReasons = [shedReasonsLen]string{"inflight_reads", "inflight_writes", "inflight_admin", "sale_gate", "sold_out_gate"}

// classShed is the shed reason of each route class.
var classShed = [4]int{classReads: shedReads, classWrites: shedWrites, classAdmin: shedAdmin}

// saleGatesMax bounds the per-sale gates kept; sales beyond it are admitted
// by the route class semaphore only.
const saleGatesMax = 16 << 10

// saleGates bounds the reserve calls of each sale in flight to
// factor x remaining.
type saleGates struct {
	factor int64
	mu     sync.RWMutex
	gates  map[string]*atomic.Int64
}

func newSaleGates(factor int) *saleGates {
	return &saleGates{factor: int64(factor), gates: make(map[string]*atomic.Int64)}
}

// gate returns the counter of a sale (nil when saleGatesMax is reached).
func (g *saleGates) gate(sale string) *atomic.Int64 {
	g.mu.RLock()
	c := g.gates[sale]
	g.mu.RUnlock()
	if c != nil {
		return c
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if c = g.gates[sale]; c != nil {
		return c
	}
	if len(g.gates) >= saleGatesMax {
		return nil
	}
	c = new(atomic.Int64)
	g.gates[sale] = c
	return c
}

// admit takes a slot of the sale given its remaining units; release must
// be called with the returned counter when ok (it may be nil).
func (g *saleGates) admit(sale string, remaining int64) (c *atomic.Int64, ok bool) {
	c = g.gate(sale)
	if c == nil {
		return nil, true
	}
	limit := remaining * g.factor
	if remaining > (1<<62)/g.factor {
		limit = 1 << 62
	}
	if c.Add(1) > limit {
		c.Add(-1)
		return nil, false
	}
	return c, true
}

// gateSlot is a taken slot of a sale gate; nil when none was taken.
type gateSlot atomic.Int64

func (g *gateSlot) release() {
	if g != nil {
		(*atomic.Int64)(g).Add(-1)
	}
}
