package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/RaduBerinde/btreemap"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/surge-retail/surge/internal/pebblefail"
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

// ErrRecordsClosed is returned by Records used after Close.
var ErrRecordsClosed = errors.New("engine: records closed")

// recordKeyMax bounds the length of a record key (bytes).
const recordKeyMax = 1024

// recordBatchMax bounds the number of entries of one PutBatch.
const recordBatchMax = 16384

// errRecordKey is returned for an empty or oversized key.
var errRecordKey = fmt.Errorf("%w: record key empty or longer than %d bytes", ErrInvalid, recordKeyMax)

// countedBatcher is implemented by this package's Records: an atomic,
// durable batch that also counts how many of the keys in counted did not
// exist before it, adding that number to the decimal counter in counterKey.
// The order store uses it to keep an exact all-time count under
// idempotent re-upserts, also across nodes.
type countedBatcher interface {
	putBatchCounted(ctx context.Context, kvs []KV, counted []string, counterKey string) (added int64, err error)
}

// localRecords is implemented by Records that only this process uses (memory,
// a Pebble directory that one process holds open): per-key decisions can
// then be made in process, without claims in the records. localFlight
// returns the in-process single flight of idempotent calls shared by every
// Idempotency over these Records.
type localRecords interface {
	localFlight() *flightGroup
}

func (m *memRecords) localFlight() *flightGroup    { return &m.flight }
func (p *pebbleRecords) localFlight() *flightGroup { return &p.flight }

// compareDeleter is implemented by this package's Records: delete key
// only when it holds old.
type compareDeleter interface {
	deleteIfEqual(ctx context.Context, key string, old []byte) (bool, error)
}

// deleteIfEqualOf deletes key when it holds old. With Records of another
// package it checks, then deletes (not atomic).
func deleteIfEqualOf(ctx context.Context, rec Records, key string, old []byte) (bool, error) {
	if cd, ok := rec.(compareDeleter); ok {
		return cd.deleteIfEqual(ctx, key, old)
	}
	cur, ok, err := rec.Get(ctx, key)
	if err != nil || !ok || !bytes.Equal(cur, old) {
		return false, err
	}
	return true, rec.Delete(ctx, key)
}

func checkKey(key string) error {
	if key == "" || len(key) > recordKeyMax {
		return errRecordKey
	}
	return nil
}

func checkBatch(kvs []KV) error {
	if len(kvs) > recordBatchMax {
		return fmt.Errorf("%w: batch of %d records, more than %d", ErrInvalid, len(kvs), recordBatchMax)
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

// parseCount parses a counter value; absent counts as 0.
func parseCount(val []byte, ok bool) (int64, error) {
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

// ---------------------------------------------------------------------------
// Memory records.

type memRecords struct {
	flight flightGroup
	mu     sync.RWMutex
	tree   *btreemap.BTreeMap[string, []byte]
	closed bool
}

var _ Records = (*memRecords)(nil)
var _ countedBatcher = (*memRecords)(nil)
var _ compareDeleter = (*memRecords)(nil)

// NewMemRecords returns Records kept in memory, in key order (tests, the
// memory backend). They are lost with the process.
func NewMemRecords() Records {
	return &memRecords{tree: btreemap.New[string, []byte](32, strings.Compare)}
}

func (m *memRecords) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, false, ErrRecordsClosed
	}
	_, v, ok := m.tree.Get(key)
	if !ok {
		return nil, false, nil
	}
	return bytes.Clone(v), true, nil
}

func (m *memRecords) Put(ctx context.Context, key string, val []byte) error {
	return m.PutBatch(ctx, []KV{{Key: key, Val: val}})
}

func (m *memRecords) PutBatch(ctx context.Context, kvs []KV) error {
	if err := checkBatch(kvs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrRecordsClosed
	}
	for _, kv := range kvs {
		m.tree.ReplaceOrInsert(kv.Key, cloneBytes(kv.Val))
	}
	return nil
}

func (m *memRecords) putBatchCounted(ctx context.Context, kvs []KV, counted []string, counterKey string) (int64, error) {
	if err := checkBatch(kvs); err != nil {
		return 0, err
	}
	if err := checkKey(counterKey); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrRecordsClosed
	}
	added := int64(0)
	seen := make(map[string]struct{}, len(counted))
	for _, k := range counted {
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		if !m.tree.Has(k) {
			added++
		}
	}
	_, cur, ok := m.tree.Get(counterKey)
	n, err := parseCount(cur, ok)
	if err != nil {
		return 0, err
	}
	for _, kv := range kvs {
		m.tree.ReplaceOrInsert(kv.Key, cloneBytes(kv.Val))
	}
	m.tree.ReplaceOrInsert(counterKey, []byte(strconv.FormatInt(n+added, 10)))
	return added, nil
}

