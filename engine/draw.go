package engine

import (
	"container/heap"
	"encoding/hex"
	"sort"
)

// The draw (抽签) of a sale with registration, written so that anyone can
// re-run it from the published seed and the registrant list:
//
//	digest(u) = hex(HMAC-SHA256(key = draw_seed, message = user_id))
//
// and the winners are the draw_quantity registrants with the smallest
// digests (compared as lowercase hex strings; equal digests, which SHA-256
// does not produce in practice, by user id). A draw_quantity of 0, or one
// at least the number of registrants, admits every registrant. `surge
// draw` runs it over a list.

// DrawDigest is a registrant's draw digest: HMAC-SHA256 keyed with the
// seed over the user id, as lowercase hex.
// It is the lottery window's rank (lotteryRank) in hex, so both draws
// order users alike: hex order is byte order.
func DrawDigest(seed, userID string) string {
	r := lotteryRank(seed, userID)
	return hex.EncodeToString(r[:])
}

// Draw returns the winners of a draw among registrants (a user listed
// twice counts once), in the order of their digests: all of them when
// quantity <= 0 or there are no more than quantity.
func Draw(seed string, registrants []string, quantity int64) []string {
	p := newDrawPicker(seed, quantity)
	seen := make(map[string]struct{}, len(registrants))
	for _, u := range registrants {
		if _, dup := seen[u]; dup {
			continue
		}
		seen[u] = struct{}{}
		p.add(u)
	}
	out := make([]string, len(p.h))
	for i, c := range p.sorted() {
		out[i] = c.user
	}
	return out
}

// drawEntry is one registrant with its digest.
type drawEntry struct{ digest, user string }

func (a drawEntry) less(b drawEntry) bool {
	return a.digest < b.digest || a.digest == b.digest && a.user < b.user
}

// drawHeap is a max-heap: the root is the greatest of the winners so far.
type drawHeap []drawEntry

func (h drawHeap) Len() int           { return len(h) }
func (h drawHeap) Less(i, j int) bool { return h[j].less(h[i]) }
func (h drawHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *drawHeap) Push(x any)        { *h = append(*h, x.(drawEntry)) }
func (h *drawHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// drawPicker keeps the quantity smallest digests seen (every one when
// quantity <= 0) in O(quantity) memory; each registrant must be added once.
type drawPicker struct {
	seed     string
	quantity int64
	h        drawHeap
	n        int64 // registrants added
}

func newDrawPicker(seed string, quantity int64) *drawPicker {
	return &drawPicker{seed: seed, quantity: quantity}
}

func (p *drawPicker) add(user string) {
	p.n++
	c := drawEntry{DrawDigest(p.seed, user), user}
	if p.quantity <= 0 || int64(len(p.h)) < p.quantity {
		heap.Push(&p.h, c)
		return
	}
	if c.less(p.h[0]) {
		p.h[0] = c
		heap.Fix(&p.h, 0)
	}
}

// cutoff is the greatest winner, and whether the draw left anyone out
// (false: every registrant won, there is no cutoff).
func (p *drawPicker) cutoff() (drawEntry, bool) {
	if p.quantity <= 0 || p.n <= p.quantity || len(p.h) == 0 {
		return drawEntry{}, false
	}
	return p.h[0], true
}

// sorted returns the winners in digest order (it reorders the heap).
func (p *drawPicker) sorted() []drawEntry {
	s := append([]drawEntry(nil), p.h...)
	sort.Slice(s, func(i, j int) bool { return s[i].less(s[j]) })
	return s
}
