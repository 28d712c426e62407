package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/ants/v2"
	"github.com/surge-retail/surge/engine/orders"
)

// OrderWriterOptions configures an OrderWriter. The zero value of each field
// means its default.
type OrderWriterOptions struct {
	// BatchMax is the most orders written in one store call. Default 256.
	BatchMax int
	// QueueMax bounds the orders submitted and not yet written (queued, in
	// flight or being retried); Submit refuses more. Default 65536.
	QueueMax int
	// Workers is the size of the ants pool writing batches, so at most
	// Workers store calls run at once. Default 4.
	Workers int
	// FlushInterval is how long a partial batch waits for more orders.
	// Default 5ms; negative writes partial batches at once.
	FlushInterval time.Duration
	// RetryBackoff is the wait after a failed batch; it doubles after each
	// failure up to retryBackoffMax. Default 10ms.
	RetryBackoff time.Duration
}

// WithDefaults returns o with zero fields set to their defaults. It does
// not check ranges (NewOrderWriter does).
func (o OrderWriterOptions) WithDefaults() OrderWriterOptions {
	if o.BatchMax == 0 {
		o.BatchMax = batchDefault
	}
	if o.QueueMax == 0 {
		o.QueueMax = queueDefault
	}
	if o.Workers == 0 {
		o.Workers = writerWorkersDefault
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = flushIntervalDefault
	}
	if o.RetryBackoff == 0 {
		o.RetryBackoff = retryBackoffDefault
	}
	return o
}

const (
	batchDefault         = 256
	queueDefault         = 65536
	writerWorkersDefault = 4
	flushIntervalDefault = 5 * time.Millisecond
	retryBackoffDefault  = 10 * time.Millisecond
	// retryBackoffMax caps the retry backoff.
	retryBackoffMax = 2 * time.Second
	// writerWorkersMax, batchMax and writerQueueMax bound the options.
	writerWorkersMax = 256
	batchMax         = 4096
	writerQueueMax   = 1 << 22
	// writtenRecentMax bounds the ids Written remembers.
	writtenRecentMax = 65536
	// releaseTimeout bounds the wait for the pool's goroutines in Close.
	releaseTimeout = 5 * time.Second
	// countTimeout bounds the store call of Stats.
	countTimeout = time.Second
)

// ErrOrderWriterClosed is returned by Flush when the writer was closed
// before the orders could be written; they stay in the backlog.
var ErrOrderWriterClosed = errors.New("engine: order writer closed")

// OrderWriter writes orders to an orders.Store asynchronously, in batches,
// from a bounded pool of workers (law 4). Submit never blocks: a slow or
// failing store fills the bounded queue, and then Submit says no; the order
// stays in the engine's durable backlog (the paid reservation) and is
// submitted again later. Failed batches are retried with backoff; a batch
// written twice is harmless because the store upserts by order id.
type OrderWriter struct {
	store orders.Store
	opts  OrderWriterOptions
	pool  *ants.Pool

	mu     sync.Mutex
	queue  []writeItem // FIFO, seq ascending and contiguous
	seq    uint64      // last sequence number given out
	closed bool

	notify  chan struct{} // cap 1: the queue grew to 1 or to a full batch
	closing chan struct{} // closed by Close: drain the queue and stop

	// runCtx is the context of store calls; abandon cancels it.
	runCtx      context.Context
	abandon     context.CancelFunc
	abandonOnce sync.Once

	doneMu  sync.Mutex
	low     uint64            // every seq <= low is written
	done    map[uint64]uint64 // written batches above low: first seq -> last
	advance chan struct{}     // closed and replaced when low advances
	recent  map[string]struct{}
	ring    []string // recent ids in insertion order, for eviction
	ringPos int

	written   atomic.Uint64 // orders written by this writer
	failures  atomic.Int64
	lastCount atomic.Int64

	dispatched chan struct{} // closed when the dispatcher returned
	inflight   sync.WaitGroup
	stopOnce   sync.Once
}

type writeItem struct {
	seq uint64
	o   Order
}