func (m *memRecords) PutIfAbsent(ctx context.Context, key string, val []byte) (bool, error) {
	return m.CompareAndSwap(ctx, key, nil, val)
}

func (m *memRecords) CompareAndSwap(ctx context.Context, key string, old, new []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrRecordsClosed
	}
	_, cur, ok := m.tree.Get(key)
	if old == nil && ok || old != nil && (!ok || !bytes.Equal(cur, old)) {
		return false, nil
	}
	m.tree.ReplaceOrInsert(key, cloneBytes(new))
	return true, nil
}

func (m *memRecords) deleteIfEqual(ctx context.Context, key string, old []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrRecordsClosed
	}
	if _, cur, ok := m.tree.Get(key); !ok || !bytes.Equal(cur, old) {
		return false, nil
	}
	m.tree.Delete(key)
	return true, nil
}

func (m *memRecords) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrRecordsClosed
	}
	m.tree.Delete(key)
	return nil
}

func (m *memRecords) Scan(ctx context.Context, prefix string, fn func(key string, val []byte) error) error {
	m.mu.Lock() // Clone changes the tree's copy-on-write context.
	if m.closed {
		m.mu.Unlock()
		return ErrRecordsClosed
	}
	snap := m.tree.Clone()
	m.mu.Unlock()
	var err error
	stop := btreemap.Max[string]()
	if end := prefixEnd(prefix); end != "" {
		stop = btreemap.LT(end)
	}
	i := 0
	snap.AscendFunc(btreemap.GE(prefix), stop, func(k string, v []byte) bool {
		if i++; i%256 == 0 {
			if err = ctx.Err(); err != nil {
				return false
			}
		}
		err = fn(k, bytes.Clone(v))
		return err == nil
	})
	return err
}

func (m *memRecords) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// ---------------------------------------------------------------------------
// Pebble records.

// pebbleCacheBytes is the Pebble block cache of the records: the order store
// checks every new order id for existence, which must not go to disk.
const pebbleCacheBytes = 32 << 20

// stripesLen is the number of key-striped locks that make read-modify-write
// operations (PutIfAbsent, CompareAndSwap) atomic against other writers of
// the same key in one process.
const stripesLen = 256

type pebbleRecords struct {
	db     *pebble.DB
	flight flightGroup

	// closeMu: operations hold it shared, Close exclusively, so that no
	// operation touches a closed DB.
	closeMu sync.RWMutex
	closed  bool

	stripes [stripesLen]sync.Mutex
	// guard fails the records at their first failed commit (pebblefail,
	// the same policy as the inventory's Pebble store).
	guard pebblefail.Guard
}

var _ Records = (*pebbleRecords)(nil)
var _ countedBatcher = (*pebbleRecords)(nil)
var _ compareDeleter = (*pebbleRecords)(nil)

// OpenPebbleRecords opens (creating when needed) Records in their own Pebble
// database in dir. Every write is a synced batch; concurrent writers share
// fsyncs through Pebble's group commit. One process at a time may open dir.
func OpenPebbleRecords(dir string) (Records, error) {
	opts := &pebble.Options{Logger: pebblefail.Logger{Name: "records"}, CacheSize: pebbleCacheBytes}
	// Bloom filters: the order store and PutIfAbsent look up keys that
	// mostly do not exist yet.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("cannot open records in %s: %w", dir, err)
	}
	return &pebbleRecords{db: db}, nil
}

func stripeOf(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % stripesLen)
}

// lockKeys locks the stripes of keys in ascending order (no deadlock
// between batches) and returns the unlock function.
func (p *pebbleRecords) lockKeys(keys ...string) func() {
	if len(keys) == 1 {
		mu := &p.stripes[stripeOf(keys[0])]
		mu.Lock()
		return mu.Unlock
	}
	var used [stripesLen]bool
	for _, k := range keys {
		used[stripeOf(k)] = true
	}
	idx := make([]int, 0, min(len(keys), stripesLen))
	for i, u := range used {
		if u {
			idx = append(idx, i)
			p.stripes[i].Lock()
		}
	}
	return func() {
		for _, i := range slices.Backward(idx) {
			p.stripes[i].Unlock()
		}
	}
}

