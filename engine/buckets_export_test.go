package engine

import "context"

// Hooks of the buckets' tests (package engine_test).

// SetBucketFault makes every transfer between buckets stop after its
// first step with f's error (nil f: no fault), as if the node died there.
func SetBucketFault(e *Engine, f func(from, to string) error) { e.bucketFault = f }

// SaleBuckets returns a sale's bucket pools (nil for one bucket) and the
// index of user's home bucket.
func SaleBuckets(e *Engine, saleID, user string) ([]string, int) {
	s := e.flash(context.Background(), saleID)
	if s == nil {
		return nil, -1
	}
	return s.pools, s.home(user)
}
