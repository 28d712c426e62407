package engine

import (
	"context"
	"errors"
)

// Records is a small durable key/value store for the engine's own records
// (catalog, sales, deals, teams, idempotency records, orders). Keys are
// strings, values opaque bytes. Every write is durable when it returns.
type Records interface {
	// Get returns the value of key; ok is false when it is absent.
	Get(ctx context.Context, key string) (val []byte, ok bool, err error)
	// Put writes key durably.
	Put(ctx context.Context, key string, val []byte) error
	// PutBatch writes all kvs atomically and durably.
	PutBatch(ctx context.Context, kvs []KV) error
	// PutIfAbsent writes key only when it is absent; it reports whether it
	// wrote. Decisions made with it are made once, also across nodes.
	PutIfAbsent(ctx context.Context, key string, val []byte) (bool, error)
	// CompareAndSwap replaces old by new when key holds old (old == nil
	// means absent); it reports whether it swapped.
	CompareAndSwap(ctx context.Context, key string, old, new []byte) (bool, error)
	// Delete removes key; removing an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// Scan calls fn for every key with prefix, in key order. An error from
	// fn stops the scan and is returned.
	Scan(ctx context.Context, prefix string, fn func(key string, val []byte) error) error
	// Close releases the store.
	Close() error
}

// KV is one key and value of a batch.
type KV struct {
	Key string
	Val []byte
}

// ErrRecordsClosed is returned by Records used after Close.
var ErrRecordsClosed = errors.New("engine: records closed")

// NewMemRecords returns Records kept in memory (tests, the memory backend).
func NewMemRecords() Records { return nil }

// OpenPebbleRecords opens Records in their own Pebble database in dir.
func OpenPebbleRecords(dir string) (Records, error) { return nil, errors.New("engine: not implemented") }
