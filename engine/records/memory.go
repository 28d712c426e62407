package records

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/RaduBerinde/btreemap"
)

type memRecords struct {
	localValues
	mu     sync.RWMutex
	tree   *btreemap.BTreeMap[string, []byte]
	closed bool
}

var _ Records = (*memRecords)(nil)
var _ CountedBatcher = (*memRecords)(nil)
var _ CompareDeleter = (*memRecords)(nil)
var _ RangeScanner = (*memRecords)(nil)

// NewMemory returns Records kept in memory, in key order (tests, the
// memory backend). They are lost with the process.
func NewMemory() Records {
	return &memRecords{tree: btreemap.New[string, []byte](32, strings.Compare)}
}

func (m *memRecords) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, false, ErrClosed
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
		return ErrClosed
	}
	for _, kv := range kvs {
		m.tree.ReplaceOrInsert(kv.Key, cloneBytes(kv.Val))
	}
	return nil
}

func (m *memRecords) PutBatchCounted(ctx context.Context, kvs []KV, counted []string, counterKey string) (int64, error) {
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
		return 0, ErrClosed
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
	n, err := ParseCount(cur, ok)
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
		return false, ErrClosed
	}
	_, cur, ok := m.tree.Get(key)
	if old == nil && ok || old != nil && (!ok || !bytes.Equal(cur, old)) {
		return false, nil
	}
	m.tree.ReplaceOrInsert(key, cloneBytes(new))
	return true, nil
}

func (m *memRecords) DeleteIfEqual(ctx context.Context, key string, old []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrClosed
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
		return ErrClosed
	}
	m.tree.Delete(key)
	return nil
}

func (m *memRecords) Scan(ctx context.Context, prefix string, fn func(key string, val []byte) error) error {
	return m.ScanFrom(ctx, prefix, prefix, fn)
}

// ScanFrom implements RangeScanner.
func (m *memRecords) ScanFrom(ctx context.Context, prefix, from string, fn func(key string, val []byte) error) error {
	from = max(from, prefix)
	m.mu.Lock() // Clone changes the tree's copy-on-write context.
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	snap := m.tree.Clone()
	m.mu.Unlock()
	var err error
	stop := btreemap.Max[string]()
	if end := prefixEnd(prefix); end != "" {
		stop = btreemap.LT(end)
	}
	i := 0
	snap.AscendFunc(btreemap.GE(from), stop, func(k string, v []byte) bool {
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