// NewOrderWriter starts an OrderWriter over store: one dispatcher goroutine
// and a pool of opts.Workers workers, all stopped by Close.
func NewOrderWriter(store orders.Store, opts OrderWriterOptions) (*OrderWriter, error) {
	if store == nil {
		return nil, fmt.Errorf("cannot create order writer: %w: nil store", ErrInvalid)
	}
	if opts.BatchMax < 0 || opts.BatchMax > batchMax || opts.QueueMax < 0 || opts.QueueMax > writerQueueMax ||
		opts.Workers < 0 || opts.Workers > writerWorkersMax || opts.RetryBackoff < 0 {
		return nil, fmt.Errorf("cannot create order writer: %w: options %+v out of range", ErrInvalid, opts)
	}
	opts = opts.WithDefaults()
	pool, err := ants.NewPool(opts.Workers)
	if err != nil {
		return nil, fmt.Errorf("cannot create order writer pool: %w", err)
	}
	ringLen := writtenRecentMax
	w := &OrderWriter{
		store:      store,
		opts:       opts,
		pool:       pool,
		notify:     make(chan struct{}, 1),
		closing:    make(chan struct{}),
		done:       make(map[uint64]uint64),
		advance:    make(chan struct{}),
		recent:     make(map[string]struct{}, ringLen),
		ring:       make([]string, ringLen),
		dispatched: make(chan struct{}),
	}
	w.runCtx, w.abandon = context.WithCancel(context.Background())
	go w.dispatch()
	return w, nil
}

// Submit queues o for writing without blocking. It returns false when the
// writer holds QueueMax orders not yet written, when it is closed, or when
// o has no order or user id; the caller keeps o in its backlog and submits
// it again later.
func (w *OrderWriter) Submit(o Order) bool {
	if orders.Check(&o) != nil {
		return false
	}
	w.mu.Lock()
	if w.closed || w.seq-w.written.Load() >= uint64(w.opts.QueueMax) {
		w.mu.Unlock()
		return false
	}
	w.seq++
	w.queue = append(w.queue, writeItem{seq: w.seq, o: o})
	n := len(w.queue)
	w.mu.Unlock()
	if n == 1 || n%w.opts.BatchMax == 0 {
		select {
		case w.notify <- struct{}{}:
		default:
		}
	}
	return true
}

// take removes up to n items from the head of the queue.
func (w *OrderWriter) take(n int) []writeItem {
	w.mu.Lock()
	defer w.mu.Unlock()
	n = min(n, len(w.queue))
	batch := make([]writeItem, n)
	copy(batch, w.queue)
	clear(w.queue[:n]) // drop references held by the array's head
	w.queue = w.queue[n:]
	if len(w.queue) == 0 {
		w.queue = nil
	}
	return batch
}

func (w *OrderWriter) queueLen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// dispatch cuts the queue into batches and hands them to the pool. It is
// the only consumer of the queue, so every batch is a contiguous range of
// sequence numbers.
func (w *OrderWriter) dispatch() {
	defer close(w.dispatched)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var deadline time.Time
	for {
		closing := false
		select {
		case <-w.closing:
			closing = true
		default:
		}
		n := w.queueLen()
		switch {
		case n >= w.opts.BatchMax:
			w.send(w.take(w.opts.BatchMax))
			continue
		case n > 0 && (closing || w.opts.FlushInterval < 0 || !deadline.IsZero() && !time.Now().Before(deadline)):
			w.send(w.take(n))
			deadline = time.Time{}
			continue
		case n > 0:
			if deadline.IsZero() {
				deadline = time.Now().Add(w.opts.FlushInterval)
			}
			timer.Reset(time.Until(deadline))
			select {
			case <-w.notify:
			case <-timer.C:
			case <-w.closing:
			}
			timer.Stop()
		default: // empty
			deadline = time.Time{}
			if closing {
				return
			}
			select {
			case <-w.notify:
			case <-w.closing:
			}
		}
	}
}

// send hands a batch to the pool, blocking while every worker is busy (the
// queue then absorbs Submit, up to QueueMax).
func (w *OrderWriter) send(batch []writeItem) {
	if len(batch) == 0 {
		return
	}
	w.inflight.Add(1)
	task := func() {
		defer w.inflight.Done()
		w.writeBatch(batch)
	}
	if err := w.pool.Submit(task); err != nil {
		// The pool is released only after the dispatcher returns; write
		// inline rather than lose the batch.
		task()
	}
}

