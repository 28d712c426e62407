package engine

import (
	"context"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	"github.com/surge-retail/surge/internal/coarseclock"
)

// An account's first-seen time (issue 18): when its first session was
// issued, for the minimum account age of a sale. It is one small record
// per user in the engine's records (so every node sharing Redis agrees),
// written once by the first login (put-if-absent) and never changed. On
// Redis it lives under one of accountTagsLen hash tags picked by the user
// id, so logins spread over a cluster's slots instead of meeting in one.
// Each node caches what it read (bounded, least recently used forgotten):
// a user costs one read per node, the first time the age is asked. The
// cache is a touchMap: every reserve asks it, and a hit takes no lock.

const (
	// MinAccountAgeSecondsMax bounds a sale's min_account_age_seconds (a
	// year).
	MinAccountAgeSecondsMax = 366 * 24 * 3600
	// accountTagsLen is how many hash tags the account records spread over.
	accountTagsLen = 256
	// accountsCachedMax bounds the first-seen times cached per node.
	accountsCachedMax = 200_000
	// accountUnknownFor is how long a node remembers that a user has no
	// record (a session issued before first-seen times were kept) before
	// reading again.
	accountUnknownFor = time.Minute
)

// accountKey is the record key of a user's first-seen time, and its tag.
func accountKey(userID string) (tag, key string) {
	h := crc32.ChecksumIEEE([]byte(userID)) % accountTagsLen
	return "acct" + strconv.FormatUint(uint64(h), 16), "acct/" + userID
}

// AccountSeen records that userID was issued a session now, if none was
// recorded before, and returns the account's first-seen time. The first
// call wins, on every node sharing the records.
func (e *Engine) AccountSeen(ctx context.Context, userID string) (time.Time, error) {
	if !ValidUserID(userID) {
		return time.Time{}, fmt.Errorf("%w: invalid user id", ErrInvalid)
	}
	if ms, ok := e.accounts.Get(userID, e.accountsStamp()); ok && ms > 0 {
		return time.UnixMilli(ms), nil
	}
	nowMs := e.now().UnixMilli()
	tag, key := accountKey(userID)
	won, err := e.tagged.PutIfAbsentTagged(ctx, tag, key, strconv.AppendInt(nil, nowMs, 10))
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: cannot record the account's first session: %w", ErrUnavailable, err)
	}
	if won {
		e.accounts.Add(userID, nowMs, e.accountsStamp())
		return time.UnixMilli(nowMs), nil
	}
	ms, err := e.readFirstSeen(ctx, userID)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(ms), nil
}

// accountFirstSeen returns when userID's first session was issued (Unix
// ms), or 0 when none was recorded.
func (e *Engine) accountFirstSeen(ctx context.Context, userID string) (int64, error) {
	if ms, ok := e.accounts.Get(userID, e.accountsStamp()); ok {
		if ms > 0 {
			return ms, nil
		}
		if e.now().UnixMilli()+ms < accountUnknownFor.Milliseconds() {
			return 0, nil // known to be unknown, a little while ago
		}
	}
	return e.readFirstSeen(ctx, userID)
}

// readFirstSeen reads userID's record into the cache (an absent record is
// cached as minus the time it was read).
func (e *Engine) readFirstSeen(ctx context.Context, userID string) (int64, error) {
	tag, key := accountKey(userID)
	b, ok, err := e.tagged.GetTagged(ctx, tag, key)
	if err != nil {
		return 0, fmt.Errorf("%w: cannot read the account's first session: %w", ErrUnavailable, err)
	}
	if !ok {
		e.accounts.Add(userID, -e.now().UnixMilli(), e.accountsStamp())
		return 0, nil
	}
	ms, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || ms <= 0 {
		return 0, fmt.Errorf("%w: account record of %q is %q", ErrUnavailable, userID, b)
	}
	e.accounts.Add(userID, ms, e.accountsStamp())
	return ms, nil
}

// accountsStamp is the cache's last-used stamp: now, in seconds (the unit
// of pruneAccounts). The engine's own clock unless it is the default
// (time.Now), whose cost on a VM the coarse clock saves every reserve.
func (e *Engine) accountsStamp() int64 {
	if e.coarseNow {
		return coarseclock.UnixMilli() / 1000
	}
	return e.now().Unix()
}