func (p *pebbleRecords) enter() error {
	p.closeMu.RLock()
	if p.closed {
		p.closeMu.RUnlock()
		return ErrRecordsClosed
	}
	return nil
}

func (p *pebbleRecords) get(key string) ([]byte, bool, error) {
	v, closer, err := p.db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cannot get record %q: %w", key, err)
	}
	out := bytes.Clone(v)
	if out == nil {
		out = []byte{}
	}
	_ = closer.Close()
	return out, true, nil
}

func (p *pebbleRecords) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	if err := p.enter(); err != nil {
		return nil, false, err
	}
	defer p.closeMu.RUnlock()
	return p.get(key)
}

func (p *pebbleRecords) Put(ctx context.Context, key string, val []byte) error {
	return p.PutBatch(ctx, []KV{{Key: key, Val: val}})
}

// commit applies b while the caller holds the stripe locks of its keys,
// calls unlock, then waits for the WAL fsync. The locks order the batches
// of one key in the WAL (a read-modify-write sees the previous write);
// releasing them before the fsync lets Pebble's group commit share one
// fsync among them. Pebble makes an applied batch visible before its fsync
// in any case, and the WAL keeps the order, so a crash can lose a suffix
// of writes but never a write whose caller got an answer.
func (p *pebbleRecords) commit(b *pebble.Batch, unlock func()) error {
	err := p.guard.Do(func() error {
		err := p.db.ApplyNoSyncWait(b, pebble.Sync)
		unlock()
		unlock = nil
		if err != nil {
			return err
		}
		return b.SyncWait()
	})
	if unlock != nil { // Do did not run it: failed earlier
		unlock()
	}
	if err != nil {
		// Pebble's commit pipeline cannot go on after a failed commit:
		// stop taking writes.
		p.guard.Fail(err)
		return fmt.Errorf("cannot commit records: %w", err)
	}
	return nil
}

func (p *pebbleRecords) PutBatch(ctx context.Context, kvs []KV) error {
	if err := checkBatch(kvs); err != nil {
		return err
	}
	if len(kvs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.enter(); err != nil {
		return err
	}
	defer p.closeMu.RUnlock()
	b := p.db.NewBatch()
	defer b.Close()
	keys := make([]string, len(kvs))
	for i, kv := range kvs {
		keys[i] = kv.Key
		if err := b.Set([]byte(kv.Key), kv.Val, nil); err != nil {
			return fmt.Errorf("cannot batch record %q: %w", kv.Key, err)
		}
	}
	if err := p.commit(b, p.lockKeys(keys...)); err != nil {
		return fmt.Errorf("cannot commit %d records: %w", len(kvs), err)
	}
	return nil
}

func (p *pebbleRecords) putBatchCounted(ctx context.Context, kvs []KV, counted []string, counterKey string) (int64, error) {
	if err := checkBatch(kvs); err != nil {
		return 0, err
	}
	if err := checkKey(counterKey); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := p.enter(); err != nil {
		return 0, err
	}
	defer p.closeMu.RUnlock()
	b := p.db.NewBatch()
	defer b.Close()
	keys := make([]string, 0, len(kvs)+len(counted)+1)
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
		if err := b.Set([]byte(kv.Key), kv.Val, nil); err != nil {
			return 0, fmt.Errorf("cannot batch record %q: %w", kv.Key, err)
		}
	}
	keys = append(keys, counted...)
	keys = append(keys, counterKey)
	unlock := p.lockKeys(keys...)
	added, err := p.countAbsent(counted)
	if err != nil {
		unlock()
		return 0, err
	}
	cur, ok, err := p.get(counterKey)
	if err != nil {
		unlock()
		return 0, err
	}
	n, err := parseCount(cur, ok)
	if err != nil {
		unlock()
		return 0, err
	}
	if err := b.Set([]byte(counterKey), strconv.AppendInt(nil, n+added, 10), nil); err != nil {
		unlock()
		return 0, fmt.Errorf("cannot batch counter %q: %w", counterKey, err)
	}
	if err := p.commit(b, unlock); err != nil {
		return 0, fmt.Errorf("cannot commit %d records: %w", len(kvs), err)
	}
	return added, nil
}