// writeBatch writes batch, retrying with backoff until it is written or the
// writer is abandoned (the batch then stays in the backlog).
func (w *OrderWriter) writeBatch(batch []writeItem) {
	orders := make([]Order, len(batch))
	for i := range batch {
		orders[i] = batch[i].o
	}
	backoff := w.opts.RetryBackoff
	var timer *time.Timer
	for {
		if w.runCtx.Err() != nil {
			return
		}
		err := w.upsert(orders)
		if err == nil {
			w.complete(batch)
			return
		}
		w.failures.Add(1)
		if timer == nil {
			timer = time.NewTimer(backoff)
		} else {
			timer.Reset(backoff)
		}
		select {
		case <-timer.C:
		case <-w.runCtx.Done():
			timer.Stop()
			return
		}
		backoff = min(2*backoff, retryBackoffMax)
	}
}

// upsert calls the store, turning a panic into an error so that the batch is
// retried and the writer's accounting stays right.
func (w *OrderWriter) upsert(orders []Order) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot write orders: store panicked: %v", r)
		}
	}()
	return w.store.Upsert(w.runCtx, orders)
}

func (w *OrderWriter) complete(batch []writeItem) {
	lo, hi := batch[0].seq, batch[len(batch)-1].seq
	w.doneMu.Lock()
	defer w.doneMu.Unlock()
	for i := range batch {
		w.remember(batch[i].o.OrderID)
	}
	w.written.Add(uint64(len(batch)))
	w.done[lo] = hi
	advanced := false
	for {
		end, ok := w.done[w.low+1]
		if !ok {
			break
		}
		delete(w.done, w.low+1)
		w.low = end
		advanced = true
	}
	if advanced {
		close(w.advance)
		w.advance = make(chan struct{})
	}
}

// remember adds id to the bounded set of recently written ids.
func (w *OrderWriter) remember(id string) {
	if len(w.ring) == 0 {
		return
	}
	if _, ok := w.recent[id]; ok {
		return
	}
	if old := w.ring[w.ringPos]; old != "" {
		delete(w.recent, old)
	}
	w.ring[w.ringPos] = id
	w.recent[id] = struct{}{}
	w.ringPos = (w.ringPos + 1) % len(w.ring)
}

// Flush waits until every order submitted before the call is written, or
// ctx ends (ctx.Err()), or the writer is abandoned (ErrOrderWriterClosed).
func (w *OrderWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.seq
	w.mu.Unlock()
	for {
		w.doneMu.Lock()
		low, ch := w.low, w.advance
		w.doneMu.Unlock()
		if low >= target {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("cannot flush orders: %w", ctx.Err())
		case <-w.runCtx.Done():
			return ErrOrderWriterClosed
		}
	}
}

// Written reports whether this writer wrote orderID recently (it remembers
// up to writtenRecentMax ids). False means "not known here": ask the store.
func (w *OrderWriter) Written(orderID string) bool {
	w.doneMu.Lock()
	defer w.doneMu.Unlock()
	_, ok := w.recent[orderID]
	return ok
}

// Stats returns the writer's counters: Written is the store's all-time
// count (the last known one when the store does not answer within
// countTimeout), Lag the orders submitted here and not yet written,
// Failures the failed store calls.
func (w *OrderWriter) Stats() OrderStats {
	ctx, cancel := context.WithTimeout(context.Background(), countTimeout)
	defer cancel()
	if n, err := w.store.Count(ctx); err == nil {
		w.lastCount.Store(n)
	}
	w.mu.Lock()
	lag := int64(w.seq - w.written.Load())
	w.mu.Unlock()
	return OrderStats{Written: w.lastCount.Load(), Lag: lag, Failures: w.failures.Load()}
}

// Close refuses new orders, waits until every submitted order is written
// (Flush), then stops the dispatcher and the workers. When ctx ends first,
// the writer is abandoned: retries stop, in-flight store calls see a
// cancelled context, unwritten orders stay in the backlog, and Close
// returns the flush error once every goroutine has exited.
func (w *OrderWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	first := !w.closed
	w.closed = true
	w.mu.Unlock()
	if first {
		close(w.closing)
	}
	err := w.Flush(ctx)
	if err != nil {
		w.abandonOnce.Do(w.abandon)
	}
	<-w.dispatched
	w.inflight.Wait()
	w.stopOnce.Do(func() {
		w.abandonOnce.Do(w.abandon)
		// Waits for the pool's own goroutines; its workers are idle.
		_ = w.pool.ReleaseTimeout(releaseTimeout)
	})
	return err
}
