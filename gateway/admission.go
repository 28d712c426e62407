package gateway

import (
	"sync/atomic"
)

// Admission control (law 9): nothing waits. A request either gets a slot at
// once or is answered 429/503 with Retry-After.

// semaphore is a non-blocking counting semaphore. Its bound may move
// (adaptive.go); lowering it sheds new requests, never those in flight.
type semaphore struct {
	n   atomic.Int64
	max atomic.Int64
}

func newSemaphore(max int) *semaphore {
	s := &semaphore{}
	s.max.Store(int64(max))
	return s
}

// tryAcquire takes a slot, or reports false without waiting.
func (s *semaphore) tryAcquire() bool {
	if s.n.Add(1) > s.max.Load() {
		s.n.Add(-1)
		return false
	}
	return true
}

// limit is the bound in force.
func (s *semaphore) limit() int64 { return s.max.Load() }

// setLimit moves the bound.
func (s *semaphore) setLimit(max int64) { s.max.Store(max) }

func (s *semaphore) release() { s.n.Add(-1) }

// reclaim takes back a slot given back with release, without the bound: a
// lottery entrant (lottery.go) gives its slot back while it waits and
// takes it again for its reserve, which its lottery bounds.
func (s *semaphore) reclaim() { s.n.Add(1) }

// inflight returns the slots taken.
func (s *semaphore) inflight() int64 { return s.n.Load() }

// Shed reasons: indexes of shedReasons, whose names label
// surge_gateway_sheds_total and key the "sheds" object of /admin/v1/stats.
const (
	shedReads    = iota // route class reads over its in-flight bound (503)
	shedWrites          // route class writes over its in-flight bound (503)
	shedAdmin           // admin and feed over their in-flight bound (503)
	shedSaleGate        // a sale's admission gate is full (429; engine.Options.SaleAdmitFactor)
	shedSoldOut         // sold out or not active, answered from memory
	shedSessions        // route class sessions over its in-flight bound (503)
	shedPays            // route class pays over its in-flight bound (503)
	shedLottery         // a sale's lottery queue is full (429; engine.Options.LotteryQueueMax)
	shedReasonsLen
)

var shedReasons = [shedReasonsLen]string{"inflight_reads", "inflight_writes", "inflight_admin", "sale_gate", "sold_out_gate",
	"inflight_sessions", "inflight_pays", "lottery_queue"}

// classShed is the shed reason of each route class.
var classShed = [classesLen]int{classReads: shedReads, classWrites: shedWrites, classAdmin: shedAdmin,
	classSessions: shedSessions, classPays: shedPays}