// countAbsent counts the distinct keys that do not exist.
func (p *pebbleRecords) countAbsent(keys []string) (int64, error) {
	added := int64(0)
	seen := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		_, ok, err := p.get(k)
		if err != nil {
			return 0, err
		}
		if !ok {
			added++
		}
	}
	return added, nil
}

func (p *pebbleRecords) PutIfAbsent(ctx context.Context, key string, val []byte) (bool, error) {
	return p.CompareAndSwap(ctx, key, nil, val)
}

func (p *pebbleRecords) CompareAndSwap(ctx context.Context, key string, old, new []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := p.enter(); err != nil {
		return false, err
	}
	defer p.closeMu.RUnlock()
	b := p.db.NewBatch()
	defer b.Close()
	if err := b.Set([]byte(key), new, nil); err != nil {
		return false, fmt.Errorf("cannot batch record %q: %w", key, err)
	}
	unlock := p.lockKeys(key)
	cur, ok, err := p.get(key)
	if err != nil {
		unlock()
		return false, err
	}
	if old == nil && ok || old != nil && (!ok || !bytes.Equal(cur, old)) {
		unlock()
		return false, nil
	}
	if err := p.commit(b, unlock); err != nil {
		return false, fmt.Errorf("cannot put record %q: %w", key, err)
	}
	return true, nil
}

func (p *pebbleRecords) deleteIfEqual(ctx context.Context, key string, old []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	if err := p.enter(); err != nil {
		return false, err
	}
	defer p.closeMu.RUnlock()
	b := p.db.NewBatch()
	defer b.Close()
	if err := b.Delete([]byte(key), nil); err != nil {
		return false, fmt.Errorf("cannot batch delete %q: %w", key, err)
	}
	unlock := p.lockKeys(key)
	cur, ok, err := p.get(key)
	if err != nil || !ok || !bytes.Equal(cur, old) {
		unlock()
		return false, err
	}
	if err := p.commit(b, unlock); err != nil {
		return false, fmt.Errorf("cannot delete record %q: %w", key, err)
	}
	return true, nil
}

func (p *pebbleRecords) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := p.enter(); err != nil {
		return err
	}
	defer p.closeMu.RUnlock()
	b := p.db.NewBatch()
	defer b.Close()
	if err := b.Delete([]byte(key), nil); err != nil {
		return fmt.Errorf("cannot batch delete %q: %w", key, err)
	}
	if err := p.commit(b, p.lockKeys(key)); err != nil {
		return fmt.Errorf("cannot delete record %q: %w", key, err)
	}
	return nil
}

// scanPageLen is how many records Scan reads per Pebble iterator; fn runs
// between pages without any lock held.
const scanPageLen = 256

func (p *pebbleRecords) Scan(ctx context.Context, prefix string, fn func(key string, val []byte) error) error {
	end := prefixEnd(prefix)
	from := []byte(prefix)
	page := make([]KV, 0, scanPageLen)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page = page[:0]
		if err := p.scanPage(from, end, &page); err != nil {
			return fmt.Errorf("cannot scan records %q: %w", prefix, err)
		}
		for _, kv := range page {
			if err := fn(kv.Key, kv.Val); err != nil {
				return err
			}
		}
		if len(page) < scanPageLen {
			return nil
		}
		// The next page starts right after the last key.
		from = append([]byte(page[len(page)-1].Key), 0)
	}
}

func (p *pebbleRecords) scanPage(from []byte, end string, page *[]KV) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.closeMu.RUnlock()
	opts := &pebble.IterOptions{}
	if len(from) > 0 {
		opts.LowerBound = from
	}
	if end != "" {
		opts.UpperBound = []byte(end)
	}
	it, err := p.db.NewIter(opts)
	if err != nil {
		return err
	}
	for ok := it.First(); ok && len(*page) < scanPageLen; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		*page = append(*page, KV{Key: string(it.Key()), Val: cloneBytes(v)})
	}
	return it.Close()
}

func (p *pebbleRecords) Close() error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if err := p.guard.Err(); err != nil {
		// After a failed commit Pebble's pipeline may be wedged and Close
		// could block: leave the files for the next open.
		return fmt.Errorf("cannot close records cleanly: %w", err)
	}
	if err := p.db.Close(); err != nil {
		return fmt.Errorf("cannot close records: %w", err)
	}
	return nil
}
