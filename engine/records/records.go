package records

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// Records is a small durable key/value store for the engine's own records
// (catalog, sales, deals, teams, idempotency records, orders). Keys are
// strings, values opaque bytes; a value handed in is copied, a value handed
// out belongs to the caller. Every write is durable when it returns (Pebble:
// synced WAL, shared between concurrent writers by group commit; Redis: as
// durable as the server's persistence is configured). All methods are safe
// for concurrent use, and every single-key method is linearizable.
type Records interface {
	// Get returns the value of key; ok is false when it is absent.
	Get(ctx context.Context, key string) (val []byte, ok bool, err error)
	// Put writes key durably.
	Put(ctx context.Context, key string, val []byte) error
	// PutBatch writes all kvs atomically and durably. A key written twice
	// in kvs keeps the last value.
	PutBatch(ctx context.Context, kvs []KV) error
	// PutIfAbsent writes key only when it is absent and reports whether it
	// wrote. Exactly one of many concurrent callers wins, also across nodes
	// sharing Redis records.
	PutIfAbsent(ctx context.Context, key string, val []byte) (bool, error)
	// CompareAndSwap replaces old by new when key holds old and reports
	// whether it swapped. old == nil means "key is absent"; an empty non-nil
	// old means "key holds the empty value".
	CompareAndSwap(ctx context.Context, key string, old, new []byte) (bool, error)
	// Delete removes key; removing an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// Scan calls fn for every key starting with prefix, in ascending byte
	// order of keys. fn may call the Records' other methods; keys written
	// during the scan may or may not be seen. An error from fn stops the scan
	// and is returned as is.
	Scan(ctx context.Context, prefix string, fn func(key string, val []byte) error) error
	// Close releases the store; later calls return ErrRecordsClosed.
	Close() error
}

// KV is one key and value of a batch.
type KV struct {
	Key string
	Val []byte
}

// Sentinel errors.
var (
	// ErrClosed is returned by Records used after Close.
	ErrClosed = errors.New("records: closed")
	// ErrInvalid is returned for a key or batch out of bounds.
	ErrInvalid = errors.New("records: invalid")
	// ErrUnavailable is returned when the backend cannot be asked (Redis
	// down, a failed disk): the caller cannot tell present from absent.
	ErrUnavailable = errors.New("records: unavailable")
)

// KeyLenMax bounds the length of a record key (bytes).
const KeyLenMax = 1024

// BatchMax bounds the number of entries of one PutBatch.
const BatchMax = 16384

// errRecordKey is returned for an empty or oversized key.
var errRecordKey = fmt.Errorf("%w: record key empty or longer than %d bytes", ErrInvalid, KeyLenMax)

// CountedBatcher is implemented by this package's Records: an atomic,
// durable batch that also counts how many of the keys in counted did not
// exist before it, adding that number to the decimal counter in counterKey.
// The order store uses it to keep an exact all-time count under
// idempotent re-upserts, also across nodes.
type CountedBatcher interface {
	PutBatchCounted(ctx context.Context, kvs []KV, counted []string, counterKey string) (added int64, err error)
}

// RangeScanner is implemented by this package's Records: Scan from a
// position. ScanFrom calls fn for every key starting with prefix that is
// not less than from, in ascending byte order, as Scan does; the order
// store's paged listings start each page there instead of at the prefix.
type RangeScanner interface {
	ScanFrom(ctx context.Context, prefix, from string, fn func(key string, val []byte) error) error
}

// ScanFrom is rec's ScanFrom when it is a RangeScanner; with Records of
// another package it scans the whole prefix and skips the keys before from.
func ScanFrom(ctx context.Context, rec Records, prefix, from string, fn func(key string, val []byte) error) error {
	if rs, ok := rec.(RangeScanner); ok {
		return rs.ScanFrom(ctx, prefix, from, fn)
	}
	return rec.Scan(ctx, prefix, func(key string, val []byte) error {
		if key < from {
			return nil
		}
		return fn(key, val)
	})
}

// Local is implemented by Records that only this process uses (memory, a
// Pebble directory that one process holds open): per-key decisions can
// then be made in process, without claims in the records. Value returns
// the value kept with the Records under key, made by mk on first use, so
// that every user of the same Records in this process shares it (the
// engine keeps the single flight of idempotent calls there).
type Local interface {
	Value(key any, mk func() any) any
}

// localValues backs Local.
type localValues struct {
	mu sync.Mutex
	m  map[any]any
}

// Value implements Local.
func (l *localValues) Value(key any, mk func() any) any {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.m[key]; ok {
		return v
	}
	if l.m == nil {
		l.m = make(map[any]any)
	}
	v := mk()
	l.m[key] = v
	return v
}

// CompareDeleter is implemented by this package's Records: delete key
// only when it holds old.
type CompareDeleter interface {
	DeleteIfEqual(ctx context.Context, key string, old []byte) (bool, error)
}

// DeleteIfEqual deletes key when it holds old. With Records of another
// package it checks, then deletes (not atomic).
func DeleteIfEqual(ctx context.Context, rec Records, key string, old []byte) (bool, error) {
	if cd, ok := rec.(CompareDeleter); ok {
		return cd.DeleteIfEqual(ctx, key, old)
	}
	cur, ok, err := rec.Get(ctx, key)
	if err != nil || !ok || !bytes.Equal(cur, old) {
		return false, err
	}
	return true, rec.Delete(ctx, key)
}

func checkKey(key string) error {
	if key == "" || len(key) > KeyLenMax {
		return errRecordKey
	}
	return nil
}

func checkBatch(kvs []KV) error {
	if len(kvs) > BatchMax {
		return fmt.Errorf("%w: batch of %d records, more than %d", ErrInvalid, len(kvs), BatchMax)
	}
	for _, kv := range kvs {
		if err := checkKey(kv.Key); err != nil {
			return err
		}
	}
	return nil
}

// prefixEnd returns the smallest key greater than every key with prefix,
// or "" when there is none (prefix is all 0xff or empty).
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// ParseCount parses a decimal counter value (PutBatchCounted's); absent
// counts as 0.
func ParseCount(val []byte, ok bool) (int64, error) {
	if !ok || len(val) == 0 {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(val), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cannot parse counter %q: %w", val, err)
	}
	return n, nil
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return bytes.Clone(b)
}
