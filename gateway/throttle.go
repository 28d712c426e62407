package gateway

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failBuckets counts failures per client address in token buckets
// (x/time/rate): a client may fail burst times at once, then once per
// every interval; past that, it is refused at once. Only failures take a
// token, so a client that does not fail is never held back. At most max
// addresses are tracked; a new one past that evicts an arbitrary other.
type failBuckets struct {
	mu    sync.Mutex
	m     map[string]*rate.Limiter
	max   int
	every rate.Limit
	burst int
	now   func() time.Time
}

func newFailBuckets(perSecond float64, burst, max int, now func() time.Time) *failBuckets {
	return &failBuckets{m: make(map[string]*rate.Limiter), max: max, every: rate.Limit(perSecond), burst: burst, now: now}
}

// blocked reports whether ip has no failure left right now.
func (b *failBuckets) blocked(ip string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.m[ip]
	return l != nil && l.TokensAt(b.now()) < 1
}

// fail takes one failure from ip's bucket.
func (b *failBuckets) fail(ip string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.m[ip]
	if l == nil {
		if len(b.m) >= b.max {
			for k := range b.m {
				delete(b.m, k)
				break
			}
		}
		l = rate.NewLimiter(b.every, b.burst)
		b.m[ip] = l
	}
	l.AllowN(b.now(), 1)
}
