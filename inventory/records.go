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
	hash      uint64  // of id, under Memory.recSeed
	next      *record // next record of the same hash in its shard
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
// those records. The map is keyed by the id's 64-bit hash (computed once per
// call, also to pick the shard), with records of equal hashes chained.
type recShard struct {
	mu   sync.Mutex
	m    map[uint64]*record
	exp  expHeap
	slab []record
	_    [64]byte
}

// get returns the record of id (with hash h), or nil. Requires mu.
func (s *recShard) get(h uint64, id string) *record {
	return chainFind(s.m[h], id)
}

func chainFind(r *record, id string) *record {
	for ; r != nil; r = r.next {
		if r.id == id {
			return r
		}
	}
	return nil
}

// put adds rec, whose id is absent. Requires mu.
func (s *recShard) put(rec *record) {
	rec.next = s.m[rec.hash]
	s.m[rec.hash] = rec
}

// del removes rec if present. Requires mu.
func (s *recShard) del(rec *record) {
	head := s.m[rec.hash]
	if head == rec {
		if rec.next == nil {
			delete(s.m, rec.hash)
		} else {
			s.m[rec.hash] = rec.next
		}
		return
	}
	for r := head; r != nil; r = r.next {
		if r.next == rec {
			r.next = rec.next
			return
		}
	}
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
