package records

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/surge-retail/surge/internal/pebblefail"
)

// stripesLen is the number of key-striped locks that make read-modify-write
// operations (PutIfAbsent, CompareAndSwap) atomic against other writers of
// the same key in one process.
const stripesLen = 256

type pebbleRecords struct {
	db *pebble.DB
	localValues

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
var _ CountedBatcher = (*pebbleRecords)(nil)
var _ CompareDeleter = (*pebbleRecords)(nil)
var _ RangeScanner = (*pebbleRecords)(nil)

// OpenPebbleRecords opens (creating when needed) Records in their own Pebble
// database in dir. Every write is a synced batch; concurrent writers share
// fsyncs through Pebble's group commit. One process at a time may open dir.
func OpenPebble(dir string, o Options) (Records, error) {
	o = o.WithDefaults()
	opts := &pebble.Options{FS: o.FS, Logger: pebblefail.Logger{Name: "records", Log: o.Logger}, CacheSize: o.CacheBytes}
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
		return ErrClosed
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
		return fmt.Errorf("cannot commit records: %w: %w", ErrUnavailable, err)
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

func (p *pebbleRecords) PutBatchCounted(ctx context.Context, kvs []KV, counted []string, counterKey string) (int64, error) {
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
	n, err := ParseCount(cur, ok)
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

func (p *pebbleRecords) DeleteIfEqual(ctx context.Context, key string, old []byte) (bool, error) {
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
	return p.ScanFrom(ctx, prefix, prefix, fn)
}

// ScanFrom implements RangeScanner.
func (p *pebbleRecords) ScanFrom(ctx context.Context, prefix, start string, fn func(key string, val []byte) error) error {
	end := prefixEnd(prefix)
	from := []byte(max(start, prefix))
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
