package inventory

import (
	"sync"
	"time"
)

// Internal record states besides the public ones.
const (
	statePending State = 0   // being created; its creator holds mu
	stateFailed  State = 255 // creation failed; removed from the map
)

// record is one reservation. Its immutable fields are set before it is
// published; state and refunded change only under mu.
type record struct {
	mu        sync.Mutex
	state     State
	refunded  bool
	id        string
	user      string
	lines     []Line
	pools     []*pool
	meta      []byte
	createdMs int64
	expiresMs int64
	// Inline storage for the common single-line reservation, so creating
	// one does not allocate beyond the shard's slab.
	line0 [1]Line
	pool0 [1]*pool
}

// view returns the reservation. Lines and Meta are shared with the store
// and must not be modified. Requires mu.
func (r *record) view() Reservation {
	return Reservation{
		ID:        r.id,
		User:      r.user,
		Lines:     r.lines,
		State:     r.state,
		Meta:      r.meta,
		CreatedAt: time.UnixMilli(r.createdMs),
		ExpiresAt: time.UnixMilli(r.expiresMs),
		Refunded:  r.refunded,
	}
}

const (
	recShards   = 128
	recSlabSize = 128
)

// recShard holds the records whose id hashes to it, and the expiry heap of
// those records.
type recShard struct {
	mu   sync.Mutex
	m    map[string]*record
	exp  expHeap
	slab []record
	_    [64]byte
}

// alloc returns a zeroed record from the slab. Requires mu.
func (s *recShard) alloc() *record {
	if len(s.slab) == 0 {
		s.slab = make([]record, recSlabSize)
	}
	r := &s.slab[0]
	s.slab = s.slab[1:]
	return r
}

type expEntry struct {
	ms  int64
	rec *record
}

// expHeap is a min-heap of expiry times. It holds an entry per record
// created in the shard until the entry's time passes and Expire pops it.
type expHeap []expEntry

func (h *expHeap) push(e expEntry) {
	*h = append(*h, e)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].ms <= s[i].ms {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *expHeap) pop() expEntry {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s[n] = expEntry{}
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r].ms < s[l].ms {
			m = r
		}
		if s[i].ms <= s[m].ms {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
