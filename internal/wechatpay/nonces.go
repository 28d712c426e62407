package wechatpay

import (
	"container/heap"
	"fmt"
	"sync"
	"time"
)

// nonceSet remembers the nonces of accepted notifications until their
// timestamps leave the window, when a replay would be refused as stale
// anyway. It holds at most max live nonces.
//
// When it is full it refuses the new notification (ErrNoncesFull) rather
// than forget a live nonce: forgetting would reopen a replay, while a
// refusal only delays a payment, because WeChat Pay retries a notification
// that is not answered 2xx (15s, 15s, 30s, 3m, ...), by then with nonces
// expired. Only notifications whose signature verified get here, so an
// attacker without WeChat Pay's key cannot fill it: replays of real
// notifications are already in it and take no room.
type nonceSet struct {
	mu     sync.Mutex
	max    int
	seen   map[string]struct{}
	expiry expiryHeap // the same nonces, soonest expiry first
}

type nonceExpiry struct {
	nonce    string
	deadline int64 // unix nanoseconds after which the nonce is forgotten
}

type expiryHeap []nonceExpiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(nonceExpiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nonceExpiry{}
	*h = old[:len(old)-1]
	return x
}

func newNonceSet(max int) *nonceSet {
	return &nonceSet{max: max, seen: make(map[string]struct{})}
}

// add records nonce until deadline, first forgetting the nonces whose
// deadline is before now. It fails with ErrReplayedNonce when nonce is
// remembered, and with ErrNoncesFull when max nonces are live.
func (s *nonceSet) add(nonce string, deadline, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	nowNs := now.UnixNano()
	for len(s.expiry) > 0 && s.expiry[0].deadline < nowNs {
		e := heap.Pop(&s.expiry).(nonceExpiry)
		delete(s.seen, e.nonce)
	}
	if _, ok := s.seen[nonce]; ok {
		return ErrReplayedNonce
	}
	if len(s.seen) >= s.max {
		return fmt.Errorf("%w: %d live nonces", ErrNoncesFull, len(s.seen))
	}
	s.seen[nonce] = struct{}{}
	heap.Push(&s.expiry, nonceExpiry{nonce: nonce, deadline: deadline.UnixNano()})
	return nil
}

// len returns how many nonces are remembered.
func (s *nonceSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}
