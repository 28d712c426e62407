package engine

import (
	"fmt"
	"sync"
)

// A bound on the idempotency keys a user makes the records keep: after
// NewKeysPerSecond new keys of one user within one second (of the
// Idempotency clock), a call with yet another new key is refused with
// ErrThrottled (429 / 42900 with Retry-After) before anything is written.
// A key already kept (a retry) is never counted nor refused. The flash
// reserve and the checkout keep no separate answer (their reservation is
// the key's answer), so they are bounded by the per-user rate of the risk
// hook as unkeyed reserves are; this bound is for the calls whose answers
// the records keep (opening and joining a team).

const (
	// NewKeysPerSecondDefault is IdempotencyOptions.NewKeysPerSecond's
	// default.
	NewKeysPerSecondDefault = 10
	// newKeyUsersMax bounds the users counted in one second; past it,
	// further users of that second are not counted (the risk hook's
	// per-user rate still holds them).
	newKeyUsersMax = 100_000
)

// ErrTooManyKeys refuses a new Idempotency-Key over the per-user bound. It
// is an ErrThrottled.
var ErrTooManyKeys = fmt.Errorf("%w: too many new Idempotency-Keys from this user in one second", ErrThrottled)

// newKeyLimit counts new keys per user in the current second.
type newKeyLimit struct {
	max int // <= 0: no bound

	mu     sync.Mutex
	second int64
	counts map[string]int
}

// take counts a new key of user at unix second sec, or refuses it.
func (l *newKeyLimit) take(user string, sec int64) error {
	if l.max <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if sec != l.second || l.counts == nil {
		// A new second: every count starts again (the map is dropped, so
		// its memory follows the users of the last second only).
		l.second = sec
		l.counts = make(map[string]int)
	}
	n, ok := l.counts[user]
	if !ok && len(l.counts) >= newKeyUsersMax {
		return nil
	}
	if n >= l.max {
		return ErrTooManyKeys
	}
	l.counts[user] = n + 1
	return nil
}
